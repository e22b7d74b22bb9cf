"""Symbolic derivatives: the reverse sweep run on expressions instead of numbers.

The tape is walked backwards exactly like :func:`adcli.core.sweeps.reverse`, but each adjoint is an
expression tree built from the op table's symbolic rules (``Op.derivative``), so there is one
copy of every rule.  Every tape slot becomes exactly one :class:`~adcli.core.syntax.Node`, and the
adjoint of a slot is built once from the list of its contributions, so the derivative of a DAG is
a DAG of size proportional to the tape (the squaring chain ``a2 = a1*a1; ...`` does not swell).
Arguments that do not depend on an input (a constant exponent) get no derivative at all.

:func:`simplify` then tidies the result for people: constant folding, ``0``/``1`` identities,
numeric coefficients combined, like terms and like factors collected, ``--x`` -> ``x``,
``x^1`` -> ``x``, and a factor of every term of a small sum written once (``a + a*b`` ->
``a*(1 + b)``).  It is memoised per node and iterative, and it only flattens sums and products
through nodes used once, so shared subexpressions stay shared.  Coefficients are
:class:`~adcli.derive.exact.Coef` numbers: exact (``sqrt(2/pi)``, ``1/2``) where they can be, so
``erf(x/sqrt(2))`` differentiates to ``sqrt(2/pi)*exp(-x^2/2)``; a function of a constant
(``log(2)``) stays as written.

Known differences from the numeric rules (documented, not hidden):

* d/dy x^y is ``x^y*log(x)``: nan at x = 0 where the numeric rule gives 0 (and nan for x < 0,
  like the numeric rule).
* Collecting like terms and factors uses algebra that holds where the function is finite:
  ``x/x`` -> ``1`` and ``x - x`` -> ``0`` even at points where the unsimplified form is nan.
* ``d/dx x^y`` with a varying y prints as ``y*x^y/x`` when the program has ``x^y`` (shared, and
  ``x^x`` collects to ``x^x*(1 + log(x))``): nan at x = 0, where ``y*x^(y-1)`` may be finite.
* ``d/dx x^n = n*x^(n-1)`` with constant n: the numeric rule returns exactly 0 when n = 0, the
  symbolic one folds ``0*...`` to 0 too, but ``x^(n-1)`` at x = 0 with n < 1 is inf, as in maths.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np

from ..core import syntax as S
from ..core.syntax import Node
from ..core.tape import CONST, VAR, Tape
from ..errors import AdcliError
from ..ops import OPS, RuleBuilder, apply, const_key
from .exact import Coef, parts, recognise


class Derivative:
    """The derivatives of a tape's output with respect to some inputs, as expression DAGs.

    ``exprs[name]`` is d output / d name; ``names`` maps nodes (by id) to the user's names for
    them (input variables and let bindings), which the unparser reuses.
    """

    def __init__(self, exprs: dict[str, Node], names: dict[int, str],
                 node_of_slot: list[Node], kept: list[Node] | None = None) -> None:
        self.exprs = exprs
        self.names = names
        self.node_of_slot = node_of_slot
        self.kept = kept or []  # nodes the rules asked to keep whole (ops.RuleBuilder)


def tape_nodes(tape: Tape) -> list[Node]:
    """One expression node per slot, sharing children exactly as the tape shares slots."""
    nodes: list[Node] = []
    for slot, (op, args) in enumerate(zip(tape.ops, tape.args)):
        if op == VAR:
            nodes.append(S.var(tape.labels[slot]))
        elif op == CONST:
            nodes.append(S.const(tape.consts[slot]))
        else:
            nodes.append(S.call(op.name, *(nodes[a] for a in args)))
    return nodes


class _KeepNumbers:
    """The smart constructors of :mod:`adcli.core.syntax` for the rules, except that
    arithmetic on two numbers is left as written: simplification does it exactly
    (``sqrt(2)*sqrt(2)`` is 2 there, 2.0000000000000004 in floats)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(S, name)

    @staticmethod
    def _numbers(a: Node, b: Node, identity: float) -> bool:
        """Two numbers, neither 0 nor the op's identity (those simplify exactly at once)."""
        return (a.op == "const" and b.op == "const"
                and not {a.value, b.value} & {0.0, identity})

    def add(self, a: Node, b: Node) -> Node:
        return S.call("add", a, b) if self._numbers(a, b, 0.0) else S.add(a, b)

    def sub(self, a: Node, b: Node) -> Node:
        return S.call("sub", a, b) if self._numbers(a, b, 0.0) else S.sub(a, b)

    def mul(self, a: Node, b: Node) -> Node:
        return S.call("mul", a, b) if self._numbers(a, b, 1.0) else S.mul(a, b)

    def div(self, a: Node, b: Node) -> Node:
        return S.call("div", a, b) if self._numbers(a, b, 1.0) else S.div(a, b)


