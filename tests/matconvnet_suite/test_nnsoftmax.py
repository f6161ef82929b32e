"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnsoftmax.m``: every h in {1, 2, 3} and w in
{1, 2}, 10 channels, 3 images (NCHW (3, 10, h, w)), float32 and float64."""

import pytest

from autonn import nn


@pytest.mark.parametrize("w", [1, 2])
@pytest.mark.parametrize("h", [1, 2, 3])
def test_basic(t, h, w):
    d, n = 10, 3
    x = t.randn(n, d, h, w) / t.range
    y = nn.softmax(x)
    dzdy = t.randn(*y.shape)
    dzdx = nn.softmax(x, dzdy=dzdy)
    t.der(lambda x: nn.softmax(x), x, dzdy, dzdx, 1e-2)
