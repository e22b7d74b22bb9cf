"""A fixed table of expressions: reverse mode, forward mode, the jvp API and finite differences
against SymPy's derivatives, evaluated with 30 significant digits.

SymPy here parses the text itself (its own parser on these fixed, trusted strings, with ^ read
as power), so neither adcli's parser nor its tape nor its op table is part of the reference.
Points avoid kinks (tested separately against the documented conventions in test_forward.py).
"""

from __future__ import annotations

import math
import re

import pytest
import sympy as sp
import sympy_ref
from sympy.parsing.sympy_parser import (
    convert_xor,
    parse_expr,
    standard_transformations,
)

import adcli
from adcli.core.sweeps import forward_gradient
from adcli.derive.numeric import numeric_gradient

FUNCTIONS = {**sympy_ref.FUNCTIONS, "pi": sp.pi, "e": sp.E}
TRANSFORMS = standard_transformations + (convert_xor,)

TABLE: list[tuple[str, dict[str, float]]] = [
    # the worked examples
    ("3*x^2 + x*y + 5*y^2", {"x": 2, "y": 3}),
    ("(w0 + w1*x - y)^2", {"x": 3, "y": 7, "w0": -2, "w1": 2}),
    ("(x + sigmoid(y))/(sigmoid(x) + (x+y)^2)", {"x": 2, "y": -4}),
    ("tanh(x1*w1 + x2*w2 + b)", {"x1": 2, "x2": 0.5, "w1": -3, "w2": 1, "b": 6.88}),
    ("a = x^2; b = x*y; c = y^2; d = 3*a; f = 5*c; d + b + f", {"x": 2, "y": 3}),
    # arithmetic and precedence traps
    ("x - y - z", {"x": 1.5, "y": -2, "z": 0.25}),
    ("x / y / z", {"x": 1.5, "y": -2, "z": 0.25}),
    ("-x^2 + 2^-x", {"x": 1.3}),
    ("x^y^2", {"x": 1.7, "y": 0.8}),
    ("x^-y^2", {"x": 1.7, "y": 0.8}),
    ("x ** 3 / (1 + x ** 2)", {"x": -0.7}),
    ("pow(x, y) * pow(y, x)", {"x": 1.2, "y": 2.5}),
    ("(x + y)*(x - y)/(x*y)", {"x": 2.5, "y": -1.5}),
    ("1/x + 1/x^2 + 1/x^3", {"x": 0.9}),
    ("x^0.5 + x^1.5 + x^-0.5", {"x": 2.2}),
    ("(-x)^2 + (-x)^3 + (-2)^3*x", {"x": 1.3}),
    ("+x - -y", {"x": 0.3, "y": 0.4}),
    ("x^3", {"x": -1.4}),
    ("x*x*x*x*x", {"x": -1.1}),
    # every function
    ("sin(x)*cos(y)", {"x": 0.7, "y": -1.2}),
    ("tan(x*y)", {"x": 0.5, "y": 0.9}),
    ("asin(x) + acos(y)", {"x": 0.3, "y": -0.6}),
    ("atan(x/y)", {"x": 2, "y": -3}),
    ("sinh(x) - cosh(y) + tanh(x*y)", {"x": 0.4, "y": 1.1}),
    ("exp(-x^2/2)", {"x": 0.8}),
    ("log(x^2 + y^2)", {"x": 1.5, "y": -0.5}),
    ("log2(x) * log10(y)", {"x": 3, "y": 7}),
    ("sqrt(x^2 + y^2 + 1)", {"x": 1, "y": 2}),
    ("abs(x - y) * abs(y)", {"x": 0.5, "y": -1.5}),
    ("sigmoid(x) * (1 - sigmoid(x))", {"x": 0.3}),
    ("relu(x) + relu(-y)", {"x": 0.8, "y": 0.6}),
    ("softplus(x) - softplus(-x)", {"x": 1.7}),
    ("min(x, y) + max(x*y, 1)", {"x": 1.2, "y": 3}),
    ("max(sin(x), cos(x))", {"x": 0.3}),
    ("min(x^2, y) * max(x, -y)", {"x": -1.5, "y": 0.7}),
    ("sign(x) * x^2 + step(y) * y", {"x": -1.3, "y": 2}),
    ("log1p(x*y) + expm1(x - y)", {"x": 0.3, "y": -0.7}),
    ("log1p(x^2) / expm1(y)", {"x": 0.05, "y": 0.3}),
    ("cbrt(x*y) + cbrt(x)^2", {"x": 2.5, "y": 0.4}),
    ("erfc(x) * exp(x^2)", {"x": 1.7}),
    ("erf(x/sqrt(2))/2 + erf(x*y)", {"x": 0.9, "y": -0.6}),
    ("erf(x) + erfc(x)", {"x": -2.3}),
    ("erfc(x*y - 1) + x", {"x": 0.2, "y": -1.1}),
    ("atan2(y, x)", {"x": -0.8, "y": 0.3}),
    ("atan2(x*y, x + y) * hypot(x, y)", {"x": 1.3, "y": 2.2}),
    ("hypot(x, 3*y) - sqrt(x^2 + 9*y^2) + hypot(y, 1)", {"x": -0.4, "y": 0.25}),
    # constants
    ("sin(pi*x) + e^x", {"x": 0.3}),
    ("exp(x*log(e)) - pi*x", {"x": 1.1}),
    ("x*pi^2/e", {"x": 2}),
    # compositions and sharing
    ("sin(x)*sin(x) + cos(x)*cos(x)", {"x": 0.9}),
    ("exp(sin(cos(x)))", {"x": 2.1}),
    ("log(1 + exp(x*y)) / (1 + x^2)", {"x": 0.7, "y": -2}),
    ("sqrt(sigmoid(x) + softplus(y))", {"x": -1, "y": 0.5}),
    ("tanh(tanh(tanh(x)))", {"x": 0.6}),
    ("x^x", {"x": 1.8}),
    ("(1 + 1/x)^x", {"x": 3.5}),
    ("atan(y/x) + log(sqrt(x^2 + y^2))", {"x": 0.8, "y": 1.9}),
    ("asin(sin(x)/2) * acos(cos(y)/3)", {"x": 1.0, "y": 2.0}),
    ("log(cosh(x - y))", {"x": 2.0, "y": -0.5}),
    ("max(min(x, y), z) - min(max(x, y), z)", {"x": 1.0, "y": 2.0, "z": 1.5}),
    # let-programs
    ("u = x*y; v = sin(u); v*u + v", {"x": 0.6, "y": 1.3}),
    ("h = w*x + b\na = sigmoid(h)\n(a - y)^2", {"w": 0.5, "x": 2, "b": -0.3, "y": 1}),
    ("s = x + y; p = s*s; q = p*p; q*q", {"x": 0.3, "y": 0.4}),
    ("r = sqrt(x^2 + y^2); t = atan(y/x); r*cos(t) + r*sin(t)", {"x": 1.2, "y": 0.5}),
    ("k = exp(-x); k/(1 + k)  # sigmoid by hand", {"x": 0.25}),
    ("z1 = log(x); z2 = z1^2; z3 = z2*z1; z3 - z2 + z1", {"x": 2.7}),
    ("n1 = relu(x*w1); n2 = tanh(x*w2); n1*v1 + n2*v2",
     {"x": 1.5, "w1": 0.4, "w2": -0.7, "v1": 2, "v2": -1}),
]


