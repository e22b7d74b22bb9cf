"""The Python API: ``adcli.parse(text)`` returns a :class:`Function` that can be evaluated and
differentiated at many points without re-parsing."""

from __future__ import annotations

import gc

from .core.lower import MAX_NODES, lower
from .core.syntax import Program
from .core.tape import Tape
from .errors import NameResolutionError
from .fast.policy import CompiledTape, compiled
from .language.parser import DEFAULT_MAX_SOURCE_BYTES, parse_program
from .ops import CONSTANTS
from .ops.codegen import ENTRY_MAX_INPUTS, point_entry

# typing (typing.NamedTuple) and collections (namedtuple, collections.abc) cost more to import
# than a small first parse and gradient: annotations only, and the results are written out.
TYPE_CHECKING = False
if TYPE_CHECKING:  # numpy is imported where arrays are handled: a point of floats needs none
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    import numpy as np


class _Record(tuple):
    """A named tuple, as ``collections.namedtuple`` makes one (fields by name and position,
    ``repr``, ``_make``, ``_asdict``, ``_replace``, pickling), for the results below."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __getnewargs__(self) -> tuple:
        return tuple(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self))
        return f"{self.__class__.__name__}({shown})"

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> _Record:
        return cls(*iterable)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self))

    def _replace(self, **changes: Any) -> _Record:
        return self.__class__(**{**self._asdict(), **changes})


class GradResult(_Record):
    """``value, gradient = f.grad(point)``: the value and a dict of partial derivatives."""

    __slots__ = ()
    _fields = __match_args__ = ("value", "gradient")

    def __new__(cls, value: Any, gradient: dict[str, Any]) -> GradResult:
        return tuple.__new__(cls, (value, gradient))

    value = property(lambda self: self[0], doc="the value")
    gradient = property(lambda self: self[1], doc="the partial derivatives, by input name")


class JvpResult(_Record):
    """``value, derivative = f.jvp(point, direction)``."""

    __slots__ = ()
    _fields = __match_args__ = ("value", "derivative")

    def __new__(cls, value: Any, derivative: Any) -> JvpResult:
        return tuple.__new__(cls, (value, derivative))

    value = property(lambda self: self[0], doc="the value")
    derivative = property(lambda self: self[1], doc="the directional derivative")


class Function:
    """A parsed adcli program.

    Lowering depends on which of the constant names (``pi``, ``e``) the caller binds, so the tape
    is built per such set and cached.
    """

    def __init__(self, program: Program, max_nodes: int | None = MAX_NODES) -> None:
        self.program = program
        self.max_nodes = max_nodes  # see adcli.core.lower.MAX_NODES
        self._tapes: dict[frozenset[str], Tape] = {}
        # The fast paths of grad() and eval() for the common call, a point of plain floats
        # with the same keys as a previous one: generated entries (see _engine).
        self._grad_entry: Callable[[Mapping[str, Any]], Any] = _no_entry
        self._eval_entry: Callable[[Mapping[str, Any]], Any] = _no_entry

    def compiled(self, bound: Iterable[str] = ()) -> CompiledTape:
        """The fast sweeps of :meth:`tape` (generated code; see :mod:`adcli.fast`)."""
        return compiled(self.tape(bound))

    def grad_sum(self, point: Mapping[str, Any], wrt: Iterable[str] | None = None
                 ) -> GradResult:
        """Sum over the rows of data columns, and its gradient: the loss of a fit.

        Runs in blocks of rows on threads (see :mod:`adcli.fast`); the same numbers as
        summing :meth:`grad` up to the order of the floating-point additions."""
        tape = self.tape(point)
        _sweeps().bind(tape, point)  # the interpreter's checks and messages for missing values
        names = select_wrt(tape, wrt) if wrt is not None else list(tape.inputs)
        value, grads = compiled(tape).grad_sum(point, names)
        return GradResult(_plain(value), {name: _plain(g) for name, g in zip(names, grads)})

    @property
    def source(self) -> str:
        return self.program.source

    def tape(self, bound: Iterable[str] = ()) -> Tape:
        """The tape when the names in ``bound`` have values (only pi/e matter)."""
        key = frozenset(n for n in bound if n in CONSTANTS)
        tape = self._tapes.get(key)
        if tape is None:
            try:
                with gc_paused():
                    tape = lower(self.program, key, max_nodes=self.max_nodes)
            except NameResolutionError as err:
                err.source = self.program.source
                raise
            self._tapes[key] = tape
        return tape

    @property
    def variables(self) -> list[str]:
        """Input variables when no constant is shadowed, in order of first use."""
        return self.tape().variables

    def eval(self, point: Mapping[str, Any]) -> Any:
        """Value at ``point``: a Python float for a point of scalars (so it prints as
        ``9.0``), a numpy array for columns of data."""
        found = self._eval_entry(point)
        if found is not None:
            return found
        tape = self.tape(point)
        xs = _scalar_inputs(tape, point)
        if xs is not None:
            return float(self._engine(tape, point)[0](*xs))
        return _sweeps().evaluate(tape, point)[tape.output]

    def grad(self, point: Mapping[str, Any], wrt: Iterable[str] | None = None) -> GradResult:
        """Value and gradient by one forward and one reverse sweep: Python floats for a point
        of scalars (``print(gradient)`` shows ``{'x': -6.0}``), numpy arrays for columns."""
        if wrt is None:
            found = self._grad_entry(point)
            if found is not None:
                return found
        tape = self.tape(point)
        xs = _scalar_inputs(tape, point)
        if xs is not None:
            value, grads = self._engine(tape, point)[1](*xs)
            value = float(value)
            gradient = {name: float(g) for name, g in zip(tape.inputs, grads)}
        elif _same_length_columns(_sweeps().bind(tape, point)):
            # Columns of data: blocked numpy sweeps (per-row values, per-row gradients for the
            # columns, summed gradients for the scalars), as the interpreter defines them.
            names = select_wrt(tape, wrt) if wrt is not None else list(tape.inputs)
            value, grads = self.compiled(point).sweep_columns(
                [point[n] for n in tape.inputs], wrt=names)
            gradient = dict(zip(tape.inputs, grads))
            return GradResult(_plain(value), {name: _plain(gradient[name]) for name in names})
        else:
            value, gradient, _, _ = _sweeps().value_and_grad(tape, point)
            value, gradient = _plain(value), {n: _plain(g) for n, g in gradient.items()}
        if wrt is not None:
            gradient = {name: gradient[name] for name in select_wrt(tape, wrt)}
        return GradResult(value, gradient)

    def _engine(self, tape: Tape, point: Mapping[str, Any]) -> Any:
        """The (value, value_and_grad) functions for one more sweep at a point of scalars.
        Once they are the compiled ones for good, and the point names exactly the tape's
        inputs (so its keys alone pick this tape), later calls with such a point of Python
        floats go straight to them through generated entries (no tape lookup, no lists)."""
        ct = compiled(tape)
        engine = ct.auto()
        n = len(tape.inputs)
        if ct.settled and len(point) == n and n <= ENTRY_MAX_INPUTS:
            import weakref

            keys = tuple(tape.inputs)
            self._grad_entry = point_entry(n, True)(keys, engine[1], GradResult)
            self._eval_entry = point_entry(n, False)(keys, engine[0], float)
            # For a small tape, ``f.grad`` itself becomes generated code with the sweeps
            # inline (an instance attribute over this method: one Python frame, not three);
            # anything it does not handle comes back here. A weak reference: no cycle.
            entry = ct.grad_entry(GradResult, _general_grad(weakref.ref(self)))
            if entry is not None:
                entry.__doc__ = Function.grad.__doc__
                self.__dict__["grad"] = entry
            else:
                self.__dict__.pop("grad", None)
        return engine

    def hessian(self, point: Mapping[str, Any], wrt: Iterable[str] | None = None
                ) -> np.ndarray:
        """The exact (n, n) Hessian at ``point`` w.r.t. ``wrt`` (default: every variable, in
        the order of :attr:`variables`); over data columns, of the sum over the rows. The
        gradient tapes are built once and cached, so many points cost only sweeps."""
        from .derive.curvature import hessian

        tape = self.tape(point)
        names = select_wrt(tape, wrt) if wrt is not None else list(tape.inputs)
        return hessian(tape, point, names)

    def jvp(self, point: Mapping[str, Any], direction: Mapping[str, Any]) -> JvpResult:
        """Value and directional derivative along ``direction`` by forward mode: one pass,
        whatever the number of variables (variables missing from ``direction`` get 0)."""
        sweeps = _sweeps()
        tape = self.tape(point)
        select_wrt(tape, direction)
        values = sweeps.evaluate(tape, point)
        tangent = sweeps.forward(tape, values, direction)
        return JvpResult(values[tape.output], tangent[tape.output])

    def __repr__(self) -> str:
        text = self.source if len(self.source) < 60 else self.source[:57] + "..."
        return f"adcli.Function({text!r})"


def _general_grad(ref: Callable[[], Function | None]) -> Callable:
    """``Function.grad`` of the function ``ref`` refers to (the path for every call that the
    generated ``f.grad`` does not handle)."""
    def general(point: Mapping[str, Any], wrt: Iterable[str] | None) -> GradResult:
        return Function.grad(ref(), point, wrt)  # type: ignore[arg-type]
    return general


def _sweeps():
    """:mod:`adcli.core.sweeps`, the plain interpreter, loaded when first needed: a point of
    floats runs the float engines."""
    from .core import sweeps

    return sweeps


def _no_entry(point: Mapping[str, Any]) -> None:
    """No fast path yet (see Function._engine)."""
    return None


def _plain(v: Any) -> Any:
    """A Python float for a scalar (numpy's float64 prints as ``np.float64(-6.0)``), arrays
    as they are."""
    if v.__class__ is float:
        return v
    import numpy as np

    return float(v) if np.ndim(v) == 0 else v


def _scalar_inputs(tape: Tape, point: Mapping[str, Any]) -> list[float] | None:
    """The inputs as Python floats in tape order, or None when some value is an array (or
    missing: the interpreter then reports it)."""
    xs = []
    for name in tape.inputs:
        v = point.get(name)
        if v is None or (type(v) is not float and _ndim(v) != 0):
            return None
        xs.append(float(v))
    return xs


def _ndim(v: Any) -> int:
    """``np.ndim``, numpy loaded only for a value that is no Python number."""
    if v.__class__ in (float, int):
        return 0
    import numpy as np

    return np.ndim(v)


def _same_length_columns(values: list) -> bool:
    """Whether the array inputs are all 1-D of one length (rows of data), the case the
    blocked sweeps handle; other shapes broadcast through the interpreter."""
    import numpy as np

    shapes = {np.shape(v) for v in values if np.ndim(v) > 0}
    return len(shapes) == 1 and len(next(iter(shapes))) == 1


def select_wrt(tape: Tape, wrt: Iterable[str]) -> list[str]:
    """Validate a --wrt list against the tape's inputs."""
    names = list(wrt)
    for name in names:
        if name not in tape.inputs:
            known = ", ".join(tape.inputs) or "none"
            raise NameResolutionError(
                f"'{name}' is not a variable of the expression (variables: {known})")
    return names


def parse(text: str, *, max_bytes: int | None = DEFAULT_MAX_SOURCE_BYTES) -> Function:
    """Parse adcli source text into a :class:`Function`. Without a size limit (``max_bytes``
    None or 0) there is no limit on the number of nodes either."""
    with gc_paused():
        return Function(parse_program(text, max_bytes=max_bytes),
                        max_nodes=MAX_NODES if max_bytes else None)


def hessian_of(f: Function | str, point: Mapping[str, Any], wrt: Iterable[str] | None = None
               ) -> np.ndarray:
    """``adcli.hessian(f, point, wrt=None)``: the exact Hessian of ``f`` (an
    :class:`adcli.Function` or source text) at ``point``, as ``f.hessian(point, wrt)``. It
    lives here, beside :func:`parse`, so the Hessian engine never reaches up for the parser."""
    if isinstance(f, str):
        f = parse(f)
    return f.hessian(point, wrt)


class gc_paused:  # noqa: N801 - used as a function: ``with gc_paused():``
    """Pause the cyclic garbage collector while building big acyclic structures (syntax
    trees, tapes): its passes over every live object slow parsing and lowering of big
    expressions down, and these structures hold no cycles. A plain class, not
    ``contextlib.contextmanager``: contextlib costs more to import than a small first parse."""

    __slots__ = ("paused",)

    def __enter__(self) -> None:
        self.paused = gc.isenabled()
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()
