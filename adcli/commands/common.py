"""Options and input handling shared by every command."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import click

from ..errors import AdcliError
from ..function import Function, parse
from ..io.inputs import read_bounded
from ..io.point import _split_top_level, bind_elements, expand_names, parse_assignments
from ..language.parser import DEFAULT_MAX_SOURCE_BYTES
from ..output import formats, numbers

EXPR_HELP = "EXPR is an expression or program, @FILE to read one from a file, or - for stdin."


def read_source(expr: str, max_bytes: int) -> str:
    """EXPR, @path or - (stdin) -> source text, reading at most ``max_bytes`` + 1 bytes
    (0: no limit) from any file, device or pipe; a UTF-8 byte-order mark is dropped."""
    limit = max_bytes or None
    if expr == "-":
        data = read_bounded(None, limit, "standard input", "--max-size")
        origin = "standard input"
    elif expr.startswith("@"):
        path = expr[1:]
        if not path:
            raise AdcliError("'@' must be followed by a file name, as in @model.adc")
        origin = f"'{path}'"
        data = read_bounded(path, limit, origin, "--max-size")
    else:
        bad = next((i for i, c in enumerate(expr) if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise AdcliError(f"EXPR is not UTF-8 text (byte 0x{ord(expr[bad]) - 0xDC00:02x} "
                             f"at character {bad + 1})")
        return expr
    mark = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[mark:].decode("utf-8")
    except UnicodeDecodeError as err:  # the file's offset: the mark counts
        raise AdcliError(f"{origin} is not UTF-8 text (byte {err.start + mark})") from None


def load_function(expr: str, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES) -> Function:
    return parse(read_source(expr, max_bytes), max_bytes=max_bytes or None)


def parse_point(values: tuple[str, ...], option: str = "--at",
                function: Function | None = None) -> dict[str, float]:
    """The point; with ``function``, an indexed variable's values (``x=[1,2]``, ``x=0``)
    are given to the elements it uses (x[1], x[2])."""
    point = parse_assignments(values, option) if values else {}
    return bind_elements(point, function.variables, option) if function else point


def parse_names(text: str | None, option: str = "--wrt",
                function: Function | None = None) -> list[str] | None:
    """``"x,y,x"`` -> ``["x", "y"]``: first occurrences, in order (no duplicate rows); with
    ``function``, an indexed variable's name means all its elements."""
    if text is None:
        return None
    names = [n.strip() for n in _split_top_level(text)]
    if any(not n for n in names):
        raise AdcliError(f"{option} '{text}' has an empty name; write names separated by commas")
    names = list(dict.fromkeys(names))
    return expand_names(names, function.variables) if function else names


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: click's FloatRange lets nan through every
    comparison and inf through open-ended ranges (``--lr nan`` silently "diverged")."""

    name = "finite float"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:i?B)?\Z", re.IGNORECASE | re.ASCII)


class ByteSize(click.ParamType):
    """A size in bytes: a whole number, or with a binary suffix K, M, G or T (``512M``,
    ``4GiB``). 0 means no limit."""

    name = "bytes"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE.match(str(value).strip())
        if not m:
            self.fail(f"{value!r} is not a size in bytes (e.g. 1000000, 512K, 2M, 4G).",
                      param, ctx)
        return int(m[1]) << (10 * " KMGT".index(m[2].upper() or " "))


def show(record: object, as_json: bool, **options: object) -> None:
    """Hand a result record to the format the options chose (:mod:`adcli.output.formats`):
    commands parse options, call the core, and end here."""
    formats.show(record, formats.chosen(as_json), **options)


def expr_argument(f: Callable) -> Callable:
    return click.argument("expr", metavar="EXPR")(f)


def max_size_option(f: Callable) -> Callable:
    return click.option(
        "--max-size", type=ByteSize(), default=DEFAULT_MAX_SOURCE_BYTES,
        show_default=True, metavar="BYTES",
        help="Refuse inputs larger than this (suffixes K, M, G; 0: no limit).")(f)


def max_time_option(outcome: str) -> Callable[[Callable], Callable]:
    """``--max-time`` of minimize and fit; ``outcome`` says how the stop is reported."""
    return click.option(
        "--max-time", type=FiniteFloat(min=0), default=60.0, show_default=True,
        metavar="SECONDS",
        help=f"Stop at the best point so far after this long ({outcome}, exit status 1); 0: "
             "no limit. Checked between evaluations (on Dask: between passes).")


def at_option(f: Callable) -> Callable:
    return click.option(
        "--at", "at", multiple=True, metavar="NAME=VALUE,...",
        help="Values of the variables, e.g. x=2,y=-3.5 (values may be constant expressions "
             "such as pi/4), or @FILE.json (an object of name: number, or the result of "
             "minimize/fit --json); x=[1,2,3] or x=0 gives the elements of an indexed x. "
             "May be repeated; it is one point: for several, --data.")(f)


def json_option(f: Callable, help: str = "Print one JSON object instead of tables.") -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=help)(f)



def json_option_saying(help: str) -> Callable[[Callable], Callable]:
    """``--json`` with its own help, for commands that print no tables (eval, diff)."""
    return lambda f: json_option(f, help)


DATA_HELP = ("Headers that are not names are mapped to names (other characters become _: "
             "'sepal length' is sepal_length, 'y(obs)' is y_obs, '2y' is _2y, an empty "
             "header columnN); only the columns EXPR uses must be numbers.")


def data_options(f: Callable) -> Callable:
    """--sep, --column and --dropna: CSV files as people have them (see adcli.io.data)."""
    f = click.option("--dropna", is_flag=True,
                     help="Leave out rows with a missing cell (empty, NA, nan) in a column "
                          "EXPR uses (without it such a cell is an error naming its line).")(f)
    f = click.option("--column", "renames", multiple=True, metavar="NEWNAME=ORIGINAL",
                     help="Call the data column headed ORIGINAL NEWNAME (repeatable), e.g. "
                          "--column 'sepal=sepal length'.")(f)
    f = click.option("--sep", metavar="CHAR",
                     help="Separator of the data file (',', ';', 'tab', ...) [default: the one "
                          "of , ; tab | found most often in the header line].")(f)
    return f


def load_data(path: str, max_bytes: int | None, sep: str | None,
              renames: tuple[str, ...], keep_lines: bool = False, keep_text: bool = False):
    """The data file, read with the CSV options (columns not yet checked: see
    :meth:`adcli.io.data.Dataset.select`); text cells only with ``keep_text`` (an output that
    repeats them without ``keep_lines``)."""
    from ..io.data import parse_renames, parse_separator, read_table

    return read_table(path, max_bytes, sep=parse_separator(sep), rename=parse_renames(renames),
                      keep_lines=keep_lines, keep_text=keep_text)


def _set_digits(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    # The setting lives in adcli.output.numbers, which every renderer reads: setting it loads
    # no rich (--json and piped output never import rich; start-up time).
    numbers.set_digits(value)


def digits_option(f: Callable) -> Callable:
    """--digits N: significant digits of the numbers printed for people (never --json); one
    default for every command (:data:`adcli.output.numbers.DEFAULT_DIGITS`)."""
    option = click.option(
        "--digits", type=click.IntRange(0, 17), default=numbers.DEFAULT_DIGITS,
        show_default=True,
        metavar="N", expose_value=False, callback=_set_digits,
        help="Significant digits of printed numbers (0: every digit); --json always has "
             "every digit.")
    return option(f)
