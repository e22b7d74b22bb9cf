"""Out of core: the gradient of a line-fit loss over Parquet data three times larger than the
memory a subprocess may still allocate (RLIMIT_AS), partition by partition on Dask's local
threaded scheduler; peak RSS is reported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
FILES, ROWS = 26, 500_000  # 13M rows x 2 float64 columns: 198 MiB of values
HEADROOM_MB = 64  # address space the run may add after its imports

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import adcli, dask.dataframe, pandas, pyarrow.parquet  # imports before the limit
    from adcli.partitioned.distributed import DaskObjective, Scheduler
    from adcli.optimize import build_objective
    from adcli.io.sources import open_partitioned

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) << 10

    limit = status("VmPeak:") + int(sys.argv[2]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:  # the same allocation in one piece must fail: the limit is real
        np.empty(int(sys.argv[3]), dtype=np.float64)
        print("UNLIMITED")
    except MemoryError:
        pass
    src = "(w0 + w1*x - y)^2"
    data = open_partitioned(sys.argv[1])
    tape = adcli.parse(src).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {"w0": 1.0, "w1": 1.0}, ["w0", "w1"],
                                   data.select(tape.inputs), factory=DaskObjective,
                                   reduce="sum", source=src, bound=["w0", "w1", "x", "y"],
                                   scheduler=Scheduler("threads"))
    assert not objective.persisted  # over the memory at hand: read partition by partition
    value, grad = objective(np.array([1.0, 1.0]))
    print(repr(float(value)), repr(float(grad[0])), repr(float(grad[1])), objective.rows,
          status("VmHWM:") >> 20, limit >> 20)
""")


def _clean_environ() -> dict:
    """This process's environment without what Dask's nanny writes into it when it starts or
    restarts a local worker (``pre-spawn-environ``): the child runs with Arrow's own pool."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k != "ARROW_DEFAULT_MEMORY_POOL"}


def test_out_of_core_under_a_memory_limit(tmp_path, capsys):
    rng = np.random.default_rng(0)
    sums = np.zeros(3)
    for i in range(FILES):
        x = rng.uniform(0, 1, ROWS)
        y = 2 + 3 * x + rng.normal(0, 0.1, ROWS)
        r = 1.0 + x - y  # w0 = w1 = 1
        sums += [np.sum(r * r), np.sum(2 * r), np.sum(2 * r * x)]
        pq.write_table(pa.table({"x": x, "y": y}), tmp_path / f"p{i:03d}.parquet")
    data_mb = 2 * FILES * ROWS * 8 >> 20
    assert data_mb >= 3 * HEADROOM_MB
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(HEADROOM_MB),
                          str(2 * FILES * ROWS)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**_clean_environ(), "MALLOC_ARENA_MAX": "2"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "UNLIMITED" not in run.stdout
    value, g0, g1, rows, peak, limit = run.stdout.split()
    assert int(rows) == FILES * ROWS
    got = np.array([float(value), float(g0), float(g1)])
    assert np.all(np.abs(got - sums) <= 1e-12 * np.abs(sums)), got - sums
    with capsys.disabled():
        print(f"\nout of core: {data_mb} MiB of data, {HEADROOM_MB} MiB headroom "
              f"(address-space limit {limit} MiB), peak RSS {peak} MiB")
