"""The fast paths (adcli.fast, the fast parser driver) against the plain references.

Every fast path must give the plain interpreter's numbers (adcli.core.sweeps) — including inf/nan —
and the fast parser must build exactly the tree Lark builds. Generated code must never contain
user text, whatever the names and numbers are.
"""

from __future__ import annotations

import ast
import math
import os
import re
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adcli
from adcli.core import sweeps
from adcli.core.lower import lower
from adcli.core.syntax import Program, Statement, iter_postorder
from adcli.fast import columns, policy
from adcli.fast.levelled import Levelled
from adcli.fast.policy import CompiledTape, guard
from adcli.fast.scalar import SCALAR_NAMES, interpreter
from adcli.language import lalr
from adcli.language.grammar import _lark_parse
from adcli.language.lalr import REFUSED
from adcli.language.parser import _fast_parse, parse_program
from adcli.ops import OPS
from adcli.ops.codegen import literal

sys.path.insert(0, str(Path(__file__).parent))
from strategies import programs  # noqa: E402

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def same(a: float, b: float) -> bool:
    """Equal to rounding (math library functions may differ in the last bit), same non-finite
    class (nan, +inf, -inf) exactly."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


def plain(tape, point):
    value, grads, _, _ = sweeps.value_and_grad(tape, point)
    return float(value), [float(grads[n]) for n in tape.inputs]


def check_scalar(source: str, point: dict[str, float]) -> None:
    f = adcli.parse(source)
    tape = f.tape(point)
    want_value, want_grad = plain(tape, point)
    xs = [point[n] for n in tape.inputs]
    fast = CompiledTape(tape)
    compiled_value, compiled_grad = fast.compiled()
    interp_value, interp_grad = interpreter(tape)
    for value_fn, grad_fn, kind in ((compiled_value, compiled_grad, "compiled"),
                                    (guard(interp_value, fast._slow_value),
                                     guard(interp_grad, fast._slow_grad),
                                     "interpreter")):
        got_value, got_grad = grad_fn(*xs)
        assert same(value_fn(*xs), want_value), (kind, source, point)
        assert same(got_value, want_value), (kind, source, point)
        assert len(got_grad) == len(want_grad)
        for name, g, w in zip(tape.inputs, got_grad, want_grad):
            assert same(g, w), (kind, source, point, name, g, w)
    # and the public API
    value, gradient = f.grad(point)
    assert same(value, want_value)
    assert all(same(gradient[n], w) for n, w in zip(tape.inputs, want_grad))
    assert same(f.eval(point), want_value)


@FAST
@given(programs())
def test_compiled_matches_interpreter(example) -> None:
    check_scalar(example.source, example.point)


@FAST
@given(programs(defined=False))
def test_compiled_matches_interpreter_anywhere(example) -> None:
    """Zeros, huge numbers, inf, nan: the fast code falls back where Python would raise."""
    check_scalar(example.source, example.point)


@pytest.mark.parametrize("source, point", [
    ("1/x", {"x": 0.0}), ("1/x", {"x": -0.0}), ("log(x)*y", {"x": 0.0, "y": 2.0}),
    ("exp(x)", {"x": 1000.0}), ("x^y", {"x": -8.0, "y": 1 / 3}), ("x^y", {"x": 0.0, "y": -1.0}),
    ("x^y", {"x": 0.0, "y": 2.0}), ("x^2", {"x": 1e200}), ("sqrt(x)", {"x": 0.0}),
    ("sqrt(x)", {"x": -1.0}), ("asin(x)", {"x": 1.0}), ("acos(x)", {"x": 2.0}),
    ("sin(x)", {"x": math.inf}), ("tan(x)", {"x": math.nan}), ("cosh(x)", {"x": 800.0}),
    ("abs(x) + relu(x) + sign(x) + step(x)", {"x": 0.0}),
    ("abs(x) + relu(x) + sign(x) + step(x)", {"x": math.nan}),
    ("max(x, y) + min(x, y)", {"x": 1.0, "y": 1.0}),
    ("max(x, y) * min(y, x)", {"x": math.nan, "y": 1.0}),
    ("sigmoid(x) + softplus(x)", {"x": -800.0}), ("sigmoid(x) * softplus(x)", {"x": 800.0}),
    ("log2(x) + log10(x)", {"x": 0.0}), ("x - x", {"x": math.inf}), ("x * 0", {"x": math.inf}),
    ("x^0", {"x": 0.0}), ("x^1 + x^2 + x^3 + x^0.5 + x^-1", {"x": 2.0}),
    ("x", {"x": 3.0}), ("pi + x", {"pi": 1.0, "x": 2.0}),
])
def test_nonfinite_and_special_cases(source: str, point: dict[str, float]) -> None:
    check_scalar(source, point)


_TEMPLATE_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
                   ast.USub, ast.Call, ast.Name, ast.Load, ast.Constant)
SAMPLES = [0.0, -0.0, 0.5, -1.5, 3.0, 1e-300, -1e300, 1e308, math.inf, -math.inf, math.nan]


def test_every_op_is_one_complete_entry() -> None:
    """Every engine reads every op from its one entry: the templates are small expressions
    (arithmetic and calls of kernel names only, no Python conditionals that numpy cannot run),
    each name they call exists in both flavours, and the data engines specialise on agrees
    with the op's own value."""
    from adcli.ops import FLOAT_NAMES, NUMPY_NAMES

    assert set(FLOAT_NAMES) == set(NUMPY_NAMES)
    for op in OPS.values():
        assert len(op.partial) == op.arity and callable(op.derivative), op
        assert (op.kink is None) == (op.convention == ""), op
        for template in (op.value, *op.partial):
            tree = ast.parse(template.format("a", "b", o="o"), mode="eval")
            for node in ast.walk(tree):
                assert isinstance(node, _TEMPLATE_NODES), (op, template, node)
                if isinstance(node, ast.Call):
                    assert node.func.id in FLOAT_NAMES, (op, template)
        rng = np.random.default_rng(0)
        points = [tuple(map(float, p)) for p in rng.choice(SAMPLES, size=(40, op.arity))]
        for args in points:
            with np.errstate(all="ignore"):
                want = float(op.fn(*map(np.float64, args)))
            try:
                got = op.kernel[0](*args)
            except (ArithmeticError, ValueError):
                continue  # the float kernel hands over to numpy here
            assert same(got, want) and math.copysign(1, got) == math.copysign(1, want) or (
                math.isnan(got) and math.isnan(want)), (op, args, got, want)
            if op.unit_partials is not None:  # engines write a + b, a - b, -a
                terms = [u * a for u, a in zip(op.unit_partials, args)]
                with np.errstate(all="ignore"):
                    assert same(want, float(np.sum(np.array(terms)))), (op, args)
            if op.bilinear:  # engines write a * b
                assert same(want, args[0] * args[1]), (op, args)
    assert OPS["pow"].const_exponent and OPS["mul"].bilinear
    assert OPS["add"].unit_partials == (1.0, 1.0) and OPS["neg"].unit_partials == (-1.0,)


