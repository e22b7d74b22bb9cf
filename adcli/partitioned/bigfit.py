"""``adcli fit`` over partitioned data (Dask): the in-memory fit's engine, fed by partitions.

The in-memory fit factors its Jacobian J = QR and hands the least-squares engine the (p+1)-row
problem [R; 0], [Qᵀr; the rest of |r|] (:class:`adcli.regression.leastsq.Compressed`). Over
partitions each partition returns its own R, Qᵀr and rᵀr (computed by the same residual/Jacobian
sweeps,
:class:`adcli.regression.fitting.Residuals`), and the fixed binary tree of
:class:`adcli.partitioned.distributed.Partitions` joins them pairwise by a QR of the two stacked
factors (TSQR, :func:`adcli.regression.leastsq.qr_combine`): the engine, its iterations, counts,
stopping tests, bounds, time limit and report (:func:`adcli.regression.fitting.conclude`) are the
in-memory ones, and data in one partition runs the same arithmetic bit for bit. Only R, Qᵀr and rᵀr
travel (p² + p + 2 numbers a partition).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..function import Function
from ..io.sources import PartitionedData
from ..regression.fitting import FitResult, Residuals, conclude
from ..regression.formula import FitError, Formula, parse_formula
from ..regression.leastsq import Compressed, qr_combine, qr_sums, solve
from ..regression.problem import check_time, fit_setup
from ..regression.profile import Refit
from .checkpoint import (
    Checkpoint,
    data_fingerprint,
    pass_key,
    pass_size,
    problem_fingerprint,
)
from .distributed import Partitions, Scheduler


@functools.lru_cache(maxsize=8)
def _formula(text: str | tuple[str, str, tuple[str, ...]]) -> Formula:
    """The formula re-parsed on this worker by adcli's parser (never unpickled): ``text`` is
    a formula ``LHS ~ MODEL``, or ("residual", SOURCE, BOUND) for the residual r of a program
    whose output is r^2 (``minimize --data`` routed to least squares)."""
    if isinstance(text, str):
        return parse_formula(text, max_bytes=None)
    from ..function import parse

    formula = residual_formula(parse(text[1], max_bytes=None), set(text[2]))
    if formula is None:
        raise FitError("the expression is not the square of a residual")
    return formula


def residual_formula(function: Function, bound: set[str]) -> Formula | None:
    """The residual r of ``function`` when its output is r^2 (the program's statements kept,
    its output replaced by r), else None: as
    :func:`adcli.regression.lsminimize.least_squares_minimize`."""
    from ..core.syntax import Program, Statement
    from ..regression.lsminimize import squared_residual

    program = function.program
    node = squared_residual(program, function.tape(bound))
    if node is None:
        return None
    statements = list(program.statements[:-1]) + [Statement(None, node)]
    return Formula(Program(statements, program.source), None, node,
                   {s.name: s.expr for s in statements[:-1]})


@functools.lru_cache(maxsize=8)
def _lhs(text: str | tuple[str, str, tuple[str, ...]]) -> Function:
    """The formula's left side as a function, lowered once per worker like :func:`_function`."""
    from ..regression.fitting import _side

    formula = _formula(text)
    return _side(formula, formula.lhs)


@functools.lru_cache(maxsize=8)
def _function(text: str | tuple[str, str, tuple[str, ...]]) -> Function:
    return Function(_formula(text).program)


