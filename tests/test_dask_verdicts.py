"""minimize over data on Dask says what it says in memory on expressions with kinks and jumps
(abs, max, min, relu, sign, step): the same reason, exit status and point, because the Dask
objective has the in-memory objective's branch test, computed over the partitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adcli
from adcli.io.data import read_csv
from adcli.io.sources import open_partitioned
from adcli.optimize import build_objective, exit_status, minimize, resolve_method
from adcli.optimize.checks import flat_around
from adcli.partitioned.distributed import DaskObjective, Scheduler

pytest.importorskip("dask")

ROOT = Path(__file__).resolve().parent.parent

#: (case class, expression, start): a stall on a kink (a weighted median), the same as a max,
#: two kinks, a segment of minima (the median of an even count: a constant piece, its rows
#: summed in another order on Dask), a constant piece of relu, a kink away from the minimum,
#: values that jump (step, sign; the lower side across: no-progress), a min beside an abs,
#: a plateau (relu lost beside 1e20: flat).
CASES = [
    ("kink", "abs(a*x - y)", {"a": 0.0}),
    ("max", "max(a*x - y, y - a*x)", {"a": 5.0}),
    ("two kinks", "abs(a*x - y) + abs(b)", {"a": 0.0, "b": 1.0}),
    ("segment", "abs(a - x) + abs(b - y)", {"a": 0.0, "b": 0.0}),
    ("constant piece", "relu(a - x)", {"a": -5.0}),
    ("kink aside", "relu(a - x) + (a - 3)^2", {"a": 0.0}),
    ("step", "step(a - x) + (a - 0.5145)^2", {"a": 3.0}),
    ("sign", "sign(x - a) + 0.1*(a - 0.5145)^2", {"a": 3.0}),
    ("min", "min(a, x)^2 + abs(a - 1)", {"a": 4.0}),
    ("plateau", "relu(a - x) + 1e20", {"a": 3.0}),
]
METHODS = ["bfgs", "lbfgs", "newton", "gd", "auto"]


def _rows() -> tuple[list[float], list[float]]:
    """30 rows with 3 decimals (exact in CSV text), some x equal to others' y."""
    rng = np.random.default_rng(3)
    x = [float(v) for v in np.round(rng.uniform(0, 6, 30), 3)]
    y = [float(v) for v in np.round(1.5 * np.array(x) + rng.normal(0, 0.5, 30), 3)]
    return x, y


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """The rows in one CSV file and cut into three (three partitions)."""
    folder = tmp_path_factory.mktemp("verdicts")
    x, y = _rows()
    whole = folder / "all.csv"
    whole.write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(x, y)))
    parts = folder / "parts"
    parts.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(x)), 3)):
        (parts / f"p{i}.csv").write_text(
            "x,y\n" + "".join(f"{x[j]!r},{y[j]!r}\n" for j in chunk))
    return whole, parts


@pytest.fixture(scope="module")
def synchronous():
    with Scheduler("synchronous") as where:
        yield where


def _run(expr: str, start: dict, method: str, whole: Path, parts: Path,
         where: Scheduler | None):
    """The driver's result in memory (``where`` None) or over the partitions."""
    function = adcli.parse(expr)
    if where is None:
        data = read_csv(str(whole))
    else:
        data = open_partitioned(str(parts / "*.csv"), None, {})
    tape = function.tape(set(data.names) | set(start))
    data = data.select(tape.inputs) if where is None else data.select(tape.inputs, False)
    extra = {} if where is None else {"factory": DaskObjective, "source": expr,
                                      "bound": sorted(start), "scheduler": where}
    objective, x0 = build_objective(tape, start, None, data, **extra)
    resolved = resolve_method(method, len(x0))
    return minimize(objective, x0, method=resolved, steps=2000), objective


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_dask_verdict_is_the_in_memory_one(case, method, files, synchronous):
    _, expr, start = case
    ref, _ = _run(expr, start, method, *files, None)
    got, objective = _run(expr, start, method, *files, synchronous)
    assert objective.partitions == 3 and objective.rows == 30
    assert (got.reason, got.converged) == (ref.reason, ref.converged), (got.message,
                                                                          ref.message)
    assert exit_status(got) == exit_status(ref)
    assert ("kink of EXPR" in got.message) == ("kink of EXPR" in ref.message)
    np.testing.assert_allclose(got.x, ref.x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[0], CASES[6]], ids=["kink", "step"])
