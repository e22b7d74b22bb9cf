"""Hostile input and output, through real processes where real file descriptors matter
(caches, bounded reads, write errors, Ctrl-C, option validation, small leaks).

Every case checks the exit status, that stderr says ``Error:`` (or nothing, for a broken
pipe) and that no traceback escapes.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time

import pytest

ADCLI = [sys.executable, "-m", "adcli"]
BASE_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1"}
#: The parse tables from the cache, not from the package (whose grammar matches: see
#: adcli.language.lalr_tables), for the tests of the cache.
CACHE_ENV = {**BASE_ENV, "ADCLI_SHIPPED_TABLES": "0"}


def adcli(*args: str, env: dict | None = None, timeout: float = 60, **kw):
    return subprocess.run([*ADCLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or BASE_ENV, **kw)


def assert_error(result, status: int, fragment: str = "") -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stderr.startswith("Error: "), result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr


# --------------------------------------------------------------------------- 1, 2: caches

class _Payload:
    """Unpickling this creates ``marker``: proof that a planted cache file was executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _old_lark_cache_names(tmpdir) -> list:
    """Let Lark itself write its cache (``cache=True``, as adcli used to) into ``tmpdir``."""
    code = ("import lark; from adcli.language.grammar import grammar_path; "
            "lark.Lark(grammar_path().read_text(), parser='lalr', cache=True, "
            "maybe_placeholders=False)")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**BASE_ENV, "TMPDIR": str(tmpdir)}, timeout=60)
    return sorted(tmpdir.glob(".lark_cache_*"))


