"""``adcli fit`` over partitioned data (Dask): the in-memory fit's engine fed by sums.

The in-memory fit holds the full Jacobian J (rows x p). Over partitions only sums travel: each
partition returns rᵀr, Jᵀr and JᵀJ of its rows (computed by the same residual/Jacobian sweeps as
the in-memory fit, :class:`adcli.fitting.Residuals`), added in the fixed binary tree of
:class:`adcli.distributed.Partitions` (data kept in memory is read and checked once). From
them :class:`PartitionResiduals` builds a (p+1)-row least-squares problem with the same JᵀJ,
Jᵀr and rᵀr as the rows (J̃ = Λ^½Vᵀ from JᵀJ = VΛVᵀ, r̃ = [Λ^-½VᵀJᵀr, the rest of |r|]), and
the in-memory engine (:func:`adcli.leastsq.solve`, scipy's trf, whose steps read J only
through its singular values and vectors and Jᵀr) runs on it unchanged: the same iterations,
counts, stopping tests, bounds and time limit, and the same report
(:func:`adcli.fitting.conclude`). Only the sums' rounding differs (JᵀJ squares the condition
number: well-posed fits agree with memory to about 1e-10 relative).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .distributed import Partitions, Scheduler
from .fitting import FitResult, Residuals, check_time, conclude
from .formula import FitError, Formula, parse_formula
from .function import Function
from .leastsq import solve
from .problem import fit_setup
from .sources import PartitionedData


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
                     sigma: str | None = None, constants: tuple[str, ...] = ()
                     ) -> np.ndarray:
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
    # one lowered tape per worker and run (cached), not one per partition and pass
    res = Residuals(formula, columns, sigmas, dict(fixed), bound=set(constants),
                    function=_function(text))
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
                 parts: Partitions | None = None, sigma: str | None = None,
                 constants: Sequence[str] = ()) -> None:
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
        self.constants = tuple(sorted(constants))
        #: (b, rss, Jᵀr, JᵀJ) of the last ``normal`` pass
        self.last: tuple[np.ndarray, float, np.ndarray, np.ndarray] | None = None

    def _pass(self, b: np.ndarray, mode: str, mean: float = 0.0) -> np.ndarray:
        total = self.parts.sums(partition_normal, (self.text, self.fixed, self.free,
                                                   tuple(float(v) for v in b), mode, mean,
                                                   self.sigma, self.constants))
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


class PartitionResiduals:
    """The residual object :func:`adcli.leastsq.solve` drives, over partitions: a (p+1)-row
    problem with the rows' JᵀJ, Jᵀr and rᵀr (see the module's docstring).

    Every point costs one pass that returns all three, so the residual vector r̃ of a trial
    point already belongs to the J̃ of that point; when the engine accepts the point and asks
    for its Jacobian, no second pass runs."""

    def __init__(self, sums: NormalSums) -> None:
        self.sums = sums
        self.evaluations = 0
        self.jacobians = 0
        self.start_norms = np.ones(len(sums.free))
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def rows(self) -> int:
        return self.sums.rows

    def _at(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._last is None or not np.array_equal(self._last[0], b):
            rss, g, A = self.sums.normal(b)
            r, jac = compressed(rss, g, A)
            self._last = (np.array(b, dtype=np.float64), r, jac, np.diag(A).copy())
        return self._last[1], self._last[2], self._last[3]

    def residuals(self, b: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return self._at(b)[0].copy()

    def both(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, jac, diag = self._at(b)
        if self.jacobians == 0:
            self.start_norms = np.sqrt(np.maximum(diag, 0.0))
        self.jacobians += 1
        return r.copy(), jac.copy()


def compressed(rss: float, g: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r̃, J̃) with J̃ᵀJ̃ = A = JᵀJ, J̃ᵀr̃ = g = Jᵀr and |r̃|² = rss: J̃ = [Λ^½Vᵀ; 0] from
    A = VΛVᵀ, r̃ = [Λ^-½Vᵀg; sqrt(rss - |Λ^-½Vᵀg|²)]. A direction with no curvature (λ = 0)
    has no gradient either (g lies in the range of A), so it gets a zero."""
    p = len(g)
    with np.errstate(all="ignore"):
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(g)) and math.isfinite(rss)):
            return np.full(p + 1, math.nan), np.full((p + 1, p), math.nan)
        w, v = np.linalg.eigh(0.5 * (A + A.T))
        w = np.maximum(w, 0.0)
        root = np.sqrt(w)
        jac = np.zeros((p + 1, p))
        jac[:p] = root[:, None] * v.T
        c = np.where(root > 0, (v.T @ g) / np.where(root > 0, root, 1.0), 0.0)
        r = np.empty(p + 1)
        r[:p] = c
        r[p] = math.sqrt(max(rss - float(c @ c), 0.0))
    return r, jac


