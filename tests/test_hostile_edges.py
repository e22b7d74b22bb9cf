"""Hostile edges: numbers at the edges of float64 in every engine, and inputs that used to end
in a traceback (closed streams, odd environment variables, a damaged grammar cache, Ctrl-C
during start-up, malformed ``--at`` values).

The numeric references are mpmath at 50 digits, never adcli's own formulas: atan2's partials
x/(x^2 + y^2) and hypot's x/hypot(x, y) over magnitudes 1e-300..1e300 (where squaring
overflows or underflows), sqrt'(-0.0), log1p' outside its domain. Every engine that evaluates
partials is checked: the plain interpreter, forward mode, the generated scalar code and the
float interpreter, the numpy column sweeps, the levelled sweeps, and the symbolic derivative
printed by ``adcli diff`` and evaluated again.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import adcli
from adcli import sweeps
from adcli.commands.diff import derivative_texts
from adcli.fast.levelled import Levelled
from adcli.fast.policy import CompiledTape, guard
from adcli.fast.scalar import interpreter

mpmath.mp.dps = 50

#: Magnitudes 1e-300 .. 1e300 (every 20 decades, and the squaring edges 1e±155, 1e±170),
#: both signs: x^2 + y^2 overflows or underflows for most pairs.
MAGNITUDES = sorted({10.0 ** k for k in range(-300, 301, 20)} | {1e155, 1e-155, 1e170,
                                                                 1e-170, 1.7e154, 3e-162})
VALUES = [s * m for m in MAGNITUDES for s in (1.0, -1.0)]
PAIRS = list(itertools.product(VALUES[::2] + VALUES[1::6], VALUES[::3] + VALUES[1::5])) \
    + [(1e200, 1e200), (1e-170, 1e-170), (-1e-170, 3e-170), (1e300, -1e-300)]


def close(got: float, want: float) -> bool:
    """Within 1e-14 relative where the reference is a normal float; where it is subnormal or
    underflows to 0 (below 1e-305), within 1e-320 absolute."""
    got = float(got)
    if math.isnan(got) or math.isinf(got):
        return False
    if abs(want) < 1e-305:
        return abs(got - want) <= 1e-320
    return math.isclose(got, want, rel_tol=1e-14)


def ref_atan2(y: float, x: float) -> tuple[float, float]:
    """(d/dy, d/dx) of atan2(y, x) = (x, -y) / (x^2 + y^2), in 50 digits."""
    X, Y = mpmath.mpf(x), mpmath.mpf(y)
    r2 = X * X + Y * Y
    return float(X / r2), float(-Y / r2)


def ref_hypot(x: float, y: float) -> tuple[float, float]:
    X, Y = mpmath.mpf(x), mpmath.mpf(y)
    r = mpmath.sqrt(X * X + Y * Y)
    return float(X / r), float(Y / r)


def all_engines(source: str, names: list[str], points: list[tuple[float, ...]]):
    """{engine: list of gradients (in ``names`` order), one per point}."""
    f = adcli.parse(source)
    tape = f.tape()
    assert list(tape.inputs) == names
    out: dict[str, list] = {k: [] for k in ("interpreter", "forward", "compiled",
                                            "float-interpreter", "api", "levelled",
                                            "symbolic")}
    fast = CompiledTape(tape)
    _, compiled_grad = fast.compiled()
    _, interp_grad = interpreter(tape)
    interp_grad = guard(interp_grad, fast._slow_grad)
    plan = Levelled(tape)
    symbolic = [adcli.parse(t) for t in derivative_texts(tape, names, sep="\n")]
    with np.errstate(all="ignore"):
        for xs in points:
            point = dict(zip(names, xs))
            _, g, _, _ = sweeps.value_and_grad(tape, point)
            out["interpreter"].append([float(g[n]) for n in names])
            _, g = sweeps.forward_gradient(tape, point)
            out["forward"].append([float(g[n]) for n in names])
            out["compiled"].append(list(compiled_grad(*xs)[1]))
            out["float-interpreter"].append(list(interp_grad(*xs)[1]))
            out["api"].append([f.grad(point).gradient[n] for n in names])
            out["levelled"].append([float(v) for v in plan.value_and_grad(np.array(xs))[1]])
            out["symbolic"].append([float(d.eval(point)) for d in symbolic])
    # the numpy column sweeps: every point a row
    columns = [np.array([p[i] for p in points]) for i in range(len(names))]
    _, grads = f.compiled(dict(zip(names, columns))).sweep_columns(columns)
    out["columns"] = [[float(g[k]) for g in grads] for k in range(len(points))]
    return out


def test_atan2_partials_at_the_edges_of_float64_in_every_engine():
    """x/(x^2 + y^2) at x = y = 1e200 is 5e-201 (squared: 0), at 1e-170 it is 5e169
    (squared: inf); over 1e-300..1e300 every engine is within 1e-14 of mpmath."""
    engines = all_engines("atan2(y, x)", ["y", "x"], PAIRS)
    refs = [ref_atan2(y, x) for y, x in PAIRS]
    for engine, grads in engines.items():
        bad = [(p, g, r) for p, g, r in zip(PAIRS, grads, refs)
               if not (close(g[0], r[0]) and close(g[1], r[1]))]
        assert not bad, (engine, len(bad), bad[:3])
    i = PAIRS.index((1e200, 1e200))
    assert engines["compiled"][i] == pytest.approx([5e-201, -5e-201], rel=1e-15)
    i = PAIRS.index((1e-170, 1e-170))
    assert engines["symbolic"][i] == pytest.approx([5e169, -5e169], rel=1e-15)


def test_hypot_partials_at_the_edges_of_float64_in_every_engine():
    engines = all_engines("hypot(x, y)", ["x", "y"], PAIRS)
    refs = [ref_hypot(x, y) for x, y in PAIRS]
    for engine, grads in engines.items():
        bad = [(p, g, r) for p, g, r in zip(PAIRS, grads, refs)
               if not (close(g[0], r[0]) and close(g[1], r[1]))]
        assert not bad, (engine, len(bad), bad[:3])


def test_hypot_partials_where_hypot_itself_overflows():
    """hypot(1e308, 1e308) is inf, but its partials are 1/sqrt(2) each (x / inf was 0)."""
    f = adcli.parse("hypot(x, y)")
    for x, y in [(1e308, 1e308), (-1.5e308, 1e308), (1.7e308, 1.0)]:
        want = ref_hypot(x, y)
        got = f.grad({"x": x, "y": y}).gradient
        assert close(got["x"], want[0]) and close(got["y"], want[1]), (x, y, got)
        g = sweeps.forward_gradient(f.tape(), {"x": x, "y": y})[1]
        assert close(g["x"], want[0]) and close(g["y"], want[1])


def test_atan2_and_hypot_at_the_origin_keep_their_conventions():
    for engine, grads in all_engines("atan2(y, x)", ["y", "x"], [(0.0, 0.0)]).items():
        assert all(math.isnan(g) for g in grads[0]), engine
    for engine, grads in all_engines("hypot(x, y)", ["x", "y"],
                                     [(0.0, 0.0), (-0.0, 0.0)]).items():
        if engine == "symbolic":  # x/hypot(x, y), documented as nan at the origin
            continue
        assert grads == [[0.0, 0.0], [0.0, 0.0]], engine


def test_sqrt_derivative_at_minus_zero_is_plus_inf():
    """The README's table: sqrt'(0) = +inf, for both zeros (sqrt(-0.0) is -0.0)."""
    for engine, grads in all_engines("sqrt(x)", ["x"], [(-0.0,), (0.0,)]).items():
        if engine == "symbolic":  # 0.5/sqrt(x): documented to keep the sign of the zero
            continue
        assert grads == [[math.inf], [math.inf]], engine


@pytest.mark.parametrize("x", [-2.0, -1.0000000000000002, -1.5, -1e300, -math.inf])
def test_log1p_derivative_is_nan_below_minus_one(x):
    engines = all_engines("log1p(x)", ["x"], [(x,)])
    for engine, grads in engines.items():
        if engine == "symbolic":  # 1/(x + 1): the printed formula, evaluated as written
            continue
        assert math.isnan(grads[0][0]), (engine, grads)


def test_log1p_derivative_on_its_domain():
    xs = [-1.0, -0.9999999999999999, -0.5, -1e-300, 0.0, 1e-300, 1e-10, 3.0, 1e300]
    for engine, grads in all_engines("log1p(x)", ["x"], [(x,) for x in xs]).items():
        assert grads[0] == [math.inf], engine
        for x, g in zip(xs[1:], grads[1:]):
            assert close(g[0], float(1 / (1 + mpmath.mpf(x)))), (engine, x, g)


# --------------------------------------------------------------------------- CLI helpers

ROOT = Path(__file__).resolve().parent.parent
ADCLI = Path(sys.executable).parent / "adcli"


def run(args: list[str], *, env: dict | None = None, stdin=subprocess.DEVNULL,
        timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``adcli ARGS`` through the console script, with the grammar cache in ``env`` if any."""
    return subprocess.run([str(ADCLI), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, stdin=stdin, timeout=timeout,
                          **kw)


def assert_clean_error(proc: subprocess.CompletedProcess, status: int, *words: str) -> None:
    """Exit ``status``, no traceback, one ``Error:`` line first on stderr naming ``words``."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0] if proc.stderr else ""
    assert first.startswith("Error: "), proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


# --------------------------------------------------------------------------- --at values


@pytest.mark.parametrize("at, bad", [("x=a=1", "'a=1'"), ("x=y=2", "'y=2'"),
                                     ("x=a=1;a+5", "'a=1;a+5'"), ("y=1,x=b=2", "'b=2'")])
def test_at_value_with_an_equals_sign_is_an_error_naming_it(at, bad):
    proc = run(["eval", "x", "--at", at])
    assert_clean_error(proc, 2, bad, "--at x=")
    assert proc.stdout == ""


def test_from_and_bounds_values_with_an_equals_sign_are_errors():
    from adcli.errors import PointError
    from adcli.point import parse_assignments, parse_value

    with pytest.raises(PointError, match=r"--from x='a=1' is not a number"):
        parse_assignments("x=a=1", "--from")
    with pytest.raises(PointError, match="no '='"):
        parse_value("a = 2; a", context="--bounds x=")
    assert parse_assignments("x=pow(2, 3),y=-1e3") == {"x": 8.0, "y": -1000.0}


# --------------------------------------------------------------------------- function names


def test_every_function_alias_names_a_real_op():
    from adcli.grammar import _FUNCTION_ALIASES, _MISSING_FUNCTIONS
    from adcli.ops import FUNCTIONS

    for alias, target in _FUNCTION_ALIASES.items():
        assert target in FUNCTIONS, (alias, target)
        assert alias not in FUNCTIONS, alias
    for name, formula in _MISSING_FUNCTIONS.items():
        assert name not in FUNCTIONS and name not in _FUNCTION_ALIASES
        # the suggested formula is in the language (x its only variable)
        assert adcli.parse(formula.split(" (")[0]).variables == ["x"], name


@pytest.mark.parametrize("name", ["arcsinh", "asinh", "acosh", "arctanh"])
def test_inverse_hyperbolic_names_get_a_formula_not_a_wrong_function(name):
    proc = run(["eval", f"{name}(1)"])
    assert_clean_error(proc, 2, f"unknown function '{name}'", "log")
    assert "did you mean" not in proc.stderr


def test_aliases_still_suggest_their_function():
    proc = run(["eval", "arctan2(1, 2)"])
    assert_clean_error(proc, 2, "did you mean 'atan2'")
