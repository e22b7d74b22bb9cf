"""``adcli propagate`` and ``adcli.propagate`` against independent references: the
``uncertainties`` package (first order, correlations included), the exact moments of y = x²
for normal x (second order), the GUM's end-gauge example (JCGM 100:2008, H.1), a fit's delta
method by hand, and hostile input (one ``Error:`` line, exit status 2)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import uncertainties
from uncertainties import umath

import adcli

CASES = [
    ("4*pi^2*L/T^2", lambda v: 4 * math.pi ** 2 * v["L"] / v["T"] ** 2),
    ("exp(-b*t)*a + sqrt(c)",
     lambda v: umath.exp(-v["b"] * v["t"]) * v["a"] + umath.sqrt(v["c"])),
    ("log(x)*sin(y)/(1 + x*y)",
     lambda v: umath.log(v["x"]) * umath.sin(v["y"]) / (1 + v["x"] * v["y"])),
    ("atan2(y, x) + tanh(x)^2", lambda v: umath.atan2(v["y"], v["x"]) + umath.tanh(v["x"]) ** 2),
]
VALUES = {"L": (1.0, 0.002), "T": (2.007, 0.005), "a": (3.2, 0.1), "b": (0.7, 0.02),
          "t": (1.5, 0.01), "c": (2.0, 0.3), "x": (1.3, 0.05), "y": (0.4, 0.08)}


def _names(expr):
    return [n for n in VALUES if n in adcli.parse(expr).variables]


@pytest.mark.parametrize("expr, reference", CASES)
def test_first_order_equals_the_uncertainties_package(expr, reference):
    names = _names(expr)
    ref = reference({n: uncertainties.ufloat(*VALUES[n]) for n in names})
    got = adcli.propagate(expr, {n: VALUES[n] for n in names}, second_order=False)
    assert got.value == pytest.approx(ref.nominal_value, rel=1e-12)
    assert got.u == pytest.approx(ref.std_dev, rel=1e-12)


@pytest.mark.parametrize("expr, reference", CASES)
def test_correlated_first_order_equals_the_uncertainties_package(expr, reference):
    names = _names(expr)
    k = len(names)
    corr = np.eye(k)
    pairs = {}
    for i in range(k - 1):  # a chain of correlations: positive definite for |r| <= 0.5
        r = 0.45 if i % 2 else -0.3
        corr[i, i + 1] = corr[i + 1, i] = r
        pairs[(names[i], names[i + 1])] = r
    u = np.array([VALUES[n][1] for n in names])
    cov = corr * np.outer(u, u)
    inputs = uncertainties.correlated_values([VALUES[n][0] for n in names], cov)
    ref = reference(dict(zip(names, inputs)))
    got = adcli.propagate(expr, {n: VALUES[n] for n in names}, corr=pairs)
    assert got.u == pytest.approx(ref.std_dev, rel=1e-12)
    # the CLI's --corr gives the same number
    at = ",".join(f"{n}={VALUES[n][0]!r}±{VALUES[n][1]!r}" for n in names)
    args = [a for (x, y), r in pairs.items() for a in ("--corr", f"{x},{y}={r}")]
    from click.testing import CliRunner

    from adcli.cli import cli

    out = CliRunner().invoke(cli, ["propagate", expr, "--at", at, *args, "--json"])
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["u"] == pytest.approx(ref.std_dev, rel=1e-12)


@pytest.mark.parametrize("mu, sigma", [(2.0, 0.5), (-1.0, 3.0), (0.0, 1.0)])
def test_second_order_is_exact_for_x_squared(mu, sigma):
    got = adcli.propagate("x^2", {"x": (mu, sigma)})
    so = got.second_order
    assert so["mean"] == pytest.approx(mu ** 2 + sigma ** 2, rel=1e-14, abs=1e-15)
    assert so["u"] ** 2 == pytest.approx(4 * mu ** 2 * sigma ** 2 + 2 * sigma ** 4, rel=1e-14)


def test_second_order_is_exact_for_a_correlated_quadratic():
    # y = x1*x2 with correlated normals: E = m1 m2 + c12, Var = m1²s2² + m2²s1² + 2 m1 m2 c12
    # + s1²s2² + c12² (Isserlis)
    m1, m2, s1, s2, r = 1.5, -0.7, 0.3, 0.2, 0.6
    c12 = r * s1 * s2
    got = adcli.propagate("x1*x2", {"x1": (m1, s1), "x2": (m2, s2)}, corr={("x1", "x2"): r})
    var = m1 ** 2 * s2 ** 2 + m2 ** 2 * s1 ** 2 + 2 * m1 * m2 * c12 + s1 ** 2 * s2 ** 2 + c12 ** 2
    assert got.second_order["mean"] == pytest.approx(m1 * m2 + c12, rel=1e-14)
    assert got.second_order["u"] ** 2 == pytest.approx(var, rel=1e-13)


#: JCGM 100:2008 H.1, in nanometres and degrees Celsius: l = ls + d - ls*(da*theta + alpha*dt)
GAUGE = "ls + d - ls*(da*theta + alpha*dt)"
#: The rectangular distributions as H.1.3 states them: half-widths 2e-6, 1e-6 and 0.05 over
#: sqrt(3) (the GUM prints them rounded: 1.2e-6, 0.58e-6, 0.029).
GAUGE_AT = ("ls=50000623±25,d=215±9.7,alpha=11.5e-6±2e-6/sqrt(3),theta=-0.1±0.41,"
            "da=0±1e-6/sqrt(3),dt=0±0.05/sqrt(3)")


def test_gum_end_gauge_h1(run):
    out = run("propagate", GAUGE, "--at", GAUGE_AT, "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["value"] == pytest.approx(50000838, abs=0.5)  # l = 50.000 838 mm
    contributions = {n: v["contribution"] for n, v in doc["inputs"].items()}
    # Table H.1, u_i(l) in nm: 25, 9.7, 0, 0, 2.9, 16.6
    assert round(contributions["ls"], 0) == 25
    assert round(contributions["d"], 1) == 9.7
    assert contributions["alpha"] == 0 and contributions["theta"] == 0
    assert round(contributions["da"], 1) == 2.9
    assert round(contributions["dt"], 1) == 16.6
    assert round(doc["u"]) == 32  # u_c(l) = 32 nm
    # H.1.7: with the second-order terms, u_c(l) = 34 nm
    assert round(doc["second_order"]["u"]) == 34


def test_a_fits_parameters_with_their_covariance(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    x = np.linspace(0.0, 4.0, 30)
    y = 3.0 * np.exp(-0.9 * x) + 0.5 + rng.normal(0.0, 0.05, 30)
    (tmp_path / "d.csv").write_text("x,y\n" + "".join(f"{a!r},{b!r}\n"
                                                      for a, b in zip(x.tolist(), y.tolist())))
    fit = run("fit", "y ~ a*exp(-b*x) + c", "--data", "d.csv", "--json")
    (tmp_path / "fit.json").write_text(fit.stdout)
    doc = json.loads(fit.stdout)
    out = run("propagate", "log(2)/b", "--at", "@fit.json", "--json")
    assert out.exit_code == 0, out.stderr
    b, se = doc["parameters"]["b"], doc["stderr"]["b"]
    got = json.loads(out.stdout)
    assert got["value"] == pytest.approx(math.log(2) / b, rel=1e-15)
    assert got["u"] == pytest.approx(math.log(2) / b ** 2 * se, rel=1e-12)
    # two correlated parameters: cᵀΣc with the fit's covariance
    out = run("propagate", "a*b", "--at", "@fit.json", "--json")
    names = doc["covariance"]["names"]
    cov = np.array(doc["covariance"]["matrix"])
    p = doc["parameters"]
    c = np.array([p["b"] if n == "a" else p["a"] if n == "b" else 0.0 for n in names])
    assert json.loads(out.stdout)["u"] == pytest.approx(math.sqrt(c @ cov @ c), rel=1e-12)
    # the same through the API, from the FitResult
    r = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y})
    assert adcli.propagate("a*b", fit=r).u == pytest.approx(math.sqrt(c @ cov @ c), rel=1e-9)


def test_cov_file(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cov.json").write_text(json.dumps(
        {"names": ["x", "y"], "matrix": [[0.04, 0.01], [0.01, 0.09]]}))
    out = run("propagate", "x + 2*y", "--at", "x=1,y=2", "--cov", "cov.json", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["u"] == pytest.approx(math.sqrt(0.04 + 4 * 0.09 + 4 * 0.01))


def test_monte_carlo_agrees_for_a_linear_function_and_warns_for_a_curved_one(run):
    out = run("propagate", "2*x - 3*y", "--at", "x=1±0.1,y=2±0.2", "--mc", "200000",
              "--seed", "5", "--json")
    doc = json.loads(out.stdout)
    mc = doc["monte_carlo"]
    u = math.sqrt(0.04 + 0.36)
    assert mc["sd"] == pytest.approx(u, rel=0.01)
    assert mc["mean"] == pytest.approx(-4.0, abs=4 * u / math.sqrt(200000))
    assert mc["interval"][0] == pytest.approx(-4.0 - 1.959964 * u, rel=0.01)
    assert out.stderr == ""
    out = run("propagate", "exp(x)", "--at", "x=0±0.5", "--mc", "100000", "--seed", "1")
    assert out.exit_code == 0
    assert out.stderr.startswith("Warning: the first-order u") and "Monte Carlo" in out.stderr
    # the same seed draws the same numbers
    again = run("propagate", "2*x - 3*y", "--at", "x=1±0.1,y=2±0.2", "--mc", "200000",
                "--seed", "5", "--json")
    assert json.loads(again.stdout)["monte_carlo"] == mc


def test_few_draws_do_not_call_a_linear_function_inadequate(run):
    """With 10 draws the Monte Carlo s.d. itself is off by tens of percent: for a linear
    function a difference from u is sampling error, not a failed linearisation."""
    out = run("propagate", "x", "--at", "x=1±0.1", "--mc", "10", "--seed", "5", "--json")
    sd = json.loads(out.stdout)["monte_carlo"]["sd"]
    assert abs(sd - 0.1) > 0.05 * sd  # the case: more than the 5% of the adequacy check
    assert "not adequate" not in out.stderr
    assert "too few draws to judge" in out.stderr


def test_text_report(run):
    out = run("propagate", "x*y", "--at", "x=2±0.1,y=3+-0.2", "--corr", "x,y=0.5")
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "value  6.0"
    assert lines[2].split() == ["input", "value", "u", "sensitivity", "|c|·u", "share", "of",
                                "u²"]
    assert lines[3].split()[:4] == ["x", "2.0", "0.1", "3.0"]
    assert lines[5].split()[0] == "(correlations)"
    assert lines[6].startswith("second order")


def test_data_rows(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x,u_x\n1,0.1\n2,0.3\n")
    out = run("propagate", "k*x^2", "--at", "k=3±0.5", "--data", "d.csv")
    assert out.exit_code == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header == "x,u_x,value,u"
    for row in rows:
        x, ux, value, u = map(float, row.split(","))
        assert value == pytest.approx(3 * x * x)
        assert u == pytest.approx(math.hypot(x * x * 0.5, 6 * x * ux), rel=1e-14)


def test_a_variance_near_the_float64_limit_stays_finite(run):
    """u = 1e154: u² = 1e308 is a float64, twice it (symmetrising Σ) is not."""
    doc = json.loads(run("propagate", "x", "--at", "x=1±1e154", "--json").stdout)
    assert doc["u"] == pytest.approx(1e154, rel=1e-15)


def test_data_rows_with_a_huge_uncertainty_keep_a_finite_u(run, tmp_path, monkeypatch):
    """u = 3.6e200 is a float64; its square is not, and must not make the row's u inf."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x,y,u_x,u_y\n2,3,1e200,1e200\n0,0,0,0\n")
    out = run("propagate", "x*y", "--data", "d.csv")
    assert out.exit_code == 0, out.stderr
    first, second = (float(row.split(",")[-1]) for row in out.stdout.splitlines()[1:])
    assert first == pytest.approx(1e200 * math.hypot(3.0, 2.0), rel=1e-14)
    assert second == 0.0


