"""micrograd's demo (demo.ipynb), one epoch: adcli against micrograd doing the same steps.

    python bench/mlp.py            # needs micrograd (pip install ".[bench]")

One epoch is what the notebook's loop does once: the 2-16-16-1 ReLU network's SVM max-margin
loss over the 100 points of samples/moons.csv plus 1e-4 times the sum of every parameter
squared, its gradient with respect to the 337 parameters, and a gradient step. adcli runs
samples/moons_mlp.adc (the same network in index notation) with ``Function.grad_sum`` over the
data columns; micrograd builds its graph of ``Value`` objects and calls ``backward()``. Both
start from the same parameters, and the loss and gradients are checked against each other.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import numpy as np

import adcli

ROOT = Path(__file__).resolve().parent.parent


def load() -> tuple[np.ndarray, np.ndarray]:
    with open(ROOT / "samples" / "moons.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([[float(r["x1"]), float(r["x2"])] for r in rows])
    return x, np.array([float(r["y"]) for r in rows])


def best(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from micrograd.engine import Value
    from micrograd.nn import MLP

    random.seed(1337)
    x, y = load()
    model = MLP(2, [16, 16, 1])
    params = model.parameters()
    assert len(params) == 337

    # The same starting point for adcli: micrograd's layers in order, W[j,i] = neuron j's w_i.
    point: dict[str, float] = {}
    layers = model.layers
    for j, n in enumerate(layers[0].neurons, 1):
        point[f"W1[{j},1]"], point[f"W1[{j},2]"] = n.w[0].data, n.w[1].data
        point[f"b1[{j}]"] = n.b.data
    for k, n in enumerate(layers[1].neurons, 1):
        for j, w in enumerate(n.w, 1):
            point[f"W2[{k},{j}]"] = w.data
        point[f"b2[{k}]"] = n.b.data
    out = layers[2].neurons[0]
    for k, w in enumerate(out.w, 1):
        point[f"w3[{k}]"] = w.data
    point["b3"] = out.b.data

    xs, ys = x.tolist(), y.tolist()  # Python floats, as the notebook's data

    def micrograd_epoch() -> float:
        inputs = [list(map(Value, xrow)) for xrow in xs]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(ys, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = 1e-4 * sum(p * p for p in params)
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= 0.0 * p.grad  # the step itself (lr 0 keeps every epoch the same)
        return total.data

    f = adcli.parse((ROOT / "samples" / "moons_mlp.adc").read_text())
    columns = {"x1": x[:, 0].copy(), "x2": x[:, 1].copy(), "y": y.copy()}
    names = list(point)
    values = np.array([point[n] for n in names])

    def adcli_epoch() -> float:
        full = {**columns, **dict(zip(names, values.tolist()))}
        loss, grad = f.grad_sum(full, wrt=names)
        step = np.array([grad[n] for n in names])
        values[:] = values - 0.0 * step
        return loss / len(y)

    mg_loss = micrograd_epoch()
    ad_loss = adcli_epoch()
    assert abs(mg_loss - ad_loss) <= 1e-12 * max(1.0, abs(mg_loss)), (mg_loss, ad_loss)
    full = {**columns, **point}
    _, grad = f.grad_sum(full, wrt=names)
    worst = max(abs(grad[n] / len(y) - p.grad) for n, p in zip(names, _ordered(model)))
    assert worst < 1e-12, worst

    t_mg = best(micrograd_epoch, 3)
    t_ad = best(adcli_epoch, 20)
    print(f"micrograd's demo, one epoch (100 rows, 337 parameters), loss {ad_loss:.6f}")
    print(f"  micrograd  {t_mg * 1e3:9.2f} ms")
    print(f"  adcli      {t_ad * 1e3:9.2f} ms   {t_mg / t_ad:.0f}x faster")


def _ordered(model) -> list:
    """micrograd's parameters in the order of the point built in main()."""
    out = []
    layers = model.layers
    for n in layers[0].neurons:
        out += [n.w[0], n.w[1], n.b]
    for n in layers[1].neurons:
        out += [*n.w, n.b]
    out += [*layers[2].neurons[0].w, layers[2].neurons[0].b]
    return out


if __name__ == "__main__":
    main()
