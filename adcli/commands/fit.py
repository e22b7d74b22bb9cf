"""``adcli fit``: least-squares fit of ``LHS ~ MODEL`` to the rows of a data file."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable

import click


def _numpy_at_one_blas_thread() -> bool:
    """Import numpy with OpenBLAS started at one thread. A fit pins BLAS to one thread anyway
    (the same bits whatever the machine: adcli.fast.blas); started so, OpenBLAS creates no
    thread pool, whose threads would start and spin beside a short fit, competing with it for
    the cores. A setting of the user's stands, and children (Dask workers) get the environment
    as it was. True when numpy's BLAS was started so here: an OpenBLAS build (another BLAS,
    such as MKL, ignores the variable and is pinned by pin_blas)."""
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]
    return _built_with_openblas(numpy)


def _built_with_openblas(numpy: object) -> bool:
    """Whether numpy's build record (``numpy.__config__``, loaded with numpy) names OpenBLAS
    as its BLAS; False when it names another or cannot be read."""
    try:
        name = numpy.__config__.CONFIG["Build Dependencies"]["blas"]["name"]  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return False
    return "openblas" in str(name).lower()


from ..function import gc_paused  # noqa: E402 - before numpy; it imports none

#: In a fresh process (numpy not imported yet) what the fit's imports make is frozen
#: (:func:`gc.freeze`) once they are done, and the cyclic collector is paused while they run:
#: imports make objects that live as long as the process and form no garbage, and the
#: collector would otherwise traverse them over and over while numpy and the fit's modules
#: load, and again in every later pass.
_STARTING = "numpy" not in sys.modules and gc.isenabled()
with gc_paused():
    _BLAS_AT_ONE_THREAD = _numpy_at_one_blas_thread()
    from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, AdcliError, escape_control  # noqa: E402 - numpy first
    from ..io.data import DEFAULT_MAX_DATA_BYTES  # noqa: E402
    from ..output.formats.text import warn  # noqa: E402
    from ..regression.fitting import FitResult, parse_bounds  # noqa: E402
    from ..regression.fitting import fit as run_fit  # noqa: E402
    from ..regression.formula import Formula, parse_formula  # noqa: E402
    from ..regression.uncertainty import DEFAULT_LEVELS, parse_derive, parse_levels, wald  # noqa: E402
    from .common import (  # noqa: E402
        DATA_HELP,
        EXPR_HELP,
        ByteSize,
        data_options,
        digits_option,
        expr_argument,
        json_option,
        load_data,
        max_size_option,
        max_time_option,
        parse_names,
        parse_point,
        read_source,
        show,
    )
    if _STARTING:
        gc.freeze()


@click.command(epilog=f"{EXPR_HELP} {DATA_HELP}")
@expr_argument
@click.option("--data", "data_path", required=True, metavar="FILE.csv",
              help="CSV file whose header names the columns; every other name of the formula "
                   "is a parameter.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Fit over partitions on Dask: local:N, threads, synchronous or a scheduler's "
                   "address [default: $DASK_SCHEDULER_ADDRESS; a glob, directory or Parquet "
                   "--data uses Dask anyway; needs adcli[dask]].")
@click.option("--from", "start", multiple=True, metavar="NAME=VALUE,...",
              help="Start values of parameters (those not given start at 1).")
@click.option("--params", "params", metavar="NAMES",
              help="The parameters, e.g. a,b,c: every other name of the formula must then be "
                   "a data column [default: every name that is not a column, except one that "
                   "looks like a misspelt column].")
@click.option("--sigma", metavar="COLUMN",
              help="Column of per-row standard deviations: rows are weighted by 1/sigma^2.")
@click.option("--absolute-sigma", is_flag=True,
              help="Take --sigma as the data's absolute errors: standard errors are not "
                   "rescaled by the residual variance (curve_fit's absolute_sigma).")
@click.option("--bounds", multiple=True, metavar="NAME=LO:HI,...",
              help="Bounds on parameters, e.g. b=0:10 or b=0: (one side open).")
@click.option("--fix", multiple=True, metavar="NAME=VALUE,...",
              help="Hold these parameters at these values.")
@click.option("--max-evaluations", type=click.IntRange(min=1), metavar="N",
              help="Stop after N evaluations of the residuals [default: 1000*(parameters+1)].")
@max_time_option("not converged")
@click.option("--ci", "ci", type=click.Choice(["wald", "profile"]),
              help="Confidence intervals of the parameters: wald = estimate +- t(1-a/2, dof)*se "
                   "(the normal quantile with --absolute-sigma); profile = where the refitted "
                   "F statistic (chi2(p) - chi2_best)/(chi2_best/(n-k)) reaches the F(1, n-k) "
                   "quantile (lmfit's conf_interval, R's confint.nls).")
@click.option("--level", "levels", metavar="L,...",
              help="Confidence levels of --ci, fractions or percentages [default: 0.95 for "
                   "wald; 68.27%,95.45%,99.73% for profile].")
@click.option("--profile-plot", "profile_plot", metavar="FILE",
              help="With --ci profile: draw each parameter's profile (the root of the F "
                   "statistic against its value, with the levels) to a .png/.svg/.pdf file.")
@click.option("--derive", "derive", multiple=True, metavar='"NAME = EXPR"',
              help="A quantity derived from the parameters, e.g. \"t_half = log(2)/b\", with "
                   "its standard error by the delta method (repeatable).")
@click.option("--plot", "plot_path", metavar="FILE",
              help="Draw data, fitted curve and residuals to a .png/.svg/.pdf file; needs "
                   "matplotlib (adcli[plot]).")
@click.option("--checkpoint", "checkpoint", metavar="FILE",
              help="After every pass over the data, write the run's state to FILE (JSON, "
                   "atomic), for --resume.")
@click.option("--resume", "resume", metavar="FILE",
              help="Continue the run a --checkpoint FILE of the same problem saved.")
@click.option("--max-data-size", type=ByteSize(), default=DEFAULT_MAX_DATA_BYTES,
              metavar="BYTES", show_default="256M",
              help="Refuse a --data file larger than this, or whose rows take more memory "
                   "once read (suffixes K, M, G; 0: no limit).")
@data_options
@digits_option
@json_option
@max_size_option
def fit(expr: str, data_path: str, scheduler: str | None, start: tuple[str, ...],
        params: str | None, sigma: str | None,
        absolute_sigma: bool, bounds: tuple[str, ...], fix: tuple[str, ...],
        max_evaluations: int | None, max_time: float, ci: str | None, levels: str | None,
        profile_plot: str | None, derive: tuple[str, ...], plot_path: str | None,
        checkpoint: str | None, resume: str | None, max_data_size: int,
        sep: str | None, renames: tuple[str, ...], dropna: bool, as_json: bool,
        max_size: int) -> None:
    """Fit the parameters of "LHS ~ MODEL" to a data file by least squares.

    The residual of each row is LHS - MODEL; names that are data columns take the row's
    values, every other name is a parameter. Levenberg-Marquardt (trust region) on the exact
    Jacobian; reports standard errors, correlations, RSS and R^2. Exit status 1 when the fit
    does not converge; Ctrl-C reports the best point so far (exit status 130).

    \b
    Examples:
      adcli fit "y ~ a*exp(-b*x) + c" --data samples/exp_decay.csv --from a=1,b=1
      adcli fit "log(y) ~ b1 - b2*x1*exp(-b3*x2)" --data nelson.csv --from b1=2
    """
    began = time.monotonic()  # --max-time covers reading the data too
    text = read_source(expr, max_size)
    from ..io.sources import wants_dask

    formula = parse_formula(text, max_bytes=max_size or None)
    if levels is not None and ci is None:
        raise AdcliError("--level needs --ci wald or --ci profile")
    if profile_plot and ci != "profile":
        raise AdcliError("--profile-plot needs --ci profile")
    if ci == "profile":  # the profile's module only where it runs (start-up)
        from ..regression.profile import PROFILE_LEVELS, profile
    # a bad level or --derive text fails before the data is read
    ci_levels = parse_levels(levels, PROFILE_LEVELS if ci == "profile" else DEFAULT_LEVELS) \
        if ci else None
    for text_ in derive:
        parse_derive(text_)
    outputs = [(o, p) for o, p in (("--plot", plot_path), ("--profile-plot", profile_plot),
                                   ("--checkpoint", checkpoint)) if p]
    options = {"start": parse_point(start, "--from"), "fix": parse_point(fix, "--fix"),
               "bounds": parse_bounds(bounds) if bounds else None,
               "params": parse_names(params, "--params"), "sigma": sigma,
               "absolute_sigma": absolute_sigma, "max_evaluations": max_evaluations,
               "max_time": max_time or None, "started": began}
    if outputs:
        from ..io.atomic import check_outputs, input_file
        from ..output.plot import check_path

        check_outputs(outputs, [input_file(expr), data_path])
        for option, path in outputs:
            if option != "--checkpoint":
                check_path(path, option)
        if plot_path and profile_plot and os.path.abspath(plot_path) == \
                os.path.abspath(profile_plot):
            raise AdcliError("--plot and --profile-plot name the same file; give two names")

    def uncertainty(result: FitResult) -> None:
        """--ci and --derive, while the fit's engine (and its Dask scheduler) is still up;
        none after Ctrl-C (a profile's refits are more passes, and the point is no fit)."""
        if _interrupted(result):
            return
        if ci == "wald":
            result.ci = wald(result, ci_levels)
        elif ci == "profile":  # --max-time covers the profile's refits too
            result.ci = profile(result, ci_levels, deadline=began + max_time if max_time
                                else None)
        if derive:
            result.derive(*derive)

    if wants_dask(data_path, scheduler):
        if plot_path:  # the plot draws every row, which stays on the workers
            raise AdcliError("--plot is not available with partitioned data (Dask)")
        from ..output.render import live_display_possible

        live = not as_json and live_display_possible()
        options.update(checkpoint=checkpoint, resume=resume)
        result = _fit_on_dask(formula, data_path, scheduler, sep, renames, dropna, live,
                              options, uncertainty)
        data = None
    else:
        data = load_data(data_path, max_data_size or None, sep, renames)
        used = formula.names(formula.lhs) | formula.names(formula.model)
        data = data.select(used | ({sigma} if sigma else set()), dropna)
        if options["bounds"]:  # trf runs on scipy's own BLAS: loaded now, to be pinned too
            import scipy.linalg  # noqa: F401
        if options["bounds"] or not _BLAS_AT_ONE_THREAD:  # else numpy's is (above)
            from ..fast.blas import pin_blas

            pin_blas()  # BLAS at one thread: the same bits whatever OPENBLAS_NUM_THREADS says
        journal = _memory_journal(formula, data_path, list(data.columns), options, checkpoint,
                                  resume, [sep, sorted(renames), dropna]) \
            if checkpoint or resume else None
        result = run_fit(formula, data.columns, journal=journal, **options)
        uncertainty(result)
    if absolute_sigma and sigma is None:
        warn("--absolute-sigma has no effect without --sigma")
    for message in result.warnings:
        warn(message)
    interrupted = _interrupted(result)
    if interrupted:  # Ctrl-C: the best point so far, and no plot of it (as minimize)
        plot_path = profile_plot = None
        outputs = []
    if plot_path and data is not None:
        from ..output.fitplot import plot_fit

        plot_fit(plot_path, result, data.columns)
    if profile_plot:
        from ..output.profileplot import plot_profiles

        plot_profiles(profile_plot, result)
    show(result, as_json)
    for option, path in outputs:
        if option != "--checkpoint":
            click.echo(f"plot written to {escape_control(path)}", err=True)
    if not result.converged:
        raise click.exceptions.Exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED)


