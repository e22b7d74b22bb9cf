"""Minimisers: one driver loop and a registry of update rules.

The driver owns everything the rules have in common: when to stop (gradient norm below ``tol``,
the step limit, no progress, a non-finite value, Ctrl-C), counting gradient evaluations, and
reporting each iteration to a callback (trace file, progress display, plot).  An update rule
only answers "from x, with value f and gradient g, where next?".  Adding a rule is one small
class and one decorator line.

Rules:

- ``gd``        x -= lr*g
- ``momentum``  PyTorch's SGD momentum: v = mu*v + g; x -= lr*v (not Sutskever's v = mu*v + lr*g)
- ``nesterov``  PyTorch's SGD(nesterov=True): v = mu*v + g; x -= lr*(g + mu*v)
- ``adam``      torch.optim.Adam / optax.adam defaults: betas (0.9, 0.999), eps 1e-8, lr 1e-3
- ``newton``    exact Hessian (adcli.hessian), shifted by tau*I until Cholesky succeeds when it is
                not positive definite (Nocedal & Wright, Algorithm 3.3), then Armijo backtracking
- ``bfgs``      dense inverse-Hessian BFGS with a strong-Wolfe line search (c1 1e-4, c2 0.9)
- ``lbfgs``     the same with the two-loop recursion over the last ``memory`` pairs

``auto`` (the default) is ``bfgs`` up to :data:`DENSE_LIMIT` parameters and ``lbfgs`` above,
because the dense inverse Hessian costs n^2 memory and n^2 work per step; with minibatches it is
``adam``, because line searches need exact values.  BFGS needs no learning rate, and its
superlinear convergence takes the standard test functions to machine precision in a few dozen
gradient evaluations; Newton would too but needs a Hessian (n sweeps) per step.
"""

from __future__ import annotations

import csv
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import sweeps
from .data import Dataset, batches
from .errors import AdcliError, OutputError
from .fast.policy import CompiledTape
from .tape import Tape

Evaluate = Callable[[np.ndarray], tuple[float, np.ndarray]]
Callback = Callable[[int, float, float, np.ndarray], None]

#: above this many parameters ``auto`` switches from dense BFGS to L-BFGS.
DENSE_LIMIT = 100
DEFAULT_STEPS = 1000
DEFAULT_TOL = 1e-10  # relative to the gradient norm at the start unless ``tol`` is given
#: iterations without a lower value or a smaller gradient norm before "no-progress".
PATIENCE = 100

# Why a run stopped.  Only GRAD_TOL and LS_TOL count as converged.
GRAD_TOL = "grad-tol"
LS_TOL = "ls-tol"  # the least-squares engine's relative tests (adcli.fitting)
MAX_STEPS = "max-steps"
NO_PROGRESS = "no-progress"
DIVERGED = "diverged"
UNBOUNDED = "unbounded"
INTERRUPTED = "interrupted"

#: a value at or below this is taken as unbounded below (float64 ends at -1.8e308).
UNBOUNDED_VALUE = -1e300
#: ... as is a value that fell this many powers of ten below zero while the gradient norm never
#: shrank (a run heading for -inf: gd on -x^2, bfgs on x).
UNBOUNDED_DECADES = 10
#: Fits over data run generated numpy code (adcli.fast), and compiling it costs about 7 kB
#: of memory a tape node (1.4 GB at 200,000 nodes): bigger tapes are refused with data.
DATA_MAX_NODES = 100_000
#: the second-order check at a converged point computes the Hessian (n sweeps over the
#: gradient tapes) only up to this many parameters ...
CHECK_HESSIAN_MAX_PARAMS = DENSE_LIMIT
#: ... and this many parameters x tape nodes x data rows (a cheap check, not a second run).
CHECK_HESSIAN_MAX_WORK = 50_000_000

