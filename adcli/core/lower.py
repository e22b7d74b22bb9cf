"""Program -> Tape: explicit-stack post-order walk with hash-consing and constant folding.

Identical subexpressions become one slot (``sin(x)*sin(x)`` has one ``sin``), constant subtrees
are evaluated once, ``a + a`` keeps both edges, and only what the output depends on is lowered.
A name means one thing throughout a program: a let binding, a constant (``pi``, ``e``) unless
bound, or an input variable.
"""

from __future__ import annotations

import math

from ..errors import AdcliError, NameResolutionError
from ..ops import CONSTANTS, OPS, apply, const_key
from .syntax import Node, Program, iter_postorder
from .tape import CONST, VAR, Tape

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Collection


def _const_key(value: float) -> tuple:
    # Bit pattern, so 0.0 and -0.0 stay apart and nan is one key.
    return (CONST, const_key(value))


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
    if not bound_at:
        return bound_at
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


#: Expressions with more distinct nodes than this are refused before lowering. Python objects
#: cost a few hundred bytes a node (syntax tree, tape, hash-consing tables, a value and an
#: adjoint per slot), so this keeps every command under about 1 GB; a 2 MiB input of
#: ``-...-x`` or ``x+x+...`` has 2 million nodes. ``--max-size 0`` lifts it with the size limit.
MAX_NODES = 1_000_000


def lower(program: Program, bound: Collection[str] = (), *,
          max_nodes: int | None = None) -> Tape:
    """Lower ``program`` to a tape. ``bound`` names variables that shadow constants (pi, e).
    ``max_nodes`` refuses programs with more distinct expression nodes (None: no limit)."""
    lets = _check_bindings(program)
    let_expr = {name: program.statements[i].expr for name, i in lets.items()}
    let_name_of = {id(program.statements[i].expr): name for name, i in lets.items()}

    tape = Tape()
    ops, args_of, consts, active = tape.ops, tape.args, tape.consts, tape.active
    inputs, labels = tape.inputs, tape.labels
    key_slot: dict[tuple, int] = {}
    # What each lowered node became, by id: a slot (>= 0), or ~k for the constant
    # ``folded[k]``. Constants are emitted as slots only when a non-constant op reads them, so
    # folded subtrees leave no dead slots behind.
    code: dict[int, int] = {}
    folded: list[float] = []

    # Folded constants that are inf or nan, by index in ``folded``: the syntax node whose
    # folding first made them so (``0/0``), for diagnostics that would otherwise name "nan".
    origin: dict[int, Node] = {}

    def const_slot(k: int) -> int:
        value = folded[k]
        key = (CONST, const_key(value))  # as _const_key, spelled out: once per constant read
        slot = key_slot.get(key)
        if slot is None:
            slot = key_slot[key] = len(ops)
            ops.append(CONST)
            args_of.append(())
            consts.append(value)
            active.append(False)
            if k in origin:
                tape.folded_from[slot] = _source_of(origin[k])
        return slot

    def new_input(name: str, node: Node) -> int:
        """The slot of an input seen for the first time (labelled by its own name)."""
        c = inputs[name] = len(ops)
        ops.append(VAR)
        args_of.append(())
        consts.append(0.0)
        active.append(True)
        labels[c] = name
        tape.positions[name] = (node.line, node.column)
        return c

    def fold(node: Node, value: float, arg_codes) -> int:
        folded.append(value)
        k = len(folded) - 1
        if not math.isfinite(value) and arg_codes:  # a literal (1e999) is its own text
            origin[k] = next((origin[~a] for a in arg_codes if ~a in origin), node)
        return ~k

    # Post-order first, then one plain loop: every node's arguments are lowered before it.
    order = _parsed_postorder(program)
    tree = order is not None
    if order is None:
        order = iter_postorder(program.output, let_expr)
    if max_nodes is not None and len(order) > max_nodes:
        raise AdcliError(
            f"the expression has {len(order):,} nodes, over the limit of {max_nodes:,} that "
            "keeps memory under about 1 GB", hint="lift it with --max-size 0 (no limits)")
    if tree:  # one bare expression as parsed: a tree, so argument codes come off a stack
        out = _lower_tree(order, bound, tape, key_slot, folded, const_slot, fold, new_input)
        tape.output = out if out >= 0 else const_slot(~out)
        return tape
    for node in order:
        kind = node.op
        if kind == "const":
            code[id(node)] = fold(node, node.value, ())
            continue
        if kind == "var":
            name = node.name
            if name in let_expr:
                c = code[id(node)] = code[id(let_expr[name])]
            elif name in CONSTANTS and name not in bound:
                folded.append(CONSTANTS[name])
                code[id(node)] = ~(len(folded) - 1)
                continue
            else:
                c = inputs.get(name)
                if c is None:
                    c = new_input(name, node)
                code[id(node)] = c
                continue  # an input is labelled by its own name
        else:
            op = OPS[kind]
            kids = node.args
            if len(kids) == 2:  # the common case, spelled out: this loop runs per node
                a, b = code[id(kids[0])], code[id(kids[1])]
                if a < 0 and b < 0:
                    code[id(node)] = fold(node, float(apply(op, (folded[~a], folded[~b]))),
                                          (a, b))
                    continue
                slots = (a if a >= 0 else const_slot(~a), b if b >= 0 else const_slot(~b))
                is_active = active[slots[0]] or active[slots[1]]
            else:
                arg_codes = [code[id(k)] for k in kids]
                if all(a < 0 for a in arg_codes):
                    code[id(node)] = fold(
                        node, float(apply(op, tuple(folded[~a] for a in arg_codes))), arg_codes)
                    continue
                slots = tuple(a if a >= 0 else const_slot(~a) for a in arg_codes)
                is_active = any(active[s] for s in slots)
            key = (kind, slots)
            c = key_slot.get(key)
            if c is None:
                c = key_slot[key] = len(ops)
                ops.append(op)
                args_of.append(slots)
                consts.append(0.0)
                active.append(is_active)
            code[id(node)] = c
        if let_name_of and c >= 0:
            name = let_name_of.get(id(node))
            if name is not None and c not in labels:
                labels[c] = name
    out = code[id(program.output)]
    tape.output = out if out >= 0 else const_slot(~out)
    if out < 0 and tape.output not in labels:
        name = let_name_of.get(id(program.output))
        if name is not None:
            labels[tape.output] = name
    return tape


