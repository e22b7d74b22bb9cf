"""Data beyond one file in memory: a glob or directory of CSV files, or Parquet, read by Dask.

A single small CSV file keeps :mod:`adcli.io.data`'s in-memory path. Everything here imports Dask
(and pandas, pyarrow) only when such data is asked for, so ``adcli grad`` and ``adcli --help``
never pay for it. Only the columns an expression uses are read: Parquet column projection,
CSV ``usecols``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.records import Record
from ..errors import EXIT_FAILED, AdcliError, escape_control
from .data import DataError, _decode, _header, _separator

#: What to install for partitioned data (said in every error that needs it).
INSTALL_HINT = "install it with: pip install 'adcli[dask]' (dask, distributed, pyarrow)"

#: A single CSV file bigger than this fraction of the memory available now goes to Dask
#: (when Dask is installed; otherwise it is read into memory as before).
MEMORY_FRACTION = 0.25

#: A Parquet file is cut into partitions of consecutive row groups holding up to this many rows
#: (a row group is never split, files are never merged): the cut depends only on the files'
#: row counts, never on which or how many columns they carry, so a wide file and a copy with
#: only the used columns give the same partitions, the same sums in the same order, the same bits.
PARQUET_ROWS = 1 << 20

_GLOB = frozenset("*?[")
_PARQUET = (".parquet", ".parq", ".pq")


class DataChanged(AdcliError):
    """A data file is not as it was at the start of the run (appended, rewritten, removed):
    passes over it would mix two versions of the data, so the run stops (exit 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, path: str) -> None:
        super().__init__(f"data changed during the run: {escape_control(path)}")
        self.path = path

    def __reduce__(self) -> tuple:  # rebuilt from the path when it comes back from a worker
        return (DataChanged, (self.path,))


#: A file's fingerprint: (size, mtime_ns, Parquet footer (rows, row groups, footer bytes) or
#: None for CSV), taken at the start of a run and compared on every re-read.
Stamp = tuple[int, int, "tuple[int, int, int] | None"]


def stamp_of(path: str, meta: Any = None) -> Stamp:
    """``path``'s fingerprint now (``meta``: its Parquet footer, already read)."""
    try:
        st = os.stat(path)
    except OSError:
        raise DataChanged(path) from None
    footer = None if meta is None else (meta.num_rows, meta.num_row_groups,
                                        meta.serialized_size)
    return (st.st_size, st.st_mtime_ns, footer)


def check_stamp(path: str, stamp: Stamp | None, meta: Any = None) -> None:
    """:class:`DataChanged` unless ``path`` (with its footer ``meta``) is as ``stamp`` says."""
    if stamp is None:
        return
    now = stamp_of(path, meta)
    if now[:2] != stamp[:2] or (meta is not None and now[2] != stamp[2]):
        raise DataChanged(path)


class DaskMissing(DataError):
    """Partitioned data was asked for and Dask (or pyarrow) is not installed (exit 2)."""


def require(what: str, modules: Iterable[str] = ("dask", "dask.dataframe")) -> None:
    """Import the modules ``what`` needs, or a one-line error that says what to install."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise DaskMissing(f"{what} needs the package '{name.split('.')[0]}', which is not "
                              f"installed; {INSTALL_HINT}") from None


def is_partitioned(path: str) -> bool:
    """A glob, a directory or a Parquet file: data that only the Dask path reads (a file
    whose name has glob characters is that file)."""
    if path.lower().endswith(_PARQUET) or os.path.isdir(path):
        return True
    return bool(_GLOB & set(path)) and not os.path.exists(path)


def available_memory() -> int | None:
    """Bytes of memory available now (None where the system does not say): the free physical
    memory, or less when an address-space limit (ulimit -v) leaves less."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            free = min(free, max(limit - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    return free


