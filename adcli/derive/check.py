"""Check a learner's derivative against adcli's (``adcli explain EXPR --wrt x --check ANSWER``).

Two independent looks, because neither alone is enough:

- **Numeric**, which decides: at random points (seeded, so a run is reproducible) where EXPR and
  its derivative are finite (the functions' domain, found by drawing and keeping), adcli's
  derivative comes from the reverse sweep (the numbers ``adcli grad`` prints) and the answer is
  evaluated as written.  They agree where they are equal up to rounding.
- **Symbolic**, which explains: adcli's own symbolic derivative (:mod:`adcli.derive.symbolic`)
  minus the answer is simplified; 0 proves them equal, a non-zero constant proves them
  different, and what remains otherwise (``2*x^2*cos(x)`` for a sign error) shows where.  The
  simplifier knows only light algebra, so an undecided difference is no verdict.

Points are drawn in rounds of rows swept at once (columns), so a big EXPR costs a few sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..core import sweeps
from ..core import syntax as S
from ..core.tape import Tape
from ..core.unparse import to_source
from ..results import Key, nest_elements
from .symbolic import MAX_TAPE_NODES, gradient, simplify, tape_nodes

#: Points checked per name, unless asked otherwise.
DEFAULT_POINTS = 20
DEFAULT_SEED = 0
#: Candidates drawn per round, and rounds at most: a domain that keeps fewer than one in
#: ROUNDS * ROW_BATCH / points of the draws is reported as not found.
ROW_BATCH = 64
ROUNDS = 16
#: Equal up to rounding: |adcli - answer| <= RTOL * max(|adcli|, |answer|) + ATOL * scale, with
#: scale the largest |adcli| over the points (equivalent forms round differently, most where
#: a sum of large terms is near 0).
RTOL, ATOL = 1e-9, 1e-12
#: Differing points shown (all are counted).
SHOWN = 5
#: The symbolic look is skipped above this many tape nodes (simplification is the costly part).
SYMBOLIC_MAX_NODES = 5_000
#: A remaining difference longer than this is not printed.
DIFFERENCE_MAX_CHARS = 120


@dataclass
class Verdict:
    """The check of one answer: d EXPR / d ``name``."""

    name: str
    answer: str
    points: list[dict[str, float]]
    adcli: np.ndarray
    theirs: np.ndarray
    differs: np.ndarray
    symbolic: str  # "equal", "different", "undecided" or "skipped"
    difference: str | None = None

    @property
    def agree(self) -> bool:
        return bool(self.points) and not bool(self.differs.any())

    def relative(self) -> np.ndarray:
        """|adcli - answer| / max(|adcli|, |answer|) per point (0 where both are 0)."""
        with np.errstate(all="ignore"):
            size = np.maximum(np.abs(self.adcli), np.abs(self.theirs))
            rel = np.abs(self.adcli - self.theirs) / size
        rel = np.where(size == 0, 0.0, rel)
        return np.where(np.isfinite(self.theirs), rel, np.inf)

    def shown(self) -> list[dict[str, Any]]:
        """The first :data:`SHOWN` differing points: where, both values, relative difference."""
        rel = self.relative()
        return [{"at": nest_elements(self.points[i]), "adcli": float(self.adcli[i]),
                 "answer": float(self.theirs[i]), "relative_difference": float(rel[i])}
                for i in (int(i) for i in np.flatnonzero(self.differs)[:SHOWN])]

    def largest(self) -> float | None:
        """The largest relative difference over the points."""
        rel = self.relative()
        return float(rel.max()) if rel.size else None

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("wrt", lambda v: v.name), Key("answer"), Key("agree"),
        Key("points", lambda v: len(v.points)),
        Key("differing", lambda v: int(v.differs.sum())),
        Key("max_relative_difference", lambda v: v.largest()),
        Key("symbolic"), Key("difference"), Key("differences", lambda v: v.shown()))


@dataclass
class Check:
    """Every answer's verdict, and how the points were drawn."""

    verdicts: list[Verdict]
    seed: int
    fixed: dict[str, float] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return all(v.agree for v in self.verdicts)

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("agree"), Key("seed"), Key("fixed", lambda c: nest_elements(c.fixed)),
        Key("check", lambda c: c.verdicts))


class NoDomain(ValueError):
    """No random point where EXPR and its derivative are both finite."""


