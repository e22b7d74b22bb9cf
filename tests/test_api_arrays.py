"""The compiled call with one array of inputs (``c.value_and_grad(x)``, ``c.value(x)``,
``c.grad(x)``): the form the README documents for many inputs.

An array must give exactly the bits of the same numbers passed one by one, on every engine
(straight-line code, the level-by-level plan, the float interpreter), return the gradient as
a float64 array, and refuse a wrong shape, a wrong length or a non-finite value with an
``AdcliError`` that says which. Also the inline entry of ``f.grad(dict)``.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import adcli
from adcli.fast.policy import CompiledTape
from adcli.fast.scalar import input_array
from adcli.ops import FLOAT_NAMES

sys.path.insert(0, str(Path(__file__).parent))
from strategies import programs  # noqa: E402
from test_compile import NASTY_NAMES  # noqa: E402

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def bits(x: float) -> str:
    return float(x).hex() if not math.isnan(x) else f"nan{math.copysign(1, x)}"


def engines(c: CompiledTape) -> dict:
    """Every engine's (value, value_and_grad) for one tape."""
    return {"public": (c.value, c.value_and_grad), "interpreter": c.interpreter(),
            "compiled": c.compiled()}


def check_same_bits(value, vg, xs: list[float]) -> None:
    arr = np.array(xs, dtype=np.float64)
    v1, g1 = vg(*xs)
    v2, g2 = vg(arr)
    assert type(v2) is float and bits(v2) == bits(v1)
    assert isinstance(g2, np.ndarray) and g2.dtype == np.float64 and g2.shape == (len(xs),)
    assert [bits(g) for g in g2.tolist()] == [bits(g) for g in g1]
    assert bits(value(arr)) == bits(value(*xs))


@FAST
@given(programs(defined=False))
def test_array_gives_the_bits_of_separate_numbers(example) -> None:
    if not all(math.isfinite(v) for v in example.point.values()):
        return
    f = adcli.parse(example.source)
    c = f.compiled(example.point)
    xs = [float(example.point[n]) for n in c.names]
    for value, vg in engines(c).values():
        check_same_bits(value, vg, xs)


W1 = "3*x^2 + x*y + 5*y^2"


def test_w1_by_hand() -> None:
    c = adcli.parse(W1).compiled()
    value, grad = c.value_and_grad(np.array([1.5, 2.5]))
    assert value == 41.75 and grad.tolist() == [11.5, 26.5]  # 6x + y, x + 10y
    assert c.grad(np.array([1.5, 2.5])).tolist() == [11.5, 26.5]
    assert c.grad(1.5, 2.5) == (11.5, 26.5)
    assert c.value(np.array([1.5, 2.5])) == 41.75
    # integer and float32 arrays are read as float64
    assert c.value_and_grad(np.array([1, 2]))[1].tolist() == [8.0, 21.0]
    assert c.value(np.array([1.5, 2.5], dtype=np.float32)) == 41.75


def test_one_input_and_none() -> None:
    c = adcli.parse("sin(x)").compiled()
    value, grad = c.value_and_grad(np.array([0.5]))
    assert value == math.sin(0.5) and grad.tolist() == [math.cos(0.5)]
    assert c.value_and_grad(0.5) == (math.sin(0.5), (math.cos(0.5),))
    assert c.value(np.array([0.5])) == math.sin(0.5)
    k = adcli.parse("3").compiled()
    assert k.value_and_grad() == (3.0, ())
    value, grad = k.value_and_grad(np.array([]))
    assert value == 3.0 and grad.shape == (0,)


def w2_text(n: int) -> str:
    terms = [f"(x{i} - {i / n!r})^2*sin(x{i})" for i in range(n)]
    terms += [f"x{i}*x{i + 1}" for i in range(n - 1)]
    return " + ".join(terms)


