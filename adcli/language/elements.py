"""Elements of indexed variables, and the small parts index notation is unrolled with.

An element of ``x`` or ``W`` is named in one canonical form, ``x[3]``, ``W[2,1]`` (no spaces):
the rest of adcli sees an ordinary scalar input of that name (see :mod:`adcli.language.indices`).
"""

from __future__ import annotations

import math

from ..core.syntax import Node, iter_postorder

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from typing import Any

#: The largest index: elements are named by their integer indices, exact in float64.
MAX_INDEX = 10**9

#: The most indices a name may have (W[i,j] has 2): nested lists in and out are this deep.
MAX_RANK = 8


def element_name(base: str, index: tuple[int, ...]) -> str:
    """The canonical name of an element: ``x[3]``, ``W[2,1]`` (no spaces)."""
    return f"{base}[{','.join(map(str, index))}]"


def __getattr__(name: str) -> Any:
    # split_element is defined with the result records that nest elements; loaded on first
    # use, since a parse needs none of adcli.results (its dataclasses cost milliseconds).
    if name == "split_element":
        from ..results import split_element

        return split_element
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Env:
    """The values of the indices in scope: a chain, innermost first (no copying per level,
    so deep nesting stays linear)."""

    __slots__ = ("name", "value", "parent")

    def __init__(self, name: str, value: int, parent: Env | None) -> None:
        self.name = name
        self.value = value
        self.parent = parent

    @staticmethod
    def lookup(env: Env | None, name: str) -> int | None:
        while env is not None:
            if env.name == name:
                return env.value
            env = env.parent
        return None

    @staticmethod
    def as_dict(env: Env | None) -> dict[str, int]:
        found: dict[str, int] = {}
        while env is not None:
            found.setdefault(env.name, env.value)
            env = env.parent
        return found


def where(env: Env | None) -> str:
    values = Env.as_dict(env)
    if not values:
        return ""
    return " (at " + ", ".join(f"{k} = {v}" for k, v in reversed(values.items())) + ")"


def affine(root: Node, consts: dict[str, float]) -> tuple | None:
    """An index expression as (c0, ((index, c), ...)) when it is c0 + sum of c * index
    in small integers (i, i+1, 2*j-1, n-i), so every instance is a few multiply-adds and
    exactly what the tree computes; None otherwise (it is then evaluated as a tree)."""
    if root.op == "const":
        v = root.value
        return (int(v), ()) if math.isfinite(v) and v == int(v) and abs(v) < 2**31 else None
    if root.op == "var" and root.name not in consts:
        return 0, ((root.name, 1),)
    forms: dict[int, tuple[float, dict[str, float]]] = {}
    for n in iter_postorder(root):
        if n.op == "const":
            forms[id(n)] = (n.value, {})
        elif n.op == "var":
            if n.name in consts:
                forms[id(n)] = (consts[n.name], {})
            else:
                forms[id(n)] = (0.0, {n.name: 1.0})
        elif n.op in ("add", "sub"):
            (a0, a), (b0, b) = forms[id(n.args[0])], forms[id(n.args[1])]
            s = 1.0 if n.op == "add" else -1.0
            coefs = dict(a)
            for k, c in b.items():
                coefs[k] = coefs.get(k, 0.0) + s * c
            forms[id(n)] = (a0 + s * b0, coefs)
        elif n.op == "neg":
            a0, a = forms[id(n.args[0])]
            forms[id(n)] = (-a0, {k: -c for k, c in a.items()})
        elif n.op == "mul":
            (a0, a), (b0, b) = forms[id(n.args[0])], forms[id(n.args[1])]
            if a and b:
                return None
            k0, (c0, coefs) = (b0, (a0, a)) if not b else (a0, (b0, b))
            forms[id(n)] = (c0 * k0, {k: c * k0 for k, c in coefs.items()})
        else:
            return None
    c0, coefs = forms[id(root)]
    numbers = [c0, *coefs.values()]
    if any(not (math.isfinite(v) and v == int(v) and abs(v) < 2**31) for v in numbers):
        return None  # fractions and huge values: the tree's own float arithmetic
    # Integers from here on: c0 + c*i is exact, whatever the size of the index.
    return int(c0), tuple((k, int(c)) for k, c in coefs.items())
