"""What ``adcli minimize`` watches a run with: the ``--trace`` CSV file and a callback calling
several (the in-memory history for ``--plot`` is :class:`adcli.output.plot.History`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np

from ..io.atomic import AtomicFile
from ..optimize import Callback


class CsvTrace:
    """``--trace FILE``: one CSV row per iteration (iteration, value, grad_norm, parameters),
    flushed as it goes (to a temporary beside FILE, renamed over FILE by :meth:`close` when
    the run ends, and removed if it was interrupted: the old FILE is never half replaced)."""

    def __init__(self, path: str, names: Sequence[str]) -> None:
        self.fh = AtomicFile(path, "w", encoding="utf-8", newline="")
        try:
            self.writer = csv.writer(self.fh)
            self.writer.writerow(["iteration", "value", "grad_norm", *names])
            self.fh.flush()
        except BaseException:  # a signal or a full disk before the caller holds the trace
            self.fh.discard()
            raise

    def __call__(self, iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        self.writer.writerow([iteration, repr(float(value)), repr(float(grad_norm)),
                              *(repr(float(v)) for v in x)])
        self.fh.flush()

    def close(self, complete: bool = True) -> None:
        """Rename the trace over FILE (``complete``), or remove it: Ctrl-C, SIGTERM or an
        error leave the old FILE as it was."""
        if complete:
            self.fh.commit()
        else:
            self.fh.discard()


def chain(*callbacks: Callback | None) -> Callback | None:
    """One callback calling several (None entries skipped)."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def call(iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        for c in active:
            c(iteration, value, grad_norm, x)

    return call