def test_policy_interpreter_then_compile(monkeypatch) -> None:
    monkeypatch.setattr(policy, "COMPILE_AT_ONCE", 2)
    monkeypatch.setattr(policy, "COMPILE_AFTER_CALLS", 2)
    f = adcli.parse("sin(x)*y + x^2 + exp(y)/x")
    point = {"x": 0.7, "y": -1.3}
    want = plain(f.tape(point), point)
    for _ in range(4):
        value, gradient = f.grad(point)
        assert same(value, want[0])
        assert all(same(a, b) for a, b in zip(gradient.values(), want[1]))
    assert f.compiled(point).source  # compiled after a few calls


# --------------------------------------------------------------------------- data columns


def columns_case(example, rows: int, seed: int):
    """A drawn program over data: every other input a column of ``rows`` values near the
    drawn point; with the interpreter's values and gradients as the reference."""
    f = adcli.parse(example.source)
    tape = f.tape(example.point)
    rng = np.random.default_rng(seed)
    names = list(tape.inputs)
    point = {n: (example.point[n] + 0.01 * rng.standard_normal(rows) if k % 2 == 0
                 else example.point[n]) for k, n in enumerate(names)}
    want_value, want_grad, _, _ = sweeps.value_and_grad(tape, point)
    return f, names, point, want_value, want_grad


