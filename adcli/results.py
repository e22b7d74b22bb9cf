"""Result records: what every command prints. Each says which JSON keys it has, in order, where
each value comes from and when a key is left out (``json_keys``, a tuple of :class:`Key`), read
by the one JSON writer (:mod:`adcli.output.formats.json`); every format reads the same records.

numpy is imported by the functions that handle arrays, not with the module: the records of a
command at a point of plain floats are written without it (start-up time)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a record's JSON: its ``name``; ``get`` gives its value from the record (default:
    the attribute of that name); ``omit`` says, given the record, when the key is left out;
    ``spread`` merges the keys of the dict ``get`` gives (a report written elsewhere)."""

    name: str
    get: Callable[[Any], Any] | None = None
    omit: Callable[[Any], bool] | None = None
    spread: bool = False


def fields_of(record: Any) -> dict[str, Any]:
    """A record's JSON keys in order, their values as they are (records inside stay records)."""
    out: dict[str, Any] = {}
    for key in record.json_keys:
        if key.omit is not None and key.omit(record):
            continue
        value = getattr(record, key.name) if key.get is None else key.get(record)
        if key.spread:
            out.update(value)
        else:
            out[key.name] = value
    return out


def is_record(obj: Any) -> bool:
    """Whether ``obj`` is a result record (it declares its JSON keys)."""
    return hasattr(type(obj), "json_keys")


@dataclass(slots=True)
class NodeRow:
    id: int
    op: str
    label: str
    value: Any
    grad: Any
    args: tuple[int, ...] = ()

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("id"), Key("op"), Key("label"), Key("value"), Key("grad"),
        Key("args", lambda n: list(n.args)))


@dataclass(slots=True)
class GradReport:
    value: Any
    gradient: dict[str, Any]
    nodes: list[NodeRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    node_count: int = 0  # nodes on the tape (``nodes`` may hold only the first of them)

    # ``nodes`` lists the first nodes of the tape (``--max-rows``); ``nodes_omitted`` says how
    # many more ``node_count`` has, so a huge tape's JSON stays small.
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("value"), Key("gradient", lambda r: nest_elements(r.gradient)), Key("nodes"),
        Key("node_count"), Key("nodes_omitted", lambda r: r.node_count - len(r.nodes)))


@dataclass(slots=True)
class EvalResult:
    """The value of ``adcli eval`` at a point."""

    value: Any
    warnings: list[str] = field(default_factory=list)

    json_keys: ClassVar[tuple[Key, ...]] = (Key("value"),)


@dataclass(slots=True)
class HessianReport:
    """``adcli hessian``: the matrix over ``variables``, its eigenvalues, and the reading of
    them when the point allows none (``verdict``)."""

    variables: list[str]
    matrix: Any  # numpy (n, n)
    eigenvalues: Any  # numpy (n,)
    verdict: str | None = None
    warnings: list[str] = field(default_factory=list)

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("variables"), Key("hessian", lambda r: r.matrix.tolist()),
        Key("eigenvalues", lambda r: r.eigenvalues.tolist()))


@dataclass(slots=True)
class Derivatives:
    """``adcli diff``: each derivative as source text. ``single``: the user asked for exactly
    one name, so the JSON holds a string, not lists."""

    names: list[str]
    texts: list[str]
    single: bool = False
    fmt: str = "adcli"  # --format: the texts in another format, for people and as "text"
    formatted: list[str] | None = None

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("wrt", lambda r: r.names[0] if r.single else r.names),
        Key("derivative", lambda r: r.texts[0] if r.single else r.texts),
        Key("format", lambda r: r.fmt, omit=lambda r: r.formatted is None),
        Key("text", lambda r: r.formatted[0] if r.single else r.formatted,
            omit=lambda r: r.formatted is None))