def test_levelled_plan_takes_the_array_directly() -> None:
    n = 1000
    c = adcli.parse(w2_text(n), max_bytes=None).compiled()
    assert c.levelled() is not None
    x = np.random.default_rng(1).uniform(-1, 1, n)
    check_same_bits(c.value, c.value_and_grad, x.tolist())
    value, grad = c.value_and_grad(x)
    v2, g2 = c.value_and_grad_vector(x)
    assert bits(value) == bits(v2) and np.array_equal(grad, g2)
    # against numpy's formula for the same sum (an independent reference)
    d = x - np.arange(n) / n
    want = 2 * d * np.sin(x) + d * d * np.cos(x)
    want[:-1] += x[1:]
    want[1:] += x[:-1]
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)
    assert math.isclose(value, float(np.sum(d * d * np.sin(x)) + x[:-1] @ x[1:]),
                        rel_tol=1e-12)
    # a fresh array every call: the caller may keep or change it
    grad[:] = 0.0
    assert np.array_equal(c.value_and_grad(x)[1], g2)
    with pytest.raises(adcli.AdcliError, match=r"expected 1000 inputs \(x0, x1, x2, \.\.\., "
                       r"x999\) as numbers or as one 1-D array; got an array of 999"):
        c.value_and_grad(x[:-1])
    # big finite inputs are accepted, and the check itself warns of nothing
    huge = np.full(n, 1e300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        input_array(huge, c.names)
    assert bits(c.value(huge)) == bits(c.value(*huge.tolist()))
    bad = x.copy()
    bad[7] = np.inf
    with pytest.raises(adcli.AdcliError, match=r"input 7 \(x7\) is inf"):
        c.value_and_grad(bad)
    with pytest.raises(adcli.AdcliError, match=r"input 7 \(x7\) is inf"):
        c.value(bad)


BAD = [
    (np.array([1.0]), r"expected 2 inputs \(x, y\) as numbers or as one 1-D array; "
                      r"got an array of 1$"),
    (np.array([1.0, 2.0, 3.0]), r"got an array of 3$"),
    (np.ones((2, 2)), r"got an array of shape \(2, 2\)$"),
    (np.ones((1, 2)), r"got an array of shape \(1, 2\)$"),
    (np.array(1.5), r"got an array of shape \(\)$"),
    (np.array([1.0, np.nan]), r"input 1 \(y\) is nan: the inputs must be finite"),
    (np.array([-np.inf, 1.0]), r"input 0 \(x\) is -inf: the inputs must be finite"),
    (np.array([1 + 2j, 1.0]), r"the inputs must be real numbers; got an array of dtype "
                              r"complex128"),
    (np.array(["1", "2"]), r"must be real numbers; got an array of dtype <U1"),
    (np.array([1.0, 2.0], dtype=object), r"dtype object"),
    ([1.5, 2.5], r"got one list$"),
    (1.5, r"got one float$"),
]


@pytest.mark.parametrize("engine", ["public", "interpreter", "compiled"])
@pytest.mark.parametrize("arg, message", BAD)
def test_bad_arrays_are_refused_clearly(engine: str, arg, message: str) -> None:
    c = adcli.parse(W1).compiled()
    value, vg = engines(c)[engine]
    for fn in (value, vg, c.grad):
        with pytest.raises(adcli.AdcliError, match=message):
            fn(arg)


def test_the_positional_call_is_unchanged() -> None:
    c = adcli.parse(W1).compiled()
    with pytest.raises(TypeError):
        c.value_and_grad(1.0, 2.0, 3.0)
    # a value Python cannot do in IEEE fashion still falls back to the interpreter
    r = adcli.parse("log(x) * y").compiled()
    value, grad = r.value_and_grad(np.array([0.0, 2.0]))
    assert value == -math.inf and grad[0] == math.inf and math.isinf(grad[1])


@pytest.mark.parametrize("source, point", [
    (W1, {"x": 1.5, "y": 2.5}), ("1/x", {"x": 0.0}), ("x", {"x": -0.0}), ("3", {}),
    ("log(x)*y", {"x": 0.0, "y": 2.0}), ("x*y - y", {"x": 2.0, "y": 3.0}),
])
def test_grad_entry_is_inline_and_gives_the_compiled_bits(source: str, point: dict) -> None:
    f = adcli.parse(source)
    first = [f.grad(point) for _ in range(3)]
    c = f.compiled(point)
    assert c.entry_source.startswith("def entry(point, wrt=None):")
    assert f.grad.__code__.co_filename == "<adcli generated entry>"  # f.grad is the entry
    v, g = c.value_and_grad(*[point[n] for n in c.names])
    for got in first + [f.grad(point)]:
        assert bits(got.value) == bits(v) and type(got.value) is float
        assert list(got.gradient) == c.names
        assert [bits(x) for x in got.gradient.values()] == [bits(x) for x in g]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_names_never_reach_the_entry_source(name: str) -> None:
    f = adcli.parse(f"{name} * 2 + sin({name})^2 + {name}/3")
    point = {name: 0.5}
    for _ in range(3):
        f.grad(point)
    source = f.compiled(point).entry_source
    assert source
    fixed = {"def", "entry", "point", "wrt", "_miss", "try", "except", "if", "return", "None",
             "is", "not", "or", "LookupError", "TypeError", "_len", "_float", "_new", "_result",
             "_fn", "_FALLBACK", "__class__", "v", "g", *FLOAT_NAMES}
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    assert {w for w in words if w not in fixed and not re.fullmatch(r"[vg]\d+|_k\d+|e\d*", w)
            } == set()
    if name not in fixed and not re.fullmatch(r"[vg]\d+", name):
        assert name not in words


@pytest.mark.parametrize("engine", ["public", "interpreter", "compiled"])
def test_too_few_numbers_are_refused(engine: str) -> None:
    c = adcli.parse("x*y + z").compiled()
    value, vg = engines(c)[engine]
    for fn in (value, vg):
        with pytest.raises(adcli.AdcliError, match=r"expected 3 inputs \(x, y, z\) as numbers "
                           r"or as one 1-D array; got 2 numbers"):
            fn(1.0, 2.0)
        assert bits(fn(np.array([1.0, 2.0, 3.0])) if fn is value
                    else fn(np.array([1.0, 2.0, 3.0]))[0]) == bits(5.0)


def test_array_kinds() -> None:
    c = adcli.parse(W1).compiled()
    want = c.value_and_grad(1.0, 0.0)
    for x in (np.array([True, False]), np.array([1, 0], dtype=np.uint8),
              np.ma.masked_array([1.0, 0.0]), np.array([1.0, 0.0], dtype=np.float16),
              np.array([1.0, 5.0, 0.0, 7.0])[::2]):  # a strided view
        value, grad = c.value_and_grad(x)
        assert value == want[0] and grad.tolist() == list(want[1]), x


def test_the_generated_grad_hands_every_other_call_to_the_general_path() -> None:
    f = adcli.parse(W1 + " + 0*pi")
    point = {"x": 1.5, "y": 2.5}
    for _ in range(3):
        f.grad(point)
    assert "grad" in f.__dict__
    want = adcli.parse(f.source).grad(point)
    assert f.grad(point) == want
    assert f.grad(point, wrt=["y"]).gradient == {"y": want.gradient["y"]}
    assert f.grad({"x": 1, "y": 2.5}) == adcli.parse(f.source).grad({"x": 1.0, "y": 2.5})
    assert f.grad({"x": np.float64(1.5), "y": 2.5}) == want
    cols = f.grad({"x": np.array([1.5, 0.5]), "y": 2.5})
    assert cols.value.tolist()[0] == want.value
    with pytest.raises(adcli.AdcliError, match="not a variable"):
        f.grad(point, wrt=["z"])
    with pytest.raises(adcli.AdcliError):
        f.grad({"x": 1.5, "z": 2.5})
    # another tape (pi bound) takes over f.grad, and the first one's points still work
    with_pi = f.grad({"x": 1.5, "y": 2.5, "pi": 2.0})
    assert with_pi.gradient["pi"] == 0.0 and with_pi.value == want.value
    for _ in range(3):
        assert f.grad(point) == want


def test_a_function_with_a_generated_grad_is_freed_without_the_cyclic_collector() -> None:
    import gc
    import weakref

    f = adcli.parse(W1)
    for _ in range(3):
        f.grad({"x": 1.5, "y": 2.5})
    assert "grad" in f.__dict__
    ref = weakref.ref(f)
    gc.disable()
    try:
        del f
        assert ref() is None
    finally:
        gc.enable()
