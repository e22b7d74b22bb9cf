"""``minimize --data`` on Dask: partitioned data (globs, directories, Parquet, files over the
memory threshold) or ``--scheduler``. Imported only when such a run is asked for."""

from __future__ import annotations

import click
import numpy as np

from .. import render
from ..function import Function
from ..optimize import (
    RULES,
    Options,
    binding_warnings,
    build_objective,
    exit_status,
    resolve_method,
)
from ..optimize import minimize as run_minimize
from .common import emit_json


def minimize_partitioned(function: Function, point: dict[str, float], names: list[str] | None,
                         method: str, steps: int, tol: float | None, data_path: str,
                         reduce: str, scheduler: str | None, sep: str | None,
                         renames: tuple[str, ...], dropna: bool, as_json: bool, *,
                         lr: float | None, momentum: float, batch_size: int | None,
                         seed: int | None = None, init_scale: float = 0.0) -> None:
    """Full-batch minimisation whose every loss and gradient is one pass of partition sums."""
    from ..data import parse_renames, parse_separator
    from ..distributed import DaskObjective, Scheduler
    from ..sources import open_partitioned, require

    require("--data on Dask")
    data = open_partitioned(data_path, parse_separator(sep), parse_renames(renames))
    bound = set(point) | set(data.names) | set(names or ())
    tape = function.tape(bound)
    data = data.select(tape.inputs, dropna)
    if method == "auto" and not batch_size:
        resolved = "bfgs"
    else:
        resolved = resolve_method(method, len(tape.inputs), bool(batch_size))
    live = not as_json and render.live_display_possible()

    def on_pass(count: int, partitions: int) -> None:
        if live:
            click.echo(f"\rpass {count} over {partitions} partitions", err=True, nl=False)

    with Scheduler(scheduler) as where:
        objective, x0 = build_objective(tape, point, names, data, factory=DaskObjective,
                                        reduce=reduce, source=function.source,
                                        batch_size=batch_size,
                                        seed=np.random.SeedSequence(seed).spawn(2)[1],
                                        bound=[n for n in bound if n in tape.inputs or
                                               n in ("pi", "e")],
                                        scheduler=where, on_pass=on_pass)
        if init_scale > 0:  # as in memory: the same seed gives the same start
            rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
            for i, name in enumerate(objective.names):
                if name not in point:
                    x0[i] = rng.uniform(-init_scale, init_scale)
        lets = {st.name for st in function.program.statements if st.name is not None}
        for message in binding_warnings(objective, data, point, names, lets):
            render.warn(message)
        if batch_size and not objective.stochastic:
            render.warn("--batch-size is not smaller than the data; using full batches")
        if lr is not None and RULES[resolved].line_search:
            render.warn(f"--lr is ignored by {resolved}, which chooses its steps by a line "
                        "search")
        result = None
        try:
            if method == "auto" and not batch_size and not init_scale:
                # A square of a residual is least squares, as in memory: Levenberg-Marquardt
                # on the normal equations over the partitions (adcli fit's Dask engine).
                from ..bigfit import least_squares_partitioned

                result = least_squares_partitioned(function, objective,
                                                   np.asarray(x0, dtype=np.float64))
            if result is None:
                result = run_minimize(objective, np.asarray(x0, dtype=np.float64),
                                      method=resolved, options=Options(lr=lr, momentum=momentum),
                                      steps=steps, tol=tol)
        finally:
            if live and objective.passes:
                click.echo("", err=True)
        if result.method == "least-squares":
            click.echo("Note: EXPR is the square of a residual over the data, so method auto "
                       "used the least-squares engine (--method bfgs for BFGS)", err=True)
    if as_json:
        out = result.to_json()
        out["partitions"] = objective.partitions
        out["rows"] = objective.rows
        emit_json(out)
    else:
        render.minimize_result(result)
        click.echo(f"{objective.rows:,} rows in {objective.partitions} partitions, "
                   f"{objective.passes} passes", err=True)
    for message in result.warnings:
        render.warn(message)
    status = exit_status(result)
    if status:
        raise click.exceptions.Exit(status)
