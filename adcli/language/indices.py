"""Index notation unrolled into plain scalar expressions, before lowering.

``x[i]``, ``W[j,i]``, ``sum(i = 1..n, e)`` (and ``prod``, ``max``, ``min``, ``logsumexp``) and
``h[j = 1..16] = e`` are written once and unrolled here into the scalar nodes a user could
have written out term by term: an element is an ordinary input (or let binding) named in one
canonical form, ``x[3]``, ``W[2,1]``, so the tape, every sweep and every command see scalars
only, with the same derivatives, bit for bit, as the written-out program.

Bounds before work: every range's bounds are constants (numbers and let-bound constants), so
the number of nodes a program unrolls to is known from the ranges alone; it is counted before
anything is built and a range that passes the node limit is refused by name (a range of 1e9
fails at once). Every walk uses an explicit stack: sums nested 100,000 deep are fine.
"""

from __future__ import annotations

import math
from itertools import product

from ..core.syntax import Node, Program, Reduction, Statement, call, const, iter_postorder, var
from ..errors import AdcliError, NameResolutionError
from ..ops import CONSTANTS, OPS, apply
from .elements import MAX_INDEX, MAX_RANK, Env, affine, element_name, where

_ENTER, _EXIT, _BUILD, _COMBINE, _FOLD = 0, 1, 2, 3, 4
_FOLD_OP = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}


