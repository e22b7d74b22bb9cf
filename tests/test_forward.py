"""Forward mode, finite differences, operation counts and the "where did it go wrong?"
diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adcli
from adcli.core import sweeps
from adcli.core.diagnose import derivative_warnings, first_nonfinite_adjoint, kinks
from adcli.core.sweeps import OpCount, forward_gradient, reverse_gradient
from adcli.derive.numeric import CBRT_EPS, numeric_directional, numeric_gradient, step
from adcli.errors import AdcliError
from adcli.ops import OPS

# A point inside every op's domain, away from kinks.
SAFE = {1: 0.37, 2: (0.61, 1.7)}


@pytest.mark.parametrize("name", sorted(OPS))
def test_forward_tangent_of_each_op_matches_central_difference(name):
    op = OPS[name]
    args = ["x", "y"][: op.arity]
    text = (f"x {op.symbol} y" if op.form == "infix" else "-x" if op.form == "prefix"
            else f"{op.symbol}({', '.join(args)})")
    if name == "pow":
        text = "x ^ y"
    values = [SAFE[1]] if op.arity == 1 else list(SAFE[2])
    point = dict(zip(args, values))
    f = adcli.parse(text)
    tape = f.tape(point)
    _, fwd = forward_gradient(tape, point)
    num = numeric_gradient(tape, point)
    for n in tape.inputs:
        assert float(fwd[n]) == pytest.approx(num[n], rel=1e-8, abs=1e-9), (name, n)


def test_forward_gradient_equals_reverse_on_the_worked_example():
    f = adcli.parse("a = x^2; b = x*y; c = y^2; d = 3*a; e = 5*c; d + b + e")
    tape = f.tape()
    value, fwd = forward_gradient(tape, {"x": 2.0, "y": 3.0})
    assert value == 63.0 and fwd == {"x": 15.0, "y": 32.0}
    assert reverse_gradient(tape, {"x": 2.0, "y": 3.0})[1] == fwd


def test_jvp_api_one_pass_and_validation():
    f = adcli.parse("3*x^2 + x*y + 5*y^2")
    value, dv = f.jvp({"x": 2, "y": 3}, {"x": 1, "y": -1})
    assert (value, dv) == (63.0, 15.0 - 32.0)
    assert f.jvp({"x": 2, "y": 3}, {"y": 1}).derivative == 32.0  # missing components are 0
    with pytest.raises(AdcliError, match="'q' is not a variable"):
        f.jvp({"x": 2, "y": 3}, {"q": 1})


def test_jvp_on_columns_of_data():
    f = adcli.parse("w*x + b")
    x = np.array([1.0, 2.0, 3.0])
    _, dv = f.jvp({"w": 2.0, "b": 1.0, "x": x}, {"w": 1.0})
    np.testing.assert_array_equal(dv, x)


def test_operation_counts_are_exact():
    # 7 instructions, 14 argument edges of which 10 carry a derivative (the constants' don't).
    tape = adcli.parse("3*x^2 + x*y + 5*y^2").tape()
    point = {"x": 2.0, "y": 3.0}
    counts = {}
    for mode, run in (("forward", forward_gradient), ("reverse", reverse_gradient)):
        c = OpCount()
        run(tape, point, c)
        counts[mode] = c
    assert (counts["reverse"].evaluations, counts["reverse"].partials,
            counts["reverse"].products) == (7, 14, 10)
    assert counts["reverse"].total == 31
    assert counts["forward"].total == 2 * 31  # one full pass per input
    c = OpCount()
    numeric_gradient(tape, point, count=c)
    assert (c.evaluations, c.partials, c.products) == (4 * 7, 0, 0)


def test_forward_ops_grow_with_inputs_reverse_ops_do_not_multiply():
    def ops(n):
        tape = adcli.parse(" + ".join(f"sin(x{i})*x{i}" for i in range(n))).tape()
        point = {f"x{i}": 0.1 * i for i in range(n)}
        f, r = OpCount(), OpCount()
        forward_gradient(tape, point, f)
        reverse_gradient(tape, point, r)
        return f.total, r.total

    f10, r10 = ops(10)
    f100, r100 = ops(100)
    assert f10 == 10 * r10 and f100 == 100 * r100
    assert r100 < 11 * r10  # reverse grows like the tape (~10x), forward like n * tape (~100x)
    assert f100 > 90 * f10


def test_step_is_scaled_and_exact():
    assert step(0.0) == pytest.approx(CBRT_EPS)
    assert step(1e6) == pytest.approx(CBRT_EPS * 1e6, rel=1e-9)
    for x in (0.1, 3.3, -7.77, 1e6 + 0.1):
        h = step(x)
        assert (x + h) - x == h


def test_numeric_gradient_and_directional():
    tape = adcli.parse("exp(x)*sin(y)").tape()
    point = {"x": 0.3, "y": 1.1}
    g = numeric_gradient(tape, point)
    assert g["x"] == pytest.approx(math.exp(0.3) * math.sin(1.1), rel=1e-9)
    assert g["y"] == pytest.approx(math.exp(0.3) * math.cos(1.1), rel=1e-9)
    d = numeric_directional(tape, point, {"x": 1.0, "y": -2.0})
    assert d == pytest.approx(g["x"] - 2 * g["y"], rel=1e-8)
    assert numeric_directional(tape, point, {}) == 0.0


@pytest.mark.parametrize("text, point, expected, convention", [
    ("abs(x)", {"x": 0.0}, {"x": 0.0}, "abs'(0) = 0"),
    ("relu(x)", {"x": 0.0}, {"x": 0.0}, "relu'(0) = 0"),
    ("max(x, y)", {"x": 1.0, "y": 1.0}, {"x": 0.5, "y": 0.5}, "splits the gradient evenly"),
    ("min(x, y)", {"x": 2.0, "y": 2.0}, {"x": 0.5, "y": 0.5}, "splits the gradient evenly"),
])
def test_kinks_use_the_documented_convention_and_are_reported(text, point, expected, convention):
    f = adcli.parse(text)
    tape = f.tape(point)
    _, fwd = forward_gradient(tape, point)
    value, rev, values, adjoint = sweeps.value_and_grad(tape, point)
    assert rev == expected and fwd == expected
    found = kinks(tape, values)
    assert len(found) == 1 and convention in found[0].convention
    messages = derivative_warnings(tape, values, adjoint, rev)
    assert any("kink" in m and convention in m for m in messages)
    # away from the kink there is no warning
    moved = {k: v + 0.25 * i for i, (k, v) in enumerate(point.items(), 1)}
    values = sweeps.evaluate(tape, moved)
    assert kinks(tape, values) == []


def test_kinks_in_columns_of_data_count_rows():
    f = adcli.parse("relu(x - c)")
    tape = f.tape()
    values = sweeps.evaluate(tape, {"x": np.array([0.0, 1.0, 2.0, 1.0]), "c": 1.0})
    [k] = kinks(tape, values)
    assert k.rows == 2 and "in 2 rows" in k.describe()


def test_first_nonfinite_adjoint_names_the_edge():
    f = adcli.parse("sqrt(x) * 0 + y")
    tape = f.tape()
    value, grad, values, adjoint = sweeps.value_and_grad(tape, {"x": 0.0, "y": 1.0})
    assert value == 1.0 and math.isnan(grad["x"]) and grad["y"] == 1.0
    bad = first_nonfinite_adjoint(tape, values, adjoint)
    assert bad.op == "var" and bad.label == "x"
    [message] = derivative_warnings(tape, values, adjoint, grad)
    assert "node #0 (var 'x')" in message and "sqrt" in message and "inf" in message


def test_finite_everywhere_gives_no_warnings():
    f = adcli.parse("x*y + sin(x)")
    tape = f.tape()
    _, grad, values, adjoint = sweeps.value_and_grad(tape, {"x": 1.0, "y": 2.0})
    assert derivative_warnings(tape, values, adjoint, grad) == []


def test_grad_cli_names_the_log_node(run):
    result = run("grad", "log(x - 3) * y", "--at", "x=2,y=1")
    assert result.exit_code == 0
    assert "nan" in result.stdout
    first = [line for line in result.stderr.splitlines() if "value is not finite" in line]
    assert first and "log 'log(x - 3)'" in first[0] and "(-1.0)" in first[0]
    assert "adjoint" in result.stderr and "Traceback" not in result.stderr


def test_grad_cli_warns_on_a_kink(run):
    result = run("grad", "abs(x) + max(x, y)", "--at", "x=0,y=0", "--no-table")
    assert result.exit_code == 0
    assert result.stderr.count("lies on a kink") == 2
    assert "abs'(0) = 0" in result.stderr and "0.5 each" in result.stderr


def test_forward_mode_is_not_nan_where_reverse_is_not():
    # d/dx of log(x - 3) * y at x = 2: reverse never multiplies by the nan partial on the y
    # edge when computing x's gradient; forward no longer multiplies it by y's zero tangent.
    tape = adcli.parse("log(x - 3) * y").tape()
    _, fwd = forward_gradient(tape, {"x": 2.0, "y": 1.0})
    _, rev = reverse_gradient(tape, {"x": 2.0, "y": 1.0})
    assert rev["x"] == -1.0 and fwd["x"] == -1.0


# --------------------------------------------------------------------------- 0 * inf
# Terms in ``s`` alone whose partial is infinite (or nan) at the point drawn for ``s``.
SINGULAR = [("log(s)", 0.0), ("sqrt(s)", 0.0), ("1/s", 0.0), ("log2(s)", 0.0),
            ("log10(s)", 0.0), ("s^0.5", 0.0), ("asin(s)", 1.0), ("acos(s)", -1.0),
            ("s^-1", 0.0), ("1/s^2", 0.0), ("s^0.25", 0.0), ("tan(s)", math.pi / 2)]
SMOOTH = ["x", "x^2*y", "sin(x)*y", "exp(x) - y", "atan(x*y)", "x*y + y"]


@settings(max_examples=120, deadline=None)
@given(base=st.sampled_from(SMOOTH), singular=st.sampled_from(SINGULAR),
       x=st.one_of(st.just(0.0), st.floats(1e-3, 3), st.floats(-3, -1e-3)),
       y=st.one_of(st.just(0.0), st.floats(1e-3, 3), st.floats(-3, -1e-3)),
       combine=st.sampled_from(["+", "*", "-"]))
def test_a_zero_tangent_contributes_nothing_where_a_partial_is_infinite(
        base, singular, x, y, combine):
    """Forward mode at points where some partial is inf or nan (log, sqrt, 1/s at 0, asin at
    1, ...): the derivative along x or y of ``base (+|-|*) term(s)`` is that of ``base``
    alone (times the term's value for *), in forward mode, in reverse mode for + and -, and
    along a direction whose s component is 0, because a zero tangent contributes nothing
    (never inf * 0 = nan). (Coordinates stay clear of underflow: a product that underflows
    to 0 in one mode and not in the other is rounding, not this class.)"""
    term, s = singular
    point = {"x": x, "y": y, "s": s}
    function = adcli.parse(f"({base}) {combine} {term}")
    tape = function.tape(point)
    base_tape = adcli.parse(base).tape()
    base_point = {k: point[k] for k in base_tape.inputs}
    _, base_fwd = forward_gradient(base_tape, base_point)
    factor = float(adcli.parse(term).eval({"s": s})) if combine == "*" else 1.0
    _, reverse = function.grad(point)
    _, fwd = forward_gradient(tape, point)

    def same(a, b) -> bool:
        return (math.isnan(a) and math.isnan(b)) or a == b

    for name in base_tape.inputs:
        with np.errstate(all="ignore"):
            want = float(np.float64(factor) * base_fwd[name])
        assert same(float(fwd[name]), want), (base, combine, term, point, name)
        if combine != "*":
            assert math.isfinite(float(fwd[name]))
            assert math.isclose(float(reverse[name]), want, rel_tol=1e-12, abs_tol=1e-300)
    direction = {k: (1.0 if k == "x" else 0.0) for k in tape.inputs}
    _, dv = function.jvp(point, direction)
    if "x" in base_tape.inputs:
        assert same(float(dv), float(fwd["x"]))


@pytest.mark.parametrize("text", ["x + log(y)", "x + sqrt(y)", "x*log(y)", "x/y"])
def test_compare_modes_forward_matches_reverse_at_y_zero(text):
    """The cases from the report: forward mode used to give nan for d/dx where reverse gave
    the number (1, 1, -inf, inf)."""
    function = adcli.parse(text)
    point = {"x": 1.0, "y": 0.0}
    tape = function.tape(point)
    _, fwd = forward_gradient(tape, point)
    _, rev = function.grad(point)
    assert float(fwd["x"]) == float(rev["x"]) and not math.isnan(float(fwd["x"]))
    tangent = sweeps.forward(tape, sweeps.evaluate(tape, point), {"x": 1.0, "y": 0.0})
    assert float(tangent[tape.output]) == float(rev["x"])
    # columns: rows where the tangent is zero contribute nothing either
    cols = {"x": np.array([1.0, 2.0]), "y": np.array([0.0, 0.0])}
    tangent = sweeps.forward(tape, sweeps.evaluate(tape, cols), {"x": 1.0})
    assert not np.isnan(tangent[tape.output]).any()


def test_diagnostics_label_the_tape_once(monkeypatch):
    """A non-finite value, a non-finite adjoint (with the edge it came through) and a kink:
    four diagnostics that each name slots, from one labelling pass over the tape."""
    import adcli.core.diagnose

    calls = []
    real = adcli.core.diagnose.describe
    monkeypatch.setattr(adcli.core.diagnose, "describe", lambda t: calls.append(1) or real(t))
    tape = adcli.parse("log(x) + sqrt(y) + abs(z)").tape()
    _, grad, values, adjoint = sweeps.value_and_grad(tape, {"x": 0.0, "y": 0.0, "z": 0.0})
    messages = derivative_warnings(tape, values, adjoint, grad)
    assert len(messages) == 3, messages
    assert "log(x)" in messages[0] and "through node" in messages[1] and "kink" in messages[2]
    assert len(calls) == 1
    calls.clear()
    _, grad, values, adjoint = sweeps.value_and_grad(tape, {"x": 1.0, "y": 1.0, "z": 1.0})
    assert derivative_warnings(tape, values, adjoint, grad) == [] and calls == []
