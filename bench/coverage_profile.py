"""Coverage of 95% profile-likelihood and Wald intervals on synthetic exponential decays.

    python bench/coverage_profile.py [--runs 2000] [--seed 1]

Each run draws y = a*exp(-b*x) + noise (a = 5, b = 1.5, x = 0, 0.5, ..., 4.5, 10 rows, noise
sd 0.8, numpy's default_rng(seed) stream), fits "y ~ a*exp(-b*x)" from a = 1, b = 1 with
adcli.fit, and asks whether the true a and b lie in the 95% Wald interval (estimate ±
t(0.975, 8)·se) and in the 95% profile interval (FitResult.conf_interval("profile")).
With 10 noisy rows the sampling distribution of b is skewed, so the symmetric Wald interval
misses more often on one side than on the other; the profile interval follows the skew.

Prints the coverage of each method per parameter with its binomial standard error, the
misses below and above the truth, and how many profile intervals are open on one side (the
statistic never reaches the quantile: the confidence set is unbounded there, and counts as
covering on that side) or have an end where a refit failed (counted as not covering), and how
many fits did not converge (not covering for either method).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import adcli

TRUE = {"a": 5.0, "b": 1.5}
X = np.arange(10) * 0.5
SD = 0.8
LEVEL = 0.95


def run(runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = {(m, n): {"cover": 0, "low": 0, "high": 0, "none": 0, "open": 0}
              for m in ("wald", "profile") for n in TRUE}
    failed = 0
    began = time.perf_counter()
    for _ in range(runs):
        y = TRUE["a"] * np.exp(-TRUE["b"] * X) + rng.normal(0.0, SD, X.size)
        try:
            r = adcli.fit("y ~ a*exp(-b*x)", {"x": X, "y": y}, start={"a": 1, "b": 1})
        except adcli.AdcliError:
            r = None
        if r is None or not r.converged:
            failed += 1
            for c in counts.values():
                c["none"] += 1
            continue
        for method in ("wald", "profile"):
            ci = r.conf_interval(method, [LEVEL])
            for name, truth in TRUE.items():
                lo, hi = ci["intervals"][name][0]
                kinds = ci["ends"][name][0] if method == "profile" else ["crossed"] * 2
                c = counts[(method, name)]
                c["open"] += "open" in kinds
                lo = -math.inf if kinds[0] == "open" else lo
                hi = math.inf if kinds[1] == "open" else hi
                if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
                    c["none"] += 1
                elif truth < lo:
                    c["low"] += 1  # the interval lies above the truth
                elif truth > hi:
                    c["high"] += 1
                else:
                    c["cover"] += 1
    seconds = time.perf_counter() - began
    print(f"{runs} data sets, seed {seed}, {failed} fits not converged, {seconds:.0f} s")
    print()
    print("| parameter | method | coverage of 95% | ± se | interval above truth | "
          "below truth | open on one side | an end failed |")
    print("|---|---|---|---|---|---|---|---|")
    for name in TRUE:
        for method in ("wald", "profile"):
            c = counts[(method, name)]
            p = c["cover"] / runs
            se = math.sqrt(p * (1 - p) / runs)
            print(f"| {name} | {method} | {100 * p:.1f}% | {100 * se:.1f}% | {c['low']} | "
                  f"{c['high']} | {c['open']} | {c['none']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    run(args.runs, args.seed)


if __name__ == "__main__":
    main()
