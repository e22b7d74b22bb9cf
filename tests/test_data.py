"""CSV data files: float64 columns, errors that name the line and column, minibatches."""

from __future__ import annotations

import numpy as np
import pytest

from adcli.io.data import DataError, batches, from_columns, read_csv


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


# --- every row read or refused (issue 20, item 7) ----------------------------------------------


def test_a_hash_starts_no_comment_the_row_is_read(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n#5,6\n3,4\n")
    with pytest.raises(DataError, match=r"line 3, column 1 \('x'\): '#5' is not a number"):
        read_csv(path, use=["x", "y"])
    d = read_csv(path, use=["y"])  # x unused: the row is still there, not dropped
    assert d.rows == 3 and d.columns["y"].tolist() == [2.0, 6.0, 4.0]


def test_an_unclosed_quote_names_its_line(tmp_path):
    with pytest.raises(DataError, match="line 2: a quoted cell opens on this line and is "
                                        "never closed"):
        read_csv(write(tmp_path, 'x,y\n1,"2\n3,4\n5,6\n'), use=["x"])
    with pytest.raises(DataError, match="line 3: a quoted cell has text after"):
        read_csv(write(tmp_path, 'x,y\n1,2\n3,"4"5\n'), use=["x"])


def test_quoted_cells_with_separators_and_line_breaks_are_read(tmp_path):
    path = write(tmp_path, 'x,note\n1,"a, b"\n2,"two\nlines"\n3,"say ""hi"""\nfoo,z\n')
    d = read_csv(path, use=[], )
    assert d.rows == 4
    assert list(d.text["note"]) == ["a, b", "two\nlines", 'say "hi"', "z"]
    with pytest.raises(DataError, match=r"line 6, column 1 \('x'\): 'foo'"):
        read_csv(path, use=["x"])  # lines counted through the quoted line break


@pytest.mark.parametrize("cell", ["１", "١", "1_000", "\u00a01", "1\u00a0", "2 # note",
                                  "0x10", "1e", "1.2.3", "--1", "1,5", "\u20071"])
def test_one_number_rule_for_cells(tmp_path, cell):
    text = "x,y\n1,2\n" + (f'"{cell}"' if "," in cell else cell) + ",3\n"
    with pytest.raises(DataError) as err:
        read_csv(write(tmp_path, text), use=["x"])
    assert f"line 3, column 1 ('x'): '{cell}' is not a number" in err.value.message


@pytest.mark.parametrize("cell, value", [
    ("1", 1.0), ("-2.5", -2.5), ("+.5", 0.5), ("3.", 3.0), ("1e3", 1000.0), ("1E-3", 0.001),
    ("\t 7 ", 7.0), ("-0", -0.0)])
def test_numbers_by_the_rule(tmp_path, cell, value):
    d = read_csv(write(tmp_path, f"x,t\n{cell},a\n1,b\n"), use=["x"])
    assert d.columns["x"][0] == value


def test_the_cell_rule_is_the_at_rule():
    from adcli.io.data import CELL
    from adcli.io.point import _NUMBER, _SPECIAL

    samples = ["1", "-1", "+1.5", ".5", "5.", "1e5", "1E+05", "1e", "e5", ".", "+", "1_0",
               "１", "١", "1.2.3", "nan", "-inf", "Infinity", "infinit", "0x1", "1 2", "٣.5",
               "1e5.5", "-.5e-3"]
    for s in samples:
        assert bool(CELL.match(s)) == bool(_NUMBER.match(s) or _SPECIAL.match(s)), s


def test_invalid_utf8_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x,name\n1,ok\n2,caf\xe9\n")
    with pytest.raises(DataError, match=r"line 3: byte 6 \(0xe9\) is not UTF-8 text"):
        read_csv(str(path), use=["x"])


def test_lone_cr_line_ends_and_huge_cells_are_errors(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"x,y\r1,2\r3,4\r")
    with pytest.raises(DataError, match="line 1: a line ends with a lone carriage return"):
        read_csv(str(path))
    path.write_bytes(b"x,t\n1,a\n2," + b"b" * 200_000 + b"\n")
    with pytest.raises(DataError, match="line 3: a cell is longer than"):
        read_csv(str(path), use=["x"])


def test_a_row_of_empty_cells_is_missing_cells_not_a_blank_line(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n,\n\n3,4\n")
    with pytest.raises(DataError, match="line 3, column 1 .'x'.: an empty cell"):
        read_csv(path, use=["x"])
    assert read_csv(path, use=["x"], dropna=True).columns["x"].tolist() == [1.0, 3.0]


def test_blocks_give_the_same_rows_and_lines(tmp_path, monkeypatch):
    """Read in blocks of a few bytes: numbers, text, quoted line breaks across block ends and
    the line of a late error come out as from one block."""
    import adcli.io.blocks
    import adcli.io.data

    lines = ["x,y,note"]
    for i in range(300):
        note = f'"n{i},\n{i}"' if i % 37 == 0 else f"n{i}"
        lines.append(f"{i * 0.5!r},{-i},{note}")
    lines.append("oops,1,z")
    path = write(tmp_path, "\n".join(lines) + "\n")
    whole = adcli.io.data.read_table(path, keep_lines=True)
    monkeypatch.setattr(adcli.io.blocks, "BLOCK_BYTES", 40)
    parts = adcli.io.data.read_table(path, keep_lines=True)
    assert parts.rows == whole.rows == 301
    assert parts.columns["y"].tolist() == whole.columns["y"].tolist() == \
        [-float(i) for i in range(300)] + [1.0]
    assert list(parts.lines) == list(whole.lines)
    assert list(parts.text["note"]) == list(whole.text["note"])
    assert parts.text["note"][37] == "n37,\n37"
    for d in (whole, parts):
        with pytest.raises(DataError, match=r"line 311, column 1 \('x'\): 'oops'"):
            d.select(["x"])
        # the numbers of x read before its text cell are kept as their shortest text
        assert d.text["x"][:3] == ["0.0", "0.5", "1.0"] and d.text["x"][300] == "oops"


def test_memory_of_the_rows_is_bounded_not_just_bytes(tmp_path):
    """'1\\n' is 2 bytes read and 8 bytes kept: the limit bounds both."""
    path = write(tmp_path, "x\n" + "1\n" * 1000)
    assert read_csv(path, 20_000).rows == 1000
    with pytest.raises(DataError, match="its rows take more than 4,000 bytes of memory") as err:
        read_csv(path, 4_000)
    assert "--max-data-size" in err.value.hint
    with pytest.raises(DataError, match="over the limit of 1,000 bytes"):
        read_csv(path, 1_000)


def test_text_columns_are_kept_compactly(tmp_path):
    from adcli.io.data import TextColumn, read_table

    cells = ["a", "", "ünï", "b,c", "x" * 100]
    col = TextColumn.of(cells)
    assert list(col) == cells and col == cells and len(col) == 5 and col[-1] == "x" * 100
    assert col[1:3] == ["", "ünï"] and col.take(np.array([1, 0, 1, 0, 0], bool)) == ["a", "ünï"]
    assert col.nbytes < 200
    path = write(tmp_path, "name,x\n" + "".join(f"item {i},{i}\n" for i in range(1000)))
    d = read_table(path)
    assert isinstance(d.text["name"], TextColumn) and d.text["name"][999] == "item 999"
    assert d.text["name"].nbytes < 20 * 1000  # not a Python object a cell
    assert read_table(path, keep_text=False).text == {}
    assert read_table(path, keep_text=False).select(["x"]).rows == 1000


def test_a_stray_quote_in_a_text_cell_is_text(tmp_path, monkeypatch):
    """A quote inside an unquoted cell is a character (as the csv module reads it): the rows
    after it are still read, block after block."""
    import adcli.io.blocks

    monkeypatch.setattr(adcli.io.blocks, "BLOCK_BYTES", 16)
    path = write(tmp_path, 'x,what\n1,a 12" pipe\n' + "".join(f"{i},n{i}\n" for i in range(2, 60)))
    d = read_csv(path, use=["x"])
    assert d.columns["x"].tolist() == [float(i) for i in range(1, 60)]
    assert d.text["what"][0] == 'a 12" pipe' and d.text["what"][58] == "n59"
    # The rows after an unmatched quote are one block: the memory limit still holds, checked
    # after each batch of rows within it.
    monkeypatch.setattr(adcli.io.blocks, "_BATCH_ROWS", 4)
    with pytest.raises(DataError, match="its rows take more than 1,000 bytes of memory"):
        read_csv(path, 1_000, use=["x"])


def test_a_header_is_split_as_the_csv_module_splits_it():
    """Headers without quotes or line breaks are split without the csv module (start-up);
    every header, with them or not, gives the names the csv module's split gives."""
    import csv
    import random

    from adcli.io.data import _header

    rng = random.Random(7)
    alphabet = ["x", "y", "a_1", " ", "\t", ",", ";", '"', "\r", "\n", "é", "1", "(", ")", "-"]
    checked = 0
    for _ in range(3000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        line += rng.choice(["", "\n", "\r\n"])
        sep = rng.choice([",", ";", "\t"])
        try:
            raw = [n.strip() for n in next(csv.reader([line], delimiter=sep, strict=True))]
        except (csv.Error, StopIteration):
            raw = None
        try:
            names, headers = _header(line, "h.csv", sep, {})
        except DataError:
            continue  # refused (empty, duplicate names, not CSV): the same either way below
        assert raw is not None, repr(line)
        assert [headers.get(n, n) for n in names] == raw, repr(line)
        checked += 1
    assert checked > 500


def test_a_header_longer_than_the_csv_field_limit_is_refused_as_before(tmp_path):
    path = tmp_path / "long.csv"
    path.write_bytes(b"x" * 200_000 + b",y\n1,2\n")
    with pytest.raises(DataError, match="longer than 131,072 characters"):
        read_csv(str(path))


def test_a_byte_of_the_header_that_is_not_utf8_is_placed_as_in_the_rows(tmp_path):
    # counted from 1 at the line's start, a byte-order mark included: the file's own byte
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\xef\xbb\xbfx,\xff\n1,2\n")
    with pytest.raises(DataError, match=r"line 1: byte 6 \(0xff\) is not UTF-8 text"):
        read_csv(str(path))
    path.write_bytes(b"x,\xff\n1,2\n")
    with pytest.raises(DataError, match=r"line 1: byte 3 \(0xff\) is not UTF-8 text"):
        read_csv(str(path))
    path.write_bytes(b"x,y\n1,\xff\n")  # the rows' own wording, which the header's follows
    with pytest.raises(DataError, match=r"line 2: byte 3 \(0xff\) is not UTF-8 text"):
        read_csv(str(path))
