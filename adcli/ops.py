"""The op table: every primitive adcli knows, defined once.

Each :class:`Op` holds what every layer needs to know about a primitive: how it is spelled and
printed, how to evaluate it (numpy ufuncs, so the same code runs on float64 scalars and on
columns of data), and its local partial derivatives ``partials(args, out)``.  Reverse mode
multiplies an adjoint by these partials, forward mode multiplies tangents by them, so there is
one copy of each derivative rule.  ``derivative`` builds the same partials as expression trees
for symbolic differentiation (filled in by :mod:`adcli.symbolic`).

Conventions at non-differentiable points follow PyTorch's written policy: the gradient where it
exists, else the minimum-norm subgradient (abs'(0) = 0, relu'(0) = 0), ties of ``max``/``min``
split the gradient evenly, sqrt'(0) = +inf, and where a function is undefined the partial is nan.
All evaluation runs under ``np.errstate(all="ignore")`` by the callers: IEEE inf/nan propagate,
nothing raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import syntax as S

Array = Any  # a float64 scalar or a numpy array of float64

# Printing precedence, loosest to tightest; tested against the grammar.
PREC_ADD = 10
PREC_MUL = 20
PREC_UNARY = 30
PREC_POW = 40
PREC_ATOM = 100

LN2 = float(np.log(2.0))
LN10 = float(np.log(10.0))


@dataclass(frozen=True, slots=True)
class Op:
    """One primitive. ``partials(args, out)`` returns d out / d arg_i for each argument."""

    name: str
    arity: int
    fn: Callable[..., Array]
    partials: Callable[[tuple, Array], tuple]
    symbol: str = ""  # surface spelling: "+", "sin"
    form: str = "call"  # "infix", "prefix" or "call"
    prec: int = PREC_ATOM
    assoc: str = "none"  # "left", "right" or "none"
    doc: str = ""
    kink: Callable[[tuple], Array] | None = None  # True where the point sits on a kink
    convention: str = ""  # what the partials do at the kink
    derivative: Callable[..., tuple] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.symbol:
            object.__setattr__(self, "symbol", self.name)

    def __repr__(self) -> str:
        return f"Op({self.name})"


# --------------------------------------------------------------------------- numeric helpers
# Custom kernels for the few functions that need care; all accept scalars and arrays.


def _where(cond, a, b):
    """np.where that keeps float64 scalars scalar."""
    out = np.where(cond, a, b)
    return out[()] if out.ndim == 0 else out


def sigmoid(x):
    """1/(1+exp(-x)) without overflow for large |x|."""
    z = np.exp(-np.abs(x))
    return _where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def softplus(x):
    """log(1+exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact for large |x|."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def relu(x):
    return np.maximum(x, 0.0)


def _pow_dbase(a, b, out):
    # b * a^(b-1); the b == 0 case is exactly 0 (x^0 is constant), never 0 * inf.
    return _where(b == 0, 0.0, b * np.power(a, b - 1.0))


def _pow_dexp(a, b, out):
    # x^y * log(x) for x > 0; 0 at x = 0 with y > 0; nan otherwise. Never log(abs(x)).
    safe_log = np.log(_where(a > 0, a, 1.0))
    return _where(a > 0, out * safe_log, _where((a == 0) & (b > 0), 0.0, np.nan))


def _tie_split(a, b):
    """d max(a, b)/da: 1 where a wins, 0.5 at a tie, 0 where b wins (nan if either is nan)."""
    d = _where(a > b, 1.0, _where(a == b, 0.5, 0.0))
    return _where(np.isnan(a) | np.isnan(b), np.nan, d)


def _step(x):
    """Heaviside step with step(0) = 0: relu's derivative under the minimum-norm convention."""
    return _where(x > 0, 1.0, _where(np.isnan(x), np.nan, 0.0))


# --------------------------------------------------------------------------- the table

_TABLE: list[Op] = [
    # arithmetic
    Op("add", 2, np.add, lambda a, out: (1.0, 1.0), "+", "infix", PREC_ADD, "left",
       doc="a + b"),
    Op("sub", 2, np.subtract, lambda a, out: (1.0, -1.0), "-", "infix", PREC_ADD, "left",
       doc="a - b"),
    Op("mul", 2, np.multiply, lambda a, out: (a[1], a[0]), "*", "infix", PREC_MUL, "left",
       doc="a * b"),
    Op("div", 2, np.true_divide, lambda a, out: (1.0 / a[1], -out / a[1]), "/", "infix",
       PREC_MUL, "left", doc="a / b"),
    Op("neg", 1, np.negative, lambda a, out: (-1.0,), "-", "prefix", PREC_UNARY, "none",
       doc="-a"),
    Op("pow", 2, np.power,
       lambda a, out: (_pow_dbase(a[0], a[1], out), _pow_dexp(a[0], a[1], out)),
       "^", "infix", PREC_POW, "right",
       doc="a ^ b (also a ** b and pow(a, b)); d/db is nan for a < 0, 0 at a = 0 with b > 0"),
    # trigonometric
    Op("sin", 1, np.sin, lambda a, out: (np.cos(a[0]),), doc="sine"),
    Op("cos", 1, np.cos, lambda a, out: (-np.sin(a[0]),), doc="cosine"),
    Op("tan", 1, np.tan, lambda a, out: (1.0 + out * out,), doc="tangent"),
    Op("asin", 1, np.arcsin, lambda a, out: (1.0 / np.sqrt(1.0 - a[0] * a[0]),),
       doc="inverse sine, domain [-1, 1]"),
    Op("acos", 1, np.arccos, lambda a, out: (-1.0 / np.sqrt(1.0 - a[0] * a[0]),),
       doc="inverse cosine, domain [-1, 1]"),
    Op("atan", 1, np.arctan, lambda a, out: (1.0 / (1.0 + a[0] * a[0]),), doc="inverse tangent"),
    # hyperbolic
    Op("sinh", 1, np.sinh, lambda a, out: (np.cosh(a[0]),), doc="hyperbolic sine"),
    Op("cosh", 1, np.cosh, lambda a, out: (np.sinh(a[0]),), doc="hyperbolic cosine"),
    Op("tanh", 1, np.tanh, lambda a, out: (1.0 - out * out,), doc="hyperbolic tangent"),
    # exponential and logarithms
    Op("exp", 1, np.exp, lambda a, out: (out,), doc="e^a"),
    Op("log", 1, np.log, lambda a, out: (1.0 / a[0],), doc="natural logarithm"),
    Op("log2", 1, np.log2, lambda a, out: (1.0 / (a[0] * LN2),), doc="base-2 logarithm"),
    Op("log10", 1, np.log10, lambda a, out: (1.0 / (a[0] * LN10),), doc="base-10 logarithm"),
    Op("sqrt", 1, np.sqrt, lambda a, out: (0.5 / out,), doc="square root; sqrt'(0) = +inf"),
    # piecewise and activations
    Op("abs", 1, np.abs, lambda a, out: (np.sign(a[0]),), doc="absolute value",
       kink=lambda a: a[0] == 0, convention="abs'(0) = 0 (minimum-norm subgradient)"),
    Op("sigmoid", 1, sigmoid, lambda a, out: (out * (1.0 - out),),
       doc="logistic 1/(1+exp(-a)), stable for large |a|"),
    Op("relu", 1, relu, lambda a, out: (_step(a[0]),),
       doc="max(a, 0)", kink=lambda a: a[0] == 0,
       convention="relu'(0) = 0 (minimum-norm subgradient)"),
    Op("softplus", 1, softplus, lambda a, out: (sigmoid(a[0]),),
       doc="log(1 + exp(a)), stable for large |a|"),
    Op("min", 2, np.minimum, lambda a, out: (_tie_split(a[1], a[0]), _tie_split(a[0], a[1])),
       doc="smaller of a and b", kink=lambda a: a[0] == a[1],
       convention="a tie splits the gradient evenly (0.5 each)"),
    Op("max", 2, np.maximum, lambda a, out: (_tie_split(a[0], a[1]), _tie_split(a[1], a[0])),
       doc="larger of a and b", kink=lambda a: a[0] == a[1],
       convention="a tie splits the gradient evenly (0.5 each)"),
    # derivatives of the piecewise functions, so symbolic derivatives stay in the language
    Op("sign", 1, np.sign, lambda a, out: (0.0,), doc="-1, 0 or 1; derivative 0 (also at 0)",
       kink=lambda a: a[0] == 0, convention="sign'(0) = 0"),
    Op("step", 1, _step,
       lambda a, out: (0.0,), doc="1 for a > 0, else 0 (step(0) = 0, the derivative of relu)",
       kink=lambda a: a[0] == 0, convention="step'(0) = 0"),
]

OPS: dict[str, Op] = {op.name: op for op in _TABLE}

# Surface names callable as NAME(args). Infix ops are reachable only through syntax, except
# pow which is also a function.
FUNCTIONS: dict[str, Op] = {op.name: op for op in _TABLE if op.form == "call"}
FUNCTIONS["pow"] = OPS["pow"]

# Names that are constants unless the user binds them.
CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}