def partition_normal(columns: dict[str, np.ndarray], rows: int,
                     text: str | tuple[str, str, tuple[str, ...]],
                     fixed: tuple[tuple[str, float], ...], free: tuple[str, ...],
                     b: tuple[float, ...], mode: str, mean: float = 0.0,
                     sigma: str | None = None, constants: tuple[str, ...] = ()
                     ) -> np.ndarray:
    """One partition's sums: ``rss`` -> [rᵀr, rows]; ``qr`` -> [R (p*p), Qᵀr, rᵀr, rows]
    (:func:`adcli.regression.leastsq.qr_sums`); ``lhs`` -> [Σ w y, Σ w, rows]; ``tss`` -> [Σ w (y -
    mean)², rows] (y: the left side; w = 1/sigma² with a ``sigma`` column, else 1; r and J
    are divided by sigma)."""
    p = len(free)
    size = {"rss": 2, "qr": 2 + p + p * p, "lhs": 3, "tss": 2, "bad": 2}[mode]
    out = np.zeros(size)
    out[-1] = rows
    if rows == 0:
        return out
    formula = _formula(text)
    sigmas = None if sigma is None else _sigma_column(columns, sigma)
    if mode in ("lhs", "tss"):
        point: dict[str, Any] = dict(columns)
        y = np.broadcast_to(np.asarray(_lhs(text).eval(point), dtype=np.float64), (rows,))
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
        if mode in ("rss", "bad"):
            r = res.residuals(x)
            bad = np.flatnonzero(~np.isfinite(r))
            out[0] = r @ r if mode == "rss" else (bad[0] if bad.size else -1)
            return out
        out[:-1] = qr_sums(*res.both(x))
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
    """Passes over the partitions for one fit: rᵀr(b) and (R, Qᵀr, rᵀr)(b)."""

    def __init__(self, data: PartitionedData, text: str | tuple[str, str, tuple[str, ...]],
                 free: list[str], fixed: Mapping[str, float], scheduler: Scheduler,
                 on_pass: Callable[[int, int], None] | None = None,
                 parts: Partitions | None = None, sigma: str | None = None,
                 constants: Sequence[str] = (), checkpoint: Checkpoint | None = None) -> None:
        self.parts = parts or Partitions(data, scheduler, f"data '{data.path}'")
        self.checkpoint = checkpoint
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

    def _pass(self, b: np.ndarray, mode: str, mean: float = 0.0) -> np.ndarray:
        key = None if self.checkpoint is None else pass_key(mode, b, mean)
        total = None if key is None else self.checkpoint.answer(
            key, pass_size("partition_normal", (None, None, self.free, b, mode)))
        if total is None:
            total = self.parts.sums(partition_normal, (self.text, self.fixed, self.free,
                                                       tuple(float(v) for v in b), mode, mean,
                                                       self.sigma, self.constants),
                                    qr_combine if mode == "qr" else np.add)
        self.rows = int(total[-1])
        if self.rows == 0:  # as in memory: no estimate, no "converged", from no rows
            from ..io.data import DataError

            raise DataError(f"data '{self.path}' has no rows")
        self.passes += 1
        if key is not None:
            self.checkpoint.record(key, total, b if mode in ("rss", "qr") else None)
        if self.on_pass is not None:
            self.on_pass(self.passes, self.parts.count)
        return total

    def rss(self, b: np.ndarray) -> float:
        self.evaluations += 1
        return float(self._pass(b, "rss")[0])

    def bad_row(self, b: np.ndarray) -> int | None:
        """The first row (from 1, in file order) whose residual is not finite at ``b``: one
        partition after another, so only on the way to an error."""
        before = 0
        args = (self.text, self.fixed, self.free, tuple(float(v) for v in b), "bad", 0.0,
                self.sigma, self.constants)
        for index, rows in enumerate(self.parts.lengths()):
            found = self.parts.sample(index, np.arange(rows), partition_normal, args)
            if found[0] >= 0:
                return before + int(found[0]) + 1
            before += rows
        return None

    def qr(self, b: np.ndarray) -> np.ndarray:
        """[R, Qᵀr, rᵀr] of all the rows at ``b``: one pass."""
        self.jacobians += 1
        return self._pass(b, "qr")[:-1]

    def tss(self) -> float | None:
        """Σ (y - ȳ)² of the left side in two passes (mean first: no cancellation)."""
        first = self._pass(np.zeros(len(self.free)), "lhs")
        mean = float(first[0] / first[1])
        return float(self._pass(np.zeros(len(self.free)), "tss", mean)[0])


