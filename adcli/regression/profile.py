"""Profile-likelihood confidence intervals of a least-squares fit (``fit --ci profile``).

For each free parameter the profile holds it at a value v, refits the others (warm-started
from the nearest point already profiled, on the exact Jacobian, within their bounds and with
``--fix`` kept) and measures the F statistic (χ²(v) − χ²_best)/(χ²_best/(n − k)), the
statistic of lmfit's ``conf_interval`` and R's ``confint.nls``. An end of the interval at
level L is where it reaches the L quantile of F(1, n − k) (of χ²(1) with ``--absolute-sigma``,
where χ² needs no rescaling). The crossing is bracketed by stepping out from the Wald guess
and then found to full precision by Brent's method on the signed root of the statistic,
which is close to linear in v, so a few refits pin it. An end that meets a bound, a statistic
that levels off below the quantile, or a refit that fails is reported in words.

The refits run through :class:`Refit`, which every engine (rows in memory, partitions on
Dask) builds from its own problem, and through :func:`adcli.regression.leastsq.solve`, the
engine of the fit itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .formula import FitError
from .leastsq import Compressed, qr_sums, solve

if TYPE_CHECKING:
    from .fitting import FitResult
    from .problem import FitSetup

#: lmfit's 1, 2 and 3 sigma levels, rounded as the issue and lmfit's report print them.
PROFILE_LEVELS = (0.6827, 0.9545, 0.9973)
#: How far out, in multiples of the first guess's distance (the Wald half-width), the profile
#: steps before an end is reported as never crossing.
MAX_REACH = 2.0 ** 24
#: Steps outward at most (the distance grows by 1.05 to 2 per step, by 2 after 8 steps).
MAX_EXPANSIONS = 40
#: Refits of Brent's method per end (it needs far fewer: a stop means a noisy profile).
MAX_BRENT = 100
#: A refit below χ²_best by more than this fraction of s² means the fit missed its minimum.
LOWER_TOLERANCE = 1e-6

#: the engine of a refit: fixed values -> (Compressed engine over the other free parameters,
#: rᵀr at a point of them)
EngineFactory = Callable[[dict[str, float]], tuple[Any, Callable[[np.ndarray], float]]]


@dataclass
class Refit:
    """The fit's problem with one parameter more held fixed: what the profile needs from the
    engine that ran the fit."""

    engine_for: EngineFactory
    free: list[str]
    fixed: dict[str, float]
    lower: np.ndarray
    upper: np.ndarray
    max_evaluations: int

    @classmethod
    def of(cls, residuals: Any, setup: FitSetup, max_evaluations: int) -> Refit:
        """The refits of an in-memory fit: its :class:`~adcli.regression.fitting.Residuals`
        again with more parameters held (the same columns, weights and lowered program), run
        by the fit's own compressed engine."""
        kind = type(residuals)

        def engine_for(fixed: dict[str, float]) -> tuple[Compressed, Callable]:
            res = kind(residuals.formula, residuals.columns, None, fixed,
                       bound=residuals.bound, function=residuals.function)
            res.weight = residuals.weight

            def rss(b: np.ndarray) -> float:
                r = res.residuals(b)
                return float(r @ r)

            return Compressed(lambda b: qr_sums(*res.both(b)), len(res.free)), rss

        return cls(engine_for, list(setup.free), dict(setup.fixed), setup.lower.copy(),
                   setup.upper.copy(), max_evaluations)


@dataclass
class Trace:
    """The points of one parameter's profile: value, statistic, the other free parameters."""

    name: str
    estimate: float
    points: list[tuple[float, float, np.ndarray]] = field(default_factory=list)

    def nearest(self, v: float) -> np.ndarray:
        """The refit's start at ``v``: the other parameters at the nearest profiled point
        (a linear extrapolation from two points jumped to other minima on NIST's Rat43)."""
        return min(self.points, key=lambda p: abs(p[0] - v))[2]


