"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnspnorm.m`` (float32 and float64; NCHW:
13x17x4x5 is (5, 4, 13, 17))."""

from autonn import nn


def test_basic(t):
    h, w, d, n = 13, 17, 4, 5
    param = (3, 3, 0.1, 0.75)
    x = t.randn(n, d, h, w)
    nn.spnorm(x, param)
    dzdy = t.rand(n, d, h, w)
    dzdx = nn.spnorm(x, param, dzdy=dzdy)
    t.der(lambda x: nn.spnorm(x, param), x, dzdy, dzdx, t.range * 1e-3)
