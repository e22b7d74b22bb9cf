"""What every code generator shares: float literals, atoms, templates and the one ``exec``.

Generated code is built from two things only: the op table's templates (fixed text written in
:mod:`adcli.ops`) and slot or step numbers (``v12``, ``g12``, ``S3``). No user text ever
reaches it: variable names are passed by position, and constants are written with
``repr(float)`` (digits, ``.``, ``e``, ``-``) or as the fixed names ``inf``/``nan``. Tests try
to inject code through names and numbers.
"""

from __future__ import annotations

try:  # the C module, as in adcli.ops.kernels (operator.py around it costs start-up time)
    import _operator
except ImportError:  # pragma: no cover - another Python implementation
    import operator as _operator

from .kernels import INF

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

#: Exceptions on which generated float code hands over to the plain interpreter (Python raises
#: where IEEE arithmetic gives inf/nan).
FALLBACK = (ArithmeticError, ValueError)


def literal(value: float) -> str:
    """Source text for a float64 constant; only digits, '.', 'e', '-' or inf/nan."""
    v = float(value)
    if v != v:
        return "nan"
    if v == INF:
        return "inf"
    if v == -INF:
        return "(-inf)"
    return f"({v!r})"


def is_atom(text: str) -> bool:
    """Whether ``text`` can be used as an operand without parentheses."""
    return text.isidentifier() or (text.startswith("(") and text.endswith(")")
                                   and text.count("(") == 1) or text == "1.0"


def fill(template: str, args: Sequence[str], out: str) -> str:
    """An op template with its placeholders ({0}, {1}, {o}) replaced by operand text."""
    return template.format(*args, o=out)


