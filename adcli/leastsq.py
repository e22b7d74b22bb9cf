"""The least-squares engine of ``adcli fit``: scipy's trust-region reflective method on adcli's
exact Jacobian with MINPACK's scale-free stopping, and the asymptotic covariance of the
estimates (bench/README.md has the measurements behind the choice of engine)."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- the engine

#: Relative tolerances, MINPACK's meaning (scale-free): stop when one step reduces the sum of
#: squares by less than FTOL of it, when the step is below XTOL of the parameters' size, or when
#: the cosine between the residual vector and every Jacobian column is below GTOL.
FTOL = XTOL = 1e-15
GTOL = 1e-15
METHOD = "trf"

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


@dataclass
class Solution:
    """Where the engine stopped, its scipy-style status (see :data:`REASONS`) and its counts."""

    x: np.ndarray
    status: int
    evaluations: int
    jacobians: int


def solve(res: Any, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          max_evaluations: int, ftol: float = FTOL, xtol: float = XTOL, gtol: float = GTOL,
          max_time: float | None = None, started: float | None = None) -> Solution:
    """Trust-region reflective least squares (scipy's ``trf``: Levenberg-Marquardt steps
    within bounds, exact trust-region subproblem by SVD, MINPACK-style parameter scaling by
    the Jacobian's column norms) on adcli's exact Jacobian.  ``max_time`` (seconds, checked
    before each evaluation) stops with status :data:`TIME_STATUS` at the lowest sum of
    squares seen."""
    from scipy.optimize import least_squares

    deadline = None
    if max_time:
        deadline = (time.monotonic() if started is None else started) + max_time
    best = [math.inf, np.array(x0, dtype=np.float64)]

    def residuals(b: np.ndarray) -> np.ndarray:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime(best[1])
        r = res.residuals(b)
        with np.errstate(all="ignore"):
            rss = float(r @ r)
        if rss < best[0]:
            best[0], best[1] = rss, np.array(b, dtype=np.float64)
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
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's note that its own gtol test is off
            out = least_squares(residuals, x0, jac=jac, bounds=(lower, upper),
                                method="trf", x_scale="jac", ftol=ftol, xtol=xtol, gtol=None,
                                max_nfev=max_evaluations)
        x, status = out.x, int(out.status)
    except _Orthogonal as stop:
        x, status = stop.x, 1
    except _OutOfTime as stop:
        x, status = stop.x, TIME_STATUS
    return Solution(x, status, res.evaluations - start_eval, res.jacobians - start_jac)


# --------------------------------------------------------------------------- statistics

#: A direction of the (column-scaled) Jacobian whose singular value is below this fraction of
#: the largest is not determined by the data: its parameters are reported as not identifiable.
SINGULAR = 1e-10


@dataclass
class Covariance:
    matrix: np.ndarray          # covariance of the free parameters (nan where not identifiable)
    unidentifiable: list[list[str]]
    condition: float            # of the column-scaled Jacobian
    #: (JᵀJ)⁻¹ itself: the correlations come from it, so a perfect fit (variance 0) still
    #: has them
    inverse: np.ndarray | None = None

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
