"""Exact Hessians (adcli.derive.curvature) against SymPy's symbolic Hessian."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from sympy_ref import to_sympy

import adcli
from adcli.derive.curvature import eigenvalues, gradient_and_hessian, hessian

CASES = [
    ("(1-x)^2 + 100*(y-x^2)^2", {"x": 1.0, "y": 1.0}),
    ("(1-x)^2 + 100*(y-x^2)^2", {"x": -1.2, "y": 1.0}),
    ("x^3*y^2 - 2*x*y", {"x": 0.7, "y": -1.3}),
    ("sin(x*y) + cos(x)", {"x": 0.4, "y": 2.1}),
    ("exp(x*y) / (1 + x^2)", {"x": 0.3, "y": -0.8}),
    ("log(x^2 + y^2 + 1)", {"x": 1.5, "y": -0.5}),
    ("tanh(x1*w1 + x2*w2 + b)", {"x1": 0.5, "x2": -1.0, "w1": 0.3, "w2": 0.8, "b": 0.1}),
    ("sigmoid(x*y) + softplus(x - y)", {"x": 0.9, "y": -0.4}),
    ("x/y + y/x", {"x": 1.7, "y": 0.6}),
    ("sqrt(x^2 + y^2)", {"x": 3.0, "y": 4.0}),
    ("atan(y/x) + asin(x*y)", {"x": 0.5, "y": 0.9}),
    ("x^y", {"x": 1.8, "y": 2.5}),
    ("a = x^2; b = x*y; c = y^2; d = 3*a; e = 5*c; d + b + e", {"x": 2.0, "y": 3.0}),
    ("(w0 + w1*x - y)^2", {"x": 3.0, "y": 7.0, "w0": -2.0, "w1": 2.0}),
    ("x*y*z + z^2*sinh(x) - cosh(y*z)", {"x": 0.2, "y": -0.7, "z": 1.1}),
    ("log2(x) * log10(y) + acos(x/4)", {"x": 1.3, "y": 2.2}),
    ("a1 = x*x; a2 = a1*a1; a3 = a2*a2; a4 = a3*a3; a4", {"x": 1.1}),
]


@pytest.mark.parametrize("text,point", CASES, ids=[c[0] for c in CASES])
def test_hessian_matches_sympy(text, point):
    expr, symbols = to_sympy(text)
    names = list(symbols)
    subs = {symbols[n]: point[n] for n in names}
    expected = np.array(sp.hessian(expr, [symbols[n] for n in names]).subs(subs).evalf(30),
                        dtype=float)
    grad_expected = np.array([sp.diff(expr, symbols[n]).subs(subs).evalf(30) for n in names],
                             dtype=float)
    tape = adcli.parse(text).tape()
    got = hessian(tape, point, names)
    assert got.shape == (len(names), len(names)) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    g, h = gradient_and_hessian(tape, point, names)
    np.testing.assert_allclose(g, grad_expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(h, got)


def test_rosenbrock_exact_and_eigenvalues():
    tape = adcli.parse("(1-x)^2 + 100*(y-x^2)^2").tape()
    h = hessian(tape, {"x": 1.0, "y": 1.0})
    assert h.tolist() == [[802.0, -400.0], [-400.0, 200.0]]
    ev = eigenvalues(h)
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(np.array([[802, -400], [-400, 200]])))
    assert np.all(ev > 0)  # a minimum


def test_saddle_has_mixed_eigenvalues():
    h = hessian(adcli.parse("x^2 - y^2").tape(), {"x": 0.0, "y": 0.0})
    assert h.tolist() == [[2.0, 0.0], [0.0, -2.0]]
    assert eigenvalues(h).tolist() == [-2.0, 2.0]


def test_subset_and_order_of_names():
    tape = adcli.parse("x^2*y + y^3*z").tape()
    h = hessian(tape, {"x": 1.0, "y": 2.0, "z": 3.0}, ["z", "x"])
    assert h.tolist() == [[0.0, 0.0], [0.0, 4.0]]


def test_linear_and_constant_functions_have_zero_hessian():
    assert hessian(adcli.parse("3*x - 2*y + 1").tape(), {"x": 5.0, "y": 1.0}).tolist() == [
        [0.0, 0.0], [0.0, 0.0]]


def test_reused_at_many_points_without_rebuilding():
    from adcli.derive.curvature import hessian_program

    tape = adcli.parse("x^4 + x*y").tape()
    program = hessian_program(tape)
    assert hessian_program(tape) is program
    for x in (-1.0, 0.5, 2.0):
        assert hessian(tape, {"x": x, "y": 0.0}).tolist() == [[12 * x * x, 1.0], [1.0, 0.0]]


def test_symbolic_edge_is_nan_not_wrong():
    # d/dy x^y = x^y*log(x): nan at x = 0 (documented difference from the numeric rule's 0).
    h = hessian(adcli.parse("x^y").tape(), {"x": 0.0, "y": 2.0})
    assert np.isnan(h[1, 1])
    assert np.isnan(eigenvalues(h)).all()


def test_cli_hessian_json(run):
    result = run("hessian", "(1-x)^2 + 100*(y-x^2)^2", "--at", "x=1,y=1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["variables"] == ["x", "y"]
    assert data["hessian"] == [[802.0, -400.0], [-400.0, 200.0]]
    np.testing.assert_allclose(data["eigenvalues"],
                               np.linalg.eigvalsh(np.array(data["hessian"])))


def test_cli_hessian_table_and_errors(run):
    result = run("hessian", "x^2 - y^2", "--at", "x=0,y=0")
    assert result.exit_code == 0
    assert "saddle" in result.stdout
    bad = run("hessian", "x^2", "--at", "x=1", "--wrt", "q")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error:")
    missing = run("hessian", "x*y", "--at", "x=1")
    assert missing.exit_code == 2
