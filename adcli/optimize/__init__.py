"""Minimisers: one driver loop and a registry of update rules.

The driver owns everything the rules have in common: when to stop (a point stationary to
float64 precision by a scale-free, local test, or the gradient norm below ``tol``; the step
limit, no progress, a non-finite value, an unbounded one, Ctrl-C), counting evaluations, and
reporting each iteration to a callback (trace file, progress display, plot).  An update rule
only answers "from x, with value f and gradient g, where next?".  Adding a rule is one small
class and one decorator line.

Rules:

- ``gd``        x -= lr*g
- ``momentum``  PyTorch's SGD momentum: v = mu*v + g; x -= lr*v (not Sutskever's v = mu*v + lr*g)
- ``nesterov``  PyTorch's SGD(nesterov=True): v = mu*v + g; x -= lr*(g + mu*v)
- ``adam``      torch.optim.Adam / optax.adam defaults: betas (0.9, 0.999), eps 1e-8, lr 1e-3
- ``newton``    trust-region Newton on the exact Hessian (adcli.derive.curvature), each subproblem
solved
                exactly in the Hessian's eigenbasis (Moré & Sorensen): follows negative curvature
- ``bfgs``      dense inverse-Hessian BFGS with a strong-Wolfe line search (c1 1e-4, c2 0.9)
- ``lbfgs``     the same with the two-loop recursion over the last ``memory`` pairs

``auto`` (the default) is ``bfgs`` up to :data:`DENSE_LIMIT` parameters and ``lbfgs`` above,
because the dense inverse Hessian costs n^2 memory and n^2 work per step; with minibatches it is
``adam``, because line searches need exact values.  BFGS needs no learning rate, and its
superlinear convergence takes the standard test functions to machine precision in a few dozen
gradient evaluations; Newton would too but needs a Hessian (n sweeps) per step.

The package: :mod:`.objective` (tape + data -> f, g), :mod:`.rules` (update rules),
:mod:`.linesearch`, :mod:`.driver` (the loop and its stopping rules) and :mod:`.checks` (is a
converged point a minimum; the exit status of a run).  The result record is
:class:`adcli.results.MinimizeResult`; trace files and histories live with the command
(:mod:`adcli.commands.trace`).
"""

from __future__ import annotations

from ..results import (
    DIVERGED,
    GRAD_TOL,
    INTERRUPTED,
    LS_TOL,
    MAX_STEPS,
    NO_PROGRESS,
    PRECISION,
    REASONS,
    TIME_LIMIT,
    UNBOUNDED,
    MinimizeResult,
    norm,
)
from .checks import (
    CHECK_HESSIAN_MAX_PARAMS,
    CHECK_HESSIAN_MAX_WORK,
    exit_status,
    second_order_warnings,
)
from .driver import (
    DEFAULT_STEPS,
    DEFAULT_TOL,
    DENSE_LIMIT,
    PATIENCE,
    UNBOUNDED_DECADES,
    UNBOUNDED_VALUE,
    Callback,
    minimize,
    resolve_method,
)
from .linesearch import Evaluate, Step, armijo, wolfe
from .objective import DATA_MAX_NODES, Objective, binding_warnings, build_objective
from .rules import RULES, Options, Rule, rule, trust_region_step

__all__ = [
    "CHECK_HESSIAN_MAX_PARAMS", "CHECK_HESSIAN_MAX_WORK", "DATA_MAX_NODES", "DEFAULT_STEPS",
    "DEFAULT_TOL", "DENSE_LIMIT", "DIVERGED", "GRAD_TOL", "INTERRUPTED", "LS_TOL", "MAX_STEPS",
    "NO_PROGRESS", "PATIENCE", "PRECISION", "REASONS", "RULES", "TIME_LIMIT", "UNBOUNDED",
    "UNBOUNDED_DECADES", "UNBOUNDED_VALUE", "Callback", "Evaluate", "MinimizeResult", "Objective",
    "Options", "Rule", "Step", "armijo", "binding_warnings", "build_objective", "exit_status",
    "minimize", "trust_region_step", "norm", "resolve_method", "rule", "second_order_warnings",
    "wolfe",
]
