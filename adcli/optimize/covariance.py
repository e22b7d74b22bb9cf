"""Standard errors of a maximum-likelihood fit from the exact observed information.

``minimize --data --reduce sum --stderr ...`` of a negative log-likelihood: at the optimum the
Hessian H of the summed objective is the observed information, so

- ``hessian``: cov = H^-1 (the classical asymptotic covariance; statsmodels' default);
- ``sandwich``: cov = H^-1 (sum_i g_i g_i^T) H^-1 with g_i the gradient of row i (Huber–White,
  statsmodels' ``cov_type="HC0"``), right even when the likelihood is misspecified.

H comes from :mod:`adcli.derive.curvature` (exact, summed over the rows) through the
objective's ``hessian``; the rows' gradients from the objective's ``score_outer`` (one column
sweep in memory, a sum over partitions on Dask).  A Hessian that is not positive definite
has no inverse that is a covariance: the result is nan with a warning that says why, never
a silently wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import AdcliError
from ..results import INTERRUPTED, Key, MinimizeResult, nest_elements

HESSIAN = "hessian"
SANDWICH = "sandwich"
METHODS = (HESSIAN, SANDWICH)
#: What each method's numbers are, in the report and the JSON.
MEANING = {
    HESSIAN: "H^-1, H the exact Hessian of the summed negative log-likelihood",
    SANDWICH: "robust, Huber-White HC0: H^-1 (sum of g_i g_i^T) H^-1",
}


@dataclass
class Covariance:
    """The covariance of the estimates ``names`` by ``method``, and what went wrong."""

    method: str
    names: list[str]
    matrix: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def stderr(self) -> dict[str, float]:
        """The square roots of the diagonal (nan where the covariance is undefined)."""
        with np.errstate(all="ignore"):
            d = np.diag(self.matrix)
            return {n: float(np.sqrt(v)) if v >= 0 else float("nan")
                    for n, v in zip(self.names, d)}

    # The keys ``minimize --json`` gains: ``stderr`` by parameter, ``covariance`` as ``adcli
    # fit`` writes it (names and matrix), and the method.
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("stderr", lambda c: nest_elements(c.stderr)),
        Key("covariance", lambda c: {"names": list(c.names), "matrix": c.matrix.tolist()}),
        Key("stderr_method", lambda c: c.method))


def check_request(method: str | None, *, data: bool, reduce: str, stochastic: bool) -> None:
    """Refuse ``--stderr`` where its numbers would mean nothing, before any work."""
    if method is None:
        return
    if method not in METHODS:
        raise AdcliError(f"--stderr '{method}' is not a method (use {' or '.join(METHODS)})")
    if not data:
        raise AdcliError(f"--stderr {method} needs --data: the rows are the observations of "
                         "the likelihood")
    if reduce != "sum":
        raise AdcliError(f"--stderr {method} needs --reduce sum: the standard errors come "
                         "from the Hessian of the summed negative log-likelihood, and the "
                         "mean's is smaller by the number of rows")
    if stochastic:
        raise AdcliError(f"--stderr {method} cannot use --batch-size: minibatch steps stop "
                         "near the optimum, not at it, and the standard errors need it")


def covariance(objective: Any, x: np.ndarray, method: str) -> Covariance:
    """The covariance of the estimates ``x`` of ``objective`` (the summed negative
    log-likelihood) by ``method``: see the module's docstring."""
    names = list(objective.names)
    x = np.asarray(x, dtype=np.float64)
    H = np.asarray(objective.hessian(x), dtype=np.float64)
    inverse, warnings = invert_information(H, names)
    if method == HESSIAN:
        return Covariance(method, names, inverse, warnings)
    meat = np.asarray(objective.score_outer(x), dtype=np.float64)
    if not np.all(np.isfinite(meat)):
        warnings.append("the rows' gradients are not all finite at the optimum: no "
                        "sandwich standard errors")
        return Covariance(method, names, np.full_like(H, np.nan), warnings)
    with np.errstate(all="ignore"):
        sandwich = inverse @ meat @ inverse
    return Covariance(method, names, (sandwich + sandwich.T) / 2.0, warnings)


