"""The NIST StRD nonlinear regression problems: read from the distributed .dat files, with the 27
models written in adcli's formula syntax. Shared by tests/test_nist.py and bench/nist.py::

    sys.path.insert(0, "tests")
    from nist_strd import PROBLEMS, load, lre

The data ship with the tests, in ``tests/data/nist-strd/`` (public domain; see the README
there), so a fresh clone runs them with nothing beside it.
Everything the tests compare against (start values, certified values and standard deviations,
certified residual sum of squares, the data) is parsed from the files, never typed in here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: problem -> the formula in adcli syntax (Nelson's model is for log(y)).
MODELS: dict[str, str] = {
    "Misra1a": "y ~ b1*(1-exp(-b2*x))",
    "Chwirut2": "y ~ exp(-b1*x)/(b2+b3*x)",
    "Chwirut1": "y ~ exp(-b1*x)/(b2+b3*x)",
    "Lanczos3": "y ~ b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Gauss1": "y ~ b1*exp(-b2*x) + b3*exp(-(x-b4)^2/b5^2) + b6*exp(-(x-b7)^2/b8^2)",
    "Gauss2": "y ~ b1*exp(-b2*x) + b3*exp(-(x-b4)^2/b5^2) + b6*exp(-(x-b7)^2/b8^2)",
    "DanWood": "y ~ b1*x^b2",
    "Misra1b": "y ~ b1*(1-(1+b2*x/2)^(-2))",
    "Kirby2": "y ~ (b1 + b2*x + b3*x^2) / (1 + b4*x + b5*x^2)",
    "Hahn1": "y ~ (b1 + b2*x + b3*x^2 + b4*x^3) / (1 + b5*x + b6*x^2 + b7*x^3)",
    "Nelson": "log(y) ~ b1 - b2*x1*exp(-b3*x2)",
    "MGH17": "y ~ b1 + b2*exp(-x*b4) + b3*exp(-x*b5)",
    "Lanczos1": "y ~ b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Lanczos2": "y ~ b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Gauss3": "y ~ b1*exp(-b2*x) + b3*exp(-(x-b4)^2/b5^2) + b6*exp(-(x-b7)^2/b8^2)",
    "Misra1c": "y ~ b1*(1-(1+2*b2*x)^(-0.5))",
    "Misra1d": "y ~ b1*b2*x*((1+b2*x)^(-1))",
    "Roszman1": "y ~ b1 - b2*x - atan(b3/(x-b4))/pi",
    "ENSO": "y ~ b1 + b2*cos(2*pi*x/12) + b3*sin(2*pi*x/12) + b5*cos(2*pi*x/b4) "
            "+ b6*sin(2*pi*x/b4) + b8*cos(2*pi*x/b7) + b9*sin(2*pi*x/b7)",
    "MGH09": "y ~ b1*(x^2+x*b2) / (x^2+x*b3+b4)",
    "Thurber": "y ~ (b1 + b2*x + b3*x^2 + b4*x^3) / (1 + b5*x + b6*x^2 + b7*x^3)",
    "BoxBOD": "y ~ b1*(1-exp(-b2*x))",
    "Rat42": "y ~ b1 / (1+exp(b2-b3*x))",
    "MGH10": "y ~ b1*exp(b2/(x+b3))",
    "Eckerle4": "y ~ (b1/b2) * exp(-0.5*((x-b3)/b2)^2)",
    "Rat43": "y ~ b1 / ((1+exp(b2-b3*x))^(1/b4))",
    "Bennett5": "y ~ b1*(b2+x)^(-1/b3)",
}

PROBLEMS = list(MODELS)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PARAM = re.compile(rf"^\s*(b\d+)\s*=\s*({_NUM})\s+({_NUM})\s+({_NUM})\s+({_NUM})\s*$")


@dataclass
class Problem:
    name: str
    formula: str
    names: list[str]                # b1, b2, ...
    starts: tuple[dict[str, float], dict[str, float]]
    certified: dict[str, float]
    certified_sd: dict[str, float]
    rss: float
    residual_sd: float
    dof: int
    level: str
    columns: dict[str, np.ndarray]  # y, x (or x1, x2)


#: The .dat files, inside the repository (never read from outside it: tests/test_layout.py).
DATA_DIR = Path(__file__).resolve().parent / "data" / "nist-strd"


def data_dir() -> Path | None:
    """``tests/data/nist-strd`` (None if a partial checkout lacks it)."""
    return DATA_DIR if DATA_DIR.is_dir() else None


def load(name: str, directory: Path | None = None) -> Problem:
    """Parse one .dat file: start values, certified values, RSS and the data columns."""
    directory = directory or data_dir()
    if directory is None:
        raise FileNotFoundError("NIST StRD data not found beside the repository")
    lines = (directory / f"{name}.dat").read_text(encoding="ascii").splitlines()
    names, s1, s2, cert, sd = [], {}, {}, {}, {}
    rss = residual_sd = math.nan
    dof = 0
    level = ""
    data_start = None
    for i, line in enumerate(lines):
        m = _PARAM.match(line)
        if m:
            b = m.group(1)
            names.append(b)
            s1[b], s2[b], cert[b], sd[b] = (float(m.group(k)) for k in (2, 3, 4, 5))
        elif line.startswith("Residual Sum of Squares:"):
            rss = float(line.split(":")[1])
        elif line.startswith("Residual Standard Deviation:"):
            residual_sd = float(line.split(":")[1])
        elif line.startswith("Degrees of Freedom:"):
            dof = int(line.split(":")[1])
        elif "Level of Difficulty" in line:
            level = line.split()[0]
        elif line.startswith("Data:") and data_start is None and i > 30:
            data_start = i
    assert data_start is not None and names, f"cannot parse {name}.dat"
    header = lines[data_start].split()[1:]
    rows = [list(map(float, ln.split())) for ln in lines[data_start + 1:] if ln.strip()]
    table = np.array(rows, dtype=np.float64)
    columns = {h: table[:, k].copy() for k, h in enumerate(header)}
    return Problem(name, MODELS[name], names, (s1, s2), cert, sd, rss, residual_sd, dof, level,
                   columns)


def lre(estimate: float, certified: float) -> float:
    """Log relative error: the number of correct significant digits (capped at 15; 0 below
    one digit or for a non-finite estimate)."""
    if not math.isfinite(estimate):
        return 0.0
    if estimate == certified:
        return 15.0
    rel = abs(estimate - certified) / abs(certified)
    return max(0.0, min(15.0, -math.log10(rel)))


def min_lre(estimates: dict[str, float], certified: dict[str, float]) -> float:
    """The fit's score: the fewest correct digits over its parameters."""
    return min(lre(float(estimates[b]), certified[b]) for b in certified)
