"""Confidence and prediction bands of a fitted model at new rows (``adcli eval --band``,
:meth:`adcli.regression.fitting.FitResult.predict`).

The band of row i needs g_i, the gradient of the model's value at that row with respect to
the fitted parameters: one column sweep over all the rows gives every g_i at once (the
parameters enter as full columns, so each row keeps its own gradient, as in the fit's
Jacobian). Then se_fit = sqrt(gᵀCg) with C the fit's covariance (the delta method; exact for a
model linear in its parameters), and a prediction adds the noise variance of a new
observation: s², or s²σ² for a weighted fit, or σ² when σ are absolute errors. The quantile is
Student's t with the fit's degrees of freedom (normal with absolute errors), from
``scipy.special`` as in :mod:`adcli.regression.uncertainty`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..core.syntax import Program, Statement
from ..errors import AdcliError
from ..function import Function
from .formula import FitError, Formula, _tilde_positions, parse_formula
from .uncertainty import quantile

if TYPE_CHECKING:
    from .fitting import FitResult

KINDS = ("confidence", "prediction")
#: Rows per sweep: the per-row gradients in flight stay small (rows x parameters).
BLOCK_ROWS = 1 << 15
#: A fit's JSON is read up to this size (as ``--at @FILE``).
MAX_FIT_FILE_BYTES = 16 << 20


class Prediction(NamedTuple):
    """A fitted model at new rows with its band (:meth:`FitResult.predict` with ``band``)."""

    value: np.ndarray
    se_fit: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class FitUncertainty:
    """What a band needs from a fit: estimates, their covariance over ``names`` (the free
    parameters), the degrees of freedom and residual standard deviation, and whether the
    fit was weighted and its σ taken as absolute errors."""

    parameters: dict[str, float]
    names: list[str]
    covariance: np.ndarray
    dof: int
    residual_std: float
    weighted: bool = False
    absolute_sigma: bool | None = False  # None: a fit file that does not say

    @classmethod
    def from_result(cls, result: FitResult) -> FitUncertainty:
        """The band's view of a fit in memory."""
        return cls(dict(result.parameters), list(result.correlation_names),
                   np.asarray(result.covariance, dtype=np.float64), int(result.dof),
                   float(result.residual_std), bool(result.weighted),
                   bool(result.absolute_sigma))


def _number(value: Any) -> float | None:
    """A JSON number, or adcli's strings for non-finite ones; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf"):
        return float(value)
    return None


def fit_covariance(obj: Any, where: str) -> tuple[dict[str, float], list[str], np.ndarray]:
    """The parameters of ``adcli fit --json`` output and the covariance of the free ones
    (names, matrix); one error naming what is missing or malformed."""
    need = "the output of adcli fit --json"
    if not isinstance(obj, dict):
        raise FitError(f"{where} is not a fit ({need}): expected a JSON object")
    missing = [k for k in ("parameters", "covariance") if k not in obj]
    if missing:
        raise FitError(f"{where} has no {' and no '.join(repr(k) for k in missing)} ({need})")
    params, cov = obj["parameters"], obj["covariance"]
    if not isinstance(params, dict):
        raise FitError(f"{where}: 'parameters' is not an object of name: number")
    if not (isinstance(cov, dict) and isinstance(cov.get("names"), list)
            and isinstance(cov.get("matrix"), list)):
        raise FitError(f"{where}: 'covariance' is not {{\"names\": [...], \"matrix\": "
                       "[[...]]}")
    names = cov["names"]
    k = len(names)
    if not all(isinstance(n, str) for n in names) or len(set(names)) != k:
        raise FitError(f"{where}: the covariance's names are not distinct names")
    parameters: dict[str, float] = {}
    for name, value in _flat(params, names).items():
        v = _number(value)
        if v is None:
            raise FitError(f"{where}: the parameter '{name}' is not a number")
        parameters[name] = v
    rows = cov["matrix"]
    if len(rows) != k or any(not isinstance(r, list) or len(r) != k for r in rows):
        raise FitError(f"{where}: the covariance matrix is not {k} x {k} (one row and column "
                       "per name)")
    matrix = np.empty((k, k))
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            v = _number(value)
            if v is None:
                raise FitError(f"{where}: covariance entry ({i + 1}, {j + 1}) is not a number")
            matrix[i, j] = v
    unknown = [n for n in names if n not in parameters]
    if unknown:
        raise FitError(f"{where}: the covariance names '{unknown[0]}', which is not among "
                       "the parameters")
    return parameters, list(names), matrix


def fit_from_json(obj: Any, where: str) -> FitUncertainty:
    """The band's view of ``adcli fit --json`` output; one error naming what is missing."""
    parameters, names, matrix = fit_covariance(obj, where)
    missing = [k for k in ("dof", "residual_std") if k not in obj]
    if missing:
        raise FitError(f"{where} has no {' and no '.join(repr(k) for k in missing)}: a band "
                       "needs the fit's dof and residual_std (the output of adcli fit --json)")
    dof, s = _number(obj["dof"]), _number(obj["residual_std"])
    if dof is None or not math.isfinite(dof) or dof != int(dof):
        raise FitError(f"{where}: 'dof' is not a whole number")
    if s is None:
        raise FitError(f"{where}: 'residual_std' is not a number")
    return FitUncertainty(parameters, names, matrix, int(dof), s,
                          weighted=obj.get("reduced_chi_square") is not None,
                          absolute_sigma=(obj["absolute_sigma"] is True
                                          if "absolute_sigma" in obj else None))


