"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnsigmoid.m`` (float32 and float64; NCHW:
MATLAB's 5x5x1x1 is (1, 1, 5, 5))."""

from autonn import nn


def test_basic(t):
    x = t.randn(1, 1, 5, 5) / t.range
    y = nn.sigmoid(x)
    dzdy = t.randn(*y.shape)
    dzdx = nn.sigmoid(x, dzdy=dzdy)
    t.der(lambda x: nn.sigmoid(x), x, dzdy, dzdx, 1e-3)
