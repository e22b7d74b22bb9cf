"""The HTML stepper in a real browser: Debian's Chromium, driven by Playwright's Python client,
loads the page of ``explain --html`` from a file:// URL, clicks through every step and checks
every number it displays (node labels and the panel) against ``explain --json``, formatted as the
text transcript formats them; Back, the slider and the arrow keys must land on the same states.
The browser is the system's /usr/bin/chromium (never a downloaded one); without it the module
is skipped. Every request other than the page itself is refused and counted: the page must
need none.

With ADCLI_WRITE_SCREENSHOT=1 the run also writes docs/explain-stepper.png (the README's
picture): micrograd's neuron in the middle of the reverse sweep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from adcli.output.numbers import num

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"needs Debian's chromium at {CHROMIUM} "
                                       "(apt-get install chromium)")

ROOT = Path(__file__).resolve().parent.parent
NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"
NEURON = f"@{ROOT / 'samples' / 'neuron.adc'}"
BAYDIN = "log(x1) + x1*x2 - sin(x2)"
SHARED = "a = x*y; a*a + sin(a)"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
UNKNOWN = "·"

#: Everything a check needs from the page, read in one round trip.
SNAPSHOT = """() => {
  const texts = (root, sel) => [...root.querySelectorAll(sel)].map(e => e.textContent);
  const nums = root => [...root.querySelectorAll(".num")].map(s => [s.classList[1], s.textContent]);
  const panel = document.getElementById("panel");
  const rule = panel.querySelector(".rule");
  return {
    nodes: [...document.querySelectorAll("g.node")].map(g => ({
      id: g.id, cls: g.getAttribute("class"), lines: texts(g, "tspan")})),
    hot: [...document.querySelectorAll("path.edge")]
      .filter(p => / hot-/.test(p.getAttribute("class")))
      .map(p => [p.getAttribute("data-from"), p.getAttribute("data-to"),
                 Number(p.getAttribute("data-arg")), p.getAttribute("class")]),
    kind: panel.dataset.kind, node: panel.dataset.node || "",
    rows: [...panel.querySelectorAll(":scope > .row")].map(r => [r.classList[1], r.textContent,
                                                              nums(r)]),
    rule: rule ? rule.textContent : null,
    edges: [...panel.querySelectorAll(".edge-step")].map(b => ({
      arg: Number(b.dataset.arg), captions: texts(b, ".caption"), notes: texts(b, ".note"),
      rows: [...b.querySelectorAll(".row")].map(r => [r.classList[1], r.textContent, nums(r)])})),
    slider: Number(document.getElementById("slider").value),
    counter: document.getElementById("counter").textContent,
    back: document.getElementById("back").disabled,
    step: document.getElementById("step").disabled,
  };
}"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module, with a fresh profile; every request but file:// aborted."""
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    context = manager.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
        headless=True, args=ARGS, viewport={"width": 1500, "height": 900},
        device_scale_factor=1.5, offline=True)
    outside: list[str] = []

    def refuse(route):
        if not route.request.url.startswith("file://"):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    context.outside = outside
    yield context
    context.close()
    manager.stop()


def _open(browser, path: Path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning")
            else None)
    page.goto(path.as_uri())
    return page, errors


def _fill(template: str, values: list, number) -> str:
    """``#k`` replaced by node k's number; a negative one in parentheses after an operator
    (the transcript's convention, written again here from its description)."""
    def put(m: re.Match) -> str:
        text = number(values[int(m[1])])
        before = template[:m.start()].rstrip()[-1:]
        return f"({text})" if text.startswith("-") and before in "+-*/^" and before else text

    return re.sub(r"#(\d+)", put, template)


def _signed(text: str) -> str:
    return f"({text})" if text.startswith("-") else text


