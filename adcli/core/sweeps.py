"""The plain tape interpreter: evaluation, the reverse sweep and the forward sweep.

Three small loops side by side, so the duality shows: evaluation runs the instructions forward
computing values; reverse runs them backward adding ``adjoint * partial`` into each argument;
forward runs them forward adding ``partial * tangent``.  Both derivative sweeps read the same
``Op.partials`` from the op table.  Values may be float64 scalars or numpy arrays (a column of
data per variable); non-finite values propagate as IEEE inf/nan and never raise.

numpy is imported by the sweeps when they run, not with the module: a command at a point of plain
floats runs the float engines (:mod:`adcli.fast`) and never needs it (start-up time).
"""

from __future__ import annotations

import math

from ..errors import PointError
from .records import Record
from .tape import Tape

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Value = Any  # float64 scalar or numpy array


class OpCount(Record):
    """Elementary operations the sweeps executed, counted as they run (pass ``count=`` to a
    sweep): a primitive evaluation, a local partial derivative, or a multiply-accumulate along an
    edge (tangent or adjoint propagation) each count as one. This is how ``compare-modes`` shows
    what forward and reverse mode really cost, rather than estimating it. (A plain class, not a
    dataclass: ``dataclasses`` loads ``inspect``, milliseconds of a first parse.)"""

    __slots__ = __match_args__ = FIELDS = SHOWN = ("evaluations", "partials", "products")

    def __init__(self, evaluations: int = 0, partials: int = 0, products: int = 0) -> None:
        self.evaluations = evaluations
        self.partials = partials
        self.products = products

    @property
    def total(self) -> int:
        return self.evaluations + self.partials + self.products