def test_data_re_read_every_pass_gives_the_same_verdicts(case, files, synchronous,
                                                         monkeypatch):
    """Data too big to keep (re-read each pass, one task a partition): the same verdicts."""
    import adcli.partitioned.distributed as distributed

    monkeypatch.setattr(distributed, "PERSIST_FRACTION", 0.0)
    _, expr, start = case
    ref, _ = _run(expr, start, "bfgs", *files, None)
    got, objective = _run(expr, start, "bfgs", *files, synchronous)
    assert not objective.persisted
    assert (got.reason, exit_status(got)) == (ref.reason, exit_status(ref))
    np.testing.assert_allclose(got.x, ref.x, rtol=1e-9, atol=1e-12)


def test_the_kink_verdicts_are_not_all_one_kind(files, synchronous):
    """The cases above reach the different verdicts (else their parity would say little)."""
    reasons = {_run(expr, start, "bfgs", *files, None)[0].reason for _, expr, start in CASES}
    assert {"no-progress", "grad-tol", "flat"} <= reasons


def test_a_branch_signature_is_equal_where_every_row_is_on_the_same_side(files,
                                                                          synchronous):
    """The Dask signature compares as the in-memory array does, with a 0 exactly where a
    row is on a kink, and a probed point costs one pass."""
    whole, parts = files
    expr = "abs(a - x) + relu(b - y) + step(a - b)"
    tape = adcli.parse(expr).tape({"x", "y", "a", "b"})
    memory, _ = build_objective(tape, {"a": 0.0, "b": 0.0}, None,
                                read_csv(str(whole)).select(tape.inputs))
    data = open_partitioned(str(parts / "*.csv"), None, {}).select(tape.inputs, False)
    dask, _ = build_objective(tape, {"a": 0.0, "b": 0.0}, None, data, factory=DaskObjective,
                              source=expr, bound=["a", "b"], scheduler=synchronous)
    x0 = _rows()[0][4]
    points = [np.array(p) for p in ([1.0, 2.0], [np.nextafter(1.0, 2.0), 2.0], [1.5, 2.0],
                                    [x0, 2.0], [np.nextafter(x0, 9.0), 2.0], [2.0, 2.0])]
    pairs = 0
    for p in points:
        here = memory.branches(p)
        assert bool(np.any(dask.branches(p) == 0)) == bool(np.any(here == 0))
        for q in points:
            same = np.array_equal(memory.branches(q), here)
            assert np.array_equal(dask.branches(q), dask.branches(p)) == same
            pairs += not same
    assert pairs  # some pairs differ
    before = dask.passes
    dask.branches(points[2])
    value, grad = dask(points[2])
    assert dask.passes == before + 1
    ref = memory(points[2])
    assert value == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-12)


def test_a_constant_piece_summed_in_another_order_is_still_a_constant_piece():
    """Rounding that differs with the summation order (f's last place) does not make a
    constant piece of a kinked expression a plateau: the gradient is exactly 0 at every
    look, the value the same to rounding."""
    f0 = 1.4065333333333334

    def evaluate(z: np.ndarray) -> tuple[float, np.ndarray]:
        return (f0 if z[0] > 0 else np.nextafter(f0, 0.0)), np.zeros(1)

    flat = flat_around(np.array([2.83]), f0, np.zeros(1), evaluate)
    assert flat is not None and flat[1]
    moving = flat_around(np.array([2.83]), f0, np.zeros(1),
                         lambda z: (f0, np.array([1e-300])))
    assert moving is not None and not moving[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ), cwd=ROOT)


@pytest.mark.parametrize("expr,start,method,scheduler", [
    ("abs(a*x - y)", "a=0", "bfgs", "synchronous"),
    ("step(a - x) + (a - 0.5145)^2", "a=3", "auto", "synchronous"),
    ("relu(a - x) + 1e20", "a=3", "newton", "synchronous"),
    ("abs(a*x - y) + abs(b)", "a=0,b=1", "auto", "local:2"),
    ("abs(a - x) + abs(b - y)", "a=0,b=0", "lbfgs", "local:2"),
])
def test_the_command_on_dask_says_what_it_says_in_memory(expr, start, method, scheduler,
                                                         files):
    whole, parts = files
    common = ["--from", start, "--method", method, "--json"]
    memory = _cli("minimize", expr, "--data", str(whole), *common)
    dask = _cli("minimize", expr, "--data", str(parts / "*.csv"), "--scheduler", scheduler,
                *common)
    assert memory.returncode in (0, 1), memory.stderr
    assert dask.returncode == memory.returncode, dask.stderr
    ref, got = json.loads(memory.stdout), json.loads(dask.stdout)
    assert got["reason"] == ref["reason"] and got["partitions"] == 3
    where = "minimum" if ref["converged"] else "point"
    for name, v in ref[where].items():
        assert got[where][name] == pytest.approx(v, rel=1e-9, abs=1e-12)
