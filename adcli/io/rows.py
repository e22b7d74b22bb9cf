"""Evaluation at every row of a data file (``adcli eval/grad --data``): the value, and the
gradient, of each row in one vectorised pass (the blocked numpy sweeps of :mod:`adcli.fast`),
written back out as CSV or JSON next to the input columns.

The writers format a block of rows at a time, so memory stays a few times the data itself
and 10^6 rows take about a second."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from ..errors import AdcliError, PointError
from ..function import Function, select_wrt
from .data import Dataset, csv_cell

#: Rows formatted (and their gradient swept) per write: bounds the text and arrays in flight
#: (8,192 rows took 60 MB less than 65,536 for a million rows as JSON, and no longer).
BLOCK_ROWS = 1 << 13
#: The biggest tape evaluated over rows: the columns' sweeps are generated numpy code, which
#: takes about 7 kB a node to compile (100,000 nodes: 0.8 GB; 375,000 took 2.7 GB), the same
#: limit as ``minimize --data`` (:data:`adcli.optimize.objective.DATA_MAX_NODES`).
MAX_NODES = 100_000


@dataclass(slots=True)
class RowsResult:
    """The value at every row of ``data``, and with ``wrt`` the gradient by those names.

    The gradient is swept a block of rows at a time as it is written (:meth:`gradients`):
    a full column per variable would cost 8 bytes a row each, past 1 GB for a few variables
    over the rows the data limit allows."""

    data: Dataset
    value: np.ndarray
    wrt: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    #: The names of the computed columns: ``value`` and (JSON) ``gradient``, with ``_``
    #: appended while the data has a column of that name.
    value_name: str = "value"
    gradient_name: str = "gradient"
    #: variable -> its CSV column, ``d/dNAME`` (``_`` appended while that is taken too).
    gradient_headers: dict[str, str] = field(default_factory=dict)
    sweep: Callable[[int, int], dict[str, np.ndarray]] | None = None
    #: Columns written after ``value`` (a band's ``se_fit``, ``lower``, ``upper``), by the
    #: name they are written under.
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def add_columns(self, columns: Mapping[str, np.ndarray]) -> None:
        """Columns after ``value``; a name the data already has gets ``_`` appended (with
        a warning), as ``value`` does."""
        where = f"'{self.data.path}'" if self.data.path else "the data"
        taken = set(self.data.order) | set(self.data.headers.values()) | {self.value_name} \
            | set(self.extra)
        for name, cells in columns.items():
            out = name
            while out in taken:
                out += "_"
            if out != name:
                self.warnings.append(f"{where} has a column named '{name}': the computed one "
                                     f"is called '{out}'")
            taken.add(out)
            self.extra[out] = cells

    def gradients(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """The gradient at rows ``lo:hi`` (all by default): an array a name, in ``wrt``
        order; empty without a gradient."""
        if self.sweep is None:
            return {}
        return self.sweep(lo, self.data.rows if hi is None else hi)


def evaluate_rows(function: Function, data: Dataset, point: Mapping[str, float], *,
                  gradient: bool = False, wrt: Iterable[str] | None = None,
                  dropna: bool = False, empty: bool = False) -> RowsResult:
    """Columns of ``data`` bind the variables named in its header, ``point`` the others
    (parameters, the same for every row). With ``gradient``, every variable (or those in
    ``wrt``) gets its derivative at every row, parameters included. ``empty``: rows that
    ``dropna`` leaves none of give an empty result (a partition), not an error."""
    where = f"'{data.path}'" if data.path else "the data"
    both = [n for n in point if n in data.names]
    if both:
        raise PointError(f"'{both[0]}' is a column of {where} and also given by --at; "
                         "drop it from --at, or rename the column with --column NEW=ORIGINAL")
    tape = function.tape(set(point) | set(data.names))
    if len(tape) > MAX_NODES and any(n in data.names for n in tape.inputs):
        raise AdcliError(f"the tape has {len(tape):,} nodes; evaluation over the rows of data "
                         "compiles it to numpy code, which needs about 7 kB a node, so it is "
                         f"limited to {MAX_NODES:,} nodes",
                         hint="evaluate at one point with --at (up to 1,000,000 nodes)")
    data = data.select(tape.inputs, dropna, empty)
    unset = [n for n in tape.inputs if n not in data.columns and n not in point]
    if unset:
        names = ", ".join(f"'{n}'" for n in unset)
        columns = ", ".join(data.names)
        mapped = f"; mapped headers: {data.describe_headers()}" if data.headers else ""
        line, column = tape.positions.get(unset[0], (0, 0))
        raise PointError(f"{'variable' if len(unset) == 1 else 'variables'} {names} "
                         f"{'is' if len(unset) == 1 else 'are'} neither a column of {where} "
                         f"(columns: {columns}{mapped}) nor given by --at",
                         line=line, column=column)
    names = select_wrt(tape, wrt) if wrt is not None else list(tape.inputs)
    rows = data.rows
    compiled = function.compiled(set(point) | set(data.names))

    def inputs(lo: int, hi: int, full: bool) -> list:
        xs = []
        for n in tape.inputs:
            if n in data.columns:
                xs.append(data.columns[n][lo:hi])
            else:  # a parameter: a full column when differentiated, so each row keeps its own
                xs.append(np.full(hi - lo, point[n]) if full and n in names
                          else np.float64(point[n]))
        return xs

    def sweep(lo: int, hi: int) -> dict[str, np.ndarray]:
        _, grads = compiled.sweep_columns(inputs(lo, hi, True), wrt=names)
        by_name = dict(zip(tape.inputs, grads))
        return {n: np.broadcast_to(np.asarray(by_name[n], dtype=np.float64), (hi - lo,))
                for n in names}

    value, _ = compiled.sweep_columns(inputs(0, rows, False), wrt=[])
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), (rows,))
    result = RowsResult(data, value)
    taken = set(data.order) | set(data.headers.values())
    for attr in ("value_name", "gradient_name"):
        name = getattr(result, attr)
        while name in taken:
            name += "_"
        if name != getattr(result, attr) and (gradient or attr == "value_name"):
            result.warnings.append(f"{where} has a column named '{getattr(result, attr)}': "
                                   f"the computed one is called '{name}'")
        setattr(result, attr, name)
    if gradient:
        # A data column already called d/dx would make two columns of one name in the CSV.
        taken |= {result.value_name}
        for n in names:
            header = f"d/d{n}"
            while header in taken:
                header += "_"
            if header != f"d/d{n}":
                result.warnings.append(f"{where} has a column named 'd/d{n}': the computed "
                                       f"derivative is called '{header}'")
            taken.add(header)
            result.gradient_headers[n] = header
        result.wrt, result.sweep = names, sweep
    bad = ~np.isfinite(value)
    if bad.any():
        first = int(np.argmax(bad)) + 1
        result.warnings.append(f"the value is not finite in {int(bad.sum()):,} of {rows:,} "
                               f"rows (the first is data row {first:,})")
    for n in point:
        if n not in tape.inputs:
            result.warnings.append(f"'{n}' is given a value but the expression does not "
                                   "use it")
    return result


def _out_columns(result: RowsResult) -> list[tuple[str, str, object]]:
    """(CSV header, JSON key, cells) for every output column, input columns first."""
    data = result.data
    cols: list[tuple[str, str, object]] = []
    for name in data.order:
        cells = data.text.get(name)
        if cells is None:  # (nothing when the data lines are written as they were)
            cells = data.columns[name] if name in data.columns else \
                _Missing(data.spare[name]) if name in data.spare else None
        cols.append((data.headers.get(name, name), name, cells))
    cols.append((result.value_name, result.value_name, result.value))
    cols += [(name, name, cells) for name, cells in result.extra.items()]
    return cols


class _Missing:
    """An input column with missing cells (nan) that EXPR does not use: an empty CSV cell,
    JSON null, where a cell is missing."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values