def fit_partitioned(text: str | Formula, data: PartitionedData, scheduler: Scheduler, *,
                    start: Mapping[str, float] | None = None,
                    fix: Mapping[str, float] | None = None,
                    bounds: Mapping[str, tuple[float, float]] | None = None,
                    params: Sequence[str] | None = None,
                    max_evaluations: int | None = None,
                    on_pass: Callable[[int, int], None] | None = None,
                    sigma: str | None = None, absolute_sigma: bool = False,
                    max_time: float | None = None, started: float | None = None,
                    checkpoint: str | None = None, resume: str | None = None) -> FitResult:
    """Fit ``LHS ~ MODEL`` to partitioned data: the setup of
    :func:`adcli.regression.problem.fit_setup`, the engine of :func:`adcli.regression.leastsq.solve`
    and the report of :func:`adcli.regression.fitting.conclude`, exactly as in memory; only the sums
    come from the partitions. ``checkpoint``/``resume``: files of
    :mod:`adcli.partitioned.checkpoint`."""
    began = time.perf_counter()
    formula = text if isinstance(text, Formula) else parse_formula(text)
    setup = fit_setup(formula, data.names, params=params, start=start, bounds=bounds, fix=fix,
                      sigma=sigma)
    data = data.select(setup.columns, data.dropna)
    constants = sorted(setup.bound - set(data.names))
    journal = None
    if checkpoint or resume:
        journal = Checkpoint(checkpoint, resume, problem_fingerprint(
            {"command": "fit", "expression": formula.program.source,
             "data": data_fingerprint(data.files), "data options": [data.sep, data.headers,
                                                                    data.use, data.dropna],
             "start": setup.x0, "free": setup.free, "fixed": setup.fixed,
             "lower": setup.lower, "upper": setup.upper, "sigma": sigma,
             "max_evaluations": max_evaluations}), setup.free)
    sums = NormalSums(data, formula.program.source, setup.free, setup.fixed, scheduler, on_pass,
                      sigma=sigma, constants=constants, checkpoint=journal)
    p = len(setup.free)
    res = Compressed(sums.qr, p)
    check_time(max_time, started)
    if not math.isfinite(sums.rss(setup.x0)):
        row = sums.bad_row(setup.x0)
        where = "" if row is None else f", at data row {row}"
        raise FitError(f"the residual is not finite at the start values{where}; choose other "
                       "start values with --from")
    sums.evaluations = 0
    sol = solve(res, setup.x0, setup.lower, setup.upper,
                max_evaluations or 1000 * (p + 1), max_time=max_time, started=started,
                interrupt=True)
    jac = res.both(sol.x)[1]
    out = conclude(setup, res, sol, res.rss(sol.x), jac, sums.rows, sigma is not None,
                   absolute_sigma, max_time, sums.tss)

    def engine_for(fixed: dict[str, float]) -> tuple[Compressed, Callable]:
        """Profile refits (adcli.regression.profile) over the same partitions, while the
        scheduler is up."""
        more = NormalSums(data, formula.program.source, [n for n in setup.free
                                                          if n not in fixed],
                          fixed, scheduler, on_pass, parts=sums.parts, sigma=sigma,
                          constants=constants)
        return Compressed(more.qr, len(more.free)), more.rss

    out.refit = Refit(engine_for, list(setup.free), dict(setup.fixed), setup.lower.copy(),
                      setup.upper.copy(), max_evaluations or 1000 * (p + 1))
    out.seconds = time.perf_counter() - began
    return out


def least_squares_partitioned(function: Function, objective: Any, x0: np.ndarray,
                              bounds: tuple[np.ndarray, np.ndarray] | None = None,
                              max_time: float | None = None, started: float | None = None
                              ) -> Any | None:
    """``minimize --data`` over partitions (a :class:`~adcli.partitioned.distributed.DaskObjective`)
    when the expression is the square of a residual: the least-squares engine, fed by partition sums
    as ``fit`` over partitions is (the in-memory route,
    :func:`adcli.regression.lsminimize.least_squares_minimize`, runs the same engine on the full
    Jacobian). The data kept for the objective is reused. Returns a
    :class:`~adcli.results.MinimizeResult`, or None when the objective is not of that form
    (the caller then runs its own method)."""
    from ..regression.lsminimize import ls_result

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
    res = Compressed(sums.qr, len(free))
    lower = np.full(len(start), -np.inf) if bounds is None else bounds[0][order]
    upper = np.full(len(start), np.inf) if bounds is None else bounds[1][order]
    sol = solve(res, start, lower, upper, 1000 * (len(start) + 1), max_time=max_time,
                started=started, interrupt=True)
    r, jac = res.both(sol.x)
    objective.rows = sums.rows
    return ls_result(objective, free, sol, r, jac, sums.rows, bounds, max_time)
