"""Loss + gradient of the line fit sum((w0 + w1*x - y)^2) on Dask vs in memory.

    python bench/dask_bench.py [--rows 1000000] [--big-rows 20000000] [--repeat 5]

1. Overhead at ``--rows`` (Parquet files of 250,000 rows): one pass of the Dask path on the
   local threaded and synchronous schedulers against the in-memory objective on the same rows
   already in memory, the three taking turns within each of ``--repeat`` rounds (so they see
   the same load); best and median. The data is kept in memory (read once into checked
   float64 blocks), or with ``--reread`` read from the files on every pass, as out of core
   does. Also in memory *including* reading the rows from one CSV file (what
   `adcli minimize --data file.csv` pays once).
2. Scaling at ``--big-rows`` (Parquet files of 10^6 rows): a LocalCluster of 1 and of 2 worker
   processes (1 thread each), rows/s per worker; best of ``--repeat`` passes after one
   warm-up pass. Needs adcli[dask].
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOURCE = "(w0 + w1*x - y)^2"


def _write(folder: Path, rows: int, per_file: int, csv: bool = False) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i, lo in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - lo)
        x = rng.uniform(0, 1, n)
        y = 2 + 3 * x + rng.normal(0, 0.1, n)
        pq.write_table(pa.table({"x": x, "y": y}), folder / f"p{i:04d}.parquet")
        if csv:
            with open(folder.parent / "all.csv", "a" if i else "w") as fh:
                if not i:
                    fh.write("x,y\n")
                np.savetxt(fh, np.column_stack([x, y]), delimiter=",", fmt="%.17g")


def _dask_objective(path: Path, scheduler):
    import adcli
    from adcli.io.sources import open_partitioned
    from adcli.optimize import build_objective
    from adcli.partitioned.distributed import DaskObjective

    data = open_partitioned(str(path))
    tape = adcli.parse(SOURCE).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {"w0": 1.0, "w1": 1.0}, ["w0", "w1"],
                                   data.select(tape.inputs), factory=DaskObjective,
                                   reduce="sum", source=SOURCE, bound=["w0", "w1", "x", "y"],
                                   scheduler=scheduler)
    return objective


def _best(fn, repeat: int) -> float:
    """Fewest seconds of fn(x) over ``repeat`` calls at a new point each (no cached task
    result is reused): the best, as bench/run.py reports, since on a shared machine load
    only ever adds time."""
    fn(np.array([1.0, 1.0]))  # warm-up: compiles, starts threads, fills the page cache
    times = []
    for i in range(repeat):
        x = np.array([1.0, 1.0 + 1e-3 * (i + 1)])
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return min(times)


def _interleaved(fns: dict, repeat: int) -> dict:
    """Seconds of each fn(x) over ``repeat`` rounds, the fns taking turns within a round (so
    each sees the same load): {name: sorted list of times}."""
    for fn in fns.values():
        fn(np.array([1.0, 1.0]))  # warm-up
    times: dict = {name: [] for name in fns}
    for i in range(repeat):
        x = np.array([1.0, 1.0 + 1e-3 * (i + 1)])
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t)
    return {name: sorted(v) for name, v in times.items()}


def overhead(rows: int, repeat: int, tmp: Path) -> None:
    import adcli
    from adcli.io.data import read_csv
    from adcli.optimize import build_objective
    from adcli.partitioned.distributed import Scheduler

    _write(tmp / "small", rows, 250_000, csv=True)

    tape = adcli.parse(SOURCE).tape({"x", "y", "w0", "w1"})

    def in_memory_read(x: np.ndarray) -> None:
        data = read_csv(str(tmp / "all.csv"), None)
        objective, _ = build_objective(tape, {"w0": 1.0, "w1": 1.0}, ["w0", "w1"], data,
                                       reduce="sum")
        objective(x)

    cached = read_csv(str(tmp / "all.csv"), None)
    kept, _ = build_objective(tape, {"w0": 1.0, "w1": 1.0}, ["w0", "w1"], cached, reduce="sum")
    memory_read = _best(in_memory_read, max(3, repeat // 5))
    fns = {"memory": kept}  # one objective, as minimize uses it: a pass alone
    for spec in ("threads", "synchronous"):
        fns[spec] = _dask_objective(tmp / "small", Scheduler(spec))
    times = _interleaved(fns, repeat)
    best = {name: v[0] for name, v in times.items()}
    median = {name: v[len(v) // 2] for name, v in times.items()}
    objective = fns["threads"]
    print(f"{rows:,} rows, {objective.partitions} partitions "
          f"({'kept in memory' if objective.persisted else 'read every pass'}), best of "
          f"{repeat} interleaved passes (median in brackets):")
    print(f"  in memory {best['memory'] * 1e3:.2f} ms ({median['memory'] * 1e3:.2f}) a pass "
          f"(data in RAM); {memory_read * 1e3:.0f} ms reading the CSV + a pass")
    for spec in ("threads", "synchronous"):
        print(f"  Dask {spec} {best[spec] * 1e3:.2f} ms ({median[spec] * 1e3:.2f}): "
              f"{best[spec] / best['memory']:.2f}x the pass in RAM "
              f"({median[spec] / median['memory']:.2f}x by medians)")


def scaling(rows: int, repeat: int, tmp: Path) -> None:
    from adcli.partitioned.distributed import Scheduler

    _write(tmp / "big", rows, 1_000_000)
    for workers in (1, 2):
        with Scheduler(f"local:{workers}") as where:
            objective = _dask_objective(tmp / "big", where)
            seconds = _best(objective, repeat)
        rate = rows / seconds
        kept = "kept in memory" if objective.persisted else "read every pass"
        print(f"{rows:,} rows ({kept}), LocalCluster {workers} worker(s): {seconds:.2f} s a "
              "pass, "
              f"{rate / 1e6:.1f}M rows/s, {rate / workers / 1e6:.1f}M rows/s per worker")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reread", action="store_true",
                        help="never keep the data in memory: re-read it every pass, as out "
                             "of core does")
    args = parser.parse_args(argv)
    if args.reread:
        import adcli.partitioned.distributed

        adcli.partitioned.distributed.PERSIST_FRACTION = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        overhead(args.rows, args.repeat, Path(tmp))
        if args.big_rows:
            scaling(args.big_rows, args.repeat, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
