"""The report of ``adcli fit`` for people: the cells of its tables, which the rich renderer
(:func:`adcli.output.render.fit_result`) and this module's plain text share, and that plain text
itself. Where stdout is no terminal rich writes no colours, and its tables here have no box, so
:func:`fit_text` writes the same bytes without importing rich (rich's imports and its table
layout were a large share of a short fit's start-up). Where only rich can say (text it would
interpret or measure differently, a label column it would fold, a line it would wrap)
:func:`fit_text` returns None and the caller prints through rich; tests compare the two over
many reports."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .numbers import num
from .plain import _EMOJI, LABEL_MIN_WIDTH, console_width

#: The parameter table's columns (right-justified but the first).
PARAMETER_HEADERS = ("parameter", "value", "std. error", "rel. error", "t value", "Pr(>|t|)")
DERIVED_HEADERS = ("quantity", "expression", "value", "std. error")
#: What rich's ``escape`` puts a backslash before (a label then measures one cell more).
_ESCAPED = re.compile(r"\[[a-z#/@]")
AIC_NOTE = "(lmfit's: n log(RSS/n) + 2k, + log(n) k)"
ABSOLUTE_NOTE = "standard errors take sigma as the absolute errors of the data"


def _same(text: str) -> str:
    return text


def counted(n: int, noun: str) -> str:
    """``1 iteration``, ``2 iterations``, ``1,000 iterations``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def p_text(p: float) -> str:
    """A p value for the table. The p values are accurate down to float64's smallest
    numbers, so one that underflowed to 0 is below 1e-300, not 0 (R prints "< 2e-16")."""
    return "<1e-300" if p == 0.0 else num(p, 3, style="g")


def parameter_rows(result: Any, user: Callable[[str], str] = _same) -> list[tuple[str, ...]]:
    """Estimate, standard error, relative error, t and p of each parameter; ``user`` wraps
    text from the input (rich escapes its markup)."""
    from ..regression import uncertainty  # numpy: not for the commands that start without it

    t_values, p_values = uncertainty.t_values(result), uncertainty.p_values(result)
    rows = []
    for name, v in result.parameters.items():
        if name in result.fixed:
            rows.append((user(name), num(v, style="g"), "(fixed)", "", "", ""))
            continue
        se = result.stderr.get(name, math.nan)
        rel = result.relative_error(name)
        rows.append((user(name), num(v, style="g"), num(se, 5, style="g"),
                     "nan" if math.isnan(rel) else f"{rel:.3g}%",
                     num(t_values.get(name, math.nan), 4, style="g"),
                     p_text(p_values.get(name, math.nan))))
    return rows


def interval_headers(result: Any) -> tuple[str, ...]:
    """``parameter``, then the lower and upper end of each level of ``fit --ci``."""
    from ..regression.profile import percent

    return ("parameter", *(f"{percent(level)} {end}" for level in result.ci["levels"]
                           for end in ("lower", "upper")))


def interval_rows(result: Any, user: Callable[[str], str] = _same) -> list[tuple[str, ...]]:
    """Each parameter's interval ends per level (``-`` for an end not found)."""
    return [(user(name), *("-" if v is None else num(v, style="g") for pair in pairs
                           for v in pair)) for name, pairs in result.ci["intervals"].items()]


def derived_rows(result: Any, user: Callable[[str], str] = _same) -> list[tuple[str, ...]]:
    """Value and delta-method standard error of each ``fit --derive`` quantity."""
    return [(user(name), user(d["expression"]), num(d["value"], style="g"),
             num(d["stderr"], 5, style="g")) for name, d in result.derived.items()]


def correlation_rows(result: Any, user: Callable[[str], str] = _same) -> list[tuple[str, ...]]:
    """The correlation matrix of the free parameters, three decimals."""
    return [(user(name), *(("nan" if math.isnan(c) else f"{c:.3f}")
                           for c in result.correlation[i]))
            for i, name in enumerate(result.correlation_names)]


