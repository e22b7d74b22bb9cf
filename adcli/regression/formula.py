"""The formula of a fit, ``LHS ~ MODEL`` after optional let-bindings, parsed into the two
sides of a residual program; errors point at the user's own text (line and column kept)."""

from __future__ import annotations

import math
from typing import Any

from ..core.records import Record
from ..core.syntax import Program, Statement, call, iter_postorder
from ..errors import AdcliError
from ..function import gc_paused
from ..language.parser import DEFAULT_MAX_SOURCE_BYTES, parse_program
from ..results import nest_elements  # noqa: F401 - JSON of a fit (adcli.regression.fitting)


class FitError(AdcliError):
    """A formula or option that cannot be fitted (exit status 2)."""


# --------------------------------------------------------------------------- the formula


def _tilde_positions(text: str) -> list[int]:
    """Offsets of every ``~`` outside ``#`` comments."""
    found, in_comment = [], False
    for i, ch in enumerate(text):
        if ch == "\n":
            in_comment = False
        elif ch == "#":
            in_comment = True
        elif ch == "~" and not in_comment:
            found.append(i)
    return found


def _blank(text: str, start: int, stop: int) -> str:
    """``text`` with [start, stop) turned to spaces (newlines kept): lines and columns of
    everything else stay where they were, so parse errors point into the user's text."""
    middle = "".join(c if c == "\n" else " " for c in text[start:stop])
    return text[:start] + middle + text[stop:]


def _locate(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class Formula(Record):
    """A parsed ``LHS ~ MODEL``: the residual program ``lets; LHS - MODEL`` and its parts.
    A plain slotted class with a dataclass's equality and ``repr``: making a dataclass runs
    generated code at import, start-up only a fit pays."""

    __slots__ = __match_args__ = FIELDS = SHOWN = ("program", "lhs", "model", "lets")

    def __init__(self, program: Program, lhs: Any, model: Any, lets: dict[str, Any]) -> None:
        self.program = program
        self.lhs = lhs
        self.model = model
        self.lets = lets

    def bind(self, point: Any, option: str = "--from") -> dict[str, Any]:
        """``point`` (a copy) with an indexed parameter's values (``a=[..]``, ``a=0``) given
        to the elements the formula uses (a[0], a[1], ...)."""
        point = dict(point or {})
        if not point:
            return point
        from ..io.point import bind_elements

        return bind_elements(point, self.names(self.program.output), option)

    def names(self, node: Any) -> set[str]:
        """Input names that ``node`` reads, following let-bindings."""
        return {n.name for n in iter_postorder(node, self.lets)
                if n.op == "var" and n.name not in self.lets}


def parse_formula(text: str, *, max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES) -> Formula:
    """Parse ``[lets;] LHS ~ MODEL``. The two sides are parsed from copies of the text with the
    other side blanked out, so every error's line and column are those of the user's text."""
    tildes = _tilde_positions(text)
    if not tildes:
        raise FitError("a formula needs '~' between the response and the model, as in "
                       "\"y ~ a*exp(-b*x)\"")
    if len(tildes) > 1:
        line, col = _locate(text, tildes[1])
        raise FitError("a formula has exactly one '~'", source=text, line=line, column=col)
    at = tildes[0]
    line_start = text.rfind("\n", 0, at) + 1
    stmt_start = max(line_start, text.rfind(";", 0, at) + 1)
    rest = text[at + 1:]
    if any(ln.split("#", 1)[0].strip(" \t\r;") for ln in rest.split("\n")[1:]) or \
            ";" in rest.split("\n", 1)[0].split("#", 1)[0].rstrip(" \t\r;"):
        line, col = _locate(text, at)
        raise FitError("the formula 'LHS ~ MODEL' must be the last statement", source=text,
                       line=line, column=col)
    if not text[stmt_start:at].strip():
        line, col = _locate(text, at)
        raise FitError("nothing before '~': write the response, as in \"y ~ a*x\"",
                       source=text, line=line, column=col)
    if not rest.split("#", 1)[0].strip(" \t\r;\n"):
        line, col = _locate(text, at)
        raise FitError("nothing after '~': write the model, as in \"y ~ a*x\"",
                       source=text, line=line, column=col + 1)
    if "=" in text[stmt_start:at]:
        line, col = _locate(text, stmt_start + text[stmt_start:at].index("=") + 1)
        raise FitError("the formula's left side cannot be a let binding; write 'LHS ~ MODEL'",
                       source=text, line=line, column=col)

    def side(blanked: str) -> Program:
        try:
            return parse_program(blanked, max_bytes=max_bytes)
        except AdcliError as err:
            if err.source is not None:
                err.source = text  # same lines and columns; show the user's own text
            raise

    with gc_paused():
        left = side(_blank(text, at, len(text)))
        right = side(_blank(text, stmt_start, at + 1))
        lhs, model = left.statements[-1].expr, right.statements[-1].expr
        line, col = _locate(text, at)
        residual = call("sub", lhs, model, line=line, column=col)
        statements = left.statements[:-1] + [Statement(None, residual, line, col)]
    lets = {s.name: s.expr for s in statements[:-1]}
    return Formula(Program(statements, text), lhs, model, lets)


def parse_bounds(texts: str | list[str] | tuple[str, ...], option: str = "--bounds"
                 ) -> dict[str, tuple[float, float]]:
    """``"a=0:10,b=-1:"`` -> ``{"a": (0, 10), "b": (-1, inf)}`` (an empty side is unbounded;
    values may be constant expressions such as ``pi/2``)."""
    from ..io.point import _NAME, _split_top_level, parse_value

    if isinstance(texts, str):
        texts = [texts]
    out: dict[str, tuple[float, float]] = {}
    for text in texts:
        for part in _split_top_level(text):
            item = part.strip()
            name, eq, span = item.partition("=")
            name = name.strip()
            if not eq or ":" not in span:
                raise FitError(f"{option} '{item}' is not name=lo:hi (e.g. b=0:10, b=0:)")
            if not _NAME.match(name):
                raise FitError(f"{option} '{name}' is not a valid name")
            if name in out:
                raise FitError(f"{option} gives '{name}' twice")
            lo_text, _, hi_text = span.partition(":")
            lo = parse_value(lo_text, context=f"{option} {name}=") if lo_text.strip() \
                else -math.inf
            hi = parse_value(hi_text, context=f"{option} {name}=") if hi_text.strip() \
                else math.inf
            if math.isnan(lo) or math.isnan(hi) or not lo < hi:
                raise FitError(f"{option} {name}={span.strip()}: need lo < hi")
            out[name] = (lo, hi)
    return out
