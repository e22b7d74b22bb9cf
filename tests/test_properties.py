"""Property tests on random programs over the whole language (see tests/strategies.py).

Three independent computations of the same derivative must agree: reverse mode, forward mode
(both from the op table's partials, but accumulated in opposite orders) and central finite
differences (which read no derivative rule at all).

CI settings: ``derandomize=True`` and no example database, so every run draws the same examples
and a failure reproduces exactly; ``deadline=None`` because the shared CI machine has noisy
timings. Example counts: 700 + 150 + 150 + 60 + 150 = 1,210 per run (about 74% of the first
700, ~515, have a variable far enough from every kink for the finite-difference check; the
rest still check forward = reverse), about 15 s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from strategies import programs

import adcli
from adcli.core import sweeps
from adcli.core.diagnose import derivative_warnings
from adcli.core.sweeps import forward_gradient
from adcli.core.unparse import to_source
from adcli.derive.numeric import EPS, numeric_directional, numeric_gradient, step
from adcli.derive.symbolic import tape_nodes
from adcli.modes.compare import compare_modes
from adcli.output.formats.json import dumps

CI = settings(derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.function_scoped_fixture])


def _setup(example):
    function = adcli.parse(example.source)
    tape = function.tape(example.point)
    point = {n: example.point[n] for n in tape.inputs}
    return function, tape, point


def _finite(v) -> bool:
    return bool(np.all(np.isfinite(v)))


def absolute_gradient(tape, values):
    """d output / d input with every local partial replaced by its absolute value: the sum over
    paths of |product of partials|. Rounding in either AD mode is bounded by a few eps times
    this (each path product is rounded, then the paths are summed in some order), so it is the
    scale for comparing forward with reverse when paths cancel (e.g. d(x*y - y*x)/dx = 0)."""
    adj = [0.0] * len(tape.ops)
    adj[tape.output] = 1.0
    with np.errstate(all="ignore"):
        for slot, op, args in reversed(tape.instructions()):
            ps = op.partials(tuple(values[a] for a in args), values[slot])
            for a, p in zip(args, ps):
                adj[a] += adj[slot] * abs(float(p))
    return {n: adj[s] for n, s in tape.inputs.items()}


def rounding_scale(tape, values, adjoint) -> float:
    """A first-order bound on the rounding error of evaluating the output: each instruction
    rounds its result v_i with relative error <= eps/2 (a few ulp for libm functions), which
    reaches the output multiplied by its adjoint, so |error| <~ eps * sum_i |adjoint_i * v_i|."""
    total = 0.0
    for slot, g in enumerate(adjoint):
        if g is not None:
            total += abs(float(g) * float(values[slot]))
    return total


def near_kink(tape, values, tangent, reach: float) -> bool:
    """Whether moving the point by up to ``reach`` along the tangent's direction could cross a
    kink of abs/relu/sign/step (argument 0) or min/max (a tie): the argument's distance to the
    kink against how fast it moves (8x margin for curvature), plus a relative band of 1e-9 for
    arguments that are "constant" only up to rounding (e.g. (3*w)/w - 3)."""
    for _slot, op, args in tape.instructions():
        if op.kink is None:
            continue
        a = float(values[args[0]])
        ta = float(tangent[args[0]])
        if op.arity == 2:
            b = float(values[args[1]])
            d, rate, size = abs(a - b), abs(ta - float(tangent[args[1]])), abs(a) + abs(b)
        else:
            d, rate, size = abs(a), abs(ta), abs(a)
        if d <= 8 * reach * rate + 1e-9 * (1 + size):
            return True
    return False


# The finite-difference tolerance, justified: for a central difference D(h) with error
# c h^2 + O(h^4), D(2h) - D(h) = 3 c h^2, so |D(h) - D(2h)| is three times the truncation error
# of D(h); we allow twice that (6x), which absorbs a higher-order term of the same size. On top,
# the rounding error of the difference quotient is at most 2 * (error in f) / (2h), with the error
# in f bounded as in rounding_scale (times 4 for libm's few-ulp functions). A floor of 1e-11
# relative covers the last bits of the AD value itself.
def fd_tolerance(d1: float, d2: float, ad: float, rounding: float, h: float) -> float:
    return 2 * abs(d1 - d2) + 4 * EPS * rounding / h + 1e-11 * (1 + abs(ad))


@settings(CI, max_examples=700)
@given(programs())
def test_reverse_equals_forward_equals_finite_differences(example):
    function, tape, point = _setup(example)
    value, reverse, values, adjoint = sweeps.value_and_grad(tape, point)
    assume(_finite(value) and all(_finite(g) for g in reverse.values()))
    _, forward = forward_gradient(tape, point)
    scale = absolute_gradient(tape, values)
    # 1. Reverse = forward to 1e-12, relative to the size of what was summed (the magnitude of
    #    the gradient, or the absolute path sum where paths cancel).
    for name in tape.inputs:
        r, f = float(reverse[name]), float(forward[name])
        assert abs(r - f) <= 1e-12 * max(abs(r), abs(f), scale[name]) + 1e-300, (name, r, f)
    # 2. Both = central differences, except within reach of a kink (there the AD convention
    #    and the difference quotient legitimately differ).
    d1 = numeric_gradient(tape, point)
    d2 = numeric_gradient(tape, point, scale=2.0)
    rounding = rounding_scale(tape, values, adjoint)
    for name in tape.inputs:
        h = step(point[name])
        tangent = sweeps.forward(tape, values, {name: 1.0})
        if near_kink(tape, values, tangent, 2 * h):
            event("finite differences skipped: kink within reach")
            continue
        event("finite differences checked")
        tol = fd_tolerance(d1[name], d2[name], float(reverse[name]), rounding, h)
        assert abs(d1[name] - float(reverse[name])) <= tol, (name, d1[name], reverse[name], tol)


@settings(CI, max_examples=150)
@given(programs(), programs(max_steps=1))
def test_directional_derivative_one_forward_pass(example, other):
    """jvp along a direction = gradient . direction (forward vs reverse), and = a single
    central difference along the direction."""
    function, tape, point = _setup(example)
    value, gradient = function.grad(point)
    assume(_finite(value) and all(_finite(g) for g in gradient.values()))
    # a direction with a component per variable, reusing the other example's numbers
    coords = list(other.point.values()) or [1.0]
    direction = {n: coords[i % len(coords)] + 0.5 for i, n in enumerate(tape.inputs)}
    v, dv = function.jvp(point, direction)
    assert float(v) == pytest.approx(float(value), rel=1e-15, abs=0)
    values = sweeps.evaluate(tape, point)
    scale = absolute_gradient(tape, values)
    dot = sum(float(gradient[n]) * direction[n] for n in tape.inputs)
    size = sum(scale[n] * abs(direction[n]) for n in tape.inputs)
    assert abs(float(dv) - dot) <= 1e-12 * max(abs(dot), size) + 1e-300
    tangent = sweeps.forward(tape, values, direction)
    xmax = max([abs(point[n]) for n in tape.inputs], default=0.0)
    vmax = max([abs(direction[n]) for n in tape.inputs], default=1.0)
    t = (EPS ** (1 / 3)) * max(1.0, xmax) / vmax
    if not tape.inputs or near_kink(tape, values, tangent, 2 * t):
        return
    d1 = numeric_directional(tape, point, direction)
    d2 = numeric_directional(tape, point, direction, scale=2.0)
    adjoint = sweeps.reverse(tape, values)
    tol = fd_tolerance(d1, d2, dot, rounding_scale(tape, values, adjoint), t)
    assert abs(d1 - float(dv)) <= tol


@settings(CI, max_examples=150)
@given(programs(defined=False))
def test_nothing_raises_anywhere(example):
    """Any program at any point (zeros, inf, nan, 1e308; ops outside their domains): values,
    both modes, finite differences and the diagnostics return numbers, never raise."""
    function, tape, point = _setup(example)
    value, reverse, values, adjoint = sweeps.value_and_grad(tape, point)
    _, forward = forward_gradient(tape, point)
    numeric_gradient(tape, point)
    messages = derivative_warnings(tape, values, adjoint, reverse)
    assert all(isinstance(m, str) and m for m in messages)
    if not _finite(value) or not all(_finite(g) for g in reverse.values()):
        assert messages, "a non-finite result must be explained"
    # The modes agree wherever both are finite.
    for name in tape.inputs:
        r, f = float(reverse[name]), float(forward[name])
        if math.isfinite(r) and math.isfinite(f):
            scale = absolute_gradient(tape, values)[name]
            assert abs(r - f) <= 1e-12 * max(abs(r), abs(f), scale) + 1e-300


@settings(CI, max_examples=60)
@given(example=programs(defined=False, max_steps=6))
def test_cli_never_tracebacks(run, example):
    """The commands exit 0 with one JSON document on any program at any point."""
    import json

    point = ",".join(f"{k}={v!r}" for k, v in example.point.items())
    for command in (["grad", "--json"], ["compare-modes", "--json", "--repeat", "1"]):
        # "--": a program may start with "-(", which click would take for an option
        result = run(*command, "--at", point, "--", example.source)
        assert result.exit_code == 0, result.stderr
        json.loads(result.stdout)


def test_compare_report_is_valid_json_on_nan():
    function = adcli.parse("log(x - 3) * y")
    result = compare_modes(function, {"x": 2.0, "y": 1.0}, repeat=1)
    text = dumps(result)
    assert '"nan"' in text and "NaN" not in text


@settings(CI, max_examples=150)
@given(programs(defined=False))
def test_print_parse_round_trip(example):
    """The unparser (adcli.core.unparse, used by `adcli diff`) on the lowered program reads back as
    the same function: the same value bit for bit (the same operations on the same constants;
    constants print as their shortest round-tripping text) and the same gradient."""
    function, tape, point = _setup(example)
    text = to_source(tape_nodes(tape)[tape.output])
    again = adcli.parse(text)
    tape2 = again.tape(point)
    assert set(tape2.inputs) <= set(tape.inputs)
    value, grad, values, _ = sweeps.value_and_grad(tape, point)
    value2, grad2, _, _ = sweeps.value_and_grad(tape2, point)
    assert np.array_equal(value, value2, equal_nan=True), text
    scale = absolute_gradient(tape, values)
    for name in tape.inputs:
        a, b = float(grad[name]), float(grad2.get(name, 0.0))
        if math.isfinite(a) and math.isfinite(b):
            assert abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale[name]) + 1e-300, text
