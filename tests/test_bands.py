"""Prediction and confidence bands (``eval --band``, ``FitResult.predict(band=)``): for a model
linear in its parameters they are the closed-form OLS intervals, computed here with numpy and
``scipy.stats.t`` (test-only references); for a nonlinear model the delta method on a gradient
taken independently (central differences); and every malformed fit file is one Error line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import adcli


def _linear_data(seed: int = 7, n: int = 30):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2.0, 5.0, n))
    y = 1.5 - 0.7 * x + 0.2 * x * x + rng.normal(0.0, 0.4, n)
    return x, y


def _ols(x, y, x0, level, design):
    """The textbook intervals: se_fit = s·sqrt(x0ᵀ(XᵀX)⁻¹x0), prediction adds s²."""
    X, X0 = design(x), design(x0)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    n, p = X.shape
    s2 = float(np.sum((y - X @ beta) ** 2)) / (n - p)
    inv = np.linalg.inv(X.T @ X)
    fit = X0 @ beta
    se = np.sqrt(s2 * np.einsum("ij,jk,ik->i", X0, inv, X0))
    q = stats.t.ppf(0.5 + level / 2, n - p)
    se_pred = np.sqrt(se ** 2 + s2)
    return fit, se, (fit - q * se, fit + q * se), (fit - q * se_pred, fit + q * se_pred)


@pytest.mark.parametrize("formula, design", [
    ("y ~ a + b*x", lambda x: np.column_stack([np.ones_like(x), x])),
    ("y ~ a + b*x + c*x^2", lambda x: np.column_stack([np.ones_like(x), x, x * x])),
])
@pytest.mark.parametrize("level", [0.95, 0.683])
def test_linear_bands_equal_closed_form_ols(formula, design, level):
    x, y = _linear_data()
    result = adcli.fit(formula, {"x": x, "y": y})
    x0 = np.linspace(-4.0, 8.0, 25)  # beyond the data too, where the band widens
    fit, se, conf, pred = _ols(x, y, x0, level, design)
    c = result.predict({"x": x0}, band="confidence", level=level)
    p = result.predict({"x": x0}, band="prediction", level=level)
    np.testing.assert_allclose(c.value, fit, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(c.se_fit, se, rtol=1e-10)
    np.testing.assert_allclose(p.se_fit, se, rtol=1e-10)
    for got, want in ((c.lower, conf[0]), (c.upper, conf[1]), (p.lower, pred[0]),
                      (p.upper, pred[1])):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_nonlinear_band_is_the_delta_method_on_an_independent_gradient():
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 4.0, 40)
    y = 3.0 * np.exp(-0.9 * x) + 0.5 + rng.normal(0.0, 0.05, 40)
    r = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, start={"a": 1, "b": 1})
    x0 = np.array([0.0, 1.3, 6.0])
    band = r.predict({"x": x0}, band="confidence", level=0.9)
    names = r.correlation_names
    theta = np.array([r.parameters[n] for n in names])

    def model(t):
        p = dict(zip(names, t))
        return p["a"] * np.exp(-p["b"] * x0) + p["c"]

    g = np.empty((3, len(names)))
    for j in range(len(names)):
        h = 1e-6 * max(1.0, abs(theta[j]))
        e = np.zeros(len(names))
        e[j] = h
        g[:, j] = (model(theta + e) - model(theta - e)) / (2 * h)
    se = np.sqrt(np.einsum("ij,jk,ik->i", g, r.covariance, g))
    np.testing.assert_allclose(band.se_fit, se, rtol=1e-7)
    q = stats.t.ppf(0.95, r.dof)
    np.testing.assert_allclose(band.upper - band.value, q * se, rtol=1e-7)


@pytest.fixture
def fitted(tmp_path, run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _linear_data()
    lines = ["x,y"] + [f"{a!r},{b!r}" for a, b in zip(x.tolist(), y.tolist())]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    out = run("fit", "y ~ a + b*x + c*x^2", "--data", "d.csv", "--json")
    assert out.exit_code == 0, out.stderr
    (tmp_path / "fit.json").write_text(out.stdout)
    (tmp_path / "new.csv").write_text("x\n-3\n0\n2.5\n7\n")
    return x, y


@pytest.mark.parametrize("kind", ["confidence", "prediction"])
def test_cli_band_from_fit_json_equals_closed_form(fitted, run, kind):
    x, y = fitted
    out = run("eval", "y ~ a + b*x + c*x^2", "--data", "new.csv", "--at", "@fit.json",
              "--band", kind, "--level", "90%")
    assert out.exit_code == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header == "x,value,se_fit,lower,upper"
    got = np.array([[float(v) for v in row.split(",")] for row in rows])
    design = lambda v: np.column_stack([np.ones_like(v), v, v * v])  # noqa: E731
    fit, se, conf, pred = _ols(x, y, got[:, 0], 0.90, design)
    lo, hi = conf if kind == "confidence" else pred
    np.testing.assert_allclose(got[:, 1], fit, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got[:, 2], se, rtol=1e-10)
    np.testing.assert_allclose(got[:, 3], lo, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got[:, 4], hi, rtol=1e-10, atol=1e-10)


def test_cli_band_json_and_output_file(fitted, run, tmp_path):
    out = run("eval", "a + b*x + c*x^2", "--data", "new.csv", "--at", "@fit.json",
              "--band", "confidence", "--json")
    assert out.exit_code == 0, out.stderr
    rows = json.loads(out.stdout)
    assert list(rows[0]) == ["x", "value", "se_fit", "lower", "upper"]
    assert rows[1]["lower"] < rows[1]["value"] < rows[1]["upper"]
    out = run("eval", "a + b*x + c*x^2", "--data", "new.csv", "--at", "@fit.json",
              "--band", "confidence", "-o", "band.csv")
    assert out.exit_code == 0 and out.stdout == ""
    assert (tmp_path / "band.csv").read_text().splitlines()[0] == "x,value,se_fit,lower,upper"


def test_a_data_column_named_like_a_band_column_keeps_its_name(fitted, run, tmp_path):
    (tmp_path / "new2.csv").write_text("x,lower\n1,5\n")
    out = run("eval", "a + b*x + c*x^2", "--data", "new2.csv", "--at", "@fit.json",
              "--band", "confidence")
    assert out.exit_code == 0
    assert out.stdout.splitlines()[0] == "x,lower,value,se_fit,lower_,upper"
    assert "called 'lower_'" in out.stderr


@pytest.mark.parametrize("doc, message", [
    ({"parameters": {"a": 1.0}}, "--band needs the fit"),
    ({"parameters": {"a": 1, "b": 1, "c": 1},
      "covariance": {"names": ["a", "b", "c"], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}},
     "has no 'dof' and no 'residual_std'"),
    ({"parameters": {"a": 1, "b": 1, "c": 1}, "dof": 3, "residual_std": 1,
      "covariance": {"names": ["a", "b"], "matrix": [[1, 0, 0], [0, 1]]}},
     "is not 2 x 2"),
    ({"parameters": {"a": 1, "b": 1, "c": 1}, "dof": 3.5, "residual_std": 1,
      "covariance": {"names": ["a"], "matrix": [[1]]}}, "'dof' is not a whole number"),
    ({"parameters": {"a": 1, "b": 1, "c": 1}, "dof": 3, "residual_std": 1,
      "covariance": {"names": ["z"], "matrix": [[1]]}}, "'z', which is not among"),
    ({"parameters": {"a": "x", "b": 1, "c": 1}, "dof": 3, "residual_std": 1,
      "covariance": {"names": ["a"], "matrix": [[1]]}}, "'a' is not a number"),
])
def test_a_fit_file_without_what_a_band_needs_is_one_error(fitted, run, tmp_path, doc,
                                                          message):
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    out = run("eval", "a + b*x + c*x^2", "--data", "new.csv", "--at", "@bad.json",
              "--band", "prediction")
    assert out.exit_code == 2
    assert out.stderr.startswith("Error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--at", "a=1,b=1,c=1", "--level", "0.9"], "--level needs --band"),
    (["--at", "@fit.json", "--band", "confidence", "--level", "1.5"], "between 0 and 1"),
    (["--at", "@fit.json", "--band", "prediction", "--absolute-sigma"], "not weighted"),
    (["--at", "@fit.json", "--band", "confidence", "--level", "0.9,0.95"], "one --level"),
    (["--at", "@fit.json", "--band", "prediction", "--sigma", "abc"],
     "'abc' is neither a column of the data nor a number"),
    (["--at", "@fit.json", "--band", "prediction", "--sigma", "-1"], "positive and finite"),
    (["--at", "@fit.json", "--band", "prediction", "--sigma", "0.1"],
     "the fit was not weighted (no --sigma), so a prediction adds its residual variance"),
    (["--at", "@fit.json", "--band", "confidence", "--sigma", "0.1"],
     "which only --band prediction uses"),
    (["--at", "@fit.json", "--at", "@fit.json", "--band", "confidence"], "more than one"),
    (["--at", "@new.csv", "--band", "confidence"], "not a JSON file"),
])
def test_band_option_errors(fitted, run, args, message):
    out = run("eval", "a + b*x + c*x^2", "--data", "new.csv", *args)
    assert out.exit_code == 2
    assert message in out.stderr


def test_band_needs_data(fitted, run):
    out = run("eval", "a + b*x", "--at", "@fit.json", "--band", "confidence")
    assert out.exit_code == 2 and "--band needs --data" in out.stderr


def test_the_formula_as_expr_evaluates_its_model(run):
    out = run("eval", "y ~ a*x + 1", "--at", "a=2,x=3")
    assert out.exit_code == 0 and out.stdout.strip() == "7.0"


def test_weighted_prediction_needs_the_new_rows_sigma():
    rng = np.random.default_rng(4)
    x = np.linspace(0.0, 3.0, 20)
    s = 0.1 + 0.1 * rng.random(20)
    y = 2.0 + 0.5 * x + rng.normal(0.0, 1.0, 20) * s
    r = adcli.fit("y ~ a + b*x", {"x": x, "y": y, "s": s}, sigma="s", absolute_sigma=True)
    with pytest.raises(adcli.AdcliError, match="needs the new rows' errors"):
        r.predict({"x": np.array([1.0])}, band="prediction")
    got = r.predict({"x": np.array([1.0, 2.0])}, band="prediction", sigma=0.2, level=0.95)
    q = stats.norm.ppf(0.975)  # absolute errors: the normal quantile
    np.testing.assert_allclose(got.upper - got.value, q * np.sqrt(got.se_fit ** 2 + 0.04),
                               rtol=1e-12)


def test_a_band_scales_as_the_fit_file_says(run, tmp_path, monkeypatch):
    """A fit with --absolute-sigma has an unscaled covariance: its band takes the normal
    quantile and adds sigma^2 without eval being told again; --absolute-sigma against a fit
    whose sigma were relative is an error, not a band scaled the wrong way."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(4)
    x = np.linspace(0.0, 3.0, 20)
    s = 0.1 + 0.1 * rng.random(20)
    y = 2.0 + 0.5 * x + rng.normal(0.0, 1.0, 20) * s
    rows = [f"{a!r},{b!r},{c!r}" for a, b, c in zip(x.tolist(), y.tolist(), s.tolist())]
    (tmp_path / "d.csv").write_text("\n".join(["x,y,s", *rows]) + "\n")
    (tmp_path / "new.csv").write_text("x\n1\n2\n")
    for name, extra in (("abs.json", ["--absolute-sigma"]), ("rel.json", [])):
        out = run("fit", "y ~ a + b*x", "--data", "d.csv", "--sigma", "s", *extra, "--json")
        assert out.exit_code == 0, out.stderr
        (tmp_path / name).write_text(out.stdout)
    out = run("eval", "a + b*x", "--data", "new.csv", "--at", "@abs.json", "--band",
              "prediction", "--sigma", "0.2", "--json")
    assert out.exit_code == 0, out.stderr
    got = json.loads(out.stdout)
    want = adcli.fit("y ~ a + b*x", {"x": x, "y": y, "s": s}, sigma="s", absolute_sigma=True
                     ).predict({"x": np.array([1.0, 2.0])}, band="prediction", sigma=0.2)
    upper = [row["upper"] for row in got]
    np.testing.assert_allclose(upper, want.upper, rtol=1e-9)
    out = run("eval", "a + b*x", "--data", "new.csv", "--at", "@rel.json", "--band",
              "confidence", "--absolute-sigma")
    assert out.exit_code == 2 and "took its --sigma as relative errors" in out.stderr


