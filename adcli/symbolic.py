"""Symbolic derivatives: the reverse sweep run on expressions instead of numbers.

The tape is walked backwards exactly like :func:`adcli.sweeps.reverse`, but each adjoint is an
expression tree built from the op table's symbolic rules (``Op.derivative``), so there is one
copy of every rule.  Every tape slot becomes exactly one :class:`~adcli.syntax.Node`, and the
adjoint of a slot is built once from the list of its contributions, so the derivative of a DAG is
a DAG of size proportional to the tape (the squaring chain ``a2 = a1*a1; ...`` does not swell).
Arguments that do not depend on an input (a constant exponent) get no derivative at all.

:func:`simplify` then tidies the result for people: constant folding, ``0``/``1`` identities,
numeric coefficients combined, like terms and like factors collected, ``--x`` -> ``x``,
``x^1`` -> ``x``.  It is memoised per node and iterative, and it only flattens sums and products
through nodes used once, so shared subexpressions stay shared.

Known differences from the numeric rules (documented, not hidden):

* d/dy x^y is ``x^y*log(x)``: nan at x = 0 where the numeric rule gives 0 (and nan for x < 0,
  like the numeric rule).
* Collecting like terms and factors uses algebra that holds where the function is finite:
  ``x/x`` -> ``1`` and ``x - x`` -> ``0`` even at points where the unsimplified form is nan.
* ``d/dx x^n = n*x^(n-1)`` with constant n: the numeric rule returns exactly 0 when n = 0, the
  symbolic one folds ``0*...`` to 0 too, but ``x^(n-1)`` at x = 0 with n < 1 is inf, as in maths.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import syntax as S
from .syntax import Node
from .tape import CONST, VAR, Tape


class Derivative:
    """The derivatives of a tape's output with respect to some inputs, as expression DAGs.

    ``exprs[name]`` is d output / d name; ``names`` maps nodes (by id) to the user's names for
    them (input variables and let bindings), which the printer reuses.
    """

    def __init__(self, exprs: dict[str, Node], names: dict[int, str],
                 node_of_slot: list[Node]) -> None:
        self.exprs = exprs
        self.names = names
        self.node_of_slot = node_of_slot


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


def _sum(terms: list[Node]) -> Node:
    total = terms[0]
    for term in terms[1:]:
        total = S.add(total, term)
    return total


def gradient(tape: Tape, wrt: Iterable[str] | None = None) -> Derivative:
    """d output / d name for each name in ``wrt`` (default: every input), unsimplified.

    Reverse accumulation over the tape: the adjoint of a slot is complete once every later slot
    has been visited, so it is summed once from its contributions and then pushed to its
    arguments through ``Op.derivative``.
    """
    names = list(tape.inputs) if wrt is None else list(wrt)
    nodes = tape_nodes(tape)
    contributions: list[list[Node] | None] = [None] * len(tape.ops)
    contributions[tape.output] = [S.const(1.0)]
    active = tape.active
    for slot, op, args in reversed(tape.instructions()):
        terms = contributions[slot]
        if not terms or not active[slot]:
            continue
        contributions[slot] = None  # done with it; frees the list
        adj = _sum(terms)
        partials = op.derivative(tuple(nodes[a] for a in args), nodes[slot])
        for a, p in zip(args, partials):
            if active[a]:
                bucket = contributions[a]
                if bucket is None:
                    bucket = contributions[a] = []
                bucket.append(S.mul(adj, p))
    exprs: dict[str, Node] = {}
    for name in names:
        slot = tape.inputs.get(name)
        terms = contributions[slot] if slot is not None else None
        exprs[name] = _sum(terms) if terms else S.const(0.0)
    labels = {id(nodes[slot]): label for slot, label in tape.labels.items()}
    return Derivative(exprs, labels, nodes)
