"""The objective: a tape with parameters, fixed values and (optionally) columns of data.

The only part of the minimisers that knows about tapes and sweeps: it turns them into
``f(x) -> (value, gradient)`` for the pure-numpy driver (:mod:`adcli.optimize.driver`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..core import sweeps
from ..core.tape import Tape
from ..derive.curvature import hessian
from ..errors import AdcliError
from ..fast.policy import compiled
from ..io.data import Dataset, batches
from ..results import natural_key

#: Fits over data run generated numpy code (adcli.fast), and compiling it costs about 7 kB
#: of memory a tape node: bigger tapes are refused with data.
DATA_MAX_NODES = 100_000


class Objective:
    """``f(x) -> (value, gradient)`` over the parameters ``names`` of a tape.

    Other inputs are fixed numbers or data columns.  With data the objective is the mean (or
    sum) of the expression over the rows, computed by vectorised sweeps over numpy columns
    (batch backpropagation, no Python loop over rows; :meth:`CompiledTape.sweep_columns` runs
    them in cache-sized blocks of rows): each scalar parameter's adjoint, summed over the rows
    and scaled by 1/rows, is the mean's gradient.
    """

    def __init__(self, tape: Tape, names: Sequence[str], fixed: Mapping[str, float] | None = None,
                 data: Dataset | None = None, reduce: str = "mean",
                 batch_size: int | None = None, seed: int | None = None) -> None:
        if reduce not in ("mean", "sum"):
            raise AdcliError(f"unknown reduction '{reduce}' (use mean or sum)")
        self.tape = tape
        self.names = list(names)
        self.fixed = {k: np.float64(v) for k, v in (fixed or {}).items() if k in tape.inputs}
        used = [n for n in data.names if n in tape.inputs] if data is not None else []
        if used and len(tape) > DATA_MAX_NODES:
            raise AdcliError(f"the tape has {len(tape):,} nodes; fits over data compile it to "
                             f"numpy code, which needs about 7 kB a node, so they are limited "
                             f"to {DATA_MAX_NODES:,} nodes")
        self.data = data if used else None
        self.columns = data.take(slice(None), used) if used else {}
        self.rows = data.rows if used else 1
        self.reduce = reduce
        self.batch_size = batch_size if (batch_size and used and batch_size < self.rows) else None
        self._batches: Iterator[np.ndarray] | None = None
        if self.batch_size:
            self._batches = batches(self.rows, self.batch_size, seed)
        self.evaluations = 0
        self._bound = False  # the point's names checked (on the first sweep)
        position = {name: i for i, name in enumerate(tape.inputs)}
        self._slots = [position[n] for n in self.names]

    @property
    def stochastic(self) -> bool:
        return self.batch_size is not None

    @property
    def epoch(self) -> int:
        """Minibatch steps per pass over the data."""
        return -(-self.rows // self.batch_size) if self.batch_size else 1

    def point(self, x: np.ndarray, columns: Mapping[str, np.ndarray] | None = None) -> dict:
        point: dict[str, Any] = dict(self.fixed)
        point.update(self.columns if columns is None else columns)
        point.update(zip(self.names, (np.float64(v) for v in x)))
        return point

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The full objective and its gradient."""
        scale = 1.0 if self.reduce == "sum" else 1.0 / self.rows
        return self._sweep(x, self.columns, self.rows, scale)

    def sample(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """An unbiased minibatch estimate of the objective and its gradient."""
        assert self._batches is not None
        rows = next(self._batches)
        scale = (self.rows if self.reduce == "sum" else 1.0) / len(rows)
        columns = {n: c[rows] for n, c in self.columns.items()}
        return self._sweep(x, columns, len(rows), scale)

    def _sweep(self, x: np.ndarray, columns: Mapping[str, np.ndarray], count: int,
               scale: float) -> tuple[float, np.ndarray]:
        """objective = scale * (sum of the expression over ``count`` rows)."""
        self.evaluations += 1
        point = self.point(x, columns)
        if not self._bound:
            sweeps.bind(self.tape, point)  # the interpreter's message for a missing value
            self._bound = True
        fast = compiled(self.tape)
        if not columns:
            # Straight-line code on Python floats: the interpreter's numbers, bit for bit.
            value, grads = fast.auto()[1](*(float(point[n]) for n in self.tape.inputs))
            return float(value), np.array([grads[i] for i in self._slots], dtype=np.float64)
        # Blocked numpy sweeps over the rows (adcli.fast), as Function.grad_sum runs them.
        total, grads = fast.grad_sum(point, self.names)
        with np.errstate(all="ignore"):
            return float(total * scale), np.array(grads, dtype=np.float64) * scale

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The exact Hessian of the objective (for ``newton``)."""
        if self.stochastic:
            raise AdcliError("--method newton cannot use --batch-size")
        # Over data columns adcli.derive.curvature sums the rows, as the reverse sweep does.
        H = np.asarray(hessian(self.tape, self.point(x), self.names,
                                rows=self.rows if self.columns else None),
                        dtype=np.float64)
        if self.columns:
            H = H * (1.0 if self.reduce == "sum" else 1.0 / self.rows)
        return H

    def branches(self, x: np.ndarray) -> np.ndarray:
        """Which side of its kink every op with one is on at ``x``, in every row: the sign of
        the argument of abs, relu, sign and step, of the difference of max's and min's, and
        the quadrant of hypot's and atan2's arguments (their kink is the origin).  Where two
        points agree, the tape's gradient is one smooth function between them (ADOL-C's
        branch test), so a change of the gradient there is no jump.  Empty without kinks."""
        return branch_sides(self.tape, self.point(x))

    def score_outer(self, x: np.ndarray) -> np.ndarray:
        """sum_i g_i g_i^T over the rows, g_i the gradient of row i's term (the middle of
        the sandwich covariance).  One column sweep: each parameter goes in as a column of
        its value, so the sweep hands back its per-row adjoints instead of their sum."""
        if not self.columns:
            g = self._sweep(x, {}, 1, 1.0)[1]
            return np.outer(g, g)
        return score_outer(self.tape, self.point(x), self.names, self.rows)


def branch_sides(tape: Tape, point: Mapping[str, Any]) -> np.ndarray:
    """:meth:`Objective.branches` of ``tape`` at ``point`` (its data columns, if any): in
    memory over every row, on Dask over one partition's rows."""
    kinked = [(op, args) for _, op, args in tape.instructions() if op.kink is not None]
    if not kinked:
        return np.zeros(0)
    sides = []
    values = sweeps.evaluate(tape, point)
    with np.errstate(all="ignore"):
        for op, args in kinked:
            argv = [values[a] for a in args]
            if len(argv) == 1:
                side = np.sign(argv[0])
            elif op.name in ("max", "min"):
                side = np.sign(argv[0] - argv[1])
            else:  # hypot and atan2 at the origin: the quadrant (the gradient turns)
                side = np.concatenate([np.ravel(np.sign(v)) for v in argv])
            sides.append(np.ravel(np.asarray(side, dtype=np.float64)))
    return np.concatenate(sides)


