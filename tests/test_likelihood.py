"""``minimize --data --reduce sum --stderr hessian|sandwich``: standard errors of a maximum-
likelihood fit against statsmodels (the reference, test-only), the refusals, and the warnings
for a Hessian that has no inverse that is a covariance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm  # the reference (the test extra)

from adcli.function import parse
from adcli.io.data import Dataset
from adcli.optimize import build_objective

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXAM = str(SAMPLES / "exam.csv")
#: The negative log-likelihood of one row of a logistic regression (softplus: no overflow).
LOGIT = "softplus(a + b*hours) - passed*(a + b*hours)"


def _exam() -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(EXAM, delimiter=",", skiprows=1)
    return rows[:, 0], rows[:, 1]


def _stderr_json(run, *args: str, status: int = 0) -> dict:
    result = run("minimize", *args, "--reduce", "sum", "--json")
    assert result.exit_code == status, result.stderr
    return json.loads(result.stdout)


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=0)


@pytest.mark.parametrize("method, cov_type", [("hessian", "nonrobust"), ("sandwich", "HC0")])
def test_readme_logistic_regression_equals_statsmodels_logit(run, method, cov_type):
    hours, passed = _exam()
    ref = sm.Logit(passed, sm.add_constant(hours)).fit(disp=0, cov_type=cov_type, tol=1e-12)
    out = _stderr_json(run, LOGIT, "--data", EXAM, "--wrt", "a,b", "--stderr", method)
    assert out["converged"] and out["stderr_method"] == method
    _close([out["minimum"]["a"], out["minimum"]["b"]], ref.params, 1e-6)
    _close([out["stderr"]["a"], out["stderr"]["b"]], ref.bse)
    assert out["covariance"]["names"] == ["a", "b"]
    _close(out["covariance"]["matrix"], ref.cov_params())


@pytest.mark.parametrize("method, cov_type", [("hessian", "nonrobust"), ("sandwich", "HC0")])
def test_three_predictor_logit_and_poisson_equal_statsmodels(run, tmp_path, method, cov_type):
    rng = np.random.default_rng(11)
    n = 150
    x, z = rng.normal(size=n), rng.uniform(-1, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(0.3 - 1.1 * x + 0.8 * z))).astype(float)
    k = rng.poisson(np.exp(0.5 + 0.4 * x - 0.6 * z)).astype(float)
    path = tmp_path / "glm.csv"
    path.write_text("x,z,y,k\n" + "".join(f"{float(a)!r},{float(b)!r},{c:g},{d:g}\n"
                                          for a, b, c, d in zip(x, z, y, k)))
    X = sm.add_constant(np.column_stack([x, z]))
    eta = "(c0 + c1*x + c2*z)"
    for model, expr in ((sm.Logit(y, X), f"softplus{eta} - y*{eta}"),
                        (sm.Poisson(k, X), f"exp{eta} - k*{eta}")):
        ref = model.fit(disp=0, cov_type=cov_type, tol=1e-12)
        out = _stderr_json(run, expr, "--data", str(path), "--wrt", "c0,c1,c2",
                           "--stderr", method)
        _close([out["stderr"][f"c{i}"] for i in range(3)], ref.bse)
        _close(out["covariance"]["matrix"], ref.cov_params())


def test_score_outer_is_the_sum_of_the_rows_outer_products():
    """One column sweep gives every row's gradient: checked against a sweep per row."""
    hours, passed = _exam()
    tape = parse(LOGIT + " + 0.1*a^2").tape({"hours", "passed"})
    data = Dataset({"hours": hours, "passed": passed})
    objective, _ = build_objective(tape, {}, ["a", "b"], data, reduce="sum")
    x = np.array([-3.0, 1.2])
    expected = np.zeros((2, 2))
    for h, p in zip(hours, passed):
        one, _ = build_objective(tape, {}, ["a", "b"],
                                 Dataset({"hours": np.array([h]), "passed": np.array([p])}),
                                 reduce="sum")
        g = one(x)[1]
        expected += np.outer(g, g)
    _close(objective.score_outer(x), expected, 1e-12)


def test_score_outer_in_blocks_of_rows_is_the_same_sum(monkeypatch):
    import adcli.optimize.objective as module

    hours, passed = _exam()
    tape = parse(LOGIT + " + 0.1*a^2").tape({"hours", "passed"})
    objective, _ = build_objective(tape, {}, ["a", "b"],
                                   Dataset({"hours": hours, "passed": passed}), reduce="sum")
    x = np.array([-3.0, 1.2])
    whole = objective.score_outer(x)
    monkeypatch.setattr(module, "SCORE_BLOCK_NUMBERS", 6)  # blocks of 3 rows, the last of 2
    _close(objective.score_outer(x), whole, 1e-14)