class _Stop(Exception):
    """The profile cannot go further on this side: why, in words, for a level's quantile."""

    def __init__(self, words: str | Callable[[float], str]) -> None:
        super().__init__()
        self.words = words

    def at(self, q: float) -> str:
        return self.words(q) if callable(self.words) else self.words


def quantiles(levels: Sequence[float], dof: int, known_variance: bool) -> list[float]:
    """The level quantiles of F(1, dof), or of χ²(1) when the variance is known."""
    from scipy.special import fdtri, ndtri

    if known_variance:
        return [float(ndtri(0.5 + lv / 2.0)) ** 2 for lv in levels]
    if dof <= 0:
        return [math.nan for _ in levels]
    return [float(fdtri(1.0, float(dof), lv)) for lv in levels]


def brent(f: Callable[[float], float], a: float, b: float, fa: float, fb: float,
          xtol: float, rtol: float = 4 * np.finfo(float).eps,
          maxiter: int = MAX_BRENT) -> float:
    """A zero of ``f`` between ``a`` and ``b`` (``fa``, ``fb`` of opposite signs) by Brent's
    method: inverse quadratic interpolation or secant steps, bisection when they stall."""
    xpre, xcur, fpre, fcur = a, b, fa, fb
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    xblk = fblk = spre = scur = 0.0
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and (fpre < 0) != (fcur < 0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2.0
        sbis = (xblk - xcur) / 2.0
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2.0 * abs(stry) < min(abs(spre), 3.0 * abs(sbis) - delta):
                spre, scur = scur, stry
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = f(xcur)
    return xcur


class Profiler:
    """The profiles of one fit: refits counted, traces kept for the plot."""

    def __init__(self, result: FitResult, refit: Refit, deadline: float | None = None) -> None:
        self.result = result
        self.refit = refit
        #: ``time.monotonic()`` past which every end left stops (``fit --max-time``)
        self.deadline = deadline
        # the statistic's denominator: s² = χ²_best/(n − k), or 1 when σ are absolute
        self.scale = 1.0 if result.absolute_sigma else \
            (result.rss / result.dof if result.dof > 0 else math.nan)
        self.best = float(result.rss)
        self.refits = 0
        self.notes: dict[str, list[str]] = {}
        self.traces: dict[str, Trace] = {}

    def statistic(self, trace: Trace, v: float) -> float:
        """Refit the other parameters with ``trace.name`` held at ``v``; the F statistic."""
        refit = self.refit
        name = trace.name
        j = refit.free.index(name)
        others = [k for k in range(len(refit.free)) if k != j]
        fixed = dict(refit.fixed)
        fixed[name] = float(v)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stop("stops: the time limit was reached (--max-time; 0 for no limit)")
        engine, rss_at = refit.engine_for(fixed)
        self.refits += 1
        if not others:
            x = np.zeros(0)
            with np.errstate(all="ignore"):
                rss = rss_at(x)
        else:
            lo, hi = refit.lower[others], refit.upper[others]
            x0 = np.clip(trace.nearest(v), lo, hi)
            with np.errstate(all="ignore"):
                start = rss_at(x0)
            if not math.isfinite(start):
                raise _Stop(f"stops: the residuals are not finite at {name} = {v:.6g}")
            sol = solve(engine, x0, lo, hi, refit.max_evaluations)
            if sol.status not in (1, 2, 3, 4):
                raise _Stop(f"stops: the refit of the other parameters at {name} = {v:.6g} "
                            "did not converge")
            x = sol.x
            rss = engine.rss(x)
        if not math.isfinite(rss):
            raise _Stop(f"stops: the sum of squares is not finite at {name} = {v:.6g}")
        stat = (rss - self.best) / self.scale
        if stat < -LOWER_TOLERANCE and name not in self.notes:  # said once per parameter
            self.notes.setdefault(name, []).append(
                f"a lower sum of squares than the fit's was found at {name} = {v:.6g}: the "
                "fit did not reach the minimum, so these intervals are not trustworthy")
        stat = max(stat, 0.0)
        trace.points.append((float(v), stat, np.array(x, dtype=np.float64)))
        return stat

    def side(self, trace: Trace, direction: int, targets: list[float],
             se: float, bound: float) -> list[float | str]:
        """The ends on one side (direction -1 or +1) for the ascending ``targets``: each a
        value or the words that say why there is none."""
        name, est = trace.name, trace.estimate
        step = math.sqrt(targets[0]) * se if math.isfinite(se) and se > 0 else \
            1e-3 * max(abs(est), 1.0)
        inner = (est, 0.0)
        outer: tuple[float, float] | None = None
        out: list[float | str] = []
        stopped: _Stop | None = None
        for q in targets:
            if stopped is not None:
                out.append(stopped.at(q))
                continue
            root_q = math.sqrt(q)
            try:
                # the farthest point below q and the nearest at or above it, on this side
                side = [(v, s) for v, s, _ in trace.points if (v - est) * direction > 0]
                below = [p for p in side if p[1] < q]
                above = [p for p in side if p[1] >= q]
                if above:
                    outer = min(above, key=lambda p: abs(p[0] - est))
                    near = [p for p in below if abs(p[0] - est) < abs(outer[0] - est)]
                    inner = max(near, key=lambda p: abs(p[0] - est)) if near else (est, 0.0)
                else:
                    inner = max(below, key=lambda p: abs(p[0] - est)) if below else (est, 0.0)
                    outer = None
                    guess = est + direction * root_q * se if math.isfinite(se) and se > 0 \
                        else inner[0] + direction * step
                    if abs(guess - est) <= abs(inner[0] - est):
                        guess = est + 2.0 * (inner[0] - est)
                    limit = MAX_REACH * abs(guess - est)
                    for step_out in range(MAX_EXPANSIONS):
                        if abs(guess - est) > limit:
                            break
                        if (guess - bound) * direction >= 0:
                            guess = bound
                        s = self.statistic(trace, guess)
                        if s >= q:
                            outer = (guess, s)
                            break
                        inner = (guess, s)
                        if guess == bound:
                            raise _Stop(lambda q, s=s: f"reaches the bound {name} = "
                                        f"{bound:.6g} (the statistic is {s:.4g} there, below "
                                        f"{q:.4g})")
                        # where √F would reach √q if it grew linearly from the estimate, a
                        # little beyond to bracket the crossing; at most doubling the distance,
                        # and doubling after 8 steps (a profile levelling off below √q)
                        reach = 1.05 * root_q / math.sqrt(s) if s > 0 else 2.0
                        least = 1.05 if step_out < 8 else 2.0
                        guess = est + min(max(reach, least), 2.0) * (guess - est)
                    if outer is None:
                        far = inner[0]
                        raise _Stop(lambda q, far=far: f"never crosses: the statistic stays "
                                    f"below {q:.4g} out to {name} = {far:.6g}")

                def g(v: float, root_q: float = root_q) -> float:
                    return math.sqrt(self.statistic(trace, v)) - root_q

                xtol = 1e-15 * (se if math.isfinite(se) and se > 0 else max(abs(est), 1.0))
                root = brent(g, inner[0], outer[0], math.sqrt(inner[1]) - root_q,
                             math.sqrt(outer[1]) - root_q, xtol)
                out.append(float(root))
            except _Stop as stop:
                stopped = stop
                out.append(stop.at(q))
        return out

    def intervals(self, name: str, levels: Sequence[float], targets: list[float]
                  ) -> list[list[float | str]]:
        """[[lower, upper] per level] of one free parameter (words where an end is missing)."""
        result, refit = self.result, self.refit
        j = refit.free.index(name)
        est = result.parameters[name]
        se = result.stderr.get(name, math.nan)
        trace = Trace(name, est)
        others = [n for n in refit.free if n != name]
        trace.points.append((est, 0.0, np.array([result.parameters[n] for n in others],
                                                dtype=np.float64)))
        self.traces[name] = trace
        order = sorted(range(len(levels)), key=lambda k: targets[k])
        ascending = [targets[k] for k in order]
        lower = self.side(trace, -1, ascending, se, float(refit.lower[j]))
        upper = self.side(trace, +1, ascending, se, float(refit.upper[j]))
        out: list[list[float | str]] = [[math.nan, math.nan] for _ in levels]
        for pos, k in enumerate(order):
            out[k] = [lower[pos], upper[pos]]
        trace.points.sort(key=lambda p: p[0])
        return out


#: how an end was found, from the words that explain a missing one: "crossed" (a value),
#: "bound" (the profile reaches a bound below the quantile: the interval extends to it),
#: "open" (it never crosses: unbounded on that side as far as the refits can tell),
#: "failed" (a refit failed or the model is not finite there: unknown)
_KINDS = (("reaches the bound", "bound"), ("never crosses", "open"), ("stops", "failed"))


def percent(level: float) -> str:
    """A level as a percentage label with the digits it needs: 6 significant digits would
    call 0.9999999999 "100%" (an infinite interval) and 0.12345678 "12.3457%"."""
    value = level * 100
    for digits in range(6, 16):
        text = f"{value:.{digits}g}"
        if abs(float(text) - value) <= 1e-12 * abs(value) and 0.0 < float(text) < 100.0:
            break
    return f"{text}%"


def profile(result: FitResult, levels: Sequence[float] = PROFILE_LEVELS,
            names: Sequence[str] | None = None, deadline: float | None = None
            ) -> dict[str, Any]:
    """The ``"ci"`` record of profile-likelihood intervals of ``result`` (every free parameter,
    or ``names``) at ``levels``; missing ends are ``None`` and explained in ``"notes"``. Past
    ``deadline`` (a ``time.monotonic()``) the ends left stop, in words."""
    refit = getattr(result, "refit", None)
    if refit is None:
        raise FitError("this fit cannot be profiled: it has no problem to refit (fit it "
                       "again with adcli.fit)")
    if result.dof <= 0 and not result.absolute_sigma:
        raise FitError(f"{result.rows} rows for {len(refit.free)} parameters: no degrees of "
                       "freedom left, so no profile intervals")
    wanted = list(refit.free if names is None else names)
    for name in wanted:
        if name not in refit.free:
            raise FitError(f"'{name}' is not a free parameter of the fit (free: "
                           f"{', '.join(refit.free)})")
    targets = quantiles(levels, result.dof, bool(result.absolute_sigma))
    prof = Profiler(result, refit, deadline)
    intervals: dict[str, list[list[float | None]]] = {}
    notes: dict[str, list[str]] = {}
    kinds: dict[str, list[list[str]]] = {}
    for name in wanted:
        ends = prof.intervals(name, levels, targets)
        pairs: list[list[float | None]] = []
        for level, (lo, hi) in zip(levels, ends):
            pair: list[float | None] = []
            kind: list[str] = []
            for which, end in (("lower", lo), ("upper", hi)):
                if isinstance(end, str):
                    notes.setdefault(name, []).append(
                        f"the {percent(level)} {which} end {end}")
                    pair.append(None)
                    kind.append(next(k for p, k in _KINDS if end.startswith(p)))
                else:
                    pair.append(end)
                    kind.append("crossed")
            pairs.append(pair)
            kinds.setdefault(name, []).append(kind)
        intervals[name] = pairs
    for name, extra in prof.notes.items():
        notes.setdefault(name, []).extend(dict.fromkeys(extra))
    distribution = "chi2(1)" if result.absolute_sigma else f"F(1, {result.dof})"
    result.profile_traces = {n: [(v, s) for v, s, _ in t.points] for n, t in prof.traces.items()}
    return {"method": "profile", "levels": list(levels), "distribution": distribution,
            "quantiles": targets, "intervals": intervals, "ends": kinds, "notes": notes,
            "refits": prof.refits}
