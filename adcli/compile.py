"""Fast paths for a tape: straight-line Python for scalars, blocked numpy for data columns.

The plain interpreter (:mod:`adcli.sweeps`) pays for a loop, a list and a numpy scalar per node.
Here a tape becomes one Python function per sweep, generated from two things only: the op
table's scalar code templates (:data:`adcli.ops.SCALAR_CODE`) and slot numbers (``v12``,
``g12``). No user text ever reaches the generated source: variable names are passed by
position, and constants are written with ``repr(float)`` (digits, ``.``, ``e``, ``-``) or as
the fixed names ``inf``/``nan``. Tests try to inject code through names and numbers.

Scalar code runs on Python floats with :mod:`math`, which is several times faster than numpy
scalars but raises where IEEE arithmetic would give inf/nan (``1/0``, ``log(0)``,
``exp(1000)``). Every generated function therefore falls back to the plain interpreter on
``ArithmeticError``/``ValueError``, so a non-finite result is the interpreter's own.

Large tapes are interpreted by a tight float loop until they have been called a few times (the
Python compiler needs about 15 µs per generated line, which a one-shot gradient cannot
recoup). Data columns run through generated numpy code in cache-sized blocks of rows on a small
thread pool (numpy releases the GIL), and the per-block gradients of scalar parameters are
summed in a fixed order, so results do not depend on thread timing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any

from .ops import LN2, LN10, OPS, SCALAR_CODE
from .tape import CONST, VAR, Tape

#: Tapes with at most this many instructions are compiled on their second sweep...
COMPILE_AT_ONCE = 500
#: ...larger ones once they have been swept this many times. Until then the float
#: interpreter runs them: generating and compiling costs about 25 µs per instruction, a
#: hundred times one interpreted sweep, so a one-shot gradient never pays for it.
COMPILE_AFTER_CALLS = 8
#: The most rows per block in data sweeps. A block has as many rows as keep its columns (the
#: varying values; their adjoints reuse about as much) within :data:`BLOCK_VALUES` float64
#: numbers, halving from here down to 8192, so small losses run in few, long blocks and big
#: programs keep their temporaries in cache. Measured on the 2-core machine (interleaved
#: runs, best of 12, 10^6 rows): the line fit took 5.4 / 4.1 / 3.4 / 2.9 ms with blocks of
#: 8k / 16k / 32k / 64k rows, a small tanh network 76 / 78 / 78 / 88 ms.
BLOCK_ROWS = 65536
BLOCK_VALUES = 2**19
#: ... and never more than this many in one block, below the 8192-row floor too: a program of a
#: million nodes over 1,000 rows took 7.5 GB in a single block (issue 10).
MAX_BLOCK_VALUES = 2**23
#: Threads for data sweeps over many rows (ADCLI_THREADS overrides). On a machine with two
#: cores or fewer, threads measured slower than one (the other core is busy with the OS).
THREADS = int(os.environ.get("ADCLI_THREADS") or (2 if (os.cpu_count() or 1) > 2 else 1))

_NAN = float("nan")
_INF = float("inf")


# --------------------------------------------------------------------------- scalar helpers
# Python-float twins of the numpy kernels in adcli.ops, including nan and signed-zero behaviour.


def _exact1(math_fn: Callable, np_fn: Callable) -> Callable[[float], float]:
    """numpy's own kernel on a float (numpy's SIMD exp/log/tanh/... differ from the C library
    in the last bit, and the interpreter runs numpy), after the math module has checked the
    domain: it raises exactly where numpy would return inf/nan, and the caller falls back."""
    def f(x: float) -> float:
        math_fn(x)
        return float(np_fn(x))
    return f


def _exact2(math_fn: Callable, np_fn: Callable) -> Callable[[float, float], float]:
    def f(x: float, y: float) -> float:
        math_fn(x, y)
        return float(np_fn(x, y))
    return f


def _numpy_kernels() -> dict[str, Callable]:
    import numpy as np

    pairs = {"tan": (math.tan, np.tan), "asin": (math.asin, np.arcsin),
             "acos": (math.acos, np.arccos), "atan": (math.atan, np.arctan),
             "sinh": (math.sinh, np.sinh), "cosh": (math.cosh, np.cosh),
             "tanh": (math.tanh, np.tanh), "exp": (math.exp, np.exp), "log": (math.log, np.log),
             "log2": (math.log2, np.log2), "log10": (math.log10, np.log10),
             "log1p": (math.log1p, np.log1p)}
    kernels = {name: _exact1(m, n) for name, (m, n) in pairs.items()}
    kernels["pow"] = _exact2(math.pow, np.power)
    return kernels


_K = _numpy_kernels()


def _sigmoid(x: float) -> float:
    z = _K["exp"](-abs(x))
    return 1.0 / (1.0 + z) if x >= 0 else z / (1.0 + z)


def _softplus(x: float) -> float:
    return (x if (x > 0.0 or x != x) else 0.0) + _K["log1p"](_K["exp"](-abs(x)))


def _relu(x: float) -> float:
    return x if (x > 0.0 or x != x) else 0.0


def _step(x: float) -> float:
    return 1.0 if x > 0.0 else (x if x != x else 0.0)


def _sign(x: float) -> float:
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (x if x != x else 0.0))


def _fmax(a: float, b: float) -> float:
    return a if (a > b or a != a) else b


def _fmin(a: float, b: float) -> float:
    return a if (a < b or a != a) else b


def _tie(a: float, b: float) -> float:
    if a != a or b != b:
        return _NAN
    return 1.0 if a > b else (0.5 if a == b else 0.0)


def _pow_dexp(a: float, b: float, out: float) -> float:
    if a > 0.0:
        return out * _K["log"](a)
    return 0.0 if (a == 0.0 and b > 0.0) else _NAN


#: The only names generated scalar code can refer to, besides its own v*/g* locals.
#: sin, cos and sqrt come from the math module: sqrt is exact in IEEE arithmetic, and sin/cos
#: gave the same bits as numpy on 60,000 sampled points here (tests compare to 1e-12).
SCALAR_NAMES: dict[str, Any] = {
    "sin": math.sin, "cos": math.cos, "sqrt": math.sqrt, **_K, "abs": abs,
    "sigmoid": _sigmoid, "softplus": _softplus,
    "relu": _relu, "step": _step, "sign": _sign, "fmax": _fmax, "fmin": _fmin, "tie": _tie,
    "pow_dexp": _pow_dexp, "LN2": LN2, "LN10": LN10, "nan": _NAN, "inf": _INF,
}

_FALLBACK = (ArithmeticError, ValueError)


def literal(value: float) -> str:
    """Source text for a float64 constant; only digits, '.', 'e', '-' or inf/nan."""
    v = float(value)
    if v != v:
        return "nan"
    if v == _INF:
        return "inf"
    if v == -_INF:
        return "(-inf)"
    return f"({v!r})"


def _is_atom(text: str) -> bool:
    return text.isidentifier() or (text.startswith("(") and text.endswith(")")
                                   and text.count("(") == 1) or text == "1.0"


# --------------------------------------------------------------------------- code generation


class _Gen:
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

    def value_expr(self, slot: int, op, args: tuple[int, ...]) -> str:
        names = [self.atom(a) for a in args]
        if op.name == "pow":
            b = self.const_of(args[1])
            if b == 2.0:
                return f"{names[0]} * {names[0]}"
            if b == 1.0:
                return names[0]
        return SCALAR_CODE[op.name][0].format(*names, o=f"v{slot}")

    def partial_expr(self, slot: int, op, args: tuple[int, ...], i: int) -> str:
        names = [self.atom(a) for a in args]
        if op.name == "pow" and i == 0:
            b = self.const_of(args[1])
            if b is not None:
                if b == 0.0:
                    return "0.0"
                if b == 2.0:  # b * a^(b-1) with a^1 == a exactly
                    return f"2.0 * {names[0]}"
                return f"{literal(b)} * pow({names[0]}, {literal(b - 1.0)})"
        return SCALAR_CODE[op.name][1][i].format(*names, o=f"v{slot}")

    def forward_lines(self) -> list[str]:
        return [f"v{s} = {self.value_expr(s, op, a)}" for s, op, a in self.instrs]

    def reverse_lines(self) -> tuple[list[str], dict[int, str]]:
        """Adjoint accumulation in the interpreter's order; returns (lines, adjoint per slot).

        An adjoint is tracked as source text: the first contribution to a slot is bound by name
        (or aliased when it is already a name), later ones are added to it, exactly as
        :func:`adcli.sweeps.reverse` does (``g * 1.0`` is ``g`` bit for bit)."""
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
                    c = f"{g} * ({p})" if not _is_atom(p) else f"{g} * {p}"
                prev = acc.get(a)
                if prev is None:
                    if _is_atom(c):
                        acc[a] = c
                        continue
                    lines.append(f"g{a} = {c}")
                else:
                    lines.append(f"g{a} = {prev} + ({c})" if not _is_atom(c)
                                 else f"g{a} = {prev} + {c}")
                acc[a] = f"g{a}"
        return lines, acc


def _build(source: str, namespace: dict[str, Any], name: str) -> Callable:
    code = compile(source, f"<adcli compiled {name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source built from the op table and slot numbers only
    return namespace[name]


def _scalar_functions(tape: Tape, slow_value: Callable, slow_grad: Callable):
    gen = _Gen(tape)
    params = ", ".join(f"v{s}" for s in tape.inputs.values())
    body = gen.forward_lines()
    out = gen.atom(tape.output)
    value_src = "\n".join(
        [f"def value({params}):", "    try:"]
        + [f"        {ln}" for ln in body]
        + [f"        return {out}",
           "    except _FALLBACK:",
           f"        return _slow_value({params})", ""])
    rev, acc = gen.reverse_lines()
    grads = ", ".join(acc.get(s, "0.0") for s in tape.inputs.values())
    grad_src = "\n".join(
        [f"def value_and_grad({params}):", "    try:"]
        + [f"        {ln}" for ln in body + rev]
        + [f"        return {out}, ({grads}{',' if len(tape.inputs) == 1 else ''})",
           "    except _FALLBACK:",
           f"        return _slow_grad({params})", ""])
    ns = dict(SCALAR_NAMES, _FALLBACK=_FALLBACK, _slow_value=slow_value, _slow_grad=slow_grad)
    return (_build(value_src, dict(ns), "value"), _build(grad_src, dict(ns), "value_and_grad"),
            value_src + grad_src)


# --------------------------------------------------------------------------- float interpreter


def _op_functions() -> dict[str, tuple[Callable, tuple[Callable, ...]]]:
    """Each op's value and partials as tiny Python-float functions, from the same templates."""
    table = {}
    for name, (value_tpl, partial_tpls) in SCALAR_CODE.items():
        arity = OPS[name].arity
        params = ["a", "b"][:arity]
        sig = ", ".join(params)
        value = _build(f"def f({sig}):\n    return {value_tpl.format(*params, o='o')}\n",
                       dict(SCALAR_NAMES), "f")
        partials = tuple(
            _build(f"def f({sig}, o):\n    return {tpl.format(*params, o='o')}\n",
                   dict(SCALAR_NAMES), "f") for tpl in partial_tpls)
        table[name] = (value, partials)
    return table