def _expected(ref: dict, number) -> list[dict]:
    """The state after each number of steps (0 .. all), from explain --json alone: each node's
    value and adjoint lines, the highlighted node and edges, and what the panel must say."""
    nodes = ref["nodes"]
    n = len(nodes)
    values = [nd["value"] for nd in nodes]
    value: list = [None] * n
    adj: list = [None] * n
    states = [{"value": list(value), "adj": list(adj), "panel": None}]
    for i, nd in enumerate(nodes):
        value[i] = number(nd["value"])
        calc = [f"#{i} = "]
        if nd["formula"]:
            filled = _fill(nd["formula"], values, number)
            calc = [f"#{i} = {nd['formula']} = "]
            if filled != nd["formula"]:
                calc = [f"#{i} = {nd['formula']} = {filled} = "]
        hot = sorted((f"n{a}", f"n{i}", k, "edge hot-fwd") for k, a in enumerate(nd["args"]))
        states.append({"value": list(value), "adj": list(adj), "panel": (
            "forward", str(i), calc[0], number(nd["value"]), hot)})
    received: dict[int, list] = {}
    for step in ref["reverse"]:
        s = step["id"]
        adj[s] = number(step["adjoint"])
        got = received.get(s, [])
        if s == ref_output(ref):
            total = f"adj[#{s}] = {number(step['adjoint'])}  (the output: d output / d output)"
        elif len(got) == 1:
            total = f"adj[#{s}] = {number(step['adjoint'])}  (from #{got[0][0]})"
        else:
            terms = " + ".join(_signed(number(v)) for _, v in got)
            froms = ", ".join(f"#{f}" for f, _ in got)
            total = f"adj[#{s}] = {terms} = {number(step['adjoint'])}  (from {froms})"
        edges = []
        for e in step["edges"]:
            first = e["arg"] not in received
            received.setdefault(e["arg"], []).append((s, e["contribution"]))
            adj[e["arg"]] = number(e["adjoint_after"])
            edges.append((e, first))
        hot = sorted((f"n{e['arg']}", f"n{s}", e["position"], "edge hot-rev")
                     for e in step["edges"])
        states.append({"value": list(value), "adj": list(adj), "panel": (
            "reverse", str(s), total, f"{step['rule']}: {step['statement']}", edges,
            number(step["adjoint"]), hot)})
    # the last step reads the gradient off the inputs: each input shows its own (the output
    # itself, 1.0, when the expression is an input; 0.0 when no path reaches it)
    for nd in nodes:
        if nd["op"] == "var" and nd["label"] in ref["gradient"]:
            adj[nd["id"]] = number(ref["gradient"][nd["label"]])
    final = {"value": list(value), "adj": list(adj), "panel": ("gradient",)}
    states.append(final)
    return states


def ref_output(ref: dict) -> int:
    return ref["reverse"][0]["id"] if ref["reverse"] else len(ref["nodes"]) - 1


