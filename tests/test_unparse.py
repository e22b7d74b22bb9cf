"""The unparser (adcli.core.unparse): fewest parentheses, let-bindings for shared parts, round
trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import programs

import adcli
from adcli.core import syntax as S
from adcli.core.unparse import to_source
from adcli.derive.symbolic import tape_nodes


def _print(text: str) -> str:
    """Print the tape of ``text`` back as source (no lets in the input)."""
    tape = adcli.parse(text).tape()
    nodes = tape_nodes(tape)
    return to_source(nodes[tape.output])


@pytest.mark.parametrize("text,expected", [
    ("x + y + z", "x + y + z"),
    ("x + (y + z)", "x + (y + z)"),
    ("x - (y - z)", "x - (y - z)"),
    ("(x - y) - z", "x - y - z"),
    ("x * (y / z)", "x*(y/z)"),
    ("(x * y) / z", "x*y/z"),
    ("x / (y * z)", "x/(y*z)"),
    ("(x + y) * z", "(x + y)*z"),
    ("-(x^2)", "-x^2"),
    ("(-x)^2", "(-x)^2"),
    ("x^(y^z)", "x^y^z"),
    ("(x^y)^z", "(x^y)^z"),
    ("x^(-y)", "x^-y"),
    ("x^-y^2", "x^-y^2"),
    ("x^(y*z)", "x^(y*z)"),
    ("(2*x)^3", "(2*x)^3"),
    ("sin(x + y)^2", "sin(x + y)^2"),
    ("-(x + y)", "-(x + y)"),
    ("-(x*y)", "-(x*y)"),
    ("x * -y", "x*-y"),
    ("x - -y", "x - -y"),
    ("max(x + 1, -y)", "max(x + 1, -y)"),
    ("(x)", "x"),
    ("((((x + 1))))*2", "(x + 1)*2"),
])
def test_fewest_parentheses(text, expected):
    printed = _print(text)
    assert printed == expected
    assert adcli.parse(printed).eval({"x": 1.3, "y": 0.7, "z": 2.1}) == pytest.approx(
        adcli.parse(text).eval({"x": 1.3, "y": 0.7, "z": 2.1}), rel=0, abs=0)


@pytest.mark.parametrize("value,text", [
    (2.0, "2"), (0.1, "0.1"), (1e-300, "1e-300"), (1.5e20, "1.5e+20"),
    (-2.0, "-2"), (math.inf, "1/0"), (-math.inf, "-1/0"),
])
def test_numbers_read_back_exactly(value, text):
    node = S.call("mul", S.const(value), S.var("x"))
    printed = to_source(node)
    assert printed.startswith(text)
    assert adcli.parse(printed).eval({"x": 1.0}) == value


def test_nan_and_negative_constant_base():
    assert math.isnan(adcli.parse(to_source(S.const(math.nan))).eval({}))
    assert to_source(S.call("pow", S.const(-2.0), S.var("x"))) == "(-2)^x"
    assert to_source(S.call("pow", S.var("x"), S.const(-2.0))) == "x^-2"
    assert to_source(S.call("pow", S.const(math.inf), S.var("x"))) == "(1/0)^x"


def test_shared_nodes_become_lets_and_size_is_linear():
    def chain(n):
        node = S.add(S.var("x"), S.const(1.0))
        for _ in range(n):
            node = S.call("mul", node, node)
        return node

    sizes = [len(to_source(chain(n))) for n in (10, 20, 40)]
    # linear up to the digits of the generated names (a tree would double per step)
    assert sizes[1] < 2.3 * sizes[0] and sizes[2] < 2.3 * sizes[1]
    printed = to_source(chain(40))
    # shared products are named (the shortest, like t1*t1, are repeated instead)
    assert 15 <= printed.count("=") < 40
    x = 1 + 2.0**-50
    assert adcli.parse(printed).eval({"x": x - 1}) == pytest.approx(x ** (2.0**40), rel=1e-6)


def test_short_shared_parts_are_repeated_not_named():
    x2 = S.call("pow", S.var("x"), S.const(2.0))
    root = S.call("add", S.call("sin", x2), S.call("cos", x2))
    assert to_source(root) == "sin(x^2) + cos(x^2)"


def test_user_names_kept_and_generated_names_avoid_variables():
    shared = S.call("add", S.call("sin", S.var("t1")), S.var("x"))
    root = S.call("mul", shared, shared)
    printed = to_source(root)
    assert printed == "t2 = sin(t1) + x; t2*t2"
    assert to_source(root, names={id(shared): "h"}) == "h = sin(t1) + x; h*h"
    assert to_source(root, reserved={"t2"}, sep="\n") == "t3 = sin(t1) + x\nt3*t3"


def test_deep_tree_prints_without_recursion():
    node = S.var("x")
    for _ in range(50_000):
        node = S.call("neg", S.call("sin", node))
    printed = to_source(node)
    assert printed.startswith("-sin(-sin(") and printed.count("(") == 50_000


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_steps=12))
def test_round_trip_evaluates_the_same(example):
    tape = adcli.parse(example.source).tape()
    nodes = tape_nodes(tape)
    names = {id(nodes[s]): n for s, n in tape.labels.items()}
    printed = to_source(nodes[tape.output], names)
    point = {n: example.point[n] for n in tape.inputs}
    want = float(adcli.parse(example.source).eval(point))
    got = float(adcli.parse(printed).eval(point))
    assert got == want or (math.isnan(got) and math.isnan(want)), printed
    # printing the reparsed program again gives the same text (a fixed point)
    tape2 = adcli.parse(printed).tape()
    nodes2 = tape_nodes(tape2)
    names2 = {id(nodes2[s]): n for s, n in tape2.labels.items()}
    assert to_source(nodes2[tape2.output], names2) == printed
