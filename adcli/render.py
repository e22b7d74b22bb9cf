"""Rich output for people. The only module that imports rich; it takes result records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from .diagnose import format_value
from .results import GradReport


def stdout() -> Console:
    # highlight=False: numbers keep one colour; rich honours NO_COLOR and non-terminals itself.
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def num(v) -> str:
    return format_value(v)


def warn(message: str) -> None:
    stderr().print(f"[yellow]Warning:[/yellow] {message}", markup=True, highlight=False,
                   soft_wrap=True)


def value_line(value) -> None:
    stdout().print(f"[bold]value[/bold] {num(value)}", soft_wrap=True)


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
        out.print(node_table(report, max_rows))
        hidden = len(report.nodes) - max_rows if max_rows > 0 else 0
        if hidden > 0:
            out.print(f"[dim]… {hidden:,} more nodes not shown (--max-rows 0 shows all)[/dim]")


def node_table(report: GradReport, max_rows: int = 200) -> Table:
    table = Table(title="tape (reverse sweep runs bottom to top)", title_justify="left",
                  show_lines=False)
    table.add_column("id", justify="right", style="dim")
    table.add_column("op")
    table.add_column("args", style="dim")
    table.add_column("label", style="cyan")
    table.add_column("value", justify="right")
    table.add_column("grad (adjoint)", justify="right", style="green")
    rows = report.nodes if max_rows <= 0 else report.nodes[:max_rows]
    for n in rows:
        table.add_row(str(n.id), n.op, " ".join(f"#{a}" for a in n.args), n.label,
                      num(n.value), num(n.grad))
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


def hessian(names: list[str], matrix, ev) -> None:
    out = stdout()
    table = Table(title="Hessian", title_justify="left")
    table.add_column("", style="cyan")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, matrix):
        table.add_row(name, *(num(v) for v in row))
    out.print(table)
    out.print("[bold]eigenvalues[/bold]  " + "  ".join(num(v) for v in ev), soft_wrap=True)
    out.print(classify_hessian(ev), soft_wrap=True)


# --- minimize ------------------------------------------------------------------------------


def minimize_result(result) -> None:
    """The outcome of ``adcli minimize``: where, how low, and why it stopped."""
    out = stdout()
    colour = "green" if result.converged else ("red" if result.reason == "diverged" else "yellow")
    verdict = "converged" if result.converged else "not converged"
    out.print(f"[bold {colour}]{verdict}[/bold {colour}] ({result.reason}): {result.message}",
              soft_wrap=True)
    out.print("[bold]minimum[/bold]" if result.converged else "[bold]point[/bold]")
    if result.names:
        width = max(len(n) for n in result.names)
        for name, v in result.minimum.items():
            out.print(f"  {name.ljust(width)}  {num(v)}", soft_wrap=True)
    out.print(f"[bold]value[/bold]      {num(result.value)}", soft_wrap=True)
    out.print(f"[bold]grad norm[/bold]  {num(result.grad_norm)}", soft_wrap=True)
    out.print(f"[dim]method {result.method}, {result.iterations:,} iterations, "
              f"{result.evaluations:,} gradient evaluations[/dim]", soft_wrap=True)


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
                progress.update(task, completed=iteration, loss=num(value), gnorm=num(grad_norm))

        yield update