def _c(v: float):
    return S.const(v)


def _half_sign(a, b, sgn: float):
    """0.5 * (1 + sgn*sign(a - b)): the tie-splitting derivative of max/min as an expression."""
    s = S.fn("sign", S.sub(a, b))
    return S.mul(_c(0.5), S.add(_c(1.0), s) if sgn > 0 else S.sub(_c(1.0), s))


# Symbolic partials: the same rules as `partials`, as expression trees (for `adcli diff`, and
# for exact Hessians by differentiating the derivative). Each takes (args, out) as Nodes.
_DERIVATIVES: dict[str, Callable[[tuple, Any], tuple]] = {
    "add": lambda a, out: (_c(1), _c(1)),
    "sub": lambda a, out: (_c(1), _c(-1)),
    "mul": lambda a, out: (a[1], a[0]),
    "div": lambda a, out: (S.div(_c(1), a[1]), S.neg(S.div(out, a[1]))),
    "neg": lambda a, out: (_c(-1),),
    "pow": lambda a, out: (S.mul(a[1], S.power(a[0], S.sub(a[1], _c(1)))),
                           S.mul(out, S.fn("log", a[0]))),
    "sin": lambda a, out: (S.fn("cos", a[0]),),
    "cos": lambda a, out: (S.neg(S.fn("sin", a[0])),),
    "tan": lambda a, out: (S.add(_c(1), S.power(out, _c(2))),),
    "asin": lambda a, out: (S.div(_c(1), S.fn("sqrt", S.sub(_c(1), S.power(a[0], _c(2))))),),
    "acos": lambda a, out: (S.neg(S.div(_c(1), S.fn("sqrt", S.sub(_c(1), S.power(a[0], _c(2)))))),),
    "atan": lambda a, out: (S.div(_c(1), S.add(_c(1), S.power(a[0], _c(2)))),),
    "sinh": lambda a, out: (S.fn("cosh", a[0]),),
    "cosh": lambda a, out: (S.fn("sinh", a[0]),),
    "tanh": lambda a, out: (S.sub(_c(1), S.power(out, _c(2))),),
    "exp": lambda a, out: (out,),
    "log": lambda a, out: (S.div(_c(1), a[0]),),
    "log2": lambda a, out: (S.div(_c(1), S.mul(a[0], S.call("log", _c(2)))),),
    "log10": lambda a, out: (S.div(_c(1), S.mul(a[0], S.call("log", _c(10)))),),
    "sqrt": lambda a, out: (S.div(_c(0.5), out),),
    "abs": lambda a, out: (S.fn("sign", a[0]),),
    "sigmoid": lambda a, out: (S.mul(out, S.sub(_c(1), out)),),
    "relu": lambda a, out: (S.fn("step", a[0]),),
    "softplus": lambda a, out: (S.fn("sigmoid", a[0]),),
    "min": lambda a, out: (_half_sign(a[0], a[1], -1.0), _half_sign(a[0], a[1], +1.0)),
    "max": lambda a, out: (_half_sign(a[0], a[1], +1.0), _half_sign(a[0], a[1], -1.0)),
    "sign": lambda a, out: (_c(0),),
    "step": lambda a, out: (_c(0),),
}
for _op in _TABLE:
    object.__setattr__(_op, "derivative", _DERIVATIVES[_op.name])


