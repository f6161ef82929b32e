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


# ----------------------------------------------------------------------------- concat input_sizes
def _three_along(axis, rng):
    shapes = []
    for size in (3, 7, 2):
        shape = [4, 5, 6, 3]
        shape[axis] = size
        shapes.append(tuple(shape))
    return [rng.standard_normal(shape) for shape in shapes], shapes


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_concat_backward_from_input_sizes_alone(axis):
    # MatConvNet's vl_nnconcat({}, dim, dzdy, 'inputSizes', sizes): no inputs needed
    rng = np.random.default_rng(axis)
    xs, shapes = _three_along(axis, rng)
    dy = rng.standard_normal(nn.concat(xs, axis=axis).shape)
    expected = nn.concat(xs, axis=axis, dzdy=dy)
    for sizes in (shapes, [s[axis] for s in shapes]):
        for inputs in ([], [None, None, None]):
            got = nn.concat(inputs, axis=axis, input_sizes=sizes, dzdy=dy)
            assert isinstance(got, tuple) and len(got) == 3
            for g, want, shape in zip(got, expected, shapes):
                assert g.shape == shape
                np.testing.assert_array_equal(g, want)
        with_inputs = nn.concat(xs, axis, sizes, dzdy=dy)
        for g, want in zip(with_inputs, expected):
            np.testing.assert_array_equal(g, want)
    # the pieces are copies: writing one leaves dzdy alone
    got = nn.concat([], axis=axis, input_sizes=shapes, dzdy=dy)
    got[0][...] = 0
    assert np.any(dy != 0)


def test_concat_input_sizes_in_a_graph_split_the_derivative():
    rng = np.random.default_rng(3)
    va, vb = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 1, 2, 2))
    a, b = an.Input(name="a"), an.Input(name="b")
    y = nn.concat([a, b], input_sizes=[(2, 3, 2, 2), (2, 1, 2, 2)])
    dy = rng.standard_normal((2, 4, 2, 2))
    net = an.Net((y * dy).sum())
    net.eval({"a": va, "b": vb})
    np.testing.assert_array_equal(net.der("a"), dy[:, :3])
    np.testing.assert_array_equal(net.der("b"), dy[:, 3:])
    with pytest.raises(ValueError, match=r"concat: input_sizes\[1\] \(2, 1, 2, 2\) is not the "
                                         r"shape of xs\[1\] \(2, 2, 2, 2\)"):
        net.eval({"a": va, "b": rng.standard_normal((2, 2, 2, 2))})


@pytest.mark.parametrize("call, error, pattern", [
    (lambda dy: nn.concat([], input_sizes=[(2, 3, 2, 2)]), ValueError,
     r"concat: the forward needs the arrays xs"),
    (lambda dy: nn.concat([], dzdy=dy), TypeError, r"concat: xs must be a non-empty list"),
    (lambda dy: nn.concat([], input_sizes=[], dzdy=dy), ValueError,
     r"concat: input_sizes must be a non-empty sequence"),
    (lambda dy: nn.concat([], input_sizes=5, dzdy=dy), TypeError,
     r"concat: input_sizes must be a sequence of shapes or sizes"),
    (lambda dy: nn.concat([], input_sizes=[3, "a"], dzdy=dy), TypeError,
     r"concat: input_sizes\[1\] must be a shape \(a tuple of ints\) or an int, got 'a'"),
    (lambda dy: nn.concat([], input_sizes=[3, -1, 2], dzdy=dy), ValueError,
     r"concat: input_sizes\[1\] must be non-negative, got -1"),
    (lambda dy: nn.concat([], input_sizes=[3, 2], dzdy=dy), ValueError,
     r"concat: input_sizes \(3, 2\) add up to 5 along axis 1, but dzdy has 4 \(shape "
     r"\(2, 4, 2, 2\)\)"),
    (lambda dy: nn.concat([], input_sizes=[(2, 3, 2, 2), (2, 1, 2, 3)], dzdy=dy), ValueError,
     r"concat: input_sizes\[1\] \(2, 1, 2, 3\) does not match dzdy of shape \(2, 4, 2, 2\) "
     r"except along axis 1"),
    (lambda dy: nn.concat([], input_sizes=[(2, 3, 2), (2, 1, 2)], dzdy=dy), ValueError,
     r"concat: input_sizes\[0\] \(2, 3, 2\) does not match dzdy of shape \(2, 4, 2, 2\)"),
    (lambda dy: nn.concat([], axis=4, input_sizes=[1, 3], dzdy=dy), ValueError,
     r"concat: axis 4 out of range for arrays of rank 4"),
    (lambda dy: nn.concat([np.zeros((2, 3, 2, 2)), np.zeros((2, 1, 2, 2))], input_sizes=[2, 2],
                          dzdy=dy), ValueError,
     r"concat: input_sizes\[0\] 2 is not the size of xs\[0\] along axis 1 \(shape "
     r"\(2, 3, 2, 2\)\)"),
    (lambda dy: nn.concat([None, None], input_sizes=[3, 1, 0], dzdy=dy), ValueError,
     r"concat: 3 input_sizes for 2 inputs"),
    (lambda dy: nn.concat([None, np.zeros((2, 1, 2, 2))], input_sizes=[3, 1], dzdy=dy),
     TypeError, r"concat: xs must be all arrays, or all None"),
    (lambda dy: nn.concat([], input_sizes=[3, 1], dzdy=[[0.0]]), TypeError,
     r"concat: dzdy must be a NumPy or CuPy array"),
])
def test_concat_refuses_bad_input_sizes_by_name(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(np.zeros((2, 4, 2, 2)))
