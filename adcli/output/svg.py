"""The tape as an SVG picture drawn by adcli itself, for machines without Graphviz.

Graphviz cannot be installed with pip, so ``adcli graph -o g.svg`` falls back to this layout.
It needs no search: the tape is already in topological order, so each node's layer is one more
than the deepest of its arguments (layers drawn left to right, as Graphviz's ``rankdir=LR``
does), each node then moves right up to its first consumer, and a couple of barycentre sweeps
order each layer to cut edge crossings. Nodes are boxes holding the same text as the DOT
labels (the node table's numbers); edges are curves with arrowheads, one per use, so ``a + a``
draws two. Every piece of text is escaped for XML, and characters XML cannot hold at all are
written as ``\\x07`` text, so the file always parses. Loops only: no depth the input controls
reaches the stack.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Pixels per character of 11px Helvetica (a generous average, so text stays inside its box)
CHAR_W = 6.6
LINE_H = 14.0
PAD_X, PAD_Y = 8.0, 6.0
LAYER_GAP = 60.0  # horizontal room between layers, for the edges
NODE_GAP = 18.0  # vertical room between the boxes of one layer
MARGIN = 16.0
VIA_H = 4.0  # the room a long edge takes where it crosses a layer
SWEEPS = 2  # down-and-up barycentre passes; more rarely changes a small graph

#: Characters XML 1.0 forbids even as references (C0 controls but tab, newline, carriage
#: return; lone surrogates; U+FFFE, U+FFFF), plus what ``escape_control`` hides on terminals.
_NOT_XML = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match[0])
    if 0xDC80 <= code <= 0xDCFF:  # a byte of argv that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_text(text: str) -> str:
    """``text`` safe inside an XML element or a double-quoted attribute: markup characters
    become entities, characters XML cannot carry become visible ``\\x..`` escapes."""
    text = _NOT_XML.sub(_visible, text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def layers(args: Sequence[tuple[int, ...]]) -> list[int]:
    """Each node's layer. First as early as possible (a leaf in 0, any other node one past
    its deepest argument), which fixes how many layers there are; then, going back, each
    node with a consumer moves as late as possible (one before its earliest consumer), so an
    input or constant used only near the output sits beside its consumer instead of sending
    a long edge across the whole picture. Two passes over the tape, whose order is already
    topological (an argument's slot is always before its consumer's)."""
    depth: list[int] = []
    for a in args:
        depth.append(1 + max(depth[s] for s in a) if a else 0)
    latest = [len(args)] * len(args)  # above any layer: no consumer seen yet
    for slot in range(len(args) - 1, -1, -1):
        if latest[slot] < len(args):
            depth[slot] = latest[slot] - 1
        for s in args[slot]:
            latest[s] = min(latest[s], depth[slot])
    return depth


def order(args: Sequence[tuple[int, ...]], depth: Sequence[int],
          sweeps: int = SWEEPS) -> list[list[int]]:
    """The nodes of each layer, top to bottom. Starts in tape order, then alternately sorts
    each layer by the mean position of its arguments (going right) and of its consumers
    (going left): the barycentre heuristic, which removes most crossings of a tape's DAG."""
    n_layers = max(depth, default=-1) + 1
    rows: list[list[int]] = [[] for _ in range(n_layers)]
    for slot, d in enumerate(depth):
        rows[d].append(slot)
    users: list[list[int]] = [[] for _ in depth]
    for slot, a in enumerate(args):
        for s in a:
            users[s].append(slot)
    pos = [0.0] * len(depth)
    for row in rows:
        for i, slot in enumerate(row):
            pos[slot] = float(i)

    def resort(row: list[int], neighbours: Sequence[Sequence[int]]) -> None:
        def key(slot: int) -> tuple[float, int]:
            near = neighbours[slot]
            # a node with no neighbour on that side keeps its place
            return (sum(pos[s] for s in near) / len(near) if near else pos[slot], slot)
        row.sort(key=key)
        for i, slot in enumerate(row):
            pos[slot] = float(i)

    for _ in range(sweeps):
        for row in rows[1:]:
            resort(row, args)
        for row in reversed(rows[:-1]):
            resort(row, users)
    return rows


