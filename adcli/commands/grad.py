"""``adcli grad`` and ``adcli eval``."""

from __future__ import annotations

import sys

import click

from ..results import EvalResult
from .common import (
    DATA_HELP,
    EXPR_HELP,
    ByteSize,
    at_option,
    data_options,
    digits_option,
    expr_argument,
    json_option,
    json_option_saying,
    load_data,
    load_function,
    max_size_option,
    parse_names,
    parse_point,
    show,
)
from .predict import dask_options, predict_options, wants_partitions
from .report import eval_report, grad_report


def _load_model(expr: str, max_size: int):
    """EXPR, or the model side of a fit's formula ``LHS ~ MODEL``."""
    from ..function import parse
    from .common import read_source

    text = read_source(expr, max_size)
    if "~" in text:  # numpy and the fit's modules only for a formula (start-up time)
        from ..regression.bands import model_function

        model = model_function(text, max_bytes=max_size or None)
        if model is not None:
            return model
    return parse(text, max_bytes=max_size or None)


def rows_options(f):
    """--data, -o, --max-data-size and the CSV options of eval and grad."""
    f = data_options(f)
    f = predict_options(f)
    f = click.option("--max-data-size", type=ByteSize(), default="256M", metavar="BYTES",
                     show_default="256M",
                     help="Refuse a --data file larger than this, or whose rows take more "
                          "memory once read (suffixes K, M, G; 0: no limit).")(f)
    f = click.option("-o", "--output", "output", metavar="FILE",
                     help="With --data: write the CSV (or --json) to FILE instead of "
                          "standard output.")(f)
    f = click.option("--data", "data_path", metavar="FILE.csv",
                     help="Evaluate at every row of a CSV file (columns bind the variables "
                          "named in its header, --at gives the others); writes the input "
                          "columns plus value as CSV.")(f)
    return f


def _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
               as_json, *, gradient: bool = False, wrt: str | None = None,
               expr: str = "", band: dict | None = None) -> None:
    """``--data``: evaluate at every row and write CSV (or a JSON list); with ``band``
    (eval --band), the se_fit, lower and upper columns too."""
    from ..io.atomic import check_outputs, input_file
    from ..io.rows import evaluate_rows, write_rows

    big = dask_options()
    if wants_partitions(data_path, big):  # a glob, directory or Parquet: -o DIR, per partition
        from ..errors import AdcliError
        from ..regression.formula import _tilde_positions
        from .predict import predict_command

        # the partitions' writer knows neither: without these errors --band was ignored
        if band is not None:
            raise AdcliError("--band is not available with a Dask --data source (the band "
                             "columns are not written per partition); use a CSV file")
        if "~" in function.source and _tilde_positions(function.source):
            raise AdcliError("with a Dask --data source EXPR must be the model itself, not "
                             "the fit's formula 'LHS ~ MODEL'")
        predict_command(function, parse_point(at, function=function), data_path, output, sep,
                        renames, dropna, as_json, big, gradient=gradient,
                        wrt=parse_names(wrt, function=function), warn=_warn)
        return
    check_outputs([("-o", output)], [data_path, input_file(expr)])
    fit = _find_fit(at) if band is not None else None
    data = load_data(data_path, max_data_size or None, sep, renames, keep_lines=not as_json,
                     keep_text=as_json)
    result = evaluate_rows(function, data, parse_point(at, function=function),
                           gradient=gradient,
                           wrt=parse_names(wrt, function=function), dropna=dropna)
    if band is not None:
        _add_band(result, function, at, fit, band)
    for message in result.warnings:
        _warn(message)
    write_rows(result, as_json, output)


def _find_fit(at: tuple[str, ...]):
    """``eval --band``: the fit is the ``--at @FILE`` that has a covariance."""
    from ..errors import AdcliError
    from ..regression.bands import read_fit_file

    fits = [f for f in (read_fit_file(a[1:]) for a in at if a.startswith("@") and a[1:]) if f]
    if not fits:
        raise AdcliError("--band needs the fit: --at @FIT.json, the output of adcli fit "
                         "--json (it has the covariance)")
    if len(fits) > 1:
        raise AdcliError("--band: more than one --at @FILE holds a fit; give one")
    return fits[0]


def _add_band(result, function, at: tuple[str, ...], fit, spec: dict) -> None:
    """``eval --band``: the se_fit, lower and upper columns of ``fit``'s band."""
    import numpy as np

    from ..errors import AdcliError
    from ..io.point import parse_value
    from ..regression.bands import band

    sigma = spec["sigma"]
    if sigma is not None:
        data = result.data
        if sigma in data.columns:
            sigma = data.columns[sigma]
        elif sigma in data.order:
            raise AdcliError(f"--sigma column '{sigma}' has cells that are missing or not "
                             "numbers")
        else:
            try:
                sigma = parse_value(sigma)
            except AdcliError:
                raise AdcliError(f"--sigma '{sigma}' is neither a column of the data nor a "
                                 "number") from None
        if not (np.all(np.isfinite(sigma)) and np.all(np.asarray(sigma) > 0)):
            raise AdcliError("--sigma must be positive and finite in every row")
    point = parse_point(at, function=function)
    _, columns = band(function, result.data.columns, point, fit, spec["kind"],
                      spec["level"], spec["absolute_sigma"], sigma, rows=result.data.rows)
    bad = [n for n, v in zip(fit.names, np.diag(fit.covariance)) if not np.isfinite(v)]
    if bad and not np.all(np.isfinite(columns["se_fit"])):  # else nan bands pass unsaid
        result.warnings.append(f"the fit's covariance is not finite for {', '.join(bad)} (not "
                               "identifiable from its data): the band is nan where the model "
                               "depends on them")
    result.add_columns(columns)


