"""Where did it go wrong? Locating the first non-finite node of a sweep."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tape import Tape


@dataclass(slots=True)
class NonFinite:
    """The first slot, in tape order, whose value (or adjoint) is inf or nan."""

    slot: int
    op: str
    label: str
    value: Any
    inputs: list[Any]  # values of its argument slots

    def describe(self, what: str = "value") -> str:
        shown = ", ".join(format_value(v) for v in self.inputs)
        plural = "s" if len(self.inputs) != 1 else ""
        inputs = f" from input{plural} ({shown})" if self.inputs else ""
        return (f"node #{self.slot} ({self.op} '{self.label}') is the first whose {what} "
                f"became {format_value(self.value)}{inputs}")


def format_value(v: Any) -> str:
    if np.ndim(v) == 0:
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    return f"array(shape={np.shape(v)})"


def _is_finite(v: Any) -> bool:
    return bool(np.all(np.isfinite(v)))


def first_nonfinite_value(tape: Tape, values: list[Any]) -> NonFinite | None:
    """First slot whose value is not finite (a non-finite input counts, as the cause)."""
    labels = None
    for slot, v in enumerate(values):
        if not _is_finite(v):
            labels = labels or tape.describe()
            return NonFinite(slot, tape.op_name(slot), labels[slot], _first_bad(v),
                             [_first_bad(values[a]) for a in tape.args[slot]])
    return None


def first_nonfinite_adjoint(tape: Tape, values: list[Any], adjoint: list[Any]) -> NonFinite | None:
    """First slot reached by the reverse sweep (highest slot first) whose adjoint is not finite."""
    labels = None
    for slot in range(len(adjoint) - 1, -1, -1):
        g = adjoint[slot]
        if g is not None and not _is_finite(g):
            labels = labels or tape.describe()
            return NonFinite(slot, tape.op_name(slot), labels[slot], _first_bad(g),
                             [_first_bad(values[a]) for a in tape.args[slot]])
    return None


def _first_bad(v: Any) -> Any:
    if np.ndim(v) == 0:
        return v
    arr = np.asarray(v).ravel()
    bad = np.flatnonzero(~np.isfinite(arr))
    return arr[bad[0]] if bad.size else arr[0]