_OPFUNCS: dict[str, tuple[Callable, tuple[Callable, ...]]] | None = None


def _interpreter(tape: Tape):
    """Value and value+gradient by a loop over Python floats (no compile step)."""
    global _OPFUNCS
    if _OPFUNCS is None:
        _OPFUNCS = _op_functions()
    table = _OPFUNCS
    program = [(slot, *table[op.name], args) for slot, (op, args)
               in enumerate(zip(tape.ops, tape.args)) if op.__class__ is not str]
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


# --------------------------------------------------------------------------- data columns


def block_rows(columns: int) -> int:
    """Rows per block for a block function with ``columns`` varying values."""
    rows = BLOCK_ROWS
    while rows > 8192 and rows * columns > BLOCK_VALUES:
        rows //= 2
    while rows > 1 and rows * columns > MAX_BLOCK_VALUES:
        rows //= 2
    return rows


def _row_dot(g, p):
    """The sum over rows of ``g * p`` for a column ``g``: one BLAS dot instead of a product
    column and a sum (the same sum in another order)."""
    import numpy as np

    if np.ndim(p) == 0:
        return np.sum(g) * p
    if g.ndim == 1 and g.shape == p.shape:
        return np.dot(g, p)
    return np.sum(g * p)


def _array_function(tape: Tape, wanted: frozenset[int], columns: frozenset[int],
                    sum_value: bool = False, in_place: bool = False) -> Callable:
    """Generated numpy code for one block of rows: values and adjoints (seed 1).

    Calls the op table's own ``fn``/``partials``, except where the partials are written inline
    as the very same numpy expressions (+ - * / neg, and ``^`` with a constant exponent), which
    also skips partials nobody needs. Adjoints of inputs not in ``wanted`` (slots) are not
    accumulated: data columns need none.

    ``columns`` are the input slots holding arrays. As in :func:`adcli.sweeps.reverse`, an
    output that varies over rows is seeded with one 1 per row (``ONES``), so a term that does
    not depend on the rows is still counted once per row; ``1 * p`` is written as ``p`` only
    where ``p`` is known to be a full column (bit for bit the same).

    A slot that does not vary over rows (a parameter, or an expression of parameters) only
    ever needs its adjoint summed over the rows, so the sum is taken where a column first
    flows into it (``ROWDOT(g, p)``, a dot product) and everything below it runs on scalars.
    With ``sum_value`` the block returns the sum of the output over its rows (a dot product
    for a squared or multiplied output, whose column is then never formed).

    With ``in_place`` (every column 1-D and of one length, so every varying value has the
    block's shape) a numpy ufunc writes its result into an operand that it reads for the last
    time, if that operand is a column the block computed itself: fewer fresh arrays, hotter
    cache."""
    import numpy as np

    ns: dict[str, Any] = {"ONE": np.float64(1.0), "POW": np.power, "SUM": np.sum,
                          "ROWDOT": _row_dot}
    lines = []
    varying = [tape.ops[s] == VAR and s in columns for s in range(len(tape.ops))]
    for slot, _op, args in tape.instructions():
        varying[slot] = any(varying[a] for a in args)

    def const(slot: int) -> float | None:
        return float(tape.consts[slot]) if tape.ops[slot] == CONST else None

    out = tape.output
    value_sum = None  # the summed output, when it is a dot product of two columns
    owned = [False] * len(tape.ops)  # columns computed by this block (never the caller's data)
    reusable: list[tuple[int, list[int]]] = []  # (forward line, owned operands) of ufuncs
    for slot, op, args in tape.instructions():
        names = ", ".join(f"v{a}" for a in args)
        square = op.name == "pow" and const(args[1]) == 2.0
        if sum_value and slot == out and varying[out] and (
                square or op.name == "mul" and varying[args[0]] and varying[args[1]]):
            # the inline partials of x^2 and x*y never read the output
            value_sum = f"ROWDOT(v{args[0]}, v{args[0] if square else args[1]})"
            continue
        if square:  # numpy's power(a, 2) is a*a
            owned[slot] = varying[slot]
            lines.append(f"v{slot} = v{args[0]} * v{args[0]}")
            continue
        ns[f"F_{op.name}"] = op.fn
        if in_place and varying[slot] and isinstance(op.fn, np.ufunc):
            reusable.append((len(lines), [a for a in args if owned[a]]))
        owned[slot] = varying[slot]
        lines.append(f"v{slot} = F_{op.name}({names})")
    # An adjoint is (k, text): the value k * text, with k an exact factor (a signed power of
    # two: the -1 of a subtraction, the 2 of a square) kept aside until a sum, a dot product or
    # an addition needs the product. Scaling by a power of two is exact (short of overflow or
    # subnormals), so the numbers are the interpreter's bit for bit, and 2*SUM(r) costs one
    # pass fewer than SUM(2*r).
    def full(entry: tuple[float, str]) -> str:
        k, text = entry
        if k == 1.0:
            return text
        return f"(-{text})" if k == -1.0 else f"({literal(k)} * {text})"

    seed = "ONES" if varying[out] else "ONE"
    acc: dict[int, tuple[float, str]] = {out: (1.0, seed)}
    for slot, op, args in reversed(tape.instructions()):
        entry = acc.get(slot)
        if entry is None:
            continue
        gk, g = entry
        need = [tape.active[a] and not (tape.ops[a] == VAR and a not in wanted) for a in args]
        if not any(need):
            continue
        # parts: (exact factor, text) of each local partial
        if op.name in ("add", "sub", "neg", "mul"):
            parts = {"add": ((1.0, "1"), (1.0, "1")), "sub": ((1.0, "1"), (-1.0, "1")),
                     "neg": ((-1.0, "1"),),
                     "mul": ((1.0, f"v{args[-1]}"), (1.0, f"v{args[0]}"))}[op.name]
            full_column = {"mul": (varying[args[-1]], varying[args[0]])}.get(
                op.name, (False, False))
        elif op.name == "div":
            parts = ((1.0, f"(1.0 / v{args[1]})"), (1.0, f"(-v{slot} / v{args[1]})"))
            full_column = (varying[args[1]], varying[slot])
        elif op.name == "pow" and const(args[1]) not in (None, 0.0) and not need[1]:
            b = const(args[1])
            parts = ((2.0, f"v{args[0]}") if b == 2.0 else
                     (1.0, f"({literal(b)} * POW(v{args[0]}, {literal(b - 1.0)}))"), (1.0, ""))
            full_column = (varying[args[0]], False)
        else:
            ns[f"P_{op.name}"] = op.partials
            names = ", ".join(f"v{a}" for a in args)
            lines.append(f"p = P_{op.name}(({names},), v{slot})")
            parts = tuple((1.0, f"p[{i}]") for i in range(op.arity))
            full_column = (False, False)
        for a, (pk, p), needed, is_full in zip(args, parts, need, full_column):
            if not needed:
                continue
            k = gk * pk
            if varying[slot] and not varying[a]:  # a column flows into a row-constant slot
                c = (k, f"SUM({g})" if p == "1" else f"ROWDOT({g}, {p})")
            elif p == "1":
                c = (k, g)
            elif g == "ONE" or (g == "ONES" and is_full):  # 1.0 * p is p, bit for bit
                c = (k, p)
            else:
                c = (k, f"{g} * {p}")
            if abs(c[0]) > 2.0**32:  # long chains of squares: apply the factor before it
                c = (1.0, full(c))   # could overflow where the interpreter's products do not
            prev = acc.get(a)
            if prev is None:
                lines.append(f"g{a} = {c[1]}")
                acc[a] = (c[0], f"g{a}")
            else:
                lines.append(f"g{a} = {full(prev)} + {full(c)}")
                acc[a] = (1.0, f"g{a}")
    if not sum_value:
        value = f"v{out}"
    elif value_sum is not None:
        value = value_sum
    else:  # a row-constant output counts once per row, as with a per-row seed
        value = f"SUM(v{out})" if varying[out] else f"v{out} * ONES.size"
    params = ", ".join(["ONES"] + [f"v{s}" for s in tape.inputs.values()]
                       + [f"v{s}" for s in range(len(tape.ops)) if tape.ops[s] == CONST])
    grads = ", ".join(full(acc[s]) if s in acc else "None" for s in tape.inputs.values())
    if reusable:
        # The last line that names each v-slot (the return statement counts as a line).
        last: dict[str, int] = {}
        for i, text in enumerate([*lines, f"{value} {grads}"]):
            for name in re.findall(r"\bv\d+\b", text):
                last[name] = i
        for i, operands in reusable:
            for a in operands:
                if last[f"v{a}"] == i:
                    lines[i] = f"{lines[i][:-1]}, out=v{a})"
                    break
    src = "\n".join([f"def block({params}):"] + [f"    {ln}" for ln in lines]
                    + [f"    return {value}, ({grads}{',' if tape.inputs else ''})", ""])
    block = _build(src, ns, "block")
    block.columns = sum(varying)  # for block_rows
    return block