def is_large(path: str) -> bool:
    """A regular file bigger than :data:`MEMORY_FRACTION` of the available memory."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    free = available_memory()
    return stat.S_ISREG(st.st_mode) and free is not None and st.st_size > MEMORY_FRACTION * free


def dask_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("dask", "pandas"))


def wants_dask(path: str | None, scheduler: str | None) -> bool:
    """Whether ``--data path`` (with ``--scheduler``) takes the Dask path: asked for
    (``--scheduler``, ``DASK_SCHEDULER_ADDRESS``, a glob, directory or Parquet), or a CSV
    file too large for memory when Dask is installed."""
    if path is None:
        return False
    if scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or is_partitioned(path):
        return True
    return is_large(path) and dask_installed()


class PartitionedData(Record):
    """Columns spread over files, read lazily partition by partition.

    ``kind`` is "csv" or "parquet"; ``names`` are the column names as adcli sees them (headers
    that are not names mapped as for a single CSV file; ``headers``: name -> header text);
    ``use`` the columns an expression reads (None: not yet chosen); ``stamps`` every file's
    fingerprint, taken when its partitions are first listed, shared by the copies
    :meth:`select` makes. A plain class, not a dataclass: making a dataclass runs generated
    code at import, start-up every fit pays (this module tells a fit whether it goes to
    Dask)."""

    __match_args__ = FIELDS = SHOWN = ("path", "files", "kind", "names", "headers", "sep", "use",
                                       "dropna", "blocksize", "stamps")

    def __init__(self, path: str, files: list[str], kind: str, names: list[str],
                 headers: dict[str, str] | None = None, sep: str = ",",
                 use: list[str] | None = None, dropna: bool = False,
                 blocksize: int | str | None = "64MB",
                 stamps: dict[str, Stamp] | None = None) -> None:
        self.path = path
        self.files = files
        self.kind = kind
        self.names = names
        self.headers = {} if headers is None else headers
        self.sep = sep
        self.use = use
        self.dropna = dropna
        self.blocksize = blocksize
        self.stamps = {} if stamps is None else stamps

    def bytes(self) -> int:
        """The size of the files on disk."""
        total = 0
        for name in self.files:
            try:
                total += os.path.getsize(name)
            except OSError:
                pass
        return total

    def select(self, use: Iterable[str], dropna: bool = False) -> PartitionedData:
        """The columns in ``use`` that the data has, in file order (others are never read)."""
        wanted = set(use)
        out = PartitionedData(self.path, self.files, self.kind, self.names, self.headers,
                              self.sep, [n for n in self.names if n in wanted], dropna,
                              self.blocksize, self.stamps)
        return out

    def parts(self) -> list[Any]:
        """One Dask Delayed per partition, in file order: Parquet cut by adcli
        (:func:`parquet_pieces`), CSV by Dask's ``blocksize`` (bytes, whatever the columns)."""
        if self.kind != "parquet":
            for path in self.files:
                if path not in self.stamps:
                    self.stamps[path] = stamp_of(path)
            return list(self.frame().to_delayed())
        import dask

        use = self.use if self.use is not None else self.names
        original = tuple(self.headers.get(n, n) for n in use)
        read = dask.delayed(read_piece, pure=True)
        return [read(path, groups, original, tuple(use), self.dropna, self.stamps[path])
                for path, groups in parquet_pieces(self.files, self.stamps)]

    def unchanged(self) -> None:
        """:class:`DataChanged` naming the first file whose size or modification time is not
        the one taken at the start (checked after every pass: a CSV block is read by Dask,
        which knows no fingerprint)."""
        for path, stamp in self.stamps.items():
            check_stamp(path, stamp)

    def frame(self) -> Any:
        """A Dask DataFrame of the selected columns as float64, one partition per block."""
        import dask.dataframe as dd

        use = self.use if self.use is not None else self.names
        original = [self.headers.get(n, n) for n in use]
        if self.kind == "parquet":
            df = dd.read_parquet(self.files, columns=original)
        else:
            df = dd.read_csv(self.files, sep=self.sep, usecols=original,
                             dtype={h: "float64" for h in original}, blocksize=self.blocksize,
                             na_values=_missing_cells(), keep_default_na=False)
        df = df.rename(columns=dict(zip(original, use)))
        if self.dropna:
            df = df.dropna()
        return df


def parquet_pieces(files: Iterable[str], stamps: dict[str, Stamp] | None = None
                   ) -> list[tuple[str, tuple[int, ...]]]:
    """(file, row groups) of every partition: consecutive row groups of one file up to
    :data:`PARQUET_ROWS` rows (at least one group; a file without rows is one empty piece).
    Each file's fingerprint is put in ``stamps``, or checked against the one there."""
    import pyarrow.parquet as pq

    out: list[tuple[str, tuple[int, ...]]] = []
    for path in files:
        try:
            meta = pq.read_metadata(path)
        except Exception as err:  # pyarrow's own errors: not a Parquet file, unreadable
            raise DataError(f"cannot read Parquet file '{path}': {_first(err)}") from None
        if stamps is not None:
            if path in stamps:
                check_stamp(path, stamps[path], meta)
            else:
                stamps[path] = stamp_of(path, meta)
        groups: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and rows + n > PARQUET_ROWS:
                out.append((path, tuple(groups)))
                groups, rows = [], 0
            groups.append(g)
            rows += n
        out.append((path, tuple(groups)))
    return out


