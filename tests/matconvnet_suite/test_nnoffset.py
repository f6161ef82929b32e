"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnoffset.m`` (``vl_nnnoffset``, float32 and
float64; NCHW: 4x5x10x3 is (3, 10, 4, 5))."""

from autonn import nn


def test_basic(t):
    param = (0.34, 0.5)
    x = t.randn(3, 10, 4, 5)
    y = nn.noffset(x, param)
    dzdy = t.randn(*y.shape)
    dzdx = nn.noffset(x, param, dzdy=dzdy)
    t.der(lambda x: nn.noffset(x, param), x, dzdy, dzdx, 1e-3 * t.range)
