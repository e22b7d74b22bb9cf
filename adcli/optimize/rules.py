"""Update rules: from x, with value f and gradient g, where next?  (Pure numpy, like
autograd's ``misc/optimizers.py``; the driver owns the stopping rules.)"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..results import norm
from .linesearch import Evaluate, Step, wolfe

_EPS = float(np.finfo(np.float64).eps)


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
    """Trust-region Newton on the exact Hessian (Nocedal & Wright, Algorithm 4.1), each
    subproblem min g.p + p.H.p/2 over |p| <= radius solved exactly (:func:`trust_region_step`,
    the Moré-Sorensen conditions in the Hessian's eigenbasis).  Unlike a line search along a
    shifted Newton direction it follows negative curvature and reaches minima from far starts;
    the radius is in units of x, so the steps do not depend on f's scale."""

    name, line_search = "newton", True
    #: at most this many rejected trial steps (each shrinks the radius 4x) in one iteration.
    TRIALS = 80

    def __init__(self, n, options, problem):
        super().__init__(n, options, problem)
        self.radius = 0.0

    def step(self, x, f, g, evaluate):
        H = np.asarray(self.problem.hessian(x), dtype=np.float64)
        if not np.all(np.isfinite(H)):
            H = np.zeros_like(H)  # no usable curvature: the model is linear (a Cauchy step)
        lam, Q = np.linalg.eigh(0.5 * (H + H.T))
        a = Q.T @ g
        if not self.radius:  # the first radius: the Newton step (else the size of x)
            self.radius = norm(a / lam) if lam[0] > 0 else max(1.0, norm(x))
        for _ in range(self.TRIALS):
            pt, predicted, interior = trust_region_step(lam, a, self.radius)
            if not predicted > 0:
                break
            p = Q @ pt
            xn = x + p
            fn, gn = evaluate(xn)
            if fn == -math.inf and np.all(np.isfinite(xn)):
                return Step(xn, fn, gn)  # the driver reports "unbounded"
            rho = (f - fn) / predicted if math.isfinite(fn) else -math.inf
            if predicted <= 4.0 * _EPS * abs(f) and fn <= f:
                rho = 1.0  # f - fn is rounding noise here: a step that is not uphill is taken
            length = norm(p)
            if rho < 0.25:
                self.radius = 0.25 * length
            elif rho > 0.75 and length >= 0.99 * self.radius:
                self.radius = 2.0 * self.radius
            if rho > 1e-4 and fn <= f:
                return Step(xn, fn, gn, newton=interior and lam[0] > 0)
            if self.radius <= 4.0 * _EPS * max(norm(x), 1e-300):
                break
        return Step(x, failed="the trust region shrank to the rounding level of x without "
                              "finding a lower point")


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


def trust_region_step(lam: np.ndarray, a: np.ndarray, radius: float
                      ) -> tuple[np.ndarray, float, bool]:
    """The exact minimiser of the model a.p + sum(lam*p^2)/2 over |p| <= radius, in the
    Hessian's eigenbasis (lam ascending, a = Q^T g), the decrease it predicts, and whether it
    is the unconstrained Newton step (inside the region).

    p = -a/(lam + mu) with the smallest mu >= max(0, -lam[0]) that keeps |p| <= radius (Moré
    & Sorensen 1983): mu = 0 when the Newton step fits and H is positive definite, else the
    root of 1/|p(mu)| = 1/radius (nearly linear in mu, so safeguarded Newton iterations converge
    in a few steps).  In the "hard case" (g orthogonal to the lowest eigenvector) the step
    adds that eigenvector to reach the boundary."""
    n = len(a)
    if not radius > 0 or n == 0:
        return np.zeros(n), 0.0, False
    scale = float(np.max(np.abs(lam)))
    anorm = norm(a)
    lo = max(0.0, -float(lam[0]))
    low = lam <= lam[0] + _EPS * max(scale, 1e-300)  # the lowest eigenspace

    def step(mu: float) -> np.ndarray:
        d = lam + mu
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(d > 0, -a / np.where(d > 0, d, 1.0), 0.0)
        return p

    if lam[0] > 0:
        p = step(0.0)
        if norm(p) <= radius:
            return p, _decrease(lam, a, p), True
    if np.all(np.abs(a[low]) <= _EPS * max(anorm, 1e-300)):
        # Hard case candidate: along the lowest eigenspace g has no component.
        p = step(lo)
        p[low] = 0.0
        if norm(p) <= radius:
            if lam[0] < 0 or not anorm:
                p[int(np.argmax(low))] = math.sqrt(max(radius * radius - norm(p) ** 2, 0.0))
            return p, _decrease(lam, a, p), False
    hi = lo + anorm / radius + _EPS * max(scale, 1e-300)  # |p(hi)| <= radius
    mu = hi
    for _ in range(100):
        p = step(mu)
        length = norm(p)
        if abs(length - radius) <= 1e-10 * radius:
            break
        if length > radius:
            lo = mu
        else:
            hi = mu
        if length == 0.0:  # every component underflowed: bisect
            mu = 0.5 * (lo + hi)
            continue
        # Newton on phi(mu) = 1/|p(mu)| - 1/radius; bisect when it leaves the bracket.
        d = lam + mu
        with np.errstate(all="ignore"):
            dphi = float(np.sum(np.where(d > 0, p * p / d, 0.0))) / length ** 3
            nxt = mu - (1.0 / length - 1.0 / radius) / dphi
        mu = nxt if math.isfinite(nxt) and lo < nxt < hi else 0.5 * (lo + hi)
        if hi - lo <= _EPS * hi:
            p = step(hi)
            break
    if norm(p) > radius:  # rounding: scale back onto the sphere
        p *= radius / norm(p)
    return p, _decrease(lam, a, p), False


def _decrease(lam: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    """-(a.p + sum(lam*p^2)/2): the model's predicted decrease for the step p."""
    return -float(a @ p + 0.5 * np.sum(lam * p * p))
