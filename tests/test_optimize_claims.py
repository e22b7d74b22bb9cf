"""What `minimize` claims at the end of a run is true: a singular minimum reached to float64's
accuracy is converged, a stall on a real slope is not (adcli.optimize.checks.rounding_level)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import adcli
from adcli.optimize import build_objective, minimize
from adcli.optimize.checks import NEWTON_NOISE, hessian_eigen, rounding_level

POWELL_SINGULAR = "(x1 + 10*x2)^2 + 5*(x3 - x4)^2 + (x2 - 2*x3)^4 + 10*(x1 - x4)^4"
POWELL_X0 = {"x1": 3.0, "x2": -1.0, "x3": 0.0, "x4": 1.0}


def objective(expr: str, start: dict):
    return build_objective(adcli.parse(expr).tape(set(start)), start)


@pytest.mark.parametrize("scale", [1, 10, 100])
def test_powell_singular_with_bfgs_is_a_converged_singular_minimum(scale):
    """The minimum x* = 0 is quartic along two directions: BFGS stops about 1e-9 from it at
    f ~ 1e-34, where the gradient is rounding noise but along the Hessian's null space, whose
    slope is real and halves within 1e-8 of the point. It said "no-progress" (exit 1)."""
    obj, x0 = objective(POWELL_SINGULAR, {k: scale * v for k, v in POWELL_X0.items()})
    r = minimize(obj, x0, method="bfgs")
    assert r.converged and r.reason == "precision", r.message
    assert r.value < 1e-30 and float(np.max(np.abs(r.x))) < 1e-7
    assert "Hessian is 0 to float64 precision" in r.message
    assert "singular minimum" in r.message


def test_powell_singular_from_the_command_line_exits_0(run):
    start = ",".join(f"{k}={v:g}" for k, v in POWELL_X0.items())
    result = run("minimize", POWELL_SINGULAR, "--from", start, "--method", "bfgs", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["converged"] is True and out["reason"] == "precision" and "minimum" in out


def _probe(expr: str, point: dict):
    obj, x = objective(expr, point)
    f, g = obj(x)
    return rounding_level(x, np.asarray(g), obj, lambda z: z, lambda z, gz: gz,
                          lambda: hessian_eigen(obj, x))


def test_the_root_along_a_singular_direction_must_be_within_reach():
    """1e12*y^2 + (x - c)^4 at (0, 1e-27): the gradient is noise along the stiff y and a
    real slope 4c^3 along x, where the curvature 12c^2 is lost in rounding against 2e12. With
    the root c = 1e-6 away the slope halves within reach: a singular minimum to float64's
    accuracy. With c = 1e-3 (beyond eps^(1/3) of the point's size) it is a real stall."""
    near = _probe("1e12*y^2 + (x - 1e-6)^4", {"x": 0.0, "y": 1e-27})
    assert near is not None
    change, root = near
    assert change >= 0.5 and 0 < root <= NEWTON_NOISE
    assert 0.2e-6 <= root <= 4e-6  # the slope 4(c - h)^3 halves at h ~ 0.2c
    assert _probe("1e12*y^2 + (x - 1e-3)^4", {"x": 0.0, "y": 1e-27}) is None


def test_a_resolved_hessian_needs_no_look_along_it():
    level = _probe("(x - 1e-20)^2 + 1e12*y^2", {"x": 0.0, "y": 1e-27})
    assert level is not None and level[1] == 0.0


@pytest.mark.parametrize("method", ["bfgs", "lbfgs"])
def test_the_valley_running_off_is_still_no_progress(method):
    """Powell's badly scaled function from 100*x0: the valley floor's minimum is 90 away, far
    beyond the look's reach, so the stall stays "no-progress"."""
    expr = "(1e4*x1*x2 - 1)^2 + (exp(-x1) + exp(-x2) - 1.0001)^2"
    obj, x0 = objective(expr, {"x1": 0.0, "x2": 100.0})
    r = minimize(obj, x0, method=method)
    assert not r.converged and r.reason == "no-progress" and r.value > 1e-9


SUM_OF_SQUARES = "EXPR is a sum of squares of residuals"


@pytest.mark.parametrize("expr,warned", [
    ("(a + b*x - y)^2/2", True),
    ("0.5*(a + b*x - y)^2", True),
    ("(a + b*x - y)^2*w", True),
    ("w*(a + b*x - y)^2/2 + 3", True),
    ("(a - y)^2 + (b*x - y)^2", True),
    ("(a + b*x - y)^4", False),
    ("(y - a - b*x)^2/(2*s^2) + log(s)", False),  # s is estimated: a likelihood
    ("softplus(a + b*x) - y*(a + b*x)", False),
])
def test_stderr_warns_on_any_sum_of_squares(run, tmp_path, expr, warned):
    data = tmp_path / "d.csv"
    data.write_text("x,y,w\n1,1.1,1\n2,1.9,2\n3,3.2,1\n4,3.9,2\n5,5.2,1\n")
    likelihood = "s^2" in expr
    result = run("minimize", expr, "--data", str(data), "--reduce", "sum", "--wrt",
                 "a,b,s" if likelihood else "a,b",
                 "--from", "a=0.1,b=1,s=0.2" if likelihood else "a=0.1,b=1",
                 "--stderr", "hessian", "--json")
    assert "Traceback" not in result.stderr
    assert (SUM_OF_SQUARES in result.stderr) is warned, result.stderr
    if warned:
        assert "use adcli fit" in result.stderr
        assert "is the square of a residual" not in result.stderr  # one warning, not two


def test_the_plain_square_keeps_its_own_warning(run):
    from pathlib import Path

    line = Path(__file__).resolve().parent.parent / "samples" / "line.csv"
    result = run("minimize", "(w0 + w1*x - y)^2", "--data", str(line), "--reduce", "sum",
                 "--stderr", "hessian")
    assert result.exit_code == 0
    assert "EXPR is the square of a residual" in result.stderr
    assert SUM_OF_SQUARES not in result.stderr


@pytest.mark.parametrize("expr,start,method", [
    ("abs(x - 1) + abs(y + 2)", {"x": 5.0, "y": 5.0}, "newton"),
    ("abs(x^2 - 2) + (y - 1)^2", {"x": 3.0, "y": 0.0}, "bfgs"),
    ("hypot(x - 1, y - 2)", {"x": 4.0, "y": -3.0}, "newton"),
])
def test_a_stop_at_a_minimum_on_a_kink_does_not_say_not_a_minimum(expr, start, method):
    """The run stops at the minimum itself (a kink), where the gradient does not vanish: not
    converged, and the message says it may be a minimum, not "not a minimum" (it said so)."""
    obj, x0 = objective(expr, start)
    r = minimize(obj, x0, method=method)
    assert r.value < 1e-12  # the minimum 0 ...
    assert not r.converged and r.reason == "no-progress"  # ... which the gradient cannot show
    assert "may be a minimum on the kink" in r.message and "not a minimum" not in r.message


def test_a_stall_on_a_smooth_slope_still_says_not_a_minimum():
    obj, x0 = objective("10*abs(x^2 - y) + (1 - x)^2", {"x": 3.0, "y": 2.0})
    r = minimize(obj, x0, method="bfgs")
    assert not r.converged and r.value > 0.2 and "point stuck on it" in r.message


@pytest.mark.parametrize("method", ["gd", "momentum", "nesterov"])
def test_the_edge_of_a_jump_is_not_converged(method):
    """step(x) + x^2 has its minimum 0 at x = 0 (step(0) = 0) and the value 1 just right of
    it: gd creeps to x = 1e-11 at f = 1, where the gradient vanishes and nothing shows the
    lower side. It said "converged"; a look across finds the lower value."""
    obj, x0 = objective("step(x) + x^2 + y^2", {"x": 2.0, "y": 1.0})
    r = minimize(obj, x0, method=method, steps=5000)
    assert not (r.converged and r.value > 0.5), (r.reason, r.value, r.message)
    if r.reason == "no-progress":
        assert "lower side of a jump" in r.message and "step" in r.message


def test_a_minimum_inside_a_piece_of_a_jumping_expression_converges():
    """The look across jumps finds nothing lower near a minimum inside one piece."""
    obj, x0 = objective("step(x - 5) + (x - 1)^2 + y^2", {"x": 3.0, "y": 1.0})
    r = minimize(obj, x0, method="gd", steps=5000)
    assert r.converged and abs(r.x[0] - 1) < 1e-6


def test_a_kink_far_away_does_not_hide_a_smooth_minimum():
    """step(x - 5) jumps at x = 5; gd reaches the minimum 0 at x = 1, where the relative
    gradient never gets small (f* = 0) and only the rounding probe can say "stationary". It
    was skipped on any tape with a kink ("no-progress", exit 1); now only a probe across one
    (the objective's branches differ) is distrusted."""
    obj, x0 = objective("step(x - 5) + (x - 1)^2 + y^2", {"x": 3.0, "y": 1.0})
    r = minimize(obj, x0, method="gd", steps=5000)
    assert r.converged and r.reason == "precision" and abs(r.x[0] - 1) < 1e-6
    assert not np.array_equal(obj.branches(np.array([4.0, 0.0])),
                              obj.branches(np.array([6.0, 0.0])))
    assert np.array_equal(obj.branches(np.array([1.0, 0.0])), obj.branches(r.x))


@pytest.mark.parametrize("method", ["bfgs", "newton", "gd"])
@pytest.mark.parametrize("expr", ["abs(x) - abs(y)", "relu(x) - relu(y) + relu(-y)/2"])
def test_a_zero_gradient_on_a_kink_is_no_minimum_by_itself(expr, method):
    """At (0, 0) abs'(0) = relu'(0) = 0 make the gradient exactly zero and the Hessian zero:
    every run said "converged" there, though -|y| falls without bound. The look along every
    parameter finds the way down."""
    obj, x0 = objective(expr, {"x": 0.0, "y": 0.0})
    r = minimize(obj, x0, method=method)
    assert not r.converged and r.value < 0, (r.reason, r.message)


def test_a_minimum_on_a_kink_found_exactly_stays_converged():
    obj, x0 = objective("abs(x - 1) + abs(y + 2)", {"x": 1.0, "y": -2.0})
    r = minimize(obj, x0, method="bfgs")
    assert r.converged and r.value == 0.0


def test_the_looks_around_a_point_go_both_ways_along_each_coordinate_within_the_bounds():
    # across_jump and flat_around judge a point by these looks: none may be missed or repeated
    from adcli.optimize.checks import ESCAPE_STEP, _look_step, _looks

    x = np.array([2.0, -0.5])
    h = _look_step(x)
    assert h == ESCAPE_STEP * 2.0
    got = [p.tolist() for p in _looks(x, h, None)]
    assert got == [[2.0 - h, -0.5], [2.0 + h, -0.5], [2.0, -0.5 - h], [2.0, -0.5 + h]]
    # a bound at x[0]'s value: its downward look projects back onto x and is skipped
    clip = [p.tolist() for p in _looks(x, h, lambda z: np.maximum(z, [2.0, -10.0]))]
    assert clip == got[1:]
    assert x.tolist() == [2.0, -0.5]  # the looks are copies