@pytest.mark.parametrize("args, message", [
    (["x", "--at", "x=1±-0.1"], "must be finite and not negative"),
    (["x", "--at", "x=1±"], "write VALUE±U"),
    (["x", "--at", "x=±0.1"], "write VALUE±U"),
    (["x", "--at", "x=1±0.1±0.2"], "one '±' per value"),
    (["x", "--at", "x=1±abc"], "is not a number"),
    (["x*y", "--at", "x=1±0.1,y=1±0.1", "--corr", "x,y=1.5"], "between -1 and 1"),
    (["x*y", "--at", "x=1±0.1,y=1±0.1", "--corr", "x,z=0.5"], "'z', which --at does not give"),
    (["x*y", "--at", "x=1±0.1,y=1", "--corr", "x,y=0.5"], "'y', which has no uncertainty"),
    (["x*y*z", "--at", "x=1±0.1,y=1±0.1,z=1±0.1", "--corr", "x,y=0.9", "--corr", "y,z=0.9",
      "--corr", "x,z=-0.9"], "not positive semi-definite"),
    (["x", "--at", "x=1±0.1,w=2"], "'w' is given but the expression does not use it"),
    (["x*y", "--at", "x=1±0.1"], "'y' has no value"),
    (["x", "--at", "x=1±0.1", "--mc", "1"], "from 2 to"),
    (["x", "--at", "x=1±1e308", "--mc", "10"], "its square (the variance) is not a finite"),
    (["x", "--at", "x=1±0.1", "-o", "f.csv"], "-o needs --data"),
    (["x", "--at", "x=1±0.1", "--dropna"], "--dropna needs --data"),
    (["x", "--at", "x=1±0.1", "--sep", ";"], "--sep needs --data"),
    (["x", "--at", "x=1±0.1", "--seed", "5"], "--seed needs --mc"),
    (["x", "--at", "x=1±0.1", "--data", "d.csv", "--mc", "10"], "--mc works at one point"),
])
def test_bad_input_is_one_error_line(run, args, message):
    out = run("propagate", *args)
    assert out.exit_code == 2, out.stdout
    assert out.stderr.startswith("Error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_bad_cov_file(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"names": ["x", "y"],
                                                 "matrix": [[1, 2], [2, 1]]}))
    out = run("propagate", "x+y", "--at", "x=1,y=2", "--cov", "c.json")
    assert out.exit_code == 2 and "not positive semi-definite" in out.stderr
    (tmp_path / "c.json").write_text(json.dumps({"names": ["x"], "matrix": [[-1]]}))
    out = run("propagate", "x", "--at", "x=1", "--cov", "c.json")
    assert out.exit_code == 2 and "is -1.0" in out.stderr
    out = run("propagate", "x", "--at", "x=1±0.1", "--cov", "c.json")
    assert out.exit_code == 2 and "already has one" in out.stderr


