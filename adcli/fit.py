"""Nonlinear least squares: ``LHS ~ MODEL`` over the rows of data, fitted by a trust-region
Levenberg-Marquardt method on the exact Jacobian of the residuals.

The residual of row i is ``LHS_i - MODEL_i``. Every name of the formula that is not a data column
is a parameter. The Jacobian d r_i / d b_j comes from the tape in one vectorised reverse sweep
over the rows: the parameters enter as constant columns, so each row's reverse sweep gives that
row's gradient (:func:`_jacobian`, the one place that reaches the compiled sweeps).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import AdcliError, ParseError
from .function import Function, gc_paused
from .parser import DEFAULT_MAX_SOURCE_BYTES, parse_program
from .syntax import Program, Statement, call, iter_postorder


class FitError(AdcliError):
    """A formula or option that cannot be fitted (exit status 2)."""


# --------------------------------------------------------------------------- the formula


def _tilde_positions(text: str) -> list[int]:
    """Offsets of every ``~`` outside ``#`` comments."""
    found, in_comment = [], False
    for i, ch in enumerate(text):
        if ch == "\n":
            in_comment = False
        elif ch == "#":
            in_comment = True
        elif ch == "~" and not in_comment:
            found.append(i)
    return found


def _blank(text: str, start: int, stop: int) -> str:
    """``text`` with [start, stop) turned to spaces (newlines kept): lines and columns of
    everything else stay where they were, so parse errors point into the user's text."""
    middle = "".join(c if c == "\n" else " " for c in text[start:stop])
    return text[:start] + middle + text[stop:]


def _locate(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass
class Formula:
    """A parsed ``LHS ~ MODEL``: the residual program ``lets; LHS - MODEL`` and its parts."""

    program: Program
    lhs: Any
    model: Any
    lets: dict[str, Any]

    def names(self, node: Any) -> set[str]:
        """Input names that ``node`` reads, following let-bindings."""
        return {n.name for n in iter_postorder(node, self.lets)
                if n.op == "var" and n.name not in self.lets}


def parse_formula(text: str, *, max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES) -> Formula:
    """Parse ``[lets;] LHS ~ MODEL``. The two sides are parsed from copies of the text with the
    other side blanked out, so every error's line and column are those of the user's text."""
    tildes = _tilde_positions(text)
    if not tildes:
        raise FitError("a formula needs '~' between the response and the model, as in "
                       "\"y ~ a*exp(-b*x)\"")
    if len(tildes) > 1:
        line, col = _locate(text, tildes[1])
        raise FitError("a formula has exactly one '~'", source=text, line=line, column=col)
    at = tildes[0]
    line_start = text.rfind("\n", 0, at) + 1
    stmt_start = max(line_start, text.rfind(";", 0, at) + 1)
    rest = text[at + 1:]
    if any(ln.split("#", 1)[0].strip(" \t\r;") for ln in rest.split("\n")[1:]) or \
            ";" in rest.split("\n", 1)[0].split("#", 1)[0].rstrip(" \t\r;"):
        line, col = _locate(text, at)
        raise FitError("the formula 'LHS ~ MODEL' must be the last statement", source=text,
                       line=line, column=col)
    if not text[stmt_start:at].strip():
        line, col = _locate(text, at)
        raise FitError("nothing before '~': write the response, as in \"y ~ a*x\"",
                       source=text, line=line, column=col)
    if not rest.split("#", 1)[0].strip(" \t\r;\n"):
        line, col = _locate(text, at)
        raise FitError("nothing after '~': write the model, as in \"y ~ a*x\"",
                       source=text, line=line, column=col + 1)
    if "=" in text[stmt_start:at]:
        line, col = _locate(text, stmt_start + text[stmt_start:at].index("=") + 1)
        raise FitError("the formula's left side cannot be a let binding; write 'LHS ~ MODEL'",
                       source=text, line=line, column=col)

    def side(blanked: str) -> Program:
        try:
            return parse_program(blanked, max_bytes=max_bytes)
        except AdcliError as err:
            if err.source is not None:
                err.source = text  # same lines and columns; show the user's own text
            raise

    with gc_paused():
        left = side(_blank(text, at, len(text)))
        right = side(_blank(text, stmt_start, at + 1))
        lhs, model = left.statements[-1].expr, right.statements[-1].expr
        line, col = _locate(text, at)
        residual = call("sub", lhs, model, line=line, column=col)
        statements = left.statements[:-1] + [Statement(None, residual, line, col)]
    lets = {s.name: s.expr for s in statements[:-1]}
    return Formula(Program(statements, text), lhs, model, lets)


# --------------------------------------------------------------------------- residuals, Jacobian


def _jacobian(function: Function, bound: set[str], values: list[Any], wrt: list[str]
              ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual column and per-row derivatives d r / d ``wrt`` (inputs in tape order, with the
    parameters passed as full columns so every row keeps its own gradient). The one call into
    the compiled sweeps: re-point it here if they move."""
    return function.compiled(bound).sweep_columns(values, wrt=wrt)


class Residuals:
    """r(b) and J(b) of a formula over data columns, optionally divided by sigma per row."""

    def __init__(self, formula: Formula, columns: Mapping[str, np.ndarray],
                 sigma: np.ndarray | None = None) -> None:
        self.formula = formula
        self.function = Function(formula.program)
        self.bound = set(columns)
        tape = self.function.tape(self.bound)
        self.inputs = list(tape.inputs)
        self.params = [n for n in self.inputs if n not in columns]
        self.rows = len(next(iter(columns.values())))
        self.columns = {n: np.asarray(columns[n], dtype=np.float64) for n in self.inputs
                        if n in columns}
        self.weight = None if sigma is None else 1.0 / np.asarray(sigma, dtype=np.float64)
        self.evaluations = 0
        self.jacobians = 0

    def _values(self, b: np.ndarray) -> list[Any]:
        at = dict(zip(self.params, b))
        return [self.columns[n] if n in self.columns else np.full(self.rows, at[n])
                for n in self.inputs]

    def both(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and Jacobian (rows x parameters) at ``b``, in one sweep."""
        value, grads = _jacobian(self.function, self.bound, self._values(b), self.params)
        by_name = dict(zip(self.inputs, grads))
        r = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.rows,))
        jac = np.empty((self.rows, len(self.params)))
        for j, name in enumerate(self.params):
            jac[:, j] = by_name[name]
        if self.weight is not None:
            r = r * self.weight
            jac *= self.weight[:, None]
        self.jacobians += 1
        return np.array(r, dtype=np.float64), jac

    def residuals(self, b: np.ndarray) -> np.ndarray:
        """Residuals only (a trial step): parameters as scalars, no gradient passes."""
        at = dict(zip(self.params, b))
        values = [self.columns[n] if n in self.columns else np.float64(at[n])
                  for n in self.inputs]
        value, _ = _jacobian(self.function, self.bound, values, [])
        r = np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), (self.rows,)))
        if self.weight is not None:
            r *= self.weight
        self.evaluations += 1
        return r


