"""Files that change during a run: every file's fingerprint (size, mtime_ns and, for Parquet, the
footer's rows, row groups and size) is taken when its partitions are listed and compared on every
re-read and after every pass, so a file appended between passes stops the run with
``Error: data changed during the run: FILE`` (exit 1) instead of mixing two versions of the data.
The change is made by the pass loop's own callback, between two passes: no timing involved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("distributed")

import adcli  # noqa: E402
from adcli.io.sources import DataChanged, open_partitioned, read_piece, stamp_of  # noqa: E402
from adcli.optimize import build_objective  # noqa: E402
from adcli.partitioned.distributed import DaskObjective, Scheduler  # noqa: E402

LINE = "(w0 + w1*x - y)^2"


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 5, rows)
    return pd.DataFrame({"x": x, "y": 0.3 + 1.7 * x + rng.normal(0, 0.1, rows)})


def _files(folder: Path, kind: str, count: int = 3, rows: int = 100) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"part{i}.{kind}"
        frame = _frame(rows, i)
        if kind == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _objective(path: str, where: Scheduler, on_pass) -> DaskObjective:
    data = open_partitioned(path)
    tape = adcli.parse(LINE).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {"w0": 0.3, "w1": 1.7}, ["w0", "w1"],
                                   data.select(tape.inputs), factory=DaskObjective,
                                   reduce="sum", source=LINE, bound=["w0", "w1", "x", "y"],
                                   scheduler=where, on_pass=on_pass)
    return objective


def _append_after_first_pass(path: Path, kind: str):
    def on_pass(count: int, partitions: int) -> None:
        if count != 1:
            return
        if kind == "csv":
            with open(path, "a") as fh:
                fh.write("1.0,2.0\n")
        else:  # a Parquet file cannot grow in place: it is written again, longer
            frame = pd.read_parquet(path)
            pd.concat([frame, frame.iloc[:5]]).to_parquet(path, index=False)
    return on_pass


@pytest.mark.parametrize("kind,spec,reread", [("csv", "synchronous", False),
                                              ("csv", "threads", True),
                                              ("parquet", "synchronous", False),
                                              ("parquet", "threads", True),
                                              ("parquet", "local:1", True)])
def test_a_file_appended_between_passes_stops_the_run(tmp_path: Path, monkeypatch,
                                                      kind: str, spec: str,
                                                      reread: bool) -> None:
    if reread:  # every pass reads the files again
        monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", 0.0)
    paths = _files(tmp_path / "data", kind)
    x = np.array([0.3, 1.7])
    with Scheduler(spec) as where:
        objective = _objective(str(tmp_path / "data" / f"*.{kind}"), where,
                               _append_after_first_pass(paths[1], kind))
        assert objective.persisted is not reread
        first = objective(x)
        assert objective.rows == 300 and np.isfinite(first[0])
        with pytest.raises(DataChanged) as err:
            objective(x)
    assert err.value.exit_code == 1
    assert str(err.value) == f"data changed during the run: {paths[1]}"


def test_an_unchanged_run_is_not_disturbed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("adcli.partitioned.distributed.PERSIST_FRACTION", 0.0)
    _files(tmp_path / "data", "parquet")
    with Scheduler("synchronous") as where:
        objective = _objective(str(tmp_path / "data"), where, None)
        values = [objective(np.array([0.3, 1.7]))[0] for _ in range(3)]
    assert values[0] == values[1] == values[2]


def test_read_piece_compares_the_footer_and_the_file(tmp_path: Path) -> None:
    """A re-read of a file rewritten with another footer, or only touched, is refused."""
    path = _files(tmp_path / "data", "parquet", count=1)[0]
    import pyarrow.parquet as pq

    stamp = stamp_of(str(path), pq.read_metadata(path))
    frame = read_piece(str(path), (0,), ("x", "y"), ("x", "y"), False, stamp)
    assert len(frame) == 100
    os.utime(path, ns=(stamp[1] + 10**9, stamp[1] + 10**9))  # same bytes, new mtime
    with pytest.raises(DataChanged):
        read_piece(str(path), (0,), ("x", "y"), ("x", "y"), False, stamp)
    # another footer with the same size and mtime: the footer alone tells
    changed = (stamp[0], stamp[1] + 10**9, (1, 1, stamp[2][2]))
    with pytest.raises(DataChanged):
        read_piece(str(path), (0,), ("x", "y"), ("x", "y"), False, changed)


def test_a_changed_file_is_one_error_line_with_exit_1(tmp_path: Path) -> None:
    """The CLI's side: the file changes under a run of ``fit`` (here: between the listing
    of the partitions and the first pass, by a file that is removed); one Error line."""
    _files(tmp_path / "data", "parquet")
    script = (
        "import sys, os\n"
        "import adcli.io.sources as s\n"
        "listed = s.PartitionedData.parts\n"
        "def parts(self):\n"
        "    out = listed(self)\n"
        "    os.remove(self.files[1])\n"
        "    return out\n"
        "s.PartitionedData.parts = parts\n"
        "from adcli.cli import main\n"
        "sys.argv = ['adcli'] + sys.argv[1:]\n"
        "main()\n")
    run = subprocess.run([sys.executable, "-c", script, "fit", "y ~ a*x + b", "--data",
                          str(tmp_path / "data"), "--json"], capture_output=True, text=True,
                         timeout=120, env={k: v for k, v in os.environ.items()
                                           if k != "DASK_SCHEDULER_ADDRESS"})
    assert run.returncode == 1, run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"Error: data changed during the run: {tmp_path / 'data' / 'part1.parquet'}"]
