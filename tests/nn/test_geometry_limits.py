"""Geometries whose sizes do not fit the kernels' 64-bit index arithmetic are refused.

Every size a kernel or driver computes from user geometry (padded extents, dilated filter
extents, buffer sizes, work estimates) is checked in Python, with unbounded ints, before
anything is allocated or launched (autonn.nn._arguments.check_index_range). Before the check,
the first case below made kernels/conv_direct.h's buffer size wrap past 2**64: malloc returned a
few hundred bytes and the kernel wrote past them.
"""

import numpy as np
import pytest

import autonn.nn as nn
from autonn.nn._arguments import INDEX_LIMIT, check_index_range
from autonn.nn.convolution import conv_shape, convt_shape
from autonn.nn.pooling import pool_shape

F32 = np.float32


def test_check_index_range_names_op_quantity_and_arguments():
    check_index_range("op", "a 1", fits=INDEX_LIMIT, also=-INDEX_LIMIT)
    with pytest.raises(ValueError, match=r"^op: too big = 4611686018427387905 .*\(a 1\)"):
        check_index_range("op", "a 1", fits=1, too_big=INDEX_LIMIT + 1)


def test_conv_wrapping_direct_buffer_is_refused():
    x, w = np.ones((1, 1, 8, 8), F32), np.ones((1, 1, 3, 1), F32)
    with pytest.raises(ValueError, match=r"^conv: .*dilate \(576460752303423488, 1\)"):
        nn.conv(x, w, dilate=(2**59, 1), pad=(2**59, 2**59, 0, 0))
    with pytest.raises(ValueError, match=r"^conv: .*pad"):
        nn.conv(x, w, dzdy=np.ones((1, 1, 8, 8), F32), dilate=(2**59, 1),
                pad=(2**59, 2**59, 0, 0))


@pytest.mark.parametrize("options, argument", [
    ({"pad": 2**62}, "pad"),
    ({"pad": (0, 2**63, 0, 0)}, "pad"),
    ({"dilate": (1, 2**62)}, "dilate"),
    ({"stride": 2**62}, "stride"),
])
def test_conv_huge_geometry_is_refused(options, argument):
    x, w = np.ones((1, 2, 8, 8), F32), np.ones((2, 2, 3, 3), F32)
    with pytest.raises(ValueError, match=rf"^conv: .*{argument}"):
        nn.conv(x, w, **options)
    with pytest.raises(ValueError, match=rf"^conv: .*{argument}"):
        conv_shape(x.shape, w.shape, **options)          # graphs refuse it too


def test_convt_huge_upsample_is_refused():
    x, w = np.ones((1, 1, 2, 2), F32), np.ones((1, 1, 1, 1), F32)
    options = {"upsample": (2**62, 1), "crop": (2**62, 0, 0, 0)}   # a 1 x 2 output
    with pytest.raises(ValueError, match=r"^convt: .*upsample"):
        nn.convt(x, w, **options)
    with pytest.raises(ValueError, match=r"^convt: .*upsample"):
        convt_shape(x.shape, w.shape, **options)


@pytest.mark.parametrize("options, argument", [
    ({"size": (2**62, 1), "pad": (2**61, 2**61, 0, 0)}, "size"),
    ({"size": (1, 2**63), "pad": (0, 0, 2**62, 2**62)}, "size"),
    ({"size": 3, "stride": 2**62}, "stride"),
])
def test_pool_huge_geometry_is_refused(options, argument):
    x = np.ones((1, 1, 8, 8), F32)
    for method in ("max", "avg"):
        with pytest.raises(ValueError, match=rf"^pool: .*{argument}"):
            nn.pool(x, method=method, **options)
    with pytest.raises(ValueError, match=rf"^pool: .*{argument}"):
        pool_shape(x.shape, **options)


def test_pool_huge_but_representable_stride_still_computes():
    x = np.arange(64, dtype=F32).reshape(1, 1, 8, 8)
    y = nn.pool(x, 3, stride=2**40)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 18