def to_svg(texts: Sequence[Sequence[str]], args: Sequence[tuple[int, ...]],
           kinds: Sequence[str], output: int, edge_labels: Sequence[Sequence[str]],
           title: str = "") -> str:
    """An SVG document for a DAG in topological order.

    ``texts[i]`` is node ``i``'s lines, ``args[i]`` its arguments (one edge each),
    ``kinds[i]`` one of ``var``, ``const``, ``op`` (the fill), ``output`` the node drawn
    with a thick border, ``edge_labels[i][k]`` the text on the edge of argument ``k``
    (``""`` for none).
    """
    n = len(texts)
    depth = layers(args)
    # an edge across several layers passes through one virtual point in each layer between,
    # which the ordering places like a node and which takes room, so that the edge runs
    # between the boxes rather than through them; capped, so that a variable used at every
    # depth of a long chain cannot make the picture quadratic (past the cap: direct curves)
    via: dict[tuple[int, int], list[int]] = {}
    ext_args = [tuple(a) for a in args]
    ext_depth = list(depth)
    budget = max(4 * n, 1000)
    for t, a in enumerate(args):
        for k, s in enumerate(a):
            span = depth[t] - depth[s]
            if span < 2 or len(ext_depth) - n + span - 1 > budget:
                continue
            chain, prev = [], s
            for d in range(depth[s] + 1, depth[t]):
                ext_depth.append(d)
                ext_args.append((prev,))
                prev = len(ext_depth) - 1
                chain.append(prev)
            ext_args[t] = ext_args[t][:k] + (prev,) + ext_args[t][k + 1:]
            via[(t, k)] = chain
    rows = order(ext_args, ext_depth)
    total = len(ext_depth)
    width = [PAD_X * 2 + CHAR_W * max((len(t) for t in lines), default=1) for lines in texts]
    height = [PAD_Y * 2 + LINE_H * max(len(lines), 1) for lines in texts]
    width += [0.0] * (total - n)
    height += [VIA_H] * (total - n)
    # columns as wide as their widest box; each column centred vertically on the tallest
    col_w = [max(width[s] for s in row) for row in rows]
    col_h = [sum(height[s] for s in row) + NODE_GAP * (len(row) - 1) for row in rows]
    col_x = [0.0] * len(rows)
    top = MARGIN + (LINE_H + 10.0 if title else 0.0)
    total_h = max(col_h, default=0.0)
    x = [0.0] * total
    y = [0.0] * total
    left = MARGIN
    for c, row in enumerate(rows):
        cursor = top + (total_h - col_h[c]) / 2
        col_x[c] = left
        for s in row:
            x[s] = left + (col_w[c] - width[s]) / 2
            y[s] = cursor
            cursor += height[s] + NODE_GAP
        left += col_w[c] + LAYER_GAP
    doc_w = max(left - LAYER_GAP + MARGIN, 2 * MARGIN + CHAR_W * 13 / 11 * len(title))
    doc_h = top + total_h + MARGIN

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{doc_w:.0f}" '
           f'height="{doc_h:.0f}" viewBox="0 0 {doc_w:.1f} {doc_h:.1f}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/>'
           '</marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>']
    if title:
        out.append(f'<text class="title" x="{doc_w / 2:.1f}" y="{MARGIN + LINE_H - 2:.1f}" '
                   f'text-anchor="middle" font-size="13">{xml_text(title)}</text>')

    # ports: a node's outgoing edges leave spread along its right side, in the order of their
    # targets' heights, and its incoming edges arrive spread along its left side, argument by
    # argument, so the two edges of a + a are two visible curves
    outgoing: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for slot, a in enumerate(args):
        for k, s in enumerate(a):
            outgoing[s].append((slot, k))

    def first_y(e: tuple[int, int]) -> float:  # the height an edge heads for first
        chain = via.get(e)
        return y[chain[0]] if chain else y[e[0]]

    out_port: dict[tuple[int, int], float] = {}
    for s, edges in enumerate(outgoing):
        edges.sort(key=lambda e: (first_y(e), e[1]))
        for j, e in enumerate(edges):
            out_port[e] = y[s] + height[s] * (j + 1) / (len(edges) + 1)
    out.append('<g class="edges" fill="none" stroke="#555555" stroke-width="1.2">')
    for slot, a in enumerate(args):
        for k, s in enumerate(a):
            # the edge as straight runs through the columns it crosses (at its virtual
            # points), joined by curves that leave and arrive horizontally
            runs = [(x[s] + width[s], x[s] + width[s], out_port[(slot, k)])]
            for v in via.get((slot, k), ()):
                c = ext_depth[v]
                runs.append((col_x[c], col_x[c] + col_w[c], y[v] + VIA_H / 2))
            x1, y1 = x[slot], y[slot] + height[slot] * (k + 1) / (len(a) + 1)
            runs.append((x1, x1, y1))
            d = [f"M{runs[0][0]:.1f},{runs[0][2]:.1f}"]
            for (_, xa, ya), (xb, xc, yb) in zip(runs, runs[1:]):
                bend = max((xb - xa) / 2, 20.0)
                d.append(f"C{xa + bend:.1f},{ya:.1f} {xb - bend:.1f},{yb:.1f} {xb:.1f},{yb:.1f}")
                if xc > xb:
                    d.append(f"L{xc:.1f},{yb:.1f}")
            out.append(f'<path class="edge" data-from="n{s}" data-to="n{slot}" '
                       f'data-arg="{k}" d="{" ".join(d)}" marker-end="url(#arrow)"/>')
            label = edge_labels[slot][k] if k < len(edge_labels[slot]) else ""
            if label:
                out.append(f'<text class="edge-label" x="{x1 - 12:.1f}" y="{y1 - 3:.1f}" '
                           f'stroke="none" fill="#333333" font-size="10">'
                           f'{xml_text(label)}</text>')
    out.append("</g>")

    fills = {"var": "#dbeafe", "const": "#f3f4f6"}
    for s in range(n):
        radius = height[s] / 2 if kinds[s] == "var" else (6.0 if kinds[s] == "const" else 0.0)
        stroke = 2.5 if s == output else 1.0
        out.append(f'<g class="node" id="n{s}">')
        out.append(f'<rect x="{x[s]:.1f}" y="{y[s]:.1f}" width="{width[s]:.1f}" '
                   f'height="{height[s]:.1f}" rx="{min(radius, width[s] / 2):.1f}" '
                   f'fill="{fills.get(kinds[s], "white")}" stroke="black" '
                   f'stroke-width="{stroke}"/>')
        cx = x[s] + width[s] / 2
        out.append(f'<text x="{cx:.1f}" y="{y[s] + PAD_Y:.1f}" text-anchor="middle">')
        for i, line in enumerate(texts[s]):
            out.append(f'<tspan x="{cx:.1f}" dy="{LINE_H if i else LINE_H - 3:.1f}">'
                       f'{xml_text(line)}</tspan>')
        out.append("</text></g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