def statistics_lines(result: Any) -> list[tuple[str, str]]:
    """(bold head, rest) of the lines under the tables: RSS, residual deviation, R², reduced
    chi-square, AIC and BIC."""
    from ..regression import uncertainty

    weighted = " (weighted)" if result.weighted else ""
    lines = [(f"residual sum of squares{weighted}", f"  {num(result.rss, style='g')}"),
             ("residual std. deviation", f"  {num(result.residual_std, style='g')} on "
              f"{result.dof} degrees of freedom ({result.rows} rows)")]
    if result.r_squared is not None:
        lines.append(("R^2", f"  {result.r_squared:.6f}"))
    chi2 = uncertainty.reduced_chi_square(result)
    if chi2 is not None:
        lines.append(("reduced chi-square", f"  {num(chi2, 6, style='g')}"))
    return lines


def information_text(result: Any) -> tuple[str, str]:
    """AIC and BIC, eight digits each."""
    from ..regression import uncertainty

    aic, bic = uncertainty.information(result)
    return num(aic, 8, style="g"), num(bic, 8, style="g")


def method_text(result: Any) -> str:
    """The counts of the engine's work."""
    return (f"{counted(result.iterations, 'iteration')}, "
            f"{counted(result.evaluations, 'evaluation')}, "
            f"{counted(result.jacobian_evaluations, 'Jacobian evaluation')}")


# --------------------------------------------------------------------------- plain text


def _plain(text: str) -> bool:
    """Text rich prints unchanged through ``escape`` and markup: printable, no emoji code, and
    no backslash beside a bracket (where rich's escaping is subtle)."""
    return (text.isprintable() and _EMOJI.search(text) is None
            and not ("\\" in text and "[" in text))


def _cell(text: str) -> bool:
    """Plain text of one terminal cell per character, for rich too."""
    return _plain(text) and all(" " <= c <= "~" for c in text)


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], width: int) -> list[str] | None:
    """rich's table without box or edge padding (columns two spaces apart, the first left- and
    every other right-justified) at its natural width; None when rich would fold the label
    column to fit ``width`` (:func:`adcli.output.render.print_table`)."""
    if not all(_cell(c) for row in (headers, *rows) for c in row):
        return None
    widths = [max(len(c) for c in column) for column in zip(headers, *rows)]
    natural = sum(widths) + 2 * (len(widths) - 1)
    if natural > width and (widths[0] > LABEL_MIN_WIDTH  # rich measures escaped labels
                            or any(_ESCAPED.search(row[0]) for row in rows)):
        return None
    return ["  ".join([cells[0].ljust(widths[0])]
                      + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])
            for cells in (headers, *rows)]


def fit_text(result: Any, width: int | None = None) -> str | None:
    """What :func:`adcli.output.render.fit_result` writes to a console that is no terminal,
    ``width`` columns wide (default: :func:`adcli.output.plain.console_width`); None where only
    rich can say."""
    if width is None:
        width = console_width()
        if width is None:
            return None
    verdict = "converged" if result.converged else "not converged"
    lines = [f"{verdict}: {result.reason}"]
    lines.append((PARAMETER_HEADERS, parameter_rows(result)))
    if result.ci is not None:
        ci = result.ci
        lines.append(f"confidence intervals ({ci['method']}, {ci['distribution']})")
        lines.append((interval_headers(result), interval_rows(result)))
        for name, notes in ci.get("notes", {}).items():
            lines += [f"{name}: {note}" for note in notes]
    if result.derived:
        lines.append("derived (delta method)")
        lines.append((DERIVED_HEADERS, derived_rows(result)))
    names = result.correlation_names
    if len(names) > 1:
        if width < len("correlation"):
            return None  # rich folds the word
        lines.append("correlation")
        lines.append((("", *names), correlation_rows(result)))
    lines += [head + rest for head, rest in statistics_lines(result)]
    aic, bic = information_text(result)
    lines.append(f"AIC  {aic}  BIC  {bic}  {AIC_NOTE}")
    if result.absolute_sigma:
        if width < len(ABSOLUTE_NOTE):
            return None  # rich wraps it
        lines.append(ABSOLUTE_NOTE)
    lines.append(f"method {result.method}, {method_text(result)}")
    out = []
    for line in lines:
        if isinstance(line, str):  # printed as it is (soft wrap), never measured
            if not _plain(line):
                return None
            out.append(line)
            continue
        body = _table(*line, width)
        if body is None:
            return None
        out += body
    return "\n".join(out) + "\n"
