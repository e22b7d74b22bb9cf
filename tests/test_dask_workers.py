"""Real workers and real machines: a worker that cannot import adcli is named in one ``Error:``
line before the first pass (exit 1, never "no Dask worker left"), a worker with Dask's default
malloc settings gets one ``Warning:`` with the fix, and the bits of a fit do not depend on BLAS's
thread count, in memory, on the synchronous scheduler or on ``local:2``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

FIT = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1", "--json"]


def _adcli(*args: str, env: dict | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, env=full, timeout=300, cwd=cwd)


def _rows(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 5, n)
    return x, 2 * np.exp(-0.7 * x) + 0.3 + rng.normal(0, 0.05, n)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """Two Parquet files of 40,000 rows and the same rows as one CSV file: over 30,000 rows,
    OpenBLAS splits a dot product over its threads."""
    root = tmp_path_factory.mktemp("blas")
    x, y = _rows(80_000)
    (root / "pq").mkdir()
    for i in range(2):
        part = slice(40_000 * i, 40_000 * (i + 1))
        pd.DataFrame({"x": x[part], "y": y[part]}).to_parquet(root / "pq" / f"p{i}.parquet",
                                                               index=False)
    pd.DataFrame({"x": x, "y": y}).to_csv(root / "all.csv", index=False)
    return root


@pytest.mark.parametrize("where", ["memory", "synchronous", "local:2"])
def test_blas_threads_do_not_change_the_bits(lake: Path, where: str) -> None:
    if where == "memory":
        args = ["--data", str(lake / "all.csv")]
    else:
        args = ["--data", str(lake / "pq"), "--scheduler", where]
    runs = [_adcli(*FIT, *args, env={"OPENBLAS_NUM_THREADS": str(n), "OMP_NUM_THREADS": str(n)})
            for n in (1, 4)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    one, four = (json.loads(r.stdout) for r in runs)
    assert one["converged"] and one["parameters"]["b"] == pytest.approx(0.7, abs=0.01)
    assert one == four  # every number, bit for bit


def test_pin_blas_sets_and_restores_the_thread_count() -> None:
    from adcli.fast.blas import _libraries, pin_blas, restore_blas

    if not _libraries():
        pytest.skip("no BLAS library with a thread control is loaded")
    setter, getter = _libraries()[0]
    setter(2)
    expected = getter()  # 1 on a one-core machine, else 2
    before = pin_blas()
    assert getter() == 1
    restore_blas(before)
    assert getter() == expected


@pytest.fixture
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=None, silence_logs=50) as cluster:
        yield cluster.scheduler_address


def _worker(address: str, tmp_path: Path, python: list[str], env: dict, nanny: bool = True
            ) -> subprocess.Popen:
    """A ``dask worker`` process started by hand; its stderr goes to a file."""
    args = [*python, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
            "--no-dashboard", "--nanny" if nanny else "--no-nanny"]
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        deadline = time.monotonic() + 60
        while len(client.scheduler_info()["workers"]) != count:
            assert time.monotonic() < deadline, "the worker did not register"
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _small_lake(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    x, y = _rows(600)
    for i in range(3):
        pd.DataFrame({"x": x[200 * i:200 * (i + 1)], "y": y[200 * i:200 * (i + 1)]}
                     ).to_parquet(folder / f"p{i}.parquet", index=False)
    return folder


def _site_packages_without_adcli(tmp_path: Path) -> str:
    """A directory that holds links to everything in site-packages but adcli itself."""
    mirror = tmp_path / "site-packages"
    mirror.mkdir()
    for key in ("purelib", "platlib"):
        for entry in Path(sysconfig.get_paths()[key]).iterdir():
            name = entry.name.lower()
            if name.startswith("adcli") or ("editable" in name and "adcli" in name):
                continue
            if not (mirror / entry.name).exists():
                (mirror / entry.name).symlink_to(entry)
    return str(mirror)


def test_a_worker_without_adcli_is_named_before_the_first_pass(tmp_path: Path,
                                                               scheduler: str) -> None:
    """The worker runs this Python without its site machinery (``-S``) and with a copy of
    site-packages without adcli on PYTHONPATH (links to every other entry): dask and
    distributed import, adcli (installed editable through a .pth file, or as a package) does
    not, as on a machine where it was never installed. The run's working directory is not the
    repository either."""
    env = dict(os.environ, PYTHONPATH=_site_packages_without_adcli(tmp_path))
    env.pop("PYTHONSTARTUP", None)
    probe = subprocess.run([sys.executable, "-S", "-c", "import distributed, adcli"], env=env,
                           cwd=tmp_path, capture_output=True, text=True)
    assert "No module named 'adcli'" in probe.stderr  # the worker's environment really lacks it
    folder = _small_lake(tmp_path)
    worker = _worker(scheduler, tmp_path, [sys.executable, "-S"], env, nanny=False)
    try:
        _wait_for_workers(scheduler, 1)
        began = time.monotonic()
        run = _adcli(*FIT, "--data", str(folder), "--scheduler", scheduler, cwd=tmp_path)
        took = time.monotonic() - began
    finally:
        _stop(worker)
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the Dask worker tcp://"), run.stderr
    assert "cannot import adcli (ModuleNotFoundError: No module named 'adcli')" in lines[0]
    assert "no Dask worker left" not in run.stderr
    assert took < 60
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def test_a_worker_with_dasks_malloc_settings_gets_one_warning(tmp_path: Path,
                                                              scheduler: str) -> None:
    """``dask worker`` (with its nanny) sets MALLOC_TRIM_THRESHOLD_ to 64 KiB: one Warning
    that says how to fix it; the README's Dask config file silences it."""
    folder = _small_lake(tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    # without what Dask's nanny wrote into this process's environment for earlier workers
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["DASK_CONFIG"] = str(config)
    worker = _worker(scheduler, tmp_path, [sys.executable], env)
    try:
        _wait_for_workers(scheduler, 1)
        run = _adcli(*FIT, "--data", str(folder), "--scheduler", scheduler)
    finally:
        _stop(worker)
        _wait_for_workers(scheduler, 0)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: the Dask worker tcp://"), lines
    assert ("{pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: 134217728, "
            "MALLOC_MMAP_THRESHOLD_: 33554432}}}") in lines[0]
    fitted = json.loads(run.stdout)

    (config / "adcli-workers.yaml").write_text(
        "distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: 134217728,\n"
        "  MALLOC_MMAP_THRESHOLD_: 33554432}}}\n")
    worker = _worker(scheduler, tmp_path, [sys.executable], env)
    try:
        _wait_for_workers(scheduler, 1)
        run = _adcli(*FIT, "--data", str(folder), "--scheduler", scheduler)
    finally:
        _stop(worker)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert json.loads(run.stdout)["parameters"] == fitted["parameters"]


def test_local_workers_keep_data_within_the_address_space_they_inherit() -> None:
    """Dask sets a local worker's memory limit from the machine's memory; under ``ulimit -v``
    (inherited by the workers) data is kept in memory only within half of that limit each."""
    code = ("import resource; from adcli.partitioned.workers import inherited_limit; "
            "print(inherited_limit([16 << 30, 0, 1 << 30])); "
            "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "print(inherited_limit([16 << 30, 0, 1 << 30]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    unlimited, limited = run.stdout.split("\n")[:2]
    if "unlimited" in os.popen("ulimit -v").read():  # noqa: S605 - a fixed shell builtin
        assert unlimited == str([16 << 30, 0, 1 << 30])
    assert limited == str([3 << 30, 3 << 30, 1 << 30])


def test_a_worker_with_another_adcli_version_is_named(tmp_path: Path, scheduler: str) -> None:
    """The worker imports an adcli of another version (a package of that name on its path,
    found before anything else): one Error line naming it and both versions, exit 1."""
    other = tmp_path / "other" / "adcli"
    (other / "partitioned").mkdir(parents=True)
    (other / "__init__.py").write_text('__version__ = "0.0.1"\n')
    (other / "partitioned" / "__init__.py").write_text("")
    (other / "partitioned" / "partitions.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "other"), sysconfig.get_paths()["purelib"]]))
    folder = _small_lake(tmp_path)
    worker = _worker(scheduler, tmp_path, [sys.executable, "-S"], env, nanny=False)
    try:
        _wait_for_workers(scheduler, 1)
        run = _adcli(*FIT, "--data", str(folder), "--scheduler", scheduler, cwd=tmp_path)
    finally:
        _stop(worker)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the Dask worker tcp://"), lines
    import adcli

    assert f"runs adcli 0.0.1, this client adcli {adcli.__version__}" in lines[0]
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
