"""A plateau is not a minimum: a gradient test passes wherever the value is flat to float64
precision, so a converged point whose value does not change over a look of 1e-3*max(|x|, 1)
along every parameter (the curvature vanishing too) ends `flat`, exit status 1
(adcli.optimize.checks.flat_around, adcli.optimize.verdicts.second_look); real minima,
flat-bottomed ones included, stay converged."""

from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest

import adcli
from adcli.optimize import build_objective, minimize
from adcli.optimize.checks import ESCAPE_STEP, flat_around, hessian_eigen

GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
              0.1295, 0.0540, 0.0175, 0.0044, 0.0009]
GAUSSIAN = " + ".join(f"(x1*exp(-x2*({(8 - i) / 2} - x3)^2/2) - {GAUSSIAN_Y[i - 1]})^2"
                      for i in range(1, 16))
GAUSSIAN_X0 = {"x1": 0.4, "x2": 1.0, "x3": 0.0}
GAUSSIAN_MIN = 1.12793e-8  # MGH (1981) problem 9


def objective(expr: str, start: dict):
    return build_objective(adcli.parse(expr).tape(set(start)), start)


def far(scale: float) -> dict:
    return {k: scale * v for k, v in GAUSSIAN_X0.items()}


@pytest.mark.parametrize("scale", [10, 100])
def test_gaussian_far_start_with_newton_is_a_plateau_not_a_minimum(scale):
    """Newton's first step takes x3 to 10.8 (6.7 from 100*x0), where every model term is below
    1e-100 beside the data: the value 0.564 is flat there, the relative gradient 1e-114. It
    said converged (grad-tol), "minimum", exit 0; the minimum is 1.1e-8."""
    obj, x0 = objective(GAUSSIAN, far(scale))
    r = minimize(obj, x0, method="newton")
    assert not r.converged and r.reason == "flat", r.message
    assert "a plateau, which may or may not be a minimum" in r.message
    assert r.value > 1e6 * GAUSSIAN_MIN
    # The claim it replaces was false: the known minimiser has a far lower value.
    assert obj(np.array([0.3989561, 1.0000191, 0.0]))[0] < 2 * GAUSSIAN_MIN


def test_gaussian_plateau_from_the_command_line_exits_1(run):
    start = ",".join(f"{k}={v:g}" for k, v in far(10).items())
    result = run("minimize", GAUSSIAN, "--from", start, "--method", "newton", "--json")
    assert result.exit_code == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["converged"] is False and out["reason"] == "flat"
    assert "point" in out and "minimum" not in out
    text = run("minimize", GAUSSIAN, "--from", start, "--method", "newton")
    assert text.exit_code == 1
    assert text.stdout.startswith("not converged (flat): ")
    assert "does not change to float64 precision within 0.011 of the point" in text.stdout


@pytest.mark.parametrize("extra", [[], ["--scheduler", "synchronous"]])
def test_gaussian_fit_over_data_is_a_plateau_in_memory_and_on_dask(run, tmp_path, extra):
    """The same verdict over rows of data: the driver's looks are passes over the data."""
    if extra:
        pytest.importorskip("dask.dataframe")
    data = tmp_path / "gaussian.csv"
    data.write_text("t,y\n" + "".join(f"{(8 - i) / 2},{GAUSSIAN_Y[i - 1]}\n"
                                      for i in range(1, 16)))
    result = run("minimize", "(a*exp(-b*(t - c)^2/2) - y)^2", "--data", str(data),
                 "--from", "a=4,b=10,c=0", "--method", "newton", "--json", *extra)
    assert result.exit_code == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["reason"] == "flat" and out["converged"] is False


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton", "gd"])
def test_a_constant_piece_of_relu_stays_a_minimum(method):
    """relu(x) from x = -5: the value is exactly 0 with an exactly zero gradient at x and at
    every look, on a piece where relu is constant: every nearby point has the same value, so
    the point is a (non-strict, here global) minimum and the run stays converged."""
    obj, x0 = objective("relu(x)", {"x": -5.0})
    r = minimize(obj, x0, method=method)
    assert r.converged and r.reason == "grad-tol" and r.value == 0.0, r.message


def test_exp_of_minus_x_squared_from_3_with_newton_is_a_plateau():
    """exp(-x^2) has no minimum (its infimum 0 is not attained): Newton creeps out to x = 27.3,
    where the value underflows and the gradient is exactly zero. It said converged."""
    obj, x0 = objective("exp(-x^2)", {"x": 3.0})
    r = minimize(obj, x0, method="newton")
    assert not r.converged and r.reason == "flat", r.message
    x = mpmath.mpf(float(r.x[0]))
    assert -2 * x * mpmath.exp(-x * x) < 0  # the exact slope: still falling, no minimum


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton", "gd", "adam"])
def test_a_tiny_slope_on_a_constant_is_a_plateau(method):
    """1 + 1e-30*x falls without bound, yet its relative gradient is 1e-30 at once."""
    obj, x0 = objective("1 + 1e-30*x", {"x": 0.0})
    r = minimize(obj, x0, method=method)
    assert not r.converged and r.reason == "flat", r.message


@pytest.mark.parametrize("expr, start", [
    ("(x - 100)^4", {"x": 0.0}),
    ("x^4 + y^2", {"x": 3.0, "y": -4.0}),
    ("(x - 3)^2", {"x": 1e6}),
    ("1e-12*(x - 1)^2 + 1e-12*(y + 2)^2", {"x": 5.0, "y": 5.0}),
])
@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton"])
def test_real_minima_stay_converged(expr, start, method):
    """Flat-bottomed minima too (a quartic's is strict: its value rises within the look)."""
    obj, x0 = objective(expr, start)
    r = minimize(obj, x0, method=method)
    assert r.converged, r.message


