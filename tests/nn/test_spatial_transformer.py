"""bilinearsampler and affinegrid against per-point loops (block_references), derivatives, and
checks."""

import numpy as np
import pytest
from block_references import affinegrid_reference, bilinearsampler_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import nn

RNG = np.random.default_rng(6)


def test_identity_grid_reproduces_the_input():
    x = RNG.standard_normal((2, 3, 4, 5))
    theta = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    np.testing.assert_allclose(nn.bilinearsampler(x, nn.affinegrid(theta, (4, 5))), x,
                               atol=1e-12)


def test_sampler_matches_the_reference_including_points_outside():
    x = RNG.standard_normal((2, 2, 3, 4))
    grid = RNG.uniform(-1.5, 1.5, size=(4, 3, 3, 2))   # 2 grids per image
    np.testing.assert_allclose(nn.bilinearsampler(x, grid), bilinearsampler_reference(x, grid),
                               rtol=1e-12, atol=1e-14)


def test_sampler_derivatives():
    x = RNG.standard_normal((1, 2, 3, 4))
    grid = RNG.uniform(-1.2, 1.2, size=(2, 2, 3, 2))
    an.gradcheck(nn.bilinearsampler, x, grid)
    an.gradcheck(nn.bilinearsampler, x.astype(np.float32), grid.astype(np.float32),
                 dtype=np.float32)


def test_affinegrid_layouts_and_derivative():
    theta = RNG.standard_normal((2, 2, 3))
    grid = nn.affinegrid(theta, (3, 4))
    np.testing.assert_allclose(grid, affinegrid_reference(theta, (3, 4)), rtol=1e-12)
    c = np.stack([theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1],
                  theta[:, 0, 2], theta[:, 1, 2]], axis=1)
    np.testing.assert_allclose(nn.affinegrid(c.reshape(2, 6, 1, 1), (3, 4)), grid)
    an.gradcheck(lambda t, dzdy=None: nn.affinegrid(t, (3, 4), dzdy=dzdy), theta)
    an.gradcheck(lambda t, dzdy=None: nn.affinegrid(t, (2, 2), dzdy=dzdy), c.reshape(2, 6, 1, 1))


def test_spatial_transformer_graph():
    x, theta = an.Input(name="x"), an.Input(name="theta")
    y = nn.bilinearsampler(x, nn.affinegrid(theta, (3, 3)))
    net = an.Net((y * y).sum())
    vx, vt = RNG.standard_normal((2, 2, 4, 4)), RNG.standard_normal((2, 2, 3)) * 0.5
    net.eval({"x": vx, "theta": vt})
    grid = nn.affinegrid(vt, (3, 3))
    out = nn.bilinearsampler(vx, grid)
    dx, dgrid = nn.bilinearsampler(vx, grid, dzdy=2 * out)
    np.testing.assert_allclose(net.der("x"), dx)
    np.testing.assert_allclose(net.der("theta"), nn.affinegrid(vt, (3, 3), dzdy=dgrid))


def test_checks():
    with pytest.raises(ValueError, match="bilinearsampler: grid must have shape"):
        nn.bilinearsampler(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="bilinearsampler: the grid batch 3"):
        nn.bilinearsampler(np.zeros((2, 1, 2, 2)), np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="affinegrid: theta must have shape"):
        nn.affinegrid(np.zeros((2, 3, 2)), (2, 2))


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 4), w=st.integers(1, 4), ho=st.integers(1, 3), wo=st.integers(1, 3),
       group=st.integers(1, 2), seed=st.integers(0, 100))
def test_sampler_over_shapes(h, w, ho, wo, group, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, h, w))
    grid = rng.uniform(-1.3, 1.3, size=(2 * group, ho, wo, 2))
    np.testing.assert_allclose(nn.bilinearsampler(x, grid), bilinearsampler_reference(x, grid),
                               rtol=1e-10, atol=1e-12)


def test_a_grid_with_nan_or_infinite_points_is_refused():
    x = np.ones((1, 2, 4, 4))
    for bad in (np.nan, np.inf):
        grid = np.zeros((1, 2, 2, 2))
        grid[0, 1, 0, 1] = bad
        with pytest.raises(ValueError, match=r"bilinearsampler: the grid \(shape \(1, 2, 2, 2\)\) "
                                             r"holds NaN or infinite points"):
            nn.bilinearsampler(x, grid)


def test_points_far_outside_the_image_read_zeros():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    grid = np.array([1e30, -1e30, -1e300, 3e19]).reshape(1, 2, 1, 2)
    np.testing.assert_array_equal(nn.bilinearsampler(x, grid), 0)
    dx, dgrid = nn.bilinearsampler(x, grid, dzdy=np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(dx, 0)
    np.testing.assert_array_equal(dgrid, 0)


def test_an_empty_batch_samples_to_an_empty_output():
    x, grid = np.ones((0, 2, 4, 4)), np.zeros((0, 3, 3, 2))
    assert nn.bilinearsampler(x, grid).shape == (0, 2, 3, 3)
    dx, dgrid = nn.bilinearsampler(x, grid, dzdy=np.ones((0, 2, 3, 3)))
    assert dx.shape == x.shape and dgrid.shape == grid.shape
    with pytest.raises(ValueError, match="grid batch 2 must be a multiple of the input batch 0"):
        nn.bilinearsampler(x, np.zeros((2, 3, 3, 2)))


def test_affinegrid_refuses_a_size_that_is_not_whole():
    with pytest.raises(TypeError, match=r"affinegrid: size must be whole numbers \(Ho, Wo\), "
                                        r"got \(2.5, 4\)"):
        nn.affinegrid(np.zeros((1, 2, 3)), (2.5, 4))
