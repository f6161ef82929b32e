"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnnormalize.m`` (LRN): the derivative for
every group size of the original, the forward against the naive loop of the original (MATLAB's
``conv(..., ones(group, 1), 'same')`` over the channels), and the L2 case; float32 and float64,
NCHW (3x2x10x4 is (4, 10, 3, 2))."""

import numpy as np
import pytest

from autonn import nn
from nntest import gather


@pytest.mark.parametrize("group", [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])
def test_basic(t, group):
    param = (group, 0.1, 0.5, 0.75)
    x = t.randn(4, 10, 3, 2)
    y = nn.normalize(x, param)
    dzdy = t.rand(*y.shape) - t.dtype.type(0.5)
    dzdx = nn.normalize(x, param, dzdy=dzdy)
    t.der(lambda x: nn.normalize(x, param), x, dzdy, dzdx, t.range * 1e-3, 0.3)


def _conv_same(u, g):
    """MATLAB's conv(u, ones(g, 1), 'same'): the central part of the full convolution."""
    full = np.convolve(u, np.ones(g, u.dtype), mode="full")
    start = g // 2
    return full[start:start + u.size]


@pytest.mark.parametrize("sgroup", [2, 3, 4, 5, 6, 7])
def test_compare_to_naive(t, sgroup):
    param = (sgroup, 0.1, 0.5, 0.75)
    x = t.randn(4, 10, 3, 2)
    y = nn.normalize(x, param)
    x_ = gather(x)
    y_ = np.zeros(y.shape, t.dtype)
    for n in range(x_.shape[0]):
        for i in range(x_.shape[2]):
            for j in range(x_.shape[3]):
                column = x_[n, :, i, j]
                s = (param[1] + param[2] * _conv_same(column ** 2, param[0])) ** (-param[3])
                y_[n, :, i, j] = column * s
    t.eq(y, y_)


def test_l2(t):
    x = t.randn(1, 10, 1, 1)
    y = gather(nn.normalize(x, (20, 0, 1, 0.5)))
    t.eq(np.sum(y.reshape(-1) ** 2), t.to_data_type(1), 1e-2)
