"""``adcli fit`` over partitioned data (Dask): Levenberg-Marquardt on the normal equations.

The in-memory fit holds the full Jacobian J (rows x p). Over partitions only sums travel: each
partition returns rᵀr, Jᵀr and JᵀJ of its rows (computed by the same residual/Jacobian sweeps as
the in-memory fit, :class:`adcli.fitting.Residuals`), added in the fixed binary tree of
:class:`adcli.distributed.Partitions` (data kept in memory is read and checked once). The
engine is a Levenberg-Marquardt on (JᵀJ + λ D²) δ = -Jᵀr with MINPACK's scaling (D = the
running maximum of the Jacobian's column norms) and MINPACK's scale-free stopping tests; a
trial step costs one residual-only pass (rᵀr). Forming JᵀJ squares the condition number: on
well-posed fits the estimates agree with the in-memory engine to about 1e-10 relative
(tests/test_dask.py measures the exponential sample).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .distributed import Partitions, Scheduler
from .fitting import FitResult, Residuals
from .formula import FitError, Formula, parse_formula
from .function import Function
from .leastsq import REASONS
from .sources import PartitionedData

FTOL = XTOL = GTOL = 1e-15
METHOD = "levenberg-marquardt (normal equations over partitions, exact jacobian)"


@functools.lru_cache(maxsize=8)
def _formula(text: str | tuple[str, str, tuple[str, ...]]) -> Formula:
    """The formula re-parsed on this worker by adcli's parser (never unpickled): ``text`` is
    a formula ``LHS ~ MODEL``, or ("residual", SOURCE, BOUND) for the residual r of a program
    whose output is r^2 (``minimize --data`` routed to least squares)."""
    if isinstance(text, str):
        return parse_formula(text, max_bytes=None)
    from .function import parse

    formula = residual_formula(parse(text[1], max_bytes=None), set(text[2]))
    if formula is None:
        raise FitError("the expression is not the square of a residual")
    return formula


def residual_formula(function: Function, bound: set[str]) -> Formula | None:
    """The residual r of ``function`` when its output is r^2 (the program's statements kept,
    its output replaced by r), else None: as :func:`adcli.fitting.least_squares_minimize`."""
    from .fitting import squared_residual
    from .syntax import Program, Statement

    program = function.program
    node = squared_residual(program, function.tape(bound))
    if node is None:
        return None
    statements = list(program.statements[:-1]) + [Statement(None, node)]
    return Formula(Program(statements, program.source), None, node,
                   {s.name: s.expr for s in statements[:-1]})


@functools.lru_cache(maxsize=8)
def _function(text: str | tuple[str, str, tuple[str, ...]]) -> Function:
    return Function(_formula(text).program)


def partition_normal(columns: dict[str, np.ndarray], rows: int,
                     text: str | tuple[str, str, tuple[str, ...]],
                     fixed: tuple[tuple[str, float], ...], free: tuple[str, ...],
                     b: tuple[float, ...], mode: str, mean: float = 0.0,
                     sigma: str | None = None) -> np.ndarray:
    """One partition's sums: ``rss`` -> [rᵀr, rows]; ``normal`` -> [rᵀr, Jᵀr, JᵀJ (p*p),
    rows]; ``lhs`` -> [Σ w y, Σ w, rows]; ``tss`` -> [Σ w (y - mean)², rows] (y: the left
    side; w = 1/sigma² with a ``sigma`` column, else 1; r and J are divided by sigma)."""
    p = len(free)
    size = {"rss": 2, "normal": 2 + p + p * p, "lhs": 3, "tss": 2}[mode]
    out = np.zeros(size)
    out[-1] = rows
    if rows == 0:
        return out
    formula = _formula(text)
    sigmas = None if sigma is None else _sigma_column(columns, sigma)
    if mode in ("lhs", "tss"):
        from .fitting import _side

        point: dict[str, Any] = dict(columns)
        y = np.broadcast_to(np.asarray(_side(formula, formula.lhs).eval(point),
                                       dtype=np.float64), (rows,))
        if sigmas is None:  # the unweighted sums keep their bits
            out[0] = np.sum(y) if mode == "lhs" else np.sum((y - mean) ** 2)
            if mode == "lhs":
                out[1] = rows
            return out
        w = (1.0 / sigmas) ** 2  # as Residuals' weight, squared
        if mode == "lhs":
            out[0], out[1] = np.sum(w * y), np.sum(w)
        else:
            out[0] = np.sum(w * (y - mean) ** 2)
        return out
    res = Residuals(formula, columns, sigmas, dict(fixed))
    res.function = _function(text)  # one compiled tape per worker, not per partition
    if list(res.free) != list(free):
        raise FitError("the partition's parameters differ from the first partition's")
    x = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        if mode == "rss":
            r = res.residuals(x)
            out[0] = r @ r
            return out
        r, jac = res.both(x)
        out[0] = r @ r
        out[1:1 + p] = jac.T @ r
        out[1 + p:1 + p + p * p] = (jac.T @ jac).ravel()
    return out


def _sigma_column(columns: dict[str, np.ndarray], sigma: str) -> np.ndarray:
    """The partition's sigma column, every cell positive and finite (checked per partition:
    the row number is not known here, the value is)."""
    col = columns[sigma]
    bad = np.flatnonzero(~(np.isfinite(col) & (col > 0)))
    if bad.size:
        raise FitError(f"sigma column '{sigma}' must be positive and finite; a row holds "
                       f"{float(col[bad[0]])!r}")
    return col


class NormalSums:
    """Passes over the partitions for one fit: rss(b) and (rss, Jᵀr, JᵀJ)(b)."""

    def __init__(self, data: PartitionedData, text: str | tuple[str, str, tuple[str, ...]],
                 free: list[str], fixed: Mapping[str, float], scheduler: Scheduler,
                 on_pass: Callable[[int, int], None] | None = None,
                 parts: Partitions | None = None, sigma: str | None = None) -> None:
        self.parts = parts or Partitions(data, scheduler, f"data '{data.path}'")
        self.path = data.path
        self.text = text
        self.free = tuple(free)
        self.fixed = tuple(sorted((k, float(v)) for k, v in fixed.items()))
        self.scheduler = scheduler
        self.evaluations = 0
        self.jacobians = 0
        self.rows = 0
        self.passes = 0
        self.on_pass = on_pass
        self.sigma = sigma
        #: (b, rss, Jᵀr, JᵀJ) of the last ``normal`` pass
        self.last: tuple[np.ndarray, float, np.ndarray, np.ndarray] | None = None

    def _pass(self, b: np.ndarray, mode: str, mean: float = 0.0) -> np.ndarray:
        total = self.parts.sums(partition_normal, (self.text, self.fixed, self.free,
                                                   tuple(float(v) for v in b), mode, mean,
                                                   self.sigma))
        self.rows = int(total[-1])
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(self.passes, self.parts.count)
        return total

    def rss(self, b: np.ndarray) -> float:
        self.evaluations += 1
        return float(self._pass(b, "rss")[0])

    def normal(self, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        self.jacobians += 1
        p = len(self.free)
        total = self._pass(b, "normal")
        out = float(total[0]), total[1:1 + p], total[1 + p:1 + p + p * p].reshape(p, p)
        self.last = (np.array(b, dtype=np.float64), *out)
        return out

    def tss(self) -> float | None:
        """Σ (y - ȳ)² of the left side in two passes (mean first: no cancellation)."""
        first = self._pass(np.zeros(len(self.free)), "lhs")
        mean = float(first[0] / first[1])
        return float(self._pass(np.zeros(len(self.free)), "tss", mean)[0])


def lm_normal(sums: NormalSums, x0: np.ndarray, max_evaluations: int
              ) -> tuple[np.ndarray, int, float, np.ndarray]:
    """Levenberg-Marquardt on the normal equations with MINPACK's diagonal scaling.

    Returns (b, status as in :data:`adcli.leastsq.REASONS`, rss, JᵀJ at b)."""
    x = np.asarray(x0, dtype=np.float64).copy()
    rss, g, A = sums.normal(x)
    if not np.isfinite(rss):
        raise FitError("the residual is not finite at the start values; choose other start "
                       "values with --from")
    D = np.sqrt(np.maximum(np.diag(A), 0.0))
    D = np.where(D > 0, D, 1.0)
    lam, nu = 1e-3, 2.0
    status = 0
    while sums.evaluations + sums.jacobians < max_evaluations:
        diag_a = np.sqrt(np.maximum(np.diag(A), 0.0))
        with np.errstate(all="ignore"):
            cos = np.where(diag_a > 0, np.abs(g) / (diag_a * math.sqrt(rss)), 0.0) \
                if rss > 0 else np.zeros_like(g)
        if rss == 0 or float(np.max(cos, initial=0.0)) <= GTOL:
            status = 1
            break
        D = np.maximum(D, diag_a)
        M = A + lam * np.diag(D ** 2)
        try:
            step = -np.linalg.solve(M, g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(M, g, rcond=None)[0]
        predicted = -(2.0 * g @ step + step @ A @ step)
        trial = x + step
        new = sums.rss(trial)
        actual = rss - new if np.isfinite(new) else -math.inf
        rho = actual / predicted if predicted > 0 else -1.0
        small_step = np.linalg.norm(D * step) <= XTOL * np.linalg.norm(D * x)
        if rho > 1e-4:
            small_f = abs(actual) <= FTOL * rss and predicted <= FTOL * rss
            x = trial
            rss, g, A = sums.normal(x)
            lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            nu = 2.0
            if small_f or small_step:
                status = 4 if (small_f and small_step) else (2 if small_f else 3)
                break
        else:
            if small_step or predicted <= FTOL * rss:
                status = 3 if small_step else 2
                break
            lam *= nu
            nu *= 2.0
    if status in (2, 3, 4):
        x, rss, g, A = _polish(sums, x, rss, g, A)
    return x, status, rss, A


def _polish(sums: NormalSums, x: np.ndarray, rss: float, g: np.ndarray, A: np.ndarray
            ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Up to 3 Gauss-Newton steps from where the sum-of-squares tests stopped: near the
    minimum rᵀr is flat to rounding (it pins the parameters to about sqrt(eps)), while the
    step -(JᵀJ)⁻¹Jᵀr still carries the digits. A step is kept while it is small and the sum
    of squares does not rise beyond rounding."""
    for _ in range(3):
        try:
            step = -np.linalg.solve(A, g)
        except np.linalg.LinAlgError:
            break
        D = np.sqrt(np.maximum(np.diag(A), 0.0))
        if not np.all(np.isfinite(step)) or \
                np.linalg.norm(D * step) > 1e-6 * max(np.linalg.norm(D * x), 1e-300):
            break
        trial = x + step
        new, g2, A2 = sums.normal(trial)
        if not (np.isfinite(new) and new <= rss * (1 + 1e-12)):
            break
        if np.array_equal(trial, x):
            break
        x, rss, g, A = trial, new, g2, A2
    return x, rss, g, A