def test_a_planted_lark_cache_pickle_is_never_loaded(tmp_path):
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    names = _old_lark_cache_names(shared)
    assert names, "Lark wrote no cache file: the test would prove nothing"
    marker = tmp_path / "pwned"
    for path in [*names, shared / ".lark_cache_planted.tmp"]:
        # Lark's layout: a hash line, then a pickle it loads before checking that hash.
        path.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Payload(str(marker))))
    # The payload is live: Lark with its cache on would run it.
    code = ("import lark; from adcli.language.grammar import grammar_path\n"
            "try: lark.Lark(grammar_path().read_text(), parser='lalr', cache=True, "
            "maybe_placeholders=False)\nexcept Exception: pass")
    subprocess.run([sys.executable, "-c", code], env={**BASE_ENV, "TMPDIR": str(shared)},
                   timeout=60)
    assert marker.exists()
    marker.unlink()

    env = {**CACHE_ENV, "TMPDIR": str(shared), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for args, status in [
        (["eval", "x^2", "--at", "x=3"], 0),  # table cache missing: built from Lark
        (["eval", "x +", "--at", "x=1"], 2),  # syntax error: reported by Lark
        (["eval", "foo(x)", "--at", "x=1"], 2),  # name error
        (["eval", "x", "--at", "x=1+"], 2),  # --at value error
        (["grad", "x*y", "--at", "x=1,y=2"], 0),  # table cache present
    ]:
        result = adcli(*args, env=env)
        assert result.returncode == status, result.stderr
        assert "Traceback" not in result.stderr
    env["ADCLI_NO_GRAMMAR_CACHE"] = "1"
    assert adcli("eval", "x -", env=env).returncode == 2
    assert not marker.exists()


def _cache_file(xdg) -> str:
    (path,) = (xdg / "adcli").glob("lalr-*.json")
    return str(path)


def _swap_add_sub(path: str, fix_digest: bool) -> None:
    from adcli.language.lalr_tables import _digest

    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    swapped = 0
    for rule in doc["tables"]["rules"]:
        if rule[2] in ("add", "sub"):
            rule[2] = {"add": "sub", "sub": "add"}[rule[2]]
            swapped += 1
    assert swapped == 2
    if fix_digest:  # as a deliberate tamperer would: only the canary parse catches this
        doc["digest"] = _digest(json.dumps(doc["tables"], sort_keys=True).encode())
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


@pytest.mark.parametrize("fix_digest", [False, True])
def test_a_tampered_table_cache_is_rebuilt(tmp_path, fix_digest):
    env = {**CACHE_ENV, "XDG_CACHE_HOME": str(tmp_path)}
    assert adcli("eval", "x + y", "--at", "x=3,y=4", env=env).stdout.strip() == "7.0"
    directory = tmp_path / "adcli"
    assert directory.stat().st_mode & 0o777 == 0o700
    path = _cache_file(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    _swap_add_sub(path, fix_digest)
    result = adcli("eval", "x + y", "--at", "x=3,y=4", env=env)
    assert result.returncode == 0 and result.stdout.strip() == "7.0", result.stderr
    with open(path, encoding="utf-8") as fh:  # rewritten with the right tables
        rules = json.load(fh)["tables"]["rules"]
    assert [r[0] for r in rules if r[2] == "add"] == ["sum"]
    assert [r[1][1] for r in rules if r[2] == "add"] == ["PLUS"]


def test_the_table_cache_is_not_read_through_a_symlink_or_a_foreign_dir(tmp_path):
    env = {**CACHE_ENV, "XDG_CACHE_HOME": str(tmp_path)}
    adcli("eval", "1", env=env)
    path = _cache_file(tmp_path)
    elsewhere = str(tmp_path / "elsewhere.json")
    os.replace(path, elsewhere)
    _swap_add_sub(elsewhere, fix_digest=True)
    os.symlink(elsewhere, path)
    result = adcli("eval", "x + y", "--at", "x=3,y=4", env=env)
    assert result.stdout.strip() == "7.0"
    assert not os.path.islink(path)  # replaced by a fresh file, the target left alone
    # A cache dir that is a symlink (say into a shared place) is not used at all.
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(tmp_path / "adcli", linked / "adcli")
    before = sorted(os.listdir(tmp_path / "adcli"))
    result = adcli("eval", "x - y", "--at", "x=3,y=4",
                   env={**CACHE_ENV, "XDG_CACHE_HOME": str(linked)})
    assert result.stdout.strip() == "-1.0"
    assert sorted(os.listdir(tmp_path / "adcli")) == before


# --------------------------------------------------------------------------- 3: bounded reads

def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (300 << 20, 300 << 20))


@pytest.mark.parametrize("args, stdin", [
    (["eval", "@/dev/zero"], None),
    (["eval", "-"], "/dev/zero"),
    (["minimize", "x^2", "--data", "/dev/zero"], None),
])
def test_endless_inputs_end_quickly_under_300_mb(args, stdin):
    start = time.monotonic()
    with open(stdin or os.devnull, "rb") as fh:
        result = adcli(*args, stdin=fh, preexec_fn=_limit_memory, timeout=30)
    assert time.monotonic() - start < 20
    fragment = "header line is longer" if "--data" in args else "over the limit of"
    assert_error(result, 2, fragment)


def test_data_from_a_pipe_is_read_once(tmp_path):
    rows = "x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(20))
    result = adcli("minimize", "(a + b*x - y)^2", "--data", "/dev/stdin", "--json",
                   input=rows)
    assert result.returncode == 0, result.stderr
    x = json.loads(result.stdout)["minimum"]
    assert x["a"] == pytest.approx(1, abs=1e-6) and x["b"] == pytest.approx(2, abs=1e-6)


def test_data_over_max_data_size_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "1,2\n" * 1000)
    result = adcli("minimize", "(a*x - y)^2", "--data", str(path), "--max-data-size", "1K")
    assert_error(result, 2, "over the limit of 1,024 bytes")
    assert "--max-data-size" in result.stderr
    ok = adcli("minimize", "(a*x - y)^2", "--data", str(path), "--max-data-size", "1M")
    assert ok.returncode == 0, ok.stderr


def test_expression_file_with_a_byte_order_mark(run, tmp_path):
    path = tmp_path / "f.adc"
    path.write_bytes(b"\xef\xbb\xbfx^2 + 1\n")
    result = run("eval", f"@{path}", "--at", "x=3")
    assert result.exit_code == 0 and result.stdout.strip() == "10.0"


# --------------------------------------------------------------------------- 5: output errors

