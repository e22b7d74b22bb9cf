"""Symbolic derivatives: the reverse sweep run on expressions instead of numbers.

The tape is walked backwards exactly like :func:`adcli.core.sweeps.reverse`, but each adjoint is an
expression tree built from the op table's symbolic rules (``Op.derivative``), so there is one
copy of every rule.  Every tape slot becomes exactly one :class:`~adcli.core.syntax.Node`, and the
adjoint of a slot is built once from the list of its contributions, so the derivative of a DAG is
a DAG of size proportional to the tape (the squaring chain ``a2 = a1*a1; ...`` does not swell).
Arguments that do not depend on an input (a constant exponent) get no derivative at all.

:func:`simplify` then tidies the result for people: constant folding, ``0``/``1`` identities,
numeric coefficients combined, like terms and like factors collected, ``--x`` -> ``x``,
``x^1`` -> ``x``, and a factor of every term of a small sum written once (``a + a*b`` ->
``a*(1 + b)``).  It is memoised per node and iterative, and it only flattens sums and products
through nodes used once, so shared subexpressions stay shared.  Coefficients are
:class:`~adcli.derive.exact.Coef` numbers: exact (``sqrt(2/pi)``, ``1/2``) where they can be, so
``erf(x/sqrt(2))`` differentiates to ``sqrt(2/pi)*exp(-x^2/2)``; a function of a constant
(``log(2)``) stays as written.

Known differences from the numeric rules (documented, not hidden):

* d/dy x^y is ``x^y*log(x)``: nan at x = 0 where the numeric rule gives 0 (and nan for x < 0,
  like the numeric rule).
* Collecting like terms and factors uses algebra that holds where the function is finite:
  ``x/x`` -> ``1`` and ``x - x`` -> ``0`` even at points where the unsimplified form is nan.
* ``d/dx x^y`` with a varying y prints as ``y*x^y/x`` when the program has ``x^y`` (shared, and
  ``x^x`` collects to ``x^x*(1 + log(x))``): nan at x = 0, where ``y*x^(y-1)`` may be finite.
* ``d/dx x^n = n*x^(n-1)`` with constant n: the numeric rule returns exactly 0 when n = 0, the
  symbolic one folds ``0*...`` to 0 too, but ``x^(n-1)`` at x = 0 with n < 1 is inf, as in maths.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core import syntax as S
from ..core.syntax import Node
from ..core.tape import CONST, VAR, Tape
from ..errors import AdcliError
from ..ops import RuleBuilder
from .simplify import simplify, simplify_many

__all__ = ["Derivative", "derivative", "gradient", "simplify", "simplify_many", "tape_nodes"]


class Derivative:
    """The derivatives of a tape's output with respect to some inputs, as expression DAGs.

    ``exprs[name]`` is d output / d name; ``names`` maps nodes (by id) to the user's names for
    them (input variables and let bindings), which the unparser reuses.
    """

    def __init__(self, exprs: dict[str, Node], names: dict[int, str],
                 node_of_slot: list[Node], kept: list[Node] | None = None) -> None:
        self.exprs = exprs
        self.names = names
        self.node_of_slot = node_of_slot
        self.kept = kept or []  # nodes the rules asked to keep whole (ops.RuleBuilder)


def tape_nodes(tape: Tape) -> list[Node]:
    """One expression node per slot, sharing children exactly as the tape shares slots."""
    nodes: list[Node] = []
    for slot, (op, args) in enumerate(zip(tape.ops, tape.args)):
        if op == VAR:
            nodes.append(S.var(tape.labels[slot]))
        elif op == CONST:
            nodes.append(S.const(tape.consts[slot]))
        else:
            nodes.append(S.call(op.name, *(nodes[a] for a in args)))
    return nodes


class _KeepNumbers:
    """The smart constructors of :mod:`adcli.core.syntax` for the rules, except that
    arithmetic on two numbers is left as written: simplification does it exactly
    (``sqrt(2)*sqrt(2)`` is 2 there, 2.0000000000000004 in floats)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(S, name)

    @staticmethod
    def _numbers(a: Node, b: Node, identity: float) -> bool:
        """Two numbers, neither 0 nor the op's identity (those simplify exactly at once)."""
        return (a.op == "const" and b.op == "const"
                and not {a.value, b.value} & {0.0, identity})

    def add(self, a: Node, b: Node) -> Node:
        return S.call("add", a, b) if self._numbers(a, b, 0.0) else S.add(a, b)

    def sub(self, a: Node, b: Node) -> Node:
        return S.call("sub", a, b) if self._numbers(a, b, 0.0) else S.sub(a, b)

    def mul(self, a: Node, b: Node) -> Node:
        return S.call("mul", a, b) if self._numbers(a, b, 1.0) else S.mul(a, b)

    def div(self, a: Node, b: Node) -> Node:
        return S.call("div", a, b) if self._numbers(a, b, 1.0) else S.div(a, b)


