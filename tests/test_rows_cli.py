"""Issue 13 items 3-5: eval/grad over the rows of a data file, several points, and CSV files
as people have them (through CliRunner, and the installed console script where it matters)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(tmp_path: Path, text: str, name: str = "d.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- item 3: eval and grad at every row ------------------------------------------------------


def test_eval_data_writes_input_columns_plus_value(run, tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,-4\n0.5,0\n")
    result = run("eval", "w*x^2 + y", "--data", path, "--at", "w=2")
    assert result.exit_code == 0, result.stderr
    out = rows(result.stdout)
    assert [list(r) for r in out][0] == ["x", "y", "value"]
    assert [float(r["value"]) for r in out] == [2 * 1 + 2, 2 * 9 - 4, 2 * 0.25 + 0]
    assert [r["x"] for r in out] == ["1", "3", "0.5"]  # as written in the file


def test_grad_data_has_one_derivative_column_per_variable(run, tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,-4\n")
    result = run("grad", "(w0 + w1*x - y)^2", "--data", path, "--at", "w0=0.5,w1=2")
    assert result.exit_code == 0, result.stderr
    out = rows(result.stdout)
    assert list(out[0]) == ["x", "y", "value", "d/dw0", "d/dw1", "d/dx", "d/dy"]
    for r in out:
        x, y = float(r["x"]), float(r["y"])
        res = 0.5 + 2 * x - y
        assert float(r["value"]) == pytest.approx(res ** 2)
        assert float(r["d/dw0"]) == pytest.approx(2 * res)  # per row, not summed
        assert float(r["d/dw1"]) == pytest.approx(2 * res * x)
        assert float(r["d/dx"]) == pytest.approx(2 * res * 2)
        assert float(r["d/dy"]) == pytest.approx(-2 * res)


def test_grad_data_json_is_a_list_and_wrt_limits_columns(run, tmp_path):
    path = write(tmp_path, "x\n1\n2\n")
    result = run("grad", "a*x", "--data", path, "--at", "a=3", "--wrt", "a", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"x": 1.0, "value": 3.0, "gradient": {"a": 1.0}},
        {"x": 2.0, "value": 6.0, "gradient": {"a": 2.0}}]


def test_eval_data_json_nonfinite_and_output_file(run, tmp_path):
    path = write(tmp_path, "x\n1\n0\n-1\n")
    out = tmp_path / "out.json"
    result = run("eval", "log(x)", "--data", path, "--json", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text()) == [{"x": 1.0, "value": 0.0},
                                           {"x": 0.0, "value": "-inf"},
                                           {"x": -1.0, "value": "nan"}]
    assert "not finite in 2 of 3 rows (the first is data row 2)" in result.stderr


def test_data_and_at_errors(run, tmp_path):
    path = write(tmp_path, "x,y\n1,2\n")
    missing = run("eval", "w0 + w1*x", "--data", path)
    assert missing.exit_code == 2
    assert "'w0', 'w1' are neither a column of" in missing.stderr
    assert "(columns: x, y)" in missing.stderr
    both = run("eval", "x", "--data", path, "--at", "x=1")
    assert both.exit_code == 2 and "is a column of" in both.stderr
    alone = run("eval", "x", "--at", "x=1", "--dropna")
    assert alone.exit_code == 2 and "--dropna needs --data" in alone.stderr
    assert "Traceback" not in missing.stderr + both.stderr + alone.stderr


def test_at_file_takes_a_minimize_result(run, tmp_path):
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"minimum": {"a": 2.0, "b": "inf"}, "value": 1.0}))
    result = run("eval", "a*x", "--at", f"@{fit}", "--at", "x=3")
    assert result.exit_code == 0, result.stderr
    assert float(result.stdout) == 6.0
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    result = run("eval", "x", "--at", f"@{bad}")
    assert result.exit_code == 2 and "not a JSON file" in result.stderr


def test_moons_accuracy_as_the_readme_computes_it(run, tmp_path):
    """The README's recipe: fit, then evaluate the score at every row with --at @fit.json."""
    fit = run("minimize", f"@{SAMPLES / 'moons_net.adc'}", "--data",
              str(SAMPLES / "moons.csv"), "--init-scale", "1", "--seed", "0", "--json")
    assert fit.exit_code == 0, fit.stderr
    params = tmp_path / "fit.json"
    params.write_text(fit.stdout)
    result = run("eval", f"@{SAMPLES / 'moons_score.adc'}", "--data",
                 str(SAMPLES / "moons.csv"), "--at", f"@{params}")
    assert result.exit_code == 0, result.stderr
    out = rows(result.stdout)
    assert len(out) == 100
    correct = sum((float(r["value"]) > 0) == (float(r["y"]) > 0) for r in out)
    assert correct == 100
    # The score without its parameters is an error naming them, not a crash.
    assert run("eval", f"@{SAMPLES / 'moons_score.adc'}", "--data",
               str(SAMPLES / "moons.csv")).exit_code == 2


