"""One problem setup for ``fit`` and ``minimize --data``, whichever engine runs it.

A fit over a CSV file in memory and a fit over partitions on Dask must decide the same things
the same way: which names are data columns and which are parameters, where the parameters
start, which are fixed or bounded, and what to tell the user about it. Everything here works
from the column NAMES only (never the rows), so both engines call it before touching data and
refuse a bad command line with the same ``Error:`` line; the engines then differ only in how
they sweep the rows and add them up.

The rule that keeps a mistake from becoming a parameter: a name of the formula that is not a
column is a parameter, unless it looks like a misspelt column (same letters in another case,
or one edit away for names of three characters or more) and the user did not name it in
``--from``/``--fix``/``--bounds``; ``--params`` declares the parameters exactly. ``e`` and
``pi`` are constants unless named as parameters (``e`` with a warning).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from ..core.records import Shown
from ..function import Function
from .formula import FitError, Formula

#: Names the language reads as constants unless a value or a column binds them.
CONSTANTS = {"e": math.e, "pi": math.pi}

#: Constants a formula probably meant as parameters: ``e`` continues a, b, c, d (a fit with
#: ``e*x^4`` fixed e = 2.718 without a word). ``pi`` is the constant in the formulas people
#: write (2*pi*x/12 in NIST's ENSO): warning about it would be noise on every such fit.
SUSPECT = {"e"}

#: Where a parameter starts when --from does not say (curve_fit's and gnuplot's default: 0
#: puts a parameter on a pole of models such as Vmax*S/(Km + S)).
DEFAULT_START = 1.0

#: Names shorter than this are compared by case only: a, b, x, y are one edit apart, and a
#: fit with parameters a, b and columns x, y is the common case, not a misspelling.
MIN_EDIT_LENGTH = 3


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of
    neighbours (a loop over the shorter name: no recursion, no table)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def close_match(name: str, candidates: Iterable[str], shortest: int = MIN_EDIT_LENGTH
                ) -> str | None:
    """The first candidate that ``name`` could be a misspelling of (the same letters in
    another case, or one edit away when both have ``shortest`` characters or more), or None."""
    # An element (b[1]) is compared by its base name with the elements of the same index:
    # b[1] is no misspelling of x[1], but mass[1] may be one of Mass[1].
    base, index = _split_element(name)
    candidates = [(c, *_split_element(c)) for c in candidates]
    candidates = [(c, b) for c, b, i in candidates if i == index]
    found = [c for c, b in candidates if c != name and b.lower() == base.lower()]
    if not found and len(base) >= shortest:
        found = [c for c, b in candidates if len(b) >= shortest and _one_edit(base, b)]
    return found[0] if found else None


def _split_element(name: str) -> tuple[str, str]:
    """``"x[3]"`` -> ``("x", "[3]")``; a plain name has an empty index."""
    at = name.find("[")
    return (name, "") if at < 0 else (name[:at], name[at:])


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'S'?"`` or an empty string (a hint only, so short names count; but
    every one-letter name is one edit from every other, so those match only by case)."""
    close = close_match(name, candidates, shortest=2)
    return f"; did you mean '{close}'?" if close else ""


def misspelt_column(name: str, close: str, declare_option: str) -> FitError:
    """The refusal of a name that is probably a misspelt column (fit and minimize --data)."""
    return FitError(f"'{name}' is not a column; did you mean '{close}'? declare parameters "
                    f"with {declare_option} (or give '{name}' a start value with --from) to "
                    "fit it as a parameter")


