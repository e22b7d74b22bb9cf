"""``fit`` and ``minimize --data`` never turn a mistake into a parameter: a misspelt column, an
unknown name in --from/--fix/--bounds, ``e``/``pi`` read as constants, a start on a pole, a
parameter the residuals ignore at the start and a fit worse than a constant each say so
(exit status, message, and no "converged" where the fit is refused)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import adcli
from adcli.regression.problem import close_match

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LINE = str(SAMPLES / "line.csv")
EXP = str(SAMPLES / "exp_decay.csv")
VMAX, KM = 2.0, 0.5


@pytest.fixture
def michaelis(tmp_path: Path) -> str:
    """v = Vmax*S/(Km + S) exactly, with the substrate column named ``S``."""
    s = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])
    path = tmp_path / "mm.csv"
    path.write_text("S,v\n" + "".join(f"{float(a)!r},{float(VMAX * a / (KM + a))!r}\n"
                                       for a in s))
    return str(path)


@pytest.fixture
def worse(tmp_path: Path) -> str:
    """y = 5 - x: a line through the origin fits it worse than its mean."""
    path = tmp_path / "worse.csv"
    path.write_text("x,y\n" + "".join(f"{a},{5 - a}\n" for a in range(6)))
    return str(path)


def _refused(result, *parts: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and "converged" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize("name, candidates, want", [
    ("s", ["S", "v"], "S"),          # case
    ("Vmx", ["Vmax"], "Vmax"),       # one deletion
    ("tmep", ["temp"], "temp"),      # two neighbours swapped
    ("rates", ["rate"], "rate"),     # one insertion
    ("a", ["x", "y"], None),         # short names are compared by case only
    ("b1", ["x1"], None),
    ("y0", ["y"], None),             # y0 ~ an offset parameter beside a column y
    ("speed", ["time"], None),
])
def test_close_match(name, candidates, want):
    assert close_match(name, candidates) == want


# ------------------------------------------------------------------ 1. a misspelt column


def test_misspelt_column_is_an_error_with_did_you_mean(run, michaelis):
    result = run("fit", "v ~ Vmax*s/(Km + s)", "--data", michaelis)
    _refused(result, "'s' is not a column; did you mean 'S'?", "--params")
    minimize = run("minimize", "(Vmax*s/(Km + s) - v)^2", "--data", michaelis)
    _refused(minimize, "'s' is not a column; did you mean 'S'?", "--wrt")


def test_params_declare_the_parameters_exactly(run, michaelis):
    ok = run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, "--params", "Vmax,Km",
             "--json")
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert math.isclose(doc["parameters"]["Vmax"], VMAX, rel_tol=1e-9)
    assert math.isclose(doc["parameters"]["Km"], KM, rel_tol=1e-9)
    # a name left out of --params is an error, even one far from every column
    _refused(run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, "--params", "Vmax"),
             "'Km' is neither a column of the data nor a parameter in --params")
    _refused(run("fit", "v ~ Vmax*s/(Km + s)", "--data", michaelis, "--params", "Vmax,Km"),
             "'s' is neither a column", "did you mean 'S'?")
    _refused(run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, "--params",
                 "Vmax,Kn"), "--params 'Kn' is not a name of the formula; did you mean 'Km'?")
    _refused(run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, "--params", "Vmax,Km,S"),
             "--params 'S' is a column of the data")
    # declaring the look-alike says it is meant: then it is a parameter
    meant = run("fit", "v ~ Vmax*S/(Km + S) + 0*s", "--data", michaelis, "--from", "s=1")
    assert meant.exit_code == 0, meant.stderr


# ------------------------------------------------------------------ 2. unknown option names


@pytest.mark.parametrize("option, value, message", [
    ("--from", "Kn=1", "--from 'Kn' is not a parameter of the model; did you mean 'Km'?"),
    ("--fix", "vmax=2", "--fix 'vmax' is not a parameter of the model; did you mean 'Vmax'?"),
    ("--bounds", "Kmm=0:5", "--bounds 'Kmm' is not a parameter of the model; did you mean "
                            "'Km'?"),
    ("--from", "S=1", "--from 'S' is a column of the data, not a parameter"),
])
def test_unknown_names_in_options_are_errors(run, michaelis, option, value, message):
    _refused(run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, option, value), message)


def test_unknown_from_in_minimize_data_is_an_error(run):
    _refused(run("minimize", "(w0 + w1*x - y)^2", "--data", LINE, "--from", "W1=1"),
             "--from 'W1' is not a variable of the expression; did you mean 'w1'?")
    _refused(run("minimize", "(w0 + w1*x - y)^2", "--data", LINE, "--from", "w2=1"),
             "--from 'w2' is not a variable of the expression; did you mean 'w0'? (variables: "
             "w0, w1)")


# --------------------------------------------------------------------------- 3. e and pi


def test_e_is_a_constant_with_a_warning_unless_named(run):
    const = run("fit", "y ~ a + b*x + e*x^2", "--data", LINE, "--json")
    assert const.exit_code == 0, const.stderr
    assert "Warning: 'e' in the formula is the constant 2.718281828459045, not a parameter; " \
           "name it in --from or --params to fit it" in const.stderr
    assert set(json.loads(const.stdout)["parameters"]) == {"a", "b"}
    for option in (["--from", "e=0"], ["--params", "a,b,e"]):
        named = run("fit", "y ~ a + b*x + e*x^2", "--data", LINE, *option, "--json")
        assert named.exit_code == 0 and "Warning" not in named.stderr, named.stderr
        doc = json.loads(named.stdout)
        assert set(doc["parameters"]) == {"a", "b", "e"}
        # the quadratic least-squares fit, as numpy's
        x, y = np.loadtxt(LINE, delimiter=",", skiprows=1, unpack=True)
        c2, c1, c0 = np.polyfit(x, y, 2)
        assert np.allclose([doc["parameters"][k] for k in "abe"], [c0, c1, c2], rtol=1e-8)
    mini = run("minimize", "(w0 + w1*x + e - y)^2", "--data", LINE, "--json")
    assert mini.exit_code == 0 and "'e' in the formula is the constant" in mini.stderr
    # pi is the constant in the formulas people write (2*pi*x): no warning, unless named
    quiet = run("fit", "y ~ a + b*sin(2*pi*x)", "--data", LINE)
    assert quiet.exit_code == 0 and "Warning" not in quiet.stderr, quiet.stderr
    named = run("fit", "y ~ a + b*x + pi*x^2", "--data", LINE, "--from", "pi=0", "--json")
    assert set(json.loads(named.stdout)["parameters"]) == {"a", "b", "pi"}


# --------------------------------------------------------------------------- 4. default start 1


def test_default_start_is_one_not_a_pole(run, michaelis):
    """With Km unset the start was Km = 0, on the pole of Vmax*S/(Km + S) at S = 0: it
    converged to Km = -0.84 with R^2 -1.7, exit 0. From 1 it finds the generating values."""
    result = run("fit", "v ~ Vmax*S/(Km + S)", "--data", michaelis, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["converged"] and doc["r_squared"] > 0.999999
    assert math.isclose(doc["parameters"]["Km"], KM, rel_tol=1e-9)
    direct = adcli.fit("v ~ Vmax*S/(Km + S)", {"S": [1.0, 2.0, 4.0], "v": [1.0, 1.5, 1.8]})
    assert direct.converged and direct.parameters["Km"] > 0


# --------------------------------------------------------------------------- 5. warnings


def test_zero_jacobian_column_at_the_start_is_named(run):
    result = run("fit", "y ~ a*exp(-b*x)", "--data", EXP, "--from", "a=0")
    assert "Warning: the residuals do not change with 'b' at the start values (a zero " \
           "Jacobian column)" in result.stderr
    assert "'a'" not in result.stderr
    clean = run("fit", "y ~ a*exp(-b*x)", "--data", EXP)
    assert "zero Jacobian" not in clean.stderr


def test_converged_fit_worse_than_a_constant_warns(run, worse):
    result = run("fit", "y ~ a*x", "--data", worse, "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["converged"] and doc["r_squared"] < 0
    assert f"Warning: R^2 = {doc['r_squared']:.3g} < 0: the fitted model is worse than a " \
           "constant" in result.stderr
    good = run("fit", "y ~ a*x + b", "--data", worse)
    assert "worse than a constant" not in good.stderr


# --------------------------------------------------------------------------- issue 20 item 3


def test_perfect_fit_has_correlations_and_zero_standard_errors(run, tmp_path):
    path = tmp_path / "perfect.csv"
    x = np.arange(5.0)
    path.write_text("x,y\n" + "".join(f"{a:g},{2 + 3 * a:g}\n" for a in x))
    result = run("fit", "y ~ a + b*x", "--data", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["rss"] == 0.0 and doc["stderr"] == {"a": 0.0, "b": 0.0}
    # corr(a, b) of a straight-line fit: -mean(x) / sqrt(mean(x^2)), from (X^T X)^-1
    want = -x.mean() / math.sqrt((x ** 2).mean())
    assert math.isclose(doc["correlation"]["matrix"][0][1], want, rel_tol=1e-12)


def test_max_time_before_the_first_evaluation_is_an_error(run):
    result = run("fit", "y ~ a*exp(-b*x) + c", "--data", EXP, "--max-time", "0.000001")
    _refused(result, "the time limit of 1e-06 s was reached", "before the fit started")


def test_a_one_letter_name_is_no_misspelling_of_another_letter(tmp_path):
    """Every letter is one edit from every other: 'y' would 'mean' 'a' (a random hint)."""
    from adcli.regression.problem import did_you_mean

    assert did_you_mean("y", ["a", "b", "c"]) == ""
    assert did_you_mean("B", ["a", "b", "c"]) == "; did you mean 'b'?"
    assert did_you_mean("x2", ["x1", "y"]) == "; did you mean 'x1'?"
