"""Scalar engines: straight-line generated Python, and a tight float interpreter.

The plain interpreter (:mod:`adcli.core.sweeps`) pays for a loop, a list and a numpy scalar per
node. Here a tape becomes one Python function per sweep, written from the op templates
(:attr:`adcli.ops.Op.value`, :attr:`adcli.ops.Op.partial`) and slot numbers, with the names bound to
float kernels (:data:`adcli.ops.FLOAT_NAMES`). Python floats are several times faster than numpy
scalars but raise where IEEE arithmetic gives inf/nan, so every function falls back to the plain
interpreter on :data:`~adcli.ops.codegen.FALLBACK`, and a non-finite result is the interpreter's
own. The float interpreter runs the same templates as tiny functions, without a compile step, for
tapes not yet used often enough to pay for one.
"""

from __future__ import annotations

import sys
from math import isfinite

from ..core.tape import CONST, Tape
from ..errors import PointError
from ..ops import FLOAT_NAMES, Op
from ..ops.codegen import FALLBACK, build, fill, is_atom, literal, op_functions

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: The only names generated scalar code can refer to, besides its own v*/g* locals.
SCALAR_NAMES: dict[str, Any] = dict(FLOAT_NAMES)


class ScalarGen:
    """Source text for the sweeps of one tape (scalar flavour)."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.instrs = tape.instructions()

    def atom(self, slot: int) -> str:
        if self.tape.ops[slot] == CONST:
            return literal(self.tape.consts[slot])
        return f"v{slot}"

    def const_of(self, slot: int) -> float | None:
        return float(self.tape.consts[slot]) if self.tape.ops[slot] == CONST else None

    def value_expr(self, slot: int, op: Op, args: tuple[int, ...]) -> str:
        names = [self.atom(a) for a in args]
        if op.const_exponent:
            b = self.const_of(args[1])
            if b == 2.0:
                return f"{names[0]} * {names[0]}"
            if b == 1.0:
                return names[0]
        return fill(op.value, names, f"v{slot}")

    def partial_expr(self, slot: int, op: Op, args: tuple[int, ...], i: int) -> str:
        names = [self.atom(a) for a in args]
        if op.const_exponent and i == 0:
            b = self.const_of(args[1])
            if b is not None:
                if b == 0.0:
                    return "0.0"
                if b == 2.0:  # b * a^(b-1) with a^1 == a exactly
                    return f"2.0 * {names[0]}"
                return f"{literal(b)} * pow({names[0]}, {literal(b - 1.0)})"
        return fill(op.partial[i], names, f"v{slot}")

    def forward_lines(self) -> list[str]:
        return [f"v{s} = {self.value_expr(s, op, a)}" for s, op, a in self.instrs]

    def reverse_lines(self) -> tuple[list[str], dict[int, str]]:
        """Adjoint accumulation in the interpreter's order; returns (lines, adjoint per slot).

        An adjoint is tracked as source text: the first contribution to a slot is bound by name
        (or aliased when it is already a name), later ones are added to it, exactly as
        :func:`adcli.core.sweeps.reverse` does (``g * 1.0`` is ``g`` bit for bit)."""
        tape = self.tape
        acc: dict[int, str] = {tape.output: "1.0"}
        lines: list[str] = []
        for slot, op, args in reversed(self.instrs):
            g = acc.get(slot)
            if g is None:
                continue
            for i, a in enumerate(args):
                if not tape.active[a]:
                    continue
                p = self.partial_expr(slot, op, args, i)
                if p == "1.0":
                    c = g
                elif g == "1.0":
                    c = p
                elif p == "-1.0":
                    c = f"-{g}"
                else:
                    c = f"{g} * ({p})" if not is_atom(p) else f"{g} * {p}"
                prev = acc.get(a)
                if prev is None:
                    if is_atom(c):
                        acc[a] = c
                        continue
                    lines.append(f"g{a} = {c}")
                else:
                    lines.append(f"g{a} = {prev} + ({c})" if not is_atom(c)
                                 else f"g{a} = {prev} + {c}")
                acc[a] = f"g{a}"
        return lines, acc


def _header(name: str, slots: list[int]) -> list[str]:
    """``def name(v.., ...):`` and the turn to ``_vector`` when the call is one array: the
    positional call pays one comparison (a missing last argument, or for one input a value
    that is no float)."""
    if not slots:
        return [f"def {name}(_a=_NOARG):", "    if _a is not _NOARG:",
                "        return _vector(_a)"]
    first, last = f"v{slots[0]}", f"v{slots[-1]}"
    if len(slots) == 1:
        return [f"def {name}({first}):",
                f"    if {first}.__class__ is not _float and _is_array({first}):",
                f"        return _vector({first})"]
    given = ", ".join(f"v{s}" for s in slots[:-1])
    params = ", ".join([first] + [f"v{s}=_NOARG" for s in slots[1:]])
    return [f"def {name}({params}):", f"    if {last} is _NOARG:",
            f"        return _vector({given})"]


def scalar_functions(tape: Tape, slow_value: Callable, slow_grad: Callable
                     ) -> tuple[Callable, Callable, str]:
    """(value, value_and_grad, source) as straight-line code; both fall back to the slow
    functions given (the plain interpreter) where Python raises. Both also take the inputs
    as one numpy array (:func:`array_form`)."""
    gen = ScalarGen(tape)
    slots = list(tape.inputs.values())
    params = ", ".join(f"v{s}" for s in slots)
    body = gen.forward_lines()
    out = gen.atom(tape.output)
    value_src = "\n".join(
        _header("value", slots) + ["    try:"]
        + [f"        {ln}" for ln in body]
        + [f"        return {out}",
           "    except _FALLBACK:",
           f"        return _slow_value({params})", ""])
    rev, acc = gen.reverse_lines()
    grads = ", ".join(acc.get(s, "0.0") for s in slots)
    grad_src = "\n".join(
        _header("value_and_grad", slots) + ["    try:"]
        + [f"        {ln}" for ln in body + rev]
        + [f"        return {out}, ({grads}{',' if len(tape.inputs) == 1 else ''})",
           "    except _FALLBACK:",
           f"        return _slow_grad({params})", ""])
    ns = dict(SCALAR_NAMES, _FALLBACK=FALLBACK, _slow_value=slow_value, _slow_grad=slow_grad,
              _NOARG=NOARG, _float=float, _is_array=is_array)
    names = list(tape.inputs)
    value = build(value_src, dict(ns), "value")
    grad = build(grad_src, dict(ns), "value_and_grad")
    value.__globals__["_vector"] = array_form(value, names, False)
    grad.__globals__["_vector"] = array_form(grad, names, True)
    return value, grad, value_src + grad_src


def grad_entry(tape: Tape, fn: Callable, result: Callable, miss: Callable
               ) -> tuple[Callable, str]:
    """``entry(point, wrt=None)``: ``Function.grad`` itself once its compiled code is in use,
    with the sweeps written inline (no call into :func:`scalar_functions`' function, no tuple
    of gradients to unpack, no second Python frame). When ``wrt`` is None and ``point`` has
    exactly the tape's input names as keys and every value is a Python float, it returns
    ``result(value, {name: derivative})`` by the very lines of :func:`scalar_functions` (the
    same bits), and where Python raises, by ``fn`` (that function, which falls back to the
    plain interpreter); any other call is ``miss(point, wrt)`` (the general path). The names
    are passed as values, never written into the source. Returns (entry, source)."""
    gen = ScalarGen(tape)
    slots = list(tape.inputs.values())
    lines = ["def entry(point, wrt=None):", "    if wrt is not None:",
             "        return _miss(point, wrt)", "    try:",
             f"        if _len(point) != {len(slots)}:", "            return _miss(point, wrt)"]
    lines += [f"        v{s} = point[_k{i}]" for i, s in enumerate(slots)]
    lines += ["    except (LookupError, TypeError):", "        return _miss(point, wrt)"]
    if slots:
        lines += ["    if " + " or ".join(f"v{s}.__class__ is not _float" for s in slots) + ":",
                  "        return _miss(point, wrt)"]
    rev, acc = gen.reverse_lines()
    body = gen.forward_lines() + rev
    if body:  # (a program that is one of its inputs, or a constant, has no sweep)
        fallback = ", ".join(f"_k{i}: g[{i}]" for i in range(len(slots)))
        lines += ["    try:"] + [f"        {ln}" for ln in body]
        lines += ["    except _FALLBACK:",
                  f"        v, g = _fn({', '.join(f'v{s}' for s in slots)})",
                  f"        return _new(_result, (_float(v), {{{fallback}}}))"]
    pairs = ", ".join(f"_k{i}: {acc.get(s, '0.0')}" for i, s in enumerate(slots))
    lines += [f"    return _new(_result, ({gen.atom(tape.output)}, {{{pairs}}}))", ""]
    ns = dict(SCALAR_NAMES, _FALLBACK=FALLBACK, _len=len, _float=float, _new=tuple.__new__,
              _result=result, _fn=fn, _miss=miss,
              **{f"_k{i}": name for i, name in enumerate(tape.inputs)})
    source = "\n".join(lines)
    return build(source, ns, "entry"), source


# --------------------------------------------------------------------------- one array of inputs


class _NoArg:
    """The default of a generated function's last parameter: the call gave one argument."""

    def __repr__(self) -> str:
        return "<no argument>"


