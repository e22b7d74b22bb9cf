"""`adcli grad` and `adcli eval` through click's CliRunner, and the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def grad_json(run, expr: str, at: str) -> dict:
    result = run("grad", expr, "--at", at, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_linear_model_gradient(run):
    out = grad_json(run, "(w0 + w1*x - y)^2", "x=3,y=7,w0=-2,w1=2")
    assert out["value"] == 9.0
    assert out["gradient"] == {"w0": -6.0, "w1": -18.0, "x": -12.0, "y": 6.0}
    nodes = out["nodes"]
    assert [n["id"] for n in nodes] == list(range(len(nodes)))
    assert {"id", "op", "label", "value", "grad"} <= set(nodes[0])
    assert nodes[-1]["grad"] == 1.0  # the reverse sweep's seed


def test_worked_example_program(run):
    out = grad_json(run, "a = x^2; b = x*y; c = y^2; d = 3*a; e = 5*c; d + b + e", "x=2,y=3")
    assert (out["value"], out["gradient"]) == (63.0, {"x": 15.0, "y": 32.0})
    assert {"a", "b", "c", "d", "e"} <= {n["label"] for n in out["nodes"]}


def test_sigmoid_ratio_example(run):
    out = grad_json(run, "(x + sigmoid(y))/(sigmoid(x) + (x+y)^2)", "x=2,y=-4")
    assert out["gradient"]["x"] == pytest.approx(0.5348320870757595, abs=1e-12)
    assert out["gradient"]["y"] == pytest.approx(0.342460382923052, abs=1e-12)


def test_neuron_example(run):
    out = grad_json(run, "tanh(x1*w1 + x2*w2 + b)",
                    "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432")
    g = out["gradient"]
    assert g["x1"] == pytest.approx(-1.5, abs=1e-9)
    assert g["w1"] == pytest.approx(1.0, abs=1e-9)
    assert g["x2"] == pytest.approx(0.5, abs=1e-9)
    assert g["w2"] == pytest.approx(0.0, abs=1e-9)


def test_human_output_has_value_gradient_and_table(run):
    result = run("grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2")
    assert result.exit_code == 0
    out = result.stdout
    assert "value" in out and "9.0" in out
    assert "d/dw1" in out and "-18.0" in out
    assert "adjoint" in out and "(w0 + w1 * x - y)^2" in out
    assert "\x1b[" not in out  # no colour codes when not on a terminal


def test_no_table_and_wrt(run):
    result = run("grad", "x*y + z", "--at", "x=2,y=3,z=1", "--wrt", "x,z", "--no-table")
    assert result.exit_code == 0
    assert "adjoint" not in result.stdout
    assert "d/dx" in result.stdout and "d/dz" in result.stdout and "d/dy" not in result.stdout


def test_eval(run):
    result = run("eval", "a = x^2; a + 1", "--at", "x=3", "--json")
    assert json.loads(result.stdout) == {"value": 10.0}
    assert run("eval", "2^10").stdout.strip() == "1024.0"


def test_at_values_may_be_constant_expressions_and_repeated(run):
    result = run("eval", "sin(x) + y", "--at", "x=pi/2", "--at", "y=pow(2, 3)", "--json")
    assert json.loads(result.stdout)["value"] == 9.0


def test_at_accepts_non_finite_values(run):
    result = run("eval", "x + 1", "--at", "x=-inf", "--json")
    assert json.loads(result.stdout) == {"value": "-inf"}


def test_non_finite_result_is_a_result_with_a_warning(run):
    result = run("grad", "log(x - 3) * y", "--at", "x=2,y=1", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["value"] == "nan"
    assert "Warning:" in result.stderr and "log" in result.stderr and "-1.0" in result.stderr


def test_expression_from_file_and_stdin(run):
    out = grad_json(run, f"@{SAMPLES / 'worked_example.adc'}", "x=2,y=3")
    assert out["value"] == 63.0
    result = run("eval", "-", "--at", "x=4", "--json", input="sqrt(x)\n")
    assert json.loads(result.stdout) == {"value": 2.0}


def test_unused_value_warns(run):
    result = run("eval", "x", "--at", "x=1,q=2")
    assert result.exit_code == 0
    assert "'q'" in result.stderr


@pytest.mark.parametrize("args, fragment", [
    (["grad", "x +", "--at", "x=1"], "unexpected end of input"),
    (["grad", "sinn(x)", "--at", "x=1"], "unknown function 'sinn'"),
    (["grad", "max(x)", "--at", "x=1"], "max() takes 2 arguments"),
    (["grad", "x + y", "--at", "x=1"], "variable 'y' has no value"),
    (["grad", "x", "--at", "x="], "no value after '='"),
    (["grad", "x", "--at", "x=abc"], "'abc' is not a number"),
    (["grad", "x", "--at", "=3"], "no name before '='"),
    (["grad", "x", "--at", "x=1,,y=2"], "empty assignment"),
    (["grad", "x", "--at", "x=1,x=2"], "'x' twice"),
    (["grad", "x", "--at", "x"], "missing '='"),
    (["grad", "x", "--at", "1x=2"], "not a valid name"),
    (["grad", "x", "--at", "x=1", "--wrt", "q"], "'q' is not a variable"),
    (["grad", "@/nonexistent/file.adc", "--at", "x=1"], "cannot read '/nonexistent/file.adc'"),
    (["grad", "@", "--at", "x=1"], "must be followed by a file name"),
    (["eval", "x $ 1", "--at", "x=1"], "unexpected character '$'"),
    (["eval", "x*" * 600 + "x", "--max-size", "1000"], "over the limit"),
])
def test_bad_input_exits_2_with_one_error_line(run, args, fragment):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_syntax_error_shows_a_caret_under_the_column(run):
    result = run("grad", "x +", "--at", "x=1")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: unexpected end of input (line 1, column 4)")
    assert lines[1] == "  x +" and lines[2] == "     ^"
    assert "expected" in result.stderr


def test_non_syntax_errors_are_one_line(run):
    result = run("grad", "x", "--at", "x=abc")
    assert len(result.stderr.strip().splitlines()) == 1


def test_big_file_is_refused_at_once(run, tmp_path):
    big = tmp_path / "big.adc"
    big.write_text("x+" * 3_000_000 + "x")
    result = run("eval", f"@{big}", "--at", "x=1")
    assert result.exit_code == 2 and "over the limit" in result.stderr


def test_help_explains_each_command(run):
    top = run("--help")
    assert top.exit_code == 0 and "grad" in top.stdout and "Exit status" in top.stdout
    for command in ("grad", "eval"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout and "--at" in result.stdout


def _installed_script() -> str | None:
    here = Path(sys.executable).parent / ("adcli.exe" if os.name == "nt" else "adcli")
    return str(here) if here.exists() else shutil.which("adcli")


def test_installed_script_runs_as_a_subprocess():
    script = _installed_script()
    assert script, "the adcli console script is not installed next to this Python"
    proc = subprocess.run([script, "grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gradient"]["w1"] == -18.0
    bad = subprocess.run([script, "grad", "x +", "--at", "x=1"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "^" in bad.stderr


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "adcli", "eval", "1+1"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "2.0"


def test_json_is_strict_json(run):
    result = run("grad", "1/x", "--at", "x=0", "--json")
    out = json.loads(result.stdout, parse_constant=pytest.fail)  # no NaN/Infinity tokens
    assert out["value"] == "inf" and out["gradient"]["x"] == "-inf"


def test_colours_follow_the_terminal_and_no_color():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    args = [sys.executable, "-m", "adcli", "grad", "x^2", "--at", "x=1"]
    forced = subprocess.run(args, capture_output=True, text=True, timeout=60,
                            env={**env, "FORCE_COLOR": "1"})
    assert "\x1b[32m" in forced.stdout  # the adjoint column is green on a terminal
    plain = subprocess.run(args, capture_output=True, text=True, timeout=60,
                           env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[32m" not in plain.stdout and "adjoint" in plain.stdout


def test_command_list_needs_no_command_module():
    """``adcli --help`` lists the commands from adcli.cli.SUMMARIES, without importing them
    (nor numpy, nor rich); the summaries must stay the commands' own first help lines."""
    import click

    from adcli.cli import COMMANDS, SUMMARIES, cli

    assert sorted(SUMMARIES) == sorted(COMMANDS)
    ctx = click.Context(cli)
    for name in COMMANDS:
        assert cli.get_command(ctx, name).help.split("\n")[0] == SUMMARIES[name]
    code = ("import sys; from adcli.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'rich', 'lark') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "minimize" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_version_matches_the_installed_package(run):
    from importlib.metadata import version

    import adcli

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"adcli, version {version('adcli')}" == \
        f"adcli, version {adcli.__version__}"


def test_max_rows_shows_the_first_nodes_and_counts_the_rest(run):
    result = run("grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "--max-rows", "3")
    assert result.exit_code == 0
    assert "w1" in result.stdout and "w1 * x" not in result.stdout  # node 3 is not shown
    assert "6 more nodes not shown" in result.stdout
    everything = run("grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "--max-rows", "0")
    assert "(w0 + w1 * x - y)^2" in everything.stdout and "not shown" not in everything.stdout


@pytest.mark.parametrize("command", ["grad", "compare-modes", "eval"])
def test_division_by_a_folded_zero_is_inf_not_a_crash(run, command):
    result = run(command, "x/(2-2)", "--at", "x=1", "--json")
    assert result.exit_code == 0 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["value"] == "inf"


def test_json_output_at_a_point_never_imports_rich():
    """Start-up: ``--json`` prints no table, so the rich renderer stays unloaded,
    unless --digits asks for a setting (it only affects printed tables); a later table in
    the same process still gets the digits asked for."""
    code = ("import sys; from adcli.cli import main\n"
            "try:\n    main(['grad', 'x^2', '--at', 'x=3', '--json'])\nexcept SystemExit:\n"
            "    pass\n"
            "print(sorted(m for m in ('rich', 'scipy', 'lark') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and '"gradient"' in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_digits_still_reach_the_table_after_a_default_run(run):
    run("grad", "x/3", "--at", "x=1", "--digits", "3")
    short = run("grad", "x/3", "--at", "x=1", "--digits", "3", "--no-table")
    default = run("grad", "x/3", "--at", "x=1", "--no-table")
    assert "0.333" in short.stdout and "0.3333" not in short.stdout
    assert "0.333333333333" in default.stdout


def test_a_misspelt_command_gets_a_did_you_mean(run):
    out = run("propogate", "x")
    assert out.exit_code == 2
    assert out.stderr.startswith("Error: No such command 'propogate'. Did you mean 'propagate'?")
    out = run("xyz")
    assert out.exit_code == 2 and "Did you mean" not in out.stderr
