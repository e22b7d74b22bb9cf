"""``adcli graph``: the tape as a Graphviz picture, with values and gradients at a point."""

from __future__ import annotations

import click

from ..core import sweeps
from ..errors import AdcliError
from ..output import render
from ..output.graph import ENGINES, FORMATS
from .common import (
    EXPR_HELP,
    at_option,
    expr_argument,
    load_function,
    max_size_option,
    parse_point,
)
from .report import nonfinite_warnings, unused_warnings


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--format", "fmt", type=click.Choice((*FORMATS, "html")), default=None,
              metavar="FORMAT",
              help="Output format: any of Graphviz's (dot, svg, png, pdf, jpg, …; default: "
                   "from the -o file's extension, else dot). All but dot and svg need "
                   "Graphviz's dot program (apt-get install graphviz). html: a page that "
                   "steps through the sweeps at --at (as explain --html).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Who draws: Graphviz's dot when it is installed, else (svg only) adcli's "
                   "own layout; dot or builtin forces one.")
@click.option("-o", "--output", metavar="FILE", default=None,
              help="Write to this file instead of standard output (replaced whole, only when "
                   "complete).")
@click.option("--max-nodes", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Refuse tapes with more nodes than this (0: no limit).")
@max_size_option
def graph(expr: str, at: tuple[str, ...], fmt: str | None, engine: str, output: str | None,
          max_nodes: int, max_size: int) -> None:
    """The tape of EXPR as a graph (DOT or SVG), with values and gradients at a point.

    One node per tape entry, edges from each input to its consumers (a node used twice has
    two edges). With --at, every node also shows its value and gradient.

    \b
    Examples:
      adcli graph "(w0 + w1*x - y)^2" --at x=3,y=7,w0=-2,w1=2 -o g.dot
      adcli graph "a = x^2; a + sin(a)" --at x=1 -o g.svg
    """
    import sys

    from ..io.atomic import atomic_output, check_outputs, input_file
    from ..output.graph import TEXT_FORMATS, check_size, engine_for, format_for, to_dot, to_svg
    from ..output.graph import render as draw

    if fmt is None and output and output.lower().endswith((".html", ".htm")):
        fmt = "html"
    if fmt == "html" and engine == "dot":
        raise AdcliError("--engine dot cannot draw html: the stepper uses adcli's own layout",
                         hint="drop --engine dot")
    fmt = format_for(output, fmt)
    drawer = "html" if fmt == "html" else engine_for(fmt, engine)
    check_outputs([("-o", output)], [input_file(expr)])
    function = load_function(expr, max_size)
    point = parse_point(at, function=function)
    tape = function.tape(point)
    check_size(tape, max_nodes)
    if drawer == "html" and tape.inputs and not point:
        raise AdcliError("--format html steps through the sweeps at a point: give "
                         "--at NAME=VALUE,...")
    if point:
        values = sweeps.evaluate(tape, point)
        for message in nonfinite_warnings(tape, values):
            render.warn(message)
        for message in unused_warnings(tape, point):
            render.warn(message)
    title = function.source if len(function.source) < 80 else ""
    if drawer == "html":
        from ..core.explain import explain
        from ..core.unparse import describe
        from ..output.html import page

        data = page(explain(tape, point, describe(tape)), function.source).encode()
    elif drawer == "builtin":
        data = to_svg(tape, point or None, title=title).encode()
    else:
        data = draw(to_dot(tape, point or None, title=title), fmt)
    if output is None:
        if fmt not in TEXT_FORMATS and fmt != "html" and sys.stdout.isatty():
            raise AdcliError(f"{fmt} is binary: write it to a file with -o FILE.{fmt}")
        if fmt in ("dot", "gv", "html"):
            click.echo(data.decode(), nl=False)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return
    with atomic_output(output, "wb") as out:
        out.write(data)
