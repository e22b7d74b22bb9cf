"""Issue 13 items 7-10: hessian and diff at degenerate points, the message list, graph formats
and plots of diverged runs, and the Python API's hessian and plain floats.

Where a user would meet the behaviour at a shell (warnings, exit statuses, files written,
matplotlib's warnings) the test runs the installed ``adcli`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adcli
import adcli.derive.curvature

ADCLI = Path(sys.executable).parent / "adcli"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def sh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(ADCLI), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


# --- item 7: hessian and diff at degenerate points ---------------------------------------------


def test_hessian_where_the_value_is_nan_warns_and_does_not_classify():
    r = sh("hessian", "log(x)", "--at", "x=-1")
    assert r.returncode == 0
    assert "Warning: the value is not finite: node #1 (log 'log(x)')" in r.stderr
    assert "negative definite" not in r.stdout and "not classified" in r.stdout


def test_hessian_on_a_kink_warns_like_grad():
    r = sh("hessian", "abs(x) + y^2", "--at", "x=0,y=1")
    assert "sits exactly on its kink" in r.stderr and "abs'(0) = 0" in r.stderr
    assert "not classified" in r.stdout


def test_hessian_names_its_non_finite_entries():
    r = sh("hessian", "x^y", "--at", "x=0,y=2")
    assert "Warning: the Hessian is not finite: d2/dxdy, d2/dydy" in r.stderr
    assert "not classified" in r.stdout


def test_hessian_at_a_smooth_point_says_nothing_on_stderr(run):
    r = run("hessian", "(1-x)^2 + 100*(y-x^2)^2", "--at", "x=1,y=1")
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.rstrip().endswith("positive definite: a local minimum if the gradient is 0")


def test_hessian_of_a_constant_is_one_line(run):
    r = run("hessian", "5")
    assert r.exit_code == 0
    assert r.stdout == "no variables: the Hessian of a constant is empty (0 x 0)\n"
    doc = json.loads(run("hessian", "5", "--json").stdout)
    assert doc == {"variables": [], "hessian": [], "eigenvalues": []}


def test_diff_of_a_constant_prints_0_which_evaluates(run):
    r = sh("diff", "5")
    assert r.returncode == 0 and r.stdout == "0\n"
    assert "no variables" in r.stderr
    assert sh("eval", r.stdout.strip()).stdout == "0.0\n"
    assert json.loads(run("diff", "5", "--json").stdout) == {"wrt": [], "derivative": []}


@pytest.mark.parametrize("args, wrt", [
    (["x^2"], ["x"]),                       # one variable, not asked for: still a list
    (["x*y"], ["x", "y"]),
    (["x*y", "--wrt", "y"], "y"),           # the user asked for one name: that name
    (["x*y", "--wrt", "y,x"], ["y", "x"]),
])
def test_diff_json_has_one_shape_unless_one_name_was_asked_for(run, args, wrt):
    doc = json.loads(run("diff", *args, "--json").stdout)
    assert doc["wrt"] == wrt
    assert isinstance(doc["derivative"], type(wrt))


# --- item 8: messages ---------------------------------------------------------------------------


def test_counts_are_singular_for_one(run):
    r = run("minimize", "x^2", "--from", "x=1", "--method", "newton")
    assert "method newton, 1 iteration, 2 gradient evaluations" in r.stdout
    from adcli.output.render import counted

    assert counted(1, "gradient evaluation") == "1 gradient evaluation"
    assert counted(0, "iteration") == "0 iterations"
    assert counted(1234, "Jacobian evaluation") == "1,234 Jacobian evaluations"


def test_every_unset_variable_is_named_in_one_grammatical_error():
    r = sh("minimize", "x + y + z", "--wrt", "x")
    assert r.returncode == 2
    assert r.stderr == ("Error: variables 'y', 'z' are not parameters (--wrt) and have no "
                        "value; give them values with --from, e.g. --from y=1,z=1\n")
    r = sh("minimize", "x + y", "--wrt", "x")
    assert "variable 'y' is not a parameter (--wrt) and has no value" in r.stderr
    assert "neither" not in r.stderr
    r = sh("eval", "x + y + z", "--at", "y=1")
    assert r.returncode == 2 and "variables 'x', 'z' have no value" in r.stderr


def test_many_unset_variables_are_listed_within_bounds(run):
    r = run("eval", "+".join(f"x{i}" for i in range(5000)))
    assert r.exit_code == 2 and "'x9' and 4,990 more have no value" in r.stderr
    assert len(r.stderr) < 300


def test_minimize_a_constant_says_it_has_no_variables(run):
    r = run("minimize", "5")
    assert r.exit_code == 2
    assert "EXPR has no variables" in r.stderr and "data column" not in r.stderr


def test_nan_from_folding_names_the_source_text(run):
    r = run("grad", "x + 2*(0/0)", "--at", "x=1", "--no-table")
    assert "(const 'nan', folded from '0/0')" in r.stderr
    r = run("eval", "x*log(-1)", "--at", "x=1")
    assert "folded from 'log(-1)'" in r.stderr
    r = run("eval", "x*1e999", "--at", "x=1")  # a literal is its own source: nothing folded
    assert "(const 'inf')" in r.stderr and "folded" not in r.stderr


def test_momentum_is_treated_like_lr_by_methods_without_it(run):
    r = run("minimize", "x^2", "--from", "x=1", "--method", "bfgs", "--momentum", "0.5")
    assert "Warning: --momentum is ignored by bfgs" in r.stderr
    r = run("minimize", "x^2", "--from", "x=1", "--method", "momentum", "--momentum", "0.5")
    assert "ignored" not in r.stderr
    r = run("minimize", "x^2", "--from", "x=1")
    assert r.stderr == ""


@pytest.mark.parametrize("command", ["eval", "diff"])
def test_json_help_of_commands_without_tables(run, command):
    text = run(command, "--help").stdout
    assert "--json" in text and "instead of tables" not in text


def test_unknown_function_suggests_the_closest(run):
    for wrong, right in [("ln", "log"), ("arctan", "atan"), ("sine", "sin"), ("Exp", "exp")]:
        r = run("eval", f"{wrong}(x)", "--at", "x=1")
        assert r.exit_code == 2 and f"did you mean '{right}'?" in r.stderr
    assert "did you mean" not in run("eval", "frobnicate(x)", "--at", "x=1").stderr


def test_top_level_parse_errors_do_not_expect_closing_parentheses(run):
    r = run("eval", "sin(x) x", "--at", "x=1")
    hint = r.stderr.splitlines()[-1]
    assert hint.startswith("expected one of:") and "')'" not in hint and "','" not in hint
    inside = run("eval", "max(x y", "--at", "x=1").stderr.splitlines()[-1]
    assert "')'" in inside and "','" in inside


def test_a_diverged_run_reports_a_point_not_a_minimum():
    r = sh("minimize", "x^2", "--from", "x=1", "--method", "gd", "--lr", "10", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and "minimum" not in doc and np.isfinite(doc["point"]["x"])


def test_parameters_print_in_natural_order(run):
    text = "(a10 - 1)^2 + (b1 - 1)^2 + (a2 - 2)^2 + (a1 - 3)^2"
    doc = json.loads(run("minimize", text, "--json").stdout)
    assert list(doc["minimum"]) == ["a1", "a2", "a10", "b1"]
    assert doc["minimum"]["a10"] == pytest.approx(1) and doc["minimum"]["a1"] == pytest.approx(3)
    names = [ln.split()[0] for ln in run("minimize", text).stdout.splitlines()[2:6]]
    assert names == ["a1", "a2", "a10", "b1"]


def test_constant_rows_of_the_tape_table_show_no_gradient(run):
    rows = [ln for ln in run("grad", "x^2", "--at", "x=3").stdout.splitlines() if "const" in ln]
    assert len(rows) == 1 and rows[0].rstrip(" │").endswith("–")
    doc = json.loads(run("grad", "x^2", "--at", "x=3", "--json").stdout)
    assert [n["grad"] for n in doc["nodes"] if n["op"] == "var"] == [6.0]


# --- item 9: graph formats, plots of diverged runs ----------------------------------------------


needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")


@needs_dot
@pytest.mark.parametrize("name, magic", [("g.jpg", b"\xff\xd8\xff"), ("g.PDF", b"%PDF"),
                                         ("g.gif", b"GIF8"), ("g.svg", b"<?xml")])
def test_graph_output_format_follows_the_extension(tmp_path, name, magic):
    r = sh("graph", "x*y + sin(x)", "--at", "x=1,y=2", "-o", name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / name).read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["g.dot", "g.gv", "graph"])
def test_dot_text_for_dot_extensions_and_none(tmp_path, name):
    r = sh("graph", "x*y", "-o", name, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / name).read_text().startswith("digraph adcli {")


def test_an_unknown_graph_extension_is_refused(tmp_path):
    r = sh("graph", "x*y", "-o", "g.txt", cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "g.txt").exists()
    assert r.stderr.startswith("Error: -o 'g.txt': '.txt' is not a Graphviz output format")


def test_plot_of_a_diverged_run_draws_the_finite_part_quietly(tmp_path):
    pytest.importorskip("matplotlib")
    r = sh("minimize", "x^2 + y^2", "--from", "x=1,y=1", "--method", "gd", "--lr", "10",
           "--plot", "p.png", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "Note: the plot shows the finite part of the run (iterations 0 to 120); after it the "
        "value was inf or nan", "plot written to p.png"]
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


# --- item 10: the Python API ---------------------------------------------------------------------


def test_hessian_is_callable_from_the_package():
    f = adcli.parse("x^2*y + exp(y)")
    point = {"x": 1.0, "y": 0.5}
    want = np.array([[1.0, 2.0], [2.0, np.exp(0.5)]])
    assert np.allclose(adcli.hessian(f, point), want, rtol=1e-15)
    assert np.allclose(adcli.hessian("x^2*y + exp(y)", point), want, rtol=1e-15)
    assert np.allclose(f.hessian(point), want, rtol=1e-15)
    assert f.hessian(point, wrt=["y"]).tolist() == [[float(np.exp(0.5))]]
    assert np.allclose(adcli.derive.curvature.hessian(f.tape(), point), want)  # the module
    with pytest.raises(adcli.AdcliError, match="'z' is not a variable"):
        f.hessian(point, wrt=["z"])


def test_grad_and_eval_give_plain_floats_for_a_point():
    f = adcli.parse("(w0 + w1*x - y)^2")
    point = {"x": 3.0, "y": 7.0, "w0": -2.0, "w1": 2.0}
    value, gradient = f.grad(point)
    assert type(value) is float and all(type(g) is float for g in gradient.values())
    assert repr(gradient) == "{'w0': -6.0, 'w1': -18.0, 'x': -12.0, 'y': 6.0}"
    assert type(f.eval(point)) is float
    value, gradient = f.grad({**point, "x": np.arange(3.0), "y": np.ones(3)})
    assert isinstance(value, np.ndarray) and value.shape == (3,)
    assert isinstance(gradient["x"], np.ndarray) and type(gradient["w0"]) is float
    total = f.grad_sum({**point, "x": np.arange(3.0), "y": np.ones(3)})
    assert type(total.value) is float and type(total.gradient["w1"]) is float
