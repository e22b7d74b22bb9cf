"""adcli's benchmark suite against hand-written code and peer libraries.

    python bench/run.py [--quick] [--json] [--only W1,W3]

Each workload (see bench/README.md) is timed for adcli, for a hand-written floor and
for every peer that is installed (sympy, micrograd, autograd, jax, numexpr, casadi; torch only if
already present); a peer that is not installed is left out. Times are per call, the best of
several repeats, all measured in this one run. Tables go to stdout; with --json they go to
stderr and stdout gets one JSON object {"W1": {"adcli": seconds, "floor": seconds, ...}, ...}.
Nothing here is asserted: benchmarks are for reading, not for the test suite.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.setrecursionlimit(max(sys.getrecursionlimit(), 200_000))  # micrograd's topo sort recurses

import numpy as np  # noqa: E402
import peers as P  # noqa: E402

import adcli  # noqa: E402

OUT = sys.stdout
PEERS = ["sympy", "micrograd", "autograd", "jax", "numexpr", "casadi", "torch"]


def have(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


class Pending:
    """A timing not taken yet. ``best`` returns one, and :func:`resolve` times all the rows of
    a table in interleaved rounds (each round times every row once), so that a burst of load
    from elsewhere on this shared machine slows every row a little rather than one row a lot;
    each row keeps its best round."""

    def __init__(self, fn: Callable[[], object], repeat: int, min_time: float,
                 max_number: int) -> None:
        self.fn, self.repeat, self.min_time, self.max_number = fn, repeat, min_time, max_number
        self.number = 1
        self.times: list[float] = []

    def calibrate(self) -> None:
        """Warm up (and jit compile), then size a round to take at least ``min_time``."""
        self.fn()
        while self.number < self.max_number:
            t = time.perf_counter()
            for _ in range(self.number):
                self.fn()
            if time.perf_counter() - t >= self.min_time:
                break
            self.number *= 4

    def round(self) -> None:
        fn = self.fn
        gc.collect()
        t = time.perf_counter()
        for _ in range(self.number):
            fn()
        self.times.append((time.perf_counter() - t) / self.number)


def best(fn: Callable[[], object], repeat: int = 5, min_time: float = 0.02,
         max_number: int = 100_000) -> Pending:
    """Best time per call over ``repeat`` rounds of auto-sized batches of calls (deferred:
    :func:`resolve` measures it, interleaved with the other rows of its table)."""
    return Pending(fn, repeat, min_time, max_number)


def resolve(rows: dict) -> None:
    """Replace every pending timing in ``rows`` by its measurement, taken in interleaved
    rounds."""
    pending = [p for p in rows.values() if isinstance(p, Pending)]
    for p in pending:
        p.calibrate()
    for r in range(max((p.repeat for p in pending), default=0)):
        for p in pending:
            if r < p.repeat:
                p.round()
    for name, p in list(rows.items()):
        if isinstance(p, Pending):
            rows[name] = min(p.times)


def once(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of a few single runs (for things that take seconds)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def fmt(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(title: str, rows: dict[str, float], floor: str = "floor", note: str = "") -> None:
    """Times, ratio to the floor, and adcli's time as a fraction of each other entry."""
    resolve(rows)
    print(f"\n{title}", file=OUT)
    if note:
        print(f"  {note}", file=OUT)
    ref = rows.get(floor)
    mine = rows.get("adcli")
    print(f"  {'':26} {'time/call':>11} {'x floor':>8} {'adcli/this':>11}", file=OUT)
    for name, t in rows.items():
        ratio = f"{t / ref:.2f}" if ref and t else "-"
        vs = f"{mine / t:.3f}" if mine and t else "-"
        print(f"  {name:26} {fmt(t):>11} {ratio:>8} {vs:>11}", file=OUT)


def check(a: float, b: float, what: str) -> None:
    """Peers must compute the same thing: a quick sanity check, not a test."""
    if not math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9):
        print(f"  ! {what}: {a} != {b}", file=OUT)


def jax_module():
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax


# --------------------------------------------------------------------------- W1