def apply(op: Op, args: tuple) -> Array:
    """Evaluate ``op`` with IEEE semantics (never raises on overflow or domain errors)."""
    with np.errstate(all="ignore"):
        return op.fn(*args)


# Scalar code templates for the compiled fast path (adcli.compile): each op's value and local
# partials as Python expressions over {0}, {1} (argument names) and {o} (the op's output), using
# only the helper names adcli.compile supplies (math functions on Python floats, and small
# helpers mirroring the kernels above). They compute the same numbers as ``fn``/``partials``;
# the compiled code falls back to the numpy interpreter whenever Python raises instead of
# returning inf/nan (division by zero, math domain or overflow errors).
SCALAR_CODE: dict[str, tuple[str, tuple[str, ...]]] = {
    "add": ("{0} + {1}", ("1.0", "1.0")),
    "sub": ("{0} - {1}", ("1.0", "-1.0")),
    "mul": ("{0} * {1}", ("{1}", "{0}")),
    "div": ("{0} / {1}", ("1.0 / {1}", "-{o} / {1}")),
    "neg": ("-{0}", ("-1.0",)),
    "pow": ("pow({0}, {1})", ("(0.0 if {1} == 0.0 else {1} * pow({0}, {1} - 1.0))",
                              "pow_dexp({0}, {1}, {o})")),
    "sin": ("sin({0})", ("cos({0})",)),
    "cos": ("cos({0})", ("-sin({0})",)),
    "tan": ("tan({0})", ("1.0 + {o} * {o}",)),
    "asin": ("asin({0})", ("1.0 / sqrt(1.0 - {0} * {0})",)),
    "acos": ("acos({0})", ("-1.0 / sqrt(1.0 - {0} * {0})",)),
    "atan": ("atan({0})", ("1.0 / (1.0 + {0} * {0})",)),
    "sinh": ("sinh({0})", ("cosh({0})",)),
    "cosh": ("cosh({0})", ("sinh({0})",)),
    "tanh": ("tanh({0})", ("1.0 - {o} * {o}",)),
    "exp": ("exp({0})", ("{o}",)),
    "log": ("log({0})", ("1.0 / {0}",)),
    "log2": ("log2({0})", ("1.0 / ({0} * LN2)",)),
    "log10": ("log10({0})", ("1.0 / ({0} * LN10)",)),
    "sqrt": ("sqrt({0})", ("0.5 / {o}",)),
    "abs": ("abs({0})", ("sign({0})",)),
    "sigmoid": ("sigmoid({0})", ("{o} * (1.0 - {o})",)),
    "relu": ("relu({0})", ("step({0})",)),
    "softplus": ("softplus({0})", ("sigmoid({0})",)),
    "min": ("fmin({0}, {1})", ("tie({1}, {0})", "tie({0}, {1})")),
    "max": ("fmax({0}, {1})", ("tie({0}, {1})", "tie({1}, {0})")),
    "sign": ("sign({0})", ("0.0",)),
    "step": ("step({0})", ("0.0",)),
}
