"""The uncertainty report of a least-squares fit beyond its standard errors: t values and
two-sided p values, information criteria, reduced chi-square and Wald confidence intervals.

Everything here is a function of a :class:`~adcli.regression.fitting.FitResult` (its estimates,
covariance, RSS and degrees of freedom), so a fit in memory and one over Dask partitions,
which share :func:`adcli.regression.fitting.conclude`, report the same numbers. The p values
every fit prints come from the regularised incomplete beta function computed here (a continued
fraction, :func:`_betainc`) and ``math.erfc``: importing ``scipy.special`` costs more than a small
fit (it loads scipy's array-API layer, which loads ``numpy.f2py``); it is still used past
:data:`CF_DOF` degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .formula import FitError, nest_elements

if TYPE_CHECKING:
    from .fitting import FitResult

#: The level of ``--ci wald`` when ``--level`` is not given (R's ``confint`` default).
DEFAULT_LEVELS = (0.95,)
#: More levels than this is a typo rather than a report.
MAX_LEVELS = 20
#: What ``aic`` and ``bic`` mean (lmfit's ``MinimizerResult.aic``/``bic``), in the JSON.
INFORMATION = "lmfit: n*log(rss/n) + 2*k and n*log(rss/n) + log(n)*k, k free parameters"


class Uncertain:
    """What :class:`~adcli.regression.fitting.FitResult` adds beyond R's ``summary(nls)``:
    intervals (``ci``), derived quantities (``derived``) and the problem kept for profile
    refits, with the methods of the Python API. Plain class attributes, not dataclass fields:
    a result starts without them and the commands fill them in."""

    #: the record of ``fit --ci`` (:func:`wald`, :func:`adcli.regression.profile.profile`)
    ci: dict | None = None
    #: ``--derive``: name -> expression, value and delta-method standard error
    derived: dict | None = None
    #: each profiled parameter's (value, F statistic) points, for ``--profile-plot``
    profile_traces: dict | None = None
    _refit: Any = None
    _problem: tuple | None = None

    @property
    def refit(self) -> Any:
        """The fit's problem with more parameters held (:class:`adcli.regression.profile.Refit`),
        made when a profile first asks: most fits never import the profile's module."""
        if self._refit is None and self._problem is not None:
            from .profile import Refit

            self._refit = Refit.of(*self._problem)
        return self._refit

    @refit.setter
    def refit(self, value: Any) -> None:
        self._refit = value

    def keep_problem(self, residuals: Any, setup: Any, max_evaluations: int) -> None:
        """Keep an in-memory fit's residuals and setup for profile refits."""
        self._problem = (residuals, setup, max_evaluations)

    def conf_interval(self, method: str = "profile", levels: Sequence[float] | None = None,
                      names: Sequence[str] | None = None) -> dict[str, Any]:
        """Intervals of the free parameters (or ``names``), kept as :attr:`ci`:
        ``"profile"`` (profile likelihood as lmfit's ``conf_interval`` and R's
        ``confint.nls``; levels 68.27, 95.45, 99.73 % by default) or ``"wald"`` (95 %)."""
        from .profile import PROFILE_LEVELS, profile

        if method not in ("profile", "wald"):
            raise FitError(f"method '{method}' is not profile or wald")
        if levels is not None:
            levels = [float(v) for v in levels]
            if not levels or not all(0.0 < v < 1.0 for v in levels):
                raise FitError("levels must be fractions between 0 and 1, exclusive")
        if method == "wald":
            ci = wald(self, levels or DEFAULT_LEVELS)  # type: ignore[arg-type]
            if names is not None:
                ci["intervals"] = {n: ci["intervals"][n] for n in names if n in ci["intervals"]}
        else:
            ci = profile(self, levels or PROFILE_LEVELS, names)  # type: ignore[arg-type]
        self.ci = ci
        return ci

    def derive(self, *texts: str) -> dict[str, dict[str, Any]]:
        """``derive("t_half = log(2)/b")``: value and delta-method standard error of each
        quantity (``fit --derive``), also added to :attr:`derived`."""
        new = derive(self, texts)  # type: ignore[arg-type]
        self.derived = (self.derived or {}) | new
        return new


