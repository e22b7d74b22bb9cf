"""Levenberg-Marquardt least squares in numpy: the engine of ``adcli fit`` (and of ``minimize
--data`` on a squared residual) when no parameter is bounded.

The method is Moré's trust-region form of Levenberg-Marquardt (J. J. Moré, "The
Levenberg-Marquardt algorithm: implementation and theory", 1978): each step minimises
|J s + r| within |D s| <= Delta, where D holds the Jacobian's column norms, raised to the
largest seen so far (MINPACK's scaling, which makes the steps independent of the parameters'
units). The step is solved exactly from the SVD of J D⁻¹ by Newton's iteration on the secular
equation |s(lambda)| = Delta (Moré's section 5). The bookkeeping (the radius updates, the
stopping tests, which points cost a Jacobian) follows scipy's ``least_squares(method="trf",
x_scale="jac")`` without bounds, the engine adcli used before, so a fit takes the same path and
stops for the same reason; what it saves is importing ``scipy.optimize`` (most of a command's
time). Pure numpy, no recursion, float64 throughout.

One test is adcli's own: where the sum of squares is not smooth (a kink of ``abs``, ``max``,
``min`` in the residuals, away from a zero of the residual) the steps fail and shrink until
they are below xtol, which MINPACK's tests would call convergence. At a smooth minimum the
linear model then promises a decrease within the rounding level of the sum of squares (the
changes the failed trial steps actually measured); at a kink it still promises far more, which
no step delivers. Such a stop is :data:`KINK_STOP`, not convergence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)

#: scipy-style termination statuses (the keys of :data:`adcli.regression.leastsq.REASONS`),
#: and adcli's own: the ftol/xtol tests met where the model still promises a decrease far above
#: the rounding level of the sum of squares (a kink; not convergence)
MAX_EVALUATIONS, FTOL_STOP, XTOL_STOP, BOTH_STOP, KINK_STOP = 0, 2, 3, 4, 5
#: "far above": the linear model's whole decrease over the directions the Jacobian resolves is
#: more than this many times the rounding level. On the 54 NIST fits it is at most 0.9 times;
#: at the kinks of tests/test_lm_kink.py 1e13 times and more.
KINK_FACTOR = 1e4
#: a direction of the column-scaled Jacobian with a singular value below this fraction of the
#: largest is not resolved: along it the residual's component is whatever the data leave over
#: (y ~ a*b*x at its minimum), no promise of the model.
RESOLVED = 1e-8


def trust_step(uf: np.ndarray, s: np.ndarray, vt: np.ndarray, delta: float, alpha: float,
               full_rank: bool, rtol: float = 0.01, max_iter: int = 10
               ) -> tuple[np.ndarray, float]:
    """The step h (scaled variables) minimising |J h + r| within |h| <= ``delta``, from
    J = U diag(s) Vᵀ and ``uf`` = Uᵀr, and the Levenberg-Marquardt parameter lambda that gives
    it: the Gauss-Newton step when it fits, else Newton's iteration on |h(lambda)| = delta,
    safeguarded by Moré's bounds and started at the previous ``alpha`` (lambda changes little
    between steps)."""
    suf = s * uf
    if full_rank:
        h = -vt.T @ (uf / s)
        if np.linalg.norm(h) <= delta:
            return h, 0.0

    def phi(lam: float) -> tuple[float, float]:
        denom = s ** 2 + lam
        norm = float(np.linalg.norm(suf / denom))
        return norm - delta, -float(np.sum(suf ** 2 / denom ** 3)) / norm

    upper = float(np.linalg.norm(suf)) / delta
    if full_rank:
        value, slope = phi(0.0)
        lower = -value / slope
    else:
        lower = 0.0
    if alpha == 0.0 and not full_rank:
        alpha = max(0.001 * upper, math.sqrt(lower * upper))
    for _ in range(max_iter):
        if alpha < lower or alpha > upper:
            alpha = max(0.001 * upper, math.sqrt(lower * upper))
        value, slope = phi(alpha)
        if value < 0:
            upper = alpha
        ratio = value / slope
        lower = max(lower, alpha - ratio)
        alpha -= (value + delta) * ratio / delta
        if abs(value) < rtol * delta:
            break
    h = -vt.T @ (suf / (s ** 2 + alpha))
    # on the boundary exactly, so a step never lands outside the region it was solved for
    h *= delta / np.linalg.norm(h)
    return h, alpha


def levenberg_marquardt(residuals: Callable[[np.ndarray], np.ndarray],
                        jacobian: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                        max_evaluations: int, ftol: float, xtol: float
                        ) -> tuple[np.ndarray, int, int]:
    """Minimise |r(x)|² from ``x0``: (x, status, evaluations). ``residuals`` is called at every
    trial point, ``jacobian`` at the start and at every accepted point (the last residuals'
    point, so an engine that computes both at once pays once). Stops with status 2 when an
    accepted step reduces |r|² by less than ``ftol`` of it, 3 when the step is below ``xtol``
    of |x| (also after steps that failed: no progress is possible at that precision), 4 for
    both, 0 when ``max_evaluations`` is reached, 5 when the test of 2, 3 or 4 was met at a
    kink (:func:`at_kink`). The callbacks may raise to stop the run."""
    x = np.array(x0, dtype=np.float64)
    r = np.asarray(residuals(x), dtype=np.float64)
    evaluations = 1
    if not np.all(np.isfinite(r)):
        return x, MAX_EVALUATIONS, evaluations  # callers check the start; nothing to do here
    jac = np.asarray(jacobian(x), dtype=np.float64)
    m, n = jac.shape
    cost = 0.5 * float(r @ r)
    scale_inv = np.linalg.norm(jac, axis=0)
    scale_inv[scale_inv == 0] = 1.0
    delta = float(np.linalg.norm(x * scale_inv)) or 1.0
    alpha = 0.0
    status: int | None = None
    while status is None and evaluations < max_evaluations:
        d = 1.0 / scale_inv
        jh = jac * d
        u, s, vt = np.linalg.svd(jh, full_matrices=False)
        uf = u.T @ r
        gh = jh.T @ r
        full_rank = m >= n and bool(s[-1] > EPS * m * s[0])
        reduction = -1.0
        changes = []  # |actual change| of the sum of squares at each finite trial from x
        while reduction <= 0 and evaluations < max_evaluations:
            h, alpha = trust_step(uf, s, vt, delta, alpha, full_rank)
            jhh = jh @ h
            predicted = -(0.5 * float(jhh @ jhh) + float(gh @ h))
            step = d * h
            trial = x + step
            r_new = np.asarray(residuals(trial), dtype=np.float64)
            evaluations += 1
            h_norm = float(np.linalg.norm(h))
            if not np.all(np.isfinite(r_new)):
                delta = 0.25 * h_norm  # out of the model's domain: a shorter step
                continue
            cost_new = 0.5 * float(r_new @ r_new)
            reduction = cost - cost_new
            changes.append(abs(reduction))
            delta_new, ratio = _radius(delta, reduction, predicted, h_norm,
                                       h_norm > 0.95 * delta)
            status = _stopped(reduction, cost, float(np.linalg.norm(step)),
                              float(np.linalg.norm(x)), ratio, ftol, xtol)
            if status is not None:
                break
            alpha *= delta / delta_new
            delta = delta_new
        if reduction > 0:
            x, r, cost = trial, r_new, cost_new
            jac = np.asarray(jacobian(x), dtype=np.float64)
            scale_inv = np.maximum(scale_inv, np.linalg.norm(jac, axis=0))
    if status in (FTOL_STOP, XTOL_STOP, BOTH_STOP) and at_kink(jac / scale_inv, r, cost,
                                                              changes):
        status = KINK_STOP
    return x, MAX_EVALUATIONS if status is None else status, evaluations


def at_kink(jh: np.ndarray, r: np.ndarray, cost: float, changes: list[float]) -> bool:
    """Whether a stop of the ftol/xtol tests at the point of residuals ``r`` and
    column-scaled Jacobian ``jh`` is a kink rather than a minimum: the linear model's decrease
    over the resolved directions, |(Uᵀr) resolved|²/2, is more than :data:`KINK_FACTOR` times
    the rounding level of the sum of squares ``cost`` (|r|²/2): the largest change the last
    trial steps measured (``changes``; at a minimum they are rounding noise), and at least
    eps*cost. At a smooth minimum the promise is within that level whatever the problem's
    conditioning, as the residuals' rounding is (NIST Lanczos1: residuals of 1e-13 rounded to
    1e-16 make the loss's noise 1e-3 of it)"""
    if not np.all(np.isfinite(jh)) or jh.size == 0:
        return False
    u, s, _ = np.linalg.svd(jh, full_matrices=False)
    if not s[0] > 0:
        return False
    uf = (u.T @ r)[s > RESOLVED * s[0]]
    promised = 0.5 * float(uf @ uf)
    noise = max([EPS * cost, *changes])
    return promised > KINK_FACTOR * noise