def at_result(objective: Any, result: MinimizeResult, method: str | None,
              box: tuple[np.ndarray, np.ndarray] | None = None,
              squared: bool = False) -> Covariance | None:
    """``--stderr``: the covariance at the run's end (none without ``method`` or after
    Ctrl-C), with a warning when that end is not an interior optimum (``box``: --bounds), or
    when EXPR is a ``squared`` residual (least squares, whose errors ``fit`` gives)."""
    if method is None or result.reason == INTERRUPTED:
        return None
    estimate = covariance(objective, result.x, method)
    if not result.converged:
        estimate.warnings.insert(0, f"the run did not converge ({result.reason}): the "
                                    "standard errors are at its last point, not at an optimum")
    if squared:
        estimate.warnings.append(
            "EXPR is the square of a residual, which --stderr takes as a negative "
            "log-likelihood (normal errors of variance 1/2); for least-squares standard "
            "errors, which estimate the variance from the residuals, use adcli fit")
    elif sum_of_squares(getattr(objective, "tape", None), getattr(objective, "names", ())):
        estimate.warnings.append(
            "EXPR is a sum of squares of residuals (times constants or data columns), which "
            "--stderr takes as a negative log-likelihood of normal errors whose variances "
            "those factors fix (1/2 for (...)^2, 1 for (...)^2/2); for least-squares "
            "standard errors, which estimate the variance from the residuals, use adcli fit")
    if box is not None:
        x = np.asarray(result.x, dtype=np.float64)
        held = [n for n, v, lo, hi in zip(result.names, x, *box) if v == lo or v == hi]
        if held:
            estimate.warnings.append(
                f"{_listed(held)} {'is' if len(held) == 1 else 'are'} at a bound (--bounds): "
                "the standard errors assume an optimum inside the bounds, where the gradient "
                "is zero, and are not valid there")
    return estimate


def sum_of_squares(tape: Any, params: Any) -> bool:
    """Whether the tape's output is a sum of terms each of which is a square of something that
    depends on a parameter (``r^2`` or ``r*r``), times or divided by factors that do not
    (constants, data columns), beside terms free of parameters: ``(a + b*x - y)^2/2``,
    ``0.5*(...)^2``, ``(...)^2*w``, ``(y1 - f)^2 + (y2 - g)^2``.  Such an objective is least
    squares with the errors' variances fixed by those factors, not estimated; ``(y -
    m)^2/(2*s^2) + log(s)`` with a parameter ``s`` is a likelihood and is not one."""
    if tape is None or not len(tape):
        return False
    names = set(params)
    inputs = {slot: name for name, slot in tape.inputs.items()}
    moving = [False] * len(tape)  # depends on a parameter (slots come after their arguments)
    for i in range(len(tape)):
        op = tape.op_name(i)
        moving[i] = (inputs.get(i) in names) if op == "var" else any(
            moving[a] for a in tape.args[i])
    squares = 0
    stack = [(tape.output, False)]  # (slot, inside a product or quotient)
    while stack:
        slot, scaled = stack.pop()
        if not moving[slot]:
            if scaled:
                return False  # a product of factors without parameters has no square
            continue  # a term free of parameters (log(2*pi)/2): no part of the fit
        op, args = tape.op_name(slot), tape.args[slot]
        if op == "pow" and tape.op_name(args[1]) == "const" and tape.consts[args[1]] == 2.0 \
                or op == "mul" and args[0] == args[1]:
            squares += 1
        elif op == "add" and not scaled:
            stack += [(args[0], False), (args[1], False)]
        elif op == "mul" and moving[args[0]] != moving[args[1]]:
            stack.append((args[0] if moving[args[0]] else args[1], True))
        elif op == "div" and moving[args[0]] and not moving[args[1]]:
            stack.append((args[0], True))
        else:
            return False
    return squares > 0


def invert_information(H: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """H^-1 when H is symmetric positive definite (to float64 accuracy); otherwise a nan
    matrix and a warning naming the parameters of the flat or downhill direction."""
    p = len(names)
    nan = np.full((p, p), np.nan)
    if not np.all(np.isfinite(H)):
        bad = sorted({names[i] for i, j in zip(*np.nonzero(~np.isfinite(H)))} |
                     {names[j] for i, j in zip(*np.nonzero(~np.isfinite(H)))})
        return nan, [f"the Hessian at the optimum has non-finite entries (for "
                     f"{_listed(bad)}): no standard errors"]
    H = (H + H.T) / 2.0
    values, vectors = np.linalg.eigh(H)
    scale = float(np.max(np.abs(values))) if p else 0.0
    floor = max(p, 1) * np.finfo(np.float64).eps * 100.0 * scale
    low = int(np.argmin(values))
    if scale == 0.0 or values[low] <= floor:
        direction = vectors[:, low]
        weight = np.abs(direction) / max(float(np.max(np.abs(direction))), 1e-300)
        involved = [n for n, w in zip(names, weight) if w > 0.1]
        if scale == 0.0 or values[low] >= -floor:
            what = (f"singular (smallest eigenvalue {values[low]:.3g} of {scale:.3g}): "
                    f"the data do not determine {_listed(involved)} separately (a "
                    "parameter that the likelihood does not depend on, or a linear "
                    "combination of parameters that it does not)")
        else:
            what = (f"indefinite (eigenvalue {values[low]:.3g}, along {_listed(involved)}): "
                    "the point is not a minimum, or the objective is not a negative "
                    "log-likelihood summed over the rows")
        return nan, [f"the Hessian of the objective at the optimum is {what}; no standard "
                     "errors"]
    inverse = (vectors / values) @ vectors.T
    return (inverse + inverse.T) / 2.0, []


def _listed(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")
