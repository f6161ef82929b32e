"""Port of MatConvNet's ``matlab/xtest/suite/Scale.m`` (vlfeat/matconvnet): the DagNN block
``dagnn.Scale`` (``y = x .* a + b``, a and b broadcast to x) through MatConvNet's simplified
block interface, ``forward(inputs, params)`` and ``backward(inputs, params, derOutputs)``, with
a and b as parameters and as inputs, summed along each of the four dimensions in turn, checked
against numerical derivatives (nntest's ``der``).

The suite's x is 15x14x3x2 (H x W x C x N): here (2, 3, 15, 14), and MATLAB's dimensions 1, 2,
3, 4 (H, W, C, N) are NCHW's axes 2, 3, 1, 0. Runs on the ``t`` fixture (``nntest.py``): single
and double precision, CPU and GPU.
"""

import pytest

from autonn.dagnn import Scale

AXIS_OF_DIM = {1: 2, 2: 3, 3: 1, 4: 0}


@pytest.fixture
def data(t):
    return t.randn(2, 3, 15, 14), t.randn(2, 3, 15, 14), t.randn(2, 3, 15, 14)


def pick(outputs):
    return outputs[0]


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_data_and_parameters(t, data, dim):
    x, a, b = data
    a = a.sum(axis=AXIS_OF_DIM[dim], keepdims=True)
    b = b.sum(axis=AXIS_OF_DIM[dim], keepdims=True)
    scale = Scale(size=a.shape, has_bias=True)
    output = scale.forward([x], [a, b])
    dzdy = t.randn(*output[0].shape)
    der_inputs, der_params = scale.backward([x], [a, b], [dzdy])
    dzdx, dzda, dzdb = der_inputs[0], der_params[0], der_params[1]
    t.der(lambda x: pick(scale.forward([x], [a, b])), x, dzdy, dzdx, 1e-2 * t.range)
    t.der(lambda a: pick(scale.forward([x], [a, b])), a, dzdy, dzda, 1e-2 * t.range)
    t.der(lambda b: pick(scale.forward([x], [a, b])), b, dzdy, dzdb, 1e-2 * t.range)


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_data_only(t, data, dim):
    x, a, b = data
    a = a.sum(axis=AXIS_OF_DIM[dim], keepdims=True)
    b = b.sum(axis=AXIS_OF_DIM[dim], keepdims=True)
    scale = Scale(size=a.shape, has_bias=True)
    output = scale.forward([x, a, b], [])
    dzdy = t.randn(*output[0].shape)
    der_inputs, der_params = scale.backward([x, a, b], [], [dzdy])
    dzdx, dzda, dzdb = der_inputs
    assert der_params == []
    t.der(lambda x: pick(scale.forward([x, a, b], [])), x, dzdy, dzdx, 1e-2 * t.range)
    t.der(lambda a: pick(scale.forward([x, a, b], [])), a, dzdy, dzda, 1e-2 * t.range)
    t.der(lambda b: pick(scale.forward([x, a, b], [])), b, dzdy, dzdb, 1e-2 * t.range)