def parse_levels(text: str | None, default: Sequence[float] = DEFAULT_LEVELS) -> list[float]:
    """``"0.9,95%"`` -> ``[0.9, 0.95]``: each a fraction in (0, 1) or a percentage."""
    if text is None or not text.strip():
        return list(default)
    out: list[float] = []
    for part in text.split(","):
        item = part.strip()
        try:
            value = float(item[:-1]) / 100.0 if item.endswith("%") else float(item)
        except ValueError:
            raise FitError(f"--level '{item}' is not a number (e.g. 0.95 or 95%)") from None
        if not 0.0 < value < 1.0:
            raise FitError(f"--level '{item}' must be between 0 and 1 (or 0% and 100%), "
                           "exclusive")
        if value in out:
            raise FitError(f"--level gives {item} twice")
        out.append(value)
    if len(out) > MAX_LEVELS:
        raise FitError(f"--level gives {len(out)} levels; at most {MAX_LEVELS}")
    return out


def _known_variance(result: FitResult) -> bool:
    """With ``--absolute-sigma`` the variance is not estimated: the statistics are normal,
    not Student-t (curve_fit's and lmfit's meaning of absolute errors)."""
    return bool(result.absolute_sigma)


def quantile(q: float, dof: float) -> float:
    """The q quantile of Student's t with ``dof`` degrees of freedom (normal for inf), for
    0 < q < 1: Newton's method on the tail of :func:`two_sided_p` from the normal quantile.
    The tail is convex and decreasing beyond 0, so every Newton step from the left stays on
    the left of the root and the iteration climbs to it monotonically."""
    from statistics import NormalDist  # the normal quantile (Wichura's AS 241)

    if not 0.0 < q < 1.0 or math.isnan(dof):
        return math.nan
    if math.isinf(dof):
        return NormalDist().inv_cdf(q)
    if not dof > 0:
        return math.nan
    if q == 0.5:
        return 0.0
    tail = 1.0 - q if q > 0.5 else q
    t = abs(NormalDist().inv_cdf(tail))  # below the root: t's tails are heavier
    half = 0.5 * dof
    log_c = _lgamma_step(half, 0.5) - 0.5 * math.log(dof * math.pi)
    for _ in range(QUANTILE_STEPS):
        p = _betainc(half, 0.5, dof / (dof + t * t), t * t / (dof + t * t)) \
            if dof <= CF_DOF else None
        if p is None:
            t = math.nan
            break
        density = math.exp(log_c - (half + 0.5) * math.log1p(t * t / dof))
        step = (0.5 * p - tail) / density
        t += step
        # a step this small, or backwards (rounding once at the root), ends it
        if not math.isfinite(t) or step <= 1e-14 * t:
            break
    else:
        t = math.nan
    if not math.isfinite(t):  # many degrees of freedom, or a tail beyond float64's reach
        from scipy.special import stdtrit

        t = abs(float(stdtrit(dof, tail)))
    return t if q > 0.5 else -t


#: Newton steps of :func:`quantile` (from the normal quantile it climbs by about a factor
#: (1 + 1/dof) per step while far below the root, so one degree of freedom needs the most)
QUANTILE_STEPS = 400


def two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom (normal for inf):
    I_x(dof/2, 1/2) at x = dof/(dof + t²), the regularised incomplete beta function."""
    if math.isnan(t) or not dof > 0:
        return math.nan
    if math.isinf(dof):
        return math.erfc(abs(t) / math.sqrt(2.0))
    if math.isinf(t):
        return 0.0
    t2 = t * t
    p = None
    if dof <= CF_DOF:
        # x and 1 - x each from its own quotient: 1 - x rounded from x would lose the small one
        p = _betainc(0.5 * dof, 0.5, dof / (dof + t2), t2 / (dof + t2))
    if p is None:
        from scipy.special import stdtr

        p = float(2.0 * stdtr(dof, -abs(t)))
    return p


#: The continued fraction needs about sqrt(dof) terms and its rounding grows with them:
#: within 1e-12 relative of mpmath up to this many degrees of freedom (tests/test_uncertainty.py);
#: more go to scipy.special.stdtr.
CF_DOF = 10_000
#: terms of the continued fraction before giving up (never reached below CF_DOF)
CF_TERMS = 3000


def _stirling(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2π)/2), by its asymptotic series (z >= 20)."""
    w = 1.0 / (z * z)
    return (1.0 / 12.0 - w * (1.0 / 360.0 - w * (1.0 / 1260.0 - w / 1680.0))) / z


