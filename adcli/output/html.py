"""``adcli explain --html`` and ``adcli graph --format html``: the transcript as a page that steps.

One self-contained file (inline CSS and script; no network, font, image or external script), so a
teacher can mail it or open it offline. The graph is the built-in SVG layout of
:mod:`adcli.output.svg` (layers by depth, the tape being topological already); a Step and a Back
button and a slider walk the forward sweep node by node, then the reverse sweep from the output,
then the gradient. Each step highlights its node and edges and shows what
:mod:`adcli.output.transcript` says at that step: the value from the inputs, or the rule, each
local partial with the numbers put in and each edge's contribution to its argument's adjoint.

Every number is formatted here, in Python, by :func:`adcli.output.plain.num` (``--digits``), so
the page shows exactly what the text transcript and the node table show; the script only copies
strings. The steps travel as JSON inside a ``<script type="application/json">`` element, written
with ``<``, ``>``, ``&`` and U+2028/U+2029 as ``\\u`` escapes, so no source text (a comment
holding ``</script>``, say) can end the element; the script puts text in with ``textContent``,
never as markup.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..core.explain import Explanation, fill, partial_formula, value_formula
from . import svg
from .numbers import num
from .transcript import HELPER_MEANINGS

#: What a node's value or adjoint line shows before the sweep reaches it.
UNKNOWN = "·"
_ORDINAL = ("1st", "2nd")
_CALL = re.compile(r"\b(\w+)\(")


def _signed(text: str) -> str:
    """A formatted number as a term of a sum: in parentheses when negative."""
    return f"({text})" if text.startswith("-") else text


def _distinct(steps: list[str]) -> list[str]:
    return [t for k, t in enumerate(steps) if k == 0 or t != steps[k - 1]]


def _forward_step(ex: Explanation, i: int) -> dict[str, Any]:
    tape = ex.tape
    op = tape.ops[i]
    step: dict[str, Any] = {"kind": "forward", "node": i, "label": ex.labels[i],
                            "value": num(ex.values[i])}
    if isinstance(op, str):
        step["op"] = op
        step["what"] = "input" if op == "var" else "constant"
        step["calc"] = []
    else:
        step["op"] = op.name
        args = [ex.values[a] for a in tape.args[i]]
        filled = fill(op.value, args, ex.values[i], num)
        step["calc"] = _distinct([value_formula(tape, i), filled])
        step["args"] = list(tape.args[i])
    return step


def _reverse_steps(ex: Explanation) -> list[dict[str, Any]]:
    tape = ex.tape
    received: dict[int, list[dict[str, Any]]] = {}
    steps = []
    for b in ex.backward:
        op = tape.ops[b.id]
        args = tape.args[b.id]
        repeated = len(set(args)) < len(args)
        edges = []
        for e in b.edges:
            template = partial_formula(tape, b.id, e.position)
            filled = ex.filled_partial(e, num)
            notes = [HELPER_MEANINGS[h] for h in dict.fromkeys(_CALL.findall(template))
                     if h in HELPER_MEANINGS]
            edge = {"arg": e.arg, "position": e.position,
                    "which": f" ({_ORDINAL[e.position]} argument)" if repeated else "",
                    # the template, then the numbers put in unless that is the number itself
                    "calc": _distinct([template, filled])
                    if filled != num(e.partial) else [template],
                    "partial": num(e.partial),
                    "contribution": num(e.contribution), "total": num(e.total),
                    "first": e.first, "notes": notes}
            edges.append(edge)
            received.setdefault(e.arg, []).append({"from": b.id, "value": edge["contribution"]})
        steps.append({"kind": "reverse", "node": b.id, "op": op.name, "label": ex.labels[b.id],
                      "formula": value_formula(tape, b.id), "adjoint": num(b.adjoint),
                      "output": b.id == tape.output, "received": received.get(b.id, []),
                      "rule": op.rule, "statement": op.statement, "edges": edges})
    inputs = []
    for name, slot in tape.inputs.items():
        got = received.get(slot, [])
        inputs.append({"name": name, "node": slot, "received": got,
                       "output": slot == tape.output, "adjoint": num(ex.adjoint[slot])
                       if ex.adjoint[slot] is not None else "0.0"})
    steps.append({"kind": "gradient", "value": num(ex.value), "inputs": inputs})
    return steps


def steps(ex: Explanation) -> list[dict[str, Any]]:
    """The page's steps: each node of the forward sweep, each node of the reverse sweep, then
    the gradient; every number already formatted as the transcript writes it."""
    return [_forward_step(ex, i) for i in range(len(ex.tape.ops))] + _reverse_steps(ex)


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe as the text of a ``<script>`` element: no ``<`` (so no
    ``</script>`` nor ``<!--``), no ``>`` or ``&``, no raw U+2028/U+2029 (``ensure_ascii``
    writes every non-ASCII character as ``\\u`` anyway) and no NaN (numbers are strings)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _graph(ex: Explanation) -> str:
    """The built-in SVG layout, as inline SVG: boxes wide enough for every number the step
    will put in them (the longest running sum of an adjoint included)."""
    tape = ex.tape
    longest: dict[int, str] = {}
    for b in ex.backward:
        for e in b.edges:
            text = num(e.total)
            if len(text) > len(longest.get(e.arg, "")):
                longest[e.arg] = text
    texts, kinds = [], []
    for slot, op in enumerate(tape.ops):
        name = op if isinstance(op, str) else op.name
        lines = [f"#{slot} {name}", ex.labels[slot], f"value {num(ex.values[slot])}"]
        if tape.active[slot]:
            final = num(ex.adjoint[slot]) if ex.adjoint[slot] is not None else "0.0"
            # the final adjoint (what a page without script shows), padded to the longest
            # running sum the steps will put there, which sets the box's width
            width = len(max(final, longest.get(slot, ""), key=len))
            lines.append(f"adj {final.ljust(width)}")
        texts.append(lines)
        kinds.append("var" if op == "var" else "const" if op == "const" else "op")
    ordered = {"sub", "div", "pow"}
    edge_labels = [("a", "b") if not isinstance(op, str) and op.name in ordered else ()
                   for op in tape.ops]
    picture = svg.to_svg(texts, tape.args, kinds, tape.output, edge_labels)
    # inline SVG in HTML: no XML declaration, and no namespace URL (the HTML parser puts an
    # <svg> element in the SVG namespace itself)
    picture = picture.split("\n", 1)[1].replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    # a second arrowhead, for the edges of the current step
    hot = ('<marker id="arrow-hot" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="3.2" '
           'markerHeight="3.2" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#dc2626"/>'
           '</marker></defs>')
    fwd = hot.replace("arrow-hot", "arrow-fwd").replace("#dc2626", "#2563eb")
    return picture.replace("</defs>", hot[:-len("</defs>")] + fwd, 1)


def page(ex: Explanation, title: str) -> str:
    """The stepper for ``ex`` as one HTML document; ``title`` is the expression's source."""
    data = {"title": title, "nodes": len(ex.tape.ops), "unknown": UNKNOWN,
            "active": [bool(a) for a in ex.tape.active], "steps": steps(ex)}
    point = ", ".join(f"{name} = {num(ex.values[slot])}" for name, slot in ex.tape.inputs.items())
    shown = title if len(title) <= 200 else title[:197] + "..."
    parts = {"TITLE": svg.xml_text(shown), "POINT": svg.xml_text(point), "CSS": _CSS,
             "SCRIPT": _SCRIPT, "SVG": _graph(ex), "DATA": script_json(data)}
    # one pass, so that text put in is never searched for the next placeholder
    return re.sub(r"@([A-Z]+)@", lambda m: parts[m[1]], _TEMPLATE)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>adcli explain: @TITLE@</title>
