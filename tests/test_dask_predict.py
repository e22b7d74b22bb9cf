"""eval/grad --data on a Dask source (adcli[dask]): one part file per partition in -o DIR, rows
in input order, bit for bit the in-memory eval/grad --data on the same rows; bad input is one
Error line naming the file, never a traceback."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("dask")

ROOT = Path(__file__).resolve().parent.parent
EXPR = "exp(w0 + w1*x) / (1 + y^2)"
AT = ["--at", "w0=0.25,w1=-1.5"]


def _adcli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cwd)


def _one_error(run: subprocess.CompletedProcess, status: int = 2) -> str:
    """The run failed with ``status`` and said so in one Error line, without a traceback."""
    assert run.returncode == status, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def _frames(files: int = 4, rows: int = 700, wide: int = 0, seed: int = 5) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(files):
        frame = pd.DataFrame({"x": rng.normal(size=rows), "y": rng.normal(scale=3, size=rows)})
        frame["label"] = [f"f{i}r{j}" for j in range(rows)]
        for k in range(wide):
            frame[f"extra{k}"] = rng.normal(size=rows)
        out.append(frame)
    return out


def _parquet(folder: Path, frames: list, row_group: int = 250) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        frame.to_parquet(folder / f"data{i:02d}.parquet", index=False,
                         row_group_size=row_group)
    return folder


def _csvs(folder: Path, frames: list) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        frame.to_csv(folder / f"data{i:02d}.csv", index=False, float_format="%.17g")
    return folder


def _whole_csv(path: Path, frames: list) -> Path:
    pd.concat(frames).to_csv(path, index=False, float_format="%.17g")
    return path


def _csv_columns(path: Path) -> dict[str, list[str]]:
    """A CSV file's columns as their text (read back exactly with float())."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}


def _memory(command: str, whole: Path, out: Path) -> dict[str, np.ndarray]:
    """The in-memory ``command --data whole -o out`` as float64 columns (read exactly)."""
    run = _adcli(command, EXPR, "--data", str(whole), *AT, "-o", str(out))
    assert run.returncode == 0, run.stderr
    return {name: np.array([float(c) for c in cells])
            for name, cells in _csv_columns(out).items() if name != "label"}


def _parts(folder: Path) -> list[Path]:
    names = sorted(os.listdir(folder))
    assert all(n.startswith("part-") for n in names), names
    return [folder / n for n in names]


def _read_parts(folder: Path) -> dict[str, np.ndarray]:
    tables = [pq.read_table(p).to_pandas() for p in _parts(folder)]
    frame = pd.concat(tables, ignore_index=True)
    return {c: frame[c].to_numpy() for c in frame.columns if c != "label"}, frame


@pytest.mark.parametrize("scheduler", ["synchronous", "local:2"])
def test_parquet_grad_is_the_in_memory_grad_bit_for_bit(tmp_path, scheduler):
    frames = _frames()
    source = _parquet(tmp_path / "lake", frames)
    memory = _memory("grad", _whole_csv(tmp_path / "whole.csv", frames), tmp_path / "mem.csv")
    run = _adcli("grad", EXPR, "--data", str(source), *AT, "-o", str(tmp_path / "out"),
                 "--scheduler", scheduler)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "2,800 rows in 4 files written to" in run.stderr
    parts = _parts(tmp_path / "out")
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(4)]
    got, frame = _read_parts(tmp_path / "out")
    assert list(frame.columns) == ["x", "y", "label", "value", "d/dw0", "d/dw1", "d/dx",
                                   "d/dy"]
    # rows in input order: the text column says which file and row each came from
    assert list(frame["label"]) == [f"f{i}r{j}" for i in range(4) for j in range(700)]
    assert set(got) == set(memory)
    for name, column in memory.items():
        assert got[name].dtype == np.float64
        assert np.array_equal(got[name].view(np.int64), column.view(np.int64)), name


