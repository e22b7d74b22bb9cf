"""Parsing of ``--at``/``--from`` assignments: ``x=2,y=-3.5,z=pi/4``.

A value is a number, or a constant expression in adcli's own language (``pi/4``, ``2^-3``,
``pow(2, 3)``), parsed by the same grammar and never passed to ``eval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import AdcliError, PointError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# ASCII only, like the grammar: \d alone would take '１' (a full-width digit) and float() too.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z", re.ASCII)
#: One rule for non-finite values: nan, inf or infinity in any case, with an optional sign
#: (-nan is nan; the sign of a nan means nothing).
_SPECIAL = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE | re.ASCII)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and brackets, so ``x=pow(2,3),y=1`` and
    ``x=[1,2],W[1,2]=3`` are two assignments each."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


#: Blanks around a value: ASCII only, as in data cells and EXPR (a no-break space is no blank).
_BLANKS = " \t\n\r\f\v"


def parse_value(text: str, *, context: str = "") -> float:
    """A number or a constant expression -> float64."""
    t = text.strip(_BLANKS)
    if _NUMBER.match(t):
        return float(t)
    if _SPECIAL.match(t):
        return float(t)
    if "=" in t:  # x=a=1 or x=a=1;a+5: a program would bind a name and pass for a value
        raise PointError(f"{context}'{t}' is not a number: a value is one constant "
                         "expression, with no '=' in it (write one name=value per "
                         "assignment, separated by commas)")
    from ..function import parse  # local: the grammar is loaded only when needed

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
            item = part.strip(_BLANKS)
            if not item:
                raise PointError(f"{option} '{text}' has an empty assignment; "
                                 "write name=value pairs separated by commas")
            if "=" not in item:
                raise PointError(f"{option} '{item}' is missing '=': write name=value",
                                 hint=_several_points_hint(option, text))
            name, _, value = item.partition("=")
            name = name.strip(_BLANKS)
            if not name:
                raise PointError(f"{option} '{item}' has no name before '='")
            name = _element_key(name) or name
            if not _NAME.match(name) and _element_key(name) is None:
                raise PointError(f"{option} '{name}' is not a valid name "
                                 "(letters, digits and _, not starting with a digit)")
            if not value.strip(_BLANKS):
                raise PointError(f"{option} '{item}' has no value after '='")
            if name in point:
                raise PointError(f"{option} gives '{name}' twice")
            point[name] = _parse_values(value, option, name)
    return point


# --------------------------------------------------------------------------- indexed names
# x=[1,2,3], W=[[1,2],[3,4]], x=0 for every element, W=@init.json: values of an indexed
# variable's elements (x[1], W[2,1]), matched to the elements the expression uses by
# :func:`bind_elements` once the expression is known.

_ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]\Z", re.ASCII)


def _element_key(name: str) -> str | None:
    """``"W[2, 1]"`` -> ``"W[2,1]"`` (the canonical element name), None if not an element."""
    m = _ELEMENT.match(name)
    if m is None:
        return None
    return f"{m[1]}[{','.join(str(int(p)) for p in m[2].split(','))}]"


def _parse_values(text: str, option: str, name: str):
    """One value, or nested lists of values (``[1, 2]``; ``@FILE.json`` holding either)."""
    t = text.strip(_BLANKS)
    if t.startswith("@"):
        return _value_file(t[1:], option, name)
    if t.startswith("["):
        import json

        try:
            value = json.loads(t)
        except (ValueError, RecursionError):
            raise PointError(f"{option} {name}={_clip(t)} is not a list of numbers, as in "
                             "[1, 2, 3] or [[1, 2], [3, 4]]") from None
        return _check_nested(value, f"{option} {name}")
    return parse_value(text, context=f"{option} {name}=")


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _check_nested(value, what: str):
    """``value`` as nested lists of floats, iteratively (a 10,000-deep list is refused by
    depth, not by a RecursionError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise PointError(f"{what}: expected a number or a list of numbers")
    if not isinstance(value, list):
        return _finite_float(value, what)
    out: list = []
    stack = [(value, out, 1)]
    while stack:
        items, into, depth = stack.pop()
        if depth > 8:
            raise PointError(f"{what}: lists nested more than 8 deep")
        if not items:
            raise PointError(f"{what}: an empty list")
        kinds = {isinstance(v, list) for v in items if v is not None}
        if len(kinds) > 1:
            raise PointError(f"{what}: a list mixes numbers and lists")
        for v in items:
            if isinstance(v, list):
                inner: list = []
                into.append(inner)
                stack.append((v, inner, depth + 1))
            elif v is None:  # null: no value (adcli writes it for an element not used)
                into.append(None)
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PointError(f"{what}: {json_text(v)} is not a number")
            else:
                into.append(_finite_float(v, what))
    return out


def json_text(v) -> str:
    import json

    return _clip(json.dumps(v))


def _finite_float(v, what: str) -> float:
    try:
        return float(v)
    except OverflowError:
        raise PointError(f"{what}: a value is too large") from None


def _value_file(path: str, option: str, name: str):
    """``name=@FILE.json``: a number or nested lists of numbers, or an object holding
    ``name`` (adcli's own JSON results, keyed by base name)."""
    if not path:
        raise PointError(f"{option} {name}=@ must be followed by a file name")
    obj = _read_json(path, option, f"{name}=@{path}")
    if isinstance(obj, dict):
        if name not in obj:
            raise PointError(f"{option} {name}=@{path}: the file has no '{name}'")
        obj = obj[name]
    return _check_nested(obj, f"{option} {name}=@{path}")


def _elements_of(inputs) -> dict[str, dict[tuple[int, ...], str]]:
    """The expression's indexed inputs: base -> {index: element name}."""
    from ..language.elements import split_element

    found: dict[str, dict[tuple[int, ...], str]] = {}
    for name in inputs:
        parts = split_element(name)
        if parts is not None:
            found.setdefault(parts[0], {})[parts[1]] = name
    return found


def expand_names(names: list[str], inputs) -> list[str]:
    """``--wrt x`` means every element of x (x[1], x[2], ...), in the tape's order."""
    known = set(inputs)
    if all(n in known for n in names):
        return names
    elements = _elements_of(inputs)
    out: list[str] = []
    for name in names:
        key = _element_key(name) or name
        if key in elements:
            out.extend(elements[key].values())
        else:
            out.append(key)
    return list(dict.fromkeys(out))


def bind_elements(point: dict, inputs, option: str = "--at") -> dict[str, float]:
    """``point`` with every indexed variable's values given to its elements: one number for
    every element (``x=0``), or nested lists that must cover exactly the indices the
    expression uses (the first item is index 1, or 0 where the expression uses index 0)."""
    known = set(inputs)
    if all(not isinstance(v, list) and (k in known or "[" in k) for k, v in point.items()):
        return point
    elements = _elements_of(inputs)
    out: dict[str, float] = {}
    for name, value in point.items():
        if name in known or name not in elements:
            if isinstance(value, list):
                raise PointError(f"{option} {name}= gives a list, but '{name}' is not an "
                                 "indexed variable of the expression"
                                 + (" (it is a scalar)" if name in known else ""))
            out[name] = value
            continue
        used = elements[name]
        if not isinstance(value, list):
            for element in used.values():
                if element in point:
                    continue  # x=0,x[3]=1: the element's own value wins
                out[element] = value
            continue
        out.update(_from_lists(name, value, used, option))
    return out


def _from_lists(name: str, value: list, used: dict[tuple[int, ...], str],
                option: str) -> dict[str, float]:
    from ..language.elements import element_name

    rank = len(next(iter(used)))
    origin = [0 if any(ix[d] == 0 for ix in used) else 1 for d in range(rank)]
    top = [max(ix[d] for ix in used) for d in range(rank)]
    span = f"{name}[{','.join(f'{o}..{t}' for o, t in zip(origin, top))}]"
    out: dict[str, float] = {}
    stack: list = [(value, ())]
    while stack:
        items, prefix = stack.pop()
        d = len(prefix)
        if d >= rank:
            raise PointError(f"{option} {name}: lists nested {d + 1} deep, but {name} has "
                             f"{rank} ind{'ex' if rank == 1 else 'ices'} (it uses {span})")
        if len(items) > top[d] - origin[d] + 1:
            extra = element_name(name, (*prefix, top[d] + 1)).rstrip("]")
            extra += ",...]" if d + 1 < rank else "]"
            raise PointError(f"{option} {name}: {len(items)} values where the expression "
                             f"uses {span}: {extra} is extra")
        for k, v in enumerate(items):
            index = (*prefix, origin[d] + k)
            if isinstance(v, list):
                stack.append((v, index))
            elif v is None:
                continue
            elif len(index) < rank:
                raise PointError(f"{option} {name}: a number where a list of "
                                 f"{element_name(name, index)}.. belongs ({name} has "
                                 f"{rank} indices)")
            else:
                out[element_name(name, index)] = v
    for element in used.values():
        if element not in out:
            raise PointError(f"{option} {name}: no value for {element} (the expression uses "
                             f"{span})")
    return out


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


def _read_json(path: str, option: str, where: str) -> Any:
    """A bounded JSON file of values; adcli's own results are unwrapped to the point they
    hold (``minimum``/``point``/``parameters``). ``where`` names it in errors."""
    import json

    from .inputs import read_bounded

    raw = read_bounded(path, MAX_POINT_FILE_BYTES, f"'{path}'", option)
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PointError(f"{option} {where}: not a JSON file") from None
    if isinstance(obj, dict):
        for key in _POINT_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def read_point_file(path: str, option: str = "--at") -> dict[str, float]:
    """``--at @FILE``: values from a JSON object ``{"name": number, ...}``, or from the
    ``minimum``/``point`` of ``adcli minimize --json`` or the ``parameters`` of ``adcli fit
    --json``, so a fitted model can be evaluated without copying 33 numbers by hand."""
    if not path:
        raise PointError(f"{option} '@' must be followed by a file name, as in @fit.json")
    obj = _read_json(path, option, f"@{path}")
    if not isinstance(obj, dict):
        raise PointError(f"{option} @{path}: expected a JSON object of name: number")
    point: dict[str, float] = {}
    for name, value in obj.items():
        if not _NAME.match(name) and _element_key(name) is None:
            raise PointError(f"{option} @{path}: '{name}' is not a valid name")
        name = _element_key(name) or name
        if isinstance(value, list):  # an indexed variable's values, as adcli writes them
            point[name] = _check_nested(value, f"{option} @{path}: {name}")
            continue
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
