"""adcli: differentiate and optimise mathematical expressions from the command line.

>>> import adcli
>>> f = adcli.parse("(w0 + w1*x - y)^2")
>>> value, gradient = f.grad({"x": 3.0, "y": 7.0, "w0": -2.0, "w1": 2.0})
>>> value, gradient
(9.0, {'w0': -6.0, 'w1': -18.0, 'x': -12.0, 'y': 6.0})
>>> adcli.hessian("x^2*y", {"x": 1.0, "y": 3.0}).tolist()
[[6.0, 2.0], [2.0, 0.0]]
"""

from __future__ import annotations

import os as _os
import sys as _sys

try:  # the C module: ``signal`` itself imports enum, a few milliseconds without a handler
    import _signal
except ImportError:  # pragma: no cover - another Python implementation
    import signal as _signal


def _interrupted_early(signum: int, frame: object) -> None:
    """Ctrl-C while the ``adcli`` program starts (before :func:`adcli.cli.main` runs): the
    same outcome as later, one line and exit status 130, never a KeyboardInterrupt traceback
    from the middle of an import."""
    try:
        _os.write(2, b"Error: interrupted\n")
    except OSError:
        pass
    _os._exit(130)


def _is_program() -> bool:
    """Whether this process is the ``adcli`` program (the console script or ``python -m
    adcli``), not a library user importing the package."""
    argv0 = _sys.argv[0] if _sys.argv else ""
    if _os.path.basename(argv0) != "adcli" \
            and not argv0.endswith(_os.path.join("adcli", "__main__.py")):
        return False
    # a worker that multiprocessing spawned (Dask) gets its parent's argv, but is no program
    mp = _sys.modules.get("multiprocessing")
    return mp is None or mp.parent_process() is None


if _is_program():  # the first thing the program does, before any other import
    try:
        _signal.signal(_signal.SIGINT, _interrupted_early)
    except (ValueError, OSError):  # not the main thread
        pass

from .errors import AdcliError  # noqa: E402

# ``typing`` costs more to import than a small parse and gradient: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .function import Function, GradResult, parse
    from .regression.fitting import FitResult, fit

__version__ = "0.1.0"
__all__ = ["AdcliError", "FitResult", "Function", "GradResult", "fit", "hessian", "parse",
           "propagate", "__version__"]


def __getattr__(name: str) -> Any:
    # The Python API is loaded on first use (numpy only when arrays or numpy's kernels are
    # needed); importing adcli.cli or adcli.errors (``adcli --help``, ``--version``) loads
    # neither.
    if name in ("Function", "GradResult", "parse"):
        from . import function

        return getattr(function, name)
    if name == "hessian":  # the function; the module is adcli.derive.curvature
        from .function import hessian_of

        return hessian_of
    # the module is adcli.regression.fitting: adcli.fit stays the function
    if name in ("fit", "FitResult"):
        from .regression import fitting

        return getattr(fitting, name)
    if name == "propagate":  # the function; the package is adcli.propagation
        from .propagation.gum import propagate_expression

        return propagate_expression
    raise AttributeError(f"module 'adcli' has no attribute {name!r}")
