"""``adcli explain``: the transcript of both sweeps.

References are independent of the transcript: the published traces of Baydin et al. (JMLR 2018,
Tables 2 and 3), micrograd's neuron worked by hand with the math module, ``adcli grad --json``
(every adjoint bit for bit: the transcript must not disagree with the result) and central
differences of each single op (every local partial it prints).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import programs

from adcli.ops import OPS

CI = settings(derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.function_scoped_fixture])

BAYDIN = "log(x1) + x1*x2 - sin(x2)"
NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"
NEURON = f"@{Path(__file__).resolve().parent.parent / 'samples' / 'neuron.adc'}"


def explain_json(run, *args: str) -> dict:
    result = run("explain", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def node(data: dict, label: str) -> dict:
    (found,) = [n for n in data["nodes"] if n["label"] == label]
    return found


def step(data: dict, slot: int) -> dict:
    (found,) = [s for s in data["reverse"] if s["id"] == slot]
    return found


# --------------------------------------------------------------------------- Baydin et al.


def test_baydin_table_2_primal_and_tangent_trace(run):
    """Table 2 of Baydin et al. (2018): f(x1, x2) = ln(x1) + x1*x2 - sin(x2) at (2, 5), the
    forward primal trace and the tangent trace for x1' = 1, value for value (the paper prints
    three decimals)."""
    data = explain_json(run, BAYDIN, "--at", "x1=2,x2=5", "--mode", "forward",
                        "--direction", "x1=1")
    fm = {n["id"]: n for n in data["forward_mode"]["nodes"]}
    table = [  # (label, v, v' as the paper prints them)
        ("x1", 2.0, 1.0),                                   # v-1
        ("x2", 5.0, 0.0),                                   # v0
        ("log(x1)", 0.693, 0.5),                            # v1 = ln v-1
        ("x1 * x2", 10.0, 5.0),                             # v2 = v-1 * v0
        ("sin(x2)", -0.959, 0.0),                           # v3 = sin v0
        ("log(x1) + x1 * x2", 10.693, 5.5),                 # v4 = v1 + v2
        ("log(x1) + x1 * x2 - sin(x2)", 11.652, 5.5),       # v5 = v4 - v3
    ]
    for label, v, t in table:
        n = node(data, label)
        assert round(n["value"], 3) == v, label
        assert round(fm[n["id"]]["tangent"], 3) == t, label
        assert fm[n["id"]]["value"] == n["value"]
    # and to the last digit where the trace is exact arithmetic on known numbers
    assert node(data, "log(x1)")["value"] == math.log(2.0)
    assert node(data, "sin(x2)")["value"] == math.sin(5.0)
    assert data["forward_mode"]["derivative"] == 5.5
    # v2' = v-1' * v0 + v0' * v-1: the term of x2 (tangent 0) adds nothing
    (term,) = fm[node(data, "x1 * x2")["id"]]["terms"]
    assert (term["partial"], term["tangent"], term["product"]) == (5.0, 1.0, 5.0)


def test_baydin_table_3_adjoint_trace(run):
    """Table 3: the reverse adjoint trace, x1_bar = 5.5 and x2_bar = 1.716, each input's adjoint
    the sum of its two contributions in the paper's order."""
    data = explain_json(run, BAYDIN, "--at", "x1=2,x2=5")
    ids = {n["label"]: n["id"] for n in data["nodes"]}
    v5, v4, v3 = ids["log(x1) + x1 * x2 - sin(x2)"], ids["log(x1) + x1 * x2"], ids["sin(x2)"]
    v2, v1, x1, x2 = ids["x1 * x2"], ids["log(x1)"], ids["x1"], ids["x2"]
    adj = {n["id"]: n["adjoint"] for n in data["nodes"]}
    assert adj[v5] == 1.0 and adj[v4] == 1.0 and adj[v3] == -1.0
    assert adj[v1] == 1.0 and adj[v2] == 1.0
    # v0_bar = v3_bar * cos(v0) = -0.284, then += v2_bar * v-1 = 1.716
    contributions = [c["value"] for c in node(data, "x2")["contributions"]]
    assert [round(c, 3) for c in contributions] == [-0.284, 2.0]
    assert contributions[0] == -math.cos(5.0)
    # v-1_bar = v2_bar * v0 = 5, then += v1_bar / v-1 = 5.5
    assert [c["value"] for c in node(data, "x1")["contributions"]] == [5.0, 0.5]
    assert adj[x1] == 5.5 and round(adj[x2], 3) == 1.716
    assert adj[x2] == 2.0 - math.cos(5.0)
    assert data["gradient"] == {"x1": 5.5, "x2": 2.0 - math.cos(5.0)}
    # the rules, by name, from the op table
    assert [step(data, s)["rule"] for s in (v5, v3, v4, v2, v1)] == [
        "difference rule", "chain rule through sin", "sum rule", "product rule",
        "chain rule through log"]
    sin_edge = step(data, v3)["edges"][0]
    assert sin_edge["template"] == f"cos(#{x2})" and sin_edge["computed"] == "cos(5.0)"


