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

from typing import TYPE_CHECKING, Any

from .errors import AdcliError

if TYPE_CHECKING:
    from .fitting import FitResult, fit
    from .function import Function, GradResult, parse

__version__ = "0.1.0"
__all__ = ["AdcliError", "FitResult", "Function", "GradResult", "fit", "hessian", "parse",
           "__version__"]


def __getattr__(name: str) -> Any:
    # The Python API is loaded on first use (numpy only when arrays or numpy's kernels are
    # needed); importing adcli.cli or adcli.errors (``adcli --help``, ``--version``) loads
    # neither.
    if name in ("Function", "GradResult", "parse"):
        from . import function

        return getattr(function, name)
    if name == "hessian":  # the function; the module is adcli.curvature
        from .function import hessian_of

        return hessian_of
    if name in ("fit", "FitResult"):  # the module is adcli.fitting: adcli.fit stays the function
        from . import fitting

        return getattr(fitting, name)
    raise AttributeError(f"module 'adcli' has no attribute {name!r}")