def test_wide_parquet_gives_the_narrow_copys_bits(tmp_path):
    wide = _frames(files=3, rows=500, wide=12)
    narrow = [f[["x", "y", "label"]] for f in wide]
    for name, frames in (("wide", wide), ("narrow", narrow)):
        run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / name, frames)), *AT,
                     "-o", str(tmp_path / f"out-{name}"))
        assert run.returncode == 0, run.stderr
    got_wide, frame_wide = _read_parts(tmp_path / "out-wide")
    got_narrow, _ = _read_parts(tmp_path / "out-narrow")
    assert list(frame_wide.columns)[-1] == "value"
    assert len(frame_wide.columns) == 3 + 12 + 1  # every input column is kept
    assert np.array_equal(got_wide["value"].view(np.int64),
                          got_narrow["value"].view(np.int64))


@pytest.mark.parametrize("scheduler", ["synchronous", "local:2"])
def test_csv_glob_parts_are_the_in_memory_output_line_for_line(tmp_path, scheduler):
    frames = _frames(files=3, rows=400)
    _csvs(tmp_path / "csvs", frames)
    whole = _whole_csv(tmp_path / "whole.csv", frames)
    _memory("grad", whole, tmp_path / "mem.csv")
    run = _adcli("grad", EXPR, "--data", str(tmp_path / "csvs" / "*.csv"), *AT, "-o",
                 str(tmp_path / "out"), "--scheduler", scheduler)
    assert run.returncode == 0, run.stderr
    lines = []
    for i, part in enumerate(_parts(tmp_path / "out")):
        assert part.name == f"part-{i:05d}.csv"
        text = part.read_text().splitlines()
        if i:
            assert text[0] == lines[0]  # every part has the header
            text = text[1:]
        lines += text
    assert lines == (tmp_path / "mem.csv").read_text().splitlines()


def test_eval_from_parquet_to_csv_and_from_csv_to_parquet(tmp_path):
    frames = _frames(files=2, rows=300)
    memory = _memory("eval", _whole_csv(tmp_path / "whole.csv", frames), tmp_path / "mem.csv")
    run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "-o", str(tmp_path / "a"), "--format", "csv")
    assert run.returncode == 0, run.stderr
    values = np.array([float(c) for p in _parts(tmp_path / "a")
                       for c in _csv_columns(p)["value"]])
    assert np.array_equal(values.view(np.int64), memory["value"].view(np.int64))
    run = _adcli("eval", EXPR, "--data", str(_csvs(tmp_path / "csvs", frames)), *AT,
                 "-o", str(tmp_path / "b"), "--format", "parquet")
    assert run.returncode == 0, run.stderr
    got, frame = _read_parts(tmp_path / "b")
    assert list(frame.columns) == ["x", "y", "label", "value"]
    for name in ("x", "y", "value"):
        assert np.array_equal(got[name].view(np.int64), memory[name].view(np.int64))


def test_dropna_drops_the_rows_the_in_memory_path_drops(tmp_path):
    frames = _frames(files=2, rows=200)
    frames[1].loc[[3, 77], "x"] = np.nan
    frames[0].loc[150, "y"] = np.nan
    whole = _whole_csv(tmp_path / "whole.csv", frames)
    mem = _adcli("eval", EXPR, "--data", str(whole), *AT, "--dropna", "-o",
                 str(tmp_path / "m.csv"))
    assert mem.returncode == 0, mem.stderr
    memory = _csv_columns(tmp_path / "m.csv")
    run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "--dropna", "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    _, frame = _read_parts(tmp_path / "out")
    assert len(frame) == 397 == len(memory["value"])
    assert list(frame["label"]) == list(memory["label"])
    expected = np.array([float(c) for c in memory["value"]])
    assert np.array_equal(frame["value"].to_numpy().view(np.int64), expected.view(np.int64))


def test_a_bad_csv_cell_names_the_file_and_line_and_leaves_no_half_file(tmp_path):
    frames = _frames(files=3, rows=50)
    folder = _csvs(tmp_path / "csvs", frames)
    bad = folder / "data01.csv"
    lines = bad.read_text().splitlines()
    lines[9] = "abc," + lines[9].split(",", 1)[1]
    bad.write_text("\n".join(lines) + "\n")
    run = _adcli("eval", EXPR, "--data", str(folder), *AT, "-o", str(tmp_path / "out"),
                 "--scheduler", "synchronous")
    error = _one_error(run)
    assert "data01.csv" in error and "line 10" in error and "'x'" in error
    # the parts that were written are whole; the failed one left nothing behind
    assert not [n for n in os.listdir(tmp_path / "out") if "adcli-tmp" in n]
    assert "part-00001.csv" not in os.listdir(tmp_path / "out")