@FAST
@given(programs(max_steps=6), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_columns_match_interpreter(example, rows: int, seed: int) -> None:
    f, names, point, want_value, want_grad = columns_case(example, rows, seed)
    value, grads = f.compiled(point).sweep_columns([point[n] for n in names])
    np.testing.assert_allclose(value, np.broadcast_to(want_value, np.shape(value)),
                               rtol=1e-12, atol=1e-300)
    for n, g in zip(names, grads):
        assert np.shape(g) == np.shape(point[n])
        np.testing.assert_allclose(g, want_grad[n], rtol=1e-10, atol=1e-12)


@FAST
@given(programs(max_steps=6), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_summed_columns_match_interpreter(example, rows: int, seed: int) -> None:
    """The summed path (``sum_value``: what fits use), in blocks of 64 rows so that a few
    hundred rows make several: the sum of the interpreter's per-row values, and its
    gradients, to rounding."""
    f, names, point, want_value, want_grad = columns_case(example, rows, seed)
    saved = columns.BLOCK_ROWS, columns.BLOCK_VALUES
    columns.BLOCK_ROWS, columns.BLOCK_VALUES = 64, 10**9
    params = [n for n in names if np.ndim(point[n]) == 0]  # what a fit asks for
    try:
        total, grads = f.compiled(point).sweep_columns([point[n] for n in names],
                                                       sum_value=True)
        _, fit_grads = f.compiled(point).sweep_columns([point[n] for n in names],
                                                       sum_value=True, wrt=params)
    finally:
        columns.BLOCK_ROWS, columns.BLOCK_VALUES = saved
    want_total = np.sum(np.broadcast_to(want_value, (rows,)))
    assert same(total, want_total) or math.isclose(total, want_total, rel_tol=1e-10,
                                                   abs_tol=1e-9 * max(1.0, abs(want_total)))
    for n, g, fit_g in zip(names, grads, fit_grads):
        np.testing.assert_allclose(g, want_grad[n], rtol=1e-9, atol=1e-10, equal_nan=True)
        if n in params:
            np.testing.assert_allclose(fit_g, want_grad[n], rtol=1e-9, atol=1e-10,
                                       equal_nan=True)
        else:
            assert fit_g is None


@pytest.mark.parametrize("threads", [1, 3])
def test_blocked_threaded_columns(monkeypatch, threads: int) -> None:
    monkeypatch.setattr(columns, "BLOCK_ROWS", 64)
    monkeypatch.setattr(columns, "THREADS", threads)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000)
    y = 3 * x + rng.standard_normal(1000)
    x[5] = np.nan  # a non-finite row stays in its row
    f = adcli.parse("(w0 + w1*x - y)^2 + log(x)")
    point = {"w0": 0.5, "w1": 2.0, "x": x, "y": y}
    tape = f.tape(point)
    want_value, want_grad, _, _ = sweeps.value_and_grad(tape, point)
    value, grads = f.compiled(point).sweep_columns([point[n] for n in tape.inputs])
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for n, g in zip(tape.inputs, grads):
        np.testing.assert_allclose(g, want_grad[n], rtol=1e-9, equal_nan=True)
    finite = {"w0": 0.5, "w1": 2.0, "x": np.abs(np.nan_to_num(x)) + 1, "y": y}
    total, gradient = f.grad_sum(finite)
    ref_value, ref_grad, _, _ = sweeps.value_and_grad(tape, finite)  # the interpreter
    assert same(total, np.sum(ref_value)) or math.isclose(total, np.sum(ref_value),
                                                          rel_tol=1e-11)
    assert math.isclose(gradient["w1"], ref_grad["w1"], rel_tol=1e-11)
    np.testing.assert_allclose(gradient["x"], ref_grad["x"], rtol=1e-12)


@pytest.mark.parametrize("helper_runs", [True, False])
def test_threaded_blocks_give_the_one_thread_bits(monkeypatch, helper_runs: bool) -> None:
    """Blocks are claimed by whichever thread comes first, and summed in block order: the
    same bits with 1, 2 or 4 threads, and with a helper thread that never gets to run (the
    caller then takes every block itself instead of waiting)."""
    from adcli.fast import helper

    if not helper_runs:  # tasks offered to nobody: only the caller can claim them
        monkeypatch.setattr(helper, "submit", lambda fn, *a, helpers=1: helper.Task(fn, a))
    monkeypatch.setattr(columns, "BLOCK_ROWS", 64)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(3001)
    point = {"w0": 0.5, "w1": 2.0, "x": x, "y": 3 * x + rng.standard_normal(3001)}
    f = adcli.parse("(w0 + w1*x - y)^2 + sin(w1*x)")
    results = []
    for threads in (1, 2, 4):
        monkeypatch.setattr(columns, "THREADS", threads)
        total = f.grad_sum(point)
        value, grad = f.grad(point)
        results.append([total.value, *total.gradient.values(), value, *grad.values()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(np.asarray(a).view(np.int64), np.asarray(b).view(np.int64))
    want_value, want_grad, _, _ = sweeps.value_and_grad(f.tape(point), point)
    total, (value, grad) = f.grad_sum(point), f.grad(point)
    np.testing.assert_allclose(value, want_value, rtol=1e-15)
    assert math.isclose(total.gradient["w0"], np.sum(want_grad["w0"]), rel_tol=1e-11)


def test_column_sums_do_not_depend_on_openblas_threads() -> None:
    """Row dot products are taken in pieces small enough for OpenBLAS to keep to one thread:
    its threaded dot split the sum by its thread count, so the last bits of a fit's loss
    depended on the machine's cores and OPENBLAS_NUM_THREADS."""
    import subprocess

    code = ("import numpy as np, adcli\n"
            "rng = np.random.default_rng(4)\n"
            "x = rng.standard_normal(300_000); y = 2 * x + rng.standard_normal(300_000)\n"
            "r = adcli.parse('(w0 + w1*x - y)^2').grad_sum({'w0': 0.5, 'w1': 1.5, 'x': x,"
            " 'y': y}, wrt=['w0', 'w1'])\n"
            "print(float(r.value).hex(), float(r.gradient['w1']).hex())\n")
    outs = set()
    for n in ("1", "2", "4"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": n, "ADCLI_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert len(outs) == 1, outs


def test_a_helper_task_hands_its_error_to_the_caller() -> None:
    from adcli.fast import helper

    task = helper.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        task.join()
    assert helper.submit(sum, [1, 2]).join() == 3


def test_grad_sum_reports_missing_values() -> None:
    with pytest.raises(adcli.AdcliError, match="has no value"):
        adcli.parse("a*x").grad_sum({"x": np.ones(3)})


# --------------------------------------------------------------------------- no injection

_SAFE_TOKEN = re.compile(
    r"\s+|[vg]\d+|\d+(\.\d*)?(e[+-]?\d+)?|[-+*/(),:=<>!]=?|def|try|except|return|if|else"
    r"|and|or|_FALLBACK|_slow_value|_slow_grad|value_and_grad|value|\."
    r"|_NOARG|_vector|_is_array|_float|__class__|is|not")


def tokens_outside_allowlist(source: str) -> list[str]:
    allowed = set(SCALAR_NAMES)
    bad, pos = [], 0
    while pos < len(source):
        m = _SAFE_TOKEN.match(source, pos)
        if m and m.end() > pos:
            pos = m.end()
            continue
        word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", source[pos:])
        if word and word.group() in allowed:
            pos += word.end()
            continue
        bad.append(source[pos:pos + 20])
        pos += 1
    return bad


NASTY_NAMES = ["__import__", "os", "exec", "eval", "v0", "g0", "v1", "_slow_grad", "_FALLBACK",
               "sin", "pow", "nan", "inf", "value", "value_and_grad", "return", "lambda",
               "__builtins__", "_", "LN2", "open", "sys", "print", "x" * 200]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_names_never_reach_generated_code(name: str) -> None:
    source = f"{name} * 2 + sin({name})^2 + {name}/3"
    f = adcli.parse(source)
    point = {name: 0.5}
    fast = f.compiled(point)
    fast.compiled()
    assert tokens_outside_allowlist(fast.source) == []
    generated = {"def", "try", "except", "return", "if", "else", "and", "or", "value",
                 "value_and_grad", "_FALLBACK", "_slow_value", "_slow_grad", *SCALAR_NAMES}
    if name not in generated and not re.fullmatch(r"[vg]\d+", name):
        assert name not in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", fast.source)
    check_scalar(source, point)


@pytest.mark.parametrize("number", ["1e308*10", "1e-320", "123456789012345678901234567890",
                                    "0.1", "9^9^9^9", "1e309", "0*1e309", ".5e-3"])
def test_numbers_are_written_as_float_literals(number: str) -> None:
    source = f"x * ({number}) + x"
    f = adcli.parse(source)
    fast = f.compiled({"x": 1.0})
    fast.compiled()
    assert tokens_outside_allowlist(fast.source) == []
    check_scalar(source, {"x": 1.5})


def test_literal_is_safe() -> None:
    for v in [0.0, -0.0, 1e-320, -1e308, math.inf, -math.inf, math.nan, 2.5]:
        text = literal(v)
        assert re.fullmatch(r"\(-?[0-9.e+-]+\)|nan|inf|\(-inf\)", text), text


# --------------------------------------------------------------------------- fast parser


def tree(statements) -> list:
    out = []
    for st_ in statements:
        out.append(("stmt", st_.name, st_.line, st_.column))
        for n in iter_postorder(st_.expr):
            out.append((n.op, n.value if n.op == "const" else None, n.name, n.line, n.column,
                        len(n.args)))
    return out


@FAST
@given(programs(defined=False))
def test_fast_parser_builds_larks_tree(example) -> None:
    assert tree(_fast_parse(example.source)) == tree(_lark_parse(example.source))


@pytest.mark.parametrize("source", [
    "x", "-x^2", "2^3^2", "x^-y^2", "x**2**3", "+-+-x", "((((x))))", "\n\n x # c\n",
    "a = x^2; b = x*y\nc = y^2; d = 3*a; e = 5*c; d + b + e", "a=1;;;\n\r\nb=2\n a+b",
    "f = sin(x)\r\n f*2", "1.e5*x + 1e-3 + .5 + 2.5E+4", "max(x, pow(y, 2)) - min(x,y)/2/3",
])
def test_fast_parser_cases(source: str) -> None:
    assert tree(_fast_parse(source)) == tree(_lark_parse(source))


def tape_facts(tape) -> tuple:
    """Everything a tape is, with constants as bit patterns (so -0.0 and nan compare)."""
    return ([tape.op_name(i) for i in range(len(tape))], tape.args,
            [struct.pack("<d", c) for c in tape.consts], tape.active, list(tape.inputs.items()),
            sorted(tape.labels.items()), tape.output, tape.positions, tape.folded_from)


def assert_same_tapes(source: str) -> None:
    """The tape lowered from the fast parser's node order (stack-based loop) equals the one
    lowered from Lark's tree by the general walk: same slots, constants, sharing, labels."""
    fast = parse_program(source, max_bytes=None)
    lark = Program(_lark_parse(source), source)
    assert lark.postorder is None
    for bound in ((), ("pi",), ("pi", "e")):
        assert tape_facts(lower(fast, bound)) == tape_facts(lower(lark, bound))


@FAST
@given(programs(defined=False))
def test_fast_path_lowers_to_the_same_tape_as_lark(example) -> None:
    assert_same_tapes(example.source)
    last = re.split(r"[;\n]", example.source)[-1]  # one bare expression: the stack loop
    assert parse_program(last).postorder is not None
    assert_same_tapes(last)


@pytest.mark.parametrize("source", [
    " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(300)), "x", "pi", "2", "-(2*3) + x",
    "0/0 * x + (1e308*10) * y", "x*pi + e^x - sin(pi)*y", "max(x, pow(y, 2)) - min(x,y)/2/3",
    "sin(x)*sin(x) + sin(x)*2 + 2*sin(x) + x + x", "-0.0*x + 0.0*x + -x + +x", "relu(-(x))",
    "(" * 5000 + "x" + ")" * 5000, "-" * 5000 + "x", "x + 1 # c\n", "\n\n x^-y^2 \n",
])
def test_fast_path_tape_cases(source: str) -> None:
    assert_same_tapes(source)


def test_a_stale_parse_order_is_not_used() -> None:
    """A program whose statements were replaced after parsing is walked, not read from the
    parser's record."""
    program = parse_program("x + y")
    other = parse_program("y * x + 2")
    program.statements = other.statements
    assert tape_facts(lower(program)) == tape_facts(lower(Program(other.statements)))
    program.statements = [Statement(None, other.output), *other.statements]
    assert tape_facts(lower(program)) == tape_facts(lower(Program(program.statements)))


@pytest.mark.parametrize("source", ["x +", "sin()", "foo(x)", "x $ y", "sin(x, y)", "(x", "x)",
                                    "= 3", "1e", "x y", "x = ", "pow(x)"])
def test_errors_still_come_from_lark(source: str) -> None:
    with pytest.raises(REFUSED):  # the fast driver refuses it, in the documented way
        _fast_parse(source)
    with pytest.raises(adcli.AdcliError) as fast_err:
        parse_program(source)
    with pytest.raises(adcli.AdcliError) as lark_err:
        _lark_parse(source)
    assert fast_err.value.render() == lark_err.value.render()


def test_fast_parser_sets_every_slot_of_its_nodes() -> None:
    """The driver makes its commonest nodes slot by slot, bypassing Node's __init__: every slot
    must still be set, to what __init__ would give."""
    from adcli.core.syntax import Node

    program = parse_program("a = 2.5 * x - y ^ 3 / sin(z)\n-a + max(a, 1) + -x")
    nodes = [n for st_ in program.statements for n in iter_postorder(st_.expr)]
    assert {n.op for n in nodes} >= {"const", "var", "mul", "pow", "div", "sub", "sin", "neg"}
    for node in nodes:
        made = Node(node.op, node.args, node.value, node.name, node.line, node.column)
        for slot in Node.__slots__:
            assert getattr(node, slot) == getattr(made, slot), (node, slot)
        assert type(node.value) is float and type(node.line) is int


@pytest.mark.parametrize("source", [
    "x" + " " * 1_000_000, " \t" * 500_000 + "x", "x +" + " " * 1_000_000 + "y",
    "x" + " " * 1_000_000 + "$", "x" + " \r\n" * 30_000, "x" + "\f" * 1_000_000 + "\x0b",
])
def test_long_blank_runs_scan_in_linear_time(source: str) -> None:
    """Blanks are matched in front of each token, and trailing ones cut off before the scan,
    so a long run never makes the scanner backtrack over it again at every position (that
    would be 10^12 steps here). Accepted or refused exactly as Lark would."""
    try:
        fast = tree(_fast_parse(source))
    except REFUSED:
        fast = None
    if fast is not None:
        assert fast == tree(_lark_parse(source))
    else:
        with pytest.raises(adcli.AdcliError):
            parse_program(source, max_bytes=None)


#: Pieces of text for random inputs: every kind of token, the look-alikes ("1e", "e+5",
#: "**" and "*", "." alone), comments, blanks of every kind and characters no token takes.
_PIECES = ("x", "y1", "e", "pi", "sin", "max", "2", "1.", ".5", "1e", "1e+5", "2E-3", ".", "e+5",
           "+", "-", "*", "**", "^", "/", "(", ")", ",", ";", "=", " ", "  ", "\t", "\f", "\r",
           "\n", "\r\n", "# c", "#(", "$", "é", "\x0b")


def _random_texts(count: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 14)))
            for _ in range(count)]


@pytest.mark.parametrize("python_scan", [True, False])
def test_fast_parser_accepts_nothing_lark_refuses(python_scan: bool, monkeypatch) -> None:
    """On random token soup, whatever the fast driver accepts Lark accepts, as the same tree;
    whatever it refuses it refuses in the documented way (the parser then asks Lark). With
    either scanner: the plain-Python one of a fresh process, or the regular expression."""
    monkeypatch.setattr(lalr, "_python_scan", lambda end: python_scan)
    accepted = 0
    for text in _random_texts(4000, 15):
        try:
            fast = tree(_fast_parse(text))
        except REFUSED:
            continue
        assert fast == tree(_lark_parse(text)), repr(text)
        accepted += 1
    assert accepted > 200


def test_the_python_scanner_gives_the_words_of_the_regular_expression() -> None:
    """A fresh process scans a small text in plain Python (importing ``re`` costs more): the
    same words as the regular expression, on random texts over every character class the
    tokens care about (blanks, name and number characters, "**", "..", exponents, comments,
    new lines with and without CR, characters no token takes)."""
    import random

    rng = random.Random(25)
    pieces = [*"ab_Ze9 0.51eE+-*#\n\r\t\f\v^()[],;=/\u00e9", "**", "..", "1e+5", "x1", "#c\n",
              "\r\n", "  ", ".5", "1.", "2e", "3e-", "1..2", "\U0001d465"]
    from adcli.language import scan

    word_re = scan.word_re()
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
             for _ in range(20000)] + _random_texts(2000, 25)
    for text in texts:
        end = len(text.rstrip(" \t\f\r"))
        assert scan._scan(text, end) == word_re.findall(text, 0, end), repr(text)
    assert scan._python_scan(scan.PYTHON_SCAN_MAX + 1) is False  # long texts: the regex


