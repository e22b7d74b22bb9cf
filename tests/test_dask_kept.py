"""Whether Parquet data is kept in memory or re-read every pass is decided by what is kept:
the used columns as float64 (rows from the footers), not the files' size on disk, which
counts columns never read and shrinks with compression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import adcli
from adcli.io.sources import open_partitioned
from adcli.optimize import build_objective
from adcli.partitioned.distributed import DaskObjective, Scheduler

LINE = "(w0 + w1*x - y)^2"
FILES, ROWS = 3, 40_000


def _write(folder: Path, extra: int) -> int:
    """FILES files of x, y (the same rows whatever ``extra``) and ``extra`` unused columns:
    the bytes on disk."""
    rng, other = np.random.default_rng(5), np.random.default_rng(6)
    folder.mkdir()
    for i in range(FILES):
        x = rng.uniform(0, 1, ROWS)
        columns = {"x": x, "y": 2 + 3 * x + rng.normal(0, 0.1, ROWS)}
        columns.update({f"c{k:02d}": other.normal(0, 1, ROWS) for k in range(extra)})
        pq.write_table(pa.table(columns), folder / f"p{i}.parquet")
    return sum(f.stat().st_size for f in folder.iterdir())


def _objective(folder: Path, memory: int) -> DaskObjective:
    scheduler = Scheduler("synchronous")
    scheduler.memory = lambda: memory  # the memory at hand, as a cluster's limits would say
    tape = adcli.parse(LINE).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {"w0": 1.0, "w1": 1.0}, ["w0", "w1"],
                                   open_partitioned(str(folder)).select(tape.inputs),
                                   factory=DaskObjective, reduce="sum", source=LINE,
                                   bound=["w0", "w1", "x", "y"], scheduler=scheduler)
    return objective


def test_wide_files_are_kept_when_their_used_columns_fit(tmp_path):
    """x and y fit in a quarter of the memory at hand, the wide files on disk do not: both
    copies are kept (a wide data lake is not re-read every pass for columns never read), with
    the same bits."""
    kept = FILES * ROWS * 2 * 8
    narrow, wide = _write(tmp_path / "narrow", 0), _write(tmp_path / "wide", 20)
    memory = 5 * kept  # a quarter of it holds x and y, not the wide files
    assert narrow <= memory / 4 < wide
    got = {}
    for name in ("narrow", "wide"):
        objective = _objective(tmp_path / name, memory)
        assert objective.persisted, name
        got[name] = objective(np.array([0.3, 1.7]))
    assert got["wide"][0] == got["narrow"][0]
    assert np.array_equal(got["wide"][1], got["narrow"][1])


def test_compressed_files_too_large_as_values_are_re_read(tmp_path):
    """Constant columns compress to a few KB on disk but are 8 bytes a cell in memory: data
    whose values do not fit in a quarter of the memory at hand is re-read, and sums right."""
    folder = tmp_path / "constant"
    folder.mkdir()
    rows = 200_000
    pq.write_table(pa.table({"x": np.ones(rows), "y": np.full(rows, 5.0)}),
                   folder / "p.parquet")
    on_disk = (folder / "p.parquet").stat().st_size
    memory = 2 * rows * 2 * 8  # a quarter: half of the values
    assert on_disk <= memory / 4
    objective = _objective(folder, memory)
    assert not objective.persisted
    value, grad = objective(np.array([1.0, 1.0]))  # (1 + 1 - 5)^2 = 9 a row
    assert value == 9.0 * rows
    assert np.array_equal(grad, np.array([-6.0 * rows, -6.0 * rows]))