def test_baydin_text(run):
    result = run("explain", BAYDIN, "--at", "x1=2,x2=5", "--digits", "4", "--paths", "x1")
    assert result.exit_code == 0
    out = result.stdout
    assert "= log(#0) = log(2.0) = 0.6931" in out
    assert "= #4 - #5 = 10.69 - (-0.9589) = 11.65" in out
    assert "∂#5/∂#2 = cos(#2) = cos(5.0) = 0.2837" in out
    assert "adj[#0] += 1.0 * 0.5 = 0.5, now 5.5" in out
    assert "adj[#0 x1] = 5.0 + 0.5 = 5.5  (from #3, #1)" in out
    assert "adj[#2 x2] = (-0.2837) + 2.0 = 1.716  (from #5, #3)" in out
    assert "sum = 0.5 + 5.0 = 5.5  (the reverse sweep's adjoint: 5.5)" in out


# --------------------------------------------------------------------------- micrograd


def test_micrograd_neuron_every_partial_and_contribution(run):
    """micrograd's neuron o = tanh(x1*w1 + x2*w2 + b): each local partial and each edge's
    contribution, worked by hand with the math module."""
    data = explain_json(run, NEURON, "--at", NEURON_AT)
    x1, x2, w1, w2, b = 2.0, 0.0, -3.0, 1.0, 6.8813735870195432
    n = x1 * w1 + x2 * w2 + b
    o = math.tanh(n)
    assert abs(o - math.sqrt(0.5)) < 1e-15
    ids = {nd["label"]: nd["id"] for nd in data["nodes"]}
    out = ids["tanh(x1 * w1 + x2 * w2 + b)"]
    s_n, s_sum = ids["x1 * w1 + x2 * w2 + b"], ids["x1 * w1 + x2 * w2"]
    s_a, s_b = ids["x1 * w1"], ids["x2 * w2"]
    expected = {  # node -> [(arg, partial, contribution)]
        out: [(s_n, 1 - o * o, 1 - o * o)],
        s_n: [(s_sum, 1.0, 1 - o * o), (ids["b"], 1.0, 1 - o * o)],
        s_sum: [(s_a, 1.0, 1 - o * o), (s_b, 1.0, 1 - o * o)],
        s_a: [(ids["x1"], w1, (1 - o * o) * w1), (ids["w1"], x1, (1 - o * o) * x1)],
        s_b: [(ids["x2"], w2, (1 - o * o) * w2), (ids["w2"], x2, (1 - o * o) * x2)],
    }
    seen = set()
    for sweep_step in data["reverse"]:
        got = [(e["arg"], e["partial"], e["contribution"]) for e in sweep_step["edges"]]
        want = expected[sweep_step["id"]]
        assert [g[0] for g in got] == [w[0] for w in want]
        for (_, p, c), (_, wp, wc) in zip(got, want):
            assert p == pytest.approx(wp, rel=1e-15, abs=1e-15)
            assert c == pytest.approx(wc, rel=1e-15, abs=1e-15)
        seen.add(sweep_step["id"])
    assert seen == set(expected)
    assert step(data, out)["rule"] == "chain rule through tanh"
    assert step(data, out)["edges"][0]["template"] == f"1 - #{out} * #{out}"
    assert data["gradient"] == pytest.approx({"x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0,
                                              "b": 0.5}, abs=1e-15)