_E = _KeepNumbers()


def _sum(terms: list[Node]) -> Node:
    total = terms[0]
    for term in terms[1:]:
        total = _E.add(total, term)
    return total


def gradient(tape: Tape, wrt: Iterable[str] | None = None) -> Derivative:
    """d output / d name for each name in ``wrt`` (default: every input), unsimplified.

    Reverse accumulation over the tape: the adjoint of a slot is complete once every later slot
    has been visited, so it is summed once from its contributions and then pushed to its
    arguments through ``Op.derivative``.
    """
    names = list(tape.inputs) if wrt is None else list(wrt)
    if len(tape) > MAX_TAPE_NODES:
        raise AdcliError(f"the tape has {len(tape):,} nodes; symbolic derivatives (diff, "
                         f"hessian, newton) are limited to {MAX_TAPE_NODES:,}, because they "
                         "need several times its memory")
    nodes = tape_nodes(tape)
    contributions: list[list[Node] | None] = [None] * len(tape.ops)
    contributions[tape.output] = [S.const(1.0)]
    active = tape.active
    rules = RuleBuilder(_E)
    for slot, op, args in reversed(tape.instructions()):
        terms = contributions[slot]
        if not terms or not active[slot]:
            continue
        contributions[slot] = None  # done with it; frees the list
        adj = _sum(terms)
        partials = op.derivative(rules, tuple(nodes[a] for a in args), nodes[slot])
        for a, p in zip(args, partials):
            if active[a]:
                bucket = contributions[a]
                if bucket is None:
                    bucket = contributions[a] = []
                bucket.append(_E.mul(adj, p))
    exprs: dict[str, Node] = {}
    for name in names:
        slot = tape.inputs.get(name)
        terms = contributions[slot] if slot is not None else None
        exprs[name] = _sum(terms) if terms else S.const(0.0)
    labels = {id(nodes[slot]): label for slot, label in tape.labels.items()}
    return Derivative(exprs, labels, nodes, rules.kept)



#: Tapes larger than this get no symbolic derivative: the unsimplified gradient has up to ~10
#: nodes per tape node.
MAX_TAPE_NODES = 250_000
#: New nodes one simplification may create (the size budget of ``adcli diff``'s result). Most
#: derivatives need about one per tape node, but a tower x^x^...^x needs ~40 per level and
#: ~1 kB each: 500,000 keep the run under about 1 GB.
MAX_NEW_NODES = 500_000


def derivative(tape: Tape, wrt: Iterable[str] | None = None) -> Derivative:
    """Simplified derivatives of the tape's output (what ``adcli diff`` prints)."""
    raw = gradient(tape, wrt)
    names = list(raw.exprs)
    opaque = [raw.node_of_slot[slot] for slot in tape.labels]
    simplified = simplify_many([raw.exprs[n] for n in names], raw.node_of_slot, opaque,
                               raw.kept, MAX_NEW_NODES)
    return Derivative(dict(zip(names, simplified)), raw.names, raw.node_of_slot)
