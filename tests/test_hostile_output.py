"""Hostile outputs and terminal injection (issue 20, items 1 and 2), through real processes.

1. Output files are written whole or not at all (:mod:`adcli.io.atomic`): SIGINT, SIGTERM and
   EFBIG (``ulimit -f``) in the middle of a write leave the old file byte-identical and no
   temporary behind; an output that is one of the inputs is refused; a symlink target is
   replaced, not written through; an output that cannot be written exits 1 for every writer.
2. Nothing from the input reaches stderr or DOT raw: no byte below 0x20 but newline and tab, no
   DEL, no C1 control, whatever control characters the expression, a value, a name, a file name
   or a column header holds (a property test over hostile strings, and every command).
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adcli.cli import cli

ADCLI = [sys.executable, "-m", "adcli"]
BASE_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1"}
OLD = b"old content: must survive\n"


def adcli(*args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*ADCLI, *map(str, args)], capture_output=True, timeout=timeout,
                          env=BASE_ENV, **kw)


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".adcli-tmp"))


def assert_error(done: subprocess.CompletedProcess, status: int, fragment: str) -> None:
    err = done.stderr.decode(errors="replace")
    assert done.returncode == status, (done.returncode, err)
    assert err.startswith("Error: ") and fragment in err, err
    assert "Traceback" not in err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(200)))
    return path


#: (name, argv with {d} the data, {o} the output, {g} a 2-parameter model file); each writes
#: well over 1 KiB to {o}.
WRITERS = [
    ("eval -o", ["eval", "x*y", "--data", "{d}", "-o", "{o}.csv"]),
    ("grad -o json", ["grad", "x*y*a", "--at", "a=2", "--data", "{d}", "--json", "-o",
                      "{o}.json"]),
    ("graph -o", ["graph", "+".join(f"sin(x*{i})" for i in range(40)), "--at", "x=1",
                  "-o", "{o}.dot"]),
    ("minimize --trace", ["minimize", "x^2+y^2", "--from", "x=1,y=1", "--method", "gd",
                          "--lr", "0.01", "--steps", "300", "--trace", "{o}.csv"]),
    ("minimize --plot", ["minimize", "(x-1)^2+(y-2)^2", "--from", "x=0,y=0", "--plot",
                         "{o}.svg"]),
    ("fit --plot", ["fit", "y ~ a*x + b", "--data", "{d}", "--plot", "{o}.svg"]),
]


def _argv(template: list[str], data: Path, out: Path) -> list[str]:
    return [a.format(d=data, o=out) for a in template]


def _target(template: list[str], out: Path) -> Path:
    return Path(next(a for a in template if "{o}" in a).format(o=out))


# --------------------------------------------------------------------------- 1: atomic

@pytest.mark.parametrize("name,template", WRITERS, ids=[w[0] for w in WRITERS])
def test_a_good_run_replaces_the_file_whole_and_keeps_its_mode(tmp_path, data, name,
                                                                template):
    target = _target(template, tmp_path / "out")
    target.write_bytes(OLD)
    target.chmod(0o640)
    done = adcli(*_argv(template, data, tmp_path / "out"))
    assert done.returncode == 0, done.stderr.decode()
    assert target.read_bytes() != OLD and len(target.read_bytes()) > 1024
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert temporaries(tmp_path) == []


def _small_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


@pytest.mark.parametrize("name,template", WRITERS, ids=[w[0] for w in WRITERS])
def test_efbig_under_ulimit_f_keeps_the_old_file(tmp_path, data, name, template):
    adcli(*_argv(template, data, tmp_path / "warm"))  # caches (grammar, fonts) written first
    target = _target(template, tmp_path / "out")
    target.write_bytes(OLD)
    done = adcli(*_argv(template, data, tmp_path / "out"), preexec_fn=_small_file_limit)
    assert_error(done, 1, "Error: cannot write output: ")
    assert "File too large" in done.stderr.decode()
    assert target.read_bytes() == OLD
    assert temporaries(tmp_path) == []


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """400,000 rows: writing their JSON takes about a second, time to signal it mid-write."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_text("x,y\n" + "".join(f"{i * 0.5!r},{i + 1}\n" for i in range(400_000)))
    return path


