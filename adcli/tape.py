"""The tape: a flat Wengert list in topological order. Data, not closures.

Slot ``i`` holds either an input variable, a constant, or an instruction ``(op, args)`` whose
argument slots are all lower than ``i``.  The tape can be re-run at any point, over float64
scalars or numpy columns, without re-parsing (see :mod:`adcli.sweeps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ops import OPS, PREC_ATOM, PREC_UNARY, Op

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

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def variables(self) -> list[str]:
        return list(self.inputs)

    def op_name(self, slot: int) -> str:
        op = self.ops[slot]
        return op if isinstance(op, str) else op.name

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

    def describe(self, max_len: int = 32, count: int | None = None) -> list[str]:
        """A short source-like label for every slot (or the first ``count``; a label reads
        only earlier ones): its name if it has one, else its subexpression, cut to
        ``max_len`` characters. Linear time on any DAG."""
        texts: list[str] = []
        precs: list[int] = []
        for i, (op, a) in enumerate(zip(self.ops[:count], self.args[:count])):
            if i in self.labels:
                text, prec = self.labels[i], PREC_ATOM
            elif op == CONST:
                text = format_number(self.consts[i])
                prec = PREC_UNARY if text.startswith("-") else PREC_ATOM
            else:
                text, prec = render_op(op, [(texts[s], precs[s]) for s in a])
            if len(text) > max_len:
                text = text[: max_len - 1] + "…"
            texts.append(text)
            precs.append(prec)
        return texts


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float64; integers without '.0'."""
    v = float(value)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def needs_parens(child_prec: int, op: Op, position: int) -> bool:
    """Whether an argument printed at ``child_prec`` needs parentheses as argument
    ``position`` of ``op``. The one parenthesise rule for every printer."""
    if op.form == "call":
        return False
    if child_prec < op.prec:
        return True
    if child_prec == op.prec:
        if op.form == "prefix":
            return False
        if op.assoc == "left":
            return position == 1
        if op.assoc == "right":
            return position == 0
        return True
    # Unary minus binds looser than ^: a negative base needs parentheses, (-2)^x.
    return op.name == "pow" and position == 0 and child_prec <= PREC_UNARY


def render_op(op: Op, args: list[tuple[str, int]]) -> tuple[str, int]:
    """Print ``op`` applied to already-printed arguments (text, precedence)."""
    parts = [f"({t})" if needs_parens(p, op, k) else t for k, (t, p) in enumerate(args)]
    if op.form == "call":
        return f"{op.symbol}({', '.join(t for t, _ in args)})", PREC_ATOM
    if op.form == "prefix":
        return f"{op.symbol}{parts[0]}", op.prec
    if op.name == "pow":
        return f"{parts[0]}^{parts[1]}", op.prec
    return f"{parts[0]} {op.symbol} {parts[1]}", op.prec
