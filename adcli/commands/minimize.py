"""``adcli minimize``: find a minimum of an expression, or fit its parameters to a data file."""

from __future__ import annotations

import time
from typing import Any

import click
import numpy as np

from ..errors import AdcliError, escape_control
from ..io.data import DEFAULT_MAX_DATA_BYTES
from ..optimize import (
    DEFAULT_STEPS,
    DEFAULT_TOL,
    INTERRUPTED,
    RULES,
    Objective,
    Options,
    binding_warnings,
    build_objective,
    exit_status,
    resolve_method,
)
from ..optimize import driver as _driver
from ..optimize import (
    minimize as run_minimize,
)
from ..optimize.covariance import at_result, check_request
from ..optimize.verdicts import second_look
from ..output import render
from ..regression.fitting import parse_bounds
from .common import (
    DATA_HELP,
    EXPR_HELP,
    ByteSize,
    FiniteFloat,
    data_options,
    expr_argument,
    json_option,
    load_data,
    load_function,
    max_size_option,
    max_time_option,
    parse_names,
    parse_point,
    show,
)
from .trace import CsvTrace, chain

METHODS = ["auto", *RULES]


@click.command(epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@click.option("--from", "start", multiple=True, metavar="NAME=VALUE,...",
              help="Starting point; parameters not given start at 0 (x=-1.2 or x=[..] for "
                   "every element of an indexed x). With --wrt, also the values of the "
                   "variables that stay fixed.")
@click.option("--wrt", metavar="NAMES",
              help="Optimise only these variables, e.g. w0,w1; every other variable stays "
                   "fixed at its --from value (this is how to hold a variable fixed).")
@click.option("--bounds", multiple=True, metavar="NAME=LO:HI,...",
              help="Keep parameters within bounds, e.g. x=0:inf,y=-1:1 (an empty side is "
                   "unbounded). The default method then runs L-BFGS-B; gd, momentum, "
                   "nesterov and adam clip each step; newton refuses bounds. A --from value "
                   "outside its bounds is an error; a default start is moved onto the "
                   "nearest bound.")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: bfgs (lbfgs above 100 parameters; adam with --batch-size; "
                   "l-bfgs-b with --bounds).")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True),
              help="Learning rate of gd/momentum/nesterov (default 0.01) and adam "
                   "(default 0.001).")
@click.option("--momentum", type=FiniteFloat(0, 1, max_open=True), default=None,
              help="Momentum of momentum/nesterov (PyTorch convention; default 0.9).")
@click.option("--steps", type=click.IntRange(min=0), default=DEFAULT_STEPS, show_default=True,
              help="Maximum number of iterations.")
@click.option("--tol", type=FiniteFloat(min=0),
              help="Stop when the gradient's 2-norm is below this [default: scale-free: "
                   f"max_i |g_i|*max(|x_i|,1)/|f| at most {DEFAULT_TOL:.2g}, or no lower "
                   "point and the gradient at attainable accuracy (reason precision)].")
@max_time_option("reason time-limit")
@click.option("--data", "data_path", metavar="FILE.csv",
              help="Fit to a CSV file: header names bind columns to variables; the objective "
                   "is the mean of EXPR over the rows. A glob, a directory or Parquet is read "
                   "by Dask, partition by partition (adcli[dask]).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Sum --data over partitions on Dask: local:N (a LocalCluster of N workers), "
                   "threads, synchronous, or a scheduler's address [default: "
                   "$DASK_SCHEDULER_ADDRESS; needs adcli[dask]].")
@click.option("--reduce", type=click.Choice(["mean", "sum"]), default="mean",
              show_default=True, help="How --data rows combine.")
@click.option("--stderr", "stderr_method", type=click.Choice(["hessian", "sandwich"]),
              help="Standard errors and covariance of a maximum-likelihood fit: EXPR must be "
                   "the negative log-likelihood of one row, with --reduce sum. hessian: the "
                   "inverse of the exact Hessian at the optimum (observed information); "
                   "sandwich: the robust Huber-White form H^-1 (sum of g_i g_i^T) H^-1.")
@click.option("--max-data-size", type=ByteSize(), default=DEFAULT_MAX_DATA_BYTES,
              metavar="BYTES", show_default="256M",
              help="Refuse a --data file larger than this, or whose rows take more memory "
                   "once read (suffixes K, M, G; 0: no limit).")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="B",
              help="Minibatches of B rows (stochastic gradients; reshuffled each epoch).")