def fit_partitioned(text: str, data: PartitionedData, scheduler: Scheduler, *,
                    start: Mapping[str, float] | None = None,
                    fix: Mapping[str, float] | None = None,
                    max_evaluations: int | None = None,
                    on_pass: Callable[[int, int], None] | None = None,
                    sigma: str | None = None, absolute_sigma: bool = False) -> FitResult:
    """Fit ``LHS ~ MODEL`` to partitioned data; the statistics come from JᵀJ at the end.
    ``sigma`` names a column that weights row i by 1/sigma_i² (as in memory); with
    ``absolute_sigma`` the standard errors take sigma as absolute."""
    began = time.perf_counter()
    formula = parse_formula(text)
    used = formula.names(formula.lhs) | formula.names(formula.model)
    if sigma is not None and sigma not in data.names:
        raise FitError(f"--sigma '{sigma}' is not a column of the data (columns: "
                       f"{', '.join(data.names)})")
    data = data.select(used | ({sigma} if sigma else set()), data.dropna)
    columns = set(data.use or [])
    if not formula.names(formula.lhs) & columns:
        raise FitError("the formula's left side uses no data column; write the response "
                       "column before '~', as in \"y ~ a*x + b\"")
    tape = Function(formula.program).tape(columns)
    params = [n for n in tape.inputs if n not in columns]
    fix = {n: float(v) for n, v in (fix or {}).items()}
    for name in fix:
        if name not in params:
            raise FitError(f"--fix '{name}' is not a parameter of the model "
                           f"(parameters: {', '.join(params)})")
    free = [n for n in params if n not in fix]
    if not free:
        raise FitError("every parameter is fixed: nothing to fit")
    start = dict(start or {})
    warnings_ = [f"--from '{n}' is not a parameter; ignored" for n in start if n not in params]
    p = len(free)
    x0 = np.array([float(start.get(n, 0.0)) for n in free])
    sums = NormalSums(data, text, free, fix, scheduler, on_pass, sigma=sigma)
    x, status, rss, A = lm_normal(sums, x0, max_evaluations or 1000 * (p + 1))
    rows = sums.rows
    finite = bool(np.isfinite(rss))
    dof = rows - p
    variance = rss / dof if dof > 0 else math.nan
    weighted = sigma is not None
    scale = 1.0 if (absolute_sigma and weighted) else variance
    se, corr = _statistics(A, scale, free, warnings_) if finite else \
        (np.full(p, np.nan), np.full((p, p), np.nan))
    tss = sums.tss() if finite and not (formula.names(formula.lhs) - columns) else None
    parameters = {n: float(v) for n, v in zip(free, x)}
    parameters.update(fix)
    parameters = {n: parameters[n] for n in params}
    return FitResult(
        formula=text, parameters=parameters, stderr={n: float(e) for n, e in zip(free, se)},
        correlation_names=free, correlation=corr, rss=rss,
        residual_std=math.sqrt(variance) if dof > 0 and finite else math.nan, dof=dof,
        r_squared=(1.0 - rss / tss) if tss and math.isfinite(tss) and tss > 0 else None,
        converged=status in (1, 2, 3, 4) and finite,
        reason=REASONS.get(status, f"status {status}"),
        iterations=max(sums.jacobians - 1, 0), evaluations=sums.evaluations + sums.jacobians,
        jacobian_evaluations=sums.jacobians, method=METHOD, rows=rows, fixed=fix,
        warnings=warnings_, seconds=time.perf_counter() - began, parsed=formula,
        absolute_sigma=absolute_sigma and weighted, weighted=weighted,
        predictors=[n for n in tape.inputs if n in columns and
                    n in formula.names(formula.model)])


