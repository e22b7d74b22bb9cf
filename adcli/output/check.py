"""The report of ``adcli explain --check`` for people (:class:`adcli.derive.check.Check`):
per answer the verdict, where it differs, and what the symbolic look leaves."""

from __future__ import annotations

from typing import Any

from ..errors import escape_control
from .numbers import num


def lines(result: Any) -> list[str]:
    """The report, a line each."""
    out = []
    for v in result.verdicts:
        name = escape_control(v.name)
        seeded = f"seed {result.seed}"
        if v.agree:
            out.append(f"d/d{name}: your answer agrees with adcli's derivative at "
                       f"{len(v.points)} random points ({seeded}; largest relative difference "
                       f"{num(v.largest(), 2)})")
        else:
            out.append(f"d/d{name}: your answer DIFFERS from adcli's derivative at "
                       f"{int(v.differs.sum())} of {len(v.points)} random points ({seeded})")
            for i, diff in zip(v.differs.nonzero()[0], v.shown()):
                at = ", ".join(f"{escape_control(k)}={num(x, 6)}"
                               for k, x in v.points[int(i)].items())
                out.append(f"  at {at}: adcli {num(diff['adcli'])}, yours "
                           f"{num(diff['answer'])} (relative difference "
                           f"{num(diff['relative_difference'], 3)})")
        if v.symbolic == "equal":
            out.append("  symbolically equal: adcli's derivative minus yours simplifies to 0")
        elif v.difference is not None and not v.agree:
            out.append(f"  adcli's derivative minus yours simplifies to {v.difference}")
    return out
