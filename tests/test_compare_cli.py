"""``adcli compare-modes`` through the CLI (click's CliRunner)."""

from __future__ import annotations

import json

import pytest


def test_must_show_json(run):
    result = run("compare-modes", "3*x^2 + x*y + 5*y^2", "--at", "x=2,y=3", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["value"] == 63.0
    for mode in ("forward", "reverse", "numeric"):
        g = data[mode]["gradient"]
        assert g["x"] == pytest.approx(15, abs=1e-9) and g["y"] == pytest.approx(32, abs=1e-9)
        assert data[mode]["seconds"] > 0 and data[mode]["runs"] >= 1
    assert data["forward"]["passes"] == 2
    assert (data["forward"]["forward_passes"], data["forward"]["backward_passes"]) == (2, 0)
    assert (data["reverse"]["forward_passes"], data["reverse"]["backward_passes"]) == (1, 1)
    assert data["numeric"]["forward_passes"] == 4
    assert data["forward"]["ops"] == 2 * data["reverse"]["ops"] == 62
    assert data["max_abs_diff"] <= 1e-9 and data["forward_reverse_max_abs_diff"] == 0
    assert data["warnings"] == [] and "directional" not in data


def test_human_output_has_both_tables_and_the_reading(run):
    result = run("compare-modes", "sin(x)*y", "--at", "x=1,y=2", "--repeat", "2")
    assert result.exit_code == 0
    out = result.stdout
    for text in ("gradient", "forward", "reverse", "numeric", "passes over the tape",
                 "1 forward + 1 backward", "operations", "one pass per input"):
        assert text in out, text
    assert "\x1b[" not in out  # no colours into a pipe


def test_direction(run):
    result = run("compare-modes", "3*x^2 + x*y + 5*y^2", "--at", "x=2,y=3",
                 "--direction", "x=1,y=-1", "--json")
    d = json.loads(result.stdout)["directional"]
    assert d["forward"] == d["reverse"] == -17.0 and d["forward_passes"] == 1
    assert d["numeric"] == pytest.approx(-17.0, rel=1e-9)
    human = run("compare-modes", "x*y", "--at", "x=2,y=3", "--direction", "y=1")
    assert "directional derivative" in human.stdout and "2.0" in human.stdout


def test_nonfinite_is_a_result_with_warnings(run):
    result = run("compare-modes", "log(x - 3) * y", "--at", "x=2,y=1", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["value"] == "nan" and data["reverse"]["gradient"]["x"] == -1.0
    assert "log 'log(x - 3)'" in result.stderr and "adjoint" in result.stderr
    assert any("log" in w for w in data["warnings"])


def test_kink_warning(run):
    result = run("compare-modes", "relu(x) + y", "--at", "x=0,y=1")
    assert result.exit_code == 0 and "relu'(0) = 0" in result.stderr


def test_many_inputs_table_is_cut(run):
    expr = " + ".join(f"x{i}^2" for i in range(30))
    point = ",".join(f"x{i}={i}" for i in range(30))
    result = run("compare-modes", expr, "--at", point, "--repeat", "1", "--max-rows", "5")
    assert result.exit_code == 0 and "25 more variables" in result.stdout


def test_scaling_json_counts_grow(run):
    result = run("compare-modes", "--scaling", "sumsq", "--sizes", "1,10,100", "--repeat", "1",
                 "--budget", "0.05", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {r["n"]: r for r in data["rows"]}
    assert data["family"] == "sumsq" and sorted(rows) == [1, 10, 100]
    for n, r in rows.items():
        assert r["forward"]["passes"] == n and r["reverse"]["passes"] == 2
        # every forward pass does what the whole reverse gradient does
        assert r["forward"]["ops"] == n * r["reverse"]["ops"]
    assert rows[100]["reverse"]["ops"] < 11 * rows[10]["reverse"]["ops"]


def test_scaling_1000_inputs_op_counts(run):
    result = run("compare-modes", "--scaling", "neuron", "--sizes", "1000", "--repeat", "1",
                 "--budget", "0.01", "--json")
    [row] = json.loads(result.stdout)["rows"]
    assert row["forward"]["passes"] == 1000
    assert row["forward"]["ops"] == 1000 * row["reverse"]["ops"]
    assert row["forward"]["estimated"] and row["forward"]["passes_timed"] < 1000


def test_scaling_table_and_chart(run):
    args = ["compare-modes", "--scaling", "rosenbrock", "--sizes", "1,10", "--repeat", "1"]
    plain = run(*args)
    assert plain.exit_code == 0 and "fwd ops" in plain.stdout
    assert "log scale" not in plain.stdout  # no chart into a pipe
    chart = run(*args, "--chart")
    assert "log scale" in chart.stdout and "█" in chart.stdout
    assert "x[i+1]" in plain.stdout  # the description is not eaten as markup


@pytest.mark.parametrize("args, message", [
    (["compare-modes"], "EXPR is missing"),
    (["compare-modes", "--scaling", "nope"], "unknown expression family"),
    (["compare-modes", "--scaling", "--sizes", "1,x"], "--sizes"),
    (["compare-modes", "--scaling", "--sizes", "0"], "between 1 and"),
    (["compare-modes", "x*y", "--at", "x=1,y=2", "--sizes", "3"], "only applies"),
    (["compare-modes", "x*y", "--at", "x=1,y=2", "--direction", "q=1"], "'q' is not a variable"),
    (["compare-modes", "x*y", "--at", "x=1"], "'y' has no value"),
    (["compare-modes", "x +", "--at", "x=1"], "Error"),
])
def test_bad_input_exits_2_with_one_line(run, args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error:")


def test_help_has_an_example(run):
    result = run("compare-modes", "--help")
    assert result.exit_code == 0
    assert 'adcli compare-modes "3*x^2 + x*y + 5*y^2" --at x=2,y=3' in result.stdout
    assert "--scaling" in result.stdout
