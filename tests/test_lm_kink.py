"""A least-squares stop at a kink of the sum of squares is not convergence.

Levenberg-Marquardt on a model with abs() zig-zags across the kink of the valley b = a^2, its
steps shrinking until they are below xtol: MINPACK's tests call that converged, far from the
minimum (a = b = 1). adcli.regression.lm.at_kink tells it from a smooth minimum by what the
linear model still promises against the rounding level of the sum of squares."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adcli
from adcli.regression.lm import EPS, KINK_FACTOR, RESOLVED, at_kink

ROOT = Path(__file__).resolve().parent.parent
#: a residual per row: row 1 is 10*|b - a^2| + 1, row 2 is 1 - a; the sum of squares has its
#: minimum 1 at a = b = 1 and a kink all along the valley b = a^2 (where row 1 is 1, not 0)
VALLEY = "z ~ c1*(10*abs(b - a^2) + 1) + c2*(1 - a)"
ROWS = {"c1": np.array([1.0, 0.0]), "c2": np.array([0.0, 1.0]), "z": np.zeros(2)}


@pytest.fixture
def valley_csv(tmp_path: Path) -> Path:
    path = tmp_path / "valley.csv"
    path.write_text("c1,c2,z\n1,0,0\n0,1,0\n")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.parametrize("start", [{"a": -2.0, "b": 2.0}, {"a": 3.0, "b": 2.0}])
def test_a_fit_stuck_on_a_kink_is_not_converged(start):
    result = adcli.fit(VALLEY, ROWS, start=start)
    assert not result.converged
    assert "not smooth" in result.reason and "kink" in result.reason
    a, b = result.parameters["a"], result.parameters["b"]
    assert abs(b - a * a) < 1e-6  # it is on the kink ...
    assert abs(a - 1.0) > 1e-3 and result.rss > 1.0  # ... and not at the minimum


def test_minimize_on_the_kink_says_no_progress_and_exits_1(run, valley_csv):
    expr = "(c1*(10*abs(b - a^2) + 1) + c2*(1 - a))^2"
    result = run("minimize", expr, "--data", str(valley_csv), "--from", "a=-2,b=2", "--json")
    assert result.exit_code == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["converged"] is False and out["reason"] == "no-progress"
    assert "minimum" not in out and abs(out["point"]["a"] + 1.25) < 0.1
    assert out["method"] == "least-squares"
    plain = run("minimize", expr, "--data", str(valley_csv), "--from", "a=-2,b=2")
    assert plain.exit_code == 1
    first = plain.stdout.splitlines()[0]
    assert first.startswith("not converged (no-progress): the steps stopped where the sum of "
                            "squares is not smooth"), first
    assert "Traceback" not in plain.stderr


def test_fit_command_on_the_kink_exits_1(run, valley_csv):
    result = run("fit", VALLEY, "--data", str(valley_csv), "--from", "a=-2,b=2")
    assert result.exit_code == 1
    assert result.stdout.startswith("not converged: the steps stopped where the sum of squares "
                                    "is not smooth")


def test_the_kink_is_found_the_same_way_over_partitions(tmp_path):
    """The test reads only numbers the engine computes the same way over partitions."""
    pytest.importorskip("dask")
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "p1.csv").write_text("c1,c2,z\n1,0,0\n")
    (parts / "p2.csv").write_text("c1,c2,z\n0,1,0\n")
    (tmp_path / "all.csv").write_text("c1,c2,z\n1,0,0\n0,1,0\n")
    args = ["fit", VALLEY, "--from", "a=-2,b=2", "--json"]
    memory = _cli(*args, "--data", str(tmp_path / "all.csv"))
    dask = _cli(*args, "--data", str(parts / "*.csv"), "--scheduler", "synchronous")
    assert memory.returncode == dask.returncode == 1, (memory.stderr, dask.stderr)
    one, two = json.loads(memory.stdout), json.loads(dask.stdout)
    assert one["converged"] is two["converged"] is False
    assert one["reason"] == two["reason"] and one["parameters"] == two["parameters"]


def test_smooth_fits_near_kinks_still_converge():
    """A kink the minimum does not sit on changes nothing: the V of |x - c| between data
    points, a relu that is off at the minimum, an abs of a residual (|r|^2 = r^2 is smooth),
    and a minimum with a direction the data do not resolve (a*b)."""
    rng = np.random.default_rng(0)
    x = np.linspace(-2, 2, 41)
    noise = 0.01 * rng.standard_normal(41)
    # (formula, start, the model at the parameters that made the data)
    cases = [("y ~ a*abs(x - c) + b", {"a": 1, "b": 0, "c": -1.5}, 2 * np.abs(x - 0.33) + 1),
             ("y ~ a*x + relu(c)", {"a": 1, "c": 1}, -0.5 * x),  # c <= 0: flat, relu off
             ("y ~ abs(a*x + b)", {"a": 1, "b": 0.5}, np.abs(2 * x - 1)),
             ("y ~ a*b*exp(-k*x) + c", {"a": 1, "b": 1, "k": 1, "c": 0},
              3 * np.exp(-0.5 * x))]
    for formula, start, truth in cases:
        y = truth + noise - (0.5 if "relu" in formula else 0.0)  # relu(c) cannot reach -0.5
        result = adcli.fit(formula, {"x": x, "y": y}, start=start)
        assert result.converged, (formula, result.reason)
        # a minimum is at least as good as the parameters that made the data
        assert result.rss <= float(np.sum((y - truth) ** 2)) * (1 + 1e-9), formula

def test_a_v_shaped_minimum_on_a_kink_is_reported_as_a_kink():
    """abs(c) + 1 wants to be 0 here: the best c is 0, exactly on the kink. The engine cannot
    tell a minimum on a kink from a point on a kink, and says so rather than "converged"."""
    x = np.linspace(1, 3, 20)
    result = adcli.fit("y ~ a*x + abs(c) + 1", {"x": x, "y": -0.5 * x}, start={"a": 1, "c": 1})
    assert not result.converged and "may be a minimum or not" in result.reason
    assert abs(result.parameters["c"]) < 1e-12


def test_at_kink_compares_the_model_promise_with_the_rounding_level():
    # A linear least-squares problem at its solution: J^T r = 0 exactly in the data, so the
    # promise is rounding (about eps^2 |r|^2), far below eps*cost.
    rng = np.random.default_rng(1)
    jac = rng.standard_normal((30, 3))
    y = rng.standard_normal(30)
    coef = np.linalg.lstsq(jac, y, rcond=None)[0]
    r = jac @ coef - y
    cost = 0.5 * float(r @ r)
    assert not at_kink(jac, r, cost, [])
    # The same Jacobian with the residual moved along a column: the model promises a decrease
    # of about 0.5*|0.1*J_0|^2, a multiple of eps*cost no rounding explains.
    r2 = r + 0.1 * jac[:, 0]
    cost2 = 0.5 * float(r2 @ r2)
    assert at_kink(jac, r2, cost2, [])
    # ... unless the failed trials measured changes that large: then it is within the noise
    promised = 0.5 * float(np.linalg.norm(np.linalg.qr(jac)[0].T @ r2) ** 2)
    assert not at_kink(jac, r2, cost2, [promised / KINK_FACTOR * 1.01])
    assert at_kink(jac, r2, cost2, [promised / KINK_FACTOR * 0.99])
    # A direction the Jacobian does not resolve promises nothing: at the minimum of a model with
    # a*b (or nearly so), the residual's component along the image of the near-null direction
    # is what the data leave over, however large
    f = rng.standard_normal(30)
    g = rng.standard_normal(30)
    g -= (g @ f) / (f @ f) * f
    deficient = np.column_stack([f, f + RESOLVED / 100 * g])
    r3 = 5.0 * g / np.linalg.norm(g)  # orthogonal to f: J^T r is 1e-10 of |J||r|
    cost3 = 0.5 * float(r3 @ r3)
    u = np.linalg.svd(deficient, full_matrices=False)[0]
    assert 0.5 * float((u.T @ r3) @ (u.T @ r3)) > 0.9 * cost3  # all of it, unresolved
    assert not at_kink(deficient, r3, cost3, [])
    assert EPS * cost3 > 0 and math.isfinite(cost3)

def test_at_kink_needs_a_finite_jacobian():
    r = np.ones(3)
    assert not at_kink(np.full((3, 2), np.nan), r, 1.5, [])
    assert not at_kink(np.zeros((3, 2)), r, 1.5, [])


def test_a_fit_that_did_not_converge_says_its_standard_errors_are_not_at_a_minimum(run):
    """Three evaluations stop the exponential fit far from its minimum: the table still has
    standard errors, t and p values there (p = 1e-28), so a warning says where they are."""
    sample = str(ROOT / "samples" / "exp_decay.csv")
    result = run("fit", "y ~ a*exp(-b*x) + c", "--data", sample, "--from", "a=1,b=1",
                 "--max-evaluations", "3")
    assert result.exit_code == 1 and result.stdout.startswith("not converged")
    assert result.stderr.startswith("Warning: the fit did not converge: its standard errors, "
                                    "t and p values and intervals are at its last point, not "
                                    "at a minimum")
    done = run("fit", "y ~ a*exp(-b*x) + c", "--data", sample, "--from", "a=1,b=1")
    assert done.exit_code == 0 and "did not converge" not in done.stderr
    kink = adcli.fit(VALLEY, {k: np.concatenate([v, v]) for k, v in ROWS.items()},
                     start={"a": -2.0, "b": 2.0})
    assert not kink.converged and kink.warnings[0].startswith("the fit did not converge")


def test_under_bounds_the_kink_is_found_too():
    """With a bound scipy's trf runs; the same test at its stop, over the free parameters."""
    result = adcli.fit(VALLEY, ROWS, start={"a": -2.0, "b": 2.0}, bounds={"a": (-10.0, 10.0)})
    assert result.method.endswith("(trf, exact jacobian)")
    assert not result.converged and "not smooth" in result.reason
    # a smooth fit held at a bound is a minimum on the bound: converged
    x = np.linspace(0, 4, 30)
    y = 2.0 * np.exp(-0.8 * x) + 0.5
    held = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1.0, "b": 0.3},
                     bounds={"b": (0.0, 0.5)})
    assert held.converged and held.parameters["b"] == pytest.approx(0.5)
