"""``adcli hessian``: the exact Hessian at a point, with its eigenvalues."""

from __future__ import annotations

import click

from .. import render, sweeps
from ..function import select_wrt
from ..hessian import eigenvalues
from ..hessian import hessian as hessian_at
from ..report import nonfinite_warnings, unused_names
from .common import (
    EXPR_HELP,
    at_option,
    emit_json,
    expr_argument,
    json_option,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
)


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--wrt", metavar="NAMES", help="Only these variables, in this order, e.g. x,y.")
@json_option
@max_size_option
def hessian(expr: str, at: tuple[str, ...], wrt: str | None, as_json: bool,
            max_size: int) -> None:
    """The exact Hessian matrix of EXPR at a point, with its eigenvalues.

    Computed by reverse mode over the symbolic gradient (no finite differences).
    All eigenvalues > 0: a local minimum; all < 0: a maximum; mixed signs: a saddle.

    \b
    Example:
      adcli hessian "(1-x)^2 + 100*(y-x^2)^2" --at x=1,y=1
    """
    function = load_function(expr, max_size)
    point = parse_point(at)
    tape = function.tape(point)
    names = select_wrt(tape, parse_names(wrt)) if wrt is not None else list(tape.inputs)
    values = sweeps.evaluate(tape, point)  # checks the point; reports non-finite values
    for message in nonfinite_warnings(tape, values):
        render.warn(message)
    for name in unused_names(tape, point):
        render.warn(f"'{name}' is given a value but the expression does not use it")
    matrix = hessian_at(tape, point, names)
    ev = eigenvalues(matrix)
    if as_json:
        emit_json({"variables": names, "hessian": matrix.tolist(), "eigenvalues": ev.tolist()})
    else:
        render.hessian(names, matrix, ev)


