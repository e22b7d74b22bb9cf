"""Central finite differences: the independent numeric reference for both AD modes.

Nothing here reads a derivative rule: it only evaluates the tape, so it disagrees with forward
and reverse mode whenever a partial in the op table is wrong.

The step balances the two errors of a central difference (f(x+h) - f(x-h)) / 2h: truncation,
about h^2 |f'''| / 6, and rounding, about eps |f| / h. Their sum is smallest near
h = cbrt(eps) ~ 6e-6 for |x| ~ 1, and the step scales with the variable, h = cbrt(eps) max(1, |x|),
so a large x still moves by a representable amount. The step is also snapped so that x + h is
exactly representable ((x + h) - x), removing one rounding error from the denominator.
Expect about 10 significant digits on a smooth function, fewer near a singularity, and nonsense
across a kink (abs, relu, min, max): there the AD conventions and the difference quotient differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..core import sweeps
from ..core.sweeps import OpCount
from ..core.tape import Tape

EPS = float(np.finfo(np.float64).eps)
CBRT_EPS = EPS ** (1.0 / 3.0)


def step(x: float, scale: float = 1.0) -> float:
    """The central-difference step for a variable at ``x``, snapped so ``x + h`` is exact."""
    h = scale * CBRT_EPS * max(1.0, abs(float(x)))
    if not np.isfinite(x):
        return h
    return float((float(x) + h) - float(x))


def _total(value: Any) -> float:
    # A column of data gives a column of outputs; scalar parameters see their sum, matching
    # the reverse sweep (adcli.core.sweeps.input_gradient).
    return float(np.sum(value)) if np.ndim(value) else float(value)


def _output(tape: Tape, point: Mapping[str, Any], count: OpCount | None) -> float:
    return _total(sweeps.evaluate(tape, point, count=count)[tape.output])


def numeric_gradient(tape: Tape, point: Mapping[str, Any], wrt: Iterable[str] | None = None, *,
                     scale: float = 1.0, count: OpCount | None = None) -> dict[str, float]:
    """d output / d name for each name by central differences: two evaluations per variable.

    ``scale`` multiplies the default step (tests compare steps h and 2h to estimate the
    truncation error)."""
    names = list(tape.inputs) if wrt is None else list(wrt)
    grad: dict[str, float] = {}
    for name in names:
        x = point[name]
        if np.ndim(x):
            raise ValueError("finite differences need a scalar value per variable")
        h = step(x, scale)
        plus = _output(tape, {**point, name: float(x) + h}, count)
        minus = _output(tape, {**point, name: float(x) - h}, count)
        with np.errstate(all="ignore"):
            grad[name] = float(np.float64(plus - minus) / (2.0 * h))
    return grad


def numeric_directional(tape: Tape, point: Mapping[str, Any], direction: Mapping[str, float],
                        *, scale: float = 1.0, count: OpCount | None = None) -> float:
    """The derivative of the output along ``direction`` (not normalised) by one central
    difference: two evaluations whatever the number of variables.

    The step t moves every variable by at most the step a single variable of the largest
    magnitude would get."""
    names = list(tape.inputs)
    vmax = max((abs(float(direction.get(n, 0.0))) for n in names), default=0.0)
    if vmax == 0.0:
        return 0.0
    xmax = max((abs(float(point[n])) for n in names), default=0.0)
    t = scale * CBRT_EPS * max(1.0, xmax) / vmax
    plus = {**point}
    minus = {**point}
    for n in names:
        v = float(direction.get(n, 0.0))
        plus[n] = float(point[n]) + t * v
        minus[n] = float(point[n]) - t * v
    with np.errstate(all="ignore"):
        return float(np.float64(_output(tape, plus, count) - _output(tape, minus, count))
                     / (2.0 * t))
