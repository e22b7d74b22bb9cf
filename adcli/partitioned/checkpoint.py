"""``--checkpoint FILE`` / ``--resume FILE`` for long runs over partitions.

The optimiser runs on one machine and is a deterministic function of the sums the passes
return, so its full state after pass k is fixed by those k results. The checkpoint therefore
holds every pass's request (mode, parameters) and its answer, each float as ``float.hex`` (every
bit, NaN and infinities included; JSON, never pickle), plus the latest parameters. A resumed run
replays the optimiser from the start, answering each pass from the file instead of the workers,
and so reaches pass k in exactly the state the killed run had, for every method the engine uses:
the same bits as an uninterrupted run. A request that differs from the recorded one (which only
a different problem can cause) stops the run with an Error line, never a silently different path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import AdcliError, escape_control
from .partitions import BRANCH_WORDS

FORMAT = "adcli-checkpoint-1"
#: A checkpoint is read whole; anything larger is not one of ours.
MAX_BYTES = 1 << 30


def data_fingerprint(files: Sequence[str]) -> list[list[Any]]:
    """Each data file's absolute path, size and mtime_ns: another file, or the same one
    changed, is another problem."""
    out = []
    for name in files:
        try:
            st = os.stat(name)
        except OSError as err:
            raise AdcliError(f"cannot read data file '{escape_control(name)}': "
                             f"{err.strerror}") from None
        out.append([os.path.abspath(name), st.st_size, st.st_mtime_ns])
    return out


def problem_fingerprint(problem: Mapping[str, Any]) -> str:
    """SHA-256 of the problem's canonical JSON (expression, data fingerprint, the options
    that change the optimiser's path)."""
    text = json.dumps(_canon(problem), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canon(value: Any) -> Any:
    """``value`` with every float (arrays included) as its exact hex text."""
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _hex(value)
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value).hex()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (str, bool)):
        return value
    return repr(value)


def _hex(values: Any) -> list[str]:
    return [float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel()]


def _unhex(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list) or not all(isinstance(v, str) and len(v) < 64
                                               for v in values):
        raise AdcliError(f"{where}: not an adcli checkpoint (a pass is malformed)")
    try:
        return np.array([float.fromhex(v) for v in values], dtype=np.float64)
    except ValueError:
        raise AdcliError(f"{where}: not an adcli checkpoint (a number is malformed)") from None


class Checkpoint:
    """The pass journal of one run: :meth:`answer` replays a resumed run's recorded passes,
    :meth:`record` appends a pass and rewrites ``path`` atomically."""

    def __init__(self, path: str | None, resume: str | None, fingerprint: str,
                 names: Sequence[str]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.names = list(names)
        self.passes: list[list[Any]] = []
        self.latest: list[float] = []
        self.replay: list[tuple[Any, np.ndarray]] = []
        self.replayed = 0
        if resume is not None:
            self.replay = self._load(resume)

    def _load(self, path: str) -> list[tuple[Any, np.ndarray]]:
        where = f"--resume '{escape_control(path)}'"
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_BYTES + 1)
        except OSError as err:
            raise AdcliError(f"{where}: {err.strerror}") from None
        if len(raw) > MAX_BYTES:
            raise AdcliError(f"{where}: not an adcli checkpoint (over 1 GiB)")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise AdcliError(f"{where}: not an adcli checkpoint (not JSON)") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT \
                or not isinstance(doc.get("passes"), list):
            raise AdcliError(f"{where}: not an adcli checkpoint")
        if doc.get("fingerprint") != self.fingerprint:
            raise AdcliError(f"{where}: the checkpoint is of another problem (the expression, "
                             "the data files or an option that changes the path differ)")
        out = []
        for entry in doc["passes"]:
            if not isinstance(entry, list) or len(entry) != 2:
                raise AdcliError(f"{where}: not an adcli checkpoint (a pass is malformed)")
            out.append((entry[0], _unhex(entry[1], where)))
        return out

    def answer(self, key: Any, size: int) -> np.ndarray | None:
        """The recorded answer to the next pass when resuming, else None (run the pass);
        ``size``: how many numbers the pass returns (a file edited to hold another count is
        an error, not a crash of the engine)."""
        if self.replayed >= len(self.replay):
            return None
        recorded, total = self.replay[self.replayed]
        if recorded != key:
            raise AdcliError(f"--resume: pass {self.replayed + 1} asks for other parameters "
                             "than the checkpoint recorded; the run cannot continue from it")
        if total.size != size:
            raise AdcliError(f"--resume: pass {self.replayed + 1} of the checkpoint holds "
                             f"{total.size} numbers, not {size}; the file was altered")
        self.replayed += 1
        return total.copy()

    def record(self, key: Any, total: np.ndarray, b: Sequence[float] | None,
               names: Sequence[str] | None = None) -> None:
        """Append one pass and write the whole journal atomically (a kill at any moment leaves
        the previous checkpoint or this one, never a partial file). ``b``: the parameters
        the pass was at (None for a pass of the data alone), in the order of ``names`` when
        given (the least-squares engine's own order)."""
        self.passes.append([key, _hex(total)])
        if b is not None:
            if names is not None and sorted(names) == sorted(self.names):
                b = [b[list(names).index(n)] for n in self.names]
            self.latest = [float(v) for v in b]
        if self.path is None:
            return
        from ..io.atomic import atomic_output

        doc = {"format": FORMAT, "fingerprint": self.fingerprint,
               "pass": len(self.passes),
               "parameters": dict(zip(self.names, (repr(v) for v in self.latest))),
               "passes": self.passes}
        with atomic_output(self.path) as out:
            out.write(json.dumps(doc, separators=(",", ":")))


