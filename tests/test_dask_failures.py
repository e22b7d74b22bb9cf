"""Failures on the Dask path as a user meets them: Ctrl-C with ``local:2`` workers, a scheduler
that stops mid-run, a Parquet file without a used column, a corrupt page and a cell that is not a
finite number. Each is the README's exit status with one ``Error:`` line that names the file (and
row group and row where known), and no "Traceback" from the client or any worker.

The runs that are interrupted are watched through a terminal (a pty), where adcli shows
``pass N over P partitions`` after every pass: the signal is sent once passes are running,
without guessing a time."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

FIT = ["fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=1"]
#: A run with many passes: plain gradient descent with no time limit.
LONG = ["minimize", "(w0 + w1*x - y)^2", "--wrt", "w0,w1", "--method", "gd", "--lr", "1e-3",
        "--steps", "1000000", "--max-time", "0"]


def _env() -> dict:
    env = dict(os.environ, TERM="xterm", COLUMNS="100")
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


def _adcli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, env=_env(), timeout=300)


def _one_error(run: subprocess.CompletedProcess, status: int) -> str:
    assert run.returncode == status, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.stderr
    return lines[0]


def _lake(folder: Path, files: int = 3, rows: int = 2000, **write: object) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(11)
    paths = []
    for i in range(files):
        x = rng.uniform(0, 5, rows)
        y = 2 * np.exp(-0.7 * x) + 0.3 + rng.normal(0, 0.01, rows)
        path = folder / f"part{i}.parquet"
        pq.write_table(pa.table({"x": x, "y": y}), path, **write)
        paths.append(path)
    return paths


class Terminal:
    """adcli run with stdout and stderr on a pty, in its own process group."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "adcli", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=_env(),
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def wait_for(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            assert time.monotonic() < deadline, self.seen[-2000:]
            assert self._read(1.0) or self.proc.poll() is None, self.seen[-2000:]

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other side closed
            return False
        self.seen += chunk
        return bool(chunk)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while self._read(0.5) or self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(self.seen[-2000:])
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        os.close(self.master)
        return self.proc.wait(), self.seen.decode(errors="replace").replace("\r\n", "\n")


def test_ctrl_c_with_local_workers_is_exit_130_without_tracebacks(tmp_path: Path) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C sends) reaches the client
    and its two worker processes; the workers started by adcli ignore it, the client stops,
    closes the cluster and exits 130. The workers share the terminal, so a traceback from
    any of them would be in what the terminal received."""
    folder = tmp_path / "data"
    _lake(folder)
    run = Terminal(*LONG, "--data", str(folder), "--scheduler", "local:2")
    run.wait_for("pass 3 over 3 partitions")
    os.killpg(run.proc.pid, signal.SIGINT)
    status, seen = run.finish()
    assert status == 130, seen[-2000:]
    assert "Traceback" not in seen and "KeyboardInterrupt" not in seen, seen[-3000:]
    assert "(interrupted)" in seen  # minimize reports the best point so far, as in memory


def test_a_scheduler_that_stops_mid_run_is_one_error_line(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _lake(folder)
    log = open(tmp_path / "cluster.log", "w")  # noqa: SIM115 - closed below
    with socket_port() as port:
        address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--port", str(port), "--no-dashboard"], stdout=log,
                                 stderr=subprocess.STDOUT, cwd=tmp_path)
    worker = None
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the scheduler did not start"
                time.sleep(0.5)
        config = tmp_path / "config"  # the README's worker settings: no Warning line
        config.mkdir()
        (config / "adcli-workers.yaml").write_text(
            "distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: 134217728, "
            "MALLOC_MMAP_THRESHOLD_: 33554432}}}\n")
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                   address, "--nthreads", "1", "--no-dashboard"], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=tmp_path,
                                  env=dict(os.environ, DASK_CONFIG=str(config)))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        run = Terminal(*LONG, "--data", str(folder), "--scheduler", address)
        run.wait_for("pass 3 over 3 partitions")
        scheduler.kill()
        status, seen = run.finish()
    finally:
        for proc in (worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.wait()
        log.close()
    assert status == 1, seen[-2000:]
    assert "Traceback" not in seen, seen[-3000:]
    lines = [ln for ln in seen.replace("\r", "\n").splitlines() if ln.strip()
             and not ln.startswith("pass ")]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert errors == ["Error: the Dask scheduler stopped or cancelled the computation; it "
                      "cannot finish"] or errors[0].startswith("Error: no Dask scheduler"), lines
    assert lines == errors, lines  # nothing but the one Error line (and the progress)


class socket_port:  # noqa: N801 - used as a context manager, like a function
    """A free TCP port on 127.0.0.1 (the socket closed on exit, the port then free)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.parametrize("scheduler", [[], ["--scheduler", "local:2"]])
