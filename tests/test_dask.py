"""Data on Dask (adcli[dask]): a CSV glob, a Parquet directory, the local schedulers and a
LocalCluster of 2 worker processes give the in-memory loss and gradient to 1e-12 relative."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import adcli
from adcli.io.data import read_csv
from adcli.io.sources import open_partitioned
from adcli.optimize import build_objective
from adcli.partitioned.distributed import ClusterError, DaskObjective, Scheduler

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

#: (expression, sample, parameters) - a line fit, an exponential fit and the moons net.
CASES = [
    ("(w0 + w1*x - y)^2", "line.csv", {"w0": 0.3, "w1": 1.7}),
    ("(a*exp(-b*x) + c - y)^2", "exp_decay.csv", {"a": 3.0, "b": 0.7, "c": 0.2}),
    ("@moons_net.adc", "moons.csv", None),
]


def _source(expr: str) -> str:
    return (SAMPLES / expr[1:]).read_text() if expr.startswith("@") else expr


def _split_csv(sample: str, folder: Path, parts: int = 3) -> Path:
    """The sample cut into ``parts`` CSV files with the same header."""
    frame = pd.read_csv(SAMPLES / sample)
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_csv(folder / f"part{i}.csv", index=False, float_format="%.17g")
    return folder


def _split_parquet(sample: str, folder: Path, parts: int = 4) -> Path:
    frame = pd.read_csv(SAMPLES / sample)
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_parquet(folder / f"part{i}.parquet", index=False)
    return folder


def _point(function: adcli.Function, columns: list[str], given: dict | None) -> dict:
    if given is not None:
        return given
    rng = np.random.default_rng(1)
    names = [n for n in function.variables if n not in columns]
    return {n: float(rng.uniform(-1, 1)) for n in names}


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of 2 worker processes for the module (starting one takes seconds)."""
    with Scheduler("local:2") as where:
        assert where.workers == 2
        yield where


def _in_memory(source: str, sample: str, point: dict) -> tuple[float, np.ndarray, list[str]]:
    function = adcli.parse(source)
    data = read_csv(str(SAMPLES / sample))
    tape = function.tape(set(data.names) | set(point))
    data = data.select(tape.inputs)
    objective, _ = build_objective(tape, point, list(point), data, reduce="sum")
    value, grad = objective(np.array([point[n] for n in objective.names]))
    return value, grad, objective.names


def _on_dask(source: str, path: Path, point: dict, scheduler: Scheduler
             ) -> tuple[float, np.ndarray, DaskObjective]:
    function = adcli.parse(source)
    data = open_partitioned(str(path))
    bound = set(data.names) | set(point)
    tape = function.tape(bound)
    objective, _ = build_objective(tape, point, list(point), data.select(tape.inputs),
                                   factory=DaskObjective, reduce="sum", source=source,
                                   bound=sorted(bound), scheduler=scheduler)
    value, grad = objective(np.array([point[n] for n in objective.names]))
    return value, grad, objective


def _close(a: np.ndarray, b: np.ndarray, rel: float = 1e-12) -> bool:
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    return bool(np.all(np.abs(a - b) <= rel * np.maximum(np.abs(b), np.abs(b).max() * 1e-3)))


@pytest.mark.parametrize("expr,sample,given", CASES, ids=["line", "exp", "moons"])
@pytest.mark.parametrize("layout", ["csv-glob", "parquet-dir"])
def test_same_sums_in_memory_local_and_cluster(tmp_path, cluster, expr, sample, given, layout):
    source = _source(expr)
    function = adcli.parse(source)
    columns = list(pd.read_csv(SAMPLES / sample, nrows=0).columns)
    point = _point(function, columns, given)
    value, grad, names = _in_memory(source, sample, point)
    if layout == "csv-glob":
        path = _split_csv(sample, tmp_path / "parts") / "part*.csv"
    else:
        path = _split_parquet(sample, tmp_path / "parts")
    results = {}
    for label, where in (("threads", Scheduler("threads")),
                         ("synchronous", Scheduler("synchronous")), ("cluster", cluster)):
        v, g, objective = _on_dask(source, path, point, where)
        assert objective.names == names
        assert objective.partitions >= 3
        assert objective.rows == len(pd.read_csv(SAMPLES / sample))
        assert _close(v, value), (label, v, value)
        assert _close(g, grad), (label, g - grad)
        results[label] = (v, g)
    # The tree reduction adds in one fixed order: every scheduler gives the same bits.
    assert results["threads"][0] == results["cluster"][0] == results["synchronous"][0]
    assert np.array_equal(results["threads"][1], results["cluster"][1])


