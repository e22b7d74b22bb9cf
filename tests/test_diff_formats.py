"""``adcli diff --format adcli|python|sympy|latex``: exact constants, collected factors, printers.

References: adcli's own evaluation of the adcli text (itself checked against reverse mode and
SymPy in test_symbolic.py), SymPy (test-only) for the sympy text, the Python interpreter with
only the math module for the python text, and a real TeX system for the LaTeX text."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from strategies import programs
from sympy.parsing.sympy_parser import parse_expr

import adcli
from adcli.commands.diff import derivative_texts
from adcli.core.unparse import to_source
from adcli.derive.exact import Coef, evaluate, recognise, to_node

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
FORMATS = ("adcli", "python", "sympy", "latex")


def _texts(text: str, wrt: str, fmt: str) -> str:
    return derivative_texts(adcli.parse(text).tape(), [wrt], sep="\n", fmt=fmt)[0]


def _eval_adcli(text: str, point: dict) -> float:
    return float(adcli.parse(text.replace("\n", "; ")).eval(point))


def _eval_python(text: str, point: dict) -> float:
    """Runs the generated text (never user text) with nothing but the math module and the
    builtins the templates name."""
    env = {"__builtins__": {}, "math": math, "abs": abs, "min": min, "max": max,
           "float": float, **point}
    lines = text.split("\n")
    for line in lines[:-1]:
        exec(compile(line, "<diff --format python>", "exec"), env)  # noqa: S102
    return float(eval(compile(lines[-1], "<diff --format python>", "eval"), env))  # noqa: S307


def _eval_sympy(text: str, point: dict) -> float:
    local: dict = {name: sp.Symbol(name, real=True) for name in point}
    values = {local[name]: sp.Float(v, 30) for name, v in point.items()}
    lines = text.split("\n")
    for line in lines[:-1]:
        name, rhs = line.split(" = ", 1)
        local[name] = parse_expr(rhs, local_dict=dict(local))
    expr = parse_expr(lines[-1], local_dict=dict(local))
    return float(sp.N(expr.subs(values), 20))


# --------------------------------------------------------------------------- the must-shows

@pytest.mark.parametrize("text,expected", [
    ("erf(x/sqrt(2))", "sqrt(2/pi)*exp(-x^2/2)"),
    ("exp(-x^2/2)/sqrt(2*pi)", "-x*exp(-x^2/2)/sqrt(2*pi)"),
    ("x^x", "x^x*(1 + log(x))"),
    ("x*exp(x)", "exp(x)*(1 + x)"),
    ("x^3/6", "x^2/2"),
    ("x/3", "1/3"),
    ("pi*x^2", "2*pi*x"),
    ("erf(x)", "2*exp(-x^2)/sqrt(pi)"),
    ("log2(x)", "1/(x*log(2))"),
    ("2^x", "2^x*log(2)"),
    ("x^2*sin(x)", "x^2*cos(x) + 2*x*sin(x)"),
    ("x*2^0.5*2^0.5", "2"),  # the rules' number arithmetic is exact too
    ("x^(1/3)", "1/(3*x^(2/3))"),
    ("(x/sqrt(3))^4", "4*x^3/9"),
    ("8^(1/3)*x", "2"),
])
def test_exact_constants_and_collected_factors(text, expected):
    got = _texts(text, "x", "adcli")
    assert got == expected
    assert "0.4999" not in got and "0.7978" not in got
    for x in (0.3, 1.7):
        ref = float(adcli.parse(text).grad({"x": x})[1]["x"])
        assert _eval_adcli(got, {"x": x}) == pytest.approx(ref, rel=1e-14)


def test_the_issue_example_in_every_format():
    want = {"adcli": "sqrt(2/pi)*exp(-x^2/2)",
            "python": "math.sqrt(2/math.pi)*math.exp(-x**2/2)",
            "sympy": "sqrt(2/pi)*exp(-x**2/2)",
            "latex": "\\sqrt{\\frac{2}{\\pi}} \\cdot \\exp\\left(\\frac{-x^{2}}{2}\\right)"}
    for fmt, text in want.items():
        assert _texts("erf(x/sqrt(2))", "x", fmt) == text
    # SymPy reads the exact constant: no float in sight, and it is SymPy's own derivative
    x = sp.Symbol("x", real=True)
    ours = parse_expr(want["sympy"], local_dict={"x": x})
    assert not ours.atoms(sp.Float)
    assert sp.simplify(ours - sp.diff(sp.erf(x / sp.sqrt(2)), x)) == 0


def test_a_variable_named_pi_or_e_keeps_the_digits():
    assert _texts("pi*x^2", "x", "adcli") == "2*pi*x"
    got = _texts("pi*x^2 + e", "x", "adcli")
    assert got == "2*pi*x"
    got = _texts("pi = 2; pi*x^2", "x", "adcli")  # pi is the user's let: 2*2
    assert _eval_adcli(got, {"x": 1.5}) == 6.0
    got = _texts("e*x^2", "x", "python")
    assert got == "2*math.e*x"
    assert _eval_python(got, {"x": 1.5}) == 3 * math.e
    # e^2 + e has no exact form here (two different powers of e): one float, as before
    assert _texts("x*e^2 + e*x", "x", "adcli") == "10.107337927389695"


# --------------------------------------------------------------------------- exact numbers

def test_recognised_constants_evaluate_to_the_same_bits():
    rng = random.Random(3)
    values = [math.sqrt(2), 1 / math.sqrt(2), 2 / math.sqrt(math.pi), math.sqrt(2 * math.pi),
              math.pi, math.e, 1 / 3, 0.1, -2.5, 1 / math.pi, math.sqrt(3) / 2]
    values += [rng.randint(1, 50) / rng.randint(1, 50) for _ in range(50)]
    square_free = [n for n in range(2, 100) if all(n % (p * p) for p in range(2, 10))]
    values += [math.sqrt(rng.choice(square_free)) for _ in range(50)]
    for v in values:
        c = recognise(v)
        assert c.exact, v
        assert evaluate(to_node(c)) == v, (v, to_source(to_node(c)))
    # sqrt(54) is exactly 3*sqrt(6), but 3*sqrt(6) rounds differently: kept only if same bits
    for n in range(2, 200):
        c = recognise(math.sqrt(n))
        assert not c.exact or evaluate(to_node(c)) == math.sqrt(n), n
    for v in (0.123456789, math.log(2), 1e-300, 12345.678901):
        c = recognise(v)
        assert c.exact is False or evaluate(to_node(c)) == v


def test_exact_arithmetic_is_exact():
    h = recognise(1 / math.sqrt(2))
    assert (h * h).exact and (h * h).rat == Fraction(1, 2) and (h * h).atoms == ()
    assert (h ** 2) == Coef(Fraction(1, 2))
    two = recognise(math.sqrt(2)) * recognise(math.sqrt(2))
    assert two == Coef(Fraction(2)) and to_source(to_node(two)) == "2"
    c = h * recognise(2 / math.sqrt(math.pi))
    assert to_source(to_node(c), constants=True) == "sqrt(2/pi)"
    assert float(c) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-15)
    assert to_source(to_node(recognise(1 / math.sqrt(2 * math.pi))),
                     constants=True) == "1/sqrt(2*pi)"
    # no exact form: a plain float, as before
    s = recognise(math.sqrt(2)) + Coef.of(1.0)
    assert not s.exact and float(s) == math.sqrt(2) + 1
    big = Coef(Fraction(3, 7)) ** 40
    assert big.exact is False and float(big) == pytest.approx((3 / 7) ** 40)


# --------------------------------------------------------------------------- printers agree

def _check_formats(source: str, point: dict, rel: float = 1e-9) -> int:
    """Every format's text evaluates to adcli's value of the adcli text; returns checks made."""
    tape = adcli.parse(source).tape()
    names = list(tape.inputs)
    point = {n: float(point[n]) for n in names}
    made = 0
    for name in names:
        texts = {fmt: derivative_texts(tape, [name], sep="\n", fmt=fmt)[0] for fmt in FORMATS}
        ref = _eval_adcli(texts["adcli"], point)
        if not math.isfinite(ref) or abs(ref) > 1e12:
            continue
        try:
            got = _eval_python(texts["python"], point)
        except (ValueError, OverflowError, ZeroDivisionError):
            continue  # the math module raises where adcli's IEEE arithmetic gives inf/nan
        tol = dict(rel=rel, abs=rel * max(1.0, abs(ref)))
        assert got == pytest.approx(ref, **tol), texts["python"]
        got = _eval_sympy(texts["sympy"], point)
        assert got == pytest.approx(ref, **tol), texts["sympy"]
        made += 1
    return made


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_steps=8))
def test_python_and_sympy_texts_evaluate_like_adcli(example):
    _check_formats(example.source, example.point, rel=1e-7)


def _readme_diff_commands() -> list[tuple[str, str | None]]:
    section = README.split("<!-- section: diff -->")[1].split("### `adcli hessian")[0]
    found = []
    for m in re.finditer(r'^\$ adcli diff "([^"]+)"(?: --wrt (\S+))?', section, re.M):
        found.append((m.group(1), m.group(2)))
    return found


def test_readme_examples_in_every_format():
    commands = _readme_diff_commands()
    assert len(commands) >= 4
    rng = random.Random(11)
    made = 0
    for source, _wrt in commands:
        names = list(adcli.parse(source).tape().inputs)
        for _ in range(5):
            point = {n: rng.uniform(0.2, 2.0) for n in names}
            made += _check_formats(source, point)
    assert made >= 20


def test_every_op_entry_has_a_template_per_format():
    """One entry per op says how it prints: each format's template reads every argument and
    no slot beyond the op's arity (a literal {2} in LaTeX would be read as a slot)."""
    for op in adcli.ops.OPS.values():
        for fmt in adcli.ops.PRINT_FORMATS:
            slots = {int(k) for k in re.findall(r"\{(\d)\}", adcli.ops.print_template(op, fmt))}
            assert slots == set(range(op.arity)), (op.name, fmt)