def test_a_nan_band_from_a_non_identifiable_fit_is_explained(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = np.linspace(0.0, 4.0, 30)
    y = 3.0 * np.exp(-0.7 * x) + 0.01 * np.sin(7 * x)
    rows = "".join(f"{a!r},{b!r}\n" for a, b in zip(x.tolist(), y.tolist()))
    (tmp_path / "d.csv").write_text("x,y\n" + rows)
    (tmp_path / "new.csv").write_text("x\n1\n")
    out = run("fit", "y ~ a*b*exp(-k*x)", "--data", "d.csv", "--from", "a=1,b=2", "--json")
    (tmp_path / "fit.json").write_text(out.stdout)
    out = run("eval", "a*b*exp(-k*x)", "--data", "new.csv", "--at", "@fit.json", "--band",
              "confidence")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines()[1].endswith("nan,nan,nan")
    assert "Warning: the fit's covariance is not finite for a, b" in out.stderr


def test_fit_plot_draws_the_confidence_band(tmp_path):
    from adcli.output.fitplot import plot_fit

    x, y = _linear_data()
    r = adcli.fit("y ~ a + b*x", {"x": x, "y": y})
    plot_fit(str(tmp_path / "f.svg"), r, {"x": x})
    assert "95% confidence band" in (tmp_path / "f.svg").read_text()


def test_weighted_bands_equal_closed_form_wls():
    rng = np.random.default_rng(9)
    x = np.linspace(0.0, 4.0, 25)
    s = 0.05 + 0.2 * rng.random(25)
    y = 1.0 + 0.3 * x + rng.normal(0.0, 1.0, 25) * s
    r = adcli.fit("y ~ a + b*x", {"x": x, "y": y, "s": s}, sigma="s")
    X = np.column_stack([np.ones_like(x), x])
    w = 1.0 / s ** 2
    inv = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = inv @ X.T @ (w * y)
    scale = float(np.sum(w * (y - X @ beta) ** 2)) / (25 - 2)
    x0 = np.array([-1.0, 2.0, 5.0])
    s0 = np.array([0.1, 0.2, 0.05])
    X0 = np.column_stack([np.ones_like(x0), x0])
    se = np.sqrt(scale * np.einsum("ij,jk,ik->i", X0, inv, X0))
    q = stats.t.ppf(0.975, 23)
    got = r.predict({"x": x0}, band="prediction", sigma=s0)
    np.testing.assert_allclose(got.se_fit, se, rtol=1e-10)
    np.testing.assert_allclose(got.upper, X0 @ beta + q * np.sqrt(se ** 2 + scale * s0 ** 2),
                               rtol=1e-10)
