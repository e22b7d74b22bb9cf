"""The plain tape interpreter: evaluation, the reverse sweep and the forward sweep.

Three small loops side by side, so the duality shows: evaluation runs the instructions forward
computing values; reverse runs them backward adding ``adjoint * partial`` into each argument;
forward runs them forward adding ``partial * tangent``.  Both derivative sweeps read the same
``Op.partials`` from the op table.  Values may be float64 scalars or numpy arrays (a column of
data per variable); non-finite values propagate as IEEE inf/nan and never raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import PointError
from .tape import Tape

Value = Any  # float64 scalar or numpy array


def bind(tape: Tape, point: Mapping[str, Any]) -> list[Value]:
    """Initial slot values: constants, and each input taken from ``point`` as float64."""
    values: list[Value] = list(tape.consts)
    for name, slot in tape.inputs.items():
        if name not in point:
            line, column = tape.positions.get(name, (0, 0))
            raise PointError(f"variable '{name}' has no value", line=line, column=column)
        v = point[name]
        values[slot] = np.float64(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
    return values


def evaluate(tape: Tape, point: Mapping[str, Any]) -> list[Value]:
    """Value of every slot at ``point``."""
    values = bind(tape, point)
    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():
            values[slot] = op.fn(*[values[a] for a in args])
    return values


def reverse(tape: Tape, values: list[Value], seed: Value = 1.0) -> list[Value | None]:
    """Adjoint of every slot (d output / d slot); None where no path reaches the output."""
    adjoint: list[Value | None] = [None] * len(tape.ops)
    adjoint[tape.output] = np.float64(seed) if np.ndim(seed) == 0 else seed
    active = tape.active
    with np.errstate(all="ignore"):
        for slot, op, args in reversed(tape.instructions()):
            g = adjoint[slot]
            if g is None:
                continue
            partials = op.partials(tuple(values[a] for a in args), values[slot])
            for a, p in zip(args, partials):
                if active[a]:
                    contribution = g * p
                    adjoint[a] = contribution if adjoint[a] is None else adjoint[a] + contribution
    return adjoint


def forward(tape: Tape, values: list[Value], direction: Mapping[str, Value]) -> list[Value]:
    """Tangent of every slot along ``direction`` (a tangent per input; missing ones are 0)."""
    tangent: list[Value] = [0.0] * len(tape.ops)
    for name, slot in tape.inputs.items():
        tangent[slot] = np.float64(direction.get(name, 0.0))
    active = tape.active
    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():
            if not active[slot]:
                continue
            partials = op.partials(tuple(values[a] for a in args), values[slot])
            total: Value = 0.0
            for a, p in zip(args, partials):
                if active[a]:
                    total = total + p * tangent[a]
            tangent[slot] = total
    return tangent


def input_gradient(tape: Tape, values: list[Value],
                   adjoint: list[Value | None]) -> dict[str, Value]:
    """Gradient per input, summed back to the input's own shape (a scalar parameter used
    across a column of data gets the sum of the per-row contributions)."""
    grads: dict[str, Value] = {}
    for name, slot in tape.inputs.items():
        g = adjoint[slot]
        if g is None:
            g = np.zeros_like(values[slot])
        elif np.ndim(g) > np.ndim(values[slot]):
            g = np.sum(g)
        grads[name] = g
    return grads


def value_and_grad(tape: Tape, point: Mapping[str, Any], seed: Value = 1.0):
    """(value, gradient dict, values, adjoints) in one forward and one reverse sweep."""
    values = evaluate(tape, point)
    adjoint = reverse(tape, values, seed)
    return values[tape.output], input_gradient(tape, values, adjoint), values, adjoint
