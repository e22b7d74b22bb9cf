"""Time per gradient of the line-fit loss over 10^6 rows: adcli's data sweep against a
hand-written numpy gradient of the same loss, as a ratio measured in the same run.

    python bench/line_fit.py [--rows N] [--repeat R]

The loss is mean((w0 + w1*x - y)^2).  adcli evaluates it through ``Objective`` (the path
``adcli minimize --data`` takes: one vectorised forward and reverse sweep over numpy columns,
seeded with 1/N); numpy computes r = w0 + w1*x - y, mean(r^2), 2*mean(r), 2*mean(r*x).
Both answers are checked to agree before anything is timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import adcli
from adcli.io.data import from_columns
from adcli.optimize import build_objective

LOSS = "(w0 + w1*x - y)^2"


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, rows)
    y = 2.5 + 0.75 * x + rng.normal(0.0, 0.5, rows)
    return x, y


def numpy_value_and_grad(x: np.ndarray, y: np.ndarray) -> Callable:
    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = w[0] + w[1] * x - y
        return float(np.mean(r * r)), np.array([2.0 * np.mean(r), 2.0 * np.mean(r * x)])
    return f


def adcli_value_and_grad(x: np.ndarray, y: np.ndarray) -> Callable:
    tape = adcli.parse(LOSS).tape(["x", "y"])
    objective, _ = build_objective(tape, {}, ["w0", "w1"], from_columns({"x": x, "y": y}))
    return objective


def best_times(fs: list[Callable], w: np.ndarray, repeat: int) -> list[float]:
    """Best of ``repeat`` calls each, interleaved (a burst of load from elsewhere on the
    machine then slows both alike, not one of them)."""
    for f in fs:
        f(w)  # warm-up
    best = [float("inf")] * len(fs)
    for _ in range(repeat):
        for k, f in enumerate(fs):
            t0 = time.perf_counter()
            f(w)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def run(rows: int = 10**6, repeat: int = 15) -> dict:
    """Seconds per value+gradient for both, and adcli / numpy."""
    x, y = make_data(rows)
    ours, ref = adcli_value_and_grad(x, y), numpy_value_and_grad(x, y)
    w = np.array([0.3, -0.2])
    (v1, g1), (v2, g2) = ours(w), ref(w)
    assert np.isclose(v1, v2, rtol=1e-10) and np.allclose(g1, g2, rtol=1e-10), (v1, v2, g1, g2)
    t_ours, t_ref = best_times([ours, ref], w, repeat)
    return {"rows": rows, "adcli_s": t_ours, "numpy_s": t_ref, "ratio": t_ours / t_ref}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10**6)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    r = run(args.rows, args.repeat)
    print(f"line-fit loss {LOSS!r}, mean over {r['rows']:,} rows, best of {args.repeat}")
    print(f"  adcli value+gradient   {r['adcli_s'] * 1e3:8.2f} ms")
    print(f"  numpy hand-written     {r['numpy_s'] * 1e3:8.2f} ms")
    print(f"  ratio adcli / numpy    {r['ratio']:8.2f}")


if __name__ == "__main__":
    main()