REASONS = {
    GRAD_TOL: "the gradient norm fell below --tol",
    LS_TOL: "the least-squares engine's relative tests were met",
    MAX_STEPS: "the step limit was reached",
    NO_PROGRESS: "no further progress was possible",
    DIVERGED: "the value became non-finite; the last finite point is reported",
    UNBOUNDED: "the value fell without bound; the objective looks unbounded below",
    INTERRUPTED: "interrupted; the best point so far is reported",
}


# ---------------------------------------------------------------------------------------------
# Result


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
        # "minimum" only for a converged run: a diverged or stopped run's last point is none.
        where = "minimum" if self.converged else "point"
        return {where: self.minimum, "value": float(self.value),
                "grad_norm": self.grad_norm, "iterations": self.iterations,
                "evaluations": self.evaluations, "converged": self.converged,
                "reason": self.reason, "method": self.method}


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``w2`` before ``w10``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


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


# ---------------------------------------------------------------------------------------------
# The objective: a tape with parameters, fixed values and (optionally) columns of data


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
        self._fast: CompiledTape | None = None  # built on the first sweep
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
        if self._fast is None:
            sweeps.bind(self.tape, point)  # the interpreter's message for a missing value
            self._fast = CompiledTape(self.tape)
        xs = [point[n] for n in self.tape.inputs]
        if not columns:
            # Straight-line code on Python floats: the interpreter's numbers, bit for bit.
            value, grads = self._fast.auto()[1](*map(float, xs))
            return float(value), np.array([grads[i] for i in self._slots], dtype=np.float64)
        # Blocked numpy sweeps over the rows (adcli.fast): the sum of the expression and
        # of each parameter's per-row adjoints, a term that does not depend on the rows (a
        # penalty such as 0.01*w^2) counted once per row, as a per-row seed would.
        total, grads = self._fast.sweep_columns(xs, sum_value=True, wrt=self.names)
        with np.errstate(all="ignore"):
            g = np.array([grads[i] for i in self._slots], dtype=np.float64) * scale
            return float(total * scale), g

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The exact Hessian of the objective (for ``newton``)."""
        try:
            from .hessian import hessian
        except ImportError:
            raise AdcliError("--method newton needs adcli.hessian, which this build lacks; "
                             "use --method bfgs") from None
        if self.stochastic:
            raise AdcliError("--method newton cannot use --batch-size")
        # Over data columns adcli.hessian sums the rows, as the reverse sweep does.
        H = np.asarray(hessian(self.tape, self.point(x), self.names), dtype=np.float64)
        if self.columns:
            H = H * (1.0 if self.reduce == "sum" else 1.0 / self.rows)
        return H


def build_objective(tape: Tape, start: Mapping[str, float], wrt: Sequence[str] | None = None,
                    data: Dataset | None = None, **kwargs: Any) -> tuple[Objective, np.ndarray]:
    """Decide which inputs are parameters and where they start.

    Data columns bind variables of the same name.  Without ``wrt`` every other variable is a
    parameter, starting at its ``start`` value or 0.  With ``wrt`` only those are, and every
    remaining variable must be a column or have a value in ``start``.
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
    return Objective(tape, names, fixed, data, **kwargs), x0


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


# ---------------------------------------------------------------------------------------------
# Update rules


@dataclass(slots=True)
class Options:
    lr: float | None = None  # None: the rule's default
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    memory: int = 10  # L-BFGS history


@dataclass(slots=True)
class Step:
    """A rule's answer: the next point, with its value and gradient if the rule computed them
    (line searches do), or ``failed`` saying why no step could be taken."""

    x: np.ndarray
    value: float | None = None
    grad: np.ndarray | None = None
    failed: str = ""


class Rule(ABC):
    """An update rule: from x, with value f and gradient g, where next?"""

    name = ""
    default_lr: float | None = None
    line_search = False  # needs exact values: no minibatches

    def __init__(self, n: int, options: Options, problem: Any) -> None:
        self.options = options
        self.problem = problem
        self.lr = options.lr if options.lr is not None else self.default_lr

    @abstractmethod
    def step(self, x: np.ndarray, f: float, g: np.ndarray, evaluate: Evaluate) -> Step:
        """The next point (and its value and gradient if the rule computed them)."""


