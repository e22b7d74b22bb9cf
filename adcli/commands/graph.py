"""``adcli graph``: the tape as a Graphviz picture, with values and gradients at a point."""

from __future__ import annotations

import click

from .. import render, sweeps
from ..errors import AdcliError, OutputError
from ..report import nonfinite_warnings, unused_names
from .common import (
    EXPR_HELP,
    at_option,
    expr_argument,
    load_function,
    max_size_option,
    parse_point,
)


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
        for name in unused_names(tape, point):
            render.warn(f"'{name}' is given a value but the expression does not use it")
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
