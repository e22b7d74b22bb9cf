"""Predictions at scale: ``eval``/``grad --data`` over a Dask source, one output file per
partition written by the worker that computed it.

A partition is adcli's own (one CSV file, or a run of row groups of one Parquet file: see
:func:`adcli.io.sources.parquet_pieces`), so ``part-00000``, ``part-00001``, ... hold the rows
in input order whatever the scheduler. Each partition is evaluated by the in-memory code
(:func:`adcli.io.rows.evaluate_rows` on an :class:`adcli.io.data.Dataset`), so its rows get the
same bits and the same columns as ``eval --data FILE -o OUT``; only a few numbers per partition
come back to the client. What travels is the program's source text, parsed and lowered once
per worker (cached), as for a fit. Each file is written atomically
(:mod:`adcli.io.atomic`): an interrupted run leaves whole files or none, never half of one.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AdcliError, OutputError
from ..function import Function
from ..io.data import DataError, Dataset
from ..io.sources import PartitionedData, Stamp, check_stamp, stamp_of

#: What ``--force`` may replace in the output directory: adcli's own part files (and the
#: temporaries of an interrupted run); anything else there is the user's and stops the run.
PART_FILE = re.compile(r"(part-\d{5,}\.(parquet|csv))|(\.part-\d{5,}\.(parquet|csv)\.[0-9a-f]+"
                       r"\.adcli-tmp)")

FORMATS = ("parquet", "csv")


@dataclass
class Piece:
    """One partition: a CSV file, or row groups of a Parquet file (``groups``); ``stamp``:
    the file's fingerprint when the run began, compared before and after the read."""

    path: str
    groups: tuple[int, ...] | None = None
    stamp: Stamp | None = None


@dataclass
class PieceResult:
    """What a worker reports for its partition (the rows themselves stay in its file)."""

    rows: int = 0
    bad: int = 0  # rows whose value is not finite
    first_bad: int = 0  # the first of them, 1-based within the partition
    warnings: list[str] = field(default_factory=list)
    error: tuple[str, str | None, int] | None = None  # (message, hint, exit status)


@dataclass
class PredictSummary:
    """The run as a whole: files written, rows, warnings to show."""

    files: list[str]
    rows: int
    warnings: list[str]
    removed: int = 0


def pieces(data: PartitionedData) -> list[Piece]:
    """The partitions of ``data`` in input order, each with its file's fingerprint (taken
    now, into ``data.stamps``, as the fit path does)."""
    if data.kind == "parquet":
        from ..io.sources import parquet_pieces

        return [Piece(path, groups, data.stamps[path])
                for path, groups in parquet_pieces(data.files, data.stamps)]
    for path in data.files:
        if path not in data.stamps:
            data.stamps[path] = stamp_of(path)
    return [Piece(path, None, data.stamps[path]) for path in data.files]


def part_names(count: int, fmt: str) -> list[str]:
    """``part-00000.fmt`` ...: names of one width, so they sort in input order."""
    width = max(5, len(str(max(count - 1, 0))))
    return [f"part-{i:0{width}d}.{fmt}" for i in range(count)]


