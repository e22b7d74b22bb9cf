"""An independent reference: adcli expressions as SymPy expressions (for the derivative tests).

Only the parse and the tape's structure come from adcli; every derivative is SymPy's own.
"""

from __future__ import annotations

import sympy as sp

import adcli

UNARY = {
    "neg": lambda a: -a,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
    "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp,
    "log": sp.log, "log2": lambda a: sp.log(a, 2), "log10": lambda a: sp.log(a, 10),
    "sqrt": sp.sqrt, "abs": sp.Abs, "sigmoid": lambda a: 1 / (1 + sp.exp(-a)),
    "relu": lambda a: sp.Max(a, 0), "softplus": lambda a: sp.log(1 + sp.exp(a)),
    "sign": sp.sign, "step": lambda a: sp.Heaviside(a, 0),
    "log1p": lambda a: sp.log(1 + a), "expm1": lambda a: sp.exp(a) - 1, "cbrt": sp.cbrt,
    "erf": sp.erf, "erfc": sp.erfc,
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a**b, "min": sp.Min, "max": sp.Max,
    "atan2": sp.atan2, "hypot": lambda a, b: sp.sqrt(a**2 + b**2),
}
#: every function name of the language (each is its op's name) -> SymPy; one map for all tests
FUNCTIONS = {name: fn for name, fn in {**UNARY, **BINARY}.items()
             if name not in ("neg", "add", "sub", "mul", "div")}


def to_sympy(text: str) -> tuple[sp.Expr, dict[str, sp.Symbol]]:
    """(SymPy expression, symbols by name) for adcli source ``text`` (lets are substituted)."""
    tape = adcli.parse(text).tape()
    symbols = {name: sp.Symbol(name, real=True) for name in tape.inputs}
    exprs: list = []
    for slot, op in enumerate(tape.ops):
        if op == "var":
            exprs.append(symbols[tape.labels[slot]])
        elif op == "const":
            v = tape.consts[slot]
            exprs.append(sp.Integer(int(v)) if float(v).is_integer() else sp.Float(v, 17))
        else:
            args = [exprs[a] for a in tape.args[slot]]
            fn = UNARY.get(op.name) or BINARY[op.name]
            exprs.append(fn(*args))
    return exprs[tape.output], symbols
