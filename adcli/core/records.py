"""A dataclass's ``repr`` and ``==`` for plain classes: what the classes made on a first parse
or a fit need of :mod:`dataclasses`, whose import (``inspect``) and per-class code generation
cost start-up (bench/README.md, W5 cold and fit start-up)."""

from __future__ import annotations


class Shown:
    """``repr`` as a dataclass writes it, from ``SHOWN`` (the fields in order, caches left
    out); equality stays identity."""

    __slots__ = ()
    SHOWN: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.SHOWN)
        return f"{self.__class__.__name__}({fields})"


class Record(Shown):
    """... and ``==`` as a dataclass compares: the same class and equal tuples of ``FIELDS``;
    unhashable, as a mutable dataclass."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (tuple(getattr(self, name) for name in self.FIELDS)
                == tuple(getattr(other, name) for name in self.FIELDS))

    __hash__ = None  # type: ignore[assignment]
