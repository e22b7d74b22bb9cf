"""The progress line of a run over partitions, with the scheduler's dashboard link when the
scheduler serves one (a link to a page that answers 404 would only mislead)."""

from __future__ import annotations

from typing import Any

from ..errors import escape_control


def dashboard_link(client: Any) -> str | None:
    """The dashboard's address when the scheduler of ``client`` runs one: it lists a
    ``dashboard`` service and has bokeh, which draws the pages. None for Dask's local
    schedulers (no client) and whenever the scheduler does not say so; what it says is
    escaped and clipped, as anything a peer sends."""
    if client is None:
        return None
    try:
        if "dashboard" not in (client.scheduler_info().get("services") or {}):
            return None
        versions = client.get_versions(check=False, packages=["bokeh"])
        if not (versions.get("scheduler") or {}).get("packages", {}).get("bokeh"):
            return None
        link = str(client.dashboard_link)
    except Exception:  # a progress line never stops a run
        return None
    return escape_control(link)[:200]


def progress_line(count: int, partitions: int, link: str | None) -> str:
    """``pass N over P partitions`` and, when there is one, the dashboard."""
    line = f"pass {count} over {partitions} partitions"
    return line if link is None else f"{line}; dashboard {link}"
