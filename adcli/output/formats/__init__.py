"""Output formats: each module of this package is one format, named by its module name
(``json``, ``text``), with ``show(record, **options)`` writing any result record
(:mod:`adcli.results`) to stdout. Commands build a record and hand it to :func:`show`, so a new
format is one new module here and touches nothing else. A format is imported only when chosen
(``--json`` never loads rich: start-up time)."""

from __future__ import annotations

from importlib import import_module
from typing import Any


def chosen(as_json: bool) -> str:
    """The format a command's options ask for."""
    return "json" if as_json else "text"


def show(record: Any, name: str, **options: Any) -> None:
    """Write ``record`` in the format ``name``; ``options`` are the command's display options
    (``max_rows``, ``table``), which a format may ignore."""
    import_module(f"{__name__}.{name}").show(record, **options)
