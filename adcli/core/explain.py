"""``adcli explain``: a transcript of both sweeps, to teach the chain rule with the very
numbers adcli computes.

The transcript is not a second differentiator. It runs the loops of :mod:`adcli.core.sweeps` once
more, step for step (the same ``Op.partials``, the same multiply-then-add order), and keeps what
they compute: every node's value, every local partial, every edge's contribution to an adjoint
and the running sums. So each adjoint it shows is the one ``adcli grad`` gives, to the bit, and
each rule it names and template it fills in comes from the op table (:mod:`adcli.ops`).

Three views of one derivative: the reverse sweep (adjoints from the output back), forward mode
(dual numbers, value and tangent, along a direction) and the sum over paths (the gradient with
respect to one input as the sum, over every path from the output to it, of the product of the
local partials along the path). Path counts grow exponentially with sharing, so the paths are
counted first and refused above :data:`MAX_PATHS`.

This module computes records only; :mod:`adcli.output.transcript` writes them as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import AdcliError
from ..ops import Op
from ..results import Key
from .sweeps import bind
from .tape import Tape

#: More paths than this from the output to the input are refused (``--paths``): each is
#: listed on a line, and their number doubles with each shared node a chain passes through.
MAX_PATHS = 100


@dataclass(slots=True)
class Edge:
    """One edge of the reverse sweep: node ``node`` passes ``contribution`` = its adjoint
    times ``partial`` (d node / d arg) to its argument ``arg`` (at ``position``), whose adjoint
    is ``total`` after the addition (``first``: the first contribution it received)."""

    node: int
    arg: int
    position: int
    partial: Any
    contribution: Any
    total: Any
    first: bool


@dataclass(slots=True)
class Backward:
    """One step of the reverse sweep: node ``id``, whose adjoint is complete when the sweep
    reaches it, and the edges it sends to its arguments that carry a derivative."""

    id: int
    adjoint: Any
    edges: list[Edge] = field(default_factory=list)


@dataclass(slots=True)
class Term:
    """One term of a forward-mode tangent: partial (d node / d arg) times the tangent of arg."""

    arg: int
    position: int
    partial: Any
    tangent: Any
    product: Any


@dataclass(slots=True)
class Dual:
    """A node's dual number (value, tangent) in forward mode, with the terms that made the
    tangent (none for an input, a constant, or a node no input with a non-zero tangent
    reaches)."""

    id: int
    value: Any
    tangent: Any
    terms: list[Term] = field(default_factory=list)


@dataclass(slots=True)
class Path:
    """One path from the output down to an input: its nodes (output first), the local partial
    of each edge, and their product (multiplied from the output down)."""

    nodes: tuple[int, ...]
    partials: tuple[Any, ...]
    product: Any


@dataclass(slots=True)
class PathSum:
    """The derivative with respect to ``name`` as a sum over paths; ``adjoint`` is what the
    reverse sweep computed (the same number, up to the rounding of another summation order)."""

    name: str
    slot: int
    paths: list[Path]
    total: Any
    adjoint: Any


@dataclass(slots=True)
class Explanation:
    """The transcript of one point: the tape, every slot's value and adjoint (None where no
    path reaches the output), the reverse sweep's steps in the order it ran them, and
    optionally forward mode along ``direction`` and the paths to one input."""

    tape: Tape
    labels: list[str]
    values: list[Any]
    adjoint: list[Any]
    backward: list[Backward]
    direction: dict[str, float] | None = None
    duals: list[Dual] | None = None
    paths: PathSum | None = None
    warnings: list[str] = field(default_factory=list)
    mode: str = "reverse"  # how it is shown: "forward" leaves the reverse sweep out

    @property
    def value(self) -> Any:
        return self.values[self.tape.output]

    @property
    def gradient(self) -> dict[str, Any]:
        """d output / d input per input, as ``adcli grad`` reports it (0.0 when none)."""
        return {name: _or_zero(self.adjoint[slot]) for name, slot in self.tape.inputs.items()}

    # The transcript as data. ``nodes[i].adjoint`` and ``gradient`` are ``adcli grad --json``'s
    # ``nodes[i].grad`` and ``gradient``, bit for bit (0.0 where no path reaches the output, as
    # there); ``--mode forward`` leaves the reverse sweep out.
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("value"), Key("gradient"), Key("nodes", lambda ex: ex._nodes_json()),
        Key("reverse", lambda ex: [ex._step_json(step) for step in ex.backward],
            omit=lambda ex: ex.mode == "forward"),
        Key("forward_mode", lambda ex: ex._forward_json(), omit=lambda ex: ex.duals is None),
        Key("paths", lambda ex: ex._paths_json(), omit=lambda ex: ex.paths is None))

    def _nodes_json(self) -> list[dict[str, Any]]:
        tape = self.tape
        received: dict[int, list[Edge]] = {}
        for step in self.backward:
            for e in step.edges:
                received.setdefault(e.arg, []).append(e)
        nodes = []
        for i in range(len(tape.ops)):
            op = tape.ops[i]
            node: dict[str, Any] = {
                "id": i, "op": tape.op_name(i), "label": self.labels[i],
                "args": list(tape.args[i]), "value": self.values[i],
                "formula": value_formula(tape, i),
                "computed": "" if isinstance(op, str) else
                fill(op.value, [self.values[a] for a in tape.args[i]], self.values[i], repr_num),
                "adjoint": _or_zero(self.adjoint[i]),
                "contributions": [{"from": e.node, "value": e.contribution}
                                  for e in received.get(i, [])]}
            nodes.append(node)
        return nodes

    def _forward_json(self) -> dict[str, Any]:
        duals = self.duals or []
        return {
            "direction": self.direction,
            "derivative": duals[self.tape.output].tangent,
            "nodes": [{"id": d.id, "value": d.value, "tangent": d.tangent,
                       "terms": [{"arg": t.arg, "partial": t.partial,
                                  "tangent": t.tangent, "product": t.product}
                                 for t in d.terms]} for d in duals]}

    def _paths_json(self) -> dict[str, Any]:
        p = self.paths
        assert p is not None
        return {"wrt": p.name, "input": p.slot, "sum": p.total, "adjoint": p.adjoint,
                "paths": [{"nodes": list(q.nodes), "partials": list(q.partials),
                           "product": q.product} for q in p.paths]}

    def _step_json(self, step: Backward) -> dict[str, Any]:
        op = self.tape.ops[step.id]
        return {"id": step.id, "op": op.name, "adjoint": step.adjoint, "rule": op.rule,
                "statement": op.statement,
                "edges": [{"arg": e.arg, "position": e.position,
                           "template": partial_formula(self.tape, step.id, e.position),
                           "computed": self.filled_partial(e, repr_num),
                           "partial": e.partial, "contribution": e.contribution,
                           "adjoint_after": e.total} for e in step.edges]}

    def filled_partial(self, e: Edge, number: Callable[[Any], str]) -> str:
        """The partial's template with the numbers put in (``1 - 0.7071 * 0.7071``)."""
        op = self.tape.ops[e.node]
        return fill(tidy(op.partial[e.position]),
                    [self.values[a] for a in self.tape.args[e.node]], self.values[e.node],
                    number)