@pytest.mark.parametrize("method", ["bfgs", "lbfgs"])
def test_powell_singular_keeps_its_precision_verdict(method):
    """f ~ 1e-34 at 1e-9 from the quartic minimum, yet 1e-3 away the value is 1e-12: no
    plateau. (newton reaches max-steps there, before and after.)"""
    obj, x0 = objective("(x1 + 10*x2)^2 + 5*(x3 - x4)^2 + (x2 - 2*x3)^4 + 10*(x1 - x4)^4",
                        {"x1": 3.0, "x2": -1.0, "x3": 0.0, "x4": 1.0})
    r = minimize(obj, x0, method=method)
    assert r.converged and r.reason == "precision", r.message


def test_flat_around_against_finite_changes():
    """The look itself: flat where the value's change over 1e-3*max(|x|, 1) is below f's
    rounding, not where it is above (here computed independently with mpmath)."""
    obj, x = objective(GAUSSIAN, {"x1": 3.92, "x2": 10.0, "x3": 10.77})
    f, g = obj(x)
    flat = flat_around(x, f, np.asarray(g), obj, problem=obj, curvature=hessian_eigen(obj, x))
    assert flat is not None and flat[0] == pytest.approx(ESCAPE_STEP * 10.77)
    assert flat[1] is False  # a nonzero gradient: not a constant piece
    h = mpmath.mpf(flat[0])
    exact = [mpmath.mpf(v) for v in (3.92, 10.0, 10.77)]

    def value(z):
        return sum((z[0] * mpmath.exp(-z[1] * (mpmath.mpf((8 - i) / 2) - z[2]) ** 2 / 2)
                    - mpmath.mpf(GAUSSIAN_Y[i - 1])) ** 2 for i in range(1, 16))

    moved = [exact[0], exact[1], exact[2] - h]
    assert abs(value(moved) - value(exact)) < 1e-30  # far below f's rounding, 5e-16
    obj2, x2 = objective("x^4", {"x": 0.5})
    f2, g2 = obj2(x2)
    assert flat_around(x2, f2, np.asarray(g2), obj2, problem=obj2) is None


def test_a_flat_converged_run_under_bounds_is_a_plateau_too():
    """The looks are clipped onto the box; a parameter at its bound is looked at inward."""
    obj, x0 = objective(GAUSSIAN, far(10))
    r = minimize(obj, [3.923746, 10.004057, 10.770059], method="bfgs",
                 bounds={"x3": (5.0, 20.0)})
    assert r.reason == "flat" and not r.converged, r.message
    assert "relative projected gradient" in r.message


@pytest.mark.parametrize("extra", [[], ["--scheduler", "synchronous"]])
@pytest.mark.parametrize("c, reason", [(30, "flat"), (0, "ls-tol")])
def test_the_least_squares_engine_gets_the_same_look(run, tmp_path, extra, c, reason):
    """method auto over data runs the least-squares engine, which said converged (gtol) at the
    start c = 30, where every model term underflows (exit 0, "minimum"); from c = 0 it reaches
    the minimum and stays converged."""
    if extra:
        pytest.importorskip("dask.dataframe")
    data = tmp_path / "gaussian.csv"
    data.write_text("t,y\n" + "".join(f"{(8 - i) / 2},{GAUSSIAN_Y[i - 1]}\n"
                                      for i in range(1, 16)))
    result = run("minimize", "(a*exp(-b*(t - c)^2/2) - y)^2", "--data", str(data),
                 "--from", f"a=4,b=10,c={c}", "--json", *extra)
    out = json.loads(result.stdout)
    assert out["method"] == "least-squares" and out["reason"] == reason, result.stderr
    assert result.exit_code == (1 if reason == "flat" else 0)
    if reason == "ls-tol":
        assert out["value"] < 1e-9  # the mean of squares at MGH's minimum, 1.13e-8 / 15


@pytest.mark.parametrize("method", ["bfgs", "newton"])
def test_a_big_constant_hides_the_bowl_but_not_its_bottom(method):
    """1e20 + x^2: from x = 3 the gradient test passes at once (relative gradient 1.8e-19) and
    the value is 1e20 to float64 precision within 100 of 0: a plateau, x = 3 no minimiser.
    From x = 0 the gradient is exactly zero and the Hessian (2) positive definite: a strict
    minimum, converged."""
    obj, x0 = objective("1e20 + x^2", {"x": 3.0})
    r = minimize(obj, x0, method=method)
    assert r.reason == "flat" and r.x[0] == 3.0, r.message
    r = minimize(obj, [0.0], method=method)
    assert r.converged and r.reason == "grad-tol", r.message


def test_a_time_limit_passing_during_the_looks_keeps_the_runs_verdict():
    """The looks are evaluations under --max-time: a limit that passes during them ends the
    looks, not the command (no traceback); the run's own verdict stands, as when the limit
    passes just after a run."""
    import time

    obj, x0 = objective("1 + 1e-30*x", {"x": 0.0})
    calls = []

    def slow(x):
        calls.append(x)
        if len(calls) > 1:  # the looks, after the run's one evaluation
            time.sleep(0.3)
        return obj(x)

    r = minimize(slow, x0, method="bfgs", names=["x"], max_time=0.2)
    assert r.reason == "grad-tol" and len(calls) == 2, (r.reason, len(calls))
