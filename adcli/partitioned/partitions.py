"""The worker side of a pass over data partitions (adcli.partitioned.distributed): partitions read
into checked float64 columns, blocks of partitions kept in memory, and the fixed reduction tree that
adds the partitions' sums in the same order whatever task computes which part of it.

Only functions of plain data live here; Dask runs them as tasks (on a cluster they are
found by name in the installed adcli, never unpickled code).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.tape import Tape
from ..errors import AdcliError
from ..fast.blas import one_blas_thread

if TYPE_CHECKING:
    from ..io.sources import PartitionedData


def columns_of(frame: Any) -> dict[str, np.ndarray]:
    """A partition's columns as float64 arrays; a missing or non-finite cell is an error
    (ValueError: bad input once it reaches :class:`adcli.partitioned.distributed.Scheduler`), as in
    memory."""
    out = {}
    for name in frame.columns:
        col = np.ascontiguousarray(frame[name].to_numpy(dtype=np.float64))
        if not np.all(np.isfinite(col)):
            raise ValueError(f"column '{name}' has a missing or non-finite cell (--dropna "
                             "leaves out the rows with a missing cell)")
        out[str(name)] = col
    return out


def kept_bytes(data: PartitionedData) -> int:
    """What keeping the data in memory takes: for Parquet, its rows (from the footers read when
    the partitions were listed) x 8 bytes x the used columns, whatever other columns the files
    carry and however well they compress (a wide file's size would have it re-read every pass
    for columns never read; a compressed one's would keep data far larger than its files); for
    CSV the files' size, all that is known before reading (text is longer than its values)."""
    if data.kind != "parquet":
        return data.bytes()
    use = data.use if data.use is not None else data.names
    footers = [data.stamps[path][2] for path in data.files if path in data.stamps]
    return 8 * len(use) * sum(footer[0] for footer in footers if footer is not None)


@functools.lru_cache(maxsize=8)
def _tape(source: str, bound: tuple[str, ...]) -> Tape:
    """The tape of ``source`` re-parsed on this worker by adcli's parser (never unpickled)."""
    from ..function import parse

    return parse(source, max_bytes=None).tape(bound)


def _point(columns: dict[str, np.ndarray], names: tuple[str, ...],
           fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]) -> dict[str, Any]:
    """The point a partition is swept at: fixed values, its columns, then the parameters."""
    point: dict[str, Any] = dict(fixed)
    point.update(columns)
    point.update(zip(names, (np.float64(v) for v in x)))
    return point


def partition_sums(columns: dict[str, np.ndarray], rows: int, source: str,
                   bound: tuple[str, ...], names: tuple[str, ...],
                   fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]) -> np.ndarray:
    """[sum of the expression over the partition's rows, its gradient w.r.t. ``names``, rows]."""
    from ..fast.policy import compiled

    tape = _tape(source, bound)
    out = np.zeros(len(names) + 2)
    out[-1] = rows
    if rows == 0:
        return out
    point = _point(columns, names, fixed, x)
    with np.errstate(all="ignore"):
        value, grads = compiled(tape).grad_sum(point, list(names))
    out[0] = value
    out[1:-1] = grads
    return out


#: Numbers :func:`partition_branches` adds after :func:`partition_sums`' own: three 32-bit
#: words of a digest of the partition's branch sides, the count of sides at 0 (on a kink),
#: the count that are NaN.
BRANCH_WORDS = 5


def partition_branches(columns: dict[str, np.ndarray], rows: int, source: str,
                       bound: tuple[str, ...], names: tuple[str, ...],
                       fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]
                       ) -> np.ndarray:
    """:func:`partition_sums`, then which side of its kinks every row is on
    (:func:`adcli.optimize.objective.branch_sides`) as :data:`BRANCH_WORDS` numbers, not a
    number a row: a digest of the sides (with the partition's rows and first row, so that
    two partitions' sides cannot trade places) and how many are 0 or NaN.  Exact integers
    below 2**32 each, so their sums over the tree are exact: two points agree on every row's
    side where their sums agree (but for a digest collision, about 2**-96)."""
    import hashlib

    from ..optimize.objective import branch_sides

    out = partition_sums(columns, rows, source, bound, names, fixed, x)
    sides = branch_sides(_tape(source, bound), _point(columns, names, fixed, x)
                         ) if rows else np.zeros(0)
    digest = hashlib.blake2b(np.nan_to_num(sides, nan=2.0).astype(np.int8).tobytes(),
                             digest_size=12)
    digest.update(np.array([rows] + [columns[k][0] for k in sorted(columns) if rows],
                           dtype=np.float64).tobytes())
    words = np.frombuffer(digest.digest(), dtype="<u4").astype(np.float64)
    counts = [float(np.count_nonzero(sides == 0)), float(np.count_nonzero(np.isnan(sides)))]
    return np.concatenate([out, words, counts])