def test_micrograd_neuron_text(run):
    result = run("explain", NEURON, "--at", NEURON_AT, "--digits", "4")
    assert result.exit_code == 0
    out = result.stdout
    assert "chain rule through tanh: d tanh(a) = (1 - tanh(a)^2)*da" in out
    assert "∂#9/∂#8 = 1 - #9 * #9 = 1 - 0.7071 * 0.7071 = 0.5" in out
    assert "adj[#0] += 0.5 * (-3.0) = -1.5" in out
    assert "adj[#0 x1] = -1.5  (from #2)" in out


def test_a_node_used_twice_shows_each_contribution_and_the_sum(run):
    """micrograd's ``+=`` lesson: e = a*b used by two nodes gets the sum of two contributions,
    each shown, and the running total."""
    data = explain_json(run, "e = a*b; d = e + c; f = e*d; f", "--at", "a=2,b=-3,c=10")
    e = node(data, "e")
    contributions = [c["value"] for c in e["contributions"]]
    assert len(contributions) == 2
    # d f / d e through f = e*d directly (d = 4) and through d (e = -6)
    assert sorted(contributions) == [-6.0, 4.0]
    assert e["adjoint"] == -2.0 == contributions[0] + contributions[1]
    text = run("explain", "e = a*b; d = e + c; f = e*d; f", "--at", "a=2,b=-3,c=10").stdout
    assert f"adj[#{e['id']}] = 4.0 + (-6.0) = -2.0" in text or \
        f"adj[#{e['id']}] = (-6.0) + 4.0 = -2.0" in text
    assert ", now -2.0" in text


def test_repeated_argument_names_each_edge(run):
    text = run("explain", "x*x", "--at", "x=3").stdout
    assert "∂#1/∂#0 (1st argument) = #0 = 3.0" in text
    assert "∂#1/∂#0 (2nd argument) = #0 = 3.0" in text
    assert "adj[#0 x] = 3.0 + 3.0 = 6.0  (from #1, #1)" in text


# --------------------------------------------------------------------------- paths


def test_paths_sum_to_the_gradient(run):
    data = explain_json(run, "a = x*y; b = sin(a); b*x + a", "--at", "x=0.7,y=-1.3",
                        "--paths", "x")
    p = data["paths"]
    assert p["wrt"] == "x" and len(p["paths"]) == 3  # through b = sin(a), b*x directly, a
    for q in p["paths"]:
        assert q["nodes"][0] == data["nodes"][-1]["id"] and q["nodes"][-1] == p["input"]
        assert q["product"] == pytest.approx(math.prod(q["partials"]), rel=1e-15)
    x, y = 0.7, -1.3
    want = math.cos(x * y) * y * x + math.sin(x * y) + y
    assert p["sum"] == pytest.approx(want, rel=1e-14)
    assert p["adjoint"] == data["gradient"]["x"] == pytest.approx(want, rel=1e-14)


def test_too_many_paths_is_one_clear_error(run):
    source = "a1 = x*x; a2 = a1*a1; a3 = a2*a2; a4 = a3*a3; a5 = a4*a4; a6 = a5*a5; " \
             "a7 = a6*a6; a6 + a7"  # 2^7 + 2^6 = 192 paths
    result = run("explain", source, "--at", "x=1.01", "--paths", "x")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --paths:")
    assert "more than 100 paths" in lines[0]
    ok = run("explain", "a1 = x*x; a2 = a1*a1; a3 = a2*a2; a3", "--at", "x=1.01", "--paths", "x")
    assert ok.exit_code == 0 and "the 8 paths" in ok.stdout


# --------------------------------------------------------------------------- errors, output