def check(tape: Tape, answers: Sequence[tuple[str, Tape, str]],
          fixed: Mapping[str, float] | None = None, *, seed: int = DEFAULT_SEED,
          count: int = DEFAULT_POINTS) -> Check:
    """Check each ``(name, answer tape, answer text)`` against d ``tape`` / d name at
    ``count`` random points; the variables in ``fixed`` keep those values."""
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    free = [n for n in tape.inputs if n not in fixed]
    columns = _points(tape, [n for n, _, _ in answers], fixed, free, seed, count)
    rows = len(next(iter(columns.values()))) if columns else count
    point = {n: np.full(rows, v) for n, v in fixed.items()}
    point.update(columns)
    grads = _gradient(tape, point, [n for n, _, _ in answers], rows)
    points = [{n: float(point[n][i]) for n in tape.inputs} for i in range(rows)]
    verdicts = []
    for name, answer, text in answers:
        ours = grads[name]
        with np.errstate(all="ignore"):
            values = sweeps.evaluate(answer, {n: point[n] for n in answer.inputs})
        theirs = np.broadcast_to(np.asarray(values[answer.output], dtype=np.float64),
                                 (rows,)).copy()
        scale = float(np.max(np.abs(ours))) if rows else 0.0
        with np.errstate(all="ignore"):
            close = np.abs(ours - theirs) <= RTOL * np.maximum(np.abs(ours), np.abs(theirs)) \
                + ATOL * scale
        differs = ~(close & np.isfinite(theirs))
        symbolic, difference = _symbolic(tape, name, answer, fixed)
        verdicts.append(Verdict(name, text, points, ours, theirs, differs, symbolic,
                                difference))
    return Check(verdicts, seed, fixed)


def _gradient(tape: Tape, point: Mapping[str, Any], names: list[str],
              rows: int) -> dict[str, np.ndarray]:
    """d output / d name per row, by the reverse sweep (the numbers ``adcli grad`` gives)."""
    with np.errstate(all="ignore"):
        values = sweeps.evaluate(tape, point)
        adjoint = sweeps.reverse(tape, values)
        grads = sweeps.input_gradient(tape, values, adjoint)
    return {n: np.broadcast_to(np.asarray(grads.get(n, 0.0), dtype=np.float64),
                               (rows,)).copy() for n in names}


def _points(tape: Tape, names: list[str], fixed: Mapping[str, float], free: list[str],
            seed: int, count: int) -> dict[str, np.ndarray]:
    """``count`` random values of each free variable where EXPR and its derivatives w.r.t.
    ``names`` are finite.  Magnitudes from 0.1 to 3 of either sign, then wider (up to 100)
    and mostly positive (log, sqrt), all from one generator seeded with ``seed``."""
    if not free:
        return {}
    rng = np.random.default_rng(seed)
    kept: dict[str, list[np.ndarray]] = {n: [] for n in free}
    found = 0
    for round_ in range(ROUNDS):
        top = 0.5 + 1.5 * round_ / (ROUNDS - 1)  # wider and wider: up to 100
        magnitude = 10.0 ** rng.uniform(-1.0, top, (len(free), ROW_BATCH))
        sign = np.where(rng.random((len(free), ROW_BATCH)) < 0.5, -1.0, 1.0)
        if round_ >= ROUNDS // 4:
            sign = np.where(rng.random((len(free), ROW_BATCH)) < 0.2, sign, 1.0)
        draws = magnitude * sign
        point: dict[str, Any] = {n: np.full(ROW_BATCH, v) for n, v in fixed.items()}
        point.update({n: draws[i] for i, n in enumerate(free)})
        with np.errstate(all="ignore"):
            values = sweeps.evaluate(tape, point)
            ok = np.isfinite(np.broadcast_to(values[tape.output], (ROW_BATCH,)))
        grads = _gradient(tape, point, names, ROW_BATCH)
        for g in grads.values():
            ok &= np.isfinite(g)
        take = np.flatnonzero(ok)[:count - found]
        for i, n in enumerate(free):
            kept[n].append(draws[i][take])
        found += len(take)
        if found >= count:
            break
    if found == 0:
        raise NoDomain("no random point was found where EXPR and its derivative are finite "
                       f"({ROUNDS * ROW_BATCH:,} draws of magnitude 0.1 to 100); fix some "
                       "variables with --at")
    return {n: np.concatenate(parts) for n, parts in kept.items()}


def _symbolic(tape: Tape, name: str, answer: Tape,
              fixed: Mapping[str, float]) -> tuple[str, str | None]:
    """("equal" | "different" | "undecided" | "skipped", the simplified adcli - answer), with
    the variables in ``fixed`` replaced by their values."""
    if len(tape) + len(answer) > min(SYMBOLIC_MAX_NODES, MAX_TAPE_NODES):
        return "skipped", None
    ours = gradient(tape, [name]).exprs[name]
    rest = simplify(_substitute(S.sub(ours, tape_nodes(answer)[answer.output]), fixed))
    if S.is_const(rest):
        value = float(rest.value)
        return ("equal" if value == 0.0 else "different"), (None if value == 0.0
                                                             else to_source(rest))
    text = to_source(rest)
    return "undecided", (text if len(text) <= DIFFERENCE_MAX_CHARS else None)


def _substitute(root: S.Node, values: Mapping[str, float]) -> S.Node:
    """``root`` with each variable named in ``values`` replaced by that number (no
    recursion: children before parents)."""
    if not values:
        return root
    new: dict[int, S.Node] = {}
    for node in S.iter_postorder(root):
        if node.op == "var" and node.name in values:
            new[id(node)] = S.const(values[node.name])
        elif node.args:
            args = tuple(new[id(a)] for a in node.args)
            changed = any(a is not b for a, b in zip(args, node.args))
            new[id(node)] = S.call(node.op, *args) if changed else node
        else:
            new[id(node)] = node
    return new[id(root)]