@pytest.mark.parametrize("args", [
    ["eval", "x", "--at", "x=1"],
    ["grad", "x*y", "--at", "x=1,y=2"],
    ["grad", "x*y", "--at", "x=1,y=2", "--json"],
    ["diff", "sin(x)"],
    ["graph", "x^2"],
])
def test_stdout_to_a_full_disk(args):
    with open("/dev/full", "w") as full:
        result = subprocess.run([*ADCLI, *args], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=60, env=BASE_ENV)
    assert_error(result, 1, "Error: cannot write output: No space left on device")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [
    ["minimize", "x^2", "--from", "x=1", "--trace", "/dev/full"],
    ["minimize", "x^2", "--from", "x=1", "--trace", "/nonexistent/dir/t.csv"],
    ["minimize", "x^2", "--from", "x=1", "--plot", "/nonexistent/dir/p.svg"],
    ["graph", "x^2", "-o", "/nonexistent/dir/g.dot"],
    ["graph", "x^2", "-o", "/dev/full"],
])
def test_output_files_that_cannot_be_written(args):
    result = adcli(*args)
    assert_error(result, 1, "Error: cannot write output: ")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An expression whose node tables and graphs are well over a pipe's 64 KiB buffer."""
    path = tmp_path_factory.mktemp("big") / "big.adc"
    path.write_text("+".join(f"sin(x*{i})*y{i % 50}" for i in range(1500)))
    return f"@{path}"


AT = ",".join(["x=0.5", *(f"y{i}=1" for i in range(50))])
LONG_MINIMIZE = ["minimize", "x^2+y^2", "--from", "x=1,y=1", "--method", "gd", "--lr", "1e-4",
                 "--steps", "20000"]