def read_piece(path: str, groups: tuple[int, ...], columns: tuple[str, ...],
               names: tuple[str, ...], dropna: bool, stamp: Stamp | None = None) -> Any:
    """The row groups ``groups`` of one Parquet file, columns ``columns`` renamed ``names``,
    as float64 (a pandas DataFrame: a task, run where Dask puts it). What is wrong with the
    file is a ValueError naming it (bad data, exit 2): a missing column, a row group that
    cannot be decoded (a corrupt page), a cell that is not a finite number (row group and row
    said); a file whose fingerprint is not ``stamp`` (before or after the read) is
    :class:`DataChanged`."""
    import numpy as np
    import pyarrow.parquet as pq

    check_stamp(path, stamp)  # a file gone or rewritten is said so, before pyarrow opens it
    shown = f"Parquet file '{path}'"
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
    except Exception as err:  # pyarrow's own errors: truncated, not Parquet, unreadable
        raise ValueError(f"cannot read {shown}: {_first(err)}") from None
    check_stamp(path, stamp, pf.metadata)
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{shown} has no column '{missing[0]}'")
    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
    try:
        frame = pf.read_row_groups(list(groups), columns=list(columns)).to_pandas()
        frame = frame.astype("float64")  # copy-on-write: no copy of float64 columns
    except MemoryError:  # not the data's fault
        raise
    except Exception as err:  # a corrupt page, a column that is not numbers: which group
        raise ValueError(f"{shown}, row group {_bad_group(pf, groups, columns)}: "
                         f"{_first(err)}") from None
    check_stamp(path, stamp)
    missed = frame.isna().any(axis=1).to_numpy() if dropna else None
    for name in columns:  # column by column: no copy of the piece
        bad = ~np.isfinite(frame[name].to_numpy())
        if missed is not None:  # the rows --dropna leaves out are not read
            bad &= ~missed
        if bad.any():
            row = int(np.argmax(bad))
            ends = np.cumsum([sizes[g] for g in groups])
            group = groups[int(np.searchsorted(ends, row, side="right"))]
            value = float(frame[name].to_numpy()[row])
            line = sum(sizes[:groups[0]]) + row + 1  # in the file, from 1
            raise ValueError(f"{shown}, row group {group}, row {line}: column '{name}' "
                             f"holds {value!r}, not a finite number"
                             + (" (--dropna leaves out the rows with a missing cell)"
                                if np.isnan(value) else ""))
    frame.columns = list(names)
    return frame.dropna() if dropna else frame


def _bad_group(pf: Any, groups: tuple[int, ...], columns: tuple[str, ...]) -> str:
    """The first of ``groups`` that cannot be read alone (on the way to an error only)."""
    for g in groups:
        try:
            pf.read_row_group(g, columns=list(columns)).to_pandas().astype("float64")
        except MemoryError:
            raise
        except Exception:
            return str(g)
    return f"{groups[0]}-{groups[-1]}" if groups else "-"


def _first(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _missing_cells() -> list[str]:
    """The in-memory reader's missing cells (:data:`adcli.io.data.MISSING`, any case) as pandas'
    exact strings: ``NULL`` is missing on both paths, so ``--dropna`` drops the same rows."""
    import itertools

    from .data import MISSING

    return sorted({"".join(chars) for cell in MISSING
                   for chars in itertools.product(*({c.lower(), c.upper()} for c in cell))})


def open_partitioned(path: str, sep: str | None = None,
                     rename: Mapping[str, str] | None = None) -> PartitionedData:
    """Find the files of ``path`` (a CSV or Parquet file, a glob, or a directory) and read the
    column names from the first one; the rows are read later, by Dask."""
    if _GLOB & set(path) and not os.path.exists(path):
        import glob  # only here: an in-memory fit never globs (start-up)

        files = sorted(glob.glob(path))
        if not files:
            raise DataError(f"--data '{path}' matches no file")
    elif os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not f.startswith((".", "_")) and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise DataError(f"--data directory '{path}' has no data files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise DataError(f"cannot read data file '{path}': No such file or directory")
    parquet = [f.lower().endswith(_PARQUET) for f in files]
    if any(parquet) and not all(parquet):
        raise DataError(f"--data '{path}' mixes Parquet and other files")
    if all(parquet):
        require("Parquet data", ("dask", "dask.dataframe", "pyarrow"))
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(files[0])
        except Exception as err:  # pyarrow's own errors: not a Parquet file, unreadable
            raise DataError(f"cannot read Parquet file '{files[0]}': {err}") from None
        raw = [n for n in schema.names if not n.startswith("__index_level_")]
        names, headers = _header(",".join(_quote(n) for n in raw), files[0], ",", rename or {})
        return PartitionedData(path, files, "parquet", names, headers)
    require("data in several files or over the memory threshold")
    with open(files[0], "rb") as fh:
        line = _decode(fh.readline(1 << 20), f"data file '{files[0]}'")
    delimiter = _separator(line, sep)
    names, headers = _header(line, files[0], delimiter, rename or {})
    return PartitionedData(path, files, "csv", names, headers, delimiter)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if any(c in name for c in ',"\n') else name
