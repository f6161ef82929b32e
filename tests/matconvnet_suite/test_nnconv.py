"""Port of MatConvNet's ``matlab/xtest/suite/nnconv.m`` (vlfeat/matconvnet): ``vl_nnconv`` with
identity (empty) filters, every filter shape 0..5 x 0..3 with and without biases (an empty
filter bank when a size is 0), strides and dilations, the correctness of the stride and of the
four pads, pads and strides with and without filters, filter groups, and the GPU against the
CPU, the derivatives checked against numerical ones (nntest's ``der``).

MATLAB's H x W x C x N arrays are NCHW: x = randn(3, 5, 10, 3) is (3, 10, 3, 5), filters
randn(fh, fw, depth, fn) are (fn, depth, fh, fw), biases (1, fn) are (fn,); MATLAB's ``[]``
(no filters, no biases) is None, whose derivative is None (the original's numerical derivative
of an empty array is empty). stride [sy sx] and pad [top bottom left right] keep their order.
The GPU test has one variant here (no cuDNN switch). The filter-shape, dilate, pad/stride and
filter-group products run an even spread by default and all of them with ``-m slow``. Runs on
the ``t`` fixture (``nntest.py``): single and double precision, CPU and GPU.
"""

import numpy as np
import pytest
from exhaustive import combinations
from nntest import gather

from autonn import backend, nn


def check_derivatives(t, x, w, b, dzdy, ders, delta, **opts):
    """nnconv's three ``test.der`` calls; an empty (None) input has a None derivative."""
    dzdx, dzdw, dzdb = ders
    t.der(lambda x: nn.conv(x, w, b, **opts), x, dzdy, dzdx, delta)
    for value, der, call in ((w, dzdw, lambda w: nn.conv(x, w, b, **opts)),
                             (b, dzdb, lambda b: nn.conv(x, w, b, **opts))):
        if value is None:
            assert der is None
        else:
            t.der(call, value, dzdy, der, delta)


def test_identity_filters(t):
    x = t.randn(4, 10, 1, 1)
    b = t.randn(x.shape[1])
    y = nn.conv(x, None, b)
    dzdy = t.randn(*y.shape)
    dzdx, dzdw, dzdb = nn.conv(x, None, b, dzdy=dzdy)
    assert dzdw is None
    t.der(lambda x: nn.conv(x, None, b), x, dzdy, dzdx, t.range * 1e-2)
    t.der(lambda b: nn.conv(x, None, b), b, dzdy, dzdb, t.range * 1e-2)


def filters_and_biases(t, bias, fh, fw, depth, fn, channels):
    w = None if fh == 0 or fw == 0 else t.randn(fn, depth, fh, fw)
    if not bias:
        return w, None
    return w, t.randn(channels if w is None else fn)


@pytest.mark.parametrize("bias, fw, fh", combinations([False, True], [0, 1, 3, 5], [0, 1, 2, 3],
                                                   fast=12))
def test_filter_shapes(t, bias, fw, fh):
    n, fn, depth = 3, 5, 10
    x = t.randn(n, depth, 3, 5)
    w, b = filters_and_biases(t, bias, fh, fw, depth, fn, x.shape[1])
    y = nn.conv(x, w, b)
    dzdy = t.randn(*y.shape)
    ders = nn.conv(x, w, b, dzdy=dzdy)
    check_derivatives(t, x, w, b, dzdy, ders, t.range * 1e-2)


@pytest.mark.parametrize("bias, stridex, stridey, dilatex, dilatey",
                         combinations([False, True], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3],
                                      fast=3))
def test_dilate(t, bias, stridex, stridey, dilatex, dilatey):
    n, fn, fw, fh, depth = 3, 5, 2, 3, 10
    opts = {"stride": (stridey, stridex), "dilate": (dilatey, dilatex)}
    x = t.randn(n, depth, 9, 16)
    w, b = filters_and_biases(t, bias, fh, fw, depth, fn, x.shape[1])
    y = nn.conv(x, w, b, **opts)
    dzdy = t.randn(*y.shape)
    ders = nn.conv(x, w, b, dzdy=dzdy, **opts)
    check_derivatives(t, x, w, b, dzdy, ders, t.range * 1e-2, **opts)


@pytest.mark.parametrize("emptyw, stridex, stridey",
                         combinations([False, True], [1, 2, 3], [1, 2, 3]))