def _signal_mid_write(argv: list[str], directory: Path, signum: int) -> tuple[int, str]:
    """Start adcli, wait until its temporary exists and has grown, then send ``signum``."""
    proc = subprocess.Popen([*ADCLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=BASE_ENV, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                           signal.SIG_DFL))
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline and proc.poll() is None:
        names = temporaries(directory)
        if names and (directory / names[0]).stat().st_size > 0:
            seen = names[0]
            break
        time.sleep(0.002)
    assert seen is not None and proc.poll() is None, \
        "the write finished before the signal: the test would prove nothing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


@pytest.mark.parametrize("signum,status,message", [
    (signal.SIGINT, 130, "Error: interrupted"),
    (signal.SIGTERM, 143, "Error: terminated"),
])
def test_a_signal_mid_write_keeps_the_old_file(tmp_path, big, signum, status, message):
    target = tmp_path / "out.json"
    target.write_bytes(OLD)
    code, err = _signal_mid_write(["eval", "x*y", "--data", str(big), "--json", "-o",
                                   str(target)], tmp_path, signum)
    assert code == status, err
    assert err.strip() == message
    assert target.read_bytes() == OLD
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_traced_run_keeps_the_old_trace(tmp_path, signum, status):
    target = tmp_path / "trace.csv"
    target.write_bytes(OLD)
    code, err = _signal_mid_write(["minimize", "x^2+y^2", "--from", "x=1,y=1", "--method",
                                   "gd", "--lr", "1e-6", "--steps", "10000000", "--trace",
                                   str(target)], tmp_path, signum)
    assert code == status, err
    assert "Traceback" not in err
    assert target.read_bytes() == OLD
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["minimize", "(x-a)^2", "--data", "{d}", "--from", "a=0", "--trace", "{d}"],
    ["minimize", "(x-a)^2", "--data", "{d}", "--from", "a=0", "--trace", "{link}"],
    ["minimize", "(x-a)^2", "--data", "{d}", "--from", "a=0", "--trace", "{hard}"],
    ["eval", "x*y", "--data", "{d}", "-o", "{d}"],
    ["grad", "x*y", "--data", "{link}", "-o", "{hard}"],
    ["eval", "@{e}", "--data", "{d}", "-o", "{e}"],
    ["graph", "@{e}", "--format", "dot", "-o", "{e}"],
])
def test_an_output_that_is_an_input_is_refused(tmp_path, data, argv):
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    expr = tmp_path / "e.adc"
    expr.write_text("x*y")
    before = data.read_bytes()
    names = {"d": data, "link": tmp_path / "link.csv", "hard": tmp_path / "hard.csv",
             "e": expr}
    done = adcli(*[a.format(**names) for a in argv])
    assert_error(done, 2, "writing it would destroy it")
    assert data.read_bytes() == before and expr.read_text() == "x*y"
    assert (tmp_path / "link.csv").is_symlink()


def test_a_symlink_target_is_replaced_not_written_through(tmp_path, data):
    other = tmp_path / "other.csv"
    other.write_bytes(OLD)
    link = tmp_path / "out.csv"
    link.symlink_to(other)
    done = adcli("eval", "x*y", "--data", data, "-o", link)
    assert done.returncode == 0, done.stderr.decode()
    assert not link.is_symlink() and link.read_text().startswith("x,y,value\n")
    assert other.read_bytes() == OLD


@pytest.mark.parametrize("name,template", WRITERS, ids=[w[0] for w in WRITERS])
@pytest.mark.parametrize("where", ["missing directory", "a directory", "a directory/"])
def test_an_output_that_cannot_be_written_exits_1(tmp_path, data, name, template, where):
    if where == "missing directory":
        out = tmp_path / "no" / "such" / "out"
    else:
        out = tmp_path / "out"
        _target(template, out).mkdir()
    argv = _argv(template, data, out)
    if where.endswith("/"):
        argv = [a + "/" if a == str(_target(template, out)) else a for a in argv]
    done = adcli(*argv)
    assert_error(done, 1, "Error: cannot write output: ")
    assert temporaries(tmp_path) == []


def test_a_read_only_directory_exits_1(tmp_path, data):
    # Root writes through a directory's mode bits, so as root the directory that refuses the
    # temporary is one the kernel refuses to anyone (/sys takes no new files).
    locked = Path("/sys") if os.geteuid() == 0 else tmp_path / "locked"
    if locked != Path("/sys"):
        locked.mkdir()
        locked.chmod(0o500)
    try:
        done = adcli("eval", "x*y", "--data", data, "-o", locked / "out.csv")
    finally:
        if locked != Path("/sys"):
            locked.chmod(0o700)
    assert_error(done, 1, "Error: cannot write output: ")
    assert not (locked / "out.csv").exists()


