"""The tape: a flat Wengert list in topological order. Data, not closures.

Slot ``i`` holds either an input variable, a constant, or an instruction ``(op, args)`` whose
argument slots are all lower than ``i``.  The tape can be re-run at any point, over float64
scalars or numpy columns, without re-parsing (see :mod:`adcli.core.sweeps`).
"""

from __future__ import annotations

from ..ops import OPS, Op
from .records import Shown

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable
    from typing import Any

VAR = "var"
CONST = "const"


class Tape(Shown):
    """A lowered program.

    ``ops[i]`` is an :class:`~adcli.ops.Op`, or the strings ``"var"``/``"const"``.
    ``args[i]`` is a tuple of slots (a tuple, so ``a + a`` keeps both edges).
    ``consts[i]`` is the value of a constant slot (0.0 elsewhere).
    ``inputs`` maps each variable name to its slot, in order of first use.
    ``labels`` names the slots the user named: variables and let bindings.
    ``active[i]`` is True when slot ``i`` depends on some input, so carries a derivative.
    ``positions`` maps a variable to its (line, column) in the source; ``folded_from`` a
    constant slot that is inf/nan to the source text that folded to it (``0/0``).

    A plain class with ``__slots__`` and identity equality (``dataclasses`` loads ``inspect``,
    milliseconds of a first parse in a fresh process).
    """

    __slots__ = ("ops", "args", "consts", "inputs", "labels", "active", "output", "positions",
                 "folded_from", "_instructions", "_instructions_len", "_derived")
    #: The fields shown by ``repr`` and matched by position, in order (the caches are not).
    SHOWN = __match_args__ = ("ops", "args", "consts", "inputs", "labels", "active", "output",
                               "positions", "folded_from")

    def __init__(self, ops: list | None = None, args: list[tuple[int, ...]] | None = None,
                 consts: list[float] | None = None, inputs: dict[str, int] | None = None,
                 labels: dict[int, str] | None = None, active: list[bool] | None = None,
                 output: int = 0, positions: dict[str, tuple[int, int]] | None = None,
                 folded_from: dict[int, str] | None = None) -> None:
        self.ops = [] if ops is None else ops
        self.args = [] if args is None else args
        self.consts = [] if consts is None else consts
        self.inputs = {} if inputs is None else inputs
        self.labels = {} if labels is None else labels
        self.active = [] if active is None else active
        self.output = output
        self.positions = {} if positions is None else positions
        self.folded_from = {} if folded_from is None else folded_from
        self._instructions: list = []  # instructions(), cached
        self._instructions_len = -1  # len(ops) when it was cached
        self._derived: dict = {}  # see derived()

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