@pytest.mark.parametrize("window", [1, 3, 7, 64])
def test_scanning_in_windows_gives_the_tokens_of_the_whole(window: int, monkeypatch) -> None:
    """The scanner reads the text in windows cut only where a token ends: the words of the
    windows are the words of the whole text, and the trees are the same, at any window size."""
    texts = _random_texts(1500, window) + [
        "x + y*2 # a comment (with, cuts; = / ^)\n z ^ 1e+5 - (a/b)", "xy+1e-5*yz" * 20,
        "a = 1 # (\r\nb = 2 #\n a*b", " \t " + "(x)" * 30 + "  \f ", "x;" * 40]
    word_re = lalr.word_re()
    assert word_re.groups == 0  # findall gives whole words, not groups
    monkeypatch.setattr(lalr, "_python_scan", lambda end: False)  # the windows are the regex's
    for text in texts:
        end = len(text.rstrip(" \t\f\r"))
        whole = word_re.findall(text, 0, end)
        assert "".join(whole) == text[:end]  # contiguous: every character in one word
        monkeypatch.setattr(lalr, "_WINDOW", window)
        cuts = list(lalr._windows(text, end))
        assert [w for a, b in cuts for w in word_re.findall(text, a, b)] == whole, text
        assert all(b > a for a, b in cuts) and [b for _, b in cuts][-1:] == ([end] if end else [])
        try:
            small = tree(_fast_parse(text))
        except REFUSED:
            small = None
        monkeypatch.setattr(lalr, "_WINDOW", 1 << 16)
        try:
            big = tree(_fast_parse(text))
        except REFUSED:
            big = None
        assert small == big, repr(text)


