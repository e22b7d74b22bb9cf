"""Kernels: the functions an op's templates may call, each as a (float, numpy) pair.

An op's evaluation and partials are written once, as templates over argument placeholders and
kernel names (see :mod:`adcli.ops`). Each engine binds the names to one flavour: the plain
interpreter and the column sweeps to the numpy kernel (scalars and arrays alike), the generated
scalar code and the float interpreter to the float kernel. The two flavours give the same bits,
including nan and signed zeros; where Python would raise instead of returning inf/nan (``1/0``,
``log(0)``, ``exp(1000)``) the float kernel raises (``ArithmeticError``/``ValueError``) and the
fast path falls back to the plain interpreter, so a non-finite result is always numpy's own.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

Pair = tuple[Callable[..., Any], Callable[..., Any]]  # (float kernel, numpy kernel)

NAN = float("nan")
INF = float("inf")


# --------------------------------------------------------------------------- numpy flavour


def where(cond, a, b):
    """np.where that keeps float64 scalars scalar."""
    out = np.where(cond, a, b)
    return out[()] if out.ndim == 0 else out


def np_sigmoid(x):
    """1/(1+exp(-x)) without overflow for large |x|."""
    z = np.exp(-np.abs(x))
    return where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def np_softplus(x):
    """log(1+exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact for large |x|."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def np_relu(x):
    return np.maximum(x, 0.0)


def np_step(x):
    """Heaviside step with step(0) = 0: relu's derivative under the minimum-norm convention."""
    return where(x > 0, 1.0, where(np.isnan(x), np.nan, 0.0))


def np_tie(a, b):
    """d max(a, b)/da: 1 where a wins, 0.5 at a tie, 0 where b wins (nan if either is nan)."""
    d = where(a > b, 1.0, where(a == b, 0.5, 0.0))
    return where(np.isnan(a) | np.isnan(b), np.nan, d)


def np_pow_dbase(a, b, out):
    """b * a^(b-1); exactly 0 where b == 0 (x^0 is constant), never 0 * inf."""
    return where(b == 0, 0.0, b * np.power(a, b - 1.0))


def np_pow_dexp(a, b, out):
    """x^y * log(x) for x > 0; 0 at x = 0 with y > 0; nan otherwise. Never log(abs(x))."""
    safe_log = np.log(where(a > 0, a, 1.0))
    return where(a > 0, out * safe_log, where((a == 0) & (b > 0), 0.0, np.nan))


def np_div0(a, b):
    """a / b, but 0 where b == 0: the minimum-norm subgradient of a norm at its kink."""
    return where(b == 0, 0.0, a / where(b == 0, 1.0, b))


# --------------------------------------------------------------------------- float flavour


def exact1(math_fn: Callable, np_fn: Callable) -> Callable[[float], float]:
    """numpy's own kernel on a float (numpy's SIMD exp/log/tanh/... differ from the C library
    in the last bit, and the interpreter runs numpy), after the math module has checked the
    domain: it raises exactly where numpy would return inf/nan, and the caller falls back."""
    def f(x: float) -> float:
        math_fn(x)
        return float(np_fn(x))
    return f


def exact2(math_fn: Callable, np_fn: Callable) -> Callable[[float, float], float]:
    def f(x: float, y: float) -> float:
        math_fn(x, y)
        return float(np_fn(x, y))
    return f


f_exp = exact1(math.exp, np.exp)
f_log = exact1(math.log, np.log)
f_log1p = exact1(math.log1p, np.log1p)


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
    0^-inf, where numpy would warn of a division by zero)."""
    if x == 0.0 and y < 0.0:
        raise ZeroDivisionError("0 to a negative power")
    math.pow(x, y)
    return float(np.power(x, y))


def f_pow_dbase(a: float, b: float, out: float) -> float:
    return 0.0 if b == 0.0 else b * f_pow(a, b - 1.0)


def f_pow_dexp(a: float, b: float, out: float) -> float:
    if a > 0.0:
        return out * f_log(a)
    return 0.0 if (a == 0.0 and b > 0.0) else NAN


def f_div0(a: float, b: float) -> float:
    return 0.0 if b == 0.0 else a / b


def f_hypot(x: float, y: float) -> float:
    """numpy's hypot; raises where it could overflow (numpy would warn), so the caller falls
    back to the interpreter."""
    if abs(x) > 8e307 or abs(y) > 8e307:
        raise OverflowError("hypot")
    return float(np.hypot(x, y))


# --------------------------------------------------------------------------- pairs


def numpy_pair(math_fn: Callable, np_fn: Callable, arity: int = 1) -> Pair:
    """A numpy ufunc with its float twin: the math module checks the domain, numpy computes."""
    return (exact1 if arity == 1 else exact2)(math_fn, np_fn), np_fn


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
    "tie": (f_tie, np_tie),
    "pow_dbase": (f_pow_dbase, np_pow_dbase),
    "pow_dexp": (f_pow_dexp, np_pow_dexp),
    "div0": (f_div0, np_div0),
}

#: Kernels for the infix operators (their templates use Python's operators directly).
ADD: Pair = (operator.add, np.add)
SUB: Pair = (operator.sub, np.subtract)
MUL: Pair = (operator.mul, np.multiply)
DIV: Pair = (operator.truediv, np.true_divide)
NEG: Pair = (operator.neg, np.negative)