def _parsed_postorder(program: Program) -> list[Node] | None:
    """The parser's record of a one-statement program's nodes in the order it made them, when
    it still describes the program: in an LR parse every node is made after its arguments and
    each argument list left to right, so that is :func:`iter_postorder` of the tree (every node
    distinct: no sharing before hash-consing), without walking it again."""
    order = program.postorder
    if order is None or len(program.statements) != 1 or program.statements[0].name is not None:
        return None
    if not order or order[-1] is not program.output:
        return None
    return order


def _lower_tree(order: list[Node], bound: Collection[str], tape: Tape, key_slot: dict,
                folded: list[float], const_slot: Callable[[int], int],
                fold: Callable[..., int], new_input: Callable[[str, Node], int]) -> int:
    """The loop of :func:`lower` for a tree in post-order (no let bindings): the same tape,
    with each node's code pushed on a stack and its arguments' codes popped, instead of a
    dictionary by node identity. Returns the output's code."""
    ops, args_of, consts, active = tape.ops, tape.args, tape.consts, tape.active
    inputs = tape.inputs
    stack: list = []  # the codes of the arguments waiting for their operation, but the last
    push, pop = stack.append, stack.pop
    top = 0  # the last code (below it, a placeholder at the bottom of the stack)
    # The slot of each constant value already emitted, keyed by the float: where float
    # equality is bit equality (not 0.0 or -0.0, not nan) the same key as const_slot's, so a
    # hit is const_slot's answer without packing the bits (a sum of n squares reads one "2" n
    # times).
    emitted: dict[float, int] = {}

    def const_read(k: int) -> int:
        value = folded[k]
        slot = emitted.get(value)
        if slot is None:
            slot = const_slot(k)
            if value == value and value != 0.0:
                emitted[value] = slot
        return slot

    for node in order:
        kind = node.op
        if kind == "var":
            name = node.name
            push(top)
            if name in CONSTANTS and name not in bound:
                folded.append(CONSTANTS[name])
                top = ~(len(folded) - 1)
                continue
            c = inputs.get(name)
            if c is None:
                c = new_input(name, node)
            top = c
            continue
        if kind == "const":  # fold(node, node.value, ()), spelled out: one per literal
            push(top)
            folded.append(node.value)
            top = ~(len(folded) - 1)
            continue
        nargs = len(node.args)
        if nargs == 2:
            b = top
            a = pop()
            if a < 0 and b < 0:
                top = fold(node, float(apply(OPS[kind], (folded[~a], folded[~b]))),
                                 (a, b))
                continue
            if a < 0:
                a = emitted.get(folded[~a]) or const_read(~a)
            if b < 0:
                b = emitted.get(folded[~b]) or const_read(~b)
            slots: tuple[int, ...] = (a, b)
            is_active = active[a] or active[b]
        elif nargs == 1:
            a = top
            if a < 0:
                top = fold(node, float(apply(OPS[kind], (folded[~a],))), (a,))
                continue
            slots = (a,)
            is_active = active[a]
        else:
            push(top)
            arg_codes = stack[len(stack) - nargs:]
            del stack[len(stack) - nargs:]
            if all(a < 0 for a in arg_codes):
                top = fold(node, float(apply(OPS[kind], tuple(folded[~a] for a in arg_codes))),
                           arg_codes)
                continue
            slots = tuple(a if a >= 0 else const_slot(~a) for a in arg_codes)
            is_active = any(active[s] for s in slots)
        key = (kind, slots)
        c = key_slot.get(key)
        if c is None:
            c = key_slot[key] = len(ops)
            ops.append(OPS[kind])
            args_of.append(slots)
            consts.append(0.0)
            active.append(is_active)
        top = c
    return top


def _source_of(node: Node, limit: int = 60) -> str:
    """The source text of a folded subexpression, cut for one line of a message."""
    from .unparse import to_source

    text = to_source(node, sep="; ")
    return text if len(text) <= limit else text[:limit - 1] + "…"
