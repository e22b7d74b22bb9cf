"""Loss + gradient of the line fit sum((w0 + w1*x - y)^2) on Dask vs in memory.

    python bench/dask_bench.py [--rows 1000000] [--big-rows 20000000] [--repeat 5]
    python bench/dask_bench.py --paths [--sizes 1000000,10000000] [--rounds 5]
        [--schedulers threads,local:2,cluster] [--no-wide] [--worker-memory-limit 2GB]

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

With ``--paths`` it measures instead what users run (issue 26's table), in one run at each of
``--sizes`` (Parquet files of 250,000 rows at 10^6, of 10^6 rows above), rounds interleaved:

- ``adcli minimize SOURCE --data DIR --wrt w0,w1 --method gd --steps N --scheduler S --trace F``
  as a command, for S = ``threads``, ``local:2`` and a cluster started as the README tells users
  (``dask scheduler``, then two ``dask worker ADDRESS --nthreads 1`` with the README's worker
  configuration, from a Dask config directory of its own in ``DASK_CONFIG``, so no other user of
  the machine sees it; on 127.0.0.1; stopped at the end). Its stdout and stderr are a terminal
  (a pty), so it prints ``pass N over P partitions`` after every pass; a run's time a pass is
  the time from its line of pass 2 to its last line over the passes between (passes/wall: the
  first two passes, which read the data and lower the tape, are left out, and so is start-up:
  imports, the cluster, reading, shown apart as the whole command's seconds). Best and median
  are over the rounds' runs;
- in memory: the objective ``minimize --data FILE.csv`` builds (``build_objective`` on a
  :class:`~adcli.io.data.Dataset` of the same rows, loaded), called in this process as many
  times, at new points, in the same rounds (its time a pass: the same passes/wall);
- the wide case: the same rows in files that also carry 20 unused float columns, on each Dask
  scheduler; the trace (every iteration's value and point, every digit) must be the same bits
  as the narrow copy's (asserted), and the in-memory value at the start within 1e-12;
- last, what a pass on the cluster costs before any sweep: the round trip of two empty tasks.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOURCE = "(w0 + w1*x - y)^2"


def _write(folder: Path, rows: int, per_file: int, csv: bool = False, extra: int = 0) -> None:
    """Files of x, y (the same rows whatever ``extra``) and ``extra`` unused float columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    other = np.random.default_rng(1)  # the unused columns draw apart: x and y stay the same
    folder.mkdir(parents=True, exist_ok=True)
    for i, lo in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - lo)
        x = rng.uniform(0, 1, n)
        y = 2 + 3 * x + rng.normal(0, 0.1, n)
        columns = {"x": x, "y": y}
        columns.update({f"c{k:02d}": other.normal(0, 1, n) for k in range(extra)})
        pq.write_table(pa.table(columns), folder / f"p{i:04d}.parquet")
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


# --- the paths users take (--paths) --------------------------------------------------------

PASS_LINE = re.compile(rb"pass (\d+) over (\d+) partitions")
WARM = 2  # passes left out of a run: the first reads the data, the second lowers the tape
WIDE = 20  # unused float columns of the wide copy
#: The README's worker configuration (Big data, "To start a cluster by hand").
WORKER_CONFIG = ("distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: 134217728,\n"
                 "  MALLOC_MMAP_THRESHOLD_: 33554432}}}\n")