def test_a_bad_parquet_cell_names_the_file_and_row(tmp_path):
    frames = _frames(files=3, rows=600)
    frames[2].loc[432, "y"] = np.inf
    run = _adcli("grad", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "-o", str(tmp_path / "out"), "--scheduler", "local:2")
    error = _one_error(run)
    assert "data02.parquet" in error and "row 433" in error and "'y'" in error


def test_a_missing_column_names_the_file(tmp_path):
    frames = _frames(files=3, rows=100)
    frames[1] = frames[1].drop(columns=["x"])
    run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "-o", str(tmp_path / "out"))
    error = _one_error(run)
    assert "data01.parquet" in error and "'x'" in error


def test_an_empty_parquet_file_is_named(tmp_path):
    frames = _frames(files=2, rows=10)
    frames.insert(1, frames[0].iloc[:0])
    run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "-o", str(tmp_path / "out"))
    assert "Parquet file '" in _one_error(run) and "data01.parquet' has no rows" in run.stderr


def test_a_parquet_file_is_no_longer_refused_as_not_utf8_text(tmp_path):
    source = _parquet(tmp_path / "lake", _frames(files=1, rows=20)) / "data00.parquet"
    for command in ("eval", "grad"):
        error = _one_error(_adcli(command, EXPR, "--data", str(source), *AT))
        assert "UTF-8" not in error and "-o DIR" in error
    run = _adcli("eval", EXPR, "--data", str(source), *AT, "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert len(pq.read_table(tmp_path / "out" / "part-00000.parquet")) == 20


def test_a_non_empty_directory_needs_force_and_force_never_deletes_user_files(tmp_path):
    source = _parquet(tmp_path / "lake", _frames(files=2, rows=30))
    out = tmp_path / "out"
    out.mkdir()
    for i in range(4):  # an earlier run with more partitions
        (out / f"part-{i:05d}.parquet").write_text("old")
    error = _one_error(_adcli("eval", EXPR, "--data", str(source), *AT, "-o", str(out)))
    assert "not empty" in error and "--force" in error
    assert (out / "part-00000.parquet").read_text() == "old"
    run = _adcli("eval", EXPR, "--data", str(source), *AT, "-o", str(out), "--force")
    assert run.returncode == 0, run.stderr
    assert "2 older part files removed" in run.stderr
    assert sorted(os.listdir(out)) == ["part-00000.parquet", "part-00001.parquet"]
    (out / "notes.txt").write_text("mine")
    error = _one_error(_adcli("eval", EXPR, "--data", str(source), *AT, "-o", str(out),
                              "--force"))
    assert "notes.txt" in error
    assert (out / "notes.txt").read_text() == "mine"
    error = _one_error(_adcli("eval", EXPR, "--data", str(source), *AT, "-o",
                              str(out / "notes.txt")), status=1)
    assert "not a directory" in error


def test_a_plain_csv_keeps_the_in_memory_behaviour(tmp_path):
    whole = _whole_csv(tmp_path / "whole.csv", _frames(files=1, rows=5))
    run = _adcli("eval", EXPR, "--data", str(whole), *AT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "x,y,label,value"
    assert len(run.stdout.splitlines()) == 6
    error = _one_error(_adcli("eval", EXPR, "--data", str(whole), *AT, "--format", "csv"))
    assert "--format needs a Dask --data source" in error


@pytest.mark.parametrize("args, words", [
    (["--json"], "--json is not available"),
    (["--at", "x=1"], "'x' is a column"),
    (["--wrt", "nope"], "nope"),
    (["--scheduler", "local:0"], "local:N"),
])
def test_mistakes_are_one_error_line_before_anything_is_written(tmp_path, args, words):
    source = _parquet(tmp_path / "lake", _frames(files=2, rows=30))
    run = _adcli("grad", EXPR, "--data", str(source), *AT, *args, "-o", str(tmp_path / "out"))
    assert words in _one_error(run)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


@pytest.mark.parametrize("expr, extra, words", [
    (EXPR, ["--band", "confidence"], "--band is not available with a Dask --data source"),
    ("y ~ " + EXPR, [], "EXPR must be the model itself"),
])
def test_eval_band_and_formula_on_dask_are_refused_not_ignored(tmp_path, expr, extra, words):
    """The partitions' writer writes value only: a --band there would be dropped unsaid."""
    source = _parquet(tmp_path / "lake", _frames(files=2, rows=30))
    run = _adcli("eval", expr, "--data", str(source), *AT, *extra, "-o", str(tmp_path / "out"))
    assert words in _one_error(run)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_ctrl_c_leaves_whole_part_files_and_no_temporary(tmp_path):
    frames = _frames(files=8, rows=60_000)
    source = _parquet(tmp_path / "lake", frames, row_group=20_000)
    out = tmp_path / "out"
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "adcli", "grad", EXPR, "--data", str(source),
                             *AT, "-o", str(out), "--scheduler", "synchronous"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out.exists() and os.listdir(out)) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)  # the first part file (or its temporary) is being written
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 0), err  # 0: it had just finished
    assert "Traceback" not in err
    names = sorted(os.listdir(out))
    assert not [n for n in names if "adcli-tmp" in n]
    for name in names:  # every file there is whole: its partition's rows, all columns
        table = pq.read_table(out / name)
        assert table.num_rows == 60_000 and table.column_names[-1] == "d/dy"
    if proc.returncode == 130:
        assert err.strip() == "Error: interrupted"
        assert len(names) < 8


