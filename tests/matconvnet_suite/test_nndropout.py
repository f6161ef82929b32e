"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nndropout.m``: with its mask fixed, dropout's
derivative against the numerical one (float32 and float64; NCHW: 4x5x10x3 is (3, 10, 4, 5))."""

from autonn import nn


def test_basic(t):
    x = t.randn(3, 10, 4, 5)
    y, mask = nn.dropout(x, return_mask=True)
    dzdy = t.randn(*y.shape)
    dzdx = nn.dropout(x, dzdy=dzdy, mask=mask)
    t.der(lambda x: nn.dropout(x, mask=mask), x, dzdy, dzdx, 1e-3 * t.range)
