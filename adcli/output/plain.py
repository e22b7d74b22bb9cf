"""Numbers for people, and the plain text of ``adcli grad``/``eval`` for pipes and files.

Where stdout is no terminal, rich writes no colours: the output of :mod:`adcli.output.render` is
then text that this module writes byte for byte the same, without importing rich (a large share of a
short run's start-up). It covers what it can reproduce exactly: a node table that fits the console,
or one printed wider than the console because no label column can fold (rich's box, column widths
and alignment); text rich would interpret (markup, emoji codes, control or wide characters) or wrap,
a table whose labels rich would fold, a console rich would treat as a terminal or as ASCII-only: for
those :func:`grad_text` and :func:`warning_text` return None and the caller prints through rich.
Tests compare the two renderers over many expressions, widths and options.

Numbers go through :mod:`adcli.output.numbers`, as in every renderer.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
from typing import TextIO

from ..errors import clip_words, escape_control
from ..results import GradReport
from .numbers import num

# ---------------------------------------------------------------- when rich is not needed

#: rich's markup starts with '[', its emoji codes are ':name:'.
_EMOJI = re.compile(r":\S*?:")
#: Characters of one cell each that may appear in table cells (the rest of a cell: printable
#: ASCII), whatever the terminal: rich measures them as one cell too.
_ONE_CELL = frozenset("–…")


def _safe(text: str) -> bool:
    """Text rich prints unchanged: printable (no control characters, no tabs, no newlines), no
    markup, no emoji code."""
    return text.isprintable() and "[" not in text and _EMOJI.search(text) is None


def _safe_cell(text: str) -> bool:
    """Safe text whose width is its length for rich too."""
    return _safe(text) and all(" " <= c <= "~" or c in _ONE_CELL for c in text)


def rich_would_be_plain(stream: TextIO) -> bool:
    """Whether a rich Console on ``stream`` would write no colour codes and use the Unicode box
    (rich's own tests: TTY_COMPATIBLE, FORCE_COLOR, isatty, the encoding; Jupyter and IDLE)."""
    if sys.platform == "win32" or hasattr(builtins, "get_ipython"):
        return False  # legacy consoles and notebooks: leave them to rich
    if hasattr(stream, "rich_proxied_file"):
        return False
    stdin_module = getattr(sys.stdin, "__module__", "") or ""
    if stdin_module.startswith("idlelib"):
        return False
    encoding = (getattr(stream, "encoding", "utf-8") or "utf-8").lower()
    if not encoding.startswith("utf"):
        return False
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible == "0":
        return True
    if tty_compatible == "1":
        return False
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color == ""
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is not None and not isatty()
    except ValueError:
        return True


def console_width() -> int | None:
    """The width rich gives a console that is no terminal: COLUMNS, else the size of the first
    of stdin, stdout, stderr that is a terminal, else 80. None for a COLUMNS that rich reads
    as digits but Python cannot (``"²"``): rich's own affair."""
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns) if columns.isascii() else None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd)[0]
        except (AttributeError, ValueError, OSError):
            continue
        return width or 80
    return 80


# --------------------------------------------------------------------------- the text

#: A label column is folded down to this width before any number would be cut
#: (:data:`adcli.output.render.LABEL_MIN_WIDTH`).
LABEL_MIN_WIDTH = 12
TITLE = "tape (reverse sweep runs bottom to top)"
_HEADERS = ("id", "op", "args", "label", "value", "grad (adjoint)")
_RIGHT = (True, False, False, False, True, True)  # justify="right": the number columns
_LABELS = (1, 2, 3)  # the columns that fold (overflow="fold")


def node_rows(report: GradReport, max_rows: int = 200) -> list[tuple[str, ...]]:
    """The cells of the node table (:func:`adcli.output.render.node_table` shows the same)."""
    rows = report.nodes if max_rows <= 0 else report.nodes[:max_rows]
    # A constant carries no derivative: "–", not a gradient of 0 that reads as a result.
    return [(str(n.id), n.op, " ".join(f"#{a}" for a in n.args), n.label,
             num(n.value), "–" if n.op == "const" else num(n.grad)) for n in rows]


def _table(rows: list[tuple[str, ...]], width: int) -> list[str] | None:
    """rich's default table (heavy head box, padding of one cell) at its natural width; None
    when rich would fold a label column to fit ``width``."""
    widths = [len(h) for h in _HEADERS]
    for row in rows:
        for i, cell in enumerate(row):
            if not _safe_cell(cell):
                return None
            widths[i] = max(widths[i], len(cell))
    natural = sum(widths) + 2 * len(widths) + len(widths) + 1
    if natural > width and any(widths[i] > LABEL_MIN_WIDTH for i in _LABELS):
        return None  # rich would fold labels (adcli.output.render.print_table)

    def line(cells: tuple[str, ...], edge: str, sep: str) -> str:
        padded = (c.rjust(w) if right else c.ljust(w)
                  for c, w, right in zip(cells, widths, _RIGHT))
        return edge + sep.join(f" {c} " for c in padded) + edge

    def rule(left: str, fill: str, sep: str, right: str) -> str:
        return left + sep.join(fill * (w + 2) for w in widths) + right

    return ([rule("┏", "━", "┳", "┓"), line(_HEADERS, "┃", "┃"), rule("┡", "━", "╇", "┩")]
            + [line(row, "│", "│") for row in rows] + [rule("└", "─", "┴", "┘")])


def grad_text(report: GradReport, table: bool = True, max_rows: int = 200,
              width: int | None = None) -> str | None:
    """What :func:`adcli.output.render.grad` writes to a console that is no terminal, ``width``
    columns wide (default: :func:`console_width`); None where only rich can say."""
    if width is None:
        width = console_width()
        if width is None:
            return None
    value = f"value  {num(report.value)}"
    lines = [value]
    if report.gradient:
        if width < len("gradient"):
            return None
        lines.append("gradient")
        name_width = max(len(n) for n in report.gradient)
        lines += [f"  d/d{name.ljust(name_width)}  {num(g)}"
                  for name, g in report.gradient.items()]
    if table and report.nodes:
        body = _table(node_rows(report, max_rows), width)
        if body is None:
            return None
        lines += ["", TITLE, *body]
        hidden = max(report.node_count, len(report.nodes)) - max_rows if max_rows > 0 else 0
        if hidden > 0:
            more = f"… {hidden:,} more nodes not shown (--max-rows 0 shows all)"
            if len(more) > width:
                return None  # rich wraps it
            lines.append(more)
    if not all(_safe(text) for text in lines):
        return None
    return "\n".join(lines) + "\n"


def warning_text(message: str) -> str | None:
    """What :func:`adcli.output.render.warn` writes to a stderr that is no terminal; None where only
    rich can say."""
    text = f"Warning: {escape_control(clip_words(message))}"
    return text + "\n" if _safe(text) else None
