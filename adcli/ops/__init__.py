"""The op table: every primitive adcli knows, each defined by one entry.

An :class:`Op` entry is the whole specification of a primitive: its spelling and printing, its
kernel (a float function and a numpy function, :mod:`adcli.ops.kernels`), its local partial
derivatives written once as templates, its symbolic derivative, and its kink convention.

The partials are small expressions over the placeholders ``{0}``, ``{1}`` (the arguments) and
``{o}`` (the op's output) and kernel names: the op names themselves (``cos({0})``) and the
helpers of :data:`adcli.ops.kernels.HELPERS`. Every engine interprets the same text: the plain
interpreter and the column sweeps bind the names to numpy kernels (:attr:`Op.partials`), the
generated scalar code and the float interpreter to float kernels. Reverse mode multiplies an
adjoint by the partials, forward mode (the JVP) multiplies tangents by them, so there is one
copy of each rule. The engines specialise on data read from the templates: constant partials
(add's (1, 1), neg's (-1,)), partials that are another argument (mul's, "bilinear"), and the
``const_exponent`` mark of pow (a constant exponent b: a^2 is a*a, d/da is b*a^(b-1)).

``derivative(E, args, out)`` builds the same partials as expression trees with the smart
constructors of :mod:`adcli.core.syntax`, passed in as ``E`` (so this module imports no syntax).

Conventions at non-differentiable points follow PyTorch's written policy: the gradient where it
exists, else the minimum-norm subgradient (abs'(0) = 0, relu'(0) = 0), ties of ``max``/``min``
split the gradient evenly, sqrt'(0) = +inf, and where a function is undefined the partial is nan.
All evaluation runs under ``np.errstate(all="ignore")`` by the callers: IEEE inf/nan propagate,
nothing raises. To add a primitive, add one entry to ``_TABLE`` (see the README).

This module does not import numpy: an entry names its numpy kernel, and :attr:`Op.fn`,
:attr:`Op.partials` and :data:`NUMPY_NAMES` are resolved on first use, so parsing and the float
engines run without it (start-up time).
"""

from __future__ import annotations

import math

from . import kernels as K
from .codegen import partials_function

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Array = Any  # a float64 scalar or a numpy array of float64

# Printing precedence, loosest to tightest; tested against the grammar.
PREC_ADD = 10
PREC_MUL = 20
PREC_UNARY = 30
PREC_POW = 40
PREC_ATOM = 100

LN2 = math.log(2.0)  # numpy's np.log(2.0) to the bit (a test checks)
LN10 = math.log(10.0)

