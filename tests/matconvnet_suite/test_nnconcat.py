"""Port of MatConvNet's ``matlab/xtest/suite/nnconcat.m`` (vlfeat/matconvnet): ``vl_nnconcat``
of three arrays along each of the dimensions 1, 2, 3 (H, W, C), with the derivatives computed
from the inputs (``basic``) and from ``inputSizes`` alone (``by_size``: ``nn.concat([], axis,
input_sizes=..., dzdy=...)``), checked against numerical derivatives (nntest's ``der``).

The suite's size [4, 5, 10, 3] (H x W x C x N) is NCHW (3, 10, 4, 5), and MATLAB's dimensions
1, 2, 3 are NCHW's axes 2, 3, 1. Runs on the ``t`` fixture (``nntest.py``): single and double
precision, CPU and GPU.
"""

import pytest

from autonn import nn

AXIS_OF_DIM = {1: 2, 2: 3, 3: 1}
SIZE = [3, 10, 4, 5]      # sz = [4, 5, 10, 3] of the suite, in NCHW


def three_inputs(t, dim):
    axis = AXIS_OF_DIM[dim]
    shapes = []
    for size in (3, 7, 2):
        shape = list(SIZE)
        shape[axis] = size
        shapes.append(tuple(shape))
    return axis, shapes, [t.randn(*shape) for shape in shapes]


def check_derivatives(t, axis, xs, dzdy, dzdx):
    x1, x2, x3 = xs
    t.der(lambda x1: nn.concat([x1, x2, x3], axis), x1, dzdy, dzdx[0], 1e-3 * t.range)
    t.der(lambda x2: nn.concat([x1, x2, x3], axis), x2, dzdy, dzdx[1], 1e-3 * t.range)
    t.der(lambda x3: nn.concat([x1, x2, x3], axis), x3, dzdy, dzdx[2], 1e-3 * t.range)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_basic(t, dim):
    axis, _, xs = three_inputs(t, dim)
    y = nn.concat(xs, axis)
    assert y.shape[axis] == sum(x.shape[axis] for x in xs)
    dzdy = t.randn(*y.shape)
    dzdx = nn.concat(xs, axis, dzdy=dzdy)
    check_derivatives(t, axis, xs, dzdy, dzdx)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_by_size(t, dim):
    axis, shapes, xs = three_inputs(t, dim)
    y = nn.concat(xs, axis)
    assert y.shape[axis] == sum(x.shape[axis] for x in xs)
    dzdy = t.randn(*y.shape)
    dzdx = nn.concat([], axis, dzdy=dzdy, input_sizes=shapes)
    check_derivatives(t, axis, xs, dzdy, dzdx)
