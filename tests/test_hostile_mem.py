"""Hostile inputs, the memory and numbers half: every class ends with an exit status
from the documented table, an ``Error:``/``Warning:`` line and never a traceback, and the
memory bounds hold. The limits are monkeypatched down so each test runs quickly; the limits
themselves were set from full-size measurements (2 MiB inputs, peak RSS)."""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
import warnings

import pytest

import adcli.derive.curvature
import adcli.derive.symbolic
import adcli.function
import adcli.modes.compare
import adcli.optimize


def _clean(result, status: int, kind: str = "Error:") -> str:
    """stderr, after asserting the exit status, a ``kind`` line and no traceback."""
    stderr = result.stderr
    assert result.exit_code == status, (result.exit_code, result.stdout[-500:], stderr[-2000:])
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    assert any(line.startswith(kind) for line in stderr.splitlines()), stderr
    return stderr


# --------------------------------------------------------------------------- item 4: memory


def test_too_many_nodes_is_refused_before_lowering(run, monkeypatch):
    monkeypatch.setattr(adcli.function, "MAX_NODES", 1000)
    source = "(" + "-" * 1500 + "x)"
    for command in (["eval"], ["grad", "--json"], ["diff"], ["hessian"], ["graph"],
                    ["compare-modes"]):
        at = [] if command == ["diff"] else ["--at", "x=1"]
        stderr = _clean(run(*command, source, *at), 2)
        assert "1,501 nodes, over the limit of 1,000" in stderr
    # --max-size 0 lifts both limits
    assert run("eval", source, "--at", "x=1", "--max-size", "0").stdout.strip() == "1.0"