@click.option("--seed", type=click.IntRange(min=0),
              help="Seed for minibatch shuffles and --init-scale (a whole number >= 0).")
@click.option("--init-scale", type=FiniteFloat(0, 1e300), default=0.0, metavar="S",
              help="Start parameters not given in --from at uniform(-S, S) instead of 0 "
                   "(networks need this to break symmetry).")
@click.option("--trace", "trace_path", metavar="FILE",
              help="Write a CSV row per iteration: iteration, value, grad_norm, parameters.")
@click.option("--checkpoint", "checkpoint", metavar="FILE",
              help="With --data: after every pass over the data, write the run's state to "
                   "FILE (JSON, atomic), for --resume.")
@click.option("--resume", "resume", metavar="FILE",
              help="With --data: continue the run a --checkpoint FILE of the same problem "
                   "saved.")
@click.option("--plot", "plot_path", metavar="FILE",
              help="Draw loss vs iterations (and the contour with the path for two "
                   "parameters) to a .png/.svg/.pdf file; needs matplotlib (adcli[plot]).")
@data_options
@json_option
@max_size_option
def minimize(expr: str, start: tuple[str, ...], wrt: str | None, bounds: tuple[str, ...],
             method: str, lr: float | None, momentum: float | None, steps: int, tol: float,
             max_time: float, data_path: str | None, reduce: str, stderr_method: str | None,
             max_data_size: int, batch_size: int | None, seed: int | None, init_scale: float,
             trace_path: str | None, checkpoint: str | None, resume: str | None,
             plot_path: str | None, scheduler: str | None,
             sep: str | None, renames: tuple[str, ...], dropna: bool, as_json: bool,
             max_size: int) -> None:
    """Minimise EXPR, or fit its parameters to the rows of a data file.

    Gradients are exact (reverse mode over the tape). The default method, BFGS with a
    strong-Wolfe line search, needs no learning rate. Converges (exit status 0) where the
    point is stationary to float64 precision (or the gradient norm is below --tol).
    Otherwise exit status 1: after --steps iterations of bfgs, lbfgs or newton, when no
    lower point can be found ("no-progress"), when the value becomes inf/nan
    ("diverged") or falls without bound ("unbounded"), at a saddle point or maximum
    with no lower value in sight ("saddle"), on a plateau where the value is flat to
    float64 precision ("flat"), or after --max-time seconds ("time-limit"); gd, momentum,
    nesterov and adam that ran their --steps exit 0 with "converged": false. Ctrl-C
    stops and reports the best point so far (exit status 130).

    \b
    Examples:
      adcli minimize "(1-x)^2 + 100*(y-x^2)^2" --from x=-1.2,y=1
      adcli minimize "x^2 + y^2 + 400*x + 8*y" --method gd --lr 0.1
      adcli minimize "(w0 + w1*x - y)^2" --data samples/line.csv
      adcli minimize "(x-3)^2 + (y+2)^2" --bounds x=0:1,y=-1:
    """
    began = time.monotonic()
    function = load_function(expr, max_size)
    point = parse_point(start, "--from", function)
    check_request(stderr_method, data=data_path is not None, reduce=reduce,
                  stochastic=batch_size is not None)
    from ..io.atomic import check_outputs, input_file

    check_outputs([("--trace", trace_path), ("--plot", plot_path), ("--checkpoint", checkpoint)],
                  [input_file(expr), data_path])
    from ..io.sources import wants_dask

    if wants_dask(data_path, scheduler):
        from .bigdata import minimize_partitioned

        if plot_path:  # the plot's contour would cost a pass over the data per point
            raise AdcliError("--plot is not available with partitioned data (Dask)")
        minimize_partitioned(function, point, parse_names(wrt, function=function), method,
                             steps, tol, data_path,
                             reduce, scheduler, sep, renames, dropna, as_json,
                             lr=lr, momentum=momentum, batch_size=batch_size, seed=seed,
                             init_scale=init_scale, trace_path=trace_path,
                             stderr_method=stderr_method, checkpoint=checkpoint, resume=resume,
                             max_time=max_time or None, started=began,
                             box_of=(lambda objective, x0, method: _bounds(
                                 bounds, objective, point, x0, method)) if bounds else None,
                             check_time=lambda: _check_time(max_time, began))
        return
    data = load_data(data_path, max_data_size or None, sep, renames) if data_path else None
    bound = set(point) | (set(data.names) if data else set())
    names = parse_names(wrt, function=function)
    tape = function.tape(bound | set(names or ()))
    if data is not None:
        # the same name rules as fit and Dask
        from ..regression.problem import CONSTANTS, data_names

        warned = data_names(list(function.tape(bound | set(names or ()) | set(CONSTANTS))
                                 .inputs), point, names, data.names)
        data = data.select(tape.inputs, dropna)
    seeds = np.random.SeedSequence(seed).spawn(2)
    objective, x0 = build_objective(tape, point, names, data, reduce=reduce,
                                    batch_size=batch_size, seed=seeds[1])
    if init_scale > 0:
        rng = np.random.default_rng(seeds[0])
        for i, name in enumerate(objective.names):
            if name not in point:
                x0[i] = rng.uniform(-init_scale, init_scale)
    resolved = resolve_method(method, len(x0), objective.stochastic)
    box = _bounds(bounds, objective, point, x0, resolved) if bounds else None
    if data is not None:
        lets = {st.name for st in function.program.statements if st.name is not None}
        for message in warned + binding_warnings(objective, data, point, names, lets):
            render.warn(message)
    for name in point:
        if name not in tape.inputs:
            render.warn(f"--from '{name}' is not a variable of the expression")
    from ..regression.problem import minimize_warnings

    for message in minimize_warnings(resolved, lr, momentum, batch_size, objective.stochastic,
                                     RULES[resolved].line_search):
        render.warn(message)
    if plot_path:
        from ..output.plot import check_path

        check_path(plot_path)

    _check_time(max_time, began)
    if data is not None:
        from ..fast.blas import pin_blas

        if box is not None:  # trf and L-BFGS-B run on scipy's own BLAS: loaded to be pinned
            import scipy.linalg  # noqa: F401
        pin_blas()  # BLAS at one thread: the same bits whatever OPENBLAS_NUM_THREADS says
    journal = None
    if (checkpoint or resume) and data is None:
        raise AdcliError(f"{'--checkpoint' if checkpoint else '--resume'} needs --data (its "
                         "passes over the data are what a checkpoint saves)")
    if checkpoint or resume:  # the journal of a run over partitions, around each evaluation
        journal = _journal(checkpoint, resume, objective, {
            "command": "minimize", "in memory": True, "expression": function.source,
            "files": [data_path], "data options": [sep, sorted(renames), dropna],
            "start": np.asarray(x0, dtype=np.float64), "names": objective.names,
            "fixed": objective.fixed, "method": method, "resolved": resolved, "steps": steps,
            "tol": tol, "reduce": reduce, "lr": lr, "momentum": momentum,
            "route": [bool(trace_path), bool(plot_path), init_scale > 0],
            "box": None if box is None else list(box), "stderr": stderr_method})
    result = None
    if method == "auto" and data is not None and not (trace_path or plot_path or init_scale):
        # A square of a residual over data is least squares: Levenberg-Marquardt on the
        # exact Jacobian (adcli fit's engine) instead of BFGS on the mean of squares.
        from ..partitioned.checkpoint import sweep_journal
        from ..regression.lsminimize import least_squares_minimize

        result = least_squares_minimize(function.program, objective, x0, box,
                                        max_time or None, began,
                                        None if journal is None else sweep_journal(journal))
        if result is not None:
            click.echo("Note: EXPR is the square of a residual over the data, so method auto "
                       "used the least-squares engine (--method bfgs for BFGS)", err=True)
            if result.converged:  # a saddle or a plateau: the driver's looks, on its objective
                second_look(result, objective, objective, lambda z: z if box is None else
                            np.clip(z, *box), box, fresh=True)
    if result is None:
        history = trace = None
        problem: Any = objective
        if journal is not None:
            from ..partitioned.checkpoint import JournaledObjective

            problem = JournaledObjective(objective, journal)
        if plot_path:
            from ..output.plot import History

            history = History()
        complete = False
        try:  # from the trace's creation on: a signal at any moment leaves no temporary
            trace = CsvTrace(trace_path, objective.names) if trace_path else None
            live = not as_json and render.live_display_possible()
            with render.minimize_progress(steps, enabled=live) as progress:
                mu = 0.9 if momentum is None else momentum
                result = run_minimize(problem, x0, method=resolved,
                                      options=Options(lr=lr, momentum=mu), steps=steps,
                                      tol=tol, callback=chain(trace, history, progress),
                                      bounds=box and dict(zip(objective.names, zip(*box))),
                                      max_time=max_time or None, started=began)
            complete = result.reason != INTERRUPTED  # Ctrl-C: the old file stays
        finally:
            if trace is not None:
                trace.close(complete=complete)
    if result.reason == INTERRUPTED:
        trace_path = plot_path = None  # nothing was written
    if plot_path:
        from ..output.plot import plot_run

        note = plot_run(plot_path, result, history, objective)
        if note:
            click.echo(f"Note: {note}", err=True)
    from ..regression.lsminimize import squared_residual

    squared = bool(stderr_method) and squared_residual(function.program, tape) is not None
    estimate = at_result(objective, result, stderr_method, box, squared)
    result.estimate = estimate
    show(result, as_json)
    for what, path in (("trace", trace_path), ("plot", plot_path)):
        if path:  # on stderr: stdout stays the result (one JSON object with --json)
            click.echo(f"{what} written to {escape_control(path)}", err=True)
    for message in result.warnings + (estimate.warnings if estimate else []):
        render.warn(message)
    status = exit_status(result)
    if status:
        raise click.exceptions.Exit(status)


