"""Dask passes: the fixed reduction tree gives the same bits for any grouping of partitions into
tasks and for kept or re-read data; a worker killed between passes is replaced by Dask (the
result is unchanged); a cluster with no worker left ends in a one-line error, exit 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import adcli
from adcli.io.sources import open_partitioned
from adcli.optimize import build_objective
from adcli.partitioned.distributed import DaskObjective, Scheduler
from adcli.partitioned.partitions import Block, block_nodes, tree_levels, tree_node, tree_sum

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LINE = "(w0 + w1*x - y)^2"


def _sequential_tree(values: list[np.ndarray]) -> np.ndarray:
    """The reference order: pairwise sums level by level, an odd last value carried up."""
    level = list(values)
    while len(level) > 1:
        nxt = [np.add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _identity(columns: dict, rows: int, *args: object) -> np.ndarray:
    return columns["v"]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 8, 13, 32, 33])
def test_any_grouping_into_blocks_gives_the_same_bits(count):
    """Values whose sums round differently in every order (1e16 and small odd numbers): the
    tree's nodes computed inside blocks of any consecutive ranges, then joined, are the
    reference tree's bits."""
    rng = np.random.default_rng(count)
    values = [np.array([rng.choice([1e16, -1e16, 1.0, 3.0]) + rng.uniform(-1, 1), float(i)])
              for i in range(count)]
    want = _sequential_tree(values)
    assert np.array_equal(tree_sum(values), want)
    for _ in range(20):
        cuts = sorted(set(rng.integers(1, count, size=rng.integers(0, count))) | {0, count}) \
            if count > 1 else [0, 1]
        known = {}
        for a, b in zip(cuts[:-1], cuts[1:]):
            block = Block(a, [{"v": values[i]} for i in range(a, b)], [1] * (b - a))
            for k, j, value in block_nodes(block, count, _identity, ()):
                known[(k, j)] = value
        got = tree_node(tree_levels(count), 0, count, known, lambda i: pytest.fail(str(i)))
        assert np.array_equal(got, want), (cuts, got, want)
        assert got[1] == count * (count - 1) / 2  # every partition counted once


def _parquet(folder: Path, sample: str = "line.csv", parts: int = 6) -> Path:
    frame = pd.read_csv(SAMPLES / sample)
    folder.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_parquet(folder / f"part{i}.parquet", index=False)
    return folder


def _objective(path: Path, where: Scheduler) -> DaskObjective:
    data = open_partitioned(str(path))
    tape = adcli.parse(LINE).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {"w0": 0.3, "w1": 1.7}, ["w0", "w1"],
                                   data.select(tape.inputs), factory=DaskObjective,
                                   reduce="sum", source=LINE, bound=["w0", "w1", "x", "y"],
                                   scheduler=where)
    return objective


def test_kept_blocks_and_re_read_partitions_give_the_same_bits(tmp_path, monkeypatch):
    folder = _parquet(tmp_path / "parts")
    x = np.array([0.3, 1.7])
    kept = {}
    for spec in ("synchronous", "threads"):
        objective = _objective(folder, Scheduler(spec))
        assert objective.persisted and objective.partitions == 6
        assert len(objective._parts.blocks) == 1  # a few KB: one block (BLOCK_BYTES)
        kept[spec] = objective(x)
    monkeypatch.setattr("adcli.partitioned.distributed.BLOCK_BYTES", 1)  # one block per thread
    objective = _objective(folder, Scheduler("threads"))
    assert len(objective._parts.blocks) == min(os.cpu_count() or 1, 6)
    kept["blocks"] = objective(x)
    monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", 0.0)
    objective = _objective(folder, Scheduler("threads"))
    assert not objective.persisted
    reread = objective(x)
    for value, grad in kept.values():
        assert value == reread[0] and np.array_equal(grad, reread[1])