def _lgamma_step(z: float, b: float) -> float:
    """lgamma(z + b) - lgamma(z) without the cancellation of two large lgammas (each of size
    z log z, so their difference would carry z log z times eps of absolute error)."""
    if z < 20.0:
        return math.lgamma(z + b) - math.lgamma(z)
    return ((z - 0.5) * math.log1p(b / z) + b * math.log(z + b) - b
            + _stirling(z + b) - _stirling(z))


def _betainc(a: float, b: float, x: float, y: float) -> float | None:
    """The regularised incomplete beta function I_x(a, b), with y = 1 - x given exactly, by
    the continued fraction of Abramowitz & Stegun 26.5.8 (modified Lentz), on the side where
    it converges (I_x(a, b) = 1 - I_y(b, a)); None when it needs more than :data:`CF_TERMS`."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        rest = _betainc(b, a, y, x)  # one level: the swapped side converges
        return None if rest is None else 1.0 - rest
    log_front = (a * math.log(x) + b * math.log1p(-x) if x < 0.5 else
                 a * math.log1p(-y) + b * math.log(y))
    big, small = max(a, b), min(a, b)
    log_front += _lgamma_step(big, small) - math.lgamma(small) - math.log(a)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, CF_TERMS + 1):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-16:
            return math.exp(log_front) * f
    return None


def _dof(result: FitResult) -> float:
    return math.inf if _known_variance(result) else float(result.dof)


def t_values(result: FitResult) -> dict[str, float]:
    """estimate / standard error of each free parameter (R's ``t value``)."""
    out = {}
    for name, se in result.stderr.items():
        v = result.parameters[name]
        with np.errstate(all="ignore"):
            out[name] = float(np.float64(v) / np.float64(se))
    return out


def p_values(result: FitResult) -> dict[str, float]:
    """Two-sided p value of each t value against 0 (R's ``Pr(>|t|)``)."""
    dof = _dof(result)
    return {n: two_sided_p(t, dof) for n, t in t_values(result).items()}


def information(result: FitResult) -> tuple[float, float]:
    """AIC and BIC as lmfit defines them for least squares, from the (weighted) RSS:
    n log(RSS/n) + 2k and n log(RSS/n) + log(n) k with k the free parameters. R's
    ``AIC(nls)`` differs by a constant of the data (it adds n(log 2π + 1) + 2, and the
    weights' log), so differences between models fitted to the same data agree."""
    n, k = result.rows, len(result.stderr)
    if not (n > 0 and math.isfinite(result.rss)):
        return math.nan, math.nan
    with np.errstate(all="ignore"):
        core = float(n * np.log(np.float64(result.rss) / n))
    return core + 2.0 * k, core + math.log(n) * k


def reduced_chi_square(result: FitResult) -> float | None:
    """χ²/(n − k) of a fit weighted by ``--sigma`` (near 1 when sigma are the true errors);
    None without weights, where it would only be the residual variance."""
    if not result.weighted:
        return None
    return result.rss / result.dof if result.dof > 0 else math.nan


def wald(result: FitResult, levels: Sequence[float] = DEFAULT_LEVELS) -> dict[str, Any]:
    """Wald intervals estimate ± t(1 − α/2, dof)·se per free parameter and level (the normal
    quantile with ``--absolute-sigma``): symmetric, exact for a linear model, and only as
    good as the linearisation for a nonlinear one."""
    dof = _dof(result)
    half = [quantile(0.5 + lv / 2.0, dof) for lv in levels]
    intervals: dict[str, list[list[float]]] = {}
    for name, se in result.stderr.items():
        v = result.parameters[name]
        intervals[name] = [[v - q * se, v + q * se] for q in half]
    return {"method": "wald", "levels": list(levels),
            "distribution": "normal" if math.isinf(dof) else f"t({result.dof})",
            "intervals": intervals}


def report_json(result: FitResult) -> dict[str, Any]:
    """The JSON keys the uncertainty report adds to the JSON of a fit (:class:`FitResult`)."""
    aic, bic = information(result)
    return {
        "covariance": {"names": result.correlation_names,
                       "matrix": np.asarray(result.covariance).tolist()},
        "t_values": nest_elements(t_values(result)),
        "p_values": nest_elements(p_values(result)),
        "aic": aic,
        "bic": bic,
        "information_criteria": INFORMATION,
        "reduced_chi_square": reduced_chi_square(result),
        "absolute_sigma": bool(result.absolute_sigma),
        "start": nest_elements(result.start),
        "ci": result.ci,  # keyed by each parameter's name as written (b[1]), not nested
        "derived": result.derived,
    }


# --------------------------------------------------------------------------- derived parameters


def parse_derive(text: str, taken: Sequence[str] = ()) -> tuple[str, Any]:
    """``"t_half = log(2)/b"`` -> (``"t_half"``, its :class:`~adcli.function.Function`); a
    name that is not an identifier or is already ``taken`` (a parameter, an earlier derived
    quantity) is a :class:`FitError` that quotes the text."""
    from ..errors import AdcliError
    from ..function import parse
    from ..io.point import _NAME

    shown = text.strip()
    if len(shown) > 80:
        shown = shown[:77] + "..."
    name, eq, expr = text.partition("=")
    name = name.strip()
    if not eq or not expr.strip() or expr.lstrip().startswith("="):
        raise FitError(f"--derive '{shown}' is not name = expression (e.g. "
                       "\"t_half = log(2)/b\")")
    if not _NAME.match(name):
        raise FitError(f"--derive '{shown}': '{name}' is not a valid name")
    if name in taken:
        raise FitError(f"--derive '{shown}': '{name}' is already a parameter or a derived "
                       "quantity; choose another name")
    try:
        function = parse(expr)
    except AdcliError as err:
        raise FitError(f"--derive '{shown}': {err}") from None
    if function.program.statements[-1].name is not None:  # "t = u = 2": no value to report
        raise FitError(f"--derive '{shown}' is not name = expression: the expression ends in "
                       "a binding, not a value")
    return name, function


def derive(result: FitResult, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each ``name = expression`` of the parameters at the estimates, with its standard error
    by the delta method: sqrt(gᵀ C g) with g the exact gradient of the expression with respect
    to the free parameters (fixed ones have no variance) and C the full covariance."""
    from ..errors import AdcliError

    params = list(result.parameters)
    free = list(result.correlation_names)
    cov = np.asarray(result.covariance, dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, function = parse_derive(text, params + list(result.derived or {}) + list(out))
        unknown = [n for n in function.variables if n not in result.parameters]
        if unknown:
            from .problem import did_you_mean

            raise FitError(f"--derive '{name}': '{unknown[0]}' is not a parameter of the fit"
                           f"{did_you_mean(unknown[0], params)} (parameters: "
                           f"{', '.join(params)})")
        wrt = [n for n in function.variables if n in free]
        try:
            with np.errstate(all="ignore"):
                value, grad = function.grad(dict(result.parameters), wrt=wrt) if wrt else \
                    (function.eval(dict(result.parameters)), {})
        except AdcliError as err:
            raise FitError(f"--derive '{name}': {err}") from None
        g = np.zeros(len(free))
        for n in wrt:
            g[free.index(n)] = float(grad[n])
        used = g != 0
        with np.errstate(all="ignore"):
            var = float(g[used] @ cov[np.ix_(used, used)] @ g[used]) if used.any() else 0.0
        value = float(value)  # a value that is not finite has no meaningful error either
        out[name] = {"expression": text.partition("=")[2].strip(), "value": value,
                     "stderr": math.sqrt(var) if var >= 0 and math.isfinite(value)
                     else math.nan}
    return out
