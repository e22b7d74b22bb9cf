"""`adcli minimize` through click's CliRunner (and once as the installed script)."""

from __future__ import annotations

import builtins
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adcli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FIELDS = ["minimum", "value", "grad_norm", "iterations", "evaluations", "converged", "reason",
          "method"]


def minimize_json(run, *args: str, status: int = 0) -> dict:
    result = run("minimize", *args, "--json")
    assert result.exit_code == status, result.stderr
    out = json.loads(result.stdout)
    # A converged run's point is a "minimum"; a diverged or stopped run's last one is "point".
    assert list(out) == (FIELDS if out["converged"] else ["point", *FIELDS[1:]])
    return out


def test_bowl_gd(run):
    out = minimize_json(run, "x^2 + y^2 + 400*x + 8*y", "--from", "x=0,y=0", "--method", "gd",
                        "--lr", "0.1")
    assert abs(out["minimum"]["x"] + 200) < 1e-6 and abs(out["minimum"]["y"] + 4) < 1e-6
    assert out["value"] == pytest.approx(-40016, abs=1e-6)
    assert out["converged"] is True and out["reason"] == "grad-tol" and out["method"] == "gd"


def test_rosenbrock_default_method(run):
    out = minimize_json(run, "(1-x)^2 + 100*(y-x^2)^2", "--from", "x=-1.2,y=1")
    assert abs(out["minimum"]["x"] - 1) < 1e-6 and abs(out["minimum"]["y"] - 1) < 1e-6
    assert out["converged"] is True and out["evaluations"] <= 60


def test_line_csv_fit_equals_lstsq(run):
    out = minimize_json(run, "(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"))
    d = np.loadtxt(SAMPLES / "line.csv", delimiter=",", skiprows=1)
    ref = np.linalg.lstsq(np.column_stack([np.ones(len(d)), d[:, 0]]), d[:, 1], rcond=None)[0]
    assert abs(out["minimum"]["w0"] - ref[0]) < 1e-6
    assert abs(out["minimum"]["w1"] - ref[1]) < 1e-6
    assert out["converged"] is True


def test_reduce_sum_has_the_same_minimum(run):
    mean = minimize_json(run, "(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"))
    total = minimize_json(run, "(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"),
                          "--reduce", "sum")
    assert total["value"] == pytest.approx(40 * mean["value"], rel=1e-9)
    assert total["minimum"] == pytest.approx(mean["minimum"], abs=1e-6)


def test_divergence_exit_status_1_with_last_finite_point(run):
    out = minimize_json(run, "x^2", "--from", "x=1", "--method", "gd", "--lr", "10", status=1)
    assert out["reason"] == "diverged" and out["converged"] is False
    x = out["point"]["x"]
    assert isinstance(x, float) and np.isfinite(x) and abs(x) > 1e150
    assert isinstance(out["value"], float) and out["value"] == pytest.approx(x * x)
    human = run("minimize", "x^2", "--from", "x=1", "--method", "gd", "--lr", "10")
    assert human.exit_code == 1 and "diverged" in human.stdout and "last finite" in human.stdout


def test_human_output(run):
    result = run("minimize", "@" + str(SAMPLES / "booth.adc"))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("converged (grad-tol)")
    point = {p[0]: float(p[1]) for p in (line.split() for line in lines[2:4])}
    assert lines[1] == "minimum" and point == pytest.approx({"x": 1.0, "y": 3.0}, abs=1e-6)
    assert "method bfgs" in result.stdout
    assert "\x1b[" not in result.stdout and "━" not in result.stderr  # no colour, no progress


def test_trace_file(run, tmp_path):
    trace = tmp_path / "t.csv"
    out = minimize_json(run, "(x-3)^2", "--method", "gd", "--lr", "0.25", "--trace", str(trace))
    rows = list(csv.reader(trace.open()))
    assert rows[0] == ["iteration", "value", "grad_norm", "x"]
    assert len(rows) == out["iterations"] + 2
    assert [float(v) for v in rows[1]] == [0, 9.0, 6.0, 0.0]
    assert [float(v) for v in rows[2]] == [1, 2.25, 3.0, 1.5]  # x -= 0.25 * 2(x - 3)


def test_wrt_and_fixed_values(run):
    out = minimize_json(run, "(x - a)^2 + (y - b)^2", "--wrt", "x", "--from", "a=2,b=5,y=1")
    assert list(out["minimum"]) == ["x"] and out["minimum"]["x"] == pytest.approx(2)
    assert out["value"] == pytest.approx(16)