NOARG = _NoArg()


def is_array(v: Any) -> bool:
    """Whether ``v`` is a numpy array (numpy is not imported for the question: an array
    exists only once numpy is loaded)."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(v, np.ndarray)


def _checked(x: Any, names: list[str]) -> Any:
    """``x`` as a float64 array if it is one 1-D array of real numbers, one per name; else a
    :class:`PointError` that says what is wrong."""
    n = len(names)
    if not is_array(x) or x.ndim != 1 or x.shape[0] != n:
        got = (f"one {type(x).__name__}" if not is_array(x)
               else f"an array of shape {x.shape}" if x.ndim != 1 else f"an array of {len(x)}")
        raise PointError(f"expected {n} input{'s' if n != 1 else ''} ({_shown(names)}) as numbers "
                         f"or as one 1-D array; got {got}")
    if x.dtype.kind not in "biuf":
        raise PointError(f"the inputs must be real numbers; got an array of dtype {x.dtype}")
    if x.__class__ is not sys.modules["numpy"].ndarray:  # a subclass (masked, ...): its data
        x = sys.modules["numpy"].asarray(x)
    return x if x.dtype.kind == "f" and x.itemsize == 8 else x.astype(float)


def _shown(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, ..., {names[-1]}"


def _not_finite(x: Any, i: int, names: list[str]) -> PointError:
    return PointError(f"input {i} ({names[i]}) is {x[i]}: the inputs must be finite")


def input_array(x: Any, names: list[str]) -> Any:
    """``x`` as the float64 inputs of a compiled call, one per name in order, checked: one
    1-D array of real, finite numbers of the right length, else a :class:`PointError` that
    says what is wrong (and for a bad value, which input)."""
    x = _checked(x, names)
    finite = sys.modules["numpy"].isfinite(x)
    if not finite.all():
        raise _not_finite(x, int(finite.argmin()), names)
    return x


def input_list(x: Any, names: list[str]) -> list[float]:
    """:func:`input_array` as a list of Python floats (the positional call's arguments;
    checked in Python: for the sizes of straight-line code that is cheaper than numpy)."""
    xs = _checked(x, names).tolist()
    if not all(map(isfinite, xs)):
        i = next(i for i, v in enumerate(xs) if not isfinite(v))
        raise _not_finite(xs, i, names)
    return xs


def array_form(fn: Callable, names: list[str], grad: bool) -> Callable:
    """``fn`` (positional floats) called with one array: the value as a float, and for
    ``grad`` the gradient as a float64 array in the same order."""
    if grad:
        def vector(x: Any, *rest: Any) -> tuple[float, Any]:
            if rest:
                _too_few(rest, names)
            value, grads = fn(*input_list(x, names))
            return value, sys.modules["numpy"].array(grads, dtype=float)
    else:
        def vector(x: Any, *rest: Any) -> float:  # type: ignore[misc]
            if rest:
                _too_few(rest, names)
            return fn(*input_list(x, names))
    return vector


def _too_few(rest: tuple, names: list[str]) -> None:
    """Refuse a positional call that left out some inputs (the generated functions give the
    inputs after the first a default, so that one array can stand for them all)."""
    given = 1 + sum(r is not NOARG for r in rest)
    if given > 1:
        raise count_error(given, names)


def count_error(given: int, names: list[str]) -> PointError:
    """The error for a positional call with ``given`` numbers instead of one per name."""
    return PointError(f"expected {len(names)} inputs ({_shown(names)}) as numbers or as "
                      f"one 1-D array; got {given} numbers")


# --------------------------------------------------------------------------- float interpreter


_OPFUNCS: dict[str, tuple[Callable, tuple[Callable, ...]]] = {}


def _build_op_functions(ops: list[Op]) -> None:
    """The float functions of ``ops`` (each op once), in one ``compile``."""
    made = op_functions([(op.arity, op.value, op.partial) for op in ops], SCALAR_NAMES)
    for op, fns in zip(ops, made):
        _OPFUNCS[op.name] = fns


def _program(tape: Tape) -> list:
    """(slot, value function, partial functions, args) per instruction, in tape order."""
    missing = {op.name: op for op in tape.ops
               if op.__class__ is not str and op.name not in _OPFUNCS}
    if missing:
        _build_op_functions(list(missing.values()))
    return [(slot, *_OPFUNCS[op.name], args) for slot, (op, args)
            in enumerate(zip(tape.ops, tape.args)) if op.__class__ is not str]


def sweep_nodes(tape: Tape, xs: list[float]) -> tuple[list[float], list[float | None]]:
    """Every slot's value and adjoint over Python floats: what :func:`adcli.core.sweeps.evaluate`
    and :func:`adcli.core.sweeps.reverse` give at a point of scalars (the same bits, adjoints
    accumulated in the same order, None where no path reaches the output), for the node
    table of ``adcli grad`` without numpy. Raises where Python does (the caller then runs
    the plain interpreter); the partial of an argument that carries no derivative is not
    computed (the plain interpreter computes and drops it)."""
    program = _program(tape)
    v = [float(c) for c in tape.consts]
    for s, x in zip(tape.inputs.values(), xs):
        v[s] = x
    for slot, f, _p, args in program:
        v[slot] = f(*[v[a] for a in args])
    active = tape.active
    adj: list[float | None] = [None] * len(tape.ops)
    adj[tape.output] = 1.0
    for slot, _f, partials, args in reversed(program):
        g = adj[slot]
        if g is None:
            continue
        argv = [v[a] for a in args]
        for a, partial in zip(args, partials):
            if active[a]:
                c = g * partial(*argv, v[slot])
                prev = adj[a]
                adj[a] = c if prev is None else prev + c
    return v, adj


def interpreter(tape: Tape) -> tuple[Callable, Callable]:
    """Value and value+gradient by a loop over Python floats (no compile step). Raises where
    Python does: wrap it (see :func:`adcli.fast.policy.guard`)."""
    program = _program(tape)
    consts = [float(c) for c in tape.consts]
    active = tape.active
    input_slots = list(tape.inputs.values())
    out = tape.output
    n = len(tape.ops)

    def run(xs) -> list[float]:
        v = consts[:]
        for s, x in zip(input_slots, xs):
            v[s] = x
        for slot, f, _p, args in program:
            if len(args) == 2:
                v[slot] = f(v[args[0]], v[args[1]])
            else:
                v[slot] = f(v[args[0]])
        return v

    def value(*xs: float) -> float:
        return run(xs)[out]

    def value_and_grad(*xs: float):
        v = run(xs)
        adj: list[float | None] = [None] * n
        adj[out] = 1.0
        for slot, _f, partials, args in reversed(program):
            g = adj[slot]
            if g is None:
                continue
            o = v[slot]
            if len(args) == 2:
                a, b = args
                x, y = v[a], v[b]
                if active[a]:
                    c = g * partials[0](x, y, o)
                    prev = adj[a]
                    adj[a] = c if prev is None else prev + c
                if active[b]:
                    c = g * partials[1](x, y, o)
                    prev = adj[b]
                    adj[b] = c if prev is None else prev + c
            else:
                a = args[0]
                c = g * partials[0](v[a], o)
                prev = adj[a]
                adj[a] = c if prev is None else prev + c
        return v[out], tuple(0.0 if adj[s] is None else adj[s] for s in input_slots)

    return value, value_and_grad