def _statistics(A: np.ndarray, variance: float, names: list[str], warnings_: list[str]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors and correlations from variance * (JᵀJ)⁻¹, with JᵀJ's columns scaled
    to unit diagonal; a direction whose eigenvalue is below 1e-20 of the largest (a singular
    value of J below 1e-10 of the largest, as in memory) is reported as not identifiable."""
    p = len(names)
    norms = np.sqrt(np.maximum(np.diag(A), 0.0))
    safe = np.where(norms > 0, norms, 1.0)
    scaled = A / np.outer(safe, safe)
    w, v = np.linalg.eigh(0.5 * (scaled + scaled.T))
    top = w[-1] if w.size and w[-1] > 0 else 0.0
    weak = [k for k in range(p) if top == 0 or w[k] <= 1e-20 * top]
    keep = [k for k in range(p) if k not in weak]
    inv = (v[:, keep] / w[keep]) @ v[:, keep].T
    cov = variance * inv / np.outer(safe, safe)
    bad = {names[j] for k in weak for j in range(p) if abs(v[j, k]) >= 0.1 * np.abs(v[:, k]).max()}
    bad |= {names[j] for j in range(p) if norms[j] == 0}
    if bad:
        shown = ", ".join(n for n in names if n in bad)
        warnings_.append(f"not identifiable from the data: {shown}; their standard errors "
                         "are reported as nan")
    for j, name in enumerate(names):
        if name in bad:
            cov[j, :] = np.nan
            cov[:, j] = np.nan
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    se = np.where(np.isnan(np.diag(cov)), np.nan, se)
    with np.errstate(all="ignore"):
        corr = cov / np.outer(se, se)
    np.fill_diagonal(corr, np.where(np.isnan(se), np.nan, 1.0))
    return se, corr


def least_squares_partitioned(function: Function, objective: Any, x0: np.ndarray
                              ) -> Any | None:
    """``minimize --data`` over partitions (a :class:`~adcli.distributed.DaskObjective`) when
    the expression is the square of a residual: Levenberg-Marquardt on the normal equations,
    as ``fit`` over partitions, instead of BFGS on the mean of squares (the in-memory route
    does the same with the full Jacobian, :func:`adcli.fitting.least_squares_minimize`). The
    data kept for the objective is reused. Returns a :class:`~adcli.results.MinimizeResult`,
    or None when the objective is not of that form (the caller then runs its own method)."""
    from .results import DIVERGED, LS_TOL, MAX_STEPS, MinimizeResult

    if objective.stochastic:
        return None
    formula = residual_formula(function, set(objective.bound))
    if formula is None:
        return None
    columns = set(objective.partitioned.use or [])
    tape = Function(formula.program).tape(columns)
    params = [n for n in tape.inputs if n not in columns]
    fixed = {n: float(v) for n, v in objective.fixed.items() if n in params}
    free = [n for n in params if n not in fixed]
    if sorted(free) != sorted(objective.names):
        return None  # e.g. a constant's name given a value: keep the general path
    order = [objective.names.index(n) for n in free]
    start = np.asarray(x0, dtype=np.float64)[order]
    sums = NormalSums(objective.partitioned, ("residual", objective.source, objective.bound),
                      free, fixed, objective.scheduler, objective.on_pass, objective._parts)
    try:
        x, status, rss, _ = lm_normal(sums, start, 1000 * (len(start) + 1))
    except FitError:
        return None  # not finite at the start: the general path reports it its own way
    if sums.last is not None and np.array_equal(sums.last[0], x):
        g = sums.last[2]
    else:
        rss, g, _ = sums.normal(x)
    objective.rows = sums.rows
    scale = 1.0 if objective.reduce == "sum" else 1.0 / sums.rows
    with np.errstate(all="ignore"):
        value = float(rss) * scale
        grad_free = 2.0 * scale * np.asarray(g)
    point = np.empty(len(start))
    grad = np.empty(len(start))
    for k, j in enumerate(order):
        point[j] = x[k]
        grad[j] = grad_free[k]
    message = REASONS.get(status, "")
    if not math.isfinite(value):
        reason, message = DIVERGED, ""
    elif status in (1, 2, 3, 4):
        reason = LS_TOL
    else:
        reason = MAX_STEPS
    return MinimizeResult(list(objective.names), point, value, grad,
                          max(sums.jacobians - 1, 0), sums.evaluations + sums.jacobians,
                          reason, "least-squares", message)
