"""The Python API: ``adcli.parse(text)`` returns a :class:`Function` that can be evaluated and
differentiated at many points without re-parsing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from . import sweeps
from .errors import NameResolutionError
from .lower import lower
from .ops import CONSTANTS
from .parser import DEFAULT_MAX_SOURCE_BYTES, parse_program
from .syntax import Program
from .tape import Tape


class GradResult(NamedTuple):
    """``value, gradient = f.grad(point)``."""

    value: Any
    gradient: dict[str, Any]


class Function:
    """A parsed adcli program.

    Lowering depends on which of the constant names (``pi``, ``e``) the caller binds, so the tape
    is built per such set and cached.
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self._tapes: dict[frozenset[str], Tape] = {}

    @property
    def source(self) -> str:
        return self.program.source

    def tape(self, bound: Iterable[str] = ()) -> Tape:
        """The tape when the names in ``bound`` have values (only pi/e matter)."""
        key = frozenset(n for n in bound if n in CONSTANTS)
        tape = self._tapes.get(key)
        if tape is None:
            try:
                tape = lower(self.program, key)
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
        """Value at ``point`` (float64 scalars, or numpy arrays for columns of data)."""
        tape = self.tape(point)
        return sweeps.evaluate(tape, point)[tape.output]

    def grad(self, point: Mapping[str, Any], wrt: Iterable[str] | None = None) -> GradResult:
        """Value and gradient by one forward and one reverse sweep."""
        tape = self.tape(point)
        value, gradient, _, _ = sweeps.value_and_grad(tape, point)
        if wrt is not None:
            gradient = {name: gradient[name] for name in select_wrt(tape, wrt)}
        return GradResult(value, gradient)

    def __repr__(self) -> str:
        text = self.source if len(self.source) < 60 else self.source[:57] + "..."
        return f"adcli.Function({text!r})"


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
    """Parse adcli source text into a :class:`Function`."""
    return Function(parse_program(text, max_bytes=max_bytes))