RULES: dict[str, type[Rule]] = {}


def rule(cls: type[Rule]) -> type[Rule]:
    RULES[cls.name] = cls
    return cls


@rule
class GradientDescent(Rule):
    name, default_lr = "gd", 0.01

    def step(self, x, f, g, evaluate):
        return Step(x - self.lr * g)


@rule
class Momentum(Rule):
    name, default_lr = "momentum", 0.01
    nesterov = False

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.v = np.zeros(n)

    def step(self, x, f, g, evaluate):
        mu = self.options.momentum
        self.v = mu * self.v + g
        return Step(x - self.lr * (g + mu * self.v if self.nesterov else self.v))


@rule
class Nesterov(Momentum):
    name = "nesterov"
    nesterov = True


@rule
class Adam(Rule):
    name, default_lr = "adam", 1e-3

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.m, self.v, self.t = np.zeros(n), np.zeros(n), 0

    def step(self, x, f, g, evaluate):
        b1, b2 = self.options.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        return Step(x - self.lr * m_hat / (np.sqrt(v_hat) + self.options.eps))


@rule
class Newton(Rule):
    name, line_search = "newton", True

    def step(self, x, f, g, evaluate):
        H = self.problem.hessian(x)
        p = newton_direction(H, g)
        return armijo(evaluate, x, f, g, p)


@rule
class BFGS(Rule):
    name, line_search = "bfgs", True

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.n = n
        self.H: np.ndarray | None = None  # inverse Hessian estimate; None: not yet scaled
        self.first = True

    def direction(self, g: np.ndarray) -> np.ndarray:
        return -g if self.H is None else -(self.H @ g)

    def reset(self) -> None:
        self.H = None

    def update(self, s: np.ndarray, y: np.ndarray) -> None:
        ys = float(y @ s)
        if not ys > 1e-12 * norm(y) * norm(s):
            return  # curvature condition failed (numerically): keep the old estimate
        if self.H is None:  # Nocedal & Wright (6.20): scale the identity before the first update
            self.H = np.eye(self.n) * (ys / float(y @ y))
        rho = 1.0 / ys
        Hy = self.H @ y
        self.H += (rho * rho * float(y @ Hy) + rho) * np.outer(s, s) - rho * (
            np.outer(Hy, s) + np.outer(s, Hy))

    def step(self, x, f, g, evaluate):
        for attempt in range(2):
            p = self.direction(g)
            if not float(g @ p) < 0:  # lost positive definiteness: restart from -g
                self.reset()
                p = -g
            # The first trial step moves a distance of 1 along -g, whatever the objective's
            # scale; afterwards the quasi-Newton step length 1 is the natural guess.
            alpha0 = 1.0 / norm(p) if self.first else 1.0
            found = wolfe(evaluate, x, f, g, p, alpha0)
            if found is not None:
                self.first = False
                self.update(found.x - x, found.grad - g)
                return found
            if attempt == 0 and self.H is not None:
                self.reset()  # a stale estimate can point badly: retry once along -g
                continue
            break
        return Step(x, failed="the line search found no lower point along the search direction")


