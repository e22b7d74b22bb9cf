"""The driver loop: every stopping rule, once for all update rules (pure numpy)."""

from __future__ import annotations

import math
import time
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
    PRECISION,
    REASONS,
    TIME_LIMIT,
    UNBOUNDED,
    MinimizeResult,
    norm,
)
from . import verdicts
from .bounded import (
    BOUNDED_QUASI_NEWTON,
    PROJECTED,
    Bounds,
    TimeUp,
    alarm,
    box,
    lbfgsb,
    projected_gradient,
)
from .checks import (
    ESCAPES,
    JUMPS,
    KINKS,
    across_jump,
    escape,
    free_parameters,
    hessian_eigen,
)
from .linesearch import Evaluate
from .rules import RULES, Options, Rule

Callback = Callable[[int, float, float, np.ndarray], None]

#: above this many parameters ``auto`` switches from dense BFGS to L-BFGS.
DENSE_LIMIT = 100
DEFAULT_STEPS = 1000
_EPS = float(np.finfo(np.float64).eps)
#: the default test (no ``tol``): the relative gradient (Dennis & Schnabel 1983, section 7.2)
#: max_i |g_i|*max(|x_i|, 1)/|f| at most eps^(2/3): moving any x_i by a relative eps^(1/3)
#: changes f to first order by less than its rounding unit eps*|f|.  (No typf: a floor under
#: |f| from the start would loosen it on far starts; f* = 0 is met by the probes below.)
DEFAULT_TOL = _EPS ** (2.0 / 3.0)
#: where no lower point can be found any more, a relative gradient at or below eps^(1/3)
#: (Dennis & Schnabel's own default gradient tolerance) is the attainable accuracy: reason
#: "precision", converged.  So is a gradient that moving x by :data:`PROBE_ULPS` units in the
#: last place (of max(|x_i|, 1)) changes by half its size or more: it is rounding noise, or the
#: stationary point is within those few units (as at f* = 0).  Otherwise "no-progress".
PRECISION_TOL = _EPS ** (1.0 / 3.0)
#: iterations without a lower value or a smaller gradient norm before "no-progress".
PATIENCE = 100

