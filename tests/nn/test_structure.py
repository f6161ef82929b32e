"""crop and concat: forward as slicing, exact adjoint derivatives, graphs and checks."""

import numpy as np
import pytest

import autonn as an
from autonn import nn

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("crop, window", [(1, (1, 4, 1, 5)), ((0, 2), (0, 5, 2, 4)),
                                          ((1, 0, 2, 1), (1, 5, 2, 5))])
def test_crop_forms_and_derivative(crop, window):
    x = RNG.standard_normal((2, 3, 5, 6))
    t, b, l, r = window
    np.testing.assert_array_equal(nn.crop(x, crop), x[:, :, t:b, l:r])
    an.gradcheck(lambda v, dzdy=None: nn.crop(v, crop, dzdy=dzdy), x)


def test_concat_along_channels_and_other_axes():
    a, b = RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal((2, 1, 2, 2))
    np.testing.assert_array_equal(nn.concat([a, b]), np.concatenate([a, b], axis=1))
    dy = RNG.standard_normal((2, 4, 2, 2))
    da, db = nn.concat([a, b], dzdy=dy)
    np.testing.assert_array_equal(da, dy[:, :3])
    np.testing.assert_array_equal(db, dy[:, 3:])
    (dsingle,) = nn.concat([a], dzdy=a)
    np.testing.assert_array_equal(dsingle, a)
    c = RNG.standard_normal((1, 3, 2, 2))
    np.testing.assert_array_equal(nn.concat([a, c], axis=0), np.concatenate([a, c]))


def test_concat_and_crop_in_a_graph():
    a, b = an.Input(name="a"), an.Input(name="b")
    y = nn.crop(nn.concat([a, b]), 1)
    net = an.Net((y * y).sum())
    va, vb = RNG.standard_normal((1, 2, 4, 4)), RNG.standard_normal((1, 3, 4, 4))
    net.eval({"a": va, "b": vb})
    full = np.zeros((1, 5, 4, 4))
    full[:, :, 1:3, 1:3] = 2 * np.concatenate([va, vb], axis=1)[:, :, 1:3, 1:3]
    np.testing.assert_allclose(net.der("a"), full[:, :2])
    np.testing.assert_allclose(net.der("b"), full[:, 2:])


def test_structure_checks():
    with pytest.raises(ValueError, match="crop: crop .* leaves nothing"):
        nn.crop(np.zeros((1, 1, 2, 2)), 1)
    with pytest.raises(ValueError, match="crop: crop must be non-negative"):
        nn.crop(np.zeros((1, 1, 4, 4)), -1)
    with pytest.raises(ValueError, match=r"concat: xs\[1\] of shape \(1, 2, 3, 3\)"):
        nn.concat([np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 3, 3))])
    with pytest.raises(TypeError, match="concat: xs must be"):
        nn.concat([])