def test_moons_network_trains(run):
    """micrograd's demo from the command line: a tanh network separating two half-moons."""
    out = minimize_json(run, "@" + str(SAMPLES / "moons_net.adc"), "--data",
                        str(SAMPLES / "moons.csv"), "--init-scale", "1", "--seed", "0")
    assert out["converged"] is True and out["method"] == "bfgs"
    assert len(out["minimum"]) == 33
    # Classify with the trained parameters: the program with `score` as its output.
    text = (SAMPLES / "moons_net.adc").read_text().rstrip().rsplit("\n", 1)[0] + "\nscore\n"
    d = np.loadtxt(SAMPLES / "moons.csv", delimiter=",", skiprows=1)
    score = adcli.parse(text).eval({**out["minimum"], "x1": d[:, 0], "x2": d[:, 1]})
    assert np.mean(np.sign(score) == d[:, 2]) == 1.0


def test_minibatch_adam_is_reproducible(run):
    args = ["(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"), "--batch-size", "8",
            "--seed", "4", "--lr", "0.05", "--steps", "400"]
    a, b = minimize_json(run, *args), minimize_json(run, *args)
    assert a == b and a["method"] == "adam" and a["iterations"] == 400


def test_plot_png(run, tmp_path):
    import matplotlib  # noqa: F401 - a test extra: required, so a missing one fails
    path = tmp_path / "rb.png"
    result = run("minimize", "@" + str(SAMPLES / "rosenbrock.adc"), "--from", "x=-1.2,y=1",
                 "--plot", str(path))
    assert result.exit_code == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stderr.strip() == f"plot written to {path}"


def test_plot_without_matplotlib_says_how_to_install(run, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = run("minimize", "x^2", "--plot", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert "matplotlib" in result.stderr and "adcli[plot]" in result.stderr
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("args, message", [
    (["(w0 + w1*x - y)^2", "--data", "no/such.csv"], "does not exist"),
    (["(w0 + w1*x - y)^2 + z", "--data", "LINE", "--wrt", "w0,w1"], "'z' is neither"),
    (["(w0 + w1*x - y)^2", "--data", "LINE", "--from", "x=1"], "column of the data"),
    (["(w0 + w1*x - y)^2", "--data", "LINE", "--method", "bfgs", "--batch-size", "4"],
     "cannot use --batch-size"),
    (["x^2", "--wrt", "q"], "'q' is not a variable"),
    (["x^2", "--from", "x="], "no value"),
    (["x^2", "--plot", "out.txt"], ".png, .svg or .pdf"),
    (["x^", "--from", "x=1"], ""),
])
def test_bad_input_is_one_error_line_exit_2(run, args, message):
    args = [str(SAMPLES / "line.csv") if a == "LINE" else a for a in args]
    result = run("minimize", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_non_numeric_cell_names_line_and_column(run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n2,3\n3,four\n")
    result = run("minimize", "(w0 + w1*x - y)^2", "--data", str(bad))
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("line 4, column 2 ('y'): 'four' is not a number")


def test_warnings_for_unused_names_and_ignored_lr(run):
    result = run("minimize", "x^2", "--from", "q=1", "--lr", "0.5")
    assert result.exit_code == 0
    assert "'q' is not a variable" in result.stderr and "--lr is ignored by bfgs" in result.stderr


def test_help_has_an_example(run):
    result = run("minimize", "--help")
    assert result.exit_code == 0 and "adcli minimize \"(1-x)^2" in result.stdout


def test_installed_script_exit_status_on_divergence():
    exe = Path(sys.executable).with_name("adcli")
    if not exe.exists():
        pytest.skip("the adcli script is not installed next to this Python")
    proc = subprocess.run([str(exe), "minimize", "x^2", "--from", "x=1", "--method", "gd",
                           "--lr", "10", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["reason"] == "diverged"
    assert proc.stderr == ""  # no progress display into a pipe


@pytest.mark.parametrize("lr", ["0", "-1"])
def test_learning_rate_must_be_positive(run, lr):
    result = run("minimize", "x^2", "--from", "x=1", "--method", "gd", "--lr", lr)
    assert result.exit_code == 2 and "--lr" in result.stderr and "x>0" in result.stderr
    assert result.stdout == ""