def test_a_worker_killed_between_passes_is_replaced_and_the_result_is_unchanged(
        tmp_path, monkeypatch):
    """The data is kept on the 2 workers (one block each); one worker process is killed with
    SIGKILL and the next pass starts at once: Dask reads the lost block again on a live worker
    and the pass gives the same bits as before the kill (and the in-memory sums)."""
    folder = _parquet(tmp_path / "parts", parts=4)
    frame = pd.read_csv(SAMPLES / "line.csv")
    r = 0.3 + 1.7 * frame["x"].to_numpy() - frame["y"].to_numpy()
    x = np.array([0.3, 1.7])
    monkeypatch.setattr("adcli.partitioned.distributed.BLOCK_BYTES", 1)  # a block on each worker
    with Scheduler("local:2") as where:
        objective = _objective(folder, where)
        assert objective.persisted and len(objective._parts.blocks) == 2
        before = objective(x)
        assert before[0] == pytest.approx(np.sum(r * r), rel=1e-12)
        pids = where.client.run(os.getpid)
        held = where.client.has_what()
        victim = next(a for a, keys in held.items() if keys)  # a worker holding a block
        os.kill(pids[victim], signal.SIGKILL)
        after = objective(x)
        assert after[0] == before[0] and np.array_equal(after[1], before[1])
        kept = {k for keys in where.client.has_what().values() for k in keys}
        assert {b.key for b in objective._parts.blocks} <= kept
        assert victim not in where.client.has_what()
        again = objective(x + 0.5)  # and the cluster goes on working
        assert again[0] != before[0]


