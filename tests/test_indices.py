"""Index notation: x[i], W[j,i], sum/prod/max/min/logsumexp over ranges, h[j = 1..n] = e.

Unrolled before lowering into the scalar program a user could have written out, so the
references here are that written-out program (bit for bit), finite differences and numpy."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest

import adcli
from adcli.errors import AdcliError
from adcli.language.elements import MAX_INDEX, element_name, split_element

ROSENBROCK = "sum(i = 1..99, 100*(x[i+1] - x[i]^2)^2 + (1 - x[i])^2)"


def rosenbrock_written_out(n: int = 100) -> str:
    """The same function term by term, as a user would write it without sums."""
    return " + ".join(f"(100*(x[{i + 1}] - x[{i}]^2)^2 + (1 - x[{i}])^2)" for i in range(1, n))


def error_of(text: str) -> AdcliError:
    with pytest.raises(AdcliError) as info:
        adcli.parse(text).tape()
    return info.value


# --------------------------------------------------------------------------- the language


def test_element_names_are_canonical():
    f = adcli.parse("W[ 2 , 1 ] * x[3] + W[1,2]")
    assert f.variables == ["W[2,1]", "x[3]", "W[1,2]"]
    assert element_name("W", (2, 1)) == "W[2,1]"
    assert split_element("W[2,1]") == ("W", (2, 1))
    assert split_element("x") is None


def test_rosenbrock_gradient_equals_written_out_bit_for_bit():
    short, long = adcli.parse(ROSENBROCK), adcli.parse(rosenbrock_written_out())
    assert short.variables == long.variables
    assert sorted(short.variables) == sorted(f"x[{i}]" for i in range(1, 101))
    ts, tl = short.tape(), long.tape()
    assert [ts.op_name(i) for i in range(len(ts))] == [tl.op_name(i) for i in range(len(tl))]
    assert ts.args == tl.args
    rng = random.Random(7)
    for _ in range(5):
        point = {f"x[{i}]": rng.uniform(-2, 2) for i in range(1, 101)}
        vs, gs = short.grad(point)
        vl, gl = long.grad(point)
        assert vs == vl
        assert gs == gl  # exact float equality, element by element


def test_sum_gradient_against_finite_differences():
    f = adcli.parse("n = 4; sum(i = 1..n, sum(j = 1..n-1, sin(i*x[i]) * W[i,j]^2))")
    rng = np.random.default_rng(1)
    point = {v: float(rng.uniform(-1, 1)) for v in f.variables}
    assert len(point) == 4 + 12
    _, grad = f.grad(point)
    for name in point:
        h = 1e-6
        up, down = dict(point), dict(point)
        up[name] += h
        down[name] -= h
        fd = (f.eval(up) - f.eval(down)) / (2 * h)
        assert grad[name] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_prod_max_min_logsumexp_values_and_gradients():
    xs = [0.3, -1.2, 2.5, 0.7]
    point = {f"x[{i}]": v for i, v in enumerate(xs, 1)}
    value, grad = adcli.parse("prod(i = 1..4, x[i])").grad(point)
    assert value == pytest.approx(math.prod(xs))
    assert grad["x[2]"] == pytest.approx(xs[0] * xs[2] * xs[3])
    assert adcli.parse("max(i = 1..4, x[i])").eval(point) == 2.5
    assert adcli.parse("min(i = 1..4, x[i])").eval(point) == -1.2
    value, grad = adcli.parse("logsumexp(i = 1..4, x[i])").grad(point)
    assert value == pytest.approx(math.log(sum(math.exp(v) for v in xs)), rel=1e-15)
    soft = np.exp(xs) / np.exp(xs).sum()
    assert [grad[f"x[{i}]"] for i in range(1, 5)] == pytest.approx(list(soft), rel=1e-14)


def test_logsumexp_is_the_stable_form():
    point = {"x[1]": 1000.0, "x[2]": 1000.0}
    value, grad = adcli.parse("logsumexp(i = 1..2, x[i])").grad(point)
    assert value == pytest.approx(1000 + math.log(2))
    assert grad == pytest.approx({"x[1]": 0.5, "x[2]": 0.5})


def test_index_used_as_a_number_and_let_bounds():
    f = adcli.parse("n = 3\nm = n - 1\nsum(k = 0..m, a[k]*x^k) + sum(i = 1..n, i)")
    assert f.variables == ["a[0]", "x", "a[1]", "a[2]"]
    point = {"a[0]": 1.0, "a[1]": 2.0, "a[2]": 3.0, "x": 2.0}
    assert f.eval(point) == 1 + 2 * 2 + 3 * 4 + 6


def test_empty_sum_and_prod():
    assert adcli.parse("y + sum(i = 1..0, x[i])").eval({"y": 2.0}) == 2.0
    assert adcli.parse("y * prod(i = 3..2, x[i])").eval({"y": 2.0}) == 2.0


def test_vector_binding_labels_its_elements():
    f = adcli.parse("h[j = 1..3] = tanh(b[j] + sum(i = 1..2, W[j,i]*x[i]))\n"
                    "sum(j = 1..3, h[j]^2)")
    tape = f.tape()
    assert {"h[1]", "h[2]", "h[3]"} <= set(tape.labels.values())
    rng = np.random.default_rng(3)
    point = {v: float(rng.normal()) for v in f.variables}
    want = sum(math.tanh(point[f"b[{j}]"] + sum(point[f"W[{j},{i}]"] * point[f"x[{i}]"]
                                                   for i in (1, 2))) ** 2 for j in (1, 2, 3))
    assert f.eval(point) == pytest.approx(want, rel=1e-14)


def test_two_dimensional_vector_binding():
    f = adcli.parse("P[i = 1..2, j = 1..3] = i*10 + j + x\nP[2,3] - P[1,1]")
    assert f.eval({"x": 0.5}) == 23 - 11


def test_nested_sums_deep_without_recursion():
    depth = 3000
    text = "".join(f"sum(i{k} = 1..1, " for k in range(depth)) + "x[i0] * x[i2999]" \
        + ")" * depth
    f = adcli.parse(text)
    assert f.eval({"x[1]": 3.0}) == 9.0


def test_deep_parentheses_inside_an_index():
    text = "x[" + "(" * 20000 + "1" + ")" * 20000 + "]"
    assert adcli.parse(text).variables == ["x[1]"]


def test_large_plain_programs_are_untouched():
    text = "+".join(["x"] * 100_000)
    assert adcli.parse(text).eval({"x": 1.0}) == 100_000.0


# --------------------------------------------------------------------------- hostile input


def test_huge_range_fails_in_milliseconds():
    began = time.perf_counter()
    err = error_of("sum(i = 1..1e9, sin(x[i])*x[i+1]^2)")
    assert time.perf_counter() - began < 0.5
    assert "sum(i = 1..1000000000, ...)" in err.message and "over the limit" in err.message
    assert (err.line, err.column) == (1, 1)


def test_nested_ranges_whose_product_passes_the_limit():
    began = time.perf_counter()
    err = error_of("sum(i = 1..2000, sum(j = 1..2000, x[i]*y[j]))")
    assert time.perf_counter() - began < 0.5
    assert err.message.startswith("sum(i = 1..2000, ...) unrolls to")


def test_deeply_nested_small_ranges_whose_product_passes_the_limit():
    text = "".join(f"sum(i{k} = 1..3, " for k in range(20)) + "x[i1]" + ")" * 20
    began = time.perf_counter()
    err = error_of(text)
    assert time.perf_counter() - began < 5
    assert "unrolls to" in err.message and "over the limit of 1,000,000" in err.message


def test_too_many_indices():
    err = error_of("h[" + ",".join(f"j{k} = 1..1" for k in range(20)) + "] = 1; 2")
    assert "'h' has 20 indices; at most 8 are allowed" in err.message


def test_many_ranges_that_together_pass_the_limit():
    text = "; ".join(f"a{k} = sum(i = 1..300000, x[i])" for k in range(5)) + "; a0"
    err = error_of(text)
    assert "unrolls to more than 1,000,000 nodes" in err.message


def test_vector_binding_over_the_limit():
    err = error_of("h[j = 1..100000, k = 1..100000] = x[j]*x[k]; h[1,1]")
    assert "unrolls to more than" in err.message


@pytest.mark.parametrize("text, message, column", [
    ("sum(i = 1..3, x[i/2])", "the index of x is 0.5, not an integer (at i = 1)", 15),
    ("sum(i = -2..3, x[i])", "the index of x is -2, outside 0..", 16),
    ("x[-1]", "the index of x is -1, outside 0..", 1),
    ("x[0.5] + 1", "the index of x is 0.5, not an integer", 1),
    ("x[1e300]", "the index of x is 1e+300, outside 0..", 1),
    ("x[i]", "'i' is neither the index of an enclosing range nor a let-bound constant", 3),
    ("sum(i = 1..3, x[i]) + i", "the index 'i' is used outside its range", 23),
    ("sum(i = 1..3, x[i]) + x[i]", "the index 'i' is used outside its range", 25),
    ("sum(i = 1..n, x[i])", "'n' is a parameter (an input), not a constant", 12),
    ("sum(i = 1..2.5, x[i])", "the upper bound of range 'i' is 2.5, not an integer", 5),
    ("sum(i = 1..3, sum(j = 1..i, x[j]))", "'i' is an index", 26),
    ("sum(x = 1..3, x[x])", "the index 'x' shadows the indexed variable 'x'", 5),
    ("a = 2; sum(a = 1..3, x[a])", "the index 'a' shadows the let binding 'a'", 12),
    ("sum(i = 1..3, sum(i = 1..2, x[i]))", "shadows the index 'i' of an enclosing range", 19),
    ("sum(e = 1..3, x[e])", "the index 'e' shadows the constant 'e'", 5),
    ("x + x[1]", "'x' is indexed elsewhere", 1),
    ("x[1] + x[1,2]", "'x' is used with 2 indices here but with 1", 8),
    ("h[j = 1..3] = x[j]; h[4]", "h[4] is outside the range bound to h", 21),
    ("max(i = 3..1, x[i])", "max over the empty range 3..1", 1),
    ("foo(i = 1..3, x[i])", "'foo' is not a reduction over a range", 1),
    ("a = 2; a[1]", "'a' is bound to one value here but indexed elsewhere", 1),
    ("x[y[1]]", "an index cannot read an indexed name or a reduction", 3),
])
def test_bad_indices_are_one_located_error(text, message, column):
    err = error_of(text)
    assert message in err.message
    assert err.line == 1 and err.column == column
    rendered = err.render()
    assert rendered.splitlines()[2].index("^") - 2 == column - 1  # the caret under it


def test_max_index_is_exact_in_float64():
    assert MAX_INDEX < 2**53
    assert adcli.parse(f"x[{MAX_INDEX}]").variables == [f"x[{MAX_INDEX}]"]


@pytest.mark.parametrize("text", [
    "x[", "x[]", "x[1", "sum(i = 1.., x[i])", "sum(i = ..3, x[i])", "sum(i 1..3, x)",
    "h[j = 1..3]", "h[j = 1..3] =", "x[1]]", "sum(i = 1..3)", "1..2", "x[1..2]",
])
def test_syntax_errors_in_index_notation(run, text):
    result = run("eval", text)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- the CLI


def test_minimize_extended_rosenbrock_from_one_value(run):
    result = run("minimize", ROSENBROCK, "--from", "x=-1.2", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["converged"] and doc["value"] < 1e-12
    values = doc["minimum"]["x"] if isinstance(doc["minimum"].get("x"), list) else [
        doc["minimum"][f"x[{i}]"] for i in range(1, 101)]
    assert values == pytest.approx([1.0] * 100, abs=1e-6)


def test_minimize_extended_rosenbrock_standard_start(run):
    start = [-1.2 if i % 2 else 1.0 for i in range(1, 101)]
    result = run("minimize", ROSENBROCK, "--from", f"x={json.dumps(start)}", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["converged"] and doc["value"] < 1e-12


def test_at_lists_and_extents(run):
    ok = run("eval", "sum(i = 1..3, i*x[i])", "--at", "x=[1, 2, 3]")
    assert ok.exit_code == 0 and ok.stdout.strip() == "14.0"
    short = run("eval", "sum(i = 1..3, i*x[i])", "--at", "x=[1,2]")
    assert short.exit_code == 2 and "no value for x[3]" in short.stderr
    long = run("eval", "sum(i = 1..3, i*x[i])", "--at", "x=[1,2,3,4]")
    assert long.exit_code == 2 and "x[4] is extra" in long.stderr
    nested = run("eval", "W[2,1] - W[1,2]", "--at", "W=[[1,2],[3,4]]")
    assert nested.exit_code == 0 and nested.stdout.strip() == "1.0"
    deep = run("eval", "x[1]", "--at", "x=[[1]]")
    assert deep.exit_code == 2 and "x has 1 index" in deep.stderr
    scalar = run("eval", "x + 1", "--at", "x=[1]")
    assert scalar.exit_code == 2 and "'x' is not an indexed variable" in scalar.stderr
    one = run("eval", "a[0] + a[1]*2", "--at", "a=[5, 7]")
    assert one.exit_code == 0 and one.stdout.strip() == "19.0"


def test_one_value_for_every_element_and_element_overrides(run):
    result = run("eval", "sum(i = 1..4, x[i])", "--at", "x=1,x[3]=5")
    assert result.exit_code == 0 and result.stdout.strip() == "8.0"


def test_wrt_base_name_means_every_element(run):
    result = run("grad", "y*sum(i = 1..3, x[i]^2)", "--at", "x=[1,2,3],y=2", "--wrt", "x",
                 "--json", "--no-table")
    assert result.exit_code == 0, result.stderr
    grad = json.loads(result.stdout)["gradient"]
    flat = grad["x"] if isinstance(grad.get("x"), list) else [grad[f"x[{i}]"] for i in (1, 2, 3)]
    assert flat == [4.0, 8.0, 12.0] and "y" not in grad


# --------------------------------------------------------------------------- fast driver = Lark

_PIECES = ["x", "W", "i", "j", "n", "1", "2", "0", ".5", "1.", "..", "[", "]", "(", ")", ",",
           "=", "+", "-", "*", "^", ";", "\n", " ", "sum(", "prod(", "foo(", "sin(", "i = ",
           "1..3", "x[i]", "W[i,j]", "h[j = 1..2] = ", "max(", "1e3"]


def _shape(statements) -> list:
    from adcli.core.syntax import iter_postorder

    out = []
    for st in statements:
        out.append(("stmt", st.name, st.line, st.column,
                    tuple((r[0], r[3], r[4]) for r in st.ranges)))
        roots = [st.expr] + [b for r in st.ranges for b in r[1:3]]
        for root in roots:
            for n in iter_postorder(root):
                out.append((n.op, n.value if n.op == "const" else None, n.name, n.line,
                            n.column, len(n.args), getattr(n, "index", None),
                            getattr(n, "index_line", None), getattr(n, "index_column", None)))
    return out


def test_fast_driver_agrees_with_lark_on_index_notation():
    from adcli.language.grammar import _lark_parse
    from adcli.language.lalr import REFUSED
    from adcli.language.parse_errors import _diagnose
    from adcli.language.parser import _fast_parse

    rng = random.Random(22)
    texts = ["sum(i = 1..n-1, x[i+1]*W[i,2])", "h[j = 1..2, k = 0..1] = W[j,k]\nh[1,0]",
             "logsumexp(k = 1..3, x[k]) + max(i = 1..2, x[i])", "x[((1))]", "1..3", "x[1.5]",
             "sum(i = 1.5..3, x[i])", "h[j = 1..2]", "sum(i = 1..2)"]
    texts += ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 8)))
              for _ in range(2500)]
    compared = accepted = 0
    for text in texts:
        if not text.strip():
            continue
        try:
            fast = _fast_parse(text)
        except REFUSED:
            fast = None
        try:
            lark, lark_error = _lark_parse(text), None
        except AdcliError as err:
            lark, lark_error = None, err
        if fast is not None:
            assert lark is not None and _shape(fast) == _shape(lark), repr(text)
            accepted += 1
            continue
        ours = _diagnose(text)
        if lark_error is None:
            assert ours is None, repr(text)
            continue
        assert ours is not None, repr(text)
        assert (type(ours), ours.message, ours.line, ours.column, ours.hint) == (
            type(lark_error), lark_error.message, lark_error.line, lark_error.column,
            lark_error.hint), repr(text)
        compared += 1
    assert compared > 500 and accepted > 50


@pytest.mark.parametrize("reduced, written", [
    ("prod(i = 1..4, x[i] + i)", "(x[1] + 1)*(x[2] + 2)*(x[3] + 3)*(x[4] + 4)"),
    ("max(i = 1..4, x[i]*i)", "max(max(max(x[1]*1, x[2]*2), x[3]*3), x[4]*4)"),
    ("min(i = 2..3, x[2*i-1])", "min(x[3], x[5])"),
    ("y + sum(i = 1..3, sum(j = 1..2, W[i,j]*x[j]))",
     "y + ((W[1,1]*x[1] + W[1,2]*x[2]) + (W[2,1]*x[1] + W[2,2]*x[2])"
     " + (W[3,1]*x[1] + W[3,2]*x[2]))"),
])
def test_reductions_build_the_written_out_tape(reduced, written):
    a, b = adcli.parse(reduced).tape(), adcli.parse(written).tape()
    assert [a.op_name(i) for i in range(len(a))] == [b.op_name(i) for i in range(len(b))]
    assert a.args == b.args and a.consts == b.consts and a.inputs == b.inputs
