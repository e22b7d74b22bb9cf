"""Families of expressions with n inputs, for the scaling view of ``adcli compare-modes``
(forward versus reverse cost as the number of inputs grows)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AdcliError


def _sumsq(n: int) -> tuple[str, dict[str, float]]:
    return (" + ".join(f"x{i}^2" for i in range(1, n + 1)),
            {f"x{i}": 0.5 + i / (2 * n) for i in range(1, n + 1)})


def _rosenbrock(n: int) -> tuple[str, dict[str, float]]:
    point = {f"x{i}": (-1.2 if i % 2 else 1.0) for i in range(1, n + 1)}
    if n == 1:
        return "(1 - x1)^2", point
    terms = [f"100*(x{i + 1} - x{i}^2)^2 + (1 - x{i})^2" for i in range(1, n)]
    return " + ".join(terms), point


def _neuron(n: int) -> tuple[str, dict[str, float]]:
    # A single tanh unit on fixed inputs c_i: the gradient with respect to its n weights.
    cs = [round(((i * 37) % 19 - 9) / 9, 3) for i in range(1, n + 1)]
    body = " + ".join(f"w{i}*{c}" if c >= 0 else f"w{i}*({c})" for i, c in enumerate(cs, 1))
    return f"tanh({body} + 0.5)", {f"w{i}": 0.01 * ((i % 7) - 3) for i in range(1, n + 1)}


FAMILIES: dict[str, tuple[str, Callable[[int], tuple[str, dict[str, float]]]]] = {
    "rosenbrock": ("sum of 100*(x[i+1] - x[i]^2)^2 + (1 - x[i])^2", _rosenbrock),
    "sumsq": ("x1^2 + x2^2 + ... + xn^2", _sumsq),
    "neuron": ("tanh(w1*c1 + ... + wn*cn + 0.5), n weights", _neuron),
}
DEFAULT_SIZES = (1, 10, 100, 1000)


def family_expression(family: str, n: int) -> tuple[str, dict[str, float]]:
    """Source text and a point for the member of ``family`` with ``n`` inputs."""
    if family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise AdcliError(f"unknown expression family '{family}' (known: {known})")
    return FAMILIES[family][1](n)
