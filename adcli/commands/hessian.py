"""``adcli hessian``: the exact Hessian at a point, with its eigenvalues."""

from __future__ import annotations

import click
import numpy as np

from ..core import sweeps
from ..core.diagnose import derivative_warnings
from ..derive.curvature import check_size, eigenvalues
from ..derive.curvature import hessian as hessian_at
from ..errors import AdcliError
from ..function import select_wrt
from ..output import render
from ..results import HessianReport
from .common import (
    EXPR_HELP,
    at_option,
    digits_option,
    expr_argument,
    json_option,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
    show,
)
from .report import unused_warnings

#: The most variables printed as a table: rich lays out every cell, so 200 variables took 15 s
#: and 999 did not finish in a minute; --json writes any size the Hessian limits allow.
TABLE_MAX_VARIABLES = 100


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
    point = parse_point(at, function=function)
    tape = function.tape(point)
    names = (select_wrt(tape, parse_names(wrt, function=function)) if wrt is not None
             else list(tape.inputs))
    if not as_json and len(names) > TABLE_MAX_VARIABLES:
        check_size(len(tape), len(names))  # a Hessian too big to compute says so first
        raise AdcliError(f"a Hessian of {len(names):,} variables is too big to print as a table "
                         f"(at most {TABLE_MAX_VARIABLES} variables)",
                         hint="use --json for the whole matrix, or --wrt to choose fewer "
                              "variables")
    # The same sweeps and warnings as grad: a Hessian at a point where the value is nan or that
    # sits on a kink is a formula's second derivatives, not the function's curvature.
    _, gradient, values, adjoint = sweeps.value_and_grad(tape, point)
    warnings = derivative_warnings(tape, values, adjoint, gradient)
    warnings += unused_warnings(tape, point)
    matrix = hessian_at(tape, point, names)
    ev = eigenvalues(matrix)
    if not np.all(np.isfinite(matrix)):
        pairs = sorted({(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(~np.isfinite(matrix)))})
        bad = [f"d2/d{names[i]}d{names[j]}" for i, j in pairs]
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.append(f"the Hessian is not finite: {shown}")
    for message in warnings:
        render.warn(message)
    verdict = None
    if not names:
        verdict = "no variables: the Hessian of a constant is empty (0 x 0)"
    elif warnings and not all(w.startswith("'") for w in warnings):
        verdict = ("not classified: the second-order test needs a finite value and gradient "
                   "at a smooth point (see the warnings)")
    show(HessianReport(names, matrix, ev, verdict, warnings), as_json)