def test_a_bug_in_the_fast_driver_is_not_taken_for_a_syntax_error(monkeypatch) -> None:
    """Only the driver's documented refusals hand the text to the explainer and Lark; any other
    exception is a bug and must surface, not be papered over by a silent fallback."""
    import adcli.language.lalr

    def broken(text, tables, order=None):
        raise TypeError("a bug")

    monkeypatch.setattr(adcli.language.lalr, "_fast_parse", broken)
    with pytest.raises(TypeError, match="a bug"):
        parse_program("x + 1")

    def refusing(text, tables, order=None):
        raise KeyError("RPAR")

    monkeypatch.setattr(adcli.language.lalr, "_fast_parse", refusing)
    assert tree(parse_program("x + 1").statements) == tree(_lark_parse("x + 1"))


# --------------------------------------------------------------------------- levelled sweeps


def check_levelled(source: str, point: dict[str, float], rel: float = 1e-12) -> None:
    """Level by level in numpy: the interpreter's numbers up to rounding (array kernels and
    the order of adjoint sums may differ in the last bit)."""
    f = adcli.parse(source, max_bytes=None)
    tape = f.tape(point)
    plan = Levelled(tape)
    xs = np.array([point[n] for n in tape.inputs])
    want_value, want_grad = plain(tape, point)
    value, grad = plan.value_and_grad(xs)
    assert same(plan.value(xs), want_value) or math.isclose(plan.value(xs), want_value,
                                                           rel_tol=rel)
    assert same(value, want_value) or math.isclose(value, want_value, rel_tol=rel)
    for name, g, w in zip(tape.inputs, grad, want_grad):
        assert same(g, w) or math.isclose(g, w, rel_tol=rel, abs_tol=1e-12), (name, g, w)