def test_every_op_prints_in_every_format():
    """Each op's derivative, and the op itself, through every printer, at points in its
    domain: the python and sympy texts evaluate like adcli's."""
    made = 0
    for op in adcli.ops.OPS.values():
        args = ["x", "y"][:op.arity]
        text = (f"x {op.symbol} y" if op.form == "infix" else "-x" if op.form == "prefix"
                else f"{op.symbol}({', '.join(args)})")
        for point in ({"x": 0.37, "y": 1.7}, {"x": 0.61, "y": -0.45}):
            made += _check_formats(f"({text})*x + {text}^2", point)
    assert made >= 2 * len(adcli.ops.OPS)


# --------------------------------------------------------------------------- size and depth

def _nested(kind: str, n: int) -> str:
    if kind == "sin":
        return "sin(" * n + "x" + ")" * n
    if kind == "mixed":
        text = "x"
        for k in range(n):
            text = f"exp({text})" if k % 3 == 0 else f"x*sin({text})" if k % 3 == 1 \
                else f"erf({text}/sqrt(2))"
        return text
    lets = ["f0 = x"] + [f"f{k} = f{k - 1}^x/sqrt(2) + pi*f{k - 1}" for k in range(1, n + 1)]
    return "; ".join(lets + [f"f{n}"])


