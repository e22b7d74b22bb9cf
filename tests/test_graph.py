"""``adcli graph``: DOT written by adcli, read back by an independent DOT parser (pydot)."""

from __future__ import annotations

import shutil

import pydot
import pytest

import adcli
from adcli.output import graph as graph_module
from adcli.output.graph import quote, to_dot


def _parse(text: str) -> pydot.Dot:
    graphs = pydot.graph_from_dot_data(text)
    assert graphs and len(graphs) == 1
    return graphs[0]


def _labels(g: pydot.Dot) -> dict[str, str]:
    out = {}
    for node in g.get_nodes():
        label = node.get("label")
        if label is not None and node.get_name().startswith("n"):
            out[node.get_name()] = label.strip('"').replace("\\n", "\n")
    return out


def test_worked_example_dot_has_values_and_gradients(run, tmp_path):
    path = tmp_path / "g.dot"
    result = run("graph", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "-o", str(path))
    assert result.exit_code == 0, result.output
    g = _parse(path.read_text())
    tape = adcli.parse("(w0 + w1*x - y)^2").tape()
    labels = _labels(g)
    assert len(labels) == len(tape.ops)
    by_name = {lab.split("\n")[1]: lab for lab in labels.values()}
    assert "value 9.0" in by_name["(w0 + w1 * x - y)^2"] and "grad 1.0" in by_name[
        "(w0 + w1 * x - y)^2"]
    assert "grad -18.0" in by_name["w1"] and "grad -6.0" in by_name["w0"]
    assert "grad -12.0" in by_name["x"] and "grad 6.0" in by_name["y"]
    edges = [(e.get_source(), e.get_destination()) for e in g.get_edges()]
    assert len(edges) == sum(len(a) for a in tape.args)


def test_node_used_twice_has_two_edges():
    tape = adcli.parse("a = x*y; a + a").tape()
    g = _parse(to_dot(tape, {"x": 3.0, "y": 2.0}))
    edges = [(e.get_source(), e.get_destination()) for e in g.get_edges()]
    mul = next(s for s, op in enumerate(tape.ops) if getattr(op, "name", "") == "mul")
    assert edges.count((f"n{mul}", f"n{tape.output}")) == 2
    assert "grad 2.0" in _labels(g)[f"n{mul}"]  # d(a + a)/da = 2, both edges counted


def test_without_point_no_values_and_quoting_is_safe():
    tape = adcli.parse("x*y").tape()
    text = to_dot(tape, None, title='a "quoted" \\ title')
    g = _parse(text)
    assert all("value" not in lab for lab in _labels(g).values())
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_stdout_is_dot_by_default(run):
    result = run("graph", "sin(x)*x")
    assert result.exit_code == 0
    assert result.stdout.startswith("digraph adcli {")
    _parse(result.stdout)


def test_png_without_graphviz_is_a_clear_error(run, monkeypatch, tmp_path):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    result = run("graph", "x*x", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error:") and "apt-get install graphviz" in result.stderr
    assert "-o FILE.svg" in result.stderr  # the way out that needs no system package
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_svg_with_graphviz(run, tmp_path):
    path = tmp_path / "g.svg"
    result = run("graph", "x*x + y", "--at", "x=1,y=2", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert "<svg" in path.read_text()


def test_bad_point_is_an_error(run):
    result = run("graph", "x*y", "--at", "x=1")
    assert result.exit_code == 2 and result.stderr.startswith("Error:")


@pytest.mark.parametrize("path, fmt", [("g.png", "svg"), ("g.svg", "html"), ("g.html", "dot"),
                                       ("out/g.DOT", "svg"), ("g.svgz", "svg")])
def test_a_format_that_contradicts_the_file_name_is_refused(path, fmt) -> None:
    """SVG text in g.png (or an HTML page in g.svg) would be a file that lies about itself."""
    from adcli.errors import AdcliError

    with pytest.raises(AdcliError, match="names a"):
        graph_module.format_for(path, fmt)


@pytest.mark.parametrize("path, fmt, want", [("g.gv", "dot", "dot"), ("g.jpeg", "jpg", "jpg"),
                                             ("g.htm", "html", "html"), ("g", "svg", "svg"),
                                             ("g.out", "svg", "svg"), (None, "png", "png")])
def test_a_format_that_agrees_with_the_file_name_or_an_unknown_one_is_kept(path, fmt,
                                                                            want) -> None:
    assert graph_module.format_for(path, fmt) == want
