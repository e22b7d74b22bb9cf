"""The plain text of the fit report (:mod:`adcli.output.fitreport`) is rich's bytes where stdout
is no terminal: the same report through both renderers, over fits with every section (fixed
parameters, weights, intervals and their notes, derived quantities, long and indexed names, a
fit that did not converge, a perfect one), console widths and ``--digits``."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import adcli
from adcli.output import fitreport, numbers, render
from adcli.regression.profile import profile
from adcli.regression.uncertainty import wald

ROOT = Path(__file__).resolve().parent.parent

_X = np.linspace(0, 4, 30)
_NOISE = np.random.default_rng(7).normal(0, 0.05, _X.size)
_DECAY = {"x": _X, "y": 4 * np.exp(-1.3 * _X) + 0.5 + _NOISE}


def _decay(**options):
    return adcli.fit("y ~ a*exp(-b*x) + c", _DECAY, start={"a": 1, "b": 1}, **options)


def _with_ci(method: str, levels: list[float], **options):
    result = _decay(**options)
    result.ci = (wald if method == "wald" else profile)(result, levels)
    return result


def _derived():
    result = _decay()
    result.derive("t_half = log(2)/b", "y0 = a + c")
    return result


def _long_names():
    long = "a_parameter_with_a_long_name"
    return adcli.fit(f"y ~ {long}*exp(-b*x) + c", _DECAY, start={long: 1, "b": 1})


FITS = {
    "line": lambda: adcli.fit("y ~ a*x + b", {"x": _X, "y": 0.7 * _X + 2.5 + _NOISE}),
    "decay": _decay,
    "fixed": lambda: _decay(fix={"c": 0.5}),
    "weighted": lambda: _decay(sigma=np.full(_X.size, 0.05)),
    "absolute sigma": lambda: _decay(sigma=np.full(_X.size, 0.05), absolute_sigma=True),
    "wald": lambda: _with_ci("wald", [0.95, 0.99]),
    "profile": lambda: _with_ci("profile", [0.6827, 0.9545, 0.9973]),
    "profile at a bound": lambda: _with_ci("profile", [0.95], bounds={"b": (0, 1.31)}),
    "derived": _derived,
    "one parameter": lambda: adcli.fit("y ~ a*x", {"x": _X, "y": 0.7 * _X + _NOISE}),
    "not converged": lambda: _decay(max_evaluations=3),
    "not identifiable": lambda: adcli.fit("y ~ a*b*x", {"x": _X, "y": 0.7 * _X + _NOISE}),
    "perfect": lambda: adcli.fit("y ~ a*x + b", {"x": _X, "y": 2 * _X + 1}),
    "long names": _long_names,
    "indexed": lambda: adcli.fit("y ~ a[1]*exp(-a[2]*x) + c", _DECAY,
                                 start={"a[1]": 1, "a[2]": 1}),
}


@pytest.fixture(scope="module")
def fits():
    return {name: make() for name, make in FITS.items()}


def _rich(result, width: int, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    with redirect_stdout(out):
        render.fit_result(result)
    return out.getvalue()


@pytest.mark.parametrize("name", list(FITS))
@pytest.mark.parametrize("width", [5, 20, 40, 80, 200])
@pytest.mark.parametrize("digits", [12, 3, 0])
def test_plain_fit_report_is_richs_bytes(fits, name, width, digits, monkeypatch):
    numbers.set_digits(digits)
    try:
        text = fitreport.fit_text(fits[name], width=width)
        want = _rich(fits[name], width, monkeypatch)
    finally:
        numbers.set_digits(numbers.DEFAULT_DIGITS)
    if text is not None:  # None: rich folds a label or wraps a line (see the next test)
        assert text == want


def test_plain_fit_report_covers_the_common_cases(fits):
    """Only what rich would fold or wrap goes to rich: a label over 12 columns in a table wider
    than the console, a word wider than the console."""
    at_80 = {name for name, result in fits.items() if fitreport.fit_text(result, width=80) is None}
    assert at_80 == {"long names"}  # 84 columns, whose label rich folds
    assert len(fitreport.fit_text(fits["profile"], width=80).splitlines()[6]) > 80  # 3 levels
    at_200 = {name for name, result in fits.items()
              if fitreport.fit_text(result, width=200) is None}
    assert at_200 == set()
    assert fitreport.fit_text(fits["long names"], width=40) is None
    assert fitreport.fit_text(fits["line"], width=5) is None  # "correlation" folds


def test_the_sections_are_there(fits):
    text = fitreport.fit_text(fits["absolute sigma"], width=200)
    assert "reduced chi-square" in text and fitreport.ABSOLUTE_NOTE in text
    assert "(weighted)" in text
    assert "(fixed)" in fitreport.fit_text(fits["fixed"], width=80)
    notes = fitreport.fit_text(fits["profile at a bound"], width=80)
    assert "b: the 95% upper end reaches the bound b = 1.31" in notes
    assert fitreport.fit_text(fits["not converged"], width=80).startswith("not converged: ")
    assert "<1e-300" in fitreport.fit_text(fits["perfect"], width=80)


def test_text_rich_would_interpret_goes_to_rich(fits):
    result = fits["line"]
    original = result.reason
    try:
        for reason, plain in [("a [bold] reason", True), ("a :smile: reason", False),
                              ("tab\there", False), ("back\\slash [bold]", False)]:
            result.reason = reason
            assert (fitreport.fit_text(result, width=80) is not None) == plain
    finally:
        result.reason = original


def test_the_command_writes_the_plain_text_through_a_pipe():
    """``adcli fit`` into a pipe: the README's bytes (tests/test_readme_fit.py pins them) with
    neither rich imported nor the table laid out by it."""
    code = ("import sys; from adcli.cli import main; sys.argv = ['adcli'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(str(sorted(m for m in sys.modules if m.startswith('rich'))))")
    out = subprocess.run([sys.executable, "-c", code, "fit", "y ~ a*exp(-b*x) + c", "--data",
                          str(ROOT / "samples" / "exp_decay.csv"), "--from", "a=1,b=1",
                          "--ci", "wald", "--derive", "t_half = log(2)/b"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert out.stderr == "[]"
    assert out.stdout.startswith("converged: ")
    assert "confidence intervals (wald, t(47))" in out.stdout and "t_half" in out.stdout