@pytest.mark.skipif(shutil.which("adcli") is None, reason="console script not installed")
def test_million_rows_through_the_console_script(tmp_path):
    """10^6 rows in about a second (generous bound here: shared, slow machines)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=1_000_000)
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("x\n")
        fh.write("\n".join(map(repr, x.tolist())))
        fh.write("\n")
    out = tmp_path / "out.csv"
    proc = subprocess.run(["adcli", "grad", "a*x^2 + b", "--data", str(path), "--at",
                           "a=2,b=1", "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        header = fh.readline().strip()
        first = fh.readline().strip().split(",")
        count = 2 + sum(1 for _ in fh)
    assert header == "x,value,d/da,d/dx,d/db"  # variables in order of first use
    assert count == 1_000_001
    x0 = float(first[0])
    assert float(first[1]) == 2 * x0 * x0 + 1 and float(first[2]) == x0 * x0
    assert float(first[3]) == 4 * x0 and float(first[4]) == 1.0


# --- item 4: several points -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["eval", "grad", "hessian", "compare-modes"])
def test_a_list_after_at_says_how_to_evaluate_several_points(run, command):
    result = run(command, "x^2", "--at", "x=1,2,3")
    assert result.exit_code == 2
    assert "--at '2' is missing '='" in result.stderr
    assert "--data FILE.csv" in result.stderr and "Traceback" not in result.stderr


# --- item 5: CSV files as people have them -------------------------------------------------------


def test_unused_text_and_empty_columns_are_fine(run, tmp_path):
    path = write(tmp_path, "name,x,note\nfoo,1,\nbar,2,a,b\n".replace(",a,b", ",\"a,b\""))
    result = run("eval", "2*x", "--data", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["name,x,note,value", "foo,1,,2.0",
                                          'bar,2,"a,b",4.0']
    used = run("eval", "name + x", "--data", path)
    assert used.exit_code == 2
    assert "line 2, column 1 ('name'): 'foo' is not a number" in used.stderr


def test_headers_mapped_to_names_and_column_option(run, tmp_path):
    path = write(tmp_path, "sepal length,y(obs)\n1,2\n")
    result = run("eval", "sepal_length + y_obs", "--data", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["sepal length,y(obs),value", "1,2,3.0"]
    renamed = run("eval", "s*y", "--data", path, "--column", "s=sepal length",
                  "--column", "y=y(obs)")
    assert renamed.exit_code == 0 and renamed.stdout.splitlines()[1] == "1,2,2.0"
    wrong = run("eval", "sepal + 1", "--data", path)
    assert wrong.exit_code == 2
    assert "sepal_length (from 'sepal length')" in wrong.stderr


@pytest.mark.parametrize("text, option", [("x;y\n1;2\n", ()), ("x\ty\n1\t2\n", ()),
                                          ("x:y\n1:2\n", ("--sep", ":"))])
def test_separators(run, tmp_path, text, option):
    result = run("eval", "x + y", "--data", write(tmp_path, text), *option)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == "1,2,3.0"  # written with ',' whatever the input


def test_missing_cells_error_names_the_row_or_dropna(run, tmp_path):
    path = write(tmp_path, "x,y\n1,2\n,4\n5,6\n")
    result = run("eval", "x + y", "--data", path)
    assert result.exit_code == 2
    assert "line 3, column 1 ('x'): an empty cell is not a number" in result.stderr
    assert "--dropna" in result.stderr
    dropped = run("eval", "x + y", "--data", path, "--dropna")
    assert dropped.exit_code == 0
    assert [r["value"] for r in rows(dropped.stdout)] == ["3.0", "11.0"]
    only_y = run("eval", "2*y", "--data", path)  # x unused: its empty cell is fine
    assert only_y.exit_code == 0 and len(rows(only_y.stdout)) == 3


def test_minimize_and_fit_read_data_the_same_way(run, tmp_path):
    lines = ["id;x value;y;comment"]
    for i in range(12):
        x = i / 2
        lines.append(f"p{i};{x};{2 + 3 * x + 0.01 * math.sin(7 * i)};" + ("" if i % 3 else "ok"))
    lines.append("p99;;1;")  # a missing x: dropped
    path = write(tmp_path, "\n".join(lines) + "\n")
    fit = run("fit", "y ~ a + b*x", "--data", path, "--column", "x=x value", "--dropna",
              "--json")
    assert fit.exit_code == 0, fit.stderr
    params = json.loads(fit.stdout)["parameters"]
    assert params["a"] == pytest.approx(2, abs=0.05) and params["b"] == pytest.approx(3, abs=0.02)
    mini = run("minimize", "(a + b*x_value - y)^2", "--data", path, "--dropna", "--json",
               "--wrt", "a,b")
    assert mini.exit_code == 0, mini.stderr
    assert json.loads(mini.stdout)["minimum"]["b"] == pytest.approx(params["b"], rel=1e-6)
    no_dropna = run("fit", "y ~ a + b*x_value", "--data", path)
    assert no_dropna.exit_code == 2 and "line 14, column 2 ('x_value')" in no_dropna.stderr


def test_json_rows_keep_numbers_and_null_for_missing_cells(run):
    result = run("eval", "water", "--data", str(SAMPLES / "plants.csv"), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["height_cm"] for r in out] == [31.5, 12.0, None, 48.0]
    assert [r["plant"] for r in out] == ["fern", "cactus", "basil", "ivy"]
    assert [r["value"] for r in out] == [2.0, 0.25, 1.5, 3.0]


def test_a_data_column_named_value_is_not_overwritten(run, tmp_path):
    path = write(tmp_path, "x,value,gradient\n1,2,3\n")
    result = run("grad", "x + value", "--data", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["x,value,gradient,value_,d/dx,d/dvalue",
                                          "1,2,3,3.0,1.0,1.0"]
    assert "the computed one is called 'value_'" in result.stderr
    doc = json.loads(run("grad", "x + value", "--data", path, "--json").stdout)
    assert doc == [{"x": 1.0, "value": 2.0, "gradient": 3.0, "value_": 3.0,
                    "gradient_": {"x": 1.0, "value": 1.0}}]


def test_decimal_commas_get_a_hint(run, tmp_path):
    result = run("eval", "x", "--data", write(tmp_path, "x;y\n1,5;2\n"))
    assert result.exit_code == 2
    assert "line 2, column 1 ('x'): '1,5' is not a number" in result.stderr
    assert "'.' as the decimal point" in result.stderr


def test_at_file_reads_are_bounded(run):
    result = run("eval", "x", "--at", "@/dev/zero")
    assert result.exit_code == 2 and "over the limit" in result.stderr


@pytest.mark.skipif(shutil.which("adcli") is None, reason="console script not installed")
def test_data_from_a_pipe_through_the_console_script():
    proc = subprocess.run(["adcli", "eval", "2*x", "--data", "/dev/stdin"],
                          input="x;note\n1;a\n2.5;b\n", capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["x,note,value", "1,a,2.0", "2.5,b,5.0"]


# --- issue 20, item 7: every row read or refused ---------------------------------------------


@pytest.mark.parametrize("command", [["eval", "x*2"], ["grad", "x*y"], ["fit", "y ~ a*x + b"],
                                     ["minimize", "(a*x - y)^2", "--wrt", "a"]])
@pytest.mark.parametrize("text, message", [
    ("x,y\n1,2\n#5,6\n3,4\n", "line 3, column 1 ('x'): '#5' is not a number"),
    ('x,y\n1,"2\n3,4\n5,6\n', "line 2: a quoted cell opens on this line and is never closed"),
    ("x,y\n1,2\n1_000,3\n2,4\n", "line 3, column 1 ('x'): '1_000' is not a number"),
    ("x,y\n1,2\n2 # note,3\n2,4\n", "line 3, column 1 ('x'): '2 # note' is not a number"),
    ("x,y\n1,2\n\uff11,3\n2,4\n", "line 3, column 1 ('x'): '\uff11' is not a number"),
])
def test_no_row_is_dropped_silently(run, tmp_path, command, text, message):
    result = run(*command[:2], "--data", write(tmp_path, text), *command[2:])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"Error: data file '{tmp_path / 'd.csv'}', {message}" in result.stderr


def test_text_cells_are_written_back_as_read(run, tmp_path):
    path = write(tmp_path, 'x,note,z\n1,"a, ""b""",\n2,"two\nlines",5\n3,ünï,NA\n')
    out = run("eval", "2*x", "--data", path)
    assert out.exit_code == 0, out.stderr
    assert rows(out.stdout) == [
        {"x": "1", "note": 'a, "b"', "z": "", "value": "2.0"},
        {"x": "2", "note": "two\nlines", "z": "5", "value": "4.0"},
        {"x": "3", "note": "ünï", "z": "NA", "value": "6.0"}]
    data = json.loads(run("eval", "2*x", "--data", path, "--json").stdout)
    assert [(r["note"], r["z"]) for r in data] == [('a, "b"', None), ("two\nlines", 5.0),
                                                   ("ünï", None)]


