"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnrelu.m``: ReLU's derivative against
``nntest``'s numerical one, on an input whose elements are all different (a permutation of
1..n, so a step below 0.5 crosses no kink), in float32 and float64. NCHW: MATLAB's 15x14x3x2
is (2, 3, 15, 14) here."""

from autonn import nn


def data(t):
    x = t.to_device(t.randperm(15 * 14 * 3 * 2).reshape(2, 3, 15, 14))
    x[x == 0] = 1  # avoid the non-differentiable point (as the original does)
    t.range = 10
    return x


def test_basic(t):
    x = data(t)
    y = nn.relu(x)
    dzdy = t.randn(*y.shape)
    dzdx = nn.relu(x, dzdy=dzdy)
    t.der(lambda x: nn.relu(x), x, dzdy, dzdx, 1e-2 * t.range)
