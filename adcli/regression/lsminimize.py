"""``minimize --data`` on a squared residual: the objective is least squares, so method auto
runs the engine of ``adcli fit`` (:mod:`adcli.regression.leastsq`) and reports a
:class:`~adcli.results.MinimizeResult` (in memory here; over partitions by
:mod:`adcli.partitioned.bigfit`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.syntax import Program, Statement
from .fitting import Residuals, _time_message
from .formula import Formula
from .leastsq import FLAT_STOP, INTERRUPT_STATUS, REASONS, TIME_STATUS, Compressed, qr_sums, solve


def squared_residual(program: Program, tape: Any) -> Any | None:
    """The residual node ``r`` when the program's output is ``r^2`` or ``r*r`` (one node after
    hash-consing), else None: such an objective over data is a least-squares problem."""
    out = tape.output
    op = tape.ops[out]
    if isinstance(op, str):
        return None
    args = tape.args[out]
    square = (op.name == "pow" and tape.ops[args[1]] == "const"
              and float(tape.consts[args[1]]) == 2.0) or (op.name == "mul" and args[0] == args[1])
    if not square:
        return None
    lets = {s.name: s.expr for s in program.statements[:-1]}
    node = program.output
    seen = 0
    while node.op == "var" and node.name in lets and seen <= len(lets):
        node, seen = lets[node.name], seen + 1
    if node.op not in ("pow", "mul") or len(node.args) != 2:
        return None
    return node.args[0]


def least_squares_minimize(program: Program, objective: Any, x0: np.ndarray,
                           bounds: tuple[np.ndarray, np.ndarray] | None = None,
                           max_time: float | None = None, started: float | None = None,
                           journal: Any = None) -> Any | None:
    """``minimize --data`` on a squared residual by the least-squares engine: the same
    minimum as the mean (or sum) of squares, found by Levenberg-Marquardt on the exact
    Jacobian (within ``bounds``, lower and upper arrays over ``objective.names``, by trf's
    reflection; ``journal`` as :func:`fit`'s). Returns a :class:`~adcli.optimize.MinimizeResult`,
    or None when the objective is not of that form (the caller then runs its own method)."""
    if not objective.columns or objective.stochastic:
        return None
    node = squared_residual(program, objective.tape)
    if node is None:
        return None
    statements = list(program.statements[:-1]) + [Statement(None, node)]
    formula = Formula(Program(statements, program.source), None, node,
                      {s.name: s.expr for s in statements[:-1]})
    constants = {n for n in ("e", "pi") if n in objective.names or n in objective.fixed}
    res = Residuals(formula, objective.columns, None, objective.fixed, bound=constants)
    if sorted(res.free) != sorted(objective.names):
        return None  # e.g. a constant's name given a value: keep the general path
    order = [objective.names.index(n) for n in res.free]
    start = np.asarray(x0, dtype=np.float64)[order]
    with np.errstate(all="ignore"):
        r0 = res.residuals(start)
    if not np.all(np.isfinite(r0)):
        return None  # the general path reports a non-finite start its own way
    lower = np.full(len(start), -np.inf) if bounds is None else bounds[0][order]
    upper = np.full(len(start), np.inf) if bounds is None else bounds[1][order]
    engine = Compressed(lambda b: qr_sums(*res.both(b)), len(start),  # as Dask's
                        journal and journal(res.free))
    sol = solve(engine, start, lower, upper, 1000 * (len(start) + 1), max_time=max_time,
                started=started, interrupt=True)
    r, jac = engine.both(sol.x)
    return ls_result(objective, res.free, sol, r, jac, res.rows, bounds, max_time)


def ls_result(objective: Any, free: Sequence[str], sol: Any, r: np.ndarray, jac: np.ndarray,
              rows: int, bounds: tuple[np.ndarray, np.ndarray] | None,
              max_time: float | None) -> Any:
    """The :class:`~adcli.results.MinimizeResult` of ``minimize --data`` run by the
    least-squares engine (in memory or over partitions: ``r`` and ``jac`` need only have the
    rows' rᵀr and Jᵀr)."""
    from ..results import (
        DIVERGED,
        FLAT,
        INTERRUPTED,
        LS_TOL,
        MAX_STEPS,
        NO_PROGRESS,
        TIME_LIMIT,
        MinimizeResult,
    )

    scale = 1.0 if objective.reduce == "sum" else 1.0 / rows
    with np.errstate(all="ignore"):
        value = float(r @ r) * scale
        grad_free = 2.0 * scale * (jac.T @ r)
    x = np.empty(len(free))
    grad = np.empty(len(free))
    for k, name in enumerate(free):
        x[objective.names.index(name)] = sol.x[k]
        grad[objective.names.index(name)] = grad_free[k]
    if bounds is not None:  # what stops a bounded run: the part a feasible step can reduce
        from ..optimize.bounded import projected_gradient

        grad = projected_gradient(x, grad, *bounds)
    message = REASONS.get(sol.status, "")
    if not math.isfinite(value):
        reason, message = DIVERGED, ""
    elif sol.status == TIME_STATUS:
        reason, message = TIME_LIMIT, _time_message(max_time)
    elif sol.status == INTERRUPT_STATUS:
        reason, message = INTERRUPTED, "interrupted; the best point so far is reported"
    elif sol.status in (1, 2, 3, 4):
        reason = LS_TOL
    elif sol.status == 5:  # a kink: no step makes the progress the model promises
        reason = NO_PROGRESS
    elif sol.status == FLAT_STOP:  # the tests passed on a plateau
        reason = FLAT
    else:
        reason = MAX_STEPS
    return MinimizeResult(list(objective.names), x, value, grad, max(sol.jacobians - 1, 0),
                          sol.evaluations, reason, "least-squares", message)
