"""Simplification of derivative DAGs for people: constant folding, ``0``/``1`` identities, numeric
coefficients combined (exactly, :mod:`adcli.derive.exact`), like terms and like factors collected,
``--x`` -> ``x``, ``x^1`` -> ``x``, and a factor of every term of a small sum written once
(``a + a*b`` -> ``a*(1 + b)``).

It is memoised per node and iterative, and it only flattens sums and products through nodes
used once, so shared subexpressions stay shared. The algebra holds where the function is
finite (see :mod:`adcli.derive.symbolic` for the documented differences).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np

from ..core import syntax as S
from ..core.syntax import Node
from .exact import Coef, parts, recognise
from .forms import Builder as _Builder
from .forms import Prod as _Prod
from .forms import Sum as _Sum

SMALL = 32  # forms larger than this are never copied or rescaled, only referenced
#: New nodes one simplification may create by default (``adcli diff`` passes its own limit)
MAX_NEW_NODES = 500_000


class _Simplifier:
    def __init__(self, originals: list[Node], opaque: set[int], whole: set[int],
                 max_new: int = MAX_NEW_NODES) -> None:
        self.b = _Builder()
        self.original: set[int] = set()
        self.opaque = opaque
        self.whole = whole  # simplified inside, but one factor to the outside
        for node in originals:
            self.b.adopt(node)
            self.original.add(id(node))
        self.b.limit = len(self.b.table) + max_new
        self.b.budget = max_new
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
                  opaque: Iterable[Node] = (), whole: Iterable[Node] = (),
                  max_new: int = MAX_NEW_NODES) -> list[Node]:
    """Simplified copies of ``roots`` (one shared DAG). ``originals`` (the program's own nodes,
    in tape order) are printed exactly as written where they appear whole; the ``opaque`` ones
    (let bindings) are not even looked into; the ``whole`` ones (``RuleBuilder.keep``) are
    simplified inside but never merged into the sums and products around them."""
    return _Simplifier(list(originals), {id(n) for n in opaque},
                       {id(n) for n in whole}, max_new).run(list(roots))


def simplify(root: Node) -> Node:
    """A simplified copy of one expression DAG."""
    return simplify_many([root])[0]
