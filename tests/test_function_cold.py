"""A first ``adcli.parse(text).grad(point)`` in a fresh interpreter (bench W5 cold) loads only
what a point of floats needs: no typing, dataclasses or inspect, no re (nor the enum,
functools and collections under it: a small text is scanned in Python), no JSON table cache, no
numpy, no result records, no pathlib or importlib.util. The child runs as from a plain install
(``python -S`` with only the source tree on ``PYTHONPATH``: the editable install's finder would
load pathlib and importlib.util anyway), so it also shows that the path needs nothing from
site-packages: the parse tables come from the package, Lark is not needed."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys
text = " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(100))
point = {f"x{i}": 0.25 * i for i in range(101)}
import adcli
small = adcli.parse("sin(x)*y^2").grad({"x": 1.0, "y": 2.0})
value, grads = adcli.parse(text).grad(point)
from adcli.language.lalr_tables import tables_source
print(repr(small.value), repr(small.gradient["x"]), repr(small.gradient["y"]))
print(repr(value), repr(grads["x1"]), tables_source())
print(" ".join(sorted(sys.modules)))
"""

#: Modules the path no longer loads (typing, dataclasses with inspect, ast, dis and tokenize
#: under it, and re with enum, functools and collections each cost more than the whole
#: parse and gradient of 100 terms), and modules it never needed.
NOT_NEEDED = ["typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "contextlib",
              "re", "enum", "functools", "collections", "collections.abc", "operator", "struct",
              "adcli.language.grammar", "adcli.language.parse_errors", "adcli.language.elements",
              "adcli.core.sweeps",
              "json", "_blake2", "hashlib", "weakref", "numpy", "adcli.results", "pathlib",
              "importlib.util", "fnmatch", "urllib", "lark", "click", "rich", "scipy"]


