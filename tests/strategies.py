"""Hypothesis strategies: random adcli programs as source text, with a point to evaluate them at.

Reusable outside the test suite (e.g. by benchmarks or fast-path checks)::

    sys.path.insert(0, "tests")
    from strategies import programs
    example = programs().example()  # Example(source=..., point={...})

``programs()`` covers the whole language: every op of the table (infix, prefix and called,
``min``/``max``/``pow``, ``sign``/``step``), both spellings of power (``^``, ``**``) and
``pow(a, b)``, unary plus, number literals in every accepted form, the constants ``pi`` and ``e``,
let-bindings (``t3 = ...``) used once or several times, shared subexpressions (the same term
reused in several places, which lowering hash-conses), redundant parentheses, ``;`` and newline
separators and ``#`` comments.

With ``defined=True`` (the default) the point is drawn first and the program is built around it:
every op is applied only where it is defined and reasonably conditioned at that point (log of
something >= 0.2, a divisor of magnitude >= 0.2, asin of |a| <= 0.9, ...); otherwise a bounded
smooth op (sin, cos, atan, tanh, sigmoid) is used instead. So the value and gradient at the
point are finite, and finite differences are meaningful, except exactly at or near a kink of
abs/relu/min/max/sign/step, which the tests detect. With ``defined=False`` ops and values are
unrestricted (zeros, huge numbers, inf, nan): for "nothing ever raises" tests.

The values computed here only steer the generator (they use the op table's ``fn``); no test uses
them as a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from adcli.core.unparse import needs_parens
from adcli.ops import OPS, PREC_ATOM, PREC_UNARY

VARIABLES = ("x", "y", "z", "w")

#: (source text, value) for every literal form the grammar accepts, and the constants.
LITERALS: tuple[tuple[str, float], ...] = (
    ("2", 2.0), ("3", 3.0), ("0.5", 0.5), (".5", 0.5), ("1.5", 1.5), ("10", 10.0),
    ("1e-3", 1e-3), ("2.5E+1", 25.0), ("7.", 7.0), ("0.25e1", 2.5), ("pi", math.pi),
    ("e", math.e),
)

ALL_OPS = tuple(OPS)  # every primitive, so a new op is covered without editing this file
UNARY_OPS = tuple(n for n in ALL_OPS if OPS[n].arity == 1)
BINARY_OPS = tuple(n for n in ALL_OPS if OPS[n].arity == 2)
SAFE_UNARY = ("sin", "cos", "atan", "tanh", "sigmoid")  # defined, bounded, smooth everywhere
BOUND = 1e4  # |value| of every generated term stays below this when defined=True


@dataclass(frozen=True)
class Term:
    text: str
    prec: int
    value: float
    active: bool = True  # depends on a variable


@dataclass
class Example:
    """A program and a point; ``ops`` lists the op names the generator applied."""

    source: str
    point: dict[str, float]
    ops: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Example(source={self.source!r}, point={self.point!r})"


def _apply(name: str, values: list[float]) -> float:
    with np.errstate(all="ignore"):
        return float(OPS[name].fn(*[np.float64(v) for v in values]))


def well_defined(name: str, args: list[float], active_exponent: bool = True) -> bool:
    """Whether ``name`` at ``args`` is defined with a margin, so derivatives are moderate.
    A negative base of ``pow`` is fine only with a constant integer exponent."""
    a = args[0]
    b = args[1] if len(args) > 1 else 0.0
    if name in ("log", "log2", "log10"):
        ok = a >= 0.2
    elif name == "sqrt":
        ok = a >= 0.1
    elif name == "cbrt":
        ok = abs(a) >= 0.1
    elif name == "log1p":
        ok = a >= -0.8
    elif name == "expm1":
        ok = abs(a) <= 8
    elif name in ("atan2", "hypot"):
        ok = a * a + b * b >= 0.04
    elif name in ("asin", "acos"):
        ok = abs(a) <= 0.9
    elif name == "tan":
        ok = abs(math.cos(a)) >= 0.2
    elif name in ("exp", "sinh", "cosh"):
        ok = abs(a) <= 8
    elif name == "div":
        ok = abs(b) >= 0.2
    elif name == "pow":
        ok = (a >= 0.2 and abs(b) <= 3) or (
            not active_exponent and b in (2.0, 3.0) and abs(a) <= 50)
    else:
        ok = True
    if not ok:
        return False
    out = _apply(name, args)
    return math.isfinite(out) and abs(out) <= BOUND


def _wrap(term: Term, op_name: str, position: int) -> str:
    return f"({term.text})" if needs_parens(term.prec, OPS[op_name], position) else term.text


def render(name: str, args: list[Term], spelling: int) -> tuple[str, int]:
    """Source text and precedence of ``name`` applied to ``args`` (minimal parentheses from
    the op table's precedences; ``spelling`` picks among equivalent surface forms)."""
    op = OPS[name]
    if name == "pow":
        if spelling == 2:
            return f"pow({args[0].text}, {args[1].text})", PREC_ATOM
        sym = "**" if spelling == 1 else "^"
        return f"{_wrap(args[0], name, 0)}{sym}{_wrap(args[1], name, 1)}", op.prec
    if op.form == "infix":
        return f"{_wrap(args[0], name, 0)} {op.symbol} {_wrap(args[1], name, 1)}", op.prec
    if op.form == "prefix":
        return f"{op.symbol}{_wrap(args[0], name, 0)}", op.prec
    return f"{op.symbol}({', '.join(t.text for t in args)})", PREC_ATOM


@st.composite
def programs(draw, max_steps: int = 12, defined: bool = True) -> Example:
    """A random adcli program and a point for its variables (see the module docstring)."""
    names = draw(st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=4, unique=True))
    if defined:
        coordinate = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
    else:
        coordinate = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e308]))
    point = {n: draw(coordinate) for n in names}
    pool = [Term(n, PREC_ATOM, point[n]) for n in names]
    separator = draw(st.sampled_from(["; ", "\n", ";\n"]))
    statements: list[str] = []
    applied: list[str] = []
    last = pool[-1]
    for _ in range(draw(st.integers(min(3, max_steps), max_steps))):
        name = draw(st.sampled_from(ALL_OPS))
        args = []
        for k in range(OPS[name].arity):
            if k == 0 and draw(st.integers(0, 3)) > 0:  # mostly grow the latest term: depth
                args.append(last)
            elif draw(st.integers(0, 4)) == 0:
                text, value = draw(st.sampled_from(LITERALS))
                args.append(Term(text, PREC_ATOM, value, active=False))
            else:
                args.append(draw(st.sampled_from(pool)))
        if defined and not well_defined(name, [t.value for t in args], args[-1].active):
            name, args = draw(st.sampled_from(SAFE_UNARY)), args[:1]
        spelling = draw(st.integers(0, 2))
        text, prec = render(name, args, spelling)
        if draw(st.integers(0, 9)) == 0:  # redundant parentheses and unary plus
            text, prec = (f"+({text})", PREC_UNARY) if prec < PREC_UNARY else (f"({text})", prec)
        term = Term(text, prec, _apply(name, [t.value for t in args]),
                    any(t.active for t in args))
        applied.append(name)
        if draw(st.integers(0, 3)) == 0:  # a let binding, possibly used several times later
            let = f"t{len(statements)}"
            comment = draw(st.sampled_from(["", "  # a let binding"])) if "\n" in separator else ""
            statements.append(f"{let} = {text}{comment}")
            term = Term(let, PREC_ATOM, term.value, term.active)
        pool.append(term)
        last = term
    # The output: the last term combined with up to two earlier ones (more sharing, and
    # let-bound terms get used).
    for _ in range(draw(st.integers(1, 3))):
        other = draw(st.sampled_from(pool))
        name = draw(st.sampled_from(("add", "mul", "sub")))
        if not defined or well_defined(name, [last.value, other.value]):
            text, prec = render(name, [last, other], 0)
            last = Term(text, prec, _apply(name, [last.value, other.value]),
                        last.active or other.active)
            applied.append(name)
    if not last.active:  # every program has at least one input
        var = draw(st.sampled_from(pool[:len(names)]))
        text, prec = render("add", [last, var], 0)
        last = Term(text, prec, _apply("add", [last.value, var.value]))
        applied.append("add")
    statements.append(last.text)
    source = separator.join(statements)
    return Example(source, point, applied)
