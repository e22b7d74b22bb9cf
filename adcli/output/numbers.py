"""The one number formatter for people: every renderer (rich, plain text, explain's transcript,
graph labels) writes floats through :func:`num`, so ``--digits`` and its one default mean the
same everywhere. Rich-free and numpy-free at import (start-up time). JSON never comes here: it
keeps every digit (:mod:`adcli.results`)."""

from __future__ import annotations

import math
from typing import Any

from ..results import format_value

#: Significant digits of numbers shown to people (``--digits``; 0: every digit, the shortest
#: text that reads back as the same float64). The one default of every command.
DEFAULT_DIGITS = 12
_digits = DEFAULT_DIGITS


def set_digits(digits: int) -> None:
    """Digits for every number printed from now on (the command's ``--digits``)."""
    global _digits
    _digits = digits


def digits() -> int:
    """The ``--digits`` setting in force."""
    return _digits


def num(v: Any, digits: int | None = None, *, style: str = "float") -> str:
    """A number for people: ``--digits`` significant digits (12 by default), so 0.1 + 0.2 shows
    as 0.3 and the two halves of a symmetric Hessian look alike; -0.0 shows as 0.0 (JSON keeps
    it). ``style="g"`` is the statistics table's (fit): no trailing '.0', exponent as ``%g``
    writes it (``1e-05``), as R's summary prints."""
    if digits is None:
        digits = _digits
    if isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0:
        f = float(v)
        if style == "g" and digits > 0 and math.isfinite(f):
            return f"{f:.{digits}g}"
        if f == 0.0:
            return "0.0"
        if digits > 0 and math.isfinite(f):
            return repr(float(f"{f:.{digits}g}"))  # rounded, written as Python writes floats
    return format_value(v)


def full(v: Any) -> str:
    """Every digit (minimize's point, which is meant to be copied)."""
    return format_value(v)
