"""Expression trees as the parser produces them.

Nodes use identity equality and ``__slots__``: no generated ``__eq__``/``__hash__``/``__repr__``
that would recurse through a 50,000-deep tree.  Every walk over nodes elsewhere uses an explicit
stack.
"""

from __future__ import annotations

from ..ops import OPS, apply
from .records import Record

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping


class Node:
    """An expression node.

    ``op`` is ``"const"`` (with ``value``), ``"var"`` (with ``name``), or the name of an entry of
    :data:`adcli.ops.OPS` (with ``args``).  ``line``/``column`` locate the node in the source
    (1-based) when it came from text, for error messages.
    """

    __slots__ = ("op", "args", "value", "name", "line", "column")

    def __init__(self, op: str, args: tuple[Node, ...] = (), value: float = 0.0,
                 name: str = "", line: int = 0, column: int = 0) -> None:
        self.op = op
        self.args = args
        self.value = value
        self.name = name
        self.line = line
        self.column = column

    def __repr__(self) -> str:  # shallow on purpose: never recurses
        if self.op == "const":
            return f"Node(const {self.value!r})"
        if self.op == "var":
            return f"Node(var {self.name})"
        return f"Node({self.op}, {len(self.args)} args)"


class Reduction(Node):
    """``fn(index = lo..hi, body)`` as parsed (op ``"reduce"``, args ``(lo, hi, body)``):
    unrolled into plain nodes by :mod:`adcli.language.indices` before lowering. An indexed name
    ``x[i, j]`` is a plain Node with op ``"index"``, ``name`` the base and the index
    expressions as args."""

    __slots__ = ("fn", "index", "index_line", "index_column")

    def __init__(self, fn: str, index: str, lo: Node, hi: Node, body: Node, line: int = 0,
                 column: int = 0, index_line: int = 0, index_column: int = 0) -> None:
        super().__init__("reduce", (lo, hi, body), 0.0, fn, line, column)
        self.fn = fn
        self.index = index
        self.index_line = index_line
        self.index_column = index_column


#: A range of an index as parsed: (index name, lo, hi, line, column of the name).
Range = tuple[str, Node, Node, int, int]


def const(value: float) -> Node:
    return Node("const", value=float(value))


def var(name: str, line: int = 0, column: int = 0) -> Node:
    return Node("var", name=name, line=line, column=column)


def call(op: str, *args: Node, line: int = 0, column: int = 0) -> Node:
    return Node(op, tuple(args), line=line, column=column)


class Statement(Record):
    """``name = expr`` (``name`` is None for the final bare expression); ``ranges`` holds the
    ranges of a vector-valued binding ``h[j = 1..16] = expr`` (else empty).

    Plain classes here and in :class:`Program`, with the equality and ``repr`` a dataclass
    would give: ``dataclasses`` loads ``inspect``, milliseconds of a first parse."""

    __slots__ = __match_args__ = FIELDS = SHOWN = ("name", "expr", "line", "column", "ranges")

    def __init__(self, name: str | None, expr: Node, line: int = 0, column: int = 0,
                 ranges: tuple[Range, ...] = ()) -> None:
        self.name = name
        self.expr = expr
        self.line = line
        self.column = column
        self.ranges = ranges


class Program(Record):
    """Statements in order; the last one is the output. ``postorder`` is the parser's list of
    every node it made, in the order made (the post-order of a one-statement program's tree;
    see :func:`adcli.core.lower.lower`), or None; it takes no part in equality or ``repr``."""

    __slots__ = __match_args__ = ("statements", "source", "postorder")
    FIELDS = SHOWN = ("statements", "source")

    def __init__(self, statements: list[Statement] | None = None, source: str = "",
                 postorder: list[Node] | None = None) -> None:
        self.statements = [] if statements is None else statements
        self.source = source
        self.postorder = postorder

    @property
    def output(self) -> Node:
        return self.statements[-1].expr


def iter_postorder(root: Node, lets: Mapping[str, Node] | None = None) -> list[Node]:
    """Each distinct node (by identity) once, children in order before parents, without
    recursion. With ``lets``, a variable named there counts as having that expression as its
    only child (how lowering follows let bindings)."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[Node | None] = [root]
    push, pop, emit = stack.append, stack.pop, order.append
    while stack:
        node = pop()
        if node is None:  # the marker pushed above a node's children: they are all done
            emit(pop())
            continue
        nid = id(node)
        if nid in seen:
            continue
        seen.add(nid)
        if lets and node.op == "var" and node.name in lets:
            kids: tuple[Node, ...] = (lets[node.name],)
        else:
            kids = node.args
            if not kids:
                emit(node)
                continue
        push(node)
        push(None)
        for child in reversed(kids):
            if id(child) not in seen:
                push(child)
    return order


# --------------------------------------------------------------------------- smart constructors
# Build expression trees with light simplification on the way (constant folding, 0 and 1
# identities, double negation). The op table's symbolic derivative rules are written with these,
# so derivatives come out readable without a separate simplification pass.


def is_const(node: Node, value: float | None = None) -> bool:
    return node.op == "const" and (value is None or node.value == value)


def _fold(op: str, *args: Node) -> Node:
    return const(float(apply(OPS[op], tuple(a.value for a in args))))


def add(a: Node, b: Node) -> Node:
    if is_const(a) and is_const(b):
        return _fold("add", a, b)
    if is_const(a, 0.0):
        return b
    if is_const(b, 0.0):
        return a
    if b.op == "neg":
        return sub(a, b.args[0])
    return call("add", a, b)


def sub(a: Node, b: Node) -> Node:
    if is_const(a) and is_const(b):
        return _fold("sub", a, b)
    if is_const(b, 0.0):
        return a
    if is_const(a, 0.0):
        return neg(b)
    if b.op == "neg":
        return add(a, b.args[0])
    return call("sub", a, b)


def mul(a: Node, b: Node) -> Node:
    if is_const(a) and is_const(b):
        return _fold("mul", a, b)
    if is_const(a, 0.0) or is_const(b, 0.0):
        return const(0.0)
    if is_const(a, 1.0):
        return b
    if is_const(b, 1.0):
        return a
    if is_const(a, -1.0):
        return neg(b)
    if is_const(b, -1.0):
        return neg(a)
    if a.op == "neg" and b.op == "neg":
        return mul(a.args[0], b.args[0])
    if a.op == "neg":
        return neg(mul(a.args[0], b))
    if b.op == "neg":
        return neg(mul(a, b.args[0]))
    if is_const(b) and not is_const(a):  # numeric coefficient first: 2*x, not x*2
        return call("mul", b, a)
    return call("mul", a, b)


def div(a: Node, b: Node) -> Node:
    if is_const(a) and is_const(b):
        return _fold("div", a, b)
    if is_const(b, 1.0):
        return a
    if is_const(a, 0.0):
        return const(0.0)
    if a.op == "neg":
        return neg(div(a.args[0], b))
    return call("div", a, b)


def neg(a: Node) -> Node:
    if is_const(a):
        return const(-a.value)
    if a.op == "neg":
        return a.args[0]
    return call("neg", a)


def power(a: Node, b: Node) -> Node:
    if is_const(a) and is_const(b):
        return _fold("pow", a, b)
    if is_const(b, 1.0):
        return a
    if is_const(b, 0.0):
        return const(1.0)
    return call("pow", a, b)


def fn(name: str, *args: Node) -> Node:
    """A call of op ``name``, folded when every argument is a constant."""
    if all(is_const(a) for a in args):
        return _fold(name, *args)
    return call(name, *args)
