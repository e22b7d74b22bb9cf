"""Regenerate the data files used by ``adcli minimize`` examples (deterministic: fixed seeds).

    python samples/make_data.py

- line.csv       y = 2.5 + 0.75*x + noise(sd 0.5), 40 rows: fit "(w0 + w1*x - y)^2"
- exp_decay.csv  y = 4*exp(-1.3*x) + 0.5 + noise(sd 0.05), 50 rows: fit "(a*exp(-b*x) + c - y)^2"
- moons.csv      two interleaved half-moons, 100 points, labels y = -1/+1, noise sd 0.1; the
                 same construction as scikit-learn's ``make_moons`` (sklearn/datasets/
                 _samples_generator.py), which micrograd's demo.ipynb trains on.
- poly.csv       y = 1 - 2x + 0.5x^2 + 3x^3 - x^5 + 0.2x^8 + noise(sd 0.01), x in [-1, 1], 41
                 rows: fit "y ~ sum(k = 0..8, a[k]*x^k)"
- lmfit_ci.csv   lmfit's documented conf_interval example (examples/example_confidence_interval
                 .py): x = linspace(0.3, 10, 100), y = 1/(0.1*x) + 2 + 0.1*randn with numpy's
                 legacy RandomState stream from np.random.seed(0); fit "y ~ 1/(a*x) + b"
                 from a=0.1,b=1. Written with every digit (repr), so the fit is lmfit's.

Values are written with 6 decimals (lmfit_ci.csv: all 17 digits); the files, not this script,
are the reference data.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name: str, header: list[str], columns: list[np.ndarray]) -> None:
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as fh:
        fh.write(",".join(header) + "\n")
        for row in zip(*columns):
            fh.write(",".join(f"{v:.6f}".rstrip("0").rstrip(".") if v != int(v) else
                              str(int(v)) for v in row) + "\n")


def main() -> None:
    rng = np.random.default_rng(20240601)
    x = np.sort(rng.uniform(0.0, 10.0, 40))
    write("line.csv", ["x", "y"], [x, 2.5 + 0.75 * x + rng.normal(0.0, 0.5, x.size)])

    rng = np.random.default_rng(20240602)
    x = np.linspace(0.0, 5.0, 50)
    write("exp_decay.csv", ["x", "y"],
          [x, 4.0 * np.exp(-1.3 * x) + 0.5 + rng.normal(0.0, 0.05, x.size)])

    rng = np.random.default_rng(20240603)
    n = 50
    t = np.linspace(0.0, np.pi, n)
    x1 = np.concatenate([np.cos(t), 1.0 - np.cos(t)]) + rng.normal(0.0, 0.1, 2 * n)
    x2 = np.concatenate([np.sin(t), 1.0 - np.sin(t) - 0.5]) + rng.normal(0.0, 0.1, 2 * n)
    y = np.concatenate([-np.ones(n), np.ones(n)])
    order = rng.permutation(2 * n)
    write("moons.csv", ["x1", "x2", "y"], [x1[order], x2[order], y[order]])

    rng = np.random.default_rng(20240604)
    x = np.linspace(-1.0, 1.0, 41)
    truth = 1 - 2 * x + 0.5 * x**2 + 3 * x**3 - x**5 + 0.2 * x**8
    write("poly.csv", ["x", "y"], [x, truth + rng.normal(0.0, 0.01, x.size)])

    np.random.seed(0)  # lmfit's example uses the legacy global stream
    x = np.linspace(0.3, 10, 100)
    y = 1 / (0.1 * x) + 2 + 0.1 * np.random.randn(x.size)
    with open(os.path.join(HERE, "lmfit_ci.csv"), "w", encoding="utf-8") as fh:
        fh.write("x,y\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y)))


if __name__ == "__main__":
    main()
