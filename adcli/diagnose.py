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
            label = labels[slot]
            if slot in tape.folded_from:  # a constant: name the text that folded to it
                label = f"{label}', folded from '{tape.folded_from[slot]}"
            return NonFinite(slot, tape.op_name(slot), label, _first_bad(v),
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


# --------------------------------------------------------------------------- derivative diagnostics


@dataclass(slots=True)
class Kink:
    """An instruction evaluated exactly at a point where its op is not differentiable."""

    slot: int
    op: str
    label: str
    inputs: list[Any]
    convention: str
    rows: int = 0  # for columns of data: how many rows sit on the kink (0 for scalars)

    def describe(self) -> str:
        shown = ", ".join(format_value(v) for v in self.inputs)
        where = f" in {self.rows} row{'s' if self.rows != 1 else ''}" if self.rows else ""
        return (f"node #{self.slot} ({self.op} '{self.label}') sits exactly on its kink{where} "
                f"(input{'s' if len(self.inputs) != 1 else ''} {shown}); "
                f"convention used: {self.convention}")


def kinks(tape: Tape, values: list[Any]) -> list[Kink]:
    """Instructions (in tape order) whose arguments sit exactly on their op's kink: abs, relu,
    sign and step at 0, max and min at a tie. The derivative there is a convention, not a limit,
    so finite differences straddling the point disagree with it."""
    found: list[Kink] = []
    labels = None
    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():
            if op.kink is None:
                continue
            argv = tuple(values[a] for a in args)
            hit = np.asarray(op.kink(argv))
            if not hit.any():
                continue
            labels = labels or tape.describe()
            rows = int(hit.sum()) if hit.ndim else 0
            first = int(np.flatnonzero(hit.ravel())[0]) if hit.ndim else 0
            shown = [v if np.ndim(v) == 0 else np.broadcast_to(v, hit.shape).ravel()[first]
                     for v in argv]
            found.append(Kink(slot, op.name, labels[slot], shown, op.convention, rows))
    return found


def adjoint_origin(tape: Tape, values: list[Any], adjoint: list[Any], slot: int) -> str:
    """Which edge made the adjoint of ``slot`` non-finite: a consumer whose own adjoint is
    finite but whose local partial (or the product, or the sum of several) is not."""
    labels = tape.describe()
    with np.errstate(all="ignore"):
        for c in range(slot + 1, len(tape.ops)):
            if slot not in tape.args[c] or adjoint[c] is None:
                continue
            op = tape.ops[c]
            partials = op.partials(tuple(values[a] for a in tape.args[c]), values[c])
            for a, p in zip(tape.args[c], partials):
                if a == slot and not _is_finite(np.asarray(adjoint[c]) * p):
                    return (f", through node #{c} ({op.name} '{labels[c]}') whose adjoint is "
                            f"{format_value(_first_bad(adjoint[c]))} and whose local partial "
                            f"for it is {format_value(_first_bad(p))}")
    return ", as the sum of its finite contributions (inf - inf or overflow)"


def derivative_warnings(tape: Tape, values: list[Any], adjoint: list[Any],
                        gradient: dict[str, Any], max_kinks: int = 5) -> list[str]:
    """The "where did it go wrong?" messages after a forward and a reverse sweep: the first
    node whose value became non-finite, the first node whose adjoint became non-finite (in the
    order the reverse sweep finishes them), and every kink the point sits on."""
    messages: list[str] = []
    value_ok = _is_finite(values[tape.output])
    grad_ok = all(_is_finite(g) for g in gradient.values())
    if not value_ok or not grad_ok:
        bad = first_nonfinite_value(tape, values)
        if bad is not None:
            what = ("the value is not finite" if not value_ok
                    else "a value on the tape is not finite")
            messages.append(f"{what}: {bad.describe()}")
        bad_adj = first_nonfinite_adjoint(tape, values, adjoint)
        if bad_adj is not None:
            where = adjoint_origin(tape, values, adjoint, bad_adj.slot)
            what = "the gradient is not finite" if not grad_ok else "an adjoint is not finite"
            messages.append(f"{what}: {bad_adj.describe('adjoint')}{where}")
        elif not grad_ok:
            messages.append("the gradient is not finite")
    found = kinks(tape, values)
    for k in found[:max_kinks]:
        messages.append(f"the point lies on a kink: {k.describe()}")
    if len(found) > max_kinks:
        messages.append(f"… and {len(found) - max_kinks} more nodes on a kink")
    return messages