def test_roipool_huge_subdivisions_are_refused():
    x, rois = np.ones((1, 2, 8, 8), F32), np.array([[0, 1, 1, 5, 5]], F32)
    with pytest.raises(ValueError, match=r"^roipool: .*subdivisions"):
        nn.roipool(x, rois, subdivisions=(2**62, 2**62))


def test_roipool_huge_or_infinite_coordinates_are_refused_or_clipped():
    x = np.random.default_rng(0).random((1, 2, 8, 8)).astype(F32)
    for bad in (1e30, np.inf):
        rois = np.array([[0, -bad, -bad, bad, bad]], F32)
        with pytest.raises(ValueError, match=r"^roipool: rois coordinates"):
            nn.roipool(x, rois)
    # far outside the image but representable: the bins are clipped, the middle one is the image
    rois = np.array([[0, -1e15, -1e15, 1e15, 1e15]], F32)
    y = nn.roipool(x, rois, subdivisions=(3, 3))
    assert y[0, :, 1, 1] == pytest.approx(x[0].max(axis=(1, 2)))
    assert (y[0, :, 0] == 0).all() and (y[0, :, 2] == 0).all()


def test_bilinearsampler_huge_grid_is_refused():
    x = np.ones((1, 64, 2, 2), F32)
    grid = np.broadcast_to(np.zeros((1, 1, 1, 2), F32), (2**20, 2**20, 2**19, 2))
    with pytest.raises(ValueError, match=r"^bilinearsampler: .*grid shape"):
        nn.bilinearsampler(x, grid)


def test_affinegrid_huge_size_is_refused():
    theta = np.array([[[1, 0, 0], [0, 1, 0]]], F32)
    with pytest.raises(ValueError, match=r"^affinegrid: .*size"):
        nn.affinegrid(theta, (2**40, 2**40))


def test_normalize_huge_depth_is_refused():
    x = np.ones((1, 3, 2, 2), F32)
    with pytest.raises(ValueError, match=r"^normalize: .*depth"):
        nn.normalize(x, (2.0**63, 1, 1e-4, 0.75))
    with pytest.raises(ValueError, match=r"^normalize: .*depth"):
        nn.normalize(x, (2.0**62, 1, 1e-4, 0.75))


def test_normalize_depth_beyond_the_channels_still_computes():
    x = np.random.default_rng(1).random((1, 3, 2, 2)).astype(F32)
    np.testing.assert_allclose(nn.normalize(x, (2**40, 1, 1e-2, 0.75)),
                               nn.normalize(x, (7, 1, 1e-2, 0.75)), rtol=1e-6)


def test_spnorm_huge_window_is_refused():
    x = np.ones((1, 3, 2, 2), F32)
    with pytest.raises(ValueError, match=r"^spnorm: .*window"):
        nn.spnorm(x, (2**63, 3, 1e-4, 0.75))
    with pytest.raises(ValueError, match=r"^spnorm: .*window"):
        nn.spnorm(x, (3, 2**62, 1e-4, 0.75))


def test_spnorm_window_beyond_the_image_still_computes():
    x = np.random.default_rng(2).random((1, 3, 4, 4)).astype(F32)
    np.testing.assert_allclose(nn.spnorm(x, (2**40, 2**40, 1e-2, 0.75)),
                               nn.spnorm(x, (9, 9, 1e-2, 0.75)), rtol=1e-6)


def test_ordinary_geometries_still_work():
    rng = np.random.default_rng(3)
    x, w = rng.random((2, 4, 9, 9)).astype(F32), rng.random((6, 2, 3, 3)).astype(F32)
    assert nn.conv(x, w, stride=2, pad=1, dilate=2).shape == (2, 6, 4, 4)
    assert nn.convt(x, rng.random((4, 3, 3, 3)).astype(F32), upsample=2, crop=1,
                    num_groups=2).shape == (2, 6, 17, 17)
    assert nn.pool(x, 3, stride=2, pad=1).shape == (2, 4, 5, 5)
