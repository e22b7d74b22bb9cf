"""README's "fit" section is real output: its console examples are run and compared (text
exactly, floating-point numbers to 1e-6 relative so another BLAS may differ in the last digits),
its table of certified values is checked against NIST's file and adcli's own run, and its
Python example is run as a doctest.

The engine stops when its relative tests reach rounding noise (tolerances 1e-15), so which of
the ftol/xtol tests fires first and how many evaluations the last rejected steps take can change
with the last bits of the arithmetic (another BLAS, a reordered sum): those two, the stopping
reason and the evaluation counts, are compared loosely (a converged reason; counts within 50%)."""

from __future__ import annotations

import doctest
import json
import re
import shlex
from pathlib import Path

import pytest
from nist_strd import load, lre

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("<!-- section: fit -->")
    return text[start:text.index("<!-- section:", start + 10)]


def console_examples() -> list[tuple[str, str]]:
    examples = []
    for block in re.findall(r"```console\n(.*?)```", section(), re.S):
        command, output = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    examples.append((command, "\n".join(output)))
                command, output = line[2:], []
            else:
                output.append(line)
        examples.append((command, "\n".join(output)))
    return examples


def _loose(text: str) -> str:
    text = re.sub(r"^converged: .*$", "converged: REASON", text, flags=re.M)
    text = re.sub(r'"reason": "[^"]*"', '"reason": REASON', text)
    return text


def _counts(text: str) -> list[int]:
    found = re.findall(r"(\d+) (?:iterations|evaluations|Jacobian evaluations)", text)
    found += re.findall(r'"(?:iterations|evaluations)": (\d+)', text)
    return [int(n) for n in found]


def same_output(got: str, want: str) -> bool:
    got, want = _loose(got.strip()), _loose(want.strip())
    counts = list(zip(_counts(got), _counts(want)))
    if any(not 0.5 * b <= a <= 1.5 * b for a, b in counts):
        return False
    strip = re.compile(r"\d+(?= (?:iterations|evaluations|Jacobian))|(?<=\"iterations\": )\d+|"
                       r"(?<=\"evaluations\": )\d+")
    got, want = strip.sub("N", got), strip.sub("N", want)
    if NUMBER.sub("#", got) != NUMBER.sub("#", want):
        return False
    pairs = zip(NUMBER.findall(got), NUMBER.findall(want))
    return all(float(a) == pytest.approx(float(b), rel=1e-6) for a, b in pairs)


@pytest.mark.parametrize("command, expected", console_examples(),
                         ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_console_examples_are_real_output(run, monkeypatch, command, expected):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)
    assert args[0] == "adcli"
    result = run(*args[1:])
    assert result.exit_code == 0, result.stderr
    assert same_output(result.stdout, expected), result.stdout


def test_certified_table_matches_nist_and_adcli(run, monkeypatch):
    monkeypatch.chdir(ROOT)
    problem = load("Rat43")
    command = next(c for c, _ in console_examples() if c.endswith("--json"))
    doc = json.loads(run(*shlex.split(command)[1:]).stdout)
    rows = [ln.split("|")[1:-1] for ln in section().splitlines()
            if re.match(r"\| (b\d|RSS) \|", ln)]
    assert [r[0].strip() for r in rows] == ["b1", "b2", "b3", "b4", "RSS"]
    for cells in rows:
        name, cert, ours, digits, *sd = (c.strip() for c in cells)
        if name == "RSS":
            want_cert, got = problem.rss, doc["rss"]
        else:
            want_cert, got = problem.certified[name], doc["parameters"][name]
            cert_sd, ours_sd, sd_digits = sd
            assert float(cert_sd) == problem.certified_sd[name]
            assert float(ours_sd) == pytest.approx(doc["stderr"][name], rel=1e-6)
            assert float(sd_digits) == pytest.approx(
                lre(doc["stderr"][name], problem.certified_sd[name]), abs=0.3)
        assert float(cert) == want_cert
        assert float(ours) == pytest.approx(got, rel=1e-6)
        assert float(digits) == pytest.approx(lre(got, want_cert), abs=0.3)


def test_python_example_runs():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section(), re.S) if ">>>" in b]
    assert blocks
    for block in blocks:
        test = doctest.DocTestParser().get_doctest(block, {}, "README fit", "README.md", 0)
        runner = doctest.DocTestRunner()
        runner.run(test)
        assert runner.failures == 0 and runner.tries > 0
