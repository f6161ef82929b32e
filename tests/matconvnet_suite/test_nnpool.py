"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnpool.m``: average pooling against its
emulation by a (grouped) convolution, and the derivatives of max and average pooling for every
combination of pool size, padding (symmetric and asymmetric) and stride of the original, in
float32 and float64. The input's elements are all different (a permutation of 1..n), so a step
below 0.5 crosses no tie. NCHW: MATLAB's 15x14x3x2 is (2, 3, 15, 14); pool and stride are
(height, width), pad (top, bottom, left, right), as in MatConvNet."""

import numpy as np
import pytest

from autonn import nn

TYPES = ["avg", "max"]


def data(t):
    x = t.to_device(t.randperm(15 * 14 * 3 * 2).reshape(2, 3, 15, 14))
    t.range = 10
    return x


def check(t, x, pool, **args):
    y = nn.pool(x, pool, **args)
    dzdy = t.randn(*y.shape)
    dzdx = nn.pool(x, pool, dzdy=dzdy, **args)
    t.der(lambda x: nn.pool(x, pool, **args), x, dzdy, dzdx, t.range * 1e-2)


@pytest.mark.parametrize("pooly", [1, 2])
@pytest.mark.parametrize("poolx", [1, 2, 3])
def test_basic(t, poolx, pooly):
    x = data(t)
    pool = (pooly, poolx)
    y = nn.pool(x, pool, stride=1, pad=0, method="avg")
    channels = x.shape[1]
    w = t.to_device(np.ones((channels, 1, pooly, poolx), t.dtype) / poolx / pooly)
    y_conv = nn.conv(x, w, t.zeros(channels), stride=1, pad=0)
    t.eq(y, y_conv, 1e-3)  # does not pass with 1e-4 (the original's remark)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("pool", [1, 2, 3])
@pytest.mark.parametrize("method", TYPES)
def test_pool_type(t, method, pool, pad, stride):
    if pad > pool - 1:
        return
    check(t, data(t), pool, stride=stride, pad=pad, method=method)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("pooly", [1, 2])
@pytest.mark.parametrize("poolx", [1, 2, 3])
@pytest.mark.parametrize("method", TYPES)
def test_pool_type_and_pad(t, method, poolx, pooly, stride):
    # the original takes a stride parameter and then overrides it with 1 (and pad with 0)
    check(t, data(t), (pooly, poolx), stride=1, pad=0, method=method)


@pytest.mark.parametrize("stridey", [1, 2])
@pytest.mark.parametrize("stridex", [1, 2, 3])
@pytest.mark.parametrize("method", TYPES)
def test_pool_type_and_stride(t, method, stridex, stridey):
    check(t, data(t), (3, 2), stride=(stridey, stridex), pad=0, method=method)


@pytest.mark.parametrize("pad_right", [0, 1, 2])
@pytest.mark.parametrize("pad_left", [0, 1, 2])
@pytest.mark.parametrize("method", TYPES)
def test_asym_pad1(t, method, pad_left, pad_right):
    check(t, data(t), (3, 4), stride=(2, 1), pad=(0, 0, pad_left, pad_right), method=method)


@pytest.mark.parametrize("pad_bottom", [0, 1, 2])
@pytest.mark.parametrize("pad_top", [0, 1, 2])
@pytest.mark.parametrize("method", TYPES)
def test_asym_pad2(t, method, pad_top, pad_bottom):
    check(t, data(t), (3, 4), stride=(2, 1), pad=(pad_top, pad_bottom, 2, 1), method=method)
