"""Parsing of ``--at``/``--from`` assignments: ``x=2,y=-3.5,z=pi/4``.

A value is a number, or a constant expression in adcli's own language (``pi/4``, ``2^-3``,
``pow(2, 3)``), parsed by the same grammar and never passed to ``eval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import AdcliError, PointError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# ASCII only, like the grammar: \d alone would take '１' (a full-width digit) and float() too.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z", re.ASCII)
#: One rule for non-finite values: nan, inf or infinity in any case, with an optional sign
#: (-nan is nan; the sign of a nan means nothing).
_SPECIAL = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE | re.ASCII)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses, so ``x=pow(2,3),y=1`` is two assignments."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_value(text: str, *, context: str = "") -> float:
    """A number or a constant expression -> float64."""
    t = text.strip()
    if _NUMBER.match(t):
        return float(t)
    if _SPECIAL.match(t):
        return float(t)
    if "=" in t:  # x=a=1 or x=a=1;a+5: a program would bind a name and pass for a value
        raise PointError(f"{context}'{t}' is not a number: a value is one constant "
                         "expression, with no '=' in it (write one name=value per "
                         "assignment, separated by commas)")
    from .function import parse  # local: the grammar is loaded only when needed

    try:
        f = parse(t, max_bytes=10_000)
        tape = f.tape()
    except AdcliError:
        raise PointError(f"{context}'{t}' is not a number") from None
    if tape.inputs:
        raise PointError(f"{context}'{t}' is not a number (it uses the variable "
                         f"'{next(iter(tape.inputs))}')")
    return float(f.eval({}))


def parse_assignments(texts: str | Iterable[str], option: str = "--at") -> dict[str, float]:
    """``"x=2,y=3"`` (or several such strings) -> ``{"x": 2.0, "y": 3.0}``."""
    if isinstance(texts, str):
        texts = [texts]
    point: dict[str, float] = {}
    for text in texts:
        if text.startswith("@"):
            for name, value in read_point_file(text[1:], option).items():
                if name in point:
                    raise PointError(f"{option} gives '{name}' twice")
                point[name] = value
            continue
        for part in _split_top_level(text):
            item = part.strip()
            if not item:
                raise PointError(f"{option} '{text}' has an empty assignment; "
                                 "write name=value pairs separated by commas")
            if "=" not in item:
                raise PointError(f"{option} '{item}' is missing '=': write name=value",
                                 hint=_several_points_hint(option, text))
            name, _, value = item.partition("=")
            name = name.strip()
            if not name:
                raise PointError(f"{option} '{item}' has no name before '='")
            if not _NAME.match(name):
                raise PointError(f"{option} '{name}' is not a valid name "
                                 "(letters, digits and _, not starting with a digit)")
            if not value.strip():
                raise PointError(f"{option} '{item}' has no value after '='")
            if name in point:
                raise PointError(f"{option} gives '{name}' twice")
            point[name] = parse_value(value, context=f"{option} {name}=")
    return point


def _several_points_hint(option: str, text: str) -> str:
    """``--at x=1,2,3`` looks like several points: say how to evaluate several."""
    if option != "--at":
        return ""
    return ("one --at is one point (repeating --at adds variables to it); to evaluate at "
            "several points, write them as rows of a CSV file with a header naming the "
            "variables and pass --data FILE.csv (eval and grad)")


#: ``--at @FILE``: a JSON file of values is read up to this size.
MAX_POINT_FILE_BYTES = 16 << 20
#: Keys of adcli's own JSON results that hold a point (minimize, fit).
_POINT_KEYS = ("minimum", "point", "parameters")


def read_point_file(path: str, option: str = "--at") -> dict[str, float]:
    """``--at @FILE``: values from a JSON object ``{"name": number, ...}``, or from the
    ``minimum``/``point`` of ``adcli minimize --json`` or the ``parameters`` of ``adcli fit
    --json``, so a fitted model can be evaluated without copying 33 numbers by hand."""
    import json

    from .inputs import read_bounded

    if not path:
        raise PointError(f"{option} '@' must be followed by a file name, as in @fit.json")
    what = f"'{path}'"
    raw = read_bounded(path, MAX_POINT_FILE_BYTES, what, option)
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PointError(f"{option} @{path}: not a JSON file") from None
    if isinstance(obj, dict):
        for key in _POINT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise PointError(f"{option} @{path}: expected a JSON object of name: number")
    point: dict[str, float] = {}
    for name, value in obj.items():
        if not _NAME.match(name):
            raise PointError(f"{option} @{path}: '{name}' is not a valid name")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise PointError(f"{option} @{path}: the value of '{name}' is not a number")
        if isinstance(value, str):
            if not _SPECIAL.match(value.strip()):
                raise PointError(f"{option} @{path}: the value of '{name}' is not a number")
            value = float(value)
        try:
            point[name] = float(value)
        except OverflowError:
            raise PointError(f"{option} @{path}: the value of '{name}' is too large") from None
    return point
