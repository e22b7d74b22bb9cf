"""The unparser: expression DAG -> adcli source text, with the fewest parentheses and no
expression swell; and the short labels of a tape's slots (:func:`describe`).

Parentheses come from one rule on the precedence numbers of the op table (:func:`parens`, which
refines :func:`needs_parens` with the grammar's two asymmetries of ``^``: its left
operand must be an atom, its right operand may be any unary expression, so ``x^-2`` and
``(x^2)^3``).  A subexpression used more than once is printed once, as a let-binding
``name = ...;`` (the user's own let name when it has one), unless its text is so short that
repeating it is clearer than naming it.  A node the user named with a let keeps its binding
wherever the output uses it.  So the printed size is linear in the size of the DAG, never
exponential; ``parse(print(e))`` computes the same function.

The same DAG prints as Python, SymPy input or LaTeX (``fmt``): each op by its op-table entry's
template for that format (:func:`adcli.ops.print_template`), with the same parenthesis rule
and the same bindings, which become ``name = ...`` lines.

Everything is iterative: a 100,000-node chain prints without recursion and without quadratic
string building (text is emitted as pieces into one list).
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable, Mapping

from ..ops import (
    CONSTANTS,
    FUNCTIONS,
    OPS,
    PREC_ADD,
    PREC_ATOM,
    PREC_MUL,
    PREC_UNARY,
    Op,
    print_template,
)
from .syntax import Node, iter_postorder
from .tape import CONST, Tape

#: a shared subexpression whose text is at most this long is repeated instead of named
SHORT = 8


def number_text(value: float) -> tuple[str, int]:
    """(text, precedence) of a constant. inf and nan have no literal, so they print as the
    divisions that produce them (``1/0``, ``0/0``)."""
    v = float(value)
    if v != v:
        return "0/0", PREC_MUL
    if v == float("inf"):
        return "1/0", PREC_MUL
    if v == float("-inf"):
        return "-1/0", PREC_MUL
    text = format_number(v)
    return text, (PREC_UNARY if text.startswith("-") else PREC_ATOM)


def parens(child_prec: int, op: Op, position: int) -> bool:
    """Whether argument ``position`` of ``op``, printed at ``child_prec``, needs parentheses."""
    if op.name == "pow":
        # grammar: power: atom POW unary
        return child_prec < PREC_ATOM if position == 0 else child_prec < PREC_UNARY
    return needs_parens(child_prec, op, position)


def infix_text(op: Op) -> str:
    """How a binary operator is written: spaces around + and -, none around * / ^."""
    if op.form == "call":
        return op.symbol
    return f" {op.symbol} " if op.prec == PREC_ADD else op.symbol


def _prec(node: Node) -> int:
    if node.op == "const":
        return number_text(node.value)[1]
    if node.op == "var":
        return PREC_ATOM
    return OPS[node.op].prec


def to_source(root: Node, names: Mapping[int, str] | None = None,
              reserved: Iterable[str] = (), sep: str = "; ", short: int = SHORT,
              fmt: str = "adcli", constants: bool = False) -> str:
    """Source text of the DAG under ``root``: let-bindings for shared parts, then the
    expression. ``names`` maps nodes (by id) to preferred binding names; generated names
    (t1, t2, ...) avoid ``reserved``, every variable, function and constant name.

    ``fmt`` is adcli's language or one of :data:`adcli.ops.PRINT_FORMATS` (each op prints by
    its entry's template; bindings become ``name = ...`` lines joined by ``sep``). With
    ``constants``, the floats of pi and e print as those constants where no variable or
    binding takes their name (they evaluate to the same bits)."""
    names = dict(names or {})
    order = list(iter_postorder(root))
    uses: dict[int, int] = {id(root): 1}
    taken = set(reserved) | set(FUNCTIONS) | set(CONSTANTS) | set(names.values())
    for node in order:
        if node.op == "var":
            taken.add(node.name)
        repeats = _slot_counts(node.op, fmt) if fmt != "adcli" and node.args else None
        for k, a in enumerate(node.args):
            # a template that writes an argument twice (sign in Python) uses it twice: it
            # is bound when long, so the text stays linear in the DAG
            uses[id(a)] = uses.get(id(a), 0) + (repeats[k] if repeats else 1)
    printer = _Printer(fmt, constants and not ({"pi", "e", "E"} & (set(reserved) | {
        n.name for n in order if n.op == "var"} | set(names.values()))))

    for nid, name in names.items():
        if "[" in name:  # an element of h[j = 1..n] = ...: a let name must be a plain name
            plain = name.replace("[", "_").replace(",", "_").rstrip("]")
            candidate, k = plain, 1
            while candidate in taken:
                candidate, k = f"{plain}_{k}", k + 1
            taken.add(candidate)
            names[nid] = candidate

    # Pass 1: inline length of every node, deciding bindings bottom-up.
    length: dict[int, int] = {}
    bound: dict[int, str] = {}
    counter = 0
    for node in order:
        if node.op == "const":
            length[id(node)] = len(number_text(node.value)[0])
            continue
        if node.op == "var":
            length[id(node)] = len(node.name)
            continue
        op = OPS[node.op]
        total = len(infix_text(op)) + (2 if op.form == "call" else 0)
        for k, a in enumerate(node.args):
            total += length[id(a)] + (2 * (len(node.args) - 1) if op.form == "call" and k else 0)
            if id(a) not in bound and parens(_prec(a), op, k):
                total += 2
        length[id(node)] = total
        if node is not root and (id(node) in names or (uses[id(node)] > 1 and total > short)):
            name = names.get(id(node))
            if name is None:
                counter += 1
                while f"t{counter}" in taken:
                    counter += 1
                name = f"t{counter}"
                taken.add(name)
            bound[id(node)] = name
            length[id(node)] = len(name)

    # Pass 2: emit the bindings in dependency order, then the expression.
    statements = [f"{printer.name(bound[id(n)])} = {printer.emit(n, bound)}"
                  for n in order if id(n) in bound]
    statements.append(printer.emit(root, bound))
    return sep.join(statements)


def _slot_counts(op: str, fmt: str) -> list[int]:
    template = print_template(OPS[op], fmt)
    return [max(1, template.count(f"{{{k}}}")) for k in range(OPS[op].arity)]


#: how pi and e print in each format, when they print as constants
_CONSTANT_TEXT = {"adcli": ("pi", "e"), "python": ("math.pi", "math.e"), "sympy": ("pi", "E"),
                  "latex": ("\\pi", "e")}


#: names the Python templates use, so a variable of that name is renamed (float -> float_)
_PYTHON_TAKEN = frozenset(("math", "abs", "min", "max", "float"))


class _Printer:
    """The pieces of one format: numbers, names, and ops by their op-table templates."""

    def __init__(self, fmt: str, constants: bool) -> None:
        if fmt not in _CONSTANT_TEXT:
            raise ValueError(f"unknown format {fmt!r}")
        self.fmt = fmt
        pi, e = _CONSTANT_TEXT[fmt]
        self.symbols = {math.pi: pi, math.e: e} if constants else {}

    def name(self, name: str) -> str:
        if self.fmt == "python" and (keyword.iskeyword(name) or name in _PYTHON_TAKEN):
            return name + "_"
        if self.fmt != "latex":
            return name
        m = re.fullmatch(r"([A-Za-z]+)_?(\d+)", name)
        if m and len(m.group(1)) == 1:
            return f"{m.group(1)}_{{{m.group(2)}}}"
        if len(name) == 1:
            return name
        return "\\mathit{" + name.replace("_", "\\_") + "}"

    def number(self, value: float) -> tuple[str, int]:
        v = float(value)
        if v in self.symbols:
            return self.symbols[v], PREC_ATOM
        if self.fmt == "adcli":
            return number_text(v)
        special = {"python": ("math.nan", "math.inf"), "sympy": ("nan", "oo"),
                   "latex": ("\\mathrm{NaN}", "\\infty")}[self.fmt]
        if v != v:
            return special[0], PREC_ATOM
        if math.isinf(v):
            return ("-" + special[1], PREC_UNARY) if v < 0 else (special[1], PREC_ATOM)
        text = format_number(v)
        if self.fmt == "latex" and "e" in text:
            mant, exp = text.split("e")
            text = f"{mant} \\times 10^{{{int(exp)}}}"
            return text, PREC_MUL
        return text, (PREC_UNARY if text.startswith("-") else PREC_ATOM)

    def prec(self, node: Node) -> int:
        if node.op == "const":
            return self.number(node.value)[1]
        if node.op == "var":
            return PREC_ATOM
        op = OPS[node.op]
        if op.form == "call":
            return PREC_ATOM
        template = print_template(op, self.fmt)
        if all(_grouped(template, k) for k in range(op.arity)):
            return PREC_ATOM  # \frac{a}{b}
        return op.prec

    def emit(self, top: Node, bound: Mapping[int, str]) -> str:
        """Text of ``top`` in this format (bound children print as their names); iterative."""
        pieces: list[str] = []
        stack: list[Node | str] = [top]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                pieces.append(item)
                continue
            node = item
            if node is not top and id(node) in bound:
                pieces.append(self.name(bound[id(node)]))
            elif node.op == "const":
                pieces.append(self.number(node.value)[0])
            elif node.op == "var":
                pieces.append(self.name(node.name))
            else:
                op = OPS[node.op]
                seq: list[Node | str] = []
                for k, chunk in _split(print_template(op, self.fmt)):
                    if k is None:
                        seq.append(chunk)
                        continue
                    a = node.args[k]
                    wrap = (op.form != "call" and not _grouped(print_template(op, self.fmt), k)
                            and id(a) not in bound and parens(self.prec(a), op, k))
                    if wrap:
                        latex = self.fmt == "latex"
                        left, right = ("\\left(", "\\right)") if latex else ("(", ")")
                        seq.extend([left, a, right])
                    else:
                        seq.append(a)
                stack.extend(reversed(seq))
        return "".join(pieces)


_SLOT = re.compile(r"\{(\d)\}")


def _split(template: str) -> list[tuple[int | None, str]]:
    """A template as literal text (None, text) and argument slots (k, "")."""
    out: list[tuple[int | None, str]] = []
    last = 0
    for m in _SLOT.finditer(template):
        if m.start() > last:
            out.append((None, template[last:m.start()]))
        out.append((int(m.group(1)), ""))
        last = m.end()
    if last < len(template):
        out.append((None, template[last:]))
    return out


def _grouped(template: str, k: int) -> bool:
    """Whether slot k sits directly inside the template's own braces (LaTeX's {...})."""
    return f"{{{{{k}}}}}" in template


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float64; integers without '.0'."""
    v = float(value)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def needs_parens(child_prec: int, op: Op, position: int) -> bool:
    """Whether an argument printed at ``child_prec`` needs parentheses as argument
    ``position`` of ``op``. The one parenthesise rule for every printer."""
    if op.form == "call":
        return False
    if child_prec < op.prec:
        return True
    if child_prec == op.prec:
        if op.form == "prefix":
            return False
        if op.assoc == "left":
            return position == 1
        if op.assoc == "right":
            return position == 0
        return True
    # Unary minus binds looser than ^: a negative base needs parentheses, (-2)^x.
    return op.name == "pow" and position == 0 and child_prec <= PREC_UNARY


