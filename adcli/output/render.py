"""Rich output for people. The only module that imports rich; it takes result records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ..errors import clip_words, escape_control
from ..results import GradReport
from . import fitreport
from .fitreport import counted
from .numbers import full, num
from .plain import LABEL_MIN_WIDTH, TITLE, node_rows


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich exits 1 here; raise instead, so the CLI gives one status for every format."""
        self.quiet = True
        raise BrokenPipeError(32, "Broken pipe")


def stdout() -> Console:
    # highlight=False: numbers keep one colour; rich honours NO_COLOR and non-terminals itself.
    return _Console(highlight=False)


def stderr() -> Console:
    return _Console(stderr=True, highlight=False)


# The numbers (num, full, --digits) live in adcli.output.numbers and LABEL_MIN_WIDTH in
# adcli.output.plain (rich-free), which writes the same text as this module where stdout is no
# terminal (start-up time).


def print_table(out: Console, table: Table, labels: tuple[int, ...] = (0,)) -> None:
    """Print ``table`` without ever cutting a number: number columns are ``no_wrap`` at their
    full width, label columns (``labels``) fold first, and when even that does not fit the
    console (80 columns, or any pipe) the table is printed wider than the console."""
    if table.title:  # on a line of its own: never wrapped to the table's width nor padded
        out.print(table.title, style="italic", soft_wrap=True)
        table.title = None
    natural = Measurement.get(out, out.options.update(width=1 << 20), table).maximum
    if natural <= out.width:
        out.print(table)
        return
    spare = 0
    for i in labels:
        column = table.columns[i]
        widest = max([cell_len(str(c)) for c in column._cells] + [cell_len(str(column.header))])
        spare += max(0, widest - LABEL_MIN_WIDTH)
    width = out.width
    out.width = max(width, natural - spare)  # print(width=) is capped at the console's
    try:
        out.print(table)
    finally:
        out.width = width


def _number_column(table: Table, header: str, **style) -> None:
    table.add_column(header, justify="right", no_wrap=True, **style)


def _label_column(table: Table, header: str, **style) -> None:
    table.add_column(header, overflow="fold", **style)


def _user(text: str) -> str:
    """Text from the input inside rich markup: markup escaped, and control characters shown
    as ``\\x1b`` (rich passes ESC through, so a name could retitle the terminal)."""
    return escape(escape_control(text))


def warn(message: str) -> None:
    """``Warning: ...`` on stderr; very long words (a 1 MB name) are cut to their ends."""
    stderr().print(f"[yellow]Warning:[/yellow] {_user(clip_words(message))}", markup=True,
                   highlight=False, soft_wrap=True)


def grad(report: GradReport, table: bool = True, max_rows: int = 200) -> None:
    out = stdout()
    out.print(f"[bold]value[/bold]  {num(report.value)}", soft_wrap=True)
    if report.gradient:
        out.print("[bold]gradient[/bold]")
        width = max(len(n) for n in report.gradient)
        for name, g in report.gradient.items():
            out.print(f"  d/d{name.ljust(width)}  {num(g)}", soft_wrap=True)
    if table and report.nodes:
        out.print()
        print_table(out, node_table(report, max_rows), labels=(1, 2, 3))
        hidden = max(report.node_count, len(report.nodes)) - max_rows if max_rows > 0 else 0
        if hidden > 0:
            out.print(f"[dim]… {hidden:,} more nodes not shown (--max-rows 0 shows all)[/dim]")


def node_table(report: GradReport, max_rows: int = 200) -> Table:
    table = Table(title=TITLE, title_justify="left", show_lines=False)
    _number_column(table, "id", style="dim")
    _label_column(table, "op")
    _label_column(table, "args", style="dim")
    _label_column(table, "label", style="cyan")
    _number_column(table, "value")
    _number_column(table, "grad (adjoint)", style="green")
    for row in node_rows(report, max_rows):
        table.add_row(*row)
    return table


def classify_hessian(ev) -> str:
    """What the eigenvalues say about a stationary point (words, for people)."""
    import numpy as np

    if len(ev) == 0:
        return "no variables"
    if not np.all(np.isfinite(ev)):
        return "not finite at this point"
    scale = max(1.0, float(np.max(np.abs(ev))))
    tiny = 1e-12 * scale
    if np.all(ev > tiny):
        return "positive definite: a local minimum if the gradient is 0"
    if np.all(ev < -tiny):
        return "negative definite: a local maximum if the gradient is 0"
    if np.any(ev > tiny) and np.any(ev < -tiny):
        return "indefinite: a saddle if the gradient is 0"
    return "singular (a zero eigenvalue): the second-order test is inconclusive"