def test_row_groups_cut_into_partitions_keep_order_and_name_the_files_row(tmp_path,
                                                                          monkeypatch):
    import adcli
    from adcli.io import sources
    from adcli.io.sources import open_partitioned
    from adcli.partitioned.distributed import Scheduler
    from adcli.partitioned.predict import predict_partitioned

    monkeypatch.setattr(sources, "PARQUET_ROWS", 500)  # 250-row groups: 2 a partition
    frames = _frames(files=2, rows=1200)
    source = _parquet(tmp_path / "lake", frames)
    memory = _memory("eval", _whole_csv(tmp_path / "whole.csv", frames), tmp_path / "m.csv")
    function = adcli.parse(EXPR)
    point = {"w0": 0.25, "w1": -1.5}
    with Scheduler("synchronous") as where:
        summary = predict_partitioned(function, point, open_partitioned(str(source)),
                                      str(tmp_path / "out"), where)
    assert summary.rows == 2400 and len(summary.files) == 6  # 500 + 500 + 200 rows a file
    got, frame = _read_parts(tmp_path / "out")
    assert list(frame["label"]) == [f"f{i}r{j}" for i in range(2) for j in range(1200)]
    assert np.array_equal(got["value"].view(np.int64), memory["value"].view(np.int64))
    frames[1].loc[1111, "x"] = np.nan  # in the third partition of the second file
    source = _parquet(tmp_path / "lake2", frames)
    with Scheduler("synchronous") as where, pytest.raises(adcli.AdcliError) as err:
        predict_partitioned(function, point, open_partitioned(str(source)),
                            str(tmp_path / "out2"), where)
    assert "data01.parquet', row 1,112, column 'x'" in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("kind,scheduler", [("parquet", "threads"), ("csv", "synchronous"),
                                            ("parquet", "local:2")])
def test_dropna_that_empties_a_partition_writes_an_empty_part(tmp_path, kind, scheduler):
    """A partition whose every row --dropna leaves out is an empty part file (the same
    columns, no rows), not a failed run: the parts together are the in-memory --dropna
    output of the whole data, bit for bit."""
    frames = _frames(files=3, rows=40)
    frames[1]["x"] = np.nan  # every row of the middle partition is dropped
    frames[2].loc[7, "y"] = np.nan
    whole = _whole_csv(tmp_path / "whole.csv", frames)
    mem = _adcli("grad", EXPR, "--data", str(whole), *AT, "--dropna", "-o",
                 str(tmp_path / "m.csv"))
    assert mem.returncode == 0, mem.stderr
    memory = _csv_columns(tmp_path / "m.csv")
    source = _parquet(tmp_path / "lake", frames) if kind == "parquet" else \
        _csvs(tmp_path / "csvs", frames)
    out = tmp_path / "out"
    run = _adcli("grad", EXPR, "--data", str(source), *AT, "--dropna", "-o", str(out),
                 "--scheduler", scheduler)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "Error" not in run.stderr
    parts = _parts(out)
    assert len(parts) == 3
    if kind == "parquet":
        tables = [pq.read_table(p) for p in parts]
        assert [t.num_rows for t in tables] == [40, 0, 39]
        assert tables[1].schema == tables[0].schema
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
        got = {c: frame[c].to_numpy() for c in frame.columns}
    else:
        columns = [_csv_columns(p) for p in parts]
        assert [len(c["value"]) for c in columns] == [40, 0, 39]
        assert list(columns[1]) == list(columns[0])  # the header alone
        got = {c: np.array([float(v) for col in columns for v in col[c]]) for c in columns[0]
               if c != "label"}
        got["label"] = [v for col in columns for v in col["label"]]
    assert list(got["label"]) == memory["label"]
    for name in ("value", "d/dx", "d/dy", "d/dw0", "d/dw1"):
        expected = np.array([float(c) for c in memory[name]])
        assert np.array_equal(np.asarray(got[name], dtype=np.float64).view(np.int64),
                              expected.view(np.int64)), name


