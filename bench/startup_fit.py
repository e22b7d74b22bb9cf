"""``adcli fit`` as a whole process, beside ``adcli grad`` and ``python -c "import numpy"``.

    python bench/startup_fit.py [--rounds N] [--before DIR]

Commands, each a fresh process, run in interleaved rounds (every command once per round, so
all see the same load on a shared machine), after one untimed run of each to fill the
bytecode caches:

  python -c pass           the interpreter alone
  import numpy             python -c "import numpy"
  grad                     adcli grad "x^2" --at x=3
  fit line                 adcli fit "y ~ a*x + b" --data samples/line.csv
  fit Rat43                NIST's Rat43 (tests' data copy, written to a CSV), from start 1
  fit line, scipy loaded   the line fit in a process that imports scipy.optimize first: what
                           the fit cost while its engine was scipy's least_squares
  fit line --bounds        the line fit with --bounds (still scipy's trf, imported then)
  fit line / Rat43 (before)   with --before DIR: the same fits by the adcli source tree in DIR
                           (e.g. ``git archive <commit> | tar -x -C DIR``), imported first

Prints the median and the spread (min-max) of each, and fit / grad (goal <= 2) from the
medians of the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nist_strd import load  # noqa: E402

RAT43 = "y ~ b1 / (1 + exp(b2 - b3*x))^(1/b4)"


def rat43_csv(folder: Path) -> tuple[Path, str]:
    """Rat43's data from the tests' copy of NIST's file as a CSV, and its start 1."""
    problem = load("Rat43")
    path = folder / "rat43.csv"
    names = list(problem.columns)
    rows = zip(*(problem.columns[n] for n in names))
    path.write_text(",".join(names) + "\n"
                    + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows))
    start = ",".join(f"{k}={v!r}" for k, v in problem.starts[0].items())
    return path, start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--before", help="an adcli source tree to time beside this one")
    args = ap.parse_args()
    py = sys.executable
    script = Path(py).parent / "adcli"
    adcli = [str(script)] if script.exists() else [py, "-m", "adcli"]
    line = str(ROOT / "samples" / "line.csv")
    with tempfile.TemporaryDirectory() as tmp:
        rat, start = rat43_csv(Path(tmp))
        scipy_first = [py, "-c", "import sys, scipy.optimize; from adcli.cli import main; "
                       "sys.argv[0] = 'adcli'; main()"]
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "import numpy": [py, "-c", "import numpy"],
            "grad": adcli + ["grad", "x^2", "--at", "x=3"],
            "fit line": adcli + ["fit", "y ~ a*x + b", "--data", line],
            "fit Rat43": adcli + ["fit", RAT43, "--data", str(rat), "--from", start],
            "fit line, scipy loaded": scipy_first + ["fit", "y ~ a*x + b", "--data", line],
            "fit line --bounds": adcli + ["fit", "y ~ a*x + b", "--data", line,
                                          "--bounds", "a=0:10"],
        }
        if args.before:
            # the tree in DIR ahead of this checkout (the cwd and the editable install)
            other = [py, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                     "from adcli.cli import main; sys.argv[0] = 'adcli'; main()",
                     str(Path(args.before).resolve())]
            commands["fit line (before)"] = other + ["fit", "y ~ a*x + b", "--data", line]
            commands["fit Rat43 (before)"] = other + ["fit", RAT43, "--data", str(rat),
                                                      "--from", start]
        # as on a user's machine, bytecode is cached (this workplace may turn that off)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["NO_COLOR"] = "1"
        for name, cmd in commands.items():
            out = subprocess.run(cmd, capture_output=True, env=env, check=False, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(f"{name} failed ({out.returncode}): {out.stderr.decode()}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                began = time.perf_counter()
                subprocess.run(cmd, capture_output=True, env=env, check=False, cwd=ROOT)
                times[name].append(time.perf_counter() - began)
    print(f"whole processes, {args.rounds} interleaved rounds, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("| command | median ms | min-max ms |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1e3:.0f} | "
              f"{min(ts) * 1e3:.0f}-{max(ts) * 1e3:.0f} |")
    grad = statistics.median(times["grad"])
    for name in [n for n in times if n.startswith("fit")]:
        ratio = statistics.median(times[name]) / grad
        print(f"{name} / grad = {ratio:.2f}" + (" (goal <= 2)" if name in
                                                 ("fit line", "fit Rat43") else ""))


if __name__ == "__main__":
    main()