def partition_hessian(columns: dict[str, np.ndarray], rows: int, source: str,
                      bound: tuple[str, ...], names: tuple[str, ...],
                      fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]
                      ) -> np.ndarray:
    """[the Hessian of the partition's sum w.r.t. ``names`` (p*p, row-major), rows]: the
    exact second derivatives of :mod:`adcli.derive.curvature`, which sums the rows itself."""
    from ..derive.curvature import hessian

    return _matrix_sum(rows, len(names), lambda: hessian(
        _tape(source, bound), _point(columns, names, fixed, x), list(names), rows=rows))


def partition_score_outer(columns: dict[str, np.ndarray], rows: int, source: str,
                          bound: tuple[str, ...], names: tuple[str, ...],
                          fixed: tuple[tuple[str, float], ...], x: tuple[float, ...]
                          ) -> np.ndarray:
    """[sum over the partition's rows of g_i g_i^T (p*p, row-major), rows]: the middle of
    the sandwich covariance, by the in-memory code
    (:func:`adcli.optimize.objective.score_outer`)."""
    from ..optimize.objective import score_outer

    return _matrix_sum(rows, len(names), lambda: score_outer(
        _tape(source, bound), _point(columns, names, fixed, x), names, rows))


def _matrix_sum(rows: int, p: int, compute: Any) -> np.ndarray:
    """[``compute()`` (a p x p sum over the partition's rows, row-major), rows]; zeros for an
    empty partition, which ``compute`` never sees."""
    out = np.zeros(p * p + 1)
    out[-1] = rows
    if rows:
        with np.errstate(all="ignore"):
            out[:-1] = np.asarray(compute(), dtype=np.float64).ravel()
    return out


#: Files up to this size are read again by the in-memory reader to say where a bad cell is.
LOCATE_BYTES = 256 << 20


@contextlib.contextmanager
def located(data: PartitionedData) -> Iterator[None]:
    """A bad cell reported by pandas (no line, no column) becomes the in-memory reader's
    error for the same file: the same ``Error:`` line and hint as without Dask."""
    from ..io.data import DataError

    try:
        yield
    except DataError:
        found = bad_cell(data)
        if found is None:
            raise
        raise found from None


def bad_cell(data: PartitionedData) -> AdcliError | None:
    """The in-memory reader's error for the first CSV file of ``data`` with a cell it
    refuses in a used column, or None (Parquet, a file over :data:`LOCATE_BYTES`, none)."""
    from ..io.data import DataError, read_table

    if data.kind != "csv":
        return None
    use = data.use if data.use is not None else data.names
    for path in data.files:
        missing = _missing_column(path, [data.headers.get(n, n) for n in use], data.sep)
        if missing is not None:
            return DataError(f"data file '{path}' has no column '{missing}'")
        try:
            if os.path.getsize(path) > LOCATE_BYTES:
                return None
            read_table(path, None, sep=data.sep, rename=dict(data.headers)).select(
                use, data.dropna)
        except DataError as err:
            return err
        except OSError:
            return None
    return None


def _missing_column(path: str, columns: list[str], sep: str) -> str | None:
    """The first of ``columns`` that the header line of the CSV file ``path`` lacks."""
    import csv

    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            header = next(csv.reader([fh.readline(1 << 20)], delimiter=sep,
                                     skipinitialspace=True), [])
    except OSError:
        return None
    have = {h.strip() for h in header}
    return next((c for c in columns if c not in have), None)


#: How two nodes of the reduction tree join: np.add for sums; a fit's R factors are stacked
#: and factored again (:func:`adcli.regression.leastsq.qr_combine`).
Combine = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: A function of one partition's (columns, rows, *args) that returns a vector of sums whose
#: last entry is the partition's rows.
PartitionFunction = Callable[..., np.ndarray]


@dataclass
class Block:
    """Consecutive partitions ``first, first + 1, ...`` read once, checked (every cell
    finite) and kept as float64 columns: what a pass sweeps when the data is kept in memory."""

    first: int
    columns: list[dict[str, np.ndarray]]
    rows: list[int]


