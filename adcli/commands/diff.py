"""``adcli diff``: the derivative as an expression you can read, evaluate or differentiate
again."""

from __future__ import annotations

import click

from ..function import select_wrt
from ..results import Derivatives
from .common import (
    EXPR_HELP,
    expr_argument,
    json_option_saying,
    load_function,
    max_size_option,
    parse_names,
    show,
)


@click.command(epilog=EXPR_HELP)
@expr_argument
@click.option("--wrt", metavar="NAMES",
              help="Differentiate with respect to these variables, e.g. x or w0,w1 "
                   "(default: every variable).")
@json_option_saying('Print one JSON object: "wrt" and "derivative" (lists, or strings for '
                    'one --wrt name).')
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
    asked = parse_names(wrt, function=function) if wrt is not None else None
    names = select_wrt(tape, asked) if asked is not None else list(tape.inputs)
    texts = derivative_texts(tape, names, sep="; " if as_json else "\n")
    # One JSON shape: lists, unless the user asked for exactly one name.
    show(Derivatives(names, texts, single=asked is not None and len(names) == 1), as_json)


def derivative_texts(tape, names: list[str], sep: str = "; ") -> list[str]:
    """Printed derivative of the tape's output for each name (each a complete program)."""
    from ..core.unparse import to_source
    from ..derive.symbolic import derivative

    d = derivative(tape, names)
    reserved = set(tape.inputs) | set(tape.labels.values())
    return [to_source(d.exprs[n], d.names, reserved, sep=sep) for n in names]


