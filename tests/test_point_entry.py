"""The fast path of ``f.grad(dict)`` / ``f.eval(dict)`` (generated point entries).

Once a function's compiled code is in use, a point of Python floats with the same keys goes
straight to it. It must return exactly what the general path returns (the same engine's bits,
the same keys in the same order), hand anything else to the general path, and never put a
variable name into generated source.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import adcli
from adcli.ops import codegen
from adcli.ops.codegen import ENTRY_MAX_INPUTS, point_entry

sys.path.insert(0, str(Path(__file__).parent))
from strategies import programs  # noqa: E402
from test_compile import NASTY_NAMES, plain, same  # noqa: E402

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def bits(x: float) -> float | str:
    """A comparable form that tells nan from nan-with-another-sign and -0.0 from 0.0."""
    return float(x).hex() if not math.isnan(x) else f"nan{math.copysign(1, x)}"


def hot(f: adcli.Function, point: dict) -> bool:
    return f._grad_entry(point) is not None


def check(source: str, point: dict[str, float]) -> None:
    f = adcli.parse(source)
    tape = f.tape(point)
    want_value, want_grad = plain(tape, point)
    engine_value, engine_grad = f.compiled(point).fast()
    xs = [point[n] for n in tape.inputs]
    ev, eg = engine_grad(*xs)
    results = [f.grad(point) for _ in range(4)]
    values = [f.eval(point) for _ in range(3)]
    assert hot(f, point) == (len(point) == len(tape.inputs)
                             and all(type(v) is float for v in point.values()))
    for value, gradient in results:
        assert bits(value) == bits(ev)  # the compiled engine's bits, every call
        assert same(value, want_value)  # and the interpreter's numbers
        assert list(gradient) == list(tape.inputs)
        assert [bits(g) for g in gradient.values()] == [bits(g) for g in eg]
        assert all(same(g, w) for g, w in zip(gradient.values(), want_grad))
    assert all(bits(v) == bits(engine_value(*xs)) for v in values)
    # same value types on the fast and the general path
    assert len({type(r.value) for r in results}) == 1
    assert len({type(g) for r in results for g in r.gradient.values()}) <= 1
    assert len({type(v) for v in values}) == 1


@FAST
@given(programs(defined=False))
def test_entry_gives_the_general_paths_numbers(example) -> None:
    check(example.source, example.point)


@pytest.mark.parametrize("source, point", [
    ("1/x", {"x": 0.0}), ("log(x)*y", {"x": 0.0, "y": 2.0}), ("x^y", {"x": -8.0, "y": 1 / 3}),
    ("sqrt(x)", {"x": -1.0}), ("exp(x)", {"x": 1000.0}), ("x - x", {"x": math.inf}),
    ("pi + x", {"pi": 1.0, "x": 2.0}), ("3", {}), ("x", {"x": -0.0}),
    ("3*x^2 + x*y + 5*y^2", {"x": 1.5, "y": 2.5}),
])
def test_entry_special_cases(source: str, point: dict[str, float]) -> None:
    check(source, point)


def test_other_points_take_the_general_path() -> None:
    f = adcli.parse("3*x^2 + x*y + 5*y^2 + 0*pi")
    point = {"x": 1.5, "y": 2.5}
    for _ in range(3):
        f.grad(point)
    assert hot(f, point)
    want = f.grad(point)
    for other in ({"x": 1.5, "y": 2.5}, {"y": 2.5, "x": 1.5}, {"x": 1, "y": 2.5},
                  {"x": np.float64(1.5), "y": 2.5}, {"x": np.array(1.5), "y": 2.5}):
        got = f.grad(other)
        expect = f.grad({k: float(v) for k, v in other.items()})
        assert got == expect and list(got.gradient) == ["x", "y"], other
        assert type(got.value) is float and {type(g) for g in got.gradient.values()} == {float}
        assert f.eval(other) == expect.value
    assert not hot(f, {"x": 1, "y": 2.5})
    assert not hot(f, {"x": 1.5, "y": "2.5"})
    assert not hot(f, {"x": 1.5})
    assert not hot(f, {"x": 1.5, "y": 2.5, "z": 1.0})
    # a bound constant changes the tape: the general path, with its own answer
    with_pi = f.grad({"x": 1.5, "y": 2.5, "pi": 2.0})
    assert set(with_pi.gradient) == {"x", "y", "pi"} and with_pi.gradient["pi"] == 0.0
    assert f.grad(point, wrt=["y"]).gradient == {"y": want.gradient["y"]}
    with pytest.raises(adcli.AdcliError if hasattr(adcli, "AdcliError") else Exception):
        f.grad({"x": 1.5, "z": 2.5})  # the general path's error for a missing value
    for odd in ([1.5, 2.5], ("x", "y"), None, 3.0):  # not mappings: the general path's error
        with pytest.raises(Exception) as fast_err:
            f.grad(odd)
        with pytest.raises(Exception) as slow_err:
            adcli.parse(f.source).grad(odd)
        assert type(fast_err.value) is type(slow_err.value)
    cols = f.grad({"x": np.array([1.5, 0.5]), "y": 2.5})
    assert cols.gradient["x"].shape == (2,)
    assert f.grad(point) == want  # and the fast path again


def test_too_many_inputs_take_the_general_path() -> None:
    n = ENTRY_MAX_INPUTS + 1
    f = adcli.parse(" + ".join(f"x{i}^2" for i in range(n)))
    point = {f"x{i}": float(i) for i in range(n)}
    results = [f.grad(point) for _ in range(3)]
    assert not hot(f, point)
    assert all(r == results[0] for r in results)
    assert results[0].gradient["x3"] == 6.0


@pytest.mark.parametrize("arity", [0, 1, 2, 5])
def test_entry_source_holds_no_names(arity: int, monkeypatch) -> None:
    keys = tuple(NASTY_NAMES[:arity])
    make = point_entry(arity, True)
    assert point_entry(arity, True) is make  # one generated function per arity
    entry = make(keys, lambda *xs: (sum(xs), xs), tuple)
    point = {k: float(i) for i, k in enumerate(keys)}
    assert entry(point) == (sum(point.values()), point)
    sources = []
    real = codegen.build
    monkeypatch.setattr(codegen, "build", lambda src, ns, name: sources.append(src)
                        or real(src, ns, name))
    codegen._point_entry(arity, True)
    codegen._point_entry(arity, False)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "".join(sources)))
    allowed = r"[kx]\d+|[vg]|keys|fn|result|point|entry|make|def|return|if|or|is|not|None|try" \
              r"|except|LookupError|TypeError|_len|_float|_new|__class__"
    assert all(re.fullmatch(allowed, w) for w in words), words


def test_op_partials_are_compiled_on_first_use_and_bound_for_good() -> None:
    """Start-up compiles no op's partials; the first call compiles them, gives the
    same numbers as the template says, and code that keeps a reference gets the real one."""
    from adcli.ops import OPS, partials_of

    op = OPS["atan2"]
    real = partials_of(op)
    assert not hasattr(real, "build") and op.partials is real and partials_of(op) is real
    a, b = np.float64(0.5), np.float64(-2.0)
    da, db = op.partials((a, b), np.arctan2(a, b))
    assert math.isclose(da, b / (a * a + b * b)) and math.isclose(db, -a / (a * a + b * b))
    code = ("from adcli.ops import OPS\n"
            "print(sum(hasattr(op.partials, 'build') for op in OPS.values()), len(OPS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert out[0] == out[1] != "0"  # every op's partials still a stub after import
