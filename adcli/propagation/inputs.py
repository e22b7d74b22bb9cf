"""The inputs of a propagation: values with standard uncertainties (``L=1.000±0.002``, also
``+-``), correlations (``--corr x,y=0.5``), covariance matrices (``--cov FILE``) and a fit's
parameters with their covariance (``@fit.json``), assembled into one covariance matrix Σ that
is checked to be a covariance (symmetric, positive semi-definite)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AdcliError, PointError
from ..io.point import _NAME, _split_top_level, parse_value, read_point_file
from ..regression.bands import fit_covariance

#: The ways to write "plus or minus" between a value and its standard uncertainty.
PLUS_MINUS = ("±", "+-")
#: A covariance or fit file is read up to this size.
MAX_FILE_BYTES = 16 << 20
#: Σ is refused when an eigenvalue is below -this x its largest (rounding of a covariance
#: that is semi-definite, such as a correlation of exactly 1, stays above).
PSD_TOLERANCE = 1e-10


class PropagationError(AdcliError):
    """A malformed uncertainty, correlation or covariance (exit status 2)."""


@dataclass
class Inputs:
    """Values of every name, standard uncertainties of the uncertain ones, and the blocks of
    Σ given whole (a fit's covariance, ``--cov``); ``typed`` are the names written on the
    command line (an unused one is an error; a fit's unused parameters are not)."""

    values: dict[str, float] = field(default_factory=dict)
    u: dict[str, float] = field(default_factory=dict)
    blocks: list[tuple[list[str], np.ndarray]] = field(default_factory=list)
    corr: dict[tuple[str, str], float] = field(default_factory=dict)
    typed: set[str] = field(default_factory=set)
    #: inputs whose variance in a block is no variance (nan where a fit could not identify
    #: a parameter): an error only if the expression uses them
    bad: dict[str, str] = field(default_factory=dict)

    def add_block(self, names: list[str], matrix: np.ndarray, where: str) -> None:
        """A covariance over ``names``: their standard uncertainties are its diagonal."""
        for i, name in enumerate(names):
            if name in self.u:
                raise PropagationError(f"{where} gives the uncertainty of '{name}', which "
                                       "already has one")
            d = float(matrix[i, i])
            if not (math.isfinite(d) and d >= 0):  # refused if the expression uses it
                self.bad[name] = f"{where}: the variance of '{name}' is {d!r}; a variance " \
                    "is finite and not negative"
            self.u[name] = math.sqrt(d) if d >= 0 else math.nan
        self.blocks.append((list(names), np.asarray(matrix, dtype=np.float64)))


def _read_json(path: str, option: str) -> Any:
    from ..io.inputs import read_bounded

    if not path:
        raise PropagationError(f"{option} '@' must be followed by a file name, as in "
                               "@fit.json")
    raw = read_bounded(path, MAX_FILE_BYTES, f"'{path}'", option)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PropagationError(f"{option} '{path}': not a JSON file") from None


def _uncertain(text: str, name: str, option: str) -> tuple[float, float | None]:
    """``1.000±0.002`` -> (1.0, 0.002); ``1.0`` -> (1.0, None)."""
    sign = next((s for s in PLUS_MINUS if s in text), None)
    if sign is None:
        return parse_value(text, context=f"{option} {name}="), None
    value_text, _, u_text = text.partition(sign)
    if any(s in u_text for s in PLUS_MINUS):
        raise PropagationError(f"{option} {name}={text.strip()}: one '±' per value, as in "
                               f"{name}=1.0±0.1")
    if not value_text.strip() or not u_text.strip():
        raise PropagationError(f"{option} {name}={text.strip()}: write VALUE±U, as in "
                               f"{name}=1.0±0.1 (or {name}=1.0+-0.1)")
    value = parse_value(value_text, context=f"{option} {name}=")
    u = parse_value(u_text, context=f"{option} {name}=...±")
    if not math.isfinite(value):
        raise PropagationError(f"{option} {name}: the value {value!r} is not finite")
    if not (math.isfinite(u) and u >= 0):
        raise PropagationError(f"{option} {name}: the standard uncertainty {u!r} must be "
                               "finite and not negative")
    return value, u


def parse_inputs(texts: Iterable[str], option: str = "--at") -> Inputs:
    """``--at`` values (repeatable): ``NAME=VALUE[±U],...``, ``@fit.json`` (a fit's
    parameters and covariance) or ``@point.json`` (values without uncertainty)."""
    out = Inputs()
    for text in texts:
        if text.startswith("@"):
            obj = _read_json(text[1:], option)
            if isinstance(obj, dict) and "covariance" in obj:
                where = f"{option} @{text[1:]}"
                params, names, matrix = fit_covariance(obj, where)
                for name, value in params.items():
                    _set(out, name, value, option)
                out.add_block(names, matrix, where)
            else:
                for name, value in read_point_file(text[1:], option).items():
                    if isinstance(value, list):
                        raise PropagationError(f"{option} {text}: '{name}' is a list; "
                                               "propagate takes scalars")
                    _set(out, name, value, option)
            continue
        for part in _split_top_level(text):
            item = part.strip()
            name, eq, rest = item.partition("=")
            name = name.strip()
            if not eq or not name:
                raise PointError(f"{option} '{item}' is not NAME=VALUE±U (e.g. "
                                 "L=1.000±0.002)")
            if not _NAME.match(name):
                raise PointError(f"{option} '{name}' is not a valid name")
            value, u = _uncertain(rest, name, option)
            _set(out, name, value, option)
            out.typed.add(name)
            if u is not None:
                out.u[name] = u
    return out


def _set(out: Inputs, name: str, value: float, option: str) -> None:
    if name in out.values:
        raise PointError(f"{option} gives '{name}' twice")
    out.values[name] = float(value)


def parse_correlations(texts: Iterable[str], inputs: Inputs) -> None:
    """``--corr x,y=0.5`` (repeatable; several separated by ';'): a correlation
    coefficient in [-1, 1] between two uncertain inputs."""
    for text in texts:
        for item in (p.strip() for p in text.split(";")):
            pair, eq, r_text = item.partition("=")
            names = [n.strip() for n in pair.split(",")]
            if not eq or len(names) != 2 or not all(names):
                raise PropagationError(f"--corr '{item}' is not X,Y=R (e.g. --corr L,T=0.5)")
            a, b = names
            for n in names:
                if n not in inputs.values:
                    raise PropagationError(f"--corr names '{n}', which --at does not give")
                if n not in inputs.u:
                    raise PropagationError(f"--corr names '{n}', which has no uncertainty "
                                           f"(write {n}=VALUE±U)")
            if a == b:
                raise PropagationError(f"--corr {item}: a name is correlated with itself")
            r = parse_value(r_text, context=f"--corr {a},{b}=")
            if not -1.0 <= r <= 1.0:
                raise PropagationError(f"--corr {a},{b}={r_text.strip()}: a correlation is "
                                       "between -1 and 1")
            key = (a, b) if a < b else (b, a)
            if key in inputs.corr:
                raise PropagationError(f"--corr gives {a},{b} twice")
            inputs.corr[key] = r


def read_covariance(path: str, inputs: Inputs) -> None:
    """``--cov FILE``: JSON ``{"names": [...], "matrix": [[...]]}`` (or a fit's JSON, whose
    ``"covariance"`` it is) over inputs whose values ``--at`` gives without ``±``."""
    obj = _read_json(path, "--cov")
    if isinstance(obj, dict) and isinstance(obj.get("covariance"), dict):
        obj = obj["covariance"]
    if not (isinstance(obj, dict) and isinstance(obj.get("names"), list)
            and isinstance(obj.get("matrix"), list)):
        raise PropagationError(f"--cov '{path}': expected {{\"names\": [...], \"matrix\": "
                               "[[...]]}")
    names, rows = obj["names"], obj["matrix"]
    k = len(names)
    if not all(isinstance(n, str) for n in names) or len(set(names)) != k:
        raise PropagationError(f"--cov '{path}': the names are not distinct names")
    if len(rows) != k or any(not isinstance(r, list) or len(r) != k for r in rows):
        raise PropagationError(f"--cov '{path}': the matrix is not {k} x {k}")
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise PropagationError(f"--cov '{path}': an entry of the matrix is not a number") \
            from None
    for n in names:
        if n not in inputs.values:
            raise PropagationError(f"--cov '{path}' names '{n}', which --at does not give")
    inputs.add_block(names, matrix, f"--cov '{path}'")


def covariance(names: list[str], inputs: Inputs) -> np.ndarray:
    """Σ over ``names`` (the uncertain inputs), checked: symmetric, positive semi-definite."""
    for n in names:
        if n in inputs.bad:
            raise PropagationError(inputs.bad[n])
    index = {n: i for i, n in enumerate(names)}
    for n in names:
        # a finite u whose square is not (above ~1.3e154) would raise OverflowError
        if not math.isfinite(inputs.u[n] * inputs.u[n]):
            raise PropagationError(f"--at {n}: the standard uncertainty {inputs.u[n]:g} is too "
                                   "large: its square (the variance) is not a finite float64")
    sigma = np.diag([inputs.u[n] ** 2 for n in names])
    given = np.zeros(sigma.shape, dtype=bool)
    for block_names, matrix in inputs.blocks:
        at = [index.get(n) for n in block_names]
        for i, a in enumerate(at):
            for j, b in enumerate(at):
                if a is not None and b is not None:
                    sigma[a, b] = matrix[i, j]
                    given[a, b] = True
    for (a, b), r in inputs.corr.items():
        if a not in index or b not in index:
            continue  # an input the expression does not use
        i, j = index[a], index[b]
        if given[i, j]:
            raise PropagationError(f"--corr {a},{b}: their covariance is already given by a "
                                   "covariance matrix")
        sigma[i, j] = sigma[j, i] = r * inputs.u[a] * inputs.u[b]
    if not np.all(np.isfinite(sigma)):
        raise PropagationError("the covariance matrix has an entry that is not finite")
    if not np.allclose(sigma, sigma.T, rtol=1e-12, atol=0.0):
        raise PropagationError("the covariance matrix is not symmetric")
    if len(names):
        sigma = 0.5 * sigma + 0.5 * sigma.T  # (sigma + sigma.T) overflows above ~9e307
        low = float(np.linalg.eigvalsh(sigma)[0])
        scale = float(np.max(np.abs(np.diag(sigma))))
        if low < -PSD_TOLERANCE * scale:
            raise PropagationError(f"the covariance matrix is not positive semi-definite "
                                   f"(its smallest eigenvalue is {low:.3g}): the correlations "
                                   "contradict each other")
    return sigma


def from_mapping(at: Mapping[str, Any]) -> Inputs:
    """The Python API's inputs: ``{"L": (1.0, 0.002), "T": 2.0}`` (value, standard
    uncertainty) or plain numbers for exact values."""
    out = Inputs()
    for name, v in at.items():
        if isinstance(v, tuple):
            if len(v) != 2:
                raise PropagationError(f"'{name}': expected (value, standard uncertainty)")
            value, u = float(v[0]), float(v[1])
            if not (math.isfinite(u) and u >= 0):
                raise PropagationError(f"'{name}': the standard uncertainty {u!r} must be "
                                       "finite and not negative")
            out.u[name] = u
        else:
            value = float(v)
        out.values[name] = value
        out.typed.add(name)
    return out
