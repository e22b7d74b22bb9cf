"""``adcli explain EXPR --wrt x --check ANSWER``: right answers in several equivalent forms
pass, wrong ones (a missing chain-rule factor, a sign error, a dropped term) are caught and
located, runs are reproducible, and hostile ANSWER text is one ``Error:`` (exit 2)."""

from __future__ import annotations

import json
import math

import pytest

from adcli.derive.check import check
from adcli.function import parse


def _check(run, *args: str, status: int) -> dict:
    result = run("explain", *args, "--json")
    assert result.exit_code == status, result.stderr + result.stdout
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.mark.parametrize("expr, answer", [
    ("x^2*sin(x)", "2*x*sin(x) + x^2*cos(x)"),
    ("x^2*sin(x)", "x^2*cos(x) + sin(x)*2*x"),
    ("x^2*sin(x)", "x*(2*sin(x) + x*cos(x))"),
    ("x^2*sin(x)", "x*x*cos(x) + 2*sin(x)*x + 0"),
    ("sin(x^2)", "2*x*cos(x^2)"),
    ("tanh(x)", "1 - tanh(x)^2"),
    ("tanh(x)", "1/cosh(x)^2"),
    ("x/(1 + x^2)", "(1 - x^2)/(1 + x^2)^2"),
    ("log(x)", "1/x"),
    ("sqrt(x - 5)", "1/(2*sqrt(x - 5))"),
    ("exp(-x^2/2)", "-x*exp(-x^2/2)"),
    ("a = x^2; a*exp(a)", "2*x*exp(x^2)*(1 + x^2)"),
])
def test_right_answers_agree_exit_0(run, expr, answer):
    out = _check(run, expr, "--wrt", "x", "--check", answer, status=0)
    verdict = out["check"][0]
    assert out["agree"] and verdict["agree"] and verdict["points"] == 20
    assert verdict["differing"] == 0 and verdict["differences"] == []
    assert verdict["max_relative_difference"] <= 1e-9
    assert verdict["symbolic"] in ("equal", "undecided")


def test_symbolically_equal_when_the_difference_simplifies_to_zero(run):
    out = _check(run, "x^2*sin(x)", "--check", "sin(x)*2*x + x^2*cos(x)", status=0)
    assert out["check"][0]["symbolic"] == "equal"


@pytest.mark.parametrize("expr, answer, remains", [
    ("sin(3*x)", "cos(3*x)", "2*cos(3*x)"),                      # missing chain-rule factor
    ("x^2*sin(x)", "2*x*sin(x) - x^2*cos(x)", "2*x^2*cos(x)"),  # sign error
    ("x^2*sin(x)", "2*x*sin(x)", "x^2*cos(x)"),                  # product rule: a term dropped
    ("exp(x^2)", "exp(x^2)", None),                               # the chain rule forgotten
    ("1/x", "1/x^2", None),                                       # sign of the power rule
])
def test_wrong_answers_are_caught_and_located(run, expr, answer, remains):
    result = run("explain", expr, "--wrt", "x", "--check", answer)
    assert result.exit_code == 1 and result.stderr == ""
    text = result.stdout.splitlines()
    assert text[0].startswith("d/dx: your answer DIFFERS from adcli's derivative at ")
    rows = [ln for ln in text if ln.startswith("  at x=")]
    assert 1 <= len(rows) <= 5
    if remains is not None:
        assert text[-1] == f"  adcli's derivative minus yours simplifies to {remains}"
    out = _check(run, expr, "--wrt", "x", "--check", answer, status=1)
    verdict = out["check"][0]
    assert not out["agree"] and verdict["differing"] >= 1
    # each shown point: both values, recomputed here, and their relative difference
    f, g = parse(expr), parse(answer)
    for diff in verdict["differences"]:
        x = diff["at"]["x"]
        assert diff["adcli"] == f.grad({"x": x}).gradient["x"]
        assert math.isclose(diff["answer"], float(g.eval({"x": x})), rel_tol=1e-15)
        rel = abs(diff["adcli"] - diff["answer"]) / max(abs(diff["adcli"]),
                                                          abs(diff["answer"]))
        assert math.isclose(diff["relative_difference"], rel, rel_tol=1e-12)
        assert rel > 1e-9


def test_a_wrong_answer_at_some_points_only(run):
    """|x| has derivative sign(x): x/x is right for x > 0 and wrong for x < 0."""
    out = _check(run, "abs(x)", "--check", "x/x", status=1)
    verdict = out["check"][0]
    assert 0 < verdict["differing"] < verdict["points"]
    assert all(d["at"]["x"] < 0 for d in verdict["differences"])