def split_element(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``"W[2,1]"`` -> ``("W", (2, 1))``; None for a plain name."""
    if not name.endswith("]") or "[" not in name:
        return None
    base, _, rest = name.partition("[")
    try:
        return base, tuple(int(p) for p in rest[:-1].split(","))
    except ValueError:
        return None


def nest_elements(values: dict[str, Any]) -> dict[str, Any]:
    """Elements of indexed variables (``x[1]``, ``W[2,1]``) as nested lists under their base
    name (``{"x": [..], "W": [[..], ..]}``), the form ``--at @FILE.json`` reads back: the
    first item is index 1, or 0 where some element has index 0; a missing element is null.
    Other names stay as they are, and so do a base's elements when they are too sparse to
    list (x[1] and x[1000000])."""
    if not any(k.endswith("]") for k in values):
        return values
    groups: dict[str, dict[tuple[int, ...], Any]] = {}
    for name, v in values.items():
        parts = split_element(name)
        if parts is not None:
            groups.setdefault(parts[0], {})[parts[1]] = v
    out: dict[str, Any] = {}
    for name, v in values.items():
        parts = split_element(name)
        if parts is None or parts[0] in values:
            out[name] = v
            continue
        base, members = parts[0], groups.get(parts[0])
        if base in out or members is None:
            continue
        ranks = {len(ix) for ix in members}
        rank = next(iter(ranks))
        lo = [0 if any(ix[d] == 0 for ix in members) else 1 for d in range(rank)]
        hi = [max(ix[d] for ix in members) for d in range(rank)]
        cells = math.prod(h - o + 1 for h, o in zip(hi, lo))
        if len(ranks) > 1 or cells > 2 * len(members) + 16:
            out.update((element_key, values[element_key]) for element_key in values
                       if (split_element(element_key) or ("",))[0] == base)
            groups.pop(base)
            continue
        out[base] = _nested(members, lo, hi)
    return out


def _nested(members: dict[tuple[int, ...], Any], lo: list[int], hi: list[int]) -> list:
    """Nested lists over the box lo..hi (null where no element), built level by level."""
    def build(prefix: tuple[int, ...]) -> list:
        d = len(prefix)
        if d == len(lo) - 1:
            return [members.get((*prefix, k)) for k in range(lo[d], hi[d] + 1)]
        return [build((*prefix, k)) for k in range(lo[d], hi[d] + 1)]

    return build(())  # depth is the rank (at most a few): not the input's depth


# Why a run stopped.  Only GRAD_TOL, PRECISION and LS_TOL count as converged.
GRAD_TOL = "grad-tol"
PRECISION = "precision"  # no lower point, at a gradient already at attainable accuracy
LS_TOL = "ls-tol"  # the least-squares engine's relative tests (adcli.regression.fitting)
MAX_STEPS = "max-steps"
NO_PROGRESS = "no-progress"
DIVERGED = "diverged"
UNBOUNDED = "unbounded"
INTERRUPTED = "interrupted"
TIME_LIMIT = "time-limit"
SADDLE = "saddle"  # a zero gradient where the Hessian has negative curvature: no minimum
FLAT = "flat"  # a gradient test passed where the value is flat to float64 precision
REASONS = {
    GRAD_TOL: "the gradient norm fell below --tol",
    PRECISION: "no lower point exists to float64 precision: the point is stationary to the "
               "accuracy the values allow",
    LS_TOL: "the least-squares engine's relative tests were met",
    MAX_STEPS: "the step limit was reached",
    NO_PROGRESS: "no further progress was possible",
    DIVERGED: "the value became non-finite; the last finite point is reported",
    UNBOUNDED: "the value fell without bound; the objective looks unbounded below",
    INTERRUPTED: "interrupted; the best point so far is reported",
    TIME_LIMIT: "the time limit was reached; the best point so far is reported",
    SADDLE: "the gradient is zero but the Hessian has a negative eigenvalue: a saddle point "
            "or a maximum, not a minimum",
    FLAT: "the value is flat to float64 precision around the point: a plateau, maybe no minimum",
}


@dataclass(slots=True)
class MinimizeResult:
    """Where a run ended and why; its JSON has exactly the documented fields (with ``partitions``
    and ``rows`` for a run over partitioned data)."""

    names: list[str]
    x: np.ndarray
    value: float
    grad: np.ndarray
    iterations: int
    evaluations: int
    reason: str
    method: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    partitions: int | None = None
    rows: int | None = None
    #: ``--stderr``: an :class:`adcli.optimize.covariance.Covariance` (its keys join these)
    estimate: Any = None

    # "minimum" only for a converged run: a diverged or stopped run's last point is none.
    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("minimum", lambda r: nest_elements(r.minimum), omit=lambda r: not r.converged),
        Key("point", lambda r: nest_elements(r.minimum), omit=lambda r: r.converged),
        Key("value", lambda r: float(r.value)), Key("grad_norm"), Key("iterations"),
        Key("evaluations"), Key("converged"), Key("reason"), Key("method"),
        Key("estimate", lambda r: fields_of(r.estimate), omit=lambda r: r.estimate is None,
            spread=True),
        Key("partitions", omit=lambda r: r.partitions is None),
        Key("rows", omit=lambda r: r.rows is None))

    @property
    def converged(self) -> bool:
        return self.reason in (GRAD_TOL, PRECISION, LS_TOL)

    @property
    def grad_norm(self) -> float:
        return norm(self.grad)

    @property
    def minimum(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.x)}


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``w2`` before ``w10``: digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


def norm(v: Any) -> float:
    """The 2-norm, scaled by the largest entry first: ``np.linalg.norm`` squares the entries,
    so a finite gradient of 2.7e154 would have norm inf (and "diverge")."""
    import numpy as np

    a = np.abs(np.asarray(v, dtype=np.float64))
    if a.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        m = float(np.max(a))
        if m == 0.0 or not math.isfinite(m):
            return float("nan") if np.isnan(a).any() else m
        return m * math.sqrt(float(np.sum(np.square(a / m))))


# --------------------------------------------------------------------------- compare-modes


@dataclass(slots=True)
class ModeCost:
    """One way of computing the gradient and what it cost."""

    gradient: dict[str, Any]
    forward_passes: int
    backward_passes: int
    ops: int  # counted by the sweeps
    seconds: float  # per full gradient, best of `runs`
    runs: int

    @property
    def passes(self) -> int:
        return self.forward_passes + self.backward_passes

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("gradient"), Key("passes"), Key("forward_passes"), Key("backward_passes"),
        Key("ops"), Key("seconds"), Key("runs"))


@dataclass(slots=True)
class GradientRow:
    name: str
    forward: Any
    reverse: Any
    numeric: Any
    abs_diff: float  # largest |a - b| over the three pairs
    rel_diff: float  # the same relative to the largest magnitude of the three


@dataclass(slots=True)
class Directional:
    """The derivative along one direction: forward mode needs a single pass for it."""

    direction: dict[str, float]
    forward: Any
    reverse: Any  # gradient . direction
    numeric: Any
    forward_ops: int

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("direction"), Key("forward"), Key("reverse"), Key("numeric"),
        Key("forward_passes", lambda d: 1), Key("forward_ops"))


@dataclass(slots=True)
class Comparison:
    value: Any
    instructions: int
    forward: ModeCost
    reverse: ModeCost
    numeric: ModeCost
    rows: list[GradientRow]
    directional: Directional | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def variables(self) -> int:
        return len(self.rows)

    @property
    def max_abs_diff(self) -> float:
        return max((r.abs_diff for r in self.rows), default=0.0)

    @property
    def max_rel_diff(self) -> float:
        return max((r.rel_diff for r in self.rows), default=0.0)

    @property
    def max_ad_diff(self) -> float:
        """Largest |forward - reverse|: the two AD modes should agree to rounding."""
        return max((_absdiff(r.forward, r.reverse) for r in self.rows), default=0.0)

    def reading(self) -> str:
        return reading(self.variables, self.forward, self.reverse)

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("value"), Key("variables"), Key("instructions"), Key("forward"), Key("reverse"),
        Key("numeric"), Key("max_abs_diff"), Key("max_rel_diff"),
        Key("forward_reverse_max_abs_diff", lambda c: c.max_ad_diff),
        Key("reading", lambda c: c.reading()), Key("warnings"),
        Key("directional", omit=lambda c: c.directional is None))


def reading(n: int, forward: ModeCost, reverse: ModeCost) -> str:
    """One line on why the costs differ."""
    base = (f"forward mode runs one pass per input ({forward.forward_passes} for {n} "
            f"input{'s' if n != 1 else ''}); reverse mode runs 1 forward + 1 backward pass "
            "whatever the number of inputs")
    if reverse.seconds > 0 and forward.seconds > 0 and reverse.ops > 0:
        t = forward.seconds / reverse.seconds
        o = forward.ops / reverse.ops
        if t >= 1:
            return f"{base}: here reverse mode is {t:.1f}x faster ({o:.1f}x fewer operations)"
        return (f"{base}: with so few inputs forward mode is {1 / t:.1f}x faster here "
                f"({o:.2f}x the operations of reverse mode)")
    return base


def _absdiff(a: Any, b: Any) -> float:
    import numpy as np

    with np.errstate(all="ignore"):
        a, b = float(a), float(b)
    if a == b:  # also equal infinities
        return 0.0
    return abs(a - b) if np.isfinite(a) and np.isfinite(b) else float("nan")


def gradient_row(name: str, f: Any, r: Any, n: Any) -> GradientRow:
    """One variable's three gradients and how far apart they are."""
    import numpy as np

    pairs = [(f, r), (f, n), (r, n)]
    diffs = [_absdiff(a, b) for a, b in pairs]
    d = float("nan") if any(np.isnan(diffs)) else max(diffs)
    scale = max(abs(float(v)) for v in (f, r, n)) if not np.isnan(d) else float("nan")
    rel = 0.0 if d == 0.0 else (d / scale if scale > 0 else float("nan"))
    return GradientRow(name, f, r, n, d, rel)



@dataclass(slots=True)
class ScalingRow:
    n: int
    instructions: int
    forward_passes: int
    forward_ops: int
    forward_seconds: float
    forward_passes_timed: int  # < forward_passes: the time is extrapolated from these passes
    reverse_passes: int
    reverse_ops: int
    reverse_seconds: float

    @property
    def forward_estimated(self) -> bool:
        return self.forward_passes_timed < self.forward_passes

    @property
    def ratio(self) -> float:
        return self.forward_seconds / self.reverse_seconds if self.reverse_seconds else float("nan")

    json_keys: ClassVar[tuple[Key, ...]] = (
        Key("n"), Key("instructions"),
        Key("forward", lambda r: {"passes": r.forward_passes, "ops": r.forward_ops,
                                  "seconds": r.forward_seconds,
                                  "passes_timed": r.forward_passes_timed,
                                  "estimated": r.forward_estimated}),
        Key("reverse", lambda r: {"passes": r.reverse_passes, "forward_passes": 1,
                                  "backward_passes": 1, "ops": r.reverse_ops,
                                  "seconds": r.reverse_seconds}),
        Key("time_ratio", lambda r: r.ratio))


@dataclass(slots=True)
class ScalingReport:
    """``adcli compare-modes --scaling``: one family's rows as the number of inputs grows;
    ``chart``: draw the bar chart (None: on a terminal)."""

    family: str
    description: str
    rows: list[ScalingRow]
    chart: bool | None = None

    json_keys: ClassVar[tuple[Key, ...]] = (Key("family"), Key("description"), Key("rows"))


# --------------------------------------------------------------------------- diagnostics


@dataclass(slots=True)
class NonFinite:
    """The first slot, in tape order, whose value (or adjoint) is inf or nan."""

    slot: int
    op: str
    label: str
    value: Any
    inputs: list[Any]  # values of its argument slots

    def describe(self, what: str = "value") -> str:
        shown = ", ".join(format_value(v) for v in self.inputs)
        plural = "s" if len(self.inputs) != 1 else ""
        inputs = f" from input{plural} ({shown})" if self.inputs else ""
        return (f"node #{self.slot} ({self.op} '{self.label}') is the first whose {what} "
                f"became {format_value(self.value)}{inputs}")


def format_value(v: Any) -> str:
    if v.__class__ is float:
        return "nan" if v != v else ("inf" if v == math.inf else
                                     "-inf" if v == -math.inf else repr(v))
    import numpy as np

    if np.ndim(v) == 0:
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    return f"array(shape={np.shape(v)})"


@dataclass(slots=True)
class Kink:
    """An instruction evaluated exactly at a point where its op is not differentiable."""

    slot: int
    op: str
    label: str
    inputs: list[Any]
    convention: str
    rows: int = 0  # for columns of data: how many rows sit on the kink (0 for scalars)

    def describe(self) -> str:
        shown = ", ".join(format_value(v) for v in self.inputs)
        where = f" in {self.rows} row{'s' if self.rows != 1 else ''}" if self.rows else ""
        return (f"node #{self.slot} ({self.op} '{self.label}') sits exactly on its kink{where} "
                f"(input{'s' if len(self.inputs) != 1 else ''} {shown}); "
                f"convention used: {self.convention}")
