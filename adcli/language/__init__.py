"""Text to syntax tree: grammar, fast LALR driver and its tables, parse errors.

Here too, the two helpers the grammar's modules share, so that a parse that succeeds loads
neither Lark nor :mod:`adcli.language.grammar` (start-up time).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")


def grammar_file() -> str:
    """The grammar file: inside the installed package, or grammars/ of a source checkout.
    Found from the package's own folder (``adcli/``), however deep this module sits in it.
    Plain ``os.path``: pathlib brings fnmatch, urllib and ipaddress, milliseconds of a
    first parse in a fresh process."""
    root = os.path.realpath(__file__)
    for _ in range(__name__.count(".") + 1):  # up from this package's __init__ to adcli/
        root = os.path.dirname(root)
    for candidate in (os.path.join(root, "grammars", "expr.lark"),
                      os.path.join(os.path.dirname(root), "grammars", "expr.lark")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError("adcli's grammar file expr.lark is missing from the installation")


def once(build: Callable[[], T]) -> Callable[[], T]:
    """``functools.lru_cache(maxsize=1)`` for a function of no arguments, with its
    ``cache_clear``: functools (with collections) costs more to import than a small parse."""
    made: list = []

    def cached() -> T:
        if not made:
            made.append(build())
        return made[0]

    cached.cache_clear = made.clear  # type: ignore[attr-defined]
    cached.__doc__, cached.__name__, cached.__wrapped__ = (  # type: ignore[attr-defined]
        build.__doc__, build.__name__, build)
    return cached
