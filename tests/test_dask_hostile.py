"""Data lakes and addresses as they are: wide Parquet files give the bits of a copy holding only
the used columns, and a scheduler address that is malformed, silent or another service's is one
``Error:`` line in bounded time, never a traceback or "out of memory"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

from adcli.io.sources import open_partitioned, parquet_pieces  # noqa: E402
from adcli.partitioned.address import NotAScheduler, parse  # noqa: E402

FIT = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1"]


def _adcli(*args: str, env: dict | None = None, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    full.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, env=full, timeout=timeout)


def _lake(root: Path, files: int = 5, rows: int = 3000, extra: int = 20,
          row_group: int | None = None) -> tuple[Path, Path]:
    """The same rows as wide files (``x``, ``y`` and ``extra`` unused columns) and as a
    narrow copy (``x``, ``y`` only), with the same row groups."""
    rng = np.random.default_rng(7)
    wide, narrow = root / "wide", root / "narrow"
    wide.mkdir()
    narrow.mkdir()
    for i in range(files):
        x = rng.uniform(0, 5, rows)
        y = 2 * np.exp(-0.7 * x) + 0.3 + rng.normal(0, 0.01, rows)
        cols = {"x": x, "y": y} | {f"u{j}": rng.normal(size=rows) for j in range(extra)}
        pd.DataFrame(cols).to_parquet(wide / f"part{i}.parquet", index=False,
                                      row_group_size=row_group)
        pd.DataFrame({"x": x, "y": y}).to_parquet(narrow / f"part{i}.parquet", index=False,
                                                  row_group_size=row_group)
    return wide, narrow


def _fit(path: Path, *more: str) -> dict:
    run = _adcli(*FIT, "--data", str(path), "--json", *more)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return json.loads(run.stdout)


def test_wide_parquet_gives_the_narrow_copys_bits(tmp_path: Path) -> None:
    wide, narrow = _lake(tmp_path)
    a, b = _fit(wide), _fit(narrow)
    assert a["rows"] == b["rows"] == 5 * 3000
    for key in ("parameters", "stderr", "rss", "iterations", "evaluations"):
        assert a[key] == b[key], key  # the same bits, not close
    assert a["parameters"]["b"] == pytest.approx(0.7, abs=1e-3)


def test_wide_parquet_minimize_reports_one_partition_per_file(tmp_path: Path) -> None:
    wide, narrow = _lake(tmp_path)
    args = ("minimize", "(w0 + w1*x - y)^2", "--wrt", "w0,w1", "--method", "bfgs", "--json")
    runs = [_adcli(*args, "--data", str(d)) for d in (wide, narrow)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    a, b = (json.loads(r.stdout) for r in runs)
    assert a["partitions"] == b["partitions"] == 5  # files, not Dask's merged pieces
    assert a["minimum"] == b["minimum"] and a["value"] == b["value"]


def test_parquet_pieces_follow_row_groups_not_columns(tmp_path: Path, monkeypatch) -> None:
    """Row groups are joined up to PARQUET_ROWS rows within a file, never across files."""
    import adcli.io.sources as sources

    wide, narrow = _lake(tmp_path, files=2, rows=1000, extra=3, row_group=300)
    monkeypatch.setattr(sources, "PARQUET_ROWS", 600)
    pieces = [[g for _, g in parquet_pieces(open_partitioned(str(d)).files)]
              for d in (wide, narrow)]
    assert pieces[0] == pieces[1] == [(0, 1), (2, 3)] * 2


def test_parquet_missing_column_names_the_file(tmp_path: Path) -> None:
    wide, _ = _lake(tmp_path, files=3, rows=500, extra=1)
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_parquet(wide / "part1.parquet", index=False)
    run = _adcli(*FIT, "--data", str(wide))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), run.stderr
    assert "part1.parquet" in lines[0] and "'y'" in lines[0]


@pytest.mark.parametrize("spec", ["bogus", "tcp://", "127.0.0.1", "foo://h:1",
                                  "inproc://x", "tcp://h:0", "tcp://h:99999", "h :1",
                                  "\x1b[31m:1", "a:b:1", "tcp://[::1:1", "h\u202e:1",
                                  "http://127.0.0.1:8787"])
def test_malformed_address_is_refused(spec: str) -> None:
    with pytest.raises(NotAScheduler):
        parse(spec)


def test_address_forms_accepted() -> None:
    assert parse("10.0.0.5:8786") == ("tcp", "10.0.0.5", 8786)
    assert parse("tcp://[::1]:8786") == ("tcp", "::1", 8786)
    assert parse("tls://sched.example:8786") == ("tls", "sched.example", 8786)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return _lake(tmp_path, files=2, rows=200, extra=1)[1]


def _one_error(run: subprocess.CompletedProcess, status: int) -> str:
    assert run.returncode == status, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.stderr
    return lines[0]


def test_bogus_scheduler_is_one_error_line(lake: Path) -> None:
    line = _one_error(_adcli(*FIT, "--data", str(lake), "--scheduler", "bogus"), 2)
    assert "'bogus'" in line


def test_bogus_address_from_the_environment_says_so(lake: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "adcli", *FIT, "--data", str(lake)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, DASK_SCHEDULER_ADDRESS="127.0.0.1"))
    assert "DASK_SCHEDULER_ADDRESS '127.0.0.1'" in _one_error(run, 2)


@pytest.fixture
def server(request) -> Iterator[str]:
    """A TCP server on localhost that accepts and then sends ``request.param`` (None: nothing,
    it stays silent with the connection open); its address."""
    greeting = request.param
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    held = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if greeting is not None:
                try:
                    conn.sendall(greeting)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("server", [None], indirect=True)
def test_silent_port_fails_in_bounded_time(lake: Path, server: str) -> None:
    began = time.monotonic()
    run = _adcli(*FIT, "--data", str(lake), "--scheduler", server,
                 env={"DASK_ADCLI__CONNECT_TIMEOUT": "2"}, timeout=60)
    line = _one_error(run, 2)
    assert time.monotonic() - began < 30
    assert server in line and "no Dask scheduler answered within 2 s" in line


@pytest.mark.parametrize("server", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n",
                                    (1 << 62).to_bytes(8, "little") + b"\0" * 64,
                                    bytes(range(256)) * 4], indirect=True)
def test_a_service_with_a_banner_is_not_a_scheduler(lake: Path, server: str) -> None:
    line = _one_error(_adcli(*FIT, "--data", str(lake), "--scheduler", server, timeout=60), 2)
    assert server in line and "not a Dask scheduler" in line
    assert "memory" not in line


def test_bad_connect_timeout_is_one_error_line(lake: Path) -> None:
    run = _adcli(*FIT, "--data", str(lake), "--scheduler", "tcp://127.0.0.1:1",
                 env={"DASK_ADCLI__CONNECT_TIMEOUT": "abc"})
    assert "connect-timeout" in _one_error(run, 2)


def test_refused_port_is_a_cluster_error(lake: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed on exit: nothing listens there
    run = _adcli(*FIT, "--data", str(lake), "--scheduler", f"tcp://127.0.0.1:{port}")
    assert f"tcp://127.0.0.1:{port}" in _one_error(run, 1)


def test_a_real_scheduler_passes_the_check_and_its_dashboard_does_not(tmp_path: Path) -> None:
    """A scheduler started apart (in this process, one thread worker): its address gives the
    default scheduler's bits; its dashboard's port is refused in bounded time."""
    from distributed import LocalCluster

    wide, _ = _lake(tmp_path, files=3, rows=1000, extra=5)
    expected = _fit(wide)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address="127.0.0.1:0",
                      silence_logs=50) as cluster:
        assert _fit(wide, "--scheduler", cluster.scheduler_address) == expected
        dashboard = cluster.scheduler.http_server.port
        run = _adcli(*FIT, "--data", str(wide), "--scheduler", f"127.0.0.1:{dashboard}",
                     env={"DASK_ADCLI__CONNECT_TIMEOUT": "2"}, timeout=60)
    line = _one_error(run, 2)
    assert f"127.0.0.1:{dashboard}" in line and "dashboard" in line


@pytest.mark.parametrize("command", [FIT, ["minimize", "(a*x - y)^2"]])
def test_parquet_without_rows_is_an_error(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"x": pd.Series([], dtype=float), "y": pd.Series([], dtype=float)}
                 ).to_parquet(empty, index=False)
    run = _adcli(*command, "--data", str(empty))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("Error:")]
    assert errors == [f"Error: data '{empty}' has no rows"], run.stderr