_E = _KeepNumbers()


def _sum(terms: list[Node]) -> Node:
    total = terms[0]
    for term in terms[1:]:
        total = _E.add(total, term)
    return total


def gradient(tape: Tape, wrt: Iterable[str] | None = None) -> Derivative:
    """d output / d name for each name in ``wrt`` (default: every input), unsimplified.

    Reverse accumulation over the tape: the adjoint of a slot is complete once every later slot
    has been visited, so it is summed once from its contributions and then pushed to its
    arguments through ``Op.derivative``.
    """
    names = list(tape.inputs) if wrt is None else list(wrt)
    if len(tape) > MAX_TAPE_NODES:
        raise AdcliError(f"the tape has {len(tape):,} nodes; symbolic derivatives (diff, "
                         f"hessian, newton) are limited to {MAX_TAPE_NODES:,}, because they "
                         "need several times its memory")
    nodes = tape_nodes(tape)
    contributions: list[list[Node] | None] = [None] * len(tape.ops)
    contributions[tape.output] = [S.const(1.0)]
    active = tape.active
    rules = RuleBuilder(_E)
    for slot, op, args in reversed(tape.instructions()):
        terms = contributions[slot]
        if not terms or not active[slot]:
            continue
        contributions[slot] = None  # done with it; frees the list
        adj = _sum(terms)
        partials = op.derivative(rules, tuple(nodes[a] for a in args), nodes[slot])
        for a, p in zip(args, partials):
            if active[a]:
                bucket = contributions[a]
                if bucket is None:
                    bucket = contributions[a] = []
                bucket.append(_E.mul(adj, p))
    exprs: dict[str, Node] = {}
    for name in names:
        slot = tape.inputs.get(name)
        terms = contributions[slot] if slot is not None else None
        exprs[name] = _sum(terms) if terms else S.const(0.0)
    labels = {id(nodes[slot]): label for slot, label in tape.labels.items()}
    return Derivative(exprs, labels, nodes, rules.kept)


# --------------------------------------------------------------------------- simplification

SMALL = 32  # forms larger than this are never copied or rescaled, only referenced
#: Tapes larger than this get no symbolic derivative: the unsimplified gradient has up to ~10
#: nodes per tape node.
MAX_TAPE_NODES = 250_000
#: New nodes one simplification may create (the size budget of ``adcli diff``'s result). Most
#: derivatives need about one per tape node, but a tower x^x^...^x needs ~40 per level and
#: ~1 kB each: 500,000 keep the run under about 1 GB.
MAX_NEW_NODES = 500_000


