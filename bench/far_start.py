"""adcli minimize from far starts against scipy, on the problem set of tests/test_far_start.py.

    python bench/far_start.py [--scales 10,100] [--steps 1000] [--json]

Twenty standard problems (Moré, Garbow & Hillstrom 1981) from 10*x0 and 100*x0 (--scales 1
adds the standard start), each run once, all solvers in one process and one run:

  auto, bfgs, lbfgs, newton   adcli.optimize.minimize with its defaults (the CLI's engine)
  scipy BFGS (fd)     scipy.optimize.minimize(method="BFGS") with finite-difference gradients
                      (what a scipy user gets without derivatives), default options
  scipy trust-exact   scipy.optimize.minimize(method="trust-exact") fed adcli's exact gradient
                      and Hessian, default options

For every solver: "solved" counts runs that said they converged (adcli ``converged``, scipy
``success``) at a known minimum value to 1e-8*max(1, |f*|); "reached" counts runs at a known
minimum whatever they said; "claimed elsewhere" counts runs that said they converged at
another value (a local stationary point, or a false claim: tests/test_far_start.py checks
adcli's with Nelder-Mead).  The optimiser's steps are capped at --steps for every solver.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import adcli
from adcli.optimize import build_objective, minimize

HERE = Path(__file__).resolve().parent


def load_problems() -> list[tuple[str, str, list[str], list[float], list[float]]]:
    """The problem set, from the test file that checks adcli's claims on it."""
    spec = importlib.util.spec_from_file_location("far_start_problems",
                                                  HERE.parent / "tests" / "test_far_start.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROBLEMS


def at_minimum(value: float, minima: list[float]) -> bool:
    return math.isfinite(value) and any(abs(value - m) <= 1e-8 * max(1.0, abs(m))
                                        for m in minima)


def run_adcli(objective, x0: np.ndarray, method: str, steps: int) -> tuple[float, bool]:
    try:
        r = minimize(objective, x0, method=method, steps=steps)
    except ArithmeticError:  # the engine before issue 19 could raise ZeroDivisionError
        return math.nan, False
    return float(r.value), bool(r.converged)


def run_scipy(objective, x0: np.ndarray, method: str, steps: int) -> tuple[float, bool]:
    from scipy.optimize import minimize as scipy_minimize

    def f(x):
        v, _ = objective(np.asarray(x, dtype=np.float64))
        return v if math.isfinite(v) else math.inf

    def grad(x):
        return objective(np.asarray(x, dtype=np.float64))[1]

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if method == "BFGS":
                r = scipy_minimize(f, x0, method="BFGS", options={"maxiter": steps})
            else:
                r = scipy_minimize(f, x0, jac=grad, hess=objective.hessian,
                                   method="trust-exact", options={"maxiter": steps})
        except (ValueError, np.linalg.LinAlgError, OverflowError):
            return math.nan, False
    return float(r.fun), bool(r.success)


SOLVERS = {
    "adcli auto": lambda o, x, s: run_adcli(o, x, "auto", s),
    "adcli bfgs": lambda o, x, s: run_adcli(o, x, "bfgs", s),
    "adcli lbfgs": lambda o, x, s: run_adcli(o, x, "lbfgs", s),
    "adcli newton": lambda o, x, s: run_adcli(o, x, "newton", s),
    "scipy BFGS (fd)": lambda o, x, s: run_scipy(o, x, "BFGS", s),
    "scipy trust-exact": lambda o, x, s: run_scipy(o, x, "trust-exact", s),
}


def mark(outcome: dict) -> str:
    """S solved, r reached a minimum without saying so, c claimed elsewhere, . neither."""
    if outcome["at_minimum"]:
        return "S" if outcome["converged"] else "r"
    return "c" if outcome["converged"] else "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10,100")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    problems = load_problems()
    tally = {name: {"solved": 0, "reached": 0, "claimed elsewhere": 0, "seconds": 0.0}
             for name in SOLVERS}
    rows = []
    for name, expr, names, x0, minima in problems:
        tape = adcli.parse(expr).tape(set(names))
        for k in scales:
            start = dict(zip(names, (k * v for v in x0)))
            row = {"problem": name, "scale": k}
            for solver, call in SOLVERS.items():
                objective, xs = build_objective(tape, start)
                began = time.perf_counter()
                value, converged = call(objective, xs, args.steps)
                t = tally[solver]
                t["seconds"] += time.perf_counter() - began
                reached = at_minimum(value, minima)
                t["solved"] += converged and reached
                t["reached"] += reached
                t["claimed elsewhere"] += converged and not reached
                row[solver] = {"value": value, "converged": converged, "at_minimum": reached}
            rows.append(row)
            print(f"{name:24s} {k:5g}x0  " + "  ".join(mark(row[s]) for s in SOLVERS),
                  file=sys.stderr)
    runs = len(rows)
    if args.json:
        print(json.dumps({"runs": runs, "scales": scales, "tally": tally, "rows": rows}))
        return
    print(f"\n{len(problems)} problems x scales {', '.join(f'{k:g}' for k in scales)} = "
          f"{runs} runs, --steps {args.steps}\n")
    print("| solver | solved | reached | claimed elsewhere | seconds |")
    print("|---|---|---|---|---|")
    for solver, t in tally.items():
        print(f"| {solver} | {t['solved']}/{runs} | {t['reached']}/{runs} | "
              f"{t['claimed elsewhere']} | {t['seconds']:.1f} |")


if __name__ == "__main__":
    main()