def test_dropna_that_leaves_no_row_at_all_is_bad_input(tmp_path):
    frames = _frames(files=2, rows=10)
    for frame in frames:
        frame["x"] = np.nan
    run = _adcli("eval", EXPR, "--data", str(_parquet(tmp_path / "lake", frames)), *AT,
                 "--dropna", "-o", str(tmp_path / "out"))
    assert _one_error(run, 2) == f"Error: data '{tmp_path / 'lake'}': no rows left after --dropna"


#: The run of ``adcli ARGS`` in which, when the first partition is evaluated (after its file
#: was read), ``CHANGE`` (a file path) is appended to (CSV) or written again longer (Parquet):
#: the change happens during the run, at a known point, without timing.
_CHANGING = """
import sys
import adcli.io.rows as rows
kind, change = sys.argv[1], sys.argv[2]
evaluate = rows.evaluate_rows
done = []
def changing(function, data, *args, **kw):
    if not done and data.path.endswith(kind):  # a partition's file, not the first probe
        done.append(1)
        if kind == "csv":
            with open(change, "a") as fh:
                fh.write(open(change).read().splitlines()[1] + "\\n")
        else:
            import pandas as pd
            frame = pd.read_parquet(change)
            pd.concat([frame, frame.iloc[:3]]).to_parquet(change, index=False)
    return evaluate(function, data, *args, **kw)
rows.evaluate_rows = changing
from adcli.cli import main
sys.argv = ["adcli"] + sys.argv[3:]
main()
"""


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("which", [0, 2], ids=["read-already", "read-later"])
def test_a_file_changed_during_the_run_is_data_changed_exit_1(tmp_path, kind, which):
    """The fingerprint the fit path checks (size, mtime and the Parquet footer), taken when
    the partitions are listed: a file changed before its partition is read (read-later),
    or after (read-already: checked once every partition is written), stops the run with
    one Error line naming the file, exit 1."""
    frames = _frames(files=3, rows=30)
    source = _parquet(tmp_path / "lake", frames) if kind == "parquet" else \
        _csvs(tmp_path / "csvs", frames)
    changed = source / f"data{which:02d}.{kind}"
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    run = subprocess.run([sys.executable, "-c", _CHANGING, kind, str(changed), "eval", EXPR,
                          "--data", str(source), *AT, "-o", str(tmp_path / "out"),
                          "--scheduler", "synchronous"], capture_output=True, text=True,
                         env=env, timeout=300, cwd=ROOT)
    assert _one_error(run, 1) == f"Error: data changed during the run: {changed}"
    assert run.stderr.strip().count("\n") == 0  # no "rows written" line after it


def test_an_unchanged_source_passes_the_fingerprint_checks(tmp_path):
    """The checks do not disturb a run whose files stay as they were (the same script, the
    change made to a file outside the source)."""
    frames = _frames(files=3, rows=30)
    source = _csvs(tmp_path / "csvs", frames)
    other = tmp_path / "other.csv"
    frames[0].to_csv(other, index=False)
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    run = subprocess.run([sys.executable, "-c", _CHANGING, "csv", str(other), "eval", EXPR,
                          "--data", str(source), *AT, "-o", str(tmp_path / "out"),
                          "--scheduler", "synchronous"], capture_output=True, text=True,
                         env=env, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert len(_parts(tmp_path / "out")) == 3
