"""Start-up (bench W6): ``adcli grad "x^2" --at x=3`` imports neither numpy nor rich.

Three things make that possible, each checked here against what it replaces:

- the op table and the float engines run without numpy (constants of the same bits, ``pow``
  with exponent 0, 1, 2 computed as numpy's power does);
- ``grad``'s node table at a point of floats comes from the float engine: the same values,
  adjoints, warnings and JSON as the plain (numpy) interpreter;
- the plain-text renderer (:mod:`adcli.output.plain`) writes the bytes rich writes to a pipe or a
  file: compared over generated expressions, the README's examples, widths, ``--digits``,
  ``--no-table``, ``--max-rows``, eval, and warnings on stderr, in-process and through the
  console script.
"""

from __future__ import annotations

import io
import math
import os
import re
import shlex
import struct
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import programs

import adcli
from adcli.commands import report as report_mod
from adcli.commands.report import float_value_and_grad, grad_report
from adcli.core import sweeps
from adcli.ops import CONSTANTS, LN2, LN10
from adcli.ops import kernels as K
from adcli.output import numbers, plain, render
from adcli.output.formats.json import dumps

ROOT = Path(__file__).resolve().parent.parent
ADCLI = Path(sys.executable).parent / "adcli"


def bits(v) -> bytes:
    return struct.pack("<d", float(v))


# --------------------------------------------------------------------------- numpy-free core


def test_constants_are_numpys_bits():
    assert bits(LN2) == bits(np.log(2.0)) and bits(LN10) == bits(np.log(10.0))
    assert bits(CONSTANTS["pi"]) == bits(np.pi) and bits(CONSTANTS["e"]) == bits(np.e)


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-310, -5e-324, 1e154, 1.4e154, -1e200,
           1.7976931348623157e308, math.inf, -math.inf, math.nan]


def _same(a: float, b: float) -> bool:
    return bits(a) == bits(b) or (a != a and b != b)


@pytest.mark.parametrize("y", [2.0, 1.0, 0.0])
def test_pow_without_numpy_is_numpys_power(y):
    """x^2, x^1, x^0 (and so d/dx x^2 = 2*x^1) are computed without numpy: every result is
    numpy's power, or the kernel raises where numpy would overflow (the callers fall back)."""
    rng = np.random.default_rng(7)
    xs = SPECIAL + (rng.standard_normal(20_000) * 10).tolist() \
        + np.exp(rng.uniform(-700, 700, 20_000)).tolist() \
        + (-np.exp(rng.uniform(-700, 700, 20_000))).tolist()
    with np.errstate(all="ignore"):
        for x in xs:
            want = float(np.power(np.float64(x), np.float64(y)))
            try:
                got = K.f_pow(x, y)
            except (ArithmeticError, ValueError):
                assert math.isinf(want), x  # only an overflow is left to numpy
                continue
            assert _same(got, want), (x, y, got, want)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_pow_dbase_of_a_square_is_numpys(x):
    with np.errstate(all="ignore"):
        want = float(2.0 * np.power(np.float64(x), np.float64(1.0)))
    assert _same(K.f_pow_dbase(x, 2.0, x * x), want)


def _modules_after(args: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    code = ("import sys\nfrom adcli.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('MODULES ' + ' '.join(sorted(m for m in ('numpy', 'rich') "
            "if m in sys.modules)) + '\\n')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES")][-1]
    return proc, line.split()[1:]