class _Builder:
    """Interns nodes by structure, so equal subexpressions are the same object (like terms are
    found by identity) and every node has a serial number (a canonical order for terms and
    factors: inputs first, in order of first use, then the program's nodes, then new ones)."""

    def __init__(self) -> None:
        self.table: dict[tuple, Node] = {}
        self.serial: dict[int, int] = {}
        self.limit: int | None = None  # table size at which to stop (set after the originals)

    def _key(self, node: Node) -> tuple:
        if node.op == "const":
            return ("const", const_key(node.value))
        if node.op == "var":
            return ("var", node.name)
        return (node.op, *(id(a) for a in node.args))

    def adopt(self, node: Node) -> Node:
        """Intern an existing node (a node of the original program) as itself."""
        key = self._key(node)
        found = self.table.get(key)
        if found is not None:
            return found
        self.table[key] = node
        self.serial[id(node)] = len(self.serial)
        if self.limit is not None and len(self.table) > self.limit:
            raise AdcliError(f"the derivative grew past {MAX_NEW_NODES:,} new nodes while "
                             "simplifying (the size limit of a derivative); differentiate a "
                             "smaller expression")
        return node

    def const(self, value: float | Coef) -> Node:
        if isinstance(value, Coef):
            sign, num, den = parts(value)
            return self.tree(num, den, sign)
        found = self.table.get(("const", const_key(float(value))))
        return found if found is not None else self.adopt(S.const(value))

    def tree(self, num: list[Node], den: list[Node], sign: int = 1) -> Node:
        """num[0]*num[1]*.../(den[0]*...), interned bottom-up and never folded (the exact
        constants of :func:`adcli.derive.exact.parts`)."""
        def intern(node: Node) -> Node:
            done: dict[int, Node] = {}
            for n in S.iter_postorder(node):
                if n.op == "const":
                    done[id(n)] = self.const(n.value)
                else:
                    key = (n.op, *(id(done[id(a)]) for a in n.args))
                    found = self.table.get(key)
                    done[id(n)] = found if found is not None else self.adopt(
                        S.call(n.op, *(done[id(a)] for a in n.args)))
            return done[id(node)]

        acc = S.const(1.0) if not num else num[0]
        for f in num[1:]:
            acc = S.call("mul", acc, f)
        if den:
            d = den[0]
            for f in den[1:]:
                d = S.call("mul", d, f)
            acc = S.call("div", acc, d)
        if sign < 0:
            acc = S.const(-acc.value) if acc.op == "const" else S.call("neg", acc)
        return intern(acc)

    def raw(self, op: str, *args: Node) -> Node:
        """``op(args)`` interned, never folded (2*pi stays 2*pi)."""
        key = (op, *(id(a) for a in args))
        found = self.table.get(key)
        return found if found is not None else self.adopt(S.call(op, *args))

    def call(self, op: str, *args: Node) -> Node:
        # Arithmetic on numbers folds; a function of a constant (log(2)) stays as written,
        # exact, instead of becoming 0.6931471805599453.
        if all(a.op == "const" for a in args) and not OPS[op].form == "call":
            return self.const(float(apply(OPS[op], tuple(a.value for a in args))))
        key = (op, *(id(a) for a in args))
        found = self.table.get(key)
        return found if found is not None else self.adopt(S.call(op, *args))


class _Sum:
    """const + sum(coef * rest): ``terms[id(rest)] = [rest, coef, factors]``."""

    __slots__ = ("const", "terms")

    def __init__(self, const: float | Coef = 0.0) -> None:
        self.const = Coef.of(const)
        self.terms: dict[int, list] = {}


class _Prod:
    """coef * prod(base ^ exp): ``factors[key] = [base, exp]``.  Integer powers of one base
    share a key and combine; a non-integer power gets a key of its own, because
    x^a * x^b = x^(a+b) fails for x < 0 when a, b are not integers."""

    __slots__ = ("coef", "factors")

    def __init__(self, coef: float | Coef = 1.0) -> None:
        self.coef = Coef.of(coef)
        self.factors: dict[Any, list] = {}

    def add_factor(self, base: Node, exp: float) -> None:
        key: Any = id(base) if float(exp).is_integer() else (id(base), len(self.factors), exp)
        entry = self.factors.get(key)
        if entry is None:
            self.factors[key] = [base, exp]
        elif entry[1] + exp == 0:
            del self.factors[key]  # x/x -> 1 (see the module docstring)
        else:
            entry[1] += exp


