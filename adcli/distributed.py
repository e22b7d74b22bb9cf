"""Sums over partitions on Dask: the loss and gradient of ``minimize --data`` for data that
does not fit in memory, or on a ``dask.distributed`` cluster.

What travels to a worker is the program's SOURCE TEXT, the names bound, the parameter names
and the point (plain strings and floats); the worker re-parses the text with adcli's own parser
(cached per worker) and runs the same compiled column sweeps as the in-memory path
(:meth:`adcli.fast.policy.CompiledTape.grad_sum`) on its partition. Only ``1 + p + 1`` numbers
come back per partition (sum of the expression, gradient of that sum, rows), and they are
added in a fixed binary tree over the partitions in file order: ``((P0+P1)+(P2+P3))+...``
level by level, the same order on every scheduler, so the threaded scheduler and a cluster
give bit-identical sums.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import EXIT_FAILED, AdcliError
from .optimize.objective import Objective
from .sources import PartitionedData, require
from .tape import Tape

#: Data (bytes of its files) up to this fraction of the memory at hand is kept in memory.
PERSIST_FRACTION = 0.25


class ClusterError(AdcliError):
    """The computation ran on Dask but could not finish (a lost worker, ...): exit 1."""

    exit_code = EXIT_FAILED


@functools.lru_cache(maxsize=8)
def _tape(source: str, bound: tuple[str, ...]) -> Tape:
    """The tape of ``source`` re-parsed on this worker by adcli's parser (never unpickled)."""
    from .function import parse

    return parse(source, max_bytes=None).tape(bound)


def partition_sums(frame: Any, source: str, bound: tuple[str, ...], names: tuple[str, ...],
                   fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]) -> np.ndarray:
    """[sum of the expression over the partition's rows, its gradient w.r.t. ``names``, rows]."""
    from .fast.policy import compiled

    tape = _tape(source, bound)
    rows = len(frame)
    out = np.zeros(len(names) + 2)
    out[-1] = rows
    if rows == 0:
        return out
    point: dict[str, Any] = dict(fixed)
    point.update(columns_of(frame))
    point.update(zip(names, (np.float64(v) for v in x)))
    with np.errstate(all="ignore"):
        value, grads = compiled(tape).grad_sum(point, list(names))
    out[0] = value
    out[1:-1] = grads
    return out


def columns_of(frame: Any) -> dict[str, np.ndarray]:
    """A partition's columns as float64 arrays; a missing or non-finite cell is an error
    (ValueError: bad input once it reaches :meth:`Scheduler.compute`), as in memory."""
    out = {}
    for name in frame.columns:
        col = np.ascontiguousarray(frame[name].to_numpy(dtype=np.float64))
        if not np.all(np.isfinite(col)):
            raise ValueError(f"column '{name}' has a missing or non-finite cell (--dropna "
                             "leaves out the rows with a missing cell)")
        out[str(name)] = col
    return out


