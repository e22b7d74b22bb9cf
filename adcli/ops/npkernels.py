"""The numpy flavour of the kernels that are no numpy ufunc of their own (see
:mod:`adcli.ops.kernels`): imported the first time an engine needs a numpy kernel, so a
command at a point of plain floats (``adcli grad "x^2" --at x=3``) never loads numpy."""

from __future__ import annotations

import numpy as np


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


def np_over_sqnorm(n, a, b):
    """n / (a^2 + b^2) scaled by max(|a|, |b|): the float kernel's operations, elementwise."""
    s = np.maximum(np.abs(a), np.abs(b))
    p, q = a / s, b / s
    return n / s / (p * p + q * q) / s


def np_norm_d(a, b):
    """a / hypot(a, b) scaled by max(|a|, |b|); 0 at the origin (minimum-norm subgradient)."""
    s = np.maximum(np.abs(a), np.abs(b))
    safe = where(s == 0, 1.0, s)
    p, q = a / safe, b / safe
    return where(s == 0, 0.0, p / np.sqrt(p * p + q * q))


def np_log1p_d(a):
    """1 / (1 + a); nan below -1, where log1p is nan."""
    return where(a < -1.0, np.nan, 1.0 / (1.0 + a))


def np_atan_d(a):
    """1 / (1 + a^2); r / (a + r) with r = 1/a where |a| > 1 (the float kernel's operations)."""
    small = np.abs(a) <= 1.0
    r = 1.0 / where(small, 1.0, a)
    return where(small, 1.0 / (1.0 + a * a), r / (a + r))