class _Expander:
    """The state of one program's unrolling: its let-bound constants, which names are
    indexed, and the bounds of every range (evaluated once)."""

    def __init__(self, program: Program, max_nodes: int | None) -> None:
        self.program = program
        self.max_nodes = max_nodes
        self.consts: dict[str, float] = {}  # let-bound constants
        self.lets: set[str] = set()  # plain let names
        self.vector_lets: dict[str, set[str]] = {}  # h -> the element names h[j = ..] binds
        self.arity: dict[str, tuple[int, Node | Statement]] = {}  # base -> (rank, first use)
        self.bounds: dict[int, tuple[int, int]] = {}  # id(reduction) -> (lo, hi)
        self.plain: set[int] = set()  # ids of subtrees with no index notation in them
        self.index_names: set[str] = set()  # every name a range binds
        self.tree = True  # the unrolled output is a tree (no logsumexp's shared nodes)
        self.compiled: dict[int, tuple] = {}  # id(index node) -> its indices, compiled
        self.fixed: dict[int, str] = {}  # id(index node) -> its element, when constant

    def error(self, message: str, where: Node | Statement | None, hint: str = "",
              line: int = 0, column: int = 0) -> AdcliError:
        if where is not None and not line:
            line, column = where.line, where.column
        return NameResolutionError(message, source=self.program.source, line=line,
                                   column=column, hint=hint)

    # ------------------------------------------------------------------ constants
    def constant(self, root: Node, env: dict[str, int] | None = None,
                 what: str = "") -> float | None:
        """The value of an expression of numbers, let-bound constants (and, with ``env``,
        indices). None when it reads anything else, or raises with ``what`` said."""
        if root.op == "const":
            return root.value
        if root.op == "var" and env is not None and root.name in env:
            return float(env[root.name])
        values: dict[int, float] = {}
        for node in iter_postorder(root):
            if node.op == "const":
                values[id(node)] = node.value
            elif node.op == "var":
                if env is not None and node.name in env:
                    values[id(node)] = float(env[node.name])
                elif node.name in self.consts:
                    values[id(node)] = self.consts[node.name]
                elif what:
                    raise self.not_constant(node, what)
                else:
                    return None
            elif node.op in ("index", "reduce"):
                if what:
                    raise self.error(f"{what} cannot read an indexed name or a reduction",
                                     node)
                return None
            else:
                values[id(node)] = float(apply(OPS[node.op],
                                               tuple(values[id(a)] for a in node.args)))
        return values[id(root)]

    def not_constant(self, node: Node, what: str) -> AdcliError:
        name = node.name
        if name in self.lets:
            why = f"'{name}' is a let binding whose value is not a constant"
        elif name in self.index_names:
            why = f"'{name}' is an index, and ranges are fixed before any is unrolled"
        elif what.startswith("the index"):
            why = f"'{name}' is neither the index of an enclosing range nor a let-bound constant"
        else:
            why = f"'{name}' is a parameter (an input), not a constant"
        return self.error(f"{what} must be an integer constant: {why}", node,
                          hint="bounds and indices are numbers, let-bound integer "
                               "constants (n = 10) and the indices of enclosing ranges")

    def integer(self, value: float, what: str, where: Node | Statement, line: int = 0,
                column: int = 0, low: int = -MAX_INDEX) -> int:
        if not math.isfinite(value) or value != int(value):
            raise self.error(f"{what} is {value:g}, not an integer", where, line=line,
                             column=column)
        if not low <= value <= MAX_INDEX:
            raise self.error(f"{what} is {value:g}, outside {low:,}..{MAX_INDEX:,}",
                             where, line=line, column=column)
        return int(value)

    def range_bounds(self, rng: tuple, where: Node | Statement) -> tuple[int, int]:
        name, lo_node, hi_node, line, column = rng
        lo, hi = (self.integer(self.constant(b, what=f"the bound of range '{name}'"),
                               f"the {side} bound of range '{name}'", where, line, column)
                  for side, b in (("lower", lo_node), ("upper", hi_node)))
        return lo, hi

    # ------------------------------------------------------------------ checking and counting
    def check_index_name(self, name: str, scope: dict[str, int], line: int,
                         column: int) -> None:
        what = None
        if name in scope:
            what = f"the index '{name}' of an enclosing range"
        elif name in self.lets or name in self.vector_lets:
            what = f"the let binding '{name}'"
        elif name in self.arity:
            what = f"the indexed variable '{name}'"
        elif name in CONSTANTS:
            what = f"the constant '{name}'"
        if what is not None:
            raise self.error(f"the index '{name}' shadows {what}; use another name", None,
                             line=line, column=column)

    def note_base(self, base: str, rank: int, where: Node | Statement) -> None:
        if rank > MAX_RANK:
            raise self.error(f"'{base}' has {rank} indices; at most {MAX_RANK} are allowed",
                             where)
        seen = self.arity.get(base)
        if seen is None:
            self.arity[base] = (rank, where)
        elif seen[0] != rank:
            raise self.error(f"'{base}' is used with {rank} indices here but with {seen[0]} "
                             f"on line {seen[1].line}", where)

    def measure(self, root: Node, scope: dict[str, int], index_names: set[str]) -> int:
        """Check ``root`` and count the nodes it unrolls to (``scope``: the indices in scope,
        with how many enclosing ranges bind each). Fills ``bounds`` and ``plain``."""
        sizes: list[int] = []
        stack: list = [(_ENTER, root)]
        limit = self.max_nodes
        while stack:
            kind, node = stack.pop()
            if kind == _EXIT:  # every argument counted: node's own count
                nargs = 3 if node.op == "reduce" else len(node.args)
                kids = sizes[len(sizes) - nargs:]
                del sizes[len(sizes) - nargs:]
                if node.op == "reduce":
                    scope[node.index] -= 1
                    if not scope[node.index]:
                        del scope[node.index]
                    lo, hi = self.bounds[id(node)]
                    count = max(0, hi - lo + 1)
                    body = kids[2]
                    size = count * (body + (4 if node.fn == "logsumexp" else 1)) + 2
                    if limit is not None and size > limit:
                        raise self.error(
                            f"{node.fn}({node.index} = {lo}..{hi}, ...) unrolls to "
                            f"{size:,} nodes, over the limit of {limit:,}", node,
                            hint="lift it with --max-size 0 (no limits)")
                else:
                    size = 1 + sum(kids)
                    if all(id(a) in self.plain for a in node.args):
                        self.plain.add(id(node))
                sizes.append(size)
                continue
            op = node.op
            if op == "const":
                self.plain.add(id(node))
                sizes.append(1)
            elif op == "var":
                name = node.name
                if name in scope:
                    pass  # an index used as a number
                elif name in index_names:
                    raise self.error(f"the index '{name}' is used outside its range", node)
                elif name in self.arity or name in self.vector_lets:
                    raise self.error(f"'{name}' is indexed elsewhere; write an element, "
                                     f"{name}[...]", node)
                else:
                    self.plain.add(id(node))
                sizes.append(1)
            elif op == "index":
                self.note_base(node.name, len(node.args), node)
                if node.name in self.lets:
                    raise self.error(f"'{node.name}' is a let binding of one value, not "
                                     "indexed", node)
                for arg in node.args:
                    if arg.op == "const":  # x[3]: nothing to check
                        continue
                    for leaf in iter_postorder(arg):
                        if leaf.op in ("index", "reduce"):
                            raise self.error("an index cannot read an indexed name or a "
                                             "reduction", leaf if leaf.line else node)
                        if leaf.op == "var" and leaf.name not in scope \
                                and leaf.name not in self.consts:
                            if leaf.name in index_names:
                                raise self.error(f"the index '{leaf.name}' is used outside "
                                                 "its range", leaf)
                            raise self.not_constant(leaf, f"the index of {node.name}")
                if not scope:  # a constant index: check it now, and keep its name
                    self.fixed[id(node)] = self.element(node, None)
                sizes.append(1)
            elif op == "reduce":
                self.bounds[id(node)] = self.range_bounds(
                    (node.index, node.args[0], node.args[1], node.index_line,
                     node.index_column), node)
                lo, hi = self.bounds[id(node)]
                if hi < lo and node.fn in ("max", "min", "logsumexp"):
                    raise self.error(f"{node.fn} over the empty range {lo}..{hi}", node)
                self.check_index_name(node.index, scope, node.index_line, node.index_column)
                scope[node.index] = scope.get(node.index, 0) + 1
                sizes.append(0)  # the bounds are not unrolled
                sizes.append(0)
                stack.append((_EXIT, node))
                stack.append((_ENTER, node.args[2]))
            else:
                stack.append((_EXIT, node))
                stack.extend((_ENTER, a) for a in reversed(node.args))
        return sizes[0]

    # ------------------------------------------------------------------ unrolling
    def element(self, node: Node, env: Env | None) -> str:
        """The element an indexed name means for the indices' values in ``env``."""
        values = []
        forms = self.compiled.get(id(node))
        if forms is None:
            forms = self.compiled[id(node)] = tuple(affine(a, self.consts) for a in node.args)
        for arg, form in zip(node.args, forms):
            if form is not None:  # c0 + sum of c * index: the common case, no tree walk
                value = form[0]
                for name, coef in form[1]:
                    v = Env.lookup(env, name)
                    value += coef * (v if v is not None else self.consts[name])
            else:
                value = self.constant(arg, Env.as_dict(env), what=f"the index of {node.name}")
            if not math.isfinite(value) or value != int(value):
                raise self.error(f"the index of {node.name} is {value:g}, not an integer"
                                 + where(env), node)
            if not 0 <= value <= MAX_INDEX:
                raise self.error(f"the index of {node.name} is {value:g}, outside "
                                 f"0..{MAX_INDEX:,}" + where(env), node)
            values.append(int(value))
        name = element_name(node.name, tuple(values))
        bound = self.vector_lets.get(node.name)
        if bound is not None and name not in bound:
            raise self.error(f"{name} is outside the range bound to {node.name}"
                             + where(env), node)
        return name

    def unroll(self, root: Node, env: Env | None, order: list[Node] | None = None) -> Node:
        """A copy of ``root`` with every range unrolled and every index made a constant;
        subtrees without index notation are shared, not copied. With ``order``, every node
        of the result is appended to it in post-order, shared subtrees as often as they are
        used (the stream :func:`adcli.core.lower.lower` reads for a tree; see ``tree``)."""
        out: list[Node] = []
        stack: list = [(_ENTER, root, env)]
        plain = self.plain
        record = order.append if order is not None else None
        while stack:
            kind, node, env = stack.pop()
            if kind == _BUILD:
                n = len(node.args)
                args = tuple(out[len(out) - n:])
                del out[len(out) - n:]
                made = Node(node.op, args, node.value, node.name, node.line, node.column)
                out.append(made)
                if record:
                    record(made)
                continue
            if kind == _FOLD:
                b = out.pop()
                made = Node(node, (out[-1], b))
                out[-1] = made
                if record:
                    record(made)
                continue
            if kind == _COMBINE:
                lo, hi = self.bounds[id(node)]
                n = max(0, hi - lo + 1)
                terms = out[len(out) - n:]
                del out[len(out) - n:]
                out.append(_combine(node, terms, record))
                if node.fn == "logsumexp":
                    self.tree = False  # its max and terms are shared: a DAG
                continue
            if id(node) in plain:
                out.append(node)
                if record:
                    order.extend(iter_postorder(node))
                continue
            op = node.op
            if op == "var":
                v = Env.lookup(env, node.name)
                made = const(float(v)) if v is not None else node
                out.append(made)
                if record:
                    record(made)
            elif op == "index":
                name = self.fixed.get(id(node)) or self.element(node, env)
                made = var(name, node.line, node.column)
                out.append(made)
                if record:
                    record(made)
            elif op == "reduce":
                lo, hi = self.bounds[id(node)]
                body = node.args[2]
                if node.fn == "logsumexp" or hi < lo:
                    stack.append((_COMBINE, node, env))
                    stack.extend((_ENTER, body, Env(node.index, v, env))
                                 for v in range(hi, lo - 1, -1))
                    continue
                # t1, t2, fold, t3, fold, ...: each fold made as soon as its terms are, so
                # the nodes come in the post-order of ((t1 + t2) + t3), as written out.
                fold = (_FOLD, _FOLD_OP[node.fn], None)
                for v in range(hi, lo, -1):
                    stack.append(fold)
                    stack.append((_ENTER, body, Env(node.index, v, env)))
                stack.append((_ENTER, body, Env(node.index, lo, env)))
            else:
                stack.append((_BUILD, node, env))
                stack.extend((_ENTER, a, env) for a in reversed(node.args))
        return out[0]

    # ------------------------------------------------------------------ the program
    def run(self) -> Program:
        program = self.program
        statements = program.statements
        index_names = self.index_names
        for stmt in statements:
            for rng in stmt.ranges:
                index_names.add(rng[0])
            for node in iter_postorder(stmt.expr):
                if node.op == "reduce":
                    index_names.add(node.index)
                elif node.op == "index":
                    self.note_base(node.name, len(node.args), node)
        for stmt in statements:
            if stmt.name is None:
                continue
            if stmt.ranges:
                self.note_base(stmt.name, len(stmt.ranges), stmt)
                self.vector_lets.setdefault(stmt.name, set())
            else:
                self.lets.add(stmt.name)
        total = 0
        out: list[Statement] = []
        for stmt in statements:
            if stmt.name is not None and not stmt.ranges and stmt.name in self.arity:
                raise self.error(f"'{stmt.name}' is bound to one value here but indexed "
                                 "elsewhere", stmt)
            scope: dict[str, int] = {}
            ranges = []
            for rng in stmt.ranges:
                self.check_index_name(rng[0], scope, rng[3], rng[4])
                ranges.append(self.range_bounds(rng, stmt))
                scope[rng[0]] = 1
            size = self.measure(stmt.expr, scope, index_names)
            count = 1
            for lo, hi in ranges:
                count *= max(0, hi - lo + 1)
            total += count * size
            if self.max_nodes is not None and total > self.max_nodes:
                raise self.error(f"the program unrolls to more than {self.max_nodes:,} nodes "
                                 f"(at least {total:,})", stmt,
                                 hint="lift it with --max-size 0 (no limits)")
            if not stmt.ranges:
                if stmt.name is not None and id(stmt.expr) in self.plain:
                    value = self.constant(stmt.expr)  # a let-bound constant: n = 10
                    if value is not None:
                        self.consts[stmt.name] = value
                order = [] if len(statements) == 1 and stmt.name is None else None
                out.append(Statement(stmt.name, self.unroll(stmt.expr, None, order), stmt.line,
                                     stmt.column))
                if order is not None and self.tree:
                    return Program(out, program.source, order)
                continue
            for lo, _hi in ranges:
                if lo < 0:
                    raise self.error(f"the range of {stmt.name} starts at {lo}; indices are "
                                     "0 or more", stmt)
            names = [r[0] for r in stmt.ranges]
            spans = [range(lo, hi + 1) for lo, hi in ranges]
            # Every element is bound before any is unrolled, so h[j] = h[j+1] is refused by
            # lowering as a use before its binding, not as an unknown element.
            self.vector_lets[stmt.name].update(
                element_name(stmt.name, values) for values in product(*spans))
            for values in product(*spans):
                env = None
                for index, v in zip(names, values):
                    env = Env(index, v, env)
                out.append(Statement(element_name(stmt.name, values),
                                     self.unroll(stmt.expr, env), stmt.line, stmt.column))
        return Program(out, program.source)


