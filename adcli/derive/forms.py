"""The pieces simplification works with (:mod:`adcli.derive.simplify`): a builder that interns
nodes by structure, and sums and products as coefficient maps.

Interning makes equal subexpressions the same object, so like terms and like factors are found by
identity; coefficients are :class:`~adcli.derive.exact.Coef` numbers, exact where they can be.
"""

from __future__ import annotations

from typing import Any

from ..core import syntax as S
from ..core.syntax import Node
from ..errors import AdcliError
from ..ops import OPS, apply, const_key
from .exact import Coef, parts, quotient


class Builder:
    """Interns nodes by structure, so equal subexpressions are the same object (like terms are
    found by identity) and every node has a serial number (a canonical order for terms and
    factors: inputs first, in order of first use, then the program's nodes, then new ones)."""

    def __init__(self) -> None:
        self.table: dict[tuple, Node] = {}
        self.serial: dict[int, int] = {}
        self.limit: int | None = None  # table size at which to stop (set after the originals)
        self.budget = 0  # the new nodes allowed, for the message

    def _key(self, node: Node) -> tuple:
        if node.op == "const":
            return ("const", const_key(node.value))
        if node.op == "var":
            return ("var", node.name)
        return (node.op, *(id(a) for a in node.args))

    def adopt(self, node: Node) -> Node:
        """Intern an existing node (a node of the original program) as itself."""
        key = self._key(node)
        found = self.table.get(key)
        if found is not None:
            return found
        self.table[key] = node
        self.serial[id(node)] = len(self.serial)
        if self.limit is not None and len(self.table) > self.limit:
            raise AdcliError(f"the derivative grew past {self.budget:,} new nodes while "
                             "simplifying (the size limit of a derivative); differentiate a "
                             "smaller expression")
        return node

    def const(self, value: float | Coef) -> Node:
        if isinstance(value, Coef):
            sign, num, den = parts(value)
            return self.tree(num, den, sign)
        found = self.table.get(("const", const_key(float(value))))
        return found if found is not None else self.adopt(S.const(value))

    def tree(self, num: list[Node], den: list[Node], sign: int = 1) -> Node:
        """num[0]*num[1]*.../(den[0]*...), interned bottom-up and never folded (the exact
        constants of :func:`adcli.derive.exact.parts`)."""
        def intern(node: Node) -> Node:
            done: dict[int, Node] = {}
            for n in S.iter_postorder(node):
                if n.op == "const":
                    done[id(n)] = self.const(n.value)
                else:
                    key = (n.op, *(id(done[id(a)]) for a in n.args))
                    found = self.table.get(key)
                    done[id(n)] = found if found is not None else self.adopt(
                        S.call(n.op, *(done[id(a)] for a in n.args)))
            return done[id(node)]

        return intern(quotient(num, den, sign))

    def raw(self, op: str, *args: Node) -> Node:
        """``op(args)`` interned, never folded (2*pi stays 2*pi)."""
        key = (op, *(id(a) for a in args))
        found = self.table.get(key)
        return found if found is not None else self.adopt(S.call(op, *args))

    def call(self, op: str, *args: Node) -> Node:
        # Arithmetic on numbers folds; a function of a constant (log(2)) stays as written,
        # exact, instead of becoming 0.6931471805599453.
        if all(a.op == "const" for a in args) and not OPS[op].form == "call":
            return self.const(float(apply(OPS[op], tuple(a.value for a in args))))
        key = (op, *(id(a) for a in args))
        found = self.table.get(key)
        return found if found is not None else self.adopt(S.call(op, *args))


class Sum:
    """const + sum(coef * rest): ``terms[id(rest)] = [rest, coef, factors]``."""

    __slots__ = ("const", "terms")

    def __init__(self, const: float | Coef = 0.0) -> None:
        self.const = Coef.of(const)
        self.terms: dict[int, list] = {}


class Prod:
    """coef * prod(base ^ exp): ``factors[key] = [base, exp]``.  Integer powers of one base
    share a key and combine; a non-integer power gets a key of its own, because
    x^a * x^b = x^(a+b) fails for x < 0 when a, b are not integers."""

    __slots__ = ("coef", "factors")

    def __init__(self, coef: float | Coef = 1.0) -> None:
        self.coef = Coef.of(coef)
        self.factors: dict[Any, list] = {}

    def add_factor(self, base: Node, exp: float) -> None:
        key: Any = id(base) if float(exp).is_integer() else (id(base), len(self.factors), exp)
        entry = self.factors.get(key)
        if entry is None:
            self.factors[key] = [base, exp]
        elif entry[1] + exp == 0:
            del self.factors[key]  # x/x -> 1 (see the module docstring)
        else:
            entry[1] += exp


