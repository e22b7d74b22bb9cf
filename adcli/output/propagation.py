"""The report of ``adcli propagate`` as plain text: the value and its first-order standard
uncertainty, the uncertainty budget, the second order and the Monte Carlo check."""

from __future__ import annotations

import math

from ..propagation.gum import Propagation
from .numbers import num


def _pct(v: float) -> str:
    return "nan" if math.isnan(v) else f"{100.0 * v:.3g}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def propagation_text(result: Propagation) -> str:
    """The report, one block per method."""
    lines = [f"value  {num(result.value)}",
             f"u      {num(result.u)}  (first order: sqrt(c^T Σ c), exact sensitivities c)"]
    rows = []
    for n in result.sensitivities:
        if n in result.u_inputs:
            rows.append([n, num(result.values[n]), num(result.u_inputs[n]),
                         num(result.sensitivities[n]), num(result.contributions[n]),
                         _pct(result.shares[n])])
    if rows:
        if result.correlation_share:
            rows.append(["(correlations)", "", "", "", "", _pct(result.correlation_share)])
        lines += _table(["input", "value", "u", "sensitivity", "|c|·u", "share of u²"], rows)
    so = result.second_order
    if so is not None:
        lines.append(f"second order  mean {num(so['mean'])} (shift {num(so['mean_shift'])}), "
                     f"u {num(so['u'])}  (normal inputs: ½tr(HΣ), + ½tr(HΣHΣ))")
    mc = result.monte_carlo
    if mc is not None:
        lo, hi = mc["interval"]
        lines.append(f"Monte Carlo   {mc['draws']:,} draws (seed {mc['seed']}): mean "
                     f"{num(mc['mean'])}, s.d. {num(mc['sd'])}, 95% interval "
                     f"[{num(lo)}, {num(hi)}]")
    return "\n".join(lines) + "\n"
