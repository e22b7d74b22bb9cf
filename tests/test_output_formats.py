"""The output seam: commands hand result records to a format chosen by name, so adding an
output format is one module. Proved by adding one: a throwaway module, written to a temporary
directory and found by the same import-by-name the built-in ``json`` and ``text`` formats use,
renders the record of every command without any other file changing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_json_golden import CASES, GOLDEN

from adcli.output import formats
from adcli.output.formats import text
from adcli.output.numbers import DEFAULT_DIGITS, num

PROBE = '''
"""A throwaway format: each record as its class name and its JSON keys."""

import sys

from adcli.results import fields_of

SEEN = []


def show(record, **options):
    SEEN.append(type(record).__name__)
    sys.stdout.write(type(record).__name__ + "\\n")
    sys.stdout.write(" ".join(fields_of(record)) + "\\n")
'''

#: Every record a command prints (the writers of --data rows stream instead: no record).
RECORDS = {"GradReport", "EvalResult", "Derivatives", "HessianReport", "MinimizeResult",
           "Comparison", "ScalingReport", "FitResult", "Explanation"}

RECORD_CASES = [c for c in CASES if "--data" not in c[2] or c[2][0] in ("minimize", "fit")]


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    monkeypatch.setattr(formats, "__path__", [*formats.__path__, str(tmp_path)])
    monkeypatch.setattr(formats, "chosen", lambda as_json: "probe")
    monkeypatch.delitem(sys.modules, "adcli.output.formats.probe", raising=False)
    yield
    sys.modules.pop("adcli.output.formats.probe", None)


@pytest.mark.parametrize("name,exact,argv", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_a_new_format_is_one_module(run, probe, name: str, exact: bool, argv: list[str]) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    result = run(*argv)
    assert result.exit_code == golden["exit"], result.stderr
    record, keys = result.stdout.splitlines()
    assert record in RECORDS
    document = golden["stdout"]
    want = list(json.loads(document)) if exact else [key for key, _ in document]
    assert keys.split() == want  # the record the JSON format would have written


def test_the_probe_saw_every_record(run, probe) -> None:
    from importlib import import_module

    for _, _, argv in RECORD_CASES:
        run(*argv)
    seen = import_module("adcli.output.formats.probe").SEEN
    assert set(seen) == RECORDS


def test_the_text_format_writes_every_record() -> None:
    assert set(text.WRITERS) == RECORDS


def test_an_unknown_format_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        formats.show(object(), "no_such_format")


def test_one_digits_default_for_every_command(run) -> None:
    """fit printed 11 digits by default; every command now shows the one default."""
    for command in ("grad", "eval", "hessian", "compare-modes", "explain", "fit"):
        help_text = run(command, "--help").stdout
        assert f"[default: {DEFAULT_DIGITS};" in " ".join(help_text.split()), command


def test_fit_numbers_follow_the_one_formatter(run) -> None:
    argv = ["fit", "y ~ a*exp(-b*x)", "--data",
            str(Path(__file__).resolve().parent.parent / "samples" / "exp_decay.csv"),
            "--from", "a=1,b=1"]
    doc = json.loads(run(*argv, "--json").stdout)
    a = doc["parameters"]["a"]
    shown = run(*argv).stdout
    assert f"a {num(a, style='g')} " in " ".join(shown.split())
    assert num(a, style="g") == f"{a:.12g}"
    four = run(*argv, "--digits", "4").stdout
    assert f"a {a:.4g} " in " ".join(four.split())


@pytest.mark.parametrize("value, digits, style, want", [
    (0.1 + 0.2, 12, "float", "0.3"),
    (-0.0, 12, "float", "0.0"),
    (2.0, 12, "float", "2.0"),
    (2.0, 12, "g", "2"),
    (1e-5, 3, "g", "1e-05"),
    (float("nan"), 12, "g", "nan"),
    (float("-inf"), 12, "float", "-inf"),
    (0.1 + 0.2, 0, "float", "0.30000000000000004"),
    (0.1 + 0.2, 0, "g", "0.30000000000000004"),
    (123456.789, 4, "float", "123500.0"),
])
def test_num(value: float, digits: int, style: str, want: str) -> None:
    assert num(value, digits, style=style) == want
