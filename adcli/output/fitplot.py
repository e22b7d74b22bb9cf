"""The picture of a fit (``adcli fit --plot FILE``): data and fitted curve against the model's
one predictor (or fitted against observed for several), with the 95% confidence band of the
curve (:mod:`adcli.regression.bands`) and the residuals in a panel below.
matplotlib is loaded through :mod:`adcli.output.plot` (optional extra, Agg backend)."""

from __future__ import annotations

import numpy as np

from ..errors import AdcliError
from ..regression.fitting import FitResult
from .plot import _matplotlib, save_figure

#: The level of the confidence band drawn around the fitted curve.
BAND_LEVEL = 0.95


def plot_fit(path: str, result: FitResult, columns: dict[str, np.ndarray]) -> None:
    """Write the picture to ``path`` (format from the extension)."""
    plt = _matplotlib()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    residual = result.observed - result.fitted
    if len(result.predictors) == 1:
        name = result.predictors[0]
        x = columns[name]
        top.plot(x, result.observed, ".", color="tab:blue", label="data")
        grid = np.linspace(float(np.min(x)), float(np.max(x)), 400)
        try:
            with np.errstate(all="ignore"):
                band = result.predict({name: grid}, band="confidence", level=BAND_LEVEL)
                curve = np.broadcast_to(band.value, grid.shape)
            top.plot(grid, curve, "-", color="tab:red", label="fit")
            if np.any(np.isfinite(band.se_fit)):
                top.fill_between(grid, band.lower, band.upper, color="tab:red", alpha=0.2,
                                 linewidth=0, label=f"{BAND_LEVEL:.0%} confidence band")
        except AdcliError:  # e.g. a let-binding reads another column: plot at the rows
            order = np.argsort(x)
            top.plot(x[order], result.fitted[order], "-", color="tab:red", label="fit")
        bottom.plot(x, residual, ".", color="tab:gray")
        bottom.set_xlabel(name)
    else:
        top.plot(result.fitted, result.observed, ".", color="tab:blue", label="data")
        lo, hi = float(np.min(result.fitted)), float(np.max(result.fitted))
        top.plot([lo, hi], [lo, hi], "-", color="tab:red", label="observed = fitted")
        bottom.plot(result.fitted, residual, ".", color="tab:gray")
        bottom.set_xlabel("fitted")
    lhs = result.formula.split("~", 1)[0].split(";")[-1].strip() or "response"
    top.set_ylabel(lhs)
    top.set_title(result.formula if len(result.formula) < 80 else result.formula[:77] + "...")
    top.legend(loc="best", fontsize="small")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel("residual")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
