"""The Dask objective's branch test: which side of its kinks every row is on, compared
between two points over the partitions without collecting a row on the client, so that the
driver's verdicts on expressions with kinks and jumps (abs, max, min, relu, sign, step) are
the ones it gives in memory (:meth:`adcli.optimize.objective.Objective.branches`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .partitions import BRANCH_WORDS, partition_branches, partition_sums


class PassBranches:
    """:meth:`branches` for :class:`adcli.partitioned.distributed.DaskObjective`: one pass
    that sums the value and gradient as well, kept for the evaluation at the same point that
    follows (the rounding probe asks for a point's sides, then its gradient), so a probed
    point costs one pass, as in memory."""

    _ahead: tuple[np.ndarray, np.ndarray] | None = None
    _parts: Any
    _args: Any
    tape: Any
    on_pass: Any
    partitions: int
    passes: int

    def branches(self, x: np.ndarray) -> np.ndarray:
        """Not a side a row, as in memory, but a signature of all of them: equal at two
        points exactly where every row's sides are (a digest summed over the partitions),
        with a 0 where some row is on a kink and a NaN where some side is NaN (in memory
        such a signature equals no other), so ``np.array_equal`` and ``== 0`` read it as
        they read the in-memory array.  Empty without kinks."""
        if not any(op.kink is not None for _, op, _ in self.tape.instructions()):
            return np.zeros(0)
        x = np.array(x, dtype=np.float64)
        total = np.asarray(self._parts.sums(partition_branches, self._args(x)))
        self._ahead = (x, total[:-BRANCH_WORDS])
        self._passed()
        words, (zeros, nans) = total[-BRANCH_WORDS:-2], total[-2:]
        return np.concatenate([words + 1.0, [0.0 if zeros else 1.0,
                                             np.nan if nans else 1.0]])

    def _sums_at(self, x: np.ndarray) -> np.ndarray:
        """:func:`.partitions.partition_sums` over every partition at ``x``: the pass
        :meth:`branches` just made there, or a new one."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and np.array_equal(ahead[0], x):
            return ahead[1]
        return self._parts.sums(partition_sums, self._args(x))


    def _passed(self) -> None:
        """A pass ended: the progress line's count."""
        if self.on_pass is not None:
            self.on_pass(self.passes, self.partitions)