# --------------------------------------------------------------------------- levelled sweeps

#: Big tapes whose instructions fall into few (level, op) groups run level by level in numpy.
LEVELLED_MIN_SIZE = 2000
#: ... when each group holds at least this many instructions on average.
LEVELLED_MIN_GROUP = 40


def _index(slots) -> Any:
    """Index array -> a slice when the slots are evenly spaced (views instead of gathers)."""
    import numpy as np

    ix = np.asarray(slots, dtype=np.intp)
    if len(ix) >= 2:
        step = int(ix[1] - ix[0])
        if step > 0 and np.all(np.diff(ix) == step):
            return slice(int(ix[0]), int(ix[-1]) + 1, step)
    return ix


class Levelled:
    """Sweeps of a big scalar tape as a few numpy operations per level instead of one Python
    operation per node: every instruction gets a level (one more than its deepest argument);
    the instructions of one level and one op are gathered from a value array, computed by the
    op table's own numpy ``fn``/``partials`` at once, and scattered back. The reverse sweep
    walks the levels backwards and adds ``adjoint * partial`` into the arguments. Slots are
    renumbered so that each such group is contiguous: most gathers and scatters are slices.

    A left-nested chain of ``+``/``-`` (a sum of many terms) would make one level per term, so
    such a chain becomes one cumulative sum (``np.cumsum`` adds left to right, exactly the
    chain's own order; ``a - b`` is ``a + (-b)`` bit for bit), and every link of the chain has
    the chain's adjoint. Results equal the interpreter's to rounding: numpy's array kernels
    may differ from its scalar ones in the last bit, and adjoints are summed in another order.
    """

    def __init__(self, tape: Tape) -> None:
        import numpy as np

        self.np = np
        n = len(tape.ops)
        ops, args = tape.ops, tape.args
        uses = [0] * n
        for a in args:
            for s in a:
                uses[s] += 1
        # Chains: add/sub whose first argument is an add/sub used only there.
        chain_of: dict[int, int] = {}  # internal link slot -> chain end
        ends: dict[int, list[int]] = {}
        for slot in range(n - 1, -1, -1):
            op = ops[slot]
            if op.__class__ is str or op.name not in ("add", "sub") or slot in chain_of:
                continue
            links = [slot]
            cur = slot
            while True:
                first = args[cur][0]
                fop = ops[first]
                if fop.__class__ is str or fop.name not in ("add", "sub") or uses[first] != 1:
                    break
                links.append(first)
                cur = first
            if len(links) >= 8:
                links.reverse()
                for link in links:
                    chain_of[link] = slot
                ends[slot] = links
        level = [0] * n
        groups: dict[tuple[int, str], list[int]] = {}
        chains: dict[int, list[int]] = {}
        for slot in range(n):
            op = ops[slot]
            if op.__class__ is str:
                continue
            if slot in chain_of and chain_of[slot] != slot:
                continue  # computed with its chain
            if slot in ends:
                links = ends[slot]
                members = [args[links[0]][0]] + [args[k][1] for k in links]
                lv = 1 + max(level[m] for m in members)
                for k in links:
                    level[k] = lv
                chains.setdefault(lv, []).append(slot)
                continue
            lv = 1 + max(level[a] for a in args[slot])
            level[slot] = lv
            groups.setdefault((lv, op.name), []).append(slot)
        top = max(level) if n else 0
        # Renumber the slots so that each group's results are contiguous, in the order the
        # plan runs them: writes become slice assignments and, where a group reads another
        # group's results in order (term i of a sum reads factor i), reads become views.
        pos = [-1] * n
        nxt = 0
        for kind in (VAR, CONST):  # inputs first, then constants, each in order of first use
            for slot in range(n):
                if ops[slot] == kind:
                    pos[slot] = nxt
                    nxt += 1
        for lv in range(1, top + 1):
            for (glv, _name), slots in sorted(groups.items()):
                if glv == lv:
                    for slot in slots:
                        pos[slot] = nxt
                        nxt += 1
            for end in chains.get(lv, []):
                pos[end] = nxt
                nxt += 1
        for slot in range(n):  # links inside chains: never read
            if pos[slot] < 0:
                pos[slot] = nxt
                nxt += 1
        self.n_groups = len(groups) + sum(len(v) for v in chains.values())
        self.size = sum(op.__class__ is not str for op in ops)
        plan = []  # per level: [("op", Op, slots, [arg index arrays], [unique?]) | ("chain", ...)]
        for lv in range(1, top + 1):
            steps = []
            for (glv, name), slots in sorted(groups.items()):
                if glv != lv:
                    continue
                op = OPS[name]
                arg_idx: list[Any] = []
                for k in range(op.arity):
                    column = [args[s][k] for s in slots]
                    first = column[0]
                    if ops[first] == CONST and column.count(first) == len(column):
                        arg_idx.append(float(tape.consts[first]))  # one constant: a scalar
                    elif all(ops[a] == CONST for a in column):  # constants: a fixed column
                        arg_idx.append(np.array([tape.consts[a] for a in column], dtype=float))
                    else:
                        arg_idx.append(_index([pos[a] for a in column]))
                # False: a constant (a float or a float column), used as it is
                gather = tuple(not (ix.__class__ is float
                                    or getattr(ix, "dtype", None) == np.float64)
                               for ix in arg_idx)
                unique = [not g or isinstance(ix, slice) or len(np.unique(ix)) == len(ix)
                          for ix, g in zip(arg_idx, gather)]
                for k in range(op.arity):  # constants (one or many) need no adjoint
                    if not any(tape.active[args[s][k]] for s in slots):
                        unique[k] = None
                kind = "op"
                if name == "pow" and isinstance(arg_idx[1], float) and arg_idx[1] != 0.0:
                    kind = "powc"  # constant exponent: only d/dbase, as in the array path
                if name in ("add", "sub", "neg", "mul"):
                    kind = name  # partials written inline: no multiply by 1
                steps.append((kind, op, _index([pos[s] for s in slots]), arg_idx, unique,
                              gather))
            for end in chains.get(lv, []):
                links = ends[end]
                members = np.array([pos[args[links[0]][0]]] + [pos[args[k][1]] for k in links],
                                   dtype=np.intp)
                signs = np.array([1.0] + [1.0 if ops[k].name == "add" else -1.0
                                          for k in links])
                if np.all(signs == 1.0):
                    signs = None  # a plain sum: no multiply by 1
                unique = len(np.unique(members)) == len(members)
                # A plain sum's terms usually come from a few groups, each contiguous: its
                # adjoint (one number for every term) is then added to a few slices.
                cuts = np.flatnonzero(np.diff(members) != 1) + 1
                runs = None
                if signs is None and unique and len(cuts) < 8:
                    bounds = [0, *cuts.tolist(), len(members)]
                    runs = [slice(int(members[a]), int(members[b - 1]) + 1)
                            for a, b in zip(bounds, bounds[1:])]
                steps.append(("chain", pos[links[-1]], _index(members), signs, unique, runs))
            plan.append(steps)
        self.plan = plan
        consts = np.zeros(n)
        consts[pos] = [float(c) for c in tape.consts]
        self.consts = consts
        self.inputs = _index([pos[s] for s in tape.inputs.values()])  # a slice: 0..n-1
        self.out = pos[tape.output]
        self.n = n
        self._functions: tuple[Callable, Callable] | None = None  # generated on first use
        self.source = ""

    def _generate(self) -> tuple[Callable, Callable]:
        """The plan as straight-line numpy code: one function for the value, one for value and
        gradient, with every index, constant and kernel bound by name (``S3``, ``A3_0``,
        ``F3``: step numbers only, never user text). Running the plan step by step spent as
        much time deciding what to do as doing it."""
        np = self.np
        ns: dict[str, Any] = {"np": np, "CONSTS": self.consts, "INPUTS": self.inputs,
                              "cumsum": np.cumsum, "zeros": np.zeros, "power": np.power,
                              "multiply": np.multiply, "negative": np.negative,
                              "add_at": np.add.at, "broadcast_to": np.broadcast_to,
                              "errstate": np.errstate}
        fwd: list[str] = []
        rev: list[str] = []
        steps = [step for level in self.plan for step in level]
        # Where the reverse sweep reaches a slot's adjoint for the first time it can write the
        # contribution instead of adding it to 0 (the interpreter does the same, so -0.0 stays
        # -0.0), straight into the adjoint array (``out=``): one numpy call instead of two.
        touched = np.zeros(self.n, dtype=bool)
        touched[self.out] = True
        firsts: list[list[bool]] = [[] for _ in steps]
        for k in range(len(steps) - 1, -1, -1):
            step = steps[k]
            if step[0] == "chain":  # one number for every term: always added
                touched[step[2]] = True
                continue
            for ix, uniq in zip(step[3], step[4]):
                firsts[k].append(bool(uniq) and not touched[ix].any())
                if uniq is not None:
                    touched[ix] = True

        def add_into(block: list[str], ix: str, c: str, uniq: bool) -> None:
            block.append(f"adj[{ix}] += {c}" if uniq
                         else f"add_at(adj, {ix}, broadcast_to({c}, {ix}.shape))")

        for k, step in enumerate(steps):
            kind = step[0]
            if kind == "chain":
                _, end, members, signs, uniq, runs = step
                ns[f"M{k}"], ns[f"SG{k}"] = members, signs
                terms = f"v[M{k}]" if signs is None else f"v[M{k}] * SG{k}"
                fwd.append(f"v[{end}] = cumsum({terms})[-1]")  # left to right, as the tape
                block = [f"c = adj[{end}]" if signs is None else f"c = adj[{end}] * SG{k}"]
                if runs is not None:
                    for r, run in enumerate(runs):
                        ns[f"R{k}_{r}"] = run
                        add_into(block, f"R{k}_{r}", "c", True)
                else:
                    add_into(block, f"M{k}", "c", uniq)
                rev.append(block)
                continue
            _, op, slots, arg_idx, unique, gather = step
            ns[f"S{k}"], ns[f"F{k}"], ns[f"P{k}"] = slots, op.fn, op.partials
            args = []
            for j, (ix, g) in enumerate(zip(arg_idx, gather)):
                ns[f"A{k}_{j}"] = ix
                if g:
                    fwd.append(f"a{k}_{j} = v[A{k}_{j}]")
                    args.append(f"a{k}_{j}")
                else:
                    args.append(f"A{k}_{j}")  # a constant, as it is
            if kind == "powc" and arg_idx[1] == 2.0:
                fwd.append(f"v[S{k}] = {args[0]} * {args[0]}")  # numpy's power(a, 2) is a*a
            else:
                fwd.append(f"v[S{k}] = F{k}({', '.join(args)})")
            block = [f"g = adj[S{k}]"]
            # (factor, kind of factor) per argument: the contribution is g * factor
            if kind == "add":
                factors = [("1", "one"), ("1", "one")]
            elif kind == "sub":
                factors = [("1", "one"), ("-1", "one")]
            elif kind == "neg":
                factors = [("-1", "one")]
            elif kind == "mul":
                factors = [(args[1], "any"), (args[0], "any")]
            elif kind == "powc":
                b = arg_idx[1]
                factors = [(f"(2.0 * {args[0]})" if b == 2.0 else
                            f"({literal(b)} * power({args[0]}, {literal(b - 1.0)}))", "any")]
            else:
                block.append(f"p = P{k}(({', '.join(args)},), v[S{k}])")
                factors = [(f"p[{j}]", "any") for j in range(op.arity)]
            for j, ((factor, what), uniq, first) in enumerate(
                    zip(factors, unique, firsts[k])):
                if uniq is None:
                    continue  # constants: no adjoint needed
                ix = f"A{k}_{j}"
                is_slice = isinstance(arg_idx[j], slice)
                if what == "one":
                    c = "g" if factor == "1" else "-g"
                    if first and is_slice and factor == "-1":
                        block.append(f"negative(g, out=adj[{ix}])")
                        continue
                elif first and is_slice:
                    block.append(f"multiply(g, {factor}, out=adj[{ix}])")
                    continue
                else:
                    c = f"g * {factor}"
                if first:
                    block.append(f"adj[{ix}] = {c}")
                else:
                    add_into(block, ix, c, uniq)
            rev.append(block)
        head = ["    with errstate(all='ignore'):", "        v = CONSTS.copy()",
                "        v[INPUTS] = x"]
        body = [f"        {line}" for line in fwd]
        value_src = "\n".join(["def value(x):", *head, *body,
                               f"        return float(v[{self.out}])", ""])
        back = [f"        {line}" for block in reversed(rev) for line in block]
        grad_src = "\n".join(["def value_and_grad(x):", *head, *body,
                              f"        adj = zeros({self.n})", f"        adj[{self.out}] = 1.0",
                              *back, f"        return float(v[{self.out}]), adj[INPUTS]", ""])
        self.source = value_src + grad_src
        return _build(value_src, dict(ns), "value"), _build(grad_src, dict(ns), "value_and_grad")

    def value(self, x) -> float:
        if self._functions is None:
            self._functions = self._generate()
        return self._functions[0](x)

    def value_and_grad(self, x):
        """(value, gradient array in input order) at ``x`` (an array in input order)."""
        if self._functions is None:
            self._functions = self._generate()
        return self._functions[1](x)