def _band_spec(band, level, absolute_sigma, sigma, data_path) -> dict | None:
    """The --band options, checked before anything is read."""
    if band is None:
        used = [n for n, v in (("--level", level), ("--absolute-sigma", absolute_sigma),
                               ("--sigma", sigma)) if v]
        if used:
            raise click.UsageError(f"{used[0]} needs --band confidence|prediction")
        return None
    if data_path is None:
        raise click.UsageError("--band needs --data FILE (the rows to predict at)")
    from ..regression.uncertainty import parse_levels  # numpy: only for a band

    levels = parse_levels(level)
    if len(levels) != 1:
        raise click.UsageError("--band takes one --level")
    return {"kind": band, "level": levels[0], "absolute_sigma": absolute_sigma,
            "sigma": sigma}


def _no_data_options(output, sep, renames, dropna) -> None:
    used = [name for name, v in (("-o", output), ("--sep", sep), ("--column", renames),
                                 ("--dropna", dropna)) if v]
    if used:
        raise click.UsageError(f"{used[0]} needs --data FILE")


def _render():
    """The rich renderer, imported only when something is printed through it (start-up)."""
    from ..output import render

    return render


def _warn(message: str) -> None:
    """``Warning: ...`` on stderr: the plain text rich would write there, or rich itself (on a
    terminal, or for text only rich can render: see :mod:`adcli.output.plain`)."""
    from ..output import plain

    text = plain.warning_text(message) if plain.rich_would_be_plain(sys.stderr) else None
    if text is None:
        _render().warn(message)
    else:
        sys.stderr.write(text)


@click.command(epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@at_option
@rows_options
@click.option("--wrt", metavar="NAMES", help="Only these variables, e.g. w0,w1.")
@json_option
@digits_option
@click.option("--no-table", is_flag=True, help="Print only the value and the gradient.")
@click.option("--max-rows", type=click.IntRange(min=0), default=200, show_default=True,
              help="Rows of the node table to show, also the nodes listed by --json (0: all).")
@max_size_option
def grad(expr: str, at: tuple[str, ...], data_path: str | None, output: str | None,
         max_data_size: int, sep: str | None, renames: tuple[str, ...], dropna: bool,
         wrt: str | None, as_json: bool, no_table: bool, max_rows: int,
         max_size: int) -> None:
    """Value and gradient of EXPR at a point, by reverse mode.

    Shows every node of the tape in order, with its value and its gradient (adjoint):
    the reverse sweep starts at the last node with gradient 1 and runs upwards,
    so you can follow the chain rule.

    \b
    With --data FILE.csv, the value and the gradient at every row of the file instead,
    as CSV: the input columns, value, and one d/dNAME column per variable.

    \b
    Examples:
      adcli grad "(w0 + w1*x - y)^2" --at x=3,y=7,w0=-2,w1=2
      adcli grad "(w0 + w1*x - y)^2" --data samples/line.csv --at w0=2.58,w1=0.75
    """
    function = load_function(expr, max_size)
    if data_path is not None:
        _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
                   as_json, gradient=True, wrt=wrt, expr=expr)
        return
    _no_data_options(output, sep, renames, dropna)
    report = grad_report(function, parse_point(at, function=function),
                         parse_names(wrt, function=function),
                         nodes=as_json or not no_table,
                         max_nodes=None if max_rows == 0 else max_rows)
    for message in report.warnings:
        _warn(message)
    show(report, as_json, table=not no_table, max_rows=max_rows)


@click.command("eval", epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@at_option
@rows_options
@click.option("--band", type=click.Choice(["confidence", "prediction"]),
              help="With --data and --at @FIT.json (adcli fit --json): add se_fit, lower and "
                   "upper columns, the confidence band of the fitted curve or the prediction "
                   "band of a new observation.")
@click.option("--level", metavar="L", help="The band's level, a fraction or a percentage "
              "[default: 0.95].")
@click.option("--absolute-sigma", is_flag=True,
              help="The fit took --sigma as absolute errors (fit --absolute-sigma): normal "
                   "quantiles, and a prediction adds sigma^2.")
@click.option("--sigma", metavar="COLUMN|NUMBER",
              help="The new rows' errors, for a prediction band of a weighted fit.")
@digits_option
@json_option_saying('Print one JSON object, {"value": ...} (with --data: a list of objects, '
                    'one per row).')
@max_size_option
def eval_(expr: str, at: tuple[str, ...], data_path: str | None, output: str | None,
          max_data_size: int, sep: str | None, renames: tuple[str, ...], dropna: bool,
          band: str | None, level: str | None, absolute_sigma: bool, sigma: str | None,
          as_json: bool, max_size: int) -> None:
    """Value of EXPR at a point.

    With --data FILE.csv, the value at every row of the file instead, as CSV: the input
    columns plus value (--json: a list of objects, one per row). EXPR may be a fit's
    formula "LHS ~ MODEL": its model is evaluated.

    \b
    Examples:
      adcli eval "a = x^2; a + sin(a)" --at x=1.5
      adcli eval "w0 + w1*x" --data samples/line.csv --at w0=2.58,w1=0.75
      adcli eval "y ~ a*exp(-b*x) + c" --data new.csv --at @fit.json --band prediction
    """
    spec = _band_spec(band, level, absolute_sigma, sigma, data_path)
    function = _load_model(expr, max_size)
    if data_path is not None:
        _over_rows(function, at, data_path, output, max_data_size, sep, renames, dropna,
                   as_json, expr=expr, band=spec)
        return
    _no_data_options(output, sep, renames, dropna)
    value, warnings = eval_report(function, parse_point(at, function=function))
    for message in warnings:
        _warn(message)
    show(EvalResult(value, warnings), as_json)
