"""The tape as a Graphviz graph: the picture the sweeps walk.

adcli writes the DOT text itself (no Graphviz library needed): one node per tape slot showing
its id, op and label, and, when a point is given, its value and its gradient (adjoint), the way
the classic backpropagation diagrams show them.  Edges run from each argument to its consumer,
one per use, so ``a + a`` has two edges from ``a``.  SVG and PNG are drawn by the Graphviz
``dot`` program when it is installed (Debian/Ubuntu: ``apt-get install graphviz``); without
it, SVG is drawn by adcli's own layout (:mod:`adcli.output.svg`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from ..core import sweeps
from ..core.tape import CONST, VAR, Tape
from ..core.unparse import describe
from ..errors import AdcliError, escape_control
from . import svg
from .numbers import num

FORMATS = ("dot", "svg", "png")
_ORDERED = {"sub", "div", "pow"}  # ops whose argument order matters: edges say which is which


#: the default of ``--max-nodes``: DOT text costs ~130 bytes a node, and Graphviz cannot lay out
#: (nor a reader follow) a picture of millions of nodes.
MAX_NODES = 10_000


def check_size(tape: Tape, max_nodes: int = MAX_NODES) -> None:
    """Refuse, before any work, a tape too big to draw (0: no limit)."""
    if max_nodes and len(tape) > max_nodes:
        raise AdcliError(f"the tape has {len(tape):,} nodes, over the graph limit of "
                         f"{max_nodes:,}", hint="raise it with --max-nodes N (0: no limit)")


def quote(text: str) -> str:
    """A DOT double-quoted string (``\\n`` inside stays a Graphviz line break). Control
    characters (``\\r``, ``\\x0c``, BEL, NUL, ESC from a comment in the title) are shown as
    ``\\x07`` text: raw they would end up in the picture's file, or on a terminal."""
    text = escape_control(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def node_texts(tape: Tape, point: Mapping[str, Any] | None = None) -> list[list[str]]:
    """Each node's label lines, the same in DOT and in the built-in SVG: ``#id op``, its
    source-like label and, with ``point``, its value and gradient as the node table shows
    them (12 digits: -1.5, not -1.4999999999999996)."""
    values = adjoint = None
    if point is not None:
        values = sweeps.evaluate(tape, point)
        adjoint = sweeps.reverse(tape, values)
    labels = describe(tape)
    texts = []
    for slot, op in enumerate(tape.ops):
        name = op if isinstance(op, str) else op.name
        lines = [f"#{slot} {name}", labels[slot]]
        if values is not None:
            lines.append(f"value {num(values[slot])}")
            if tape.active[slot]:
                g = adjoint[slot] if adjoint[slot] is not None else 0.0
                lines.append(f"grad {num(g)}")
        texts.append(lines)
    return texts


def to_dot(tape: Tape, point: Mapping[str, Any] | None = None, title: str = "") -> str:
    """DOT source for the tape; with ``point``, each node also shows its value and gradient."""
    texts = node_texts(tape, point)
    lines = ["digraph adcli {", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={quote(title)}; labelloc=t;")
    for slot, op in enumerate(tape.ops):
        if op == VAR:
            attrs = 'shape=ellipse, style=filled, fillcolor="#dbeafe"'
        elif op == CONST:
            attrs = 'shape=box, style="rounded,filled", fillcolor="#f3f4f6"'
        else:
            attrs = "shape=box"
        if slot == tape.output:
            attrs += ", penwidth=2.5"
        label = "\n".join(texts[slot])
        lines.append(f"  n{slot} [label={quote(label)}, {attrs}];")
    for slot, (op, args) in enumerate(zip(tape.ops, tape.args)):
        for k, a in enumerate(args):  # the tuple, not a set: a + a gives two edges
            extra = f" [label={quote('ab'[k])}]" if op.name in _ORDERED else ""
            lines.append(f"  n{a} -> n{slot}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(tape: Tape, point: Mapping[str, Any] | None = None, title: str = "") -> str:
    """SVG for the tape drawn by adcli's own layout (:mod:`adcli.output.svg`), no Graphviz needed:
    the same nodes, labels and edges as :func:`to_dot`."""
    kinds = ["var" if op == VAR else "const" if op == CONST else "op" for op in tape.ops]
    edge_labels = [("a", "b") if not isinstance(op, str) and op.name in _ORDERED else ()
                   for op in tape.ops]
    return svg.to_svg(node_texts(tape, point), tape.args, kinds, tape.output, edge_labels,
                      title=title)


#: Graphviz's output formats (``dot -T?``) that make a file, by the extension they are known
#: by; ``dot`` and ``gv`` are DOT text, written without Graphviz. Not listed: x11/xlib
#: (windows, not files) and the xdot/json version variants (chosen with --format).
FORMATS = ("bmp canon cmap cmapx dot eps fig gd gd2 gif gv imap ismap jpe jpeg jpg json mp "
           "pdf pic plain plain-ext png pov ps ps2 svg svgz tif tiff tk vdx vml vmlz vrml wbmp "
           "webp xdot").split()
#: The formats that are text (safe to print on a terminal); the rest are binary.
TEXT_FORMATS = frozenset("canon cmap cmapx dot eps fig gv imap ismap json mp pic plain "
                         "plain-ext pov ps ps2 svg tk vdx vml vrml xdot".split())


#: Extensions that name the same format.
_SAME = {"gv": "dot", "jpe": "jpg", "jpeg": "jpg", "tif": "tiff", "htm": "html"}


def format_for(path: str | None, fmt: str | None) -> str:
    """The output format: ``fmt`` if given, else the ``-o`` file's extension (``g.jpg`` is
    JPEG), else DOT; a known extension that contradicts ``fmt`` is refused (SVG in g.png). An
    extension Graphviz does not know is refused rather than written as
    DOT text under a misleading name."""
    base = path.replace("\\", "/").rsplit("/", 1)[-1] if path else ""
    ext = base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else None
    if fmt is not None:
        if ext in (*FORMATS, "html", "htm") and _SAME.get(ext, ext) != _SAME.get(fmt, fmt):
            raise AdcliError(f"-o '{path}' names a .{ext} file but --format is {fmt}",
                             hint=f"name the file .{fmt}, or drop --format to write .{ext}")
        return fmt
    if ext is None:
        return "dot"
    if ext not in FORMATS:
        raise AdcliError(f"-o '{path}': '.{ext}' is not a Graphviz output format",
                         hint="use an extension such as .dot, .svg, .png, .pdf or .jpg, or "
                              "choose with --format (formats: " + ", ".join(FORMATS) + ")")
    return ext


#: ``--engine``: ``auto`` draws with Graphviz when ``dot`` is on PATH and SVG with adcli's own
#: layout when it is not; ``dot`` and ``builtin`` force one.
ENGINES = ("auto", "dot", "builtin")


def engine_for(fmt: str, engine: str = "auto") -> str:
    """Who makes ``fmt``: ``text`` (DOT, written by adcli), ``dot`` (Graphviz) or ``builtin``
    (:func:`to_svg`). Graphviz is preferred when present, so a picture looks the same as
    before; only SVG has a fallback, as the other formats need a rasteriser or PDF writer."""
    if fmt in ("dot", "gv"):
        return "text"
    if engine == "builtin":
        if fmt != "svg":
            raise AdcliError(f"--engine builtin draws only svg, not {fmt}",
                             hint=f"drop --engine to draw {fmt} with Graphviz's dot, or write "
                                  "-o FILE.svg")
        return "builtin"
    if engine == "dot" and shutil.which("dot") is None:
        raise AdcliError("--engine dot needs Graphviz's 'dot' program, which is not on PATH",
                         hint="install the Debian/Ubuntu package graphviz (apt-get install "
                              "graphviz), or drop --engine dot to draw svg with adcli's own "
                              "layout")
    if engine == "dot" or fmt != "svg":
        return "dot"
    return "dot" if shutil.which("dot") else "builtin"


def render(dot_source: str, fmt: str) -> bytes:
    """Run Graphviz ``dot`` to turn DOT into ``fmt`` (one of :data:`FORMATS`)."""
    if fmt in ("dot", "gv"):
        return dot_source.encode()
    exe = shutil.which("dot")
    if exe is None:
        raise AdcliError(
            f"drawing {fmt} needs the Graphviz 'dot' program, which is not installed; install "
            "the Debian/Ubuntu package graphviz (apt-get install graphviz), or write DOT with "
            "--format dot" + ("" if fmt == "svg" else ", or SVG without Graphviz with -o FILE.svg"))
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(),
                              capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AdcliError(f"running Graphviz 'dot' failed: {err}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise AdcliError("Graphviz 'dot' failed: " + (message[0] if message else
                                                       f"exit status {done.returncode}"))
    return done.stdout