def sympy_program(text: str, names) -> tuple:
    """SymPy expression of an adcli program (lets substituted) and the symbols by name."""
    symbols = {n: sp.Symbol(n, real=True) for n in names}
    env = {**FUNCTIONS, **symbols}
    lines = [re.sub(r"#.*", "", s).strip() for s in re.split(r"[;\n]", text)]
    lines = [s for s in lines if s]
    for line in lines[:-1]:
        name, rhs = line.split("=", 1)
        env[name.strip()] = parse_expr(rhs, local_dict=env, transformations=TRANSFORMS)
    return parse_expr(lines[-1], local_dict=env, transformations=TRANSFORMS), symbols


def test_table_is_big_enough_and_covers_every_function():
    assert len(TABLE) >= 50
    text = " ".join(t for t, _ in TABLE)
    for name in adcli.ops.FUNCTIONS:
        assert re.search(rf"\b{name}\(", text), name


@pytest.mark.parametrize("text, point", TABLE, ids=[t for t, _ in TABLE])
def test_gradients_match_sympy(text, point):
    point = {k: float(v) for k, v in point.items()}
    expr, symbols = sympy_program(text, point)
    subs = {symbols[n]: sp.Float(v, 30) for n, v in point.items()}
    function = adcli.parse(text)
    tape = function.tape(point)
    value, reverse = function.grad(point)
    _, forward = forward_gradient(tape, point)
    numeric = numeric_gradient(tape, point)
    ref_value = float(expr.evalf(30, subs=subs))
    assert float(value) == pytest.approx(ref_value, rel=1e-13, abs=1e-14)
    for name in tape.inputs:
        ref = float(sp.diff(expr, symbols[name]).evalf(30, subs=subs))
        assert math.isfinite(ref)
        # Both AD modes round each partial and product once: 1e-12 relative (with an absolute
        # floor where the derivative is 0) is ample for these few dozen operations.
        assert float(reverse[name]) == pytest.approx(ref, rel=1e-12, abs=1e-13), name
        assert float(forward[name]) == pytest.approx(ref, rel=1e-12, abs=1e-13), name
        # Central differences: truncation ~ h^2 |f'''| with h ~ 6e-6, rounding ~ eps |f| / h:
        # about 1e-10 relative for these smooth, well-scaled functions; 1e-7 leaves margin.
        assert numeric[name] == pytest.approx(ref, rel=1e-7, abs=1e-7), name
    # the directional derivative API along (1, 2, 3, ...)
    direction = {n: float(i + 1) for i, n in enumerate(tape.inputs)}
    ref_dir = sum(float(sp.diff(expr, symbols[n]).evalf(30, subs=subs)) * d
                  for n, d in direction.items())
    _, dv = function.jvp(point, direction)
    assert float(dv) == pytest.approx(ref_dir, rel=1e-11, abs=1e-12)
