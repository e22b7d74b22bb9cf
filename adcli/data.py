"""Data files for fitting: a CSV with a header row becomes one float64 column per name.

Columns are numpy arrays so the tape runs once over all rows (batch backpropagation) instead of
once per row.  Blocks of plain numbers go through numpy's C parser; any other block is walked
with the ``csv`` module to say exactly which cell is wrong (line and column), because "could
not convert string to float" is not an error message a user can act on.  Both follow one
number rule (:data:`CELL`), the same as EXPR's and ``--at``'s.
"""

from __future__ import annotations

import csv
import io
import math
import re
import stat
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from .errors import AdcliError
from .inputs import open_binary

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: ``--max-data-size``'s default: a data file larger than this is refused before it is read,
#: and so is one whose rows take more memory once read; with the evaluation's own arrays a
#: command then stays under 1 GB (a 4 GiB default let an endless pipe take 3 GB and more).
DEFAULT_MAX_DATA_BYTES = 256 << 20
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
    cells of a column with text as read, to write them back out (a :class:`TextColumn`);
    ``spare`` the values of a column with missing cells that :meth:`select` left out of
    ``columns`` (nan where missing, only to write them back out); ``headers`` maps a name to
    its header text where they differ."""

    columns: dict[str, np.ndarray]
    path: str = ""
    order: list[str] = field(default_factory=list)
    problems: dict[str, DataError] = field(default_factory=dict)
    missing: dict[str, tuple[np.ndarray, DataError]] = field(default_factory=dict)
    text: dict[str, Sequence[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    spare: dict[str, np.ndarray] = field(default_factory=dict)
    #: The data lines (``keep_lines``) as read, with ',' separators: an output that repeats
    #: the input columns copies them instead of formatting numbers.
    lines: Sequence[str] | None = None
    #: The number of rows, when no column kept says it (text that was not kept).
    nrows: int | None = None

    def __post_init__(self) -> None:
        if not self.order:
            self.order = list(self.columns)

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
            reader = _Reader(what, names, delimiter, max_bytes, keep_lines, keep_text)
            reader.read(fh, len(header))
        except OSError as err:
            raise DataError(f"cannot read {what}: {err.strerror or err}") from None
    data = reader.dataset(path)
    data.headers = headers
    return data


#: Bytes read at a time (then cut at the last line end): a pipe or ``/dev/urandom`` is
#: checked as it comes, and a block of plain numbers is one call to numpy's parser.
BLOCK_BYTES = 1 << 20

#: The one number rule of data cells, EXPR and ``--at``: ASCII digits with an optional sign,
#: decimal point and exponent, or nan/inf/infinity; spaces and tabs around it are allowed.
#: Not numbers: ``１`` and ``١`` (non-ASCII digits), ``1_000``, a non-breaking space,
#: ``2 # note``.
CELL = re.compile(r"[ \t]*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                  r"|[+-]?(?:nan|inf|infinity))[ \t]*\Z", re.IGNORECASE | re.ASCII)
#: The bytes a block of plain numbers may hold (besides the separator): within them numpy's
#: parser and Python's float() follow :data:`CELL` exactly (no letters but e, no '_').
_PLAIN = b"0123456789+-.eE \t"
_BLANKS = " \t"
#: Rows split into cells at a time: a Python string a cell is some 60 bytes, so the cells in
#: flight stay a few MB whatever the block.
_BATCH_ROWS = 8192


class TextColumn(Sequence[str]):
    """Cells of text as one UTF-8 byte string and the end offset of each cell: about the
    size of the text itself, where a list of Python strings costs some 60 bytes a cell."""

    __slots__ = ("blob", "ends")

    def __init__(self, blob: bytes | bytearray = b"", ends: np.ndarray | None = None) -> None:
        self.blob = blob
        self.ends = np.zeros(0, dtype=np.int64) if ends is None else ends

    @classmethod
    def of(cls, cells: Iterable[str]) -> TextColumn:
        encoded = [c.encode("utf-8", "surrogateescape") for c in cells]
        return cls(b"".join(encoded),
                   np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded))))

    def __len__(self) -> int:
        return len(self.ends)

    def _cell(self, i: int) -> str:
        lo = int(self.ends[i - 1]) if i else 0
        return self.blob[lo:int(self.ends[i])].decode("utf-8", "surrogateescape")

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._cell(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._cell(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, TextColumn)):
            return list(self) == list(other)
        return NotImplemented

    def take(self, keep: np.ndarray) -> TextColumn:
        """The cells where ``keep`` is true."""
        return TextColumn.of(c for c, k in zip(self, keep) if k)

    @property
    def nbytes(self) -> int:
        return len(self.blob) + self.ends.nbytes


class _TextBuilder:
    """A :class:`TextColumn` built a block at a time."""

    def __init__(self) -> None:
        self.blob = bytearray()  # grown in place: no second copy when built
        self.lengths: list[np.ndarray] = []
        self.nbytes = 0

    def add(self, cells: Iterable[str]) -> None:
        encoded = [c.encode("utf-8", "surrogateescape") for c in cells]
        self.add_bytes(b"".join(encoded), np.fromiter(map(len, encoded), np.int64,
                                                      len(encoded)))

    def add_bytes(self, blob: bytes, lengths: np.ndarray) -> None:
        self.blob += blob
        self.lengths.append(lengths)
        self.nbytes += len(blob) + lengths.nbytes

    def build(self) -> TextColumn:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        ends = np.cumsum(lengths)
        if len(ends) and ends[-1] < 2**31:
            ends = ends.astype(np.int32)  # 4 bytes a cell where the text allows
        column = TextColumn(self.blob, ends)
        self.blob, self.lengths = bytearray(), []
        return column


class _Column:
    """One column while it is read: float64 blocks, or once a cell is neither a number nor
    missing, the cells as text (the first such cell is the column's problem)."""

    def __init__(self, keep_text: bool = True) -> None:
        self.keep_text = keep_text
        self.blocks: list[np.ndarray] = []
        self.text: _TextBuilder | None = None
        self.problem: tuple[int, str] | None = None  # (line, cell)
        self.missing: list[np.ndarray] = []  # row numbers of missing cells, by block
        self.first_missing: tuple[int, str] | None = None
        self.nbytes = 0

    def add_numbers(self, values: np.ndarray) -> None:
        if self.text is not None:
            if self.keep_text:
                self.text.add(map(repr, values.tolist()))
        else:
            self.blocks.append(values)
            self.nbytes += values.nbytes

    def add_cells(self, cells: Sequence[str], lines: Sequence[int], first_row: int) -> None:
        if self.text is None:
            values = _plain_numbers(cells)
            if values is None:
                values = self._walk(cells, lines, first_row)
            if values is not None:
                self.blocks.append(values)
                self.nbytes += values.nbytes
                return
        if self.keep_text:
            assert self.text is not None
            self.text.add(cells)

    def _walk(self, cells: Sequence[str], lines: Sequence[int],
              first_row: int) -> np.ndarray | None:
        """Cell by cell: the values (nan where missing), or None when a cell is text (the
        column becomes text from here on)."""
        values = np.empty(len(cells))
        missing: list[int] = []
        for i, cell in enumerate(cells):
            text = cell.strip(_BLANKS)
            match = CELL.match(text)
            value = float(text) if match else math.nan
            if math.isfinite(value):
                values[i] = value
            elif text.lower() in MISSING:
                values[i] = math.nan
                missing.append(i)
                if self.first_missing is None:
                    self.first_missing = (lines[i], text)
            else:
                self.problem = (lines[i], text)
                self.text = _TextBuilder()
                if self.keep_text:
                    done = [v for block in self.blocks for v in block.tolist()]
                    self.text.add(map(repr, done))
                self.blocks, self.nbytes = [], 0
                return None
        if missing:
            self.missing.append(np.asarray(missing, dtype=np.int64) + first_row)
        return values

    def held(self) -> int:
        return self.nbytes + (self.text.nbytes if self.text is not None else 0)


def _plain_numbers(cells: Sequence[str]) -> np.ndarray | None:
    """The cells as float64 when every one is a finite number in plain digits (the common
    case, at C speed), else None (the caller walks them)."""
    joined = "".join(cells)
    if not joined.isascii() or joined.encode("ascii").translate(None, _PLAIN):
        return None
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


class _Reader:
    """The rows of a data file, a block of lines at a time (see :func:`read_table`)."""

    def __init__(self, what: str, names: list[str], sep: str, max_bytes: int | None,
                 keep_lines: bool, keep_text: bool = True) -> None:
        self.what = what
        self.names = names
        self.sep = sep
        self.max_bytes = max_bytes
        self.columns = [_Column(keep_text) for _ in names]
        self.lines = _TextBuilder() if keep_lines else None
        self.rows = 0
        self.line = 1  # lines before the block being read (the header is line 1)
        sep_byte = sep.encode("utf-8")
        self.plain = len(sep_byte) == 1 and sep_byte not in _PLAIN + b"\r\n\""
        self.allowed = _PLAIN + b"\r\n" + (sep_byte if self.plain else b"")

    def read(self, fh: BinaryIO, read: int) -> None:
        """Every block of ``fh`` (``read`` bytes, the header, already taken)."""
        rest = b""
        while True:
            want = BLOCK_BYTES
            if self.max_bytes is not None:
                want = min(want, self.max_bytes - read + 1)
            chunk = fh.read(want) if want > 0 else b""
            read += len(chunk)
            if self.max_bytes is not None and read > self.max_bytes:
                raise _too_large(self.what, self.max_bytes)
            block = rest + chunk
            if not chunk:
                if block:
                    self._block(block if block.endswith(b"\n") else block + b"\n")
                return
            cut = block.rfind(b"\n") + 1
            if cut == 0 or block.count(b'"', 0, cut) % 2:
                rest = block  # a line (or a quoted cell) goes on past this block
                continue
            self._block(block[:cut])
            rest = block[cut:]

    def _block(self, block: bytes) -> None:
        lines = block.count(b"\n")
        if not (self.plain and self._numbers(block, lines)):
            self._cells(block)
        self.line += lines
        held = sum(c.held() for c in self.columns) + (self.lines.nbytes if self.lines else 0)
        if self.max_bytes is not None and held > self.max_bytes:
            raise DataError(f"{self.what}: its rows take more than {self.max_bytes:,} bytes "
                            "of memory once read (8 bytes a number), over the limit",
                            hint="raise the limit with --max-data-size BYTES (suffixes K, M, "
                                 "G; 0: no limit)")

    def _numbers(self, block: bytes, lines: int) -> bool:
        """A block of plain numbers, one row a line and no blank line: numpy's C parser.
        False (nothing read) for any other block."""
        if block.translate(None, self.allowed):
            return False
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = np.loadtxt(io.BytesIO(block), delimiter=self.sep, comments=None,
                                   dtype=np.float64, ndmin=2, encoding="ascii")
        except ValueError:
            return False
        if table.shape != (lines, len(self.names)) or not np.isfinite(table).all():
            return False
        for j, column in enumerate(self.columns):
            column.add_numbers(np.ascontiguousarray(table[:, j]))
        del table
        if self.lines is not None:
            text = block.replace(b"\r\n", b"\n")
            if self.sep != ",":
                text = text.replace(self.sep.encode(), b",")
            ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
            lengths = np.diff(ends, prepend=-1) - 1
            self.lines.add_bytes(text.replace(b"\n", b""), lengths)
        self.rows += lines
        return True

    def _cells(self, block: bytes) -> None:
        """Any other block: decoded strictly, split by the csv module (quotes, a separator
        inside quotes, a line break inside quotes), checked cell by cell."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as err:
            line = self.line + block.count(b"\n", 0, err.start) + 1
            column = err.start - (block.rfind(b"\n", 0, err.start) + 1) + 1
            raise DataError(f"{self.what}, line {line}: byte {column} (0x{block[err.start]:02x})"
                            " is not UTF-8 text; data files are read as UTF-8") from None
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.sep, strict=True)
        rows: list[list[str]] = []
        where: list[int] = []  # the line of each row (its last line, for a quoted line break)
        width = len(self.names)
        previous = 0  # the last line of the row before
        try:
            for row in reader:
                if len(row) != width or width == 1:
                    if not row or (len(row) == 1 and not row[0].strip(_BLANKS)):
                        previous = reader.line_num
                        continue  # a blank line (a row of empty cells is missing cells)
                    if len(row) != width:
                        raise DataError(f"{self.what}, line {self.line + previous + 1}: "
                                        f"{len(row)} fields, but the header names {width} "
                                        "columns")
                previous = reader.line_num
                rows.append(row)
                where.append(self.line + previous)
                if len(rows) == _BATCH_ROWS:
                    self._add(rows, where)
                    rows, where = [], []
        except csv.Error as err:
            raise DataError(f"{self.what}, line {self.line + previous + 1}: "
                            f"{_csv_reason(str(err))}") from None
        if rows:
            self._add(rows, where)

    def _add(self, rows: list[list[str]], where: list[int]) -> None:
        """Rows split into cells (and their lines) into the columns."""
        by_column = list(zip(*rows))
        for column, cells in zip(self.columns, by_column):
            column.add_cells(cells, where, self.rows)
        if self.lines is not None:
            texts = []
            for cells in by_column:
                stripped = list(map(str.strip, cells))
                joined = "".join(stripped)
                if any(c in joined for c in ',"\n\r'):
                    stripped = list(map(csv_cell, stripped))
                texts.append(stripped)
            self.lines.add(map(",".join, zip(*texts)))
        self.rows += len(where)

    def dataset(self, path: str) -> Dataset:
        """The columns read, with their problems and missing cells (see :class:`Dataset`)."""
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


def _csv_reason(message: str) -> str:
    """The csv module's complaint, in words that say what to fix."""
    if "unexpected end of data" in message:
        return "a quoted cell opens on this line and is never closed"
    if "field larger than field limit" in message:
        return f"a cell is longer than {csv.field_size_limit():,} characters"
    if "new-line character seen in unquoted field" in message:
        return ("a line ends with a lone carriage return (CR); save the file with "
                "LF or CRLF line ends")
    if "expected after" in message:
        return "a quoted cell has text after its closing quote"
    return f"not CSV ({message})"


def read_csv(path: str, max_bytes: int | None = DEFAULT_MAX_DATA_BYTES, *,
             sep: str | None = None, rename: Mapping[str, str] | None = None,
             use: Iterable[str] | None = None, dropna: bool = False) -> Dataset:
    """:func:`read_table`, then :meth:`Dataset.select` of the columns in ``use`` (None:
    every column must be all numbers)."""
    return read_table(path, max_bytes, sep=sep, rename=rename).select(use, dropna)


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
        if not _NAME.match(new):
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


def _header(line: str, path: str, sep: str,
            rename: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Column names, and name -> header text for the columns whose header was not a name
    (mapped, or renamed by ``rename``: NEWNAME -> header text)."""
    if not line.strip():
        raise DataError(f"data file '{path}' is empty; the first line must name the columns, "
                        "e.g. x,y")
    try:
        raw = [n.strip() for n in next(csv.reader([line], delimiter=sep, strict=True))]
    except csv.Error as err:
        raise DataError(f"data file '{path}', line 1: {_csv_reason(str(err))}") from None
    by_header = {orig: new for new, orig in rename.items()}
    for orig in by_header:
        if orig not in raw and orig not in {_to_name(h, i) for i, h in enumerate(raw, 1)}:
            shown = ", ".join(f"'{h}'" for h in raw)
            raise DataError(f"--column: data file '{path}' has no column '{orig}' "
                            f"(its header: {shown})")
    names: list[str] = []
    headers: dict[str, str] = {}
    for col, text in enumerate(raw, start=1):
        name = text if _NAME.match(text) else _to_name(text, col)
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


def csv_cell(text: str) -> str:
    """A text cell for CSV: quoted when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


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