<style>@CSS@</style>
</head>
<body>
<header>
<h1>adcli explain <code id="expr">@TITLE@</code></h1>
<p class="point">at <span id="point">@POINT@</span></p>
<nav class="controls">
<button id="back" type="button" title="previous step (left arrow)">&#9664; Back</button>
<button id="step" type="button" title="next step (right arrow)">Step &#9654;</button>
<input id="slider" type="range" min="0" max="0" value="0" aria-label="step">
<span id="counter"></span>
<span class="legend"><i class="sw current"></i>this step <i class="sw source"></i>its inputs
(forward) <i class="sw target"></i>receives a contribution (reverse) <i class="sw done"></i>adjoint
complete</span>
</nav>
</header>
<main>
<section id="graph">@SVG@<noscript><p class="lead">Stepping needs JavaScript; the graph
shows every node's final value and adjoint.</p></noscript></section>
<aside id="panel" aria-live="polite"></aside>
</main>
<script type="application/json" id="adcli-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

_CSS = """
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial,
  sans-serif; color: #111827; background: #f9fafb; }
header { padding: 10px 18px 8px; background: white; border-bottom: 1px solid #e5e7eb; }
h1 { font-size: 17px; margin: 0 0 2px; font-weight: 600; }
h1 code { font-size: 15px; background: #f3f4f6; padding: 1px 6px; border-radius: 4px;
  white-space: pre-wrap; word-break: break-all; }
.point { margin: 0 0 8px; color: #4b5563; }
.controls { display: flex; gap: 10px; align-items: center; }
.controls button { font: inherit; font-weight: 600; padding: 5px 14px; border-radius: 6px;
  border: 1px solid #9ca3af; background: #f9fafb; cursor: pointer; }
.controls button:disabled { opacity: .4; cursor: default; }
#slider { flex: 1; max-width: 420px; }
#counter { color: #374151; font-variant-numeric: tabular-nums; min-width: 190px; }
.legend { color: #4b5563; font-size: 12.5px; }
.legend .sw { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  vertical-align: -1px; margin: 0 4px 0 10px; border: 2px solid; }
.sw.current { background: #fde68a; border-color: #d97706; }
.sw.source { background: #ffffff; border-color: #2563eb; }
.sw.target { background: #fee2e2; border-color: #dc2626; }
.sw.done { background: #dcfce7; border-color: #111827; border-width: 1px; }
main { display: flex; gap: 14px; padding: 14px 18px; align-items: flex-start; }
#graph { flex: 1; min-width: 0; overflow: auto; background: white; border: 1px solid #e5e7eb;
  border-radius: 8px; }
#graph svg { display: block; }
#panel { width: 430px; flex: none; background: white; border: 1px solid #e5e7eb;
  border-radius: 8px; padding: 12px 16px; }
#panel h2 { font-size: 15px; margin: 0 0 8px; }
#panel h2 .phase { display: inline-block; font-size: 12px; padding: 1px 7px;
  border-radius: 9px; margin-right: 6px; color: white; background: #2563eb; }
#panel h2 .phase.reverse { background: #dc2626; }
#panel h2 .phase.gradient { background: #059669; }
#panel .row { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 13px; margin: 3px 0; white-space: pre-wrap; word-break: break-word; }
#panel .rule { margin: 6px 0 8px; padding: 6px 8px; background: #fef3c7; border-radius: 6px; }
#panel .rule b { color: #92400e; }
#panel .edge-step { border-left: 3px solid #dc2626; padding: 2px 0 2px 8px; margin: 8px 0; }
#panel .caption { font-size: 12px; color: #6b7280; text-transform: uppercase;
  letter-spacing: .04em; }
#panel .num { font-weight: 700; }
#panel .note { color: #6b7280; font-size: 12px; }
#panel .lead { color: #374151; }
svg text { fill: #111827; }
.node.pending text { fill: #9ca3af; }
.node.known rect { fill: #ffffff; }
.node.done rect { fill: #dcfce7; }
.node.source rect { stroke: #2563eb; stroke-width: 2.5px; }
.node.target rect { stroke: #dc2626; stroke-width: 2.5px; fill: #fee2e2; }
.node.current rect { stroke: #d97706; stroke-width: 3.5px; fill: #fde68a; }
path.edge.hot-fwd { stroke: #2563eb; stroke-width: 3px; marker-end: url(#arrow-fwd); }
path.edge.hot-rev { stroke: #dc2626; stroke-width: 3px; marker-end: url(#arrow-hot); }
"""

