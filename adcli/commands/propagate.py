"""``adcli propagate``."""

from __future__ import annotations

import click

from .common import (
    EXPR_HELP,
    ByteSize,
    data_options,
    digits_option,
    expr_argument,
    json_option,
    load_data,
    load_function,
    max_size_option,
    show,
)


@click.command(epilog=EXPR_HELP)
@expr_argument
@click.option("--at", "at", multiple=True, metavar="NAME=VALUE±U,...",
              help="Values and standard uncertainties, e.g. L=1.000±0.002,T=2.007+-0.005 "
                   "(a value without ± is exact), or @FIT.json: a fit's parameters with their "
                   "covariance (adcli fit --json). May be repeated.")
@click.option("--corr", multiple=True, metavar="X,Y=R",
              help="The correlation coefficient of two inputs, in [-1, 1] (repeatable).")
@click.option("--cov", "cov_path", metavar="FILE.json",
              help='The covariance matrix of some inputs: {"names": [...], "matrix": [[...]]} '
                   "(or a fit's JSON); --at gives their values without ±.")
@click.option("--mc", type=click.IntRange(min=0), default=0, metavar="N",
              help="Also N Monte Carlo draws from the normal distribution of the inputs "
                   "(GUM Supplement 1).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0,
              show_default=True, metavar="S", help="Seed of the Monte Carlo draws.")
@click.option("--data", "data_path", metavar="FILE.csv",
              help="Propagate at every row: columns bind the variables of their names, a "
                   "column u_NAME gives NAME's standard uncertainty; writes the input columns "
                   "plus value and u (first order) as CSV.")
@click.option("-o", "--output", "output", metavar="FILE",
              help="With --data: write the CSV (or --json) to FILE instead of standard output.")
@click.option("--max-data-size", type=ByteSize(), default="256M", metavar="BYTES",
              show_default="256M", help="Refuse a --data file larger than this.")
@data_options
@json_option
@digits_option
@max_size_option
def propagate(expr: str, at: tuple[str, ...], corr: tuple[str, ...], cov_path: str | None,
              mc: int, seed: int, data_path: str | None, output: str | None,
              max_data_size: int, sep: str | None, renames: tuple[str, ...], dropna: bool,
              as_json: bool, max_size: int) -> None:
    """Propagate the uncertainty of the inputs of EXPR into its value (GUM).

    First order with exact sensitivities (u = sqrt(c^T Σ c)) and the uncertainty budget, the
    second order from the exact Hessian (normal inputs), and with --mc N a Monte Carlo check
    with a warning when it and the first order differ by more than 5%.

    \b
    Examples:
      adcli propagate "4*pi^2*L/T^2" --at "L=1.000±0.002,T=2.007±0.005"
      adcli propagate "log(2)/b" --at @fit.json --mc 100000
    """
    from ..propagation.gum import propagate as run
    from ..propagation.inputs import parse_correlations, parse_inputs, read_covariance

    seed_source = click.get_current_context().get_parameter_source("seed")
    if not mc and seed_source is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--seed needs --mc N (it seeds the Monte Carlo draws)")
    function = load_function(expr, max_size)
    inputs = parse_inputs(at)
    if cov_path is not None:
        read_covariance(cov_path, inputs)
    parse_correlations(corr, inputs)
    if data_path is not None:
        if mc:
            raise click.UsageError("--mc works at one point, not with --data (which gives the "
                                   "first order at every row)")
        _over_rows(function, inputs, expr, data_path, output, max_data_size, sep, renames,
                   dropna, as_json)
        return
    from .grad import _no_data_options, _warn

    _no_data_options(output, sep, renames, dropna)
    result = run(function, inputs, mc=mc, seed=seed)
    for message in result.warnings:
        _warn(message)
    show(result, as_json)


def _over_rows(function, inputs, expr, data_path, output, max_data_size, sep, renames,
               dropna, as_json) -> None:
    """``--data``: value and first-order u at every row."""
    from ..io.atomic import check_outputs, input_file
    from ..io.rows import evaluate_rows, write_rows
    from ..propagation.gum import propagate_rows
    from .grad import _warn

    check_outputs([("-o", output)], [data_path, input_file(expr)])
    data = load_data(data_path, max_data_size or None, sep, renames, keep_lines=not as_json,
                     keep_text=as_json)
    result = evaluate_rows(function, data, inputs.values, dropna=dropna)
    tape_inputs = set(function.tape(set(inputs.values) | set(data.names)).inputs)
    columns = {n: c for n, c in result.data.columns.items() if n in tape_inputs}
    uncertainties = {n[2:]: c for n, c in result.data.columns.items()
                     if n.startswith("u_") and n[2:] in columns}
    _, u = propagate_rows(function, inputs, columns, uncertainties, result.data.rows)
    result.add_columns({"u": u})
    for message in result.warnings:
        _warn(message)
    write_rows(result, as_json, output)