def constant_warning(name: str, option: str = "--params") -> str:
    return (f"'{name}' in the formula is the constant {CONSTANTS[name]!r}, not a parameter; "
            f"name it in --from or {option} to fit it")


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def check_names(used: Collection[str], columns: Collection[str], lets: Collection[str],
                declared: Sequence[str] | None, named: Mapping[str, Collection[str]],
                declare_option: str = "--params") -> tuple[list[str], list[str]]:
    """The parameters among ``used`` (the formula's free names) and the warnings, or a
    :class:`FitError` for a name that is probably a mistake.

    ``columns``: the data's column names; ``declared``: the ``--params`` list (None: not
    given); ``named``: option -> names it gives values (``--from``, ``--fix``, ``--bounds``).
    Constants (``e``, ``pi``) become parameters only when declared or named."""
    cols = set(columns)
    if declared is not None:  # a base name declares every element of it the formula uses
        declared = [e for n in declared
                    for e in ([u for u in used if _split_element(u)[0] == n and u != n]
                              or [n])]
    given = {n for names in named.values() for n in names}
    wanted = set(declared or ()) | given
    warnings_: list[str] = []
    params: list[str] = []
    for name in used:
        if name in cols or name in lets:
            continue
        if name in CONSTANTS and name not in wanted:
            if name in SUSPECT:
                warnings_.append(constant_warning(name, declare_option))
            continue
        params.append(name)
    if declared is not None:
        for name in declared:
            if name in cols:
                raise FitError(f"{declare_option} '{name}' is a column of the data, not a "
                               "parameter")
            if name not in params:
                raise FitError(f"{declare_option} '{name}' is not a name of the formula"
                               f"{did_you_mean(name, params)} (names that are not columns: "
                               f"{_listed(params)})")
        for name in params:
            if name not in declared:
                raise FitError(f"'{name}' is neither a column of the data nor a parameter "
                               f"in {declare_option}{did_you_mean(name, cols)} (columns: "
                               f"{_listed(list(columns))})")
    else:
        for name in params:
            close = close_match(name, columns)
            if close is not None and name not in given:
                raise misspelt_column(name, close, declare_option)
    for option, names in named.items():
        for name in names:
            if name in params:
                continue
            if name in cols:
                raise FitError(f"{option} '{name}' is a column of the data, not a parameter "
                               f"(parameters: {_listed(params)})")
            raise FitError(f"{option} '{name}' is not a parameter of the model"
                           f"{did_you_mean(name, params)} (parameters: {_listed(params)})")
    return params, warnings_


class FitSetup(Shown):
    """Everything ``fit`` decides before it reads a row: the same for every engine.
    ``columns`` are the data columns the fit reads (the formula's, then the sigma column),
    file order; ``bound`` the names bound per row or per parameter when the residual program
    is lowered. A plain slotted class, not a dataclass: making a dataclass runs generated code
    at import, start-up only a fit pays."""

    __slots__ = __match_args__ = SHOWN = ("formula", "columns", "bound", "params", "free", "fixed",
                                  "x0", "lower", "upper", "sigma", "warnings", "predictors")

    def __init__(self, formula: Formula, columns: list[str], bound: set[str],
                 params: list[str], free: list[str], fixed: dict[str, float], x0: np.ndarray,
                 lower: np.ndarray, upper: np.ndarray, sigma: str | None = None,
                 warnings: list[str] | None = None,
                 predictors: list[str] | None = None) -> None:
        self.formula = formula
        self.columns = columns
        self.bound = bound
        self.params = params
        self.free = free
        self.fixed = fixed
        self.x0 = x0
        self.lower = lower
        self.upper = upper
        self.sigma = sigma
        self.warnings = [] if warnings is None else warnings
        self.predictors = [] if predictors is None else predictors



def fit_setup(formula: Formula, column_names: Sequence[str], *,
              params: Sequence[str] | None = None, start: Mapping[str, float] | None = None,
              bounds: Mapping[str, tuple[float, float]] | None = None,
              fix: Mapping[str, float] | None = None, sigma: str | None = None) -> FitSetup:
    """Decide parameters, start, fixed values and bounds of ``formula`` over data with the
    columns ``column_names``; every refusal is a :class:`FitError` with its own message."""
    # an indexed parameter's values (a=[..], a=0) go to the elements the formula uses
    start, fix = formula.bind(start), formula.bind(fix, "--fix")
    bounds = dict(bounds or {})
    names = list(column_names)
    cols = set(names)
    if sigma is not None and sigma not in cols:
        raise FitError(f"--sigma '{sigma}' is not a column of the data"
                       f"{did_you_mean(sigma, names)} (columns: {_listed(names)})")
    lhs = formula.names(formula.lhs)
    if not lhs & cols:
        raise FitError("the formula's left side uses no data column; write the response "
                       "column before '~', as in \"y ~ a*x + b\"")
    used_set = formula.names(formula.lhs) | formula.names(formula.model)
    # tape order: the order the names first appear, as the report lists them
    order = list(Function(formula.program).tape(cols | set(CONSTANTS)).inputs)
    used = [n for n in order if n in used_set]
    lets = set(formula.lets)
    plist, warnings_ = check_names(used, cols, lets, params,
                                   {"--from": start, "--fix": fix, "--bounds": bounds})
    if not plist:
        raise FitError("the model has no parameters: every name in it is a data column")
    for name in fix:
        if name in bounds:
            raise FitError(f"'{name}' is both fixed and bounded; give one of --fix, --bounds")
        if name in start:  # not an error: --from @fit.json may carry every parameter
            warnings_.append(f"--from {name} is ignored: '{name}' is fixed at "
                             f"{float(fix[name]):g} by --fix")
    fixed = {n: float(fix[n]) for n in plist if n in fix}
    free = [n for n in plist if n not in fixed]
    if not free:
        raise FitError("every parameter is fixed: nothing to fit")
    p = len(free)
    lower, upper = np.full(p, -np.inf), np.full(p, np.inf)
    x0 = np.array([float(start.get(n, DEFAULT_START)) for n in free])
    for j, name in enumerate(free):
        if name not in bounds:
            continue
        lo, hi = (float(v) for v in bounds[name])
        if not lo < hi:
            raise FitError(f"--bounds for '{name}' need lo < hi (got {lo:g}:{hi:g})")
        lower[j], upper[j] = lo, hi
        if not lo <= x0[j] <= hi:
            if name in start:
                raise FitError(f"the start {name}={x0[j]:g} is outside its bounds "
                               f"{lo:g}:{hi:g}")
            x0[j] = min(max(x0[j], lo), hi)
    if not np.all(np.isfinite(x0)) or not all(math.isfinite(v) for v in fixed.values()):
        raise FitError("start values must be finite")
    reads = used_set & cols
    columns = [n for n in names if n in reads or n == sigma]
    model = formula.names(formula.model)
    return FitSetup(formula, columns, cols | {n for n in CONSTANTS if n in plist}, plist,
                    free, fixed, x0, lower, upper, sigma, warnings_,
                    [n for n in used if n in cols and n in model])


