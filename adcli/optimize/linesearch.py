"""Line searches: backtracking (Armijo) and the strong Wolfe conditions, on any
``evaluate(x) -> (value, gradient)``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Evaluate = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass(slots=True)
class Step:
    """A rule's answer: the next point, with its value and gradient if the rule computed them
    (line searches do), or ``failed`` saying why no step could be taken."""

    x: np.ndarray
    value: float | None = None
    grad: np.ndarray | None = None
    failed: str = ""
    #: the step is the exact-Hessian model's own minimiser (a Newton step inside the trust
    #: region), so its length measures the distance to the stationary point.
    newton: bool = False



def armijo(evaluate: Evaluate, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray,
           c: float = 1e-4, shrink: float = 0.5, tries: int = 60) -> Step:
    """Backtracking from the full step until f(x + a*p) <= f + c*a*<g, p> (and is finite)."""
    slope = float(g @ p)
    a = 1.0
    for _ in range(tries):
        xn = x + a * p
        fn, gn = evaluate(xn)
        if math.isfinite(fn) and fn <= f + c * a * slope:
            return Step(xn, fn, gn)
        a *= shrink
    return Step(x, failed="backtracking found no point with sufficient decrease")


def wolfe(evaluate: Evaluate, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray,
          alpha0: float = 1.0, c1: float = 1e-4, c2: float = 0.9,
          max_evals: int = 30) -> Step | None:
    """A step length satisfying the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5
    and 3.6, with cubic interpolation in the zoom).  None if none was found."""
    try:
        return _wolfe(evaluate, x, f, g, p, alpha0, c1, c2, max_evals)
    except _MinusInfinity as found:  # -inf at a finite point: the objective is unbounded
        return found.step


class _MinusInfinity(Exception):
    def __init__(self, step: Step) -> None:
        super().__init__("-inf")
        self.step = step


def _wolfe(evaluate: Evaluate, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray,
           alpha0: float, c1: float, c2: float, max_evals: int) -> Step | None:
    slope0 = float(g @ p)
    evals = 0
    points: dict[float, Step] = {}

    def phi(a: float) -> tuple[float, float]:
        nonlocal evals
        evals += 1
        xa = x + a * p
        fa, ga = evaluate(xa)
        points[a] = Step(xa, fa, ga)
        if fa == -math.inf and np.all(np.isfinite(xa)):
            raise _MinusInfinity(points[a])
        da = float(ga @ p)
        if not (math.isfinite(fa) and math.isfinite(da)):
            return math.inf, math.nan
        return fa, da

    def armijo_ok(a: float, fa: float) -> bool:
        return fa <= f + c1 * a * slope0

    def zoom(lo, flo, dlo, hi, fhi, dhi) -> Step | None:
        while evals < max_evals:
            a = _cubic_min(lo, flo, dlo, hi, fhi, dhi)
            fa, da = phi(a)
            if not armijo_ok(a, fa) or fa >= flo:
                hi, fhi, dhi = a, fa, da
            else:
                if abs(da) <= -c2 * slope0:
                    return points[a]
                if da * (hi - lo) >= 0:
                    hi, fhi, dhi = lo, flo, dlo
                lo, flo, dlo = a, fa, da
            if abs(hi - lo) <= 1e-16 * max(1.0, abs(lo)):
                break
        return points[lo] if lo > 0 else None  # sufficient decrease without curvature

    a_prev, f_prev, d_prev = 0.0, f, slope0
    a = alpha0
    while evals < max_evals:
        fa, da = phi(a)
        if not armijo_ok(a, fa) or (a_prev > 0 and fa >= f_prev):
            return zoom(a_prev, f_prev, d_prev, a, fa, da)
        if abs(da) <= -c2 * slope0:
            return points[a]
        if da >= 0:
            return zoom(a, fa, da, a_prev, f_prev, d_prev)
        a_prev, f_prev, d_prev = a, fa, da
        a *= 2.0
    return points[a_prev] if a_prev > 0 else None


def _cubic_min(lo: float, flo: float, dlo: float, hi: float, fhi: float, dhi: float) -> float:
    """Minimiser of the cubic through both ends (values and slopes), kept inside the middle 80%
    of the interval; bisection when the cubic is unusable (e.g. an infinite value)."""
    left, right = min(lo, hi), max(lo, hi)
    margin = 0.1 * (right - left)
    mid = 0.5 * (lo + hi)
    if not all(math.isfinite(v) for v in (flo, dlo, fhi, dhi)) or hi == lo:
        return mid
    d1 = dlo + dhi - 3.0 * (flo - fhi) / (lo - hi)
    disc = d1 * d1 - dlo * dhi
    if disc < 0:
        return mid
    d2 = math.copysign(math.sqrt(disc), hi - lo)
    denom = dhi - dlo + 2.0 * d2
    if denom == 0:
        return mid
    a = hi - (hi - lo) * (dhi + d2 - d1) / denom
    if not (left + margin <= a <= right - margin):
        return mid
    return a

