"""Which engine runs a tape, and when: the one policy over the engines of :mod:`adcli.fast`.

For a point (positional floats), :func:`choose` decides from the tape's size and how often it
has been swept:

======================================  ==================================================
situation                               engine
======================================  ==================================================
first sweep of a small tape             float interpreter (:func:`.scalar.interpreter`)
first ``COMPILE_AFTER_CALLS`` sweeps    float interpreter: generating and compiling costs
of a big tape                           many interpreted sweeps (figures: bench/README.md)
later sweeps, or many sweeps expected   straight-line code (:func:`.scalar.scalar_functions`),
                                        or for a big tape whose levels are wide, the
                                        level-by-level plan (:mod:`.levelled`)
======================================  ==================================================

Columns of data always run the blocked numpy sweeps (:mod:`.columns`). Whatever the engine,
a sweep that Python cannot do in IEEE fashion falls back to the plain interpreter
(:mod:`adcli.core.sweeps`), so every engine gives the interpreter's numbers (tests check it).
"""

from __future__ import annotations

from ..core.tape import Tape
from ..ops.codegen import FALLBACK
from .scalar import (
    array_form,
    count_error,
    grad_entry,
    input_array,
    interpreter,
    is_array,
    scalar_functions,
)

TYPE_CHECKING = False  # annotations only: typing and collections.abc cost start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    # the column and levelled engines are imported when first used: a command at a point
    # (adcli grad --at) needs neither
    from .levelled import Levelled

    Functions = tuple[Callable[..., float], Callable[..., tuple[float, tuple[float, ...]]]]

#: Tapes with at most this many instructions are compiled on their second sweep...
COMPILE_AT_ONCE = 500
#: ...larger ones once they have been swept this many times. Until then the float
#: interpreter runs them: a one-shot gradient never pays for compiling.
COMPILE_AFTER_CALLS = 8

#: Straight-line code is generated for at most this many instructions: CPython's compiler
#: needs several kB per generated line (gigabytes for a million instructions), so bigger
#: tapes without a levelled plan stay with the float interpreter (linear in memory).
COMPILE_MAX_SIZE = 100_000


def choose(size: int, calls: int | None) -> str:
    """The engine for a sweep of a tape of ``size`` instructions that has now been called
    ``calls`` times (None: many calls expected): "interpreter" or "compiled" (straight-line
    code, or the levelled plan when the tape has one; see the module docstring)."""
    if calls is not None and calls <= (1 if size <= COMPILE_AT_ONCE else COMPILE_AFTER_CALLS):
        return "interpreter"
    return "compiled"


def guard(fast: Callable, slow: Callable) -> Callable:
    """``fast``, or ``slow`` where ``fast`` raises instead of returning inf/nan."""
    def run(*xs: float):
        try:
            return fast(*xs)
        except FALLBACK:
            return slow(*xs)
    return run


def with_arrays(fn: Callable, names: list[str], grad: bool) -> Callable:
    """``fn`` (positional floats) that also takes the inputs as one numpy array, as the
    generated straight-line functions do (:func:`.scalar.array_form`)."""
    vector = array_form(fn, names, grad)
    n = len(names)

    def call(*xs: Any):
        if len(xs) != n or n == 1 and is_array(xs[0]):
            if len(xs) != 1:
                raise count_error(len(xs), names)
            return vector(xs[0])
        return fn(*xs)
    return call