# The page's behaviour: replay the steps up to the slider's position (every step's strings
# come formatted from Python), highlight the current step, and write its panel. Text only
# through textContent.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("adcli-data").textContent);
  var steps = data.steps, n = data.nodes, unknown = data.unknown;
  var slider = document.getElementById("slider");
  var panel = document.getElementById("panel");
  var counter = document.getElementById("counter");
  var back = document.getElementById("back"), next = document.getElementById("step");
  var nodes = [], valueLine = [], adjLine = [];
  for (var i = 0; i < n; i++) {
    var g = document.getElementById("n" + i);
    var spans = g.querySelectorAll("tspan");
    nodes.push(g);
    valueLine.push(spans[2] || null);
    adjLine.push(data.active[i] ? spans[3] || null : null);
  }
  var edges = Array.prototype.slice.call(document.querySelectorAll("path.edge"));
  slider.max = String(steps.length);

  // the picture enlarged to the room it has (up to 1.6 times), scrolled when larger
  var picture = document.querySelector("#graph svg");
  function fit() {
    var w = Number(picture.getAttribute("width")), h = Number(picture.getAttribute("height"));
    var room = document.getElementById("graph").clientWidth - 2;
    var scale = Math.max(1, Math.min(1.6, room / w));
    picture.style.width = (w * scale) + "px";
    picture.style.height = (h * scale) + "px";
  }
  fit();
  window.addEventListener("resize", fit);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function row(parent, cls, parts) {
    // parts: strings, or [class, text] for a number the tests and the eye look for
    var r = el("div", "row " + (cls || ""));
    parts.forEach(function (p) {
      if (typeof p === "string") r.appendChild(document.createTextNode(p));
      else r.appendChild(el("span", "num " + p[0], p[1]));
    });
    parent.appendChild(r);
    return r;
  }
  function signed(t) { return t.charAt(0) === "-" ? "(" + t + ")" : t; }
  // an adjoint as the transcript writes it: the sum of the contributions it received (when
  // more than one), the total, and where they came from (or why there are none)
  function summed(received, total, none) {
    var froms = received.map(function (r) { return "#" + r.from; }).join(", ");
    var terms = received.map(function (r) { return signed(r.value); }).join(" + ");
    var why = received.length ? "from " + froms : none;
    return [received.length > 1 ? terms + " = " : "", ["adjoint", total], "  (" + why + ")"];
  }

  function state(k) {
    var value = [], adj = [], done = [];
    for (var i = 0; i < n; i++) { value.push(null); adj.push(null); done.push(false); }
    for (var s = 0; s < k; s++) {
      var st = steps[s];
      if (st.kind === "forward") value[st.node] = st.value;
      else if (st.kind === "reverse") {
        adj[st.node] = st.adjoint; done[st.node] = true;
        st.edges.forEach(function (e) { adj[e.arg] = e.total; });
      } else st.inputs.forEach(function (inp) {
        adj[inp.node] = inp.adjoint; done[inp.node] = true;
      });
    }
    return {value: value, adj: adj, done: done};
  }

  function heading(kind, label, text) {
    var h = el("h2");
    h.appendChild(el("span", "phase " + kind, label));
    h.appendChild(document.createTextNode(text));
    panel.appendChild(h);
  }

  function describe(st) {
    panel.textContent = "";
    panel.dataset.kind = st ? st.kind : "start";
    panel.dataset.node = st && st.node !== undefined ? String(st.node) : "";
    if (!st) {
      heading("forward", "start", "nothing computed yet");
      panel.appendChild(el("p", "lead", "Step walks the forward sweep (each node's value from " +
        "its inputs, in tape order), then the reverse sweep (from the output back: each " +
        "node's adjoint times its local partial is added to each argument's adjoint), then " +
        "reads the gradient off the inputs. Keys: left and right arrows."));
      return;
    }
    if (st.kind === "forward") {
      heading("forward", "forward", "node #" + st.node + " (" + st.op + ")");
      row(panel, "label", [st.label]);
      if (!st.calc.length) row(panel, "calc", ["#" + st.node + " = ", ["value", st.value],
                                               "  (" + st.what + ")"]);
      else row(panel, "calc", ["#" + st.node + " = " + st.calc.join(" = ") + " = ",
                               ["value", st.value]]);
      return;
    }
    if (st.kind === "reverse") {
      heading("reverse", "reverse", "node #" + st.node + " = " + st.formula);
      row(panel, "total", ["adj[#" + st.node + "] = "].concat(
        summed(st.received, st.adjoint, "the output: d output / d output")));
      var rule = el("div", "rule");
      rule.appendChild(el("b", "", st.rule));
      rule.appendChild(document.createTextNode(": " + st.statement));
      panel.appendChild(rule);
      if (!st.edges.length) panel.appendChild(el("p", "note", "no argument carries a derivative"));
      st.edges.forEach(function (e) {
        var box = el("div", "edge-step");
        box.dataset.arg = String(e.arg);
        box.appendChild(el("div", "caption", "local partial" + e.which));
        row(box, "partial", ["\u2202#" + st.node + "/\u2202#" + e.arg + " = " +
            e.calc.join(" = ") + " = ", ["partial", e.partial]]);
        e.notes.forEach(function (t) { box.appendChild(el("div", "note", "where " + t)); });
        box.appendChild(el("div", "caption", "contribution to adj[#" + e.arg + "]"));
        var parts = ["adj[#" + e.arg + "] += ", ["adj", st.adjoint], " * " +
                     (e.partial.charAt(0) === "-" ? "(" : ""), ["factor", e.partial],
                     (e.partial.charAt(0) === "-" ? ")" : "") + " = ",
                     ["contribution", e.contribution]];
        if (!e.first) parts.push(", now ", ["total", e.total]);
        row(box, "edge", parts);
        panel.appendChild(box);
      });
      return;
    }
    heading("gradient", "gradient", "the inputs' adjoints are the gradient");
    row(panel, "value", ["value ", ["value", st.value]]);
    st.inputs.forEach(function (inp) {
      var r = row(panel, "input", ["d/d" + inp.name + " = adj[#" + inp.node + "] = "].concat(
        summed(inp.received, inp.adjoint, inp.output ? "the output is this input" :
               "no path to the output")));
      r.dataset.node = String(inp.node);
    });
  }

  // what each node and edge shows now, so that a step rewrites only what it changes (a big
  // graph has thousands of elements; restyling them all made a step slow)
  var shownClass = [], shownValue = [], shownAdj = [], hotEdges = [];
  var into = [];  // into[i][k]: the edge of node i's argument k
  for (i = 0; i < n; i++) into.push([]);
  edges.forEach(function (e) {
    into[Number(e.getAttribute("data-to").slice(1))][Number(e.getAttribute("data-arg"))] = e;
  });
  function put(list, i, element, text) {
    if (element && list[i] !== text) { element.textContent = text; list[i] = text; }
  }

  function show(k) {
    k = Math.max(0, Math.min(steps.length, k));
    slider.value = String(k);
    var s = state(k), st = k ? steps[k - 1] : null;
    var mark = {}, hot = [];
    if (st && st.kind === "forward") {
      mark[st.node] = " current";
      (st.args || []).forEach(function (a) { mark[a] = " source"; });
      into[st.node].forEach(function (e) { hot.push([e, "edge hot-fwd"]); });
    } else if (st && st.kind === "reverse") {
      st.edges.forEach(function (d) {
        mark[d.arg] = " target";
        hot.push([into[st.node][d.position], "edge hot-rev"]);
      });
      mark[st.node] = " current";
    } else if (st) {
      st.inputs.forEach(function (inp) { mark[inp.node] = " current"; });
    }
    for (var i = 0; i < n; i++) {
      var v = s.value[i], a = s.adj[i];
      var cls = "node" + (v === null ? " pending" : s.done[i] ? " done" : " known") +
        (mark[i] || "");
      if (shownClass[i] !== cls) { nodes[i].setAttribute("class", cls); shownClass[i] = cls; }
      put(shownValue, i, valueLine[i], "value " + (v === null ? unknown : v));
      put(shownAdj, i, adjLine[i], "adj " + (a === null ? unknown : a));
    }
    hotEdges.forEach(function (e) { e.setAttribute("class", "edge"); });
    hotEdges = hot.map(function (h) { h[0].setAttribute("class", h[1]); return h[0]; });
    var phase = !st ? "start" : st.kind === "forward" ? "forward sweep" :
      st.kind === "reverse" ? "reverse sweep" : "gradient";
    counter.textContent = "step " + k + " of " + steps.length + " \u00b7 " + phase;
    back.disabled = k === 0;
    next.disabled = k === steps.length;
    describe(st);
  }

  back.addEventListener("click", function () { show(Number(slider.value) - 1); });
  next.addEventListener("click", function () { show(Number(slider.value) + 1); });
  slider.addEventListener("input", function () { show(Number(slider.value)); });
  document.addEventListener("keydown", function (ev) {
    if (ev.target === slider) return;
    if (ev.key === "ArrowRight") show(Number(slider.value) + 1);
    else if (ev.key === "ArrowLeft") show(Number(slider.value) - 1);
  });
  show(0);
})();
"""