def render_op(op: Op, args: list[tuple[str, int]]) -> tuple[str, int]:
    """Print ``op`` applied to already-printed arguments (text, precedence)."""
    parts = [f"({t})" if needs_parens(p, op, k) else t for k, (t, p) in enumerate(args)]
    if op.form == "call":
        return f"{op.symbol}({', '.join(t for t, _ in args)})", PREC_ATOM
    if op.form == "prefix":
        return f"{op.symbol}{parts[0]}", op.prec
    if op.name == "pow":
        return f"{parts[0]}^{parts[1]}", op.prec
    return f"{parts[0]} {op.symbol} {parts[1]}", op.prec


def describe(tape: Tape, max_len: int = 32, count: int | None = None) -> list[str]:
    """A short source-like label for every slot (or the first ``count``; a label reads
    only earlier ones): its name if it has one, else its subexpression, cut to
    ``max_len`` characters. Linear time on any DAG."""
    texts: list[str] = []
    precs: list[int] = []
    for i, (op, a) in enumerate(zip(tape.ops[:count], tape.args[:count])):
        if i in tape.labels:
            text, prec = tape.labels[i], PREC_ATOM
        elif op == CONST:
            text = format_number(tape.consts[i])
            prec = PREC_UNARY if text.startswith("-") else PREC_ATOM
        else:
            text, prec = render_op(op, [(texts[s], precs[s]) for s in a])
        if len(text) > max_len:
            text = text[: max_len - 1] + "…"
        texts.append(text)
        precs.append(prec)
    return texts
