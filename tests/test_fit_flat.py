"""A fit whose tolerance tests pass on a plateau is not converged: a model placed far from its
data underflows, so r stays the data, J is zero to rounding and every test passes at once.
``adcli fit`` said "converged (gtol)", exit 0, with standard errors; now the least-squares
engine looks (adcli.regression.lm.flat_stop) and the fit ends not converged, exit 1, in
memory and over partitions, while a fit that reaches the minimum stays converged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adcli.regression.leastsq import FLAT_STOP, REASONS
from adcli.regression.lm import flat_stop as _flat

GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
              0.1295, 0.0540, 0.0175, 0.0044, 0.0009]
MODEL = "y ~ a*exp(-b*(t - c)^2/2)"


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "gaussian.csv"
    path.write_text("t,y\n" + "".join(f"{(8 - i) / 2},{GAUSSIAN_Y[i - 1]}\n"
                                      for i in range(1, 16)))
    return path


@pytest.mark.parametrize("extra", [[], ["--scheduler", "synchronous"]])
def test_a_fit_started_on_a_plateau_is_not_converged(run, data, extra):
    result = run("fit", MODEL, "--data", str(data), "--from", "a=4,b=10,c=30", *extra)
    assert result.exit_code == 1, result.stderr
    assert result.stdout.startswith("not converged: " + REASONS[FLAT_STOP])
    assert "Traceback" not in result.stderr
    assert "Warning: the fit did not converge" in result.stderr
    out = json.loads(run("fit", MODEL, "--data", str(data), "--from", "a=4,b=10,c=30",
                         "--json", *extra).stdout)
    assert out["converged"] is False


@pytest.mark.parametrize("extra", [[], ["--scheduler", "synchronous"]])
def test_the_same_fit_from_a_near_start_converges(run, data, extra):
    result = run("fit", MODEL, "--data", str(data), "--from", "a=1,b=1,c=0.5", "--json", *extra)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["converged"] is True
    # MGH's problem 9 minimum: 1.12793e-8 (the sum of squares at x = 0.3989561, 1.0000191, 0)
    assert out["rss"] == pytest.approx(1.12793e-8, rel=1e-4)


class _Linear:
    """r(b) = A b - y over fixed rows: the engine's residual interface, no data files."""

    def __init__(self, a: np.ndarray, y: np.ndarray) -> None:
        self.a, self.y = a, y
        self.evaluations = self.jacobians = 0

    def residuals(self, b: np.ndarray) -> np.ndarray:
        self.evaluations += 1
        return self.a @ b - self.y

    def both(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.jacobians += 1
        return self.a @ b - self.y, self.a.copy()


def test_a_zero_sum_of_squares_is_never_a_plateau():
    """rᵀr = 0 is the least there is, even where the model no longer moves."""
    res = _Linear(np.zeros((3, 2)), np.zeros(3))
    inf = np.full(2, np.inf)
    assert not _flat(res, np.zeros(2), -inf, inf)


def test_a_model_that_moves_is_no_plateau_and_the_looks_are_not_counted():
    res = _Linear(np.eye(3)[:, :2], np.array([1.0, 2.0, 3.0]))
    inf = np.full(2, np.inf)
    assert not _flat(res, np.array([1.0, 2.0]), -inf, inf)
    dead = _Linear(np.zeros((3, 2)), np.array([1.0, 2.0, 3.0]))
    assert _flat(dead, np.array([1.0, 2.0]), -inf, inf)
    assert dead.evaluations == 0 and dead.jacobians == 0
