"""What a run's end point is: is the gradient rounding noise, is a converged point a minimum,
and the exit status of a run (pure numpy; the driver calls them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, AdcliError
from ..results import INTERRUPTED, MAX_STEPS, MinimizeResult, norm
from .bounded import PROJECTED, at_bounds
from .linesearch import Evaluate

_EPS = float(np.finfo(np.float64).eps)
#: at a converged point with an affordable Hessian, bfgs, lbfgs and newton look this far
#: (relative to max(|x|_inf, 1)) along the lowest-curvature direction for a lower value, at
#: most ESCAPES times a run (see escape).
ESCAPE_STEP = 1e-3
ESCAPES = 3
#: ... along negative curvature, at most this many looks, each 4x shorter than the last.
ESCAPE_LOOKS = 30
#: the second-order check at a converged point computes the Hessian (n sweeps over the
#: gradient tapes) only up to this many parameters ...
CHECK_HESSIAN_MAX_PARAMS = 100  # DENSE_LIMIT of the driver: where auto leaves dense BFGS
#: ... and this many parameters x tape nodes x data rows (a cheap check, not a second run).
CHECK_HESSIAN_MAX_WORK = 50_000_000
#: the rounding probe moves x this many units in the last place (of max(|x_i|, 1)) ...
PROBE_ULPS = 16
#: ... and, where the Hessian is affordable, the Newton step stays within this relative size
#: (eps^(1/3): noise over curvature, with room for condition numbers up to about 1e10).
NEWTON_NOISE = _EPS ** (1.0 / 3.0)
#: ... on tapes without these ops, whose gradients jump at a kink (not rounding noise).
KINKS = frozenset({"abs", "hypot", "max", "min", "relu", "sign", "step"})
#: ... and of those, the ops whose values jump: the gradient does not see a lower value just
#: across (step(x) + x^2 from x = 2: gd creeps to x = 1e-11 at f = 1 beside f(0) = 0).
JUMPS = frozenset({"sign", "step"})


def rounding_level(x: np.ndarray, g: np.ndarray, evaluate: Evaluate,
                   project: Callable[[np.ndarray], np.ndarray],
                   pgrad: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   curvature: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray] | None]
                   | None = None) -> tuple[float, float] | None:
    """Is the gradient ``g`` at ``x`` rounding noise (or its root within a few ulps)?  The
    smaller relative change of g when each x_i moves :data:`PROBE_ULPS` units in the last
    place of max(|x_i|, 1) against g_i and along it, if half g's size or more both ways (both:
    one side alone could be a kink); else None.  Scale-free in f, and local: a far start
    cannot loosen it.  ``project``/``pgrad``: the bounds' projection and projected gradient.

    The probe moves x mostly along the stiffest direction, so on an ill-conditioned valley
    (Powell's badly scaled function at x1 = 1e-6) a real gradient along the valley floor
    passes it too.  ``curvature`` (the exact Hessian's eigendecomposition, where affordable)
    then has the last word: the Newton step sum_i q_i*(q_i.g)/|lam_i| must stay within a
    relative :data:`NEWTON_NOISE` of max(|x_i|, 1), as it does where g is noise.  Along an
    eigenvector q whose eigenvalue is lost in rounding the Newton step is unknown, so the root
    of q.g is looked for instead: the probe is repeated along q, 16 times farther each time up
    to that same relative :data:`NEWTON_NOISE`, until q.g changes by half both ways.  A
    singular minimum (Powell's singular function, quartic along two directions: BFGS stops
    1e-9 from it at f = 1e-34) has it within 1e-8; the valley floor, whose minimum is 90
    away, does not.  (A slope that changes that fast with no root near, as exp(x/s) for a
    tiny s, passes too: the look for a lower point at a converged point is the check there.)
    Returns (the probe's relative change of g, the farthest distance along such a q, relative
    to max(|x|_inf, 1), at which q.g changed by half; 0 when none was needed)."""
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
    if not (math.isfinite(change) and change >= 0.5):
        return None
    eigen = curvature() if curvature is not None else None
    root = 0.0
    if eigen is not None:
        lam, Q, _ = eigen
        a = Q.T @ g
        # An eigenvalue within eigh's rounding of 0 says nothing about the curvature there
        # (Powell's valley floor: 2e-16 against 2e12): along such an eigenvector q the probe
        # itself is repeated, so the root along q must lie within its reach too.
        resolved = np.abs(lam) > len(lam) * _EPS * float(np.max(np.abs(lam)))
        with np.errstate(all="ignore"):
            p = Q @ np.where(resolved & (a != 0), a / np.abs(lam), 0.0)
        if not np.max(np.abs(p) / np.maximum(np.abs(x), 1.0)) <= NEWTON_NOISE:
            return None
        scale = max(float(np.max(np.abs(x))), 1.0)
        first = PROBE_ULPS * float(np.spacing(scale))
        for i in np.flatnonzero(~resolved & (a != 0)):
            reach = _root_along(x, Q[:, i], a[i], first, NEWTON_NOISE * scale, evaluate,
                                project, pgrad)
            if reach is None:
                return None  # a real slope along q: the root is farther than the probe
            root = max(root, reach / scale)
    return change, root


def _root_along(x: np.ndarray, q: np.ndarray, slope: float, first: float, limit: float,
                evaluate: Evaluate, project: Callable[[np.ndarray], np.ndarray],
                pgrad: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float | None:
    """The first distance h (``first``, 16 times farther each time, up to ``limit``) at which
    moving x by h along q both ways changes q.g (``slope`` at x) by half or more; None when
    even ``limit`` does not (or a point is off the domain)."""
    h = first
    while h <= limit:
        moved = []
        for sign in (-1.0, 1.0):
            xp = project(x + sign * h * q)
            fp, gp = evaluate(xp)
            if not math.isfinite(fp):
                return None
            moved.append(float(pgrad(xp, np.asarray(gp, dtype=np.float64)) @ q))
        if all(math.isfinite(m) and abs(m - slope) >= 0.5 * abs(slope) for m in moved):
            return h
        h *= 16.0
    return None


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


def negative_curvature(curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> bool:
    """Whether the Hessian (:func:`hessian_eigen`) has a clearly negative eigenvalue: below
    -1e-8 of its largest magnitude (rounding in an exact Hessian stays far above that)."""
    if curvature is None or len(curvature[0]) == 0:
        return False
    lam = curvature[0]
    return bool(lam[0] < -1e-8 * max(1.0, float(np.max(np.abs(lam)))))


def escape(curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None, x: np.ndarray,
           f: float, g: np.ndarray, evaluate: Evaluate,
           project: Callable[[np.ndarray], np.ndarray] | None = None,
           semidefinite: bool = True) -> np.ndarray | None:
    """A converged point need not be a minimum: a zero gradient is also where saddles and
    maxima are (x^2 - y^2 at 0), and where the Hessian is singular (x^3 at 0 has g = 0 and
    H = 0; Newton creeps there with H > 0 all the way).  Look both ways along the eigenvector
    of the smallest Hessian eigenvalue, first a distance :data:`ESCAPE_STEP` * max(|x|_inf, 1):
    a value lower by more than rounding is returned as the point to go on from.  Along
    negative curvature lam the look shrinks 4x at a time while the decrease it predicts,
    |lam|*h^2/2, is above f's rounding (a quartic wall can hide the descent at 1e-3); a
    singular or semi-definite Hessian gets the one look, only if ``semidefinite``; a positive
    definite one with g = 0 exactly (a strict local minimum) none.  ``project``: the bounds'
    projection (``curvature`` then describes the free parameters only)."""
    if curvature is None:
        return None
    lam, Q, _ = curvature
    negative = negative_curvature(curvature)
    if not negative and (not semidefinite or lam[0] > 0 and not np.any(g)):
        return None
    noise = 4.0 * _EPS * abs(f)
    h = ESCAPE_STEP * max(float(np.max(np.abs(x))), 1.0)
    for _ in range(ESCAPE_LOOKS):
        for sign in (1.0, -1.0):
            xp = x + sign * h * Q[:, 0]
            if project is not None:
                xp = project(xp)
            if np.array_equal(xp, x):
                continue
            fp, _ = evaluate(xp)
            if fp < f - noise:  # nan compares false: off the domain is no lower point
                return xp
        h *= 0.25
        if not negative or -lam[0] * h * h / 2.0 <= noise:
            return None
    return None


def across_jump(x: np.ndarray, f: float, evaluate: Evaluate,
                project: Callable[[np.ndarray], np.ndarray] | None = None,
                problem: Any = None) -> np.ndarray | None:
    """A converged point of an expression whose value jumps (``sign``, ``step``) may sit at
    the edge of a jump with the lower side just across, which no gradient sees, and one
    exactly on a kink has a gradient that is a convention (abs(x) - abs(y) at 0): look
    :data:`ESCAPE_STEP` * max(|x|_inf, 1) both ways along every coordinate (a jump nearer
    than that along some direction is crossed by one of them) and return the first point
    lower by more than f's rounding; None when there is none, or when the 2n looks cost more
    than the Hessian check may (:data:`CHECK_HESSIAN_MAX_PARAMS`, :data:`CHECK_HESSIAN_MAX_WORK`
    over ``problem``'s tape and rows: a check, not a second run)."""
    n = len(x)
    if not _looks_affordable(n, problem):
        return None
    noise = 4.0 * _EPS * abs(f)
    for xp in _looks(x, _look_step(x), project):
        fp, _ = evaluate(xp)
        if fp < f - noise:  # nan compares false
            return xp
    return None


def _look_step(x: np.ndarray) -> float:
    """How far :func:`across_jump` and :func:`flat_around` look: :data:`ESCAPE_STEP` of the
    point's size (at least of 1)."""
    return ESCAPE_STEP * max(float(np.max(np.abs(x))), 1.0)


def _looks(x: np.ndarray, h: float, project: Callable[[np.ndarray], np.ndarray] | None
           ) -> Iterator[np.ndarray]:
    """The points ``h`` away from ``x`` both ways along every coordinate (projected into the
    bounds; a look the bounds leave at ``x`` is skipped), in order."""
    for i in range(len(x)):
        for sign in (-1.0, 1.0):
            xp = x.copy()
            xp[i] += sign * h
            if project is not None:
                xp = project(xp)
            if not np.array_equal(xp, x):
                yield xp


def _looks_affordable(n: int, problem: Any) -> bool:
    """Whether 2n looks around a point stay within the Hessian check's limits
    (:data:`CHECK_HESSIAN_MAX_PARAMS`, :data:`CHECK_HESSIAN_MAX_WORK` over ``problem``'s tape
    and rows): a check, not a second run."""
    tape = getattr(problem, "tape", None)
    rows = max(1, int(getattr(problem, "rows", 1) or 1))
    return 0 < n <= CHECK_HESSIAN_MAX_PARAMS and (
        tape is None or 2 * n * len(tape) * rows <= CHECK_HESSIAN_MAX_WORK)


def flat_around(x: np.ndarray, f: float, g: np.ndarray, evaluate: Evaluate,
                project: Callable[[np.ndarray], np.ndarray] | None = None,
                problem: Any = None,
                curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                ) -> tuple[float, bool] | None:
    """A gradient test passes wherever the value is flat to float64 precision, minimum or not:
    far from the data a model underflows or is lost beside the residuals' constant part (MGH's
    Gaussian from 10*x0: f = 0.564 with a relative gradient of 1e-114 where the minimum is
    1.1e-8).  Is the value flat around ``x``: the same to f's rounding (4 units of eps*|f|, at
    least 4 of the smallest subnormal) :data:`ESCAPE_STEP` * max(|x|_inf, 1) both ways along
    every parameter, with the curvature ``curvature`` (:func:`hessian_eigen`, where affordable)
    predicting no change there either?  Returns (that distance, whether every looked-at gradient
    is exactly zero, with the value f to rounding, as on a constant piece of ``relu``); None
    when it is not flat, or the 2n looks cost more than the Hessian check may."""
    n = len(x)
    if not _looks_affordable(n, problem):
        return None
    noise = 4.0 * max(_EPS * abs(f), float(np.spacing(0.0)))
    h = _look_step(x)
    if curvature is not None and len(curvature[0]) and \
            float(np.max(np.abs(curvature[0]))) * h * h / 2.0 > noise:
        return None
    exact, looked = not np.any(g), False
    for xp in _looks(x, h, project):
        fp, gp = evaluate(xp)
        if not abs(fp - f) <= noise:  # nan: off the domain is no evidence of flatness
            return None
        looked = True
        # not fp == f: a constant piece's rows summed in another order (blocks in memory,
        # partitions on Dask; abs(a - x) between the middle two of an even count of x) differ
        # in the last place, and the verdict must not depend on the order
        exact = exact and not np.any(gp)
    return (h, exact) if looked else None


def free_parameters(x: np.ndarray, limits: tuple[np.ndarray, np.ndarray] | None
                    ) -> np.ndarray | None:
    """The mask of parameters not at an active bound (None without bounds)."""
    if limits is None:
        return None
    at_lo, at_hi = at_bounds(x, *limits)
    return ~(at_lo | at_hi)


def hessian_eigen(problem: Any, x: np.ndarray, free: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The exact Hessian's eigenvalues and eigenvectors at ``x`` (and ``x``), or None where
    there is no Hessian, it is too big to afford (a check, not a second run), or not finite.
    ``free`` (a mask) keeps only the parameters not at an active bound: along a bound the
    curvature says nothing (-x^2 on [1, 2] has its minimum at 2); the eigenvectors are then
    zero on the others."""
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
    if free is not None:
        H = H[np.ix_(free, free)]
    if H.size == 0 or not np.all(np.isfinite(H)):
        return None
    lam, Q = np.linalg.eigh(0.5 * (H + H.T))
    if free is not None:
        full = np.zeros((n, Q.shape[1]))
        full[free] = Q
        Q = full
    return lam, Q, x.copy()


def saddle_message(curvature: tuple[np.ndarray, np.ndarray, np.ndarray]) -> str:
    """Why a point with a zero gradient and a negative Hessian eigenvalue is no minimum."""
    ev = curvature[0]
    kind = ("a maximum" if ev[-1] < 0 else "a saddle point" if ev[-1] > 0
            else "a maximum or a saddle point")
    return (f"the gradient is zero to float64 precision but the Hessian at this point is not "
            f"positive definite (smallest eigenvalue {ev[0]:.6g}): the point is {kind}, not a "
            "minimum, and no lower point was found along that eigenvalue's direction")


def second_order_warnings(problem: Any, x: np.ndarray, free: np.ndarray | None = None,
                          curvature: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                          ) -> list[str]:
    """A zero gradient is also where maxima and saddles are (BFGS started at the top of -x^2
    "converges" at once): say so when the exact Hessian has a negative eigenvalue. Skipped
    for problems without a Hessian or too large to afford one.  ``free`` (a mask) restricts
    the test to the parameters not at an active bound.  ``curvature``: the Hessian's
    eigendecomposition at ``x`` if already taken (:func:`hessian_eigen`)."""
    curvature = curvature or hessian_eigen(problem, x, free)
    if not negative_curvature(curvature):
        return []
    return [saddle_message(curvature)]  # type: ignore[arg-type]