W1_TEXT = "3*x^2 + x*y + 5*y^2"


def w1(quick: bool) -> dict:
    x0, y0 = 1.5, 2.5
    rows: dict[str, float] = {}
    floor = lambda x, y: (3 * x**2 + x * y + 5 * y**2, 6 * x + y, x + 10 * y)
    rows["floor"] = best(lambda: floor(x0, y0))
    adcli.parse("x").compiled().compiled()  # load the parser tables once

    def setup():
        c = adcli.parse(W1_TEXT).compiled()
        c.compiled()
        return c

    rows["adcli setup (parse+compile)"] = best(setup, repeat=5, max_number=200)
    vg = setup().value_and_grad
    value, (gx, gy) = vg(x0, y0)
    check(gx, 6 * x0 + y0, "adcli W1")
    rows["adcli"] = best(lambda: vg(x0, y0))
    f = adcli.parse(W1_TEXT)
    point = {"x": x0, "y": y0}
    rows["adcli f.grad(dict)"] = best(lambda: f.grad(point))
    if have("sympy"):
        import sympy as sp

        def sym_setup():
            x, y = sp.symbols("x y")
            e = sp.parse_expr(W1_TEXT.replace("^", "**"))
            return sp.lambdify((x, y), [e, sp.diff(e, x), sp.diff(e, y)])

        rows["sympy setup"] = once(sym_setup, 3)
        fn = sym_setup()
        rows["sympy lambdify"] = best(lambda: fn(x0, y0))
    if have("micrograd"):
        from micrograd.engine import Value

        def mg():
            x, y = Value(x0), Value(y0)
            out = 3 * x**2 + x * y + 5 * y**2
            out.backward()
            return out.data, x.grad, y.grad

        rows["micrograd"] = best(mg)
    if have("autograd"):
        import autograd
        import autograd.numpy as anp  # noqa: F401

        ag = autograd.value_and_grad(lambda v: 3 * v[0]**2 + v[0] * v[1] + 5 * v[1]**2)
        arr = np.array([x0, y0])
        rows["autograd"] = best(lambda: ag(arr))
    if have("casadi"):
        import casadi as ca

        x, y = ca.SX.sym("x"), ca.SX.sym("y")
        e = 3 * x**2 + x * y + 5 * y**2
        F = ca.Function("f", [x, y], [e, ca.gradient(e, ca.vertcat(x, y))])
        rows["casadi"] = best(lambda: F(x0, y0))
    if have("jax"):
        jax = jax_module()
        jf = jax.jit(jax.value_and_grad(lambda x, y: 3 * x**2 + x * y + 5 * y**2,
                                        argnums=(0, 1)))
        rows["jax jit"] = best(lambda: jax.block_until_ready(jf(x0, y0)))
    if have("torch"):
        import torch

        def tg():
            x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
            y = torch.tensor(y0, dtype=torch.float64, requires_grad=True)
            out = 3 * x**2 + x * y + 5 * y**2
            out.backward()
            return out.item(), x.grad.item(), y.grad.item()

        rows["torch"] = best(tg)
    table("W1  value+gradient of 3*x^2 + x*y + 5*y^2 at a point (per call)", rows,
          note="adcli = the compiled function called with positional floats; "
               "setup rows are one-off costs")
    return rows


# --------------------------------------------------------------------------- W2


def w2_text(n: int) -> str:
    terms = [f"(x{i} - {i / n!r})^2*sin(x{i})" for i in range(n)]
    terms += [f"x{i}*x{i + 1}" for i in range(n - 1)]
    return " + ".join(terms)


def w2_jax(c):
    """W2's function written for JAX (``c`` the constants of :func:`w2_text`)."""
    import jax.numpy as jnp

    cj = jnp.asarray(c)

    def jfun(x):
        d = x - cj
        return jnp.sum(d * d * jnp.sin(x)) + jnp.dot(x[:-1], x[1:])

    return jfun


def w2(quick: bool) -> dict:
    return {f"n={n}": w2_one(n, quick)
            for n in ((10, 1000) if quick else (10, 100, 1000, 10_000))}


