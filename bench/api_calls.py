"""The documented Python calls against the hand-written numpy floor (issue 25, item 2).

    python bench/api_calls.py [--rounds 7] [--json]

W1 (``3*x^2 + x*y + 5*y^2`` at a point) through ``f.grad(dict)``, the compiled call with
positional floats and with one array; W2 (bench/README.md) at n = 1,000 and 10,000 through
``c.value_and_grad(*xs)`` (separate numbers), ``c.value_and_grad(x)`` (one array) and
``c.value_and_grad_vector(x)``, beside the numpy floor and JAX jit when JAX is installed. The
rows of one table are timed in interleaved rounds (``run.resolve``). A row whose call the
installed adcli does not accept (the array form before it existed) is left out, so the same
script times an older tree for a before/after comparison: ``python -S`` with ``PYTHONPATH`` =
the old tree and the venv's site-packages (``-S`` keeps the editable install's finder out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from run import (  # noqa: E402
    W1_TEXT,
    best,
    check,
    fmt,
    have,
    jax_module,
    resolve,
    w2_jax,
    w2_text,
)

import adcli  # noqa: E402


def _try(rows: dict, name: str, fn, rounds: int, n: int) -> None:
    """Time ``fn`` as row ``name`` if this adcli accepts the call and returns ``n``
    derivatives (an older adcli refuses the array form, or misreads it)."""
    try:
        _, grads = fn()
        ok = np.shape(grads) == (n,)
    except Exception:  # noqa: BLE001
        ok = False
    if ok:
        rows[name] = best(fn, repeat=rounds)


def w1(rounds: int) -> dict:
    x0, y0 = 1.5, 2.5
    floor = lambda x, y: (3 * x**2 + x * y + 5 * y**2, 6 * x + y, x + 10 * y)
    f = adcli.parse(W1_TEXT)
    point = {"x": x0, "y": y0}
    f.grad(point)
    f.grad(point)  # the second call installs the entry
    vg = f.compiled().value_and_grad
    arr = np.array([x0, y0])
    check(f.grad(point).gradient["x"], 6 * x0 + y0, "f.grad(dict)")
    rows: dict = {"floor": best(lambda: floor(x0, y0), repeat=rounds),
                  "vg(x, y)": best(lambda: vg(x0, y0), repeat=rounds),
                  "f.grad(dict)": best(lambda: f.grad(point), repeat=rounds)}
    _try(rows, "vg(array)", lambda: vg(arr), rounds, 2)
    resolve(rows)
    return rows


def w2(n: int, rounds: int) -> dict:
    rng = np.random.default_rng(n)
    xv = rng.uniform(-1, 1, n)
    c = np.arange(n) / n

    def np_grad(x=xv):
        d = x - c
        s = np.sin(x)
        g = 2 * d * s + d * d * np.cos(x)
        g[:-1] += x[1:]
        g[1:] += x[:-1]
        return float(np.sum(d * d * s) + np.dot(x[:-1], x[1:])), g

    f = adcli.parse(w2_text(n), max_bytes=None)
    fast = f.compiled()
    vg = fast.value_and_grad
    xs = [float(v) for v in xv]
    value, grads = vg(*xs)
    check(value, np_grad()[0], f"W2 n={n} value")
    check(grads[0], np_grad()[1][0], f"W2 n={n} grad")
    rows: dict = {"floor": best(np_grad, repeat=rounds),
                  "vg(*xs)": best(lambda: vg(*xs), repeat=rounds),
                  "value_and_grad_vector(x)": best(lambda: fast.value_and_grad_vector(xv),
                                                   repeat=rounds)}
    _try(rows, "vg(x)", lambda: vg(xv), rounds, n)
    if have("jax"):
        jax = jax_module()
        import jax.numpy as jnp

        jg = jax.jit(jax.value_and_grad(w2_jax(c)))
        xj = jnp.asarray(xv)
        rows["jax jit"] = best(lambda: jax.block_until_ready(jg(xj)), repeat=rounds)
    resolve(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    out = {"W1": w1(args.rounds)}
    for n in (1000, 10_000):
        out[f"W2 n={n}"] = w2(n, args.rounds)
    if args.json:
        print(json.dumps(out))
        return
    for title, rows in out.items():
        print(title)
        for name, t in rows.items():
            print(f"  {name:28s} {fmt(t):>10s} {t / rows['floor']:7.2f} x floor")


if __name__ == "__main__":
    main()
