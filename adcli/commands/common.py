"""Options and input handling shared by every command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click

from ..errors import AdcliError
from ..function import Function, parse
from ..parser import DEFAULT_MAX_SOURCE_BYTES
from ..point import parse_assignments
from ..results import dumps

EXPR_HELP = "EXPR is an expression or program, @FILE to read one from a file, or - for stdin."


def read_source(expr: str, max_bytes: int) -> str:
    """EXPR, @path or - (stdin) -> source text, refusing anything over ``max_bytes``."""
    limit_hint = "raise the limit with --max-size BYTES"
    if expr == "-":
        data = sys.stdin.buffer.read(max_bytes + 1) if max_bytes else sys.stdin.buffer.read()
        origin = "standard input"
    elif expr.startswith("@"):
        path = expr[1:]
        origin = f"'{path}'"
        if not path:
            raise AdcliError("'@' must be followed by a file name, as in @model.adc")
        try:
            size = os.path.getsize(path)
            if max_bytes and size > max_bytes:
                raise AdcliError(f"{origin} is {size:,} bytes, over the limit of "
                                 f"{max_bytes:,} bytes", hint=limit_hint)
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            reason = err.strerror or str(err)
            raise AdcliError(f"cannot read {origin}: {reason}") from None
    else:
        return expr
    if max_bytes and len(data) > max_bytes:
        raise AdcliError(f"{origin} is over the limit of {max_bytes:,} bytes", hint=limit_hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AdcliError(f"{origin} is not UTF-8 text (byte {err.start})") from None


def load_function(expr: str, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES) -> Function:
    return parse(read_source(expr, max_bytes), max_bytes=max_bytes or None)


def parse_point(values: tuple[str, ...], option: str = "--at") -> dict[str, float]:
    return parse_assignments(values, option) if values else {}


def parse_names(text: str | None, option: str = "--wrt") -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise AdcliError(f"{option} '{text}' has an empty name; write names separated by commas")
    return names


def emit_json(obj) -> None:
    click.echo(dumps(obj))


def expr_argument(f: Callable) -> Callable:
    return click.argument("expr", metavar="EXPR")(f)


def max_size_option(f: Callable) -> Callable:
    return click.option(
        "--max-size", type=click.IntRange(min=0), default=DEFAULT_MAX_SOURCE_BYTES,
        show_default=True, metavar="BYTES",
        help="Refuse inputs larger than this (0: no limit).")(f)


def at_option(f: Callable) -> Callable:
    return click.option(
        "--at", "at", multiple=True, metavar="NAME=VALUE,...",
        help="Values of the variables, e.g. x=2,y=-3.5 (values may be constant expressions "
             "such as pi/4). May be repeated.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object instead of tables.")(f)
