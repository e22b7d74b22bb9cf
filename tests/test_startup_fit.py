"""Start-up of ``adcli fit`` (bench/startup_fit.py): without ``--bounds`` a fit runs on the numpy
Levenberg-Marquardt engine (adcli.regression.lm) and its p values come from adcli's own
incomplete beta function, so the process imports neither ``scipy.optimize`` nor
``scipy.special``, nor pandas or Dask for a plain CSV; into a pipe its report is plain text,
so it imports no rich either. Checked in a fresh interpreter that runs
the console entry point and then lists ``sys.modules``; the engine and the p values are checked
against independent references here too."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adcli.regression import uncertainty
from adcli.regression.lm import levenberg_marquardt

ROOT = Path(__file__).resolve().parent.parent
LINE = str(ROOT / "samples" / "line.csv")
RAT43 = str(ROOT / "samples" / "rat43.csv")

RUNNER = """
import json, sys
from adcli.cli import main
sys.argv = ["adcli"] + sys.argv[1:]
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
sys.stderr.write("\\nMODULES " + json.dumps([code, sorted(sys.modules)]) + "\\n")
"""


def modules(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, set[str], str]:
    """(exit status, modules loaded, stdout) of ``adcli ARGS`` in a fresh interpreter, stdout
    a pipe."""
    out = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=False,
                         env=None if env is None else _environ(env))
    line = [x for x in out.stderr.splitlines() if x.startswith("MODULES ")][-1]
    code, names = json.loads(line[len("MODULES "):])
    return code, set(names), out.stdout


def _environ(changes: dict[str, str | None]) -> dict[str, str]:
    """os.environ with ``changes``; None removes a variable."""
    env = {k: v for k, v in os.environ.items() if k not in changes}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in ("pandas", "dask", "distributed",
                                                          "pyarrow", "matplotlib", "sympy")
                  or n.startswith(("scipy.optimize", "scipy.special")))


@pytest.mark.parametrize("args", [
    ["fit", "y ~ a*x + b", "--data", LINE],
    ["fit", "y ~ a*x + b", "--data", LINE, "--json"],
    ["fit", "y ~ b1 / (1 + exp(b2 - b3*x))^(1/b4)", "--data", RAT43,
     "--from", "b1=100,b2=10,b3=1,b4=1"],
    ["minimize", "(w0 + w1*x - y)^2", "--data", LINE],
    ["fit", "y ~ a*x + b", "--data", LINE, "--ci", "wald", "--level", "0.9,99%"],
], ids=["line", "line-json", "rat43", "minimize-data", "ci-wald"])
def test_an_unbounded_fit_imports_no_scipy_optimize(args):
    code, names, stdout = modules(*args)
    assert code == 0 and stdout
    assert "adcli.regression.lm" in names  # the engine that ran
    assert heavy(names) == []


#: What a fit into a pipe does without: rich (the report is plain text there, rich's bytes)
#: and what only rich brought along, glob (the Dask path only), the profile's module (--ci
#: profile; --ci also takes ``percent`` from it, and ``statistics`` for the normal quantile,
#: which imports random, fractions and decimal), the csv module (a file of plain numbers with
#: a plain header is split without it) and the "utf-8-sig" codec.
UNNEEDED = ("rich", "adcli.output.render", "glob", "decimal", "fractions", "random",
            "statistics", "adcli.regression.profile", "csv", "encodings.utf_8_sig")


def unneeded(names: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(n for n in names if (n in UNNEEDED or n.split(".")[0] in UNNEEDED)
                  and n.split(".")[0] not in allowed and n not in allowed)


#: rich's colour switches unset: stdout a pipe means plain text
PLAIN_ENV = {"TTY_COMPATIBLE": None, "FORCE_COLOR": None, "NO_COLOR": None}
WITH_CI = ("adcli.regression.profile", "statistics", "random", "fractions", "decimal")


@pytest.mark.parametrize("args, allowed", [
    (["fit", "y ~ a*x + b", "--data", LINE], ()),
    (["fit", "y ~ a*x + b", "--data", LINE, "--json"], ()),
    (["fit", "y ~ b1 / (1 + exp(b2 - b3*x))^(1/b4)", "--data", RAT43,
      "--from", "b1=100,b2=10,b3=1,b4=1"], ()),
    (["fit", "y ~ a*x + b", "--data", LINE, "--absolute-sigma"], ()),  # a warning on stderr
    (["fit", "y ~ a*x + b", "--data", LINE, "--derive", "r = a/b"], ()),
    (["fit", "y ~ a*x + b", "--data", LINE, "--ci", "wald"], WITH_CI),
], ids=["line", "line-json", "rat43", "warning", "derive", "ci-wald"])
def test_a_fit_into_a_pipe_imports_no_rich(args, allowed):
    code, names, stdout = modules(*args, env=PLAIN_ENV)
    assert code == 0 and stdout.startswith(("converged: ", "{"))
    assert unneeded(names, allowed) == []


def test_rich_still_writes_to_terminals_and_profiles_still_run():
    # the other side of the test above: the runner sees rich and the profile when they are used
    code, names, stdout = modules("fit", "y ~ a*x + b", "--data", LINE,
                                  env={**PLAIN_ENV, "TTY_COMPATIBLE": "1"})
    assert code == 0 and "rich.console" in names and "\x1b[" in stdout
    code, names, stdout = modules("fit", "y ~ a*x + b", "--data", LINE, "--ci", "profile",
                                  env=PLAIN_ENV)
    assert code == 0 and "adcli.regression.profile" in names and "rich" not in names


BLAS_THREADS = """
import os, sys
from adcli.commands import fit
from adcli.fast.blas import _libraries
print([get() for _, get in _libraries()], os.environ.get("OPENBLAS_NUM_THREADS"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS found by /proc/self/maps")
def test_a_fit_starts_blas_at_one_thread_and_leaves_the_environment():
    # the fit pins BLAS to one thread anyway; started so, OpenBLAS makes no thread pool
    def counts(value: str | None) -> str:
        out = subprocess.run([sys.executable, "-c", BLAS_THREADS], capture_output=True, text=True,
                             cwd=ROOT, timeout=120, check=True,
                             env=_environ({"OPENBLAS_NUM_THREADS": value}))
        return out.stdout.strip()

    assert counts(None) == "[1] None"  # and children see the environment as it was
    assert counts("2") == "[2] 2"  # the user's setting stands


BOUNDED_BLAS = """
import sys
sys.argv = ["adcli", *sys.argv[2:], "--data", sys.argv[1], "--bounds", "a=0:10", "--json"]
from adcli.cli import main
try:
    main()
except SystemExit:
    pass
from adcli.fast.blas import _libraries
_libraries.cache_clear()  # every BLAS loaded by now, scipy's included
print([get() for _, get in _libraries()])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS found by /proc/self/maps")
@pytest.mark.parametrize("command", [
    ["fit", "y ~ a*x + b"],
    ["minimize", "(a*x + b - y)^2", "--from", "a=1,b=0"],  # in memory: trf or L-BFGS-B
])
def test_a_bounded_run_pins_scipys_blas_too(command):
    # trf's SVD and QR (and L-BFGS-B) run on scipy's own OpenBLAS, which would start at the
    # user's thread count
    out = subprocess.run([sys.executable, "-c", BOUNDED_BLAS, LINE, *command],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
                         env=_environ({"OPENBLAS_NUM_THREADS": "2"}))
    counts = json.loads(out.stdout.splitlines()[-1])
    assert len(counts) >= 2 and set(counts) == {1}, out.stdout


def test_only_an_openblas_numpy_counts_as_started_at_one_thread():
    # OPENBLAS_NUM_THREADS means nothing to MKL or another BLAS: pin_blas must still run there
    from types import SimpleNamespace

    from adcli.commands.fit import _built_with_openblas

    def numpy_with(config: object) -> SimpleNamespace:
        return SimpleNamespace(__config__=SimpleNamespace(CONFIG=config))

    def blas(name: str) -> SimpleNamespace:
        return numpy_with({"Build Dependencies": {"blas": {"name": name}}})

    assert _built_with_openblas(blas("scipy-openblas"))
    assert _built_with_openblas(blas("openblas64"))
    assert not _built_with_openblas(blas("mkl-sdl"))
    assert not _built_with_openblas(blas("accelerate"))
    assert not _built_with_openblas(numpy_with({}))  # no record: pinned the usual way
    assert not _built_with_openblas(SimpleNamespace())


def test_bounds_still_use_scipys_trf():
    # the other side of the test above: the runner does see scipy when a fit needs it
    code, names, stdout = modules("fit", "y ~ a*x + b", "--data", LINE, "--bounds", "a=0:0.5",
                                  "--json")
    assert code == 0 and "scipy.optimize" in names
    assert json.loads(stdout)["method"] == "levenberg-marquardt (trf, exact jacobian)"


# --------------------------------------------------------------------------- the engine


def rosenbrock(x: np.ndarray) -> np.ndarray:
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosenbrock_jac(x: np.ndarray) -> np.ndarray:
    return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def test_engine_finds_rosenbrocks_minimum():
    x, status, evaluations = levenberg_marquardt(rosenbrock, rosenbrock_jac,
                                                 np.array([-1.2, 1.0]), 1000, 1e-15, 1e-15)
    assert status in (2, 3, 4)
    assert np.allclose(x, [1.0, 1.0], rtol=0, atol=1e-12)
    assert evaluations < 100


def test_engine_reports_the_evaluation_limit():
    x, status, evaluations = levenberg_marquardt(rosenbrock, rosenbrock_jac,
                                                 np.array([-1.2, 1.0]), 3, 1e-15, 1e-15)
    assert status == 0 and evaluations == 3
    assert not np.allclose(x, [1.0, 1.0], atol=1e-3)


def test_engine_matches_scipys_trf_step_for_step():
    # the bookkeeping follows scipy's unbounded trf: the same points, so the same evaluations
    from scipy.optimize import least_squares

    seen = []

    def residuals(x):
        seen.append(np.array(x))
        return rosenbrock(x)

    x, status, evaluations = levenberg_marquardt(residuals, rosenbrock_jac,
                                                 np.array([-1.2, 1.0]), 1000, 1e-15, 1e-15)
    ours = seen[:]
    seen.clear()
    ref = least_squares(residuals, [-1.2, 1.0], jac=rosenbrock_jac, method="trf",
                        x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=None, max_nfev=1000)
    assert evaluations == ref.nfev and status == ref.status
    # (scipy's wrapper may skip calling back at the start point it already has)
    distinct = [p for k, p in enumerate(ours) if k == 0 or not np.array_equal(p, ours[k - 1])]
    theirs = [p for k, p in enumerate(seen) if k == 0 or not np.array_equal(p, seen[k - 1])]
    n = min(len(distinct), len(theirs))
    assert n >= 10 and abs(len(distinct) - len(theirs)) <= 1
    assert np.allclose(np.array(distinct[:n]), np.array(theirs[:n]), rtol=1e-10, atol=1e-14)
    assert np.allclose(x, ref.x, rtol=0, atol=1e-14)


def test_a_fit_stopped_by_the_evaluation_limit_says_so():
    import adcli

    x = np.linspace(0, 4, 30)
    result = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": 4 * np.exp(-1.3 * x) + 0.5},
                       max_evaluations=3)
    assert not result.converged
    assert "maximum number of evaluations" in result.reason


# --------------------------------------------------------------------------- p values

DOFS = [1, 2, 3, 5, 11, 19, 20, 21, 38, 100, 1000, 3333, 10_000]
TS = [1e-8, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 24.8, 42.9, 100.0, 1e3]


def test_p_values_match_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    worst = 0.0
    for dof in DOFS:
        for t in TS:
            nu, tt = mpmath.mpf(dof), mpmath.mpf(t)
            try:
                ref = float(mpmath.betainc(nu / 2, mpmath.mpf(1) / 2, 0, nu / (nu + tt * tt),
                                           regularized=True))
            except (ValueError, mpmath.libmp.NoConvergence):
                continue  # mpmath's own series gives up far in the tail
            if ref < 1e-300:
                continue
            got = uncertainty.two_sided_p(t, dof)
            worst = max(worst, abs(got - ref) / ref)
            assert got == pytest.approx(ref, rel=1e-12), (dof, t)
            assert uncertainty.two_sided_p(-t, dof) == got
    assert worst < 1e-12


def test_p_values_normal_and_edges():
    for t in (0.0, 0.5, 1.96, 5.0, 30.0):
        assert uncertainty.two_sided_p(t, math.inf) == pytest.approx(
            math.erfc(t / math.sqrt(2)), rel=1e-15)
    assert uncertainty.two_sided_p(0.0, 7) == 1.0
    assert uncertainty.two_sided_p(math.inf, 7) == 0.0
    assert math.isnan(uncertainty.two_sided_p(math.nan, 7))
    assert math.isnan(uncertainty.two_sided_p(2.0, 0))


def test_quantiles_match_scipy():
    from scipy.special import ndtri, stdtrit

    for dof in (1, 2, 3, 4, 5, 11, 20, 21, 47, 100, 1000, 10_000):
        for q in (0.55, 0.75, 0.9, 0.95, 0.975, 0.995, 0.9995, 1 - 1e-6, 1 - 1e-9, 1 - 1e-12,
                  0.025, 1e-6):
            assert uncertainty.quantile(q, dof) == pytest.approx(float(stdtrit(dof, q)),
                                                                 rel=1e-12), (dof, q)
    for q in (0.5000001, 0.75, 0.975, 1 - 1e-12, 1e-9):
        assert uncertainty.quantile(q, math.inf) == pytest.approx(float(ndtri(q)), rel=1e-14)
    # near the centre the t quantile is (q - 1/2) / density(0): for 4 dof the density at 0 is
    # 3/8 exactly (scipy's stdtrit is off by 4e-4 there)
    assert uncertainty.quantile(0.5 + 1e-7, 4) == pytest.approx(1e-7 / 0.375, rel=1e-9)
    assert uncertainty.quantile(0.5, 7) == 0.0
    assert math.isnan(uncertainty.quantile(1.0, 7)) and math.isnan(uncertainty.quantile(0.9, 0))


def test_p_values_beyond_the_continued_fraction_use_scipy():
    from scipy.special import stdtr, stdtrit

    for dof in (10_001, 10**6):
        for t in (0.5, 3.0, 12.0):
            assert uncertainty.two_sided_p(t, dof) == pytest.approx(
                2 * float(stdtr(dof, -t)), rel=1e-14)
        assert uncertainty.quantile(0.975, dof) == float(stdtrit(dof, 0.975))


# --------------------------------------------------------------------------- re-fits


def test_refit_with_held_parameters_is_the_fit_with_fix():
    # leastsq.refit (the entry point of profile re-fits) against adcli.fit --fix
    import adcli
    from adcli.regression.fitting import Residuals
    from adcli.regression.formula import parse_formula
    from adcli.regression.leastsq import Compressed, qr_sums, refit

    rng = np.random.default_rng(3)
    x = np.linspace(0, 4, 40)
    y = 4 * np.exp(-1.3 * x) + 0.5 + rng.normal(0, 0.05, x.size)
    res = Residuals(parse_formula("y ~ a*exp(-b*x) + c"), {"x": x, "y": y})
    assert res.free == ["a", "b", "c"]
    engine = Compressed(lambda b: qr_sums(*res.both(b)), 3)
    inf = np.full(3, np.inf)
    sol = refit(engine, np.array([1.0, 1.3, 1.0]), np.array([False, True, False]), -inf, inf)
    assert sol.status in (1, 2, 3, 4) and sol.x[1] == 1.3
    fixed = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y}, fix={"b": 1.3})
    assert np.allclose(sol.x[[0, 2]], [fixed.parameters["a"], fixed.parameters["c"]],
                       rtol=1e-10)
    # nothing held: the plain fit
    whole = refit(engine, np.ones(3), np.zeros(3, dtype=bool), -inf, inf)
    plain = adcli.fit("y ~ a*exp(-b*x) + c", {"x": x, "y": y})
    assert np.allclose(whole.x, [plain.parameters[n] for n in "abc"], rtol=1e-10)


GC_RUNNER = """
import gc, sys
{first}
from adcli.cli import main
sys.argv = ["adcli"] + sys.argv[1:]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nGC %s %d\\n" % (gc.isenabled(), gc.get_freeze_count()))
"""


@pytest.mark.parametrize("first", ["", "import numpy"], ids=["fresh", "numpy-loaded"])
def test_the_fit_imports_pause_the_collector_only_in_a_fresh_process(first):
    """A fresh ``adcli fit`` imports numpy and its modules with the cyclic collector paused,
    then freezes what they made and turns the collector back on; where numpy was imported
    before (a library user, a test run), the command leaves the collector as it was."""
    out = subprocess.run([sys.executable, "-c", GC_RUNNER.format(first=first), "fit",
                          "y ~ a*x + b", "--data", LINE], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    enabled, frozen = [x for x in out.stderr.splitlines() if x.startswith("GC ")][-1].split()[1:]
    assert out.stdout.startswith("converged")
    assert enabled == "True"
    assert (int(frozen) > 10_000) == (first == "")


DASK_BOUNDED_BLAS = """
import json, sys
import adcli.regression.leastsq as leastsq
from adcli.fast.blas import _libraries

seen = []
engine = leastsq._bounded


def watched(*args, **kwargs):
    _libraries.cache_clear()  # every BLAS loaded by now, scipy's included
    seen.append([get() for _, get in _libraries()])
    return engine(*args, **kwargs)


leastsq._bounded = watched
sys.argv = ["adcli", sys.argv[1], sys.argv[2], "--data", sys.argv[3], "--bounds", "a=0:10",
            "--scheduler", "synchronous", "--json", *sys.argv[4:]]
from adcli.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(seen))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS found by /proc/self/maps")
@pytest.mark.parametrize("command, expr, extra", [
    ("fit", "y ~ a*x + b", []),
    ("minimize", "(a*x + b - y)^2", ["--from", "a=1,b=0"]),
])
def test_a_bounded_run_on_dask_pins_scipys_blas_while_it_runs(command, expr, extra):
    # scipy's BLAS runs trf's SVD and QR on the client: held at one thread there as numpy's
    # (the Scheduler and every pass pin each BLAS loaded), whatever OPENBLAS_NUM_THREADS says
    pytest.importorskip("dask.dataframe")
    out = subprocess.run([sys.executable, "-c", DASK_BOUNDED_BLAS, command, expr, LINE, *extra],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, check=True,
                         env=_environ({"OPENBLAS_NUM_THREADS": "2"}))
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen, out.stderr  # the bounded engine ran
    assert all(len(counts) >= 2 and set(counts) == {1} for counts in seen), seen