@rule
class LBFGS(BFGS):
    name = "lbfgs"

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []

    def reset(self) -> None:
        self.pairs = []

    def update(self, s, y):
        ys = float(y @ s)
        if ys > 1e-12 * norm(y) * norm(s):
            self.pairs.append((s, y, 1.0 / ys))
            del self.pairs[:-self.options.memory]

    def direction(self, g):
        """Two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if self.pairs:
            s, y, _ = self.pairs[-1]
            q *= float(s @ y) / float(y @ y)
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            q += (a - rho * float(y @ q)) * s
        return -q


def newton_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve (H + tau*I) p = -g with the smallest tau >= 0 (up to doubling) that makes the
    matrix positive definite, so p is always a descent direction (Nocedal & Wright, Alg. 3.3).
    """
    if not np.all(np.isfinite(H)):
        return -g
    n = len(g)
    beta = 1e-3 * (float(np.max(np.abs(np.diag(H)))) or 1.0)  # relative to H's own scale
    d = float(np.min(np.diag(H)))
    tau = 0.0 if d > 0 else -d + beta
    for _ in range(100):
        try:
            L = np.linalg.cholesky(H + tau * np.eye(n))
        except np.linalg.LinAlgError:
            tau = max(2.0 * tau, beta)
            continue
        return -np.linalg.solve(L.T, np.linalg.solve(L, g))
    return -g


def armijo(evaluate: Evaluate, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray,
           c: float = 1e-4, shrink: float = 0.5, tries: int = 60) -> Step:
    """Backtracking from the full step until f(x + a*p) <= f + c*a*<g, p> (and is finite)."""
    slope = float(g @ p)
    a = 1.0
    for _ in range(tries):
        xn = x + a * p
        fn, gn = evaluate(xn)
        if math.isfinite(fn) and fn <= f + c * a * slope:
            return Step(xn, fn, gn)
        a *= shrink
    return Step(x, failed="backtracking found no point with sufficient decrease")


def wolfe(evaluate: Evaluate, x: np.ndarray, f: float, g: np.ndarray, p: np.ndarray,
          alpha0: float = 1.0, c1: float = 1e-4, c2: float = 0.9,
          max_evals: int = 30) -> Step | None:
    """A step length satisfying the strong Wolfe conditions (Nocedal & Wright, Algorithms 3.5
    and 3.6, with cubic interpolation in the zoom).  None if none was found."""
    slope0 = float(g @ p)
    evals = 0
    points: dict[float, Step] = {}

    def phi(a: float) -> tuple[float, float]:
        nonlocal evals
        evals += 1
        xa = x + a * p
        fa, ga = evaluate(xa)
        points[a] = Step(xa, fa, ga)
        da = float(ga @ p)
        if not (math.isfinite(fa) and math.isfinite(da)):
            return math.inf, math.nan
        return fa, da

    def armijo_ok(a: float, fa: float) -> bool:
        return fa <= f + c1 * a * slope0

    def zoom(lo, flo, dlo, hi, fhi, dhi) -> Step | None:
        while evals < max_evals:
            a = _cubic_min(lo, flo, dlo, hi, fhi, dhi)
            fa, da = phi(a)
            if not armijo_ok(a, fa) or fa >= flo:
                hi, fhi, dhi = a, fa, da
            else:
                if abs(da) <= -c2 * slope0:
                    return points[a]
                if da * (hi - lo) >= 0:
                    hi, fhi, dhi = lo, flo, dlo
                lo, flo, dlo = a, fa, da
            if abs(hi - lo) <= 1e-16 * max(1.0, abs(lo)):
                break
        return points[lo] if lo > 0 else None  # sufficient decrease without curvature

    a_prev, f_prev, d_prev = 0.0, f, slope0
    a = alpha0
    while evals < max_evals:
        fa, da = phi(a)
        if not armijo_ok(a, fa) or (a_prev > 0 and fa >= f_prev):
            return zoom(a_prev, f_prev, d_prev, a, fa, da)
        if abs(da) <= -c2 * slope0:
            return points[a]
        if da >= 0:
            return zoom(a, fa, da, a_prev, f_prev, d_prev)
        a_prev, f_prev, d_prev = a, fa, da
        a *= 2.0
    return points[a_prev] if a_prev > 0 else None


