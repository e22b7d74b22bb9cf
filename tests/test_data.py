"""CSV data files: float64 columns, errors that name the line and column, minibatches."""

from __future__ import annotations

import numpy as np
import pytest

from adcli.data import DataError, batches, from_columns, read_csv


def write(tmp_path, text: str, name: str = "d.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_columns_by_header_name(tmp_path):
    d = read_csv(write(tmp_path, "x,y\n1,2.5\n-3e2,.5\n\n4,  7\n"))
    assert d.names == ["x", "y"] and d.rows == 3
    assert d.columns["x"].dtype == np.float64
    assert d.columns["x"].tolist() == [1.0, -300.0, 4.0]
    assert d.columns["y"].tolist() == [2.5, 0.5, 7.0]


def test_single_column_and_single_row(tmp_path):
    d = read_csv(write(tmp_path, "x\n5\n"))
    assert d.columns["x"].tolist() == [5.0]


def test_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfx,y\r\n1,2\r\n")
    d = read_csv(str(path))
    assert d.names == ["x", "y"] and d.columns["y"].tolist() == [2.0]


@pytest.mark.parametrize("text, message", [
    ("x,y\n1,2\n3,abc\n", "line 3, column 2 ('y'): 'abc' is not a number"),
    ("x,y\n1,2\n,4\n", "line 3, column 1 ('x'): an empty cell is not a number"),
    ("x,y\n1,2\n3,nan\n", "line 3, column 2 ('y'): 'nan' is not a finite number"),
    ("x,y\n1,inf\n", "line 2, column 2 ('y'): 'inf' is not a finite number"),
    ("x,y\n1,2\n3\n", "line 3: 1 fields, but the header names 2 columns"),
    ("x,y\n1,2,3\n", "line 2: 3 fields, but the header names 2 columns"),
    ("x,y\n", "has a header but no rows"),
    ("", "is empty"),
    ("a b,a_b\n1,2\n", "columns 'a b' and 'a_b' both become 'a_b'"),
    ("x,x\n1,2\n", "names column 'x' twice"),
])
def test_errors_say_where(tmp_path, text, message):
    with pytest.raises(DataError) as err:
        read_csv(write(tmp_path, text))
    assert message in err.value.message


def test_error_line_counts_blank_lines(tmp_path):
    with pytest.raises(DataError, match="line 5, column 1"):
        read_csv(write(tmp_path, "x\n1\n\n2\nfoo\n"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="is a directory"):
        read_csv(str(tmp_path))


def test_from_columns_checks_lengths():
    with pytest.raises(DataError, match="different lengths"):
        from_columns({"x": [1, 2], "y": [1]})
    with pytest.raises(DataError, match="no rows"):
        from_columns({"x": []})


def test_batches_cover_every_row_once_per_epoch():
    it = batches(10, 4, seed=3)
    epoch = [next(it) for _ in range(3)]
    assert [len(b) for b in epoch] == [4, 4, 2]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(10))
    second = [next(it) for _ in range(3)]
    assert sorted(np.concatenate(second).tolist()) == list(range(10))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch, second))  # reshuffled


def test_batches_are_reproducible_with_a_seed():
    take = lambda seed: [next(it).tolist() for it in [batches(50, 7, seed)] for _ in range(20)]
    assert take(1) == take(1)
    assert take(1) != take(2)


def test_batch_larger_than_data_is_the_whole_data():
    assert sorted(next(batches(5, 100, 0)).tolist()) == [0, 1, 2, 3, 4]


def test_headers_that_are_not_names_are_mapped(tmp_path):
    d = read_csv(write(tmp_path, "sepal length,y(obs),2y,,x\n1,2,3,4,5\n"))
    assert d.names == ["sepal_length", "y_obs", "_2y", "column4", "x"]
    assert d.headers == {"sepal_length": "sepal length", "y_obs": "y(obs)", "_2y": "2y",
                         "column4": ""}
    assert "sepal_length (from 'sepal length')" in d.describe_headers()


def test_column_renames_by_header_text(tmp_path):
    d = read_csv(write(tmp_path, "sepal length,y\n1,2\n"), rename={"s": "sepal length"})
    assert d.names == ["s", "y"] and d.columns["s"].tolist() == [1.0]
    with pytest.raises(DataError, match="has no column 'nope'"):
        read_csv(write(tmp_path, "x\n1\n"), rename={"s": "nope"})


@pytest.mark.parametrize("text", ["x;y\n1;2\n3;4\n", "x\ty\n1\t2\n3\t4\n",
                                  "x|y\n1|2\n3|4\n"])
def test_separator_detected(tmp_path, text):
    d = read_csv(write(tmp_path, text))
    assert d.names == ["x", "y"] and d.columns["y"].tolist() == [2.0, 4.0]


def test_separator_given(tmp_path):
    d = read_csv(write(tmp_path, "x;y,z\n1;2,5\n"), sep=",", use=["z"])
    assert d.names == ["x_y", "z"]  # 'x;y' is one header, mapped to a name


def test_only_used_columns_must_be_numbers(tmp_path):
    path = write(tmp_path, "name,x,note,y,e\nfoo,1,,2,\nbar,3,ok,4,5\n")
    d = read_csv(path, use=["x", "y"])
    assert d.columns["x"].tolist() == [1.0, 3.0] and d.text["name"] == ["foo", "bar"]
    with pytest.raises(DataError, match=r"line 2, column 1 \('name'\): 'foo' is not a number"):
        read_csv(path, use=["name", "x"])
    with pytest.raises(DataError, match="line 3, column 3 .'note'.: 'ok' is not a number"):
        read_csv(path, use=["note"])
    with pytest.raises(DataError, match="line 2, column 5 .'e'.: an empty cell") as err:
        read_csv(path, use=["e"])
    assert "--dropna" in err.value.hint


def test_dropna_leaves_out_rows_missing_a_used_cell(tmp_path):
    path = write(tmp_path, "x,y,z\n1,2,\n,4,5\n6,NA,7\n8,nan,\n9,10,11\n")
    with pytest.raises(DataError, match="line 3, column 1 .'x'.: an empty cell"):
        read_csv(path, use=["x", "y"])
    d = read_csv(path, use=["x", "y"], dropna=True)
    assert d.columns["x"].tolist() == [1.0, 9.0] and d.columns["y"].tolist() == [2.0, 10.0]
    assert d.rows == 2 and "z" not in d.columns  # kept only to be written back out
    assert np.isnan(d.spare["z"][0]) and d.spare["z"][1] == 11.0
    with pytest.raises(DataError, match="no rows left"):
        read_csv(write(tmp_path, "x\nNA\n\n"), use=["x"], dropna=True)
