"""What the driver says at a point where a run stops short of the relative-gradient test, on
tapes with kinks and jumps as on smooth ones (pure numpy; the driver calls them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..results import FLAT, SADDLE, MinimizeResult
from .checks import (
    JUMPS,
    KINKS,
    NEWTON_NOISE,
    PROBE_ULPS,
    flat_around,
    free_parameters,
    hessian_eigen,
    negative_curvature,
    rounding_level,
    saddle_message,
)
from .linesearch import Evaluate


class _AcrossKink(Exception):
    """A rounding probe's point is across a kink from the point it probes."""


def branch_rounding_level(x: np.ndarray, g: np.ndarray, evaluate: Evaluate | None,
                          project: Callable[[np.ndarray], np.ndarray],
                          pgrad: Callable[[np.ndarray, np.ndarray], np.ndarray],
                          curvature: Callable[[], Any],
                          branches: Callable[[np.ndarray], np.ndarray] | None | bool
                          ) -> tuple[tuple[float, float] | None, bool]:
    """:func:`.checks.rounding_level`, and whether a probed point was across a kink.  On a
    smooth tape ``branches`` is None; on a tape with kinks it is the objective's ``branches``
    (False for an objective without them: no probe, a gradient that jumps is no noise), and
    the probe counts only while every probed point is on the same side of every kink as ``x``
    (a gradient that changes across a kink jumps; it is no rounding noise)."""
    if evaluate is None or branches is False:
        return None, False
    probe = evaluate
    if callable(branches):
        here = branches(x)

        def probe(z: np.ndarray) -> tuple[float, np.ndarray]:
            if not np.array_equal(branches(z), here):
                raise _AcrossKink
            return evaluate(z)
    try:
        return rounding_level(x, g, probe, project, pgrad, curvature), False
    except _AcrossKink:
        return None, True


def noise_message(change: float, root: float) -> str:
    """Why the gradient found by :func:`.checks.rounding_level` is at the attainable accuracy."""
    noise = (f"moving the point by {PROBE_ULPS} units in the last place changes the gradient "
             f"by {change:.2g} of its size, so it is rounding noise")
    if root == 0.0:
        return f"{noise}: stationary to float64 precision"
    return (f"{noise}, except along a direction where the Hessian is 0 to float64 precision; "
            f"along it the gradient changes by half within {root:.2g} of the point's size (at "
            f"most {NEWTON_NOISE:.2g}), so the stationary point is about that close: a "
            "singular minimum (as a quartic's), located to the accuracy float64 allows")


def kink_message(why: str, rg: float, kinks: Sequence[str], near: bool) -> str:
    """A stall on (``near``: the probe crossed a kink) or possibly on a kink: at a kink the
    gradient need not vanish, minimum or not, so neither verdict would be true."""
    where = "lies on" if near else "may lie on"
    return (f"{why}, at a relative gradient of {rg:.2g}: the point {where} a kink of EXPR "
            f"({', '.join(kinks)}), where the gradient need not vanish at a minimum, so it may "
            "be a minimum on the kink or a point stuck on it, and the gradient cannot tell "
            "which; try another start (--from) or a smooth form")


def jump_message(names: Sequence[str], kinks: Sequence[str], lower: np.ndarray,
                 x: np.ndarray) -> str:
    """A converged point with a lower value close by (:func:`.checks.across_jump`) on a tape
    whose value jumps, or exactly on a kink, where the gradient is a convention."""
    shown = ", ".join(f"{n}={v:.6g}" for n, v in zip(names[:6], lower[:6]))
    shown += f" and {len(names) - 6} more" if len(names) > 6 else ""
    jumps = sorted(JUMPS & set(kinks))
    what = (f"EXPR's value jumps ({', '.join(jumps)}), and no gradient shows the lower side of "
            "a jump" if jumps else f"the point lies on a kink of EXPR ({', '.join(kinks)}), "
            "where the gradient is a convention, not a slope")
    away = float(np.max(np.abs(lower - x)))
    return (f"the gradient vanishes here, but {what}; the point {shown}, {away:.2g} away, has "
            "a lower value, so this point need not be a minimum (bfgs and newton, which "
            "compare values, may get past it)")


def relative_gradient(x: np.ndarray, f: float, g: np.ndarray) -> float:
    """max_i |g_i|*max(|x_i|, 1)/|f|: the relative change of f for a relative change of each
    x_i (Dennis & Schnabel 1983, (7.2.4)); invariant under f -> k*f."""
    top = float(np.max(np.abs(g) * np.maximum(np.abs(x), 1.0))) if len(g) else 0.0
    if top == 0.0:
        return 0.0
    return top / abs(f) if f != 0 else math.inf


def rg_message(why: str, rg: float, tol: float) -> str:
    """A stall at a relative gradient ``rg`` against the attainable accuracy ``tol``."""
    if rg <= tol:
        return (f"{why}, at a relative gradient of {rg:.2g} (at most {tol:.2g}): the value is "
                "at its minimum to the accuracy float64 allows")
    return (f"{why}, at a relative gradient of {rg:.2g} (above {tol:.2g}): not a minimum to "
            "float64 precision")


def decade(f: float) -> int:
    """The power of ten a negative value has reached (0 for values above -10)."""
    return math.floor(math.log10(-f)) if f <= -10.0 else 0


def second_look(result: MinimizeResult, problem: Any, evaluate: Evaluate,
                project: Callable[[np.ndarray], np.ndarray],
                limits: tuple[np.ndarray, np.ndarray] | None, smooth: bool | None = None,
                fresh: bool = False) -> None:
    """A converged point where no lower value was found may still be no minimum: a saddle or
    a maximum (a negative Hessian eigenvalue: reason ``saddle``), or a plateau, where the
    value is flat to float64 precision along every parameter and the gradient test passed only
    because nothing changes (:func:`.checks.flat_around`: reason ``flat``).  A constant piece
    of an expression with kinks (``relu(x)`` from x = -5: the same value to rounding, a 0
    gradient at every look) stays converged: there every nearby point has the same value, a
    minimum; so does an exactly zero gradient with a positive definite Hessian (``1e20 + x^2``
    from x = 0; from x = 3 it is ``flat``: the value is 1e20 within 100 of 0).  ``smooth``:
    the tape has no kinks (None: read from ``problem``'s tape); ``fresh``: the looks compare
    with ``evaluate``'s own value at the point (the least-squares engine's value is summed
    another way).  Sets the result's reason and message."""
    curvature = hessian_eigen(problem, result.x, free_parameters(result.x, limits))
    if negative_curvature(curvature):
        result.reason, result.message = SADDLE, saddle_message(curvature)  # type: ignore[arg-type]
        return
    if curvature is not None and len(curvature[0]) and curvature[0][0] > 0 and \
            not np.any(result.grad):
        return  # g = 0 exactly with a positive definite Hessian: a strict local minimum
    if smooth is None:
        tape = getattr(problem, "tape", None)
        smooth = tape is None or not {getattr(op, "name", op) for op in tape.ops} & KINKS
    value = evaluate(result.x)[0] if fresh else result.value
    flat = flat_around(result.x, value, result.grad, evaluate, project, problem, curvature)
    if flat is None or flat[1] and not smooth:
        return
    result.reason, result.message = FLAT, (
        f"{result.message}, but the value does not change to float64 precision within "
        f"{flat[0]:.2g} of the point along any parameter (nor does the Hessian predict a "
        "change): a plateau, which may or may not be a minimum (as where terms of EXPR "
        "underflow or are lost in rounding beside others); try other starts (--from)")