def _memory_journal(formula: Formula, data_path: str, columns: list[str], options: dict,
                    checkpoint: str | None, resume: str | None, data_options: list
                    ) -> Callable[[list[str]], Callable]:
    """``--checkpoint``/``--resume`` over data held in memory: the journal (and file format)
    of a fit over partitions, around each sweep of the engine over all the rows."""
    from ..partitioned.checkpoint import (
        Checkpoint,
        data_fingerprint,
        problem_fingerprint,
        sweep_journal,
    )
    from ..regression.problem import fit_setup

    setup = fit_setup(formula, columns, params=options["params"], start=options["start"],
                      bounds=options["bounds"], fix=options["fix"], sigma=options["sigma"])
    journal = Checkpoint(checkpoint, resume, problem_fingerprint(
        {"command": "fit", "in memory": True, "expression": formula.program.source,
         "data": data_fingerprint([data_path]), "data options": data_options,
         "start": setup.x0, "free": setup.free, "fixed": setup.fixed, "lower": setup.lower,
         "upper": setup.upper, "sigma": options["sigma"],
         "max_evaluations": options["max_evaluations"]}), setup.free)
    return sweep_journal(journal)


def _interrupted(result: FitResult) -> bool:
    """Stopped by Ctrl-C (the engine's best point so far): exit status 130."""
    from ..regression.leastsq import INTERRUPT_STATUS, REASONS

    return not result.converged and result.reason == REASONS[INTERRUPT_STATUS]