def _check(snap: dict, want: dict, ref: dict, number, k: int, total: int) -> None:
    where = f"after {k} steps"
    assert snap["slider"] == k and snap["counter"].startswith(f"step {k} of {total}"), where
    assert snap["back"] == (k == 0) and snap["step"] == (k == total), where
    for i, node in enumerate(snap["nodes"]):
        assert node["id"] == f"n{i}"
        lines = node["lines"]
        assert lines[0].startswith(f"#{i} "), where
        v = want["value"][i]
        assert lines[2] == f"value {UNKNOWN if v is None else v}", (where, i, lines)
        if len(lines) > 3:
            a = want["adj"][i]
            assert lines[3] == f"adj {UNKNOWN if a is None else a}", (where, i, lines)
        else:  # only a node no input reaches (a constant) has no adjoint line
            assert want["adj"][i] is None and not ref["nodes"][i]["contributions"], (where, i)
        assert ("pending" in node["cls"]) == (v is None), (where, i)
    current = [nd["id"] for nd in snap["nodes"] if "current" in nd["cls"].split()]
    panel = want["panel"]
    if panel is None:
        assert snap["kind"] == "start" and current == [] and snap["hot"] == [], where
        return
    if panel[0] == "forward":
        _, node, calc, value, hot = panel
        assert (snap["kind"], snap["node"], current) == ("forward", node, [f"n{node}"]), where
        assert sorted(map(tuple, snap["hot"])) == hot, where
        (row,) = [r for r in snap["rows"] if r[0] == "calc"]
        assert row[1].startswith(calc + value), (where, row, calc, value)
        assert row[2] == [["value", value]], where
        return
    if panel[0] == "reverse":
        _, node, total, rule, edges, adjoint, hot = panel
        assert (snap["kind"], snap["node"], current) == ("reverse", node, [f"n{node}"]), where
        assert sorted(map(tuple, snap["hot"])) == hot, where
        (row,) = [r for r in snap["rows"] if r[0] == "total"]
        assert row[1] == total, where
        assert row[2] == [["adjoint", adjoint]], where
        assert snap["rule"] == rule, where
        assert len(snap["edges"]) == len(edges), where
        values = [nd["value"] for nd in ref["nodes"]]
        for shown, (e, first) in zip(snap["edges"], edges):
            assert shown["arg"] == e["arg"], where
            partial_row, edge_row = shown["rows"]
            head = f"∂#{node}/∂#{e['arg']} = {e['template']}"
            filled = _fill(e["template"], values, number)
            p = number(e["partial"])
            assert partial_row[1].startswith(head) and partial_row[1].endswith(f" = {p}"), \
                (where, partial_row)
            if filled not in (e["template"], p):
                assert f" = {filled} = " in partial_row[1], (where, partial_row, filled)
            assert partial_row[2] == [["partial", p]], where
            want_nums = [["adj", adjoint], ["factor", p], ["contribution",
                                                           number(e["contribution"])]]
            text = (f"adj[#{e['arg']}] += {adjoint} * {_signed(p)} = "
                    f"{number(e['contribution'])}")
            if not first:
                want_nums.append(["total", number(e["adjoint_after"])])
                text += f", now {number(e['adjoint_after'])}"
            assert edge_row[1] == text and edge_row[2] == want_nums, (where, edge_row)
        return
    assert snap["kind"] == "gradient", where
    (value_row,) = [r for r in snap["rows"] if r[0] == "value"]
    assert value_row[2] == [["value", number(ref["value"])]], where
    inputs = [r for r in snap["rows"] if r[0] == "input"]
    assert len(inputs) == len(ref["gradient"]), where
    slots = {nd["label"]: nd["id"] for nd in ref["nodes"] if nd["op"] == "var"}
    for r, (name, g) in zip(inputs, ref["gradient"].items()):
        got = ref["nodes"][slots[name]]["contributions"]
        if slots[name] == ref_output(ref):
            why = "  (the output is this input)"
        elif not got:
            why = "  (no path to the output)"
        else:
            why = "  (from " + ", ".join(f"#{c['from']}" for c in got) + ")"
        terms = (" + ".join(_signed(number(c["value"])) for c in got) + " = "
                 if len(got) > 1 else "")
        assert r[1] == f"d/d{name} = adj[#{slots[name]}] = {terms}{number(g)}{why}", (where, r)
        assert r[2] == [["adjoint", number(g)]], (where, r, g)


