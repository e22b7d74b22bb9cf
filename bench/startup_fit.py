"""``adcli fit`` as a whole process, beside ``adcli grad`` and ``python -c "import numpy"``.

    python bench/startup_fit.py [--rounds N] [--before DIR] [--install regular|editable|both]

Commands, each a fresh process, run in interleaved rounds (every command once per round, so
all see the same load on a shared machine), after one untimed run of each to fill the
bytecode caches:

  python -c pass           the interpreter alone
  import numpy             python -c "import numpy"
  grad                     adcli grad "x^2" --at x=3
  fit line                 adcli fit "y ~ a*x + b" --data samples/line.csv
  fit Rat43                the README's Rat43 fit (samples/rat43.csv from NIST's start 1)
  grad, numpy loaded first the floor of any fit: grad in a process that imports numpy first
                           (with OpenBLAS at one thread and the garbage collector paused, as
                           adcli fit imports it)
  fit line, scipy loaded   the line fit in a process that imports scipy.optimize first: what
                           the fit cost while its engine was scipy's least_squares
  fit line --bounds        the line fit with --bounds (still scipy's trf, imported then)
  ... (before)             with --before DIR: grad and the two fits by the adcli source tree
                           in DIR (e.g. ``git archive <commit> | tar -x -C DIR``)

How adcli is installed changes the start-up of every command alike: an editable install
(``pip install -e``, this workplace's) runs a finder from a ``.pth`` file at every start
(pathlib, importlib.util: ~11 ms), a regular ``pip install .`` (the README's) does not.
``--install regular`` (the default) runs every child as a regular install would: ``python
-S`` with ``PYTHONPATH`` = the source tree, then site-packages (as bench/cold_start.py), the
console script's two lines given with ``-c``; ``editable`` runs the venv's ``adcli`` script;
``both`` times both in the same rounds. Without ``site`` (``-S``) the children skip the few
milliseconds every Python start spends there; as that is the same for every command, it makes
fit / grad, if anything, a little larger than a regular install's.

Prints the median and the spread (min-max) of each, its median CPU time (user + system,
which a loaded machine stretches less), and fit / grad (goal <= 2) of the same run and
install: from the medians, from the best runs and from the CPU times.
"""

from __future__ import annotations

import argparse
import os
import site
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LINE = str(ROOT / "samples" / "line.csv")
RAT43 = ["fit", "y ~ b1 / (1 + exp(b2 - b3*x))^(1/b4)", "--data",
         str(ROOT / "samples" / "rat43.csv"), "--from", "b1=100,b2=10,b3=1,b4=1"]
#: What the console script ``adcli`` of a regular install runs.
CONSOLE = "import sys; from adcli.cli import main; sys.argv[0] = 'adcli'; sys.exit(main())"
SCIPY_FIRST = "import scipy.optimize; " + CONSOLE
#: numpy imported as ``adcli fit`` imports it in a fresh process: the cyclic garbage collector
#: paused, then what the import made frozen
NUMPY_FIRST = "import gc; gc.disable(); import numpy; gc.freeze(); gc.enable(); "


