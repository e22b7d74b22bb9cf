"""Exact constants for symbolic derivatives: ``sqrt(2/pi)``, ``1/3`` and ``-x^2/2`` instead of
``0.7978845608028653`` and ``-0.4999999999999999*x^2``.

A :class:`Coef` is a number the simplifier multiplies, divides, adds and raises to powers.
It is exact when it can be: a rational times powers of primes (exponents in (0, 1)) and of pi
and e, so ``(1/sqrt(2))^2`` is exactly ``1/2`` and ``sqrt(2)*sqrt(2)`` exactly ``2``. Where an
operation has no exact result in that form (``1 + sqrt(2)``, a user's ``0.123`` times ``pi``,
rationals past 2^53), the coefficient becomes a plain float and stays one: float arithmetic,
as before.

A float constant of the program becomes exact only when adcli's own evaluation of the exact
form gives the very same float (:func:`recognise`): ``1.4142135623730951`` is ``sqrt(2)``
because ``sqrt(2)`` evaluates to those bits, so printing the exact form never changes a value
that ``adcli eval`` computes from it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from ..core import syntax as S
from ..core.syntax import Node
from ..ops import OPS, apply

PI, E = "pi", "e"
VALUE = {PI: math.pi, E: math.e}
LIMIT = 2**53  # numerators and denominators stay below this, else the number is a float
FACTOR_LIMIT = 10**6  # integers factorised under a root (trial division)
#: pi and e powers a program's constant is tried against (times a rational or its root)
_CANDIDATES: list[dict[str, Fraction]] = [
    {}, {PI: Fraction(1)}, {PI: Fraction(-1)}, {PI: Fraction(1, 2)}, {PI: Fraction(-1, 2)},
    {PI: Fraction(2)}, {E: Fraction(1)}, {E: Fraction(-1)},
]


def _key(atom: Any) -> tuple:
    return (0, atom, "") if isinstance(atom, int) else (1, 0, atom)


def _factor(n: int) -> dict[int, int] | None:
    """Prime factors of 0 < n <= FACTOR_LIMIT, else None."""
    if n > FACTOR_LIMIT:
        return None
    out: dict[int, int] = {}
    p = 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


class Coef:
    """A coefficient: exact (``rat`` times ``atoms``, sorted (atom, exponent) pairs) or, when
    ``rat`` is None, the float ``value``."""

    __slots__ = ("rat", "atoms", "value")

    def __init__(self, rat: Fraction | None, atoms: tuple = (), value: float = 0.0) -> None:
        if rat is not None and (abs(rat.numerator) >= LIMIT or rat.denominator >= LIMIT):
            value, rat, atoms = float(rat) * _atoms_value(atoms), None, ()
        self.rat = rat
        self.atoms = atoms if rat else ()
        self.value = float(value) if rat is None else float(rat) * _atoms_value(self.atoms)

    @classmethod
    def of(cls, x: Any) -> Coef:
        """A Coef from a Coef, or from a float that is a short binary fraction (1, -0.5)."""
        if isinstance(x, Coef):
            return x
        v = float(x)
        if math.isfinite(v) and (v or math.copysign(1.0, v) > 0):  # -0.0 stays a float
            r = Fraction(v)
            if r.denominator <= 1024 and abs(r.numerator) < LIMIT:
                return cls(r)
        return cls(None, (), v)

    @property
    def exact(self) -> bool:
        return self.rat is not None

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"Coef({self.rat}, {self.atoms})" if self.exact else f"Coef({self.value!r})"

    # ---- arithmetic: exact where the result has an exact form, else float
    def __mul__(self, other: Any) -> Coef:
        o = Coef.of(other)
        if self.exact and o.exact:
            r, atoms = _merge(self.atoms, o.atoms, 1)
            return Coef(self.rat * o.rat * r, atoms)
        return Coef(None, (), self.value * o.value)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Coef:
        o = Coef.of(other)
        if self.exact and o.exact and o.rat != 0:
            r, atoms = _merge(self.atoms, o.atoms, -1)
            return Coef(self.rat / o.rat * r, atoms)
        return Coef(None, (), float(apply(OPS["div"], (self.value, o.value))))

    def __rtruediv__(self, other: Any) -> Coef:
        return Coef.of(other) / self

    def __add__(self, other: Any) -> Coef:
        o = Coef.of(other)
        if self.exact and o.exact and (self.atoms == o.atoms or not self.rat or not o.rat):
            return Coef(self.rat + o.rat, self.atoms or o.atoms)
        return Coef(None, (), self.value + o.value)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Coef:
        return self + (-Coef.of(other))

    def __rsub__(self, other: Any) -> Coef:
        return Coef.of(other) + (-self)

    def __neg__(self) -> Coef:
        return Coef(-self.rat, self.atoms) if self.exact else Coef(None, (), -self.value)

    def __abs__(self) -> Coef:
        return -self if self.value < 0 else self

    def __pow__(self, k: Any) -> Coef:
        """An integer power, or a rational one (``k`` a Fraction or a float like 0.5)."""
        kf = k if isinstance(k, Fraction) else Fraction(float(k)) if math.isfinite(k) else None
        if self.exact and kf is not None and kf.denominator <= 64 and abs(kf) <= 64 \
                and (self.rat != 0 or kf > 0):
            out = _power(self, kf)
            if out is not None:
                return out
        return Coef(None, (), float(apply(OPS["pow"], (self.value, float(k)))))

    # ---- comparisons with numbers (the simplifier asks == 0, < 0, != 1)
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Coef):
            if self.exact and other.exact:
                return self.rat == other.rat and self.atoms == other.atoms
            return self.value == other.value
        if isinstance(other, (int, float)):
            return self.value == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    def __lt__(self, other: Any) -> bool:
        return self.value < float(other)

    def __gt__(self, other: Any) -> bool:
        return self.value > float(other)

    def __le__(self, other: Any) -> bool:
        return self.value <= float(other)

    def __ge__(self, other: Any) -> bool:
        return self.value >= float(other)


def _atoms_value(atoms: tuple) -> float:
    v = 1.0
    for atom, k in atoms:
        v *= (VALUE[atom] if isinstance(atom, str) else float(atom)) ** float(k)
    return v


def _merge(a: tuple, b: tuple, sign: int) -> tuple[Fraction, tuple]:
    """(rational factor, atoms) of the product of atoms ``a`` and atoms ``b`` ^ sign: prime
    exponents are brought back into [0, 1), the whole part going into the rational."""
    acc: dict[Any, Fraction] = dict(a)
    for atom, k in b:
        acc[atom] = acc.get(atom, Fraction(0)) + sign * k
    return _normal(acc)


def _normal(acc: dict[Any, Fraction]) -> tuple[Fraction, tuple]:
    rat = Fraction(1)
    out = []
    for atom, k in acc.items():
        if isinstance(atom, int):
            whole = math.floor(k)
            if whole:
                rat *= Fraction(atom) ** whole
            k -= whole
        if k:
            out.append((atom, k))
    return rat, tuple(sorted(out, key=lambda t: _key(t[0])))


def _power(c: Coef, k: Fraction) -> Coef | None:
    rat = c.rat
    assert rat is not None
    if k.denominator == 1:
        r1, atoms = _normal({atom: e * k for atom, e in c.atoms})
        return Coef(rat ** k.numerator * r1, atoms)
    sign = -1 if rat < 0 else 1
    if sign < 0:
        return None  # a root of a negative number: not real
    num, den = _factor(rat.numerator), _factor(rat.denominator)
    if num is None or den is None:
        return None
    acc: dict[Any, Fraction] = {}
    for p, e in num.items():
        acc[p] = acc.get(p, Fraction(0)) + e * k
    for p, e in den.items():
        acc[p] = acc.get(p, Fraction(0)) - e * k
    for atom, e in c.atoms:
        acc[atom] = acc.get(atom, Fraction(0)) + e * k
    r, atoms = _normal(acc)
    return Coef(r, atoms)


# --------------------------------------------------------------------------- recognition

_seen: dict[bytes, Coef] = {}


def recognise(value: float) -> Coef:
    """The exact form of a program's float constant when adcli evaluates that form to the
    same bits (``1.4142135623730951`` -> sqrt(2), ``0.1`` -> 1/10), else the float itself."""
    c = Coef.of(value)
    if c.exact or not math.isfinite(value) or value == 0:
        return c
    key = float(value).hex().encode()
    found = _seen.get(key)
    if found is not None:
        return found
    found = c
    a = abs(value)
    for atoms in _CANDIDATES:
        scale = _atoms_value(tuple(atoms.items()))
        r = a / scale
        for root in (False, True):
            target = r * r if root else r
            if not 1e-6 < target < 1e6:  # too far from a small rational (or inf, 0)
                continue
            q = Fraction(target).limit_denominator(1000)
            if q <= 0 or q.numerator > 10**6:
                continue
            base = Coef(q, tuple(sorted(atoms.items(), key=lambda t: _key(t[0]))))
            if root:
                rooted = Coef(q) ** Fraction(1, 2)
                if not rooted.exact:
                    continue
                base = rooted * Coef(Fraction(1), base.atoms)
            if base.exact and evaluate(to_node(base)) == a:
                found = base if value > 0 else -base
                break
        if found is not c:
            break
    if len(_seen) < 10_000:
        _seen[key] = found
    return found


def evaluate(node: Node) -> float:
    """adcli's float value of a small constant tree (iterative)."""
    values: dict[int, float] = {}
    for n in S.iter_postorder(node):
        if n.op == "const":
            values[id(n)] = n.value
        else:
            values[id(n)] = float(apply(OPS[n.op], tuple(values[id(a)] for a in n.args)))
    return values[id(node)]


