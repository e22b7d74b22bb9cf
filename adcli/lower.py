"""Program -> Tape: explicit-stack post-order walk with hash-consing and constant folding.

Identical subexpressions become one slot (``sin(x)*sin(x)`` has one ``sin``), constant subtrees
are evaluated once, ``a + a`` keeps both edges, and only what the output depends on is lowered.
A name means one thing throughout a program: a let binding, a constant (``pi``, ``e``) unless
bound, or an input variable.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from .errors import NameResolutionError
from .ops import CONSTANTS, OPS, apply
from .syntax import Node, Program, iter_postorder
from .tape import CONST, VAR, Tape


def _const_key(value: float) -> tuple:
    # Bit pattern, so 0.0 and -0.0 stay apart and nan is one key.
    return (CONST, struct.pack("<d", value))


def _check_bindings(program: Program) -> dict[str, int]:
    """Map each let name to its statement index; reject ambiguous uses of names."""
    bound_at: dict[str, int] = {}
    for index, stmt in enumerate(program.statements):
        if stmt.name is not None and stmt.name in bound_at:
            first = program.statements[bound_at[stmt.name]]
            raise NameResolutionError(
                f"'{stmt.name}' is already bound on line {first.line}; use a new name",
                source=program.source, line=stmt.line, column=stmt.column)
        if stmt.name is not None:
            bound_at[stmt.name] = index
    for index, stmt in enumerate(program.statements):
        for node in iter_postorder(stmt.expr):
            if node.op == "var" and node.name in bound_at and bound_at[node.name] >= index:
                where = program.statements[bound_at[node.name]]
                what = ("in its own definition" if bound_at[node.name] == index
                        else f"before its binding on line {where.line}")
                raise NameResolutionError(
                    f"'{node.name}' is used {what}; a name is either an input or a let binding, "
                    "not both", source=program.source, line=node.line, column=node.column)
    return bound_at


def lower(program: Program, bound: Collection[str] = ()) -> Tape:
    """Lower ``program`` to a tape. ``bound`` names variables that shadow constants (pi, e)."""
    lets = _check_bindings(program)
    let_expr = {name: program.statements[i].expr for name, i in lets.items()}
    let_name_of = {id(program.statements[i].expr): name for name, i in lets.items()}

    tape = Tape()
    key_slot: dict[tuple, int] = {}
    node_slot: dict[int, int] = {}

    def emit(key: tuple, op, args: tuple, value: float, active: bool) -> int:
        slot = key_slot.get(key)
        if slot is None:
            slot = len(tape.ops)
            key_slot[key] = slot
            tape.ops.append(op)
            tape.args.append(args)
            tape.consts.append(value)
            tape.active.append(active)
        return slot

    def children(node: Node) -> tuple[Node, ...]:
        if node.op == "var" and node.name in let_expr:
            return (let_expr[node.name],)
        return node.args

    # Iterative post-order over the program DAG, following let references.
    stack: list[tuple[Node, bool]] = [(program.output, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in node_slot:
            continue
        if not expanded:
            stack.append((node, True))
            for child in reversed(children(node)):
                if id(child) not in node_slot:
                    stack.append((child, False))
            continue
        if node.op == "const":
            slot = emit(_const_key(node.value), CONST, (), node.value, False)
        elif node.op == "var":
            name = node.name
            if name in let_expr:
                slot = node_slot[id(let_expr[name])]
            elif name in CONSTANTS and name not in bound:
                value = CONSTANTS[name]
                slot = emit(_const_key(value), CONST, (), value, False)
            else:
                slot = emit((VAR, name), VAR, (), 0.0, True)
                if name not in tape.inputs:
                    tape.inputs[name] = slot
                    tape.labels[slot] = name
                    tape.positions[name] = (node.line, node.column)
        else:
            op = OPS[node.op]
            args = tuple(node_slot[id(a)] for a in node.args)
            if all(tape.ops[s] == CONST for s in args):
                value = float(apply(op, tuple(tape.consts[s] for s in args)))
                slot = emit(_const_key(value), CONST, (), value, False)
            else:
                active = any(tape.active[s] for s in args)
                slot = emit((op.name, args), op, args, 0.0, active)
        node_slot[id(node)] = slot
        name = let_name_of.get(id(node))
        if name is not None and slot not in tape.labels:
            tape.labels[slot] = name
    tape.output = node_slot[id(program.output)]
    return tape
