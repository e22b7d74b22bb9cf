"""Profile-likelihood intervals on the 54 NIST StRD fits: ``adcli fit --ci profile`` against
lmfit's ``conf_interval``, same fits, same run.

    python bench/profile_nist.py [--limit SECONDS]

For every problem and both NIST starts:
  adcli   adcli.fit from the start, then FitResult.conf_interval("profile") at lmfit's
          default levels (1, 2, 3 sigma: 68.27, 95.45, 99.73 %), i.e. what
          ``adcli fit --ci profile`` computes; refits on the exact Jacobian, ends by Brent
  lmfit   lmfit.minimize (leastsq, its defaults, finite-difference Jacobian) from the same
          start on the same residual function (adcli's, so both fit the same numbers), then
          lmfit.conf_interval(minimizer, result) with its defaults (sigmas 1, 2, 3)
Each side is timed from the fit's start to its intervals. A side "completes" when it returns
six finite ends for every parameter without raising within --limit seconds (SIGALRM); an
end adcli reports in words (bound, never crosses) counts as not completed. Where both
complete, the table gives the largest difference of an end, in units of the parameter's
NIST certified standard deviation.

lmfit is installed for this benchmark only (pip install lmfit); it is no dependency of adcli.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nist_strd import PROBLEMS, load  # noqa: E402

import adcli  # noqa: E402
from adcli.regression.fitting import Residuals  # noqa: E402
from adcli.regression.formula import parse_formula  # noqa: E402
from adcli.regression.profile import PROFILE_LEVELS  # noqa: E402


class _Late(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Late()


def _ends_adcli(problem, start: int) -> tuple[dict[str, list[float]] | None, float, str]:
    began = time.perf_counter()
    try:
        result = adcli.fit(problem.formula, problem.columns, start=problem.starts[start])
        ci = result.conf_interval("profile", PROFILE_LEVELS)
    except _Late:
        return None, time.perf_counter() - began, "time limit"
    except Exception as err:  # noqa: BLE001 - a failure is a result here
        return None, time.perf_counter() - began, f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - began
    ends = {}
    for name, pairs in ci["intervals"].items():
        (l1, h1), (l2, h2), (l3, h3) = pairs
        ends[name] = [l3, l2, l1, h1, h2, h3]
    if any(v is None for e in ends.values() for v in e):
        return None, seconds, "; ".join(n for notes in ci["notes"].values() for n in notes)
    return ends, seconds, ""


def _ends_lmfit(problem, start: int) -> tuple[dict[str, list[float]] | None, float, str]:
    import lmfit

    res = Residuals(parse_formula(problem.formula), problem.columns)
    params = lmfit.Parameters()
    for name in res.free:
        params.add(name, value=problem.starts[start][name])

    def residual(p):
        return res.residuals(np.array([p[n].value for n in res.free]))

    began = time.perf_counter()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            mini = lmfit.Minimizer(residual, params)
            out = mini.minimize(method="leastsq")
            ci = lmfit.conf_interval(mini, out)
    except _Late:
        return None, time.perf_counter() - began, "time limit"
    except Exception as err:  # noqa: BLE001 - a failure is a result here
        return None, time.perf_counter() - began, f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - began
    ends = {}
    for name in res.free:
        rows = ci[name]
        values = [v for _, v in rows]
        ends[name] = values[:3] + values[4:]
    if not all(math.isfinite(v) for e in ends.values() for v in e):
        return None, seconds, "non-finite end"
    return ends, seconds, ""


def run(limit: float) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    print("| problem | start | adcli s | lmfit s | adcli | lmfit | "
          "max end difference / certified sd |")
    print("|---|---|---|---|---|---|---|")
    done = {"adcli": 0, "lmfit": 0}
    total = {"adcli": 0.0, "lmfit": 0.0}
    why: list[str] = []
    for name in PROBLEMS:
        problem = load(name)
        adcli.fit(problem.formula, problem.columns, start=problem.starts[0],
                  max_evaluations=1)  # compile the tape outside the timing
        for start in (0, 1):
            row = {}
            for side, fn in (("adcli", _ends_adcli), ("lmfit", _ends_lmfit)):
                signal.setitimer(signal.ITIMER_REAL, limit)
                try:
                    row[side] = fn(problem, start)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                ends, seconds, message = row[side]
                total[side] += seconds
                done[side] += ends is not None
                if ends is None:
                    why.append(f"{name} start {start + 1}, {side}: {message[:160]}")
            (a, ta, _), (b, tb, _) = row["adcli"], row["lmfit"]
            diff = ""
            if a is not None and b is not None:
                worst = max(abs(u - v) / problem.certified_sd[n]
                            for n in a for u, v in zip(a[n], b[n]))
                diff = f"{worst:.2g}"
            print(f"| {name} | {start + 1} | {ta:.3f} | {tb:.3f} | "
                  f"{'yes' if a is not None else 'no'} | {'yes' if b is not None else 'no'} | "
                  f"{diff} |")
    print(f"| **completed** | | {total['adcli']:.1f} | {total['lmfit']:.1f} | "
          f"**{done['adcli']}/54** | **{done['lmfit']}/54** | |")
    print()
    for line in why:
        print(f"- {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=float, default=120.0,
                        help="seconds per side and fit before it counts as not completed")
    args = parser.parse_args()
    run(args.limit)


if __name__ == "__main__":
    main()