def prepare_directory(out_dir: str, force: bool) -> list[str]:
    """Create ``out_dir`` or check it may be written: an existing directory must be empty,
    or with ``force`` hold only part files (returned: those not rewritten are removed after
    the run). Never removes a file of the user's."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(out_dir, NotADirectoryError(
            20, "not a directory; with a Dask source -o names a directory of part files"))
    if not os.path.isdir(out_dir):
        parent = os.path.dirname(os.path.abspath(out_dir))
        if not os.path.isdir(parent):
            raise OutputError(out_dir, FileNotFoundError(2, f"no directory '{parent}'"))
        try:
            os.mkdir(out_dir)
        except OSError as err:
            raise OutputError(out_dir, err) from None
        return []
    try:
        present = sorted(os.listdir(out_dir))
    except OSError as err:
        raise OutputError(out_dir, err) from None
    if present and not force:
        raise AdcliError(f"-o directory '{out_dir}' is not empty; choose a new directory, or "
                         "--force to replace the part files in it")
    others = [name for name in present if not PART_FILE.fullmatch(name)]
    if others:
        raise AdcliError(f"-o directory '{out_dir}' holds '{others[0]}', which is not an adcli "
                         "part file; --force replaces only part-NNNNN files: choose a new "
                         "directory")
    return present


@functools.lru_cache(maxsize=8)
def _function(source: str) -> Function:
    """The program parsed and lowered by adcli's parser on this worker, once (never unpickled
    code)."""
    from ..function import parse

    return parse(source, max_bytes=None)


def _parquet_dataset(piece: Piece, rename: Mapping[str, str]) -> tuple[Dataset, Any]:
    """The row groups of ``piece`` as a :class:`Dataset` (numeric columns as float64, a
    non-finite or null cell missing as in a CSV file, text columns kept as text) and the
    pyarrow table they came from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io.data import _header
    from ..io.sources import _first, _quote

    check_stamp(piece.path, piece.stamp)  # a file gone or rewritten: said before pyarrow
    try:
        pf = pq.ParquetFile(piece.path)
        check_stamp(piece.path, piece.stamp, pf.metadata)
        raw = [n for n in pf.schema_arrow.names if not n.startswith("__index_level_")]
        table = pf.read_row_groups(list(piece.groups or ()), columns=raw)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"cannot read Parquet file '{piece.path}': {_first(err)}") from None
    check_stamp(piece.path, piece.stamp)
    if table.num_rows == 0:  # as a CSV file with a header only
        raise DataError(f"Parquet file '{piece.path}' has no rows")
    names, headers = _header(",".join(_quote(n) for n in raw), piece.path, ",", rename)
    # Rows before this piece in its file, so that a row is named as the file counts it.
    offset = sum(pf.metadata.row_group(g).num_rows
                 for g in range(min(piece.groups or (0,))))
    data = Dataset({}, piece.path, list(names), headers=headers, nrows=table.num_rows)
    for name, column in zip(names, table.columns):
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
                or pa.types.is_decimal(kind):
            values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False),
                                dtype=np.float64)
            bad = ~np.isfinite(values)
            data.columns[name] = values
            if bad.any():
                row = int(np.argmax(bad))
                err = DataError(f"Parquet file '{piece.path}', row {offset + row + 1:,}, "
                                f"column '{name}': {values[row]!r} is not a finite number "
                                "(a null or non-finite cell)",
                                hint="--dropna skips the rows with a missing cell in a column "
                                     "the expression uses")
                data.missing[name] = (bad, err)
        else:
            cells = column.to_pylist()
            data.text[name] = ["" if c is None else str(c) for c in cells]
            data.problems[name] = DataError(f"Parquet file '{piece.path}', column '{name}': "
                                            f"holds {kind}, not numbers")
    return data, table


def _kept_rows(data: Dataset, used: Sequence[str], dropna: bool) -> np.ndarray | None:
    """The rows :meth:`Dataset.select` keeps (None: all)."""
    if not dropna:
        return None
    keep = np.ones(data.rows, dtype=bool)
    for name in used:
        if name in data.missing:
            keep &= ~data.missing[name][0]
    return None if keep.all() else keep


