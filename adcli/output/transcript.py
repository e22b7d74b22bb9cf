"""The text of ``adcli explain``: the records of :mod:`adcli.core.explain` as lines for people.

Each line comes with a style name (``title``, ``node``, ``rule``, ``partial``, ``edge``,
``total``, ``note``): the plain writer drops the styles, :func:`adcli.output.render.explain` colours
by them, and both write the same characters. Numbers go through :func:`adcli.output.numbers.num`, so
``--digits`` applies (``--digits 4`` gives the textbook's 0.7071); the JSON has every digit.
"""

from __future__ import annotations

import re

from ..core.explain import Explanation, fill, partial_formula, value_formula
from .numbers import num

Line = tuple[str, str]  # (style, text)

_ORDINAL = ("1st", "2nd")

#: What the helper kernels that some partial templates call compute (adcli.ops.kernels), said
#: once under a partial that calls one: the learner sees pow_dbase(...) and what it means.
HELPER_MEANINGS = {
    "pow_dbase": "pow_dbase(a, b, o) = b*a^(b - 1), and 0 when b = 0",
    "pow_dexp": "pow_dexp(a, b, o) = o*log(a) for a > 0, 0 at a = 0 with b > 0, else nan",
    "tie": "tie(a, b) = 1 where a > b, 0.5 at a tie, 0 where a < b",
    "div0": "div0(a, b) = a/b, and 0 when b = 0",
    "over_sqnorm": "over_sqnorm(n, a, b) = n/(a^2 + b^2), scaled by max(|a|, |b|) first",
    "norm_d": "norm_d(a, b) = a/hypot(a, b), scaled by max(|a|, |b|) first; 0 at (0, 0)",
    "atan_d": "atan_d(a) = 1/(1 + a^2), as r/(a + r) with r = 1/a when |a| > 1",
    "log1p_d": "log1p_d(a) = 1/(1 + a), and nan below -1",
}
_CALL = re.compile(r"\b(\w+)\(")


def _n(v) -> str:
    return num(v)


def _signed(v) -> str:
    """A number as a term of a sum: in parentheses when negative."""
    text = num(v)
    return f"({text})" if text.startswith("-") else text


def _distinct(steps: list[str]) -> list[str]:
    """Steps of a chain of equalities, each once (``-7.0 = -7.0`` says nothing)."""
    return [t for k, t in enumerate(steps) if k == 0 or t != steps[k - 1]]


def _grouped(template: str) -> str:
    """A template as a factor: in parentheses unless it is one token (``#2``, ``1``)."""
    return f"({template})" if " " in template else template


def _constant(template: str) -> bool:
    """A partial that is a number (add's 1, neg's -1): nothing to compute."""
    try:
        float(template)
    except ValueError:
        return False
    return True


def header(ex: Explanation) -> list[Line]:
    """The value and the gradient, as ``adcli grad --no-table`` prints them."""
    lines: list[Line] = [("title", f"value  {_n(ex.value)}")]
    gradient = ex.gradient
    if gradient:
        lines.append(("title", "gradient"))
        width = max(len(n) for n in gradient)
        lines += [("total", f"  d/d{name.ljust(width)}  {_n(g)}") for name, g in gradient.items()]
    return lines


def forward_values(ex: Explanation) -> list[Line]:
    """Each node's value, with its op and inputs (Baydin et al.'s primal trace)."""
    tape = ex.tape
    lines: list[Line] = [("title", "forward sweep: each node's value from its inputs")]
    width = max(len(lab) for lab in ex.labels) if ex.labels else 0
    width = min(width, 32)
    for i in range(len(tape.ops)):
        op = tape.ops[i]
        head = f"  #{i:<3} {ex.labels[i]:<{width}}"
        if isinstance(op, str):
            what = "input" if op == "var" else "constant"
            lines.append(("node", f"{head}  = {_n(ex.values[i])}  ({what})"))
            continue
        args = [ex.values[a] for a in tape.args[i]]
        steps = _distinct([value_formula(tape, i), fill(op.value, args, ex.values[i], _n),
                           _n(ex.values[i])])
        lines.append(("node", f"{head}  = {' = '.join(steps)}"))
    return lines