def _script(name: str) -> str:
    """The console script ``name`` of this interpreter's environment: what users type."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: install adcli[dask] into this environment")
    return str(path)


def _on_terminal(command: list[str], timeout: float = 900.0) -> tuple[str, list[float], float]:
    """Run ``command`` with stdout and stderr on a pty (so adcli prints its progress line):
    (everything it printed, the clock at each new ``pass N`` line, seconds in all). A command
    that fails or prints a traceback stops the benchmark with what it printed."""
    import pty
    import select

    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="200")
    began = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env=env, start_new_session=True)
    os.close(slave)
    out, stamps, seen = bytearray(), [], 0
    try:
        while time.perf_counter() - began < timeout:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            now = time.perf_counter()
            out += chunk
            for match in PASS_LINE.finditer(chunk):  # a line is written whole, in one chunk
                count = int(match.group(1))
                if count > seen:
                    seen = count
                    stamps.append(now)
        else:
            child.kill()
        status = child.wait(timeout=60)
    finally:
        os.close(master)
    wall = time.perf_counter() - began
    text = out.decode("utf-8", "replace")
    if status != 0 or "Traceback" in text:
        raise SystemExit(f"{' '.join(command)} exited {status}:\n{text}")
    return text, stamps, wall


class HandStartedCluster:
    """``dask scheduler`` and ``dask worker ADDRESS --nthreads 1`` processes started as the
    README tells users, with its worker configuration in a Dask config directory of their own
    (``DASK_CONFIG``: the user's ~/.config/dask is not touched). Scheduler and workers listen
    on 127.0.0.1 at free ports; all are stopped on exit."""

    def __init__(self, folder: Path, workers: int = 2, memory_limit: str = "") -> None:
        self.folder, self.workers, self.memory_limit = folder, workers, memory_limit
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, command: list[str], log: Path, env: dict) -> subprocess.Popen:
        with open(log, "wb") as fh:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                     env=env, start_new_session=True)
        self.processes.append(child)
        return child

    def _wait_for(self, log: Path, pattern: str, child: subprocess.Popen) -> re.Match:
        for _ in range(600):
            match = re.search(pattern, log.read_text(errors="replace"))
            if match:
                return match
            if child.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"{log.name}: no '{pattern}' in 60 s:\n{log.read_text(errors='replace')}")

    def __enter__(self) -> HandStartedCluster:
        config = self.folder / "dask-config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "adcli-workers.yaml").write_text(WORKER_CONFIG)
        env = dict(os.environ, DASK_CONFIG=str(config))
        try:
            log = self.folder / "scheduler.log"
            child = self._start([_script("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--dashboard-address", "127.0.0.1:0"], log, env)
            self.address = self._wait_for(log, r"Scheduler at:\s+(tcp://\S+)", child).group(1)
            for i in range(self.workers):
                log = self.folder / f"worker{i}.log"
                limit = ["--memory-limit", self.memory_limit] if self.memory_limit else []
                child = self._start([_script("dask"), "worker", self.address, "--nthreads", "1",
                                     *limit], log, env)
                self._wait_for(log, r"Registered to:", child)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.processes):  # workers first, then the scheduler
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.processes.clear()


def _memory_objective(folder: Path):
    """The objective ``minimize --data FILE.csv`` builds, on the rows of ``folder`` loaded."""
    import pyarrow.parquet as pq

    import adcli
    from adcli.io.data import Dataset
    from adcli.optimize import build_objective

    files = sorted(folder.glob("*.parquet"))
    columns = {name: np.concatenate([pq.read_table(f, columns=[name]).column(name).to_numpy()
                                     for f in files]) for name in ("x", "y")}
    tape = adcli.parse(SOURCE).tape({"x", "y", "w0", "w1"})
    objective, _ = build_objective(tape, {}, ["w0", "w1"],
                                   Dataset(columns=columns).select(tape.inputs), reduce="mean")
    return objective


def _memory_pass(objective, passes: int) -> float:
    """Seconds a pass over ``passes`` calls at new points, the first WARM left out as in the
    commands' runs."""
    for i in range(passes):
        if i == WARM:
            began = time.perf_counter()
        objective(np.array([1e-3 * i, 2e-3 * i]))
    return (time.perf_counter() - began) / (passes - WARM)


def _trace_rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _stats(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return ordered[0], ordered[len(ordered) // 2]


def paths(sizes: list[int], rounds: int, tmp: Path, wide: bool, configurations: list[str],
          memory_limit: str = "") -> None:
    """Issue 26's table: a pass of the line fit's loss and gradient through ``adcli minimize``
    on each scheduler against the objective in memory, at each size, rounds interleaved."""
    shapes = ["narrow"] + (["wide"] if wide else [])
    cluster = "cluster" in configurations
    with (HandStartedCluster(tmp / "cluster", memory_limit=memory_limit) if cluster
          else _Nothing()) as hand:
        if cluster:
            print(f"cluster: dask scheduler at {hand.address}, {hand.workers} x dask worker "
                  f"--nthreads 1 {'--memory-limit ' + memory_limit + ' ' if memory_limit else ''}"
                  "with the README's worker configuration")
        for rows in sizes:
            per_file = 250_000 if rows <= 1_000_000 else 1_000_000
            steps = 60 if rows <= 1_000_000 else 25
            folders = {}
            for shape in shapes:
                folders[shape] = tmp / f"{shape}{rows}"
                _write(folders[shape], rows, per_file, extra=WIDE if shape == "wide" else 0)
            memory = _memory_objective(folders["narrow"])
            runs = [(c, s) for c in configurations for s in shapes]
            times: dict = {key: [] for key in [("memory", "narrow"), *runs]}
            walls: dict = {key: [] for key in runs}
            traces: dict = {}
            loads = [os.getloadavg()[0]]
            for r in range(rounds):
                times["memory", "narrow"].append(_memory_pass(memory, steps + 1))
                for configuration, shape in runs:
                    where = hand.address if configuration == "cluster" else configuration
                    trace = tmp / f"trace-{configuration.replace(':', '')}-{shape}.csv"
                    text, stamps, wall = _on_terminal(
                        [_script("adcli"), "minimize", SOURCE, "--data", str(folders[shape]),
                         "--wrt", "w0,w1", "--method", "gd", "--lr", "0.1", "--steps",
                         str(steps), "--scheduler", where, "--trace", str(trace)])
                    if len(stamps) != steps + 1:
                        raise SystemExit(f"{configuration} {shape}: {len(stamps)} pass lines "
                                         f"for {steps + 1} passes:\n{text}")
                    if "Warning:" in text:
                        print(f"  {configuration} {shape} warned: " + " | ".join(
                            line for line in text.splitlines() if "Warning:" in line))
                    # from the end of pass WARM to the end of the last: steps + 1 - WARM passes
                    times[configuration, shape].append((stamps[-1] - stamps[WARM - 1])
                                                       / (steps + 1 - WARM))
                    walls[configuration, shape].append(wall)
                    rows_now = _trace_rows(trace)
                    if traces.setdefault((configuration, shape), rows_now) != rows_now:
                        raise SystemExit(f"{configuration} {shape}: round {r + 1} gave other "
                                         "bits than round 1")
                loads.append(os.getloadavg()[0])
            for configuration in configurations:
                if wide:  # the unused columns never change a bit
                    assert traces[configuration, "wide"] == traces[configuration, "narrow"], \
                        f"{configuration}: the wide files gave other bits than the narrow copy"
            first = traces[runs[0]]
            same = all(rows_now == first for rows_now in traces.values())
            start = float(first[1].split(",")[1])
            value, _ = memory(np.zeros(2))
            assert abs(value - start) <= 1e-12 * abs(value), (value, start)
            base_best, base_median = _stats(times["memory", "narrow"])
            files = -(-rows // per_file)
            print(f"\n{rows:,} rows, {files} Parquet files, {steps + 1} passes a run, "
                  f"{rounds} rounds, load {min(loads):.1f}-{max(loads):.1f}; every Dask run "
                  f"{'the same bits' if same else 'NOT the same bits'} (trace), in memory "
                  f"{abs(value - start) / abs(value):.1e} from it at the start")
            print("| configuration | files | a pass, best | median | ratio to in memory, best "
                  "(medians) | wide / narrow, medians | whole command, median |")
            print("|---|---|---|---|---|---|---|")
            print(f"| in memory, one process | narrow | {base_best * 1e3:.2f} ms | "
                  f"{base_median * 1e3:.2f} ms | 1 | | |")
            for configuration, shape in runs:
                best, median = _stats(times[configuration, shape])
                versus = ""
                if shape == "wide":
                    versus = f"{median / _stats(times[configuration, 'narrow'])[1]:.2f}x"
                whole = sorted(walls[configuration, shape])[len(walls[configuration, shape]) // 2]
                print(f"| {configuration} | {shape} | {best * 1e3:.2f} ms | {median * 1e3:.2f} ms "
                      f"| {best / base_best:.2f}x ({median / base_median:.2f}x) | {versus} | "
                      f"{whole:.1f} s |")
            sys.stdout.flush()
        if cluster:
            _round_trip(hand.address)


def _round_trip(address: str, repeat: int = 50) -> None:
    """What a pass on a cluster costs before any sweep: two tasks that do nothing (one a
    worker), submitted and gathered by a client, as a pass of two kept blocks is."""
    from distributed import Client

    with Client(address) as client:
        times = []
        for i in range(repeat + 5):
            t = time.perf_counter()
            client.gather(client.map(abs, [-i, -i - 0.5], pure=False))
            times.append(time.perf_counter() - t)
    best, median = _stats(times[5:])
    print(f"\ncluster round trip of 2 empty tasks: best {best * 1e3:.1f} ms, median "
          f"{median * 1e3:.1f} ms ({repeat} after 5 warm-up, load {os.getloadavg()[0]:.1f})")


class _Nothing:
    """A context that stands in for the cluster when there is none."""

    address = ""
    workers = 0

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reread", action="store_true",
                        help="never keep the data in memory: re-read it every pass, as out "
                             "of core does")
    parser.add_argument("--paths", action="store_true",
                        help="measure the commands users run instead (issue 26's table)")
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="--paths: rows, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="--paths: interleaved rounds")
    parser.add_argument("--no-wide", action="store_true", help="--paths: no wide copy")
    parser.add_argument("--schedulers", default="threads,local:2,cluster",
                        help="--paths: where the commands run; cluster: started by hand")
    parser.add_argument("--worker-memory-limit", default="",
                        help="--paths: the hand-started workers' --memory-limit (e.g. 2GB)")
    args = parser.parse_args(argv)
    if args.paths:
        with tempfile.TemporaryDirectory() as tmp:
            paths([int(n) for n in args.sizes.split(",")], args.rounds, Path(tmp),
                  not args.no_wide, args.schedulers.split(","), args.worker_memory_limit)
        return
    if args.reread:
        import adcli.partitioned.distributed

        adcli.partitioned.distributed.PERSIST_FRACTION = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        overhead(args.rows, args.repeat, Path(tmp))
        if args.big_rows:
            scaling(args.big_rows, args.repeat, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