def test_grad_data_renames_a_derivative_column_the_data_already_has(tmp_path):
    path = tmp_path / "dd.csv"
    path.write_text("x,d/dx\n1,5\n2,6\n")
    done = adcli("grad", "x^2", "--data", path)
    assert done.returncode == 0, done.stderr.decode()
    header, *rows = done.stdout.decode().splitlines()
    assert header.split(",") == ["x", "d/dx", "value", "d/dx_"]
    assert rows == ["1,5,1.0,2.0", "2,6,4.0,4.0"]
    assert "computed derivative is called 'd/dx_'" in done.stderr.decode()


def test_a_file_name_of_the_longest_length_still_gets_a_temporary(tmp_path, data):
    target = tmp_path / ("a" * 251 + ".csv")  # 255 bytes, the usual limit
    target.write_bytes(OLD)
    done = adcli("eval", "x*y", "--data", data, "-o", target)
    assert done.returncode == 0, done.stderr.decode()
    assert target.read_text().startswith("x,y,value\n")
    assert temporaries(tmp_path) == []


def test_a_device_target_is_written_in_place(tmp_path):
    done = adcli("graph", "x^2", "-o", "/dev/stdout")
    assert done.returncode == 0 and done.stdout.startswith(b"digraph adcli {")


# --------------------------------------------------------------------------- 2: escapes

#: What may not reach a terminal: C0 controls but newline and tab, DEL, and the C1 controls.
FORBIDDEN = {*range(0x20)} - {0x0A, 0x09} | {0x7F}


def assert_clean(stream: bytes, what: str = "") -> None:
    bad = sorted({b for b in stream if b in FORBIDDEN})
    assert not bad, (what, bad, stream[:500])
    text = stream.decode("utf-8", errors="replace")
    c1 = [hex(ord(c)) for c in text if 0x80 <= ord(c) <= 0x9F or c in "\u202e\u2066"]
    assert not c1, (what, c1, text[:500])


#: Hostile strings: window title (OSC 0), clipboard (OSC 52), clear screen, carriage return
#: over the line, bell, form feed, backspace, DEL, C1 CSI, a right-to-left override.
NASTY = ["\x1b]0;PWNED\x07", "\x1b]52;c;cHduZWQ=\x07", "\x1b[2J\x1b[H", "ok\rEVIL",
         "\x07\x0c\x08\x7f", "\x9b31m", "\u202eevil"]


def _every_command(tmp_path: Path, bad: str) -> list[list[str]]:
    """The commands, each with ``bad`` where the user may put text."""
    data = tmp_path / "d.csv"
    data.write_text(f"x,y,{bad}\n1,2,3\n2,5,4\n", encoding="utf-8")
    expr = tmp_path / "e.adc"
    expr.write_text(f"x^2 # {bad}\n\x00 {bad}", encoding="utf-8")
    return [
        ["eval", f"x + {bad}", "--at", "x=1"],
        ["eval", "x", "--at", f"x={bad}"],
        ["eval", "x", "--at", f"{bad}=1"],
        ["eval", f"@{expr}", "--at", "x=1"],
        ["eval", f"@{tmp_path / bad}", "--at", "x=1"],
        ["grad", "x*y", "--at", "x=1,y=2", "--wrt", f"x,{bad}"],
        ["grad", f"x + y{bad}", "--data", str(data)],
        ["grad", "x*z", "--data", str(data)],
        ["eval", "x*y", "--data", str(tmp_path / bad)],
        ["eval", "x*y", "--data", str(data), "--column", f"{bad}=x"],
        ["eval", "x*y", "--data", str(data), "-o", str(tmp_path / "no" / bad)],
        ["diff", f"sin(x) {bad}"],
        ["diff", "sin(x)", "--wrt", bad],
        ["hessian", "x*y", "--at", f"x=1,y={bad}"],
        ["compare-modes", "x*y", "--at", "x=1,y=2", "--direction", f"x={bad}"],
        ["minimize", "x^2", "--from", f"x={bad}"],
        ["minimize", "x^2", "--method", bad],
        ["minimize", "x^2", "--bounds", f"x={bad}"],
        ["minimize", "x^2", "--trace", str(tmp_path / bad / "t.csv")],
        ["minimize", "x^2", "--plot", str(tmp_path / f"{bad}.png")],
        ["fit", f"y ~ a*x + {bad}", "--data", str(data)],
        ["fit", "y ~ a*x", "--data", str(data), "--from", f"{bad}=1"],
        ["fit", "y ~ a*x", "--data", str(data), "--fix", f"a={bad}"],
        ["graph", f"x^2 # {bad}", "--at", "x=1"],
        ["graph", f"@{expr}"],
        ["graph", "x^2", "--at", f"x=1,{bad}=2"],
    ]


