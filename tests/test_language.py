"""The expression language: numbers, precedence traps, calls, constants, let-programs."""

from __future__ import annotations

import math

import pytest

import adcli
from adcli.errors import AdcliError


def value(text: str, **point: float) -> float:
    return float(adcli.parse(text).eval(point))


@pytest.mark.parametrize("text, expected", [
    ("2", 2.0), ("3.5", 3.5), (".5", 0.5), ("1e-3", 1e-3), ("2.5E+4", 2.5e4), ("7.", 7.0),
    ("1e400", math.inf),
])
def test_numbers_are_float64(text, expected):
    assert value(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("-2^2", -4.0),            # unary minus binds looser than ^
    ("2^3^2", 512.0),          # ^ is right associative
    ("2**3**2", 512.0),        # ** is an alias
    ("2^-1", 0.5),             # a signed exponent is allowed
    ("2^-1^2", 0.5),           # x^-y^2 is x^(-(y^2))
    ("8/4/2", 1.0),            # / is left associative
    ("8-4-2", 2.0),            # - is left associative
    ("2*3^2", 18.0),
    ("-3*-2", 6.0),
    ("--3", 3.0),
    ("+3", 3.0),
    ("1 + 2*3 - 4/2", 5.0),
    ("(1 + 2)*3", 9.0),
    ("2^(1+1)", 4.0),
    ("-x^2", -9.0),
])
def test_precedence_traps(text, expected):
    assert value(text, x=3.0) == expected


def test_power_tower_is_inf_not_a_big_int():
    assert value("9^9^9^9") == math.inf


@pytest.mark.parametrize("name, x, expected", [
    ("sin", 0.5, math.sin(0.5)), ("cos", 0.5, math.cos(0.5)), ("tan", 0.5, math.tan(0.5)),
    ("asin", 0.5, math.asin(0.5)), ("acos", 0.5, math.acos(0.5)), ("atan", 0.5, math.atan(0.5)),
    ("sinh", 0.5, math.sinh(0.5)), ("cosh", 0.5, math.cosh(0.5)), ("tanh", 0.5, math.tanh(0.5)),
    ("exp", 0.5, math.exp(0.5)), ("log", 0.5, math.log(0.5)), ("log2", 0.5, -1.0),
    ("log10", 100.0, 2.0), ("sqrt", 4.0, 2.0), ("abs", -2.0, 2.0),
    ("sigmoid", 0.0, 0.5), ("relu", -1.0, 0.0), ("relu", 2.0, 2.0),
    ("softplus", 0.0, math.log(2.0)),
])
def test_functions(name, x, expected):
    assert value(f"{name}(x)", x=x) == pytest.approx(expected, rel=1e-15)


def test_two_argument_functions():
    assert value("pow(2, 10)") == 1024.0
    assert value("min(3, x)", x=-1.0) == -1.0
    assert value("max(3, x)", x=-1.0) == 3.0


def test_stable_sigmoid_and_softplus_at_extremes():
    assert value("sigmoid(x)", x=-800.0) == 0.0
    assert value("sigmoid(x)", x=800.0) == 1.0
    assert value("softplus(x)", x=800.0) == 800.0
    assert value("softplus(x)", x=-800.0) == 0.0
    f = adcli.parse("sigmoid(x) + softplus(x)")
    _, g = f.grad({"x": -800.0})
    assert math.isfinite(g["x"])


def test_constants_and_shadowing():
    assert value("pi") == math.pi
    assert value("e") == math.e
    assert value("2*pi", pi=1.0) == 2.0          # a bound name shadows the constant
    assert value("e = 3; e*x", x=2.0) == 6.0      # so does a let
    f = adcli.parse("e*x")
    assert f.variables == ["x"]
    assert f.grad({"x": 1.0, "e": 5.0}).gradient == {"e": 1.0, "x": 5.0}


def test_let_program_and_comments():
    text = """
    # the classic worked example
    a = x^2; b = x*y   # two statements on a line
    c = y^2
    d = 3*a; e = 5*c
    d + b + e
    """
    v, g = adcli.parse(text).grad({"x": 2.0, "y": 3.0})
    assert (v, g["x"], g["y"]) == (63.0, 15.0, 32.0)


def test_last_statement_may_be_a_binding():
    assert value("a = x + 1", x=1.0) == 2.0


@pytest.mark.parametrize("text, fragment", [
    ("x +", "unexpected end of input"),
    ("x + * y", "unexpected '*'"),
    ("sinn(x)", "unknown function 'sinn'"),
    ("sin(x, y)", "sin() takes 1 argument, got 2"),
    ("pow(x)", "pow() takes 2 arguments, got 1"),
    ("sin()", "sin() takes 1 argument, got 0"),
    ("x $ y", "unexpected character '$'"),
    ("(x", "unexpected end of input"),
    ("x)", "unexpected ')'"),
    ("x + 1; y", "only the last statement"),
    ("a = 1; a = 2; a", "already bound"),
    ("a = a + 1; a", "used in its own definition"),
    ("b = a; a = 2; b", "before its binding"),
    ("", "empty expression"),
    ("# only a comment", "empty expression"),
])
def test_bad_programs_raise_adcli_errors(text, fragment):
    with pytest.raises(AdcliError) as info:
        adcli.parse(text).tape()
    assert fragment in info.value.render()


def test_syntax_error_points_at_the_column():
    with pytest.raises(AdcliError) as info:
        adcli.parse("x + * y")
    rendered = info.value.render()
    assert "line 1, column 5" in rendered
    assert "  x + * y\n      ^" in rendered


def test_missing_value_names_the_variable():
    with pytest.raises(AdcliError, match="variable 'y' has no value"):
        adcli.parse("x + y").eval({"x": 1.0})


def test_source_size_limit():
    with pytest.raises(AdcliError, match="over the limit"):
        adcli.parse("x+" * 100 + "x", max_bytes=100)
    assert adcli.parse("x+" * 100 + "x", max_bytes=None).eval({"x": 1.0}) == 101.0