def _fit_on_dask(formula: Formula, data_path: str, scheduler: str | None, sep: str | None,
                 renames: tuple[str, ...], dropna: bool, live: bool, options: dict,
                 after: Callable[[FitResult], None]) -> FitResult:
    """The fit over partitions (adcli.partitioned.bigfit), with the same options: Dask imported only
    here."""
    from ..io.data import parse_renames, parse_separator
    from ..io.sources import open_partitioned, require

    require("--data on Dask")
    from ..partitioned.bigfit import fit_partitioned
    from ..partitioned.distributed import Scheduler

    data = open_partitioned(data_path, parse_separator(sep), parse_renames(renames))
    data = data.select(data.names, dropna)

    def on_pass(count: int, partitions: int) -> None:
        from ..partitioned.progress import progress_line

        if live:
            click.echo(f"\r{progress_line(count, partitions, link)}", err=True, nl=False)

    link = None

    with Scheduler(scheduler) as where:
        for message in where.warnings:
            warn(message)
        if live:
            from ..partitioned.progress import dashboard_link

            link = dashboard_link(where.client)
        try:
            result = fit_partitioned(formula, data, where, on_pass=on_pass, **options)
            after(result)  # profile refits run on the same partitions
            return result
        finally:
            if live:
                click.echo("", err=True)