# --------------------------------------------------------------------------- as expressions

def parts(c: Coef, alone: bool = True) -> tuple[int, list[Node], list[Node]]:
    """(sign, numerator factors, denominator factors) of ``c`` as expression nodes, e.g.
    sqrt(2/pi) -> (1, [sqrt(2/pi)], []) and -1/sqrt(2*pi) -> (-1, [], [sqrt(2*pi)]). A
    rational whose decimal is short (0.5, 0.25) is one factor; 1/3 is 1 over 3."""
    if not c.exact:
        v = c.value
        return (-1 if v < 0 else 1), [S.const(abs(v))], []
    rat = c.rat
    assert rat is not None
    sign = -1 if rat < 0 else 1
    rat = abs(rat)
    root_num: list[Any] = []
    root_den: list[Any] = []
    num: list[Node] = []
    den: list[Node] = []
    for atom, k in c.atoms:
        if isinstance(atom, int):
            if k == Fraction(1, 2):
                root_num.append(atom)
            else:
                num.append(S.call("pow", S.const(atom), _rational_node(k)))
            continue
        mag, target, root = abs(k), (num if k > 0 else den), (root_num if k > 0 else root_den)
        whole = math.floor(mag)
        rest = mag - whole
        if whole:
            target.append(S.const(VALUE[atom]) if whole == 1
                          else S.call("pow", S.const(VALUE[atom]), S.const(whole)))
        if rest == Fraction(1, 2):
            root.append(atom)
        elif rest:
            target.append(S.call("pow", S.const(VALUE[atom]), _rational_node(rest)))
    if root_den or not num:
        # 1/sqrt(2) rather than sqrt(2)/2: a prime under the root that divides the rational's
        # denominator moves under the root of the denominator
        for p in [a for a in root_num if isinstance(a, int)]:
            if rat.denominator % p == 0:
                rat *= p
                root_num.remove(p)
                root_den.append(p)
    if root_num and root_den:
        num.insert(0, S.call("sqrt", S.call("div", _product(root_num), _product(root_den))))
    elif root_num:
        num.insert(0, S.call("sqrt", _product(root_num)))
    elif root_den:
        den.insert(0, S.call("sqrt", _product(root_den)))
    if rat != 1 or (not num and not den):
        # 0.5 alone, but -x^2/2 and x/3 in a product; a user's decimals (0.1, 0.25*5 = 1.25)
        # stay decimals
        if rat.denominator == 1 or (not den and _short_decimal(rat)
                                    and ((alone and not num) or rat.denominator % 5 == 0)):
            num.insert(0, S.const(float(rat)))
        else:
            if rat.numerator != 1 or not num:
                num.insert(0, S.const(rat.numerator))
            den.insert(0, S.const(rat.denominator))
    return sign, num, den