def w2_one(n: int, quick: bool) -> dict:
    rows: dict[str, float] = {}
    rng = np.random.default_rng(n)
    xv = rng.uniform(-1, 1, n)
    c = np.arange(n) / n

    def np_value(x=xv):
        d = x - c
        return float(np.sum(d * d * np.sin(x)) + np.dot(x[:-1], x[1:]))

    def np_grad(x=xv):
        d = x - c
        s = np.sin(x)
        g = 2 * d * s + d * d * np.cos(x)
        g[:-1] += x[1:]
        g[1:] += x[:-1]
        return float(np.sum(d * d * s) + np.dot(x[:-1], x[1:])), g

    rows["floor"] = best(np_grad)
    rows["floor eval"] = best(np_value)
    f = adcli.parse(w2_text(n), max_bytes=None)
    xs = [float(v) for v in xv]
    fast = f.compiled()
    t = time.perf_counter()
    plan = fast.levelled()
    if plan is not None:  # big and wide: level-by-level numpy sweeps, inputs as one array
        rows["adcli setup (one-off)"] = time.perf_counter() - t
        vg, value_fn = fast.value_and_grad, fast.value  # the documented call, one array
        value, grads = vg(xv)
        rows["adcli"] = best(lambda: vg(xv))
        rows["adcli eval"] = best(lambda: value_fn(xv))
    else:  # generated straight-line code, inputs as positional floats
        value_fn, grad_fn = fast.compiled()
        rows["adcli setup (one-off)"] = time.perf_counter() - t
        value, grads = grad_fn(*xs)
        rows["adcli"] = best(lambda: grad_fn(*xs))
        rows["adcli eval"] = best(lambda: value_fn(*xs))
    check(value, np_value(), f"adcli W2 n={n} value")
    check(grads[0], np_grad()[1][0], f"adcli W2 n={n} grad")
    if have("casadi"):
        import casadi as ca

        x = ca.SX.sym("x", n)
        e = ca.sum1((x - ca.DM(c)) ** 2 * ca.sin(x)) + ca.dot(x[:-1], x[1:])
        F = ca.Function("f", [x], [e])
        G = ca.Function("g", [x], [e, ca.gradient(e, x)])
        rows["casadi"] = best(lambda: G(xv))
        rows["casadi eval"] = best(lambda: F(xv))
    if have("jax"):
        jax = jax_module()
        import jax.numpy as jnp

        jfun = w2_jax(c)
        jg, jv = jax.jit(jax.value_and_grad(jfun)), jax.jit(jfun)
        xj = jnp.asarray(xv)
        rows["jax jit"] = best(lambda: jax.block_until_ready(jg(xj)))
        rows["jax jit eval"] = best(lambda: jax.block_until_ready(jv(xj)))
    if have("autograd"):
        import autograd
        import autograd.numpy as anp

        def afun(x):
            d = x - c
            return anp.sum(d * d * anp.sin(x)) + anp.dot(x[:-1], x[1:])

        ag = autograd.value_and_grad(afun)
        rows["autograd"] = best(lambda: ag(xv))
        rows["autograd eval"] = best(lambda: afun(xv))
    if have("micrograd") and (n <= 1000 or not quick):
        from micrograd.engine import Value

        def mg_value(make):
            x = [make(float(v)) for v in xv]
            total = make(0.0)
            for i in range(n):
                d = x[i] - float(c[i])
                total = total + d * d * (P.micrograd_sin(x[i]) if make is Value
                                         else math.sin(x[i]))
            for i in range(n - 1):
                total = total + x[i] * x[i + 1]
            return total, x

        def mg_grad():
            total, x = mg_value(Value)
            total.backward()
            return total.data, [v.grad for v in x]

        rows["micrograd"] = best(mg_grad, repeat=3)
        rows["micrograd eval"] = best(lambda: mg_value(Value), repeat=3)
    if have("torch"):
        import torch

        tc = torch.tensor(c)

        def tgrad():
            x = torch.tensor(xv, requires_grad=True)
            d = x - tc
            out = torch.sum(d * d * torch.sin(x)) + torch.dot(x[:-1], x[1:])
            out.backward()
            return out.item(), x.grad

        def tval():
            with torch.no_grad():
                x = torch.tensor(xv)
                d = x - tc
                return (torch.sum(d * d * torch.sin(x)) + torch.dot(x[:-1], x[1:])).item()

        rows["torch"] = best(tgrad)
        rows["torch eval"] = best(tval)
    table(f"W2  gradient of sum (x_i - i/n)^2 sin(x_i) + x_i x_(i+1), n = {n}", rows)
    ratios = {k[:-5]: rows[k[:-5]] / rows[k] for k in rows if k.endswith(" eval")}
    print("  gradient/evaluation: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()),
          file=OUT)
    rows.update({f"{k} grad/eval": v for k, v in ratios.items()})
    return rows