class Op:
    """One primitive: everything each engine needs, in one place (see the module docstring).
    Read-only, compared by identity: a plain class, as a frozen dataclass loads ``inspect``
    (start-up). Its fields: the annotations below, ``__init__``'s arguments in that order."""

    __slots__ = ("name", "arity", "kernel", "partial", "derivative", "value", "symbol", "form",
                 "prec", "assoc", "kink", "convention", "const_exponent", "rule", "statement",
                 "prints", "fn", "partials", "const_partials", "arg_partials")

    name: str
    arity: int
    kernel: K.Pair  # (float kernel, numpy kernel or its name: see adcli.ops.kernels)
    partial: tuple[str, ...]  # d out / d arg_i as templates
    derivative: Callable[..., tuple]  # (E, args, out) -> partials as expression nodes
    value: str  # value template; default "name({0}, ...)", the kernel called by name
    symbol: str  # surface spelling: "+", "sin"
    form: str  # "infix", "prefix" or "call"
    prec: int
    assoc: str  # "left", "right" or "none"
    kink: Callable[[tuple], Array] | None  # True where the point sits on a kink
    convention: str  # what the partials do at the kink
    const_exponent: bool  # arg 1 is an exponent: engines specialise a constant one
    rule: str  # the differentiation rule by name, as a learner knows it ("product rule")
    statement: str  # that rule in one line, over the arguments a, b (``adcli explain``)
    #: How ``adcli diff --format`` prints the op, per format ("python", "sympy", "latex"): over
    #: {0}, {1}; a slot in the template's own ``(...)``/``{...}`` gets no parentheses of its
    #: own. Missing formats follow :func:`print_template`.
    prints: dict[str, str]
    fn: Callable[..., Array]  # derived: the numpy kernel, resolved by __getattr__
    partials: Callable[[tuple, Array], tuple]
    const_partials: tuple[float | None, ...]  # a number, or None
    arg_partials: tuple[int | None, ...]  # partial i is argument j

    def __init__(self, name: str, arity: int, kernel: K.Pair, partial: tuple[str, ...],
                 derivative: Callable[..., tuple], value: str = "", symbol: str = "",
                 form: str = "call", prec: int = PREC_ATOM, assoc: str = "none",
                 kink: Callable[[tuple], Array] | None = None, convention: str = "",
                 const_exponent: bool = False, rule: str = "", statement: str = "",
                 prints: dict[str, str] | None = None) -> None:
        put = object.__setattr__
        put(self, "name", name)
        put(self, "arity", arity)
        put(self, "kernel", kernel)
        put(self, "partial", partial)
        put(self, "derivative", derivative)
        put(self, "value", value or f"{name}({', '.join(f'{{{i}}}' for i in range(arity))})")
        put(self, "symbol", symbol or name)
        put(self, "form", form)
        put(self, "prec", prec)
        put(self, "assoc", assoc)
        put(self, "kink", kink)
        put(self, "convention", convention)
        put(self, "const_exponent", const_exponent)
        put(self, "rule", rule)
        put(self, "statement", statement)
        put(self, "prints", {} if prints is None else prints)
        consts: list[float | None] = []
        argp: list[int | None] = []
        for t in partial:
            try:  # a template that reads an argument or the output is no number (no raise)
                consts.append(None if "{" in t else float(t))
            except ValueError:
                consts.append(None)
            is_arg = len(t) == 3 and t[0] == "{" and t[2] == "}" and t[1] in "0123456789"
            argp.append(int(t[1]) if is_arg else None)  # "{0}": the partial is argument 0
        put(self, "const_partials", tuple(consts))
        put(self, "arg_partials", tuple(argp))

    def __setattr__(self, name: str, value: object = None) -> None:
        raise AttributeError(f"cannot assign to or delete field {name!r} of an Op (read-only)")

    __delattr__ = __setattr__

    def __reduce__(self) -> tuple:  # an op is an entry of the table: unpickled, that entry
        return (_op_named, (self.name,))

    @property
    def bilinear(self) -> bool:
        """Each partial is another argument (mul): nothing to compute in reverse mode."""
        return all(j is not None for j in self.arg_partials)

    @property
    def unit_partials(self) -> tuple[float, ...] | None:
        """(1, 1), (1, -1), (-1,): partials that are ±1 (add, sub, neg), else None. Engines
        pass the adjoint through (or negate it) instead of multiplying."""
        if all(c in (1.0, -1.0) for c in self.const_partials):
            return tuple(self.const_partials)  # type: ignore[arg-type]
        return None

    def __getattr__(self, name: str) -> Any:
        """``fn`` until first read: the numpy kernel, resolved then (imports numpy) and kept
        in its slot, so later reads cost nothing."""
        if name != "fn":
            raise AttributeError(name)
        fn = K.numpy_kernel(self.kernel[1])
        object.__setattr__(self, "fn", fn)
        return fn

    def __repr__(self) -> str:
        return f"Op({self.name})"


def _op_named(name: str) -> Op:
    """The entry of the table named ``name`` (how an :class:`Op` is unpickled)."""
    return OPS[name]


def _c(E, v: float):
    return E.const(v)


def _half_sign(E, a, b, sgn: float):
    """0.5 * (1 + sgn*sign(a - b)): the tie-splitting derivative of max/min as an expression."""
    s = E.fn("sign", E.sub(a, b))
    return E.mul(_c(E, 0.5), E.add(_c(E, 1.0), s) if sgn > 0 else E.sub(_c(E, 1.0), s))


class RuleBuilder:
    """What a rule's ``E`` is for :mod:`adcli.derive.symbolic`: the smart constructors of
    :mod:`adcli.core.syntax`, plus ``keep``, which marks a node that simplification keeps whole
    (atan2's scaled (x / h) / h, folded into x / h^2, would overflow)."""

    def __init__(self, constructors: Any) -> None:
        self.constructors = constructors
        self.kept: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.constructors, name)

    def keep(self, node: Any) -> Any:
        self.kept.append(node)
        return node


