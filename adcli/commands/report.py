"""Builders for `adcli grad`, `eval`, `hessian` and `graph`: run the core and package the outcome
as plain result records and warnings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..core import sweeps
from ..core.diagnose import derivative_warnings, first_nonfinite_value
from ..core.sweeps import all_finite
from ..core.tape import Tape
from ..core.unparse import describe
from ..fast.scalar import sweep_nodes
from ..function import Function, select_wrt
from ..ops.codegen import FALLBACK
from ..results import GradReport, NodeRow


def unused_warnings(tape: Tape, point: Mapping[str, float]) -> list[str]:
    """A warning for each name given a value that the expression does not use (a typo, or a
    variable the constant folding removed)."""
    return [f"'{n}' is given a value but the expression does not use it"
            for n in point if n not in tape.inputs]


def nonfinite_warnings(tape: Tape, values: list) -> list[str]:
    """Where the value went non-finite, if it did."""
    if all_finite(values[tape.output]):
        return []
    bad = first_nonfinite_value(tape, values)
    return [f"the value is not finite: {bad.describe()}"] if bad else []


def float_value_and_grad(tape: Tape, point: Mapping[str, Any]) -> tuple | None:
    """:func:`adcli.core.sweeps.value_and_grad` by the float engine (the same numbers as Python
    floats, without numpy: start-up time) when the point is plain floats and every value
    and adjoint is finite; None otherwise, and the plain interpreter runs (numpy's own inf and
    nan, and the diagnostics that locate them)."""
    xs = []
    for name in tape.inputs:
        v = point.get(name)
        if v.__class__ is not float:
            return None
        xs.append(v)
    try:
        values, adjoint = sweep_nodes(tape, xs)
    except FALLBACK:
        return None
    isfinite = math.isfinite
    if not all(isfinite(v) for v in values) or \
            not all(g is None or isfinite(g) for g in adjoint):
        return None
    gradient = {name: 0.0 if adjoint[slot] is None else adjoint[slot]
                for name, slot in tape.inputs.items()}
    return values[tape.output], gradient, values, adjoint


def grad_report(function: Function, point: Mapping[str, float],
                wrt: Iterable[str] | None = None, nodes: bool = True,
                max_nodes: int | None = None) -> GradReport:
    """Value, gradient and (optionally) the per-node table of one reverse-mode evaluation:
    every node, or the first ``max_nodes`` (all a table of a big tape will show)."""
    tape = function.tape(point)
    names = select_wrt(tape, wrt) if wrt is not None else list(tape.inputs)
    swept = float_value_and_grad(tape, point)
    value, gradient, values, adjoint = swept or sweeps.value_and_grad(tape, point)
    report = GradReport(value, {n: gradient[n] for n in names}, node_count=len(tape.ops))
    if nodes:
        count = len(tape.ops) if max_nodes is None else min(max_nodes, len(tape.ops))
        labels = describe(tape, count=count)
        report.nodes = [
            NodeRow(i, tape.op_name(i), labels[i], values[i],
                    adjoint[i] if adjoint[i] is not None else 0.0, tape.args[i])
            for i in range(count)]
    report.warnings += derivative_warnings(tape, values, adjoint, gradient)
    report.warnings += unused_warnings(tape, point)
    return report


def eval_report(function: Function, point: Mapping[str, float]) -> tuple[float, list[str]]:
    tape = function.tape(point)
    value = function.eval(point)  # the fast path: the interpreter's bits
    # Every node's value is needed only to say where a non-finite value came from.
    warnings = [] if all_finite(value) else nonfinite_warnings(
        tape, sweeps.evaluate(tape, point))
    warnings += unused_warnings(tape, point)
    return value, warnings
