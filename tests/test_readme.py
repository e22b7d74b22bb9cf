"""Every ```console example in README.md is real output: each block runs in bash, in a
scratch copy of the samples, through the installed ``adcli`` console script, and what the
commands print (stdout, then stderr) is compared with the README.

How loosely (the rules are few, and each one has a reason):

- Floating-point numbers agree to 1e-6 relative (or both below 1e-9 in size): another numpy
  or BLAS changes the last digits of an iterative fit. Everything else must be equal.
- Runs of spaces and of table rule characters count as one space: a number printed with a
  few more digits widens its column without changing what the table says.
- ``...`` in the README stands for any text (an elided JSON list, elided tables).
- Times (``227 µs``, ``20.8 s``), speed-up ratios (``1.9x``) and the bars of the log-scale
  chart are measurements, not results: they are compared as "a time", "a ratio", "a bar".
- Iteration and evaluation counts of fits within 50%, and the fit section's stopping reason
  loosely, for the reasons given in tests/test_readme_fit.py (which also checks that
  section's table of certified values and its Python example).

A command's exit status must be 0, or 2 when the README shows an ``Error:`` line, unless the
next line of the block is ``echo $?`` (which prints it, and is compared like any output).

To bring stale outputs up to date: ``python tests/test_readme.py`` (see :func:`regenerate`).

A block preceded by ``<!-- readme-test: skip (REASON) -->`` is not run; there is one, and the
test fails if more appear (see ``SKIPPED``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ADCLI = Path(sys.executable).parent / "adcli"
#: Blocks allowed to be skipped: the 1,001-input compare-modes run takes 40 s and needs a
#: generated 4 kB expression file (its figures are measurements quoted from one run).
SKIPPED = 1

NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
TIME = re.compile(r"~?\d[\d.,]*\s?(?:ns|µs|ms|s)\b")
RATIO = re.compile(r"~?\d[\d.,]*x\b")


def console_blocks() -> list[tuple[str, int, list[tuple[str, str]]]]:
    """(section, line, [(command, expected output)]) for every ```console block run."""
    blocks, section = [], "top"
    lines = README.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        found = re.match(r"<!-- section: (\S+) -->", line)
        if found:
            section = found.group(1)
        if line == "```console":
            start = i + 1
            skip = i > 0 and lines[i - 1].startswith("<!-- readme-test: skip")
            body = []
            i += 1
            while lines[i] != "```":
                body.append(lines[i])
                i += 1
            if not skip:
                blocks.append((section, start, _commands(body)))
        i += 1
    return blocks


def _commands(body: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in body:
        if line.startswith("$ "):
            out.append((line[2:], ""))
        else:
            assert out, f"output before any command: {line!r}"
            command, text = out[-1]
            out[-1] = (command, text + line + "\n")
    return out


def _normalise(text: str, section: str) -> str:
    text = text.strip()
    text = TIME.sub("TIME", text)
    text = RATIO.sub("RATIO", text)
    text = re.sub(r"█+", "BAR", text)
    # which sizes are extrapolated depends on the machine's speed (a loaded machine may
    # extrapolate n=100 too): the footnote lists each one
    text = re.sub(r"\(\d[\d,]* of [\d,]+ at n=[\d,]+(?:, \d[\d,]* of [\d,]+ at n=[\d,]+)*\)",
                  "(PASSES)", text)
    text = re.sub(r"log scale \(TIME … TIME\)", "log scale (RANGE)", text)
    if section == "fit" or "iterations" in text:
        text = re.sub(r"\b\d+(?= (?:iterations|gradient evaluations|evaluations|Jacobian))",
                      "COUNT", text)
        text = re.sub(r'(?<="iterations": )\d+|(?<="evaluations": )\d+', "COUNT", text)
    if section == "fit":
        text = re.sub(r"^converged: .*$", "converged: REASON", text, flags=re.M)
        text = re.sub(r'"reason": "[^"]*"', '"reason": REASON', text)
    text = re.sub(r"[ \t━─═]+", " ", text)
    return re.sub(r" ?\n ?", "\n", text)


def _counts(text: str) -> list[int]:
    found = re.findall(r"\b(\d+) (?:iterations|gradient evaluations|evaluations|Jacobian)",
                       text)
    found += re.findall(r'"(?:iterations|evaluations)": (\d+)', text)
    return [int(n) for n in found]


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if x == y:
        return True
    if abs(x) < 1e-9 and abs(y) < 1e-9:
        return True
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y))


def same_output(got: str, want: str, section: str) -> str | None:
    """None when ``got`` is what the README shows, else why not."""
    pairs = list(zip(_counts(got), _counts(want)))
    if len(_counts(got)) != len(_counts(want)):
        return "different iteration/evaluation counts shown"
    for a, b in pairs:
        if not 0.5 * b <= a <= 1.5 * b:
            return f"count {a} is not within 50% of {b}"
    g, w = _normalise(got, section), _normalise(want, section)
    pattern, want_numbers = [], []
    for k, part in enumerate(w.split("...")):
        if k:
            pattern.append("(?:.*?)")
        pos = 0
        for m in NUMBER.finditer(part):
            pattern.append(re.escape(part[pos:m.start()]) + f"({NUMBER.pattern})")
            want_numbers.append(m.group())
            pos = m.end()
        pattern.append(re.escape(part[pos:]))
    match = re.fullmatch("".join(pattern), g, re.S)
    if match is None:
        return "the text differs"
    for a, b in zip(match.groups(), want_numbers):
        if not _close(a, b):
            return f"{a} differs from {b}"
    return None


