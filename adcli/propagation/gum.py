"""Propagation of uncertainty as the GUM (JCGM 100:2008) does it, on exact derivatives:

- first order (the law of propagation of uncertainty, GUM 5.1.2/5.2.2): u² = cᵀΣc with the
  sensitivities c the exact gradient, and the budget: each input's |cᵢ|·uᵢ and share of u²;
- second order (GUM 5.1.2 note, for normal inputs): the mean shifts by ½tr(HΣ) and the
  variance gains ½tr(HΣHΣ), with H the exact Hessian (:mod:`adcli.derive.curvature`); both
  are exact for a quadratic function of normal inputs;
- Monte Carlo (GUM Supplement 1): N draws from the normal N(x, Σ) swept as columns of data in
  one generated numpy pass per block, with the mean, standard deviation and the
  probabilistically symmetric 95% interval, and S1's adequacy check against the first order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..derive.curvature import check_size, hessian
from ..errors import AdcliError
from ..function import Function
from ..results import Key
from .inputs import Inputs, PropagationError, covariance

#: Monte Carlo draws at most: their outputs are kept for the quantiles (8 bytes each, 80 MB);
#: the inputs are drawn a block at a time. GUM S1 (7.2) suggests 10^6 for a 95% interval.
MAX_DRAWS = 10_000_000
#: Draws per block of the Monte Carlo sweep.
MC_BLOCK = 1 << 16
#: GUM S1's check: a warning when first-order u and the Monte Carlo s.d. differ more.
ADEQUACY = 0.05


@dataclass
class Propagation:
    """The result of propagating ``inputs`` through an expression (see the module)."""

    expression: str
    value: float
    u: float
    names: list[str]
    values: dict[str, float]
    u_inputs: dict[str, float]
    sensitivities: dict[str, float]
    contributions: dict[str, float]
    shares: dict[str, float]
    #: the share of u² from the correlations (2 Σ_{i<j} cᵢcⱼΣᵢⱼ / u²); 0 without any
    correlation_share: float
    covariance: np.ndarray
    second_order: dict[str, float] | None = None
    monte_carlo: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    # the budget is one object per input (its value, u, sensitivity, contribution, share)
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("expression"), Key("value"), Key("u"), Key("inputs", lambda r: r.budget()),
        Key("correlation_share"),
        Key("covariance", lambda r: {"names": r.names, "matrix": r.covariance.tolist()}),
        Key("second_order"), Key("monte_carlo"), Key("warnings"))

    def budget(self) -> dict[str, dict[str, float]]:
        """Each input's value, u, sensitivity, contribution |c|·u and share of u²."""
        return {n: {"value": self.values[n], "u": self.u_inputs.get(n, 0.0),
                    "sensitivity": self.sensitivities[n],
                    "contribution": self.contributions.get(n, 0.0),
                    "share": self.shares.get(n, 0.0)} for n in self.sensitivities}


def _prepare(function: Function, inputs: Inputs, columns: set[str] = frozenset()
             ) -> tuple[Any, list[str]]:
    """The tape over the given names and the uncertain inputs it uses, in tape order;
    refuses a name given on the command line that the expression does not use, and an input
    with no value."""
    tape = function.tape(set(inputs.values) | set(columns))
    unused = sorted(n for n in inputs.typed if n not in tape.inputs)
    if unused:
        raise PropagationError(f"'{unused[0]}' is given but the expression does not use it")
    unset = [n for n in tape.inputs if n not in inputs.values and n not in columns]
    if unset:
        line, column = tape.positions.get(unset[0], (0, 0))
        raise PropagationError(f"the variable '{unset[0]}' has no value: give it with --at "
                               f"{unset[0]}=VALUE±U", line=line, column=column)
    # an input with u = 0 is exact: left out of Σ, so an infinite sensitivity times 0 makes
    # no nan of u
    names = [n for n in tape.inputs if inputs.u.get(n, 0.0) > 0 or n in inputs.bad]
    return tape, names


