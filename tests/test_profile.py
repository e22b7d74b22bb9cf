"""``fit --ci profile`` and ``fit --derive``, each against a reference computed independently
here: lmfit's documented example (its printed offsets), the closed-form OLS interval for a
linear model, scipy's ``curve_fit`` refits with one parameter held at the reported end and
``scipy.stats.f``/``chi2`` quantiles, and the ``uncertainties`` package for derived
quantities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

import adcli
from adcli.output.formats.json import to_json
from adcli.regression.formula import FitError
from adcli.regression.profile import PROFILE_LEVELS, brent

ROOT = Path(__file__).resolve().parent.parent
LMFIT = str(ROOT / "samples" / "lmfit_ci.csv")
EXP = "y ~ a*exp(-b*x) + c"

#: lmfit's documentation (examples/example_confidence_interval.py, "confidence" page): the
#: best value, then the offsets at -99.73, -95.45, -68.27, +68.27, +95.45, +99.73 %.
LMFIT_PRINTED = {
    "a": ("0.09943896", ["-0.00059", "-0.00039", "-0.00019", "+0.00019", "+0.00039",
                         "+0.00060"]),
    "b": ("1.98476942", ["-0.03764", "-0.02477", "-0.01229", "+0.01229", "+0.02477",
                         "+0.03764"]),
}


def _exp_data(seed: int = 5, n: int = 30, noise: float = 0.05):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 4.0, n)
    y = 3.0 * np.exp(-0.9 * x) + 0.4 + rng.normal(0.0, noise, n)
    return x, y


def _write(tmp_path: Path, columns: dict[str, np.ndarray]) -> str:
    path = tmp_path / "d.csv"
    names = list(columns)
    rows = zip(*(columns[n].tolist() for n in names))
    path.write_text(",".join(names) + "\n" + "".join(",".join(repr(v) for v in row) + "\n"
                                                      for row in rows))
    return str(path)


def test_lmfit_documented_example_digit_for_digit(run):
    out = run("fit", "y ~ 1/(a*x) + b", "--data", LMFIT, "--from", "a=0.1,b=1", "--ci",
              "profile", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    ci = doc["ci"]
    assert ci["method"] == "profile" and ci["levels"] == list(PROFILE_LEVELS)
    assert ci["distribution"] == "F(1, 98)" and ci["notes"] == {}
    for name, (best, offsets) in LMFIT_PRINTED.items():
        value = doc["parameters"][name]
        assert f"{value:.8f}" == best
        (lo1, hi1), (lo2, hi2), (lo3, hi3) = ci["intervals"][name]
        ours = [lo3, lo2, lo1, hi1, hi2, hi3]
        assert [f"{v - value:+.5f}" for v in ours] == offsets


def test_linear_model_profile_equals_wald():
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 5.0, 30)
    y = 1.0 + 2.0 * x - 0.3 * x ** 2 + rng.normal(0.0, 0.2, x.size)
    r = adcli.fit("y ~ a + b*x + c*x^2", {"x": x, "y": y})
    levels = [0.5, 0.95, 0.9973]
    prof = r.conf_interval("profile", levels)
    wald = r.conf_interval("wald", levels)
    # the closed-form OLS interval, from numpy alone
    X = np.column_stack([np.ones_like(x), x, x ** 2])
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = rss[0] / (x.size - 3)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    for j, name in enumerate("abc"):
        for k, level in enumerate(levels):
            q = stats.t.ppf(0.5 + level / 2, x.size - 3)
            want = [beta[j] - q * se[j], beta[j] + q * se[j]]
            np.testing.assert_allclose(prof["intervals"][name][k], wald["intervals"][name][k],
                                       rtol=1e-10)
            np.testing.assert_allclose(prof["intervals"][name][k], want, rtol=1e-9)


def test_linear_model_absolute_sigma_profile_is_normal_wald():
    rng = np.random.default_rng(2)
    x = np.linspace(0.0, 3.0, 25)
    s = 0.1 + 0.1 * rng.random(x.size)
    y = 0.5 - 1.5 * x + rng.normal(0.0, 1.0, x.size) * s
    r = adcli.fit("y ~ a + b*x", {"x": x, "y": y, "s": s}, sigma="s", absolute_sigma=True)
    prof = r.conf_interval("profile", [0.9, 0.99])
    assert prof["distribution"] == "chi2(1)"
    np.testing.assert_allclose(prof["quantiles"], stats.chi2.ppf([0.9, 0.99], 1), rtol=1e-12)
    wald = r.conf_interval("wald", [0.9, 0.99])
    for name in "ab":
        np.testing.assert_allclose(prof["intervals"][name], wald["intervals"][name],
                                   rtol=1e-10)


def test_nonlinear_ends_are_where_an_independent_refit_meets_the_f_quantile():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    levels = [0.6827, 0.95]
    ci = r.conf_interval("profile", levels)
    n, k = x.size, 3
    best = r.rss
    model = {"a": lambda x, b, c, a: a * np.exp(-b * x) + c,
             "b": lambda x, a, c, b: a * np.exp(-b * x) + c,
             "c": lambda x, a, b, c: a * np.exp(-b * x) + c}
    for name in "abc":
        others = [m for m in "abc" if m != name]
        for level, (lo, hi) in zip(levels, ci["intervals"][name]):
            q = stats.f.ppf(level, 1, n - k)
            assert ci["quantiles"][levels.index(level)] == pytest.approx(q, rel=1e-12)
            for end in (lo, hi):
                def held(x, p, q_, end=end, name=name):
                    return model[name](x, p, q_, end)
                p0 = [r.parameters[m] for m in others]
                popt, _ = curve_fit(held, x, y, p0=p0, xtol=1e-15, ftol=1e-15, gtol=1e-15)
                rss = float(np.sum((y - held(x, *popt)) ** 2))
                stat = (rss - best) / (best / (n - k))
                assert stat == pytest.approx(q, rel=1e-7)
        # skewed: the nonlinear profile interval is not the symmetric Wald one
    lo, hi = ci["intervals"]["b"][1]
    assert not math.isclose(hi - r.parameters["b"], r.parameters["b"] - lo, rel_tol=1e-4)


def test_fixed_parameter_is_held_in_the_refits():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1}, fix={"c": 0.4})
    ci = r.conf_interval("profile", [0.95])
    assert set(ci["intervals"]) == {"a", "b"}
    n, k = x.size, 2
    q = stats.f.ppf(0.95, 1, n - k)
    lo, hi = ci["intervals"]["b"][0]
    for end in (lo, hi):
        popt, _ = curve_fit(lambda x, a, end=end: a * np.exp(-end * x) + 0.4, x, y, p0=[3.0])
        rss = float(np.sum((y - (popt[0] * np.exp(-end * x) + 0.4)) ** 2))
        assert (rss - r.rss) / (r.rss / (n - k)) == pytest.approx(q, rel=1e-7)


def test_an_end_at_a_bound_is_reported_in_words(run, tmp_path):
    x, y = _exp_data()
    data = _write(tmp_path, {"x": x, "y": y})
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    bound = r.parameters["b"] + 0.5 * r.stderr["b"]  # inside every upper end
    args = ["fit", EXP, "--data", data, "--from", "a=1,b=0.5", "--bounds", f"b=0:{bound!r}",
            "--ci", "profile"]
    doc = json.loads(run(*args, "--json").stdout)
    ci = doc["ci"]
    for lo, hi in ci["intervals"]["b"]:
        assert lo is not None and lo < doc["parameters"]["b"] and hi is None
    assert len(ci["notes"]["b"]) == 3
    assert all("upper end reaches the bound b = " in note for note in ci["notes"]["b"])
    out = run(*args)
    assert out.exit_code == 0 and "Traceback" not in out.stderr
    assert "b: the 95.45% upper end reaches the bound b =" in out.stdout


def test_a_profile_that_never_crosses_is_reported_in_words(run, tmp_path):
    rng = np.random.default_rng(4)
    x = np.linspace(2.0, 10.0, 20)  # exp(-b x) is below 0.003 here: b's upper end is free
    y = 2.0 * (1.0 - np.exp(-3.0 * x)) + rng.normal(0.0, 0.1, x.size)
    data = _write(tmp_path, {"x": x, "y": y})
    out = run("fit", "y ~ a*(1 - exp(-b*x))", "--data", data, "--from", "b=3", "--ci",
              "profile", "--level", "0.95", "--json")
    assert out.exit_code in (0, 1) and "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    notes = " ".join(doc["ci"]["notes"].get("b", []))
    assert doc["ci"]["intervals"]["b"][0][1] is None
    assert "never crosses" in notes or "not finite" in notes or "did not converge" in notes


def test_the_time_limit_stops_the_profile_in_words():
    from adcli.regression.profile import profile

    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    ci = profile(r, [0.9, 0.95], deadline=0.0)  # long past
    assert ci["intervals"]["a"] == [[None, None]] * 2 and ci["refits"] == 0
    assert ci["ends"]["b"] == [["failed", "failed"]] * 2
    assert "the time limit was reached (--max-time" in ci["notes"]["a"][0]


def test_brent_finds_a_root_to_full_precision():
    calls = []

    def f(v: float) -> float:
        calls.append(v)
        return v ** 3 - 2.0

    root = brent(f, 0.0, 2.0, -2.0, 6.0, xtol=1e-300)
    assert root == pytest.approx(2.0 ** (1 / 3), rel=4e-16)
    assert len(calls) < 20


def test_profile_plot_is_written(run, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "profile.png"
    out = run("fit", "y ~ 1/(a*x) + b", "--data", LMFIT, "--from", "a=0.1,b=1", "--ci",
              "profile", "--level", "0.95", "--profile-plot", str(path))
    assert out.exit_code == 0, out.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {path}" in out.stderr


def test_api_conf_interval_and_refusals():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    from adcli.regression.uncertainty import wald

    assert r.conf_interval("wald") == wald(r, [0.95])
    one = r.conf_interval("profile", [0.95], names=["b"])
    assert list(one["intervals"]) == ["b"] and r.ci is one
    assert to_json(r)["ci"]["method"] == "profile"
    with pytest.raises(FitError, match="not profile or wald"):
        r.conf_interval("bootstrap")
    with pytest.raises(FitError, match="between 0 and 1"):
        r.conf_interval("profile", [95])
    with pytest.raises(FitError, match="'q' is not a free parameter"):
        r.conf_interval("profile", names=["q"])


# --------------------------------------------------------------------------- --derive


def test_derive_equals_the_uncertainties_package():
    unc = pytest.importorskip("uncertainties")
    from uncertainties import umath

    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    names = r.correlation_names
    a, b, c = unc.correlated_values([r.parameters[n] for n in names], r.covariance)
    derived = r.derive("t_half = log(2)/b", "y0 = a + c", "mix = a*exp(-b*2)/c + sqrt(b)",
                       "scaled = pi*c^2")
    want = {"t_half": umath.log(2) / b, "y0": a + c,
            "mix": a * umath.exp(-b * 2) / c + umath.sqrt(b), "scaled": math.pi * c ** 2}
    for name, w in want.items():
        assert derived[name]["value"] == pytest.approx(w.nominal_value, rel=1e-12)
        assert derived[name]["stderr"] == pytest.approx(w.std_dev, rel=1e-12)
    assert r.derived == derived and to_json(r)["derived"]["t_half"]["expression"] == \
        "log(2)/b"


def test_derive_of_a_fixed_parameter_has_no_variance_from_it():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1}, fix={"c": 0.4})
    d = r.derive("k = c*2", "m = b*c")
    assert d["k"] == {"expression": "c*2", "value": 0.8, "stderr": 0.0}
    assert d["m"]["stderr"] == pytest.approx(0.4 * r.stderr["b"], rel=1e-14)


def test_cli_derive_report_and_json(run):
    base = ["fit", "y ~ 1/(a*x) + b", "--data", LMFIT, "--from", "a=0.1,b=1"]
    doc = json.loads(run(*base, "--derive", "inv = 1/a", "--derive", "s=a*b",
                         "--json").stdout)
    assert list(doc["derived"]) == ["inv", "s"]
    a = doc["parameters"]["a"]
    assert doc["derived"]["inv"]["value"] == pytest.approx(1 / a, rel=1e-15)
    assert doc["derived"]["inv"]["stderr"] == pytest.approx(doc["stderr"]["a"] / a ** 2,
                                                            rel=1e-12)
    text = run(*base, "--derive", "inv = 1/a").stdout
    assert "derived (delta method)" in text and "inv" in text
    assert json.loads(run(*base, "--json").stdout)["derived"] is None


@pytest.mark.parametrize("derive, message", [
    ("t_half log(2)/b", "is not name = expression"),
    ("t = log(2)/", "--derive 't = log(2)/':"),
    ("2t = a", "'2t' is not a valid name"),
    ("t = a/q", "'q' is not a parameter of the fit"),
    ("t = a/B", "did you mean 'b'?"),
    ("b = 2*a", "'b' is already a parameter"),
    ("t == a", "is not name = expression"),
    ("t = a/x", "'x' is not a parameter of the fit"),
    ("t = u = 2", "ends in a binding"),
    ("t = (q = 2; q*a)", "--derive 't = (q = 2; q*a)': unexpected '='"),
])
def test_cli_bad_derive_is_one_error_line(run, derive, message):
    out = run("fit", "y ~ 1/(a*x) + b", "--data", LMFIT, "--from", "a=0.1,b=1", "--derive",
              derive)
    assert out.exit_code == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


def test_derive_with_let_bindings_and_a_value_that_is_not_finite():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1})
    d = r.derive("h = q = log(2); q/b", "bad = log(-a)")
    assert d["h"]["value"] == pytest.approx(math.log(2) / r.parameters["b"], rel=1e-15)
    assert d["h"]["stderr"] == pytest.approx(d["h"]["value"] * r.stderr["b"] /
                                             r.parameters["b"], rel=1e-12)
    assert math.isnan(d["bad"]["value"]) and math.isnan(d["bad"]["stderr"])


def test_cli_derive_same_name_twice(run):
    out = run("fit", "y ~ 1/(a*x) + b", "--data", LMFIT, "--derive", "t = a", "--derive",
              "t = b")
    assert out.exit_code == 2 and "'t' is already a parameter or a derived" in out.stderr


def test_a_fit_that_stopped_short_is_flagged_by_its_profile():
    x, y = _exp_data()
    r = adcli.fit(EXP, {"x": x, "y": y}, start={"a": 1, "b": 1}, max_evaluations=3)
    assert not r.converged
    ci = r.conf_interval("profile", [0.95])
    flagged = [n for n, notes in ci["notes"].items()
               if any("lower sum of squares than the fit's" in t for t in notes)]
    assert flagged  # the refits find what the fit missed, and say so once per parameter
    for name in flagged:
        assert sum("lower sum of squares" in t for t in ci["notes"][name]) == 1
