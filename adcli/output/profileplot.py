"""The picture of profile-likelihood intervals (``adcli fit --ci profile --profile-plot FILE``):
one panel per parameter, the square root of the refitted F statistic against the parameter's
value, beside the Wald line |v − estimate|/se it would follow for a linear model, with the
level quantiles as horizontal lines, so a skewed or flat profile shows at a glance.
matplotlib is loaded through :mod:`adcli.output.plot` (optional extra, Agg backend)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import AdcliError
from ..regression.fitting import FitResult
from ..regression.profile import percent
from .plot import _matplotlib, save_figure


def plot_profiles(path: str, result: FitResult) -> None:
    """Write the traces of ``result.ci`` (a profile) to ``path`` (format from the extension)."""
    traces = result.profile_traces or {}
    ci = result.ci or {}
    if not traces or ci.get("method") != "profile":
        raise AdcliError("--profile-plot needs the intervals of --ci profile")
    plt = _matplotlib()
    names = list(traces)
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        points = np.asarray(traces[name], dtype=np.float64)
        v, stat = points[:, 0], np.sqrt(points[:, 1])
        ax.plot(v, stat, ".-", color="tab:blue", label="profile")
        est, se = result.parameters[name], result.stderr.get(name, math.nan)
        if math.isfinite(se) and se > 0:
            grid = np.linspace(float(v.min()), float(v.max()), 200)
            ax.plot(grid, np.abs(grid - est) / se, "--", color="tab:gray", linewidth=0.8,
                    label="Wald")
        for level, q in zip(ci["levels"], ci["quantiles"]):
            if math.isfinite(q):
                ax.axhline(math.sqrt(q), color="tab:red", linewidth=0.6, alpha=0.6)
                ax.annotate(percent(level), (1.0, math.sqrt(q)), xycoords=("axes fraction",
                            "data"), fontsize="x-small", ha="right", va="bottom",
                            color="tab:red")
        ax.axvline(est, color="black", linewidth=0.6)
        ax.set_xlabel(name)
        ax.locator_params(axis="x", nbins=5)  # a parameter's digits are long: fewer ticks
        ax.set_ylabel("sqrt(F statistic)")
        ax.grid(True, alpha=0.3)
    axes.ravel()[0].legend(loc="upper center", fontsize="small")
    title = result.formula if len(result.formula) < 80 else result.formula[:77] + "..."
    fig.suptitle(f"profile ({ci['distribution']}): {title}", fontsize="small")
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