def test_stride_correctness(t, emptyw, stridex, stridey):
    x = t.randn(1, 1, 9, 9)
    w = None if emptyw else t.randn(1, 1, 3, 3)
    y = nn.conv(x, w, None)
    stride = (stridey, stridex)
    y_ = nn.conv(x, w, None, stride=stride)
    t.eq(y[:, :, ::stridey, ::stridex], y_)

    dzdy = t.randn(*y.shape)
    keep = backend.array_module(dzdy).zeros_like(dzdy)
    keep[:, :, ::stridey, ::stridex] = 1
    dzdy = dzdy * keep
    dzdx, dzdw, _ = nn.conv(x, w, None, dzdy=dzdy)
    dzdx_, dzdw_, _ = nn.conv(x, w, None, dzdy=backend.array_module(dzdy).ascontiguousarray(
        dzdy[:, :, ::stridey, ::stridex]), stride=stride)
    t.eq(dzdx, dzdx_)
    if emptyw:
        assert dzdw is None and dzdw_ is None
    else:
        t.eq(dzdw, dzdw_)


@pytest.mark.parametrize("padx1, pady1, padx2, pady2",
                         combinations([0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]))
def test_pad_correctness(t, padx1, pady1, padx2, pady2):
    x = t.randn(1, 1, 9, 9)
    w = t.randn(1, 1, 3, 3)
    y = nn.conv(x, w, None)
    dzdy = t.randn(*y.shape)
    dzdx, dzdw, _ = nn.conv(x, w, None, dzdy=dzdy)

    pad = (pady1, pady2, padx1, padx2)
    y_ = nn.conv(x, w, None, pad=pad)
    t.eq(y_[:, :, pady1:y_.shape[2] - pady2, padx1:y_.shape[3] - padx2], y)
    xp = backend.array_module(dzdy)
    dzdy_ = xp.pad(dzdy, ((0, 0), (0, 0), (pady1, pady2), (padx1, padx2)))
    dzdx_, dzdw_, _ = nn.conv(x, w, None, dzdy=dzdy_, pad=pad)
    t.eq(dzdx, dzdx_)
    t.eq(dzdw, dzdw_)


@pytest.mark.parametrize("emptyw, pad, stride",
                         combinations([False, True], [0, 1, 2], [1, 2, 3, 4], fast=6))
def test_pad_and_stride(t, emptyw, pad, stride):
    x = t.randn(2, 4, 16, 15)
    if emptyw:
        w, b = None, t.randn(4)
    else:
        w, b = t.randn(5, 4, 3, 3), t.randn(5)
    opts = {"stride": stride, "pad": pad}
    y = nn.conv(x, w, b, **opts)
    dzdy = t.randn(*y.shape)
    ders = nn.conv(x, w, b, dzdy=dzdy, **opts)
    check_derivatives(t, x, w, b, dzdy, ders, t.range * 1e-2, **opts)


@pytest.mark.parametrize("fh, fw", combinations([0, 1, 2, 3], [0, 1, 3, 5], fast=7))
def test_filter_groups(t, fh, fw):
    if fh == 0 or fw == 0:
        return
    n = 3
    w_ = t.randn(3, 9, fh, fw)
    # three groups of three channels: w's filter g reads channels 3g..3g+2; w_ is the same
    # bank as one group, zero outside each filter's channels
    w = backend.array_module(w_).concatenate([w_[0:1, 0:3], w_[1:2, 3:6], w_[2:3, 6:9]], axis=0)
    w_[0, 3:9] = 0
    w_[1, [0, 1, 2, 6, 7, 8]] = 0
    w_[2, 0:6] = 0
    x = t.randn(n, 9, 13, 9)
    y = nn.conv(x, w, None)
    y_ = nn.conv(x, w_, None)
    t.eq(y, y_)
    dzdy = t.randn(*y.shape)
    dzdx, dzdw, _ = nn.conv(x, w, None, dzdy=dzdy)
    t.der(lambda x: nn.conv(x, w, None), x, dzdy, dzdx, t.range * 1e-2)
    t.der(lambda w: nn.conv(x, w, None), w, dzdy, dzdw, t.range * 1e-2)


def test_gpu_correctnes(t):
    if t.device != "gpu":
        return
    opts = [{"pad": (0, 0, 0, 0), "stride": (1, 1)},
            {"pad": (5, 5, 8, 8), "stride": (1, 1)},
            {"pad": (5, 5, 8, 8), "stride": (3, 2)}]
    fh, fw, fn, n, depth = 11, 11, 10, 8, 8
    x = t.randn(n, depth, 64, 64)
    w = t.randn(fn, depth, fh, fw)
    b = t.randn(fn)
    for o in opts:
        y = nn.conv(x, w, b, **o)
        dzdy = t.randn(*y.shape)
        dzdx, dzdw, dzdb = nn.conv(x, w, b, dzdy=dzdy, **o)
        y_ = nn.conv(gather(x), gather(w), gather(b), **o)
        dzdx_, dzdw_, dzdb_ = nn.conv(gather(x), gather(w), gather(b), dzdy=gather(dzdy), **o)
        t.eq(y, y_)
        t.eq(dzdx, dzdx_)
        t.eq(dzdw, dzdw_)
        t.eq(dzdb, dzdb_)
    assert isinstance(gather(y), np.ndarray)