def _where(result: dict) -> dict:
    """The parameters of a minimize --json result (``minimum`` when converged; the lead's
    branch names them ``point`` otherwise)."""
    return result["minimum"] if "minimum" in result else result["point"]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_minimize_over_a_csv_glob_and_a_cluster_matches_in_memory(tmp_path):
    folder = _split_csv("exp_decay.csv", tmp_path / "parts")
    expr = "(a*exp(-b*x) + c - y)^2"
    common = ["--from", "a=1,b=1,c=0", "--method", "bfgs", "--json"]
    memory = _cli("minimize", expr, "--data", "samples/exp_decay.csv", *common)
    assert memory.returncode == 0, memory.stderr
    ref = json.loads(memory.stdout)
    for extra in ([], ["--scheduler", "local:2"]):
        run = _cli("minimize", expr, "--data", str(folder / "*.csv"), *common, *extra)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        assert got["converged"] and got["rows"] == 50 and got["partitions"] == 3
        for name, v in _where(ref).items():
            assert _where(got)[name] == pytest.approx(v, rel=1e-9, abs=1e-12)
        assert got["value"] == pytest.approx(ref["value"], rel=1e-9)


def test_without_dask_a_glob_says_what_to_install(tmp_path):
    folder = _split_csv("line.csv", tmp_path / "parts")
    block = ("import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None; "
             "sys.modules['pyarrow'] = None; from adcli.cli import main; sys.argv[0] = 'adcli'; "
             "main()")
    for args in (["--data", str(folder / "*.csv")], ["--data", "samples/line.csv",
                                                     "--scheduler", "local:2"]):
        run = subprocess.run([sys.executable, "-c", block, "minimize", "(w0 + w1*x - y)^2",
                              *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("Error: ") and "Traceback" not in run.stderr
        assert "pip install 'adcli[dask]'" in run.stderr and run.stderr.count("\n") == 1


def test_a_partition_that_cannot_be_read_fails_with_exit_1_not_a_result(tmp_path, monkeypatch):
    """A file gone between passes (data re-read every pass, as when it is larger than
    memory): the pass fails as a whole (no partial sum is used)."""
    monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", 0.0)
    folder = _split_csv("line.csv", tmp_path / "parts")
    source = CASES[0][0]
    point = CASES[0][2]
    v, g, objective = _on_dask(source, folder / "*.csv", point, Scheduler("threads"))
    assert not objective.persisted
    (folder / "part1.csv").unlink()
    with pytest.raises(ClusterError) as err:
        objective(np.array([0.3, 1.7]))
    assert err.value.exit_code == 1


def test_bad_cell_in_a_partition_is_bad_input(tmp_path):
    folder = _split_csv("line.csv", tmp_path / "parts")
    text = (folder / "part2.csv").read_text().splitlines()
    text[3] = "abc,1"
    (folder / "part2.csv").write_text("\n".join(text) + "\n")
    run = _cli("minimize", "(w0 + w1*x - y)^2", "--data", str(folder / "*.csv"), "--wrt",
               "w0,w1")
    assert run.returncode == 2, run.stderr
    # as the in-memory reader says it: file, line and column
    assert run.stderr == (f"Error: data file '{folder / 'part2.csv'}', line 4, column 1 "
                          "('x'): 'abc' is not a number\n"), run.stderr


def test_help_and_grad_import_no_dask():
    code = ("import sys; from adcli.cli import main; sys.argv = ['adcli', 'grad', 'x*y', "
            "'--at', 'x=1,y=2']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('dask', 'distributed', 'pyarrow', 'pandas') if m in sys.modules]"
            "\nassert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("scheduler", [[], ["--scheduler", "local:2"]], ids=["threads", "cluster"])
def test_fit_over_partitions_matches_the_in_memory_fit(tmp_path, scheduler):
    """LM on the normal equations (adcli.partitioned.bigfit) vs scipy's trf on the full Jacobian:
    the exponential sample's estimates and standard errors agree to 1e-9 relative (measured: about
    6e-11)."""
    folder = _split_parquet("exp_decay.csv", tmp_path / "parts")
    args = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1", "--json"]
    memory = _cli(*args[:2], "--data", "samples/exp_decay.csv", *args[2:])
    assert memory.returncode == 0, memory.stderr
    ref = json.loads(memory.stdout)
    run = _cli(*args[:2], "--data", str(folder), *args[2:], *scheduler)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["converged"] and got["rows"] == 50 and got["dof"] == ref["dof"]
    for name, v in ref["parameters"].items():
        assert got["parameters"][name] == pytest.approx(v, rel=1e-9)
        assert got["stderr"][name] == pytest.approx(ref["stderr"][name], rel=1e-9)
    assert got["rss"] == pytest.approx(ref["rss"], rel=1e-12)
    assert got["r_squared"] == pytest.approx(ref["r_squared"], rel=1e-12)
    assert np.allclose(got["correlation"]["matrix"], ref["correlation"]["matrix"], atol=1e-9)


def test_minimize_the_moons_net_over_parquet_matches_in_memory(tmp_path):
    """33 parameters, --init-scale/--seed as in memory; BFGS over partition sums. The sums
    differ from the in-memory ones in the last bits, which over ~300 BFGS steps on this
    non-convex loss moves the end point by ~5e-7 (measured) and may end it by "precision"
    at a gradient norm of ~4e-10 instead of "grad-tol": the same minimum, not the same bits."""
    folder = _split_parquet("moons.csv", tmp_path / "parts")
    common = ["minimize", "@samples/moons_net.adc", "--init-scale", "1", "--seed", "0",
              "--method", "bfgs", "--json"]
    ref = json.loads(_cli(*common, "--data", "samples/moons.csv").stdout)
    run = _cli(*common, "--data", str(folder))
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["partitions"] == 4 and got["reason"] in ("grad-tol", "precision")
    assert got["grad_norm"] < 1e-8
    assert got["value"] == pytest.approx(ref["value"], rel=1e-9)
    for name, v in _where(ref).items():
        assert _where(got)[name] == pytest.approx(v, abs=1e-5)


def test_minibatches_over_partitions_are_reproducible_with_a_seed(tmp_path):
    """Adam on minibatches: a partition drawn by its share of the rows, then rows in it."""
    folder = _split_csv("line.csv", tmp_path / "parts")
    args = ["minimize", "(w0 + w1*x - y)^2", "--data", str(folder / "*.csv"), "--wrt",
            "w0,w1", "--batch-size", "8", "--steps", "200", "--lr", "0.05", "--json"]
    runs = [_cli(*args, "--seed", seed) for seed in ("1", "1", "2")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    first, again, other = (json.loads(r.stdout) for r in runs)
    assert first["method"] == "adam" and first["iterations"] == 200
    assert first == again
    assert _where(first) != _where(other)
    start = json.loads(_cli(*args[:-5], "--steps", "0", "--json").stdout)["value"]
    assert first["value"] < 0.5 * start  # it learns (the full objective, computed at the end)


def test_an_existing_cluster_from_dask_scheduler_address(tmp_path, cluster):
    """DASK_SCHEDULER_ADDRESS (as `dask scheduler` prints it): the command connects to that
    cluster instead of starting one; the workers re-parse the formula text."""
    folder = _split_parquet("exp_decay.csv", tmp_path / "parts")
    address = cluster.client.scheduler.address
    args = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1", "--json"]
    ref = json.loads(_cli(*args[:2], "--data", "samples/exp_decay.csv", *args[2:]).stdout)
    run = _cli(*args[:2], "--data", str(folder), *args[2:],
               env={"DASK_SCHEDULER_ADDRESS": address})
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    for name, v in ref["parameters"].items():
        assert got["parameters"][name] == pytest.approx(v, rel=1e-9)
    assert cluster.workers == 2  # the command closed its client, not the cluster


def test_a_missing_cell_is_an_error_unless_dropna(tmp_path):
    folder = _split_csv("line.csv", tmp_path / "parts")
    text = (folder / "part1.csv").read_text().splitlines()
    text[2] = text[2].split(",")[0] + ",NA"
    (folder / "part1.csv").write_text("\n".join(text) + "\n")
    args = ["minimize", "(w0 + w1*x - y)^2", "--data", str(folder / "*.csv"), "--wrt",
            "w0,w1", "--json"]
    run = _cli(*args)
    assert run.returncode == 2, run.stderr
    # the in-memory reader's words for the same file, with its hint
    assert run.stderr.splitlines() == [
        f"Error: data file '{folder / 'part1.csv'}', line 3, column 2 ('y'): 'NA' is not a "
        "number", "--dropna skips the rows with a missing cell (empty, NA or nan) in a column "
        "the expression uses"], run.stderr
    run = _cli(*args, "--dropna")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rows"] == 39


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_weighted_fit_over_partitions_matches_the_in_memory_fit(tmp_path, absolute):
    """fit --sigma (and --absolute-sigma) over a Parquet directory: the in-memory weighted fit's
    estimates, standard errors, RSS and weighted R^2."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 5, 400)
    s = rng.uniform(0.05, 0.5, x.size)
    y = 2.5 * np.exp(-1.3 * x) + 0.4 + rng.normal(0, 1, x.size) * s
    frame = pd.DataFrame({"x": x, "y": y, "s": s})
    frame.to_csv(tmp_path / "all.csv", index=False, float_format="%.17g")
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(x.size), 3)):
        frame.iloc[chunk].to_parquet(folder / f"part{i}.parquet", index=False)
    args = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1", "--sigma", "s", "--json",
            *(["--absolute-sigma"] if absolute else [])]
    memory = _cli(*args[:2], "--data", str(tmp_path / "all.csv"), *args[2:])
    assert memory.returncode == 0, memory.stderr
    ref = json.loads(memory.stdout)
    run = _cli(*args[:2], "--data", str(folder), *args[2:])
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["converged"] and got["rows"] == x.size
    unweighted = json.loads(_cli(*args[:2], "--data", str(folder), "--from", "a=1,b=1",
                                 "--json").stdout)
    assert got["parameters"]["b"] != pytest.approx(unweighted["parameters"]["b"], rel=1e-6)
    # The normal equations pin the parameters to ~sqrt(eps) x condition: on these 400 rows
    # the unweighted fits (memory vs partitions) differ by 2.7e-9 too, with the same RSS.
    for name, v in ref["parameters"].items():
        assert got["parameters"][name] == pytest.approx(v, rel=1e-8)
        assert got["stderr"][name] == pytest.approx(ref["stderr"][name], rel=1e-7)
    assert got["rss"] == pytest.approx(ref["rss"], rel=1e-12)
    assert got["r_squared"] == pytest.approx(ref["r_squared"], rel=1e-12)


def test_a_sigma_that_is_not_positive_is_bad_input_over_partitions(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 2.9], "s": [1.0, 0.0, 1.0]}
                 ).to_parquet(folder / "p0.parquet", index=False)
    run = _cli("fit", "y ~ a*x + b", "--data", str(folder), "--sigma", "s")
    assert run.returncode == 2 and "sigma column 's' must be positive and finite" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    run = _cli("fit", "y ~ a*x + b", "--data", str(folder), "--sigma", "w")
    assert run.returncode == 2 and "--sigma 'w' is not a column" in run.stderr


def test_newton_over_partitions_takes_the_in_memory_steps(tmp_path):
    """--method newton on Dask: the per-partition Hessians added in the fixed tree give the
    in-memory Newton run (same iterations, same minimum), threads and a LocalCluster."""
    folder = _split_parquet("exp_decay.csv", tmp_path / "parts")
    expr = "(a*exp(-b*x) + c - y)^2"
    common = ["--from", "a=2,b=0.5,c=0.5", "--method", "newton", "--json"]
    memory = _cli("minimize", expr, "--data", "samples/exp_decay.csv", *common)
    assert memory.returncode == 0, memory.stderr
    ref = json.loads(memory.stdout)
    assert ref["converged"]
    for extra in ([], ["--scheduler", "local:2"]):
        run = _cli("minimize", expr, "--data", str(folder), *common, *extra)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        assert got["converged"] and got["rows"] == 50 and got["partitions"] == 4
        assert got["iterations"] == ref["iterations"]
        for name, v in _where(ref).items():
            assert _where(got)[name] == pytest.approx(v, rel=1e-9, abs=1e-12)
        assert got["value"] == pytest.approx(ref["value"], rel=1e-9)


def test_newton_hessian_over_partitions_equals_the_in_memory_hessian(tmp_path):
    """The summed Hessian itself, against adcli.hessian over all rows (mean reduction)."""
    from adcli.optimize import build_objective

    folder = _split_parquet("exp_decay.csv", tmp_path / "parts")
    source = "(a*exp(-b*x) + c - y)^2"
    frame = pd.read_csv(SAMPLES / "exp_decay.csv")
    tape = adcli.parse(source).tape({"x", "y", "a", "b", "c"})
    objective, x0 = build_objective(tape, {"a": 2.0, "b": 0.5, "c": 0.5}, ["a", "b", "c"],
                                    open_partitioned(str(folder)).select(tape.inputs),
                                    factory=DaskObjective, reduce="mean", source=source,
                                    bound=["a", "b", "c", "x", "y"], scheduler=Scheduler(None))
    got = objective.hessian(x0)
    point = {"x": frame["x"].to_numpy(), "y": frame["y"].to_numpy(), "a": 2.0, "b": 0.5,
             "c": 0.5}
    ref = np.asarray(adcli.hessian(adcli.parse(source), point, wrt=["a", "b", "c"])) / 50
    assert np.allclose(got, ref, rtol=1e-12, atol=0)
