"""Big wide tapes level by level: a few numpy operations per level instead of one Python
operation per node (see :class:`Levelled`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.tape import CONST, VAR, Tape
from ..ops import OPS, Op, partials_of
from ..ops.codegen import build, literal
from .columns import threads
from .helper import submit

#: Big tapes whose instructions fall into few (level, op) groups run level by level in numpy
#: (faster for big tapes, but not bit for bit: straight-line code is; see bench/README.md).
LEVELLED_MIN_SIZE = 2000
#: ... when each group holds at least this many instructions on average.
LEVELLED_MIN_GROUP = 40
#: Partials of steps this big may run on a helper thread (``threaded`` in ``_generate``).
THREAD_MIN = 16384


def _size(ix: Any) -> int:  # how many slots an index (a slice or an index array) names
    return len(range(ix.start, ix.stop, ix.step or 1)) if isinstance(ix, slice) else len(ix)


def _is_link(op: Op) -> bool:
    """A link of a sum chain: a binary op that is a + b or a - b (partials (1, ±1))."""
    return op.arity == 2 and op.unit_partials is not None and op.unit_partials[0] == 1.0


def _index(slots) -> Any:
    """Index array -> a slice when the slots are evenly spaced (views instead of gathers)."""
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
    such a chain becomes one ``np.add.reduce`` (pairwise: error ~log n, not n; an ordered
    ``cumsum`` took a quarter of W2's sweep) and every link has the chain's adjoint. Results
    equal the interpreter's to rounding: numpy's array kernels may differ from its scalar
    ones in the last bit, and sums (of terms, of adjoints) are taken in another order.
    """

    def __init__(self, tape: Tape, min_group: float = 0.0) -> None:
        """``min_group``: stop after the grouping (``wide`` False, no plan built) when the
        groups hold fewer instructions than this on average: a deep narrow tape's plan would
        cost far more memory than its sweeps (a 990,000-deep chain: over a gigabyte)."""
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
            if op.__class__ is str or not _is_link(op) or slot in chain_of:
                continue
            links = [slot]
            cur = slot
            while True:
                first = args[cur][0]
                fop = ops[first]
                if fop.__class__ is str or not _is_link(fop) or uses[first] != 1:
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
        # The groups of each level, by op name (one pass: a deep chain has as many levels as
        # groups, and scanning every group at every level was quadratic in the depth).
        by_level: dict[int, list[tuple[str, list[int]]]] = {}
        for (glv, name), slots in sorted(groups.items()):
            by_level.setdefault(glv, []).append((name, slots))
        # A sum chain whose terms are whole groups, one after another (the sin terms, then
        # the products), gets those groups laid out next to each other in its order: its
        # terms are then one view, summed without first joining them into a new array.
        group_of = {s: key for key, slots in groups.items() for s in slots}
        together: dict[tuple[int, str], list[tuple[int, str]]] = {}
        for links in ends.values():
            members = [args[links[0]][0]] + [args[k][1] for k in links]
            seq: list[tuple[int, str]] = []
            i = 0
            while i < len(members):
                key = group_of.get(members[i])
                if key is None or key in together or key in seq:
                    break
                if members[i:i + len(groups[key])] != groups[key]:
                    break
                seq.append(key)
                i += len(groups[key])
            if i == len(members) and len(seq) > 1:
                for key in seq:
                    together[key] = seq
        for lv in range(1, top + 1):
            for name, slots in by_level.get(lv, ()):
                if pos[slots[0]] >= 0:
                    continue  # laid out with its chain's other groups
                for key in together.get((lv, name), [(lv, name)]):
                    for slot in groups[key]:
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
        self.wide = self.size >= min_group * self.n_groups
        if not self.wide:
            return
        # A term used only by its chain has the chain's adjoint, one number (times the link's
        # sign): a group made only of such terms needs no adjoint array of its own.
        term_of: dict[int, tuple[int, float]] = {}  # slot -> (chain end slot, sign)
        for end, links in ends.items():
            members = [args[links[0]][0]] + [args[k][1] for k in links]
            signs_ = [1.0] + [ops[k].unit_partials[1] for k in links]
            for m, sign in zip(members, signs_):
                if uses[m] == 1:
                    term_of[m] = (pos[end], sign)
        plan = []  # per level: [("op", Op, slots, [arg index arrays], [unique?]) | ("chain", ...)]
        for lv in range(1, top + 1):
            steps = []
            for name, slots in by_level.get(lv, ()):
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
                if op.const_exponent and isinstance(arg_idx[1], float) and arg_idx[1] != 0.0:
                    kind = "powc"  # constant exponent: only d/dbase, as in the array path
                if op.unit_partials is not None:
                    kind = "unit"  # the adjoint passes through: no multiply by 1
                elif op.bilinear:
                    kind = "bilinear"  # the partials are the arguments
                uniform = term_of.get(slots[0])
                if uniform is not None and any(term_of.get(s) != uniform for s in slots):
                    uniform = None
                steps.append((kind, op, _index([pos[s] for s in slots]), arg_idx, unique,
                              gather, uniform))
            for end in chains.get(lv, []):
                links = ends[end]
                members = np.array([pos[args[links[0]][0]]] + [pos[args[k][1]] for k in links],
                                   dtype=np.intp)
                signs = np.array([1.0] + [ops[k].unit_partials[1] for k in links])
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
                # the output's adjoint is the seed, 1.0, when nothing else reads the output
                seeded = end == tape.output and uses[end] == 0
                steps.append(("chain", pos[links[-1]], _index(members), signs, unique, runs,
                              seeded))
            plan.append(steps)
        self.plan = plan
        consts = np.zeros(n)
        consts[pos] = [float(c) for c in tape.consts]
        self.consts = consts
        # The constants' slots (they follow the inputs): all a sweep must fill in before it
        # runs, every other slot is written before it is read.
        n_vars = sum(op == VAR for op in ops)
        self.const_slots = slice(n_vars, n_vars + sum(op == CONST for op in ops))
        self.inputs = _index([pos[s] for s in tape.inputs.values()])  # a slice: 0..n-1
        self.out = pos[tape.output]
        self.n = n
        self._functions: tuple[Callable, Callable] | None = None  # generated on first use
        self._threaded: bool | None = None  # whether a helper thread has anything to do
        self._threaded_grad: Callable | None = None
        self.source = ""
        self.threaded_source = ""

    def _generate(self, threaded: bool = False) -> tuple[Callable, Callable]:
        """The plan as straight-line numpy code: one function for the value, one for value and
        gradient, with every index, constant and kernel bound by name (``S3``, ``A3_0``,
        ``F3``: step numbers only, never user text). Running the plan step by step spent as
        much time deciding what to do as doing it.

        ``threaded``: the partials of big op steps (``cos`` for ``sin``) run on a helper thread
        from the moment their arguments are known until the reverse sweep needs them
        (:mod:`adcli.fast.helper`: each is claimed by the first thread to reach it, so the
        numbers do not depend on it). The output's sum chain on the helper too (when it was a
        sequential ``cumsum``, overlapping the reverse sweep) measured no faster: waiting for
        it costs the wake-up it saves."""
        ns: dict[str, Any] = {"np": np, "CONSTS": self.consts, "INPUTS": self.inputs,
                              "add_reduce": np.add.reduce, "zeros": np.zeros, "power": np.power,
                              "multiply": np.multiply, "negative": np.negative,
                              "add_at": np.add.at, "broadcast_to": np.broadcast_to,
                              "errstate": np.errstate, "empty": np.empty,
                              "concatenate": np.concatenate,
                              "CVALS": self.consts[self.const_slots].copy()}
        fwd: list[str] = []
        rev: list[list[str]] = []
        steps = [step for level in self.plan for step in level]
        early: set[int] = set()  # steps whose partials or value a helper may compute
        if threaded:
            ns["submit"] = submit
            for k, step in enumerate(steps):
                size = _size(step[2])
                if step[0] == "op" and size >= THREAD_MIN:
                    early.add(k)
        read = np.zeros(self.n, dtype=bool)  # slots the forward sweep reads from ``v``
        read[self.out] = True
        # The reverse sweep, planned backwards. Where it reaches a slot's adjoint for the first
        # time it writes the contribution instead of adding it to 0 (the interpreter does the
        # same, so -0.0 stays -0.0), straight into the adjoint array (``out=``) where it can.
        # ``written``: slots whose adjoint holds a value; ``zero``: slots read before that
        # (only those are zeroed: the adjoint array starts empty).
        written = np.zeros(self.n, dtype=bool)
        written[self.out] = True
        zero = np.zeros(self.n, dtype=bool)
        # A group all of whose slots are terms of one chain takes the chain's adjoint as one
        # number: nothing is written for it (``elided``); ``scalar[chain end]`` names that
        # number, and ``one`` holds the chain ends whose adjoint is the seed, exactly 1.0.
        elided = np.zeros(self.n, dtype=bool)
        chain_step = {step[1]: k for k, step in enumerate(steps) if step[0] == "chain"}
        for k, step in enumerate(steps):  # (a chain runs after its terms: it is planned first)
            if step[0] != "chain" and step[6] is not None and chain_step[step[6][0]] > k:
                elided[step[2]] = True
        scalar: dict[int, str] = {}
        one: set[int] = set()

        def reads(ix: Any) -> None:
            """The reverse sweep reads the adjoints at ``ix``."""
            zero[ix] |= ~written[ix]

        def contribute(block: list[str], ix: str, index: Any, uniq: bool | None,
                       fn: str, operands: tuple[str, ...]) -> None:
            """adj[ix] (+)= fn(*operands), fn one of "copy", "negative", "multiply"."""
            is_slice = isinstance(index, slice)
            first = bool(uniq) and not written[index].any()
            if first and is_slice and fn != "copy":
                block.append(f"{fn}({', '.join(operands)}, out=adj[{ix}])")
            else:
                text = {"copy": "{0}", "negative": "-{0}", "multiply": "{0} * {1}"}[fn]
                value = text.format(*operands)
                if first:
                    block.append(f"adj[{ix}] = {value}")
                elif uniq:
                    reads(index)
                    block.append(f"adj[{ix}] += {value}")
                else:
                    reads(index)
                    block.append(f"add_at(adj, {ix}, broadcast_to({value}, {ix}.shape))")
            written[index] = True

        for k in range(len(steps) - 1, -1, -1):
            step = steps[k]
            block: list[str] = []
            if step[0] == "chain":
                _, end, members, signs, uniq, runs, seeded = step
                ns[f"M{k}"], ns[f"SG{k}"] = members, signs
                reads(end)
                block.append(f"c{k} = adj[{end}]")
                scalar[end] = f"c{k}"
                if seeded:
                    one.add(end)
                if runs is not None:  # plain sum: the adjoint is c for every term
                    for r, run in enumerate(runs):
                        ns[f"R{k}_{r}"] = run
                        if not elided[run].all():
                            contribute(block, f"R{k}_{r}", run, True, "copy", (f"c{k}",))
                elif signs is None:
                    contribute(block, f"M{k}", members, uniq, "copy", (f"c{k}",))
                else:
                    contribute(block, f"M{k}", members, uniq, "multiply", (f"c{k}", f"SG{k}"))
                rev.append(block)
                continue
            kind, op, slots, arg_idx, unique, gather, uniform = step
            args = [f"a{k}_{j}" if g else f"A{k}_{j}" for j, g in enumerate(gather)]
            # g: the adjoint of the group's slots, as ("array" | "scalar" | "one", text, sign)
            if uniform is not None and elided[slots].all():
                end, sign = uniform
                g_kind = "one" if end in one else "scalar"
                g_text, g_sign = scalar[end], sign
            else:
                reads(slots)
                block.append(f"g = adj[S{k}]")
                g_kind, g_text, g_sign = "array", "g", 1.0
            if g_kind == "scalar" and g_sign != 1.0:
                block.append(f"g = -{g_text}")  # negation is exact
                g_text, g_sign = "g", 1.0
            # (kind of factor, text) per argument: the contribution is g * factor
            if kind == "unit":
                factors = [("unit", u) for u in op.unit_partials]
            elif kind == "bilinear":
                factors = [("array", args[j]) for j in op.arg_partials]
            elif kind == "powc":
                b = arg_idx[1]
                factors = [("twice", args[0]) if b == 2.0 else
                           ("array", f"({literal(b)} * power({args[0]}, {literal(b - 1.0)}))")]
            else:
                block.append(f"p = T{k}.join()" if k in early
                             else f"p = P{k}(({', '.join(args)},), v[S{k}])")
                factors = [("array", f"p[{j}]") for j in range(op.arity)]
            for j, ((what, factor), uniq) in enumerate(zip(factors, unique)):
                if uniq is None:
                    continue  # constants: no adjoint needed
                ix, index = f"A{k}_{j}", arg_idx[j]
                if what == "unit":  # the contribution is ±g
                    sign = factor * g_sign
                    if g_kind == "one":
                        contribute(block, ix, index, uniq, "copy", (literal(sign),))
                    else:
                        contribute(block, ix, index, uniq,
                                   "copy" if sign == 1.0 else "negative", (g_text,))
                    continue
                if what == "twice":  # g * (2.0 * a): the doubling is exact, in any order
                    first = bool(uniq) and not written[index].any()
                    if first and isinstance(index, slice):
                        block.append(f"multiply({factor}, 2.0, out=adj[{ix}])")
                        if g_kind != "one" or g_sign != 1.0:
                            block.append(f"multiply(adj[{ix}], "
                                         f"{g_text if g_kind != 'one' else '-1.0'}, "
                                         f"out=adj[{ix}])")
                        written[index] = True
                        continue
                    factor = f"(2.0 * {factor})"
                if g_kind == "one":  # 1.0 * f is f, bit for bit
                    contribute(block, ix, index, uniq,
                               "copy" if g_sign == 1.0 else "negative", (factor,))
                else:
                    contribute(block, ix, index, uniq, "multiply", (g_text, factor))
            rev.append(block)
        reads(self.inputs)  # the gradient: inputs nobody reached are 0
        for k, step in enumerate(steps):
            kind = step[0]
            if kind == "chain":
                _, end, members, signs, uniq, runs, _seeded = step
                terms = f"v[M{k}]" if signs is None else f"v[M{k}] * SG{k}"
                if runs is not None:  # the terms as views, joined by one copy (no gather)
                    views = ", ".join(f"v[R{k}_{r}]" for r in range(len(runs)))
                    terms = f"concatenate(({views}))" if len(runs) > 1 else views
                read[members] = True
                fwd.append(f"v[{end}] = add_reduce({terms})")  # pairwise, see the class
                continue
            _, op, slots, arg_idx, unique, gather, _uniform = step
            ns[f"S{k}"], ns[f"F{k}"], ns[f"P{k}"] = slots, op.fn, partials_of(op)
            args = []
            for j, (ix, g) in enumerate(zip(arg_idx, gather)):
                ns[f"A{k}_{j}"] = ix
                if g:
                    read[ix] = True
                    fwd.append(f"a{k}_{j} = v[A{k}_{j}]")
                    args.append(f"a{k}_{j}")
                else:
                    args.append(f"A{k}_{j}")  # a constant, as it is
            # Partials that read only the arguments start before the value, the others after.
            reads_out = any("{o}" in t for t in op.partial)
            task = f"T{k} = submit(P{k}, ({', '.join(args)},), {f'v[S{k}]' if reads_out else None})"
            if k in early and not reads_out:
                fwd.append(task)
            # Results straight into their slots when those are a slice (a view): the ufunc
            # writes there, no temporary array and no copy (the same bits).
            into = isinstance(slots, slice)
            if kind == "powc" and arg_idx[1] == 2.0:  # numpy's power(a, 2) is a*a
                fwd.append(f"multiply({args[0]}, {args[0]}, out=v[S{k}])" if into
                           else f"v[S{k}] = {args[0]} * {args[0]}")
            elif into and isinstance(op.fn, np.ufunc) and op.fn.nout == 1:
                fwd.append(f"F{k}({', '.join(args)}, out=v[S{k}])")
            else:
                fwd.append(f"v[S{k}] = F{k}({', '.join(args)})")
            if k in early and reads_out:
                fwd.append(task)
        # Only the constants' slots that the sweep reads need values before it: an empty
        # array and one slice copy (constant columns are bound as arrays, never read from v).
        c = self.const_slots
        fill_consts = c.stop > c.start and read[c].any()
        head = ["    with errstate(all='ignore'):", f"        v = empty({self.n})",
                *([f"        v[{c.start}:{c.stop}] = CVALS"] if fill_consts else []),
                "        v[INPUTS] = x"]
        body = [f"        {line}" for line in fwd]
        value_src = "\n".join(["def value(x):", *head, *body,
                               f"        return float(v[{self.out}])", ""])
        if threaded:  # a value alone has nothing to overlap: the plain function
            value_src = ""
        # Only adjoints read before they are written need a 0 first.
        n_zero = int(zero.sum())
        if n_zero > self.n // 4:
            start = [f"        adj = zeros({self.n})"]
        else:
            start = [f"        adj = empty({self.n})"]
            if n_zero:
                ns["ZERO"] = _index(np.flatnonzero(zero))
                start.append("        adj[ZERO] = 0.0")
        back = [f"        {line}" for block in rev for line in block]
        grad_src = "\n".join(["def value_and_grad(x):", *head, *body, *start,
                              f"        adj[{self.out}] = 1.0",
                              *back,
                              f"        return float(v[{self.out}]), adj[INPUTS]", ""])
        self.source = value_src + grad_src
        value = build(value_src, dict(ns), "value") if value_src else None
        return value, build(grad_src, dict(ns), "value_and_grad")

    def value(self, x) -> float:
        if self._functions is None:
            self._functions = self._generate()
        return self._functions[0](x)

    def value_and_grad(self, x):
        """(value, gradient array in input order) at ``x`` (an array in input order)."""
        if self._functions is None:
            self._functions = self._generate()
        if self._threaded is None:
            self._threaded = any(step[0] == "op" and _size(step[2]) >= THREAD_MIN
                                 for level in self.plan for step in level)
        if self._threaded and threads(min(2, os.cpu_count() or 1)) > 1:
            if self._threaded_grad is None:
                source = self.source
                self._threaded_grad = self._generate(threaded=True)[1]
                self.threaded_source, self.source = self.source, source
            return self._threaded_grad(x)
        return self._functions[1](x)


def levelled(tape: Tape) -> Levelled | None:
    """A :class:`Levelled` plan when the tape is big and its levels are wide, else None."""
    size = sum(op.__class__ is not str for op in tape.ops)
    if size < LEVELLED_MIN_SIZE:
        return None
    plan = Levelled(tape, min_group=LEVELLED_MIN_GROUP)
    return plan if plan.wide else None