def tree_sum(parts: list) -> Any:
    """Pairwise sums in a fixed binary tree (level by level, neighbours in order)."""
    import dask

    add = dask.delayed(np.add, pure=True)
    level = list(parts)
    if not level:
        raise AdcliError("the data has no partitions")
    while len(level) > 1:
        nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class Scheduler:
    """Where the partition sweeps run: ``None`` (Dask's local threaded scheduler),
    ``synchronous``, ``threads``, ``local[:N]`` (a LocalCluster of N worker processes) or the
    address of a running scheduler (also from ``DASK_SCHEDULER_ADDRESS``). A context manager:
    a LocalCluster it started is closed on exit."""

    def __init__(self, spec: str | None = None) -> None:
        spec = spec or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self.spec = spec
        self.client: Any = None
        self.cluster: Any = None
        self.local = "threads"
        if spec in (None, "threads", "synchronous"):
            self.local = spec or "threads"
            return
        require("--scheduler", ("dask", "distributed"))
        from distributed import Client, LocalCluster

        try:
            if spec == "local" or spec.startswith("local:"):
                count = spec.partition(":")[2] or "2"
                if not count.isdigit() or not 1 <= int(count) <= 256:
                    raise AdcliError(f"--scheduler '{spec}': local:N needs a number of workers "
                                     "from 1 to 256, e.g. local:2")
                self.cluster = LocalCluster(n_workers=int(count), threads_per_worker=1,
                                            processes=True, dashboard_address=None,
                                            silence_logs=50)
                self.client = Client(self.cluster)
            else:
                self.client = Client(spec, timeout=10)
        except AdcliError:
            raise
        except (OSError, TimeoutError) as err:
            self.close()
            raise ClusterError(f"cannot reach the Dask scheduler at '{spec}': {err}") from None

    def memory(self) -> int | None:
        """Bytes the partitions could be kept in: the workers' memory limits on a cluster,
        the memory available now on this machine otherwise."""
        if self.client is None:
            from .sources import available_memory

            return available_memory()
        limits = [w.get("memory_limit") or 0
                  for w in self.client.scheduler_info().get("workers", {}).values()]
        return sum(limits) or None

    def persist(self, frame: Any, what: str = "data") -> Any:
        """The partitions read once and kept in memory (here or on the workers)."""
        try:
            if self.client is not None:
                return self.client.persist(frame)
            return frame.persist(scheduler=self.local)
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            from .data import DataError

            raise DataError(f"{what}: {_first_line(err)}") from None

    @property
    def workers(self) -> int:
        if self.client is None:
            return 1 if self.local == "synchronous" else (os.cpu_count() or 1)
        return len(self.client.scheduler_info().get("workers", {}))

    def compute(self, task: Any, what: str = "data") -> np.ndarray:
        """Run a delayed task here or on the cluster. A failure that is not the data's fault
        (a lost worker after Dask's retries, a closed connection) is a :class:`ClusterError`."""
        try:
            if self.client is not None:
                return np.asarray(self.client.compute(task, retries=2).result())
            import dask

            return np.asarray(dask.compute(task, scheduler=self.local)[0])
        except (ValueError, TypeError, UnicodeDecodeError) as err:
            # pandas/pyarrow on a cell that is not a number, or a malformed file: bad input.
            from .data import DataError

            raise DataError(f"{what}: {_first_line(err)}") from None
        except (KeyboardInterrupt, AdcliError):
            raise
        except Exception as err:  # distributed's KilledWorker, CommClosedError, ...
            raise ClusterError(f"the Dask computation failed: {type(err).__name__}: "
                               f"{_first_line(err)}") from None

    def close(self) -> None:
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


class DaskObjective(Objective):
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
        self._frame = self.partitioned.frame()
        self.partitions = self._frame.npartitions
        self.rows = 0  # known after the first pass (or counted now for minibatches)
        self.passes = 0
        #: Data that fits in a quarter of the memory at hand is read once and kept there
        #: (a pass then costs the sweeps alone); larger data is re-read on every pass.
        size = self.partitioned.bytes()
        memory = self.scheduler.memory()
        self.persisted = memory is not None and size <= PERSIST_FRACTION * memory
        if self.persisted:
            self._frame = self.scheduler.persist(self._frame, f"data '{data.path}'")
        self._parts = self._frame.to_delayed()
        if batch_size:
            import dask

            lengths = self.scheduler.compute(
                dask.delayed(list)([dask.delayed(len)(part) for part in self._parts]),
                f"data '{data.path}'")
            self.lengths = np.asarray(lengths, dtype=np.int64)
            self.rows = int(self.lengths.sum())
            if batch_size < self.rows:
                self.batch_size = batch_size

    def sums(self, x: np.ndarray) -> tuple[float, np.ndarray, int]:
        """(sum over all rows, gradient of that sum, rows): one pass over the partitions."""
        parts = [_delayed_sums(part, *self._args(x)) for part in self._parts]
        total = self.scheduler.compute(tree_sum(parts), f"data '{self.partitioned.path}'")
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(self.passes, self.partitions)
        rows = int(total[-1])
        if rows == 0:
            from .data import DataError

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
        import dask

        assert self.batch_size is not None
        self.evaluations += 1
        index = int(self._rng.choice(len(self.lengths), p=self.lengths / self.rows))
        count = int(self.lengths[index])
        rows = np.sort(self._rng.choice(count, size=min(self.batch_size, count),
                                        replace=False))
        part = dask.delayed(_take, pure=True)(self._parts[index], rows)
        total = self.scheduler.compute(_delayed_sums(part, *self._args(x)),
                                       f"data '{self.partitioned.path}'")
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
        raise AdcliError("--method newton is not available for partitioned data (Dask); "
                         "use bfgs or lbfgs")


def _take(frame: Any, rows: np.ndarray) -> Any:
    return frame.iloc[rows]


def _delayed_sums(part: Any, *args: Any) -> Any:
    import dask

    return dask.delayed(partition_sums, pure=True)(part, *args)
