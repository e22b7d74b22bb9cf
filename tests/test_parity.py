"""The same command lines of ``fit`` and ``minimize --data`` in memory, with ``--scheduler
synchronous`` and on a LocalCluster of 2 worker processes: the same exit status, the same
stderr lines, the same JSON (numbers to 1e-10 relative, counts equal), no traceback.

Both engines share one setup (adcli.regression.problem) and one least-squares engine; they differ in
how the rows are swept and summed, so only rounding may differ. What is legitimately about
Dask, and so left out of the comparison, is listed in DASK_ONLY.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adcli.cli import cli

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

#: stderr lines only a run on Dask prints: where the rows were and how many passes it took.
DASK_ONLY = [re.compile(r"^[\d,]+ rows in \d+ partitions, \d+ passes$")]
#: JSON keys only ``minimize --data`` on Dask adds (the in-memory report has no partitions).
DASK_KEYS = {"partitions", "rows"}
#: numbers agree to this relative difference (the sums are added in another order); a
#: number whose size is at the rounding level of its run (a gradient norm of 1e-15 at a
#: minimum) is compared with this absolute tolerance instead
RTOL, ATOL = 1e-10, 1e-12

EXP = "y ~ a*exp(-b*x) + c"
LINE = "(w0 + w1*x - y)^2"
#: a logistic regression's negative log-likelihood (minimize --stderr)
LOGIT = "softplus(a + b*hours) - passed*(a + b*hours)"
#: 102 parameters, not a plain square: method auto is L-BFGS in memory and on Dask
WIDE = "(" + " + ".join(f"u{i}" for i in range(100)) + " + w0 + w1*x - y)^2 + 0.01*w0^2"


def _files(folder: Path) -> dict[str, str]:
    """Small data files with the cases the matrix needs: weights, a perfect line, a model
    worse than a constant, bad cells, a misspelt column."""
    rng = np.random.default_rng(7)
    x = np.linspace(0.0, 4.0, 30)
    y = 4.0 * np.exp(-1.3 * x) + 0.5 + rng.normal(0, 0.05, x.size)
    s = 0.02 + 0.08 * rng.random(x.size)
    out = {}

    def write(name: str, text: str) -> None:
        (folder / name).write_text(text)
        out[name] = str(folder / name)

    write("weighted.csv", "x,y,s\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in
                                             zip(x.tolist(), y.tolist(), s.tolist())))
    write("perfect.csv", "x,y\n" + "".join(f"{a:g},{2 + 3 * a:g}\n" for a in range(6)))
    write("worse.csv", "x,y\n" + "".join(f"{a:g},{5 - a:g}\n" for a in range(6)))
    write("badcell.csv", "x,y\n1,2\n2,abc\n3,4\n")
    write("nullcell.csv", "x,y\n1,2\nNULL,3\n3,4\n")
    write("upper.csv", "S,v\n" + "".join(f"{a:g},{2 * a / (0.5 + a)!r}\n" for a in
                                         (0.1, 0.2, 0.5, 1, 2, 5, 10)))
    return out


def _cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    exp = str(SAMPLES / "exp_decay.csv")
    line = str(SAMPLES / "line.csv")
    exam = str(SAMPLES / "exam.csv")
    fit = [
        ("fit", [EXP, "--data", exp, "--from", "a=1,b=1", "--json"]),
        ("fit-text", [EXP, "--data", exp, "--from", "a=1,b=1"]),
        ("fit-default-start", [EXP, "--data", exp, "--json"]),
        ("fit-params", [EXP, "--data", exp, "--params", "a,b,c", "--json"]),
        ("fit-fix", [EXP, "--data", exp, "--fix", "c=0.5", "--json"]),
        ("fit-bounds", [EXP, "--data", exp, "--bounds", "b=0:1", "--json"]),
        ("fit-sigma", [EXP, "--data", f["weighted.csv"], "--sigma", "s", "--json"]),
        ("fit-abs-sigma", [EXP, "--data", f["weighted.csv"], "--sigma", "s",
                           "--absolute-sigma", "--json"]),
        ("fit-ci-wald", [EXP, "--data", f["weighted.csv"], "--sigma", "s", "--fix", "c=0.5",
                         "--ci", "wald", "--level", "90%,0.99", "--json"]),
        ("fit-ci-wald-text", [EXP, "--data", exp, "--from", "a=1,b=1", "--ci", "wald"]),
        ("fit-ci-bad-level", [EXP, "--data", exp, "--ci", "wald", "--level", "1.5"]),
        ("fit-ci-profile", [EXP, "--data", exp, "--from", "a=1,b=1", "--ci", "profile",
                            "--level", "0.95", "--json"]),
        ("fit-ci-profile-text", [EXP, "--data", f["weighted.csv"], "--sigma", "s", "--fix",
                                 "c=0.5", "--bounds", "b=0:1.32", "--ci", "profile",
                                 "--derive", "t_half = log(2)/b"]),
        ("fit-derive", [EXP, "--data", exp, "--derive", "t_half = log(2)/b", "--derive",
                        "y0 = a + c", "--json"]),
        ("fit-derive-clash", [EXP, "--data", exp, "--derive", "b = 2*a"]),
        ("fit-max-evals", [EXP, "--data", exp, "--max-evaluations", "3", "--json"]),
        ("fit-max-time", [EXP, "--data", exp, "--max-time", "0.000001"]),
        ("fit-perfect", ["y ~ a + b*x", "--data", f["perfect.csv"], "--json"]),
        ("fit-worse", ["y ~ a*x", "--data", f["worse.csv"], "--json"]),
        ("fit-zero-column", ["y ~ a*exp(-b*x)", "--data", exp, "--from", "a=0", "--json"]),
        ("fit-e-constant", ["y ~ a + b*x + e*x^2", "--data", line, "--json"]),
        ("fit-e-parameter", ["y ~ a + b*x + e*x^2", "--data", line, "--from", "e=0",
                             "--json"]),
        ("fit-misspelt", ["v ~ Vmax*s/(Km + s)", "--data", f["upper.csv"]]),
        ("fit-misspelt-declared", ["v ~ Vmax*S/(Km + S)", "--data", f["upper.csv"],
                                   "--params", "Vmax,Km", "--json"]),
        ("fit-params-missing", ["v ~ Vmax*S/(Km + S)", "--data", f["upper.csv"],
                                "--params", "Vmax"]),
        ("fit-unknown-from", [EXP, "--data", exp, "--from", "bb=1"]),
        ("fit-unknown-fix", [EXP, "--data", exp, "--fix", "q=1"]),
        ("fit-unknown-bounds", [EXP, "--data", exp, "--bounds", "cc=0:1"]),
        ("fit-column-from", [EXP, "--data", exp, "--from", "x=1"]),
        ("fit-missing-sigma", [EXP, "--data", exp, "--sigma", "sd"]),
        ("fit-missing-lhs", ["yy ~ a*x", "--data", exp]),
        ("fit-bad-cell", ["y ~ a*x + b", "--data", f["badcell.csv"]]),
        ("fit-null-cell", ["y ~ a*x + b", "--data", f["nullcell.csv"]]),
        ("fit-null-dropna", ["y ~ a*x + b", "--data", f["nullcell.csv"], "--dropna",
                             "--json"]),
        ("fit-nonfinite-start", ["y ~ log(a)*x", "--data", line, "--from", "a=-1"]),
    ]
    mini = [
        ("min-auto", [LINE, "--data", line, "--json"]),
        ("min-auto-text", [LINE, "--data", line]),
        ("min-auto-wrt", [LINE, "--data", line, "--wrt", "w0,w1", "--from", "w0=0.5",
                          "--json"]),
        ("min-sum", [LINE, "--data", line, "--reduce", "sum", "--json"]),
        ("min-bounds-auto", [LINE, "--data", line, "--bounds", "w0=0:1", "--json"]),
        ("min-newton-bounds", [LINE, "--data", line, "--method", "newton", "--bounds",
                               "w0=0:1"]),
        ("min-max-time", [LINE, "--data", line, "--max-time", "0.000001"]),
        ("min-e-constant", ["(w0 + w1*x + e - y)^2", "--data", line, "--json"]),
        ("min-misspelt", ["(w0 + w1*X - y)^2", "--data", line]),
        ("min-unknown-from", [LINE, "--data", line, "--from", "w2=1"]),
        ("min-column-from", [LINE, "--data", line, "--from", "x=1"]),
        ("min-bad-cell", [LINE, "--data", f["badcell.csv"]]),
        ("min-init-scale", [LINE, "--data", line, "--init-scale", "1", "--seed", "3",
                            "--method", "bfgs", "--json"]),
        # not a square of a residual: auto picks by the problem (lbfgs above 100 parameters)
        ("min-auto-bfgs", [LINE + " + 0.01*w0^2", "--data", line, "--json"]),
        ("min-auto-lbfgs", [WIDE, "--data", line, "--json"]),
        ("min-trace", [LINE, "--data", line, "--method", "bfgs", "--trace", "TRACE"]),
        ("min-stderr-hessian", [LOGIT, "--data", exam, "--reduce", "sum", "--wrt", "a,b",
                                "--stderr", "hessian", "--json"]),
        ("min-stderr-sandwich", [LOGIT, "--data", exam, "--reduce", "sum", "--wrt", "a,b",
                                 "--stderr", "sandwich", "--json"]),
        ("min-stderr-text", [LOGIT, "--data", exam, "--reduce", "sum", "--stderr", "sandwich"]),
        ("min-stderr-mean", [LOGIT, "--data", exam, "--stderr", "hessian"]),
        ("min-stderr-singular", [LOGIT + " + 0*c", "--data", exam, "--reduce", "sum",
                                 "--stderr", "hessian", "--json"]),
    ]
    for method, extra in (("bfgs", []), ("lbfgs", []), ("newton", []),
                          ("gd", ["--lr", "0.1", "--steps", "60"]),
                          ("momentum", ["--lr", "0.05", "--steps", "60"]),
                          ("nesterov", ["--lr", "0.05", "--steps", "60"]),
                          ("adam", ["--lr", "0.1", "--steps", "60"]),
                          ("bfgs", ["--lr", "0.1", "--momentum", "0.5"])):
        name = f"min-{method}" + ("-ignored" if "--momentum" in extra else "")
        mini.append((name, [LINE, "--data", line, "--method", method, *extra, "--json"]))
    return [("fit", [name, *args]) for name, args in fit] + \
        [("minimize", [name, *args]) for name, args in mini]


#: the cases also run on the LocalCluster (each a few passes over two worker processes)
CLUSTER = {"fit", "fit-sigma", "fit-bounds", "fit-misspelt", "fit-bad-cell", "fit-ci-profile",
           "fit-perfect", "min-auto", "min-bfgs", "min-newton", "min-momentum",
           "min-bad-cell", "min-unknown-from", "min-trace", "min-stderr-sandwich"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _files(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def cluster_address():
    """One LocalCluster of 2 worker processes for every cluster case (what --scheduler
    local:2 starts, started once: a cluster per command line would take most of the time)."""
    import dask
    from distributed import LocalCluster

    from adcli.partitioned.workers import WORKER_ENVIRON

    # The workers as the README configures them (else adcli rightly warns about malloc).
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None, silence_logs=50) as cluster:
        yield cluster.scheduler_address


def _run(command: str, args: list[str], scheduler: str | None) -> tuple[int, str, str]:
    extra = ["--scheduler", scheduler] if scheduler else []
    result = CliRunner().invoke(cli, [command, *args, *extra], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.stdout, result.stderr


def _lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if not any(p.match(ln) for p in DASK_ONLY)]


def _same(a: object, b: object, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), (where, list(a), list(b))
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), (where, a, b)
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _compare(case: list[str], command: str, scheduler: str, tmp: Path | None = None) -> None:
    name, args = case[0], case[1:]
    traces = []
    if "TRACE" in args:  # each run writes its own trace; the files must be the same
        assert tmp is not None
        traces = [tmp / "memory.csv", tmp / "dask.csv"]
    here = _run(command, [str(traces[0]) if a == "TRACE" else a for a in args], None)
    there = _run(command, [str(traces[1]) if a == "TRACE" else a for a in args], scheduler)
    if traces:
        here = (here[0], here[1], here[2].replace(str(traces[0]), "TRACE"))
        there = (there[0], there[1], there[2].replace(str(traces[1]), "TRACE"))
        _same_trace(traces[0].read_text(), traces[1].read_text())
    for out in (here, there):
        assert "Traceback" not in out[1] + out[2], out
    assert here[0] == there[0], (name, here, there)
    assert _lines(here[2]) == _lines(there[2]), (name, here[2], there[2])
    if "--json" in args and here[0] in (0, 1):
        mem, dask = json.loads(here[1]), json.loads(there[1])
        extra = set(dask) - set(mem)
        assert extra <= (DASK_KEYS if command == "minimize" else set()), (name, extra)
        _same(mem, {k: v for k, v in dask.items() if k in mem}, name)
    else:
        assert here[1] == there[1], (name, here[1], there[1])


def _same_trace(a: str, b: str) -> None:
    rows_a, rows_b = a.splitlines(), b.splitlines()
    assert rows_a[0] == rows_b[0] and len(rows_a) == len(rows_b) > 2
    for u, v in zip(rows_a[1:], rows_b[1:]):
        _same([float(c) for c in u.split(",")], [float(c) for c in v.split(",")], "trace")


ALL = _cases({k: k for k in ("weighted.csv", "perfect.csv", "worse.csv", "badcell.csv",
                             "nullcell.csv", "upper.csv")})


def _resolve(case: tuple[str, list[str]], files: dict[str, str]) -> list[str]:
    return [files.get(a, a) for a in case[1]]


@pytest.mark.parametrize("case", ALL, ids=[c[1][0] for c in ALL])
def test_in_memory_and_synchronous_agree(case, files, tmp_path):
    _compare(_resolve(case, files), case[0], "synchronous", tmp_path)


CLUSTER_CASES = [c for c in ALL if c[1][0] in CLUSTER]


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=[c[1][0] for c in CLUSTER_CASES])
def test_in_memory_and_a_cluster_of_two_workers_agree(case, files, cluster_address, tmp_path):
    _compare(_resolve(case, files), case[0], cluster_address, tmp_path)


def test_local_2_itself(files):
    """``--scheduler local:2`` as a user types it (the cluster started by adcli)."""
    case = next(c for c in ALL if c[1][0] == "fit")
    _compare(_resolve(case, files), "fit", "local:2")


def test_dask_fit_parses_once_and_lowers_once_per_run(monkeypatch):
    """The formula is parsed once by the command and once on the worker (cached there), and
    the tape is lowered a fixed number of times, not once per partition and pass."""
    import adcli.commands.fit as fit_command
    import adcli.function as function
    import adcli.partitioned.bigfit as bigfit
    import adcli.partitioned.distributed as distributed

    for cache in (bigfit._formula, bigfit._function, bigfit._lhs):
        cache.cache_clear()
    counts = {"parse": 0, "lower": 0, "passes": 0}

    def counting(module, name, key):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counting(fit_command, "parse_formula", "parse")
    counting(bigfit, "parse_formula", "parse")
    counting(function, "lower", "lower")
    counting(distributed.Partitions, "sums", "passes")
    code, out, err = _run("fit", [EXP, "--data", str(SAMPLES / "exp_decay.csv"), "--json"],
                          "synchronous")
    assert code == 0, err
    assert counts["passes"] >= 10
    assert counts["parse"] == 2
    # the command's setup, the worker's residual program and its left side (for R^2)
    assert counts["lower"] == 3, counts


def test_minibatches_pick_the_same_method(files):
    """--batch-size: auto is Adam on both paths. The minibatches themselves are drawn
    differently (shuffled rows in memory, a partition then rows of it on Dask), so only the
    method, the outcome and the messages are compared."""
    args = [LINE, "--data", str(SAMPLES / "line.csv"), "--batch-size", "10", "--seed", "1",
            "--steps", "30", "--json"]
    here, there = _run("minimize", args, None), _run("minimize", args, "synchronous")
    assert here[0] == there[0] == 0
    assert _lines(here[2]) == _lines(there[2])
    mem, dask = json.loads(here[1]), json.loads(there[1])
    assert mem["method"] == dask["method"] == "adam"
    assert mem["iterations"] == dask["iterations"]


def test_the_two_dask_tracebacks_of_issue_21(tmp_path):
    """`minimize ... --method momentum --scheduler synchronous` (momentum=None reached the
    rule) and a bad cell in the FIRST file of a glob (pandas reads it while building the
    frame): now the in-memory results and messages."""
    args = [LINE, "--data", str(SAMPLES / "line.csv"), "--method", "momentum", "--json"]
    here, there = _run("minimize", args, None), _run("minimize", args, "synchronous")
    assert here[0] == there[0] == 0 and "Traceback" not in there[2]
    _same(json.loads(here[1]), {k: v for k, v in json.loads(there[1]).items()
                                if k not in DASK_KEYS}, "momentum")
    for cell in ("abc", "NULL"):
        folder = tmp_path / cell
        folder.mkdir()
        (folder / "a1.csv").write_text(f"x,y\n1,2\n{cell},3\n3,4\n")
        (folder / "a2.csv").write_text("x,y\n1,2\n2,3\n3,4\n")
        code, out, err = _run("fit", ["y ~ a*x + b", "--data", str(folder / "a*.csv")], None)
        alone = _run("fit", ["y ~ a*x + b", "--data", str(folder / "a1.csv")], None)
        assert code == alone[0] == 2 and out == ""
        assert err == alone[2] and err.startswith(
            f"Error: data file '{folder / 'a1.csv'}', line 3, column 1 ('x'): '{cell}' is not "
            "a number"), err
