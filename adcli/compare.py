"""Forward mode, reverse mode and finite differences side by side, with what each one costs.

The lesson of this module: a gradient by forward mode needs one pass per input (each pass
carries the values and one tangent forward, like dual numbers), by reverse mode one forward pass
for the values and one backward pass per output, whatever the number of inputs. Passes are
counted here, elementary operations are counted by the sweeps themselves
(:class:`adcli.sweeps.OpCount`), and times are measured, best of several runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import sweeps
from .diagnose import derivative_warnings
from .errors import AdcliError
from .function import Function, select_wrt
from .numeric import numeric_directional, numeric_gradient
from .sweeps import OpCount
from .tape import Tape

# --------------------------------------------------------------------------- the three gradients


def forward_gradient(tape: Tape, point: Mapping[str, Any],
                     count: OpCount | None = None) -> tuple[Any, dict[str, Any]]:
    """(value, gradient) by forward mode: pass k seeds input k with tangent 1 and carries values
    and tangents forward together, so n inputs cost n passes."""
    value: Any = None
    gradient: dict[str, Any] = {}
    for name in tape.inputs:
        values = sweeps.evaluate(tape, point, count=count)
        tangent = sweeps.forward(tape, values, {name: 1.0}, count=count)
        value = values[tape.output]
        gradient[name] = _sum_to(tangent[tape.output], values[tape.inputs[name]])
    if value is None:  # no inputs: still one pass for the value
        value = sweeps.evaluate(tape, point, count=count)[tape.output]
    return value, gradient


def reverse_gradient(tape: Tape, point: Mapping[str, Any],
                     count: OpCount | None = None) -> tuple[Any, dict[str, Any]]:
    """(value, gradient) by reverse mode: one forward pass, one backward pass."""
    values = sweeps.evaluate(tape, point, count=count)
    adjoint = sweeps.reverse(tape, values, count=count)
    return values[tape.output], sweeps.input_gradient(tape, values, adjoint)


def _sum_to(tangent: Any, like: Any) -> Any:
    # A scalar parameter over a column of data: its derivative is the sum over rows, as in
    # sweeps.input_gradient.
    return np.sum(tangent) if np.ndim(tangent) > np.ndim(like) else tangent


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class ModeCost:
    """One way of computing the gradient and what it cost."""

    gradient: dict[str, Any]
    forward_passes: int
    backward_passes: int
    ops: int  # counted by the sweeps
    seconds: float  # per full gradient, best of `runs`
    runs: int

    @property
    def passes(self) -> int:
        return self.forward_passes + self.backward_passes

    def to_json(self) -> dict:
        return {"gradient": self.gradient, "passes": self.passes,
                "forward_passes": self.forward_passes, "backward_passes": self.backward_passes,
                "ops": self.ops, "seconds": self.seconds, "runs": self.runs}


@dataclass(slots=True)
class GradientRow:
    name: str
    forward: Any
    reverse: Any
    numeric: Any
    abs_diff: float  # largest |a - b| over the three pairs
    rel_diff: float  # the same relative to the largest magnitude of the three


@dataclass(slots=True)
class Directional:
    """The derivative along one direction: forward mode needs a single pass for it."""

    direction: dict[str, float]
    forward: Any
    reverse: Any  # gradient . direction
    numeric: Any
    forward_ops: int

    def to_json(self) -> dict:
        return {"direction": self.direction, "forward": self.forward, "reverse": self.reverse,
                "numeric": self.numeric, "forward_passes": 1, "forward_ops": self.forward_ops}


@dataclass(slots=True)
class Comparison:
    value: Any
    instructions: int
    forward: ModeCost
    reverse: ModeCost
    numeric: ModeCost
    rows: list[GradientRow]
    directional: Directional | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def variables(self) -> int:
        return len(self.rows)

    @property
    def max_abs_diff(self) -> float:
        return max((r.abs_diff for r in self.rows), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((r.rel_diff for r in self.rows), default=0.0)

    @property
    def max_ad_diff(self) -> float:
        """Largest |forward - reverse|: the two AD modes should agree to rounding."""
        return max((_absdiff(r.forward, r.reverse) for r in self.rows), default=0.0)

    def reading(self) -> str:
        return reading(self.variables, self.forward, self.reverse)

    def to_json(self) -> dict:
        out = {"value": self.value, "variables": self.variables,
               "instructions": self.instructions, "forward": self.forward.to_json(),
               "reverse": self.reverse.to_json(), "numeric": self.numeric.to_json(),
               "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff,
               "forward_reverse_max_abs_diff": self.max_ad_diff, "reading": self.reading(),
               "warnings": self.warnings}
        if self.directional is not None:
            out["directional"] = self.directional.to_json()
        return out


def reading(n: int, forward: ModeCost, reverse: ModeCost) -> str:
    """One line on why the costs differ."""
    base = (f"forward mode runs one pass per input ({forward.forward_passes} for {n} "
            f"input{'s' if n != 1 else ''}); reverse mode runs 1 forward + 1 backward pass "
            "whatever the number of inputs")
    if reverse.seconds > 0 and forward.seconds > 0 and reverse.ops > 0:
        t = forward.seconds / reverse.seconds
        o = forward.ops / reverse.ops
        if t >= 1:
            return f"{base}: here reverse mode is {t:.1f}x faster ({o:.1f}x fewer operations)"
        return (f"{base}: with so few inputs forward mode is {1 / t:.1f}x faster here "
                f"({o:.2f}x the operations of reverse mode)")
    return base


def _absdiff(a: Any, b: Any) -> float:
    with np.errstate(all="ignore"):
        a, b = float(a), float(b)
    if a == b:  # also equal infinities
        return 0.0
    return abs(a - b) if np.isfinite(a) and np.isfinite(b) else float("nan")


def _row(name: str, f: Any, r: Any, n: Any) -> GradientRow:
    pairs = [(f, r), (f, n), (r, n)]
    diffs = [_absdiff(a, b) for a, b in pairs]
    d = float("nan") if any(np.isnan(diffs)) else max(diffs)
    scale = max(abs(float(v)) for v in (f, r, n)) if not np.isnan(d) else float("nan")
    rel = 0.0 if d == 0.0 else (d / scale if scale > 0 else float("nan"))
    return GradientRow(name, f, r, n, d, rel)


# --------------------------------------------------------------------------- timing


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


def _scalar_point(point: Mapping[str, Any], tape: Tape) -> None:
    for name in tape.inputs:
        if np.ndim(point.get(name, 0.0)):
            raise AdcliError("compare-modes needs one number per variable, not a column of data")


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
    rows = [_row(name, costs["forward"].gradient[name], costs["reverse"].gradient[name],
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


# --------------------------------------------------------------------------- scaling view


def _sumsq(n: int) -> tuple[str, dict[str, float]]:
    return (" + ".join(f"x{i}^2" for i in range(1, n + 1)),
            {f"x{i}": 0.5 + i / (2 * n) for i in range(1, n + 1)})


def _rosenbrock(n: int) -> tuple[str, dict[str, float]]:
    point = {f"x{i}": (-1.2 if i % 2 else 1.0) for i in range(1, n + 1)}
    if n == 1:
        return "(1 - x1)^2", point
    terms = [f"100*(x{i + 1} - x{i}^2)^2 + (1 - x{i})^2" for i in range(1, n)]
    return " + ".join(terms), point


def _neuron(n: int) -> tuple[str, dict[str, float]]:
    # A single tanh unit on fixed inputs c_i: the gradient with respect to its n weights.
    cs = [round(((i * 37) % 19 - 9) / 9, 3) for i in range(1, n + 1)]
    body = " + ".join(f"w{i}*{c}" if c >= 0 else f"w{i}*({c})" for i, c in enumerate(cs, 1))
    return f"tanh({body} + 0.5)", {f"w{i}": 0.01 * ((i % 7) - 3) for i in range(1, n + 1)}


FAMILIES: dict[str, tuple[str, Callable[[int], tuple[str, dict[str, float]]]]] = {
    "rosenbrock": ("sum of 100*(x[i+1] - x[i]^2)^2 + (1 - x[i])^2", _rosenbrock),
    "sumsq": ("x1^2 + x2^2 + ... + xn^2", _sumsq),
    "neuron": ("tanh(w1*c1 + ... + wn*cn + 0.5), n weights", _neuron),
}
DEFAULT_SIZES = (1, 10, 100, 1000)


@dataclass(slots=True)
class ScalingRow:
    n: int
    instructions: int
    forward_passes: int
    forward_ops: int
    forward_seconds: float
    forward_passes_timed: int  # < forward_passes: the time is extrapolated from these passes
    reverse_passes: int
    reverse_ops: int
    reverse_seconds: float

    @property
    def forward_estimated(self) -> bool:
        return self.forward_passes_timed < self.forward_passes

    @property
    def ratio(self) -> float:
        return self.forward_seconds / self.reverse_seconds if self.reverse_seconds else float("nan")

    def to_json(self) -> dict:
        return {"n": self.n, "instructions": self.instructions,
                "forward": {"passes": self.forward_passes, "ops": self.forward_ops,
                            "seconds": self.forward_seconds,
                            "passes_timed": self.forward_passes_timed,
                            "estimated": self.forward_estimated},
                "reverse": {"passes": self.reverse_passes, "forward_passes": 1,
                            "backward_passes": 1, "ops": self.reverse_ops,
                            "seconds": self.reverse_seconds},
                "time_ratio": self.ratio}


def family_expression(family: str, n: int) -> tuple[str, dict[str, float]]:
    """Source text and a point for the member of ``family`` with ``n`` inputs."""
    if family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise AdcliError(f"unknown expression family '{family}' (known: {known})")
    return FAMILIES[family][1](n)


def scaling(family: str = "rosenbrock", sizes: tuple[int, ...] = DEFAULT_SIZES, *,
            repeat: int = 3, budget: float = 1.0,
            parse: Callable[[str], Function] | None = None) -> list[ScalingRow]:
    """Forward versus reverse cost over a family of expressions with ``sizes`` inputs.

    Reverse mode is always timed in full. Forward mode runs its passes until ``budget``
    seconds are spent for that size (0: no limit); the remaining passes, which execute
    exactly the same instructions at the same point, are then extrapolated from the measured
    time per pass and marked as estimated."""
    from .function import parse as default_parse

    parse = parse or default_parse
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
