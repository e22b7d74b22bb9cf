"""W5 cold: from a string to its gradient in a fresh interpreter, imports inside the clock.

    python bench/cold_start.py [--sizes 100,1000] [--rounds 9] [--tree DIR ...] [--json]

``bench/run.py``'s W5 times ``adcli.parse(text).grad(point)`` in a warm session; a user who
runs one small script pays the imports too, and the peer it is measured against (the
shunting-yard parser of ``bench/peers.py`` feeding micrograd) imports almost nothing. Here
every repeat is a new ``python`` process that builds the text and the point, starts the clock,
imports what its route needs, parses, differentiates and stops the clock; the child prints the
time and the result (checked against adcli's). Rows are run in interleaved rounds (round r
runs every row once) after one untimed run of each, so that bytecode caches are warm as on a
user's machine (``PYTHONDONTWRITEBYTECODE`` is lifted for the children). Each row keeps its
best and its median round, of the time in the clock and of the CPU time the child spent in
it (``time.process_time``: on a shared machine, time spent waiting for a core is not the
route's); ``process`` is the whole child as seen from outside (interpreter start included),
``python -c pass`` its floor.

The children run as with a plain (not editable) install: ``python -S`` with ``PYTHONPATH`` set
to the source tree and then site-packages, so that the editable install's finder (which
imports pathlib and importlib.util before any clock starts) neither hides nor adds imports;
they run in ``bench/``, where no adcli shadows the tree. ``--tree`` names other source trees
of adcli (say an unpacked ``git archive`` of main) to time side by side with this one, in the
same interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import site
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The text and the point are built before the clock starts: both routes get them for free.
_PROLOGUE = """
import sys, time
n = int(sys.argv[1])
text = " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(n))
point = {f"x{i}": 0.001 * i for i in range(n + 1)}
"""

ROUTES = {
    "adcli": _PROLOGUE + """
t, c = time.perf_counter(), time.process_time()
import adcli
value, grads = adcli.parse(text, max_bytes=None).grad(point)
t, c = time.perf_counter() - t, time.process_time() - c
print(t, c, repr(value), repr(grads["x1"]), len(sys.modules))
""",
    "small parser + micrograd": _PROLOGUE + """
sys.path.insert(0, sys.argv[2])
sys.setrecursionlimit(100_000)  # micrograd's topological sort recurses
t, c = time.perf_counter(), time.process_time()
import peers
value, grads = peers.micrograd_gradient(text, point)
t, c = time.perf_counter() - t, time.process_time() - c
print(t, c, repr(value), repr(grads["x1"]), len(sys.modules))
""",
}


def child_env(tree: Path) -> dict[str, str]:
    """The environment of a child that imports adcli from ``tree``, as from a plain install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *site.getsitepackages()])
    return env


def run_child(code: str, n: int, env: dict[str, str]
              ) -> tuple[float, float, float, float, float, int]:
    """(time inside the child, its CPU time, whole process, value, d/dx1, modules loaded) of
    one run."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-S", "-c", code, str(n), str(HERE)],
                         capture_output=True, text=True, env=env, check=False, cwd=HERE)
    whole = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr else "failed")
    inner, cpu, value, dx1, modules = res.stdout.split()
    return float(inner), float(cpu), whole, float(value), float(dx1), int(modules)


def measure(n: int, rounds: int, trees: list[Path]) -> dict[str, dict[str, float]]:
    envs = {"adcli" if i == 0 else f"adcli ({tree})": child_env(tree)
            for i, tree in enumerate(trees)}
    code = {name: ROUTES["adcli"] for name in envs}
    code["small parser + micrograd"] = ROUTES["small parser + micrograd"]
    envs["small parser + micrograd"] = envs["python -c pass"] = child_env(trees[0])
    routes = list(code)
    inner: dict[str, list[float]] = {r: [] for r in routes}
    cpu: dict[str, list[float]] = {r: [] for r in routes}
    whole: dict[str, list[float]] = {r: [] for r in routes + ["python -c pass"]}
    facts: dict[str, tuple[float, float, int]] = {}
    for r in routes:  # warm the bytecode caches, and check the answers
        _, _, _, value, dx1, modules = run_child(code[r], n, envs[r])
        facts[r] = (value, dx1, modules)
    ref_value, ref_dx1, _ = facts[routes[0]]
    for r in routes[1:]:
        value, dx1, _ = facts[r]
        if not (math.isclose(value, ref_value, rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(dx1, ref_dx1, rel_tol=1e-9, abs_tol=1e-12)):
            print(f"! {r} differs from {routes[0]}: {value}, {dx1} against {ref_value}, "
                  f"{ref_dx1}", file=sys.stderr)
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], env=envs["python -c pass"],
                       check=False, cwd=HERE)
        whole["python -c pass"].append(time.perf_counter() - t)
        for r in routes:
            i, c, w, *_ = run_child(code[r], n, envs[r])
            inner[r].append(i)
            cpu[r].append(c)
            whole[r].append(w)
    out: dict[str, dict[str, float]] = {}
    for r in whole:
        row = {"process best": min(whole[r]), "process median": statistics.median(whole[r])}
        if r in inner:
            row.update({"best": min(inner[r]), "median": statistics.median(inner[r]),
                        "cpu best": min(cpu[r]), "cpu median": statistics.median(cpu[r]),
                        "modules": facts[r][2]})
        out[r] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000", help="numbers of terms, comma-separated")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    ap.add_argument("--tree", action="append", default=[],
                    help="another adcli source tree to time beside this one (repeatable)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    trees = [HERE.parent, *(Path(t).resolve() for t in args.tree)]
    out = sys.stderr if args.json else sys.stdout
    results = {}
    for n in (int(s) for s in args.sizes.split(",")):
        rows = measure(n, args.rounds, trees)
        results[f"n={n}"] = rows
        base = rows["adcli"]
        print(f"W5 cold, n = {n} terms (best / median of {args.rounds} fresh processes, ms)",
              file=out)
        print(f"  {'route':28s} {'in clock':>18s} {'CPU in clock':>18s} {'whole process':>18s}"
              f" {'adcli/this':>10s} {'modules':>8s}", file=out)
        for name, row in rows.items():
            clock = (f"{row['best'] * 1e3:7.2f} / {row['median'] * 1e3:7.2f}"
                     if "best" in row else "")
            cpu_time = (f"{row['cpu best'] * 1e3:7.2f} / {row['cpu median'] * 1e3:7.2f}"
                        if "best" in row else "")
            ratio = f"{base['best'] / row['best']:.2f}" if "best" in row else ""
            print(f"  {name:28s} {clock:>18s} {cpu_time:>18s} {row['process best'] * 1e3:7.1f} / "
                  f"{row['process median'] * 1e3:7.1f}  {ratio:>10s} "
                  f"{row.get('modules', ''):>8}", file=out)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
