"""Sums over partitions on Dask: the loss and gradient of ``minimize --data`` for data that
does not fit in memory, or on a ``dask.distributed`` cluster.

What travels to a worker is the program's SOURCE TEXT, the names bound, the parameter names
and the point (plain strings and floats); the worker re-parses the text with adcli's own parser
(cached per worker) and runs the same compiled column sweeps as the in-memory path
(:meth:`adcli.fast.policy.CompiledTape.grad_sum`) on its partition. Only ``1 + p + 1`` numbers
come back per partition (sum of the expression, gradient of that sum, rows), and they are
added in a fixed binary tree over the partitions in file order: ``((P0+P1)+(P2+P3))+...``
level by level (:mod:`adcli.partitioned.partitions`), the same order on every scheduler, whether the
data is kept in memory or re-read, so the threaded scheduler and a cluster give bit-identical sums.
Data that fits in memory is read and checked once (:class:`Partitions`); a pass is then one small
task graph: a few tasks, nothing re-read, re-converted or tokenized.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

import numpy as np

from ..core.tape import Tape
from ..errors import EXIT_FAILED, AdcliError, escape_control
from ..fast.blas import pin_blas, restore_blas
from ..io.sources import PartitionedData, require
from ..optimize.bounded import TimeUp
from ..optimize.objective import Objective
from .kinks import PassBranches
from .partitions import (
    Combine,
    PartitionFunction,
    block_nodes,
    block_rows,
    block_sample,
    frame_sample,
    frame_sums,
    joined,
    kept_bytes,
    located,
    no_leaf,
    partition_hessian,
    partition_score_outer,
    partition_sums,
    read_block,
    split,
    tree_levels,
    tree_node,
)
from .workers import (
    WORKER_ENVIRON,
    check_workers,
    first_line,
    inherited_limit,
    lean_address_space,
    quiet_logs,
    starting_workers,
)

#: Data (bytes of its files) up to this fraction of the memory at hand is kept in memory.
PERSIST_FRACTION = 0.25

#: Data kept in memory is cut into blocks of at least this many bytes of files (one task a
#: block each pass), at most one block per worker thread: a smaller block's sweep would cost
#: little more than scheduling its task.
BLOCK_BYTES = 32 << 20

#: Dask retries a task this many times (e.g. on a lost worker) before the pass fails.
RETRIES = 2

#: Seconds a cluster may have no worker (or the client no scheduler) before a pass gives up.
NO_WORKERS_TIMEOUT = 60.0


class ClusterError(AdcliError):
    """The computation ran on Dask but could not finish (a lost worker, ...): exit 1."""

    exit_code = EXIT_FAILED


class Scheduler:
    """Where the partition sweeps run: ``None`` (Dask's local threaded scheduler),
    ``synchronous``, ``threads``, ``local[:N]`` (a LocalCluster of N worker processes) or the
    address of a running scheduler (also from ``DASK_SCHEDULER_ADDRESS``). A context manager:
    a LocalCluster it started is closed on exit."""

    def __init__(self, spec: str | None = None) -> None:
        given = bool(spec)
        spec = spec or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self.spec = spec
        self.client: Any = None
        self.cluster: Any = None
        self.local = "threads"
        self.warnings: list[str] = []  # about the workers, for the command to show
        self._blas = pin_blas()  # the client's joins and the threaded scheduler's tasks
        if spec in (None, "threads", "synchronous"):
            self.local = spec or "threads"
            return
        require("--scheduler", ("dask", "distributed"))
        from distributed import Client, LocalCluster

        quiet_logs()  # what goes wrong is said in one Error line, not in Dask's log lines
        lean_address_space()  # before the cluster's threads start
        try:
            if spec == "local" or spec.startswith("local:"):
                count = spec.partition(":")[2] or "2"
                if not count.isdigit() or not 1 <= int(count) <= 256:
                    raise AdcliError(f"--scheduler '{spec}': local:N needs a number of workers "
                                     "from 1 to 256, e.g. local:2")
                # No dashboard; the scheduler's HTTP server on any free port (not 8787,
                # which would print a warning when another cluster holds it).
                import dask

                with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}
                                     ), starting_workers():
                    self.cluster = LocalCluster(n_workers=int(count), threads_per_worker=1,
                                                processes=True, dashboard_address=None,
                                                silence_logs=50,
                                                scheduler_kwargs={"dashboard_address": ":0"})
                self.client = Client(self.cluster)
            else:
                from .address import check, connect_timeout

                origin = "--scheduler" if given else "DASK_SCHEDULER_ADDRESS"
                check(spec, origin)
                self.client = Client(spec, timeout=connect_timeout())
            self.warnings = check_workers(self.client)
        except (AdcliError, KeyboardInterrupt):
            self.close()
            raise
        except Exception as err:  # OSError, TimeoutError, anything the client raises
            self.close()
            raise ClusterError(f"cannot reach the Dask scheduler at "
                               f"'{escape_control(spec)}': {first_line(err)}") from None

    def memory(self) -> int | None:
        """Bytes the partitions could be kept in: the workers' memory limits on a cluster
        (``local:N``: within the ``ulimit -v`` they inherit from here), the memory available
        now on this machine otherwise."""
        if self.client is None:
            from ..io.sources import available_memory

            return available_memory()
        limits = [w.get("memory_limit") or 0
                  for w in self.client.scheduler_info().get("workers", {}).values()]
        return sum(inherited_limit(limits) if self.cluster is not None else limits) or None

    @property
    def workers(self) -> int:
        """Tasks that can run at once: worker threads here, workers on a cluster."""
        if self.client is None:
            return 1 if self.local == "synchronous" else (os.cpu_count() or 1)
        return len(self.client.scheduler_info().get("workers", {}))

    def keep(self, tasks: list, what: str = "data") -> list:
        """Run ``tasks`` (delayed) once and keep their results: here (the values) or on the
        cluster (futures, which Dask recomputes from the files if a worker is lost)."""
        with self._failures(what):
            if self.client is None:
                import dask

                return list(dask.compute(*tasks, scheduler=self.local))
            futures = self.client.compute(tasks, retries=RETRIES)
            self._wait(futures)
            return futures

    def run(self, graph: dict, keys: list, what: str = "data", parallel: bool = True) -> list:
        """The values of ``keys`` of a low-level task graph (a dict), computed here with
        Dask's threaded scheduler (synchronous, in this thread, when asked or when the graph
        has nothing to run in parallel: handing one task to a thread and back costs more
        than its scheduling), or on the cluster."""
        with self._failures(what):
            if self.client is None:
                if self.local == "synchronous" or not parallel:
                    from dask.local import get_sync

                    return list(get_sync(graph, keys))
                from dask.threaded import get

                return list(get(graph, keys))
            futures = self.client.get(graph, keys, sync=False, retries=RETRIES)
            self._wait(futures)
            return self.client.gather(futures)

    def submit(self, fn: Callable[..., Any], args: list[tuple], what: str = "data") -> list:
        """``fn(*a)`` for each ``a`` in ``args`` on the cluster (an argument may be a kept
        future: the task runs where that block is)."""
        with self._failures(what):
            futures = [self.client.submit(fn, *a, pure=False, retries=RETRIES) for a in args]
            self._wait(futures)
            return self.client.gather(futures)

    def _wait(self, futures: list) -> None:
        """Wait for ``futures``; give up (:class:`ClusterError`) once the cluster has had no
        worker, or the client no scheduler, for ``adcli.no-workers-timeout`` seconds (Dask
        config; ``DASK_ADCLI__NO_WORKERS_TIMEOUT``; 60 by default): Dask would wait for ever."""
        import dask
        from distributed import wait

        grace = float(dask.config.get("adcli.no-workers-timeout", NO_WORKERS_TIMEOUT))
        since: float | None = None
        while True:
            try:  # on this client: wait() takes the newest client, whose event loop would
                with self.client.as_current():  # not hear of these futures till the timeout
                    wait(futures, timeout=1.0)
                break
            except TimeoutError:
                pass
            try:
                alive = self.client.status == "running" and bool(
                    self.client.scheduler_info().get("workers"))
            except Exception:  # the scheduler went away mid-call
                alive = False
            if alive:
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since > grace:
                try:
                    self.client.cancel(futures)
                except Exception:
                    pass
                lost = "worker left" if self.client.status == "running" else "scheduler"
                raise ClusterError(f"no Dask {lost} for {grace:g} s; the computation cannot "
                                   "finish")
        for future in futures:
            if future.status == "error":
                future.result()  # raises the task's exception
            elif future.status != "finished":
                raise ClusterError(f"a Dask task ended as '{future.status}'")

    @contextlib.contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Bad data (a cell that is not a number, a malformed file) is a DataError (exit 2);
        a failure that is not the data's fault (a lost worker after Dask's retries, a closed
        connection) is a :class:`ClusterError` (exit 1)."""
        try:
            yield
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            from ..io.data import DataError

            raise DataError(f"{what}: {first_line(err)}") from None
        except (KeyboardInterrupt, AdcliError, TimeUp):  # TimeUp: --max-time, mid-pass
            raise
        except CancelledError:  # FuturesCancelledError: the scheduler stopped mid-run
            raise ClusterError("the Dask scheduler stopped or cancelled the computation; it "
                               "cannot finish") from None
        except Exception as err:  # distributed's KilledWorker, CommClosedError, ...
            raise ClusterError(f"the Dask computation failed: {type(err).__name__}: "
                               f"{first_line(err)}") from None

    def close(self) -> None:
        restore_blas(self._blas)
        self._blas = []
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Partitions:
    """The data's partitions and how a pass over them runs.

    Data that fits in :data:`PERSIST_FRACTION` of the memory at hand is read ONCE into
    :class:`Block` s of float64 columns, checked once for non-finite cells: one block per
    worker thread here (per worker on a cluster, kept there as futures), or fewer so that a
    block has at least :data:`BLOCK_BYTES` (:func:`kept_bytes`); a pass is then one
    task per block that sweeps its partitions and returns the tree nodes they cover
    (:func:`block_nodes`), and the client adds those up to the root. Larger data is re-read
    on every pass: one task per partition (read, check, sweep) and the additions of the tree
    as tasks, so memory stays bounded by a few partitions. Either way a pass is a plain task
    graph (no collection rebuilt, nothing tokenized) and the sums are the same bits."""

    def __init__(self, data: PartitionedData, scheduler: Scheduler, what: str) -> None:
        with located(data):
            self._open(data, scheduler, what)

    def _open(self, data: PartitionedData, scheduler: Scheduler, what: str) -> None:
        self.scheduler = scheduler
        self.what = what
        self.data = data
        with scheduler._failures(what):  # pandas reads the first file's cells here
            parts = data.parts()
        # The pieces that will run, not Dask's count before its optimisation merges any.
        self.count = len(parts)
        if self.count == 0:
            raise AdcliError("the data has no partitions")
        size, memory = kept_bytes(data), scheduler.memory()
        self.persisted = memory is not None and size <= PERSIST_FRACTION * memory
        self.passes = 0
        self.rows: list[int] | None = None
        if self.persisted:
            import dask

            read = dask.delayed(read_block, pure=True)
            self.ranges = split(self.count, min(scheduler.workers, size // BLOCK_BYTES + 1))
            self.blocks = scheduler.keep([read(a, *parts[a:b]) for a, b in self.ranges], what)
            if scheduler.client is None:
                self.rows = [n for block in self.blocks for n in block.rows]
            return
        self.graph: dict = {}
        seen: set[int] = set()
        for part in parts:
            if id(part.dask) not in seen:
                seen.add(id(part.dask))
                self.graph.update(part.dask)
        self.keys = [part.key for part in parts]

    def sums(self, func: PartitionFunction, args: tuple, combine: Combine = np.add
             ) -> np.ndarray:
        """One pass: ``func`` on every partition, joined by ``combine`` in the fixed tree."""
        with located(self.data):
            total = self._sums(func, args, combine)
        self.data.unchanged()
        return total

    def _sums(self, func: PartitionFunction, args: tuple, combine: Combine) -> np.ndarray:
        self.passes += 1
        tag = f"adcli-{self.passes}"
        task = functools.partial(block_nodes, count=self.count, func=func, args=args,
                                 combine=combine)
        if self.persisted:
            if self.scheduler.client is None:
                graph = {(tag, "block", g): block for g, block in enumerate(self.blocks)}
                graph.update({(tag, g): (task, (tag, "block", g))
                              for g in range(len(self.blocks))})
                found = self.scheduler.run(graph, [(tag, g) for g in range(len(self.blocks))],
                                           self.what, parallel=len(self.blocks) > 1)
            else:
                found = self.scheduler.submit(task, [(b,) for b in self.blocks], self.what)
            known = {(k, j): value for nodes in found for k, j, value in nodes}
            return tree_node(tree_levels(self.count), 0, self.count, known, no_leaf, combine)
        leaf = functools.partial(frame_sums, func=func, args=args)
        join = functools.partial(joined, combine)
        graph = dict(self.graph)
        level = []
        for i, key in enumerate(self.keys):
            graph[(tag, 0, i)] = (leaf, key)
            level.append((tag, 0, i))
        k = 0
        while len(level) > 1:
            k += 1
            nxt = []
            for j in range(0, len(level) - 1, 2):
                graph[(tag, k, j // 2)] = (join, level[j], level[j + 1])
                nxt.append((tag, k, j // 2))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return np.asarray(self.scheduler.run(graph, [level[0]], self.what)[0])

    def lengths(self) -> list[int]:
        """Rows of every partition (read once: kept, or counted by a pass of ``len``)."""
        if self.rows is None:
            if self.persisted:
                found = self.scheduler.submit(block_rows, [(b,) for b in self.blocks],
                                              self.what)
            else:
                graph = dict(self.graph)
                graph.update({("adcli-len", i): (len, key) for i, key in enumerate(self.keys)})
                found = [self.scheduler.run(graph, [("adcli-len", i)
                                                    for i in range(self.count)], self.what)]
            self.rows = [int(n) for rows in found for n in rows]
        return self.rows

    def sample(self, index: int, rows: np.ndarray, func: PartitionFunction, args: tuple
               ) -> np.ndarray:
        """``func`` over the rows ``rows`` of partition ``index``: one task."""
        if self.persisted:
            g = next(g for g, (a, b) in enumerate(self.ranges) if a <= index < b)
            task = functools.partial(block_sample, member=index, rows=rows, func=func,
                                     args=args)
            if self.scheduler.client is None:
                with self.scheduler._failures(self.what):
                    return task(self.blocks[g])
            return np.asarray(self.scheduler.submit(task, [(self.blocks[g],)], self.what)[0])
        graph = dict(self.graph)
        graph["adcli-sample"] = (functools.partial(frame_sample, rows=rows, func=func,
                                                   args=args), self.keys[index])
        return np.asarray(self.scheduler.run(graph, ["adcli-sample"], self.what)[0])


class DaskObjective(PassBranches, Objective):
    """:class:`~adcli.optimize.objective.Objective` whose sums over rows run per partition
    on Dask: each call is one pass over the data; :meth:`sample` is one minibatch."""

    def __init__(self, tape: Tape, names: Sequence[str], fixed: dict | None = None,
                 data: PartitionedData | None = None, reduce: str = "mean",
                 batch_size: int | None = None, seed: Any = None, *, source: str = "",
                 bound: Sequence[str] = (), scheduler: Scheduler | None = None,
                 on_pass: Callable[[int, int], None] | None = None) -> None:
        if data is None:
            raise AdcliError("the Dask path needs data")
        if reduce not in ("mean", "sum"):
            raise AdcliError(f"unknown reduction '{reduce}' (use mean or sum)")
        self.tape = tape
        self.names = list(names)
        self.fixed = {k: np.float64(v) for k, v in (fixed or {}).items() if k in tape.inputs}
        self.data = None  # no in-memory Dataset
        self.partitioned = data.select([n for n in data.names if n in tape.inputs],
                                       data.dropna)
        if not self.partitioned.use:
            raise AdcliError("the expression uses no column of the data")
        self.columns = {}  # the rows stay on disk / on the workers
        self.reduce = reduce
        self.batch_size = None
        self._batches = None
        self.evaluations = 0
        self._bound = True
        self._rng = np.random.default_rng(seed)
        self.source = source
        self.bound = tuple(sorted(bound))
        self.scheduler = scheduler or Scheduler(None)
        self.on_pass = on_pass
        self.what = f"data '{data.path}'"
        self._parts = Partitions(self.partitioned, self.scheduler, self.what)
        self.partitions = self._parts.count
        self.persisted = self._parts.persisted
        self.rows = 0  # known after the first pass (or counted now for minibatches)
        if batch_size:
            self.lengths = np.asarray(self._parts.lengths(), dtype=np.int64)
            self.rows = int(self.lengths.sum())
            if batch_size < self.rows:
                self.batch_size = batch_size

    @property
    def passes(self) -> int:
        return self._parts.passes

    def sums(self, x: np.ndarray) -> tuple[float, np.ndarray, int]:
        """(sum over all rows, gradient of that sum, rows): one pass over the partitions."""
        total = self._sums_at(x)
        self._passed()
        rows = int(total[-1])
        if rows == 0:
            from ..io.data import DataError

            raise DataError(f"data '{self.partitioned.path}' has no rows")
        return float(total[0]), np.asarray(total[1:-1], dtype=np.float64), rows

    def _args(self, x: np.ndarray) -> tuple:
        return (self.source, self.bound, tuple(self.names),
                tuple(sorted((k, float(v)) for k, v in self.fixed.items())),
                tuple(float(v) for v in x))

    def sample(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """A minibatch estimate: a partition drawn with probability proportional to its rows,
        then ``batch_size`` of its rows without replacement (seeded: the same seed and the
        same partitioning give the same sequence). One small task; unbiased for the mean."""
        assert self.batch_size is not None
        self.evaluations += 1
        index = int(self._rng.choice(len(self.lengths), p=self.lengths / self.rows))
        count = int(self.lengths[index])
        rows = np.sort(self._rng.choice(count, size=min(self.batch_size, count),
                                        replace=False))
        total = self._parts.sample(index, rows, partition_sums, self._args(x))
        scale = (self.rows if self.reduce == "sum" else 1.0) / len(rows)
        with np.errstate(all="ignore"):
            return float(total[0]) * scale, np.asarray(total[1:-1]) * scale

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        value, grad, rows = self.sums(x)
        self.rows = rows
        scale = 1.0 if self.reduce == "sum" else 1.0 / rows
        with np.errstate(all="ignore"):
            return value * scale, grad * scale

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The exact Hessian for ``newton``: each partition's p x p Hessian, added in the same
        fixed tree as the gradients (one more pass over the data per Newton step)."""
        if self.batch_size is not None:
            raise AdcliError("--method newton cannot use --batch-size")
        total = self._parts.sums(partition_hessian, self._args(x))
        self._passed()
        rows = int(total[-1])
        p = len(self.names)
        scale = 1.0 if self.reduce == "sum" else 1.0 / max(rows, 1)
        with np.errstate(all="ignore"):
            return np.asarray(total[:-1], dtype=np.float64).reshape(p, p) * scale

    def score_outer(self, x: np.ndarray) -> np.ndarray:
        """sum_i g_i g_i^T over every row (``--stderr sandwich``): one more pass."""
        total = self._parts.sums(partition_score_outer, self._args(x))
        p = len(self.names)
        return np.asarray(total[:-1], dtype=np.float64).reshape(p, p)
