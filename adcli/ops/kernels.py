"""Kernels: the functions an op's templates may call, each as a (float, numpy) pair.

An op's evaluation and partials are written once, as templates over argument placeholders and
kernel names (see :mod:`adcli.ops`). Each engine binds the names to one flavour: the plain
interpreter and the column sweeps to the numpy kernel (scalars and arrays alike), the generated
scalar code and the float interpreter to the float kernel. The two flavours give the same bits,
including nan and signed zeros; where Python would raise instead of returning inf/nan (``1/0``,
``log(0)``, ``exp(1000)``) the float kernel raises (``ArithmeticError``/``ValueError``) and the
fast path falls back to the plain interpreter, so a non-finite result is always numpy's own.

numpy is not imported here: a pair names its numpy kernel (``"sin"``: ``numpy.sin``;
``"np_sigmoid"``: :mod:`adcli.ops.npkernels`), resolved by :func:`numpy_kernel` when an engine
first needs it, and the float kernels that are numpy's own computation load numpy on their first
call. The arithmetic, sin, cos, sqrt, the piecewise kernels and ``pow`` with exponent 0, 1 or 2
never do, so a command at a point of plain floats runs without numpy (start-up time).
"""

from __future__ import annotations

import math

try:  # the C module: operator.py around it costs start-up time (it is the same functions)
    import _operator as operator
except ImportError:  # pragma: no cover - another Python implementation
    import operator

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: (float kernel, numpy kernel): the numpy side a callable, or the name of one (see the
    #: module docstring), resolved by :func:`numpy_kernel`.
    Pair = tuple[Callable[..., Any], Callable[..., Any] | str]

NAN = float("nan")
INF = float("inf")


# --------------------------------------------------------------------------- numpy, by name


def numpy_kernel(ref: Callable | str) -> Callable:
    """The numpy kernel a pair names: ``"np_<name>"`` from :mod:`adcli.ops.npkernels`, any
    other name from numpy itself (imports numpy: call it only when numpy is needed)."""
    if not isinstance(ref, str):
        return ref
    if ref.startswith("np_"):
        from . import npkernels

        return getattr(npkernels, ref)
    import numpy

    return getattr(numpy, ref)


# --------------------------------------------------------------------------- float flavour


def exact1(math_fn: Callable, np_name: str) -> Callable[[float], float]:
    """numpy's own kernel on a float (numpy's SIMD exp/log/tanh/... differ from the C library
    in the last bit, and the interpreter runs numpy), after the math module has checked the
    domain: it raises exactly where numpy would return inf/nan, and the caller falls back.
    numpy is loaded on the first call that gets past the domain check."""
    np_fn: Callable | None = None

    def f(x: float) -> float:
        nonlocal np_fn
        math_fn(x)
        if np_fn is None:
            np_fn = numpy_kernel(np_name)
        return float(np_fn(x))
    return f


def exact2(math_fn: Callable, np_name: str) -> Callable[[float, float], float]:
    np_fn: Callable | None = None

    def f(x: float, y: float) -> float:
        nonlocal np_fn
        math_fn(x, y)
        if np_fn is None:
            np_fn = numpy_kernel(np_name)
        return float(np_fn(x, y))
    return f


f_exp = exact1(math.exp, "exp")
f_log = exact1(math.log, "log")
f_log1p = exact1(math.log1p, "log1p")
_np_power = exact2(math.pow, "power")
_np_hypot = exact2(math.hypot, "hypot")


def f_sigmoid(x: float) -> float:
    z = f_exp(-abs(x))
    return 1.0 / (1.0 + z) if x >= 0 else z / (1.0 + z)


def f_softplus(x: float) -> float:
    return (x if (x > 0.0 or x != x) else 0.0) + f_log1p(f_exp(-abs(x)))


def f_relu(x: float) -> float:
    return x if (x > 0.0 or x != x) else 0.0


def f_step(x: float) -> float:
    return 1.0 if x > 0.0 else (x if x != x else 0.0)


def f_sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (x if x != x else 0.0))


def f_max(a: float, b: float) -> float:
    return a if (a > b or a != a) else b


def f_min(a: float, b: float) -> float:
    return a if (a < b or a != a) else b


def f_tie(a: float, b: float) -> float:
    if a != a or b != b:
        return NAN
    return 1.0 if a > b else (0.5 if a == b else 0.0)


def f_pow(x: float, y: float) -> float:
    """numpy's power on floats; 0 to a negative power raises (math.pow gives inf for
    0^-inf, where numpy would warn of a division by zero). The exponents 2, 1 and 0 (x^2,
    the derivative of x^2) are computed here, exactly as numpy's power does (a test compares
    them over many points, signed zeros, inf and nan), so they need no numpy."""
    if x == 0.0 and y < 0.0:
        raise ZeroDivisionError("0 to a negative power")
    if y == 2.0:
        math.pow(x, y)  # overflow raises, as for every exponent
        return x * x
    if y == 1.0:
        return x
    if y == 0.0:
        return 1.0
    return _np_power(x, y)