@pytest.mark.parametrize("bad", NASTY[:3] + NASTY[4:5] + NASTY[5:6])
def test_no_control_character_from_any_command_reaches_stderr_or_dot(tmp_path, bad):
    for argv in _every_command(tmp_path, bad):
        done = adcli(*argv)
        assert "Traceback" not in done.stderr.decode(errors="replace"), argv
        assert done.returncode in (0, 1, 2), (argv, done.returncode, done.stderr)
        assert_clean(done.stderr, f"stderr of {argv}")
        assert_clean(done.stdout, f"stdout of {argv}")


def test_the_issue_s_title_escape_is_shown_escaped():
    done = adcli("eval", "x + \x1b]0;PWNED\x07", "--at", "x=1")
    assert_error(done, 2, "unexpected character '\\x1b'")
    assert "\\x1b]0;PWNED\\x07" in done.stderr.decode()


def test_dot_labels_escape_cr_ff_bel_and_nul(tmp_path):
    expr = tmp_path / "e.adc"
    expr.write_bytes(b"x^2 # a\rb\x0cc\x07d\x00e")
    done = adcli("graph", f"@{expr}")
    assert done.returncode == 0, done.stderr.decode()
    assert_clean(done.stdout)
    assert b"a\\\\x0db\\\\x0cc\\\\x07d\\\\x00e" in done.stdout  # DOT text: a\\x0db... shows \x0d


def test_invalid_utf8_in_argv_is_an_error_not_a_traceback(tmp_path):
    done = subprocess.run([*ADCLI, "graph", b"x # \xff"], capture_output=True, env=BASE_ENV,
                          timeout=60)
    assert_error(done, 2, "EXPR is not UTF-8 text (byte 0xff at character 5)")
    done = subprocess.run([*ADCLI, "eval", "x", "--at", "x=1", "--data",
                           os.fsencode(tmp_path) + b"/\xff\x1b.csv"],
                          capture_output=True, env=BASE_ENV, timeout=60)
    assert_error(done, 2, "\\xff\\x1b.csv")
    assert_clean(done.stderr)


#: argv templates for the property test; {s} is the hostile string.
TEMPLATES = [
    ["eval", "x + {s}", "--at", "x=1"],
    ["eval", "x", "--at", "x={s}"],
    ["eval", "x", "--at", "{s}=1"],
    ["grad", "x*y", "--at", "x=1,y=2", "--wrt", "{s}"],
    ["diff", "sin(x)*{s}"],
    ["graph", "x^2 # {s}"],
    ["graph", "x^2 # {s}", "--at", "x=1"],
    ["hessian", "x*y", "--at", "x=1,y=2,{s}"],
    ["minimize", "x^2", "--from", "x=1", "--method", "{s}"],
    ["minimize", "x^2", "--from", "{s}"],
    ["compare-modes", "x", "--at", "x=1", "--direction", "{s}"],
]

hostile = st.text(alphabet=st.sampled_from(
    [chr(c) for c in (*range(1, 0x20), 0x7F, *range(0x80, 0xA0))]
    + list("\u202e\u2066\u2028[]:;=,#x1 ") + ["\udcff"]), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(TEMPLATES), text=hostile)
def test_property_nothing_hostile_reaches_stderr_or_dot_raw(template, text):
    result = CliRunner().invoke(cli, [a.replace("{s}", text) for a in template])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), repr(result.exception)
    assert_clean(result.stderr_bytes, f"stderr of {template} {text!r}")
    assert_clean(result.stdout_bytes, f"stdout of {template} {text!r}")


def test_a_bad_byte_in_an_expression_file_is_placed_at_its_offset_in_the_file(tmp_path):
    # a byte-order mark is dropped before decoding, but the byte named is the file's own
    expr = tmp_path / "e.adc"
    for text, where in ((b"x + \xff", 4), (b"\xef\xbb\xbfx + \xff", 7)):
        expr.write_bytes(text)
        done = adcli("eval", f"@{expr}", "--at", "x=1")
        assert_error(done, 2, f"is not UTF-8 text (byte {where})")