def _broken_pipe(argv: list[str], read_first: bool) -> None:
    proc = subprocess.Popen([*ADCLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=BASE_ENV)
    if read_first:  # like `| head -c 16`: the reader goes away in the middle
        assert proc.stdout.read(16)
    proc.stdout.close()  # otherwise like `| true`: gone before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


@pytest.mark.parametrize("args", [
    ["eval", "x", "--at", "x=1"],
    ["eval", "x", "--at", "x=1", "--json"],
    ["grad", "x*y", "--at", "x=1,y=2"],
    ["grad", "x*y", "--at", "x=1,y=2", "--json"],
    ["diff", "sin(x)"],
    ["diff", "sin(x)", "--json"],
    ["hessian", "x*y", "--at", "x=1,y=2"],
    ["hessian", "x*y", "--at", "x=1,y=2", "--json"],
    ["graph", "x^2"],
    ["compare-modes", "x*y", "--at", "x=1,y=2", "--repeat", "1"],
    ["compare-modes", "x*y", "--at", "x=1,y=2", "--repeat", "1", "--json"],
    ["minimize", "x^2", "--from", "x=1"],
    ["minimize", "x^2", "--from", "x=1", "--json"],
    [*LONG_MINIMIZE, "--trace", "/dev/stdout", "--json"],
])
def test_a_closed_pipe_exits_141_quietly(args):
    _broken_pipe(args, read_first=False)


@pytest.mark.parametrize("args", [
    ["grad", "{big}", "--at", AT, "--max-rows", "0"],
    ["grad", "{big}", "--at", AT, "--json", "--max-rows", "0"],
    ["graph", "{big}", "--at", AT],
    [*LONG_MINIMIZE, "--trace", "/dev/stdout"],
])
def test_a_pipe_closed_in_the_middle_exits_141_quietly(big, args):
    _broken_pipe([a.format(big=big) for a in args], read_first=True)


# --------------------------------------------------------------------------- 6: Ctrl-C

def test_ctrl_c_exits_130():
    args = ["compare-modes", "--scaling", "rosenbrock", "--sizes", "10000", "--budget", "0"]
    # SIGINT as at a terminal: a shell starts background jobs with it ignored (and Python
    # keeps it ignored), which is how this suite may itself be running.
    proc = subprocess.Popen([*ADCLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=BASE_ENV, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(3)  # well past start-up (0.3 s): inside the command
    assert proc.poll() is None, "finished before the signal: the test would prove nothing"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "Error: interrupted"


# --------------------------------------------------------------------------- 7: options

@pytest.mark.parametrize("args, fragment", [
    (["--lr", "nan"], "'--lr': 'nan' is not a finite number"),
    (["--lr", "inf"], "'--lr': 'inf' is not a finite number"),
    (["--lr", "0"], "'--lr'"),
    (["--momentum", "nan"], "'--momentum': 'nan' is not a finite"),
    (["--tol", "nan"], "'--tol': 'nan' is not a finite"),
    (["--tol", "inf"], "'--tol': 'inf' is not a finite"),
    (["--init-scale", "inf"], "'--init-scale'"),
    (["--init-scale", "nan"], "'--init-scale'"),
    (["--init-scale", "1e308"], "'--init-scale'"),
    (["--seed", "-1"], "'--seed'"),
    (["--steps", "-3"], "'--steps'"),
    (["--batch-size", "0"], "'--batch-size'"),
    (["--max-size", "-1"], "'--max-size'"),
    (["--max-data-size", "12Q"], "'--max-data-size'"),
    (["--bogus"], "No such option"),
])
def test_bad_options_are_one_error_line(run, args, fragment):
    result = run("minimize", "x^2", "--from", "x=1", "--method", "gd", *args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ") and fragment in lines[0]
    assert len(lines) <= 2 and all(ln.startswith("Try ") for ln in lines[1:])
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr


@pytest.mark.parametrize("args", [
    ["compare-modes", "x", "--at", "x=1", "--budget", "nan"],
    ["compare-modes", "x", "--at", "x=1", "--budget", "inf"],
    ["grad"],
    ["grad", "x", "--unknown"],
    ["nosuchcommand"],
])
def test_usage_errors_are_one_error_line(run, args):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ") and len(lines) <= 2
    assert "Usage:" not in result.stderr and "Traceback" not in result.stderr


def test_size_suffixes(run):
    assert run("eval", "x*" * 600 + "x", "--at", "x=1", "--max-size", "1K").exit_code == 2
    assert run("eval", "x*" * 600 + "x", "--at", "x=1", "--max-size", "2K").exit_code == 0


# --------------------------------------------------------------------------- 12: small ones

@pytest.mark.parametrize("command", ["hessian", "grad"])
def test_wrt_with_a_repeated_name_counts_it_once(run, command):
    result = run(command, "x*y + x^2", "--at", "x=1,y=2", "--wrt", "x,y,x", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    if command == "hessian":
        assert out["variables"] == ["x", "y"] and out["hessian"] == [[2.0, 1.0], [1.0, 0.0]]
    else:
        assert list(out["gradient"]) == ["x", "y"]


def test_diff_wrt_with_a_repeated_name_counts_it_once(run):
    out = json.loads(run("diff", "x*y", "--wrt", "y,x,y", "--json").stdout)
    assert out["wrt"] == ["y", "x"] and len(out["derivative"]) == 2


@pytest.mark.parametrize("value", ["\uff11", "\u0661", "1\uff10", "\uff11e2"])
def test_at_takes_only_ascii_numbers(run, value):
    result = run("eval", "x", "--at", f"x={value}")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")
    assert "is not a number" in result.stderr


@pytest.mark.parametrize("value, shown", [
    ("nan", "nan"), ("NaN", "nan"), ("-nan", "nan"), ("+NAN", "nan"),
    ("inf", "inf"), ("+inf", "inf"), ("-inf", "-inf"), ("Infinity", "inf"),
    ("-INFINITY", "-inf"),
])
def test_one_rule_for_nan_and_inf(run, value, shown):
    result = run("eval", "x", "--at", f"x={value}", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["value"] == shown


@pytest.mark.parametrize("value", ["nana", "in", "--inf", "inff", "n an"])
def test_near_misses_of_nan_and_inf_are_refused(run, value):
    result = run("eval", "x", "--at", f"x={value}")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")


@pytest.mark.parametrize("text", [
    "a" * 1_000_000 + "(x)",  # unknown function: the name is in the message
    "x + " + "b" * 1_000_000 + " 1",  # syntax error far into a long line
    "c" * 1_000_000,  # a variable with no value
])
def test_a_huge_identifier_is_not_echoed_in_full(tmp_path, text):
    path = tmp_path / "long.adc"
    path.write_text(text)
    result = adcli("eval", f"@{path}", "--at", "x=1")
    assert_error(result, 2)
    assert len(result.stderr) < 1000
    assert "..." in result.stderr


def test_a_huge_name_in_a_warning_is_cut(run):
    name = "d" * 100_000
    result = run("eval", "x", "--at", f"x=1,{name}=2")
    assert result.exit_code == 0 and result.stdout.strip() == "1.0"
    assert result.stderr.startswith("Warning: ") and len(result.stderr) < 400


# ------------------------------------------------- 1: error paths need no Lark, same messages

_PIECES = ["x", "y", "sin", "max", "foo", "1", "2.5e3", ".5", "+", "-", "*", "/", "^", "**",
           "(", ")", ",", "=", ";", "\n", " ", "#c\n", "$", "\u00e9", "\uff11", "a1", "_"]


def _bad_inputs() -> list[str]:
    import random

    rng = random.Random(10)
    texts = ["x +", "x + * y", "x $ y", "(x", "x)", "foo(x)", "sin(x, y)", "x +\n1", "2x",
             "x**", "a = ; b", "max()", "x y", "a = 1\nb =", "sin(", "f()", "((x)", "x = = 1",
             "x;;;y +", "1 2", "pow(1,2,3)", "sin(x)(y)", "x ** ** 2", "-", "x, y", "x =\n",
             "a = sin(x, foo(y))", "max(1, foo(2), 3)", "foo(1 $)", "x +\r\n", "é", "x１"]
    for _ in range(3000):
        texts.append("".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 9))))
    return texts


def test_syntax_and_name_errors_are_lark_s_without_building_lark():
    from adcli.errors import AdcliError
    from adcli.language.grammar import _lark_parse
    from adcli.language.lalr import REFUSED
    from adcli.language.parse_errors import _diagnose
    from adcli.language.parser import _fast_parse

    compared = 0
    for text in _bad_inputs():
        if not text.strip():
            continue
        try:
            _fast_parse(text)
            continue  # valid input: nothing to compare
        except REFUSED:  # anything else is a bug in the driver, and fails here
            pass
        try:
            _lark_parse(text)
            lark_error = None
        except AdcliError as err:
            lark_error = err
        ours = _diagnose(text)
        if lark_error is None:
            assert ours is None, text
            continue
        assert ours is not None, text
        assert (type(ours), ours.message, ours.line, ours.column, ours.hint) == (
            type(lark_error), lark_error.message, lark_error.line, lark_error.column,
            lark_error.hint), repr(text)
        compared += 1
    assert compared > 1000


@pytest.mark.parametrize("tables", ["package", "cache"])
def test_error_paths_do_not_import_lark(tmp_path, tables):
    code = ("import sys\nfrom adcli import parse\nfrom adcli.errors import AdcliError\n"
            "parse('x + y')\n"
            "for text in ['x +', 'foo(x)', 'x $ 1', 'sin(1, 2)']:\n"
            "    try: parse(text)\n    except AdcliError: pass\n"
            "print('lark' in sys.modules)")
    env = {**(CACHE_ENV if tables == "cache" else BASE_ENV), "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)  # fills the cache
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("args, value", [
    (["eval", "-x^2", "--at", "x=3"], "-9.0"),
    (["eval", "--at", "x=3", "-2 + x"], "1.0"),
    (["eval", "--at", "x=3", "--", "-x"], "-3.0"),  # explicit -- still works
    (["eval", "- x", "--json", "--at", "x=1"], '{"value": -1.0}'),
])
def test_an_expr_starting_with_minus_is_not_an_option(run, args, value):
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == value


def test_option_values_starting_with_minus_stay_values(run):
    result = run("minimize", "x^2", "--method", "gd", "--lr", "-1")
    assert result.exit_code == 2 and "'--lr': -1.0 is not in the range" in result.stderr
    assert "Value of EXPR at a point." in run("eval", "-h").stdout
