"""AutoNN's deepCopy tests, ported: ``matlab/xtest/nncopy.m`` of vlfeat/autonn.

A sequential graph (a -> sqrt -> abs -> + 1) and a diamond (sqrt(a) + abs(a)) are copied with
no shared Layer or with one of them shared, renaming the copies with a ``_copied`` suffix; the
answer tables say which Layers must be copies. Sharing a Layer shares everything it depends on,
which is why the diamond's answer differs. The original runs the graph checks in single
precision on the CPU only; here each case runs for both data types, and the copy is also
evaluated against the original graph.
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
    answer = [[1, 1, 1, 1],   # which layers get copied with shared_layer = 0
              [0, 1, 1, 1],   # same with shared_layer = 1
              [0, 0, 1, 1],
              [0, 0, 0, 1],
              [0, 0, 0, 0]]
    return [a, b, c, d], answer


def diamond():
    a = an.Input()
    b = np.sqrt(a)
    c = np.abs(a)
    d = b + c
    an.workspace_names()
    answer = [[1, 1, 1, 1],   # different pattern due to diamond structure
              [0, 1, 1, 1],
              [0, 0, 1, 1],
              [0, 1, 0, 1],
              [0, 0, 0, 0]]
    return [a, b, c, d], answer


def rename(name):
    return name + "_copied"


@pytest.mark.parametrize("topology", [sequential, diamond], ids=["sequential", "diamond"])
@pytest.mark.parametrize("shared_layer", [0, 1, 2, 3])
def test_copy(t, topology, shared_layer):
    sequence, answer = topology()
    net = sequence[-1]
    if shared_layer == 0:   # no shared layer
        other = net.deep_copy(rename=rename)
    else:
        other = net.deep_copy(sequence[shared_layer - 1], rename=rename)

    other_sequence = other.find()   # the copied graph, in forward order
    assert len(other_sequence) == len(sequence), \
        "deep_copy or find failed to return the correct number of layers"
    # only the right layers were copied, the others remain shared
    for layer, copied_or_not, should_be_copied in zip(sequence, other_sequence,
                                                      answer[shared_layer]):
        assert copied_or_not.name[0] == layer.name, \
            "deep_copy or find failed to return layers in the correct order"
        is_copied = copied_or_not.name[1:] == "_copied"
        assert is_copied == bool(should_be_copied)
        assert (copied_or_not is layer) == (not should_be_copied)

    # the copy computes what the original does
    value = t.rand(1, 2, 3, 3)
    original = an.Net(net, _name_from=False)
    copy = an.Net(other, _name_from=False)
    original.eval({"a": value}, mode="forward")
    copy.eval({[layer for layer in other_sequence if isinstance(layer, an.Input)][0].name:
               value}, mode="forward")
    t.eq(original.value(net), copy.value(other))
