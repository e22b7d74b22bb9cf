"""The workers of a Dask cluster, checked before the first pass.

A worker that cannot import adcli (or runs another version) would only fail when a task
needing adcli reaches it, again on every retry, until Dask gives the worker up and the run
ends with a misleading "no worker left". The check runs a small function that needs nothing
but the standard library on every worker first (its code travels by value, so a worker
without adcli can still run it), and names the workers that cannot take adcli's tasks.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import signal
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import EXIT_FAILED, AdcliError, escape_control

#: The glibc settings of the README (Big data): below these a worker sweeps several times slower.
MALLOC_SETTINGS = {"MALLOC_TRIM_THRESHOLD_": 128 << 20, "MALLOC_MMAP_THRESHOLD_": 32 << 20}

#: The environment of the workers a ``local:N`` cluster starts. Dask's default sets glibc's
#: MALLOC_TRIM_THRESHOLD_ to 64 KiB (memory goes back to the OS at once), which also fixes the
#: mmap threshold at 128 KiB: every block temporary of a sweep (512 KiB) was then mapped and
#: unmapped again, and a worker swept much slower than the same code in the client. Large
#: thresholds keep the temporaries on the heap (bench/README.md has the measurements). BLAS
#: stays at one thread a worker, as Dask sets it. Two malloc arenas and Arrow on the system
#: allocator keep a worker's address space near what it uses (see :func:`lean_address_space`).
WORKER_ENVIRON: dict[str, str | int] = {
    **MALLOC_SETTINGS,
    "MALLOC_ARENA_MAX": 2,
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "OMP_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
}


class WorkerMismatch(AdcliError):
    """A worker cannot run adcli's tasks (no adcli, another version): the run cannot finish."""

    exit_code = EXIT_FAILED


def _probe() -> dict:
    """What a worker has: its adcli version (or why it cannot import adcli) and its malloc
    settings. Runs on the worker; uses only the standard library until adcli is imported."""
    import importlib
    import os
    import sys

    out = {"python": sys.executable, "version": None, "error": None,
           "environ": {k: os.environ.get(k) for k in
                       ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}}
    try:
        # by name: what is checked is the worker's installation, not a module of this one
        importlib.import_module("adcli.partitioned.partitions")  # where the tasks are found
        out["version"] = importlib.import_module("adcli").__version__
    except Exception as err:  # ImportError, or adcli's own import failing there
        out["error"] = f"{type(err).__name__}: {err}"
    return out


def _by_value(func: types.FunctionType) -> types.FunctionType:
    """A copy of ``func`` that pickles by value (module ``__main__``), so that a worker
    without adcli can unpickle and run it."""
    copy = types.FunctionType(func.__code__, {"__builtins__": builtins}, func.__name__)
    copy.__module__ = "__main__"
    copy.__qualname__ = func.__name__
    return copy


def _too_small(value: str | None, wanted: int) -> bool:
    if value is None:  # glibc's own, adaptive thresholds: not the slow case
        return False
    try:
        return int(value) < wanted
    except ValueError:
        return True


def check_workers(client: Any) -> list[str]:
    """Check every worker the scheduler has now: a worker without adcli (or with another
    version) is :class:`WorkerMismatch` naming it; the warnings returned say which workers
    run with glibc malloc thresholds below :data:`MALLOC_SETTINGS`, and how to fix it."""
    import importlib

    __version__ = importlib.import_module("adcli").__version__  # the package as installed
    found = client.run(_by_value(_probe), on_error="return")
    broken, other, slow = [], [], []
    for address, got in sorted(found.items()):
        if isinstance(got, BaseException):
            if isinstance(got, OSError) or type(got).__name__ == "CommClosedError":
                continue  # the worker left meanwhile: Dask's to repair
            broken.append((address, f"{type(got).__name__}: {got}"))
        elif not isinstance(got, Mapping):
            broken.append((address, f"the check returned {type(got).__name__}"))
        elif got.get("error"):
            broken.append((address, str(got["error"])))
        elif got.get("version") != __version__:
            other.append((address, str(got.get("version"))))
        elif any(_too_small(got.get("environ", {}).get(k), v)
                 for k, v in MALLOC_SETTINGS.items()):
            slow.append(address)
    if broken:
        address, why = broken[0]
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise WorkerMismatch(_clean(
            f"the Dask worker {address}{more} cannot import adcli ({_first(why)}); install "
            f"adcli {__version__} with its dask extra in every worker's environment"))
    if other:
        address, version = other[0]
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        raise WorkerMismatch(_clean(
            f"the Dask worker {address}{more} runs adcli {version}, this client adcli "
            f"{__version__}; install the same version on every worker"))
    if not slow:
        return []
    settings = ", ".join(f"{k}: {v}" for k, v in MALLOC_SETTINGS.items())
    more = f" (and {len(slow) - 1} more)" if len(slow) > 1 else ""
    return [_clean(f"the Dask worker {slow[0]}{more} runs with glibc malloc thresholds "
                   "below adcli's, which makes its sweeps several times slower; start "
                   "workers with the Dask config distributed: {nanny: {pre-spawn-environ: "
                   f"{{{settings}}}}}}} (README, Big data)")]


def _first(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else "unknown error"


def _clean(text: str) -> str:
    return escape_control(" ".join(text.split()))


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Around the start of a ``local:N`` cluster's worker processes. SIGINT is ignored: the
    workers inherit the ignored signal across exec (Python then leaves it ignored), so Ctrl-C
    (SIGINT to the whole process group) reaches this process alone, which stops the run and
    closes the cluster, instead of each worker dying with its own KeyboardInterrupt
    traceback (a Ctrl-C in that window of a few seconds is lost). And this process's
    environment is restored after: Dask's nanny writes ``pre-spawn-environ`` into it."""
    saved = {k: os.environ.get(k) for k in WORKER_ENVIRON}
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def quiet_logs() -> None:
    """Dask's own log lines (a lost connection, a failed reconnect) kept off stderr: the run
    says what went wrong in its one ``Error:`` line."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def inherited_limit(limits: list[int]) -> list[int]:
    """The memory limits of ``local:N`` workers, each capped by half the address-space limit
    (``ulimit -v``) they inherit from this process: Dask sets them from the machine's memory,
    and the rest of the limit goes to the worker's own code and a pass's temporaries."""
    import resource

    cap = resource.getrlimit(resource.RLIMIT_AS)[0]
    if cap == resource.RLIM_INFINITY:
        return limits
    return [min(limit or cap, cap // 2) for limit in limits]


#: glibc's mallopt parameter for the most malloc arenas (M_ARENA_MAX).
_M_ARENA_MAX = -8


def lean_address_space() -> None:
    """Keep this process's address space near what it uses, so that it runs under a tight
    ``ulimit -v``: glibc gives every thread that allocates its own 64 MiB arena (reserved, not
    used), here at most 2. Workers of ``local:N`` get this, and Arrow on the system allocator
    instead of mimalloc's 1 GiB reservation, through :data:`WORKER_ENVIRON`."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to set
        pass


def first_line(err: BaseException) -> str:
    """The first line of a Dask error, without the wrapper dask puts around a reader's."""
    text = str(err).strip()
    # dask wraps the reader's error: "An error occurred while calling ... Original Message: ..."
    text = text.rpartition("Original Message:")[2].strip() or text
    lines = text.splitlines()
    return lines[0][:300] if lines else type(err).__name__
