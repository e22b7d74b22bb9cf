"""The tape: a flat Wengert list in topological order. Data, not closures.

Slot ``i`` holds either an input variable, a constant, or an instruction ``(op, args)`` whose
argument slots are all lower than ``i``.  The tape can be re-run at any point, over float64
scalars or numpy columns, without re-parsing (see :mod:`adcli.core.sweeps`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from ..ops import OPS, Op

VAR = "var"
CONST = "const"


@dataclass(slots=True, eq=False)
class Tape:
    """A lowered program.

    ``ops[i]`` is an :class:`~adcli.ops.Op`, or the strings ``"var"``/``"const"``.
    ``args[i]`` is a tuple of slots (a tuple, so ``a + a`` keeps both edges).
    ``consts[i]`` is the value of a constant slot (0.0 elsewhere).
    ``inputs`` maps each variable name to its slot, in order of first use.
    ``labels`` names the slots the user named: variables and let bindings.
    ``active[i]`` is True when slot ``i`` depends on some input, so carries a derivative.
    """

    ops: list = field(default_factory=list)
    args: list[tuple[int, ...]] = field(default_factory=list)
    consts: list[float] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    active: list[bool] = field(default_factory=list)
    output: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # var -> (line, col)
    #: constant slots that are inf/nan -> the source text that folded to them (``0/0``)
    folded_from: dict[int, str] = field(default_factory=dict)
    _instructions: list = field(default_factory=list, repr=False)  # instructions(), cached
    _instructions_len: int = field(default=-1, repr=False)  # len(ops) when it was cached
    _derived: dict = field(default_factory=dict, repr=False, init=False)  # see derived()

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def variables(self) -> list[str]:
        return list(self.inputs)

    def op_name(self, slot: int) -> str:
        op = self.ops[slot]
        return op if isinstance(op, str) else op.name

    def derived(self, key: Hashable, build: Callable[..., Any], *args: Any) -> Any:
        """What is built from this tape once and reused: its compiled sweeps
        (:func:`adcli.fast.policy.compiled`), its Hessian's gradient tapes.  The one cache of
        such things: kept on the tape, so an entry lives exactly as long as its tape and is
        never found again under a reused ``id``.  ``build(*args)`` makes the entry (no closure
        is allocated on the hot path, where the entry is found)."""
        found = self._derived.get(key)
        if found is None:
            found = self._derived[key] = build(*args)
        return found

    def instructions(self) -> list[tuple[int, Op, tuple[int, ...]]]:
        """The (slot, op, args) triples the sweeps run, in order. Built once per tape (every
        sweep walks it; a tape is not appended to once lowered), rebuilt if it grew."""
        if self._instructions_len != len(self.ops):
            self._instructions = [(i, op, a) for i, (op, a) in enumerate(zip(self.ops, self.args))
                                  if not isinstance(op, str)]
            self._instructions_len = len(self.ops)
        return self._instructions

    def check(self) -> None:
        """Assert the invariants every sweep relies on."""
        n = len(self.ops)
        assert len(self.args) == len(self.consts) == len(self.active) == n
        for i, (op, a) in enumerate(zip(self.ops, self.args)):
            if isinstance(op, str):
                assert op in (VAR, CONST) and a == ()
            else:
                assert op is OPS[op.name] and len(a) == op.arity
                assert all(0 <= s < i for s in a), f"slot {i} reads a later slot"
        assert 0 <= self.output < n
        for name, slot in self.inputs.items():
            assert self.ops[slot] == VAR and self.labels.get(slot) == name