@pytest.mark.parametrize("args", [
    ["grad", "x^2", "--at", "x=3"],
    ["grad", "x^2", "--at", "x=3", "--json"],
    ["grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "--digits", "3"],
    ["grad", "abs(x) + max(x, y)", "--at", "x=0,y=0"],  # kink warnings on stderr
    ["grad", "x^2", "--at", "x=3,q=1", "--no-table"],  # an unused-name warning
    ["eval", "sqrt(x)*x/2 + cos(x)", "--at", "x=2"],
    ["eval", "x^2", "--at", "x=3", "--json"],
])
def test_a_command_at_a_point_imports_neither_numpy_nor_rich(args):
    proc, modules = _modules_after(args)
    assert proc.stdout and "Error" not in proc.stderr
    assert modules == []


@pytest.mark.parametrize("args, needed", [
    (["grad", "exp(x)", "--at", "x=1"], ["numpy"]),  # numpy's own exp, for its bits
    (["grad", "log(x)", "--at", "x=0"], ["numpy"]),  # -inf: the plain interpreter reports
])
def test_what_needs_numpy_still_loads_it(args, needed):
    proc, modules = _modules_after(args)
    assert proc.stdout
    assert all(m in modules for m in needed)


# --------------------------------------------------------------------------- float node sweep


def _numpy_report(function, point, **kw):
    """grad_report as before this work: the plain interpreter for every node."""
    saved = report_mod.float_value_and_grad
    report_mod.float_value_and_grad = lambda tape, point: None
    try:
        return grad_report(function, point, **kw)
    finally:
        report_mod.float_value_and_grad = saved


def _assert_same_report(a, b):
    assert _same(a.value, b.value)
    assert list(a.gradient) == list(b.gradient)
    assert all(_same(a.gradient[n], b.gradient[n]) for n in a.gradient)
    assert len(a.nodes) == len(b.nodes)
    for x, y in zip(a.nodes, b.nodes):
        assert (x.id, x.op, x.label, x.args) == (y.id, y.op, y.label, y.args)
        assert _same(x.value, y.value) and _same(x.grad, y.grad), (x, y)
    assert a.warnings == b.warnings
    assert dumps(a) == dumps(b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_float_node_sweep_is_the_plain_interpreters(example):
    f = adcli.parse(example.source)
    point = {k: float(v) for k, v in example.point.items()}
    tape = f.tape(point)
    if float_value_and_grad(tape, point) is None:
        return  # the plain interpreter runs: nothing to compare
    _assert_same_report(grad_report(f, point), _numpy_report(f, point))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(defined=False))
def test_float_node_sweep_anywhere_gives_the_same_report(example):
    """Unrestricted points (zeros, inf, nan, huge numbers): the float sweep either declines or
    agrees, warnings included."""
    f = adcli.parse(example.source)
    point = {k: float(v) for k, v in example.point.items()}
    _assert_same_report(grad_report(f, point), _numpy_report(f, point))


def test_float_node_sweep_declines_nonfinite_and_non_floats():
    f = adcli.parse("x / y")
    assert float_value_and_grad(f.tape(), {"x": 1.0, "y": 0.0}) is None  # 1/0 raises
    assert float_value_and_grad(f.tape(), {"x": math.inf, "y": 1.0}) is None
    assert float_value_and_grad(f.tape(), {"x": np.float64(1.0), "y": 2.0}) is None
    value, gradient, values, adjoint = float_value_and_grad(f.tape(), {"x": 1.0, "y": 2.0})
    assert (value, gradient) == (0.5, {"x": 0.5, "y": -0.25})
    want = sweeps.value_and_grad(f.tape(), {"x": 1.0, "y": 2.0})
    assert [float(v) for v in want[2]] == values and [float(g) for g in want[3]] == adjoint


# --------------------------------------------------------------------------- plain = rich


def _rich_grad(report, table, max_rows, width, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    with redirect_stdout(out):
        render.grad(report, table=table, max_rows=max_rows)
    return out.getvalue()


EXPRESSIONS = [
    ("x^2", {"x": 3.0}),
    ("(w0 + w1*x - y)^2", {"x": 3.0, "y": 7.0, "w0": -2.0, "w1": 2.0}),
    ("a = x^2; a + sin(a)", {"x": 1.5}),
    ("x/3 + 1e300*y*y", {"x": 1.0, "y": 1e-7}),
    ("abs(x) + relu(y) - min(x, y)", {"x": 0.0, "y": 0.0}),
    ("exp(x) * log(y) / sqrt(z)", {"x": 0.1, "y": 2.0, "z": 9.0}),
    ("a_rather_long_variable_name * another_long_name + x",
     {"a_rather_long_variable_name": 2.0, "another_long_name": -0.5, "x": 1.0}),
    (" + ".join(f"sin(x{i}) * x{i + 1}" for i in range(30)),
     {f"x{i}": i / 7 for i in range(31)}),
    ("log(x - 3) * y", {"x": 2.0, "y": 1.0}),
    ("x - x", {"x": 1.0}),
    ("2 * 3", {}),
]


@pytest.mark.parametrize("source, point", EXPRESSIONS)
@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 200])
@pytest.mark.parametrize("table, max_rows, digits", [
    (True, 200, 12), (False, 200, 12), (True, 3, 12), (True, 0, 0), (True, 200, 3)])
def test_plain_grad_is_richs_bytes(source, point, width, table, max_rows, digits, monkeypatch):
    numbers.set_digits(digits)
    try:
        report = grad_report(adcli.parse(source), point,
                             max_nodes=None if max_rows == 0 else max_rows)
        text = plain.grad_text(report, table=table, max_rows=max_rows, width=width)
        want = _rich_grad(report, table, max_rows, width, monkeypatch)
    finally:
        numbers.set_digits(numbers.DEFAULT_DIGITS)
    if text is not None:  # None: rich folds a label or wraps a line (see the next test)
        assert text == want


def test_plain_grad_covers_the_common_cases():
    """The plain renderer must not hand everything to rich: at 80 columns, only the tables
    wider than that whose labels rich folds go to rich (long labels next to 17-digit
    numbers, the 31-input sum)."""
    done = []
    for source, point in EXPRESSIONS:
        report = grad_report(adcli.parse(source), point)
        done.append(plain.grad_text(report, width=80) is not None)
    assert done == [True, True, True, False, True, False, True, False, True, True, True]


@st.composite
def _report_and_width(draw):
    example = draw(programs(defined=False))
    width = draw(st.sampled_from([30, 50, 80, 120, 400]))
    max_rows = draw(st.sampled_from([0, 2, 200]))
    return example, width, max_rows, draw(st.booleans()), draw(st.sampled_from([0, 4, 12]))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=_report_and_width())
