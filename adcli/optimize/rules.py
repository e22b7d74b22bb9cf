"""Update rules: from x, with value f and gradient g, where next?  (Pure numpy, like
autograd's ``misc/optimizers.py``; the driver owns the stopping rules.)"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..results import norm
from .linesearch import Evaluate, Step, armijo, wolfe


@dataclass(slots=True)
class Options:
    lr: float | None = None  # None: the rule's default
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    memory: int = 10  # L-BFGS history



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
    """Dense inverse-Hessian BFGS.  It works on f/sigma (sigma: the gradient norm at the first
    step), which scales the estimate to O(1): objectives near 1e300 or 1e-300 neither overflow
    nor underflow in y.y or in the update, and the iterates do not depend on f's scale."""

    name, line_search = "bfgs", True

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.n = n
        self.H: np.ndarray | None = None  # inverse Hessian estimate of f/sigma; None: no pair yet
        self.sigma = 0.0
        self.gamma = 0.0  # s.y/y.y of the last pair: the scale a reset starts from

    def estimated(self) -> bool:
        """Whether a curvature pair has been taken in since the start or the last reset."""
        return self.H is not None

    def direction(self, g: np.ndarray) -> np.ndarray:
        if self.H is None:
            return -g / self.sigma * (self.gamma or 1.0)
        return -(self.H @ (g / self.sigma))

    def reset(self) -> None:
        self.H = None

    def curvature(self, s: np.ndarray, y: np.ndarray) -> float | None:
        """s.y of a pair of f/sigma, None where the curvature condition fails (numerically)."""
        ys = float(y @ s)
        ny = norm(y)
        if not (ys > 1e-12 * ny * norm(s) and ny > 0):
            return None
        self.gamma = ys / ny / ny  # Nocedal & Wright (6.20), without squaring |y| first
        return ys

    def update(self, s: np.ndarray, y: np.ndarray) -> None:
        ys = self.curvature(s, y)
        if ys is None:
            return  # keep the old estimate
        if self.H is None:  # Nocedal & Wright (6.20): scale the identity before the first update
            self.H = np.eye(self.n) * self.gamma
        rho = 1.0 / ys
        Hy = self.H @ y
        self.H += (rho * rho * float(y @ Hy) + rho) * np.outer(s, s) - rho * (
            np.outer(Hy, s) + np.outer(s, Hy))

    def step(self, x, f, g, evaluate):
        if not self.sigma:
            self.sigma = norm(g) if 0 < norm(g) < np.inf else 1.0
        for attempt in range(2):
            p = self.direction(g)
            if not float(g @ p) < 0:  # lost positive definiteness: restart from -g
                self.reset()
                p = self.direction(g)
            # The first trial step moves a distance of 1 along -g, whatever the objective's
            # scale; afterwards the quasi-Newton step length 1 is the natural guess.
            first = not self.estimated() and not self.gamma
            alpha0 = 1.0 / norm(p) if first else 1.0
            found = wolfe(evaluate, x, f, g, p, alpha0)
            if found is not None:
                self.update(found.x - x, (found.grad - g) / self.sigma)
                return found
            if attempt == 0 and self.estimated():
                self.reset()  # a stale estimate can point badly: retry along -g
                continue
            break
        return Step(x, failed="the line search found no lower point along the search direction")


@rule
class LBFGS(BFGS):
    name = "lbfgs"

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []

    def estimated(self) -> bool:
        return bool(self.pairs)

    def reset(self) -> None:
        self.pairs = []

    def update(self, s, y):
        ys = self.curvature(s, y)
        if ys is not None:
            self.pairs.append((s, y, 1.0 / ys))
            del self.pairs[:-self.options.memory]

    def direction(self, g):
        """Two-loop recursion (Nocedal & Wright, Algorithm 7.4) on f/sigma."""
        q = g / self.sigma
        if not self.pairs:
            return -q * (self.gamma or 1.0)
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        q *= self.gamma
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

