"""What a run's end point is: is the gradient rounding noise, is a converged point a minimum,
and the exit status of a run (pure numpy; the driver calls them)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, AdcliError
from ..results import INTERRUPTED, MAX_STEPS, MinimizeResult, norm
from .bounded import PROJECTED
from .linesearch import Evaluate

_EPS = float(np.finfo(np.float64).eps)
#: at a converged point with an affordable Hessian, bfgs, lbfgs and newton look this far
#: (relative to max(|x|_inf, 1)) along the lowest-curvature direction for a lower value, at
#: most ESCAPES times a run (see escape).
ESCAPE_STEP = 1e-3
ESCAPES = 3
#: the second-order check at a converged point computes the Hessian (n sweeps over the
#: gradient tapes) only up to this many parameters ...
CHECK_HESSIAN_MAX_PARAMS = 100  # DENSE_LIMIT of the driver: where auto leaves dense BFGS
#: ... and this many parameters x tape nodes x data rows (a cheap check, not a second run).
CHECK_HESSIAN_MAX_WORK = 50_000_000
#: the rounding probe moves x this many units in the last place (of max(|x_i|, 1)) ...
PROBE_ULPS = 16
#: ... on tapes without these ops, whose gradients jump at a kink (not rounding noise).
KINKS = frozenset({"abs", "hypot", "max", "min", "relu", "sign", "step"})


def rounding_level(x: np.ndarray, g: np.ndarray, evaluate: Evaluate,
                   project: Callable[[np.ndarray], np.ndarray],
                   pgrad: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float | None:
    """Is the gradient ``g`` at ``x`` rounding noise (or its root within a few ulps)?  The
    smaller relative change of g when each x_i moves :data:`PROBE_ULPS` units in the last
    place of max(|x_i|, 1) against g_i and along it, if half g's size or more both ways (both:
    one side alone could be a kink); else None.  Scale-free in f, and local: a far start
    cannot loosen it.  ``project``/``pgrad``: the bounds' projection and projected gradient."""
    step = PROBE_ULPS * np.spacing(np.maximum(np.abs(x), 1.0))  # typx = 1, as the driver's
    changes = []
    for sign in (-1.0, 1.0):
        xp = project(x + sign * np.sign(g) * step)
        if np.array_equal(xp, x):
            return None
        fp, gp = evaluate(xp)
        if not math.isfinite(fp):  # off the domain (log(x) near 0): no evidence
            return None
        changes.append(norm(pgrad(xp, np.asarray(gp, dtype=np.float64)) - g) / norm(g))
    change = min(changes)
    return change if math.isfinite(change) and change >= 0.5 else None


def exit_status(result: MinimizeResult) -> int:
    """The command's exit status for a run, the same in every command: 0 when it converged,
    and for a fixed-step method (gd, momentum, nesterov, adam) that ran its --steps (a
    completed run, still ``"converged": false``); 130 when interrupted; 1 for every other
    outcome (no-progress, max-steps of a method that stops by itself, time-limit, diverged,
    unbounded)."""
    if result.converged:
        return EXIT_OK
    if result.reason == INTERRUPTED:
        return EXIT_INTERRUPTED
    if result.reason == MAX_STEPS and result.method in PROJECTED:
        return EXIT_OK
    return EXIT_FAILED


def escape(curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None, x: np.ndarray,
            f: float, g: np.ndarray, evaluate: Evaluate) -> np.ndarray | None:
    """A converged point need not be a minimum where the Hessian is singular (x^3 at 0 has
    g = 0 and H = 0; Newton creeps there with H > 0 all the way).  Look a distance
    :data:`ESCAPE_STEP` * max(|x|_inf, 1) both ways along the eigenvector of the smallest
    Hessian eigenvalue: a value lower by more than rounding is returned as the point to go on
    from.  Two evaluations, only where the Hessian is affordable (as the second-order check),
    and only where it is singular or positive semi-definite: not where g = 0 exactly with a
    positive definite Hessian (a strict local minimum), nor where it has a clearly negative
    eigenvalue (the warning of :func:`second_order_warnings` names the maximum or saddle)."""
    if curvature is None:
        return None
    lam, Q, _ = curvature
    if lam[0] > 0 and not np.any(g):
        return None
    if lam[0] < -1e-8 * max(1.0, float(np.max(np.abs(lam)))):
        return None  # a maximum or saddle: second_order_warnings says so
    h = ESCAPE_STEP * max(float(np.max(np.abs(x))), 1.0)
    for sign in (1.0, -1.0):
        xp = x + sign * h * Q[:, 0]
        fp, _ = evaluate(xp)
        if fp < f - 4.0 * _EPS * abs(f):
            return xp
    return None


def hessian_eigen(problem: Any, x: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The exact Hessian's eigenvalues and eigenvectors at ``x`` (and ``x``), or None where
    there is no Hessian, it is too big to afford (a check, not a second run), or not finite."""
    hessian = getattr(problem, "hessian", None)
    tape = getattr(problem, "tape", None)
    n = len(x)
    if hessian is None or n == 0 or n > CHECK_HESSIAN_MAX_PARAMS:
        return None
    rows = int(getattr(problem, "rows", 1))
    if tape is not None and n * len(tape) * max(1, rows) > CHECK_HESSIAN_MAX_WORK:
        return None
    try:
        H = np.asarray(hessian(x), dtype=np.float64)
    except AdcliError:
        return None
    if not np.all(np.isfinite(H)):
        return None
    lam, Q = np.linalg.eigh(0.5 * (H + H.T))
    return lam, Q, x.copy()


def second_order_warnings(problem: Any, x: np.ndarray, free: np.ndarray | None = None,
                          curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                          ) -> list[str]:
    """A zero gradient is also where maxima and saddles are (BFGS started at the top of -x^2
    "converges" at once): at a converged point, say so when the exact Hessian has a negative
    eigenvalue. Skipped for problems without a Hessian or too large to afford one.  ``free``
    (a mask) restricts the test to the parameters not at an active bound: along a bound the
    curvature says nothing (-x^2 on [1, 2] has its minimum at 2).  ``curvature``: the
    Hessian's eigendecomposition at ``x`` if already taken (:func:`hessian_eigen`)."""
    if free is None:
        curvature = curvature or hessian_eigen(problem, x)
        if curvature is None:
            return []
        ev = curvature[0]
    else:
        hessian = getattr(problem, "hessian", None)
        tape = getattr(problem, "tape", None)
        n = len(x)
        if hessian is None or n == 0 or n > CHECK_HESSIAN_MAX_PARAMS:
            return []
        rows = int(getattr(problem, "rows", 1))
        if tape is not None and n * len(tape) * max(1, rows) > CHECK_HESSIAN_MAX_WORK:
            return []
        try:
            H = np.asarray(hessian(x), dtype=np.float64)
        except AdcliError:
            return []
        H = H[np.ix_(free, free)]
        if H.size == 0 or not np.all(np.isfinite(H)):
            return []
        ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    if ev[0] >= -1e-8 * max(1.0, float(np.max(np.abs(ev)))):
        return []
    kind = ("a maximum" if ev[-1] < 0 else "a saddle point" if ev[-1] > 0
            else "a maximum or a saddle point")
    return [f"the Hessian at this point is not positive definite (smallest eigenvalue "
            f"{ev[0]:.6g}): the gradient is zero but the point is {kind}, not a minimum"]