# --------------------------------------------------------------------------- W3


def w3(quick: bool) -> dict:
    n = 1_000_000
    rng = np.random.default_rng(3)
    x = rng.standard_normal(n)
    y = 2.0 * x + 1.0 + 0.1 * rng.standard_normal(n)
    w0, w1 = 0.5, 1.5
    rows: dict[str, float] = {}

    def floor():
        r = w1 * x
        r += w0
        r -= y
        return r.dot(r) / n, 2.0 * r.sum() / n, 2.0 * r.dot(x) / n

    rows["floor"] = best(floor)
    ref = floor()
    f = adcli.parse("(w0 + w1*x - y)^2")
    point = {"w0": w0, "w1": w1, "x": x, "y": y}

    def mine():
        value, g = f.grad_sum(point, wrt=["w0", "w1"])
        return value / n, g["w0"] / n, g["w1"] / n

    got = mine()
    check(got[2], ref[2], "adcli W3")
    rows["adcli"] = best(mine)
    rows["adcli f.grad (per-row values)"] = best(lambda: f.grad(point, wrt=["w0", "w1"]),
                                                 repeat=3)
    if have("numexpr"):
        import numexpr as ne

        env = {"w0": w0, "w1": w1, "x": x, "y": y}

        def nex():
            loss = ne.evaluate("sum((w0 + w1*x - y)**2)", local_dict=env)
            g0 = ne.evaluate("sum(2*(w0 + w1*x - y))", local_dict=env)
            g1 = ne.evaluate("sum(2*(w0 + w1*x - y)*x)", local_dict=env)
            return loss / n, g0 / n, g1 / n

        check(nex()[2], ref[2], "numexpr W3")
        rows["numexpr"] = best(nex)
    if have("sympy"):
        import sympy as sp

        a, b, xs, ys = sp.symbols("w0 w1 x y")
        e = (a + b * xs - ys) ** 2
        fn = sp.lambdify((a, b, xs, ys), [e, sp.diff(e, a), sp.diff(e, b)], "numpy")

        def sym():
            v, g0, g1 = fn(w0, w1, x, y)
            return v.mean(), g0.mean(), g1.mean()

        rows["sympy lambdify"] = best(sym)
    if have("jax"):
        jax = jax_module()
        import jax.numpy as jnp

        xj, yj = jnp.asarray(x), jnp.asarray(y)
        jg = jax.jit(jax.value_and_grad(lambda a, b, x, y: jnp.mean((a + b * x - y) ** 2),
                                        argnums=(0, 1)))
        rows["jax jit"] = best(lambda: jax.block_until_ready(jg(w0, w1, xj, yj)))
    if have("autograd"):
        import autograd
        import autograd.numpy as anp

        ag = autograd.value_and_grad(lambda w: anp.mean((w[0] + w[1] * x - y) ** 2))
        warr = np.array([w0, w1])
        rows["autograd"] = best(lambda: ag(warr), repeat=3)
    if have("torch"):
        import torch

        xt, yt = torch.tensor(x), torch.tensor(y)

        def tg():
            w = torch.tensor([w0, w1], dtype=torch.float64, requires_grad=True)
            out = torch.mean((w[0] + w[1] * xt - yt) ** 2)
            out.backward()
            return out.item(), w.grad

        rows["torch"] = best(tg)
    table("W3  value+gradient of mean((w0 + w1*x - y)^2) over 10^6 rows", rows,
          note="adcli = f.grad_sum(point, wrt=[w0, w1]) (blocked numpy sweeps), divided by n")
    return rows


