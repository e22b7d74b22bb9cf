"""A data file's rows, read a block of lines at a time (:func:`adcli.io.data.read_table`).

Blocks of plain numbers go through numpy's C parser; any other block through the ``csv``
module, cell by cell. Both follow one number rule (:data:`CELL`). Text is kept as UTF-8 bytes
(:class:`TextColumn`), not a Python string a cell, and every block is checked as it comes, so
memory grows with what is kept and a bad byte stops the reading at once.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

import numpy as np

from ..errors import AdcliError

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


class Reader:
    """The rows of a data file, a block of lines at a time (see
    :func:`adcli.io.data.read_table`); its errors are of class ``error`` (``DataError``), and
    ``rows``, ``columns`` and ``lines`` are what :func:`adcli.io.data.read_table` makes a
    dataset of."""

    def __init__(self, what: str, names: list[str], sep: str, max_bytes: int | None,
                 keep_lines: bool, keep_text: bool = True,
                 error: type[AdcliError] = AdcliError) -> None:
        self.what = what
        self.error = error
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
        # Chunks of a line, or of a quoted cell, that goes on past them; kept as a list with
        # their count of quotes, so a long one is neither copied nor counted again per chunk.
        pending: list[bytes] = []
        quotes = 0
        while True:
            want = BLOCK_BYTES
            if self.max_bytes is not None:
                want = min(want, self.max_bytes - read + 1)
            chunk = fh.read(want) if want > 0 else b""
            read += len(chunk)
            if self.max_bytes is not None and read > self.max_bytes:
                raise self.error(f"{self.what} is over the limit of {self.max_bytes:,} bytes",
                                 hint="raise the limit with --max-data-size BYTES (suffixes K, "
                                      "M, G)")
            if not chunk:
                block = b"".join(pending)
                if block:
                    self._block(block if block.endswith(b"\n") else block + b"\n")
                return
            cut = chunk.rfind(b"\n") + 1
            if cut == 0 or (quotes + chunk.count(b'"', 0, cut)) % 2:
                pending.append(chunk)
                quotes += chunk.count(b'"')
                continue
            pending.append(chunk[:cut])
            block = b"".join(pending)
            pending = [chunk[cut:]]
            quotes = pending[0].count(b'"')
            self._block(block)
            del block

    def _block(self, block: bytes) -> None:
        lines = block.count(b"\n")
        if not (self.plain and self._numbers(block, lines)):
            self._cells(block)
        self.line += lines
        self._check_held()

    def _check_held(self) -> None:
        """The memory the rows read so far take, against the limit (after each block, and
        each batch of a long block: one quoted cell can make the rest of a file one block)."""
        if self.max_bytes is None:
            return
        held = sum(c.held() for c in self.columns) + (self.lines.nbytes if self.lines else 0)
        if held > self.max_bytes:
            raise self.error(f"{self.what}: its rows take more than {self.max_bytes:,} bytes "
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

    def _decoded(self, block: bytes) -> Iterator[str]:
        """The lines of ``block``, each decoded strictly as it is read: a block can be the
        rest of a file (after an unmatched quote), never decoded or copied whole."""
        start, line, end = 0, self.line, len(block)
        while start < end:
            stop = block.find(b"\n", start) + 1 or end
            piece = block[start:stop]
            try:
                yield piece.decode("utf-8")
            except UnicodeDecodeError as err:
                raise self.error(f"{self.what}, line {line + 1}: byte {err.start + 1} "
                                 f"(0x{piece[err.start]:02x}) is not UTF-8 text; data files "
                                 "are read as UTF-8") from None
            line += 1
            start = stop

    def _cells(self, block: bytes) -> None:
        """Any other block: decoded strictly, split by the csv module (quotes, a separator
        inside quotes, a line break inside quotes), checked cell by cell."""
        import csv  # here: a file of plain numbers never needs it (a fit's start-up)

        reader = csv.reader(self._decoded(block), delimiter=self.sep, strict=True)
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
                        raise self.error(f"{self.what}, line {self.line + previous + 1}: "
                                        f"{len(row)} fields, but the header names {width} "
                                        "columns")
                previous = reader.line_num
                rows.append(row)
                where.append(self.line + previous)
                if len(rows) == _BATCH_ROWS:
                    self._add(rows, where)
                    rows, where = [], []
        except csv.Error as err:
            raise self.error(f"{self.what}, line {self.line + previous + 1}: "
                            f"{csv_reason(str(err))}") from None
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
        self._check_held()


def csv_reason(message: str) -> str:
    """The csv module's complaint, in words that say what to fix."""
    if "unexpected end of data" in message:
        return "a quoted cell opens on this line and is never closed"
    if "field larger than field limit" in message:
        import csv

        return f"a cell is longer than {csv.field_size_limit():,} characters"
    if "new-line character seen in unquoted field" in message:
        return ("a line ends with a lone carriage return (CR); save the file with "
                "LF or CRLF line ends")
    if "expected after" in message:
        return "a quoted cell has text after its closing quote"
    return f"not CSV ({message})"


#: Cells that stand for a missing value (compared stripped and lower-cased).
MISSING = frozenset({"", "na", "n/a", "nan", "null"})


def csv_cell(text: str) -> str:
    """A text cell for CSV: quoted when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