#: a value at or below this is taken as unbounded below (float64 ends at -1.8e308).
UNBOUNDED_VALUE = -1e300
#: ... as is a value that fell this many powers of ten below zero while the gradient norm never
#: shrank (a run heading for -inf: gd on -x^2, bfgs on x).
UNBOUNDED_DECADES = 10


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
             callback: Callback | None = None, patience: int = PATIENCE,
             bounds: Bounds | None = None, max_time: float | None = None,
             started: float | None = None) -> MinimizeResult:
    """Minimise ``problem(x) -> (value, gradient)`` from ``x0``.

    ``problem`` is a plain callable or an :class:`Objective` (which adds ``hessian`` for
    ``newton`` and ``sample`` for minibatches).  ``callback(iteration, value, grad_norm, x)``
    sees every iterate, starting with iteration 0 at ``x0``; with minibatches the value and
    gradient norm are the batch's.  Never raises on non-finite numbers: they end the run with
    reason "diverged" (or "unbounded" for a value falling to -inf); numpy's overflow
    warnings are silenced because the driver checks every value itself.

    ``tol`` is an absolute bound on the gradient norm. Without it the run converges where the
    relative gradient max_i |g_i|*max(|x_i|, 1)/|f| is at most :data:`DEFAULT_TOL`, or where no
    lower point can be found and either it is at most :data:`PRECISION_TOL` or the gradient is
    rounding noise (reason "precision").  Every test scales with f, so multiplying f by 1e-12
    changes neither where nor when a run stops; and every test is local, so a far start (a
    huge gradient at ``x0``) does not loosen it, as "1e-10 of the start's gradient" did.

    ``bounds`` maps parameters to ``(lo, hi)`` (+-inf for an open side).  The quasi-Newton
    rules (``bfgs``, ``lbfgs``, and ``auto`` without minibatches) then run scipy's L-BFGS-B
    on the same values and gradients (method ``l-bfgs-b``); gd, momentum, nesterov and adam
    clip each step onto the box; ``newton`` refuses bounds.  A start outside the box is
    clipped onto it with a warning.  The stopping test and the reported gradient are then the
    projected gradient (components pushing against an active bound are 0), and the
    second-order check looks only at the parameters not at a bound.

    ``max_time`` (seconds) ends the run with reason "time-limit" at the best point so far,
    counted from ``started`` (a ``time.monotonic()``; default now), checked before each
    evaluation and by a SIGALRM timer in the main thread (which also stops one long step).
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
    limits = box(bounds, names)
    moved: list[str] = []
    if limits is not None:
        if method not in PROJECTED and method not in ("bfgs", "lbfgs"):
            raise AdcliError(f"--method {method} does not take --bounds; use the default "
                             f"(L-BFGS-B) or one of {', '.join(PROJECTED)} (projected steps)")
        lower, upper = limits
        outside = [i for i in range(n) if not lower[i] <= x[i] <= upper[i]]
        for i in outside:
            clipped = min(max(x[i], lower[i]), upper[i])
            moved.append(f"the start {names[i]}={x[i]:g} is outside its bounds "
                           f"{lower[i]:g}:{upper[i]:g}; starting at {clipped:g}")
            x[i] = clipped
    deadline = None
    if max_time:
        deadline = (time.monotonic() if started is None else started) + max_time
    run = _Run(problem, method, names, tol, patience, limits, deadline, max_time)
    with np.errstate(all="ignore"):
        result = None
        try:
            with alarm(deadline, run):
                if limits is not None and method in ("bfgs", "lbfgs"):
                    run.method = BOUNDED_QUASI_NEWTON

                    def loop(_run, z, _rules, steps, callback):
                        return lbfgsb(_run, z, options.memory, steps, callback, UNBOUNDED_VALUE)
                else:
                    loop = _minibatch if stochastic else _full_batch
                result = loop(run, x, RULES[method](n, options, problem), steps, callback)
                for _ in range(ESCAPES):
                    if not result.converged or stochastic:
                        break
                    curvature = hessian_eigen(problem, result.x, free_parameters(result.x, limits))
                    # Negative curvature: always; a semi-definite look (x^3 at 0): as before.
                    lower = escape(curvature, result.x, result.value, result.grad, run.full,
                                   run.project, run.relative and limits is None
                                   and method in ("bfgs", "lbfgs", "newton"))
                    if lower is None and run.unseen(result.x):
                        lower = across_jump(result.x, result.value, run.full, run.project, problem)
                    result.evaluations = run.evaluations  # the looks count too
                    if lower is None:
                        break
                    # Not a minimum: go on from the lower point, afresh.
                    result = loop(run, lower, RULES[method](n, options, problem), steps,
                                  callback)
                else:  # the looks ran out: a lower value still across a jump is no minimum
                    lower = None if not result.converged or not run.unseen(result.x) else \
                        across_jump(result.x, result.value, run.full, run.project, problem)
                    result.evaluations = run.evaluations
                    if lower is not None:
                        result.reason, result.message = NO_PROGRESS, verdicts.jump_message(
                            run.names, run.kinks, lower, result.x)
        except TimeUp:
            if result is None:  # before the first evaluation finished: no point to report
                raise AdcliError(f"the time limit of {max_time:g} s was reached before the "
                                 "first evaluation of the objective finished (--max-time; 0 "
                                 "for no limit)") from None
            # else the alarm rang just after the run had ended: keep its result
        if result.converged and not stochastic:  # no lower point found: a minimum?
            try:
                verdicts.second_look(result, problem, run.full, run.project, limits, run.smooth)
            except TimeUp:  # the limit passed during the looks: the run's own verdict stands
                pass
            result.evaluations = run.evaluations  # the looks count too
    result.warnings[:0] = moved
    return result


class _Run:
    """What both loops share: counting evaluations, the stopping tests, the result record.

    Every iteration is checked in the same order: a non-finite gradient ("diverged"), the
    gradient norm below ``tol`` ("grad-tol"), a value falling without bound while the gradient
    does not shrink ("unbounded"), and no progress for ``patience`` iterations ("no-progress");
    then after the step: no step found ("no-progress"), a value at -inf or beyond
    :data:`UNBOUNDED_VALUE` ("unbounded"), or a non-finite value or point ("diverged").
    """

    def __init__(self, problem: Any, method: str, names: list[str], tol: float | None,
                 patience: int, limits: tuple[np.ndarray, np.ndarray] | None = None,
                 deadline: float | None = None, max_time: float | None = None) -> None:
        self.problem, self.method, self.names = problem, method, names
        self.tol, self.relative, self.patience = tol, tol is None, patience
        self.limits, self.deadline, self.max_time = limits, deadline, max_time
        # A gradient that jumps within a few ulps is noise only where f has no kink (abs, ...).
        tape = getattr(problem, "tape", None)
        self.kinks = sorted({getattr(op, "name", op) for op in tape.ops} & KINKS
                            ) if tape is not None else []
        self.smooth = not self.kinks
        self.jumps = bool(JUMPS & set(self.kinks))
        branches = getattr(problem, "branches", None)
        # where the gradient may not show every way down: anywhere on a tape whose value
        # jumps, and exactly on a kink (its gradient there is a convention, abs'(0) = 0)
        self.unseen = lambda x: self.jumps or (not self.smooth and branches is not None
                                               and bool(np.any(branches(x) == 0)))
        self.evaluations = 0
        self.iteration = 0
        self.timed_out = False

    def _check_time(self) -> None:
        if (self.deadline is not None and self.evaluations > 0 and not self.timed_out
                and time.monotonic() > self.deadline):
            self.timed_out = True  # once: the loops' own final evaluations may follow
            raise TimeUp

    def full(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective (over all rows) and its gradient."""
        self._check_time()
        self.evaluations += 1
        f, g = self.problem(x)
        return float(f), np.asarray(g, dtype=np.float64)

    def noisy(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """A minibatch estimate of the objective and its gradient."""
        self._check_time()
        self.evaluations += 1
        f, g = self.problem.sample(x)
        return float(f), np.asarray(g, dtype=np.float64)

    def project(self, x: np.ndarray) -> np.ndarray:
        """``x`` clipped onto the bounds (itself without bounds)."""
        return x if self.limits is None else np.clip(x, *self.limits)

    def pgrad(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The gradient the stopping tests see: projected under bounds."""
        return g if self.limits is None else projected_gradient(x, g, *self.limits)

    def result(self, x: np.ndarray, f: float, g: np.ndarray, reason: str,
               message: str = "") -> MinimizeResult:
        if reason == TIME_LIMIT and not message:
            message = (f"the time limit of {self.max_time:g} s was reached (--max-time; 0 for "
                       "no limit); the best point so far is reported")
        return MinimizeResult(self.names, x, f, self.pgrad(x, g), self.iteration,
                              self.evaluations, reason, self.method,
                              message or REASONS[reason])

    def start(self, f: float, g: np.ndarray) -> tuple[str, str] | None:
        """Why the run cannot start at a point with value ``f``; else set up the tests."""
        if f == -math.inf or f <= UNBOUNDED_VALUE:
            return UNBOUNDED, f"the value is {f:g} at the starting point"
        if not math.isfinite(f):
            return DIVERGED, "the value is not finite at the starting point"
        self.best_gnorm, self.last_progress, self.f_anchor = math.inf, 0, f
        self.f_prev, self.x_prev, self.g_prev = math.nan, None, None
        self.newton_step = math.inf  # the last Newton step's length relative to x
        # Unbounded below: the power of ten the value had reached below zero when the gradient
        # norm was last at its smallest (anchor); falling UNBOUNDED_DECADES more powers of ten
        # without the gradient ever shrinking below that is a run heading for -inf.
        self.anchor_level, self.anchor_gnorm = verdicts.decade(f), norm(g)
        return None

    def converged(self, x: np.ndarray, f: float, g: np.ndarray) -> tuple[str, str] | None:
        """The convergence test at ``x`` (``g`` projected under bounds), else None."""
        what = "gradient" if self.limits is None else "projected gradient"
        if not self.relative:
            gnorm = norm(g)
            if gnorm < self.tol or gnorm == 0.0:
                return GRAD_TOL, f"the {what} norm fell below --tol"
            return None
        rg = verdicts.relative_gradient(x, f, g)
        if rg == 0.0:
            return GRAD_TOL, f"the {what} is exactly zero"
        if rg <= DEFAULT_TOL:
            return GRAD_TOL, (f"the relative {what} fell to {rg:.2g} (at most {DEFAULT_TOL:.2g}): "
                              "stationary to float64 precision")
        return None

    def stalled(self, x: np.ndarray, f: float, g: np.ndarray, why: str,
                evaluate: Evaluate | None = None) -> tuple[str, str]:
        """No lower point can be found from ``x`` (``g`` projected under bounds): converged to
        the attainable accuracy ("precision") when the relative gradient is at most
        :data:`PRECISION_TOL` or the gradient is at rounding level (:meth:`rounding_level`),
        else "no-progress".  With ``tol`` given only "grad-tol" converges."""
        if not self.relative:
            return NO_PROGRESS, why
        if f == 0.0:
            return PRECISION, (f"{why}, and the value is exactly 0: a minimum value to float64 "
                               "precision")
        rg = verdicts.relative_gradient(x, f, g)
        if rg <= PRECISION_TOL:
            return PRECISION, verdicts.rg_message(why, rg, PRECISION_TOL)
        level = self.rounding_level(x, g, evaluate)
        if level is not None:
            return PRECISION, f"{why}; {verdicts.noise_message(*level)}"
        if not self.smooth and (self.near_kink or not hasattr(self.problem, "branches")):
            return NO_PROGRESS, verdicts.kink_message(why, rg, self.kinks, self.near_kink)
        return NO_PROGRESS, verdicts.rg_message(why, rg, PRECISION_TOL)

    def flat(self, x: np.ndarray, f: float, g: np.ndarray, evaluate: Evaluate | None
             ) -> tuple[str, str] | None:
        """The value stayed exactly 0 (the relative gradient is undefined): converged when the
        last step's first-order change |g.s| underflowed to 0 too (x creeping toward 0 through
        subnormal numbers: no float64 value lies between), or when g is rounding noise."""
        if float(self.g_prev @ (x - self.x_prev)) == 0.0:
            return PRECISION, ("the value is exactly 0 and the last step's predicted change "
                               "underflows to 0: the minimum value to float64 precision")
        level = self.rounding_level(x, g, evaluate)
        if level is not None:
            return PRECISION, f"the value is exactly 0, and {verdicts.noise_message(*level)}"
        return None

    def rounding_level(self, x: np.ndarray, g: np.ndarray, evaluate: Evaluate | None
                       ) -> tuple[float, float] | None:
        """:func:`.verdicts.branch_rounding_level` here (``near_kink``: it crossed a kink)."""
        level, self.near_kink = verdicts.branch_rounding_level(
            x, g, evaluate, self.project, self.pgrad, lambda: hessian_eigen(
                self.problem, x, free_parameters(x, self.limits)),
            None if self.smooth else getattr(self.problem, "branches", False))
        return level

    def stop(self, x: np.ndarray, f: float, g: np.ndarray, improved: bool, fresh: bool = True,
             epoch: int = 1, evaluate: Evaluate | None = None) -> tuple[str, str] | None:
        """The tests at the current point (``fresh``: ``f`` and ``g`` belong to it; ``g`` is
        the projected gradient under bounds)."""
        iteration = self.iteration
        gnorm = norm(g)
        if not math.isfinite(gnorm):
            bad = "nan" if math.isnan(gnorm) else "infinite"
            return DIVERGED, f"the gradient is {bad} at iteration {iteration}"
        if fresh:
            done = self.converged(x, f, g)
            if done is None and f == 0.0 == self.f_prev and self.relative:
                done = self.flat(x, f, g, evaluate)
            if done is None and self.relative and self.newton_step <= DEFAULT_TOL:
                # At f* = 0 the relative gradient never gets small; the Newton step does.
                done = PRECISION, (f"the Newton step fell to {self.newton_step:.2g} of the "
                                   f"point's size (at most {DEFAULT_TOL:.2g}): stationary to "
                                   "float64 precision")
            self.f_prev, self.x_prev, self.g_prev = f, x, g
            if done is not None:
                return done
        if fresh and gnorm < self.anchor_gnorm:
            self.anchor_level, self.anchor_gnorm = verdicts.decade(f), gnorm
        elif fresh and verdicts.decade(f) - self.anchor_level >= UNBOUNDED_DECADES:
            return UNBOUNDED, (f"the value fell to {f:.6g} at iteration {iteration}, at least "
                               f"{UNBOUNDED_DECADES} orders of magnitude, while the gradient did "
                               "not shrink; the objective looks unbounded below")
        # Progress: a lower value, a smaller gradient, or at least a moving value (a value
        # that keeps growing is heading for "diverged", not stuck).
        if improved or gnorm < self.best_gnorm or abs(f - self.f_anchor) > 1e-10 * max(
                abs(f), abs(self.f_anchor)):
            self.last_progress, self.f_anchor = iteration, f
            self.best_gnorm = min(self.best_gnorm, gnorm)
        elif iteration - self.last_progress >= self.patience * epoch:
            why = (f"the value and the gradient norm stayed the same for "
                   f"{self.patience * epoch} iterations")
            return self.stalled(x, f, g, why, evaluate) if fresh else (NO_PROGRESS, why)
        return None

    def step(self, rules: Rule, x: np.ndarray, f: float, g: np.ndarray, evaluate: Evaluate
             ) -> tuple[np.ndarray, float, np.ndarray, tuple[str, str] | None]:
        """One step of the rule from ``x``: the new point with its value and gradient, and why
        the run ends there (None: it goes on).  A rule that finds no step leaves ``x``."""
        step = rules.step(x, f, g, evaluate)
        if step.failed:
            return x, f, g, (NO_PROGRESS, step.failed)  # the loop decides: see _Run.stalled
        xn = self.project(step.x)
        if step.value is None or xn is not step.x and not np.array_equal(xn, step.x):
            fn, gn = evaluate(xn)
        else:
            fn, gn = step.value, step.grad
        self.iteration += 1
        iteration = self.iteration
        self.newton_step = (float(np.max(np.abs(xn - x) / np.maximum(np.abs(xn), 1.0)))
                            if step.newton else math.inf)
        if np.all(np.isfinite(xn)) and (fn == -math.inf or fn <= UNBOUNDED_VALUE):
            return xn, fn, gn, (UNBOUNDED, f"the value fell to {fn:g} at iteration {iteration}; "
                                "the objective looks unbounded below")
        if not (math.isfinite(fn) and np.all(np.isfinite(xn))):
            return xn, fn, gn, (DIVERGED, f"the value became {fn} at iteration {iteration}; the "
                                "last finite point is reported")
        return xn, fn, gn, None


def _full_batch(run: _Run, x: np.ndarray, rules: Rule, steps: int,
                callback: Callback | None) -> MinimizeResult:
    """The loop over exact values and gradients."""
    f, g = run.full(x)
    stop = run.start(f, run.pgrad(x, g))
    if stop is not None:
        return run.result(x, f, g, *stop)
    best = (f, x, g)
    reason, message = MAX_STEPS, ""
    try:
        while True:
            pg = run.pgrad(x, g)
            improved = f < best[0]
            if improved:
                best = (f, x, g)
            if callback is not None:
                callback(run.iteration, f, norm(pg), x)
            stop = run.stop(x, f, pg, improved, evaluate=run.full)
            if stop is not None:
                reason, message = stop
                break
            if run.iteration >= steps:
                break
            xn, fn, gn, stop = run.step(rules, x, f, g, run.full)
            if stop is not None:
                reason, message = stop
                if reason == UNBOUNDED:
                    x, f, g = xn, fn, gn
                elif reason == NO_PROGRESS:  # no step found: at the attainable accuracy?
                    reason, message = run.stalled(x, f, pg, message, run.full)
                break
            x, f, g = xn, fn, gn
    except (KeyboardInterrupt, TimeUp) as stopped:
        f, x, g = best
        why = INTERRUPTED if isinstance(stopped, KeyboardInterrupt) else TIME_LIMIT
        return run.result(x, f, g, why)  # the best point seen
    return run.result(x, f, g, reason, message)


def _minibatch(run: _Run, x: np.ndarray, rules: Rule, steps: int,
               callback: Callback | None) -> MinimizeResult:
    """The loop over minibatch estimates.  The rule and the callback see the batch's value and
    gradient; the stopping tests see the full objective, computed once per epoch (``fresh``)
    and at the end, so they are not fooled by one lucky batch."""
    epoch = int(getattr(run.problem, "epoch", 1))
    f, g = run.full(x)
    stop = run.start(f, run.pgrad(x, g))
    if stop is not None:
        return run.result(x, f, g, *stop)
    best = last_fresh = (f, x, g)
    fs, gs = f, g  # the batch's value and gradient at x
    fresh = True
    reason, message = MAX_STEPS, ""
    try:
        while True:
            improved = fresh and f < best[0]
            if improved:
                best = (f, x, g)
            if callback is not None:
                callback(run.iteration, fs, norm(gs), x)
            stop = run.stop(x, f, run.pgrad(x, g), improved, fresh, epoch)
            if stop is not None:
                reason, message = stop
                break
            if run.iteration >= steps:
                break
            xn, fn, gn, stop = run.step(rules, x, fs, gs, run.noisy)
            if stop is not None:
                reason, message = stop
                if reason == UNBOUNDED:  # a batch's value: report the point with its full value
                    x = xn
                    f, g = run.full(x)
                break
            x, fs, gs = xn, fn, gn
            fresh = run.iteration % epoch == 0 or run.iteration >= steps
            if fresh:
                f_all, g_all = run.full(x)
                if not math.isfinite(f_all):
                    reason = DIVERGED
                    message = (f"the value over all rows became non-finite at iteration "
                               f"{run.iteration}; the last finite point is reported")
                    break
                f, g = f_all, g_all
                last_fresh = (f, x, g)
    except (KeyboardInterrupt, TimeUp) as stopped:
        f, x, g = best
        why = INTERRUPTED if isinstance(stopped, KeyboardInterrupt) else TIME_LIMIT
        return run.result(x, f, g, why)  # the best full-objective point seen
    if reason == DIVERGED:
        f, x, g = last_fresh  # the last point whose full objective was computed and finite
    elif not fresh and reason != UNBOUNDED:
        f, g = run.full(x)
    return run.result(x, f, g, reason, message)