def _over_norm2(E, n, a):
    """n / (a0^2 + a1^2) as (n / h) / h with h = hypot(a0, a1): nothing squared, so it
    neither overflows nor underflows where the result is a float. ``E.keep`` (when the
    builder has it) asks simplification to keep n / h whole, not fold it into n / h^2."""
    h = E.fn("hypot", a[0], a[1])
    ratio = E.div(n, h)
    keep = getattr(E, "keep", None)
    return E.div(keep(ratio) if keep is not None else ratio, h)


def _asin_d(E, x):
    return E.div(_c(E, 1), E.fn("sqrt", E.sub(_c(E, 1), E.power(x, _c(E, 2)))))


# --------------------------------------------------------------------------- the table
# One entry per primitive. Partials are templates (see the module docstring); ``derivative``
# gives the same partials symbolically. The README's conventions table lists every kink.

_TABLE: list[Op] = [
    # arithmetic
    Op("add", 2, K.ADD, ("1.0", "1.0"), lambda E, a, o: (_c(E, 1), _c(E, 1)),
       value="{0} + {1}", symbol="+", form="infix", prec=PREC_ADD, assoc="left",
       rule="sum rule", statement="d(a + b) = da + db"),
    Op("sub", 2, K.SUB, ("1.0", "-1.0"), lambda E, a, o: (_c(E, 1), _c(E, -1)),
       value="{0} - {1}", symbol="-", form="infix", prec=PREC_ADD, assoc="left",
       rule="difference rule", statement="d(a - b) = da - db"),
    Op("mul", 2, K.MUL, ("{1}", "{0}"), lambda E, a, o: (a[1], a[0]),
       value="{0} * {1}", symbol="*", form="infix", prec=PREC_MUL, assoc="left",
       prints={"latex": "{0} \\cdot {1}"},
       rule="product rule", statement="d(a*b) = b*da + a*db"),
    Op("div", 2, K.DIV, ("1.0 / {1}", "-{o} / {1}"),
       lambda E, a, o: (E.div(_c(E, 1), a[1]), E.neg(E.div(o, a[1]))),
       value="{0} / {1}", symbol="/", form="infix", prec=PREC_MUL, assoc="left",
       prints={"latex": "\\frac{{0}}{{1}}"},
       rule="quotient rule", statement="d(a/b) = da/b - (a/b)*db/b"),
    Op("neg", 1, K.NEG, ("-1.0",), lambda E, a, o: (_c(E, -1),),
       value="-{0}", symbol="-", form="prefix", prec=PREC_UNARY,
       rule="negation", statement="d(-a) = -da"),
    # a ^ b (also a ** b and pow(a, b)); d/db is nan for a < 0, 0 at a = 0 with b > 0
    Op("pow", 2, (K.f_pow, "power"), ("pow_dbase({0}, {1}, {o})", "pow_dexp({0}, {1}, {o})"),
       lambda E, a, o: (E.mul(a[1], E.power(a[0], E.sub(a[1], _c(E, 1)))),
                        E.mul(o, E.call("log", a[0]))),
       symbol="^", form="infix", prec=PREC_POW, assoc="right", const_exponent=True,
       prints={"python": "{0}**{1}", "sympy": "{0}**{1}", "latex": "{0}^{{1}}"},
       rule="power rule", statement="d(a^b) = b*a^(b - 1)*da + a^b*log(a)*db"),
    # trigonometric: sin and cos from the math module (they gave numpy's bits on 60,000
    # sampled points; tests compare to 1e-12), the others numpy's kernels on a float
    Op("sin", 1, (math.sin, "sin"), ("cos({0})",), lambda E, a, o: (E.fn("cos", a[0]),),
       rule="chain rule through sin", statement="d sin(a) = cos(a)*da"),
    Op("cos", 1, (math.cos, "cos"), ("-sin({0})",),
       lambda E, a, o: (E.neg(E.fn("sin", a[0])),),
       rule="chain rule through cos", statement="d cos(a) = -sin(a)*da"),
    Op("tan", 1, K.numpy_pair(math.tan, "tan"), ("1.0 + {o} * {o}",),
       lambda E, a, o: (E.add(_c(E, 1), E.power(o, _c(E, 2))),),
       rule="chain rule through tan", statement="d tan(a) = (1 + tan(a)^2)*da"),
    Op("asin", 1, K.numpy_pair(math.asin, "arcsin"), ("1.0 / sqrt(1.0 - {0} * {0})",),
       lambda E, a, o: (_asin_d(E, a[0]),),  # domain [-1, 1]
       prints={"latex": "\\arcsin\\left({0}\\right)"},
       rule="chain rule through asin", statement="d asin(a) = da/sqrt(1 - a^2)"),
    Op("acos", 1, K.numpy_pair(math.acos, "arccos"), ("-1.0 / sqrt(1.0 - {0} * {0})",),
       lambda E, a, o: (E.neg(_asin_d(E, a[0])),),  # domain [-1, 1]
       prints={"latex": "\\arccos\\left({0}\\right)"},
       rule="chain rule through acos", statement="d acos(a) = -da/sqrt(1 - a^2)"),
    Op("atan", 1, K.numpy_pair(math.atan, "arctan"), ("atan_d({0})",),
       lambda E, a, o: (E.div(_c(E, 1), E.add(_c(E, 1), E.power(a[0], _c(E, 2)))),),
       prints={"latex": "\\arctan\\left({0}\\right)"},
       rule="chain rule through atan", statement="d atan(a) = da/(1 + a^2)"),
    # hyperbolic
    Op("sinh", 1, K.numpy_pair(math.sinh, "sinh"), ("cosh({0})",),
       lambda E, a, o: (E.fn("cosh", a[0]),),
       rule="chain rule through sinh", statement="d sinh(a) = cosh(a)*da"),
    Op("cosh", 1, K.numpy_pair(math.cosh, "cosh"), ("sinh({0})",),
       lambda E, a, o: (E.fn("sinh", a[0]),),
       rule="chain rule through cosh", statement="d cosh(a) = sinh(a)*da"),
    Op("tanh", 1, K.numpy_pair(math.tanh, "tanh"), ("1.0 - {o} * {o}",),
       lambda E, a, o: (E.sub(_c(E, 1), E.power(o, _c(E, 2))),),
       rule="chain rule through tanh", statement="d tanh(a) = (1 - tanh(a)^2)*da"),
    # exponential and logarithms
    Op("exp", 1, (K.f_exp, "exp"), ("{o}",), lambda E, a, o: (o,),
       rule="chain rule through exp", statement="d exp(a) = exp(a)*da"),
    Op("log", 1, (K.f_log, "log"), ("1.0 / {0}",), lambda E, a, o: (E.div(_c(E, 1), a[0]),),
       rule="chain rule through log", statement="d log(a) = da/a"),
    Op("log2", 1, K.numpy_pair(math.log2, "log2"), (f"1.0 / ({{0}} * {LN2!r})",),
       lambda E, a, o: (E.div(_c(E, 1), E.mul(a[0], E.call("log", _c(E, 2)))),),
       prints={"sympy": "log({0}, 2)", "latex": "\\log_2\\left({0}\\right)"},
       rule="chain rule through log2", statement="d log2(a) = da/(a*log(2))"),
    Op("log10", 1, K.numpy_pair(math.log10, "log10"), (f"1.0 / ({{0}} * {LN10!r})",),
       lambda E, a, o: (E.div(_c(E, 1), E.mul(a[0], E.call("log", _c(E, 10)))),),
       prints={"sympy": "log({0}, 10)", "latex": "\\log_{10}\\left({0}\\right)"},
       rule="chain rule through log10", statement="d log10(a) = da/(a*log(10))"),
    # sqrt is exact in IEEE arithmetic: the math module's is numpy's; sqrt'(0) = +inf, and at
    # -0.0 too (sqrt(-0.0) is -0.0; adding 0.0 makes it +0.0)
    Op("sqrt", 1, (math.sqrt, "sqrt"), ("0.5 / ({o} + 0.0)",),
       lambda E, a, o: (E.div(_c(E, 0.5), o),),
       prints={"latex": "\\sqrt{{0}}"},
       rule="chain rule through sqrt", statement="d sqrt(a) = da/(2*sqrt(a))"),
    # log(1 + a), accurate for small a; domain a >= -1, log1p'(-1) = +inf, nan below -1
    Op("log1p", 1, K.numpy_pair(math.log1p, "log1p"), ("log1p_d({0})",),
       lambda E, a, o: (E.div(_c(E, 1), E.add(_c(E, 1), a[0])),),
       prints={"sympy": "log(1 + {0})", "latex": "\\log\\left(1 + {0}\\right)"},
       rule="chain rule through log1p", statement="d log1p(a) = da/(1 + a)"),
    # exp(a) - 1, accurate for small a
    Op("expm1", 1, K.numpy_pair(math.expm1, "expm1"), ("exp({0})",),
       lambda E, a, o: (E.fn("exp", a[0]),),
       prints={"sympy": "(exp({0}) - 1)", "latex": "\\left(e^{{0}} - 1\\right)"},
       rule="chain rule through expm1", statement="d expm1(a) = exp(a)*da"),
    # real cube root, defined for every a; cbrt'(0) = +inf
    Op("cbrt", 1, (K.f_cbrt, "cbrt"), ("1.0 / (3.0 * {o} * {o})",),
       lambda E, a, o: (E.div(_c(E, 1), E.mul(_c(E, 3), E.power(o, _c(E, 2)))),),
       prints={"sympy": "real_root({0}, 3)", "latex": "\\sqrt[3]{{0}}"},
       rule="chain rule through cbrt", statement="d cbrt(a) = da/(3*cbrt(a)^2)"),
    # error function, by scipy.special (loaded on first use)
    Op("erf", 1, K.scipy_pair("erf"), ("1.1283791670955126 * exp(-({0} * {0}))",),
       lambda E, a, o: (E.mul(_c(E, 2 / math.sqrt(math.pi)),
                              E.fn("exp", E.neg(E.power(a[0], _c(E, 2))))),),
       rule="chain rule through erf", statement="d erf(a) = 2/sqrt(pi)*exp(-a^2)*da"),
    # complementary error function 1 - erf(a), by scipy.special (loaded on first use)
    Op("erfc", 1, K.scipy_pair("erfc"), ("-1.1283791670955126 * exp(-({0} * {0}))",),
       lambda E, a, o: (E.mul(_c(E, -2 / math.sqrt(math.pi)),
                              E.fn("exp", E.neg(E.power(a[0], _c(E, 2))))),),
       rule="chain rule through erfc", statement="d erfc(a) = -2/sqrt(pi)*exp(-a^2)*da"),
    # atan2(y, x): the angle of the point (x, y); no derivative at the origin (nan there).
    # The partials x/(x^2 + y^2) are scaled (x^2 overflows at 1e155, underflows at 1e-155)
    Op("atan2", 2, K.numpy_pair(math.atan2, "arctan2", 2),
       ("over_sqnorm({1}, {0}, {1})", "-over_sqnorm({0}, {0}, {1})"),
       lambda E, a, o: (_over_norm2(E, a[1], a), E.neg(_over_norm2(E, a[0], a))),
       kink=lambda a: (a[0] == 0) & (a[1] == 0),
       convention="atan2 has no derivative at (0, 0): nan",
       rule="chain rule through atan2", statement="d atan2(a, b) = (b*da - a*db)/(a^2 + b^2)"),
    # hypot(x, y) = sqrt(x^2 + y^2) without overflow; a norm: kink at the origin
    Op("hypot", 2, (K.f_hypot, "hypot"), ("norm_d({0}, {1})", "norm_d({1}, {0})"),
       lambda E, a, o: (E.div(a[0], o), E.div(a[1], o)),
       kink=lambda a: (a[0] == 0) & (a[1] == 0),
       convention="hypot'(0, 0) = (0, 0) (minimum-norm subgradient)",
       prints={"sympy": "sqrt(({0})**2 + ({1})**2)",
               "latex": "\\sqrt{\\left({0}\\right)^2 + \\left({1}\\right)^2}"},
       rule="chain rule through hypot", statement="d hypot(a, b) = (a*da + b*db)/hypot(a, b)"),
    # piecewise and activations
    Op("abs", 1, (abs, "absolute"), ("sign({0})",), lambda E, a, o: (E.fn("sign", a[0]),),
       kink=lambda a: a[0] == 0, convention="abs'(0) = 0 (minimum-norm subgradient)",
       prints={"python": "abs({0})", "sympy": "Abs({0})", "latex": "\\left|{0}\\right|"},
       rule="chain rule through abs", statement="d abs(a) = sign(a)*da"),
    # logistic 1/(1+exp(-a)), stable for large |a|
    Op("sigmoid", 1, (K.f_sigmoid, "np_sigmoid"), ("{o} * (1.0 - {o})",),
       lambda E, a, o: (E.mul(o, E.sub(_c(E, 1), o)),),
       prints={"python": "(1/(1 + math.exp(-({0}))))",
               "sympy": "(1/(1 + exp(-({0}))))",
               "latex": "\\sigma\\left({0}\\right)"},
       rule="chain rule through sigmoid",
       statement="d sigmoid(a) = sigmoid(a)*(1 - sigmoid(a))*da"),
    Op("relu", 1, (K.f_relu, "np_relu"), ("step({0})",), lambda E, a, o: (E.fn("step", a[0]),),
       kink=lambda a: a[0] == 0, convention="relu'(0) = 0 (minimum-norm subgradient)",
       prints={"python": "max({0}, 0.0)",
               "sympy": "Max({0}, 0)",
               "latex": "\\max\\left({0}, 0\\right)"},
       rule="chain rule through relu", statement="d relu(a) = step(a)*da"),
    # log(1 + exp(a)), stable for large |a|
    Op("softplus", 1, (K.f_softplus, "np_softplus"), ("sigmoid({0})",),
       lambda E, a, o: (E.fn("sigmoid", a[0]),),
       prints={"python": "math.log1p(math.exp({0}))",
               "sympy": "log(1 + exp({0}))",
               "latex": "\\log\\left(1 + e^{{0}}\\right)"},
       rule="chain rule through softplus", statement="d softplus(a) = sigmoid(a)*da"),
    Op("min", 2, (K.f_min, "minimum"), ("tie({1}, {0})", "tie({0}, {1})"),
       lambda E, a, o: (_half_sign(E, a[0], a[1], -1.0), _half_sign(E, a[0], a[1], +1.0)),
       kink=lambda a: a[0] == a[1], convention="a tie splits the gradient evenly (0.5 each)",
       prints={"python": "min({0}, {1})",
               "sympy": "Min({0}, {1})",
               "latex": "\\min\\left({0}, {1}\\right)"},
       rule="selection (min)",
       statement="d min(a, b) = da where a < b, db where b < a, half each at a tie"),
    Op("max", 2, (K.f_max, "maximum"), ("tie({0}, {1})", "tie({1}, {0})"),
       lambda E, a, o: (_half_sign(E, a[0], a[1], +1.0), _half_sign(E, a[0], a[1], -1.0)),
       kink=lambda a: a[0] == a[1], convention="a tie splits the gradient evenly (0.5 each)",
       prints={"python": "max({0}, {1})",
               "sympy": "Max({0}, {1})",
               "latex": "\\max\\left({0}, {1}\\right)"},
       rule="selection (max)",
       statement="d max(a, b) = da where a > b, db where b > a, half each at a tie"),
    # derivatives of the piecewise functions, so symbolic derivatives stay in the language
    Op("sign", 1, (K.f_sign, "sign"), ("0.0",), lambda E, a, o: (_c(E, 0),),
       kink=lambda a: a[0] == 0, convention="sign'(0) = 0",
       prints={"python": "((({0}) > 0) - (({0}) < 0))",
               "sympy": "sign({0})",
               "latex": "\\operatorname{sign}\\left({0}\\right)"},
       rule="constant pieces (sign)", statement="d sign(a) = 0 (constant each side of 0)"),
    # 1 for a > 0, else 0 (step(0) = 0, the derivative of relu)
    Op("step", 1, (K.f_step, "np_step"), ("0.0",), lambda E, a, o: (_c(E, 0),),
       kink=lambda a: a[0] == 0, convention="step'(0) = 0",
       prints={"python": "float(({0}) > 0)",
               "sympy": "Heaviside({0}, 0)",
               "latex": "\\theta\\left({0}\\right)"},
       rule="constant pieces (step)", statement="d step(a) = 0 (constant each side of 0)"),
]

