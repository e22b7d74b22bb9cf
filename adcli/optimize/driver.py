"""The driver loop: every stopping rule, once for all update rules (pure numpy)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import AdcliError
from ..results import (
    DIVERGED,
    GRAD_TOL,
    INTERRUPTED,
    MAX_STEPS,
    NO_PROGRESS,
    REASONS,
    UNBOUNDED,
    MinimizeResult,
    norm,
)
from .linesearch import Evaluate
from .rules import RULES, Options, Rule

Callback = Callable[[int, float, float, np.ndarray], None]

#: above this many parameters ``auto`` switches from dense BFGS to L-BFGS.
DENSE_LIMIT = 100
DEFAULT_STEPS = 1000
DEFAULT_TOL = 1e-10  # relative to the gradient norm at the start unless ``tol`` is given
#: iterations without a lower value or a smaller gradient norm before "no-progress".
PATIENCE = 100

#: a value at or below this is taken as unbounded below (float64 ends at -1.8e308).
UNBOUNDED_VALUE = -1e300
#: ... as is a value that fell this many powers of ten below zero while the gradient norm never
#: shrank (a run heading for -inf: gd on -x^2, bfgs on x).
UNBOUNDED_DECADES = 10
#: the second-order check at a converged point computes the Hessian (n sweeps over the
#: gradient tapes) only up to this many parameters ...
CHECK_HESSIAN_MAX_PARAMS = DENSE_LIMIT
#: ... and this many parameters x tape nodes x data rows (a cheap check, not a second run).
CHECK_HESSIAN_MAX_WORK = 50_000_000


def resolve_method(method: str, n: int, stochastic: bool = False) -> str:
    """``auto`` -> the rule actually used; unknown names are an error."""
    if method == "auto":
        if stochastic:
            return "adam"
        return "bfgs" if n <= DENSE_LIMIT else "lbfgs"
    if method not in RULES:
        raise AdcliError(f"unknown method '{method}' (choose from auto, {', '.join(RULES)})")
    if stochastic and RULES[method].line_search:
        raise AdcliError(f"--method {method} needs exact values and cannot use --batch-size; "
                         "use gd, momentum, nesterov or adam")
    return method


def minimize(problem: Evaluate, x0: Sequence[float], *, method: str = "auto",
             options: Options | None = None, steps: int = DEFAULT_STEPS,
             tol: float | None = None, names: Sequence[str] | None = None,
             callback: Callback | None = None, patience: int = PATIENCE) -> MinimizeResult:
    """Minimise ``problem(x) -> (value, gradient)`` from ``x0``.

    ``problem`` is a plain callable or an :class:`Objective` (which adds ``hessian`` for
    ``newton`` and ``sample`` for minibatches).  ``callback(iteration, value, grad_norm, x)``
    sees every iterate, starting with iteration 0 at ``x0``; with minibatches the value and
    gradient norm are the batch's.  Never raises on non-finite numbers: they end the run with
    reason "diverged" (or "unbounded" for a value falling to -inf); numpy's overflow
    warnings are silenced because the driver checks every value itself.

    ``tol`` is an absolute bound on the gradient norm. Without it the run stops when the
    gradient norm falls to :data:`DEFAULT_TOL` times its norm at ``x0``: a test that does not
    depend on the objective's scale (multiplying f by 1e-12 must not make a start look
    converged).
    """
    options = options or Options()
    x = np.array(x0, dtype=np.float64)
    n = len(x)
    names = list(names if names is not None else getattr(problem, "names", None)
                 or [f"x{i}" for i in range(n)])
    stochastic = bool(getattr(problem, "stochastic", False))
    method = resolve_method(method, n, stochastic)
    if method == "newton" and not hasattr(problem, "hessian"):
        raise AdcliError("newton needs a problem with a hessian(x) method (an Objective)")
    with np.errstate(all="ignore"):
        result = _drive(problem, x, RULES[method](n, options, problem), method, names,
                        stochastic, steps, tol, callback, patience)
        if result.reason == GRAD_TOL and not stochastic:
            result.warnings += second_order_warnings(problem, result.x)
    return result


def _drive(problem: Any, x: np.ndarray, rules: Rule, method: str, names: list[str],
           stochastic: bool, steps: int, tol: float, callback: Callback | None,
           patience: int) -> MinimizeResult:
    """The loop of :func:`minimize`: every stopping rule, once for all update rules."""
    evaluations = 0

    def full(xv: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        f, g = problem(xv)
        return float(f), np.asarray(g, dtype=np.float64)

    def noisy(xv: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        f, g = problem.sample(xv)
        return float(f), np.asarray(g, dtype=np.float64)

    evaluate = noisy if stochastic else full
    epoch = int(getattr(problem, "epoch", 1)) if stochastic else 1

    def result(xr, fr, gr, reason, message="") -> MinimizeResult:
        return MinimizeResult(names, xr, fr, gr, iteration, evaluations, reason, method,
                              message or REASONS[reason])

    iteration = 0
    # (value, gradient) of the full objective at the best point; minibatch runs check these
    # once per epoch.
    f, g = full(x)
    if f == -math.inf or f <= UNBOUNDED_VALUE:
        return result(x, f, g, UNBOUNDED, f"the value is {f:g} at the starting point")
    if not math.isfinite(f):
        return result(x, f, g, DIVERGED, "the value is not finite at the starting point")
    best = (f, x, g)
    relative = tol is None
    if relative:
        tol = DEFAULT_TOL * norm(g)
    best_gnorm, last_progress, f_anchor = math.inf, 0, f
    fresh = True  # f and g belong to x (with minibatches, only once per epoch)
    last_fresh = best
    reason, message = MAX_STEPS, ""
    # Unbounded below: the power of ten the value had reached below zero when the gradient
    # norm was last at its smallest (anchor); falling UNBOUNDED_DECADES more powers of ten
    # without the gradient ever shrinking below that is a run heading for -inf.
    anchor_level, anchor_gnorm = _decade(f), norm(g)
    try:
        if stochastic:
            fs, gs = f, g
        while True:
            gnorm = norm(g)
            improved = fresh and f < best[0]
            if improved:
                best = (f, x, g)
            if callback is not None:
                callback(iteration, fs if stochastic else f, norm(gs) if stochastic else gnorm,
                         x)
            if not math.isfinite(gnorm):
                bad = "nan" if math.isnan(gnorm) else "infinite"
                reason, message = DIVERGED, f"the gradient is {bad} at iteration {iteration}"
                break
            if gnorm < tol or gnorm == 0.0:
                reason = GRAD_TOL
                if relative:
                    message = (f"the gradient norm fell below {DEFAULT_TOL:g} of its value at "
                               "the start")
                break
            if fresh and gnorm < anchor_gnorm:
                anchor_level, anchor_gnorm = _decade(f), gnorm
            elif fresh and _decade(f) - anchor_level >= UNBOUNDED_DECADES:
                reason = UNBOUNDED
                message = (f"the value fell to {f:.6g} at iteration {iteration}, at least "
                           f"{UNBOUNDED_DECADES} orders of magnitude, while the gradient did not "
                           "shrink; the objective looks unbounded below")
                break
            # Progress: a lower value, a smaller gradient, or at least a moving value (a value
            # that keeps growing is heading for "diverged", not stuck).
            if improved or gnorm < best_gnorm or abs(f - f_anchor) > 1e-10 * max(
                    abs(f), abs(f_anchor)):
                last_progress, f_anchor = iteration, f
                best_gnorm = min(best_gnorm, gnorm)
            elif iteration - last_progress >= patience * epoch:
                reason = NO_PROGRESS
                message = (f"the value and the gradient norm stayed the same for "
                           f"{patience * epoch} iterations")
                break
            if iteration >= steps:
                reason = MAX_STEPS
                break
            step = rules.step(x, fs if stochastic else f, gs if stochastic else g, evaluate)
            if step.failed:
                reason, message = NO_PROGRESS, step.failed
                break
            xn = step.x
            if step.value is None:
                fn, gn = evaluate(xn)
            else:
                fn, gn = step.value, step.grad
            iteration += 1
            if np.all(np.isfinite(xn)) and (fn == -math.inf or fn <= UNBOUNDED_VALUE):
                x, f, g = xn, fn, gn
                reason = UNBOUNDED
                message = (f"the value fell to {fn:g} at iteration {iteration}; the objective "
                           "looks unbounded below")
                if stochastic:  # a batch's value: report the point with its full value
                    f, g = full(x)
                break
            if not (math.isfinite(fn) and np.all(np.isfinite(xn))):
                reason = DIVERGED
                message = (f"the value became {fn} at iteration {iteration}; the last finite "
                           "point is reported")
                break
            x = xn
            if stochastic:
                fs, gs = fn, gn
                fresh = iteration % epoch == 0 or iteration >= steps
                if fresh:
                    f_all, g_all = full(x)
                    if not math.isfinite(f_all):
                        reason = DIVERGED
                        message = (f"the value over all rows became non-finite at iteration "
                                   f"{iteration}; the last finite point is reported")
                        break
                    f, g = f_all, g_all
                    last_fresh = (f, x, g)
            else:
                f, g = fn, gn
    except KeyboardInterrupt:
        f, x, g = best
        return result(x, f, g, INTERRUPTED)  # the best full-objective point seen
    if stochastic and reason == DIVERGED:
        f, x, g = last_fresh  # the last point whose full objective was computed and finite
    elif stochastic and not fresh and reason != UNBOUNDED:
        f, g = full(x)
    return result(x, f, g, reason, message)


def _decade(f: float) -> int:
    """The power of ten a negative value has reached (0 for values above -10)."""
    return math.floor(math.log10(-f)) if f <= -10.0 else 0


def second_order_warnings(problem: Any, x: np.ndarray) -> list[str]:
    """A zero gradient is also where maxima and saddles are (BFGS started at the top of -x^2
    "converges" at once): at a converged point, say so when the exact Hessian has a negative
    eigenvalue. Skipped for problems without a Hessian or too large to afford one."""
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
    if not np.all(np.isfinite(H)):
        return []
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    if ev[0] >= -1e-8 * max(1.0, float(np.max(np.abs(ev)))):
        return []
    kind = ("a maximum" if ev[-1] < 0 else "a saddle point" if ev[-1] > 0
            else "a maximum or a saddle point")
    return [f"the Hessian at this point is not positive definite (smallest eigenvalue "
            f"{ev[0]:.6g}): the gradient is zero but the point is {kind}, not a minimum"]