def _short_decimal(r: Fraction) -> bool:
    """Whether r prints as a short decimal that reads back as r (0.5, 1.25, 0.1)."""
    text = repr(float(r))
    return len(text) <= 8 and "e" not in text and Fraction(text) == r


def _rational_node(k: Fraction) -> Node:
    if k.denominator == 1 or _short_decimal(k):
        return S.const(float(k))
    return S.call("div", S.const(k.numerator), S.const(k.denominator))


def _product(atoms: list[Any]) -> Node:
    whole = 1
    rest: list[Node] = []
    for a in atoms:
        if isinstance(a, int):
            whole *= a
        else:
            rest.append(S.const(VALUE[a]))
    nodes = ([S.const(whole)] if whole != 1 or not rest else []) + rest
    acc = nodes[0]
    for n in nodes[1:]:
        acc = S.call("mul", acc, n)
    return acc


def to_node(c: Coef) -> Node:
    """``c`` as one expression (its numerator over its denominator, the sign in front)."""
    sign, num, den = parts(c)
    return quotient(num, den, sign)


def quotient(num: list[Node], den: list[Node], sign: int = 1) -> Node:
    """num[0]*num[1]*.../(den[0]*...), the sign in front, as :func:`parts` splits a
    coefficient."""
    acc = num[0] if num else S.const(1.0)
    for n in num[1:]:
        acc = S.call("mul", acc, n)
    if den:
        d = den[0]
        for n in den[1:]:
            d = S.call("mul", d, n)
        acc = S.call("div", acc, d)
    if sign < 0:
        acc = S.const(-acc.value) if acc.op == "const" else S.call("neg", acc)
    return acc
