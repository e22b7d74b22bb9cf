"""Data files for fitting: a CSV with a header row becomes one float64 column per name.

Columns are numpy arrays so the tape runs once over all rows (batch backpropagation) instead of
once per row.  Blocks of plain numbers go through numpy's C parser; any other block is walked
with the ``csv`` module to say exactly which cell is wrong (line and column), because "could
not convert string to float" is not an error message a user can act on.  Both follow one
number rule (:data:`CELL`), the same as EXPR's and ``--at``'s.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.records import Shown
from ..errors import AdcliError
from .blocks import CELL, MISSING, Reader, TextColumn, csv_cell, csv_reason
from .inputs import open_binary

__all__ = ["CELL", "MISSING", "DataError", "Dataset", "TextColumn", "batches", "csv_cell",
           "from_columns", "parse_renames", "parse_separator", "read_csv", "read_table"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: ``--max-data-size``'s default: a data file larger than this is refused before it is read,
#: and so is one whose rows take more memory once read; with the evaluation's own arrays a
#: command then stays under 1 GB (a 4 GiB default let an endless pipe take 3 GB and more).
DEFAULT_MAX_DATA_BYTES = 256 << 20
#: The header line alone is bounded much tighter (names only; ``/dev/zero`` ends at once).
MAX_HEADER_BYTES = 1 << 20


class DataError(AdcliError):
    """A data file that cannot be used: missing, empty, ragged or with a non-numeric cell."""


class Dataset(Shown):
    """Columns of equal length, by header name, in file order.

    ``columns`` holds the numeric ones (nan where a cell is missing); a column with a cell
    that is not a number is in ``problems`` (its error, raised only when an expression uses
    it), a column with missing cells in ``missing`` (mask and error); ``text`` keeps the
    cells of a column with text as read, to write them back out (a :class:`TextColumn`);
    ``spare`` the values of a column with missing cells that :meth:`select` left out of
    ``columns`` (nan where missing, only to write them back out); ``headers`` maps a name to
    its header text where they differ.

    A plain slotted class, not a dataclass: making a dataclass runs generated code at import,
    start-up a fit pays and ``adcli grad`` does not. ``lines`` holds the data lines
    (``keep_lines``) as read, with ',' separators: an output that repeats the input columns
    copies them instead of formatting numbers; ``nrows`` the number of rows, when no column
    kept says it (text that was not kept)."""

    __slots__ = __match_args__ = SHOWN = ("columns", "path", "order", "problems", "missing", "text",
                                  "headers", "spare", "lines", "nrows")

    def __init__(self, columns: dict[str, np.ndarray], path: str = "",
                 order: list[str] | None = None,
                 problems: dict[str, DataError] | None = None,
                 missing: dict[str, tuple[np.ndarray, DataError]] | None = None,
                 text: dict[str, Sequence[str]] | None = None,
                 headers: dict[str, str] | None = None,
                 spare: dict[str, np.ndarray] | None = None,
                 lines: Sequence[str] | None = None, nrows: int | None = None) -> None:
        self.columns = columns
        self.path = path
        self.order = order or list(columns)
        self.problems = {} if problems is None else problems
        self.missing = {} if missing is None else missing
        self.text = {} if text is None else text
        self.headers = {} if headers is None else headers
        self.spare = {} if spare is None else spare
        self.lines = lines
        self.nrows = nrows

    @property
    def names(self) -> list[str]:
        return list(self.order)

    @property
    def rows(self) -> int:
        if self.nrows is not None:
            return self.nrows
        for col in (*self.columns.values(), *self.text.values(), *self.spare.values()):
            return len(col)
        return 0

    def take(self, rows: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The given rows of the given numeric columns (all of them by default)."""
        keep = list(self.columns) if names is None else names
        return {n: self.columns[n][rows] for n in keep}

    def select(self, use: Iterable[str] | None = None, dropna: bool = False,
               empty: bool = False) -> Dataset:
        """The data an expression reading the columns in ``use`` (None: all) can work on.

        A used column with a cell that is not a number is an error naming that cell; a used
        column with missing cells is an error naming the first, or with ``dropna`` those rows
        are left out (of every column; no row left is an error, unless ``empty``: one
        partition of a larger source). Unused columns may hold anything: they stay in
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
        if not keep.any() and not empty:
            raise DataError(f"data file '{self.path}': no rows left after --dropna")
        dropped = not keep.all()
        out = Dataset({}, self.path, list(self.order), dict(self.problems), {}, {},
                      dict(self.headers), lines=self.lines, nrows=int(keep.sum()))
        if dropped and self.lines is not None:
            out.lines = _take(self.lines, keep)
        for name in self.order:
            if name in self.text:
                cells = self.text[name]
                out.text[name] = _take(cells, keep) if dropped else cells
            if name in self.columns and (name not in self.missing or name in wanted):
                col = self.columns[name]
                out.columns[name] = np.ascontiguousarray(col[keep]) if dropped else col
            elif name in self.missing:
                mask, err = self.missing[name]
                out.missing[name] = (mask[keep], err)
                col = self.columns.get(name, self.spare.get(name))
                if col is not None:
                    out.spare[name] = np.ascontiguousarray(col[keep]) if dropped else col
        return out

    def describe_headers(self) -> str:
        """``sepal_length (from 'sepal length'), ...``: the names of mapped headers."""
        return ", ".join(f"{n} (from '{h}')" for n, h in self.headers.items())


def _take(cells: Sequence[str], keep: np.ndarray) -> Sequence[str]:
    if isinstance(cells, TextColumn):
        return cells.take(keep)
    return [c for c, k in zip(cells, keep) if k]


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
               keep_lines: bool = False, keep_text: bool = True) -> Dataset:
    """Read a CSV file whose first row names the columns, as people have them: only the
    columns an expression uses need to be numbers (see :meth:`Dataset.select`), headers that
    are not names are mapped to names (``sepal length`` -> ``sepal_length``; ``rename`` maps
    NEWNAME -> header text, ``--column``), and the separator is ``sep`` or the one of
    ``, ; tab |`` found most often in the header line. Errors name the line and column (both
    1-based, counting the header as line 1).

    Every row is read or refused: a cell is a number by the one rule of EXPR and ``--at``
    (ASCII, see :data:`CELL`), a missing cell, or text; ``#`` starts no comment; an unclosed
    quote, a row with the wrong number of fields and bytes that are not UTF-8 are errors
    naming their line. Only blank lines are skipped.

    The file is opened once and read in blocks of lines, so a pipe (``--data /dev/stdin``,
    ``<(...)``) works too and memory grows with what is kept, not with what is read:
    ``max_bytes`` (None: no limit) bounds both the bytes read (a regular file is refused from
    its size) and the memory the rows take once read (8 bytes a number; a column with text
    keeps its UTF-8 bytes, and numbers of it read earlier as their shortest text). The header
    line is bounded on its own, so ``/dev/zero`` ends at once. Blocks of plain numbers go
    through numpy's C parser; only blocks with other cells are walked cell by cell.
    ``keep_lines`` keeps the text of the data lines, to write them back out (see
    :attr:`Dataset.lines`); without ``keep_text`` a column with text keeps only its first
    problem, not its cells (a fit never reads them)."""
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
            line = _decode(header, what)
            delimiter = _separator(line, sep)
            names, headers = _header(line, path, delimiter, rename or {})
            reader = Reader(what, names, delimiter, max_bytes, keep_lines, keep_text, DataError)
            reader.read(fh, len(header))
        except OSError as err:
            raise DataError(f"cannot read {what}: {err.strerror or err}") from None
    data = _dataset(reader, path)
    data.headers = headers
    return data


def _dataset(self: Reader, path: str) -> Dataset:
    """The columns ``self`` read, with their problems and missing cells (see
    :class:`Dataset`)."""
    if not self.rows:
        raise DataError(f"{self.what} has a header but no rows")
    data = Dataset({}, path, list(self.names), nrows=self.rows)
    for index, (name, column) in enumerate(zip(self.names, self.columns), start=1):
        def place(where: tuple[int, str], message: str, name: str = name,
                  index: int = index) -> DataError:
            return DataError(f"{self.what}, line {where[0]}, column {index} ('{name}'): "
                             f"{message}")
        if column.problem is not None:
            cell = column.problem[1]
            finite = "a finite number" if CELL.match(cell) else "a number"
            err = place(column.problem, f"'{cell}' is not {finite}")
            if _DECIMAL_COMMA.match(cell):
                err.hint = ("numbers are read with '.' as the decimal point; a cell such "
                            "as '1,5' is not read as 1.5")
            elif not cell.isascii() or "_" in cell:
                err.hint = ("numbers are written in ASCII as in EXPR and --at (1500, "
                            "-2.5e3): no digit grouping, other digits or other spaces")
            assert column.text is not None
            data.problems[name] = err
            if column.keep_text:
                data.text[name] = column.text.build()
            continue
        values = np.concatenate(column.blocks) if len(column.blocks) != 1 \
            else column.blocks[0]
        column.blocks = []
        data.columns[name] = values
        if column.first_missing is not None:
            mask = np.zeros(self.rows, dtype=bool)
            mask[np.concatenate(column.missing)] = True
            cell = column.first_missing[1]
            shown = ("an empty cell is not a number" if not cell else
                     f"'{cell}' is not a finite number" if CELL.match(cell) else
                     f"'{cell}' is not a number")
            err = place(column.first_missing, shown)
            err.hint = ("--dropna skips the rows with a missing cell (empty, NA or nan) "
                        "in a column the expression uses")
            data.missing[name] = (mask, err)
    if self.lines is not None:
        data.lines = self.lines.build()
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
    # what the "utf-8-sig" codec does (a byte-order mark dropped), without importing that
    # codec's module into every fit; a bad byte is placed as in the rows (Reader._lines):
    # counted from 1 at the line's start, the mark included, so that it is the file's byte
    mark = 3 if header.startswith(b"\xef\xbb\xbf") else 0
    try:
        return header[mark:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = mark + err.start
        raise DataError(f"{what}, line 1: byte {at + 1} (0x{header[at]:02x}) is not UTF-8 "
                        "text; data files are read as UTF-8") from None


#: the csv module's default limit on a cell's length (a longer header goes to the module, which
#: says so)
_CSV_FIELD_LIMIT = 131072


def _header(line: str, path: str, sep: str,
            rename: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Column names, and name -> header text for the columns whose header was not a name
    (mapped, or renamed by ``rename``: NEWNAME -> header text)."""
    if not line.strip():
        raise DataError(f"data file '{path}' is empty; the first line must name the columns, "
                        "e.g. x,y")
    body = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith("\n") else line
    if len(body) <= _CSV_FIELD_LIMIT and not any(c in body for c in '"\r\n\0'):
        # what the csv module makes of a line without quotes or line breaks, without
        # importing it for a file of plain numbers (a fit's start-up)
        raw = [n.strip() for n in body.split(sep)]
    else:
        import csv

        try:
            raw = [n.strip() for n in next(csv.reader([line], delimiter=sep, strict=True))]
        except csv.Error as err:
            raise DataError(f"data file '{path}', line 1: {csv_reason(str(err))}") from None
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
