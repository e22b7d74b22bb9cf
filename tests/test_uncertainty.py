"""The uncertainty report of ``fit``: covariance, t and p values, AIC/BIC, reduced chi-square,
start values and Wald intervals, each against a reference computed independently here:
scipy's ``curve_fit`` covariance, ``scipy.stats.t``, closed-form OLS, the information criteria
by hand from the RSS, and NIST's certified standard deviations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from nist_strd import load
from scipy import stats
from scipy.optimize import curve_fit

import adcli
from adcli.output.formats.json import to_json
from adcli.regression.formula import FitError
from adcli.regression.uncertainty import information, p_values, parse_levels, t_values, wald

ROOT = Path(__file__).resolve().parent.parent
EXP = "y ~ a*exp(-b*x) + c"


def _exp_data(seed: int = 3, n: int = 40):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 5.0, n)
    s = 0.03 + 0.1 * rng.random(n)
    y = 3.0 * np.exp(-0.8 * x) + 0.4 + rng.normal(0.0, 1.0, n) * s
    return x, y, s


def _model(x, a, b, c):
    return a * np.exp(-b * x) + c


def test_covariance_t_p_and_wald_match_curve_fit_and_scipy_stats():
    x, y, _ = _exp_data()
    result = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    popt, pcov = curve_fit(_model, x, y, p0=[1, 1, 1], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    names = result.correlation_names
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose([result.parameters[n] for n in names], popt, rtol=1e-8)
    np.testing.assert_allclose(result.covariance, pcov, rtol=1e-6)
    se = np.sqrt(np.diag(pcov))
    dof = len(x) - 3
    t = popt / se
    p = 2 * stats.t.sf(np.abs(t), dof)
    tv, pv = t_values(result), p_values(result)
    np.testing.assert_allclose([tv[n] for n in names], t, rtol=1e-6)
    np.testing.assert_allclose([pv[n] for n in names], p, rtol=1e-5)
    ci = wald(result, [0.9, 0.95, 0.99])
    assert ci["method"] == "wald" and ci["levels"] == [0.9, 0.95, 0.99]
    for j, name in enumerate(names):
        for k, level in enumerate(ci["levels"]):
            q = stats.t.ppf(0.5 + level / 2, dof)
            lo, hi = ci["intervals"][name][k]
            assert lo == pytest.approx(popt[j] - q * se[j], rel=1e-7, abs=1e-12)
            assert hi == pytest.approx(popt[j] + q * se[j], rel=1e-7, abs=1e-12)
        # a wider level gives a wider interval around the estimate
        widths = [hi - lo for lo, hi in ci["intervals"][name]]
        assert widths == sorted(widths)


def test_linear_model_wald_equals_closed_form_ols():
    """For a model linear in its parameters the Wald interval is the exact OLS interval."""
    rng = np.random.default_rng(11)
    x = np.linspace(-2.0, 3.0, 25)
    y = 1.5 - 0.7 * x + 0.2 * x ** 2 + rng.normal(0, 0.3, x.size)
    result = adcli.fit("y ~ b0 + b1*x + b2*x^2", {"x": x, "y": y})
    X = np.column_stack([np.ones_like(x), x, x ** 2])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    dof = x.size - 3
    s2 = resid @ resid / dof
    cov = s2 * np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(result.covariance, cov, rtol=1e-9)
    q = stats.t.ppf(0.975, dof)
    ci = wald(result)["intervals"]
    for j, name in enumerate(["b0", "b1", "b2"]):
        half = q * math.sqrt(cov[j, j])
        assert ci[name][0] == pytest.approx([beta[j] - half, beta[j] + half], rel=1e-9,
                                            abs=1e-12)


def test_aic_bic_and_reduced_chi_square_by_hand():
    x, y, s = _exp_data(seed=5)
    result = adcli.fit(EXP, {"x": x, "y": y, "s": s}, sigma="s")
    popt, _ = curve_fit(_model, x, y, p0=[1, 1, 1], sigma=s, xtol=1e-15, ftol=1e-15,
                        gtol=1e-15)
    chi2 = float(np.sum(((y - _model(x, *popt)) / s) ** 2))
    n, k = len(x), 3
    assert result.rss == pytest.approx(chi2, rel=1e-10)
    aic, bic = information(result)
    # lmfit's MinimizerResult: _neg2_log_likel = ndata*log(chisqr/ndata)
    assert aic == pytest.approx(n * math.log(chi2 / n) + 2 * k, rel=1e-10)
    assert bic == pytest.approx(n * math.log(chi2 / n) + math.log(n) * k, rel=1e-10)
    # R's AIC(nls) for the same weighted fit: -2 logLik + 2(k + 1), logLik from R's
    # logLik.nls; it differs from lmfit's by a constant of the data only
    w = 1 / s ** 2
    r_loglik = -n / 2 * (math.log(2 * math.pi) + 1 - math.log(n) - np.sum(np.log(w)) / n
                         + math.log(chi2))
    r_aic = -2 * r_loglik + 2 * (k + 1)
    assert r_aic - aic == pytest.approx(n * (math.log(2 * math.pi) + 1) + 2
                                        - np.sum(np.log(w)), rel=1e-10)
    doc = to_json(result)
    assert doc["reduced_chi_square"] == pytest.approx(chi2 / (n - k), rel=1e-10)
    assert doc["aic"] == aic and doc["bic"] == bic
    unweighted = to_json(adcli.fit(EXP, {"x": x, "y": y}))
    assert unweighted["reduced_chi_square"] is None


def test_absolute_sigma_uses_the_normal_quantile():
    x, y, s = _exp_data(seed=8)
    result = adcli.fit(EXP, {"x": x, "y": y, "s": s}, sigma="s", absolute_sigma=True)
    _, pcov = curve_fit(_model, x, y, p0=[1, 1, 1], sigma=s, absolute_sigma=True,
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(result.covariance, pcov, rtol=1e-6)
    ci = wald(result, [0.95])
    assert ci["distribution"] == "normal"
    z = stats.norm.ppf(0.975)
    for j, name in enumerate(result.correlation_names):
        lo, hi = ci["intervals"][name][0]
        assert hi - lo == pytest.approx(2 * z * math.sqrt(pcov[j, j]), rel=1e-6)
        t = result.parameters[name] / math.sqrt(result.covariance[j, j])
        assert p_values(result)[name] == pytest.approx(2 * stats.norm.sf(abs(t)), rel=1e-6,
                                                       abs=1e-300)


@pytest.mark.parametrize("name", ["Misra1a", "Rat43", "BoxBOD"])
def test_nist_certified_standard_errors_and_wald_half_widths(name):
    problem = load(name)
    result = adcli.fit(problem.formula, problem.columns, start=problem.starts[1])
    # n - k, not the file's "Degrees of Freedom" (Rat43's says 9 for 15 rows and 4
    # parameters; its certified residual s.d. is that of 11)
    dof = len(problem.columns["y"]) - len(problem.names)
    assert result.dof == dof
    assert result.residual_std == pytest.approx(problem.residual_sd, rel=1e-8)
    ci = wald(result, [0.95])["intervals"]
    q = stats.t.ppf(0.975, dof)
    for j, b in enumerate(result.correlation_names):
        sd = problem.certified_sd[b]
        assert math.sqrt(result.covariance[j, j]) == pytest.approx(sd, rel=1e-5)
        lo, hi = ci[b][0]
        assert (hi - lo) / 2 == pytest.approx(q * sd, rel=1e-5)
        assert (lo + hi) / 2 == pytest.approx(problem.certified[b], rel=1e-6)


def test_start_values_and_fixed_parameters_in_json():
    x, y, _ = _exp_data()
    result = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 2.5}, fix={"c": 0.4})
    doc = to_json(result)
    assert doc["start"] == {"a": 2.5, "b": 1.0}
    assert set(doc["t_values"]) == set(doc["p_values"]) == {"a", "b"}
    assert doc["covariance"]["names"] == ["a", "b"]
    assert doc["ci"] is None
    result.ci = wald(result, [0.5])
    assert set(to_json(result)["ci"]["intervals"]) == {"a", "b"}


def test_no_degrees_of_freedom_gives_nan_not_an_error():
    result = adcli.fit("y ~ a + b*x", {"x": np.array([0.0, 1.0]), "y": np.array([1.0, 3.0])})
    assert result.dof == 0
    assert all(math.isnan(v) for v in p_values(result).values())
    lo, hi = wald(result)["intervals"]["a"][0]
    assert math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize("text, want", [(None, [0.95]), ("0.9", [0.9]),
                                        ("90%, 0.99", [0.9, 0.99]), ("68.27%", [0.6827])])
def test_parse_levels(text, want):
    assert parse_levels(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["1", "0", "-0.5", "abc", "95", "0.9,0.9", "100%", "nan",
                                  ",".join(["0.5"] * 30)])
def test_bad_levels_are_refused(text):
    with pytest.raises(FitError):
        parse_levels(text)


# --------------------------------------------------------------------------- the command


def _csv(tmp_path: Path) -> str:
    x, y, s = _exp_data()
    path = tmp_path / "d.csv"
    rows = zip(x.tolist(), y.tolist(), s.tolist())
    path.write_text("x,y,s\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in rows))
    return str(path)


def test_cli_ci_json_and_text(run, tmp_path):
    data = _csv(tmp_path)
    doc = json.loads(run("fit", EXP, "--data", data, "--from", "a=2", "--ci", "wald", "--level",
                         "90%,0.99", "--json").stdout)
    assert doc["ci"]["method"] == "wald" and doc["ci"]["levels"] == [0.9, 0.99]
    assert doc["start"] == {"a": 2.0, "b": 1.0, "c": 1.0}
    cov = np.array(doc["covariance"]["matrix"])
    se = np.array([doc["stderr"][n] for n in doc["covariance"]["names"]])
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), se, rtol=1e-12)
    q = stats.t.ppf(0.995, doc["dof"])
    lo, hi = doc["ci"]["intervals"]["b"][1]
    assert hi - lo == pytest.approx(2 * q * doc["stderr"]["b"], rel=1e-10)
    text = run("fit", EXP, "--data", data, "--ci", "wald").stdout
    assert "confidence intervals (wald, t(37))" in text
    assert "95% lower" in text and "Pr(>|t|)" in text and "AIC" in text


def test_a_level_is_labelled_with_the_digits_it_needs(run, tmp_path):
    """0.9999999999 is not a 100% interval (that would be infinite), 0.12345678 not 12.3457%."""
    text = run("fit", EXP, "--data", _csv(tmp_path), "--ci", "wald", "--level",
               "0.9999999999,0.12345678,68.27%").stdout
    lines = text.splitlines()
    header = lines[next(i for i, ln in enumerate(lines) if ln.startswith("confidence")) + 1]
    assert header.split()[1::2] == ["99.99999999%", "99.99999999%", "12.345678%", "12.345678%",
                                    "68.27%", "68.27%"]


@pytest.mark.parametrize("args, message", [
    (["--ci", "wald", "--level", "2"], "--level '2' must be between 0 and 1"),
    (["--level", "0.9"], "--level needs --ci wald"),
    (["--ci", "bogus"], "'bogus' is not one of 'wald', 'profile'"),
    (["--profile-plot", "p.png"], "--profile-plot needs --ci profile"),
    (["--ci", "wald", "--profile-plot", "p.png"], "--profile-plot needs --ci profile"),
    (["--ci", "profile", "--profile-plot", "p.txt"], "--profile-plot 'p.txt': use a .png"),
    (["--ci", "profile", "--profile-plot", "p.png", "--plot", "./p.png"],
     "--plot and --profile-plot name the same file"),
])
def test_cli_bad_ci_options(run, tmp_path, args, message):
    out = run("fit", EXP, "--data", _csv(tmp_path), *args, "--json")
    assert out.exit_code == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_a_p_value_below_float64_is_not_printed_as_zero(run, tmp_path):
    """t of a million on 198 degrees of freedom: p is about 1e-1130, which float64 holds as
    0; the table must not say the p value is 0."""
    rng = np.random.default_rng(2)
    x = np.arange(200) / 10.0
    y = 1.0 + 2.0 * x + rng.normal(0.0, 1e-6, 200)
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(x.tolist(), y.tolist())))
    out = run("fit", "y ~ a + b*x", "--data", str(data))
    assert out.exit_code == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("b "))
    assert row.split()[-1] == "<1e-300"
    assert json.loads(run("fit", "y ~ a + b*x", "--data", str(data), "--json").stdout
                      )["p_values"]["b"] == 0.0  # the float the text stands in for
