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


# Why a run stopped.  Only GRAD_TOL and LS_TOL count as converged.
GRAD_TOL = "grad-tol"
LS_TOL = "ls-tol"  # the least-squares engine's relative tests (adcli.fitting)
MAX_STEPS = "max-steps"
NO_PROGRESS = "no-progress"
DIVERGED = "diverged"
UNBOUNDED = "unbounded"
INTERRUPTED = "interrupted"

REASONS = {
    GRAD_TOL: "the gradient norm fell below --tol",
    LS_TOL: "the least-squares engine's relative tests were met",
    MAX_STEPS: "the step limit was reached",
    NO_PROGRESS: "no further progress was possible",
    DIVERGED: "the value became non-finite; the last finite point is reported",
    UNBOUNDED: "the value fell without bound; the objective looks unbounded below",
    INTERRUPTED: "interrupted; the best point so far is reported",
}


@dataclass(slots=True)
class MinimizeResult:
    """Where a run ended and why.  ``to_json`` gives exactly the documented fields."""

    names: list[str]
    x: np.ndarray
    value: float
    grad: np.ndarray
    iterations: int
    evaluations: int
    reason: str
    method: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.reason in (GRAD_TOL, LS_TOL)

    @property
    def grad_norm(self) -> float:
        return norm(self.grad)

    @property
    def minimum(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.x)}

    def to_json(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "value": float(self.value),
                "grad_norm": self.grad_norm, "iterations": self.iterations,
                "evaluations": self.evaluations, "converged": self.converged,
                "reason": self.reason, "method": self.method}


def norm(v: Any) -> float:
    """The 2-norm, scaled by the largest entry first: ``np.linalg.norm`` squares the entries,
    so a finite gradient of 2.7e154 would have norm inf (and "diverge")."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    if a.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        m = float(np.max(a))
        if m == 0.0 or not math.isfinite(m):
            return float("nan") if np.isnan(a).any() else m
        return m * math.sqrt(float(np.sum(np.square(a / m))))

