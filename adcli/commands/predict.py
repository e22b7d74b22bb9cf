"""``eval``/``grad --data`` over a Dask source (a glob, a directory, Parquet): one output file
per partition in ``-o DIR`` (:mod:`adcli.partitioned.predict`). Dask is imported only here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..errors import AdcliError, escape_control
from ..function import Function

#: Where the options below keep their values (``ctx.meta``): eval and grad take them without
#: a parameter each, so their signatures stay as they were.
KEY = "adcli.predict"


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(KEY, {})[param.name] = value
    return value


def predict_options(f: Callable) -> Callable:
    """--scheduler, --format and --force of eval/grad --data on a Dask source."""
    f = click.option("--force", is_flag=True, expose_value=False, callback=_keep,
                     help="With a Dask --data source: write into a non-empty -o DIR that "
                          "holds only part files (those of an earlier run are replaced).")(f)
    f = click.option("--format", "format", type=click.Choice(["parquet", "csv"]),
                     expose_value=False, callback=_keep,
                     help="With a Dask --data source: the part files' format [default: "
                          "parquet for Parquet data, csv for CSV].")(f)
    f = click.option("--scheduler", metavar="ADDRESS", expose_value=False, callback=_keep,
                     help="Evaluate over partitions on Dask: local:N, threads, synchronous or "
                          "a scheduler's address (a glob, directory or Parquet --data uses "
                          "Dask anyway; needs adcli[dask] and -o DIR).")(f)
    return f


def dask_options() -> dict[str, Any]:
    """The values of :func:`predict_options` for the running command."""
    return dict(click.get_current_context().meta.get(KEY, {}))


def wants_partitions(data_path: str, options: dict[str, Any]) -> bool:
    """A Dask source or ``--scheduler``; a plain CSV file stays in memory as before (a large
    one too: its output goes to one file or standard output)."""
    from ..io.sources import is_partitioned

    if options.get("scheduler") or is_partitioned(data_path):
        return True
    used = [o for o, v in (("--format", options.get("format")),
                           ("--force", options.get("force"))) if v]
    if used:
        raise click.UsageError(f"{used[0]} needs a Dask --data source (a glob, a directory or "
                               "Parquet) or --scheduler")
    return False


def predict_command(function: Function, point: dict[str, float], data_path: str,
                    output: str | None, sep: str | None, renames: tuple[str, ...],
                    dropna: bool, as_json: bool, options: dict[str, Any], *,
                    gradient: bool, wrt: list[str] | None, warn: Callable[[str], None]) -> None:
    """Evaluate over the partitions and say on stderr what was written."""
    from ..io.data import parse_renames, parse_separator
    from ..io.rows import evaluate_rows
    from ..io.sources import open_partitioned, require

    if as_json:
        raise AdcliError("--json is not available with a Dask --data source (a JSON list of "
                         "every row); use -o DIR with --format parquet or csv")
    if output is None:
        raise AdcliError(f"--data '{data_path}' is read on Dask (partitioned data) and can "
                         "hold more rows than a terminal should show; use -o DIR to write "
                         "one file per partition")
    require("--data on Dask")
    from ..partitioned.distributed import Scheduler
    from ..partitioned.predict import predict_partitioned

    rename = parse_renames(renames)
    data = open_partitioned(data_path, parse_separator(sep), rename)

    def check(probe: Any) -> None:
        evaluate_rows(function, probe, point, gradient=gradient, wrt=wrt, dropna=dropna)

    with Scheduler(options.get("scheduler")) as where:
        summary = predict_partitioned(function, point, data, output, where, gradient=gradient,
                                      wrt=wrt, dropna=dropna, fmt=options.get("format"),
                                      force=bool(options.get("force")), rename=rename,
                                      check=check)
    for message in summary.warnings:
        warn(message)
    removed = f"; {summary.removed} older part files removed" if summary.removed else ""
    files = len(summary.files)
    click.echo(f"{summary.rows:,} rows in {files} file{'s' if files != 1 else ''} written to "
               f"{escape_control(output)}{removed}", err=True)