def hessian(report) -> None:
    """The matrix, its eigenvalues and what they say (the report's ``verdict`` overrides that
    reading when the point does not allow one); a constant's empty Hessian is one line, not a
    table."""
    names, matrix, ev, verdict = report.variables, report.matrix, report.eigenvalues, report.verdict
    out = stdout()
    if not names:
        out.print(verdict or classify_hessian(ev), soft_wrap=True)
        return
    table = Table(title="Hessian", title_justify="left")
    _label_column(table, "", style="cyan")
    for name in names:
        _number_column(table, name)
    for name, row in zip(names, matrix):
        table.add_row(name, *(num(v) for v in row))
    print_table(out, table)
    out.print("[bold]eigenvalues[/bold]  " + "  ".join(num(v) for v in ev), soft_wrap=True)
    out.print(verdict or classify_hessian(ev), soft_wrap=True)


# --- minimize ------------------------------------------------------------------------------


def minimize_result(result) -> None:
    """The outcome of ``adcli minimize``: where, how low, and why it stopped."""
    out = stdout()
    colour = "green" if result.converged else ("red" if result.reason in ("diverged", "unbounded")
                                                     else "yellow")
    verdict = "converged" if result.converged else "not converged"
    out.print(f"[bold {colour}]{verdict}[/bold {colour}] ({result.reason}): {result.message}",
              soft_wrap=True)
    out.print("[bold]minimum[/bold]" if result.converged else "[bold]point[/bold]")
    if result.names:
        width = max(len(n) for n in result.names)
        for name, v in result.minimum.items():
            out.print(f"  {name.ljust(width)}  {full(v)}", soft_wrap=True)
    out.print(f"[bold]value[/bold]      {full(result.value)}", soft_wrap=True)
    out.print(f"[bold]grad norm[/bold]  {full(result.grad_norm)}", soft_wrap=True)
    out.print(f"[dim]method {result.method}, {counted(result.iterations, 'iteration')}, "
              f"{counted(result.evaluations, 'gradient evaluation')}[/dim]", soft_wrap=True)
    if result.estimate is not None:
        minimize_stderr(result.estimate)


def minimize_stderr(estimate) -> None:
    """``minimize --stderr``: each parameter's standard error (the covariance is in the
    JSON)."""
    from ..optimize.covariance import MEANING

    out = stdout()
    out.print(f"[bold]standard errors[/bold] [dim]({estimate.method}: "
              f"{_user(MEANING[estimate.method])})[/dim]", soft_wrap=True)
    names = estimate.names
    width = max((len(n) for n in names), default=0)
    for name, se in estimate.stderr.items():
        out.print(f"  {_user(name.ljust(width))}  {full(se)}", soft_wrap=True)


def live_display_possible() -> bool:
    """A progress display only when both streams are terminals (never into pipes or files)."""
    return stdout().is_terminal and stderr().is_terminal


