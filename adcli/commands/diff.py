"""``adcli diff``, ``adcli hessian`` and ``adcli graph``: the derivative as text, the exact
Hessian at a point, and the tape as a Graphviz picture."""

from __future__ import annotations

import click

from .. import render, sweeps
from ..errors import AdcliError, OutputError
from ..function import select_wrt
from ..hessian import eigenvalues
from ..hessian import hessian as hessian_at
from .common import (
    EXPR_HELP,
    at_option,
    digits_option,
    emit_json,
    expr_argument,
    json_option,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
)
from .report import nonfinite_warnings, unused_warnings


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--wrt", metavar="NAMES", help="Only these variables, in this order, e.g. x,y.")
@digits_option
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
    for message in unused_warnings(tape, point):
        render.warn(message)
    matrix = hessian_at(tape, point, names)
    ev = eigenvalues(matrix)
    if as_json:
        emit_json({"variables": names, "hessian": matrix.tolist(), "eigenvalues": ev.tolist()})
    else:
        render.hessian(names, matrix, ev)


@click.command(epilog=EXPR_HELP)
@expr_argument
@click.option("--wrt", metavar="NAMES",
              help="Differentiate with respect to these variables, e.g. x or w0,w1 "
                   "(default: every variable).")
@json_option
@max_size_option
def diff(expr: str, wrt: str | None, as_json: bool, max_size: int) -> None:
    """The derivative of EXPR as an expression you can read, evaluate or differentiate again.

    Built from the same derivative rules as reverse mode, then simplified. Parts of the
    result used more than once are printed as let-bindings (keeping your own let names),
    so the output stays proportional to the input instead of swelling.

    \b
    Examples:
      adcli diff "sin(x^2)" --wrt x
      adcli diff "(w0 + w1*x - y)^2" --wrt w0,w1 --json
      adcli eval "$(adcli diff 'x^3' --wrt x)" --at x=2
    """
    function = load_function(expr, max_size)
    tape = function.tape()
    names = select_wrt(tape, parse_names(wrt)) if wrt is not None else list(tape.inputs)
    texts = derivative_texts(tape, names, sep="; " if as_json else "\n")
    if as_json:
        if len(names) == 1:
            emit_json({"wrt": names[0], "derivative": texts[0]})
        else:
            emit_json({"wrt": names, "derivative": texts})
    else:
        render.derivatives(names, texts)


def derivative_texts(tape, names: list[str], sep: str = "; ") -> list[str]:
    """Printed derivative of the tape's output for each name (each a complete program)."""
    from ..symbolic import derivative
    from ..unparse import to_source

    d = derivative(tape, names)
    reserved = set(tape.inputs) | set(tape.labels.values())
    return [to_source(d.exprs[n], d.names, reserved, sep=sep) for n in names]


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--format", "fmt", type=click.Choice(["dot", "svg", "png"]), default=None,
              help="Output format (default: from the -o file's extension, else dot). "
                   "svg and png need Graphviz's dot program (apt-get install graphviz).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@click.option("--max-nodes", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Refuse tapes with more nodes than this (0: no limit).")
@max_size_option
def graph(expr: str, at: tuple[str, ...], fmt: str | None, output: str | None,
          max_nodes: int, max_size: int) -> None:
    """The tape of EXPR as a Graphviz graph, with values and gradients at a point.

    One node per tape entry, edges from each input to its consumers (a node used twice has
    two edges). With --at, every node also shows its value and gradient.

    \b
    Examples:
      adcli graph "(w0 + w1*x - y)^2" --at x=3,y=7,w0=-2,w1=2 -o g.dot
      adcli graph "a = x^2; a + sin(a)" --at x=1 -o g.svg
    """
    import os
    import sys

    from ..graph import check_size, to_dot
    from ..graph import render as draw

    if fmt is None:
        ext = os.path.splitext(output or "")[1].lower().lstrip(".")
        fmt = ext if ext in ("svg", "png") else "dot"
    function = load_function(expr, max_size)
    point = parse_point(at)
    tape = function.tape(point)
    check_size(tape, max_nodes)
    if point:
        values = sweeps.evaluate(tape, point)
        for message in nonfinite_warnings(tape, values):
            render.warn(message)
        for message in unused_warnings(tape, point):
            render.warn(message)
    data = draw(to_dot(tape, point or None, title=function.source if len(function.source) < 80
                       else ""), fmt)
    if output is None:
        if fmt == "png" and sys.stdout.isatty():
            raise AdcliError("PNG is binary: write it to a file with -o FILE.png")
        if fmt == "dot":
            click.echo(data.decode(), nl=False)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return
    try:
        with open(output, "wb") as fh:
            fh.write(data)
    except OSError as err:
        raise OutputError(output, err) from None