def test_points_are_seeded_reproducible_and_in_the_domain(run):
    a = _check(run, "log(x) + sqrt(x)", "--check", "1", "--seed", "5", status=1)
    b = _check(run, "log(x) + sqrt(x)", "--check", "1", "--seed", "5", status=1)
    c = _check(run, "log(x) + sqrt(x)", "--check", "1", "--seed", "6", status=1)
    assert a == b and a["seed"] == 5
    assert a["check"][0]["differences"] != c["check"][0]["differences"]
    tape = parse("log(x) + sqrt(x)").tape()
    result = check(tape, [("x", parse("1/x + 1/(2*sqrt(x))").tape(), "")], seed=3)
    assert result.agree and all(p["x"] > 0 for p in result.verdicts[0].points)


def test_several_names_one_answer_each_in_the_order_of_wrt(run):
    out = _check(run, "x*y + exp(x*y)", "--wrt", "x,y", "--check", "y*(1 + exp(x*y))",
                 "--check", "x + x*exp(x*y)", status=0)
    assert [v["wrt"] for v in out["check"]] == ["x", "y"]
    # swapped: both differ
    out = _check(run, "x*y + exp(x*y)", "--wrt", "y,x", "--check", "y*(1 + exp(x*y))",
                 "--check", "x + x*exp(x*y)", status=1)
    assert [v["agree"] for v in out["check"]] == [False, False]
    # one right, one wrong: exit 1, only the wrong one differs
    out = _check(run, "x*y^2", "--wrt", "x,y", "--check", "y^2", "--check", "x*y",
                 status=1)
    assert [v["agree"] for v in out["check"]] == [True, False]
    assert out["check"][1]["difference"] == "x*y"


def test_at_fixes_variables(run):
    out = _check(run, "log(x)*y^2", "--wrt", "x", "--at", "y=3", "--check", "9/x", status=0)
    assert out["fixed"] == {"y": 3.0} and out["check"][0]["symbolic"] == "equal"
    assert all(d == [] for d in [out["check"][0]["differences"]])
    _check(run, "log(x)*y^2", "--wrt", "x", "--at", "y=2", "--check", "9/x", status=1)


@pytest.mark.parametrize("args, fragment", [
    (["x^2", "--check", "2*x +"], "--check ANSWER: unexpected end of input (line 1, column 6)"),
    (["x^2", "--check", "2*x)"], "--check ANSWER: unexpected ')' (line 1, column 4)"),
    (["x^2", "--check", ""], "--check ANSWER: empty expression"),
    (["x^2", "--check", "2*x\x01"], "--check ANSWER: unexpected character '\\x01'"),
    (["x^2", "--check", "foo(x)"], "--check ANSWER: unknown function 'foo'"),
    (["x^2", "--check", "2*z"], "--check ANSWER uses 'z', which is not a variable of EXPR"),
    (["x^2", "--check", "x+" * 600_000 + "x"], "--check ANSWER: the expression has 1,200,001 "
     "nodes, over the limit"),
    (["x*y", "--check", "y"], "--check needs --wrt NAME: EXPR has 2 variables"),
    (["x*y", "--wrt", "x,y", "--check", "y"], "--check is given 1 time for 2 --wrt names"),
    (["x*y", "--wrt", "z", "--check", "y"], "--wrt 'z' is not a variable of EXPR"),
    (["x*y", "--wrt", "x", "--at", "x=1", "--check", "y"], "also fixed by --at"),
    (["x*y", "--wrt", "x"], "--wrt is for --check"),
    (["x*y", "--at", "x=1,y=2", "--seed", "3"], "--seed is for --check"),
    (["x*y", "--at", "x=1,y=2", "--max-nodes", "5"], "--max-nodes is for --html"),
    (["x^2", "--check", "2*x", "--paths", "x"], "does not go with"),
    (["sqrt(-1 - x^2)", "--check", "0"], "no random point was found"),
    (["x^2", "--check", "2*x", "--seed", "-1"], "Invalid value for '--seed'"),
])
def test_hostile_input_is_one_error_exit_2(run, args, fragment):
    result = run("explain", *args)
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.count("Error:") == 1 and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_deep_and_long_answers_are_checked_without_recursion(run):
    deep = "(" * 100_000 + "2*x" + ")" * 100_000
    assert _check(run, "x^2", "--check", deep, status=0)["check"][0]["agree"]
    long = " + ".join(["x"] * 30_000)  # over the symbolic look's size: numbers only
    verdict = _check(run, "x^2", "--check", long, status=1)["check"][0]
    assert verdict["symbolic"] == "skipped" and verdict["differing"] == 20


def test_text_report_of_a_right_answer(run):
    result = run("explain", "x^2*sin(x)", "--wrt", "x", "--check", "2*x*sin(x) + x^2*cos(x)")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "d/dx: your answer agrees with adcli's derivative at 20 random points (seed 0; "
        "largest relative difference 0.0)",
        "  symbolically equal: adcli's derivative minus yours simplifies to 0"]