class _Simplifier:
    def __init__(self, originals: list[Node], opaque: set[int], whole: set[int]) -> None:
        self.b = _Builder()
        self.original: set[int] = set()
        self.opaque = opaque
        self.whole = whole  # simplified inside, but one factor to the outside
        for node in originals:
            self.b.adopt(node)
            self.original.add(id(node))
        self.b.limit = len(self.b.table) + MAX_NEW_NODES
        self.form: dict[int, Any] = {}
        self.uses: dict[int, int] = {}
        self.mats: dict[int, Node] = {}
        self.rests: dict[int, tuple] = {}  # id(_Prod) -> (the _Prod, rest node, factors)

    # ---- building nodes from forms
    def sorted_factors(self, factors) -> list:
        return sorted(((f[0], f[1]) for f in factors), key=lambda f: self.b.serial[id(f[0])])

    def product(self, coef: Coef, factors: list) -> Node:
        b = self.b
        num = [f[0] if f[1] == 1 else b.call("pow", f[0], self.exponent(f[1])) for f in factors
               if f[1] > 0]
        den = [f[0] if f[1] == -1 else b.call("pow", f[0], self.exponent(-f[1]))
               for f in factors if f[1] < 0]
        coef = Coef.of(coef)
        if not num and not den:
            return b.const(coef)
        # An exact coefficient's own numerator and denominator join the factors':
        # sqrt(2/pi)*exp(...), x/3, -x*exp(...)/sqrt(2*pi).
        sign, cnum, cden = parts(coef, alone=False)
        cnum = [b.tree([n], []) for n in cnum]
        den = [b.tree([n], []) for n in cden] + den
        if cnum and cnum[0].op == "const" and cnum[0].value == 1:
            cnum = cnum[1:]
        num = cnum + num
        if not num:
            num = [b.const(1.0)]
        # The sign goes on the first factor (-2*x, -x*y, -1/x^2), never -(...) around it all.
        if sign < 0 and num[0].op == "const":
            chain = [b.const(-num[0].value)] + num[1:]
        else:
            chain = [b.call("neg", num[0]) if sign < 0 else num[0]] + num[1:]
        acc = chain[0]
        for f in chain[1:]:
            acc = b.raw("mul", acc, f)
        if den:
            d = den[0]
            for f in den[1:]:
                d = b.raw("mul", d, f)
            acc = b.raw("div", acc, d)
        return acc

    def exponent(self, k: float) -> Node:
        """An exponent: x^(2/3) where 2/3 is the float's exact form, else the float."""
        c = recognise(k)
        return self.b.const(c if c.exact and not c.atoms else k)

    def rest_of(self, p: _Prod) -> tuple[Node, list]:
        """The coefficient-free part of a product (the key of like terms) and its factors."""
        cached = self.rests.get(id(p))
        if cached is None:
            factors = self.sorted_factors(p.factors.values())
            cached = self.rests[id(p)] = (p, self.product(Coef.of(1.0), factors), factors)
        return cached[1], cached[2]

    def build(self, form: Any) -> Node:
        if isinstance(form, Node):
            return form
        if isinstance(form, _Prod):
            if form.coef == 0 or not form.factors:
                return self.b.const(form.coef if form.factors == {} else 0.0)
            return self.product(form.coef, self.sorted_factors(form.factors.values()))
        # Positive terms first, in canonical order, then the negative ones, then the constant
        # (first instead when every term is negative: 1 - x^2 rather than -x^2 + 1).
        terms = sorted(form.terms.values(), key=lambda t: (not t[1] > 0, self.b.serial[id(t[0])]))
        b, c = self.b, form.const
        if c == 0:
            collected = self.collect(terms)
            if collected is not None:
                return collected
        acc = None
        if terms and not terms[0][1] > 0 and c > 0:
            acc = b.const(c)
            c = 0.0
        for _rest, coef, factors in terms:
            if acc is None:
                acc = self.product(coef, factors)
            elif coef < 0:
                acc = b.call("sub", acc, self.product(-coef, factors))
            else:
                acc = b.call("add", acc, self.product(coef, factors))
        if acc is None:
            return b.const(c)
        if c != 0:
            acc = b.call("sub", acc, b.const(-c)) if c < 0 else b.call("add", acc, b.const(c))
        return acc

    def collect(self, terms: list) -> Node | None:
        """a + a*b -> a*(1 + b): when one term's factors (a) are factors of every other term,
        they are written once. Only for small sums of small products, so the work and the new
        nodes stay proportional to the sum."""
        if not 2 <= len(terms) <= SMALL or any(len(t[2]) > SMALL for t in terms):
            return None
        common = min(terms, key=lambda t: len(t[2]))
        shared = {id(base): exp for base, exp in common[2]}
        if not shared:
            return None
        rests = []
        for t in terms:
            if t is common:
                continue
            have = {id(base): exp for base, exp in t[2]}
            if any(have.get(k) != e for k, e in shared.items()):
                return None
            rests.append((t[1], [f for f in t[2] if id(f[0]) not in shared]))
        b = self.b
        inner = _Sum(common[1])
        for coef, factors in rests:
            rest = self.product(Coef.of(1.0), factors)
            self.add_term(inner, (coef, rest, factors), 1.0)
        if inner.const > 0 and inner.terms:  # 1 + log(x): the number first
            acc = b.const(inner.const)
            for _rest, coef, factors in sorted(inner.terms.values(),
                                               key=lambda t: b.serial[id(t[0])]):
                acc = (b.call("sub", acc, self.product(-coef, factors)) if coef < 0
                       else b.call("add", acc, self.product(coef, factors)))
        else:
            acc = self.build(inner)
        return b.call("mul", self.product(Coef.of(1.0), common[2]), acc)

    def mat(self, raw: Node) -> Node:
        node = self.mats.get(id(raw))
        if node is None:
            node = self.mats[id(raw)] = self.build(self.form[id(raw)])
        return node

    # ---- viewing a child as a sum or a product
    def owned(self, raw: Node) -> bool:
        return self.uses[id(raw)] == 1 and id(raw) not in self.original

    def expandable(self, raw: Node) -> bool:
        """A node of the program without a user's name: its sums and products are looked into
        (copied when small), so x*y*x differentiates to 2*x*y rather than 2*(x*y)."""
        return id(raw) in self.original and id(raw) not in self.opaque

    def term(self, raw: Node) -> tuple[Coef, Node, list] | Coef:
        """A child as one term coef * rest, or a Coef when it is a constant."""
        form = self.form[id(raw)]
        if isinstance(form, _Sum) and not form.terms:
            return form.const
        if isinstance(form, _Sum) and form.const == 0 and len(form.terms) == 1:
            rest, coef, factors = next(iter(form.terms.values()))
            return coef, rest, factors
        if isinstance(form, _Prod):
            if form.coef == 0 or not form.factors:
                return form.coef if not form.factors else Coef.of(0.0)
            rest, factors = self.rest_of(form)
            return form.coef, rest, factors
        node = self.mat(raw)
        if node.op == "const":
            return recognise(node.value)
        return Coef.of(1.0), node, [[node, 1.0]]

    def as_sum(self, raw: Node, sign: float) -> _Sum:
        form = self.form[id(raw)]
        if isinstance(form, _Sum) and len(form.terms) <= SMALL and self.expandable(raw):
            copy = _Sum(form.const)
            copy.terms = {k: [t[0], t[1], t[2]] for k, t in form.terms.items()}
            form = copy
        elif not (isinstance(form, _Sum) and self.owned(raw)
                  and (sign == 1 or len(form.terms) <= SMALL)):
            form = None
        if form is not None:
            if sign != 1:
                form.const = -form.const
                for t in form.terms.values():
                    t[1] = -t[1]
            return form
        out = _Sum()
        self.add_term(out, self.term(raw), sign)
        return out

    def add_term(self, s: _Sum, term, sign: float) -> None:
        if isinstance(term, Coef):
            s.const += sign * term
            return
        coef, rest, factors = term
        entry = s.terms.get(id(rest))
        if entry is None:
            s.terms[id(rest)] = [rest, sign * coef, factors]
        else:
            entry[1] += sign * coef
            if entry[1] == 0:
                del s.terms[id(rest)]  # x - x -> 0 (see the module docstring)

    def merge_sums(self, p: _Sum, q: _Sum) -> _Sum:
        if len(q.terms) > len(p.terms):
            p, q = q, p
        p.const += q.const
        for rest, coef, factors in q.terms.values():
            self.add_term(p, (coef, rest, factors), 1.0)
        return p

    def as_prod(self, raw: Node) -> _Prod:
        form = self.form[id(raw)]
        if isinstance(form, _Prod) and self.owned(raw):
            return form
        if isinstance(form, _Prod) and len(form.factors) <= SMALL and self.expandable(raw):
            copy = _Prod(form.coef)
            copy.factors = {k: [f[0], f[1]] for k, f in form.factors.items()}
            return copy
        term = self.term(raw)
        if isinstance(term, Coef):
            return _Prod(term)
        coef, rest, factors = term
        out = _Prod(coef)
        if len(factors) <= SMALL:
            for base, exp in factors:
                out.add_factor(base, exp)
        else:
            out.add_factor(rest, 1.0)
        return out

    def merge_prods(self, p: _Prod, q: _Prod, sign: float = 1.0) -> _Prod:
        if sign == 1 and len(q.factors) > len(p.factors):
            p, q = q, p
        if sign != 1:
            if len(q.factors) > SMALL:  # too big to invert in place: one factor ^ -1
                rest, _ = self.rest_of(q)
                q2 = _Prod(q.coef)
                q2.add_factor(rest, 1.0)
                q = q2
            p.coef = p.coef / q.coef
        else:
            p.coef = p.coef * q.coef
        for base, exp in list(q.factors.values()):
            p.add_factor(base, sign * exp)
        return p

    # ---- the rules, one raw node at a time
    def visit(self, raw: Node) -> Any:
        op, args = raw.op, raw.args
        b = self.b
        if op == "const":
            return _Prod(recognise(raw.value))
        if op == "var":
            return b.adopt(S.var(raw.name))
        if id(raw) in self.whole:
            return b.call(op, *(self.mat(a) for a in args))
        if op in ("add", "sub"):
            p = self.as_sum(args[0], 1.0)
            q = self.as_sum(args[1], 1.0 if op == "add" else -1.0)
            return self.merge_sums(p, q)
        if op == "mul":
            return self.merge_prods(self.as_prod(args[0]), self.as_prod(args[1]))
        if op == "div":
            return self.merge_prods(self.as_prod(args[0]), self.as_prod(args[1]), -1.0)
        if op == "neg":
            form = self.form[id(args[0])]
            if isinstance(form, _Sum) and self.owned(args[0]) and len(form.terms) <= SMALL:
                return self.as_sum(args[0], -1.0)
            p = self.as_prod(args[0])
            p.coef = -p.coef
            return p
        if op == "pow":
            kc = self.term(args[1])
            if isinstance(kc, Coef):
                k = kc.value
                base_form = self.form[id(args[0])]
                if (isinstance(base_form, _Prod) and not base_form.factors
                        and kc.exact and not kc.atoms):
                    exact = base_form.coef ** kc.rat  # 8^(1/3), sqrt(2)^2: exactly
                    if exact.exact:
                        return _Prod(exact)
                if k == 0:
                    return b.const(1.0)
                if k == 1:
                    return self.form[id(args[0])] if self.owned(args[0]) else self.mat(args[0])
                base = self.mat(args[0]) if not self.owned(args[0]) else None
                if float(k).is_integer():
                    p = self.as_prod(args[0])
                    if len(p.factors) <= SMALL and all(float(e).is_integer()
                                                       for _, e in p.factors.values()):
                        out = _Prod(p.coef ** k)
                        for fb, fe in p.factors.values():
                            out.add_factor(fb, fe * k)
                        return out
                    base = self.build(p)
                base = base if base is not None else self.mat(args[0])
                out = _Prod()
                out.add_factor(base, k)
                return out
            shift = self.form[id(args[1])]
            if (isinstance(shift, _Sum) and shift.terms and shift.const != 0
                    and float(shift.const).is_integer() and abs(shift.const) <= 64):
                # a^(b - 1) -> a^b * a^-1 when a^b is in the program: it is shared, and
                # x*x^(x - 1) + x^x*log(x) collects into x^x*(1 + log(x))
                rest = _Sum()
                rest.terms = dict(shift.terms)
                base = self.mat(args[0])
                power = b.call("pow", base, self.build(rest))
                if id(power) in self.original:  # only to share the program's own a^b
                    out = _Prod()
                    out.add_factor(power, 1.0)
                    out.add_factor(base, float(shift.const))
                    return out
            return b.call("pow", self.mat(args[0]), self.mat(args[1]))
        if op == "sqrt":
            c = self.term(args[0])
            if isinstance(c, Coef) and c >= 0 and (c ** Fraction(1, 2)).exact:
                return _Prod(c ** Fraction(1, 2))
        return b.call(op, *(self.mat(a) for a in args))

    def run(self, roots: list[Node]) -> list[Node]:
        # Post-order over the raw DAG without entering original nodes (they stay as written).
        order: list[Node] = []
        seen: set[int] = set()
        stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
        for r in roots:
            self.uses[id(r)] = self.uses.get(id(r), 0) + 1
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if id(node) in self.opaque:
                continue
            for arg in reversed(node.args):
                self.uses[id(arg)] = self.uses.get(id(arg), 0) + 1
                if id(arg) not in seen:
                    stack.append((arg, False))
        with np.errstate(all="ignore"):
            for node in order:
                if id(node) in self.opaque or (id(node) in self.original
                                               and node.op in ("var", "const")):
                    self.form[id(node)] = node
                else:
                    self.form[id(node)] = self.visit(node)
                if id(node) in self.original:
                    self.mats[id(node)] = node  # printed as the user wrote it
            return [self.mat(r) for r in roots]


