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
    # Constant-valued nodes are kept aside and emitted only when a non-constant op reads them,
    # so folded subtrees leave no dead slots behind.
    node_const: dict[int, float] = {}

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

    def const_slot(value: float) -> int:
        return emit(_const_key(value), CONST, (), value, False)

    def children(node: Node) -> tuple[Node, ...]:
        if node.op == "var" and node.name in let_expr:
            return (let_expr[node.name],)
        return node.args

    # Iterative post-order over the program DAG, following let references.
    stack: list[tuple[Node, bool]] = [(program.output, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in node_slot or id(node) in node_const:
            continue
        if not expanded:
            stack.append((node, True))
            for child in reversed(children(node)):
                if id(child) not in node_slot and id(child) not in node_const:
                    stack.append((child, False))
            continue
        slot = -1
        if node.op == "const":
            node_const[id(node)] = node.value
        elif node.op == "var":
            name = node.name
            if name in let_expr:
                target = id(let_expr[name])
                if target in node_const:
                    node_const[id(node)] = node_const[target]
                else:
                    slot = node_slot[target]
            elif name in CONSTANTS and name not in bound:
                node_const[id(node)] = CONSTANTS[name]
            else:
                slot = emit((VAR, name), VAR, (), 0.0, True)
                if name not in tape.inputs:
                    tape.inputs[name] = slot
                    tape.labels[slot] = name
                    tape.positions[name] = (node.line, node.column)
        else:
            op = OPS[node.op]
            if all(id(a) in node_const for a in node.args):
                node_const[id(node)] = float(apply(op, tuple(node_const[id(a)]
                                                             for a in node.args)))
            else:
                args = tuple(node_slot[id(a)] if id(a) in node_slot
                             else const_slot(node_const[id(a)]) for a in node.args)
                active = any(tape.active[s] for s in args)
                slot = emit((op.name, args), op, args, 0.0, active)
        if slot < 0:
            continue
        node_slot[id(node)] = slot
        name = let_name_of.get(id(node))
        if name is not None and slot not in tape.labels:
            tape.labels[slot] = name
    out = id(program.output)
    tape.output = node_slot[out] if out in node_slot else const_slot(node_const[out])
    if out in node_const and tape.output not in tape.labels:
        name = let_name_of.get(out)
        if name is not None:
            tape.labels[tape.output] = name
    return tape
