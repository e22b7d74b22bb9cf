"""The timing harness of ``adcli compare-modes``: best-of-n wall times within a budget, and
refusing up front a run whose predictable cost is over it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..core import sweeps
from ..core.tape import Tape
from ..errors import AdcliError


def best_time(run: Callable[[], Any], repeat: int, budget: float) -> tuple[float, int]:
    """Best wall time of up to ``repeat`` runs; stops early once ``budget`` seconds are spent
    (after at least one run), so a slow mode on a big expression is measured once."""
    best = float("inf")
    spent = 0.0
    runs = 0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
        if spent > budget:
            break
    return best, runs


def check_budget(tape: Tape, point: Mapping[str, Any], budget: float) -> None:
    """Refuse, before it starts, a forward-mode or finite-difference gradient whose cost is
    predictable and over ``budget`` seconds: n passes of the time one pass takes (10,000
    inputs would otherwise run for hours, whatever the budget)."""
    n = len(tape.inputs)
    first = next(iter(tape.inputs))
    t0 = time.perf_counter()
    values = sweeps.evaluate(tape, point)
    t1 = time.perf_counter()
    sweeps.forward(tape, values, {first: 1.0})
    t2 = time.perf_counter()
    for mode, passes, seconds in (("forward mode", n, t2 - t0),
                                  ("finite differences", 2 * n, t1 - t0)):
        if passes * seconds > budget:
            raise AdcliError(
                f"{mode} needs {passes:,} passes over {len(tape.instructions()):,} "
                f"instructions, about {passes * seconds:.3g} s at the {seconds:.3g} s one pass "
                f"took, over --budget {budget:g} s",
                hint="raise --budget (0: no limit), or use adcli grad (reverse mode)")
