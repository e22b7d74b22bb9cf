"""``adcli grad`` and ``adcli eval``."""

from __future__ import annotations

import click

from ..report import eval_report, grad_report
from .common import (
    EXPR_HELP,
    at_option,
    emit_json,
    expr_argument,
    json_option,
    json_option_saying,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
)


def _render():
    """The rich renderer, imported only when something is printed through it (start-up)."""
    from .. import render

    return render


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--wrt", metavar="NAMES", help="Only these variables, e.g. w0,w1.")
@json_option
@click.option("--no-table", is_flag=True, help="Print only the value and the gradient.")
@click.option("--max-rows", type=click.IntRange(min=0), default=200, show_default=True,
              help="Rows of the node table to show, also the nodes listed by --json (0: all).")
@max_size_option
def grad(expr: str, at: tuple[str, ...], wrt: str | None, as_json: bool, no_table: bool,
         max_rows: int, max_size: int) -> None:
    """Value and gradient of EXPR at a point, by reverse mode.

    Shows every node of the tape in order, with its value and its gradient (adjoint):
    the reverse sweep starts at the last node with gradient 1 and runs upwards,
    so you can follow the chain rule.

    \b
    Example:
      adcli grad "(w0 + w1*x - y)^2" --at x=3,y=7,w0=-2,w1=2
    """
    function = load_function(expr, max_size)
    report = grad_report(function, parse_point(at), parse_names(wrt),
                         nodes=as_json or not no_table,
                         max_nodes=None if max_rows == 0 else max_rows)
    for message in report.warnings:
        _render().warn(message)
    if as_json:
        emit_json(report.to_json())
    else:
        _render().grad(report, table=not no_table, max_rows=max_rows)


@click.command("eval", epilog=EXPR_HELP)
@expr_argument
@at_option
@json_option_saying('Print one JSON object, {"value": ...}.')
@max_size_option
def eval_(expr: str, at: tuple[str, ...], as_json: bool, max_size: int) -> None:
    """Value of EXPR at a point.

    \b
    Example:
      adcli eval "a = x^2; a + sin(a)" --at x=1.5
    """
    function = load_function(expr, max_size)
    value, warnings = eval_report(function, parse_point(at))
    for message in warnings:
        _render().warn(message)
    if as_json:
        emit_json({"value": value})
    else:
        click.echo(_render().num(value))