def build(source: str, namespace: dict[str, Any], name: str) -> Callable:
    """Compile generated ``source`` and return its function ``name``."""
    code = compile(source, f"<adcli generated {name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source built from the op table and slot numbers only
    return namespace[name]


_PARAMS = ("a", "b")


def value_function(arity: int, template: str, names: dict[str, Any]) -> Callable:
    """``f(a[, b])``: an op's value template as a function over ``names``' kernels."""
    params = ", ".join(_PARAMS[:arity])
    return build(f"def f({params}):\n    return {fill(template, _PARAMS, 'o')}\n",
                 dict(names), "f")


def partial_function(arity: int, template: str, names: dict[str, Any]) -> Callable:
    """``f(a[, b], o)``: one partial template as a function (the float interpreter's form)."""
    params = ", ".join(_PARAMS[:arity])
    return build(f"def f({params}, o):\n    return {fill(template, _PARAMS, 'o')}\n",
                 dict(names), "f")


def op_functions(ops: Sequence[tuple[int, str, Sequence[str]]], names: dict[str, Any], *,
                 plain: bool = True) -> list[tuple[Callable, tuple[Callable, ...]]]:
    """For each (arity, value template, partial templates): :func:`value_function` and a
    :func:`partial_function` per partial, the same functions. A template that is one kernel
    call, one operator, an argument or a number becomes its kernel or a closure over it
    (``plain``), with no ``compile`` at all (a first sweep in a fresh process pays for every
    one); the rest are made by one ``compile`` for all."""
    made: dict[str, Callable] = {}
    lines: list[str] = []
    for i, (arity, value, partials) in enumerate(ops):
        params = ", ".join(_PARAMS[:arity])
        f = _plain_value(arity, value, names) if plain else None
        if f is not None:
            made[f"_v{i}"] = f
        else:
            lines += [f"def _v{i}({params}):", f"    return {fill(value, _PARAMS, 'o')}"]
        for j, t in enumerate(partials):
            f = _plain_partial(arity, t, names) if plain else None
            if f is not None:
                made[f"_p{i}_{j}"] = f
            else:
                lines += [f"def _p{i}_{j}({params}, o):", f"    return {fill(t, _PARAMS, 'o')}"]
    if lines:
        namespace = dict(names)
        code = compile("\n".join(lines) + "\n", "<adcli generated op functions>", "exec")
        exec(code, namespace)  # noqa: S102 - source built from the op table only
        made = {**namespace, **made}
    return [(made[f"_v{i}"], tuple(made[f"_p{i}_{j}"] for j in range(len(p))))
            for i, (_a, _v, p) in enumerate(ops)]


#: Value templates that are one Python operator, as the function that is that operator.
_OPERATORS = {"{0} + {1}": _operator.add, "{0} - {1}": _operator.sub,
              "{0} * {1}": _operator.mul, "{0} / {1}": _operator.truediv, "-{0}": _operator.neg}
#: A partial over (a, o) or (a, b, o) that calls kernel ``k`` on some of them, by (arity, the
#: positions passed, negated): the closure, as the generated function would compute it.
_CALLS: dict[tuple, Callable[[Callable], Callable]] = {
    (1, (0,), False): lambda k: lambda a, o: k(a),
    (1, (0,), True): lambda k: lambda a, o: -k(a),
    (1, (1,), False): lambda k: lambda a, o: k(o),
    (2, (0,), False): lambda k: lambda a, b, o: k(a),
    (2, (1,), False): lambda k: lambda a, b, o: k(b),
    (2, (0, 1), False): lambda k: lambda a, b, o: k(a, b),
    (2, (1, 0), False): lambda k: lambda a, b, o: k(b, a),
    (2, (0, 1, 2), False): lambda k: k,
}
#: A partial that is one of its arguments, by (arity, position).
_PICKS: dict[tuple[int, int], Callable] = {
    (1, 0): lambda a, o: a, (1, 1): lambda a, o: o,
    (2, 0): lambda a, b, o: a, (2, 1): lambda a, b, o: b, (2, 2): lambda a, b, o: o,
}


def _positions(arity: int, text: str) -> tuple[int, ...] | None:
    """``"{0}, {1}, {o}"`` as positions in a partial's arguments (a[, b], o), or None."""
    slots = {"{0}": 0, "{1}": 1, "{o}": arity} if arity == 2 else {"{0}": 0, "{o}": 1}
    found = tuple(slots.get(part.strip(), -1) for part in text.split(","))
    return None if -1 in found else found


def _plain_value(arity: int, template: str, names: dict[str, Any]) -> Callable | None:
    """The value template as a function without compiling one: an operator, or the kernel a
    default template ``name({0}, ...)`` calls; else None."""
    if template in _OPERATORS:
        return _OPERATORS[template]
    name, _, rest = template.partition("(")
    if name in names and rest == ", ".join(f"{{{i}}}" for i in range(arity)) + ")":
        return names[name]
    return None


def _plain_partial(arity: int, template: str, names: dict[str, Any]) -> Callable | None:
    """A partial template as a function without compiling one: a number, an argument, or one
    kernel called on arguments (negated or not); else None."""
    if "{" not in template and "(" not in template:
        try:
            c = float(template)
        except ValueError:
            return None
        return (lambda a, o: c) if arity == 1 else (lambda a, b, o: c)
    picks = _positions(arity, template)
    if picks is not None:
        return _PICKS.get((arity, picks[0])) if len(picks) == 1 else None
    negated = template.startswith("-")
    name, _, rest = template[negated:].partition("(")
    if name not in names or not rest.endswith(")") or "(" in rest:
        return None
    picks = _positions(arity, rest[:-1])
    make = _CALLS.get((arity, picks, negated)) if picks is not None else None
    return make(names[name]) if make is not None else None


def partials_function(arity: int, templates: Sequence[str], names: dict[str, Any]) -> Callable:
    """``f(args, o) -> tuple``: all partial templates at once (the form of ``Op.partials``)."""
    params = ", ".join(_PARAMS[:arity])
    body = ", ".join(fill(t, _PARAMS, "o") for t in templates)
    return build(f"def f(args, o):\n    {params}, = args\n    return ({body},)\n",
                 dict(names), "f")


#: Points with more inputs than this take the general path (the entry is one line per input).
ENTRY_MAX_INPUTS = 64


def point_entry(arity: int, grad: bool) -> Callable:
    key = (arity, grad)
    make = _ENTRIES.get(key)
    if make is None:
        make = _ENTRIES[key] = _point_entry(arity, grad)
    return make


_ENTRIES: dict[tuple[int, bool], Callable] = {}


def _point_entry(arity: int, grad: bool) -> Callable:
    """``make(keys, fn, result)``: makes ``entry(point)``, the fast path of ``f.grad(dict)``
    (``grad``) or ``f.eval(dict)``: when ``point`` has exactly the ``arity`` keys ``keys`` and
    every value is a Python float, ``fn(*values)`` with no lists, loops or ``dict(zip())``;
    else None (the caller takes the general path). The source depends on ``arity`` only: the
    keys are passed as values, never written into it."""
    ks = [f"k{i}" for i in range(arity)]
    xs = [f"x{i}" for i in range(arity)]
    lines = [f"def make({', '.join(['keys', 'fn', 'result'])}):"]
    if arity:
        lines.append(f"    {''.join(k + ', ' for k in ks)}= keys")
    # Whatever is odd about the point (not a mapping, a missing key), the general path
    # decides what happens, with its own messages.
    lines += ["    def entry(point):",
              "        try:",
              f"            if _len(point) != {arity}:",
              "                return None"]
    lines += [f"            {x} = point[{k}]" for x, k in zip(xs, ks)]
    lines += ["        except (LookupError, TypeError):",
              "            return None"]
    if arity:
        lines += ["        if " + " or ".join(f"{x}.__class__ is not _float" for x in xs) + ":",
                  "            return None"]
    call = f"fn({', '.join(xs)})"
    if grad:
        pairs = ", ".join(f"{k}: g[{i}]" for i, k in enumerate(ks))
        lines += [f"        v, g = {call}",
                  f"        return _new(result, (_float(v), {{{pairs}}}))"]
    else:
        lines += [f"        return result({call})"]
    lines += ["    return entry", ""]
    return build("\n".join(lines), {"_len": len, "_float": float, "_new": tuple.__new__},
                 "make")