def propagate(function: Function, inputs: Inputs, *, second_order: bool = True,
              mc: int = 0, seed: int = 0) -> Propagation:
    """First order, and second order and Monte Carlo when asked (see the module)."""
    tape, names = _prepare(function, inputs)
    sigma = covariance(names, inputs)
    point = {n: inputs.values[n] for n in tape.inputs}
    with np.errstate(all="ignore"):
        value, grad = function.grad(point)
    c = np.array([grad[n] for n in names], dtype=np.float64)
    u_in = np.sqrt(np.diag(sigma)) if names else np.zeros(0)
    with np.errstate(all="ignore"):
        variance = float(c @ sigma @ c) if names else 0.0
        u = math.sqrt(max(variance, 0.0)) if not math.isnan(variance) else math.nan
        diagonal = c * c * u_in * u_in
        shares = diagonal / variance if variance > 0 else np.full(len(names), math.nan)
        off = sigma - np.diag(np.diag(sigma))
        corr_share = float(c @ off @ c) / variance if np.any(off) else 0.0
    out = Propagation(
        expression=function.source, value=float(value), u=u, names=names,
        values={n: inputs.values[n] for n in tape.inputs}, u_inputs=dict(zip(names, u_in.tolist())),
        sensitivities={n: float(grad[n]) for n in tape.inputs},
        contributions=dict(zip(names, np.abs(c * u_in).tolist())),
        shares=dict(zip(names, shares.tolist())), correlation_share=float(corr_share),
        covariance=sigma)
    if not math.isfinite(out.value) or not math.isfinite(u):
        out.warnings.append("the value or its first-order uncertainty is not finite at the "
                            "given values")
    if second_order and names:
        try:
            check_size(len(tape), len(names))
        except AdcliError as err:
            out.warnings.append(f"no second order: {err.message}")
            second_order = False
    if second_order and names:
        with np.errstate(all="ignore"):
            h = hessian(tape, point, names)
            hs = h @ sigma
            shift = 0.5 * float(np.trace(hs))
            var2 = variance + 0.5 * float(np.trace(hs @ hs))
        out.second_order = {"mean": out.value + shift, "mean_shift": shift,
                            "u": math.sqrt(var2) if var2 >= 0 else math.nan,
                            "variance_term": var2 - variance}
    if mc:
        out.monte_carlo = monte_carlo(function, tape, point, names, sigma, mc, seed)
        sd = out.monte_carlo["sd"]
        if out.monte_carlo["non_finite"]:
            out.warnings.append(f"{out.monte_carlo['non_finite']:,} of {mc:,} Monte Carlo "
                                "draws gave a value that is not finite; they are left out")
        # the s.d. of N normal draws is itself off by about 1/sqrt(2(N-1)) relative: a
        # difference within 3 of those says nothing about the linearisation
        noise = 3.0 / math.sqrt(2.0 * (mc - 1))
        differs = math.isfinite(sd) and math.isfinite(u) and sd > 0 \
            and abs(u - sd) > ADEQUACY * sd
        if differs and abs(u - sd) <= noise * sd:
            out.warnings.append(
                f"the first-order u ({u:.4g}) and the Monte Carlo s.d. ({sd:.4g}) differ by "
                f"{abs(u - sd) / sd:.1%}, within the sampling error of {mc:,} draws (about "
                f"{noise:.0%}): too few draws to judge the linearisation")
        elif differs:
            out.warnings.append(
                f"the first-order u ({u:.4g}) and the Monte Carlo s.d. ({sd:.4g}) differ by "
                f"{abs(u - sd) / sd:.1%}, more than {ADEQUACY:.0%}: the linearisation is not "
                "adequate here (GUM Supplement 1, 8); report the Monte Carlo result")
    return out


def _factor(sigma: np.ndarray) -> np.ndarray:
    """L with L Lᵀ = Σ for a semi-definite Σ (eigen-decomposition: Cholesky fails on a
    correlation of exactly 1 or an input with u = 0)."""
    w, v = np.linalg.eigh(sigma)
    return v * np.sqrt(np.clip(w, 0.0, None))


