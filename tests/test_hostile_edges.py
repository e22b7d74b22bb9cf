"""Hostile edges: numbers at the edges of float64 in every engine, and inputs that used to end
in a traceback (closed streams, odd environment variables, a damaged grammar cache, Ctrl-C
during start-up, malformed ``--at`` values).

The numeric references are mpmath at 50 digits, never adcli's own formulas: atan2's partials
x/(x^2 + y^2) and hypot's x/hypot(x, y) over magnitudes 1e-300..1e300 (where squaring
overflows or underflows), sqrt'(-0.0), log1p' outside its domain. Every engine that evaluates
partials is checked: the plain interpreter, forward mode, the generated scalar code and the
float interpreter, the numpy column sweeps, the levelled sweeps, and the symbolic derivative
printed by ``adcli diff`` and evaluated again.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import adcli
from adcli.commands.diff import derivative_texts
from adcli.core import sweeps
from adcli.fast.levelled import Levelled
from adcli.fast.policy import CompiledTape, guard
from adcli.fast.scalar import interpreter

mpmath.mp.dps = 50

#: Magnitudes 1e-300 .. 1e300 (every 20 decades, and the squaring edges 1e±155, 1e±170),
#: both signs: x^2 + y^2 overflows or underflows for most pairs.
MAGNITUDES = sorted({10.0 ** k for k in range(-300, 301, 20)} | {1e155, 1e-155, 1e170,
                                                                 1e-170, 1.7e154, 3e-162})
VALUES = [s * m for m in MAGNITUDES for s in (1.0, -1.0)]
PAIRS = list(itertools.product(VALUES[::2] + VALUES[1::6], VALUES[::3] + VALUES[1::5])) \
    + [(1e200, 1e200), (1e-170, 1e-170), (-1e-170, 3e-170), (1e300, -1e-300)]


def close(got: float, want: float) -> bool:
    """Within 1e-14 relative where the reference is a normal float; where it is subnormal or
    underflows to 0 (below 1e-305), within 1e-320 absolute."""
    got = float(got)
    if math.isnan(got) or math.isinf(got):
        return False
    if abs(want) < 1e-305:
        return abs(got - want) <= 1e-320
    return math.isclose(got, want, rel_tol=1e-14)


def ref_atan2(y: float, x: float) -> tuple[float, float]:
    """(d/dy, d/dx) of atan2(y, x) = (x, -y) / (x^2 + y^2), in 50 digits."""
    X, Y = mpmath.mpf(x), mpmath.mpf(y)
    r2 = X * X + Y * Y
    return float(X / r2), float(-Y / r2)


def ref_hypot(x: float, y: float) -> tuple[float, float]:
    X, Y = mpmath.mpf(x), mpmath.mpf(y)
    r = mpmath.sqrt(X * X + Y * Y)
    return float(X / r), float(Y / r)


def all_engines(source: str, names: list[str], points: list[tuple[float, ...]]):
    """{engine: list of gradients (in ``names`` order), one per point}."""
    f = adcli.parse(source)
    tape = f.tape()
    assert list(tape.inputs) == names
    out: dict[str, list] = {k: [] for k in ("interpreter", "forward", "compiled",
                                            "float-interpreter", "api", "levelled",
                                            "symbolic")}
    fast = CompiledTape(tape)
    _, compiled_grad = fast.compiled()
    _, interp_grad = interpreter(tape)
    interp_grad = guard(interp_grad, fast._slow_grad)
    plan = Levelled(tape)
    symbolic = [adcli.parse(t) for t in derivative_texts(tape, names, sep="\n")]
    with np.errstate(all="ignore"):
        for xs in points:
            point = dict(zip(names, xs))
            _, g, _, _ = sweeps.value_and_grad(tape, point)
            out["interpreter"].append([float(g[n]) for n in names])
            _, g = sweeps.forward_gradient(tape, point)
            out["forward"].append([float(g[n]) for n in names])
            out["compiled"].append(list(compiled_grad(*xs)[1]))
            out["float-interpreter"].append(list(interp_grad(*xs)[1]))
            out["api"].append([f.grad(point).gradient[n] for n in names])
            out["levelled"].append([float(v) for v in plan.value_and_grad(np.array(xs))[1]])
            out["symbolic"].append([float(d.eval(point)) for d in symbolic])
    # the numpy column sweeps: every point a row
    columns = [np.array([p[i] for p in points]) for i in range(len(names))]
    _, grads = f.compiled(dict(zip(names, columns))).sweep_columns(columns)
    out["columns"] = [[float(g[k]) for g in grads] for k in range(len(points))]
    return out


def test_atan2_partials_at_the_edges_of_float64_in_every_engine():
    """x/(x^2 + y^2) at x = y = 1e200 is 5e-201 (squared: 0), at 1e-170 it is 5e169
    (squared: inf); over 1e-300..1e300 every engine is within 1e-14 of mpmath."""
    engines = all_engines("atan2(y, x)", ["y", "x"], PAIRS)
    refs = [ref_atan2(y, x) for y, x in PAIRS]
    for engine, grads in engines.items():
        bad = [(p, g, r) for p, g, r in zip(PAIRS, grads, refs)
               if not (close(g[0], r[0]) and close(g[1], r[1]))]
        assert not bad, (engine, len(bad), bad[:3])
    i = PAIRS.index((1e200, 1e200))
    assert engines["compiled"][i] == pytest.approx([5e-201, -5e-201], rel=1e-15)
    i = PAIRS.index((1e-170, 1e-170))
    assert engines["symbolic"][i] == pytest.approx([5e169, -5e169], rel=1e-15)


def test_hypot_partials_at_the_edges_of_float64_in_every_engine():
    engines = all_engines("hypot(x, y)", ["x", "y"], PAIRS)
    refs = [ref_hypot(x, y) for x, y in PAIRS]
    for engine, grads in engines.items():
        bad = [(p, g, r) for p, g, r in zip(PAIRS, grads, refs)
               if not (close(g[0], r[0]) and close(g[1], r[1]))]
        assert not bad, (engine, len(bad), bad[:3])


def test_hypot_partials_where_hypot_itself_overflows():
    """hypot(1e308, 1e308) is inf, but its partials are 1/sqrt(2) each (x / inf was 0)."""
    f = adcli.parse("hypot(x, y)")
    for x, y in [(1e308, 1e308), (-1.5e308, 1e308), (1.7e308, 1.0)]:
        want = ref_hypot(x, y)
        got = f.grad({"x": x, "y": y}).gradient
        assert close(got["x"], want[0]) and close(got["y"], want[1]), (x, y, got)
        g = sweeps.forward_gradient(f.tape(), {"x": x, "y": y})[1]
        assert close(g["x"], want[0]) and close(g["y"], want[1])


@pytest.mark.parametrize("source, ref", [
    ("atan(x)", lambda X: 1 / (1 + X * X)),
    ("cbrt(x)", lambda X: 1 / (3 * mpmath.cbrt(abs(X)) ** 2)),
    ("tanh(x)", lambda X: 1 - mpmath.tanh(X) ** 2),
])
def test_other_partials_with_a_square_over_1e_300_to_1e300(source, ref):
    """The other partials that square something (atan's 1/(1 + x^2), cbrt's 1/(3 cbrt(x)^2),
    tanh's 1 - tanh^2) hold over the whole range in every engine. atan's is computed as
    r/(x + r), r = 1/x, for |x| > 1 (x^2 overflows from 1.4e154, where the result is a
    subnormal, not 0); ``adcli diff`` prints 1/(x^2 + 1), which gives 0 there."""
    points = [(v,) for v in VALUES]
    for engine, grads in all_engines(source, ["x"], points).items():
        if engine == "symbolic" and source == "atan(x)":
            continue
        bad = [(x, g) for (x,), g in zip(points, grads)
               if not close(g[0], float(ref(mpmath.mpf(x))))]
        assert not bad, (engine, bad[:3])


def test_atan2_and_hypot_at_the_origin_keep_their_conventions():
    for engine, grads in all_engines("atan2(y, x)", ["y", "x"], [(0.0, 0.0)]).items():
        assert all(math.isnan(g) for g in grads[0]), engine
    for engine, grads in all_engines("hypot(x, y)", ["x", "y"],
                                     [(0.0, 0.0), (-0.0, 0.0)]).items():
        if engine == "symbolic":  # x/hypot(x, y), documented as nan at the origin
            continue
        assert grads == [[0.0, 0.0], [0.0, 0.0]], engine


def test_sqrt_derivative_at_minus_zero_is_plus_inf():
    """The README's table: sqrt'(0) = +inf, for both zeros (sqrt(-0.0) is -0.0)."""
    for engine, grads in all_engines("sqrt(x)", ["x"], [(-0.0,), (0.0,)]).items():
        if engine == "symbolic":  # 0.5/sqrt(x): documented to keep the sign of the zero
            continue
        assert grads == [[math.inf], [math.inf]], engine


@pytest.mark.parametrize("x", [-2.0, -1.0000000000000002, -1.5, -1e300, -math.inf])
def test_log1p_derivative_is_nan_below_minus_one(x):
    engines = all_engines("log1p(x)", ["x"], [(x,)])
    for engine, grads in engines.items():
        if engine == "symbolic":  # 1/(x + 1): the printed formula, evaluated as written
            continue
        assert math.isnan(grads[0][0]), (engine, grads)


def test_log1p_derivative_on_its_domain():
    xs = [-1.0, -0.9999999999999999, -0.5, -1e-300, 0.0, 1e-300, 1e-10, 3.0, 1e300]
    for engine, grads in all_engines("log1p(x)", ["x"], [(x,) for x in xs]).items():
        assert grads[0] == [math.inf], engine
        for x, g in zip(xs[1:], grads[1:]):
            assert close(g[0], float(1 / (1 + mpmath.mpf(x)))), (engine, x, g)


# --------------------------------------------------------------------------- CLI helpers

ROOT = Path(__file__).resolve().parent.parent
ADCLI = Path(sys.executable).parent / "adcli"


def run(args: list[str], *, env: dict | None = None, stdin=subprocess.DEVNULL,
        timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``adcli ARGS`` through the console script, with the grammar cache in ``env`` if any."""
    return subprocess.run([str(ADCLI), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, stdin=stdin, timeout=timeout,
                          **kw)


def assert_clean_error(proc: subprocess.CompletedProcess, status: int, *words: str) -> None:
    """Exit ``status``, no traceback, one ``Error:`` line first on stderr naming ``words``."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0] if proc.stderr else ""
    assert first.startswith("Error: "), proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


# --------------------------------------------------------------------------- --at values


@pytest.mark.parametrize("at, bad", [("x=a=1", "'a=1'"), ("x=y=2", "'y=2'"),
                                     ("x=a=1;a+5", "'a=1;a+5'"), ("y=1,x=b=2", "'b=2'")])
def test_at_value_with_an_equals_sign_is_an_error_naming_it(at, bad):
    proc = run(["eval", "x", "--at", at])
    assert_clean_error(proc, 2, bad, "--at x=")
    assert proc.stdout == ""


def test_from_and_bounds_values_with_an_equals_sign_are_errors():
    from adcli.errors import PointError
    from adcli.io.point import parse_assignments, parse_value

    with pytest.raises(PointError, match=r"--from x='a=1' is not a number"):
        parse_assignments("x=a=1", "--from")
    with pytest.raises(PointError, match="no '='"):
        parse_value("a = 2; a", context="--bounds x=")
    assert parse_assignments("x=pow(2, 3),y=-1e3") == {"x": 8.0, "y": -1000.0}


@pytest.mark.parametrize("args, shown", [
    (["fit", "y ~ a*x", "--data", "DATA", "--sep", "\n"], "--sep '\\n'"),
    (["fit", "y ~ a*x", "--data", "no\nfile.csv"], "'no\\nfile.csv'"),
    (["fit", "y ~ a*x", "--data", "DATA", "--from", "a\nb=1"], "'a\\nb'"),
])
def test_a_line_break_echoed_from_an_option_keeps_the_error_on_one_line(args, shown, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,2\n2,4\n")
    proc = run([str(data) if a == "DATA" else a for a in args])
    assert_clean_error(proc, 2, shown)
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_a_hint_with_a_line_break_stays_on_its_line():
    from adcli.errors import AdcliError

    err = AdcliError("bad 'a\nb'", hint="try 'c\nd'")
    assert err.render() == "bad 'a\\nb'\ntry 'c\\nd'"


# --------------------------------------------------------------------------- function names


def test_every_function_alias_names_a_real_op():
    from adcli.language.grammar import _FUNCTION_ALIASES, _MISSING_FUNCTIONS
    from adcli.ops import FUNCTIONS

    for alias, target in _FUNCTION_ALIASES.items():
        assert target in FUNCTIONS, (alias, target)
        assert alias not in FUNCTIONS, alias
    for name, formula in _MISSING_FUNCTIONS.items():
        assert name not in FUNCTIONS and name not in _FUNCTION_ALIASES
        # the suggested formula is in the language (x its only variable)
        assert adcli.parse(formula.split(" (")[0]).variables == ["x"], name


@pytest.mark.parametrize("name", ["arcsinh", "asinh", "acosh", "arctanh"])
def test_inverse_hyperbolic_names_get_a_formula_not_a_wrong_function(name):
    proc = run(["eval", f"{name}(1)"])
    assert_clean_error(proc, 2, f"unknown function '{name}'", "log")
    assert "did you mean" not in proc.stderr


def test_aliases_still_suggest_their_function():
    proc = run(["eval", "arctan2(1, 2)"])
    assert_clean_error(proc, 2, "did you mean 'atan2'")


# --------------------------------------------------------------------------- closed streams


def test_stdout_closed_is_an_output_error_not_a_traceback():
    proc = subprocess.run(f"'{ADCLI}' grad 'x^2' --at x=1 >&-", shell=True,
                          capture_output=False, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "Error: cannot write output: standard output is closed\n"


def test_stdout_closed_does_not_disturb_a_command_that_writes_a_file(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x\n1\n2\n")
    out = tmp_path / "out.csv"
    proc = subprocess.run(f"'{ADCLI}' eval 'x*3' --data '{data}' -o '{out}' >&-", shell=True,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "x,value\n1,3.0\n2,6.0\n"


def test_stdin_closed_is_a_bad_input_error():
    proc = subprocess.run(f"'{ADCLI}' eval - --at x=1 <&-", shell=True,
                          capture_output=True, text=True, cwd=ROOT)
    assert_clean_error(proc, 2, "cannot read standard input: it is closed")


def test_stderr_closed_still_gives_the_exit_status():
    proc = subprocess.run(f"'{ADCLI}' eval 'x +' --at x=1 2>&-", shell=True,
                          stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""


# --------------------------------------------------------------------------- CSV edge cases


def test_csv_with_cr_only_line_ends_is_a_data_error(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"x,y\r1,2\r3,4\r")
    assert_clean_error(run(["eval", "x*y", "--data", str(path)]), 2, "line 1",
                       "lone carriage return")
    path.write_bytes(b"x,y\n1,2\n3,4\r5,6\n")  # a CR inside a line of a LF file
    proc = run(["eval", "x*y", "--data", str(path)])
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 2)


def test_csv_field_over_the_csv_module_limit_is_a_data_error(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x,y\n1,2\n3," + "4" * 200_000 + "\n")
    assert_clean_error(run(["eval", "x*y", "--data", str(path)]), 2, "line 3",
                       "longer than 131,072 characters")
    path.write_text("x," + "y" * 200_000 + "\n1,2\n")
    assert_clean_error(run(["eval", "x", "--data", str(path)]), 2, "line 1")


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize("value", ["abc", "2.5", "1e3", "0", "-1", "65", "１"])
def test_bad_adcli_threads_is_an_error_naming_it(value, monkeypatch):
    from adcli.errors import AdcliError
    from adcli.fast import columns

    monkeypatch.setenv("ADCLI_THREADS", value)
    with pytest.raises(AdcliError, match="ADCLI_THREADS=.* is not a number of threads"):
        columns.threads()


@pytest.mark.parametrize("value, want", [("1", 1), (" 3 ", 3), ("64", 64), ("", 1)])
def test_good_adcli_threads(value, want, monkeypatch):
    from adcli.fast import columns

    monkeypatch.setenv("ADCLI_THREADS", value)
    assert columns.threads(1) == want


def test_bad_adcli_threads_through_the_cli(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("x\n" + "\n".join(str(i) for i in range(300_000)) + "\n")
    proc = run(["eval", "x*2", "--data", str(path), "-o", str(tmp_path / "o.csv")],
               env={"ADCLI_THREADS": "2.5"})
    assert_clean_error(proc, 2, "ADCLI_THREADS='2.5'")


def test_pythonwarnings_error_does_not_turn_warnings_into_tracebacks():
    for args in (["eval", "x*2", "--data", "samples/line.csv"], ["grad", "x^2", "--at", "x=1"],
                 ["fit", "y ~ a*x + b", "--data", "samples/line.csv"]):
        proc = run(args, env={"PYTHONWARNINGS": "error"})
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


# --------------------------------------------------------------------------- grammar cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private cache directory, with the module's tables read afresh (and afterwards)."""
    from adcli.language import lalr_tables

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("ADCLI_NO_GRAMMAR_CACHE", raising=False)
    monkeypatch.setenv("ADCLI_SHIPPED_TABLES", "0")  # the cache's tables, not the package's

    def fresh():
        lalr_tables._CACHE_STATE.update(used=False, shipped=False, distrusted=False)
        lalr_tables._tables.cache_clear()
        lalr_tables._fast_reducers.cache_clear()

    fresh()
    lalr_tables._tables()  # writes the cache file
    (path,) = (tmp_path / "adcli").glob("lalr-*.json")
    yield path, fresh
    monkeypatch.undo()
    fresh()


def write_tables(path, tables) -> None:
    """A cache file holding ``tables`` with every check but their content right: format,
    grammar key, Lark version and a valid digest (so only the content can be wrong)."""
    import json

    from adcli.language.lalr_tables import _digest

    doc = json.loads(path.read_bytes())
    doc["tables"] = tables
    doc["digest"] = _digest(json.dumps(tables, sort_keys=True).encode())
    path.write_text(json.dumps(doc))


def _cache_is_valid(path) -> bool:
    from adcli.language import lalr_tables

    key = json_load(path)["grammar"]
    tables = lalr_tables._unpack_cache(path.read_bytes(), key, lalr_tables._lark_version())
    return tables is not None and lalr_tables._check_tables(tables) is None


def json_load(path):
    import json

    return json.loads(path.read_bytes())


def test_a_deeply_nested_cache_is_rebuilt_silently(cache_dir, tmp_path):
    path, _ = cache_dir
    path.write_text("[" * 200_000 + "]" * 200_000)
    proc = run(["eval", "1 + 2"], env={"XDG_CACHE_HOME": str(tmp_path)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "3.0\n", "")
    assert _cache_is_valid(path)


CORPUS = ["x + y*z", "a = sin(x); b = max(a, 2)\na^-b", "-(x)**2/3 - f", "hypot(x, y)",
          "x;", "((1))", "2^3^2 - +x", "atan2(1, 2, 3)", "sin()", "x y", "1e5.3", "f(x)"]


def _outcomes(texts):
    from adcli.errors import AdcliError
    from adcli.language.parser import parse_program

    out = []
    for text in texts:
        try:
            out.append([str(s.expr) for s in parse_program(text).statements])
        except AdcliError as err:
            out.append(err.render())
    return out


def test_damaged_tables_with_a_valid_digest_never_raise(cache_dir):
    """Tables changed in one place each (an action, a rule's length, a missing entry), with a
    digest that matches: parsing gives a result or an AdcliError, never an IndexError or a
    hang, and most damaged tables are caught and rebuilt into a valid cache. (Not every one:
    a missing entry the canary never reaches refuses some valid texts, and 1 in ~3,000
    changed actions misparses, until the cache is deleted; the digest guards against
    accidental damage, the 0700 directory against other users.)"""
    import copy
    import random

    path, fresh = cache_dir
    good = json_load(path)["tables"]
    want = _outcomes(CORPUS)
    rng = random.Random(20)
    rejected = 0
    for _ in range(60):
        tables = copy.deepcopy(good)
        row = rng.choice([r for r in tables["states"] if r])
        sym = rng.choice(sorted(row))
        kind = rng.randrange(3)
        if kind == 0:
            row[sym] = rng.randrange(-len(tables["rules"]), len(tables["states"]))
        elif kind == 1:
            rule = rng.choice(tables["rules"])
            rule[1] = rule[1] + rule[1][-1:] if rng.random() < 0.5 else rule[1][:-1]
        else:
            del row[sym]
        write_tables(path, tables)
        fresh()
        got = _outcomes(CORPUS)  # raises on anything but an AdcliError
        assert _cache_is_valid(path) or json_load(path)["tables"] == tables
        if json_load(path)["tables"] != tables:
            rejected += 1
            assert got == want, (kind, sym)
    assert rejected > 30  # most damaged tables were caught and rebuilt


def test_an_impossible_reduction_in_cached_tables_is_rebuilt(cache_dir, tmp_path):
    """call0 (NAME '(' ')') made to pop eight symbols: the canary never calls f(), so only
    the shape check catches it, and the cache is rebuilt before anything is parsed."""
    path, fresh = cache_dir
    tables = json_load(path)["tables"]
    for rule in tables["rules"]:
        if rule[2] == "call0":
            rule[1] = ["NAME"] * 6 + ["LPAR", "RPAR"]
    write_tables(path, tables)
    proc = run(["eval", "sin() + x", "--at", "x=1"], env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_clean_error(proc, 2, "sin() takes 1 argument")
    assert _cache_is_valid(path)


@pytest.mark.parametrize("value, off", [("1", True), ("true", True), ("YES", True),
                                        ("0", False), ("no", False), ("false", False),
                                        ("", False)])
def test_no_grammar_cache_rule(value, off, tmp_path, monkeypatch):
    from adcli.language import lalr_tables

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("ADCLI_NO_GRAMMAR_CACHE", value)
    assert (lalr_tables._cache_dir() is None) == off


# --------------------------------------------------------------------------- Ctrl-C at start-up

#: The console script's own code, with a hook that sends SIGINT to the process the moment
#: ``module`` is first imported: a Ctrl-C at a precise point of start-up.
_INTERRUPT_AT = """
import os, signal, sys
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
sys.argv = [{script!r}, "grad", "x^2", "--at", "x=1"]
from adcli.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("module", ["click", "adcli.commands.grad", "adcli.commands.report"])
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(module):
    code = _INTERRUPT_AT.format(module=module, script=str(ADCLI))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "Error: interrupted\n"
    assert proc.stdout == ""


def _late_frames(err: str) -> list[str]:
    """Traceback frames in adcli's or click's code after the handler is installed. A signal
    that arrives while Python loads adcli/__init__.py is run by Python's own handler at its
    first line, before any code of adcli's can run: frames up to the install line are not
    adcli's to avoid."""
    import re

    init = (ROOT / "adcli" / "__init__.py").read_text().splitlines()
    install = next(i for i, line in enumerate(init, 1) if "_signal.signal(" in line)
    late = []
    for path, line in re.findall(r'File "([^"]+)", line (\d+)', err):
        if path.endswith(os.path.join("adcli", "__init__.py")) and int(line) <= install:
            continue
        if f"{os.sep}adcli{os.sep}" in path or "click" in path:
            late.append(f"{path}:{line}")
    return late


def test_ctrl_c_at_any_moment_of_a_real_run_gives_no_adcli_traceback():
    """SIGINT to the console script at 0..100 ms: exit 130 (or killed by SIGINT before Python
    set its handler, or done, 0) and never a traceback through adcli's or click's code. A
    signal that lands in Python's own start-up (importing ``site``, the editable install's
    path hook, finding the package) ends there, before the first line of adcli runs: Python
    reports that itself, and nothing in adcli can change it."""
    import signal
    import time

    for delay_ms in range(0, 101, 10):
        proc = subprocess.Popen([str(ADCLI), "grad", "x^2", "--at", "x=1"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay_ms / 1000)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert not _late_frames(err), (delay_ms, err)
        if "KeyboardInterrupt" not in err and "Fatal Python error" not in err:
            # (else it was Python's own start-up: see above)
            assert proc.returncode in (0, 130, -signal.SIGINT), (delay_ms, proc.returncode,
                                                                 err)
            # (a blank line may end a line the run had started on stderr)
            assert err.lstrip("\n") in ("", "Error: interrupted\n"), (delay_ms, err)


_SPAWNED = """
import multiprocessing as mp, signal, sys
def probe(q):
    import adcli
    q.put((adcli._is_program(), signal.getsignal(signal.SIGINT) is adcli._interrupted_early))
if __name__ == "__main__":
    sys.argv[0] = {script!r}
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=probe, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join()
"""


def test_a_spawned_worker_with_the_programs_argv_keeps_pythons_ctrl_c(tmp_path):
    """Dask's workers are spawned with the parent's argv: they are no program, so Ctrl-C
    there stays Python's (their parent reports the interruption once)."""
    script = tmp_path / "spawn.py"
    script.write_text(_SPAWNED.format(script=str(ADCLI)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "(False, False)", proc.stderr


@pytest.mark.parametrize("value", ["\u00a01", "1\u00a0", "\u20031", "\uff11", "1_000"])
def test_at_values_follow_the_data_cells_ascii_number_rule(value):
    """One number rule everywhere: a value a data cell refuses (a no-break or em space around
    it, a full-width digit, an underscore) is refused in --at too, not stripped or read."""
    assert_clean_error(run(["eval", "x+1", "--at", f"x={value}"]), 2, "is not a number")
