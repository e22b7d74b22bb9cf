"""Fast engines for a tape, each checked against the plain interpreter (:mod:`adcli.core.sweeps`).

One module per engine: :mod:`~adcli.ops.kernels` (float and numpy kernels),
:mod:`~adcli.ops.codegen` (what the generators share), :mod:`~adcli.fast.scalar`
(straight-line float code and the float interpreter), :mod:`~adcli.fast.columns` (blocked numpy
over columns of data, with the thread driver), :mod:`~adcli.fast.levelled` (big wide tapes level
by level) and :mod:`~adcli.fast.policy` (which engine runs when: :class:`CompiledTape`).

This package's ``__init__`` imports nothing: :mod:`adcli.ops` uses the kernels, and the engines
use :mod:`adcli.ops`.
"""