def zero_columns(names: Sequence[str], norms: np.ndarray) -> list[str]:
    """The warning for parameters whose Jacobian column is zero at the start (the model does
    not move with them there: a pole, a zero factor, or a start that switches a term off)."""
    dead = [n for n, v in zip(names, norms) if not v > 0]
    if not dead:
        return []
    one = len(dead) == 1
    shown = ", ".join(f"'{n}'" for n in dead)
    it, where, columns = ("it", "it is", "a zero Jacobian column") if one else (
        "them", "they are", "zero Jacobian columns")
    return [f"the residuals do not change with {shown} at the start values ({columns}), so the "
            f"first steps leave {it} where {where}; if the estimate looks wrong, start elsewhere "
            "with --from"]


def negative_r_squared(r_squared: float | None) -> list[str]:
    """The warning for a converged fit worse than the constant mean of the left side."""
    if r_squared is None or not r_squared < 0:
        return []
    return [f"R^2 = {r_squared:.3g} < 0: the fitted model is worse than a constant (the mean "
            "of the left side); check the model and the start values (--from)"]


def data_names(inputs: Sequence[str], point: Mapping[str, float], wrt: Sequence[str] | None,
               columns: Sequence[str]) -> list[str]:
    """``minimize --data``'s name rules, the same as ``fit``'s (``--wrt`` declares the
    parameters there): an unknown ``--from`` name or a name that looks like a misspelt
    column is an error; the warnings for ``e``/``pi`` read as constants. ``inputs`` are the
    program's free names with ``e`` and ``pi`` bound."""
    cols = set(columns)
    warnings_ = [constant_warning(n, "--wrt") for n in inputs
                 if n in SUSPECT and n not in point and n not in (wrt or ()) and n not in cols]
    for name in point:
        if name not in inputs:
            raise FitError(f"--from '{name}' is not a variable of the expression"
                           f"{did_you_mean(name, [*inputs, *columns])} (variables: "
                           f"{_listed([n for n in inputs if n not in cols])})")
    if wrt is None:
        for name in inputs:
            if name in cols or name in point or name in CONSTANTS:
                continue
            close = close_match(name, columns)
            if close is not None:
                raise misspelt_column(name, close, "--wrt")
    return warnings_


def minimize_warnings(resolved: str, lr: float | None, momentum: float | None,
                      batch_size: int | None, stochastic: bool, line_search: bool
                      ) -> list[str]:
    """What ``minimize --data`` says about options the chosen method does not use (the same
    words in memory and on Dask)."""
    out = []
    if lr is not None and line_search:
        out.append(f"--lr is ignored by {resolved}, which chooses its steps by a line search")
    if momentum is not None and resolved not in ("momentum", "nesterov"):
        out.append(f"--momentum is ignored by {resolved}, which has no momentum term "
                   "(--method momentum or nesterov use it)")
    if batch_size and not stochastic:
        out.append("--batch-size is not smaller than the data; using full batches")
    return out


def check_time(max_time: float | None, started: float | None) -> None:
    """``--max-time`` over before the first evaluation: an error, as in ``minimize``."""
    if max_time and started is not None and time.monotonic() - started >= max_time:
        raise FitError(f"the time limit of {max_time:g} s was reached while reading the "
                       "input, before the fit started (--max-time; 0 for no limit)")