def fit_partitioned(text: str | Formula, data: PartitionedData, scheduler: Scheduler, *,
                    start: Mapping[str, float] | None = None,
                    fix: Mapping[str, float] | None = None,
                    bounds: Mapping[str, tuple[float, float]] | None = None,
                    params: Sequence[str] | None = None,
                    max_evaluations: int | None = None,
                    on_pass: Callable[[int, int], None] | None = None,
                    sigma: str | None = None, absolute_sigma: bool = False,
                    max_time: float | None = None, started: float | None = None) -> FitResult:
    """Fit ``LHS ~ MODEL`` to partitioned data: the setup of :func:`adcli.problem.fit_setup`,
    the engine of :func:`adcli.leastsq.solve` and the report of :func:`adcli.fitting.conclude`,
    exactly as in memory; only the sums come from the partitions."""
    began = time.perf_counter()
    formula = text if isinstance(text, Formula) else parse_formula(text)
    setup = fit_setup(formula, data.names, params=params, start=start, bounds=bounds, fix=fix,
                      sigma=sigma)
    data = data.select(setup.columns, data.dropna)
    constants = sorted(setup.bound - set(data.names))
    sums = NormalSums(data, formula.program.source, setup.free, setup.fixed, scheduler, on_pass,
                      sigma=sigma, constants=constants)
    res = PartitionResiduals(sums)
    p = len(setup.free)
    check_time(max_time, started)
    if not math.isfinite(sums.rss(setup.x0)):
        raise FitError("the residual is not finite at the start values; choose other start "
                       "values with --from")
    sums.evaluations = 0
    sol = solve(res, setup.x0, setup.lower, setup.upper,
                max_evaluations or 1000 * (p + 1), max_time=max_time, started=started)
    r, jac = res.both(sol.x)
    rss = float(r @ r)
    out = conclude(setup, res, sol, rss, jac, sums.rows, sigma is not None, absolute_sigma,
                   max_time, sums.tss)
    out.seconds = time.perf_counter() - began
    return out


def least_squares_partitioned(function: Function, objective: Any, x0: np.ndarray,
                              bounds: tuple[np.ndarray, np.ndarray] | None = None,
                              max_time: float | None = None, started: float | None = None
                              ) -> Any | None:
    """``minimize --data`` over partitions (a :class:`~adcli.distributed.DaskObjective`) when
    the expression is the square of a residual: the least-squares engine, fed by partition
    sums as ``fit`` over partitions is (the in-memory route,
    :func:`adcli.fitting.least_squares_minimize`, runs the same engine on the full Jacobian).
    The data kept for the objective is reused. Returns a
    :class:`~adcli.results.MinimizeResult`, or None when the objective is not of that form
    (the caller then runs its own method)."""
    from .fitting import ls_result

    if objective.stochastic:
        return None
    formula = residual_formula(function, set(objective.bound))
    if formula is None:
        return None
    columns = set(objective.partitioned.use or [])
    tape = Function(formula.program).tape(columns | set(objective.bound))
    params = [n for n in tape.inputs if n not in columns]
    fixed = {n: float(v) for n, v in objective.fixed.items() if n in params}
    free = [n for n in params if n not in fixed]
    if sorted(free) != sorted(objective.names):
        return None  # e.g. a constant's name given a value: keep the general path
    order = [objective.names.index(n) for n in free]
    start = np.asarray(x0, dtype=np.float64)[order]
    constants = sorted(set(objective.bound) - columns)
    sums = NormalSums(objective.partitioned, ("residual", objective.source, objective.bound),
                      free, fixed, objective.scheduler, objective.on_pass, objective._parts,
                      constants=constants)
    if not math.isfinite(sums.rss(start)):
        return None  # not finite at the start: the general path reports it its own way
    sums.evaluations = 0
    res = PartitionResiduals(sums)
    lower = np.full(len(start), -np.inf) if bounds is None else bounds[0][order]
    upper = np.full(len(start), np.inf) if bounds is None else bounds[1][order]
    sol = solve(res, start, lower, upper, 1000 * (len(start) + 1), max_time=max_time,
                started=started)
    r, jac = res.both(sol.x)
    objective.rows = sums.rows
    return ls_result(objective, free, sol, r, jac, sums.rows, bounds, max_time)