def _radius(delta: float, reduction: float, predicted: float, step_norm: float,
            on_boundary: bool) -> tuple[float, float]:
    """The next trust radius and the ratio of actual to predicted reduction: shrink to a
    quarter of the step when the model predicted badly, double when it predicted well and the
    step was held by the boundary."""
    if predicted > 0:
        ratio = reduction / predicted
    elif predicted == reduction == 0:
        ratio = 1.0
    else:
        ratio = 0.0
    if ratio < 0.25:
        delta = 0.25 * step_norm
    elif ratio > 0.75 and on_boundary:
        delta *= 2.0
    return delta, ratio


def _stopped(reduction: float, cost: float, step_norm: float, x_norm: float, ratio: float,
             ftol: float, xtol: float) -> int | None:
    """MINPACK's relative tests: ftol on a step the model predicted (ratio > 1/4), xtol on
    the step's length."""
    f_ok = reduction < ftol * cost and ratio > 0.25
    x_ok = step_norm < xtol * (xtol + x_norm)
    if f_ok and x_ok:
        return BOTH_STOP
    if f_ok:
        return FTOL_STOP
    if x_ok:
        return XTOL_STOP
    return None


#: how far a look for a plateau goes along a parameter, relative to max(|p|, 1)
FLAT_LOOK = 1e-3


