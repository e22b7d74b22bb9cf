"""A first ``adcli.parse(text).grad(point)`` in a fresh interpreter (bench W5 cold) loads only
what a point of floats needs: no numpy, no result records, no pathlib or importlib.util (which
the editable install's finder would load anyway, so the child runs as from a plain install:
``python -S`` with the source tree and site-packages on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys
text = " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(100))
point = {f"x{i}": 0.25 * i for i in range(101)}
import adcli
value, grads = adcli.parse(text).grad(point)
from adcli.language.lalr_tables import tables_from_cache
print(repr(value), repr(grads["x1"]), tables_from_cache())
print(" ".join(sorted(sys.modules)))
"""

NOT_NEEDED = ["numpy", "adcli.results", "pathlib", "importlib.util", "fnmatch", "urllib",
              "lark", "click", "rich", "scipy"]


def _run(cache: Path) -> tuple[float, float, bool, set[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    env["XDG_CACHE_HOME"] = str(cache)
    env.pop("ADCLI_NO_GRAMMAR_CACHE", None)
    proc = subprocess.run([sys.executable, "-S", "-c", _CHILD], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(cache))
    assert proc.returncode == 0, proc.stderr
    first, modules = proc.stdout.splitlines()
    value, dx1, cached = first.split()
    return float(value), float(dx1), cached == "True", set(modules.split())


def test_first_parse_and_grad_import_only_what_a_point_of_floats_needs(tmp_path):
    import math

    _run(tmp_path)  # builds the tables and writes the cache (that run may load Lark)
    value, dx1, cached, modules = _run(tmp_path)
    assert cached  # the run timed by bench/cold_start.py reads its tables from the cache
    want = sum(math.sin(0.25 * i) * (0.25 * (i + 1)) ** 2 for i in range(100))
    assert math.isclose(value, want, rel_tol=1e-13)
    # d/dx1 of sin(x0)*x1^2 + sin(x1)*x2^2 = 2*sin(x0)*x1 + cos(x1)*x2^2
    assert math.isclose(dx1, 2 * math.sin(0.0) * 0.25 + math.cos(0.25) * 0.5 ** 2,
                        rel_tol=1e-13)
    loaded = sorted(m for m in NOT_NEEDED if m in modules)
    assert loaded == []
    assert "adcli.language.parser" in modules  # the probe ran the real path