# --------------------------------------------------------------------------- the engine

#: Relative tolerances, MINPACK's meaning (scale-free): stop when one step reduces the sum of
#: squares by less than FTOL of it, when the step is below XTOL of the parameters' size, or when
#: the cosine between the residual vector and every Jacobian column is below GTOL.
FTOL = XTOL = 1e-15
GTOL = 1e-15
METHOD = "trf"

REASONS = {
    0: "the maximum number of evaluations was reached",
    1: "the residuals are orthogonal to the Jacobian's columns (gtol)",
    2: "the sum of squares stopped decreasing (relative change below ftol)",
    3: "the step became negligible relative to the parameters (xtol)",
    4: "the sum of squares stopped decreasing and the step became negligible (ftol, xtol)",
}


class _Orthogonal(Exception):
    """Raised from the Jacobian callback when MINPACK's gtol test passes at an accepted point
    (scipy's own gtol is an absolute gradient norm, which depends on the data's scale)."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        self.x = x


def max_cosine(r: np.ndarray, jac: np.ndarray) -> float:
    """max over columns j of |J_j . r| / (|J_j| |r|): 0 at a stationary point, whatever the
    scale of the residuals or of the parameters (MINPACK's gtol quantity)."""
    rn = float(np.linalg.norm(r))
    if rn == 0.0:
        return 0.0
    norms = np.linalg.norm(jac, axis=0)
    dots = np.abs(jac.T @ r)
    with np.errstate(all="ignore"):
        cos = np.where(norms > 0, dots / (norms * rn), 0.0)
    return float(np.max(cos)) if cos.size else 0.0


@dataclass
class Solution:
    x: np.ndarray
    status: int
    evaluations: int
    jacobians: int


def solve(res: Residuals, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          max_evaluations: int, ftol: float = FTOL, xtol: float = XTOL, gtol: float = GTOL
          ) -> Solution:
    """Trust-region reflective least squares (scipy's ``trf``: Levenberg-Marquardt steps
    within bounds, exact trust-region subproblem by SVD, MINPACK-style parameter scaling by
    the Jacobian's column norms) on adcli's exact Jacobian."""
    from scipy.optimize import least_squares

    def jac(b: np.ndarray) -> np.ndarray:
        r, j = res.both(b)
        if gtol > 0 and max_cosine(r, j) <= gtol:
            raise _Orthogonal(np.array(b))
        return j

    start_jac = res.jacobians
    start_eval = res.evaluations
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's note that its own gtol test is off
            out = least_squares(res.residuals, x0, jac=jac, bounds=(lower, upper),
                                method="trf", x_scale="jac", ftol=ftol, xtol=xtol, gtol=None,
                                max_nfev=max_evaluations)
        x, status = out.x, int(out.status)
    except _Orthogonal as stop:
        x, status = stop.x, 1
    return Solution(x, status, res.evaluations - start_eval, res.jacobians - start_jac)