def _or_zero(v: Any) -> Any:
    return 0.0 if v is None else v


# --------------------------------------------------------------------------- templates

_PLACEHOLDER = re.compile(r"\{(\d|o)\}")
_OPERATORS = frozenset("+-*/^")
_WHOLE = re.compile(r"(?<![\w.])(\d+)\.0(?![\w.])")


def tidy(template: str) -> str:
    """``1.0 - {o} * {o}`` -> ``1 - {o} * {o}``: whole numbers as people write them."""
    return _WHOLE.sub(r"\1", template)


def repr_num(v: Any) -> str:
    """Every digit (the JSON transcript's filled-in templates)."""
    from ..results import format_value

    return format_value(v)


def fill(template: str, args: list[Any], out: Any, number: Callable[[Any], str]) -> str:
    """``template`` with ``{i}`` replaced by argument i and ``{o}`` by the output, each written
    by ``number``; a negative number is put in parentheses after an operator (``2.0 *
    (-3.0)``, ``-(-1.5) / 2.0``; not in ``-6.0 + 0.0`` nor ``pow_dbase(-3.0, 2.0, 9.0)``)."""
    def put(m: re.Match) -> str:
        key = m.group(1)
        text = number(out if key == "o" else args[int(key)])
        after = template[:m.start()].rstrip()[-1:]
        return f"({text})" if text.startswith("-") and after in _OPERATORS else text

    return _PLACEHOLDER.sub(put, template)


def _refs(tape: Tape, slot: int) -> list[str]:
    return [f"#{a}" for a in tape.args[slot]]


def value_formula(tape: Tape, slot: int) -> str:
    """How the node is computed, over node references: ``#0 * #1``, ``tanh(#6)``; "" for an
    input or a constant."""
    op = tape.ops[slot]
    if isinstance(op, str):
        return ""
    return fill(op.value, _refs(tape, slot), f"#{slot}", str)


def partial_formula(tape: Tape, slot: int, position: int) -> str:
    """The op's own partial template for argument ``position`` over node references:
    tanh's ``1 - #7 * #7``, mul's ``#1``."""
    op: Op = tape.ops[slot]
    return fill(tidy(op.partial[position]), _refs(tape, slot), f"#{slot}", str)


# --------------------------------------------------------------------------- the sweeps


def explain(tape: Tape, point: Mapping[str, Any], labels: list[str], *,
            direction: Mapping[str, float] | None = None,
            paths: str | None = None) -> Explanation:
    """The transcript of ``tape`` at ``point`` (plain floats): the forward values, the reverse
    sweep edge by edge, and optionally forward mode along ``direction`` and the paths to the
    input ``paths``."""
    import numpy as np

    values = bind(tape, point)
    with np.errstate(all="ignore"):
        for slot, op, args in tape.instructions():  # sweeps.evaluate's loop
            values[slot] = op.fn(*[values[a] for a in args])
        adjoint, backward = _reverse(tape, values)
        duals = None if direction is None else _forward(tape, values, direction)
        result = Explanation(tape, labels, values, adjoint, backward,
                             dict(direction) if direction is not None else None, duals)
        if paths is not None:
            result.paths = _paths(result, paths)
    return result


