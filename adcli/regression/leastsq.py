"""The least-squares engine of ``adcli fit``: Levenberg-Marquardt on adcli's exact Jacobian with
MINPACK's scale-free stopping (numpy, :mod:`adcli.regression.lm`; scipy's trust-region
reflective method when parameters are bounded), and the asymptotic covariance of the estimates
(bench/README.md has the measurements behind the choice of engine)."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from ..core.records import Shown
from .lm import KINK_STOP, bounded_kink, flat_stop, levenberg_marquardt

# --------------------------------------------------------------------------- the engine

#: Relative tolerances, MINPACK's meaning (scale-free): stop when one step reduces the sum of
#: squares by less than FTOL of it, when the step is below XTOL of the parameters' size, or when
#: the cosine between the residual vector and every Jacobian column is below GTOL.
FTOL = XTOL = 1e-15
GTOL = 1e-15
#: the engine's name in a fit's report: adcli's own without bounds, scipy's trf with them
METHOD, BOUNDED_METHOD = "lm", "trf"

REASONS = {
    0: "the maximum number of evaluations was reached",
    1: "the residuals are orthogonal to the Jacobian's columns (gtol)",
    2: "the sum of squares stopped decreasing (relative change below ftol)",
    3: "the step became negligible relative to the parameters (xtol)",
    4: "the sum of squares stopped decreasing and the step became negligible (ftol, xtol)",
}
#: the status of a run stopped by its deadline (not one of scipy's).
TIME_STATUS = -2
REASONS[TIME_STATUS] = "the time limit was reached; the best point so far is reported"
REASONS[KINK_STOP] = (
    "the steps stopped where the sum of squares is not smooth: the linear model promises a "
    "decrease far above its rounding level that no step, down to below xtol, delivers. That is "
    "a kink (as abs, max or min make) or the edge of the model's domain (as sqrt(b) at b = 0), "
    "which may be a minimum or not: the engine cannot tell. Try other start values (--from), "
    "or a smooth form of the model")
#: the status of a run whose tolerance tests passed on a plateau (not one of scipy's)
FLAT_STOP = 6
REASONS[FLAT_STOP] = (
    "the tolerance tests passed where the sum of squares is flat: it does not change to float64 "
    "precision within 1e-3*max(|p|, 1) of the point along any parameter, nor does the "
    "Jacobian predict a change (the model underflows or stops depending on the parameters "
    "there). A plateau may or may not be a minimum; try other start values (--from)")
#: the status of a run stopped by Ctrl-C once a point was evaluated (not one of scipy's).
INTERRUPT_STATUS = -3
REASONS[INTERRUPT_STATUS] = "interrupted; the best point so far is reported"


class _OutOfTime(Exception):
    """Raised from the residual callback past the deadline, with the best point so far."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        self.x = x


