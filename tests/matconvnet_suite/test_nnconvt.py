"""Port of MatConvNet's ``matlab/xtest/suite/nnconvt.m`` (vlfeat/matconvnet): ``vl_nnconvt`` over
depths, batch sizes and filter counts (``basic``), every upsampling 1..3 and crop 1..3 of the
four sides (``upsample_crop``), filter groups (``grouped_filters``), a 1 x 1 image with tall
filters, upsampling and crops (``one_one_image``), and the GPU against the CPU, the derivatives
checked against numerical ones (nntest's ``der``).

MATLAB's x = randn(H, W, C, N) is NCHW (N, C, H, W); its transposed-convolution filters
randn(fh, fw, K, C) are autonn's (C, K, fh, fw); biases (1, K) are (K,); upsample [uy ux] and
crop [top bottom left right] keep their order; 'numgroups' is num_groups. The GPU test has
one variant here (no cuDNN switch). The larger products run an even spread by default and all
of them with ``-m slow``. Runs on the ``t`` fixture (``nntest.py``): single and double
precision, CPU and GPU.
"""

import pytest
from exhaustive import combinations
from nntest import gather

from autonn import nn


def check_derivatives(t, x, f, b, dzdy, ders, bias_delta, **opts):
    dzdx, dzdf, dzdb = ders
    t.der(lambda x: nn.convt(x, f, b, **opts), x, dzdy, dzdx, t.range * 1e-2)
    t.der(lambda f: nn.convt(x, f, b, **opts), f, dzdy, dzdf, t.range * 1e-2)
    t.der(lambda b: nn.convt(x, f, b, **opts), b, dzdy, dzdb, bias_delta)


@pytest.mark.parametrize("depth, num_images, num_filters",
                         combinations([1, 2, 3], [1, 2, 3, 4], [1, 2, 3], fast=5))
def test_basic(t, depth, num_images, num_filters):
    m, n, k = depth, num_images, num_filters
    x = t.randn(n, m, 10, 12)
    f = t.randn(m, k, 3, 4)
    b = t.randn(k)
    y = nn.convt(x, f, b)
    dzdy = t.randn(*y.shape)
    ders = nn.convt(x, f, b, dzdy=dzdy)
    check_derivatives(t, x, f, b, dzdy, ders, t.range)


@pytest.mark.parametrize("upx, upy, padx1, pady1, padx2, pady2",
                         combinations([1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3],
                                      [1, 2, 3], fast=12))
def test_upsample_crop(t, upx, upy, padx1, pady1, padx2, pady2):
    m, n, k = 3, 2, 3
    opts = {"upsample": (upy, upx), "crop": (pady1, pady2, padx1, padx2)}
    x = t.randn(n, m, 5, 6)
    f = t.randn(m, k, 3, 4)
    b = t.randn(k)
    y = nn.convt(x, f, b, **opts)
    dzdy = t.randn(*y.shape)
    ders = nn.convt(x, f, b, dzdy=dzdy, **opts)
    check_derivatives(t, x, f, b, dzdy, ders, t.range, **opts)


@pytest.mark.parametrize("num_groups, depth, num_filters",
                         combinations([1, 2, 3], [1, 2, 3], [1, 2, 3], fast=3))
def test_grouped_filters(t, num_groups, depth, num_filters):
    ng, m, k, n = num_groups, depth, num_filters, 3
    opts = {"num_groups": ng}
    x = t.randn(n, m * ng, 10, 12)
    f = t.randn(m * ng, k, 3, 4)
    b = t.randn(k * ng)
    y = nn.convt(x, f, b, **opts)
    dzdy = t.randn(*y.shape)
    ders = nn.convt(x, f, b, dzdy=dzdy, **opts)
    check_derivatives(t, x, f, b, dzdy, ders, t.range, **opts)


@pytest.mark.parametrize("up, fsx, crop",
                         combinations([1, 2], [1, 2], [1, 2, 3, 4, 5, 6, 7, 8]))
def test_one_one_image(t, up, fsx, crop):
    fsx = fsx * up
    if crop > fsx - 1:
        return
    m, n, k = 3, 4, 3
    fsy = fsx * 3
    x = t.randn(n, m, 1, 1)
    f = t.randn(m, k, fsy, fsx)
    b = t.randn(k)
    croph = crop // 2
    opts = {"crop": (croph, crop - croph, croph, crop - croph), "upsample": (up, up)}
    y = nn.convt(x, f, b, **opts)
    dzdy = t.randn(*y.shape)
    ders = nn.convt(x, f, b, dzdy=dzdy, **opts)
    check_derivatives(t, x, f, b, dzdy, ders, t.range * 1e-1, **opts)


def test_gpu_correctnes(t):
    if t.device != "gpu":
        return
    opts = [{"crop": (0, 0, 0, 0), "upsample": (1, 1)},
            {"crop": (5, 5, 8, 8), "upsample": (1, 1)},
            {"crop": (5, 5, 8, 8), "upsample": (3, 2)}]
    fh, fw, fn, n, depth = 11, 11, 10, 32, 32
    x = t.randn(n, depth, 32, 32)
    w = t.randn(depth, fn, fh, fw)
    b = t.randn(fn)
    for o in opts:
        y = nn.convt(x, w, b, **o)
        dzdy = t.randn(*y.shape)
        dzdx, dzdw, dzdb = nn.convt(x, w, b, dzdy=dzdy, **o)
        y_ = nn.convt(gather(x), gather(w), gather(b), **o)
        dzdx_, dzdw_, dzdb_ = nn.convt(gather(x), gather(w), gather(b), dzdy=gather(dzdy), **o)
        t.eq(y, y_)
        t.eq(dzdx, dzdx_)
        t.eq(dzdw, dzdw_)
        t.eq(dzdb, dzdb_)
