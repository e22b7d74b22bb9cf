"""``adcli compare-modes``: forward mode, reverse mode and finite differences side by side."""

from __future__ import annotations

import click

from ..errors import AdcliError
from ..modes.compare import DEFAULT_SIZES, FAMILIES, compare_modes, scaling
from ..output import render
from ..results import ScalingReport
from .common import (
    EXPR_HELP,
    FiniteFloat,
    at_option,
    digits_option,
    json_option,
    load_function,
    max_size_option,
    parse_point,
    show,
)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise AdcliError(f"--sizes '{text}' must be whole numbers separated by commas, "
                         "e.g. 1,10,100") from None
    if not sizes or any(n < 1 or n > 100_000 for n in sizes):
        raise AdcliError(f"--sizes '{text}': each size must be between 1 and 100000")
    return sizes


@click.command("compare-modes", epilog=EXPR_HELP)
@click.argument("expr", metavar="EXPR", required=False)
@at_option
@click.option("--direction", multiple=True, metavar="NAME=VALUE,...",
              help="Also a directional derivative along this vector, e.g. x=1,y=-1 "
                   "(one forward-mode pass).")
@click.option("--repeat", type=click.IntRange(min=1), default=5, show_default=True,
              help="Time each mode this many times and keep the best (a mode stops repeating "
                   "once it has used --budget seconds).")
@click.option("--budget", type=FiniteFloat(min=0), default=1.0, show_default=True,
              metavar="SECONDS",
              help="Time budget per mode and size. With --scaling, forward passes beyond it "
                   "are extrapolated (marked ~); 0 means no limit.")
@click.option("--scaling", "scaling_", is_flag=True,
              help="Instead of EXPR, time a family of expressions with 1, 10, 100, 1000 "
                   f"inputs; EXPR then names the family ({', '.join(FAMILIES)}).")
@click.option("--sizes", metavar="N,N,...", help="With --scaling: the numbers of inputs "
              f"(default {','.join(map(str, DEFAULT_SIZES))}; 10000 works but takes longer).")
@click.option("--chart/--no-chart", default=None,
              help="With --scaling: draw the text chart (default: only on a terminal).")
@click.option("--max-rows", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rows of the gradient table to show (0: all).")
@digits_option
@json_option
@max_size_option
def compare_modes_cmd(expr: str | None, at: tuple[str, ...], direction: tuple[str, ...],
                      repeat: int, budget: float, scaling_: bool, sizes: str | None,
                      chart: bool | None, max_rows: int, as_json: bool, max_size: int) -> None:
    """Gradient of EXPR by forward mode, reverse mode and finite differences.

    Shows the three gradients and their largest differences, then the cost of each:
    passes over the tape (forward mode one per input, reverse mode one forward and
    one backward), elementary operations counted by the sweeps, and the best time per
    full gradient. Non-finite values and points on a kink (abs, relu, max/min ties)
    are explained on stderr.

    \b
    Examples:
      adcli compare-modes "3*x^2 + x*y + 5*y^2" --at x=2,y=3
      adcli compare-modes "sin(x)*y" --at x=1,y=2 --direction x=1,y=-1 --json
      adcli compare-modes --scaling rosenbrock
    """
    if scaling_:
        family = expr or "rosenbrock"
        if family not in FAMILIES:
            raise AdcliError(f"unknown expression family '{family}' "
                             f"(known: {', '.join(FAMILIES)})")
        rows = scaling(family, _sizes(sizes) if sizes else DEFAULT_SIZES, repeat=repeat,
                       budget=budget)
        show(ScalingReport(family, FAMILIES[family][0], rows, chart), as_json)
        return
    if expr is None:
        raise AdcliError("EXPR is missing: give an expression and --at, or use --scaling",
                         hint='adcli compare-modes "x*y + sin(x)" --at x=1,y=2')
    if sizes is not None:
        raise AdcliError("--sizes only applies with --scaling")
    function = load_function(expr, max_size)
    point = parse_point(at, function=function)
    vector = parse_point(direction, "--direction", function=function) if direction else None
    result = compare_modes(function, point, repeat=repeat, budget=budget, direction=vector)
    for message in result.warnings:
        render.warn(message)
    show(result, as_json, max_rows=max_rows)

