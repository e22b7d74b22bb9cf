"""``explain --html`` and ``graph --format html`` without a browser: the page is one file that asks
for nothing from outside, its embedded data cannot be broken out of by source text, its steps are
the transcript's, and bad requests are one Error line. The browser walks it in test_html_browser."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from adcli.output.html import script_json

ROOT = Path(__file__).resolve().parent.parent
NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"
NEURON = f"@{ROOT / 'samples' / 'neuron.adc'}"
BAYDIN = "log(x1) + x1*x2 - sin(x2)"


def _page(run, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "page.html"
    result = run("explain", *args, "--html", str(path))
    assert result.exit_code == 0, result.stderr
    return path.read_text(encoding="utf-8")


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="adcli-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m[1])


def _svg(page: str) -> ET.Element:
    m = re.search(r"<svg .*?</svg>", page, re.S)
    assert m is not None
    return ET.fromstring(m[0])


def _self_contained(page: str) -> None:
    lowered = page.lower()
    for needle in ("http://", "https://", "@import", "//", "src=", "<link", "<img", "<iframe",
                   "fetch(", "xmlhttprequest", "<object", "<embed"):
        if needle == "//":
            # comments of the script start with //; a protocol-relative URL would be ="//
            assert '="//' not in lowered and "('//" not in lowered and "url(//" not in lowered
            continue
        assert needle not in lowered, needle
    # CSS urls only point inside the document (the arrowhead markers)
    assert set(re.findall(r"url\(([^)]*)\)", page)) <= {"#arrow", "#arrow-hot", "#arrow-fwd"}


def test_page_is_one_self_contained_file(run, tmp_path):
    page = _page(run, tmp_path, NEURON, "--at", NEURON_AT)
    _self_contained(page)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert page.count("<style>") == 1


def test_steps_walk_forward_then_reverse_then_the_gradient(run, tmp_path):
    page = _page(run, tmp_path, BAYDIN, "--at", "x1=2,x2=5")
    data = _data(page)
    transcript = json.loads(run("explain", BAYDIN, "--at", "x1=2,x2=5", "--json").stdout)
    n = len(transcript["nodes"])
    kinds = [s["kind"] for s in data["steps"]]
    assert kinds == ["forward"] * n + ["reverse"] * len(transcript["reverse"]) + ["gradient"]
    assert [s["node"] for s in data["steps"][:n]] == list(range(n))
    assert [s["node"] for s in data["steps"][n:-1]] == [s["id"] for s in transcript["reverse"]]
    # every number is a string already formatted (the script formats nothing)
    for step, ref in zip(data["steps"][n:-1], transcript["reverse"]):
        assert step["rule"] == ref["rule"] and step["statement"] == ref["statement"]
        for e, r in zip(step["edges"], ref["edges"], strict=True):
            assert e["calc"][0] == r["template"]
            assert float(e["partial"]) == pytest.approx(r["partial"], rel=1e-11, abs=1e-300)


def test_graph_is_the_builtin_layout_with_every_node_and_edge(run, tmp_path):
    page = _page(run, tmp_path, "a = x*y; a + sin(a)", "--at", "x=3,y=2")
    root = _svg(page)
    ids = {g.get("id") for g in root.iter("g") if g.get("class") == "node"}
    assert ids == {f"n{i}" for i in range(5)}
    edges = sorted((p.get("data-from"), p.get("data-to")) for p in root.iter("path")
                   if p.get("class") == "edge")
    assert edges == [("n0", "n2"), ("n1", "n2"), ("n2", "n3"), ("n2", "n4"), ("n3", "n4")]


HOSTILE = ("x*y # </script><script>window.pwned = 1</script><!-- \u2028\u2029 "
           "</SCRIPT > @SVG@ @DATA@ & \" ' \x07 \udc80")


def test_source_text_cannot_leave_the_script_element(run, tmp_path):
    src = tmp_path / "hostile.adc"
    src.write_text(HOSTILE.replace("\udc80", "é") + "\n", encoding="utf-8")
    page = _page(run, tmp_path, f"@{src}", "--at", "x=1,y=2")
    assert page.count("<script") == 2 and page.lower().count("</script") == 2
    assert "\u2028" not in page and "\u2029" not in page
    # put in as text (title, heading, data), never expanded as a placeholder
    assert page.count("@SVG@") == 3 and page.count("<svg") == 1
    assert _data(page)["title"] == HOSTILE.replace("\udc80", "é") + "\n"
    _self_contained(page)


def test_script_json_escapes_what_html_would_read():
    text = script_json({"s": "</script><!--\u2028\u2029&>", "n": "\udc80"})
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == {"s": "</script><!--\u2028\u2029&>", "n": "\udc80"}


def test_nonfinite_numbers_are_text_not_invalid_json(run, tmp_path):
    page = _page(run, tmp_path, "log(x) * y", "--at", "x=0,y=1")
    m = re.search(r'id="adcli-data">(.*?)</script>', page, re.S)
    assert m is not None

    def refuse(name: str) -> None:  # NaN/Infinity are not JSON: the browser would not parse them
        raise AssertionError(name)

    data = json.loads(m[1], parse_constant=refuse)
    (log,) = [s for s in data["steps"] if s["kind"] == "forward" and s["op"] == "log"]
    assert log["value"] == "-inf"
    assert any(e["partial"] == "inf" for s in data["steps"] if s["kind"] == "reverse"
               for e in s["edges"])


def test_graph_format_html_is_the_same_page(run, tmp_path):
    out = tmp_path / "g.html"
    result = run("graph", BAYDIN, "--at", "x1=2,x2=5", "-o", str(out))  # from the extension
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert _data(page)["steps"] == _data(_page(run, tmp_path, BAYDIN, "--at", "x1=2,x2=5"))[
        "steps"]
    result = run("graph", BAYDIN, "--at", "x1=2,x2=5", "--format", "html")
    assert result.exit_code == 0 and result.stdout == page


@pytest.mark.parametrize("args, message", [
    (["graph", "x*y", "--format", "html"], "--format html steps through the sweeps at a point"),
    (["graph", "x*y", "--at", "x=1,y=2", "--format", "html", "--engine", "dot"],
     "--engine dot cannot draw html"),
    (["explain", "x*y", "--at", "x=1,y=2", "--mode", "forward", "--direction", "x=1",
      "--html", "PAGE"], "--html steps through the reverse sweep"),
    (["explain", "x*y", "--at", "x=1,y=2", "--paths", "x", "--html", "PAGE"],
     "--html does not show --paths"),
    (["explain", "x+x+x+x+x", "--at", "x=1", "--max-nodes", "4", "--html", "PAGE"],
     "over the graph limit of 4"),
    (["graph", "x+x+x+x+x", "--at", "x=1", "--max-nodes", "4", "-o", "PAGE"],
     "over the graph limit of 4"),
])
def test_refusals_are_one_error_line_and_no_file(run, tmp_path, args, message):
    page = tmp_path / "p.html"
    result = run(*[str(page) if a == "PAGE" else a for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: ") and message in first, result.stderr
    assert "Traceback" not in result.stderr
    assert not page.exists()


def test_html_limit_can_be_lifted(run, tmp_path):
    page = _page(run, tmp_path, "x+x+x+x+x", "--at", "x=1", "--max-nodes", "0")
    assert len(_data(page)["steps"]) == 5 + 4 + 1


def test_readme_shows_the_committed_screenshot():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/explain-stepper.png)" in readme
    assert "ADCLI_WRITE_SCREENSHOT=1 python -m pytest -q tests/test_html_browser.py" in \
        readme.replace("\n", " ")
    assert (ROOT / "docs" / "explain-stepper.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_script_the_graph_shows_the_final_numbers(run, tmp_path):
    from adcli.output.numbers import num

    page = _page(run, tmp_path, "a = x*y; a*a + sin(a)", "--at", "x=3,y=-2")
    ref = json.loads(run("explain", "a = x*y; a*a + sin(a)", "--at", "x=3,y=-2",
                         "--json").stdout)
    root = _svg(page)
    for nd in ref["nodes"]:
        (g,) = [g for g in root.iter("g") if g.get("id") == f"n{nd['id']}"]
        lines = [t.text or "" for t in g.iter("tspan")]
        assert lines[2] == f"value {num(nd['value'])}"
        assert lines[3].rstrip() == f"adj {num(nd['adjoint'])}"