def _texts(cells: object, lo: int, hi: int) -> list[str]:
    if isinstance(cells, _Missing):
        return ["" if math.isnan(v) else repr(v) for v in cells.values[lo:hi].tolist()]
    if isinstance(cells, np.ndarray):
        return list(map(repr, cells[lo:hi].tolist()))
    return [csv_cell(c) for c in cells[lo:hi]]  # type: ignore[index]


def write_csv(out: TextIO, result: RowsResult) -> None:
    """The input columns, ``value`` (and the :attr:`RowsResult.extra` columns) and one
    ``d/dNAME`` per variable, full precision (the shortest text that reads back as the same
    float64)."""
    cols = _out_columns(result)
    out.write(",".join([csv_cell(h) for h, _, _ in cols]
                       + [csv_cell(result.gradient_headers.get(name, f"d/d{name}"))
                          for name in result.wrt or []]) + "\n")
    rows = result.data.rows
    lines = result.data.lines
    if lines is not None:  # the input columns as they were written: no need to format them
        cols = cols[len(result.data.order):]
    for lo in range(0, rows, BLOCK_ROWS):
        hi = min(lo + BLOCK_ROWS, rows)
        parts = [_texts(c, lo, hi) for _, _, c in cols]
        parts += [_texts(g, 0, hi - lo) for g in result.gradients(lo, hi).values()]
        if lines is not None:
            parts.insert(0, lines[lo:hi])
        out.write("\n".join(map(",".join, zip(*parts))) + "\n")


