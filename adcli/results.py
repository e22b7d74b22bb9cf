"""Plain result records, shared by the JSON writer and the rich renderer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class NodeRow:
    id: int
    op: str
    label: str
    value: Any
    grad: Any
    args: tuple[int, ...] = ()


@dataclass(slots=True)
class GradReport:
    value: Any
    gradient: dict[str, Any]
    nodes: list[NodeRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    node_count: int = 0  # nodes on the tape (``nodes`` may hold only the first of them)

    def to_json(self) -> dict:
        """``nodes`` lists the first nodes of the tape (``--max-rows``); ``nodes_omitted`` says
        how many more ``node_count`` has, so a huge tape's JSON stays small."""
        return {
            "value": self.value,
            "gradient": self.gradient,
            "nodes": [{"id": n.id, "op": n.op, "label": n.label, "value": n.value,
                       "grad": n.grad, "args": list(n.args)} for n in self.nodes],
            "node_count": self.node_count,
            "nodes_omitted": self.node_count - len(self.nodes),
        }


def jsonable(obj: Any) -> Any:
    """Numbers as JSON numbers, except non-finite ones as "nan", "inf", "-inf" (JSON has none)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
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


def dumps(obj: Any) -> str:
    """One JSON document, strictly valid (no NaN/Infinity tokens)."""
    return json.dumps(jsonable(obj), allow_nan=False)
