"""`minimize --data` in memory gives the same bits whatever the BLAS thread count: OpenBLAS
splits a QR or a dot product over its threads, and the split changes the order of the
additions (the least-squares route factors the Jacobian over all rows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def decay(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    n = 200_000
    x = rng.uniform(0, 4, n)
    y = 2.5 * np.exp(-0.7 * x) + 0.3 + 0.05 * rng.standard_normal(n)
    path = tmp_path_factory.mktemp("threads") / "decay.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="x,y", comments="",
               fmt="%.17g")
    return path


@pytest.mark.parametrize("extra", [[], ["--method", "bfgs", "--reduce", "sum", "--stderr",
                                        "sandwich"]], ids=["least-squares", "bfgs"])
def test_one_and_four_blas_threads_give_the_same_bits(decay, extra):
    runs = [subprocess.run([sys.executable, "-m", "adcli", "minimize", "(a*exp(-b*x) + c - y)^2",
                            "--data", str(decay), "--from", "a=1,b=1,c=0", "--json", *extra],
                           capture_output=True, text=True, timeout=300, cwd=ROOT,
                           env={**os.environ, "OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": n,
                                "MKL_NUM_THREADS": n})
            for n in ("1", "4")]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    one, four = (json.loads(r.stdout) for r in runs)
    assert one["converged"] and abs(one["minimum"]["b"] - 0.7) < 0.01
    assert one == four  # every number, bit for bit
    # bounded runs (scipy's BLAS): tests/test_startup_fit.py
