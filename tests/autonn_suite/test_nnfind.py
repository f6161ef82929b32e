"""AutoNN's find tests, ported: ``matlab/xtest/nnfind.m`` of vlfeat/autonn.

A sequential graph (a -> sqrt -> abs -> + 1) and a diamond (sqrt(a) + abs(a)) are searched by
index, by name and by function (the op; ``Input`` for the input), for each position, the last
(-1) and all of them. Indices are 0-based here (the original's 1..4 are 0..3). The original
runs in single precision on the CPU only; the graphs hold no numbers, so each case runs for both
data types unchanged.
"""

import numpy as np
import pytest

import autonn as an


def sequential():
    a = an.Input()
    b = np.sqrt(a)
    c = np.abs(b)
    d = c + 1
    an.workspace_names()
    return [a, b, c, d], [an.Input, np.sqrt, np.abs, np.add]


def diamond():
    a = an.Input()
    b = np.sqrt(a)
    c = np.abs(a)
    d = b + c
    an.workspace_names()
    return [a, b, c, d], [an.Input, np.sqrt, np.abs, np.add]


@pytest.mark.parametrize("topology", [sequential, diamond], ids=["sequential", "diamond"])
@pytest.mark.parametrize("criteria", ["index", "name", "function"])
@pytest.mark.parametrize("index", [0, 1, 2, 3, "all", -1])
def test_find(t, topology, criteria, index):
    sequence, functions = topology()
    net = sequence[-1]
    if index == "all":
        # find all layers, and check they are in the correct order
        found = net.find()
        assert len(found) == len(sequence)
        assert [layer.name for layer in found] == [layer.name for layer in sequence]
        assert all(f is s for f, s in zip(found, sequence))
        return
    # get one layer, and check it is the right one
    correct = sequence[index]
    if criteria == "index":
        found = net.find(index)
    elif criteria == "name":
        found = net.find(correct.name, 0)
    else:
        found = net.find(functions[index], 0)
    assert found.name == correct.name
    assert found is correct


def test_find_out_of_range_is_refused(t):
    sequence, _ = sequential()
    with pytest.raises(IndexError, match="find: 4 layers match, index 4 is out of range"):
        sequence[-1].find(4)
    with pytest.raises(IndexError, match="find: 0 layers match"):
        sequence[-1].find("nope", 0)