def read_block(first: int, *frames: Any) -> Block:
    """The partitions ``frames`` (pandas) as a :class:`Block` (a task: runs where Dask puts it)."""
    return Block(first, [columns_of(f) for f in frames], [len(f) for f in frames])


def block_rows(block: Block) -> list[int]:
    return list(block.rows)


def block_nodes(block: Block, count: int, func: PartitionFunction, args: tuple,
                combine: Combine = np.add) -> list[tuple[int, int, np.ndarray]]:
    """The block's partition sums added up to the nodes of the fixed reduction tree over
    ``count`` partitions that lie inside the block (see :func:`tree_node`)."""
    one_blas_thread()
    leaves = [func(cols, rows, *args) for cols, rows in zip(block.columns, block.rows)]
    first = block.first

    def leaf(i: int) -> np.ndarray:
        return leaves[i - first]

    return [(k, j, tree_node(k, j, count, {}, leaf, combine))
            for k, j in tree_cover(first, first + len(leaves), count)]


def block_sample(block: Block, member: int, rows: np.ndarray, func: PartitionFunction,
                 args: tuple) -> np.ndarray:
    """``func`` over the rows ``rows`` of the block's partition ``member`` (a minibatch)."""
    one_blas_thread()
    cols = {k: v[rows] for k, v in block.columns[member - block.first].items()}
    return func(cols, len(rows), *args)


def frame_sums(frame: Any, func: PartitionFunction, args: tuple) -> np.ndarray:
    """``func`` over a partition read now (data re-read every pass)."""
    one_blas_thread()
    return func(columns_of(frame), len(frame), *args)


def joined(combine: Combine, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two nodes of the reduction tree joined by a task (BLAS at one thread, as every
    partition's own sums)."""
    one_blas_thread()
    return combine(left, right)


def frame_sample(frame: Any, rows: np.ndarray, func: PartitionFunction, args: tuple
                 ) -> np.ndarray:
    return frame_sums(frame.iloc[rows], func, args)


# The fixed reduction tree over ``n`` partitions: level 0 holds the partitions in file order;
# level k holds ceil(n / 2^k) nodes, node (k, j) the sum of nodes (k-1, 2j) and (k-1, 2j+1)
# (left + right), or node (k-1, 2j) alone when that is the last of an odd level; node (k, j)
# covers the partitions [j*2^k, min((j+1)*2^k, n)). This is ((P0+P1)+(P2+P3))+... level by
# level. Whatever tasks compute which nodes, every node is the same sum of the same values in
# the same order, so every grouping, every scheduler and both memory modes give the same bits.
# The depth of the tree is log2(partitions) (at most 64), never a depth from user input.

def split(count: int, groups: int) -> list[tuple[int, int]]:
    """[0, count) cut into ``groups`` consecutive ranges of nearly equal length (blocks)."""
    groups = max(1, min(groups, count))
    edges = [count * g // groups for g in range(groups + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


def tree_levels(count: int) -> int:
    """The root's level: the smallest K with 2^K >= count."""
    return max(count - 1, 0).bit_length()


def tree_cover(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """The largest tree nodes that together cover partitions [start, stop), left to right."""
    out = []
    pos = start
    while pos < stop:
        k = 0
        while pos % (2 << k) == 0 and min(pos + (2 << k), count) <= stop and \
                (2 << k) < 2 * max(count, 1):
            k += 1
        out.append((k, pos >> k))
        pos = min(pos + (1 << k), count)
    return out


def tree_node(k: int, j: int, count: int, known: dict[tuple[int, int], np.ndarray],
              leaf: Callable[[int], np.ndarray], combine: Combine = np.add) -> np.ndarray:
    """The value of node (k, j): from ``known``, else from its children (leaves by ``leaf``)."""
    if (k, j) in known:
        return known[(k, j)]
    if k == 0:
        return leaf(j)
    left = tree_node(k - 1, 2 * j, count, known, leaf, combine)
    if (2 * j + 1) << (k - 1) < count:
        return combine(left, tree_node(k - 1, 2 * j + 1, count, known, leaf, combine))
    return left


def no_leaf(i: int) -> np.ndarray:
    raise AdcliError(f"partition {i} was not summed (internal error)")


def tree_sum(values: Sequence[np.ndarray]) -> np.ndarray:
    """The values added in the fixed binary tree (level by level, neighbours in order)."""
    if not values:
        raise AdcliError("the data has no partitions")
    return tree_node(tree_levels(len(values)), 0, len(values), {}, values.__getitem__)