def _write_parquet(path: str, result: Any, inputs: Any) -> None:
    """The input columns (``inputs``: a pyarrow table, or None to take them from the
    dataset), the value and the gradient, as one Parquet file written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..io.atomic import atomic_output

    data = result.data
    arrays: list[Any] = []
    fields: list[str] = []
    for i, name in enumerate(data.order):
        if inputs is not None:
            arrays.append(inputs.column(i))
        elif name in data.columns:
            arrays.append(pa.array(data.columns[name], type=pa.float64()))
        elif name in data.spare:
            arrays.append(pa.array(data.spare[name], type=pa.float64(), from_pandas=True))
        else:
            arrays.append(pa.array(list(data.text[name]), type=pa.string()))
        fields.append(data.headers.get(name, name))
    arrays.append(pa.array(np.ascontiguousarray(result.value), type=pa.float64()))
    fields.append(result.value_name)
    for name, column in result.gradients().items():
        arrays.append(pa.array(np.ascontiguousarray(column), type=pa.float64()))
        fields.append(result.gradient_headers.get(name, f"d/d{name}"))
    table = pa.Table.from_arrays(arrays, names=fields)
    with atomic_output(path, "wb", encoding=None, newline=None) as out:
        pq.write_table(table, out.fh)


def predict_piece(piece: Piece, out: str, *, kind: str, sep: str | None,
                  rename: tuple[tuple[str, str], ...], source: str,
                  point: tuple[tuple[str, float], ...], gradient: bool,
                  wrt: tuple[str, ...] | None, dropna: bool, fmt: str) -> PieceResult:
    """Evaluate one partition and write ``out`` (a task: runs where Dask puts it). Bad input
    comes back as ``error`` (message, hint, exit status), not as an exception, so the client
    says exactly what the in-memory path would."""
    from ..io.atomic import atomic_output
    from ..io.data import read_table
    from ..io.rows import evaluate_rows, write_csv

    found = PieceResult()
    try:
        function = _function(source)
        names = dict(rename)
        table = None
        if kind == "parquet":
            data, table = _parquet_dataset(piece, names)
        else:
            check_stamp(piece.path, piece.stamp)
            data = read_table(piece.path, None, sep=sep, rename=names,
                              keep_lines=fmt == "csv", keep_text=fmt != "csv")
            check_stamp(piece.path, piece.stamp)
        with np.errstate(all="ignore"):
            result = evaluate_rows(function, data, dict(point), gradient=gradient,
                                   wrt=list(wrt) if wrt is not None else None, dropna=dropna,
                                   empty=True)  # a partition --dropna empties: an empty part
        if table is not None:
            keep = _kept_rows(data, list(result.data.columns), dropna)
            table = table if keep is None else table.filter(keep)
        if fmt == "parquet":
            _write_parquet(out, result, table)
        else:
            with atomic_output(out) as fh:
                write_csv(fh, result)
    except AdcliError as err:
        found.error = (str(err), getattr(err, "hint", None), err.exit_code)
        return found
    found.rows = result.data.rows
    bad = ~np.isfinite(result.value)
    found.bad = int(bad.sum())
    found.first_bad = int(np.argmax(bad)) + 1 if found.bad else 0
    found.warnings = [w for w in result.warnings if not w.startswith("the value is not finite")]
    return found


def predict_partitioned(function: Function, point: dict[str, float], data: PartitionedData,
                        out_dir: str, scheduler: Any, *, gradient: bool = False,
                        wrt: list[str] | None = None, dropna: bool = False,
                        fmt: str | None = None, force: bool = False,
                        rename: Mapping[str, str] | None = None,
                        check: Callable[[Dataset], None] | None = None) -> PredictSummary:
    """Evaluate every partition of ``data`` on ``scheduler`` (a
    :class:`adcli.partitioned.distributed.Scheduler`), one file per partition in ``out_dir``.
    ``check`` sees an empty dataset with the data's columns first, so that a mistake in the
    expression or ``--at`` is reported once, before any file is read."""
    fmt = fmt or ("parquet" if data.kind == "parquet" else "csv")
    if fmt == "parquet":
        from ..io.sources import require

        require("--format parquet", ("pyarrow",))
    if check is not None:
        probe = Dataset({n: np.zeros(1) for n in data.names}, data.path, list(data.names),
                        headers=dict(data.headers))
        check(probe)
    parts = pieces(data)
    if not parts:
        raise DataError(f"--data '{data.path}' has no partitions")
    old = prepare_directory(out_dir, force)
    names = part_names(len(parts), fmt)
    # Workers write by this path: absolute, so that a cluster sharing the file system finds it.
    folder = os.path.abspath(out_dir)
    task = functools.partial(predict_piece, kind=data.kind, sep=data.sep,
                             rename=tuple(sorted((rename or {}).items())),
                             source=function.source, point=tuple(sorted(point.items())),
                             gradient=gradient, wrt=tuple(wrt) if wrt is not None else None,
                             dropna=dropna, fmt=fmt)
    # A partial and a Piece: nothing in a task that Dask could mistake for a key or a task.
    graph = {("adcli-predict", i): (task, piece, os.path.join(folder, name))
             for i, (piece, name) in enumerate(zip(parts, names))}
    keys = list(graph)
    found = scheduler.run(graph, keys, f"data '{data.path}'", parallel=len(keys) > 1)
    for result in found:
        if result.error is not None:
            message, hint, status = result.error
            err = AdcliError(message, hint=hint or "")
            err.exit_code = status
            raise err
    data.unchanged()  # a file rewritten after its partitions were read: two versions mixed
    warnings: list[str] = []
    for result in found:
        for message in result.warnings:
            if message not in warnings:
                warnings.append(message)
    bad = sum(r.bad for r in found)
    rows = sum(r.rows for r in found)
    if rows == 0 and dropna:  # as in memory; a partition alone may be emptied (empty part)
        raise DataError(f"data '{data.path}': no rows left after --dropna")
    if bad:
        first = next(i for i, r in enumerate(found) if r.bad)
        warnings.append(f"the value is not finite in {bad:,} of {rows:,} rows (the first is "
                        f"row {found[first].first_bad:,} of {names[first]})")
    stale = [name for name in old if name not in set(names)]
    for name in stale:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise OutputError(os.path.join(out_dir, name), err) from None
    return PredictSummary([os.path.join(out_dir, n) for n in names], rows, warnings,
                          len(stale))
