"""``adcli graph -o g.svg`` without Graphviz: adcli's own layout, read back by an XML parser
and checked against the DOT labels (themselves read by pydot) and the tape's edges."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pydot
import pytest

import adcli
from adcli.output import graph as graph_module
from adcli.output import svg
from adcli.output.graph import to_dot, to_svg

ROOT = Path(__file__).resolve().parent.parent
NS = {"s": "http://www.w3.org/2000/svg"}
NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"
NEURON = f"@{ROOT / 'samples' / 'neuron.adc'}"


def _nodes(root: ET.Element) -> dict[str, list[str]]:
    """Each node group's id -> its text lines (one tspan a line)."""
    out: dict[str, list[str]] = {}
    for g in root.iterfind(".//s:g[@class='node']", NS):
        assert g.get("id") not in out, f"node {g.get('id')} drawn twice"
        out[g.get("id")] = [t.text or "" for t in g.iterfind(".//s:tspan", NS)]
    return out


def _edges(root: ET.Element) -> Counter:
    return Counter((p.get("data-from"), p.get("data-to"))
                   for p in root.iterfind(".//s:path[@class='edge']", NS))


def _boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    return {g.get("id"): tuple(float(g.find("s:rect", NS).get(k))
                               for k in ("x", "y", "width", "height"))
            for g in root.iterfind(".//s:g[@class='node']", NS)}


def _dot_labels(text: str) -> dict[str, list[str]]:
    (g,) = pydot.graph_from_dot_data(text)
    return {n.get_name(): n.get("label").strip('"').split("\\n")
            for n in g.get_nodes() if n.get("label") is not None}


def test_neuron_svg_has_every_node_once_with_the_dot_label(run, tmp_path):
    path = tmp_path / "g.svg"
    result = run("graph", NEURON, "--at", NEURON_AT, "--engine", "builtin", "-o", str(path))
    assert result.exit_code == 0, result.output
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    function = adcli.parse(Path(NEURON[1:]).read_text())
    point = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)
    tape = function.tape(point)
    nodes = _nodes(root)
    assert set(nodes) == {f"n{i}" for i in range(len(tape))}
    # the same lines as the DOT label, which pydot (an independent parser) reads back
    assert nodes == _dot_labels(to_dot(tape, point))
    # the table's numbers, not the full repr of d/dx1 = -1.4999999999999996
    assert nodes["n0"] == ["#0 var", "x1", "value 2.0", "grad -1.5"]
    out = nodes[f"n{tape.output}"]
    assert out[0].endswith("tanh") and out[2] == "value 0.707106781187" and out[3] == "grad 1.0"
    assert "-1.4999999999999996" not in path.read_text()


