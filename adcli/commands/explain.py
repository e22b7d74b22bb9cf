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
@json_option
@digits_option
@max_size_option
def explain(expr: str, at: tuple[str, ...], mode: str, direction: tuple[str, ...],
            paths: str | None, as_json: bool, max_size: int) -> None:
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
    """
    from ..core.explain import explain as build
    from ..core.unparse import describe

    function = load_function(expr, max_size)
    point = parse_point(at, function=function)
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
    result = build(tape, point, describe(tape), direction=vector, paths=paths)
    for message in derivative_warnings(tape, result.values, result.adjoint, result.gradient) \
            + unused_warnings(tape, point):
        _warn(message)
    result.mode = mode
    show(result, as_json)
