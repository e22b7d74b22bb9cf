"""Exact Hessians: reverse mode over the symbolic gradient.

The gradient of the program is built once as expressions (:func:`adcli.derive.symbolic.gradient`,
the op table's symbolic rules), each component is lowered to its own tape (hash-consing keeps each
one linear in the size of the original tape), and one reverse sweep over gradient tape ``i`` gives
row ``i`` of the Hessian.  No finite differences anywhere: the result is exact up to float64
rounding.  The gradient tapes are cached per (tape, names), so Newton's method can ask for the
Hessian at many points without rebuilding anything.

At points where the symbolic rules differ from the numeric ones (see :mod:`adcli.derive.symbolic`,
e.g. d/dy x^y at x = 0) the Hessian has nan entries rather than a silently wrong number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..core import sweeps
from ..core.lower import lower
from ..core.syntax import Program, Statement
from ..core.tape import Tape
from ..errors import AdcliError
from .symbolic import gradient

#: n gradient tapes of about the tape's size each, and an n x n matrix: refused beyond these
#: (before any work), so 10,000 variables stop at once instead of filling the memory.
MAX_VARIABLES = 2_000
MAX_WORK = 2_000_000  # variables x tape nodes


def check_size(nodes: int, n: int) -> None:
    """Refuse a Hessian too big to build: ``n`` variables over a tape of ``nodes``."""
    if n > MAX_VARIABLES or n * nodes > MAX_WORK:
        raise AdcliError(
            f"a Hessian of {n:,} variables over a tape of {nodes:,} nodes needs {n:,} gradient "
            f"tapes and a {n:,} x {n:,} matrix, over the limits ({MAX_VARIABLES:,} variables, "
            f"{MAX_WORK:,} variables x nodes)", hint="choose fewer variables with --wrt")


class HessianProgram:
    """The gradient of ``tape`` w.r.t. ``names`` as tapes, ready to be swept at any point."""

    def __init__(self, tape: Tape, names: Iterable[str] | None = None) -> None:
        self.tape = tape
        self.names = list(tape.inputs) if names is None else list(names)
        check_size(len(tape), len(self.names))
        derivative = gradient(tape, self.names)
        bound = tuple(tape.inputs)  # input names (incl. a bound pi/e) stay variables
        self.gradient_tapes = [
            lower(Program([Statement(None, derivative.exprs[name])]), bound=bound)
            for name in self.names]

    def gradient_and_hessian(self, point: Mapping[str, Any], rows: int | None = None
                             ) -> tuple[np.ndarray, np.ndarray]:
        """(gradient vector, Hessian matrix) at ``point``, in the order of ``names``.

        With ``rows`` (the objective of a fit: the sum over ``rows`` rows of data) a gradient
        component that does not depend on the rows (that of a penalty such as 0.5*c^2) counts
        once per row, as the per-row seed of the fits' reverse sweeps counts it."""
        n = len(self.names)
        grad = np.zeros(n)
        hess = np.zeros((n, n))
        for i, gtape in enumerate(self.gradient_tapes):
            values = sweeps.evaluate(gtape, point)
            out = values[gtape.output]
            times = rows if rows is not None and np.ndim(out) == 0 else 1
            grad[i] = _scalar(out) * times
            adjoint = sweeps.reverse(gtape, values)
            row = sweeps.input_gradient(gtape, values, adjoint)
            for j, name in enumerate(self.names):
                if name in row:
                    hess[i, j] = _scalar(row[name]) * times
        return grad, hess

    def __call__(self, point: Mapping[str, Any], rows: int | None = None) -> np.ndarray:
        return self.gradient_and_hessian(point, rows)[1]


def _scalar(v: Any) -> float:
    # Data columns: the objective is summed over rows (as scalar parameters' gradients are).
    return float(np.sum(v)) if np.ndim(v) else float(v)


def hessian_program(tape: Tape, names: Iterable[str] | None = None) -> HessianProgram:
    """The :class:`HessianProgram` of ``tape`` w.r.t. ``names``, built once and kept on the
    tape (:meth:`Tape.derived`), so Newton's method rebuilds nothing from step to step."""
    key_names = tuple(tape.inputs) if names is None else tuple(names)
    return tape.derived((HessianProgram, key_names), HessianProgram, tape, key_names)


def hessian(tape: Tape, point: Mapping[str, Any],
            names: Iterable[str] | None = None, rows: int | None = None) -> np.ndarray:
    """The exact (n, n) float64 Hessian of the tape's output at ``point`` w.r.t. ``names``
    (default: every input, in order of first use); ``rows``: of a sum over rows of data
    (see :meth:`HessianProgram.gradient_and_hessian`)."""
    return hessian_program(tape, names)(point, rows)


def gradient_and_hessian(tape: Tape, point: Mapping[str, Any],
                         names: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradient vector and Hessian together (what Newton's method needs per step)."""
    return hessian_program(tape, names).gradient_and_hessian(point)


def eigenvalues(hess: np.ndarray) -> np.ndarray:
    """Eigenvalues in ascending order (all > 0: a minimum; mixed signs: a saddle).

    The Hessian is symmetric in exact arithmetic; it is symmetrised first so rounding cannot
    produce complex eigenvalues. nan entries give nan eigenvalues instead of an exception.
    """
    h = np.asarray(hess, dtype=np.float64)
    if h.size == 0:
        return np.zeros(0)
    if not np.all(np.isfinite(h)):
        return np.full(h.shape[0], np.nan)
    return np.linalg.eigvalsh(0.5 * (h + h.T))

