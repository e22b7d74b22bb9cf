"""``adcli explain``: a transcript of both sweeps (see :mod:`adcli.core.explain`)."""

from __future__ import annotations

import click

from ..core.diagnose import derivative_warnings
from ..errors import AdcliError
from .common import (
    EXPR_HELP,
    at_option,
    digits_option,
    expr_argument,
    json_option,
    load_function,
    max_size_option,
    parse_point,
    show,
)
from .grad import _warn
from .report import unused_warnings


@click.command(epilog=EXPR_HELP)
@expr_argument
@at_option
@click.option("--mode", type=click.Choice(["reverse", "forward"]), default="reverse",
              show_default=True,
              help="reverse: the reverse sweep, edge by edge; forward: dual numbers (value, "
                   "tangent) along --direction.")
@click.option("--direction", multiple=True, metavar="NAME=VALUE,...",
              help="With --mode forward: the tangent of each input, e.g. x1=1 (others 0).")
@click.option("--paths", "paths", metavar="NAME",
              help="Also d output / d NAME as the sum over every path from the output to NAME "
                   "of the product of the local partials (small graphs).")
@click.option("--check", "answers", multiple=True, metavar="ANSWER",
              help="Check a derivative worked out by hand: d EXPR / d NAME of the --wrt name "
                   "(repeat --check once per --wrt name, in that order), at 20 random points "
                   "in the domain and symbolically. Exit status 0 when it agrees with adcli's, "
                   "1 when it differs. --at fixes variables at its values.")
@click.option("--wrt", metavar="NAMES",
              help="With --check: the variables the answers differentiate by (default: the "
                   "one variable of EXPR).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --check: the seed of the random points.")
@click.option("--html", "html_file", metavar="FILE",
              help="Write the transcript as FILE instead: one self-contained web page that steps "
                   "through both sweeps on the graph (Step, Back, a slider), with the numbers "
                   "the text shows (--json still prints).")
@click.option("--max-nodes", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="With --html: refuse tapes with more nodes than this (0: no limit).")
@json_option
@digits_option
@max_size_option
def explain(expr: str, at: tuple[str, ...], mode: str, direction: tuple[str, ...],
            paths: str | None, answers: tuple[str, ...], wrt: str | None, seed: int,
            html_file: str | None, max_nodes: int, as_json: bool, max_size: int) -> None:
    """Both sweeps of EXPR at a point, step by step: the chain rule at work.

    Forward: each node's value from its op and inputs. Reverse, node by node from the
    output: the rule applied (sum, product, chain rule through tanh, ...), each local
    partial as the op's own formula with the numbers put in, and each edge's
    contribution to its input's adjoint. These are the very numbers adcli grad computes.

    \b
    Examples:
      adcli explain @samples/neuron.adc --at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432
      adcli explain "log(x1) + x1*x2 - sin(x2)" --at x1=2,x2=5 --mode forward --direction x1=1
      adcli explain "x*y + x" --at x=2,y=3 --paths x
      adcli explain "x^2*sin(x)" --wrt x --check "2*x*sin(x) + x^2*cos(x)"
      adcli explain @samples/neuron.adc --at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432 --html n.html
    """
    from ..core.explain import explain as build
    from ..core.unparse import describe

    source = click.get_current_context().get_parameter_source
    if not answers and source("seed") is not click.core.ParameterSource.DEFAULT:
        raise AdcliError("--seed is for --check (it seeds the random points of the check)")
    if html_file is None and source("max_nodes") is not click.core.ParameterSource.DEFAULT:
        raise AdcliError("--max-nodes is for --html (it bounds the page's graph)")
    if html_file is not None:
        from ..io.atomic import check_outputs, input_file

        if mode == "forward":
            raise AdcliError("--html steps through the reverse sweep: drop --mode forward")
        if paths is not None and not as_json:
            raise AdcliError("--html does not show --paths: drop one, or add --json to get "
                             "the paths as data")
        check_outputs([("--html", html_file)], [input_file(expr)])
    function = load_function(expr, max_size)
    point = parse_point(at, function=function)
    if answers or wrt is not None:
        from .check import run_check

        if html_file is not None:
            raise AdcliError("--html shows the sweeps, not a --check: drop one of them")

        run_check(function, point, answers, wrt, seed, as_json, max_size,
                  other=mode != "reverse" or bool(direction) or paths is not None)
        return
    vector = parse_point(direction, "--direction", function=function) if direction else None
    if mode == "forward" and vector is None:
        raise AdcliError("--mode forward needs --direction NAME=VALUE,... (the tangent of "
                         "each input, e.g. --direction x=1)")
    if mode == "reverse" and vector is not None:
        raise AdcliError("--direction is for --mode forward (add --mode forward)")
    tape = function.tape(point)
    if vector is not None:
        unknown = [n for n in vector if n not in tape.inputs]
        if unknown:
            raise AdcliError(f"--direction: '{unknown[0]}' is not a variable of the expression "
                             f"(its variables: {', '.join(tape.inputs) or 'none'})")
    if html_file is not None:
        from ..output.graph import check_size

        check_size(tape, max_nodes)
    result = build(tape, point, describe(tape), direction=vector, paths=paths)
    for message in derivative_warnings(tape, result.values, result.adjoint, result.gradient) \
            + unused_warnings(tape, point):
        _warn(message)
    if html_file is not None:
        from ..io.atomic import atomic_output
        from ..output.html import page

        with atomic_output(html_file) as out_file:
            out_file.write(page(result, function.source))
        if not as_json:  # the page is the transcript asked for (as graph -o writes no text)
            return
    result.mode = mode
    show(result, as_json)