def test_plain_grad_is_richs_bytes_for_generated_programs(case, monkeypatch):
    example, width, max_rows, table, digits = case
    f = adcli.parse(example.source)
    point = {k: float(v) for k, v in example.point.items()}
    numbers.set_digits(digits)
    try:
        report = grad_report(f, point, max_nodes=None if max_rows == 0 else max_rows)
        text = plain.grad_text(report, table=table, max_rows=max_rows, width=width)
        if text is not None:
            assert text == _rich_grad(report, table, max_rows, width, monkeypatch)
    finally:
        numbers.set_digits(numbers.DEFAULT_DIGITS)


@pytest.mark.parametrize("message", [
    "'q' is given a value but the expression does not use it",
    "the point lies on a kink: node #1 (abs 'abs(x)') sits exactly on its kink (input 0.0); "
    "convention used: abs'(0) = 0 (minimum-norm subgradient)",
    "… and 3 more nodes on a kink",
    "x" * 300 + " a very long word gets clipped",
    "brackets [bold]not markup[/bold] and :smile: go to rich",
])
def test_plain_warning_is_richs_bytes(message):
    err = io.StringIO()
    with redirect_stderr(err):
        render.warn(message)
    text = plain.warning_text(message)
    assert (text is None) == ("[" in message)  # markup or emoji: rich's
    if text is not None:
        assert text == err.getvalue()


def test_plain_only_where_rich_writes_no_colours(monkeypatch):
    class Pipe(io.StringIO):
        encoding = "utf-8"

        def isatty(self):
            return False

    class Tty(Pipe):
        def isatty(self):
            return True

    for var in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    assert plain.rich_would_be_plain(Pipe()) and not plain.rich_would_be_plain(Tty())
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not plain.rich_would_be_plain(Pipe())
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert plain.rich_would_be_plain(Tty())
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.delenv("TTY_COMPATIBLE")
    ascii_pipe = Pipe()
    ascii_pipe.encoding = "ascii"  # rich draws an ASCII box there
    assert not plain.rich_would_be_plain(ascii_pipe)


# --------------------------------------------------------------------------- console script

_FORCE_RICH = ("import sys\nimport adcli.output.plain as p\n"
               "p.grad_text = lambda *a, **k: None\np.warning_text = lambda *a, **k: None\n"
               "from adcli.cli import main\nmain(sys.argv[1:])\n")


def _readme_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for line in re.findall(r"^\$ adcli ((?:grad|eval) [^\n|>]*)$", readme, re.M):
        args = shlex.split(line)
        if "--data" not in args and "-o" not in args:
            found.append(args)
    return found


CLI_CASES = _readme_commands() + [
    ["grad", "x^2", "--at", "x=3"],
    ["grad", "abs(x) + max(x, y)", "--at", "x=0,y=0,unused=1"],
    ["grad", "(w0 + w1*x - y)^2", "--at", "x=3,y=7,w0=-2,w1=2", "--digits", "0"],
    ["grad", " + ".join(f"x{i}*x{i + 1}" for i in range(12)),
     "--at", ",".join(f"x{i}={i}" for i in range(13)), "--max-rows", "5"],
    ["grad", "log(x)", "--at", "x=0"],
    ["eval", "x/0", "--at", "x=1"],
]


@pytest.mark.skipif(not ADCLI.exists(), reason="needs the installed console script")
@pytest.mark.parametrize("columns", ["80", "50", "132"])
@pytest.mark.parametrize("args", CLI_CASES, ids=lambda a: " ".join(a)[:60])
def test_console_script_output_is_richs(args, columns):
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = columns
    got = subprocess.run([str(ADCLI), *args], capture_output=True, timeout=60, env=env,
                         cwd=ROOT)
    want = subprocess.run([sys.executable, "-c", _FORCE_RICH, *args], capture_output=True,
                          timeout=60, env=env, cwd=ROOT)
    assert (got.returncode, got.stdout, got.stderr) == \
        (want.returncode, want.stdout, want.stderr)


@pytest.mark.skipif(not ADCLI.exists() or sys.platform == "win32",
                    reason="needs the console script and a pseudo-terminal")
@pytest.mark.parametrize("cols", [40, 100])
def test_width_of_a_terminal_on_stdin_with_stdout_piped(cols):
    """``adcli grad ... | less`` typed in a terminal: rich takes the width from stdin's
    terminal, and so does the plain renderer."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        env = {k: v for k, v in os.environ.items()
               if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
        args = ["grad", "a_rather_long_variable_name * x + sin(x)", "--at",
                "a_rather_long_variable_name=2,x=1"]
        got = subprocess.run([str(ADCLI), *args], stdin=slave, capture_output=True,
                             timeout=60, env=env)
        want = subprocess.run([sys.executable, "-c", _FORCE_RICH, *args], stdin=slave,
                              capture_output=True, timeout=60, env=env)
    finally:
        os.close(master)
        os.close(slave)
    assert got.returncode == 0 and (got.stdout, got.stderr) == (want.stdout, want.stderr)
