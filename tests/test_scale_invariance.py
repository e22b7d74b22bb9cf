"""The default stopping of minimize and of the least-squares engine does not depend on the
scale of the objective: multiplying it by 2^-40 or 2^40 (exact in floating
point) must give the very same iterations, and by 1e-12 or 1e12 the same minimum; a problem
whose values are tiny at the start (Lanczos) must not look converged there."""

from __future__ import annotations

import numpy as np
import pytest

import adcli
from adcli.io.data import from_columns
from adcli.optimize import build_objective, minimize

ROSENBROCK = "(1-x)^2 + 100*(y-x^2)^2"


def run(expr: str, method: str, data=None, start=None):
    start = start if start is not None else {"x": -1.2, "y": 1.0}
    tape = adcli.parse(expr).tape(set(start) | (set(data.names) if data else set()))
    objective, x0 = build_objective(tape, start, None, data)
    return minimize(objective, x0, method=method, steps=3000)


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton"])
def test_minimize_default_stopping_is_scale_free(method):
    base = run(ROSENBROCK, method)
    assert base.converged and np.allclose(base.x, [1, 1], atol=1e-6)
    for k in (2.0 ** -40, 2.0 ** 40):
        scaled = run(f"{k!r}*({ROSENBROCK})", method)
        assert scaled.reason == base.reason and scaled.iterations == base.iterations
        assert np.array_equal(scaled.x, base.x)
    for k in (1e-12, 1e12):
        scaled = run(f"{k!r}*({ROSENBROCK})", method)
        assert scaled.converged
        assert np.allclose(scaled.x, base.x, rtol=1e-6)
        assert abs(scaled.iterations - base.iterations) <= 3


def test_explicit_tol_stays_absolute():
    tape = adcli.parse(f"1e-12*({ROSENBROCK})").tape()
    objective, x0 = build_objective(tape, {"x": -1.2, "y": 1.0})
    r = minimize(objective, x0, tol=1e-8)  # --tol as documented: the gradient's 2-norm
    assert r.converged and r.iterations == 0


@pytest.mark.parametrize("method", ["bfgs", "lbfgs"])
def test_tiny_objective_does_not_converge_at_its_start(method):
    """A mean of squares of ~1e-18 at the start (tiny residuals, as in Lanczos, in a tiny
    unit): its gradient norm is ~1e-16, so the old absolute test (below 1e-8) stopped at
    iteration 0."""
    x = np.linspace(0.0, 1.15, 24)
    y = 0.0951 * np.exp(-x) + 0.8607 * np.exp(-3 * x)
    data = from_columns({"x": x, "y": y})
    r = run("1e-14*(y - b1*exp(-b2*x) - b3*exp(-b4*x))^2", method, data,
            {"b1": 0.1, "b2": 1.1, "b3": 0.85, "b4": 3.1})
    assert r.converged and r.iterations > 5
    assert r.minimum["b2"] == pytest.approx(1.0, rel=1e-4)
    assert r.minimum["b4"] == pytest.approx(3.0, rel=1e-4)


def test_least_squares_engine_is_scale_free():
    x = np.linspace(0.0, 4.0, 50)
    y = 3.0 * np.exp(-0.7 * x) + 0.4 + 0.01 * np.sin(7 * x)
    base = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1})
    for k in (2.0 ** -40, 2.0 ** 40):
        scaled = adcli.fit(f"{k!r}*y ~ {k!r}*(a*exp(-b*x) + c)", {"x": x, "y": y},
                           start={"a": 1, "b": 1})
        assert scaled.iterations == base.iterations and scaled.reason == base.reason
        assert scaled.parameters == base.parameters


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "newton"])
def test_far_start_stops_at_the_same_point_at_every_scale(method):
    """Rosenbrock from 100*x0 under the local stopping rule (issue 19): the same iterations
    for 2^-40 and 2^40, the same minimum for 1e-12 and 1e12."""
    start = {"x": -120.0, "y": 100.0}
    base = run(ROSENBROCK, method, start=start)
    assert base.converged and np.allclose(base.x, [1, 1], atol=1e-8)
    for k in (2.0 ** -40, 2.0 ** 40):
        scaled = run(f"{k!r}*({ROSENBROCK})", method, start=start)
        assert scaled.reason == base.reason and scaled.iterations == base.iterations
        assert np.array_equal(scaled.x, base.x)
    for k in (1e-12, 1e12):
        scaled = run(f"{k!r}*({ROSENBROCK})", method, start=start)
        assert scaled.converged and np.allclose(scaled.x, [1, 1], atol=1e-8)