def _json_number(v: float) -> str:
    if math.isfinite(v):
        return repr(v)
    return '"nan"' if math.isnan(v) else ('"inf"' if v > 0 else '"-inf"')


def _json_cells(cells: object, lo: int, hi: int) -> list[str]:
    if isinstance(cells, _Missing):
        return ["null" if math.isnan(v) else repr(v) for v in cells.values[lo:hi].tolist()]
    if isinstance(cells, np.ndarray):
        return list(map(_json_number, cells[lo:hi].tolist()))
    return [json.dumps(c) for c in cells[lo:hi]]  # type: ignore[index]


def write_json(out: TextIO, result: RowsResult) -> None:
    """One JSON list with an object per row: the input columns by name, ``value``, and
    ``gradient`` (an object by variable) when there is one. Strictly valid JSON: non-finite
    numbers are the strings "nan", "inf", "-inf", as everywhere in adcli."""
    data = result.data
    inputs = [(json.dumps(n), data.columns[n] if n in data.columns else
               _Missing(data.spare[n]) if n in data.spare else data.text[n])
              for n in data.order]
    grads = [json.dumps(n) for n in result.wrt or []]
    rows = data.rows
    out.write("[")
    for lo in range(0, rows, BLOCK_ROWS):
        hi = min(lo + BLOCK_ROWS, rows)
        keys = [k for k, _ in inputs] + [json.dumps(result.value_name)] + [
            json.dumps(n) for n in result.extra]
        parts = [_json_cells(c, lo, hi) for _, c in inputs] + [
            _json_cells(result.value, lo, hi)] + [
            _json_cells(c, lo, hi) for c in result.extra.values()]
        gparts = [_json_cells(g, 0, hi - lo) for g in result.gradients(lo, hi).values()]
        lines = []
        for i in range(hi - lo):
            fields = [f"{k}: {p[i]}" for k, p in zip(keys, parts)]
            if result.wrt is not None:
                inner = ", ".join(f"{k}: {p[i]}" for k, p in zip(grads, gparts))
                fields.append(f'{json.dumps(result.gradient_name)}: {{{inner}}}')
            lines.append("{" + ", ".join(fields) + "}")
        out.write((", " if lo else "") + ", ".join(lines))
    out.write("]\n")


def write_rows(result: RowsResult, as_json: bool, output: str | None) -> None:
    """The rows as CSV (or JSON) to ``output``, atomically (the old file stays whole until the
    new one is), or to stdout."""
    import sys

    from .atomic import atomic_output

    write = write_json if as_json else write_csv
    if output is None:
        write(sys.stdout, result)
        return
    with atomic_output(output) as out:
        write(out, result)
