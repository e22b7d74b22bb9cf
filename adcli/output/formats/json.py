"""The JSON format, and the one JSON writer: a record's keys in the record's order
(:func:`adcli.results.fields_of`), every digit of every number, non-finite numbers as the
strings "nan", "inf", "-inf" (JSON has none). numpy is not imported here: a command at a point
of plain floats writes its JSON without it (start-up time)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from ...results import fields_of, is_record


def show(record: Any, **options: Any) -> None:
    """The record as one line of JSON (display options do not apply)."""
    sys.stdout.write(dumps(record) + "\n")


def to_json(obj: Any) -> Any:
    """A record as JSON-ready data: dicts in the record's key order, records inside records and
    lists walked; numbers as they are (:func:`dumps` writes non-finite ones as strings)."""
    if is_record(obj):
        return {k: to_json(v) for k, v in fields_of(obj).items()}
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list) and obj and is_record(obj[0]):
        return [to_json(v) for v in obj]
    return obj


def jsonable(obj: Any) -> Any:
    """Numbers as JSON numbers, except non-finite ones as "nan", "inf", "-inf" (JSON has none)."""
    if is_record(obj):
        return jsonable(fields_of(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    np = sys.modules.get("numpy")
    if np is None:  # so obj is no numpy value: the same cases without numpy's types
        return _plain_jsonable(obj)
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return obj


def _plain_jsonable(obj: Any) -> Any:
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return float(obj)
    return obj


def dumps(obj: Any) -> str:
    """The one JSON writer: a record (or plain data) as one JSON document, every digit of every
    number, strictly valid (no NaN/Infinity tokens)."""
    return json.dumps(jsonable(obj), allow_nan=False)
