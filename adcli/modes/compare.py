"""Forward mode, reverse mode and finite differences side by side, with what each one costs.

The lesson of this module: a gradient by forward mode needs one pass per input (each pass
carries the values and one tangent forward, like dual numbers), by reverse mode one forward pass
for the values and one backward pass per output, whatever the number of inputs. Passes are
counted here, elementary operations are counted by the sweeps themselves
(:class:`adcli.core.sweeps.OpCount`), and times are measured, best of several runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core import sweeps
from ..core.diagnose import derivative_warnings
from ..core.sweeps import OpCount, forward_gradient, reverse_gradient
from ..core.tape import Tape
from ..derive.numeric import numeric_directional, numeric_gradient
from ..errors import AdcliError
from ..function import Function, select_wrt
from ..results import Comparison, Directional, ModeCost, ScalingRow, gradient_row
from .families import DEFAULT_SIZES, FAMILIES, family_expression
from .timing import best_time, check_budget

__all__ = ["DEFAULT_SIZES", "FAMILIES", "compare_modes", "directional", "forward_gradient",
           "reverse_gradient", "scaling"]


def _scalar_point(point: Mapping[str, Any], tape: Tape) -> None:
    for name in tape.inputs:
        if np.ndim(point.get(name, 0.0)):
            raise AdcliError("compare-modes needs one number per variable, not a column of data")


def compare_modes(function: Function, point: Mapping[str, Any], *, repeat: int = 5,
                  budget: float = 1.0, direction: Mapping[str, float] | None = None
                  ) -> Comparison:
    """The gradient at ``point`` by forward mode, reverse mode and central differences, with
    passes, counted operations and best-of-``repeat`` times for each."""
    tape = function.tape(point)
    sweeps.bind(tape, point)  # a clear error for a missing variable before any timing
    _scalar_point(point, tape)
    n = len(tape.inputs)
    if budget and n > 1:
        check_budget(tape, point, budget)
    costs: dict[str, ModeCost] = {}
    runners = {
        "forward": (lambda c=None: forward_gradient(tape, point, c)[1], n, 0),
        "reverse": (lambda c=None: reverse_gradient(tape, point, c)[1], 1, 1),
        "numeric": (lambda c=None: numeric_gradient(tape, point, count=c), 2 * n, 0),
    }
    for mode, (run, fwd, bwd) in runners.items():
        # The first run counts operations and is timed too (counting costs a few additions per
        # instruction); more runs only while the budget lasts, so 1000 inputs stay bearable.
        count = OpCount()
        t0 = time.perf_counter()
        gradient = run(count)
        seconds = time.perf_counter() - t0
        runs = 1
        if repeat > 1 and seconds <= budget:
            more, extra = best_time(run, repeat - 1, budget - seconds)
            seconds, runs = min(seconds, more), runs + extra
        costs[mode] = ModeCost(gradient, fwd, bwd, count.total, seconds, runs)

    values = sweeps.evaluate(tape, point)
    adjoint = sweeps.reverse(tape, values)
    rows = [gradient_row(name, costs["forward"].gradient[name], costs["reverse"].gradient[name],
                 costs["numeric"].gradient[name]) for name in tape.inputs]
    result = Comparison(values[tape.output], len(tape.instructions()), costs["forward"],
                        costs["reverse"], costs["numeric"], rows)
    result.warnings = derivative_warnings(tape, values, adjoint, costs["reverse"].gradient)
    if direction is not None:
        result.directional = directional(tape, point, direction, costs["reverse"].gradient)
    return result


def directional(tape: Tape, point: Mapping[str, Any], direction: Mapping[str, float],
                gradient: Mapping[str, Any]) -> Directional:
    """The derivative along ``direction`` three ways: one forward-mode pass, the reverse-mode
    gradient dotted with the direction, and one central difference."""
    select_wrt(tape, direction)
    count = OpCount()
    values = sweeps.evaluate(tape, point, count=count)
    tangent = sweeps.forward(tape, values, direction, count=count)
    with np.errstate(all="ignore"):
        # a zero component contributes nothing, as in forward mode (never inf * 0)
        dot = float(sum(float(gradient[k]) * float(v) for k, v in direction.items()
                        if float(v) != 0))
    return Directional(dict(direction), tangent[tape.output], dot,
                       numeric_directional(tape, point, direction), count.total)



def scaling(family: str = "rosenbrock", sizes: tuple[int, ...] = DEFAULT_SIZES, *,
            repeat: int = 3, budget: float = 1.0,
            parse: Callable[[str], Function] | None = None) -> list[ScalingRow]:
    """Forward versus reverse cost over a family of expressions with ``sizes`` inputs.

    Reverse mode is always timed in full. Forward mode runs its passes until ``budget``
    seconds are spent for that size (0: no limit); the remaining passes, which execute
    exactly the same instructions at the same point, are then extrapolated from the measured
    time per pass and marked as estimated."""
    from ..function import parse as default_parse

    # The family's text is generated here, not given by the user: the source-size limit of
    # EXPR (2 MiB) would refuse the documented sizes (rosenbrock at 100,000 inputs is 4.4 MB).
    parse = parse or (lambda text: default_parse(text, max_bytes=None))
    rows: list[ScalingRow] = []
    for n in sizes:
        text, point = family_expression(family, n)
        tape = parse(text).tape(point)
        names = list(tape.inputs)
        rcount = OpCount()
        reverse_gradient(tape, point, rcount)
        r_seconds, _ = best_time(lambda t=tape, p=point: reverse_gradient(t, p), repeat,
                                 budget)
        # Forward: every pass runs the same instructions (values + one tangent); count one.
        fcount = OpCount()
        if names:
            values = sweeps.evaluate(tape, point, count=fcount)
            sweeps.forward(tape, values, {names[0]: 1.0}, count=fcount)
        per_pass_ops = fcount.total
        timed = 0
        best_total = float("inf")
        for _ in range(max(1, repeat)):
            spent = 0.0
            timed = 0
            for name in names:
                t0 = time.perf_counter()
                values = sweeps.evaluate(tape, point)
                sweeps.forward(tape, values, {name: 1.0})
                spent += time.perf_counter() - t0
                timed += 1
                if budget and spent > budget and timed < len(names):
                    break
            best_total = min(best_total, spent / max(1, timed) * len(names))
            if timed < len(names) or (budget and spent > budget):
                break
        rows.append(ScalingRow(n, len(tape.instructions()), len(names),
                               per_pass_ops * len(names), best_total, timed, 2, rcount.total,
                               r_seconds))
    return rows