class CompiledTape:
    """Fast sweeps for one tape; engines built lazily, cached on the tape's
    :class:`~adcli.function.Function`.

    :meth:`auto` (one more call) and :meth:`fast` (many calls; also the properties ``value``
    and ``value_and_grad``, the public API) return ``(value, value_and_grad)``: functions of
    the input values by position, in ``names`` order, returning Python floats
    (``value_and_grad`` returns ``(value, grads)`` with ``grads`` a tuple in the same order).
    Each also takes the inputs as one 1-D numpy array in ``names`` order and then returns the
    gradient as an array: the form for many inputs (no tuple of thousands of floats).
    :meth:`interpreter` and :meth:`compiled` name one engine (for tests and benchmarks);
    :meth:`sweep_columns` handles numpy columns."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.names: list[str] = list(tape.inputs)
        self.size = sum(op.__class__ is not str for op in tape.ops)
        self.calls = 0
        self._compiled: Functions | None = None
        self._interp: Functions | None = None
        self._blocks: dict[tuple[frozenset[int], frozenset[int], bool, bool], Callable] = {}
        self.source = ""  # the generated scalar source, once compiled (for inspection)
        self._levelled: Levelled | None | bool = None
        self._straight = False  # whether _compiled is the straight-line code
        self._entry: Callable | None | bool = None
        self.entry_source = ""  # the generated source of grad_entry, once built

    # -- plain interpreter, for the cases Python floats cannot do in IEEE fashion
    def _slow_value(self, *xs: float) -> float:
        from ..core import sweeps  # loaded when first needed: start-up

        return float(sweeps.evaluate(self.tape, dict(zip(self.names, xs)))[self.tape.output])

    def _slow_grad(self, *xs: float):
        from ..core import sweeps

        value, grads, _, _ = sweeps.value_and_grad(self.tape, dict(zip(self.names, xs)))
        return float(value), tuple(float(grads[n]) for n in self.names)

    def interpreter(self) -> Functions:
        """(value, value_and_grad) by the float interpreter, falling back to the plain one."""
        if self._interp is None:
            value, grad = interpreter(self.tape)
            self._interp = (with_arrays(guard(value, self._slow_value), self.names, False),
                            with_arrays(guard(grad, self._slow_grad), self.names, True))
        return self._interp

    def compiled(self) -> Functions:
        """(value, value_and_grad) as generated straight-line functions (compiles now)."""
        if self._compiled is None:
            value, grad, self.source = scalar_functions(
                self.tape, self._slow_value, self._slow_grad)
            self._compiled = (value, grad)
            self._straight = True
        return self._compiled

    def levelled(self) -> Levelled | None:
        """The level-by-level numpy plan, when the tape is big and wide enough for one."""
        if self._levelled is None:
            from .levelled import levelled

            self._levelled = levelled(self.tape) or False
        return self._levelled or None

    def fast(self) -> Functions:
        """(value, value_and_grad) for many calls, built now: the level-by-level plan for a
        big wide tape, else straight-line code (the float interpreter past
        :data:`COMPILE_MAX_SIZE` instructions)."""
        if self._compiled is None:
            plan = self.levelled()
            if plan is not None:
                self._compiled = _levelled_functions(plan, self.names)
            elif self.size > COMPILE_MAX_SIZE:
                self._compiled = self.interpreter()
            else:
                self.compiled()
        return self._compiled  # type: ignore[return-value]

    def auto(self) -> Functions:
        """(value, value_and_grad) for one more call, as :func:`choose` decides (what
        ``Function.grad`` and the optimisers use)."""
        if self._compiled is not None:
            return self._compiled
        self.calls += 1
        if choose(self.size, self.calls) == "interpreter":
            return self.interpreter()
        return self.fast()

    @property
    def settled(self) -> bool:
        """Whether :meth:`auto` returns the compiled functions from now on (so a caller may
        keep them: the fast path of ``Function.grad(dict)``)."""
        return self._compiled is not None

    def grad_entry(self, result: Callable, miss: Callable) -> Callable | None:
        """``Function.grad`` with the sweeps inline (:func:`.scalar.grad_entry`), built once:
        only while the straight-line code is the engine (its bits) and for tapes small
        enough that a second copy costs little to compile; else None."""
        if self._entry is None:
            self._entry = False
            if self._straight and self.size <= COMPILE_AT_ONCE:
                self._entry, self.entry_source = grad_entry(self.tape, self._compiled[1],
                                                            result, miss)
        return self._entry or None

    @property
    def value(self) -> Callable[..., float]:
        """The public name of ``fast()[0]``: the value function, ``value(*xs)`` or
        ``value(x)`` with ``x`` one array."""
        return self.fast()[0]

    @property
    def value_and_grad(self) -> Callable[..., tuple[float, Any]]:
        """The public name of ``fast()[1]``: ``value, grads = vg(*xs)`` (a tuple of floats),
        or ``value, grad = vg(x)`` with ``x`` one array (an array)."""
        return self.fast()[1]

    @property
    def grad(self) -> Callable[..., Any]:
        """The gradient alone: ``grad(*xs)`` a tuple of floats, ``grad(x)`` an array."""
        vg = self.fast()[1]

        def grad(*xs: Any) -> Any:
            return vg(*xs)[1]
        return grad

    def value_and_grad_vector(self, x) -> tuple[float, Any]:
        """(value, gradient) with the inputs as one numpy array in ``names`` order (the
        natural form for thousands of inputs); the gradient is an array in the same order."""
        import numpy as np

        plan = self.levelled()
        if plan is not None:
            return plan.value_and_grad(np.asarray(x, dtype=np.float64))
        value, grads = self.fast()[1](*np.asarray(x, dtype=np.float64).tolist())
        return value, np.array(grads)

    def value_vector(self, x) -> float:
        """Value with the inputs as one numpy array in ``names`` order."""
        import numpy as np

        plan = self.levelled()
        if plan is not None:
            return plan.value(np.asarray(x, dtype=np.float64))
        return self.fast()[0](*np.asarray(x, dtype=np.float64).tolist())

    def sweep_columns(self, xs: list, *, sum_value: bool = False,
                      wrt: list[str] | None = None):
        """Value and gradient over columns of data: :func:`adcli.fast.columns.sweep_columns`."""
        from .columns import sweep_columns

        return sweep_columns(self.tape, self._blocks, xs, sum_value=sum_value, wrt=wrt)

    def grad_sum(self, point: Mapping[str, Any], wrt: Sequence[str]) -> tuple[Any, list]:
        """The sum of the output over the rows of the data columns in ``point``, and the
        gradient of that sum w.r.t. ``wrt`` (in that order): the loss of a fit.  A term that
        does not depend on the rows (a penalty such as 0.01*w^2) counts once per row, as a
        per-row seed would.  :meth:`adcli.function.Function.grad_sum` and the minimisers'
        objective both run this."""
        inputs = self.tape.inputs
        value, grads = self.sweep_columns([point[n] for n in inputs], sum_value=True,
                                          wrt=list(wrt))
        slot = {name: i for i, name in enumerate(inputs)}
        return value, [grads[slot[name]] for name in wrt]


def compiled(tape: Tape) -> CompiledTape:
    """The fast sweeps of ``tape``, built once and kept on the tape (:meth:`Tape.derived`)."""
    return tape.derived(CompiledTape, CompiledTape, tape)


def _levelled_functions(plan: Levelled, names: list[str]) -> Functions:
    import numpy as np

    n = len(names)

    def array(xs: tuple) -> Any:
        """The inputs of one call as an array: one array checked, else numbers by position."""
        if len(xs) != n or n == 1 and is_array(xs[0]):
            if len(xs) != 1:
                raise count_error(len(xs), names)
            return input_array(xs[0], names)
        return None

    def value(*xs: float) -> float:
        x = array(xs)
        if x is not None:
            return plan.value(x)
        return plan.value(np.array(xs, dtype=np.float64))

    def value_and_grad(*xs: float):
        x = array(xs)
        if x is not None:
            return plan.value_and_grad(x)
        v, g = plan.value_and_grad(np.array(xs, dtype=np.float64))
        return v, tuple(g.tolist())

    return value, value_and_grad
