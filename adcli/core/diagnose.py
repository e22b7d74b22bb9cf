"""Where did it go wrong? Locating the first non-finite node of a sweep, and kinks hit exactly.

The records (:class:`NonFinite`, :class:`Kink`) live with the others in :mod:`adcli.results`.
Values are numpy's (scalars or columns) or, from the float engines, Python floats: those are
checked without importing numpy (start-up time)."""

from __future__ import annotations

from typing import Any

from ..results import Kink, NonFinite, format_value
from .sweeps import all_finite
from .tape import Tape
from .unparse import describe


class Labels:
    """The slot labels of a tape (:func:`adcli.core.unparse.describe`), computed on first use and
    then shared: the diagnostics of one sweep label at most a few slots, and a big tape's
    labels cost a pass over it, so they are built once, and only when a message needs one."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self._texts: list[str] | None = None

    def __getitem__(self, slot: int) -> str:
        if self._texts is None:
            self._texts = describe(self.tape)
        return self._texts[slot]


def first_nonfinite_value(tape: Tape, values: list[Any],
                          labels: Labels | None = None) -> NonFinite | None:
    """First slot whose value is not finite (a non-finite input counts, as the cause)."""
    for slot, v in enumerate(values):
        if not all_finite(v):
            labels = labels or Labels(tape)
            label = labels[slot]
            if slot in tape.folded_from:  # a constant: name the text that folded to it
                label = f"{label}', folded from '{tape.folded_from[slot]}"
            return NonFinite(slot, tape.op_name(slot), label, _first_bad(v),
                             [_first_bad(values[a]) for a in tape.args[slot]])
    return None


def first_nonfinite_adjoint(tape: Tape, values: list[Any], adjoint: list[Any],
                            labels: Labels | None = None) -> NonFinite | None:
    """First slot reached by the reverse sweep (highest slot first) whose adjoint is not finite."""
    for slot in range(len(adjoint) - 1, -1, -1):
        g = adjoint[slot]
        if g is not None and not all_finite(g):
            labels = labels or Labels(tape)
            return NonFinite(slot, tape.op_name(slot), labels[slot], _first_bad(g),
                             [_first_bad(values[a]) for a in tape.args[slot]])
    return None


def _first_bad(v: Any) -> Any:
    if v.__class__ is float:
        return v
    import numpy as np

    if np.ndim(v) == 0:
        return v
    arr = np.asarray(v).ravel()
    bad = np.flatnonzero(~np.isfinite(arr))
    return arr[bad[0]] if bad.size else arr[0]


# --------------------------------------------------------------------------- derivative diagnostics


def kinks(tape: Tape, values: list[Any], labels: Labels | None = None) -> list[Kink]:
    """Instructions (in tape order) whose arguments sit exactly on their op's kink: abs, relu,
    sign and step at 0, max and min at a tie. The derivative there is a convention, not a limit,
    so finite differences straddling the point disagree with it."""
    found: list[Kink] = []
    labels = labels or Labels(tape)
    if all(v.__class__ is float for v in values):
        for slot, op, args in tape.instructions():
            if op.kink is not None:
                argv = tuple(values[a] for a in args)
                if op.kink(argv):
                    found.append(Kink(slot, op.name, labels[slot], list(argv), op.convention, 0))
        return found
    import numpy as np

    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():
            if op.kink is None:
                continue
            argv = tuple(values[a] for a in args)
            hit = np.asarray(op.kink(argv))
            if not hit.any():
                continue
            rows = int(hit.sum()) if hit.ndim else 0
            first = int(np.flatnonzero(hit.ravel())[0]) if hit.ndim else 0
            shown = [v if np.ndim(v) == 0 else np.broadcast_to(v, hit.shape).ravel()[first]
                     for v in argv]
            found.append(Kink(slot, op.name, labels[slot], shown, op.convention, rows))
    return found


def adjoint_origin(tape: Tape, values: list[Any], adjoint: list[Any], slot: int,
                   labels: Labels | None = None) -> str:
    """Which edge made the adjoint of ``slot`` non-finite: a consumer whose own adjoint is
    finite but whose local partial (or the product, or the sum of several) is not."""
    import numpy as np

    labels = labels or Labels(tape)
    with np.errstate(all="ignore"):
        for c in range(slot + 1, len(tape.ops)):
            if slot not in tape.args[c] or adjoint[c] is None:
                continue
            op = tape.ops[c]
            partials = op.partials(tuple(values[a] for a in tape.args[c]), values[c])
            for a, p in zip(tape.args[c], partials):
                if a == slot and not all_finite(np.asarray(adjoint[c]) * p):
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
    labels = Labels(tape)  # built at most once, for all four
    value_ok = all_finite(values[tape.output])
    grad_ok = all(all_finite(g) for g in gradient.values())
    if not value_ok or not grad_ok:
        bad = first_nonfinite_value(tape, values, labels)
        if bad is not None:
            what = ("the value is not finite" if not value_ok
                    else "a value on the tape is not finite")
            messages.append(f"{what}: {bad.describe()}")
        bad_adj = first_nonfinite_adjoint(tape, values, adjoint, labels)
        if bad_adj is not None:
            where = adjoint_origin(tape, values, adjoint, bad_adj.slot, labels)
            what = "the gradient is not finite" if not grad_ok else "an adjoint is not finite"
            messages.append(f"{what}: {bad_adj.describe('adjoint')}{where}")
        elif not grad_ok:
            messages.append("the gradient is not finite")
    found = kinks(tape, values, labels)
    for k in found[:max_kinks]:
        messages.append(f"the point lies on a kink: {k.describe()}")
    if len(found) > max_kinks:
        messages.append(f"… and {len(found) - max_kinks} more nodes on a kink")
    return messages
