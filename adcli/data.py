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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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
    """Columns of equal length, by header name, in file order.

    ``columns`` holds the numeric ones (nan where a cell is missing); a column with a cell
    that is not a number is in ``problems`` (its error, raised only when an expression uses
    it), a column with missing cells in ``missing`` (mask and error); ``text`` keeps the
    cells of both as read, to write them back out; ``headers`` maps a name to its header
    text where they differ."""

    columns: dict[str, np.ndarray]
    path: str = ""
    order: list[str] = field(default_factory=list)
    problems: dict[str, DataError] = field(default_factory=dict)
    missing: dict[str, tuple[np.ndarray, DataError]] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: The data lines as read (``keep_lines``, an all-numeric file with ',' separators): an
    #: output that repeats the input columns copies them instead of formatting numbers.
    lines: list[str] | None = None
    cells: list[list[str]] = field(default_factory=list)  # while reading only

    def __post_init__(self) -> None:
        if not self.order:
            self.order = list(self.columns)

    @property
    def names(self) -> list[str]:
        return list(self.order)

    @property
    def rows(self) -> int:
        for col in (*self.columns.values(), *self.text.values()):
            return len(col)
        return 0

    def take(self, rows: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The given rows of the given numeric columns (all of them by default)."""
        keep = list(self.columns) if names is None else names
        return {n: self.columns[n][rows] for n in keep}

    def select(self, use: Iterable[str] | None = None, dropna: bool = False) -> Dataset:
        """The data an expression reading the columns in ``use`` (None: all) can work on.

        A used column with a cell that is not a number is an error naming that cell; a used
        column with missing cells is an error naming the first, or with ``dropna`` those rows
        are left out (of every column). Unused columns may hold anything: they stay in
        ``text`` (and in ``columns`` when numeric and complete)."""
        wanted = self.names if use is None else [n for n in self.order if n in set(use)]
        for name in wanted:
            if name in self.problems:
                raise self.problems[name]
        keep = np.ones(self.rows, dtype=bool)
        for name in wanted:
            if name in self.missing:
                mask, err = self.missing[name]
                if not dropna:
                    raise err
                keep &= ~mask
        if not keep.any():
            raise DataError(f"data file '{self.path}': no rows left after --dropna")
        dropped = not keep.all()
        out = Dataset({}, self.path, list(self.order), dict(self.problems), {}, {},
                      dict(self.headers), self.lines)
        if dropped and self.lines is not None:
            out.lines = [ln for ln, k in zip(self.lines, keep) if k]
        for name in self.order:
            if name in self.text:
                cells = self.text[name]
                out.text[name] = [c for c, k in zip(cells, keep) if k] if dropped else cells
            if name in self.columns and (name not in self.missing or name in wanted):
                col = self.columns[name]
                out.columns[name] = np.ascontiguousarray(col[keep]) if dropped else col
            elif name in self.missing:
                mask, err = self.missing[name]
                out.missing[name] = (mask[keep], err)
        return out

    def describe_headers(self) -> str:
        """``sepal_length (from 'sepal length'), ...``: the names of mapped headers."""
        return ", ".join(f"{n} (from '{h}')" for n, h in self.headers.items())


def from_columns(columns: Mapping[str, object], path: str = "") -> Dataset:
    """A dataset from arrays already in memory (the Python API and the benchmark)."""
    cols = {str(k): np.ascontiguousarray(v, dtype=np.float64) for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise DataError(f"columns have different lengths: {sorted(lengths)}")
    if not cols or lengths == {0}:
        raise DataError("the data has no rows")
    return Dataset(cols, path)


def read_table(path: str, max_bytes: int | None = DEFAULT_MAX_DATA_BYTES, *,
               sep: str | None = None, rename: Mapping[str, str] | None = None,
               keep_lines: bool = False) -> Dataset:
    """Read a CSV file whose first row names the columns, as people have them: only the
    columns an expression uses need to be numbers (see :meth:`Dataset.select`), headers that
    are not names are mapped to names (``sepal length`` -> ``sepal_length``; ``rename`` maps
    NEWNAME -> header text, ``--column``), and the separator is ``sep`` or the one of
    ``, ; tab |`` found most often in the header line. Errors name the line and column (both
    1-based, counting the header as line 1).

    The file is opened once, so a pipe (``--data /dev/stdin``, ``<(...)``) works too: a
    regular file over ``max_bytes`` (None: no limit) is refused from its size, anything else
    is read into memory up to the limit. The header line is bounded on its own, so
    ``/dev/zero`` ends at once. An all-numeric file goes through numpy's C parser; only a
    file with other cells is walked cell by cell. ``keep_lines`` keeps the text of the
    data lines of an all-numeric file (see :attr:`Dataset.lines`)."""
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
            line = _decode(header, what)
            delimiter = _separator(line, sep)
            names, headers = _header(line, path, delimiter, rename or {})
            start = body.tell()
            text = io.TextIOWrapper(body, encoding="utf-8", newline="")
            table = None
            try:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # numpy warns on a header-only file
                    table = np.loadtxt(text, delimiter=delimiter, dtype=np.float64, ndmin=2,
                                       quotechar='"')
            except (ValueError, UnicodeDecodeError):
                pass
            if table is not None and table.size == 0:
                raise DataError(f"{what} has a header but no rows")
            if table is not None and table.shape[1] == len(names) \
                    and np.all(np.isfinite(table)):
                lines = None
                if keep_lines:  # all numbers: no cell holds a ',' to quote
                    body_text = _rewind(text, start).read()
                    if delimiter != ",":
                        body_text = body_text.replace(delimiter, ",")
                    lines = [ln for ln in body_text.splitlines() if ln.strip()]
                    if len(lines) != len(table) or '"' in body_text:
                        lines = None
                else:
                    text.detach()
                data = Dataset({n: np.ascontiguousarray(table[:, i])
                                for i, n in enumerate(names)}, path, lines=lines)
            else:
                del table
                data = _read_cells(_rewind(text, start), path, names, delimiter)
                if keep_lines:
                    data.lines = list(map(",".join, zip(*[[csv_cell(c.strip()) for c in col]
                                                          for col in data.cells])))
                data.cells = []
        except OSError as err:
            raise DataError(f"cannot read {what}: {err.strerror or err}") from None
    data.headers = headers
    return data


def read_csv(path: str, max_bytes: int | None = DEFAULT_MAX_DATA_BYTES, *,
             sep: str | None = None, rename: Mapping[str, str] | None = None,
             use: Iterable[str] | None = None, dropna: bool = False) -> Dataset:
    """:func:`read_table`, then :meth:`Dataset.select` of the columns in ``use`` (None:
    every column must be all numbers)."""
    return read_table(path, max_bytes, sep=sep, rename=rename).select(use, dropna)


def _element_name(text: str) -> str | None:
    """A header such as ``x[3]`` names the element x[3] of an indexed variable."""
    from .point import _element_key

    return _element_key(text)


def parse_renames(texts: Iterable[str]) -> dict[str, str]:
    """``--column NEWNAME=ORIGINAL`` (repeatable) -> ``{NEWNAME: ORIGINAL}``; ORIGINAL is
    the header text as in the file and may contain any character but a newline."""
    out: dict[str, str] = {}
    for text in texts:
        new, eq, orig = text.partition("=")
        new = new.strip()
        if not eq or not orig.strip():
            raise DataError(f"--column '{text}' must be NEWNAME=ORIGINAL, e.g. "
                            "--column 'sepal=sepal length'")
        new = _element_name(new) or new  # x[1]=sepal length binds an element
        if not _NAME.match(new) and _element_name(new) is None:
            raise DataError(f"--column '{new}' is not a valid name (letters, digits and _, "
                            "not starting with a digit)")
        if new in out:
            raise DataError(f"--column gives '{new}' twice")
        out[new] = orig.strip()
    return out


def parse_separator(text: str | None) -> str | None:
    """``--sep``: one character, or ``tab``/``\\t`` for a tab; None detects it."""
    if text is None:
        return None
    if text.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1 or text in "\"\r\n" or text.isalnum() or text == ".":
        raise DataError(f"--sep '{text}' is not a separator: give one character such as "
                        "',' or ';', or 'tab'")
    return text


_SEPARATORS = (",", ";", "\t", "|")


def _separator(header: str, sep: str | None) -> str:
    """``sep``, or the candidate found most often in the header line (ties and none: ',')."""
    if sep is not None:
        return sep
    counts = [header.count(c) for c in _SEPARATORS]
    best = max(counts)
    return _SEPARATORS[counts.index(best)] if best else ","


def _to_name(header: str, column: int) -> str:
    """A header that is not a name -> a name: runs of other characters become ``_``
    (``sepal length`` -> ``sepal_length``, ``y(obs)`` -> ``y_obs``), a leading digit gets
    ``_`` before it, and an empty header becomes ``columnN``."""
    name = _OTHER.sub("_", header).strip("_")
    if not name:
        return f"column{column}"
    return "_" + name if name[0].isdigit() else name


_OTHER = re.compile(r"[^A-Za-z0-9_]+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+\Z")


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
    """A fresh text stream over the rows again (after the header)."""
    raw = text.detach()
    raw.seek(start)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _header(line: str, path: str, sep: str,
            rename: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Column names, and name -> header text for the columns whose header was not a name
    (mapped, or renamed by ``rename``: NEWNAME -> header text)."""
    if not line.strip():
        raise DataError(f"data file '{path}' is empty; the first line must name the columns, "
                        "e.g. x,y")
    raw = [n.strip() for n in next(_records(csv.reader([line], delimiter=sep), path, 0))]
    by_header = {orig: new for new, orig in rename.items()}
    for orig in by_header:
        if orig not in raw and orig not in {_to_name(h, i) for i, h in enumerate(raw, 1)}:
            shown = ", ".join(f"'{h}'" for h in raw)
            raise DataError(f"--column: data file '{path}' has no column '{orig}' "
                            f"(its header: {shown})")
    names: list[str] = []
    headers: dict[str, str] = {}
    for col, text in enumerate(raw, start=1):
        name = text if _NAME.match(text) else _element_name(text) or _to_name(text, col)
        name = by_header.get(text, by_header.get(name, name))
        if name != text:
            headers[name] = text
        names.append(name)
    seen: dict[str, int] = {}
    for col, name in enumerate(names):
        if name in seen:
            first, second = raw[seen[name]], raw[col]
            if first == second:
                raise DataError(f"data file '{path}': the header names column '{name}' twice")
            raise DataError(f"data file '{path}': columns '{first}' and '{second}' both "
                            f"become '{name}'", hint="name one with --column NEWNAME=ORIGINAL")
        seen[name] = col
    return names, headers


#: Cells that stand for a missing value (compared stripped and lower-cased).
MISSING = frozenset({"", "na", "n/a", "nan", "null"})


def _records(reader, path: str, before: int = 1) -> Iterator[list[str]]:
    """The reader's rows; the csv module's own errors (a line that ends in a bare CR, a field
    over its size limit) become a DataError naming the line (``before``: lines before the
    reader's first, the header)."""
    try:
        yield from reader
    except csv.Error as err:
        line = reader.line_num + before
        text = str(err)
        if "new-line character" in text:
            text = "a line ends with a bare carriage return (CR); end lines with LF or CRLF"
        elif "field larger than field limit" in text:
            text = f"a field is longer than {csv.field_size_limit():,} characters"
        raise DataError(f"data file '{path}', line {line}: {text}") from None


def _read_cells(rows: io.TextIOWrapper, path: str, names: list[str], sep: str) -> Dataset:
    """Walk the rows with the csv module: a row with the wrong number of fields is an error
    now; a column with a cell that is not a number, or with missing cells, is recorded and
    becomes an error only if the expression uses it (:meth:`Dataset.select`)."""
    reader = csv.reader(rows, delimiter=sep)
    cells: list[list[str]] = [[] for _ in names]
    lines: list[int] = []
    for row in _records(reader, path):
        if not row or all(not c.strip() for c in row):
            continue  # blank lines are skipped, as numpy does
        line = reader.line_num + 1  # the header is line 1
        if len(row) != len(names):
            raise DataError(f"data file '{path}', line {line}: {len(row)} fields, but the "
                            f"header names {len(names)} columns")
        lines.append(line)
        for col, cell in zip(cells, row):
            col.append(cell)
    if not lines:
        raise DataError(f"data file '{path}' has a header but no rows")
    data = Dataset({}, path, cells=cells)
    where = np.asarray(lines)
    for index, (name, col) in enumerate(zip(names, cells), start=1):
        data.order.append(name)
        values, missing, problem = _numbers(col)

        def place(row: int, message: str, name: str = name, index: int = index) -> DataError:
            return DataError(f"data file '{path}', line {int(where[row])}, column {index} "
                             f"('{name}'): {message}")
        if problem is not None:
            row, cell = problem
            finite = "a finite number" if _is_float(cell) else "a number"
            err = place(row, f"'{cell}' is not {finite}")
            if _DECIMAL_COMMA.match(cell):
                err.hint = ("numbers are read with '.' as the decimal point; a cell such as "
                            "'1,5' is not read as 1.5")
            data.problems[name] = err
            data.text[name] = col
            continue
        data.columns[name] = values
        if missing is not None:
            row = int(np.argmax(missing))
            cell = col[row].strip()
            shown = f"'{cell}' is not a finite number" if _is_float(cell) else \
                (f"'{cell}' is not a number" if cell else "an empty cell is not a number")
            err = place(row, shown)
            err.hint = ("--dropna skips the rows with a missing cell (empty, NA or nan) in a "
                        "column the expression uses")
            data.missing[name] = (missing, err)
            data.text[name] = col
    return data


def csv_cell(text: str) -> str:
    """A text cell for CSV: quoted when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(cells: list[str]) -> tuple[np.ndarray, np.ndarray | None, tuple[int, str] | None]:
    """A column of cells -> (float64 values with nan where missing, the mask of missing
    cells or None, (row, cell) of the first cell that is neither a finite number nor
    missing, or None)."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = np.empty(len(cells))
        for i, cell in enumerate(cells):
            text = cell.strip()
            try:
                values[i] = float(text)
            except ValueError:
                if text.lower() not in MISSING:
                    return values, None, (i, text)
                values[i] = math.nan
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, None, None
    for i in np.flatnonzero(bad):
        text = cells[i].strip()
        if text.lower() not in MISSING:
            return values, None, (int(i), text)
    return values, bad, None


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
