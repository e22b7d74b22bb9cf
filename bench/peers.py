"""Helpers for the peer side of the benchmarks: a small expression parser (the route a user of
micrograd or JAX would script by hand to go from a string to a gradient), and micrograd's
missing ``sin``.

The parser is a plain shunting-yard over a regular-expression tokenizer for the subset of the
language the benchmarks use (numbers, names, + - * / ^, unary minus, parentheses, one-argument
calls). It produces a postfix program that any backend evaluates with its own operations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_]\w*)"
                    r"|(\*\*|[-+*/^(),]))")
_PREC = {"+": (1, "left"), "-": (1, "left"), "*": (2, "left"), "/": (2, "left"),
         "neg": (3, "right"), "^": (4, "right")}


def to_postfix(text: str) -> list[tuple[str, Any]]:
    """``text`` -> [("num", 2.0) | ("var", "x") | ("op", "+") | ("call", "sin")] in postfix."""
    out: list[tuple[str, Any]] = []
    stack: list[str] = []
    pos, expect_operand = 0, True
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"bad character at {pos}")
        pos = m.end()
        number, name, sym = m.groups()
        if number is not None:
            out.append(("num", float(number)))
            expect_operand = False
        elif name is not None:
            if pos < len(text) and text[pos] == "(":
                stack.append("call:" + name)
            else:
                out.append(("var", name))
                expect_operand = False
        elif sym == "(":
            stack.append("(")
            expect_operand = True
        elif sym == ")":
            while stack[-1] != "(":
                out.append(_emit(stack.pop()))
            stack.pop()
            if stack and stack[-1].startswith("call:"):
                out.append(("call", stack.pop()[5:]))
            expect_operand = False
        else:
            op = "^" if sym == "**" else sym
            if expect_operand and op == "-":
                op = "neg"
            elif expect_operand and op == "+":
                continue
            prec, assoc = _PREC[op]
            while stack and stack[-1] in _PREC and op != "neg" and (
                    _PREC[stack[-1]][0] > prec
                    or (_PREC[stack[-1]][0] == prec and assoc == "left")):
                out.append(_emit(stack.pop()))
            stack.append(op)
            expect_operand = True
    while stack:
        out.append(_emit(stack.pop()))
    return out


def _emit(item: str) -> tuple[str, Any]:
    return ("call", item[5:]) if item.startswith("call:") else ("op", item)


def run_postfix(program: list[tuple[str, Any]], env: Mapping[str, Any],
                binary: Mapping[str, Callable], calls: Mapping[str, Callable],
                neg: Callable, const: Callable = lambda v: v) -> Any:
    """Evaluate a postfix program with a backend's operations (iterative, no recursion)."""
    stack: list[Any] = []
    for kind, arg in program:
        if kind == "num":
            stack.append(const(arg))
        elif kind == "var":
            stack.append(env[arg])
        elif kind == "call":
            stack.append(calls[arg](stack.pop()))
        elif arg == "neg":
            stack.append(neg(stack.pop()))
        else:
            b = stack.pop()
            stack.append(binary[arg](stack.pop(), b))
    return stack.pop()


def micrograd_sin(v):
    """sin for micrograd.engine.Value, written the way its own ops are."""
    from micrograd.engine import Value

    out = Value(math.sin(v.data), (v,), "sin")

    def _backward() -> None:
        v.grad += math.cos(v.data) * out.grad

    out._backward = _backward
    return out


def micrograd_gradient(text: str, point: Mapping[str, float]) -> tuple[float, dict]:
    """String -> value and gradient with the small parser and micrograd."""
    from micrograd.engine import Value

    env = {name: Value(v) for name, v in point.items()}
    out = run_postfix(
        to_postfix(text), env,
        {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
         "/": lambda a, b: a / b, "^": lambda a, b: a ** (b.data if hasattr(b, "data") else b)},
        {"sin": micrograd_sin}, lambda a: -a, const=lambda v: v)
    out.backward()
    return out.data, {name: v.grad for name, v in env.items()}