# --------------------------------------------------------------------------- W4

ROSEN = "(1 - x)^2 + 100*(y - x^2)^2"
LR = 1e-3


def w4(quick: bool) -> dict:
    rows: dict[str, float] = {}
    x0, y0 = -1.2, 1.0

    def floor(x=x0, y=y0):
        t = y - x * x
        gx = -2 * (1 - x) - 400 * x * t
        gy = 200 * t
        return x - LR * gx, y - LR * gy

    rows["floor"] = best(floor)
    vg = adcli.parse(ROSEN).compiled().value_and_grad  # the fast function, built now

    def mine(x=x0, y=y0):
        _, (gx, gy) = vg(x, y)
        return x - LR * gx, y - LR * gy

    check(mine()[0], floor()[0], "adcli W4")
    rows["adcli"] = best(mine)
    if have("sympy"):
        import sympy as sp

        x, y = sp.symbols("x y")
        e = (1 - x) ** 2 + 100 * (y - x**2) ** 2
        gfn = sp.lambdify((x, y), [sp.diff(e, x), sp.diff(e, y)])

        def sym(x=x0, y=y0):
            gx, gy = gfn(x, y)
            return x - LR * gx, y - LR * gy

        rows["sympy lambdify"] = best(sym)
    if have("micrograd"):
        from micrograd.engine import Value

        def mg(x0=x0, y0=y0):
            x, y = Value(x0), Value(y0)
            out = (1 - x) ** 2 + 100 * (y - x**2) ** 2
            out.backward()
            return x0 - LR * x.grad, y0 - LR * y.grad

        rows["micrograd"] = best(mg)
    if have("casadi"):
        import casadi as ca

        x, y = ca.SX.sym("x"), ca.SX.sym("y")
        e = (1 - x) ** 2 + 100 * (y - x**2) ** 2
        g = ca.gradient(e, ca.vertcat(x, y))
        S = ca.Function("step", [x, y], [x - LR * g[0], y - LR * g[1]])
        rows["casadi"] = best(lambda: S(x0, y0))
    if have("jax"):
        jax = jax_module()

        def jstep(x, y):
            gx, gy = jax.grad(lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
                              argnums=(0, 1))(x, y)
            return x - LR * gx, y - LR * gy

        js = jax.jit(jstep)
        rows["jax jit"] = best(lambda: jax.block_until_ready(js(x0, y0)))
    if have("autograd"):
        import autograd

        ag = autograd.grad(lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2)
        arr = np.array([x0, y0])
        rows["autograd"] = best(lambda: arr - LR * ag(arr))
    if have("torch"):
        import torch

        def tstep():
            x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
            y = torch.tensor(y0, dtype=torch.float64, requires_grad=True)
            out = (1 - x) ** 2 + 100 * (y - x**2) ** 2
            out.backward()
            return x0 - LR * x.grad.item(), y0 - LR * y.grad.item()

        rows["torch"] = best(tstep)
    table("W4  one gradient-descent step on Rosenbrock", rows)
    return rows


# --------------------------------------------------------------------------- W5


def w5_text(n: int) -> str:
    return " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(n))


_SYMPY_W5 = """
import sys, time
import sympy as sp
n = int(sys.argv[1])
text = " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(n)).replace("^", "**")
t = time.perf_counter()
e = sp.parse_expr(text)
syms = sorted(e.free_symbols, key=lambda s: int(s.name[1:]))
fn = sp.lambdify(syms, [e] + [sp.diff(e, s) for s in syms])
fn(*[0.001 * i for i in range(len(syms))])
print(time.perf_counter() - t)
"""


