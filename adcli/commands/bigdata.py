"""``minimize --data`` on Dask: partitioned data (globs, directories, Parquet, files over the
memory threshold) or ``--scheduler``. Imported only when such a run is asked for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np

from ..errors import AdcliError, escape_control
from ..function import Function
from ..optimize import (
    INTERRUPTED,
    RULES,
    Options,
    binding_warnings,
    build_objective,
    exit_status,
    resolve_method,
)
from ..optimize import minimize as run_minimize
from ..optimize.verdicts import second_look
from ..output import render
from .common import show


def minimize_partitioned(function: Function, point: dict[str, float], names: list[str] | None,
                         method: str, steps: int, tol: float | None, data_path: str,
                         reduce: str, scheduler: str | None, sep: str | None,
                         renames: tuple[str, ...], dropna: bool, as_json: bool, *,
                         lr: float | None, momentum: float | None, batch_size: int | None,
                         seed: int | None = None, init_scale: float = 0.0,
                         box_of: Callable[..., Any] | None = None,
                         trace_path: str | None = None, max_time: float | None = None,
                         started: float | None = None,
                         check_time: Callable[[], None] | None = None,
                         stderr_method: str | None = None, checkpoint: str | None = None,
                         resume: str | None = None) -> None:
    """Full-batch minimisation whose every loss and gradient is one pass of partition sums:
    the same setup, messages and method choice as in memory (:mod:`adcli.regression.problem`).
    ``box_of(objective, x0, method)`` gives ``--bounds`` as arrays (the command's own
    check), ``check_time`` refuses a time limit over before the first pass."""
    from ..io.data import parse_renames, parse_separator
    from ..io.sources import open_partitioned, require
    from ..partitioned.distributed import DaskObjective, Scheduler
    from ..regression.problem import CONSTANTS, data_names, minimize_warnings
    from .trace import CsvTrace

    require("--data on Dask")
    began = time.monotonic() if started is None else started
    data = open_partitioned(data_path, parse_separator(sep), parse_renames(renames))
    bound = set(point) | set(data.names) | set(names or ())
    tape = function.tape(bound)
    warned = data_names(list(function.tape(bound | set(CONSTANTS)).inputs), point, names,
                        data.names)
    data = data.select(tape.inputs, dropna)
    live = not as_json and render.live_display_possible()

    def on_pass(count: int, partitions: int) -> None:
        from ..partitioned.progress import progress_line

        if live:
            click.echo(f"\r{progress_line(count, partitions, link)}", err=True, nl=False)

    link = None

    with Scheduler(scheduler) as where:
        for message in where.warnings:
            render.warn(message)
        if live:
            from ..partitioned.progress import dashboard_link

            link = dashboard_link(where.client)
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
        resolved = resolve_method(method, len(x0), objective.stochastic)
        box = box_of(objective, x0, resolved) if box_of else None
        lets = {st.name for st in function.program.statements if st.name is not None}
        for message in warned + binding_warnings(objective, data, point, names, lets):
            render.warn(message)
        for message in minimize_warnings(resolved, lr, momentum, batch_size,
                                         objective.stochastic, RULES[resolved].line_search):
            render.warn(message)
        if checkpoint or resume:
            if objective.stochastic:
                raise AdcliError("--checkpoint and --resume cannot follow a minibatch run "
                                 "(--batch-size): its draws are not passes")
            from ..partitioned.checkpoint import journal_objective

            journal_objective(objective, checkpoint, resume, {
                "command": "minimize", "expression": function.source,
                "files": data.files, "data options": [data.sep, data.headers, data.use,
                                                      data.dropna],
                "start": np.asarray(x0, dtype=np.float64), "names": objective.names,
                "fixed": objective.fixed, "bound": objective.bound, "method": method,
                "resolved": resolved, "steps": steps, "tol": tol, "reduce": reduce,
                "lr": lr, "momentum": momentum, "trace": bool(trace_path),
                "box": None if box is None else list(box), "stderr": stderr_method})
        if check_time is not None:
            check_time()
        result = trace = None
        complete = False
        try:  # from the trace's creation on: a signal at any moment leaves no temporary
            trace = CsvTrace(trace_path, objective.names) if trace_path else None
            if method == "auto" and not (batch_size or init_scale or trace_path):
                # A square of a residual is least squares, as in memory: the least-squares
                # engine fed by sums over the partitions (adcli fit's Dask engine).
                from ..partitioned.bigfit import least_squares_partitioned

                result = least_squares_partitioned(function, objective,
                                                   np.asarray(x0, dtype=np.float64), box,
                                                   max_time, began)
                if result is not None and result.converged:  # the driver's looks: a plateau?
                    second_look(result, objective, objective, lambda z: z if box is None else
                                np.clip(z, *box), box, fresh=True)
            if result is None:
                mu = 0.9 if momentum is None else momentum
                result = run_minimize(objective, np.asarray(x0, dtype=np.float64),
                                      method=resolved, options=Options(lr=lr, momentum=mu),
                                      steps=steps, tol=tol, callback=trace,
                                      bounds=box and dict(zip(objective.names, zip(*box))),
                                      max_time=max_time, started=began)
            complete = result.reason != INTERRUPTED  # Ctrl-C: the old file stays
        finally:
            if trace is not None:  # an error or Ctrl-C: the old file stays, as for every output
                trace.close(complete=complete)
            if live and objective.passes:
                click.echo("", err=True)
        if result.reason == INTERRUPTED:
            trace_path = None
        from ..optimize.covariance import at_result
        from ..regression.lsminimize import squared_residual

        squared = bool(stderr_method) and squared_residual(function.program, tape) is not None
        estimate = at_result(objective, result, stderr_method, box, squared)
        if result.method == "least-squares":
            click.echo("Note: EXPR is the square of a residual over the data, so method auto "
                       "used the least-squares engine (--method bfgs for BFGS)", err=True)
    result.partitions, result.rows = objective.partitions, objective.rows
    result.estimate = estimate
    show(result, as_json)
    if not as_json:
        click.echo(f"{objective.rows:,} rows in {objective.partitions} partitions, "
                   f"{objective.passes} passes", err=True)
    if trace_path:
        click.echo(f"trace written to {escape_control(trace_path)}", err=True)
    for message in result.warnings + (estimate.warnings if estimate else []):
        render.warn(message)
    status = exit_status(result)
    if status:
        raise click.exceptions.Exit(status)
