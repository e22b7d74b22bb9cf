"""Issue 13 items 1 and 2 through the installed console script (a pipe, so rich sees no
terminal and uses 80 columns): an EXPR starting with '-' in every command, and numbers in
tables that are never cut, 12 significant digits by default, --digits, full digits in JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

pytestmark = pytest.mark.skipif(shutil.which("adcli") is None,
                                reason="console script not installed")


def adcli(*args: str, columns: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(["adcli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


# --- item 1: a leading minus, every command --------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["eval", "-x^2", "--at", "x=3"], "-9.0"),
    (["grad", "-x^2", "--at", "x=3", "--no-table"], "d/dx  -6.0"),
    (["hessian", "-x^2", "--at", "x=3"], "-2.0"),
    (["diff", "-x^2"], "-2*x"),
    (["compare-modes", "-x^2", "--at", "x=3", "--repeat", "1"], "-6.0"),
    (["minimize", "-log(p) + p", "--from", "p=0.5"], "p  1.0"),
    (["graph", "-x^2", "--at", "x=3"], "digraph"),
    (["fit", "-y ~ a*x + b", "--data", str(SAMPLES / "line.csv")], "converged"),
    (["eval", "-x", "--data", str(SAMPLES / "line.csv"), "--at", "w=1"], "x,y,value"),
    (["grad", "--data", str(SAMPLES / "line.csv"), "-x*w", "--at", "w=2"], "d/dw"),
])
def test_an_expr_starting_with_minus_in_every_command(args, expected):
    proc = adcli(*args)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_mistyped_option_is_still_an_error():
    proc = adcli("eval", "x", "--at", "x=1", "--dat", "f.csv")
    assert proc.returncode == 2 and "No such option" in proc.stderr


# --- item 2: numbers in tables ---------------------------------------------------------------

LONG = ("sin(alpha_long_name*beta_long_name) + log(gamma_long_name_here + "
        "alpha_long_name*beta_long_name*gamma_long_name_here)/3")
AT = "alpha_long_name=0.1234567,beta_long_name=2.3456789,gamma_long_name_here=1.1"


@pytest.mark.parametrize("columns", [None, 40, 80])
def test_numbers_in_the_node_table_are_never_cut(columns):
    proc = adcli("grad", LONG, "--at", AT, columns=columns)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in "".join(ln for ln in proc.stdout.splitlines() if "│" in ln
                              and re.search(r"\d…", ln))
    doc = json.loads(adcli("grad", LONG, "--at", AT, "--json").stdout)
    for node in doc["nodes"]:  # every value, at 12 significant digits, appears whole
        assert repr(float(f"{node['value']:.12g}")) in proc.stdout


@pytest.mark.parametrize("columns", [30, 80])
def test_compare_modes_forward_and_reverse_are_shown_alike(columns):
    proc = adcli("compare-modes", "sin(x)*exp(y)/3 + x*y*z_long_name", "--at",
                 "x=1.1,y=0.3,z_long_name=2.2", "--repeat", "1", columns=columns)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split("│") for ln in proc.stdout.splitlines() if ln.startswith("│")]
    gradient = [[c.strip() for c in r[1:-1]] for r in rows if r[1].strip() in ("x", "y")]
    assert len(gradient) == 2
    for _name, forward, reverse, *_ in gradient:
        assert forward == reverse and "…" not in forward
        float(forward)


def test_twelve_digits_by_default_digits_option_and_full_json():
    assert adcli("eval", "0.1 + x", "--at", "x=0.2").stdout.strip() == "0.3"
    assert adcli("eval", "0.1 + x", "--at", "x=0.2", "--digits", "0").stdout.strip() \
        == "0.30000000000000004"
    assert adcli("eval", "0.1 + x", "--at", "x=0.2", "--digits", "3").stdout.strip() == "0.3"
    assert adcli("eval", "pi*x", "--at", "x=1", "--digits", "3").stdout.strip() == "3.14"
    assert json.loads(adcli("eval", "0.1 + x", "--at", "x=0.2", "--json").stdout) == \
        {"value": 0.30000000000000004}
    bad = adcli("eval", "x", "--at", "x=1", "--digits", "40")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_negative_zero_prints_as_zero_except_in_json():
    proc = adcli("grad", "-0.0*x", "--at", "x=1")
    assert proc.returncode == 0
    assert "-0.0" not in proc.stdout and "value  0.0" in proc.stdout
    assert json.loads(adcli("eval", "-0.0*x", "--at", "x=1", "--json").stdout)["value"] == 0.0
    assert '"value": -0.0' in adcli("eval", "-0.0*x", "--at", "x=1", "--json").stdout


def test_hessian_of_a_symmetric_function_looks_symmetric():
    proc = adcli("hessian", "sin(x*y) + x^2*y/7", "--at", "x=0.3,y=1.7")
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in proc.stdout.splitlines()
            if ln.startswith("│")]
    assert rows[0][2] == rows[1][1]  # H[x][y] and H[y][x] print the same


def test_every_command_with_a_table_takes_digits():
    for args in (["grad", "x^2", "--at", "x=1.23456789"],
                 ["hessian", "x^3", "--at", "x=1.23456789"],
                 ["compare-modes", "x^2", "--at", "x=1.23456789", "--repeat", "1"],
                 ["fit", "y ~ a*x + b", "--data", str(SAMPLES / "line.csv")]):
        proc = adcli(*args, "--digits", "4")
        assert proc.returncode == 0, (args, proc.stderr)
        assert "1.23456789" not in proc.stdout