def _run_block(commands: list[tuple[str, str]], tmp: Path) -> list[tuple[str, str, int]]:
    """Run the commands in one bash, each one's stdout and stderr apart, in order."""
    script = ["set +e", "__rc=0"]
    for i, (command, _) in enumerate(commands):
        script.append(f"(exit $__rc); {{ {command}\n}} >{tmp}/out{i} 2>{tmp}/err{i}; __rc=$?; "
                      f"echo $__rc >{tmp}/rc{i}")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env["PATH"] = f"{ADCLI.parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp, env=env, check=True,
                   stdin=subprocess.DEVNULL, timeout=600)
    return [((tmp / f"out{i}").read_text(encoding="utf-8"),
             (tmp / f"err{i}").read_text(encoding="utf-8"),
             int((tmp / f"rc{i}").read_text()))
            for i in range(len(commands))]


BLOCKS = console_blocks()


def test_every_console_block_is_run() -> None:
    assert README.count("```console") == len(BLOCKS) + SKIPPED
    assert README.count("<!-- readme-test: skip") == SKIPPED


@pytest.mark.parametrize("section, line, commands", BLOCKS,
                         ids=[f"README.md:{b[1]}" for b in BLOCKS])
def test_console_block_is_real_output(tmp_path, section, line, commands) -> None:
    assert ADCLI.exists(), "the adcli console script is not installed beside this Python"
    if shutil.which("dot") is None and any(re.search(r"adcli graph .* -o \S+\.(?!dot\b)\w+$", c)
                                           for c, _ in commands):
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    for name in ("samples",):
        shutil.copytree(ROOT / name, tmp_path / name)
    results = _run_block(commands, tmp_path)
    for i, ((command, want), (out, err, rc)) in enumerate(zip(commands, results)):
        echoes = i + 1 < len(commands) and commands[i + 1][0] == "echo $?"
        if not echoes:
            expected_rc = 2 if re.search(r"^Error: ", want, re.M) else 0
            assert rc == expected_rc, f"{command}: exit {rc}\n{err}"
        why = same_output(out + err, want, section)
        if why is not None and err and out:
            why = same_output(err + out, want, section) and why
        assert why is None, (f"README.md:{line}: `{command}`: {why}\n--- printed:\n{out}{err}"
                             f"--- README shows:\n{want}")


@pytest.mark.parametrize("got, want, ok", [
    ("value 9.0\n", "value 9.0\n", True),
    ("value 9.0000000001\n", "value 9.0\n", True),
    ("value 9.1\n", "value 9.0\n", False),
    ("value 9.0 extra\n", "value 9.0\n", False),
    ('{"a": [1.0, 2.0, 3.0], "n": 3}', '{"a": [1.0, ...], "n": 3}', True),
    ('{"a": [1.0, 2.0, 3.0], "n": 4}', '{"a": [1.0, ...], "n": 3}', False),
    ("│ x │   15.0 │ 227 µs │ 1.9x │", "│ x │ 15.0 │ 3.1 ms │ 12x │", True),
    ("method bfgs, 40 iterations", "method bfgs, 37 iterations", True),
    ("method bfgs, 80 iterations", "method bfgs, 37 iterations", False),
])
def test_comparison_rules(got, want, ok) -> None:
    assert (same_output(got, want, "x") is None) is ok


PYTHON_BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if ">>>" in b]


def test_every_python_block_is_a_doctest() -> None:
    """A Python example either runs as a doctest (below) or is the op-table excerpt of the
    "how to add a primitive" section, which is checked against adcli/ops/__init__.py here."""
    others = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if ">>>" not in b]
    ops = (ROOT / "adcli" / "ops" / "__init__.py").read_text(encoding="utf-8")
    assert len(PYTHON_BLOCKS) >= 3
    for block in others:  # the same code, indented as a README block
        assert " ".join(block.split()) in " ".join(ops.split()), block


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.splitlines()[1][:40])
def test_python_block_runs(block, monkeypatch) -> None:
    import doctest

    monkeypatch.chdir(ROOT)
    test = doctest.DocTestParser().get_doctest(block, {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.tries > 0 and runner.failures == 0


def regenerate() -> int:
    """``python tests/test_readme.py``: rewrite the outputs in README.md that no longer match
    what the commands print (stdout, then stderr), leaving matching ones as they are (so
    float noise does not churn the README). Outputs with ``...`` are elided by hand: they are
    reported, not rewritten. Returns how many were left for a person to fix."""
    import tempfile

    lines = README.splitlines(keepends=True)
    left = 0
    for section, start, commands in reversed(console_blocks()):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "samples", Path(tmp) / "samples")
            results = _run_block(commands, Path(tmp))
        body: list[str] = []
        for (command, want), (out, err, _rc) in zip(commands, results):
            got = "".join(ln.rstrip() + "\n" for ln in (out + err).splitlines())
            if same_output(got, want, section) is None or "..." in want:
                if "..." in want and same_output(got, want, section) is not None:
                    print(f"README.md:{start}: `{command}` is elided with '...': fix by hand")
                    left += 1
                body.append(f"$ {command}\n{want}")
            else:
                print(f"README.md:{start}: `{command}`: rewritten")
                body.append(f"$ {command}\n{got}")
        end = start
        while lines[end] != "```\n":
            end += 1
        lines[start:end] = ["".join(body)]
    (ROOT / "README.md").write_text("".join(lines), encoding="utf-8")
    return left


if __name__ == "__main__":
    sys.exit(1 if regenerate() else 0)
