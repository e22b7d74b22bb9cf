"""``adcli graph`` labels show numbers as the node table does: -1.5 where the table says -1.5,
not the full -1.4999999999999996."""

from __future__ import annotations

import re
from pathlib import Path

NEURON_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"
NEURON = f"@{Path(__file__).resolve().parent.parent / 'samples' / 'neuron.adc'}"


def test_graph_labels_use_the_table_numbers(run):
    dot = run("graph", NEURON, "--at", NEURON_AT).stdout
    table = run("grad", NEURON, "--at", NEURON_AT).stdout
    assert "-1.4999999999999996" not in dot  # the full repr of d/dx1
    assert re.search(r'n0 \[label="#0 var\\nx1\\nvalue 2.0\\ngrad -1.5"', dot), dot
    # every number in a label is one the node table shows for that node
    rows = {int(m[1]): (m[2], m[3]) for m in
            re.finditer(r"│\s+(\d+) │.*?│\s+(\S+) │\s+(\S+) │\n", table)}
    labels = re.findall(r'n(\d+) \[label="[^"]*?\\nvalue (\S+?)(?:\\ngrad (\S+?))?"', dot)
    assert len(labels) == len(rows) == 10
    for slot, value, grad in labels:
        assert rows[int(slot)][0] == value
        if grad:
            assert rows[int(slot)][1] == grad
