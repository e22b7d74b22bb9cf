"""Data files for fitting: a CSV with a header row becomes one float64 column per name.

Columns are numpy arrays so the tape runs once over all rows (batch backpropagation) instead of
once per row.  Reading tries numpy's C parser first; only when that fails do we re-read the file
with the ``csv`` module to say exactly which cell is wrong (line and column), because "could not
convert string to float" is not an error message a user can act on.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import AdcliError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


def read_csv(path: str) -> Dataset:
    """Read a CSV file whose first row names the columns; every other cell must be a finite
    number.  Errors name the line and column (both 1-based, counting the header as line 1)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header_line = fh.readline()
    except FileNotFoundError:
        raise DataError(f"data file '{path}' does not exist") from None
    except IsADirectoryError:
        raise DataError(f"data file '{path}' is a directory") from None
    except UnicodeDecodeError as err:
        raise DataError(f"data file '{path}' is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise DataError(f"cannot read data file '{path}': {err.strerror or err}") from None
    names = _header(header_line, path)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on a header-only file; we say it
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2,
                               encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError):
        _locate_bad_cell(path, names)  # raises with line and column
        raise DataError(f"data file '{path}' could not be read as numbers") from None
    if table.size == 0:
        raise DataError(f"data file '{path}' has a header but no rows")
    if table.shape[1] != len(names):
        _locate_bad_cell(path, names)
        raise DataError(f"data file '{path}': rows have {table.shape[1]} fields but the header "
                        f"has {len(names)}")
    if not np.all(np.isfinite(table)):
        _locate_bad_cell(path, names)
    return Dataset({n: np.ascontiguousarray(table[:, i]) for i, n in enumerate(names)}, path)


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


def _locate_bad_cell(path: str, names: list[str]) -> None:
    """Walk the file with the csv module and raise for the first cell that is not a finite
    number or the first row with the wrong number of fields."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            line = reader.line_num
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