def _combine(node: Reduction, terms: list[Node], record=None) -> Node:
    """The terms of a reduction, combined as they would be written out: ``t1 + t2 + t3`` is
    ``(t1 + t2) + t3``; logsumexp in its stable form ``m + log(sum(exp(t - m)))``. Each node
    made is passed to ``record``."""
    fn = node.fn
    if not terms:
        made = const(0.0 if fn == "sum" else 1.0)
        if record:
            record(made)
        return made
    if fn == "logsumexp":
        top = _chain("max", terms)
        return call("add", top, call("log", _chain("add", [
            call("exp", call("sub", t, top)) for t in terms])))
    return _chain({"sum": "add", "prod": "mul"}.get(fn, fn), terms, record)


def _chain(op: str, terms: list[Node], record=None) -> Node:
    acc = terms[0]
    for t in terms[1:]:
        acc = Node(op, (acc, t))
        if record:
            record(acc)
    return acc


def expand(program: Program, max_nodes: int | None) -> Program:
    """``program`` with its index notation unrolled (the program itself when it has none)."""
    statements = program.statements
    if not any(s.ranges for s in statements) and not any(
            n.op in ("index", "reduce") for s in statements for n in iter_postorder(s.expr)):
        return program
    return _Expander(program, max_nodes).run()