def _reverse(tape: Tape, values: list[Any]) -> tuple[list[Any], list[Backward]]:
    """:func:`adcli.core.sweeps.reverse` at a point, keeping each edge's partial and
    contribution."""
    import numpy as np

    adjoint: list[Any] = [None] * len(tape.ops)
    adjoint[tape.output] = np.float64(1.0)
    active = tape.active
    steps: list[Backward] = []
    for slot, op, args in reversed(tape.instructions()):
        g = adjoint[slot]
        if g is None:
            continue
        step = Backward(slot, g)
        partials = op.partials(tuple(values[a] for a in args), values[slot])
        for position, (a, p) in enumerate(zip(args, partials)):
            if active[a]:
                contribution = g * p
                first = adjoint[a] is None
                adjoint[a] = contribution if first else adjoint[a] + contribution
                step.edges.append(Edge(slot, a, position, p, contribution, adjoint[a], first))
        steps.append(step)
    return adjoint, steps


def _forward(tape: Tape, values: list[Any], direction: Mapping[str, float]) -> list[Dual]:
    """:func:`adcli.core.sweeps.forward`, keeping each tangent's terms: an argument that no input
    with a non-zero tangent reaches adds nothing (not even 0 * inf)."""
    import numpy as np

    tangent: list[Any] = [np.float64(0.0)] * len(tape.ops)
    live = [False] * len(tape.ops)
    for name, slot in tape.inputs.items():
        tangent[slot] = np.float64(direction.get(name, 0.0))
        live[slot] = bool(tangent[slot] != 0)  # nan counts as non-zero
    duals = [Dual(i, values[i], tangent[i]) for i in range(len(tape.ops))]
    active = tape.active
    for slot, op, args in tape.instructions():
        if not active[slot]:
            continue
        partials = op.partials(tuple(values[a] for a in args), values[slot])
        total: Any = 0.0
        terms = []
        for position, (a, p) in enumerate(zip(args, partials)):
            if active[a] and live[a]:
                product = p * tangent[a]
                total = total + product
                live[slot] = True
                terms.append(Term(a, position, p, tangent[a], product))
        tangent[slot] = np.float64(total)
        duals[slot] = Dual(slot, values[slot], tangent[slot], terms)
    return duals


def _paths(result: Explanation, name: str) -> PathSum:
    """Every path from the output to input ``name``, with the product of its local partials
    (the partials the reverse sweep used). Counted before they are listed: more than
    :data:`MAX_PATHS` is an error."""
    tape = result.tape
    if name not in tape.inputs:
        known = ", ".join(tape.inputs) or "none"
        raise AdcliError(f"--paths: '{name}' is not a variable of the expression "
                         f"(its variables: {known})")
    target = tape.inputs[name]
    # count[i]: paths from slot i down to the target, capped (exponential in sharing)
    count = [0] * len(tape.ops)
    count[target] = 1
    for slot, _op, args in tape.instructions():
        if tape.active[slot]:
            count[slot] = min(MAX_PATHS + 1, sum(count[a] for a in args))
    n = count[tape.output]
    if n > MAX_PATHS:
        raise AdcliError(f"--paths: the output reaches '{name}' along more than {MAX_PATHS} "
                         "paths, too many to list (each shared node doubles them); explain a "
                         "smaller expression, or read the reverse sweep, which sums them all "
                         "without listing them")
    partial = {(e.node, e.position): e.partial for step in result.backward for e in step.edges}
    found: list[Path] = []
    # explicit stack over a tree of visited prefixes: entry k is (slot, parent entry, partial
    # of the edge from the parent), so a path costs its length once, not at every step
    tree: list[tuple[int, int, Any]] = []
    stack: list[int] = []
    if n:
        tree.append((tape.output, -1, None))
        stack.append(0)
    while stack:
        k = stack.pop()
        slot = tree[k][0]
        if slot == target:
            nodes, partials = [], []
            while k >= 0:
                s, parent, p = tree[k]
                nodes.append(s)
                if parent >= 0:
                    partials.append(p)
                k = parent
            nodes.reverse()
            partials.reverse()
            product: Any = 1.0
            for p in partials:
                product = product * p
            found.append(Path(tuple(nodes), tuple(partials), product))
            continue
        args = tape.args[slot]
        for position in range(len(args) - 1, -1, -1):  # reversed: paths in argument order
            a = args[position]
            if count[a]:
                tree.append((a, k, partial[(slot, position)]))
                stack.append(len(tree) - 1)
    total: Any = 0.0
    for p in found:
        total = total + p.product
    return PathSum(name, target, found, total, _or_zero(result.adjoint[target]))

