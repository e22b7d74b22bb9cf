"""The levelled plan's long sums (:class:`adcli.fast.levelled.Levelled`) are numpy's pairwise
``add.reduce``: checked against the exactly rounded sum (``math.fsum``) with a pairwise error
bound, and against a left-to-right sum where that one is exact too."""

from __future__ import annotations

import math

import numpy as np
import pytest

import adcli
from adcli.fast.levelled import Levelled

EPS = np.finfo(float).eps


def _plan_and_point(terms: list[str], n_inputs: int, seed: int):
    f = adcli.parse(" + ".join(terms), max_bytes=None)
    tape = f.tape()
    plan = Levelled(tape)
    rng = np.random.default_rng(seed)
    point = {name: float(rng.uniform(-3, 3)) for name in tape.inputs}
    assert len(point) == n_inputs
    x = np.array([point[name] for name in tape.inputs])
    return f, plan, point, x


@pytest.mark.parametrize("n, seed", [(3000, 1), (20_000, 2)])
def test_long_sum_is_within_the_pairwise_bound_of_the_exact_sum(n: int, seed: int) -> None:
    # terms of both signs and very different sizes: a left-to-right sum would lose digits
    terms = [f"x{i}*exp(x{i})*{(-1) ** i * (i % 97 + 1)}" for i in range(n)]
    f, plan, point, x = _plan_and_point(terms, n, seed)
    value, grad = plan.value_and_grad(x)
    parts = [xi * math.exp(xi) * (-1) ** i * (i % 97 + 1) for i, xi in enumerate(x)]
    exact = math.fsum(parts)
    bound = (math.ceil(math.log2(n)) + 2) * EPS * math.fsum(abs(p) for p in parts)
    assert abs(value - exact) <= bound
    assert plan.value(x) == value  # one code for the value, with or without the gradient
    # the gradient does not go through the sum: each term's derivative, by hand
    want = [(1 + xi) * math.exp(xi) * (-1) ** i * (i % 97 + 1) for i, xi in enumerate(x)]
    np.testing.assert_allclose(grad, want, rtol=1e-13, atol=1e-12)  # (1 + x) cancels near -1
    # and the documented call takes the same plan
    cvalue, cgrad = f.compiled().value_and_grad(x)
    assert cvalue == value and np.array_equal(cgrad, grad)


def test_long_sum_of_exact_terms_is_the_exact_sum() -> None:
    # integers below 2^53: every order of summation gives the same, exact, value
    n = 5000
    terms = [f"x{i}*{i + 1}" for i in range(n)]
    _, plan, _, _ = _plan_and_point(terms, n, 3)
    x = np.arange(n, dtype=float)
    value, grad = plan.value_and_grad(x)
    assert value == sum(i * (i + 1) for i in range(n))
    assert np.array_equal(grad, np.arange(1, n + 1, dtype=float))


def test_long_sum_with_inf_and_nan_terms() -> None:
    n = 4000
    terms = [f"exp(x{i})" for i in range(n)]
    _, plan, _, _ = _plan_and_point(terms, n, 4)
    x = np.zeros(n)
    x[17] = 1000.0  # exp overflows: the sum is inf, as in any order
    assert plan.value(x) == math.inf
    terms = [f"x{i}*{(-1) ** i}" for i in range(n)]
    _, plan, _, _ = _plan_and_point(terms, n, 5)
    x = np.ones(n)
    x[0], x[1] = math.inf, math.inf  # inf - inf: nan in any order
    assert math.isnan(plan.value(x))