def test_a_worker_killed_during_a_pass_is_retried_elsewhere(tmp_path, monkeypatch):
    """Data re-read every pass; each partition task sleeps first, and the worker running one is
    killed (SIGKILL) while it runs: Dask runs the task again on a live worker and the pass
    gives the sums of one clean pass."""
    import threading

    from adcli.partitioned.distributed import Partitions, partition_sums

    monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", 0.0)
    folder = _parquet(tmp_path / "parts", parts=2)
    data = open_partitioned(str(folder)).select(["x", "y"])
    args = (LINE, ("w0", "w1", "x", "y"), ("w0", "w1"), (), (0.3, 1.7))

    def slow(columns: dict, rows: int, *rest: object) -> np.ndarray:
        time.sleep(2.0)
        return partition_sums(columns, rows, *rest)

    with Scheduler("local:2") as where:
        parts = Partitions(data, where, "data")
        assert not parts.persisted
        clean = parts.sums(partition_sums, args)
        out: dict = {}
        thread = threading.Thread(target=lambda: out.update(total=parts.sums(slow, args)))
        thread.start()
        pids = where.client.run(os.getpid)
        deadline = time.monotonic() + 60
        busy: list = []
        while not busy and time.monotonic() < deadline:
            busy = [w for w, keys in where.client.processing().items()
                    if any("adcli" in str(k) for k in keys)]
            time.sleep(0.05)
        assert busy, "no partition task started"
        time.sleep(0.3)
        os.kill(pids[busy[0]], signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive()
        assert np.array_equal(out["total"], clean)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_a_cluster_with_no_worker_is_an_error_with_exit_1_never_a_result(tmp_path):
    """A scheduler whose workers are all gone: Dask would wait for ever; adcli gives up after
    ``adcli.no-workers-timeout`` seconds (Dask config, here from the environment)."""
    from distributed import LocalCluster

    folder = _parquet(tmp_path / "parts", "exp_decay.csv", parts=3)
    env = {"DASK_ADCLI__NO_WORKERS_TIMEOUT": "1"}
    with LocalCluster(n_workers=0, dashboard_address=None, silence_logs=50) as cluster:
        address = cluster.scheduler_address
        for args in (["minimize", LINE, "--data", str(folder), "--wrt", "w0,w1", "--json"],
                     ["fit", "y ~ a*exp(-b*x) + c", "--data", str(folder), "--from", "a=1,b=1",
                      "--json"]):
            began = time.monotonic()
            run = _cli(*args, "--scheduler", address, env=env)
            assert run.returncode == 1, (run.returncode, run.stderr)
            assert run.stdout == ""  # no result, converged or not
            assert run.stderr.startswith("Error: no Dask worker left for 1 s")
            assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
            assert time.monotonic() - began < 60


def test_a_closed_scheduler_is_a_cluster_error(tmp_path):
    from adcli.partitioned.distributed import ClusterError

    folder = _parquet(tmp_path / "parts", parts=2)
    with Scheduler("local:1") as where:
        objective = _objective(folder, where)
        assert objective(np.array([0.3, 1.7]))[0] > 0
        where.cluster.close()
        with pytest.raises(ClusterError) as err:
            objective(np.array([0.3, 1.7]))
        assert err.value.exit_code == 1


def test_minimize_auto_on_a_squared_residual_uses_least_squares_as_in_memory(tmp_path):
    """method auto routes a squared residual over partitions to the least-squares engine fed
    by the partitions' R factors (adcli.partitioned.bigfit), as the in-memory route goes to the same
    engine on the full Jacobian; the minimum agrees to 1e-9 relative over 3 partitions;
    anything else stays with BFGS."""
    folder = _parquet(tmp_path / "parts", "exp_decay.csv", parts=3)
    expr = "(a*exp(-b*x) + c - y)^2"
    common = ["minimize", expr, "--from", "a=1,b=1,c=0", "--json"]
    memory = _cli(*common, "--data", "samples/exp_decay.csv")
    assert memory.returncode == 0, memory.stderr
    ref = json.loads(memory.stdout)
    assert ref["method"] == "least-squares"
    run = _cli(*common, "--data", str(folder))
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert "used the least-squares engine" in run.stderr
    assert got["method"] == "least-squares" and got["converged"] and got["rows"] == 50
    for name, v in ref["minimum"].items():
        assert got["minimum"][name] == pytest.approx(v, rel=1e-9)
    assert got["value"] == pytest.approx(ref["value"], rel=1e-12)
    assert got["grad_norm"] < 1e-8
    # --reduce sum: the same minimum, the value 50x
    total = json.loads(_cli(*common, "--data", str(folder), "--reduce", "sum").stdout)
    assert total["value"] == pytest.approx(50 * ref["value"], rel=1e-12)
    # not a square of a residual: BFGS, as before
    other = _cli("minimize", expr + " + 0.001*a^2", "--from", "a=1,b=1,c=0", "--json",
                 "--data", str(folder))
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["method"] == "bfgs"


def _malloc_environ() -> tuple[str | None, str | None]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("MALLOC_MMAP_THRESHOLD_")


def test_local_workers_keep_sweep_temporaries_on_the_heap():
    """Dask's default worker environment (a 64 KiB trim threshold) made every block temporary
    an mmap/munmap pair: a worker swept 2.3x slower than the client. adcli's local:N
    cluster starts its workers with large thresholds instead; Dask's own setting is left as it
    was for anything else."""
    import dask
    import distributed  # noqa: F401 - loads the distributed.* configuration

    from adcli.partitioned.distributed import WORKER_ENVIRON

    before = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    with Scheduler("local:1") as where:
        seen = list(where.client.run(_malloc_environ).values())
    assert seen == [(str(WORKER_ENVIRON["MALLOC_TRIM_THRESHOLD_"]),
                     str(WORKER_ENVIRON["MALLOC_MMAP_THRESHOLD_"]))]
    assert dict(dask.config.get("distributed.nanny.pre-spawn-environ")) == before


@pytest.mark.parametrize("persist", [0.25, 0.0], ids=["kept", "re-read"])
def test_a_second_client_in_the_process_does_not_slow_the_passes_of_the_first(
        tmp_path, monkeypatch, persist):
    """Two adcli runs on one cluster in one process (or the user's own client opened after
    adcli's): a pass of the first must wait on its own client. ``distributed.wait`` follows the
    process's default client, the newest one; on another client's event loop it never hears
    that the futures finished and returns only at its timeout, once every pass. Counted, not
    timed: each wait is recorded with the client it runs on and whether it timed out."""
    import distributed
    from distributed import LocalCluster

    monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", persist)
    folder = _parquet(tmp_path / "parts", parts=4)
    seen: list[tuple[object, bool]] = []
    real_wait = distributed.wait

    def counting_wait(futures, timeout=None, **kw):
        client = distributed.default_client()
        try:
            out = real_wait(futures, timeout=timeout, **kw)
        except TimeoutError:
            seen.append((client, True))
            raise
        seen.append((client, False))
        return out

    monkeypatch.setattr(distributed, "wait", counting_wait)
    x = np.array([0.3, 1.7])
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2, protocol="tcp",
                      dashboard_address=None, silence_logs=50) as cluster, \
            Scheduler(cluster.scheduler_address) as first:
        objective = _objective(folder, first)
        assert objective.persisted == (persist > 0)
        alone = objective(x)
        with Scheduler(cluster.scheduler_address) as second:
            other = _objective(folder, second)
            assert distributed.default_client() is second.client  # the newest is the default
            seen.clear()
            for _ in range(3):
                again = objective(x)
                assert again[0] == alone[0] and np.array_equal(again[1], alone[1])
            assert seen and all(client is first.client for client, _ in seen), seen
            assert not any(timed_out for _, timed_out in seen), seen
            assert other(x)[0] == alone[0]