def f_pow_dbase(a: float, b: float, out: float) -> float:
    return 0.0 if b == 0.0 else b * f_pow(a, b - 1.0)


def f_pow_dexp(a: float, b: float, out: float) -> float:
    if a > 0.0:
        return out * f_log(a)
    return 0.0 if (a == 0.0 and b > 0.0) else NAN


def f_div0(a: float, b: float) -> float:
    return 0.0 if b == 0.0 else a / b


def f_over_sqnorm(n: float, a: float, b: float) -> float:
    """n / (a^2 + b^2) (atan2's partials) without squaring a or b: both are divided by
    s = max(|a|, |b|) first, so at a = b = 1e200 (a^2 overflows) or 1e-170 (a^2 underflows)
    the result is the true 5e-201 or 5e169, within a few ulp. Raises at the origin (0/0),
    where numpy gives nan."""
    ab, bb = abs(a), abs(b)
    s = ab if ab >= bb else bb
    p, q = a / s, b / s
    return n / s / (p * p + q * q) / s


def f_norm_d(a: float, b: float) -> float:
    """d hypot(a, b) / da = a / hypot(a, b), scaled as :func:`f_over_sqnorm` so that it holds
    where hypot itself overflows; 0 at the origin (the minimum-norm subgradient)."""
    ab, bb = abs(a), abs(b)
    s = ab if ab >= bb else bb
    if s == 0.0:
        return 0.0
    p, q = a / s, b / s
    return p / math.sqrt(p * p + q * q)


def f_atan_d(a: float) -> float:
    """1 / (1 + a^2), as r / (a + r) with r = 1/a for |a| > 1: a^2 overflows from 1.4e154,
    where the result is a subnormal, not 0."""
    if abs(a) <= 1.0:
        return 1.0 / (1.0 + a * a)
    r = 1.0 / a
    return r / (a + r)


def f_log1p_d(a: float) -> float:
    """1 / (1 + a), and nan below -1, where log1p itself is nan (outside its domain)."""
    return NAN if a < -1.0 else 1.0 / (1.0 + a)


def f_hypot(x: float, y: float) -> float:
    """numpy's hypot; raises where it could overflow (numpy would warn), so the caller falls
    back to the interpreter."""
    if abs(x) > 8e307 or abs(y) > 8e307:
        raise OverflowError("hypot")
    return _np_hypot(x, y)


# --------------------------------------------------------------------------- pairs


def numpy_pair(math_fn: Callable, np_name: str, arity: int = 1) -> Pair:
    """A numpy ufunc (by name) with its float twin: the math module checks the domain, numpy
    computes."""
    return (exact1 if arity == 1 else exact2)(math_fn, np_name), np_name


def _everywhere(x: float) -> None:
    """The domain check of a function defined everywhere that never overflows: none."""


#: numpy's cbrt on a float (math.cbrt is new in 3.11 and its bits may differ); never raises.
f_cbrt = exact1(_everywhere, "cbrt")


class _SciPy:
    """``scipy.special.<name>``, imported on its first call: start-up never pays for scipy
    (``adcli --help`` must stay cheap), only a program that uses the function does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fn: Callable | None = None

    def __call__(self, *xs):
        fn = self.fn
        if fn is None:
            import scipy.special  # lazy on purpose: see the class docstring

            fn = self.fn = getattr(scipy.special, self.name)
        return fn(*xs)


def scipy_pair(name: str) -> Pair:
    """``scipy.special.<name>`` for arrays and for floats (the same kernel: the same bits; the
    special functions return inf/nan without raising or warning)."""
    array = _SciPy(name)
    return (lambda *xs: float(array(*xs))), array


#: Kernels that are no op of their own, for the templates of the ops that need them.
HELPERS: dict[str, Pair] = {
    "tie": (f_tie, "np_tie"),
    "pow_dbase": (f_pow_dbase, "np_pow_dbase"),
    "pow_dexp": (f_pow_dexp, "np_pow_dexp"),
    "div0": (f_div0, "np_div0"),
    "over_sqnorm": (f_over_sqnorm, "np_over_sqnorm"),
    "norm_d": (f_norm_d, "np_norm_d"),
    "log1p_d": (f_log1p_d, "np_log1p_d"),
    "atan_d": (f_atan_d, "np_atan_d"),
}

#: Kernels for the infix operators (their templates use Python's operators directly).
ADD: Pair = (operator.add, "add")
SUB: Pair = (operator.sub, "subtract")
MUL: Pair = (operator.mul, "multiply")
DIV: Pair = (operator.truediv, "true_divide")
NEG: Pair = (operator.neg, "negative")