def _cubic_min(lo: float, flo: float, dlo: float, hi: float, fhi: float, dhi: float) -> float:
    """Minimiser of the cubic through both ends (values and slopes), kept inside the middle 80%
    of the interval; bisection when the cubic is unusable (e.g. an infinite value)."""
    left, right = min(lo, hi), max(lo, hi)
    margin = 0.1 * (right - left)
    mid = 0.5 * (lo + hi)
    if not all(math.isfinite(v) for v in (flo, dlo, fhi, dhi)) or hi == lo:
        return mid
    d1 = dlo + dhi - 3.0 * (flo - fhi) / (lo - hi)
    disc = d1 * d1 - dlo * dhi
    if disc < 0:
        return mid
    d2 = math.copysign(math.sqrt(disc), hi - lo)
    denom = dhi - dlo + 2.0 * d2
    if denom == 0:
        return mid
    a = hi - (hi - lo) * (dhi + d2 - d1) / denom
    if not (left + margin <= a <= right - margin):
        return mid
    return a


# ---------------------------------------------------------------------------------------------
# The driver


def resolve_method(method: str, n: int, stochastic: bool = False) -> str:
    """``auto`` -> the rule actually used; unknown names are an error."""
    if method == "auto":
        if stochastic:
            return "adam"
        return "bfgs" if n <= DENSE_LIMIT else "lbfgs"
    if method not in RULES:
        raise AdcliError(f"unknown method '{method}' (choose from auto, {', '.join(RULES)})")
    if stochastic and RULES[method].line_search:
        raise AdcliError(f"--method {method} needs exact values and cannot use --batch-size; "
                         "use gd, momentum, nesterov or adam")
    return method


def minimize(problem: Evaluate, x0: Sequence[float], *, method: str = "auto",
             options: Options | None = None, steps: int = DEFAULT_STEPS,
             tol: float | None = None, names: Sequence[str] | None = None,
             callback: Callback | None = None, patience: int = PATIENCE) -> MinimizeResult:
    """Minimise ``problem(x) -> (value, gradient)`` from ``x0``.

    ``problem`` is a plain callable or an :class:`Objective` (which adds ``hessian`` for
    ``newton`` and ``sample`` for minibatches).  ``callback(iteration, value, grad_norm, x)``
    sees every iterate, starting with iteration 0 at ``x0``; with minibatches the value and
    gradient norm are the batch's.  Never raises on non-finite numbers: they end the run with
    reason "diverged" (or "unbounded" for a value falling to -inf); numpy's overflow
    warnings are silenced because the driver checks every value itself.

    ``tol`` is an absolute bound on the gradient norm. Without it the run stops when the
    gradient norm falls to :data:`DEFAULT_TOL` times its norm at ``x0``: a test that does not
    depend on the objective's scale (multiplying f by 1e-12 must not make a start look
    converged).
    """
    options = options or Options()
    x = np.array(x0, dtype=np.float64)
    n = len(x)
    names = list(names if names is not None else getattr(problem, "names", None)
                 or [f"x{i}" for i in range(n)])
    stochastic = bool(getattr(problem, "stochastic", False))
    method = resolve_method(method, n, stochastic)
    if method == "newton" and not hasattr(problem, "hessian"):
        raise AdcliError("newton needs a problem with a hessian(x) method (an Objective)")
    with np.errstate(all="ignore"):
        result = _drive(problem, x, RULES[method](n, options, problem), method, names,
                        stochastic, steps, tol, callback, patience)
        if result.reason == GRAD_TOL and not stochastic:
            result.warnings += second_order_warnings(problem, result.x)
    return result


