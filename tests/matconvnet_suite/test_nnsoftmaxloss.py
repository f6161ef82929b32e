"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnsoftmaxloss.m``: softmaxloss equals
``loss(softmax(x), c, loss='log')`` (value and derivative) and its derivative matches the
numerical one, with one label per image or a label per pixel, with and without instance
weights, in float32 and float64. NCHW and 0-based labels: MATLAB's labels [7 2 1] are [6, 1, 0];
the per-pixel labels ``mod(0:3*4*n-1, C) + 1`` reshaped column-major to 3x4x1xn are
``(i + 3 j + 12 n) mod C`` at (n, 0, i, j). MatConvNet passes the weights as a second label
channel; autonn takes them as ``instance_weights``."""

import numpy as np
import pytest

from autonn import nn


def labels(t, multilab, weighed, n, classes):
    if multilab:
        i, j = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
        c = np.stack([(i + 3 * j + 12 * k) % classes for k in range(n)])[:, None]
    else:
        c = np.array([6, 1, 0])
    weights = None
    if weighed:
        weights = t.rand(*(c.shape if multilab else (n, 1, 1, 1)))
    return t.to_device(c), weights


@pytest.mark.parametrize("weighed", [False, True])
@pytest.mark.parametrize("multilab", [False, True])
def test_basic(t, multilab, weighed):
    classes, n = 10, 3
    c, weights = labels(t, multilab, weighed, n, classes)
    opts = {} if weights is None else {"instance_weights": weights}

    # compare direct and indirect composition; this cannot take large ranges
    x = t.rand(n, classes, 3, 4) / t.range + t.dtype.type(0.001)  # non-negative
    y = nn.softmaxloss(x, c, **opts)
    y_ = nn.loss(nn.softmax(x), c, loss="log", **opts)
    dzdy = t.randn()
    dzdx = nn.softmaxloss(x, c, dzdy=dzdy, **opts)[0]
    dzdx_ = nn.softmax(x, dzdy=nn.loss(nn.softmax(x), c, loss="log", dzdy=dzdy, **opts)[0])
    t.eq(y, y_)
    t.eq(dzdx, dzdx_)
    t.der(lambda x: nn.softmaxloss(x, c, **opts), x, dzdy, dzdx, 0.001, -5e1)

    # now a larger input range
    x = t.rand(n, classes, 3, 4) + t.dtype.type(t.range * 0.001)  # non-negative
    y = nn.softmaxloss(x, c, **opts)
    dzdy = t.randn()
    dzdx = nn.softmaxloss(x, c, dzdy=dzdy, **opts)[0]
    t.der(lambda x: nn.softmaxloss(x, c, **opts), x, dzdy, dzdx, t.range * 0.001, -5e1)