def _walk(browser, run, tmp_path, expr: str, at: str, *options: str, digits: int = 12,
          graph: bool = False):
    """Write the page (with explain --html, or graph -o FILE.html), click Step through it
    checking every state, then Back, the slider and the keys; returns the open page."""
    number = (lambda v: num(v, digits))
    result = run("explain", expr, "--at", at, *options, "--json")
    assert result.exit_code == 0, result.stderr
    ref = json.loads(result.stdout)
    path = tmp_path / "stepper.html"
    if graph:
        result = run("graph", expr, "--at", at, *options, "-o", str(path))
    else:
        result = run("explain", expr, "--at", at, *options, "--html", str(path))
    assert result.exit_code == 0, result.stderr
    states = _expected(ref, number)
    total = len(states) - 1
    page, errors = _open(browser, path)
    point = ", ".join(f"{nd['label']} = {number(nd['value'])}" for nd in ref["nodes"]
                      if nd["op"] == "var")
    assert page.locator("#point").text_content() == point
    snaps = [page.evaluate(SNAPSHOT)]
    _check(snaps[0], states[0], ref, number, 0, total)
    for k in range(1, total + 1):
        page.click("#step")
        snaps.append(page.evaluate(SNAPSHOT))
        _check(snaps[k], states[k], ref, number, k, total)
    for k in range(total - 1, max(total - 4, -1), -1):  # Back lands on the same states
        page.click("#back")
        assert page.evaluate(SNAPSHOT) == snaps[k]
    for k in (0, total // 2, total, 1):  # so does the slider
        page.evaluate("k => { const s = document.getElementById('slider'); s.value = k; "
                      "s.dispatchEvent(new Event('input')); }", k)
        assert page.evaluate(SNAPSHOT) == snaps[k]
    page.keyboard.press("ArrowRight")
    assert page.evaluate(SNAPSHOT) == snaps[2]
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(SNAPSHOT) == snaps[1]
    assert errors == [] and browser.outside == []
    return page


def test_baydin_every_step_in_the_browser(browser, run, tmp_path):
    page = _walk(browser, run, tmp_path, BAYDIN, "x1=2,x2=5", "--digits", "4", digits=4)
    page.close()


def test_micrograd_neuron_every_step_in_the_browser(browser, run, tmp_path):
    page = _walk(browser, run, tmp_path, NEURON, NEURON_AT)
    page.close()


def test_graph_format_html_every_step_in_the_browser(browser, run, tmp_path):
    page = _walk(browser, run, tmp_path, "(w0 + w1*x - y)^2", "x=3,y=7,w0=-2,w1=2", graph=True)
    page.close()


def test_shared_subexpression_every_step_in_the_browser(browser, run, tmp_path):
    page = _walk(browser, run, tmp_path, SHARED, "x=3,y=-2")
    # a*a: the two edges of one node say which argument each is
    steps = json.loads(page.locator("#adcli-data").text_content())["steps"]
    (k,) = [i + 1 for i, s in enumerate(steps) if s["kind"] == "reverse" and s["op"] == "mul"
            and s["label"] == "a * a"]
    page.evaluate("k => { const s = document.getElementById('slider'); s.value = k; "
                  "s.dispatchEvent(new Event('input')); }", k)
    captions = page.locator(".edge-step .caption").all_text_contents()
    assert "local partial (1st argument)" in captions
    assert "local partial (2nd argument)" in captions
    page.close()


def test_hostile_source_stays_text(browser, run, tmp_path):
    source = ("x*y # </script><script>window.pwned = 1</script><!-- \u2028\u2029 "
              "<img src=x onerror=window.pwned=2> @SVG@")
    src = tmp_path / "hostile.adc"
    src.write_text(source, encoding="utf-8")
    path = tmp_path / "hostile.html"
    assert run("explain", f"@{src}", "--at", "x=1,y=2", "--html", str(path)).exit_code == 0
    page, errors = _open(browser, path)
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("h1 code").text_content() == source.replace("\u2028", "\\u2028") \
        .replace("\u2029", "\\u2029")
    assert page.locator("svg").count() == 1 and page.locator("img").count() == 0
    page.click("#step")
    assert errors == [] and browser.outside == []
    page.close()


def test_screenshot_mid_reverse(browser, run, tmp_path):
    """The README's picture: the neuron's page at the product node #2 of the reverse sweep.
    Written to docs/ only with ADCLI_WRITE_SCREENSHOT=1; always taken, so it cannot rot."""
    path = tmp_path / "neuron.html"
    result = run("explain", "tanh(x1*w1 + x2*w2 + b)", "--at", NEURON_AT, "--digits", "4",
                 "--html", str(path))
    assert result.exit_code == 0, result.stderr
    page, errors = _open(browser, path)
    steps = json.loads(page.locator("#adcli-data").text_content())["steps"]
    (k,) = [i + 1 for i, s in enumerate(steps) if s["kind"] == "reverse" and s["node"] == 2]
    for _ in range(k):
        page.click("#step")
    assert page.locator("#panel h2").text_content() == "reversenode #2 = #0 * #1"
    bottom = page.evaluate("() => Math.ceil(document.querySelector('main')"
                           ".getBoundingClientRect().bottom) + 4")
    shot = tmp_path / "explain-stepper.png"
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1500, "height": bottom})
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == [] and browser.outside == []
    page.close()
    if os.environ.get("ADCLI_WRITE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "explain-stepper.png")


def test_degenerate_tapes_in_the_browser(browser, run, tmp_path):
    """The output is an input (no op to step back through); an input with no path."""
    _walk(browser, run, tmp_path, "x", "x=3").close()
    _walk(browser, run, tmp_path, "x + 0*sin(y)", "x=3,y=1").close()