def _drive(problem: Any, x: np.ndarray, rules: Rule, method: str, names: list[str],
           stochastic: bool, steps: int, tol: float, callback: Callback | None,
           patience: int) -> MinimizeResult:
    """The loop of :func:`minimize`: every stopping rule, once for all update rules."""
    evaluations = 0

    def full(xv: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        f, g = problem(xv)
        return float(f), np.asarray(g, dtype=np.float64)

    def noisy(xv: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        f, g = problem.sample(xv)
        return float(f), np.asarray(g, dtype=np.float64)

    evaluate = noisy if stochastic else full
    epoch = int(getattr(problem, "epoch", 1)) if stochastic else 1

    def result(xr, fr, gr, reason, message="") -> MinimizeResult:
        return MinimizeResult(names, xr, fr, gr, iteration, evaluations, reason, method,
                              message or REASONS[reason])

    iteration = 0
    # (value, gradient) of the full objective at the best point; minibatch runs check these
    # once per epoch.
    f, g = full(x)
    if f == -math.inf or f <= UNBOUNDED_VALUE:
        return result(x, f, g, UNBOUNDED, f"the value is {f:g} at the starting point")
    if not math.isfinite(f):
        return result(x, f, g, DIVERGED, "the value is not finite at the starting point")
    best = (f, x, g)
    relative = tol is None
    if relative:
        tol = DEFAULT_TOL * norm(g)
    best_gnorm, last_progress, f_anchor = math.inf, 0, f
    fresh = True  # f and g belong to x (with minibatches, only once per epoch)
    last_fresh = best
    reason, message = MAX_STEPS, ""
    # Unbounded below: the power of ten the value had reached below zero when the gradient
    # norm was last at its smallest (anchor); falling UNBOUNDED_DECADES more powers of ten
    # without the gradient ever shrinking below that is a run heading for -inf.
    anchor_level, anchor_gnorm = _decade(f), norm(g)
    try:
        if stochastic:
            fs, gs = f, g
        while True:
            gnorm = norm(g)
            improved = fresh and f < best[0]
            if improved:
                best = (f, x, g)
            if callback is not None:
                callback(iteration, fs if stochastic else f, norm(gs) if stochastic else gnorm,
                         x)
            if not math.isfinite(gnorm):
                bad = "nan" if math.isnan(gnorm) else "infinite"
                reason, message = DIVERGED, f"the gradient is {bad} at iteration {iteration}"
                break
            if gnorm < tol or gnorm == 0.0:
                reason = GRAD_TOL
                if relative:
                    message = (f"the gradient norm fell below {DEFAULT_TOL:g} of its value at "
                               "the start")
                break
            if fresh and gnorm < anchor_gnorm:
                anchor_level, anchor_gnorm = _decade(f), gnorm
            elif fresh and _decade(f) - anchor_level >= UNBOUNDED_DECADES:
                reason = UNBOUNDED
                message = (f"the value fell to {f:.6g} at iteration {iteration}, at least "
                           f"{UNBOUNDED_DECADES} orders of magnitude, while the gradient did not "
                           "shrink; the objective looks unbounded below")
                break
            # Progress: a lower value, a smaller gradient, or at least a moving value (a value
            # that keeps growing is heading for "diverged", not stuck).
            if improved or gnorm < best_gnorm or abs(f - f_anchor) > 1e-10 * max(
                    abs(f), abs(f_anchor)):
                last_progress, f_anchor = iteration, f
                best_gnorm = min(best_gnorm, gnorm)
            elif iteration - last_progress >= patience * epoch:
                reason = NO_PROGRESS
                message = (f"the value and the gradient norm stayed the same for "
                           f"{patience * epoch} iterations")
                break
            if iteration >= steps:
                reason = MAX_STEPS
                break
            step = rules.step(x, fs if stochastic else f, gs if stochastic else g, evaluate)
            if step.failed:
                reason, message = NO_PROGRESS, step.failed
                break
            xn = step.x
            if step.value is None:
                fn, gn = evaluate(xn)
            else:
                fn, gn = step.value, step.grad
            iteration += 1
            if np.all(np.isfinite(xn)) and (fn == -math.inf or fn <= UNBOUNDED_VALUE):
                x, f, g = xn, fn, gn
                reason = UNBOUNDED
                message = (f"the value fell to {fn:g} at iteration {iteration}; the objective "
                           "looks unbounded below")
                if stochastic:  # a batch's value: report the point with its full value
                    f, g = full(x)
                break
            if not (math.isfinite(fn) and np.all(np.isfinite(xn))):
                reason = DIVERGED
                message = (f"the value became {fn} at iteration {iteration}; the last finite "
                           "point is reported")
                break
            x = xn
            if stochastic:
                fs, gs = fn, gn
                fresh = iteration % epoch == 0 or iteration >= steps
                if fresh:
                    f_all, g_all = full(x)
                    if not math.isfinite(f_all):
                        reason = DIVERGED
                        message = (f"the value over all rows became non-finite at iteration "
                                   f"{iteration}; the last finite point is reported")
                        break
                    f, g = f_all, g_all
                    last_fresh = (f, x, g)
            else:
                f, g = fn, gn
    except KeyboardInterrupt:
        f, x, g = best
        return result(x, f, g, INTERRUPTED)  # the best full-objective point seen
    if stochastic and reason == DIVERGED:
        f, x, g = last_fresh  # the last point whose full objective was computed and finite
    elif stochastic and not fresh and reason != UNBOUNDED:
        f, g = full(x)
    return result(x, f, g, reason, message)


def _decade(f: float) -> int:
    """The power of ten a negative value has reached (0 for values above -10)."""
    return math.floor(math.log10(-f)) if f <= -10.0 else 0


def second_order_warnings(problem: Any, x: np.ndarray) -> list[str]:
    """A zero gradient is also where maxima and saddles are (BFGS started at the top of -x^2
    "converges" at once): at a converged point, say so when the exact Hessian has a negative
    eigenvalue. Skipped for problems without a Hessian or too large to afford one."""
    hessian = getattr(problem, "hessian", None)
    tape = getattr(problem, "tape", None)
    n = len(x)
    if hessian is None or n == 0 or n > CHECK_HESSIAN_MAX_PARAMS:
        return []
    rows = int(getattr(problem, "rows", 1))
    if tape is not None and n * len(tape) * max(1, rows) > CHECK_HESSIAN_MAX_WORK:
        return []
    try:
        H = np.asarray(hessian(x), dtype=np.float64)
    except AdcliError:
        return []
    if not np.all(np.isfinite(H)):
        return []
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    if ev[0] >= -1e-8 * max(1.0, float(np.max(np.abs(ev)))):
        return []
    kind = ("a maximum" if ev[-1] < 0 else "a saddle point" if ev[-1] > 0
            else "a maximum or a saddle point")
    return [f"the Hessian at this point is not positive definite (smallest eigenvalue "
            f"{ev[0]:.6g}): the gradient is zero but the point is {kind}, not a minimum"]


# ---------------------------------------------------------------------------------------------
# Trace file


class CsvTrace:
    """``--trace FILE``: one CSV row per iteration (iteration, value, grad_norm, parameters),
    flushed as it goes so a long run can be watched with ``tail -f``."""

    def __init__(self, path: str, names: Sequence[str]) -> None:
        try:
            self.fh = open(path, "w", newline="", encoding="utf-8")
        except OSError as err:
            raise OutputError(path, err) from None
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["iteration", "value", "grad_norm", *names])
        self.fh.flush()

    def __call__(self, iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        self.writer.writerow([iteration, repr(float(value)), repr(float(grad_norm)),
                              *(repr(float(v)) for v in x)])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class History:
    """Keeps every iterate in memory (for pictures)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.points: list[np.ndarray] = []

    def __call__(self, iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        self.values.append(float(value))
        self.points.append(np.array(x, dtype=np.float64))


def chain(*callbacks: Callback | None) -> Callback | None:
    """One callback calling several (None entries skipped)."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def call(iteration: int, value: float, grad_norm: float, x: np.ndarray) -> None:
        for c in active:
            c(iteration, value, grad_norm, x)

    return call