def test_the_data_hessian_counts_a_penalty_once_per_row():
    """A term without data (a penalty, a prior) is in every row's term of the sum, so its
    curvature counts once per row, as its value and gradient do (central differences)."""
    hours, passed = _exam()
    tape = parse(LOGIT + " + 0.1*a^2*b").tape({"hours", "passed"})
    objective, _ = build_objective(tape, {}, ["a", "b"],
                                   Dataset({"hours": hours, "passed": passed}), reduce="sum")
    x, h = np.array([-3.0, 1.2]), 1e-5
    numeric = np.array([(objective(x + h * e)[1] - objective(x - h * e)[1]) / (2 * h)
                        for e in np.eye(2)])
    _close(objective.hessian(x), numeric, 1e-6)


@pytest.mark.parametrize("extra", [[], ["--scheduler", "synchronous"]])
def test_reduce_mean_is_refused_with_one_error_line(run, extra):
    if extra:
        pytest.importorskip("dask.dataframe")
    result = run("minimize", LOGIT, "--data", EXAM, "--stderr", "hessian", *extra)
    assert result.exit_code == 2
    assert result.stderr == ("Error: --stderr hessian needs --reduce sum: the standard errors "
                             "come from the Hessian of the summed negative log-likelihood, and "
                             "the mean's is smaller by the number of rows\n")


@pytest.mark.parametrize("args, words", [
    (["x^2", "--stderr", "hessian"], "needs --data"),
    ([LOGIT, "--data", EXAM, "--reduce", "sum", "--stderr", "sandwich", "--batch-size", "4"],
     "cannot use --batch-size"),
    ([LOGIT, "--data", EXAM, "--reduce", "sum", "--stderr", "fisher"], "Invalid value"),
])
def test_other_refusals(run, args, words):
    result = run("minimize", *args)
    assert result.exit_code == 2 and words in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_singular_hessian_is_a_warning_naming_the_parameters(run):
    expr = "softplus(a + b*hours + c*hours) - passed*(a + b*hours + c*hours)"
    result = run("minimize", expr, "--data", EXAM, "--reduce", "sum", "--wrt", "a,b,c",
                 "--stderr", "hessian", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["stderr"] == {"a": "nan", "b": "nan", "c": "nan"}
    assert "is singular" in result.stderr and "'b', 'c'" in result.stderr
    assert "'a'" not in result.stderr.split("determine")[1].split("separately")[0]


def test_indefinite_hessian_and_unconverged_run_are_warnings(run):
    expr = LOGIT + " - c^2"
    result = run("minimize", expr, "--data", EXAM, "--reduce", "sum", "--wrt", "a,b,c",
                 "--steps", "0", "--stderr", "sandwich")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Warning: the run did not converge (max-steps)")
    assert "indefinite" in lines[1] and "along 'c'" in lines[1]
    assert "standard errors (sandwich" in result.stdout and "nan" in result.stdout


def test_human_report_lists_the_standard_errors(run):
    result = run("minimize", LOGIT, "--data", EXAM, "--reduce", "sum", "--wrt", "a,b",
                 "--stderr", "hessian")
    assert result.exit_code == 0
    tail = result.stdout.splitlines()[-3:]
    assert tail[0].startswith("standard errors (hessian: H^-1")
    assert tail[1].split()[0] == "a" and abs(float(tail[1].split()[1]) - 1.76099) < 1e-5
    assert tail[2].split()[0] == "b" and abs(float(tail[2].split()[1]) - 0.628721) < 1e-6


def test_an_estimate_at_a_bound_is_a_warning(run):
    result = run("minimize", LOGIT, "--data", EXAM, "--reduce", "sum", "--wrt", "a,b",
                 "--bounds", "b=0:1", "--stderr", "hessian")
    assert result.exit_code == 0
    assert result.stderr == ("Warning: 'b' is at a bound (--bounds): the standard errors "
                             "assume an optimum inside the bounds, where the gradient is zero, "
                             "and are not valid there\n")


@pytest.mark.parametrize("method", ["auto", "bfgs"])
def test_a_squared_residual_is_a_warning_pointing_to_fit(run, method):
    result = run("minimize", "(w0 + w1*x - y)^2", "--data", str(SAMPLES / "line.csv"),
                 "--reduce", "sum", "--method", method, "--stderr", "hessian")
    assert result.exit_code == 0
    assert ("Warning: EXPR is the square of a residual, which --stderr takes as a negative "
            "log-likelihood") in result.stderr and "use adcli fit" in result.stderr