@pytest.mark.parametrize("kind", ["sin", "mixed", "powers"])
def test_output_size_is_linear_in_the_depth(kind):
    for fmt in FORMATS:
        sizes = {n: len(_texts(_nested(kind, n), "x", fmt)) for n in (1, 10, 100, 1000)}
        per_level = (sizes[1000] - sizes[100]) / 900
        # linear: the last 900 levels cost about what the first 100 cost per level
        assert per_level <= 1.5 * max(1.0, (sizes[100] - sizes[1]) / 99), (fmt, sizes)
        assert sizes[1000] <= 300 * 1000, (fmt, sizes)


@pytest.mark.parametrize("kind", ["sin", "mixed", "powers"])
def test_nested_compositions_evaluate_like_reverse_mode(kind):
    source = _nested(kind, 30)
    for x in (0.3, 0.9):
        ref = float(adcli.parse(source).grad({"x": x})[1]["x"])
        assert _eval_python(_texts(source, "x", "python"), {"x": x}) == pytest.approx(
            ref, rel=1e-12)
        assert _eval_adcli(_texts(source, "x", "adcli"), {"x": x}) == pytest.approx(
            ref, rel=1e-12)


def test_fifty_thousand_deep_input_prints_as_python_and_latex():
    text = "sin(" * 50_000 + "x" + ")" * 50_000
    tape = adcli.parse(text).tape()
    for fmt in ("python", "latex"):
        out = derivative_texts(tape, ["x"], sep="\n", fmt=fmt)[0]
        assert out.count("\n") >= 1 and len(out) < 120 * 50_000