def w5(quick: bool) -> dict:
    adcli.parse("x").grad({"x": 1.0})  # parser tables loaded once, as in any session
    return {f"n={n}": w5_one(n, quick)
            for n in ((100, 1000) if quick else (100, 1000, 10_000))}


def w5_one(n: int, quick: bool) -> dict:
    text = w5_text(n)
    point = {f"x{i}": 0.001 * i for i in range(n + 1)}
    rows: dict[str, float] = {}

    def mine():
        return adcli.parse(text, max_bytes=None).grad(point)

    value, grads = mine()
    rows["adcli"] = once(mine, 5 if n <= 1000 else 3)
    # The same function in index notation: unrolled to the same tape, elements x[i].
    summed = f"sum(i = 0..{n - 1}, sin(x[i])*x[i+1]^2)"
    elements = {f"x[{i}]": 0.001 * i for i in range(n + 1)}

    def indexed():
        return adcli.parse(summed, max_bytes=None).grad(elements)

    iv, ig = indexed()
    check(iv, value, "adcli sum(i = ...) W5")
    check(ig["x[1]"], grads["x1"], "adcli sum(i = ...) W5 grad")
    rows["adcli, as sum(i = 0..n-1, ...)"] = once(indexed, 5 if n <= 1000 else 3)
    if have("micrograd"):
        mv, mg = P.micrograd_gradient(text, point)
        check(mv, value, "micrograd W5")
        check(mg["x1"], grads["x1"], "micrograd W5 grad")
        rows["small parser + micrograd"] = once(
            lambda: P.micrograd_gradient(text, point), 3)
    sympy_cap = 100 if quick else 1000
    if have("sympy") and n <= sympy_cap:
        try:
            res = subprocess.run([sys.executable, "-c", _SYMPY_W5, str(n)], text=True,
                                 capture_output=True, timeout=600)
            rows["sympy (parse, diff, lambdify)"] = float(res.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as err:
            print(f"  sympy W5 n={n}: {type(err).__name__}", file=OUT)
    if have("jax") and n <= (100 if quick else 1000):
        jax = jax_module()
        import jax.numpy as jnp

        def jroute():
            program = P.to_postfix(text)
            names = list(point)

            def fn(v):
                env = dict(zip(names, v))
                return P.run_postfix(
                    program, env,
                    {"+": jnp.add, "-": jnp.subtract, "*": jnp.multiply,
                     "/": jnp.divide, "^": jnp.power},
                    {"sin": jnp.sin}, jnp.negative)

            return jax.grad(fn)(jnp.asarray([point[k] for k in names]))

        rows["small parser + jax.grad"] = once(jroute, 1)
    table(f"W5  string -> gradient, sin(x0)*x1^2 + ..., n = {n} terms", rows,
          floor="adcli", note="times are whole runs (parse, build, one gradient)")
    return rows


# --------------------------------------------------------------------------- W6


def w6(quick: bool) -> dict:
    py = sys.executable
    script = Path(py).parent / "adcli"
    adcli_cmd = [str(script)] if script.exists() else [py, "-m", "adcli"]
    commands = {
        "floor": [py, "-c", "pass"],
        "import numpy": [py, "-c", "import numpy"],
        "adcli": adcli_cmd + ["grad", "x^2", "--at", "x=3"],
        "adcli --json": adcli_cmd + ["grad", "x^2", "--at", "x=3", "--json"],
    }
    if have("sympy"):
        commands["import sympy"] = [py, "-c", "import sympy"]
    if have("jax"):
        commands["import jax"] = [py, "-c", "import jax"]
    # As on a user's machine, Python may cache bytecode (this workplace sets
    # PYTHONDONTWRITEBYTECODE, which would make an editable install recompile adcli's source
    # at every start); a first untimed run of each command fills the caches.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NO_COLOR"] = "1"
    rows: dict[str, float] = {}
    for cmd in commands.values():
        subprocess.run(cmd, capture_output=True, env=env, check=False)
    for _ in range(7):  # interleaved rounds, as in resolve()
        for name, cmd in commands.items():
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=False)
            rows[name] = min(rows.get(name, math.inf), time.perf_counter() - t)
    table("W6  process start-up (whole process, best of 7 interleaved rounds)", rows,
          note="floor = python -c pass")
    if "import sympy" in rows:
        print(f"  adcli / import sympy = {rows['adcli'] / rows['import sympy']:.2f} "
              f"(goal <= 0.5); adcli / import numpy = "
              f"{rows['adcli'] / rows['import numpy']:.2f} (stretch <= 1)", file=OUT)
    return rows


