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


# --------------------------------------------------------------------------- Ctrl-C, least squares
#: A least-squares problem whose infimum is not attained: r = exp(a)*x with y = 0 falls by a
#: factor e^2 a step for hundreds of steps, so a run is still going when it is interrupted.
FALLING = {"minimize": ["minimize", "(exp(a)*x - y)^2", "--from", "a=0"],
           "fit": ["fit", "y ~ exp(a)*x", "--from", "a=0"]}


def _falling(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        x = rng.uniform(1, 2, 2000)
        pq.write_table(pa.table({"x": x, "y": np.zeros_like(x)}), folder / f"part{i}.parquet")
    return folder


@pytest.mark.parametrize("command", ["minimize", "fit"])
def test_ctrl_c_in_a_least_squares_run_on_local_workers_reports_the_best_point(
        tmp_path: Path, command: str) -> None:
    """Ctrl-C (SIGINT to the terminal's process group: the client and its workers) once
    pass 5 is shown: the best point so far on stdout, the line saying the run was
    interrupted, exit 130, and no traceback from the client or a worker (they share the
    terminal)."""
    folder = _falling(tmp_path / "data")
    run = Terminal(*FALLING[command], "--data", str(folder), "--scheduler", "local:2")
    run.wait_for("pass 5 over 3 partitions")
    os.killpg(run.proc.pid, signal.SIGINT)
    status, seen = run.finish()
    assert status == 130, seen[-2000:]
    assert "Traceback" not in seen and "KeyboardInterrupt" not in seen, seen[-3000:]
    assert "Error:" not in seen, seen[-2000:]
    assert "interrupted; the best point so far is reported" in seen, seen[-2000:]
    if command == "minimize":
        assert "(interrupted)" in seen and "\n  a  -" in seen, seen[-2000:]
    else:
        assert "\na " in seen and "residual sum of squares" in seen, seen[-2000:]


def _journal(path: Path) -> list[tuple[list[float], float]]:
    """(parameters, rss) of every Jacobian pass the checkpoint holds (fit's and minimize's
    key forms)."""
    import json

    doc = json.loads(path.read_text())
    out = []
    for key, total in doc["passes"]:
        if key[0] == "partition_normal":  # minimize: [name, canonical arguments]
            mode, at = key[1][4], key[1][3]
        else:  # fit: [mode, parameters..., mean]
            mode, at = key[0], key[1:-1]
        if mode == "qr":
            values = [float.fromhex(v) for v in total]
            out.append(([float.fromhex(v) for v in at], values[-2]))
    return out


@pytest.mark.parametrize("command", ["minimize", "fit"])
def test_interrupted_least_squares_reports_the_lowest_point_it_swept(tmp_path: Path,
                                                                    command: str) -> None:
    """SIGINT once the checkpoint shows pass 8 (the threaded scheduler, --json): the point
    reported is the lowest sum of squares among the passes the run completed (read back
    from the checkpoint, which records each pass's parameters and sums), with its exact rss;
    reason interrupted, exit 130, stdout one JSON object, no traceback."""
    import json

    folder = _falling(tmp_path / "data")
    journal = tmp_path / "run.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "adcli", *FALLING[command], "--data",
                             str(folder), "--scheduler", "threads", "--json",
                             "--checkpoint", str(journal)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        try:
            if json.loads(journal.read_text())["pass"] >= 8:
                break
        except (OSError, ValueError):  # not written yet
            pass
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "Error:" not in err, err
    result = json.loads(out)
    assert result["converged"] is False
    swept = _journal(journal)
    assert len(swept) >= 6
    if command == "minimize":
        assert result["reason"] == "interrupted", result
        a, rss = result["point"]["a"], result["value"] * 6000
    else:
        assert result["reason"] == "interrupted; the best point so far is reported", result
        a, rss = result["parameters"]["a"], result["rss"]
        assert result["r_squared"] is None  # no more passes after Ctrl-C
    at = [p[0] for p, _ in swept]
    assert a in at, (a, at)  # a point that was swept, not one past the interrupt
    mine = swept[at.index(a)][1]
    assert rss == pytest.approx(mine, rel=1e-15)
    # the lowest of the completed passes (the last one may have finished as the signal came)
    assert mine <= min(s for _, s in swept[:-1]), (mine, swept[-3:])


def test_the_engine_stopped_by_ctrl_c_keeps_its_best_point_without_another_sweep() -> None:
    """The mechanism under the runs above, in process: the sweep (a pass over partitions)
    raises KeyboardInterrupt at its 7th call; the engine returns the lowest point of the
    six before, and asking for that point's sums and Jacobian sweeps nothing more. Without
    ``interrupt`` (a refit inside a profile), or before any point was swept, Ctrl-C goes on
    up."""
    from adcli.regression.leastsq import INTERRUPT_STATUS, Compressed, qr_sums, solve

    x = np.linspace(1.0, 2.0, 50)
    calls: list[float] = []

    def sweep_until(stop: int):
        def sweep(b: np.ndarray) -> np.ndarray:
            if len(calls) + 1 == stop:
                raise KeyboardInterrupt
            r = np.exp(b[0]) * x
            calls.append(float(r @ r))
            return qr_sums(r, r[:, None].copy())
        return sweep

    res = Compressed(sweep_until(7), 1)
    sol = solve(res, np.array([0.0]), np.array([-np.inf]), np.array([np.inf]), 1000,
                interrupt=True)
    assert sol.status == INTERRUPT_STATUS and len(calls) == 6
    seen = len(calls)
    assert res.rss(sol.x) == min(calls)
    r, jac = res.both(sol.x)
    assert len(calls) == seen  # no sweep after the interrupt
    assert float(r @ r) == pytest.approx(min(calls), rel=1e-12)
    assert float(sol.x[0]) == pytest.approx(np.log(np.sqrt(min(calls) / (x @ x))), abs=1e-12)
    for stop, interrupt in ((7, False), (1, True)):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            solve(Compressed(sweep_until(stop), 1), np.array([0.0]), np.array([-np.inf]),
                  np.array([np.inf]), 1000, interrupt=interrupt)