def pass_size(name: str, args: tuple) -> int:
    """How many numbers a pass of partition function ``name`` returns: its parameters are
    ``args[2]`` in every partition function's arguments."""
    p = len(args[2])
    if name == "partition_normal":
        return {"rss": 2, "qr": 2 + p + p * p, "lhs": 3, "tss": 2}.get(args[4], -1)
    if name == "partition_sums":
        return p + 2
    if name == "partition_branches":
        return p + 2 + BRANCH_WORDS
    if name in ("partition_hessian", "partition_score_outer"):
        return p * p + 1
    raise AdcliError(f"--checkpoint cannot record a pass of {name}")


def pass_key(mode: str, b: Sequence[float], mean: float) -> list[str]:
    """A pass's request, exactly: its mode, parameters and mean, as hex floats."""
    return [mode] + _hex(list(b) + [mean])


class JournaledParts:
    """A :class:`~adcli.partitioned.distributed.Partitions` whose every pass of sums goes
    through a :class:`Checkpoint`: ``minimize --data``'s objective keeps its own pass loop."""

    def __init__(self, parts: Any, checkpoint: Checkpoint) -> None:
        self._parts = parts
        self._checkpoint = checkpoint
        self._replayed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parts, name)

    @property
    def passes(self) -> int:
        return self._parts.passes + self._replayed

    def sums(self, fn: Any, args: tuple, *rest: Any, **options: Any) -> np.ndarray:
        """One pass, answered from the checkpoint when resuming, recorded after."""
        key = [fn.__name__, _canon(args)]
        total = self._checkpoint.answer(key, pass_size(fn.__name__, args))
        if total is None:
            total = np.asarray(self._parts.sums(fn, args, *rest, **options))
        else:
            self._replayed += 1
        normal = fn.__name__ == "partition_normal"
        at = args[3] if normal and args[4] in ("rss", "qr") else None if normal else args[-1]
        self._checkpoint.record(key, total, at, args[2] if normal else None)
        return total

    def sample(self, *args: Any, **options: Any) -> Any:
        raise AdcliError("--checkpoint and --resume cannot follow a minibatch run "
                         "(--batch-size)")


def journal_objective(objective: Any, checkpoint: str | None, resume: str | None,
                      problem: Mapping[str, Any]) -> None:
    """Route every pass of ``objective`` (a
    :class:`~adcli.partitioned.distributed.DaskObjective`) through a checkpoint of
    ``problem`` (its ``files`` replaced by their fingerprint)."""
    problem = dict(problem)
    problem["files"] = data_fingerprint(problem["files"])
    journal = Checkpoint(checkpoint, resume, problem_fingerprint(problem), objective.names)
    objective._parts = JournaledParts(objective._parts, journal)


# --------------------------------------------------------------------------- data in memory
# The same journal for a run over data held in memory: its passes are the engine's sweeps
# over all the rows (the least-squares engine's [R, Qᵀr, rᵀr]) or the objective's
# evaluations (value and gradient, Hessian), recorded and replayed as over partitions.


def sweep_journal(checkpoint: Checkpoint) -> Callable[[Sequence[str]], Callable]:
    """``journal(free)``: the wrapper :class:`adcli.regression.leastsq.Compressed` puts around
    its sweep (parameters ``free``, in the engine's order -> [R (p*p), Qᵀr (p), rᵀr]):
    answered from ``checkpoint`` when resuming, recorded after every sweep."""

    def for_names(free: Sequence[str]) -> Callable[[Callable], Callable]:
        p = len(free)

        def wrap(sweep: Callable[[np.ndarray], np.ndarray]
                 ) -> Callable[[np.ndarray], np.ndarray]:
            def journaled(b: np.ndarray) -> np.ndarray:
                key = pass_key("qr", b, 0.0)
                total = checkpoint.answer(key, p * p + p + 1)
                if total is None:
                    total = np.asarray(sweep(b), dtype=np.float64)
                checkpoint.record(key, total, b, free)
                return total
            return journaled
        return wrap
    return for_names


class JournaledObjective:
    """An in-memory :class:`~adcli.optimize.objective.Objective` whose value-and-gradient
    and Hessian evaluations go through a :class:`Checkpoint` (anything else is the
    objective's own)."""

    def __init__(self, objective: Any, checkpoint: Checkpoint) -> None:
        self._objective = objective
        self._checkpoint = checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objective, name)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        def compute() -> np.ndarray:
            f, g = self._objective(x)
            return np.concatenate(([f], np.asarray(g, dtype=np.float64)))

        total = self._through("value_and_grad", x, len(x) + 1, compute)
        return float(total[0]), total[1:]

    def hessian(self, x: np.ndarray) -> np.ndarray:
        p = len(x)
        total = self._through("hessian", x, p * p,
                              lambda: np.asarray(self._objective.hessian(x)).ravel())
        return total.reshape(p, p)

    def _through(self, name: str, x: np.ndarray, size: int,
                 compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = [name, *_hex(x)]
        total = self._checkpoint.answer(key, size)
        if total is None:
            total = np.asarray(compute(), dtype=np.float64)
        self._checkpoint.record(key, total, x)
        return total