class _Orthogonal(Exception):
    """Raised from the Jacobian callback when MINPACK's gtol test passes at an accepted point
    (scipy's own gtol is an absolute gradient norm, which depends on the data's scale)."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        self.x = x


def max_cosine(r: np.ndarray, jac: np.ndarray) -> float:
    """max over columns j of |J_j . r| / (|J_j| |r|): 0 at a stationary point, whatever the
    scale of the residuals or of the parameters (MINPACK's gtol quantity)."""
    rn = float(np.linalg.norm(r))
    if rn == 0.0:
        return 0.0
    cols = jac.T  # rows of cols are the Jacobian's columns (contiguous as both() builds J)
    norms = np.sqrt(np.einsum("ij,ij->i", cols, cols))
    dots = np.abs(cols @ r)
    with np.errstate(all="ignore"):
        cos = np.where(norms > 0, dots / (norms * rn), 0.0)
    return float(np.max(cos)) if cos.size else 0.0


# --------------------------------------------------------------------------- the compressed problem
# A least-squares step reads J only through its singular values and right vectors and Jᵀr:
# J = QR gives the same through R (p x p) and c = Qᵀr. So every engine hands the solver the
# (p+1)-row problem [R; 0] and [c; sqrt(rᵀr - |c|²)], which has the rows' JᵀJ, Jᵀr and rᵀr.
# Over partitions the R factors combine pairwise (stack two, factor again: TSQR), which keeps
# the accuracy of a QR of all the rows; in memory the one factor is that QR. Data in one
# partition therefore runs the very same arithmetic in memory and on Dask.


def qr_sums(r: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """[R (p*p, row-major), c = Qᵀr (p), rᵀr] of the rows ``r``, ``jac`` (rows x p)."""
    p = jac.shape[1]
    out = np.zeros(p * p + p + 1)
    with np.errstate(all="ignore"):
        rr = float(r @ r)
        if not (np.all(np.isfinite(jac)) and math.isfinite(rr)):
            out[:] = math.nan
            return out
        q, R = np.linalg.qr(jac)
        k = R.shape[0]  # fewer rows than parameters: R is k x p
        out[:k * p] = R.ravel()
        out[p * p:p * p + k] = q.T @ r
    out[-1] = rr
    return out


def qr_size(n: int) -> int:
    """p from the length p*p + p + 2 of a partition's vector (its rows last)."""
    return (math.isqrt(4 * (n - 2) + 1) - 1) // 2


def qr_combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two partitions' [R, c, rᵀr, rows] as one (the pairwise step of TSQR)."""
    p = qr_size(len(a))
    out = np.empty_like(a)
    out[-2:] = a[-2:] + b[-2:]
    stacked = np.vstack((a[:p * p].reshape(p, p), b[:p * p].reshape(p, p)))
    rhs = np.concatenate((a[p * p:p * p + p], b[p * p:p * p + p]))
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(stacked)):
            out[:-1] = math.nan
            return out
        q, R = np.linalg.qr(stacked)
        out[:p * p] = R.ravel()
        out[p * p:p * p + p] = q.T @ rhs
    return out


class Compressed:
    """The residual object :func:`solve` drives: the (p+1)-row problem of ``sweep(b)``, which
    returns [R, c, rᵀr] of all the rows at ``b`` (from memory or from partitions). Every
    point costs one sweep with the Jacobian, so a trial point's residual vector already
    belongs to that point's Jacobian; accepting the point costs no second sweep."""

    def __init__(self, sweep: Any, p: int, journal: Any = None) -> None:
        # journal: --checkpoint/--resume wrap the sweep (each recorded, or answered from file)
        self.sweep = sweep if journal is None else journal(sweep)
        self.p = p
        self.evaluations = 0
        self.jacobians = 0
        #: the norms of the Jacobian's columns at the first Jacobian (the start)
        self.start_norms = np.ones(p)
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        #: the point of lowest |r|^2 swept so far (as :func:`solve` ranks them), kept so that
        #: a run stopped by Ctrl-C reports it without another sweep (a pass over the data)
        self._best: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self._best_rss = math.inf

    def _at(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._last is None or not np.array_equal(self._last[0], b):
            p = self.p
            vec = np.asarray(self.sweep(np.array(b, dtype=np.float64)), dtype=np.float64)
            jac = np.zeros((p + 1, p))
            jac[:p] = vec[:p * p].reshape(p, p)
            r = np.empty(p + 1)
            r[:p] = vec[p * p:p * p + p]
            with np.errstate(all="ignore"):
                rest = vec[p * p + p] - float(r[:p] @ r[:p])
                r[p] = math.sqrt(max(rest, 0.0)) if math.isfinite(rest) else math.nan
            self._last = (np.array(b, dtype=np.float64), r, jac, float(vec[p * p + p]))
            with np.errstate(all="ignore"):
                size = float(r @ r)
            if size < self._best_rss:
                self._best, self._best_rss = self._last, size
        return self._last[1], self._last[2]

    def recall(self, b: np.ndarray) -> None:
        """Make the kept best point the current one when it is ``b``: what is asked about
        ``b`` next (its rᵀr, its Jacobian) then costs no sweep."""
        if self._best is not None and np.array_equal(self._best[0], b):
            self._last = self._best

    def rss(self, b: np.ndarray) -> float:
        """rᵀr at ``b`` as the rows give it (not |r̃|², which rounds it once more)."""
        self._at(b)
        return self._last[3]  # type: ignore[index]

    def residuals(self, b: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return self._at(b)[0].copy()

    def both(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, jac = self._at(b)
        if self.jacobians == 0:
            self.start_norms = np.linalg.norm(jac, axis=0)
        self.jacobians += 1
        return r.copy(), jac.copy()


class Solution(Shown):
    """Where the engine stopped, its scipy-style status (see :data:`REASONS`), its counts and
    which engine ran (:data:`METHOD` or :data:`BOUNDED_METHOD`). A plain slotted class, not a
    dataclass: making a dataclass runs generated code at import, start-up only a fit pays."""

    __slots__ = __match_args__ = SHOWN = ("x", "status", "evaluations", "jacobians", "method")

    def __init__(self, x: np.ndarray, status: int, evaluations: int, jacobians: int,
                 method: str = METHOD) -> None:
        self.x = x
        self.status = status
        self.evaluations = evaluations
        self.jacobians = jacobians
        self.method = method

    def describe(self) -> str:
        """The engine in a fit's report: the numpy engine is plain Levenberg-Marquardt; under
        bounds scipy's trf says so."""
        if self.method == METHOD:
            return "levenberg-marquardt (exact jacobian)"
        return f"levenberg-marquardt ({self.method}, exact jacobian)"


def solve(res: Any, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          max_evaluations: int, ftol: float = FTOL, xtol: float = XTOL, gtol: float = GTOL,
          max_time: float | None = None, started: float | None = None,
          interrupt: bool = False) -> Solution:
    """Least squares on adcli's exact Jacobian from ``x0``: without bounds by the numpy
    Levenberg-Marquardt of :mod:`adcli.regression.lm` (trust region, exact subproblem by SVD,
    MINPACK-style parameter scaling by the Jacobian's column norms); with a finite bound by
    scipy's trust-region reflective method (the same steps, reflected at the bounds), imported
    only then. ``max_time`` (seconds, checked before each evaluation) stops with status
    :data:`TIME_STATUS` at the lowest sum of squares seen; with ``interrupt``, Ctrl-C
    (KeyboardInterrupt) with :data:`INTERRUPT_STATUS` there, once a point was evaluated (a
    refit inside a larger job leaves ``interrupt`` off, so that Ctrl-C stops the job)."""
    deadline = None
    if max_time:
        deadline = (time.monotonic() if started is None else started) + max_time
    best = [math.inf, np.array(x0, dtype=np.float64)]
    recent: list[float] = []  # the last sums of squares, for the kink test under bounds

    def residuals(b: np.ndarray) -> np.ndarray:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime(best[1])
        r = res.residuals(b)
        with np.errstate(all="ignore"):
            rss = float(r @ r)
        if rss < best[0]:
            best[0], best[1] = rss, np.array(b, dtype=np.float64)
        recent[:] = [*recent[-7:], rss]
        return r

    def jac(b: np.ndarray) -> np.ndarray:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime(best[1])
        r, j = res.both(b)
        if gtol > 0 and max_cosine(r, j) <= gtol:
            raise _Orthogonal(np.array(b))
        return j

    start_jac = res.jacobians
    start_eval = res.evaluations
    bounded = bool(np.any(np.isfinite(lower)) or np.any(np.isfinite(upper)))
    try:
        try:
            with np.errstate(all="ignore"):
                if bounded:
                    x, status = _bounded(residuals, jac, x0, lower, upper, max_evaluations,
                                         ftol, xtol)
                else:
                    x, status, _ = levenberg_marquardt(residuals, jac, x0, max_evaluations,
                                                       ftol, xtol)
        except _Orthogonal as stop:
            x, status = stop.x, 1
        except _OutOfTime as stop:
            x, status = stop.x, TIME_STATUS
        if bounded and status in (2, 3, 4) and bounded_kink(res, x, lower, upper, recent):
            status = KINK_STOP
        if status in (2, 3, 4) and isinstance(res, Compressed):
            x = polish(res, x, lower, upper)
        if status in (1, 2, 3, 4) and flat_stop(res, x, lower, upper):
            status = FLAT_STOP
    except KeyboardInterrupt:
        if not interrupt or not math.isfinite(best[0]):  # nothing to report
            raise
        x, status = best[1], INTERRUPT_STATUS  # as the other methods: the best point seen
        if isinstance(res, Compressed):
            res.recall(x)
    return Solution(x, status, res.evaluations - start_eval, res.jacobians - start_jac,
                    BOUNDED_METHOD if bounded else METHOD)


def _bounded(residuals: Any, jac: Any, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
             max_evaluations: int, ftol: float, xtol: float) -> tuple[np.ndarray, int]:
    """scipy's trust-region reflective least squares within the bounds (gtol is adcli's own
    scale-free test, raised from ``jac``)."""
    from scipy.optimize import least_squares  # lazy: a second of start-up (see bench/README.md)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's note that its own gtol test is off
        out = least_squares(residuals, x0, jac=jac, bounds=(lower, upper),
                            method="trf", x_scale="jac", ftol=ftol, xtol=xtol, gtol=None,
                            max_nfev=max_evaluations)
    return out.x, int(out.status)


def refit(res: Compressed, start: np.ndarray, held: np.ndarray, lower: np.ndarray,
          upper: np.ndarray, max_evaluations: int | None = None,
          max_time: float | None = None, started: float | None = None) -> Solution:
    """:func:`solve` with the parameters where ``held`` is True kept at their ``start``
    values (a profile's re-fits): the same engine on the compressed problem of the other
    columns, whose R and Qᵀr come from the full problem's by one more small QR (J's held
    columns drop out of R exactly). Returns the full parameter vector; the counts are of
    sweeps of ``res``."""
    held = np.asarray(held, dtype=bool)
    start = np.array(start, dtype=np.float64)
    free = np.flatnonzero(~held)
    p, k = res.p, len(free)

    def full(b: np.ndarray) -> np.ndarray:
        x = start.copy()
        x[free] = b
        return x

    def sweep(b: np.ndarray) -> np.ndarray:
        vec = np.asarray(res.sweep(full(b)), dtype=np.float64)
        out = np.zeros(k * k + k + 1)
        out[-1] = vec[p * p + p]
        with np.errstate(all="ignore"):
            cols = vec[:p * p].reshape(p, p)[:, free]
            if not np.all(np.isfinite(cols)):
                out[:-1] = math.nan
                return out
            q, R = np.linalg.qr(cols)
            out[:k * k] = R.ravel()
            out[k * k:k * k + k] = q.T @ vec[p * p:p * p + p]
        return out

    sub = Compressed(sweep, k)
    sol = solve(sub, start[free], np.asarray(lower)[free], np.asarray(upper)[free],
                max_evaluations or 1000 * (k + 1), max_time=max_time, started=started)
    return Solution(full(sol.x), sol.status, sol.evaluations, sol.jacobians, sol.method)


def polish(res: Compressed, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
           steps: int = 2) -> np.ndarray:
    """Up to ``steps`` Gauss-Newton steps from where the sum-of-squares tests stopped: near a
    minimum rᵀr is flat to rounding, so those tests pin the parameters to about sqrt(eps)
    of their size, while the step -J⁺r still carries the digits. A step is kept while it is
    small (1e-6 of the parameters, scaled by the Jacobian's column norms), stays in the
    bounds and does not raise rᵀr beyond 1e-12 of it: tests far from rounding, so every
    engine that sums the rows in its own order takes the same steps."""
    r, jac = res.both(x)
    rss = float(r @ r)
    for _ in range(steps):
        with np.errstate(all="ignore"):
            step = -np.linalg.lstsq(jac, r, rcond=None)[0]
        d = np.linalg.norm(jac, axis=0)
        if not (np.all(np.isfinite(step)) and math.isfinite(rss)) or \
                np.linalg.norm(d * step) > 1e-6 * max(float(np.linalg.norm(d * x)), 1e-300):
            break
        trial = x + step
        if np.any(trial < lower) or np.any(trial > upper):
            break
        r2 = res.residuals(trial)
        new = float(r2 @ r2)
        if not (math.isfinite(new) and new <= rss * (1 + 1e-12)):
            break
        r, jac = res.both(trial)
        x, rss = trial, new
    return x


# --------------------------------------------------------------------------- statistics

#: A direction of the (column-scaled) Jacobian whose singular value is below this fraction of
#: the largest is not determined by the data: its parameters are reported as not identifiable.
SINGULAR = 1e-10


class Covariance(Shown):
    """The covariance of the free parameters (``matrix``, nan where not identifiable), the
    groups of parameters that are not, the condition number of the column-scaled Jacobian,
    and (JᵀJ)⁻¹ itself (``inverse``: the correlations come from it, so a perfect fit, variance
    0, still has them). A plain slotted class, as :class:`Solution`."""

    __slots__ = __match_args__ = SHOWN = ("matrix", "unidentifiable", "condition", "inverse")

    def __init__(self, matrix: np.ndarray, unidentifiable: list[list[str]], condition: float,
                 inverse: np.ndarray | None = None) -> None:
        self.matrix = matrix
        self.unidentifiable = unidentifiable
        self.condition = condition
        self.inverse = inverse

    def errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Standard errors (sqrt of the diagonal) and the correlation matrix."""
        diag = np.diag(self.matrix)
        se = np.where(np.isnan(diag), np.nan, np.sqrt(np.clip(diag, 0.0, None)))
        inv = self.matrix if self.inverse is None else self.inverse
        d = np.sqrt(np.clip(np.diag(inv), 0.0, None))
        with np.errstate(all="ignore"):
            corr = inv / np.outer(d, d)
        corr = np.where(np.isnan(self.matrix), np.nan, corr)
        np.fill_diagonal(corr, np.where(np.isnan(se), np.nan, 1.0))
        return se, corr


def covariance(jac: np.ndarray, names: list[str], scale: float) -> Covariance:
    """``scale * (J^T J)^-1`` by the SVD of J with its columns scaled to unit norm (so the
    test does not depend on the parameters' units). Directions with a relative singular value
    below :data:`SINGULAR` are reported with the parameters that dominate them, and those
    parameters get nan variances rather than meaningless huge ones."""
    p = jac.shape[1]
    if p == 0:
        return Covariance(np.zeros((0, 0)), [], 1.0)
    norms = np.linalg.norm(jac, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    scaled = jac / safe
    if scaled.shape[0] > 4 * p:  # J = QR: R has J's singular values and right vectors
        scaled = np.linalg.qr(scaled, mode="r")
    _, s, vt = np.linalg.svd(scaled, full_matrices=False)
    top = s[0] if s.size and s[0] > 0 else 0.0
    cond = float(top / s[-1]) if s.size and s[-1] > 0 else math.inf
    weak = [k for k in range(len(s)) if top == 0 or s[k] <= SINGULAR * top]
    weak += [k for k in range(len(s), p)]  # fewer rows than parameters
    groups: list[set[str]] = []
    vt_full = vt if vt.shape[0] == p else np.linalg.svd(scaled)[2]
    for k in weak:
        v = np.abs(vt_full[k])
        groups.append({names[j] for j in range(p) if v[j] >= 0.1 * v.max()})
    groups.append({names[j] for j in range(p) if norms[j] == 0})
    merged: list[set[str]] = []  # overlapping directions name one set of parameters
    for group in filter(None, groups):
        for other in [m for m in merged if m & group]:
            merged.remove(other)
            group = group | other
        merged.append(group)
    bad = set().union(*merged) if merged else set()
    keep = [k for k in range(len(s)) if k not in weak]
    inv = (vt[keep].T / s[keep] ** 2) @ vt[keep]
    inv = inv / np.outer(safe, safe)
    inv = 0.5 * (inv + inv.T)  # exactly symmetric, so is the correlation matrix
    cov = scale * inv
    for j, name in enumerate(names):
        if name in bad:
            cov[j, :] = np.nan
            cov[:, j] = np.nan
    return Covariance(cov, [[n for n in names if n in g] for g in merged], cond, inv)
