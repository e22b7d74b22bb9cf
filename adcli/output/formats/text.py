"""The format for people: each record as rich prints it, or as the plain text rich would write
where stdout is no terminal (:mod:`adcli.output.plain`, without loading rich: start-up time).
Every number goes through :mod:`adcli.output.numbers`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .. import plain
from ..numbers import num


def _rich():
    """The rich renderer, imported only when something is printed through it (start-up)."""
    from .. import render

    return render


def warn(message: str) -> None:
    """``Warning: ...`` on stderr: the plain text rich would write there, or rich itself (on a
    terminal, or for text only rich can render)."""
    text = plain.warning_text(message) if plain.rich_would_be_plain(sys.stderr) else None
    if text is None:
        _rich().warn(message)
    else:
        sys.stderr.write(text)


def _grad(report: Any, table: bool = True, max_rows: int = 200, **_: Any) -> None:
    text = (plain.grad_text(report, table=table, max_rows=max_rows)
            if plain.rich_would_be_plain(sys.stdout) else None)
    if text is None:
        _rich().grad(report, table=table, max_rows=max_rows)
    else:
        sys.stdout.write(text)


def _eval(result: Any, **_: Any) -> None:
    sys.stdout.write(num(result.value) + "\n")


def _explain(result: Any, **_: Any) -> None:
    from .. import transcript

    if plain.rich_would_be_plain(sys.stdout):
        sys.stdout.write(transcript.text(result, result.mode))
    else:
        _rich().explain(transcript.lines(result, result.mode))


def _derivatives(result: Any, **_: Any) -> None:
    if not result.names:
        _rich().warn("EXPR has no variables: its derivative is 0")
        sys.stdout.write("0\n")
    else:
        _rich().derivatives(result)


def _compare(result: Any, max_rows: int = 20, **_: Any) -> None:
    _rich().compare(result, max_rows=max_rows)


def _check(result: Any, **_: Any) -> None:
    from ..check import lines

    sys.stdout.write("".join(f"{line}\n" for line in lines(result)))


def _propagation(result: Any, **_: Any) -> None:
    from ..propagation import propagation_text

    sys.stdout.write(propagation_text(result))


def _fit(result: Any, **_: Any) -> None:
    from .. import fitreport

    text = fitreport.fit_text(result) if plain.rich_would_be_plain(sys.stdout) else None
    if text is None:
        _rich().fit_result(result)
    else:
        sys.stdout.write(text)


def _by_rich(name: str) -> Callable[..., None]:
    return lambda record, **_: getattr(_rich(), name)(record)


#: Record class name -> writer (names, not classes: importing FitResult would load numpy).
WRITERS: dict[str, Callable[..., None]] = {
    "GradReport": _grad,
    "EvalResult": _eval,
    "Explanation": _explain,
    "Derivatives": _derivatives,
    "Comparison": _compare,
    "ScalingReport": _by_rich("scaling"),
    "HessianReport": _by_rich("hessian"),
    "MinimizeResult": _by_rich("minimize_result"),
    "FitResult": _fit,
    "Check": _check,
    "Propagation": _propagation,
}


def show(record: Any, **options: Any) -> None:
    """The record for people."""
    WRITERS[type(record).__name__](record, **options)
