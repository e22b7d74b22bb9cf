"""`adcli fit` and `adcli.fit`: formulas, the exact Jacobian, the engine's stopping, statistics,
options and errors. The NIST StRD certified problems are in tests/test_nist.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import adcli
from adcli.errors import AdcliError
from adcli.regression.fitting import Residuals, parse_bounds
from adcli.regression.formula import parse_formula
from adcli.regression.leastsq import max_cosine

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
JSON_KEYS = ["parameters", "stderr", "correlation", "rss", "residual_std", "dof", "r_squared",
             "converged", "reason", "iterations", "evaluations", "method", "covariance",
             "t_values", "p_values", "aic", "bic", "information_criteria",
             "reduced_chi_square", "absolute_sigma", "start", "ci", "derived"]


def decay(rows: int = 60, seed: int = 1, noise: float = 0.02):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 4.0, rows)
    y = 3.0 * np.exp(-0.7 * x) + 0.4 + rng.normal(0.0, noise, rows)
    return x, y


# --------------------------------------------------------------------------- formulas


def test_formula_residual_is_lhs_minus_model_with_lets():
    f = parse_formula("t = 2*x\nlog(y) ~ a + b*t")
    res = Residuals(f, {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 5.0])})
    assert res.params == ["a", "b"]
    r = res.residuals(np.array([0.5, 0.25]))
    assert np.allclose(r, np.log([3.0, 5.0]) - (0.5 + 0.25 * np.array([2.0, 4.0])))


@pytest.mark.parametrize("text, message, column", [
    ("y + a*x", "needs '~'", 0),
    ("y ~ a ~ x", "exactly one '~'", 7),
    ("y ~ a*x; z = 1", "last statement", 3),
    ("~ a*x", "nothing before '~'", 1),
    ("y ~ ", "nothing after '~'", 4),
    ("y ~ a*(x", "", 9),
    ("y ~ a*x +* 2", "", 10),
    ("y) ~ a*x", "", 2),
])
def test_formula_errors_point_into_the_users_text(text, message, column):
    with pytest.raises(AdcliError) as info:
        parse_formula(text)
    assert message in info.value.message
    if column:
        assert info.value.column == column
        assert info.value.source == text  # the caret line is the user's own text


def test_tilde_in_a_comment_is_not_the_formula():
    f = parse_formula("# y ~ x\ny ~ a*x  # fit ~ this")
    assert {n for n in f.names(f.model)} == {"a", "x"}


# --------------------------------------------------------------------------- Jacobian


def test_jacobian_is_exact_against_finite_differences():
    rng = np.random.default_rng(3)
    x1, x2 = rng.uniform(0.5, 2.0, 40), rng.uniform(-1.0, 1.0, 40)
    y = rng.normal(size=40)
    f = parse_formula("u = a*x1; y ~ sin(u)*exp(b*x2) / (1 + c^2*x1^2) + atan(a/(x1+c))")
    res = Residuals(f, {"x1": x1, "x2": x2, "y": y})
    b = np.array([0.7, -0.3, 1.1])
    r, jac = res.both(b)
    assert res.params == ["a", "b", "c"] and jac.shape == (40, 3)
    assert np.allclose(r, res.residuals(b), rtol=0, atol=1e-15)
    for j in range(3):
        h = np.zeros(3)
        h[j] = 1e-6
        fd = (res.residuals(b + h) - res.residuals(b - h)) / 2e-6
        assert np.allclose(jac[:, j], fd, rtol=1e-7, atol=1e-8)


def test_max_cosine_is_scale_free():
    rng = np.random.default_rng(0)
    jac, r = rng.normal(size=(30, 3)), rng.normal(size=30)
    c = max_cosine(r, jac)
    assert 0 < c <= 1
    assert max_cosine(1e-12 * r, 1e12 * jac * [1, 1e-5, 1e5]) == pytest.approx(c, rel=1e-12)


# --------------------------------------------------------------------------- engine, statistics


def test_linear_model_matches_the_normal_equations():
    x, y = decay()
    design = np.column_stack([np.ones_like(x), x, x * x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(np.sum((y - design @ coef) ** 2))
    cov = rss / (len(x) - 3) * np.linalg.inv(design.T @ design)
    result = adcli.fit("y ~ c0 + c1*x + c2*x^2", {"x": x, "y": y})
    assert result.converged
    got = np.array([result.parameters[n] for n in ("c0", "c1", "c2")])
    assert np.allclose(got, coef, rtol=1e-10, atol=1e-12)
    assert result.rss == pytest.approx(rss, rel=1e-10)
    se = np.array([result.stderr[n] for n in ("c0", "c1", "c2")])
    assert np.allclose(se, np.sqrt(np.diag(cov)), rtol=1e-8)
    corr = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
    assert np.allclose(result.correlation, corr, rtol=1e-8, atol=1e-12)
    assert result.dof == len(x) - 3
    tss = float(np.sum((y - y.mean()) ** 2))
    assert result.r_squared == pytest.approx(1 - rss / tss, rel=1e-12)


def test_sigma_weights_like_curve_fit():
    from scipy.optimize import curve_fit

    x, y = decay(noise=0.05)
    sigma = 0.02 + 0.05 * x
    model = lambda x, a, b, c: a * np.exp(-b * x) + c
    for absolute in (False, True):
        popt, pcov = curve_fit(model, x, y, p0=[1, 1, 0], sigma=sigma, absolute_sigma=absolute)
        result = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y, "s": sigma},
                           start={"a": 1, "b": 1}, sigma="s", absolute_sigma=absolute)
        got = [result.parameters[n] for n in "abc"]
        assert np.allclose(got, popt, rtol=1e-6)
        se = [result.stderr[n] for n in "abc"]
        assert np.allclose(se, np.sqrt(np.diag(pcov)), rtol=1e-5)
        assert result.weighted and result.absolute_sigma == absolute


def test_residual_scale_does_not_change_where_it_stops():
    """The stopping tests are relative (MINPACK's): residuals 1e-12 or 1e+12 times smaller or
    larger stop at the same parameters. Scaling by a power of two is exact in floating point,
    so there every iteration must be the same (an absolute threshold anywhere would show)."""
    x, y = decay()
    base = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1})
    for k in (2.0 ** -40, 2.0 ** 40, 1e-12, 1e12):
        scaled = adcli.fit(f"{k!r}*y ~ {k!r}*(a*exp(-b*x) + c)", {"x": x, "y": y},
                           start={"a": 1, "b": 1})
        assert scaled.converged
        exact = math.log2(k).is_integer()
        if exact:
            assert scaled.iterations == base.iterations
            assert scaled.evaluations == base.evaluations
        else:  # the last digits of 1e-12*y differ; where the noise floor is met may too
            assert abs(scaled.iterations - base.iterations) <= 2
        for n in "abc":
            assert scaled.parameters[n] == pytest.approx(base.parameters[n],
                                                         rel=0 if exact else 1e-9)
            assert scaled.stderr[n] == pytest.approx(base.stderr[n], rel=1e-12 if exact
                                                     else 1e-6)


def test_fix_holds_a_parameter_and_bounds_are_respected():
    x, y = decay()
    fixed = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1},
                      fix={"c": 0.0})
    assert fixed.parameters["c"] == 0.0 and "c" not in fixed.stderr
    assert fixed.correlation_names == ["a", "b"] and fixed.dof == len(x) - 2
    free = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1})
    assert fixed.rss > free.rss
    bounded = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1},
                        bounds={"c": (0.0, 0.2)})
    assert bounded.converged
    assert bounded.parameters["c"] == pytest.approx(0.2, abs=1e-7)
    assert bounded.at_bound == ["c"] and any("bound" in w for w in bounded.warnings)
    inside = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1},
                       bounds={"c": (0.0, 10.0)})
    assert inside.parameters["c"] == pytest.approx(free.parameters["c"], rel=1e-8)
    assert not inside.at_bound


def test_a_start_for_a_fixed_parameter_is_said_to_be_ignored():
    x, y = decay()
    result = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y},
                       start={"a": 1, "b": 1, "c": 0.2}, fix={"c": 0.5})
    assert result.parameters["c"] == 0.5
    assert "--from c is ignored: 'c' is fixed at 0.5 by --fix" in result.warnings


def test_non_identifiable_parameters_are_named_not_given_nonsense_errors():
    x, y = decay()
    result = adcli.fit("y ~ a*b*exp(-k*x) + c", {"x": x, "y": y},
                       start={"a": 1, "b": 2, "k": 1})
    warned = [w for w in result.warnings if "not identifiable" in w]
    assert len(warned) == 1 and "a, b" in warned[0]
    assert math.isnan(result.stderr["a"]) and math.isnan(result.stderr["b"])
    assert math.isnan(result.relative_error("a"))
    assert np.isnan(result.correlation[0, 1]) and result.correlation[3, 3] == 1.0
    at_saddle = adcli.fit("y ~ a*b*exp(-k*x) + c", {"x": x, "y": y}, start={"k": 1})
    warned = [w for w in at_saddle.warnings if "not identifiable" in w]  # a = b = 0: zero columns
    assert len(warned) == 1 and "a, b" in warned[0]
    assert math.isfinite(result.stderr["k"]) and math.isfinite(result.stderr["c"])
    unused = adcli.fit("y ~ a*exp(-k*x) + c + 0*d", {"x": x, "y": y}, start={"a": 1, "k": 1})
    assert math.isnan(unused.stderr["d"])
    assert any("d" in w for w in unused.warnings)


def test_predict_and_fitted_values():
    x, y = decay()
    result = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1})
    p = result.parameters
    assert np.allclose(result.predict({"x": x}), p["a"] * np.exp(-p["b"] * x) + p["c"])
    assert np.allclose(result.fitted, result.predict({"x": x}))
    assert np.array_equal(result.observed, y)
    assert result.predictors == ["x"]


@pytest.mark.parametrize("text, kwargs, message", [
    ("y ~ 2*x", {}, "no parameters"),
    ("a ~ b*x", {}, "left side uses no data column"),
    ("y ~ a*x", {"fix": {"a": 1.0}}, "every parameter is fixed"),
    ("y ~ a*x", {"bounds": {"q": (0, 1)}}, "'q' is not a parameter"),
    ("y ~ a*x", {"start": {"a": 5.0}, "bounds": {"a": (0, 1)}}, "outside its bounds"),
    ("y ~ a*x", {"sigma": "nope"}, "not a column"),
    ("y ~ log(a)*x", {"start": {"a": -1.0}}, "not finite at the start values"),
])
def test_api_errors(text, kwargs, message):
    with pytest.raises(AdcliError) as info:
        adcli.fit(text, {"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 2.9]}, **kwargs)
    assert message in info.value.message


def test_deep_and_large_formulas_and_the_jacobian_limit(monkeypatch):
    x = np.linspace(0.0, 1.0, 20)
    y = 2.0 * x + 1.0
    deep = "y ~ " + "(" * 50_000 + "a*x + b" + ")" * 50_000
    result = adcli.fit(deep, {"x": x, "y": y})
    assert result.parameters == pytest.approx({"a": 2.0, "b": 1.0})
    monkeypatch.setattr("adcli.regression.fitting.MAX_JACOBIAN_VALUES", 39)
    with pytest.raises(AdcliError, match="too large a Jacobian"):
        adcli.fit("y ~ a*x + b", {"x": x, "y": y})


def test_parse_bounds():
    assert parse_bounds("a=0:10,b=-1:, c=:pi") == {"a": (0.0, 10.0), "b": (-1.0, math.inf),
                                                   "c": (-math.inf, math.pi)}
    for bad in ("a=1", "a=2:1", "a=0:1,a=0:2", "1a=0:1", "a=x:1"):
        with pytest.raises(AdcliError):
            parse_bounds(bad)


# --------------------------------------------------------------------------- the command


def test_cli_report_and_json(run):
    csv = str(SAMPLES / "exp_decay.csv")
    result = run("fit", "y ~ a*exp(-b*x) + c", "--data", csv, "--from", "a=1,b=1")
    assert result.exit_code == 0, result.stderr
    for word in ("converged", "std. error", "correlation", "residual sum of squares",
                 "degrees of freedom", "R^2", "Jacobian evaluations"):
        assert word in result.stdout
    out = run("fit", "y ~ a*exp(-b*x) + c", "--data", csv, "--from", "a=1,b=1", "--json")
    doc = json.loads(out.stdout)
    assert list(doc) == JSON_KEYS + ["rows"]
    assert doc["converged"] is True and doc["dof"] == 47
    assert doc["correlation"]["names"] == ["a", "b", "c"]
    assert set(doc["stderr"]) == {"a", "b", "c"}


def test_cli_nonfinite_numbers_are_strings_in_json(run, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,1\n2,2\n")
    out = run("fit", "y ~ a*x + b", "--data", str(data), "--json")
    doc = json.loads(out.stdout)  # two rows, two parameters: no degrees of freedom
    assert doc["dof"] == 0 and doc["residual_std"] == "nan" and doc["stderr"]["a"] == "nan"
    assert "no degrees of freedom" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["y + a*x"], "needs '~'"),
    (["y ~ 2*x"], "no parameters"),
    (["a ~ b*x"], "left side uses no data column"),
    (["y ~ a*x", "--bounds", "a=3"], "name=lo:hi"),
    (["y ~ a*x", "--fix", "q=1"], "'q' is not a parameter"),
    (["y ~ a*(x"], "line 1, column 9"),
])
def test_cli_bad_input_exits_2_with_one_error(run, args, message):
    result = run("fit", *args, "--data", str(SAMPLES / "line.csv"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_not_converged_exits_1(run):
    result = run("fit", "y ~ a*exp(-b*x) + c", "--data", str(SAMPLES / "exp_decay.csv"),
                 "--max-evaluations", "2")
    assert result.exit_code == 1
    assert "not converged" in result.stdout and "maximum number of evaluations" in result.stdout


def test_cli_refuses_a_start_that_is_not_a_parameter(run):
    result = run("fit", "y ~ w0 + w1*x", "--data", str(SAMPLES / "line.csv"),
                 "--from", "x=3,w1=1")
    assert result.exit_code == 2
    assert "--from 'x' is a column of the data, not a parameter" in result.stderr


def test_cli_plot(run, tmp_path):
    import matplotlib  # noqa: F401 - a test extra: required, so a missing one fails
    for name, formula in (("one.png", "y ~ w0 + w1*x"), ("two.svg", "y ~ w0 + w1*x + 0*w2")):
        path = tmp_path / name
        result = run("fit", formula, "--data", str(SAMPLES / "line.csv"), "--plot", str(path))
        assert result.exit_code == 0, result.stderr
        assert path.stat().st_size > 1000


def test_cli_sample_fit_matches_its_expected_result(run):
    expected = json.loads((SAMPLES / "exp_decay_fit.json").read_text())
    out = run("fit", "y ~ a*exp(-b*x) + c", "--data", str(SAMPLES / "exp_decay.csv"),
              "--from", "a=1,b=1", "--json")
    doc = json.loads(out.stdout)
    for key in ("parameters", "stderr"):
        for name, value in expected[key].items():
            assert doc[key][name] == pytest.approx(value, rel=1e-8)
    assert doc["rss"] == pytest.approx(expected["rss"], rel=1e-10)


# --------------------------------------------------------------------------- minimize --data


def test_minimize_auto_on_a_squared_residual_runs_the_least_squares_engine(run):
    csv = str(SAMPLES / "rat43.csv")
    expr = "(y - b1 / (1 + exp(b2 - b3*x))^(1/b4))^2"
    start = "b1=100,b2=10,b3=1,b4=1"
    auto = run("minimize", expr, "--data", csv, "--from", start, "--json")
    doc = json.loads(auto.stdout)
    assert doc["method"] == "least-squares" and doc["converged"] and doc["reason"] == "ls-tol"
    assert "least-squares engine" in auto.stderr
    assert doc["minimum"]["b1"] == pytest.approx(699.6415127, rel=1e-8)  # NIST certified
    bfgs = json.loads(run("minimize", expr, "--data", csv, "--from", start, "--method",
                          "bfgs", "--json").stdout)
    assert bfgs["method"] == "bfgs"  # chosen explicitly: no switch
    same = run("minimize", "r = y - w0 - w1*x; r*r", "--data", str(SAMPLES / "line.csv"),
               "--json", "--reduce", "sum")
    doc = json.loads(same.stdout)
    assert doc["method"] == "least-squares"
    x, y = np.loadtxt(SAMPLES / "line.csv", delimiter=",", skiprows=1).T
    coef = np.polyfit(x, y, 1)
    assert doc["minimum"]["w1"] == pytest.approx(coef[0], rel=1e-10)
    assert doc["value"] == pytest.approx(np.sum((np.polyval(coef, x) - y) ** 2), rel=1e-10)


@pytest.mark.parametrize("expr", ["(y - w0 - w1*x)^2 + 0.1*w0^2", "abs(y - w0 - w1*x)",
                                  "(y - w0 - w1*x)^4", "2*(y - w0 - w1*x)^2"])
def test_minimize_keeps_its_own_method_when_not_a_square_of_a_residual(run, expr):
    doc = json.loads(run("minimize", expr, "--data", str(SAMPLES / "line.csv"),
                         "--json").stdout)
    assert doc["method"] == "bfgs"


def test_a_fit_result_keeps_the_dataclass_repr_equality_and_patterns():
    """FitResult and Formula are plain classes (start-up); their repr, == and positional
    patterns are those the dataclasses had."""
    x = np.linspace(0, 1, 8)
    res = adcli.fit("y ~ a*x + b", {"x": x, "y": 2 * x + 1})
    shown = repr(res)
    assert shown.startswith("FitResult(formula='y ~ a*x + b', parameters={")
    assert "observed=" not in shown and "covariance=" not in shown and "start={" in shown
    assert res == res and res != adcli.fit("y ~ a*x + b", {"x": x, "y": 3 * x})
    match res:
        case adcli.FitResult(formula, parameters):
            assert formula == "y ~ a*x + b" and set(parameters) == {"a", "b"}
    formula = parse_formula("y ~ a*x")  # nodes compare by identity, as they did
    assert formula == formula and formula != parse_formula("y ~ a*x")
    assert repr(formula).startswith("Formula(program=Program(")