def test_a_parquet_file_without_y_is_exit_2_naming_the_file(tmp_path: Path,
                                                             scheduler: list[str]) -> None:
    paths = _lake(tmp_path / "data")
    pq.write_table(pa.table({"x": np.arange(5.0)}), paths[2])
    line = _one_error(_adcli(*FIT, "--data", str(tmp_path / "data"), *scheduler), 2)
    assert f"Parquet file '{paths[2]}' has no column 'y'" in line


def _patch(path: Path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert raw.count(old) == 1, "the value to corrupt is not in the file exactly once"
    path.write_bytes(raw.replace(old, new))


@pytest.mark.parametrize("bits,shown", [(b"\xff" * 8, "nan"),
                                        (struct.pack("<d", np.inf), "inf")])
def test_a_corrupt_value_in_a_page_is_a_data_error_naming_file_row_group_and_row(
        tmp_path: Path, bits: bytes, shown: str) -> None:
    """A page stored without compression or dictionary holds the doubles as they are: one of
    them overwritten decodes to NaN or infinity. That is the data's fault (exit 2, file, row
    group and row named), not the start values'."""
    paths = _lake(tmp_path / "data", compression="NONE", use_dictionary=False,
                  row_group_size=500)
    frame = pq.read_table(paths[1]).to_pandas()
    _patch(paths[1], struct.pack("<d", frame["x"][1234]), bits)
    line = _one_error(_adcli(*FIT, "--data", str(tmp_path / "data")), 2)
    assert f"Parquet file '{paths[1]}', row group 2, row 1235: column 'x' holds {shown}" in line
    assert "start values" not in line


def test_a_page_that_fails_its_checksum_is_a_data_error_naming_the_row_group(
        tmp_path: Path) -> None:
    """A file written with page checksums: a changed byte in a page is caught on reading,
    whatever value it decodes to."""
    paths = _lake(tmp_path / "data", compression="NONE", use_dictionary=False,
                  row_group_size=500, write_page_checksum=True)
    frame = pq.read_table(paths[0]).to_pandas()
    value = struct.pack("<d", frame["y"][1700])
    _patch(paths[0], value, value[:7] + bytes([value[7] ^ 1]))  # still a finite number
    line = _one_error(_adcli(*FIT, "--data", str(tmp_path / "data"), "--scheduler",
                             "synchronous"), 2)
    assert f"Parquet file '{paths[0]}', row group 3:" in line
    assert "CRC" in line or "checksum" in line.lower()


def test_finite_data_with_a_bad_start_still_blames_the_start_values(tmp_path: Path) -> None:
    _lake(tmp_path / "data")
    line = _one_error(_adcli("fit", "y ~ a*exp(-b*x) + c", "--from", "a=1,b=-1000",
                             "--data", str(tmp_path / "data")), 2)
    assert "start values" in line


def test_a_csv_file_of_a_glob_without_y_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n2,3\n3,4.5\n")
    (tmp_path / "b.csv").write_text("x,z\n1,2\n2,3\n")
    line = _one_error(_adcli("fit", "y ~ a*x + b", "--data", str(tmp_path / "*.csv")), 2)
    assert line == f"Error: data file '{tmp_path / 'b.csv'}' has no column 'y'"