def _limited(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess:
    """adcli in a subprocess under an address-space limit (a bound the test can enforce)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "adcli", *args], capture_output=True,
                          text=True, timeout=120, preexec_fn=cap,
                          env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})


def test_grad_json_of_a_dense_input_is_bounded_in_memory_and_output(tmp_path):
    """100,000 unary minuses: the JSON node list is cut by --max-rows and the run fits in a
    1 GiB address space (the 2 MiB version wrote 264 MB of JSON and took 3.6 GB)."""
    path = tmp_path / "neg.adc"
    path.write_text("-" * 100_000 + "x")
    proc = _limited(["grad", "--json", f"@{path}", "--at", "x=2"], 1 << 30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["value"] == 2.0 and out["gradient"] == {"x": 1.0}
    assert len(out["nodes"]) == 200
    assert out["node_count"] == 100_001 and out["nodes_omitted"] == 100_001 - 200
    assert len(proc.stdout) < 100_000


def test_grad_json_max_rows(run):
    out = json.loads(run("grad", "x*y + sin(x)", "--at", "x=1,y=2", "--json",
                         "--max-rows", "2").stdout)
    assert [n["id"] for n in out["nodes"]] == [0, 1]
    assert out["nodes_omitted"] == out["node_count"] - 2 > 0
    everything = json.loads(run("grad", "x*y + sin(x)", "--at", "x=1,y=2", "--json",
                                "--max-rows", "0").stdout)
    assert len(everything["nodes"]) == everything["node_count"]
    assert everything["nodes_omitted"] == 0


def test_graph_refuses_a_tape_too_big_to_draw(run):
    source = " + ".join(f"v{i}" for i in range(6000))  # 11,999 nodes
    stderr = _clean(run("graph", source), 2)
    assert "11,999 nodes, over the graph limit of 10,000" in stderr
    assert "--max-nodes" in stderr
    assert run("graph", "x + 2*y", "--max-nodes", "3").exit_code == 2
    assert run("graph", source, "--max-nodes", "0").stdout.startswith("digraph")


def test_diff_of_a_tower_stops_at_the_derivative_size_limit(run, monkeypatch):
    monkeypatch.setattr(adcli.derive.symbolic, "MAX_NEW_NODES", 2000)
    stderr = _clean(run("diff", "x^" * 300 + "x"), 2)
    assert "the derivative grew past 2,000 new nodes" in stderr
    assert run("diff", "x^x^x", "--wrt", "x").exit_code == 0  # small towers still work


def test_symbolic_derivatives_refuse_a_huge_tape(run, monkeypatch):
    monkeypatch.setattr(adcli.derive.symbolic, "MAX_TAPE_NODES", 500)
    source = "(" + "-" * 600 + "x)"
    for args in (["diff", source], ["hessian", source, "--at", "x=1"],
                 ["minimize", source + "^2", "--from", "x=1", "--method", "newton"]):
        stderr = _clean(run(*args), 2)
        assert "symbolic derivatives (diff, hessian, newton) are limited to 500" in stderr


def test_hessian_of_many_variables_stops_at_once(run):
    n = 2500
    source = " + ".join(f"v{i}^2" for i in range(n))
    point = ",".join(f"v{i}=1" for i in range(n))
    t0 = time.perf_counter()
    stderr = _clean(run("hessian", source, "--at", point), 2)
    assert time.perf_counter() - t0 < 15
    assert "a Hessian of 2,500 variables" in stderr and "--wrt" in stderr
    # The limit is on work, too: few variables over a big tape.
    assert adcli.derive.curvature.MAX_WORK < 10 * 250_000


def test_compare_modes_budget_stops_forward_mode_before_it_starts(run):
    n = 2000
    source = " + ".join(f"v{i}*v{(i + 1) % n}" for i in range(n))
    point = ",".join(f"v{i}=1" for i in range(n))
    t0 = time.perf_counter()
    stderr = _clean(run("compare-modes", source, "--at", point, "--budget", "0.001"), 2)
    assert time.perf_counter() - t0 < 15
    assert "forward mode needs 2,000 passes" in stderr and "--budget 0.001 s" in stderr
    # A cheap comparison is still run in full.
    assert run("compare-modes", "x*y", "--at", "x=1,y=2", "--repeat", "1").exit_code == 0


# --------------------------------------------------------------------------- item 9: numbers


def test_grad_norm_does_not_overflow_for_a_finite_gradient(run):
    out = json.loads(run("minimize", "x^2", "--from", "x=1.3e154", "--method", "gd",
                         "--steps", "1", "--json").stdout)
    assert out["reason"] == "max-steps"  # not "diverged": the gradient 2.5e154 is finite
    assert out["grad_norm"] == pytest.approx(2 * out["point"]["x"], rel=1e-12)
    assert adcli.optimize.norm([3e200, 4e200]) == pytest.approx(5e200)
    assert adcli.optimize.norm([float("inf"), 1.0]) == float("inf")
    assert math.isnan(adcli.optimize.norm([float("nan"), 1.0]))
    assert adcli.optimize.norm([]) == 0.0


@pytest.mark.parametrize("args", [
    ["eval", "x^4 * 1e300", "--at", "x=1e100"],
    ["grad", "exp(x) * x^4", "--at", "x=1e100"],
    ["compare-modes", "x^4 + y", "--at", "x=1e100,y=1", "--repeat", "1"],
    ["hessian", "x^4 + x*y", "--at", "x=1e200,y=1"],
    ["minimize", "x^4", "--from", "x=1e100", "--method", "gd"],
    ["minimize", "x^4", "--from", "x=1e70", "--method", "adam"],
    ["minimize", "x^4 + y^2", "--from", "x=1e70,y=1", "--method", "bfgs"],
    ["minimize", "x^4 + y^2", "--from", "x=1e70,y=1", "--method", "lbfgs"],
    ["minimize", "x^4 + y^2", "--from", "x=1e70,y=1", "--method", "newton"],
    ["minimize", "x^2", "--from", "x=1", "--method", "momentum", "--lr", "100"],
    ["minimize", "x^2", "--from", "x=1", "--method", "nesterov", "--lr", "100"],
    ["minimize", "log(x)", "--from", "x=-1"],
])
def test_no_numpy_warning_reaches_the_user(run, args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(*args)
    assert result.exit_code in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in caught]


# --------------------------------------------------------------------------- item 10: bindings


@pytest.fixture
def xonly(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("x\n1\n2\n3\n")
    return str(path)


def test_a_missing_column_is_a_warning_and_with_wrt_an_error(run, xonly):
    stderr = _clean(run("minimize", "(w0 + w1*x - y)^2", "--data", xonly), 0, "Warning:")
    assert "'y' are not columns of" in stderr and "become parameters" in stderr
    stderr = _clean(run("minimize", "(w0 + w1*x - y)^2", "--data", xonly, "--wrt", "w0,w1"), 2)
    assert "variable 'y'" in stderr
    quiet = run("minimize", "(w0 + w1*x - 2*x)^2", "--data", xonly, "--wrt", "w0,w1")
    assert quiet.exit_code == 0 and "Warning" not in quiet.stderr


def test_a_column_shadowed_by_a_let_binding_is_a_warning(run, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n2,4\n")
    stderr = _clean(run("minimize", "y = 2*x; (w*x - y)^2", "--data", str(path), "--wrt", "w"),
                    0, "Warning:")
    assert "column 'y'" in stderr and "let binding" in stderr


# --------------------------------------------------------------------------- item 11: unbounded


@pytest.mark.parametrize("expr,method,start", [
    ("x", "bfgs", "0"), ("x", "lbfgs", "1"), ("0 - x^2", "gd", "1"),
    ("0 - x^2", "newton", "1"), ("0 - x^2", "bfgs", "1"), ("0 - x^2", "momentum", "1"),
])
def test_unbounded_objectives_stop_with_reason_unbounded(run, expr, method, start):
    result = run("minimize", expr, "--from", f"x={start}", "--method", method, "--json")
    assert result.exit_code == 1, result.stdout
    assert "Traceback" not in result.stderr
    out = json.loads(result.stdout)
    assert out["reason"] == "unbounded" and not out["converged"]
    assert out["value"] == "-inf" or out["value"] < -1e9


def test_a_stationary_maximum_is_never_a_minimum(run):
    """At the top of -x^2 - y^2 the gradient is exactly zero: every method looks along the
    negative curvature, finds lower values and goes on (to "unbounded"); where rounding hides
    every lower value the run ends "saddle", exit 1, naming the maximum."""
    for method in ("bfgs", "gd", "newton"):
        result = run("minimize", "0 - x^2 - y^2", "--from", "x=0,y=0", "--method", method,
                     "--json")
        assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
        out = json.loads(result.stdout)
        assert out["reason"] == "unbounded" and not out["converged"]
    result = run("minimize", "1e20 - x^2 - y^2", "--from", "x=0,y=0")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "not converged (saddle)" in result.stdout and "is a maximum" in result.stdout
    result = run("minimize", "1e20 + x^2 - y^2", "--from", "x=0,y=0", "--method", "newton")
    assert result.exit_code == 1 and "is a saddle point" in result.stdout
    minimum = run("minimize", "x^2 + y^2", "--from", "x=1,y=1")
    assert minimum.exit_code == 0 and "Warning" not in minimum.stderr


def test_a_linear_descent_that_is_slow_is_max_steps_not_unbounded(run):
    """gd on x falls by lr a step: indistinguishable from a slow descent, so it ends with the
    step limit (documented), never with "converged"."""
    out = json.loads(run("minimize", "x", "--method", "gd", "--json").stdout)
    assert out["reason"] == "max-steps" and not out["converged"]


def test_a_fit_over_data_refuses_a_tape_too_big_to_compile(run, monkeypatch, tmp_path):
    monkeypatch.setattr(adcli.optimize.objective, "DATA_MAX_NODES", 100)
    path = tmp_path / "d.csv"
    path.write_text("x\n1\n2\n")
    source = "(w - " + "-" * 150 + "x)^2"
    stderr = _clean(run("minimize", source, "--data", str(path), "--wrt", "w"), 2)
    assert "fits over data compile it" in stderr and "limited to 100 nodes" in stderr


def test_data_blocks_stay_bounded_for_wide_programs():
    from adcli.fast.columns import MAX_BLOCK_VALUES, block_rows

    assert block_rows(3) == 65536  # small losses keep their long blocks
    for columns in (10_000, 100_000, 1_000_000):
        assert block_rows(columns) * columns <= MAX_BLOCK_VALUES
        assert block_rows(columns) >= 1


# --------------------------------------------------------------------------- issue 20, item 4
# Each case runs adcli in a subprocess under a 1 GiB address-space limit and measures its peak
# RSS (os.wait4) and wall time; the numbers are in the assertion messages.

GIB = 1 << 30


#: Runs adcli (the arguments after it) under the 1 GiB limit and prints its peak RSS and
#: time: from a small process of its own, since a child forked from pytest would count
#: pytest's pages in its ru_maxrss.
_SHIM = """
import os, resource, subprocess, sys, time
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
t0 = time.perf_counter()
proc = subprocess.Popen([sys.executable, "-m", "adcli", *sys.argv[1:]],
                        stdout=subprocess.DEVNULL, preexec_fn=cap)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, time.perf_counter() - t0)