def commands(install: str, trees: dict[str, Path]) -> dict[str, tuple[list[str], dict]]:
    """Row name -> (command, environment) of one install kind."""
    py = sys.executable
    # as on a user's machine, bytecode is cached (this workplace may turn that off)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base["NO_COLOR"] = "1"
    tag = "" if install == "regular" else " [editable]"
    if install == "editable":
        script = Path(py).parent / "adcli"
        adcli = [str(script)] if script.exists() else [py, "-m", "adcli"]
        rows = {"python -c pass": ([py, "-c", "pass"], base),
                "import numpy": ([py, "-c", "import numpy"], base),
                "grad": (adcli + ["grad", "x^2", "--at", "x=3"], base),
                "fit line": (adcli + ["fit", "y ~ a*x + b", "--data", LINE], base),
                "fit Rat43": (adcli + RAT43, base)}
        return {name + tag: row for name, row in rows.items()}
    rows = {}
    for label, tree in trees.items():
        env = dict(base, PYTHONPATH=os.pathsep.join([str(tree), *site.getsitepackages()]))
        adcli = [py, "-S", "-c", CONSOLE]
        suffix = "" if label == "this" else f" ({label})"
        if label == "this":
            rows["python -c pass"] = ([py, "-S", "-c", "pass"], env)
            rows["import numpy"] = ([py, "-S", "-c", "import numpy"], env)
        rows["grad" + suffix] = (adcli + ["grad", "x^2", "--at", "x=3"], env)
        rows["fit line" + suffix] = (adcli + ["fit", "y ~ a*x + b", "--data", LINE], env)
        rows["fit Rat43" + suffix] = (adcli + RAT43, env)
        if label == "this":
            # what any fit costs at least: grad's start-up and numpy's (BLAS at one thread, as
            # adcli fit imports it)
            rows["grad, numpy loaded first"] = (
                [py, "-S", "-c", NUMPY_FIRST + CONSOLE, "grad", "x^2", "--at", "x=3"],
                dict(env, OPENBLAS_NUM_THREADS="1"))
            rows["fit line, scipy loaded"] = ([py, "-S", "-c", SCIPY_FIRST, "fit",
                                               "y ~ a*x + b", "--data", LINE], env)
            rows["fit line --bounds"] = (adcli + ["fit", "y ~ a*x + b", "--data", LINE,
                                                  "--bounds", "a=0:10"], env)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--before", help="an adcli source tree to time beside this one")
    ap.add_argument("--install", choices=["regular", "editable", "both"], default="regular")
    args = ap.parse_args()
    trees = {"this": ROOT}
    if args.before:
        trees["before"] = Path(args.before).resolve()
    rows: dict[str, tuple[list[str], dict]] = {}
    for install in ("regular", "editable"):
        if args.install in (install, "both"):
            rows.update(commands(install, trees))
    # the children run in bench/, where no adcli shadows the tree they are given
    for name, (cmd, env) in rows.items():
        out = subprocess.run(cmd, capture_output=True, env=env, check=False, cwd=HERE)
        if out.returncode != 0:
            raise SystemExit(f"{name} failed ({out.returncode}): {out.stderr.decode()}")
    times: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (cmd, env) in rows.items():
            wall, used = _timed(cmd, env)
            times[name].append(wall)
            cpu[name].append(used)
    print(f"whole processes, {args.rounds} interleaved rounds, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print("| command | median ms | min-max ms | CPU median ms |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1e3:.0f} | "
              f"{min(ts) * 1e3:.0f}-{max(ts) * 1e3:.0f} | "
              f"{statistics.median(cpu[name]) * 1e3:.0f} |")
    for name in [n for n in times if n.startswith("fit") or n.startswith("grad, numpy")]:
        grad = _grad_of(name)
        ratio = statistics.median(times[name]) / statistics.median(times[grad])
        ratio_cpu = statistics.median(cpu[name]) / statistics.median(cpu[grad])
        ratio_min = min(times[name]) / min(times[grad])
        goal = name.split(" (")[0].split(" [")[0] in ("fit line", "fit Rat43")
        print(f"{name} / {grad} = {ratio:.2f} (best runs: {ratio_min:.2f}, CPU time: "
              f"{ratio_cpu:.2f})" + (" (goal <= 2)" if goal else ""))


def _timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one child, its output to a pipe: CPU time
    says what the child did itself, which a loaded machine stretches less than wall time."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=HERE)
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    return wall, usage.ru_utime + usage.ru_stime


def _grad_of(fit: str) -> str:
    """The grad row of the same tree and install as the row ``fit``."""
    for mark in (" (before)", " [editable]"):
        if fit.endswith(mark):
            return "grad" + mark
    return "grad"


if __name__ == "__main__":
    main()