def test_exact_inputs_and_unusable_variances(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # u = 0 is exact: an infinite sensitivity times 0 is no nan
    doc = json.loads(run("propagate", "1/x + y", "--at", "x=0±0,y=1±0.5", "--json").stdout)
    assert doc["u"] == 0.5 and doc["covariance"]["names"] == ["y"]
    # a fit whose parameter 'a' was not identified: fine unless the expression uses 'a'
    fit = {"parameters": {"a": 1.0, "b": 2.0},
           "covariance": {"names": ["a", "b"], "matrix": [["nan", "nan"], ["nan", 0.04]]}}
    (tmp_path / "fit.json").write_text(json.dumps(fit))
    out = run("propagate", "3*b", "--at", "@fit.json", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["u"] == pytest.approx(0.6)
    out = run("propagate", "a*b", "--at", "@fit.json")
    assert out.exit_code == 2 and "the variance of 'a' is nan" in out.stderr


def test_data_rows_json_and_output_file(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x,y\n1,2\n3,4\n")
    out = run("propagate", "x*y + k", "--at", "k=1±0.1", "--data", "d.csv", "--json")
    assert out.exit_code == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["value"] for r in rows] == [3.0, 13.0]
    assert [r["u"] for r in rows] == pytest.approx([0.1, 0.1])
    out = run("propagate", "x*y + k", "--at", "k=1±0.1", "--data", "d.csv", "-o", "o.csv")
    assert out.exit_code == 0 and out.stdout == ""
    assert (tmp_path / "o.csv").read_text().splitlines()[0] == "x,y,value,u"
    (tmp_path / "e.csv").write_text("x,u_x\n1,-0.1\n")
    out = run("propagate", "x", "--data", "e.csv")
    assert out.exit_code == 2 and "'u_x' has a standard uncertainty that is negative" in out.stderr


def test_gum_h2_correlated_resistance_and_reactance(run, tmp_path, monkeypatch):
    """JCGM 100:2008 H.2: five simultaneous observations of V, I and phi (Table H.2); their
    means, standard deviations of the mean and correlations (-0.36, 0.86, -0.65) give R, X and
    Z by the law of propagation with correlations (H.2.3, approach 1)."""
    monkeypatch.chdir(tmp_path)
    data = np.array([[5.007, 4.994, 5.005, 4.990, 4.999],
                     [19.663, 19.639, 19.640, 19.685, 19.678],
                     [1.0456, 1.0438, 1.0468, 1.0428, 1.0433]])
    mean, cov = data.mean(axis=1), np.cov(data) / 5
    (tmp_path / "cov.json").write_text(json.dumps({"names": ["V", "I", "phi"],
                                                   "matrix": cov.tolist()}))
    at = ",".join(f"{n}={v!r}" for n, v in zip(("V", "I", "phi"), mean.tolist()))
    got = {}
    for name, expr in (("R", "1000*V/I*cos(phi)"), ("X", "1000*V/I*sin(phi)"),
                       ("Z", "1000*V/I + 0*phi")):
        out = run("propagate", expr, "--at", at, "--cov", "cov.json", "--json")
        assert out.exit_code == 0, out.stderr
        got[name] = json.loads(out.stdout)
    # the published results, in ohms: R = 127.732(71), X = 219.847(295), Z = 254.260(236)
    assert round(got["R"]["value"], 3) == 127.732 and round(got["R"]["u"], 3) == 0.071
    assert round(got["X"]["value"], 3) == 219.847
    assert got["X"]["u"] == pytest.approx(0.295, abs=0.001)  # 0.29558: the GUM prints 0.295
    assert round(got["Z"]["value"], 3) == 254.260 and round(got["Z"]["u"], 3) == 0.236