"""


def _measured(args: list[str], stdin: int | None = None,
              timeout: float = 120) -> tuple[int, str, int, float]:
    """(exit status, stderr, peak RSS in bytes, seconds) of adcli under RLIMIT_AS = 1 GiB."""
    proc = subprocess.run([sys.executable, "-c", _SHIM, *args],
                          stdin=subprocess.DEVNULL if stdin is None else stdin,
                          capture_output=True, timeout=timeout,
                          env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    status, peak, seconds = proc.stdout.split()
    return int(status), stderr, int(peak), float(seconds)


def _endless(line: bytes) -> subprocess.Popen:
    """A writer that never stops (as `yes LINE`), for --data /dev/stdin."""
    code = (f"import sys\nblock = {line!r} * 65536\nwrite = sys.stdout.buffer.write\n"
            "try:\n    while True:\n        write(block)\nexcept OSError:\n    pass\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def test_an_endless_pipe_stops_at_the_default_data_limit_under_1_gb():
    """Was: read up to 4 GiB, past 3 GB of memory. Now the default limit (256 MiB) bounds
    the memory the rows take, and reading stops there."""
    writer = _endless(b"1,2\n")
    try:
        status, stderr, peak, seconds = _measured(["eval", "x+y", "--data", "/dev/stdin"],
                                                  stdin=writer.stdout)
    finally:
        writer.kill()
        writer.wait()
    assert status == 2, stderr
    assert "its rows take more than 268,435,456 bytes of memory" in stderr
    assert peak < 600e6 and seconds < 90, (peak, seconds)


def test_urandom_is_refused_at_once():
    status, stderr, peak, seconds = _measured(["eval", "x", "--data", "/dev/urandom"])
    assert status == 2 and "not UTF-8 text" in stderr
    assert peak < 200e6 and seconds < 20, (peak, seconds)


def test_a_pipe_under_the_default_limit_is_evaluated_under_1_gb(tmp_path):
    """2 million rows from a pipe, with a value and three derivative columns per row."""
    feeder = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdout.buffer.write("
                               "b'x,y\\n' + b'1,2\\n' * 2_000_000)"], stdout=subprocess.PIPE)
    try:
        status, stderr, peak, seconds = _measured(["grad", "a*x + y", "--at", "a=2", "--data",
                                                   "/dev/stdin"], stdin=feeder.stdout)
    finally:
        feeder.wait()
    assert status == 0, stderr
    assert peak < 600e6 and seconds < 90, (peak, seconds)


def test_a_csv_with_text_columns_keeps_them_compactly(tmp_path):
    """Was: a 19 MB CSV with a text column took 379-428 MB (a Python string a cell)."""
    path = tmp_path / "text.csv"
    with path.open("w") as fh:
        fh.write("id,x,y,tag\n")
        fh.writelines(f"r{i},{i % 100},{i % 7},t{i % 10}\n" for i in range(400_000))
    size = path.stat().st_size
    for extra in ([], ["--json"]):
        status, stderr, peak, seconds = _measured(["eval", "x*y", "--data", str(path),
                                                   *extra])
        assert status == 0, stderr
        assert peak < 60e6 + 10 * size and seconds < 90, (size, peak, seconds)


def test_a_huge_model_over_rows_is_refused_before_compiling(tmp_path):
    """Was: 375,000 nodes over 40 rows compiled numpy code for 63 s and 2.7 GB."""
    import adcli.io.rows

    model = tmp_path / "big.adc"
    model.write_text(" + ".join(f"w{i % 50}*sin(x*{i}.5)" for i in range(75_000)))
    data = tmp_path / "d.csv"
    data.write_text("x\n" + "".join(f"{i / 10}\n" for i in range(40)))
    at = ",".join(f"w{i}=0.1" for i in range(50))
    for command in ("eval", "grad"):
        status, stderr, peak, seconds = _measured([command, f"@{model}", "--data", str(data),
                                                   "--at", at])
        assert status == 2, stderr
        assert "the tape has 375,050 nodes" in stderr and "limited to 100,000 nodes" in stderr
        assert peak < GIB and seconds < 60, (peak, seconds)
    assert adcli.io.rows.MAX_NODES == adcli.optimize.objective.DATA_MAX_NODES


def test_a_hessian_table_too_big_to_print_points_to_json(run):
    n = 999
    source = " + ".join(f"v{i}" for i in range(n))
    point = ",".join(f"v{i}=1" for i in range(n))
    t0 = time.perf_counter()
    stderr = _clean(run("hessian", source, "--at", point), 2)
    assert time.perf_counter() - t0 < 20
    assert "a Hessian of 999 variables is too big to print as a table" in stderr
    assert "--json" in stderr
    small = run("hessian", " + ".join(f"v{i}^2" for i in range(3)), "--at", "v0=1,v1=1,v2=1")
    assert small.exit_code == 0 and "Hessian" in small.stdout


def test_compare_modes_scaling_parses_the_documented_maximum(monkeypatch):
    """--sizes 100000 (the documented maximum) makes 4.4 MB of text: the family's own text
    is not held to EXPR's 2 MiB limit (the full run takes about 76 s and 520 MB)."""
    import adcli.function
    from adcli.modes.families import family_expression

    text, _ = family_expression("rosenbrock", 100_000)
    assert len(text) > adcli.function.DEFAULT_MAX_SOURCE_BYTES
    seen = []

    class Stop(Exception):
        pass

    def spy(source, *, max_bytes=adcli.function.DEFAULT_MAX_SOURCE_BYTES):
        seen.append((len(source), max_bytes))
        raise Stop

    monkeypatch.setattr(adcli.function, "parse", spy)
    with pytest.raises(Stop):
        adcli.modes.compare.scaling("rosenbrock", (100_000,))
    assert seen == [(len(text), None)]
