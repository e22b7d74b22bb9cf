"""Bounds and the time limit for the driver: the box, the projected gradient, L-BFGS-B
(scipy's, on adcli's exact values and gradients) and the alarm that ends a run at its
deadline (pure numpy; scipy is imported only when bounds are used)."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import AdcliError
from ..results import (
    DIVERGED,
    INTERRUPTED,
    MAX_STEPS,
    TIME_LIMIT,
    UNBOUNDED,
    MinimizeResult,
    norm,
)

#: the method name reported when bounds send the quasi-Newton default to scipy's L-BFGS-B.
BOUNDED_QUASI_NEWTON = "l-bfgs-b"
#: rules that take bounds by projecting (clipping) each step onto the box.
PROJECTED = ("gd", "momentum", "nesterov", "adam")

Bounds = Mapping[str, tuple[float, float]]


class TimeUp(Exception):
    """Raised by an evaluation past the deadline; the loops report the best point so far."""


class _Halt(Exception):
    """Ends the L-BFGS-B run from inside scipy's callbacks with a reason and message."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.reason, self.message = reason, message


def box(bounds: Bounds | None, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``{name: (lo, hi)}`` -> lower and upper arrays over ``names`` (None without bounds).
    A name that is not a parameter, nan, or lo >= hi is an error: a silently ignored bound
    would report an unconstrained minimum as if it were the constrained one."""
    if not bounds:
        return None
    lower, upper = np.full(len(names), -np.inf), np.full(len(names), np.inf)
    index = {n: i for i, n in enumerate(names)}
    for name, (lo, hi) in bounds.items():
        if name not in index:
            raise AdcliError(f"--bounds '{name}' is not a parameter (parameters: "
                             f"{', '.join(names) or 'none'})")
        lo, hi = float(lo), float(hi)
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise AdcliError(f"--bounds {name}={lo:g}:{hi:g}: need lo < hi")
        lower[index[name]], upper[index[name]] = lo, hi
    return lower, upper


#: a parameter this close to a bound (relative to max(1, |bound|)) is at it: the
#: least-squares engine (trf) stays strictly inside, an ulp or so from the bound.
AT_BOUND = 1e-10


def at_bounds(x: np.ndarray, lower: np.ndarray, upper: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the parameters at their lower and at their upper bound."""
    with np.errstate(all="ignore"):
        at_lo = x <= lower + AT_BOUND * np.maximum(1.0, np.abs(lower))
        at_hi = x >= upper - AT_BOUND * np.maximum(1.0, np.abs(upper))
    return at_lo & np.isfinite(lower), at_hi & np.isfinite(upper)


def projected_gradient(x: np.ndarray, g: np.ndarray, lower: np.ndarray, upper: np.ndarray
                       ) -> np.ndarray:
    """The gradient with the components that push against an active bound set to 0: what
    is left is the part a feasible step can still reduce, 0 at a constrained minimum (x^2
    on [1, 2] stops at 1 with gradient 2)."""
    at_lo, at_hi = at_bounds(x, lower, upper)
    blocked = (at_lo & (g > 0)) | (at_hi & (g < 0))
    return np.where(blocked, 0.0, g)


@contextmanager
def alarm(deadline: float | None, run: Any) -> Iterator[None]:
    """Also stop a single long step at the deadline (a first evaluation that compiles a big
    tape, a long line search): SIGALRM raises :class:`TimeUp` where the code is, as Ctrl-C
    raises KeyboardInterrupt.  Only in the main thread of a platform with ``setitimer``;
    elsewhere the check before each evaluation is the only one."""
    if (deadline is None or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        if not run.timed_out:  # the check before an evaluation may have stopped it already
            run.timed_out = True
            raise TimeUp

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-6))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def lbfgsb(run: Any, x: np.ndarray, memory: int, steps: int,
            callback: Callable[[int, float, float, np.ndarray], None] | None,
            unbounded_value: float) -> MinimizeResult:
    """The quasi-Newton default under bounds: scipy's L-BFGS-B (Byrd, Lu, Nocedal & Zhu) on
    the same exact values and gradients, with this driver's stopping tests, callback, step
    limit, time limit and Ctrl-C run from scipy's per-iteration callback.  scipy's own tests
    are off (gtol 0, ftol 0); when it stops by itself it found no lower point."""
    from scipy.optimize import Bounds as ScipyBounds
    from scipy.optimize import minimize as scipy_minimize

    lower, upper = run.limits  # type: ignore[misc]
    f, g = run.full(x)
    stop = run.start(f, run.pgrad(x, g))
    if stop is not None:
        return run.result(x, f, g, *stop)
    seen: dict[bytes, tuple[float, np.ndarray]] = {x.tobytes(): (f, g)}
    state = {"best": (f, x, g), "last": (f, x, g)}

    def check(z: np.ndarray, fz: float, gz: np.ndarray) -> None:
        """The tests at an accepted iterate (the driver's full-batch loop body)."""
        pg = run.pgrad(z, gz)
        improved = fz < state["best"][0]
        if improved:
            state["best"] = (fz, z, gz)
        state["last"] = (fz, z, gz)
        if callback is not None:
            callback(run.iteration, fz, norm(pg), z)
        found = run.stop(z, fz, pg, improved, evaluate=fun)
        if found is not None:
            raise _Halt(*found)
        if run.iteration >= steps:
            raise _Halt(MAX_STEPS)

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.array(z, dtype=np.float64)
        fz, gz = run.full(z)
        if fz == -math.inf or fz <= unbounded_value:
            state["last"] = (fz, z, gz)
            raise _Halt(UNBOUNDED, f"the value fell to {fz:g} at iteration "
                        f"{run.iteration + 1}; the objective looks unbounded below")
        if not (math.isfinite(fz) and np.all(np.isfinite(gz))):
            raise _Halt(DIVERGED, f"the value became {fz} (gradient norm {norm(gz)}) at "
                        f"iteration {run.iteration + 1}; the last accepted point is reported")
        if len(seen) > 64:
            seen.clear()
        seen[z.tobytes()] = (fz, gz)
        return fz, gz

    def accepted(intermediate_result: Any) -> None:
        z = np.array(intermediate_result.x, dtype=np.float64)
        run.iteration += 1
        fz, gz = seen.get(z.tobytes()) or fun(z)
        check(z, fz, gz)

    reason, message = MAX_STEPS, ""
    try:
        check(x, f, g)  # iteration 0: the callback sees the start, which may already be done
        out = scipy_minimize(fun, x, jac=True, method="L-BFGS-B",
                             bounds=ScipyBounds(lower, upper), callback=accepted,
                             options={"maxcor": memory, "maxiter": steps + 1, "gtol": 0.0,
                                      "ftol": 0.0, "maxfun": 2**31 - 1})
        z = np.array(out.x, dtype=np.float64)
        fz, gz = seen.get(z.tobytes()) or fun(z)
        pg = run.pgrad(z, gz)
        done = run.converged(z, fz, pg)
        if done is not None:
            reason, message = done
        else:
            reason, message = run.stalled(z, fz, pg,
                                          f"L-BFGS-B found no lower point ({out.message})", fun)
        state["last"] = (fz, z, gz)
    except _Halt as halt:
        reason, message = halt.reason, halt.message
        if reason == DIVERGED:
            f, x, g = state["last"]
            return run.result(x, f, g, reason, message)
    except (KeyboardInterrupt, TimeUp) as stopped:
        f, x, g = state["best"]
        why = INTERRUPTED if isinstance(stopped, KeyboardInterrupt) else TIME_LIMIT
        return run.result(x, f, g, why)
    f, x, g = state["last"]
    return run.result(x, f, g, reason, message)
