"""Nonlinear least squares: ``LHS ~ MODEL`` over the rows of data, fitted by a trust-region
Levenberg-Marquardt method on the exact Jacobian of the residuals.

The residual of row i is ``LHS_i - MODEL_i``. Which names are parameters, where they start and
what is refused is decided by :mod:`adcli.regression.problem`, as for the Dask engine. The Jacobian
d r_i / d b_j comes from the tape by vectorised reverse sweeps over cache-sized blocks of rows:
the parameters enter as constant columns, so each row's reverse sweep gives that row's
gradient (:func:`_jacobian`, the one place that reaches the compiled sweeps). The engine is
adcli's numpy Levenberg-Marquardt (scipy's trust-region reflective ``least_squares`` under
bounds) with MINPACK's scale-free stopping, on the QR-compressed problem (see
:func:`adcli.regression.leastsq.solve`; bench/README.md has the measurements behind the choice).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..core import sweeps
from ..core.records import Record
from ..core.syntax import Program, Statement
from ..function import Function
from ..language.parser import DEFAULT_MAX_SOURCE_BYTES
from ..results import Key
from .formula import FitError, Formula, nest_elements, parse_bounds, parse_formula  # noqa: F401
from .leastsq import (
    INTERRUPT_STATUS,
    REASONS,
    TIME_STATUS,
    Compressed,
    covariance,
    qr_sums,
    solve,
)
from .problem import FitSetup, check_time, fit_setup, negative_r_squared, zero_columns
from .uncertainty import Uncertain, report_json

# --------------------------------------------------------------------------- residuals, Jacobian


#: The Jacobian is held in memory (rows x free parameters float64): refuse more than 1 GB.
MAX_JACOBIAN_VALUES = 125_000_000

#: Rows per sweep: a block's columns stay in cache (bench/README.md: much faster than one
#: sweep over all rows).
ROW_BLOCK = 32768


def _jacobian(function: Function, bound: set[str], values: list[Any], wrt: list[str]
              ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual column and per-row derivatives d r / d ``wrt`` (inputs in tape order, with the
    parameters passed as full columns so every row keeps its own gradient). The one call into
    the compiled sweeps: re-point it here if they move."""
    return function.compiled(bound).sweep_columns(values, wrt=wrt)


def _evaluate(function: Function, bound: set[str], values: list[Any]) -> Any:
    """The residual column alone (a trial step): the interpreter's one forward pass over the
    columns, cheaper than a sweep that also prepares adjoints."""
    tape = function.tape(bound)
    return sweeps.evaluate(tape, dict(zip(tape.inputs, values)))[tape.output]