OPS: dict[str, Op] = {op.name: op for op in _TABLE}

#: The printing formats of ``adcli diff --format`` besides adcli's own language.
PRINT_FORMATS = ("python", "sympy", "latex")
_LATEX_NAMED = {"sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "log"}


def print_template(op: Op, fmt: str) -> str:
    """How ``op`` prints in ``fmt``: the entry's own ``prints`` template, else the default
    made from its name (``math.sin({0})``, ``sin({0})``, ``\\sin\\left({0}\\right)``) or, for
    an operator, its symbol (``{0} + {1}``)."""
    given = op.prints.get(fmt)
    if given is not None:
        return given
    slots = ", ".join(f"{{{i}}}" for i in range(op.arity))
    if op.form == "prefix":
        return f"{op.symbol}{{0}}"
    if op.form == "infix":
        return f"{{0}} {op.symbol} {{1}}" if op.prec == PREC_ADD else f"{{0}}{op.symbol}{{1}}"
    if fmt == "python":
        return f"math.{op.name}({slots})"
    if fmt == "latex":
        head = f"\\{op.name}" if op.name in _LATEX_NAMED else f"\\operatorname{{{op.name}}}"
        return f"{head}\\left({slots}\\right)"
    return f"{op.name}({slots})"

# Surface names callable as NAME(args). Infix ops are reachable only through syntax, except
# pow which is also a function.
FUNCTIONS: dict[str, Op] = {op.name: op for op in _TABLE if op.form == "call"}
FUNCTIONS["pow"] = OPS["pow"]

# Names that are constants unless the user binds them.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}  # numpy's np.pi, np.e

#: What the templates' names mean to the float engines (generated scalar code, the float
#: interpreter) and to the numpy engines: each op's kernel under its name, and the helpers.
FLOAT_NAMES: dict[str, Any] = {**{n: p[0] for n, p in K.HELPERS.items()},
                               **{op.name: op.kernel[0] for op in _TABLE},
                               "nan": K.NAN, "inf": K.INF}
_numpy_names: dict[str, Any] = {}


def numpy_names() -> dict[str, Any]:
    """:data:`NUMPY_NAMES`, built on first use (it imports numpy)."""
    if not _numpy_names:
        _numpy_names.update({**{n: K.numpy_kernel(p[1]) for n, p in K.HELPERS.items()},
                             **{op.name: op.fn for op in _TABLE},
                             "nan": K.NAN, "inf": K.INF})
    return _numpy_names


def __getattr__(name: str) -> Any:
    """``NUMPY_NAMES`` (the numpy flavour of :data:`FLOAT_NAMES`) is built when first
    imported or read: start-up without numpy."""
    if name == "NUMPY_NAMES":
        return numpy_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lazy_partials(op: Op) -> Callable:
    """``op.partials`` until first called: then compiles the real function and puts it in
    its place (start-up compiles no op's partials; a run uses a few ops)."""
    built: list[Callable] = []

    def build() -> Callable:
        if not built:
            built.append(partials_function(op.arity, op.partial, numpy_names()))
            object.__setattr__(op, "partials", built[0])
        return built[0]

    def first(args: tuple, o: Array) -> tuple:
        return build()(args, o)

    first.build = build  # type: ignore[attr-defined]
    return first


def partials_of(op: Op) -> Callable:
    """``op.partials`` compiled now, for code that keeps a reference to it (generated code
    binds it once: it must not call through the stub every time)."""
    fn = op.partials
    build = getattr(fn, "build", None)
    return build() if build is not None else fn


for _op in _TABLE:
    object.__setattr__(_op, "partials", _lazy_partials(_op))


#: Ops whose float kernel is the numpy kernel's result by construction (IEEE arithmetic, or
#: numpy's own computation), for :func:`apply` on plain floats.
_FLOAT_EXACT = frozenset(("add", "sub", "mul", "div", "neg", "pow", "sqrt", "abs"))


def apply(op: Op, args: tuple) -> Array:
    """Evaluate ``op`` with IEEE semantics (never raises on overflow or domain errors). Plain
    floats through an op of :data:`_FLOAT_EXACT` (constant folding of ``2*3``, ``1/2``) take
    the float kernel, the same bits without numpy; where it raises (``1/0``), numpy's."""
    if op.name in _FLOAT_EXACT and all(a.__class__ is float for a in args):
        try:
            return op.kernel[0](*args)
        except (ArithmeticError, ValueError):
            pass
    import numpy as np

    with np.errstate(all="ignore"):
        return op.fn(*args)


def const_key(value: float) -> float | bytes:
    """A dict key for a constant under which -0.0 and 0.0 differ and nan equals itself (so
    hash-consing never merges what evaluates differently): the float, or for 0 and nan its bits."""
    if value == value and value != 0.0:
        return value
    import struct  # here: only 0 and nan need it

    return struct.pack("<d", value)