def reverse_sweep(ex: Explanation) -> list[Line]:
    """Node by node from the output: the rule, each local partial as the op's template with the
    numbers put in, and each edge's contribution to its argument's adjoint (Table 3)."""
    tape = ex.tape
    lines: list[Line] = [("title", "reverse sweep: adj[#k] = d output / d #k, from the output "
                                   "back; each edge adds adjoint * local partial")]
    received: dict[int, list] = {}
    for step in ex.backward:
        op = tape.ops[step.id]
        got = received.get(step.id, [])
        if step.id == tape.output:
            total = f"adj[#{step.id}] = {_n(step.adjoint)}  (the output: d output / d output)"
        elif len(got) == 1:
            total = f"adj[#{step.id}] = {_n(step.adjoint)}  (from #{got[0].node})"
        else:
            terms = " + ".join(_signed(e.contribution) for e in got)
            froms = ", ".join(f"#{e.node}" for e in got)
            total = f"adj[#{step.id}] = {terms} = {_n(step.adjoint)}  (from {froms})"
        lines.append(("node", f"  #{step.id} = {value_formula(tape, step.id)}   {total}"))
        lines.append(("rule", f"      {op.rule}: {op.statement}"))
        args = tape.args[step.id]
        repeated = len(set(args)) < len(args)
        for e in step.edges:
            which = f" ({_ORDINAL[e.position]} argument)" if repeated else ""
            template = partial_formula(tape, step.id, e.position)
            filled = ex.filled_partial(e, _n)
            steps = [template]
            if filled != template:
                steps.append(filled)
            if _n(e.partial) != filled and not _constant(template):
                steps.append(_n(e.partial))
            lines.append(("partial", f"      ∂#{step.id}/∂#{e.arg}{which} = "
                                     + " = ".join(steps)))
            for helper in dict.fromkeys(_CALL.findall(template)):
                if helper in HELPER_MEANINGS:
                    lines.append(("note", f"        where {HELPER_MEANINGS[helper]}"))
            edge = (f"      adj[#{e.arg}] += {_n(step.adjoint)} * {_signed(e.partial)} "
                    f"= {_n(e.contribution)}")
            if not e.first:
                edge += f", now {_n(e.total)}"
            lines.append(("edge", edge))
            received.setdefault(e.arg, []).append(e)
    if not ex.backward:
        lines.append(("note", "  (no op on the tape: nothing to pass back)"))
    lines.append(("title", "inputs: their adjoints are the gradient"))
    for name, slot in tape.inputs.items():
        got = received.get(slot, [])
        if slot == tape.output:
            lines.append(("total", f"  adj[#{slot} {name}] = {_n(ex.adjoint[slot])}  "
                                   "(the output is this input)"))
        elif not got:
            lines.append(("total", f"  adj[#{slot} {name}] = 0.0  (no path to the output)"))
        elif len(got) == 1:
            lines.append(("total", f"  adj[#{slot} {name}] = {_n(ex.adjoint[slot])}  "
                                   f"(from #{got[0].node})"))
        else:
            terms = " + ".join(_signed(e.contribution) for e in got)
            froms = ", ".join(f"#{e.node}" for e in got)
            lines.append(("total", f"  adj[#{slot} {name}] = {terms} = "
                                   f"{_n(ex.adjoint[slot])}  (from {froms})"))
    return lines


def forward_mode(ex: Explanation) -> list[Line]:
    """Dual numbers (value, tangent) along the direction (Baydin et al.'s tangent trace): each
    tangent is the sum of partial * tangent over the arguments an input reaches."""
    tape = ex.tape
    assert ex.duals is not None and ex.direction is not None
    along = ", ".join(f"{k}={_n(v)}" for k, v in ex.direction.items())
    lines: list[Line] = [("title", f"forward mode along {along}: dual numbers (value, tangent "
                                   "t#k); t#k = sum of local partial * tangent of the argument")]
    width = min(max(len(lab) for lab in ex.labels), 32)
    for d in ex.duals:
        op = tape.ops[d.id]
        pair = f"({_n(d.value)}, {_n(d.tangent)})"
        head = f"  #{d.id:<3} {ex.labels[d.id]:<{width}}  ="
        if isinstance(op, str):
            what = "input, tangent from --direction" if op == "var" else "constant"
            lines.append(("node", f"{head} {pair}  ({what})"))
            continue
        formula = value_formula(tape, d.id)
        if not d.terms:
            lines.append(("node", f"{head} {formula} = {pair}  (no input with a non-zero "
                                  "tangent reaches it)"))
            continue
        symbolic = " + ".join(f"{_grouped(partial_formula(tape, d.id, t.position))} * t#{t.arg}"
                              for t in d.terms)
        numeric = " + ".join(f"{_signed(t.partial)} * {_signed(t.tangent)}" for t in d.terms)
        lines.append(("node", f"{head} {formula} = {pair}"))
        lines.append(("rule", f"      {op.rule}: {op.statement}"))
        lines.append(("edge", f"      t#{d.id} = {symbolic} = {numeric} = {_n(d.tangent)}"))
    lines.append(("total", f"  d output along the direction = t#{tape.output} = "
                           f"{_n(ex.duals[tape.output].tangent)}"))
    return lines


def paths(ex: Explanation) -> list[Line]:
    """The derivative with respect to one input as a sum over paths of products of partials."""
    p = ex.paths
    assert p is not None
    count = len(p.paths)
    lines: list[Line] = [("title", f"d output / d {p.name} as a sum over the {count} "
                                   f"path{'' if count == 1 else 's'} from the output to "
                                   f"#{p.slot} {p.name}: each the product of the local partials "
                                   "along it")]
    for q in p.paths:
        route = " → ".join(f"#{s}" for s in q.nodes)
        factors = " * ".join(_signed(f) for f in q.partials) or "1 (the output is the input)"
        lines.append(("edge", f"  {route}:  {factors} = {_n(q.product)}"))
    terms = " + ".join(_signed(q.product) for q in p.paths) or "0 (no path)"
    lines.append(("total", f"  sum = {terms} = {_n(p.total)}  (the reverse sweep's adjoint: "
                           f"{_n(p.adjoint)})"))
    return lines


def lines(ex: Explanation, mode: str = "reverse") -> list[Line]:
    """The whole transcript: value and gradient, then the sweeps of ``mode``, then the paths."""
    out = header(ex)
    out += [("note", ""), *forward_values(ex)]
    if mode == "forward":
        out += [("note", ""), *forward_mode(ex)]
    else:
        out += [("note", ""), *reverse_sweep(ex)]
    if ex.paths is not None:
        out += [("note", ""), *paths(ex)]
    return out


def text(ex: Explanation, mode: str = "reverse") -> str:
    """The transcript as plain text (what :func:`adcli.output.render.explain` writes,
    uncoloured)."""
    return "".join(t + "\n" for _style, t in lines(ex, mode))

