"""``adcli grad`` and ``adcli eval``."""

from __future__ import annotations

import sys

import click

from ..results import EvalResult
from .common import (
    DATA_HELP,
    EXPR_HELP,
    ByteSize,
    at_option,
    data_options,
    digits_option,
    expr_argument,
    json_option,
    json_option_saying,
    load_data,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
    show,
)
from .predict import dask_options, predict_options, wants_partitions
from .report import eval_report, grad_report


def rows_options(f):
    """--data, -o, --max-data-size and the CSV options of eval and grad."""
    f = data_options(f)
    f = predict_options(f)
    f = click.option("--max-data-size", type=ByteSize(), default="256M", metavar="BYTES",
                     show_default="256M",
                     help="Refuse a --data file larger than this, or whose rows take more "
                          "memory once read (suffixes K, M, G; 0: no limit).")(f)
    f = click.option("-o", "--output", "output", metavar="FILE",
                     help="With --data: write the CSV (or --json) to FILE instead of "
                          "standard output.")(f)
    f = click.option("--data", "data_path", metavar="FILE.csv",
                     help="Evaluate at every row of a CSV file (columns bind the variables "
                          "named in its header, --at gives the others); writes the input "
                          "columns plus value as CSV.")(f)
    return f


def _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
               as_json, *, gradient: bool = False, wrt: str | None = None,
               expr: str = "") -> None:
    """``--data``: evaluate at every row and write CSV (or a JSON list)."""
    from ..io.atomic import atomic_output, check_outputs, input_file
    from ..io.rows import evaluate_rows, write_csv, write_json

    big = dask_options()
    if wants_partitions(data_path, big):  # a glob, directory or Parquet: -o DIR, per partition
        from .predict import predict_command

        predict_command(function, parse_point(at, function=function), data_path, output, sep,
                        renames, dropna, as_json, big, gradient=gradient,
                        wrt=parse_names(wrt, function=function), warn=_warn)
        return
    check_outputs([("-o", output)], [data_path, input_file(expr)])
    data = load_data(data_path, max_data_size or None, sep, renames, keep_lines=not as_json,
                     keep_text=as_json)
    result = evaluate_rows(function, data, parse_point(at, function=function),
                           gradient=gradient,
                           wrt=parse_names(wrt, function=function), dropna=dropna)
    for message in result.warnings:
        _warn(message)
    write = write_json if as_json else write_csv
    if output is None:
        write(sys.stdout, result)
        return
    with atomic_output(output) as out:  # the old file stays whole until this one is
        write(out, result)


def _no_data_options(output, sep, renames, dropna) -> None:
    used = [name for name, v in (("-o", output), ("--sep", sep), ("--column", renames),
                                 ("--dropna", dropna)) if v]
    if used:
        raise click.UsageError(f"{used[0]} needs --data FILE")


def _render():
    """The rich renderer, imported only when something is printed through it (start-up)."""
    from ..output import render

    return render


def _warn(message: str) -> None:
    """``Warning: ...`` on stderr: the plain text rich would write there, or rich itself (on a
    terminal, or for text only rich can render: see :mod:`adcli.output.plain`)."""
    from ..output import plain

    text = plain.warning_text(message) if plain.rich_would_be_plain(sys.stderr) else None
    if text is None:
        _render().warn(message)
    else:
        sys.stderr.write(text)


@click.command(epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@at_option
@rows_options
@click.option("--wrt", metavar="NAMES", help="Only these variables, e.g. w0,w1.")
@json_option
@digits_option
@click.option("--no-table", is_flag=True, help="Print only the value and the gradient.")
@click.option("--max-rows", type=click.IntRange(min=0), default=200, show_default=True,
              help="Rows of the node table to show, also the nodes listed by --json (0: all).")
@max_size_option
def grad(expr: str, at: tuple[str, ...], data_path: str | None, output: str | None,
         max_data_size: int, sep: str | None, renames: tuple[str, ...], dropna: bool,
         wrt: str | None, as_json: bool, no_table: bool, max_rows: int,
         max_size: int) -> None:
    """Value and gradient of EXPR at a point, by reverse mode.

    Shows every node of the tape in order, with its value and its gradient (adjoint):
    the reverse sweep starts at the last node with gradient 1 and runs upwards,
    so you can follow the chain rule.

    \b
    With --data FILE.csv, the value and the gradient at every row of the file instead,
    as CSV: the input columns, value, and one d/dNAME column per variable.

    \b
    Examples:
      adcli grad "(w0 + w1*x - y)^2" --at x=3,y=7,w0=-2,w1=2
      adcli grad "(w0 + w1*x - y)^2" --data samples/line.csv --at w0=2.58,w1=0.75
    """
    function = load_function(expr, max_size)
    if data_path is not None:
        _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
                   as_json, gradient=True, wrt=wrt, expr=expr)
        return
    _no_data_options(output, sep, renames, dropna)
    report = grad_report(function, parse_point(at, function=function),
                         parse_names(wrt, function=function),
                         nodes=as_json or not no_table,
                         max_nodes=None if max_rows == 0 else max_rows)
    for message in report.warnings:
        _warn(message)
    show(report, as_json, table=not no_table, max_rows=max_rows)


@click.command("eval", epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@at_option
@rows_options
@digits_option
@json_option_saying('Print one JSON object, {"value": ...} (with --data: a list of objects, '
                    'one per row).')
@max_size_option
def eval_(expr: str, at: tuple[str, ...], data_path: str | None, output: str | None,
          max_data_size: int, sep: str | None, renames: tuple[str, ...], dropna: bool,
          as_json: bool, max_size: int) -> None:
    """Value of EXPR at a point.

    With --data FILE.csv, the value at every row of the file instead, as CSV: the input
    columns plus value (--json: a list of objects, one per row).

    \b
    Examples:
      adcli eval "a = x^2; a + sin(a)" --at x=1.5
      adcli eval "w0 + w1*x" --data samples/line.csv --at w0=2.58,w1=0.75
    """
    function = load_function(expr, max_size)
    if data_path is not None:
        _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
                   as_json, expr=expr)
        return
    _no_data_options(output, sep, renames, dropna)
    value, warnings = eval_report(function, parse_point(at, function=function))
    for message in warnings:
        _warn(message)
    show(EvalResult(value, warnings), as_json)