@FAST
@given(programs(defined=True))
def test_levelled_matches_interpreter(example) -> None:
    check_levelled(example.source, example.point, rel=1e-9)


@pytest.mark.parametrize("source", [
    " + ".join(f"(x{i} - {i / 7!r})^2*sin(x{i})" for i in range(30))
    + " + " + " + ".join(f"x{i}*x{i + 1}" for i in range(29)),
    " - ".join(f"x{i % 5}*{i}" for i in range(40)),  # a chain of subtractions, repeated terms
    "y + " + " + ".join(["x"] * 50),  # every link adds the same slot
    "a = " + " + ".join(f"x{i}^3" for i in range(20)) + "; a*a + a",  # a chain used twice
    " + ".join(f"max(x{i}, x{i + 1}) - relu(x{i}) / (1 + x{i}^2)" for i in range(25)),
    "1 + 2 + " + " + ".join(f"exp(x{i % 4}) - 3" for i in range(30)),  # constants in a chain
    # both arguments of a group are the same slots (first adjoint written, then added), and
    # each input is reached from several groups and levels
    " + ".join(f"x{i}*x{i} + sin(x{i})*exp(x{(i + 3) % 20}) - x{i}/(2 + x{i}^2)"
               for i in range(20)),
])
def test_levelled_cases(source: str) -> None:
    rng = np.random.default_rng(len(source))
    names = adcli.parse(source, max_bytes=None).variables
    point = {n: float(v) for n, v in zip(names, rng.uniform(-2, 2, len(names)))}
    check_levelled(source, point)
    point = {n: (math.inf if k == 0 else 0.0) for k, n in enumerate(names)}
    check_levelled(source, point)