def levelled(tape: Tape) -> Levelled | None:
    """A :class:`Levelled` plan when the tape is big and its levels are wide, else None."""
    size = sum(op.__class__ is not str for op in tape.ops)
    if size < LEVELLED_MIN_SIZE:
        return None
    plan = Levelled(tape)
    return plan if plan.size >= LEVELLED_MIN_GROUP * plan.n_groups else None


# --------------------------------------------------------------------------- public object


class CompiledTape:
    """Fast sweeps for one tape; built lazily, cached on the tape's :class:`Function`.

    ``value(*xs)`` and ``value_and_grad(*xs)`` take the input values by position, in
    ``names`` order, and return Python floats (``value_and_grad`` returns ``(value, grads)``
    with ``grads`` a tuple in the same order). ``sweep_columns`` handles numpy columns."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.names: list[str] = list(tape.inputs)
        self.size = sum(op.__class__ is not str for op in tape.ops)
        self.calls = 0
        self._compiled = None
        self._interp = None
        self._blocks: dict[tuple[frozenset[int], frozenset[int], bool, bool], Callable] = {}
        self.source = ""  # the generated scalar source, once compiled (for inspection)
        self._levelled: Levelled | None | bool = None

    # -- plain interpreter, for the cases Python floats cannot do in IEEE fashion
    def _slow_value(self, *xs: float) -> float:
        from . import sweeps

        return float(sweeps.evaluate(self.tape, dict(zip(self.names, xs)))[self.tape.output])

    def _slow_grad(self, *xs: float):
        from . import sweeps

        value, grads, _, _ = sweeps.value_and_grad(self.tape, dict(zip(self.names, xs)))
        return float(value), tuple(float(grads[n]) for n in self.names)

    def compiled(self) -> tuple[Callable, Callable]:
        """(value, value_and_grad) as generated straight-line functions (compiles now)."""
        if self._compiled is None:
            value, grad, self.source = _scalar_functions(
                self.tape, self._slow_value, self._slow_grad)
            self._compiled = (value, grad)
        return self._compiled

    def levelled(self) -> Levelled | None:
        """The level-by-level numpy plan, when the tape is big and wide enough for one."""
        if self._levelled is None:
            self._levelled = levelled(self.tape) or False
        return self._levelled or None

    def value_and_grad_vector(self, x) -> tuple[float, Any]:
        """(value, gradient) with the inputs as one numpy array in ``names`` order (the
        natural form for thousands of inputs); the gradient is an array in the same order."""
        import numpy as np

        plan = self.levelled()
        if plan is not None:
            return plan.value_and_grad(np.asarray(x, dtype=np.float64))
        value, grads = self.value_and_grad(*np.asarray(x, dtype=np.float64).tolist())
        return value, np.array(grads)

    def value_vector(self, x) -> float:
        """Value with the inputs as one numpy array in ``names`` order."""
        import numpy as np

        plan = self.levelled()
        if plan is not None:
            return plan.value(np.asarray(x, dtype=np.float64))
        return self.value(*np.asarray(x, dtype=np.float64).tolist())

    @staticmethod
    def _levelled_functions(plan: Levelled) -> tuple[Callable, Callable]:
        import numpy as np

        def value(*xs: float) -> float:
            return plan.value(np.array(xs, dtype=np.float64))

        def value_and_grad(*xs: float):
            v, g = plan.value_and_grad(np.array(xs, dtype=np.float64))
            return v, tuple(g.tolist())

        return value, value_and_grad

    @staticmethod
    def _guard(fast: Callable, slow: Callable) -> Callable:
        def run(*xs: float):
            try:
                return fast(*xs)
            except _FALLBACK:
                return slow(*xs)
        return run

    def fast(self) -> tuple[Callable, Callable]:
        """(value, value_and_grad) at full speed, built now: the level-by-level plan for a
        big wide tape, else generated straight-line code."""
        if self._compiled is None:
            plan = self.levelled() if self.size > COMPILE_AT_ONCE else None
            if plan is not None:
                self._compiled = self._levelled_functions(plan)
            else:
                self.compiled()
        return self._compiled

    def auto(self) -> tuple[Callable, Callable]:
        """(value, value_and_grad) for one more call: the float interpreter while the tape has
        been used only a few times, then :meth:`fast` (what ``Function.grad`` uses)."""
        if self._compiled is not None:
            return self._compiled
        self.calls += 1
        if self.calls > (1 if self.size <= COMPILE_AT_ONCE else COMPILE_AFTER_CALLS):
            return self.fast()
        if self._interp is None:
            value, grad = _interpreter(self.tape)
            self._interp = (self._guard(value, self._slow_value),
                            self._guard(grad, self._slow_grad))
        return self._interp

    @property
    def value(self) -> Callable[..., float]:
        """The fast value function (positional floats in ``names`` order)."""
        return self.fast()[0]

    @property
    def value_and_grad(self) -> Callable[..., tuple[float, tuple[float, ...]]]:
        """The fast value-and-gradient function: ``value, grads = vg(*xs)``."""
        return self.fast()[1]

    # -- numpy columns
    def sweep_columns(self, xs: list, *, sum_value: bool = False,
                      wrt: list[str] | None = None):
        """Value and gradient over columns of data (some inputs arrays, some scalars).

        Rows are processed in blocks (:func:`block_rows`) on :data:`THREADS` threads. The
        gradient of a scalar input is the sum of its per-row contributions (block sums added in
        block order); an array input gets a per-row gradient. With ``sum_value`` the value is
        the sum over rows instead of the column of values. With ``wrt`` only those inputs get a
        gradient (the others get None), which saves a pass per data column."""
        import numpy as np

        names = self.names if wrt is None else wrt
        wanted = frozenset(self.tape.inputs[n] for n in names)
        columns = frozenset(s for s, x in zip(self.tape.inputs.values(), xs) if np.ndim(x) > 0)
        skip = [self.tape.inputs[n] not in wanted for n in self.names]
        consts = [np.float64(self.tape.consts[s]) for s in range(len(self.tape.ops))
                  if self.tape.ops[s] == CONST]
        xs = [np.float64(x) if np.ndim(x) == 0 else np.asarray(x, dtype=np.float64)
              for x in xs]
        arrays = [np.ndim(x) > 0 for x in xs]
        shapes = {np.shape(x) for x, a in zip(xs, arrays) if a}
        rows = next(iter(shapes))[0] if len(shapes) == 1 and len(next(iter(shapes))) == 1 \
            else None
        key = (wanted, columns, sum_value, rows is not None)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _array_function(
                self.tape, wanted, columns, sum_value, in_place=rows is not None)

        def finish(part, value, grads):
            out = []
            for g, x, is_arr, no in zip(grads, part, arrays, skip):
                if no:
                    g = None
                elif g is None:
                    g = np.zeros_like(x)
                elif not is_arr and np.ndim(g) > 0:
                    g = np.sum(g)
                elif is_arr and np.shape(g) != np.shape(x):
                    g = np.broadcast_to(g, np.shape(x)).copy()
                out.append(g)
            return value, out  # with sum_value the block has summed its rows already

        with np.errstate(all="ignore"):
            step = block_rows(block.columns)
            if rows is None or rows < 2 * step:
                ones = np.ones(np.broadcast_shapes(*shapes)) if shapes else np.float64(1.0)
                value, grads = finish(xs, *block(ones, *xs, *consts))
                if not sum_value and rows is not None and np.ndim(value) == 0:
                    value = np.full(rows, value)
                # Generated code may hand back an input column itself (d(x*y)/dx is y): the
                # caller gets arrays of its own, as from the interpreter.
                inputs = {id(x) for x, a in zip(xs, arrays) if a}
                grads = [g.copy() if id(g) in inputs else g for g in grads]
                return value, grads
            starts = list(range(0, rows, step))
            all_ones = np.ones(step)  # the per-row seed; generated code never writes to it
            first = arrays.index(True)

            def run_range(chunk: list[int]) -> list:
                results = []
                with np.errstate(all="ignore"):
                    for start in chunk:
                        sl = slice(start, start + step)
                        part = [x[sl] if a else x for x, a in zip(xs, arrays)]
                        ones = all_ones[:len(part[first])]
                        results.append(finish(part, *block(ones, *part, *consts)))
                return results

            per = -(-len(starts) // THREADS)
            chunks = [starts[i:i + per] for i in range(0, len(starts), per)]
            if THREADS > 1 and len(chunks) > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(len(chunks)) as pool:
                    parts = [r for rs in pool.map(run_range, chunks) for r in rs]
            else:
                parts = [r for c in chunks for r in run_range(c)]
            if sum_value:
                value = np.float64(0.0)
                for v, _ in parts:
                    value = value + v
            else:
                value = np.concatenate([np.broadcast_to(v, (min(step, rows - s),))
                                        for (v, _), s in zip(parts, starts)])
            grads = []
            for k, is_arr in enumerate(arrays):
                pieces = [p[1][k] for p in parts]
                if skip[k]:
                    grads.append(None)
                elif is_arr:
                    grads.append(np.concatenate(pieces))
                else:
                    total = np.float64(0.0)
                    for g in pieces:
                        total = total + g
                    grads.append(total)
        return value, grads


__all__ = ["CompiledTape", "SCALAR_NAMES", "literal"]
