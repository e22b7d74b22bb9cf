"""BLAS held to one thread where sums must not depend on the machine.

OpenBLAS and MKL split a dot product or a QR over their threads, and the split changes the order
of the additions: the same fit gave other bits with another ``OPENBLAS_NUM_THREADS``. The sums
of a fit (in memory, and every partition's and every join's on Dask) therefore run with BLAS at
one thread; rows are what runs in parallel. threadpoolctl is not a dependency: the libraries'
own ``*_set_num_threads`` are found in the process's memory map (Linux; elsewhere nothing is
found and nothing is changed).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

#: (setter, getter) symbol names of the BLAS builds numpy and SciPy ship, and of system ones.
_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads"),
            ("openblas_set_num_threads_64_", "openblas_get_num_threads_64_"),
            ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"))

Library = tuple[Callable[[int], None], Callable[[], int]]


@functools.cache
def _libraries() -> tuple[Library, ...]:
    """The thread controls of every BLAS library loaded now (numpy's loads with numpy)."""
    import numpy  # noqa: F401 - loads numpy's BLAS before it is looked for

    found = []
    for path in _loaded_libraries():
        name = os.path.basename(path).lower()
        if "blas" not in name and "mkl" not in name:
            continue
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                found.append((setter, getter))
                break
    return tuple(found)


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (Linux; none elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            fields = [line.split(None, 5) for line in fh]
    except OSError:
        return []
    paths = {f[5].strip() for f in fields if len(f) == 6}
    return sorted(p for p in paths if ".so" in os.path.basename(p) and os.path.isfile(p))


def one_blas_thread() -> None:
    """Every loaded BLAS at one thread from now on (a Dask worker's partition tasks)."""
    for setter, _ in _libraries():
        setter(1)


def pin_blas() -> list[int]:
    """Every loaded BLAS at one thread; returns the counts before, for :func:`restore_blas`."""
    before = [getter() for _, getter in _libraries()]
    one_blas_thread()
    return before


def restore_blas(counts: list[int]) -> None:
    """The thread counts :func:`pin_blas` returned, set back."""
    for (setter, _), count in zip(_libraries(), counts):
        setter(count)
