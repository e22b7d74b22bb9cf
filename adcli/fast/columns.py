"""Columns of data: generated numpy code over blocks of rows, on a small thread pool.

A data sweep runs the tape once per block of rows (cache-sized, :func:`block_rows`) as one
generated numpy function per (wanted gradients, data columns) combination. The code is written
from the op templates with the names bound to numpy kernels (:data:`adcli.ops.NUMPY_NAMES`),
specialised on op data (``unit_partials``, ``bilinear``, ``const_exponent``), never on op
names. numpy releases the GIL, so blocks may run on threads; the per-block gradients of scalar
parameters are summed in a fixed order, so results never depend on thread timing. Block sizes
and their measurements: bench/README.md.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.tape import CONST, VAR, Tape
from ..errors import AdcliError
from ..ops import NUMPY_NAMES
from ..ops.codegen import build, fill, literal

#: The most rows per block in data sweeps. A block has as many rows as keep its columns (the
#: varying values; their adjoints reuse about as much) within :data:`BLOCK_VALUES` float64
#: numbers, halving from here down to 8192, so small losses run in few, long blocks and big
#: programs keep their temporaries in cache.
BLOCK_ROWS = 65536
BLOCK_VALUES = 2**19
#: ... and never more than this many in one block, below the 8192-row floor too: a program of a
#: million nodes over few rows would otherwise hold all its temporaries at once.
MAX_BLOCK_VALUES = 2**23
#: Threads for data sweeps over many rows; None: ``ADCLI_THREADS`` if set, else 2 on a machine
#: with more than two cores, else 1 (on two cores threads measured slower than one: the other
#: core is busy with the OS). Read at each sweep, not at import, so a caller can set it late.
THREADS: int | None = None


def threads(default: int | None = None) -> int:
    """The number of threads a data sweep uses (see :data:`THREADS`); ``default``: instead of
    the data sweeps' own when neither is set (the levelled sweeps' helper work is
    compute-bound: it pays on two cores)."""
    if THREADS is not None:
        return THREADS
    if default is None:
        default = 2 if (os.cpu_count() or 1) > 2 else 1
    text = os.environ.get("ADCLI_THREADS", "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_THREADS):
        raise AdcliError(f"ADCLI_THREADS={text[:40]!r} is not a number of threads: write a "
                         f"whole number from 1 to {MAX_THREADS}, or unset it")
    return int(text)


#: The most threads ``ADCLI_THREADS`` may ask for (each holds a block of columns).
MAX_THREADS = 64


_PLACES = re.compile(r"\{(\d|o)\}")  # the placeholders of a template


def block_rows(columns: int) -> int:
    """Rows per block for a block function with ``columns`` varying values."""
    rows = BLOCK_ROWS
    while rows > 8192 and rows * columns > BLOCK_VALUES:
        rows //= 2
    while rows > 1 and rows * columns > MAX_BLOCK_VALUES:
        rows //= 2
    return rows


#: Row dot products are taken in pieces of this many rows (see :func:`_row_dot`).
DOT_ROWS = 8192


def _row_dot(g, p):
    """The sum over rows of ``g * p`` for a column ``g``: BLAS dots instead of a product
    column and a sum (the same sum in another order). One dot per :data:`DOT_ROWS` rows (one
    stacked ``matmul``), the pieces summed in order: OpenBLAS splits a dot of more than 10,000
    numbers between its threads, so its bits changed with the number of cores and
    ``OPENBLAS_NUM_THREADS``, and on a busy machine a block waited for a descheduled
    OpenBLAS thread (bench/README.md has the measurement)."""
    if np.ndim(p) == 0:
        return np.sum(g) * p
    if g.ndim == 1 and g.shape == p.shape:
        whole = len(g) - len(g) % DOT_ROWS
        if whole == 0:
            return np.dot(g, p)
        pieces = np.matmul(g[:whole].reshape(-1, 1, DOT_ROWS), p[:whole].reshape(-1, DOT_ROWS, 1))
        total = np.add.reduce(pieces.reshape(-1))
        return total + np.dot(g[whole:], p[whole:]) if whole < len(g) else total
    return np.sum(g * p)


def _array_function(tape: Tape, wanted: frozenset[int], columns: frozenset[int],
                    sum_value: bool = False, in_place: bool = False) -> Callable:
    """Generated numpy code for one block of rows: values and adjoints (seed 1).

    Calls each op's numpy kernel (``fn``) and writes its partial templates inline with numpy
    names (the interpreter's ``Op.partials`` computes the same expressions), specialised on op
    data: ±1 partials pass the adjoint through, a bilinear op's partials are its arguments, and
    a constant exponent differentiates as b*a^(b-1). Only partials somebody needs are
    computed. Adjoints of inputs not in ``wanted`` (slots) are not accumulated: data columns
    need none.

    ``columns`` are the input slots holding arrays. As in :func:`adcli.core.sweeps.reverse`, an
    output that varies over rows is seeded with one 1 per row (``ONES``), so a term that does
    not depend on the rows is still counted once per row; ``1 * p`` is written as ``p`` only
    where ``p`` is known to be a full column (it reads a varying value; bit for bit the same).

    A slot that does not vary over rows (a parameter, or an expression of parameters) only
    ever needs its adjoint summed over the rows, so the sum is taken where a column first
    flows into it (``ROWDOT(g, p)``, a dot product) and everything below it runs on scalars.
    With ``sum_value`` the block returns the sum of the output over its rows (a dot product
    for a squared or multiplied output, whose column is then never formed).

    With ``in_place`` (every column 1-D and of one length, so every varying value has the
    block's shape) a numpy ufunc writes its result into an operand that it reads for the last
    time, if that operand is a column the block computed itself: fewer fresh arrays, hotter
    cache."""
    ns: dict[str, Any] = {**NUMPY_NAMES, "ONE": np.float64(1.0), "POW": np.power, "SUM": np.sum,
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
        square = op.const_exponent and const(args[1]) == 2.0
        if sum_value and slot == out and varying[out] and (
                square or op.bilinear and varying[args[0]] and varying[args[1]]):
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
        # parts: (exact factor, text) of each local partial; full: whether it is a column
        if op.unit_partials is not None:  # add, sub, neg: the adjoint passes through
            parts = tuple((u, "1") for u in op.unit_partials)
            full_column = (False,) * op.arity
        elif op.const_exponent and const(args[1]) not in (None, 0.0) and not need[1]:
            b = const(args[1])
            parts = ((2.0, f"v{args[0]}") if b == 2.0 else
                     (1.0, f"({literal(b)} * POW(v{args[0]}, {literal(b - 1.0)}))"), (1.0, ""))
            full_column = (varying[args[0]], False)
        else:  # the op's partial templates, inline (a bilinear op's are its arguments)
            names = [f"v{a}" for a in args]
            parts = tuple((1.0, names[j] if j is not None else f"({fill(t, names, f'v{slot}')})")
                          for t, j in zip(op.partial, op.arg_partials))
            reads = [[slot if m == "o" else args[int(m)] for m in _PLACES.findall(t)]
                     for t in op.partial]
            full_column = tuple(any(varying[r] for r in rs) for rs in reads)
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
    block = build(src, ns, "block")
    block.columns = sum(varying)  # for block_rows
    return block


def sweep_columns(tape: Tape, blocks: dict, xs: list, *, sum_value: bool = False,
                  wrt: list[str] | None = None):
    """Value and gradient over columns of data (some inputs arrays, some scalars).

    Rows are processed in blocks (:func:`block_rows`) on :func:`threads`. The
    gradient of a scalar input is the sum of its per-row contributions (block sums added in
    block order); an array input gets a per-row gradient. With ``sum_value`` the value is
    the sum over rows instead of the column of values. With ``wrt`` only those inputs get a
    gradient (the others get None), which saves a pass per data column. ``blocks`` caches
    the generated block functions of this tape."""
    names = list(tape.inputs) if wrt is None else wrt
    wanted = frozenset(tape.inputs[n] for n in names)
    columns = frozenset(s for s, x in zip(tape.inputs.values(), xs) if np.ndim(x) > 0)
    skip = [tape.inputs[n] not in wanted for n in list(tape.inputs)]
    consts = [np.float64(tape.consts[s]) for s in range(len(tape.ops))
              if tape.ops[s] == CONST]
    xs = [np.float64(x) if np.ndim(x) == 0 else np.asarray(x, dtype=np.float64)
          for x in xs]
    arrays = [np.ndim(x) > 0 for x in xs]
    shapes = {np.shape(x) for x, a in zip(xs, arrays) if a}
    rows = next(iter(shapes))[0] if len(shapes) == 1 and len(next(iter(shapes))) == 1 \
        else None
    key = (wanted, columns, sum_value, rows is not None)
    block = blocks.get(key)
    if block is None:
        block = blocks[key] = _array_function(
            tape, wanted, columns, sum_value, in_place=rows is not None)

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
        parts: list = [None] * len(starts)
        claim = itertools.count()  # next() is atomic: each block is taken by one thread

        def work() -> None:
            with np.errstate(all="ignore"):
                while (i := next(claim)) < len(starts):
                    sl = slice(starts[i], starts[i] + step)
                    part = [x[sl] if a else x for x, a in zip(xs, arrays)]
                    ones = all_ones[:len(part[first])]
                    parts[i] = finish(part, *block(ones, *part, *consts))

        helpers = min(threads(), len(starts)) - 1
        if helpers > 0:  # the caller takes blocks too: a busy helper never holds it up
            from . import helper  # here: start-up needs no threads

            tasks = [helper.submit(work, helpers=helpers) for _ in range(helpers)]
            work()
            for task in tasks:
                task.join()
        else:
            work()
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