#: Rows per column sweep of :func:`score_outer`: the per-row gradients of a block take at most
#: this many numbers (32 MB), whatever the number of rows.
SCORE_BLOCK_NUMBERS = 1 << 22


def score_outer(tape: Tape, point: Mapping[str, Any], names: Sequence[str],
                rows: int) -> np.ndarray:
    """sum_i g_i g_i^T of ``tape`` at ``point`` (``rows`` rows of data columns), g_i the
    gradient of row i w.r.t. ``names``: column sweeps in which each parameter goes in as a
    column of its value, so that the sweep hands back its per-row adjoints, not their sum;
    a block of rows at a time, so memory stays bounded.  In memory and per partition on Dask."""
    fast = compiled(tape)
    slot = {name: i for i, name in enumerate(tape.inputs)}
    p = len(names)
    step = max(1, SCORE_BLOCK_NUMBERS // max(p, 1))
    total = np.zeros((p, p))
    for start in range(0, rows, step):
        count = min(step, rows - start)
        block = {n: (v[start:start + count] if np.ndim(v) else v) for n, v in point.items()}
        for name in names:
            block[name] = np.full(count, np.float64(point[name]))
        _, grads = fast.sweep_columns([block[n] for n in tape.inputs], wrt=list(names))
        G = np.column_stack([np.broadcast_to(np.asarray(grads[slot[n]], dtype=np.float64),
                                             (count,)) for n in names])
        with np.errstate(all="ignore"):
            total += G.T @ G
    return total


def build_objective(tape: Tape, start: Mapping[str, float], wrt: Sequence[str] | None = None,
                    data: Any = None, factory: Any = Objective,
                    **kwargs: Any) -> tuple[Objective, np.ndarray]:
    """Decide which inputs are parameters and where they start.

    Data columns bind variables of the same name.  Without ``wrt`` every other variable is a
    parameter, starting at its ``start`` value or 0.  With ``wrt`` only those are, and every
    remaining variable must be a column or have a value in ``start``. ``factory`` makes the
    objective (:class:`Objective`; :class:`adcli.partitioned.distributed.DaskObjective` for data on
    Dask, whose ``data`` is a :class:`adcli.io.sources.PartitionedData`).
    """
    columns = set(data.names) if data is not None else set()
    clash = [n for n in start if n in columns]
    if clash:
        raise AdcliError(f"'{clash[0]}' is a column of the data file; it cannot also be given "
                         "a value with --from")
    inputs = list(tape.inputs)
    if wrt is None:
        names = [n for n in inputs if n not in columns]
    else:
        names = list(wrt)
        for n in names:
            if n in columns:
                raise AdcliError(f"--wrt '{n}' is a column of the data file, not a parameter")
            if n not in tape.inputs:
                raise AdcliError(f"--wrt '{n}' is not a variable of the expression "
                                 f"(variables: {', '.join(inputs) or 'none'})")
        unset = [n for n in inputs if n not in columns and n not in names and n not in start]
        if unset:
            listed = ", ".join(f"'{n}'" for n in unset[:10])
            listed += f" and {len(unset) - 10:,} more" if len(unset) > 10 else ""
            example = ",".join(f"{n}=1" for n in unset[:3])
            one = len(unset) == 1
            if data is None:
                what = (f"variable {listed} is not a parameter (--wrt)" if one
                        else f"variables {listed} are not parameters (--wrt)")
            else:
                what = (f"variable {listed} is neither a parameter (--wrt) nor a column of the "
                        "data file" if one else f"variables {listed} are neither parameters "
                        "(--wrt) nor columns of the data file")
            raise AdcliError(f"{what} and {'has' if one else 'have'} no value; give "
                             f"{'it one' if one else 'them values'} with --from, e.g. "
                             f"--from {example}")
    if not names:
        if not inputs:
            raise AdcliError("there is nothing to optimise: EXPR has no variables")
        raise AdcliError("there is nothing to optimise: every variable is a data column")
    if wrt is None:
        names.sort(key=natural_key)  # a1 a2 … a10 b1 …, not the order of first use
    fixed = {n: v for n, v in start.items() if n not in names}
    x0 = np.array([start.get(n, 0.0) for n in names], dtype=np.float64)
    return factory(tape, names, fixed, data, **kwargs), x0


def binding_warnings(objective: Objective, data: Dataset, start: Mapping[str, float],
                     wrt: Sequence[str] | None, lets: Collection[str] = ()) -> list[str]:
    """What a fit did with names silently: a variable missing from the data file becomes a
    parameter (a CSV without its ``y`` column would fit ``y``), and a column named like a let
    binding is ignored (the binding wins).  Naming the parameters with ``--wrt`` or ``--from``
    says the first is meant."""
    where = f"'{data.path}'" if data.path else "the data file"
    warnings = [f"column '{c}' of {where} is not used: '{c}' is a let binding in the "
                "expression, and the binding takes precedence" for c in data.names if c in lets]
    if wrt is None:
        implicit = [n for n in objective.names if n not in start]
        if implicit:
            shown = ", ".join(f"'{n}'" for n in implicit[:8])
            if len(implicit) > 8:
                shown += f" and {len(implicit) - 8} more"
            columns = ", ".join(data.names)
            one = len(implicit) == 1
            warnings.append(
                f"{shown} {'is not a column' if one else 'are not columns'} of {where} "
                f"(columns: {columns}) and {'becomes a parameter' if one else 'become parameters'}"
                "; name the parameters with --wrt to make a missing column an error")
    return warnings

