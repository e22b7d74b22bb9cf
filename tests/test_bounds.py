"""`minimize --bounds` (L-BFGS-B, projected first-order steps) and `--max-time`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import adcli
from adcli.optimize import GRAD_TOL, TIME_LIMIT, Options, minimize

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run_json(run, *args: str, status: int = 0) -> dict:
    result = run("minimize", *args, "--json")
    assert result.exit_code == status, result.stderr
    out = json.loads(result.stdout)
    out["x"] = out.get("minimum", out.get("point"))  # "point" when not converged
    return out


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = x
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return float(f), g


@pytest.mark.parametrize("method", ["auto", "bfgs", "lbfgs", "gd", "momentum", "nesterov",
                                    "adam"])
def test_square_on_an_interval_stops_at_the_lower_bound(run, method):
    args = ["x^2", "--bounds", "x=1:2", "--from", "x=1.7", "--method", method, "--steps",
            "100000"]
    if method == "adam":
        args += ["--lr", "0.05"]
    out = run_json(run, *args)
    assert out["x"]["x"] == pytest.approx(1.0, abs=1e-9)
    assert out["value"] == pytest.approx(1.0, abs=1e-8)
    assert out["converged"] is True and out["reason"] == "grad-tol"
    assert out["grad_norm"] == 0.0  # projected: the gradient 2 pushes against the bound
    assert out["method"] == ("l-bfgs-b" if method in ("auto", "bfgs", "lbfgs") else method)


def test_unbounded_problem_made_bounded():
    # -x^2 has no minimum; on [-1, 3] it is at 3, and the Hessian (-2) must not be reported:
    # the only parameter sits at an active bound.
    def f(x):
        return float(-x[0] ** 2), np.array([-2 * x[0]])

    r = minimize(f, [0.5], bounds={"x0": (-1, 3)})
    assert r.reason == GRAD_TOL and r.x[0] == 3.0 and r.warnings == []


def test_negative_curvature_on_free_parameters_is_no_minimum(run):
    # y is at its bound, x is free at the top of -x^2: the run looks along x, finds lower
    # values and goes on, to "unbounded" (exit 1), or to x's own bound when it has one.
    result = run("minimize", "-x^2 + y^2", "--bounds", "y=1:2", "--from", "x=0,y=1.5", "--json")
    assert result.exit_code == 1, result.stderr
    assert json.loads(result.stdout)["reason"] == "unbounded"
    result = run("minimize", "-x^2 + y^2", "--bounds", "x=-1:1,y=1:2", "--from", "x=0,y=1.5",
                 "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0 and out["converged"], result.stdout
    assert abs(abs(out["minimum"]["x"]) - 1) < 1e-12 and out["minimum"]["y"] == 1.0


@pytest.mark.parametrize("start", [(-1.2, 0.4), (0.0, 0.0), (-1.5, -1.5), (0.5, -1.0)])
def test_rosenbrock_in_a_box_matches_scipy_lbfgsb(start):
    box = [(-1.5, 0.5), (-1.5, 0.5)]
    ours = minimize(rosenbrock, start, bounds={"x0": box[0], "x1": box[1]})
    ref = scipy_minimize(rosenbrock, np.array(start, dtype=float), jac=True,
                         method="L-BFGS-B", bounds=box, options={"gtol": 1e-12})
    assert ours.reason == GRAD_TOL and ours.method == "l-bfgs-b"
    np.testing.assert_allclose(ours.x, ref.x, atol=1e-7)
    np.testing.assert_allclose(ours.x, [0.5, 0.25], atol=1e-7)  # x on its bound, y = x^2


def test_rosenbrock_box_through_the_cli(run):
    out = run_json(run, "@" + str(SAMPLES / "rosenbrock.adc"), "--from", "x=-1.2,y=0.4",
                   "--bounds", "x=-1.5:0.5,y=-1.5:0.5")
    assert out["x"]["x"] == 0.5 and out["x"]["y"] == pytest.approx(0.25, abs=1e-9)


def test_gd_clips_each_step():
    seen = []

    def f(x):
        return float((x[0] + 5) ** 2 + (x[1] - 1) ** 2), np.array([2 * (x[0] + 5),
                                                                    2 * (x[1] - 1)])

    r = minimize(f, [0.5, 0.0], method="gd", bounds={"x0": (0, 1)}, steps=5000,
                 callback=lambda i, v, gn, x: seen.append(x.copy()))
    assert all(0 <= p[0] <= 1 for p in seen)  # never outside, not only at the end
    assert r.x[0] == 0.0 and r.x[1] == pytest.approx(1.0, abs=1e-8)
    assert r.reason == GRAD_TOL


def test_one_sided_and_expression_bounds(run):
    out = run_json(run, "(x-3)^2 + (y+2)^2", "--bounds", "x=:1,y=-pi/2:")
    assert out["x"]["x"] == pytest.approx(1.0) and out["x"]["y"] == pytest.approx(-np.pi / 2)


def test_default_start_moves_onto_the_bound_and_from_outside_is_refused(run):
    out = run_json(run, "(x-3)^2", "--bounds", "x=5:6")  # x starts at 0 -> 5
    assert out["x"]["x"] == 5.0
    result = run("minimize", "x^2", "--from", "x=7", "--bounds", "x=5:6")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: the start x=7 (--from) is outside its bounds 5:6")


def test_library_clips_a_start_outside_with_a_warning():
    r = minimize(lambda x: (float(x[0] ** 2), 2 * x), [9.0], bounds={"x0": (1, 2)})
    assert r.x[0] == 1.0
    assert r.warnings == ["the start x0=9 is outside its bounds 1:2; starting at 2"]


def test_least_squares_route_takes_bounds(run):
    data = np.genfromtxt(SAMPLES / "line.csv", delimiter=",", names=True)
    result = run("minimize", "(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"),
                 "--wrt", "w0,w1", "--bounds", "w1=0:0.5", "--json")
    assert result.exit_code == 0, result.stderr
    assert "least-squares engine" in result.stderr
    out = json.loads(result.stdout)
    assert out["method"] == "least-squares"
    assert out["minimum"]["w1"] == pytest.approx(0.5, abs=1e-12)
    # with the slope held at its bound, the intercept is the mean of y - 0.5 x
    assert out["minimum"]["w0"] == pytest.approx(float(np.mean(data["y"] - 0.5 * data["x"])),
                                                 rel=1e-9)
    assert out["grad_norm"] < 1e-8  # projected: the slope's gradient pushes on the bound


@pytest.mark.parametrize("bounds, message", [
    ("x=2:1", "need lo < hi"),
    ("x=1:1", "need lo < hi"),
    ("x=nan:1", "need lo < hi"),
    ("z=0:1", "'z': it is not a variable of the expression"),
    ("y=0:1", "'y': it is held fixed (not in --wrt)"),
    ("x=0", "is not name=lo:hi"),
    ("x=0:1,x=0:2", "gives 'x' twice"),
])
def test_bad_bounds_exit_2(run, bounds, message):
    result = run("minimize", "x^2 + y", "--wrt", "x", "--from", "y=1", "--bounds", bounds)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


def test_newton_refuses_bounds(run):
    result = run("minimize", "x^2", "--method", "newton", "--bounds", "x=1:2")
    assert result.exit_code == 2
    assert "--method newton does not take --bounds" in result.stderr


def test_wrt_help_says_it_holds_the_others_fixed(run):
    text = " ".join(run("minimize", "--help").stdout.split())
    assert "every other variable stays fixed at its --from value" in text
    assert "--bounds NAME=LO:HI" in text and "--max-time SECONDS" in text


# --------------------------------------------------------------------------- --max-time


def test_time_limit_stops_a_slow_gd_run_with_its_reason(run):
    # gd on x only descends linearly: it would run 10^8 steps.
    out = run_json(run, "x", "--method", "gd", "--steps", "100000000", "--max-time", "1",
                   status=1)
    assert out["reason"] == "time-limit" and out["converged"] is False
    assert 0 < out["iterations"] < 100000000
    # the best point is the last accepted one (the alarm may ring inside the next step)
    assert round(-out["x"]["x"] / 0.01) in (out["iterations"], out["iterations"] - 1)


def test_time_limit_message_says_how_to_lift_it(run):
    result = run("minimize", "x", "--method", "gd", "--steps", "100000000", "--max-time",
                 "1")
    assert result.exit_code == 1
    assert "the time limit of 1 s was reached (--max-time; 0 for no limit)" in result.stdout


def test_time_limit_reports_the_best_point_not_the_last():
    calls = []

    def f(x):
        calls.append(1)
        if len(calls) > 3:
            time.sleep(0.05)
        return float(x[0] ** 2), 2 * x

    # lr 1.5 overshoots: x -> -2x, so the best point is the start.
    r = minimize(f, [1.0], method="gd", steps=10**6, max_time=0.3, tol=0,
                 options=Options(lr=1.5))
    assert r.reason == TIME_LIMIT and r.x[0] == 1.0 and r.value == 1.0
    assert r.iterations >= 3


def test_time_limit_interrupts_one_long_evaluation():
    # A single evaluation longer than the limit (as compiling a huge tape is) is stopped
    # too; with nothing evaluated yet there is no point, so it is an error.
    from adcli.errors import AdcliError

    def slow(x):
        time.sleep(5)
        return float(x[0] ** 2), 2 * x

    began = time.monotonic()
    with pytest.raises(AdcliError, match="before the first evaluation"):
        minimize(slow, [1.0], max_time=0.2)
    assert time.monotonic() - began < 4


def test_time_limit_under_bounds():
    def slow(x):
        time.sleep(0.02)
        return rosenbrock(x)

    r = minimize(slow, [-1.2, 1.0], bounds={"x0": (-2, 2)}, steps=10**6, tol=0, max_time=0.1)
    assert r.reason == TIME_LIMIT and r.method == "l-bfgs-b"
    assert r.value <= rosenbrock(np.array([-1.2, 1.0]))[0]


def test_time_limit_with_minibatches(run, tmp_path):
    rows = "\n".join(f"{i},{i % 7}" for i in range(200))
    (tmp_path / "d.csv").write_text("x,y\n" + rows + "\n")
    out = run_json(run, "(a*x - y)^2 + abs(a)", "--data", str(tmp_path / "d.csv"), "--wrt", "a",
                   "--batch-size", "10", "--steps", "100000000", "--tol", "0",
                   "--max-time", "1", "--seed", "1", status=1)
    assert out["reason"] == "time-limit" and out["method"] == "adam"


def test_max_time_zero_means_no_limit_and_nan_is_refused(run):
    out = run_json(run, "x^2", "--max-time", "0")
    assert out["reason"] == "grad-tol"
    result = run("minimize", "x^2", "--max-time", "nan")
    assert result.exit_code == 2 and result.stderr.startswith("Error:")


def test_fit_max_time(run):
    """A limit over before the first evaluation is an error (exit 2), as in minimize; a limit
    reached by the engine reports the best point so far, not converged."""
    result = run("fit", "y ~ b1 / (1 + exp(b2 - b3*x))^(1/b4)", "--data",
                 str(SAMPLES / "rat43.csv"), "--from", "b1=100,b2=10,b3=1,b4=1",
                 "--max-time", "0.000001", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: the time limit of 1e-06 s was reached")
    x = np.linspace(1.0, 5.0, 20)
    out = adcli.fit("y ~ a*exp(-b*x)", {"x": x, "y": 2 * np.exp(-x)}, max_time=1e-9)
    assert out.converged is False and "time limit" in out.reason


def test_installed_script_time_limit_exit_status():
    exe = Path(sys.executable).with_name("adcli")
    if not exe.exists():
        pytest.skip("the adcli script is not installed next to this Python")
    proc = subprocess.run([str(exe), "minimize", "x", "--method", "gd", "--steps", "100000000",
                           "--max-time", "1", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and json.loads(proc.stdout)["reason"] == "time-limit"
    assert "Traceback" not in proc.stderr


def test_ctrl_c_under_bounds_reports_the_best_point():
    def stop_at_3(i, value, gnorm, x):
        if i == 3:
            raise KeyboardInterrupt

    r = minimize(rosenbrock, [-1.2, 1.0], bounds={"x0": (-2, 2)}, callback=stop_at_3)
    assert r.reason == "interrupted" and r.method == "l-bfgs-b"
    assert r.value < rosenbrock(np.array([-1.2, 1.0]))[0]


def test_alarm_handler_is_restored():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    minimize(rosenbrock, [-1.2, 1.0], max_time=30)
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left running


def test_time_limit_covers_reading_and_building_the_tape(run):
    result = run("minimize", "x^2", "--max-time", "0.000001")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: the time limit of 1e-06 s was reached while reading")