def monte_carlo(function: Function, tape: Any, point: Mapping[str, float], names: list[str],
                sigma: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    """``n`` draws of the inputs from N(point, Σ) through one column sweep per block:
    mean, standard deviation and the 2.5%/97.5% quantiles of the output."""
    if not 2 <= n <= MAX_DRAWS:
        raise PropagationError(f"--mc {n}: the number of draws is from 2 to {MAX_DRAWS:,}")
    if not 0 <= seed < 2**63:
        raise PropagationError(f"--seed {seed}: a seed is a whole number from 0 to 2^63-1")
    rng = np.random.default_rng(seed)
    factor = _factor(sigma) if names else np.zeros((0, 0))
    mean = np.array([point[n] for n in names])
    compiled = function.compiled(set(point))
    out = np.empty(n)
    for lo in range(0, n, MC_BLOCK):
        hi = min(lo + MC_BLOCK, n)
        draws = mean + rng.standard_normal((hi - lo, len(names))) @ factor.T
        by_name = dict(zip(names, draws.T))
        xs = [np.ascontiguousarray(by_name[m]) if m in by_name else np.float64(point[m])
              for m in tape.inputs]
        with np.errstate(all="ignore"):
            v, _ = compiled.sweep_columns(xs, wrt=[])
        out[lo:hi] = np.broadcast_to(np.asarray(v, dtype=np.float64), (hi - lo,))
    finite = np.isfinite(out)
    kept = out[finite]
    if kept.size < 2:
        return {"draws": n, "seed": seed, "mean": math.nan, "sd": math.nan,
                "interval": [math.nan, math.nan], "level": 0.95,
                "non_finite": int(n - kept.size)}
    low, high = np.quantile(kept, [0.025, 0.975])
    return {"draws": n, "seed": seed, "mean": float(np.mean(kept)),
            "sd": float(np.std(kept, ddof=1)), "interval": [float(low), float(high)],
            "level": 0.95, "non_finite": int(n - kept.size)}


def propagate_rows(function: Function, inputs: Inputs, columns: Mapping[str, np.ndarray],
                   uncertainties: Mapping[str, np.ndarray], rows: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """First order at every row of data (``--data``): ``columns`` bind variables per row,
    ``uncertainties`` their standard uncertainties per row (columns ``u_NAME``); the other
    inputs and correlations from ``inputs``. One column sweep gives every row's
    sensitivities. Returns (value, u) columns."""
    tape, names = _prepare(function, inputs, set(columns))
    names = [n for n in tape.inputs
             if inputs.u.get(n, 0.0) > 0 or n in inputs.bad or n in uncertainties]
    for n, col in uncertainties.items():
        if not np.all(np.isfinite(col) & (col >= 0)):
            raise PropagationError(f"the data column 'u_{n}' has a standard uncertainty that "
                                   "is negative or not finite")
        if n not in tape.inputs:
            raise PropagationError(f"the data column 'u_{n}' gives the uncertainty of '{n}', "
                                   "which the expression does not use")
    base = Inputs(values=dict(inputs.values), u=dict(inputs.u), blocks=inputs.blocks,
                  corr=inputs.corr, bad=inputs.bad)
    for n in names:
        base.u.setdefault(n, 1.0)  # a column's u: scaled per row below
        base.values.setdefault(n, 0.0)
    fixed = covariance(names, base)
    scale = np.sqrt(np.diag(fixed))
    with np.errstate(all="ignore"):
        corr = fixed / np.outer(scale, scale) if names else fixed
    corr[~np.isfinite(corr)] = 0.0
    compiled = function.compiled(set(inputs.values) | set(columns))
    value = np.empty(rows)
    u = np.empty(rows)
    for lo in range(0, rows, MC_BLOCK):
        hi = min(lo + MC_BLOCK, rows)
        xs = []
        for n in tape.inputs:
            if n in columns:
                xs.append(np.asarray(columns[n][lo:hi], dtype=np.float64))
            else:
                xs.append(np.full(hi - lo, inputs.values[n]) if n in names
                          else np.float64(inputs.values[n]))
        with np.errstate(all="ignore"):
            v, grads = compiled.sweep_columns(xs, wrt=names)
            by_name = dict(zip(tape.inputs, grads))
            cu = np.empty((hi - lo, len(names)))
            for j, n in enumerate(names):
                un = uncertainties[n][lo:hi] if n in uncertainties else inputs.u[n]
                g = np.broadcast_to(np.asarray(by_name[n], dtype=np.float64), (hi - lo,))
                cu[:, j] = g * un
            value[lo:hi] = np.broadcast_to(np.asarray(v, dtype=np.float64), (hi - lo,))
            # scaled by each row's largest |c|·u: u² itself overflows for u above ~1e154
            m = np.max(np.abs(cu), axis=1) if names else np.zeros(hi - lo)
            m = np.where(np.isfinite(m) & (m > 0), m, 1.0)
            su = cu / m[:, None]
            u[lo:hi] = m * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", su, corr, su), 0.0))
    return value, u


def propagate_expression(expr: str | Function, at: Mapping[str, Any] | None = None, *,
                         fit: Any = None, corr: Mapping[tuple[str, str], float] | None = None,
                         cov: tuple[list[str], Any] | None = None, second_order: bool = True,
                         mc: int = 0, seed: int = 0) -> Propagation:
    """``adcli.propagate``: ``at`` maps names to ``(value, standard uncertainty)`` or to
    exact numbers; ``fit`` a :class:`~adcli.regression.fitting.FitResult` whose parameters
    and covariance join them; ``corr`` maps pairs of names to correlation coefficients and
    ``cov`` is ``(names, matrix)`` for inputs given without an uncertainty."""
    from ..function import parse
    from .inputs import from_mapping

    function = parse(expr) if isinstance(expr, str) else expr
    inputs = from_mapping(at or {})
    if fit is not None:
        for name, value in fit.parameters.items():
            if name in inputs.values:
                raise PropagationError(f"'{name}' is given by at and by the fit")
            inputs.values[name] = float(value)
        inputs.add_block(list(fit.correlation_names), np.asarray(fit.covariance), "the fit")
    if cov is not None:
        names, matrix = cov
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (len(names), len(names)):
            raise PropagationError(f"cov: the matrix is not {len(names)} x {len(names)}")
        for n in names:
            if n not in inputs.values:
                raise PropagationError(f"cov names '{n}', which at does not give")
        inputs.add_block(list(names), matrix, "cov")
    for (a, b), r in (corr or {}).items():
        for n in (a, b):
            if n not in inputs.u:
                raise PropagationError(f"corr names '{n}', which has no uncertainty")
        if a == b or not -1.0 <= float(r) <= 1.0:
            raise PropagationError(f"corr {a},{b}: a correlation of two names, in [-1, 1]")
        inputs.corr[(a, b) if a < b else (b, a)] = float(r)
    return propagate(function, inputs, second_order=second_order, mc=mc, seed=seed)
