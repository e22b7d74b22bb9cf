"""Pictures of a minimisation (``--plot FILE``): the loss against iterations and, for two
parameters, the contour of the objective with the optimiser's path and the end point marked.

matplotlib is an optional extra (``pip install 'adcli[plot]'``); it is imported only here and
only when a picture is asked for, with the non-interactive Agg backend so it works without a
display.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..core import sweeps
from ..errors import AdcliError, OutputError
from ..io.atomic import atomic_output
from ..optimize import Objective
from ..results import MinimizeResult

FORMATS = (".png", ".svg", ".pdf")


class History:
    """Keeps every iterate in memory (for pictures)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.points: list[np.ndarray] = []

    def __call__(self, iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        self.values.append(float(value))
        self.points.append(np.array(x, dtype=np.float64))


def check_path(path: str, option: str = "--plot") -> None:
    """Fail before the run, not after it: a bad extension or missing matplotlib."""
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise AdcliError(f"{option} '{path}': use a .png, .svg or .pdf file name")
    _matplotlib()


def save_figure(fig: Any, path: str) -> None:
    """``fig.savefig`` through :func:`adcli.io.atomic.atomic_output`: the picture replaces the
    old file only once it is complete."""
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    with atomic_output(path, "wb") as out:
        try:
            fig.savefig(out.fh, format=fmt)
        except OSError as err:
            raise OutputError(path, err) from None


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise AdcliError("--plot needs matplotlib, which is not installed",
                         hint="install it with: pip install 'adcli[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_values(objective: Objective, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The objective over a grid of its two parameters.  Without data the grid is one
    vectorised sweep (the parameters are bound to arrays); with data, one sweep per grid point
    over all rows."""
    a, b = objective.names
    if not objective.columns:
        point = objective.point(np.zeros(2))
        point[a], point[b] = X, Y
        tape = objective.tape
        with np.errstate(all="ignore"):
            Z = sweeps.evaluate(tape, point)[tape.output]
        return np.broadcast_to(np.asarray(Z, dtype=np.float64), X.shape).copy()
    Z = np.empty(X.shape)
    scale = 1.0 if objective.reduce == "sum" else 1.0 / objective.rows
    for idx in np.ndindex(X.shape):
        point = objective.point(np.array([X[idx], Y[idx]]))
        with np.errstate(all="ignore"):
            v = sweeps.evaluate(objective.tape, point)[objective.tape.output]
        Z[idx] = np.sum(v) * scale if np.ndim(v) else float(v)
    return Z


def plot_run(path: str, result: MinimizeResult, history: History,
             objective: Objective | None = None) -> str | None:
    """Write the picture to ``path`` (format from the extension). Returns a note for the user
    when only part of the run could be drawn (a diverged run's values end in inf or nan)."""
    plt = _matplotlib()
    # Values near 1e308 overflow inside matplotlib's log-scale transforms: the warning is
    # about drawing, not about the run, so it is not shown.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _draw(plt, path, result, history, objective)


def _draw(plt, path: str, result: MinimizeResult, history: History,
          objective: Objective | None) -> str | None:
    two = objective is not None and len(result.names) == 2 and len(history.points) > 0
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(11 if two else 6, 4.5))
    loss_ax = axes[0] if two else axes
    values = np.array(history.values, dtype=np.float64)
    iterations = np.arange(len(values))
    finite = np.isfinite(values)
    note = None
    title = f"{result.method}: {result.reason}"
    if not finite.all() or result.reason == "diverged":
        # Plot the finite part only: an inf or nan would stretch the axis to nothing.
        values, iterations = values[finite], iterations[finite]
        upto = f"iterations 0 to {iterations[-1]}" if len(iterations) else "no iteration"
        note = f"the plot shows the finite part of the run ({upto}); after it the value was " \
               "inf or nan"
        title += " (finite part)"
    ylabel = "value"
    if len(values) and np.max(np.abs(values)) > 1e250:
        # Near float64's limit matplotlib's own axis arithmetic overflows: plot the exponent.
        values = np.sign(values) * np.log10(np.maximum(np.abs(values), 1.0))
        ylabel = "sign(value) * log10(|value|)"
        loss_ax.plot(iterations, values)
    elif len(values) and np.all(values > 0) and values.max() / values.min() > 100:
        loss_ax.semilogy(iterations, values)
    else:
        loss_ax.plot(iterations, values)
    loss_ax.set_xlabel("iteration")
    loss_ax.set_ylabel(ylabel)
    loss_ax.set_title(title)
    loss_ax.grid(True, alpha=0.3)
    if two:
        ax = axes[1]
        path_xy = np.array(history.points)
        path_xy = path_xy[np.all(np.isfinite(path_xy), axis=1)]
        lo = np.minimum(path_xy.min(axis=0), result.x)
        hi = np.maximum(path_xy.max(axis=0), result.x)
        pad = np.maximum(0.15 * (hi - lo), 0.5)
        n = 60 if not objective.columns else 30
        X, Y = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], n),
                           np.linspace(lo[1] - pad[1], hi[1] + pad[1], n))
        Z = grid_values(objective, X, Y)
        finite = Z[np.isfinite(Z)]
        if finite.size and np.ptp(finite) > 0:
            # Geometric levels above the lowest value: test functions span many decades, so
            # equally spaced levels would leave the valley floor blank.
            low, span = float(finite.min()), float(np.ptp(finite))
            levels = low + np.geomspace(span * 1e-7, span, 30)
            ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.8)
        ax.plot(path_xy[:, 0], path_xy[:, 1], ".-", color="tab:red", markersize=3,
                linewidth=1, label="path")
        ax.plot(*path_xy[0], "o", color="tab:blue", label="start")
        ax.plot(*result.x, "*", color="black", markersize=12, label="end")
        ax.set_xlabel(result.names[0])
        ax.set_ylabel(result.names[1])
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return note