def test_first_parse_and_grad_import_only_what_a_point_of_floats_needs(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ADCLI_NO_GRAMMAR_CACHE", "ADCLI_SHIPPED_TABLES")}
    env["PYTHONPATH"] = str(ROOT)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-S", "-c", _CHILD], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    small, big, modules = proc.stdout.splitlines()
    # sin(x)*y^2 at (1, 2): 4 sin 1, gradient (4 cos 1, 4 sin 1)
    v, dx, dy = map(float, small.split())
    assert math.isclose(v, 4 * math.sin(1.0), rel_tol=1e-15)
    assert math.isclose(dx, 4 * math.cos(1.0), rel_tol=1e-15)
    assert math.isclose(dy, 4 * math.sin(1.0), rel_tol=1e-15)
    value, dx1, source = big.split()
    assert source == "package"  # the tables shipped in adcli/language/lalr_data.py
    want = sum(math.sin(0.25 * i) * (0.25 * (i + 1)) ** 2 for i in range(100))
    assert math.isclose(float(value), want, rel_tol=1e-13)
    # d/dx1 of sin(x0)*x1^2 + sin(x1)*x2^2 = 2*sin(x0)*x1 + cos(x1)*x2^2
    assert math.isclose(float(dx1), 2 * math.sin(0.0) * 0.25 + math.cos(0.25) * 0.5 ** 2,
                        rel_tol=1e-13)
    loaded = set(modules.split())
    assert sorted(m for m in NOT_NEEDED if m in loaded) == []
    assert "adcli.language.parser" in loaded  # the probe ran the real path
    assert not (tmp_path / "cache").exists()  # nothing read or written there


def test_the_shipped_tables_are_lark_tables_of_the_grammar_file():
    """adcli/language/lalr_data.py holds the grammar file byte for byte and the tables Lark
    builds from it now (up to Lark's numbering, which changes from run to run): regenerate
    it with ``python -m adcli.language.lalr_tables`` after changing the grammar."""
    from adcli.language import lalr_data, lalr_tables
    from adcli.language.grammar import grammar_file
    from adcli.language.lalr import _prepare

    with open(grammar_file(), "rb") as fh:
        assert fh.read() == lalr_data.GRAMMAR, "grammar changed: regenerate lalr_data.py"
    built = lalr_tables.canonical_tables(lalr_tables._build_tables())
    shipped = lalr_tables.canonical_tables(lalr_data.TABLES)
    assert shipped == lalr_data.TABLES  # written in the canonical numbering
    for tables in (built, shipped):
        tables.pop("lark")
    assert shipped == built
    lalr_tables._check_tables(lalr_data.TABLES)
    assert lalr_tables._canary_passes(_prepare(lalr_data.TABLES))


def test_tables_from_an_edited_grammar_are_not_the_shipped_ones(monkeypatch):
    """The package's tables are used only with the grammar they were built from."""
    from adcli.language import lalr_data, lalr_tables

    monkeypatch.delenv("ADCLI_SHIPPED_TABLES", raising=False)
    monkeypatch.setitem(lalr_tables._CACHE_STATE, "distrusted", False)  # as in a new process
    assert lalr_tables._shipped_tables(lalr_data.GRAMMAR) is lalr_data.TABLES
    assert lalr_tables._shipped_tables(lalr_data.GRAMMAR + b"\n") is None
    monkeypatch.setenv("ADCLI_SHIPPED_TABLES", "0")
    assert lalr_tables._shipped_tables(lalr_data.GRAMMAR) is None
    monkeypatch.delenv("ADCLI_SHIPPED_TABLES")
    monkeypatch.setitem(lalr_tables._CACHE_STATE, "distrusted", True)  # after rebuild_tables()
    assert lalr_tables._shipped_tables(lalr_data.GRAMMAR) is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's pow on overflowing samples
def test_op_functions_made_without_compile_are_the_compiled_ones():
    """The float interpreter's op functions, made from the templates without ``compile``
    where a template is one kernel, operator, argument or number, compute what the compiled
    templates compute: the same bits, or the same exception, for every op of the table on
    points that reach its special cases (zeros, negatives, ties, infinities, nan)."""
    import itertools
    import struct

    from adcli.fast.scalar import SCALAR_NAMES
    from adcli.ops import _TABLE
    from adcli.ops.codegen import op_functions

    specs = [(op.arity, op.value, op.partial) for op in _TABLE]
    plain = op_functions(specs, SCALAR_NAMES)
    compiled = op_functions(specs, SCALAR_NAMES, plain=False)
    samples = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e300, -1e-300, math.inf, -math.inf,
               math.nan, 700.0, 1e-8]

    def outcome(f, *xs):
        try:
            return struct.pack("<d", f(*xs))
        except (ArithmeticError, ValueError) as err:
            return type(err)

    def generated(f) -> bool:
        return getattr(getattr(f, "__code__", None), "co_filename", "").startswith("<adcli")

    assert all(generated(f) for v, ps in compiled for f in (v, *ps))  # the reference
    for op, (v1, p1) in zip(_TABLE, plain):
        if op.name in ("add", "sub", "mul", "neg", "pow", "sin", "cos", "exp"):  # W5 and kin
            assert not any(generated(f) for f in (v1, *p1)), op.name
    for op, (v1, p1), (v2, p2) in zip(_TABLE, plain, compiled):
        for xs in itertools.product(samples, repeat=op.arity):
            out = outcome(v2, *xs)
            assert outcome(v1, *xs) == out, (op.name, xs)
            o = struct.unpack("<d", out)[0] if isinstance(out, bytes) else 1.0
            for f1, f2 in zip(p1, p2):
                assert outcome(f1, *xs, o) == outcome(f2, *xs, o), (op.name, xs)


@pytest.mark.parametrize("make", ["grad", "jvp"])
def test_the_results_behave_as_the_named_tuples_they_replaced(make):
    # GradResult and JvpResult were typing.NamedTuples: a caller's unpacking, indexing,
    # ==, repr, pickling and the namedtuple helpers must work as collections.namedtuple's do
    import copy
    import pickle
    from collections import namedtuple

    import adcli

    f = adcli.parse("x^2*y")
    got = f.grad({"x": 1.5, "y": 2.0}) if make == "grad" else \
        f.jvp({"x": 1.5, "y": 2.0}, {"x": 1.0})
    cls = type(got)
    ref_cls = namedtuple(cls.__name__, cls._fields)
    ref = ref_cls(*got)
    assert got == ref == tuple(got) and len(got) == 2 and isinstance(got, tuple)
    assert repr(got) == repr(ref)
    assert got._asdict() == ref._asdict()
    assert got._replace(value=7.0) == ref._replace(value=7.0)
    assert type(got._replace(value=7.0)) is cls
    assert cls._make(list(got)) == got and type(cls._make(got)) is cls
    for field in cls._fields:
        assert getattr(got, field) == getattr(ref, field)
    for back in (pickle.loads(pickle.dumps(got)), copy.deepcopy(got), copy.copy(got)):
        assert back == got and type(back) is cls
    match got:
        case cls(value=v):
            assert v == got[0]