class Residuals:
    """r(b) and J(b) of a formula over data columns, optionally divided by sigma per row."""

    def __init__(self, formula: Formula, columns: Mapping[str, np.ndarray],
                 sigma: np.ndarray | None = None, fixed: Mapping[str, float] | None = None,
                 bound: set[str] | None = None, function: Function | None = None) -> None:
        self.formula = formula
        self.function = function or Function(formula.program)
        #: the columns, and ``e``/``pi`` when they are parameters (:mod:`adcli.regression.problem`)
        self.bound = set(columns) | (bound or set())
        tape = self.function.tape(self.bound)
        self.inputs = list(tape.inputs)
        #: every parameter (tape order), and those the engine moves (not ``fixed``)
        self.params = [n for n in self.inputs if n not in columns]
        self.fixed = {n: float(v) for n, v in (fixed or {}).items() if n in self.params}
        self.free = [n for n in self.params if n not in self.fixed]
        self.rows = len(next(iter(columns.values())))
        self.columns = {n: np.asarray(columns[n], dtype=np.float64) for n in self.inputs
                        if n in columns}
        self.weight = None if sigma is None else 1.0 / np.asarray(sigma, dtype=np.float64)
        self.evaluations = 0
        self.jacobians = 0
        #: the norms of the Jacobian's columns at the first Jacobian (the start)
        self.start_norms = np.ones(len(self.free))

    def _point(self, b: np.ndarray) -> dict[str, float]:
        at = dict(self.fixed)
        at.update(zip(self.free, (float(v) for v in b)))
        return at

    def _blocks(self) -> range:
        return range(0, self.rows, ROW_BLOCK)

    def both(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and Jacobian (rows x free parameters, column-major) at ``b``: one sweep per
        block of rows, the parameters entering as constant columns so each row keeps its own
        gradient."""
        at = self._point(b)
        r = np.empty(self.rows)
        # Column-major: column norms, J^T r and LAPACK all read a parameter's column at once.
        jac = np.empty((len(self.free), self.rows))
        full = {n: np.full(min(ROW_BLOCK, self.rows), at[n]) for n in self.params}
        for lo in self._blocks():
            hi = min(lo + ROW_BLOCK, self.rows)
            values = [self.columns[n][lo:hi] if n in self.columns else full[n][:hi - lo]
                      for n in self.inputs]
            value, grads = _jacobian(self.function, self.bound, values, self.free)
            by_name = dict(zip(self.inputs, grads))
            r[lo:hi] = value
            for j, name in enumerate(self.free):
                jac[j, lo:hi] = by_name[name]
        jac = jac.T
        if self.weight is not None:
            r *= self.weight
            jac *= self.weight[:, None]
        if self.jacobians == 0:
            self.start_norms = np.linalg.norm(jac, axis=0)
        self.jacobians += 1
        return r, jac

    def residuals(self, b: np.ndarray) -> np.ndarray:
        """Residuals only (a trial step): parameters as scalars, no gradient passes."""
        at = self._point(b)
        r = np.empty(self.rows)
        with np.errstate(all="ignore"):
            for lo in self._blocks():
                hi = min(lo + ROW_BLOCK, self.rows)
                values = [self.columns[n][lo:hi] if n in self.columns else np.float64(at[n])
                          for n in self.inputs]
                r[lo:hi] = _evaluate(self.function, self.bound, values)
        if self.weight is not None:
            r *= self.weight
        self.evaluations += 1
        return r


class FitResult(Uncertain, Record):
    """The outcome of a fit, with the statistics of R's ``summary(nls)``; ``observed``,
    ``fitted``: the left side and the model per row at the estimates; ``covariance``, ``start``:
    s²(JᵀJ)⁻¹ and the start of the free parameters (:class:`.uncertainty.Uncertain`). A plain
    class with a dataclass's ``==`` and ``repr`` (``FIELDS`` in the arguments' order; ``repr``
    leaves out the per-row arrays, the parsed formula and the covariance): making a dataclass
    runs generated code at import."""

    FIELDS = __match_args__ = (
        "formula", "parameters", "stderr", "correlation_names", "correlation", "rss",
        "residual_std", "dof", "r_squared", "converged", "reason", "iterations", "evaluations",
        "jacobian_evaluations", "method", "rows", "fixed", "at_bound", "warnings", "seconds",
        "absolute_sigma", "weighted", "observed", "fitted", "predictors", "parsed",
        "covariance", "start")
    SHOWN = tuple(n for n in FIELDS if n not in ("observed", "fitted", "parsed", "covariance"))

    def __init__(self, formula: str, parameters: dict[str, float], stderr: dict[str, float],
                 correlation_names: list[str], correlation: np.ndarray, rss: float,
                 residual_std: float, dof: int, r_squared: float | None, converged: bool,
                 reason: str, iterations: int, evaluations: int, jacobian_evaluations: int,
                 method: str, rows: int, fixed: dict[str, float] | None = None,
                 at_bound: list[str] | None = None, warnings: list[str] | None = None,
                 seconds: float = 0.0, absolute_sigma: bool = False, weighted: bool = False,
                 observed: np.ndarray | None = None, fitted: np.ndarray | None = None,
                 predictors: list[str] | None = None, parsed: Formula | None = None,
                 covariance: np.ndarray | None = None, start: dict[str, float] | None = None,
                 ) -> None:
        (self.formula, self.parameters, self.stderr, self.correlation_names, self.correlation,
         self.rss, self.residual_std, self.dof, self.r_squared, self.converged, self.reason,
         self.iterations, self.evaluations, self.jacobian_evaluations, self.method, self.rows,
         self.seconds, self.absolute_sigma, self.weighted, self.parsed) = (
            formula, parameters, stderr, correlation_names, correlation, rss, residual_std, dof,
            r_squared, converged, reason, iterations, evaluations, jacobian_evaluations, method,
            rows, seconds, absolute_sigma, weighted, parsed)
        self.fixed = {} if fixed is None else fixed
        self.at_bound = [] if at_bound is None else at_bound
        self.warnings = [] if warnings is None else warnings
        self.observed = np.zeros(0) if observed is None else observed
        self.fitted = np.zeros(0) if fitted is None else fitted
        self.predictors = [] if predictors is None else predictors
        self.covariance = np.zeros((0, 0)) if covariance is None else covariance
        self.start = {} if start is None else start

    def predict(self, columns: Mapping[str, Any], band: str | None = None,
                level: float = 0.95, sigma: Any = None) -> Any:
        """The model (right side) at the estimates for new values of its data columns; with
        ``band`` ("confidence"/"prediction") its band too (:func:`.bands.predict`)."""
        from .bands import predict

        return predict(self, columns, band, level, sigma)

    def relative_error(self, name: str) -> float:
        """Standard error as a percentage of the value (inf for a zero value)."""
        v, e = self.parameters[name], self.stderr.get(name, math.nan)
        if math.isnan(e) or v != 0:
            return abs(e / v) * 100.0 if v != 0 else math.nan
        return 0.0 if e == 0 else math.inf

    # The uncertainty report's keys follow the estimates (adcli.regression.uncertainty).
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("parameters", lambda r: nest_elements(r.parameters)),
        Key("stderr", lambda r: nest_elements(r.stderr)),
        Key("correlation", lambda r: {"names": r.correlation_names,
                                      "matrix": r.correlation.tolist()}),
        Key("rss"), Key("residual_std"), Key("dof"), Key("r_squared"), Key("converged"),
        Key("reason"), Key("iterations"), Key("evaluations"), Key("method"),
        Key("uncertainty", report_json, spread=True), Key("rows"))


# --------------------------------------------------------------------------- the driver


def _column(values: Any, rows: int, what: str) -> np.ndarray:
    col = np.asarray(values, dtype=np.float64)
    if col.shape != (rows,):
        raise FitError(f"{what} has shape {col.shape}; expected one value per row ({rows})")
    return col


def _sigma(sigma: Any, columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray | None:
    if sigma is None:
        return None
    if isinstance(sigma, str):
        if sigma not in columns:
            raise FitError(f"--sigma '{sigma}' is not a column of the data (columns: "
                           f"{', '.join(columns)})")
        col, what = columns[sigma], f"sigma column '{sigma}'"
    else:
        col, what = _column(sigma, rows, "sigma"), "sigma"
    bad = np.flatnonzero(~(np.isfinite(col) & (col > 0)))
    if bad.size:
        raise FitError(f"{what} must be positive and finite; row {bad[0] + 1} is "
                       f"{col[bad[0]]!r}")
    return col


def _bad_row(r: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(r))[0]) + 1


def fit(text: str | Formula, data_columns: Mapping[str, Any], *,
        start: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        fix: Mapping[str, float] | None = None, sigma: Any = None,
        absolute_sigma: bool = False, max_evaluations: int | None = None,
        max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES,
        max_time: float | None = None, started: float | None = None,
        params: Sequence[str] | None = None, journal: Any = None) -> FitResult:
    """Fit ``LHS ~ MODEL`` (text, or a formula parsed once by the caller) to data columns by
    least squares; parameters start at 1 unless ``start`` says otherwise, and ``params``
    declares them exactly (see :func:`adcli.regression.problem.fit_setup` for every name rule).
    ``bounds`` maps a parameter to (lo, hi) (use +-inf for one side), ``fix`` holds
    parameters at given values, ``sigma`` (a column name or one value per row) weights row i
    by 1/sigma_i^2; with ``absolute_sigma`` the standard errors take sigma as the true errors
    (curve_fit's meaning) instead of rescaling by the residual variance. ``max_time``
    (seconds from ``started``, a ``time.monotonic()``, default now) stops the engine at the
    best point so far, not converged. ``journal(free)`` wraps each sweep (``--checkpoint``)."""
    from ..io.data import DataError, from_columns

    began = time.perf_counter()
    formula = text if isinstance(text, Formula) else parse_formula(text, max_bytes=max_bytes)
    try:
        data = from_columns(data_columns)
    except DataError as err:
        raise FitError(err.message) from None
    columns = data.columns
    rows = data.rows
    setup = fit_setup(formula, list(columns), params=params, start=start, bounds=bounds,
                      fix=fix, sigma=sigma if isinstance(sigma, str) else None)
    for name in setup.columns:
        col = columns[name]
        if not np.all(np.isfinite(col)):
            raise FitError(f"column '{name}' has a non-finite value at row "
                           f"{_bad_row(col)}")
    weights = _sigma(sigma, columns, rows)
    res = Residuals(formula, columns, weights, setup.fixed, bound=setup.bound)
    p = len(setup.free)
    if rows * p > MAX_JACOBIAN_VALUES:
        raise FitError(f"{rows:,} rows x {p} parameters is too large a Jacobian "
                       f"({rows * p * 8 / 1e9:.1f} GB; the limit is "
                       f"{MAX_JACOBIAN_VALUES * 8 / 1e9:.0f} GB)")
    check_time(max_time, started)
    r0 = res.residuals(setup.x0)
    if not np.all(np.isfinite(r0)):
        raise FitError(f"the residual is not finite at the start values, at data row "
                       f"{_bad_row(r0)}; choose other start values with --from")
    engine = Compressed(lambda b: qr_sums(*res.both(b)), p,  # as over partitions
                        journal and journal(setup.free))
    sol = solve(engine, setup.x0, setup.lower, setup.upper,
                max_evaluations or 1000 * (p + 1), max_time=max_time, started=started,
                interrupt=True)
    jac = engine.both(sol.x)[1]
    out = conclude(setup, engine, sol, engine.rss(sol.x), jac, rows, weights is not None,
                   absolute_sigma, max_time, lambda: _tss(formula, res, columns))
    r = res.residuals(sol.x)
    point = {n: columns[n] for n in formula.names(formula.lhs) if n in columns}
    point.update(out.parameters)
    out.observed = np.broadcast_to(np.asarray(_side(formula, formula.lhs).eval(point),
                                              dtype=np.float64), (rows,)).copy()
    out.fitted = out.observed - (r if weights is None else r * weights)
    out.keep_problem(res, setup, max_evaluations or 1000 * (p + 1))  # for --ci profile
    out.seconds = time.perf_counter() - began
    return out


def conclude(setup: FitSetup, res: Any, sol: Any, rss: float, jac: np.ndarray, rows: int,
             weighted: bool, absolute_sigma: bool, max_time: float | None,
             tss: Any) -> FitResult:
    """The report of a fit from where the engine stopped: the same statistics and messages
    whichever engine swept the rows (``jac`` is J, or any matrix with J's JᵀJ; ``tss`` a
    callable giving the weighted total sum of squares of the left side, or None)."""
    warnings_ = list(setup.warnings) + zero_columns(setup.free, res.start_norms)
    finite = bool(np.isfinite(rss))
    converged = sol.status in (1, 2, 3, 4) and finite
    reason = REASONS.get(sol.status, f"status {sol.status}")
    if sol.status == TIME_STATUS:
        reason = _time_message(max_time)
    names, p = list(setup.free), len(setup.free)
    dof = rows - p
    variance = rss / dof if dof > 0 else math.nan
    scale = 1.0 if (absolute_sigma and weighted) else variance
    cov = covariance(jac, names, scale) if finite else None
    if dof <= 0:
        warnings_.append(f"{rows} rows for {p} parameters: no degrees of freedom left, so no "
                         "standard errors")
    if cov is not None:
        for group in cov.unidentifiable:
            warnings_.append(
                f"not identifiable from the data: {', '.join(group)} (a direction of the "
                "Jacobian with a near-zero singular value); their standard errors are "
                "reported as nan")
        se, corr = cov.errors()
    else:
        se, corr = np.full(p, np.nan), np.full((p, p), np.nan)
    matrix = cov.matrix if cov is not None else np.full((p, p), np.nan)
    at_bound = []
    for j, name in enumerate(names):
        for edge in (setup.lower[j], setup.upper[j]):
            if np.isfinite(edge) and abs(sol.x[j] - edge) <= 1e-8 * max(1.0, abs(edge)):
                at_bound.append(name)
                warnings_.append(f"{name} is at its bound {edge:g}: its standard error "
                                 "ignores the bound")
    x_by = dict(zip(names, (float(v) for v in sol.x)))
    parameters = {n: x_by[n] if n in x_by else setup.fixed[n] for n in setup.params}
    formula = setup.formula
    total = tss() if finite and sol.status != INTERRUPT_STATUS and not (  # none on Ctrl-C
        formula.names(formula.lhs) - set(setup.columns)) else None
    r_squared = 1.0 - rss / total if total and math.isfinite(total) and total > 0 else None
    if converged:
        warnings_ += negative_r_squared(r_squared)
    elif finite:  # what minimize --stderr says at a run that did not converge
        warnings_.insert(0, "the fit did not converge: its standard errors, t and p values "
                            "and intervals are at its last point, not at a minimum")
    return FitResult(
        formula=formula.program.source, parameters=parameters,
        stderr={n: float(e) for n, e in zip(names, se)},
        correlation_names=names, correlation=corr, rss=rss,
        residual_std=math.sqrt(variance) if dof > 0 and finite else math.nan,
        dof=dof, r_squared=r_squared, converged=converged, reason=reason,
        iterations=max(sol.jacobians - 1, 0), evaluations=sol.evaluations,
        jacobian_evaluations=sol.jacobians, method=sol.describe(),
        rows=rows, fixed=dict(setup.fixed), at_bound=at_bound,
        warnings=warnings_, absolute_sigma=absolute_sigma and weighted, weighted=weighted,
        parsed=formula, predictors=list(setup.predictors), covariance=matrix,
        start={n: float(v) for n, v in zip(names, setup.x0)})


def _side(formula: Formula, node: Any) -> Function:
    """One side of the formula (with the let-bindings) as a function of its own."""
    return Function(Program(list(formula.program.statements[:-1]) + [Statement(None, node)],
                            formula.program.source))


def _tss(formula: Formula, res: Residuals, columns: Mapping[str, np.ndarray]) -> float:
    """Σ w (y - ȳ)² of the left side about its (weighted) mean (R² = 1 - RSS/TSS)."""
    point = {n: columns[n] for n in formula.names(formula.lhs)}
    y = np.broadcast_to(np.asarray(_side(formula, formula.lhs).eval(point), dtype=np.float64),
                        (res.rows,))
    w = np.ones(res.rows) if res.weight is None else res.weight ** 2
    mean = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mean) ** 2))


def _time_message(max_time: float | None) -> str:
    return (f"the time limit of {max_time or 0:g} s was reached (--max-time; 0 for no limit); "
            "the best point so far is reported")