# --------------------------------------------------------------------------- the command

def test_cli_format_and_json(run):
    r = run("diff", "erf(x/sqrt(2))", "--wrt", "x", "--format", "python")
    assert r.exit_code == 0 and r.stdout.strip() == "math.sqrt(2/math.pi)*math.exp(-x**2/2)"
    r = run("diff", "x*y^2", "--format", "sympy", "--json")
    data = json.loads(r.stdout)
    assert data == {"wrt": ["x", "y"], "derivative": ["y^2", "2*x*y"], "format": "sympy",
                    "text": ["y**2", "2*x*y"]}
    r = run("diff", "x^2", "--wrt", "x", "--format", "latex", "--json")
    assert json.loads(r.stdout) == {"wrt": "x", "derivative": "2*x", "format": "latex",
                                    "text": "2 \\cdot x"}
    r = run("diff", "x^2", "--wrt", "x", "--json")
    assert json.loads(r.stdout) == {"wrt": "x", "derivative": "2*x"}
    bad = run("diff", "x^2", "--format", "fortran")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error:") and "fortran" in bad.stderr
    assert "Traceback" not in bad.output


# --------------------------------------------------------------------------- LaTeX compiles

TEX = shutil.which("pdflatex") or shutil.which("latex")


@pytest.mark.skipif(TEX is None, reason="no TeX system (pdflatex or latex) on PATH; "
                                        ".ci/run installs texlive-latex-base where it can")
def test_latex_output_compiles(tmp_path):
    sources = [s for s, _ in _readme_diff_commands()] + [
        "erf(x/sqrt(2))", "x^x", "sigmoid(x)*w1 + relu(x - 1) + hypot(x, w1) + log2(x)",
        "atan2(y, x) + abs(x) + max(x, y) + min(x, y) + cbrt(x) + log1p(x) + expm1(x)",
        "sign(x)*step(x) + softplus(x) + asin(x) + acos(x) + atan(x) + tanh(x) + erfc(x)",
        "x^-2 + (-2)^x + 1e-300*x + x/(y*z) + log10(x^2 + 1)", "a_1 = x*y; alpha = a_1^2; alpha"]
    body = []
    for source in sources:
        names = list(adcli.parse(source).tape().inputs)
        for name in names:
            for line in _texts(source, name, "latex").split("\n"):
                body.append(f"\\[ {line} \\]")
    doc = ("\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
           + "\n".join(body) + "\n\\end{document}\n")
    (tmp_path / "d.tex").write_text(doc, encoding="utf-8")
    r = subprocess.run([TEX, "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert not re.search(r"^! ", r.stdout, re.M), r.stdout[-3000:]