def bind(tape: Tape, point: Mapping[str, Any]) -> list[Value]:
    """Initial slot values: constants, and each input taken from ``point`` as float64.
    Constants too are numpy float64: as Python floats, ``x/(2-2)`` would raise
    ZeroDivisionError in a local partial instead of giving inf."""
    import numpy as np

    values: list[Value] = list(map(np.float64, tape.consts))
    missing = [name for name in tape.inputs if name not in point]
    if missing:  # name them all at once, located at the first
        line, column = tape.positions.get(missing[0], (0, 0))
        listed = ", ".join(f"'{n}'" for n in missing[:10])
        listed += f" and {len(missing) - 10:,} more" if len(missing) > 10 else ""
        raise PointError(f"variable {listed} has no value" if len(missing) == 1 else
                         f"variables {listed} have no value", line=line, column=column)
    for name, slot in tape.inputs.items():
        v = point[name]
        values[slot] = np.float64(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
    return values


def evaluate(tape: Tape, point: Mapping[str, Any], *,
             count: OpCount | None = None) -> list[Value]:
    """Value of every slot at ``point``."""
    import numpy as np

    values = bind(tape, point)
    instructions = tape.instructions()
    with np.errstate(all="ignore"):
        for slot, op, args in instructions:
            values[slot] = op.fn(*[values[a] for a in args])
    if count is not None:
        count.evaluations += len(instructions)
    return values


def reverse(tape: Tape, values: list[Value], seed: Value = 1.0, *,
            count: OpCount | None = None) -> list[Value | None]:
    """Adjoint of every slot (d output / d slot); None where no path reaches the output."""
    import numpy as np

    adjoint: list[Value | None] = [None] * len(tape.ops)
    out = values[tape.output]
    if np.ndim(seed) == 0 and np.ndim(out) > 0:
        # One seed per row: the output over data is a column, and a term that does not depend on
        # the rows (w0 in w0 + x) must still be counted once per row.
        seed = np.full(np.shape(out), seed, dtype=np.float64)
    adjoint[tape.output] = np.float64(seed) if np.ndim(seed) == 0 else seed
    active = tape.active
    n_partials = n_products = 0
    with np.errstate(all="ignore"):
        for slot, op, args in reversed(tape.instructions()):
            g = adjoint[slot]
            if g is None:
                continue
            partials = op.partials(tuple(values[a] for a in args), values[slot])
            n_partials += len(args)
            for a, p in zip(args, partials):
                if active[a]:
                    n_products += 1
                    contribution = g * p
                    adjoint[a] = contribution if adjoint[a] is None else adjoint[a] + contribution
    if count is not None:
        count.partials += n_partials
        count.products += n_products
    return adjoint


def forward(tape: Tape, values: list[Value], direction: Mapping[str, Value], *,
            count: OpCount | None = None) -> list[Value]:
    """Tangent of every slot along ``direction`` (a tangent per input; missing ones are 0).

    An input whose tangent is 0 (a scalar 0, or a column of zeros), and every slot that only
    such inputs reach, contributes nothing: d/dx of ``x + log(y)`` at y = 0 is 1, not nan from
    log'(0) * 0 = inf * 0, just as reverse mode never multiplies by the partial of an
    argument that does not depend on an input. A tangent that is computed to be 0 (that of
    ``y^2`` at y = 0) still multiplies, as the adjoint does in reverse mode."""
    import numpy as np

    tangent: list[Value] = [0.0] * len(tape.ops)
    live = [False] * len(tape.ops)  # reached from an input with a non-zero tangent
    for name, slot in tape.inputs.items():
        t = direction.get(name, 0.0)
        tangent[slot] = np.float64(t) if np.ndim(t) == 0 else np.asarray(t, dtype=np.float64)
        live[slot] = bool(np.any(tangent[slot] != 0))  # nan counts as non-zero
    active = tape.active
    n_partials = n_products = 0
    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():
            if not active[slot]:
                continue
            partials = op.partials(tuple(values[a] for a in args), values[slot])
            n_partials += len(args)
            total: Value = 0.0
            for a, p in zip(args, partials):
                if active[a]:
                    n_products += 1
                    if live[a]:
                        total = total + p * tangent[a]
                        live[slot] = True
            tangent[slot] = total
    if count is not None:
        count.partials += n_partials
        count.products += n_products
    return tangent


def sum_to(g: Value, like: Value) -> Value:
    """A derivative summed back to the shape of its input: a scalar parameter used across a
    column of data gets the sum of the per-row contributions (reverse and forward mode alike)."""
    import numpy as np

    return np.sum(g) if np.ndim(g) > np.ndim(like) else g


def all_finite(v: Any) -> bool:
    """True when a value (a float or a column of them) has no inf or nan."""
    if v.__class__ is float:
        return math.isfinite(v)
    import numpy as np

    return bool(np.all(np.isfinite(v)))


def input_gradient(tape: Tape, values: list[Value],
                   adjoint: list[Value | None]) -> dict[str, Value]:
    """Gradient per input, summed back to the input's own shape (a scalar parameter used
    across a column of data gets the sum of the per-row contributions)."""
    import numpy as np

    grads: dict[str, Value] = {}
    for name, slot in tape.inputs.items():
        g = adjoint[slot]
        if g is None:
            g = np.zeros_like(values[slot])
        else:
            g = sum_to(g, values[slot])
        grads[name] = g
    return grads


def value_and_grad(tape: Tape, point: Mapping[str, Any], seed: Value = 1.0):
    """(value, gradient dict, values, adjoints) in one forward and one reverse sweep."""
    values = evaluate(tape, point)
    adjoint = reverse(tape, values, seed)
    return values[tape.output], input_gradient(tape, values, adjoint), values, adjoint


# --------------------------------------------------------------------------- gradient drivers
# Whole gradients from the sweeps above: n forward passes, or one forward and one backward.


def forward_gradient(tape: Tape, point: Mapping[str, Any],
                     count: OpCount | None = None) -> tuple[Any, dict[str, Any]]:
    """(value, gradient) by forward mode: pass k seeds input k with tangent 1 and carries values
    and tangents forward together, so n inputs cost n passes."""
    value: Any = None
    gradient: dict[str, Any] = {}
    for name in tape.inputs:
        values = evaluate(tape, point, count=count)
        tangent = forward(tape, values, {name: 1.0}, count=count)
        value = values[tape.output]
        gradient[name] = sum_to(tangent[tape.output], values[tape.inputs[name]])
    if value is None:  # no inputs: still one pass for the value
        value = evaluate(tape, point, count=count)[tape.output]
    return value, gradient


def reverse_gradient(tape: Tape, point: Mapping[str, Any],
                     count: OpCount | None = None) -> tuple[Any, dict[str, Any]]:
    """(value, gradient) by reverse mode: one forward pass, one backward pass."""
    values = evaluate(tape, point, count=count)
    adjoint = reverse(tape, values, count=count)
    return values[tape.output], input_gradient(tape, values, adjoint)