@contextmanager
def minimize_progress(total: int, enabled: bool = True) -> Iterator:
    """A live progress bar with the current loss on stderr; yields an optimiser callback
    (None when disabled).  Redraws at most ten times a second so fast runs stay fast."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]minimize[/bold]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"),
                        TextColumn("|grad| {task.fields[gnorm]}"), TimeElapsedColumn(),
                        console=stderr(), transient=True)
    last = 0.0
    with progress:
        task = progress.add_task("minimize", total=total, loss="…", gnorm="…")

        def update(iteration: int, value: float, grad_norm: float, x) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= 0.1:
                last = now
                progress.update(task, completed=iteration, loss=f"{value:.6g}",
                                gnorm=f"{grad_norm:.3g}")

        yield update


# --- compare-modes -------------------------------------------------------------------------


def _seconds(s: float) -> str:
    if s != s:
        return "nan"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _count(k: int) -> str:
    """Operation counts in a narrow column: 3,460 / 346k / 35.0M."""
    if k < 100_000:
        return f"{k:,}"
    if k < 10_000_000:
        return f"{k / 1e3:,.0f}k"
    return f"{k / 1e6:,.1f}M"


def _passes(cost) -> str:
    if cost.backward_passes:
        return f"{cost.forward_passes} forward + {cost.backward_passes} backward"
    return f"{cost.forward_passes} forward"


def compare(result, max_rows: int = 20) -> None:
    """``adcli compare-modes``: the gradient three ways, then what each way cost."""
    out = stdout()
    out.print(f"[bold]value[/bold]  {num(result.value)}   [dim]({result.variables} inputs, "
              f"{result.instructions} instructions on the tape)[/dim]", soft_wrap=True)
    table = Table(title="gradient", title_justify="left")
    _label_column(table, "variable", style="cyan")
    for name in ("forward", "reverse", "numeric"):
        _number_column(table, name)
    _number_column(table, "abs diff", style="dim")
    _number_column(table, "rel diff", style="dim")
    rows = result.rows if max_rows <= 0 else result.rows[:max_rows]
    for r in rows:
        table.add_row(r.name, num(r.forward), num(r.reverse), num(r.numeric),
                      f"{r.abs_diff:.2e}", f"{r.rel_diff:.2e}")
    print_table(out, table)
    if len(result.rows) > len(rows):
        out.print(f"[dim]… {len(result.rows) - len(rows):,} more variables not shown "
                  "(--max-rows 0 shows all)[/dim]")
    out.print(f"largest difference: {result.max_abs_diff:.3g} absolute, "
              f"{result.max_rel_diff:.3g} relative (forward vs reverse: "
              f"{result.max_ad_diff:.3g})", soft_wrap=True)
    out.print()
    cost = Table(title="cost of one full gradient", title_justify="left")
    _label_column(cost, "mode")
    _label_column(cost, "passes over the tape")
    _number_column(cost, "operations")
    _number_column(cost, "time (best)")
    _number_column(cost, "runs", style="dim")
    for name, c in (("forward", result.forward), ("reverse", result.reverse),
                    ("numeric", result.numeric)):
        cost.add_row(name, _passes(c), f"{c.ops:,}", _seconds(c.seconds), str(c.runs))
    print_table(out, cost, labels=(0, 1))
    out.print(result.reading(), soft_wrap=True)
    d = result.directional
    if d is not None:
        out.print()
        shown = ", ".join(f"{k}={num(v)}" for k, v in d.direction.items())
        out.print(f"[bold]directional derivative[/bold] along ({shown})", soft_wrap=True)
        out.print(f"  forward (1 pass, {d.forward_ops:,} operations)  {num(d.forward)}",
                  soft_wrap=True)
        out.print(f"  reverse (gradient · direction)  {num(d.reverse)}", soft_wrap=True)
        out.print(f"  numeric (1 central difference)  {num(d.numeric)}", soft_wrap=True)


def scaling(report) -> None:
    """The scaling view: forward versus reverse cost as the number of inputs grows, with a
    log-scale bar chart of the times when writing to a terminal (or as ``report.chart`` says)."""
    family, description, rows, chart = report.family, report.description, report.rows, report.chart
    out = stdout()
    out.print(f"[bold]family[/bold] {_user(family)}: {_user(description)}", soft_wrap=True)
    table = Table(title="one full gradient as the number of inputs n grows (forward: n passes; "
                  "reverse: 1 forward + 1 backward)", title_justify="left")
    for col in ("n", "tape", "fwd ops", "fwd time", "rev ops", "rev time", "fwd/rev"):
        table.add_column(col, justify="right", no_wrap=True)
    estimated = False
    for r in rows:
        mark = "~" if r.forward_estimated else ""
        estimated |= r.forward_estimated
        table.add_row(f"{r.n:,}", f"{r.instructions:,}", _count(r.forward_ops),
                      mark + _seconds(r.forward_seconds),
                      _count(r.reverse_ops), _seconds(r.reverse_seconds),
                      f"{mark}{r.ratio:.0f}x" if r.ratio >= 10 else f"{mark}{r.ratio:.1f}x")
    out.print(table)
    if estimated:
        timed = ", ".join(f"{r.forward_passes_timed} of {r.forward_passes:,} at n={r.n:,}"
                          for r in rows if r.forward_estimated)
        out.print(f"[dim]~ forward time extrapolated from the passes timed within the budget "
                  f"({timed}); every pass runs the same instructions. --budget 0 times them "
                  f"all.[/dim]", soft_wrap=True)
    out.print("forward mode needs n passes, reverse mode 1 forward + 1 backward: with the tape "
              "itself growing like n, forward cost grows like n^2 and reverse like n.",
              soft_wrap=True)
    if chart is None:
        chart = out.is_terminal
    if chart:
        out.print()
        out.print(scaling_chart(rows))


def scaling_chart(rows, width: int = 40) -> str:
    """Bars of log10(time): each step of n multiplies forward time by ~n^2, reverse by ~n."""
    import math

    times = [t for r in rows for t in (r.forward_seconds, r.reverse_seconds) if t > 0]
    if not times:
        return ""
    lo = math.log10(min(times)) - 0.5
    hi = math.log10(max(times))
    span = max(hi - lo, 1e-9)
    lines = [f"time per gradient, log scale ({_seconds(10 ** lo)} … {_seconds(10 ** hi)})"]
    label = max(len(f"{r.n:,}") for r in rows)
    for r in rows:
        for name, t in (("fwd", r.forward_seconds), ("rev", r.reverse_seconds)):
            n = max(1, round((math.log10(t) - lo) / span * width)) if t > 0 else 0
            bar = "█" * n
            style = "magenta" if name == "fwd" else "green"
            head = f"n={r.n:,}".rjust(label + 2) if name == "fwd" else " " * (label + 2)
            lines.append(f"{head} {name} [{style}]{bar}[/{style}] {_seconds(t)}")
    return "\n".join(lines)


def derivatives(result) -> None:
    """Each derivative as source text (in its --format); several are headed by ``# d/dNAME``
    comment lines (``%`` in LaTeX; each block is a program of its own)."""
    names, texts = result.names, result.formatted or result.texts
    mark = "%" if result.fmt == "latex" else "#"
    out = stdout()
    for k, (name, text) in enumerate(zip(names, texts)):
        if len(names) > 1:
            if k:
                out.print()
            out.print(f"[dim]{mark} d/d{name}[/dim]", soft_wrap=True)
        out.print(text, markup=False, soft_wrap=True)


# --- fit -----------------------------------------------------------------------------------


def fit_result(result) -> None:
    """The report of ``adcli fit``: estimates with standard errors, correlations, goodness of
    fit and why the engine stopped (the content of R's summary(nls) and gnuplot's fit log); the
    cells come from :mod:`adcli.output.fitreport`, which writes the same as plain text."""
    out = stdout()
    colour = "green" if result.converged else "yellow"
    verdict = "converged" if result.converged else "not converged"
    out.print(f"[bold {colour}]{verdict}[/bold {colour}]: {_user(result.reason)}",
              soft_wrap=True)
    _fit_table(out, fitreport.PARAMETER_HEADERS, fitreport.parameter_rows(result, _user))
    if result.ci is not None:
        ci = result.ci
        out.print(f"[bold]confidence intervals[/bold] ({_user(ci['method'])}, "
                  f"{_user(ci['distribution'])})", soft_wrap=True)
        _fit_table(out, fitreport.interval_headers(result),
                   fitreport.interval_rows(result, _user))
        for name, notes in ci.get("notes", {}).items():  # an end a profile did not reach
            for note in notes:
                out.print(f"{_user(name)}: {_user(note)}", soft_wrap=True)
    if result.derived:
        out.print("[bold]derived[/bold] (delta method)", soft_wrap=True)
        _fit_table(out, fitreport.DERIVED_HEADERS, fitreport.derived_rows(result, _user))
    if len(result.correlation_names) > 1:
        out.print("[bold]correlation[/bold]")
        _fit_table(out, ("", *map(_user, result.correlation_names)),
                   fitreport.correlation_rows(result, _user))
    for head, rest in fitreport.statistics_lines(result):
        out.print(f"[bold]{head}[/bold]{rest}", soft_wrap=True)
    aic, bic = fitreport.information_text(result)
    out.print(f"[bold]AIC[/bold]  {aic}  [bold]BIC[/bold]  {bic}  "
              f"[dim]{fitreport.AIC_NOTE}[/dim]", soft_wrap=True)
    if result.absolute_sigma:
        out.print(f"[dim]{fitreport.ABSOLUTE_NOTE}[/dim]")
    out.print(f"[dim]method {_user(result.method)}, {fitreport.method_text(result)}[/dim]",
              soft_wrap=True)


def _fit_table(out, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table of the fit report: no box, the first column a label, the others right-justified."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column(headers[0])
    for header in headers[1:]:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    print_table(out, table)


#: Colours of the transcript's line styles (:mod:`adcli.output.transcript`).
_EXPLAIN_STYLES = {"title": "bold", "node": "", "rule": "cyan", "partial": "", "edge": "green",
                   "total": "bold green", "note": ""}


def explain(lines: list[tuple[str, str]]) -> None:
    """The ``adcli explain`` transcript, each line in its style (the text is not markup)."""
    out = stdout()
    for style, text in lines:
        out.print(text, style=_EXPLAIN_STYLES.get(style) or None, markup=False, emoji=False,
                  soft_wrap=True)