def flat_stop(res: Any, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> bool:
    """True where the tests passed on a plateau: rᵀr > 0, and neither the Jacobian's model nor
    a look at x ± h along each parameter the bounds leave free (h = FLAT_LOOK*max(|p|, 1))
    changes rᵀr by more than 4 eps of it. A model far from its data underflows: r stays the
    data, J is zero to rounding and every test passes (a Gaussian bump placed 20 widths away).
    The looks are not counted as evaluations; they cost passes only where the model already
    predicts no change."""
    measure = getattr(res, "rss", None)
    with np.errstate(all="ignore"):
        r, jac = res.both(x)
        res.jacobians -= 1  # a look, not an iteration
        cost = measure(x) if measure is not None else float(r @ r)
        if not (math.isfinite(cost) and cost > 0.0):
            return False  # rᵀr = 0 is the least sum of squares there is
        tol = 4.0 * np.finfo(np.float64).eps * cost
        h = FLAT_LOOK * np.maximum(np.abs(x), 1.0)
        free = (x - h >= lower) & (x + h <= upper)
        predicted = 2.0 * np.abs(h * (jac.T @ r)) + h * h * np.einsum("ij,ij->j", jac, jac)
        if not free.any() or not np.all(predicted[free] <= tol):
            return False
        evaluations = res.evaluations
        try:
            for i in np.flatnonzero(free):
                for sign in (-1.0, 1.0):
                    b = np.array(x, dtype=np.float64)
                    b[i] += sign * h[i]
                    rb = res.residuals(b)
                    look = measure(b) if measure is not None else float(rb @ rb)
                    if not abs(look - cost) <= tol:
                        return False
        finally:
            res.evaluations = evaluations
            if hasattr(res, "recall"):
                res.recall(x)
    return True


def bounded_kink(res: Any, x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  recent: list[float]) -> bool:
    """:func:`adcli.regression.lm.at_kink` where scipy's trf stopped: over the parameters not
    at a bound (a bound holds the others, whatever the model promises along them), with the
    changes of the sum of squares over its last trial points as the rounding level."""
    with np.errstate(all="ignore"):
        r, jac = res.both(x)
        res.jacobians -= 1  # a look, not an iteration
        cost = 0.5 * float(r @ r)
        span = np.maximum(np.abs(x), 1.0) * 1e-10
        free = (x - lower > span) & (upper - x > span)
        norms = np.linalg.norm(jac, axis=0)
        jh = jac[:, free] / np.where(norms[free] > 0, norms[free], 1.0)
        changes = [0.5 * abs(c - 2.0 * cost) for c in recent if math.isfinite(c)]
    return bool(free.any()) and math.isfinite(cost) and at_kink(jh, r, cost, changes)
