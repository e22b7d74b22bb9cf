"""Data files for fitting: a CSV with a header row becomes one float64 column per name.

Columns are numpy arrays so the tape runs once over all rows (batch backpropagation) instead of
once per row.  Reading tries numpy's C parser first; only when that fails do we re-read the file
with the ``csv`` module to say exactly which cell is wrong (line and column), because "could not
convert string to float" is not an error message a user can act on.
"""

from __future__ import annotations

import csv
import io
import math
import re
import stat
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import AdcliError
from .inputs import open_binary, read_limited

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: ``--max-data-size``'s default: a data file larger than this is refused before it is read.
DEFAULT_MAX_DATA_BYTES = 4 << 30
#: The header line alone is bounded much tighter (names only; ``/dev/zero`` ends at once).
MAX_HEADER_BYTES = 1 << 20


class DataError(AdcliError):
    """A data file that cannot be used: missing, empty, ragged or with a non-numeric cell."""


@dataclass(slots=True)
class Dataset:
    """Columns of equal length, by header name, in file order."""

    columns: dict[str, np.ndarray]
    path: str = ""

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def take(self, rows: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The given rows of the given columns (all columns by default)."""
        keep = self.names if names is None else names
        return {n: self.columns[n][rows] for n in keep}


def from_columns(columns: Mapping[str, object], path: str = "") -> Dataset:
    """A dataset from arrays already in memory (the Python API and the benchmark)."""
    cols = {str(k): np.ascontiguousarray(v, dtype=np.float64) for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise DataError(f"columns have different lengths: {sorted(lengths)}")
    if not cols or lengths == {0}:
        raise DataError("the data has no rows")
    return Dataset(cols, path)


def read_csv(path: str, max_bytes: int | None = DEFAULT_MAX_DATA_BYTES) -> Dataset:
    """Read a CSV file whose first row names the columns; every other cell must be a finite
    number.  Errors name the line and column (both 1-based, counting the header as line 1).

    The file is opened once, so a pipe (``--data /dev/stdin``, ``<(...)``) works too: a
    regular file over ``max_bytes`` (None: no limit) is refused from its size, anything else
    is read into memory up to the limit. The header line is bounded on its own, so
    ``/dev/zero`` ends at once."""
    what = f"data file '{path}'"
    fh, st = open_binary(path, what, DataError)
    with fh:
        if max_bytes is not None and stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
            raise _too_large(what, max_bytes, st.st_size)
        try:
            header = fh.readline(MAX_HEADER_BYTES + 1)
            if len(header) > MAX_HEADER_BYTES and not header.endswith(b"\n"):
                raise DataError(f"{what}: the header line is longer than "
                                f"{MAX_HEADER_BYTES:,} bytes; the first line must name the "
                                "columns, e.g. x,y")
            if stat.S_ISREG(st.st_mode):
                body: BinaryIO = fh
            else:  # a pipe or device: read it once, bounded, and parse from memory
                rest = read_limited(fh, None if max_bytes is None
                                    else max(max_bytes - len(header), 0))
                if max_bytes is not None and len(header) + len(rest) > max_bytes:
                    raise _too_large(what, max_bytes)
                body = io.BytesIO(rest)
            names = _header(_decode(header, what), path)
            start = body.tell()
            text = io.TextIOWrapper(body, encoding="utf-8", newline="")
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # numpy warns on a header-only file
                    table = np.loadtxt(text, delimiter=",", dtype=np.float64, ndmin=2)
            except (ValueError, UnicodeDecodeError):
                _locate_bad_cell(_rewind(text, start), path, names)  # raises with the place
                raise DataError(f"{what} could not be read as numbers") from None
            if table.size == 0:
                raise DataError(f"{what} has a header but no rows")
            if table.shape[1] != len(names):
                _locate_bad_cell(_rewind(text, start), path, names)
                raise DataError(f"{what}: rows have {table.shape[1]} fields but the header "
                                f"has {len(names)}")
            if not np.all(np.isfinite(table)):
                _locate_bad_cell(_rewind(text, start), path, names)
            text.detach()
        except OSError as err:
            raise DataError(f"cannot read {what}: {err.strerror or err}") from None
    return Dataset({n: np.ascontiguousarray(table[:, i]) for i, n in enumerate(names)}, path)


def _too_large(what: str, limit: int, size: int | None = None) -> DataError:
    shown = f"{size:,} bytes, " if size is not None else ""
    return DataError(f"{what} is {shown}over the limit of {limit:,} bytes",
                     hint="raise the limit with --max-data-size BYTES (suffixes K, M, G)")


def _decode(header: bytes, what: str) -> str:
    try:
        return header.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{what} is not UTF-8 text (byte {err.start})") from None


def _rewind(text: io.TextIOWrapper, start: int) -> io.TextIOWrapper:
    """A fresh text stream over the rows again (after the header), for error location."""
    raw = text.detach()
    raw.seek(start)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _header(line: str, path: str) -> list[str]:
    if not line.strip():
        raise DataError(f"data file '{path}' is empty; the first line must name the columns, "
                        "e.g. x,y")
    names = [n.strip() for n in next(csv.reader([line]))]
    for col, name in enumerate(names, start=1):
        if not _NAME.match(name):
            what = "an empty name" if not name else f"'{name}', which is not a valid name"
            raise DataError(f"data file '{path}', line 1, column {col}: the header has {what} "
                            "(letters, digits and _, not starting with a digit)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"data file '{path}': the header names column '{name}' twice")
        seen.add(name)
    return names


def _locate_bad_cell(rows: io.TextIOWrapper, path: str, names: list[str]) -> None:
    """Walk the rows with the csv module and raise for the first cell that is not a finite
    number or the first row with the wrong number of fields."""
    reader = csv.reader(rows)
    for row in reader:
        line = reader.line_num + 1  # the header is line 1
        if not row or all(not c.strip() for c in row):
            continue  # numpy skips blank lines too
        if len(row) != len(names):
            raise DataError(f"data file '{path}', line {line}: {len(row)} fields, but the "
                            f"header names {len(names)} columns")
        for col, cell in enumerate(row, start=1):
            text = cell.strip()
            try:
                value = float(text)
            except ValueError:
                shown = f"'{text}'" if text else "an empty cell"
                raise DataError(f"data file '{path}', line {line}, column {col} "
                                f"('{names[col - 1]}'): {shown} is not a number") from None
            if not math.isfinite(value):
                raise DataError(f"data file '{path}', line {line}, column {col} "
                                f"('{names[col - 1]}'): '{text}' is not a finite number")


def batches(rows: int, batch_size: int, seed: int | None = None) -> Iterator[np.ndarray]:
    """Endless minibatches of row indices: each epoch is a fresh shuffle of all rows, cut into
    batches of ``batch_size`` (the last one may be smaller).  The same seed gives the same
    sequence, so a stochastic fit can be repeated exactly."""
    if batch_size <= 0:
        raise DataError("the batch size must be at least 1")
    rng = np.random.default_rng(seed)
    size = min(batch_size, rows)
    while True:
        order = rng.permutation(rows)
        for start in range(0, rows, size):
            yield order[start:start + size]