def test_levelled_is_chosen_for_big_wide_tapes() -> None:
    n = 600
    text = " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(n))
    f = adcli.parse(text)
    fast = f.compiled()
    assert fast.levelled() is not None and fast.levelled().n_groups <= 6
    point = {f"x{i}": 0.01 * i for i in range(n + 1)}
    want_value, want_grad = plain(f.tape(), point)
    value, grad = fast.value_and_grad_vector([point[k] for k in fast.names])
    assert math.isclose(value, want_value, rel_tol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    assert adcli.parse("sin(x)*y").compiled().levelled() is None  # small: compiled code


def test_function_grad_over_columns_runs_the_blocked_sweeps_with_interpreter_results() -> None:
    """``f.grad`` with columns of data: per-row values and column gradients, summed scalar
    gradients, as the interpreter defines them (the sums in another order)."""
    rows = 3 * columns.BLOCK_ROWS + 5
    rng = np.random.default_rng(11)
    point = {"x": rng.normal(size=rows), "y": rng.normal(size=rows), "w": 0.3, "b": -1.2}
    f = adcli.parse("log(1 + exp(-(w*x + b)*y)) + 0.5*w^2")
    value, grad = f.grad(point)
    want_value, want_grad, _, _ = sweeps.value_and_grad(f.tape(point), point)
    np.testing.assert_allclose(value, want_value, rtol=1e-15)
    for name in ("x", "y"):
        assert np.shape(grad[name]) == (rows,)
        np.testing.assert_allclose(grad[name], want_grad[name], rtol=1e-15)
    for name in ("w", "b"):
        assert np.ndim(grad[name]) == 0
        assert math.isclose(grad[name], want_grad[name], rel_tol=1e-11)
    _, only = f.grad(point, wrt=["w"])
    assert list(only) == ["w"] and math.isclose(only["w"], want_grad["w"], rel_tol=1e-11)


def test_column_gradients_never_alias_the_caller_arrays() -> None:
    x, y = np.arange(5.0), np.linspace(1.0, 2.0, 5)
    _, grad = adcli.parse("x*y").grad({"x": x, "y": y})
    assert np.array_equal(grad["x"], y) and np.array_equal(grad["y"], x)
    grad["x"][0] = 99.0
    assert y[0] == 1.0


def test_levelled_source_holds_step_numbers_only() -> None:
    """The level-by-level code is generated too: from step numbers, slot numbers and the
    fixed helper names, never from the program's text (its names are nasty on purpose)."""
    names = [n for n in NASTY_NAMES if n not in ("pow", "sin", "nan", "inf")]
    terms = [f"sin({a})*{b}^2 + {a}/(1 + {b}^2) - 1e-3" for a, b in zip(names, names[1:])]
    f = adcli.parse(" + ".join(terms * 40), max_bytes=None)
    plan = Levelled(f.tape())
    xs = np.linspace(0.5, 1.5, len(f.tape().inputs))
    plan.value_and_grad(xs)
    identifiers = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", plan.source))
    fixed = {"def", "value", "value_and_grad", "x", "with", "errstate", "all", "ignore", "v",
             "CONSTS", "INPUTS", "float", "return", "add_reduce", "zeros", "adj", "g", "c", "p",
             "multiply", "negative", "power", "add_at", "broadcast_to", "shape", "out",
             "copy", "empty", "CVALS", "concatenate", "ZERO"}
    step_names = re.compile(r"(S|F|P|M|SG|a|A|c)\d+(_\d+)?$|R\d+_\d+$")
    assert {w for w in identifiers if w not in fixed and not step_names.match(w)} == set()
    want_value, want_grad = plain(f.tape(), dict(zip(f.tape().inputs, xs)))
    value, grad = plan.value_and_grad(xs)
    assert math.isclose(value, want_value, rel_tol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)


def test_a_long_chain_of_squares_over_data_matches_the_interpreter() -> None:
    """The 2s of 1,100 nested squares multiply to inf if kept aside; they are applied once
    they grow large, so underflow and overflow happen where the interpreter's do."""
    text = "w*x"
    for _ in range(1100):
        text = f"({text})^2"
    f = adcli.parse(text)
    point = {"x": np.array([0.999999, 1.0, 1.0000001]), "w": 1.0}
    _, grad = f.grad(point)
    _, want, _, _ = sweeps.value_and_grad(f.tape(point), point)
    np.testing.assert_array_equal(grad["x"], want["x"])  # 0, inf, inf: no nan
    assert np.array_equal(f.grad_sum(point, wrt=["w"]).gradient["w"], want["w"],
                          equal_nan=True)


def test_erf_kernels_against_the_c_library() -> None:
    """erf and erfc come from scipy.special (see the README's conventions table): measured
    here against the C library's (math.erf, math.erfc, within an ulp or two of the true
    values) on 10^6 points including both tails. erf agrees to 3 ulp; erfc to 1e-12
    relative while its value is a normal float (in the far tail scipy is up to ~500 ulp
    off, and it flushes values below about 1e-310 to 0)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-6, 6, 600_000), rng.uniform(-27, 27, 200_000),
                        np.geomspace(1e-300, 6, 100_000), -np.geomspace(1e-300, 6, 100_000)])
    got = OPS["erf"].fn(x)
    want = np.frompyfunc(math.erf, 1, 1)(x).astype(float)
    assert np.max(np.abs(got - want) / np.spacing(np.abs(want))) <= 3
    got = OPS["erfc"].fn(x)
    want = np.frompyfunc(math.erfc, 1, 1)(x).astype(float)
    normal = want > 2.3e-308
    assert np.max(np.abs(got - want)[normal] / want[normal]) <= 1e-12
    assert np.all(np.abs(got - want)[~normal] <= 1e-300)
    # the float kernel is the same kernel: the same bits
    assert all(OPS["erf"].kernel[0](float(v)) == float(OPS["erf"].fn(v)) for v in x[:1000])


def test_scipy_is_loaded_only_by_programs_that_use_it() -> None:
    import subprocess

    code = ("import sys, adcli\n"
            "adcli.parse('sin(x)*x + atan2(x, 2) + cbrt(x)').grad({'x': 0.5})\n"
            "print('scipy' in sys.modules)\n"
            "adcli.parse('erf(x)').grad({'x': 0.5})\n"
            "print('scipy' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["False", "True"], proc.stderr


def test_levelled_sum_chain_reads_views_and_fills_only_constants() -> None:
    """A sum whose terms lie in a few contiguous runs is summed from views of them (one
    copy, no gather), and a sweep starts from an empty array with only the constants' slots
    filled; the numbers stay the interpreter's."""
    n = 300
    terms = [f"(x{i} - {i / n!r})^2*sin(x{i})" for i in range(n)]
    terms += [f"x{i}*x{i + 1}" for i in range(n - 1)]
    f = adcli.parse(" + ".join(terms) + " + 2.5", max_bytes=None)
    tape = f.tape()
    plan = Levelled(tape)
    xs = np.linspace(-1.0, 1.0, len(tape.inputs))
    value, grad = plan.value_and_grad(xs)
    assert "concatenate((v[R" in plan.source and "(v[M" not in plan.source
    assert "CONSTS.copy()" not in plan.source and "= CVALS" in plan.source
    want_value, want_grad = plain(tape, dict(zip(tape.inputs, xs)))
    assert math.isclose(value, want_value, rel_tol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    assert plan.value(xs) == value


@pytest.mark.parametrize("helper_runs", [True, False])
def test_levelled_partials_on_a_helper_thread_give_the_same_bits(monkeypatch,
                                                                  helper_runs: bool) -> None:
    """Big steps' partials (cos for sin, ...) may run on a helper thread during the forward
    sweep: the numbers are those of one thread, bit for bit, also when the helper never gets
    to run (the sweep then computes them itself), and the interpreter's up to rounding. The
    sum's terms are laid out as one run: summed from one view, no concatenate."""
    from adcli.fast import helper
    from adcli.fast import levelled as lv

    if not helper_runs:
        monkeypatch.setattr(helper, "submit", lambda fn, *a, helpers=1: helper.Task(fn, a))
    monkeypatch.setattr(lv, "THREAD_MIN", 64)
    n = 300
    terms = [f"(x{i} - {i / n!r})^2*sin(x{i}) + exp(-x{i})/(1 + x{i}^2)" for i in range(n)]
    terms += [f"x{i}*x{i + 1}" for i in range(n - 1)]
    f = adcli.parse(" + ".join(terms), max_bytes=None)
    tape = f.tape()
    xs = np.linspace(-1.5, 1.5, len(tape.inputs))
    xs[7] = np.inf  # nan and inf partials: no warning from either thread
    monkeypatch.setattr(columns, "THREADS", 1)
    plan = Levelled(tape)
    want = plan.value_and_grad(xs)
    monkeypatch.setattr(columns, "THREADS", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(20):
            got = plan.value_and_grad(xs)
            assert np.array_equal(np.array([got[0]]), np.array([want[0]]), equal_nan=True)
            assert np.array_equal(got[1].view(np.int64), want[1].view(np.int64))
    assert plan.threaded_source.count("submit(") >= 3 and "submit(" not in plan.source
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", plan.threaded_source))
    words -= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", plan.source))  # checked elsewhere
    assert {w for w in words if not re.fullmatch(r"T\d+", w)} <= {"submit", "join", "None"}
    assert "concatenate" not in plan.source
    xs[7] = 0.25
    want_value, want_grad = plain(tape, dict(zip(tape.inputs, xs)))
    value, grad = plan.value_and_grad(xs)
    assert math.isclose(value, want_value, rel_tol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("source", "one_number"), [
    (" + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(30)), True),  # the seed: no multiply
    ("-(" + " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(30)) + ")", True),  # c = -1
    ("a = " + " + ".join(f"exp(x{i})*x{i}" for i in range(30)) + "; a*a*3 + a", True),
    ("2 - " + " - ".join(f"sin(x{i})*x{i + 1}^2" for i in range(30)), True),  # all signs -1
    # the first product has the sign +1, the others -1; the squares both signs: arrays
    (" - ".join(f"sin(x{i})*x{i + 1}^2" for i in range(30)), False),
    ("1 + " + " + ".join(f"(x{i} - 0.5)^2" for i in range(30)) + " - "
     + " - ".join(f"(x{i} + 1)^2" for i in range(30)), False),
])
def test_levelled_sum_terms_take_the_chain_adjoint_as_one_number(source: str,
                                                                  one_number: bool) -> None:
    """A group whose every slot is a term used only by one sum chain gets the chain's adjoint
    (times the link's sign) as one number instead of an adjoint array: no ``g = adj[S..]``
    for it, and where that number is the seed 1.0 the partial is used as it is. The
    adjoint array is not zeroed where every slot is written before it is read. The
    interpreter's numbers, also at 0, -0.0 and inf."""
    f = adcli.parse(source, max_bytes=None)
    tape = f.tape()
    plan = Levelled(tape)
    for xs in (np.linspace(-1.3, 1.7, len(tape.inputs)), np.zeros(len(tape.inputs)),
               np.full(len(tape.inputs), -0.0), np.full(len(tape.inputs), np.inf)):
        want_value, want_grad = plain(tape, dict(zip(tape.inputs, xs)))
        value, grad = plan.value_and_grad(xs)
        assert same(value, want_value) or math.isclose(value, want_value, rel_tol=1e-12)
        for g, w in zip(grad, want_grad):
            assert same(g, w) or math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-15), (g, w)
    groups = [k for k, step in enumerate(s for lv in plan.plan for s in lv)
              if step[0] != "chain" and step[6] is not None]
    if not one_number:
        assert groups == [] and "g = adj[S" in plan.source
    else:
        assert groups and all(f"g = adj[S{k}]" not in plan.source for k in groups)
    assert "zeros(" not in plan.source


def test_a_deep_narrow_tape_gets_its_levelled_plan_in_one_pass() -> None:
    """A 20,000-deep chain has 20,000 levels of one group each: the plan groups levels in one
    pass (scanning every group at every level took minutes here, and `minimize` on such an
    input hit its time limit before a first step). Same numbers as the interpreter."""
    text = "-" * 10_000 + "sin(" + "-" * 10_000 + "x*y)"
    tape = adcli.parse(text).tape()
    plan = Levelled(tape)
    assert plan.size == len([op for op in tape.ops if not isinstance(op, str)])
    point = {"x": 0.7, "y": -1.3}
    value, gradient, _, _ = sweeps.value_and_grad(tape, point)
    got_value, got_grad = plan.value_and_grad(np.array([point[n] for n in tape.inputs]))
    assert got_value == value
    assert list(got_grad) == [gradient[n] for n in tape.inputs]


def test_tapes_past_the_compile_limit_stay_with_the_float_interpreter(monkeypatch) -> None:
    """Generated code for a huge narrow tape would cost gigabytes to compile: past
    COMPILE_MAX_SIZE instructions the many-call engine is the float interpreter (same bits)."""
    monkeypatch.setattr(policy, "COMPILE_MAX_SIZE", 50)
    tape = adcli.parse("-" * 100 + "sin(x*y)").tape()
    compiled = CompiledTape(tape)
    value, grad = compiled.fast()
    assert compiled.source == ""  # nothing generated
    assert (value, grad) == compiled.interpreter()
    want, gradient, _, _ = sweeps.value_and_grad(tape, {"x": 0.5, "y": 2.0})
    assert grad(0.5, 2.0) == (want, tuple(gradient[n] for n in tape.inputs))