def simplify_many(roots: list[Node], originals: Iterable[Node] = (),
                  opaque: Iterable[Node] = (), whole: Iterable[Node] = ()) -> list[Node]:
    """Simplified copies of ``roots`` (one shared DAG). ``originals`` (the program's own nodes,
    in tape order) are printed exactly as written where they appear whole; the ``opaque`` ones
    (let bindings) are not even looked into; the ``whole`` ones (``RuleBuilder.keep``) are
    simplified inside but never merged into the sums and products around them."""
    return _Simplifier(list(originals), {id(n) for n in opaque},
                       {id(n) for n in whole}).run(list(roots))


def simplify(root: Node) -> Node:
    """A simplified copy of one expression DAG."""
    return simplify_many([root])[0]


def derivative(tape: Tape, wrt: Iterable[str] | None = None) -> Derivative:
    """Simplified derivatives of the tape's output (what ``adcli diff`` prints)."""
    raw = gradient(tape, wrt)
    names = list(raw.exprs)
    opaque = [raw.node_of_slot[slot] for slot in tape.labels]
    simplified = simplify_many([raw.exprs[n] for n in names], raw.node_of_slot, opaque,
                               raw.kept)
    return Derivative(dict(zip(names, simplified)), raw.names, raw.node_of_slot)