def test_invalid_utf8_in_a_text_column_is_reported(run, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x,name\n1,ok\n2,caf\xe9\n")
    result = run("eval", "x", "--data", str(path))
    assert result.exit_code == 2
    assert "line 3: byte 6 (0xe9) is not UTF-8 text" in result.stderr


def test_gradients_are_swept_block_by_block_as_written(run, tmp_path, monkeypatch):
    """The derivative columns are computed a block of rows at a time (memory): blocks of 2
    rows give every row its own derivatives, in CSV and JSON."""
    import adcli.io.rows

    monkeypatch.setattr(adcli.io.rows, "BLOCK_ROWS", 2)
    xs = [1.0, -2.0, 3.5, 0.0, 7.0]
    path = write(tmp_path, "x\n" + "".join(f"{x}\n" for x in xs))
    out = rows(run("grad", "a*x^2 + b", "--data", path, "--at", "a=3,b=1").stdout)
    assert [float(r["d/dx"]) for r in out] == [6 * x for x in xs]
    assert [float(r["d/da"]) for r in out] == [x * x for x in xs]
    assert [float(r["d/db"]) for r in out] == [1.0] * 5
    data = json.loads(run("grad", "a*x^2 + b", "--data", path, "--at", "a=3,b=1", "--wrt",
                          "x,a", "--json").stdout)
    assert [r["gradient"] for r in data] == [{"x": 6 * x, "a": x * x} for x in xs]
    assert [r["value"] for r in data] == [3 * x * x + 1 for x in xs]
