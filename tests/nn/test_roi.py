"""roipool against a per-pixel loop over Fast R-CNN's bin definition (block_references),
derivatives, degenerate ROIs (outside the image, zero size) and checks."""

import numpy as np
import pytest
from block_references import roipool_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import nn

RNG = np.random.default_rng(5)


ROIS = np.array([[0, 0, 0, 5, 4],       # the whole image
                 [1, 1, 2, 3, 3],
                 [0, 2.4, 1.6, 2.4, 1.6],  # a single pixel (zero size before rounding)
                 [1, -5, -5, -2, -1],   # entirely outside: every bin empty
                 [0, 4, 3, 9, 9]])      # straddles the border


@pytest.mark.parametrize("method", ["max", "avg"])
@pytest.mark.parametrize("subdivisions", [(1, 1), (2, 3), (4, 4)])
def test_roipool_matches_the_reference(method, subdivisions):
    x = RNG.standard_normal((2, 3, 5, 6))
    y = nn.roipool(x, ROIS, method=method, subdivisions=subdivisions)
    np.testing.assert_allclose(y, roipool_reference(x, ROIS, method, subdivisions), rtol=1e-12)
    assert not y[3].any()
    # MatConvNet's (5, R) layout gives the same result (R = 5 reads as (R, 5)).
    np.testing.assert_array_equal(nn.roipool(x, ROIS[:4].T.copy(), method=method,
                                             subdivisions=subdivisions), y[:4])


@pytest.mark.parametrize("method", ["max", "avg"])
def test_roipool_derivative(method):
    x = RNG.permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6).astype(np.float64) / 10  # no ties
    an.gradcheck(lambda v, dzdy=None: nn.roipool(v, ROIS, method=method, subdivisions=(2, 2))
                 if dzdy is None else nn.roipool(v, ROIS, method=method, subdivisions=(2, 2),
                                                 dzdy=dzdy)[0], x)


def test_roipool_transform_scales_coordinates():
    x = RNG.standard_normal((1, 2, 8, 8))
    rois = np.array([[0, 0, 0, 31, 15]])
    np.testing.assert_allclose(nn.roipool(x, rois, transform=0.25, subdivisions=2),
                               roipool_reference(x, rois, "max", (2, 2), scale=0.25))
    matrix = [[0.25, 0, 0], [0, 0.25, 0]]
    np.testing.assert_array_equal(nn.roipool(x, rois, transform=matrix, subdivisions=2),
                                  nn.roipool(x, rois, transform=0.25, subdivisions=2))


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), sh=st.integers(1, 4), sw=st.integers(1, 4),
       seed=st.integers(0, 1000))
def test_roipool_over_random_rois(h, w, sh, sw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, h, w))
    corners = rng.uniform(-2, 8, size=(4, 4))
    rois = np.concatenate([rng.integers(0, 2, (4, 1)), np.minimum(corners[:, :2], corners[:, 2:]),
                           np.maximum(corners[:, :2], corners[:, 2:])], axis=1)
    rois = rois[:, [0, 1, 2, 3, 4]]
    np.testing.assert_allclose(nn.roipool(x, rois, subdivisions=(sh, sw)),
                               roipool_reference(x, rois, "max", (sh, sw)), rtol=1e-12)


def test_roipool_in_a_graph():
    x = an.Input(name="x")
    y = nn.roipool(x, ROIS, subdivisions=2)
    net = an.Net(y.sum())
    value = RNG.standard_normal((2, 3, 5, 6))
    net.eval({"x": value})
    np.testing.assert_allclose(net.value(y), nn.roipool(value, ROIS, subdivisions=2))


def test_roipool_checks():
    x = np.zeros((2, 3, 5, 6))
    with pytest.raises(ValueError, match="roipool: ROI image indices"):
        nn.roipool(x, np.array([[2, 0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"roipool: rois must have shape \(R, 5\)"):
        nn.roipool(x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="roipool: method"):
        nn.roipool(x, ROIS, method="sum")


def test_roipool_float32_matches_float64_and_its_derivative():
    x = RNG.permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6) / 10
    for method in ("max", "avg"):
        np.testing.assert_allclose(
            nn.roipool(x.astype(np.float32), ROIS, method=method, subdivisions=(2, 3)),
            nn.roipool(x, ROIS, method=method, subdivisions=(2, 3)), rtol=1e-6)
    an.gradcheck(lambda v, dzdy=None: nn.roipool(v, ROIS, method="avg", subdivisions=2)
                 if dzdy is None else nn.roipool(v, ROIS, method="avg", subdivisions=2,
                                                 dzdy=dzdy)[0],
                 x.astype(np.float32), dtype=np.float32)


def test_rois_of_strings_are_refused():
    with pytest.raises(TypeError, match=r"roipool: rois must hold numbers, got dtype <U1"):
        nn.roipool(np.ones((1, 1, 4, 4)), np.array([["0", "0", "0", "1", "1"]]))