@pytest.mark.parametrize("args, fragment", [
    (("x*y", "--at", "x=1,y=2", "--mode", "forward"), "--mode forward needs --direction"),
    (("x*y", "--at", "x=1,y=2", "--direction", "x=1"), "--direction is for --mode forward"),
    (("x*y", "--at", "x=1,y=2", "--mode", "forward", "--direction", "q=1"),
     "--direction: 'q' is not a variable"),
    (("x*y", "--at", "x=1,y=2", "--paths", "q"), "--paths: 'q' is not a variable"),
    (("x*y", "--at", "x=1"), "'y' has no value"),
    (("x*", "--at", "x=1"), ""),
    (("x", "--at", "x=1", "--mode", "sideways"), "sideways"),
])
def test_bad_input_is_one_error_line_exit_2(run, args, fragment):
    result = run("explain", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("Error: ") and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_non_finite_is_a_result_with_a_warning(run):
    result = run("explain", "log(x) * y", "--at", "x=-1,y=2", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["value"] == "nan" and data["gradient"]["x"] == -2.0
    assert "Warning: the value is not finite" in result.stderr


def test_rich_writes_the_plain_text(run, monkeypatch):
    """The rich renderer (a terminal) and the plain writer (a pipe) say the same."""
    from adcli.output import plain

    args = ("explain", BAYDIN, "--at", "x1=2,x2=5", "--paths", "x2")
    piped = run(*args).stdout
    monkeypatch.setattr(plain, "rich_would_be_plain", lambda stream: False)
    monkeypatch.setenv("COLUMNS", "300")
    assert run(*args).stdout == piped
    forward = ("explain", BAYDIN, "--at", "x1=2,x2=5", "--mode", "forward", "--direction",
               "x1=1")
    got = run(*forward).stdout
    monkeypatch.undo()
    assert got == run(*forward).stdout


def test_every_op_names_a_rule():
    for op in OPS.values():
        assert op.rule and op.statement.startswith("d"), op.name


# --------------------------------------------------------------------------- properties


def _bits(v) -> str:
    return repr(v)  # strings ("nan") and floats alike; -0.0 differs from 0.0


@settings(CI, max_examples=80)
@given(programs())
def test_explain_adjoints_equal_grad_json_and_partials_match_central_differences(
        run, example):
    """Over generated programs: every adjoint ``explain --json`` prints is ``grad --json``'s
    bit for bit; every local partial it prints matches a central difference of that single
    op (Richardson-extrapolated) to 1e-7, relative (absolute below 1), away from kinks."""
    at = ",".join(f"{k}={v!r}" for k, v in example.point.items())
    grad = run("grad", example.source, "--at", at, "--json", "--max-rows", "0")
    explained = run("explain", example.source, "--at", at, "--json")
    assert grad.exit_code == explained.exit_code == 0, explained.stderr
    g, e = json.loads(grad.stdout), json.loads(explained.stdout)
    assert _bits(e["value"]) == _bits(g["value"])
    assert {k: _bits(v) for k, v in e["gradient"].items()} == \
        {k: _bits(v) for k, v in g["gradient"].items()}
    assert len(e["nodes"]) == len(g["nodes"])
    for en, gn in zip(e["nodes"], g["nodes"]):
        assert _bits(en["adjoint"]) == _bits(gn["grad"]), (en, gn)
        assert _bits(en["value"]) == _bits(gn["value"])
    adjoint = {n["id"]: n["adjoint"] for n in e["nodes"]}
    last_total = {}
    for sweep_step in e["reverse"]:
        assert _bits(sweep_step["adjoint"]) == _bits(adjoint[sweep_step["id"]])
        for edge in sweep_step["edges"]:
            last_total[edge["arg"]] = edge["adjoint_after"]
    for slot, total in last_total.items():
        assert _bits(total) == _bits(adjoint[slot])
    values = [n["value"] for n in e["nodes"]]
    checked = 0
    for sweep_step in e["reverse"]:
        op = OPS[sweep_step["op"]]
        args = [values[a] for a in e["nodes"][sweep_step["id"]]["args"]]
        for edge in sweep_step["edges"]:
            if _central_matches(op, args, edge["position"], edge["partial"]):
                checked += 1
    assume(checked > 0)


def _central_matches(op, args: list, position: int, partial) -> bool:
    """True when checked and equal; False when not checkable here (non-finite, near a kink);
    fails the test when they differ."""
    if any(isinstance(a, str) for a in args) or isinstance(partial, str):
        return False
    a = args[position]
    h = 1e-4 * max(1.0, abs(a))
    if op.name in ("abs", "relu", "sign", "step") and abs(a) < 4 * h:
        return False
    if op.name in ("min", "max") and abs(args[0] - args[1]) < 4 * h:
        return False

    def f(x: float) -> float:
        xs = [np.float64(v) for v in args]
        xs[position] = np.float64(x)
        with np.errstate(all="ignore"):
            return float(op.fn(*xs))

    def d(step: float) -> float:
        return (f(a + step) - f(a - step)) / (2 * step)

    richardson = (4 * d(h / 2) - d(h)) / 3
    if not (math.isfinite(richardson) and math.isfinite(partial)):
        return False
    assert abs(richardson - partial) <= 1e-7 * max(1.0, abs(partial)), \
        (op.name, args, position, partial, richardson)
    return True


def test_degenerate_tapes(run):
    """The output is an input; a constant expression (no op); a long chain's one path."""
    text = run("explain", "x", "--at", "x=2").stdout
    assert "adj[#0 x] = 1.0  (the output is this input)" in text
    assert "(no op on the tape: nothing to pass back)" in run("explain", "2+3").stdout
    data = explain_json(run, "x" + "+1" * 3000, "--at", "x=1", "--paths", "x")
    (path,) = data["paths"]["paths"]
    assert len(path["nodes"]) == 3001 and path["product"] == 1.0


def test_helper_kernels_in_a_partial_are_said_once(run):
    text = run("explain", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2").stdout
    assert "∂#8/∂#6 = pow_dbase(#6, #7, #8) = pow_dbase(-3.0, 2.0, 9.0) = -6.0\n" \
           "        where pow_dbase(a, b, o) = b*a^(b - 1), and 0 when b = 0\n" in text
    assert "adj[#6] += 1.0 * (-6.0) = -6.0" in text
    # negative numbers in parentheses after an operator only
    text = run("explain", "(x - 10)^2 / -y", "--at", "x=7,y=7").stdout
    assert "= #4 / #6 = 9.0 / (-7.0) = -1.28571428571" in text
    assert "= -#5 = -7.0\n" in text


@settings(CI, max_examples=60)
@given(programs(), st.integers(0, 3))
def test_forward_mode_is_the_forward_sweep_and_paths_sum_to_the_adjoint(run, example, pick):
    """Over generated programs: the tangents ``--mode forward`` prints are
    :func:`adcli.core.sweeps.forward`'s bit for bit, and the sum over paths is the reverse sweep's
    adjoint up to the rounding of another summation order."""
    import adcli
    from adcli.core import sweeps
    from adcli.output.formats.json import jsonable

    tape = adcli.parse(example.source).tape(example.point)
    names = list(tape.inputs)
    name = names[pick % len(names)]
    at = ",".join(f"{k}={v!r}" for k, v in example.point.items())
    direction = {n: float(k + 1) * (-1) ** k for k, n in enumerate(names)}
    result = run("explain", example.source, "--at", at, "--json", "--mode", "forward",
                 "--direction", ",".join(f"{k}={v!r}" for k, v in direction.items()))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    point = {n: example.point[n] for n in names}
    tangent = sweeps.forward(tape, sweeps.evaluate(tape, point), direction)
    got = [_bits(n["tangent"]) for n in data["forward_mode"]["nodes"]]
    assert got == [_bits(jsonable(float(t))) for t in tangent]
    paths = run("explain", example.source, "--at", at, "--json", "--paths", name)
    if paths.exit_code == 2:  # too many to list: the error says so
        assert "--paths:" in paths.stderr and "more than 100 paths" in paths.stderr
        return
    p = json.loads(paths.stdout)["paths"]
    products = [q["product"] for q in p["paths"]]
    assume(all(not isinstance(v, str) for v in [*products, p["sum"], p["adjoint"]]))
    scale = sum(abs(v) for v in products)
    assert abs(p["sum"] - p["adjoint"]) <= 1e-12 * scale + 1e-300


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(CI, max_examples=60)
@given(programs(defined=False), st.integers(0, 3))
def test_hostile_points_never_raise(run, example, pick):
    """Zeros, huge numbers, inf and nan anywhere: a transcript (exit 0) with warnings, in every
    view, never a traceback (the runner re-raises any exception)."""
    at = ",".join(f"{k}={v!r}" for k, v in example.point.items())
    name = list(example.point)[pick % len(example.point)]
    for extra in ((), ("--json",), ("--paths", name),
                  ("--mode", "forward", "--direction", f"{name}=1")):
        result = run("explain", example.source, "--at", at, *extra)
        assert result.exit_code in (0, 2), result.stderr
        if result.exit_code == 2:  # a variable the folding removed, or too many paths
            assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
        elif extra == ("--json",):
            json.loads(result.stdout)