def _flat(params: dict, names: list) -> dict[str, Any]:
    """``{"b": [1, 2]}`` (an indexed parameter, as fit writes it) -> ``{"b[1]": 1, ...}``:
    the first item is index 0 when the covariance names an element ``b[0...]``, else 1
    (:func:`adcli.results.nest_elements`); iterative over nested lists."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(value, list):
            out[name] = value
            continue
        origin = 0 if any(isinstance(n, str) and n.startswith(f"{name}[0") for n in names) \
            else 1
        stack: list[tuple[list, tuple[int, ...]]] = [(value, ())]
        while stack:
            items, prefix = stack.pop()
            if len(prefix) > 8:
                raise FitError(f"the parameter '{name}' is nested more than 8 deep")
            for i, v in enumerate(items):
                index = (*prefix, origin + i)
                if isinstance(v, list):
                    stack.append((v, index))
                elif v is not None:
                    out[f"{name}[{','.join(map(str, index))}]"] = v
    return out


def read_fit_file(path: str, option: str = "--at") -> FitUncertainty | None:
    """``@FILE`` as a fit for a band: None when it is JSON without a covariance (a plain
    point file), so the caller can look at its other ``@`` files."""
    from ..io.inputs import read_bounded

    raw = read_bounded(path, MAX_FIT_FILE_BYTES, f"'{path}'", option)
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FitError(f"{option} @{path}: not a JSON file") from None
    if not (isinstance(obj, dict) and "covariance" in obj):
        return None
    return fit_from_json(obj, f"{option} @{path}")


def model_function(text: str, max_bytes: int | None = None) -> Function | None:
    """The model side of ``[lets;] LHS ~ MODEL`` as a function (so a fit's own formula can
    be evaluated at new rows), or None when ``text`` is no formula."""
    if not _tilde_positions(text):
        return None
    return _model_of(parse_formula(text, max_bytes=max_bytes))


def _model_of(formula: Formula) -> Function:
    """The model side of a formula, with its let-bindings, as a function of its own."""
    return Function(Program(list(formula.program.statements[:-1])
                            + [Statement(None, formula.model)], formula.program.source))


def noise_variance(fit: FitUncertainty, absolute_sigma: bool, sigma: Any) -> Any:
    """The variance of a new observation: s² (unweighted), s²σ² (weighted, σ relative) or
    σ² (``absolute_sigma``), ``sigma`` per row or one number."""
    if absolute_sigma or fit.weighted:
        if sigma is None:
            raise FitError("a prediction band of a weighted fit needs the new rows' errors: "
                           "--sigma COLUMN or a number")
        sig = np.asarray(sigma, dtype=np.float64)
        return sig * sig if absolute_sigma else fit.residual_std ** 2 * sig * sig
    return fit.residual_std ** 2


def band(function: Function, columns: Mapping[str, Any], point: Mapping[str, float],
         fit: FitUncertainty, kind: str = "confidence", level: float = 0.95,
         absolute_sigma: bool = False, sigma: Any = None, rows: int | None = None
         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's value at every row (data ``columns``; ``point`` the parameters and any
    other names) and its band: ``{"se_fit", "lower", "upper"}`` columns."""
    if kind not in KINDS:
        raise FitError(f"--band '{kind}' is not one of {', '.join(KINDS)}")
    if not 0.0 < level < 1.0:
        raise FitError(f"--level {level!r} must be between 0 and 1, exclusive")
    if absolute_sigma and not fit.weighted:
        raise FitError("--absolute-sigma: the fit was not weighted (no --sigma), so its "
                       "covariance is scaled by the residual variance")
    # the fit's covariance is scaled one way or the other: the band must scale alike
    if absolute_sigma and fit.absolute_sigma is False:
        raise FitError("--absolute-sigma: the fit took its --sigma as relative errors (it "
                       "had no --absolute-sigma), so its covariance is scaled by the "
                       "reduced chi-square")
    absolute_sigma = absolute_sigma or bool(fit.absolute_sigma)
    # the new rows' errors enter only a prediction of a weighted fit: elsewhere they would be
    # accepted and ignored
    if sigma is not None and kind != "prediction":
        raise FitError("--sigma gives the new rows' errors, which only --band prediction uses")
    if sigma is not None and not fit.weighted:
        raise FitError("--sigma: the fit was not weighted (no --sigma), so a prediction adds "
                       "its residual variance and the new rows' errors are not used")
    bound = set(point) | set(columns)
    tape = function.tape(bound)
    missing = [n for n in fit.names if n in tape.inputs and n not in point]
    if missing:
        raise FitError(f"the fitted parameter '{missing[0]}' has no value")
    names = [n for n in fit.names if n in tape.inputs]
    index = [fit.names.index(n) for n in names]
    cov = fit.covariance[np.ix_(index, index)]
    if rows is None:
        shapes = {np.shape(columns[n]) for n in tape.inputs if n in columns} - {()}
        if len(shapes) > 1 or any(len(sh) != 1 for sh in shapes):
            raise FitError("the data columns are not 1-D columns of one length")
        rows = next(iter(shapes))[0] if shapes else 1
    compiled = function.compiled(bound)
    value = np.empty(rows)
    variance = np.empty(rows)
    for lo in range(0, rows, BLOCK_ROWS):
        hi = min(lo + BLOCK_ROWS, rows)
        xs = []
        for n in tape.inputs:
            if n in columns:
                col = np.asarray(columns[n], dtype=np.float64)
                xs.append(np.broadcast_to(col, (rows,))[lo:hi] if col.ndim else col)
            else:  # a parameter: a full column, so each row keeps its own gradient
                xs.append(np.full(hi - lo, point[n]) if n in names else np.float64(point[n]))
        with np.errstate(all="ignore"):
            v, grads = compiled.sweep_columns(xs, wrt=names)
            by_name = dict(zip(tape.inputs, grads))
            g = np.empty((hi - lo, len(names)))
            for j, n in enumerate(names):
                g[:, j] = np.broadcast_to(np.asarray(by_name[n], dtype=np.float64), (hi - lo,))
            value[lo:hi] = np.broadcast_to(np.asarray(v, dtype=np.float64), (hi - lo,))
            variance[lo:hi] = np.einsum("ij,jk,ik->i", g, cov, g) if names else 0.0
    with np.errstate(all="ignore"):
        variance = np.maximum(variance, 0.0)  # rounding of a PSD form; nan stays nan
        se_fit = np.sqrt(variance)
        if kind == "prediction":
            variance = variance + noise_variance(fit, absolute_sigma, sigma)
        dof = math.inf if absolute_sigma else float(fit.dof)
        half = quantile(0.5 + level / 2.0, dof) * np.sqrt(variance)
    return value, {"se_fit": se_fit, "lower": value - half, "upper": value + half}


def predict(result: FitResult, columns: Mapping[str, Any], kind: str | None = None,
            level: float = 0.95, sigma: Any = None) -> Any:
    """:meth:`FitResult.predict`: the model at the estimates for new values of its data
    columns (an array); with ``kind`` a :class:`Prediction` of ``value``, ``se_fit``,
    ``lower`` and ``upper`` at ``level`` (``sigma``: the new rows' errors, for a prediction
    of a weighted fit)."""
    if result.parsed is None:
        raise FitError("this result has no formula to predict with")
    point = {n: np.asarray(v, dtype=np.float64) for n, v in columns.items()}
    point.update(result.parameters)
    model = _model_of(result.parsed)
    if kind is None:
        return np.asarray(model.eval(point), dtype=np.float64)
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise AdcliError(f"level {level!r} must be between 0 and 1, exclusive")
    data = {n: v for n, v in point.items() if n not in result.parameters}
    value, cols = band(model, data, result.parameters, FitUncertainty.from_result(result),
                       kind, float(level), result.absolute_sigma, sigma)
    return Prediction(value, cols["se_fit"], cols["lower"], cols["upper"])