# --------------------------------------------------------------------------- memory

_MEMORY = """
import gc, resource, sys, time
import adcli
import adcli.ops
target = int(sys.argv[1])
def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
terms = target // 4
text = " + ".join(f"sin(x{i})*x{i + 1}" for i in range(terms))
gc.collect()
base = rss_mb()
t = time.perf_counter()
f = adcli.parse(text, max_bytes=None)
tape = f.tape()
build = time.perf_counter() - t
nodes = len(tape)
del text
f.program = None  # keep only the tape
gc.collect()
tape_mb = rss_mb() - base
seen = set()
deep = 0
for container in (tape.ops, tape.args, tape.consts, tape.active, tape.inputs, tape.labels,
                  tape.positions):
    deep += sys.getsizeof(container)
    items = container.items() if isinstance(container, dict) else container
    for item in items:
        for obj in (item if isinstance(container, dict) else (item,)):
            if id(obj) not in seen and not isinstance(obj, (bool, adcli.ops.Op)):
                seen.add(id(obj))
                deep += sys.getsizeof(obj)
deep_mb = deep / 2**20
point = {name: 0.5 for name in tape.inputs}
t = time.perf_counter()
f._tapes = {frozenset(): tape}
value, grad = f.grad(point)
grad_s = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report the RSS of the
# benchmark process this child was forked from (3.3 GB after the JAX workloads).
with open("/proc/self/status") as fh:
    peak = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
print(nodes, tape_mb, peak, build, grad_s, deep_mb)
"""


def memory(quick: bool) -> dict:
    target = 100_000 if quick else 1_000_000
    res = subprocess.run([sys.executable, "-c", _MEMORY, str(target)], text=True,
                         capture_output=True, timeout=1800)
    try:
        nodes, tape_mb, peak_mb, build_s, grad_s, deep_mb = (
            float(v) for v in res.stdout.split())
    except ValueError:
        print(f"\nmemory: failed: {res.stderr.strip()[-300:]}", file=OUT)
        return {}
    rows = {"nodes": int(nodes), "tape_mb": deep_mb, "rss_after_build_mb": tape_mb,
            "peak_rss_mb": peak_mb, "build_s": build_s, "grad_s": grad_s}
    print(f"\nmemory  a {int(nodes):,}-node tape (sin(x_i)*x_(i+1) terms)", file=OUT)
    print(f"  the tape's own objects (deep size): {deep_mb:.0f} MB; RSS growth once only the "
          f"tape is kept: {tape_mb:.0f} MB (freed memory stays with the process);", file=OUT)
    print(f"  peak RSS of the process (parse, lower, one gradient): {peak_mb:.0f} MB",
          file=OUT)
    print(f"  parse+lower {build_s:.2f} s, first gradient {grad_s:.2f} s", file=OUT)
    return rows


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "memory": memory}


def main(argv: list[str] | None = None) -> int:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer slow peers")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W3")
    args = ap.parse_args(argv)
    if args.json:
        OUT = sys.stderr
    chosen = args.only.split(",") if args.only else list(WORKLOADS)
    installed = [p for p in PEERS if have(p)]
    print(f"adcli {adcli.__version__}, Python {sys.version.split()[0]}, numpy {np.__version__},"
          f" {os.cpu_count()} CPUs; peers installed: {', '.join(installed) or 'none'}",
          file=OUT)
    results = {}
    for name in chosen:
        results[name] = WORKLOADS[name](args.quick)
    if args.json:
        print(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