def _bounds(texts: tuple[str, ...], objective: Objective, point: dict[str, float],
            x0: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``--bounds`` as lower and upper arrays over the parameters.  A name that is not a
    parameter, or a --from value outside its bounds, is an error (as in ``adcli fit``); a
    start not given (0, or --init-scale's draw) is moved onto the nearest bound."""
    parsed = parse_bounds(texts)
    for name in parsed:
        if name not in objective.names:
            if name in objective.fixed:
                why = "it is held fixed (not in --wrt)"
            elif name in objective.columns:
                why = "it is a column of the data file"
            elif name not in objective.tape.inputs:
                why = "it is not a variable of the expression"
            else:
                why = "it is not a parameter"
            raise AdcliError(f"--bounds '{name}': {why} (parameters: "
                             f"{', '.join(objective.names)})")
    if method not in _driver.PROJECTED and method not in ("bfgs", "lbfgs"):
        raise AdcliError(f"--method {method} does not take --bounds; use the default "
                         f"(L-BFGS-B) or one of {', '.join(_driver.PROJECTED)} (projected "
                         "steps)")
    lower, upper = _driver.box(parsed, objective.names)  # type: ignore[misc]
    for i, name in enumerate(objective.names):
        if lower[i] <= x0[i] <= upper[i]:
            continue
        if name in point:
            raise AdcliError(f"the start {name}={x0[i]:g} (--from) is outside its bounds "
                             f"{lower[i]:g}:{upper[i]:g}")
        x0[i] = min(max(x0[i], lower[i]), upper[i])
    return lower, upper


def _journal(checkpoint: str | None, resume: str | None, objective: Objective,
             problem: dict) -> Any:
    """``--checkpoint``/``--resume`` with data held in memory: a
    :class:`adcli.partitioned.checkpoint.Checkpoint` of ``problem`` (its ``files`` replaced by
    their fingerprint), as the Dask path keeps one."""
    from ..partitioned.checkpoint import Checkpoint, data_fingerprint, problem_fingerprint

    if objective.stochastic:
        raise AdcliError("--checkpoint and --resume cannot follow a minibatch run "
                         "(--batch-size): its draws are not passes")
    problem["files"] = data_fingerprint(problem["files"])
    return Checkpoint(checkpoint, resume, problem_fingerprint(problem), objective.names)


def _check_time(max_time: float, began: float) -> None:
    """``--max-time`` covers the whole command (reading, parsing and building a big tape
    count too): an error if it is over before the optimisation starts."""
    if max_time and time.monotonic() - began >= max_time:
        raise AdcliError(f"the time limit of {max_time:g} s was reached while reading the "
                         "input and building the tape, before the optimisation started "
                         "(--max-time; 0 for no limit)")