def test_the_readme_picture_is_real_output(run, tmp_path):
    path = tmp_path / "neuron.svg"
    result = run("graph", NEURON, "--at", NEURON_AT, "--engine", "builtin", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text() == (ROOT / "docs" / "graph_neuron.svg").read_text(), (
        "docs/graph_neuron.svg is stale: redraw it with the README's command")


def test_every_edge_once_per_use_and_left_to_right():
    tape = adcli.parse("a = x*y; b = a + a; b - x/y + sin(b)^2").tape()
    root = ET.fromstring(to_svg(tape, {"x": 3.0, "y": 2.0}))
    want = Counter((f"n{s}", f"n{slot}") for slot, args in enumerate(tape.args) for s in args)
    assert _edges(root) == want
    mul = next(s for s, op in enumerate(tape.ops) if getattr(op, "name", "") == "mul")
    assert want[(f"n{mul}", f"n{mul + 1}")] == 2  # a + a: two edges
    boxes = _boxes(root)
    for src, dst in want:
        assert boxes[src][0] + boxes[src][2] < boxes[dst][0]  # an argument's layer is left
    # no two boxes overlap, and all lie inside the picture
    width, height = float(root.get("width")), float(root.get("height"))
    items = list(boxes.values())
    for i, (x, y, w, h) in enumerate(items):
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
        for x2, y2, w2, h2 in items[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
    # a/b mark the operands of -, / and ^
    labels = [t.text for t in root.iterfind(".//s:text[@class='edge-label']", NS)]
    assert Counter(labels) == Counter({"a": 3, "b": 3})


def test_long_edges_run_between_the_boxes():
    tape = adcli.parse("a = x*y; b = a + a; b - x/y + sin(b)^2 + exp(-x)").tape()
    root = ET.fromstring(to_svg(tape, {"x": 3.0, "y": 2.0}))
    boxes = list(_boxes(root).values())
    runs = 0
    for p in root.iterfind(".//s:path[@class='edge']", NS):
        # "... xb,yb Lxc,yb": the straight run of an edge through a layer it crosses
        for xb, yb, xc in re.findall(r"([\d.]+),([\d.]+) L([\d.]+),", p.get("d")):
            xb, yb, xc = float(xb), float(yb), float(xc)
            runs += 1
            for x, y, w, h in boxes:
                assert xc < x or x + w < xb or not y <= yb <= y + h
    assert runs >= 3  # x and y reach x/y, exp's -x and sub across layers


def test_a_variable_used_at_every_depth_stays_bounded():
    n = 400  # its long edges would need ~n^2/2 virtual points: past the cap, direct curves
    source = "; ".join(f"a{i} = sin(a{i - 1}) + x" if i else "a0 = x" for i in range(n))
    tape = adcli.parse(source + f"; a{n - 1}").tape()
    text = to_svg(tape, {"x": 0.5})
    root = ET.fromstring(text)
    assert sum(_edges(root).values()) == sum(len(a) for a in tape.args)
    assert len(text.encode()) < 2000 * len(tape)


def _crossings(rows: list[list[int]], args: list[tuple[int, ...]]) -> int:
    pos = {s: i for row in rows for i, s in enumerate(row)}
    edges = [(pos[s], pos[t], t) for t, a in enumerate(args) for s in a]
    layer = {s: d for d, row in enumerate(rows) for s in row}
    count = 0
    for i, (s1, t1, n1) in enumerate(edges):
        for s2, t2, n2 in edges[i + 1:]:
            if layer[n1] == layer[n2] and (s1 - s2) * (t1 - t2) < 0:
                count += 1
    return count


def test_barycentre_sweep_removes_crossings():
    # leaves 0..3; layer 1 takes them in reverse tape order, so the tape's order crosses
    args = [(), (), (), (), (3,), (2,), (1,), (0,), (4, 5), (6, 7)]
    depth = svg.layers(args)
    assert depth == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    start = svg.order(args, depth, sweeps=0)
    assert _crossings(start, args) > 0
    assert _crossings(svg.order(args, depth), args) == 0


def test_hostile_text_is_escaped_and_parses():
    hostile = 'a<b & "c" \x00\x07\x1b[2J\r\n\u202e\ud800\uffff>'
    text = svg.to_svg([[hostile, "<tspan>&amp;"]], [()], ["var"], 0, [()], title=hostile)
    root = ET.fromstring(text)
    (lines,) = _nodes(root).values()
    shown = 'a<b & "c" \\x00\\x07\\x1b[2J\\x0d\n\\u202e\\ud800\\uffff>'
    assert lines == [shown, "<tspan>&amp;"]
    assert root.find("s:text[@class='title']", NS).text == shown
    for raw in ("\x00", "\x07", "\x1b", "\u202e", "\ud800", "\uffff"):
        assert raw not in text


def test_hostile_comment_in_a_file_reaches_the_title_escaped(run, tmp_path):
    source = tmp_path / "f.adc"
    source.write_bytes(b'# <script>&"\x07\x1b]0;x\x07\n x*y')
    path = tmp_path / "g.svg"
    result = run("graph", f"@{source}", "--at", "x=1,y=2", "--engine", "builtin",
                 "-o", str(path))
    assert result.exit_code == 0, result.output
    root = ET.parse(path).getroot()
    title = root.find("s:text[@class='title']", NS).text
    assert title.startswith('# <script>&"\\x07\\x1b]0;x\\x07')
    assert "<script>" not in path.read_text()


def _cli(args: list[str], cwd: Path, path: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=path)
    return subprocess.run([sys.executable, "-m", "adcli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_without_dot_on_path_svg_is_drawn_by_adcli(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _cli(["graph", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "-o", "g.svg"],
                  tmp_path, str(empty))
    assert result.returncode == 0, result.stderr
    root = ET.parse(tmp_path / "g.svg").getroot()
    nodes = _nodes(root)
    assert len(nodes) == len(adcli.parse("(w0 + w1*x - y)^2").tape())
    assert any(lines[1:] == ["w1", "value 2.0", "grad -18.0"] for lines in nodes.values())
    # forcing Graphviz without it is an error that says so, before any file is written
    forced = _cli(["graph", "x*x", "--engine", "dot", "-o", "h.svg"], tmp_path, str(empty))
    assert forced.returncode == 2
    assert forced.stderr.startswith("Error: --engine dot needs Graphviz's 'dot' program")
    assert "Traceback" not in forced.stderr and not (tmp_path / "h.svg").exists()


def test_builtin_draws_only_svg(run, tmp_path):
    result = run("graph", "x*x", "--engine", "builtin", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 2 and result.stderr.startswith("Error: --engine builtin draws "
                                                              "only svg, not png")


def test_auto_picks_graphviz_when_present(monkeypatch):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: "/usr/bin/dot")
    assert graph_module.engine_for("svg") == "dot"
    assert graph_module.engine_for("svg", "builtin") == "builtin"
    assert graph_module.engine_for("dot", "builtin") == "text"
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    assert graph_module.engine_for("svg") == "builtin"
    assert graph_module.engine_for("png") == "dot"  # and render() then says how to install


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graphviz_draws_when_present_or_forced(run, tmp_path):
    for engine in ("auto", "dot"):
        path = tmp_path / f"{engine}.svg"
        result = run("graph", "x*y + x", "--at", "x=1,y=2", "--engine", engine, "-o", str(path))
        assert result.exit_code == 0, result.output
        text = path.read_text()
        assert "Generated by graphviz" in text and 'class="edge"' in text
        ET.fromstring(text)


def test_max_nodes_refused_and_old_file_kept(run, tmp_path):
    path = tmp_path / "g.svg"
    path.write_text("old")
    result = run("graph", "sin(cos(x))*x", "--engine", "builtin", "--max-nodes", "3",
                 "-o", str(path))
    assert result.exit_code == 2 and "over the graph limit of 3" in result.stderr
    assert path.read_text() == "old"


def test_long_chain_is_bounded_and_needs_no_recursion():
    n = 3000
    source = "; ".join(f"a{i} = sin(a{i - 1})" if i else "a0 = x" for i in range(n)) + f"; a{n - 1}"
    tape = adcli.parse(source).tape()
    text = to_svg(tape, {"x": 0.5})
    root = ET.fromstring(text)
    assert len(_nodes(root)) == len(tape)
    assert sum(_edges(root).values()) == len(tape) - 1
    assert len(text.encode()) < 1000 * len(tape)


@pytest.mark.parametrize("expr", ["x", "2 + 3", "x*x"])
def test_tiny_graphs(expr):
    tape = adcli.parse(expr).tape()
    root = ET.fromstring(to_svg(tape, {"x": 1.0} if "x" in expr else None))
    assert len(_nodes(root)) == len(tape)
