"""Index notation through the commands: values in and out, data headers, fits and the
micrograd demo (samples/moons_mlp.adc)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import adcli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run_json(run, *args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_polynomial_fit_equals_numpy_polyfit(run, tmp_path):
    rng = np.random.default_rng(5)
    x = np.linspace(-1, 1, 60)
    y = np.polyval(rng.normal(size=9), x) + 0.01 * rng.normal(size=60)
    path = tmp_path / "poly.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="x,y", comments="", fmt="%.17g")
    doc = run_json(run, "fit", "y ~ sum(k = 0..8, a[k]*x^k)", "--data", str(path))
    want = np.polyfit(x, y, 8)[::-1]
    assert len(doc["parameters"]["a"]) == 9
    np.testing.assert_allclose(doc["parameters"]["a"], want, rtol=1e-8)


def test_minimize_json_reads_back_with_at_file(run, tmp_path):
    text = "sum(i = 1..4, (x[i] - i)^2) + sum(i = 1..2, sum(j = 1..2, (W[i,j] - i*j)^2))"
    doc = run_json(run, "minimize", text)
    assert doc["minimum"]["x"] == pytest.approx([1, 2, 3, 4])
    assert np.asarray(doc["minimum"]["W"]) == pytest.approx(np.array([[1, 2], [2, 4]]))
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    back = run_json(run, "grad", text, "--at", f"@{path}", "--no-table")
    assert back["value"] == pytest.approx(0, abs=1e-12)
    assert set(back["gradient"]) == {"x", "W"}
    one = run_json(run, "grad", "W[2,1]*3 + W[1,2]", "--at", f"W=@{path}", "--no-table")
    assert one["value"] == pytest.approx(8)
    few = run("grad", "W[2,1]*3", "--at", f"W=@{path}")
    assert few.exit_code == 2
    assert "2 values where the expression uses W[1..2,1..1]: W[2,2] is extra" in few.stderr


def test_json_keeps_sparse_and_plain_names_flat(run):
    doc = run_json(run, "grad", "y*x[1] + x[1000]", "--at", "x=1,y=2", "--no-table")
    assert doc["gradient"] == {"y": 1.0, "x[1]": 2.0, "x[1000]": 1.0}
    doc = run_json(run, "grad", "x[2]*x[0]", "--at", "x=[1,2,3]", "--no-table")
    assert doc["gradient"] == {"x": [3.0, None, 1.0]}


def test_bad_value_lists_are_one_error(run, tmp_path):
    for value, message in [("x=[1,", "is not a list of numbers"), ("x=[]", "an empty list"),
                           ('x=[1,"a"]', "is not a number"), ("x=[[1],2]", "mixes numbers"),
                           ("x=" + "[" * 50 + "1" + "]" * 50, "nested more than 8 deep"),
                           ("x=@nonexistent.json", "does not exist")]:
        result = run("eval", "x[1] + x[2]", "--at", value)
        assert result.exit_code == 2, value
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr


def test_data_headers_bind_elements(run, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x[1],x[2],y\n1,2,5\n2,1,4\n3,3,9\n0,1,2\n")
    doc = run_json(run, "minimize", "(sum(j = 1..2, b[j]*x[j]) - y)^2", "--data", str(path))
    assert doc["minimum"] == {"b": pytest.approx([1.0, 2.0])}
    other = tmp_path / "e.csv"
    other.write_text("first,second,y\n1,2,5\n2,1,4\n3,3,9\n0,1,2\n")
    doc = run_json(run, "minimize", "(sum(j = 1..2, b[j]*x[j]) - y)^2", "--data", str(other),
                   "--column", "x[1]=first", "--column", "x[2]=second")
    assert doc["minimum"] == {"b": pytest.approx([1.0, 2.0])}


def test_diff_of_an_indexed_program_parses_back(run):
    text = "h[j = 1..3] = sin(x[j])^2\nsum(j = 1..3, j*h[j]) * h[1]"
    result = run("diff", text, "--wrt", "x")
    assert result.exit_code == 0, result.stderr
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 3
    f = adcli.parse(text)
    point = {"x[1]": 0.3, "x[2]": -0.7, "x[3]": 1.1}
    _, grad = f.grad(point)
    for block in blocks:
        head, _, body = block.partition("\n")
        name = head.removeprefix("# d/d")
        assert adcli.parse(body).eval(point) == pytest.approx(grad[name], rel=1e-12)


def test_micrograd_demo_trains_to_full_accuracy(run, tmp_path):
    program = SAMPLES / "moons_mlp.adc"
    f = adcli.parse(program.read_text())
    params = [v for v in f.variables if v not in ("x1", "x2", "y")]
    assert len(params) == 337
    doc = run_json(run, "minimize", f"@{program}", "--data", str(SAMPLES / "moons.csv"),
                   "--init-scale", "1", "--seed", "0", "--method", "adam", "--steps", "300",
                   "--lr", "0.05")
    assert doc["reason"] == "max-steps"  # training ran its steps: a completed run, exit 0
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps(doc))
    result = run("eval", f"@{SAMPLES / 'moons_mlp_score.adc'}", "--data",
                 str(SAMPLES / "moons.csv"), "--at", f"@{fit}")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 100
    correct = sum((float(r["value"]) > 0) == (float(r["y"]) > 0) for r in rows)
    assert correct == 100


def test_fit_from_and_fix_with_lists(run):
    poly = str(SAMPLES / "poly.csv")
    doc = run_json(run, "fit", "y ~ sum(k = 0..2, a[k]*x^k)", "--data", poly,
                   "--from", "a=[1,2,3]", "--fix", "a[0]=1")
    assert doc["parameters"]["a"][0] == 1.0
    short = run("fit", "y ~ sum(k = 0..2, a[k]*x^k)", "--data", poly, "--from", "a=[1,2]")
    assert short.exit_code == 2 and "no value for a[2]" in short.stderr


def test_partitioned_data_binds_elements(run, tmp_path):
    for part in ("a", "b"):
        (tmp_path / f"{part}.csv").write_text("x[1],x[2],y\n1,2,5\n2,1,4\n3,3,9\n")
    doc = run_json(run, "minimize", "(sum(j = 1..2, b[j]*x[j]) - y)^2", "--data",
                   str(tmp_path / "*.csv"), "--scheduler", "synchronous",
                   "--from", "b=[0.5,0.5]", "--wrt", "b")
    assert doc["partitions"] == 2 and doc["minimum"]["b"] == pytest.approx([1.0, 2.0])


def test_lanczos3_as_a_sum_gives_the_written_out_fit():
    """NIST's Lanczos3, b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x), written as
    sum(k = 1..3, b[2*k-1]*exp(-b[2*k]*x)): the same tape, so the same digits from both of
    NIST's starts (data from tests/data/nist-strd, as tests/test_nist.py)."""
    from nist_strd import data_dir, load, lre

    from adcli.regression.fitting import fit

    assert data_dir() is not None, "NIST StRD data missing: expected tests/data/nist-strd"
    problem = load("Lanczos3")
    summed = "y ~ sum(k = 1..3, b[2*k-1]*exp(-b[2*k]*x))"
    for start in problem.starts:
        plain = fit(problem.formula, problem.columns, start=start)
        indexed = fit(summed, problem.columns,
                      start={f"b[{n[1:]}]": v for n, v in start.items()})
        for name in problem.names:
            assert indexed.parameters[f"b[{name[1:]}]"] == plain.parameters[name]
            assert lre(plain.parameters[name], problem.certified[name]) > 6
