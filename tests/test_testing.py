"""autonn.testing: the strategies produce what they promise; check_op catches wrong layers."""

import numpy as np
import pytest
from hypothesis import given, settings

import autonn as an
from autonn import testing


@settings(max_examples=30, deadline=None)
@given(testing.conv_geometries())
def test_conv_geometries_always_fit_the_padded_input(geometry):
    n, c, h, w = geometry["x_shape"]
    k, cg, kh, kw = geometry["w_shape"]
    top, bottom, left, right = geometry["pad"]
    dh, dw = geometry["dilate"]
    assert c == cg * geometry["groups"] and k % geometry["groups"] == 0
    assert h + top + bottom >= dh * (kh - 1) + 1
    assert w + left + right >= dw * (kw - 1) + 1


@settings(max_examples=20, deadline=None)
@given(testing.arrays(testing.shapes(max_dims=3), dtype=np.float32, low=-1, high=1))
def test_arrays_are_finite_and_bounded(x):
    assert x.dtype == np.float32 and np.all(np.abs(x) <= 1)


@an.op
def cube(x):
    return x * x * x


@an.op
def cube_with_wrong_backward(x):
    return x * x * x


@cube_with_wrong_backward.backward
def cube_with_wrong_backward_backward(x, dzdy):
    return 3 * x * dzdy  # should be 3 x^2


def test_check_op_passes_a_correct_layer():
    testing.check_op(cube, (3, 4), max_examples=5)


def test_check_op_fails_a_wrong_layer():
    with pytest.raises(AssertionError, match="gradcheck failed"):
        testing.check_op(cube_with_wrong_backward, (3, 4), max_examples=5)


def test_reachable_as_an_attribute_of_the_package():
    assert an.testing is testing and an.testing.check_op is testing.check_op


@settings(max_examples=20, deadline=None)
@given(testing.arrays((3, 4), low=-2, high=2, integer_valued=True))
def test_integer_valued_arrays_hold_whole_numbers(x):
    assert x.dtype == np.float64 and np.all(x == np.round(x)) and np.all(np.abs(x) <= 2)


def test_check_op_passes_relu_and_max_pool_among_many_kinks():
    from autonn import nn
    kinky = testing.arrays((2, 2, 4, 4), low=-1, high=1, integer_valued=True)
    testing.check_op(nn.relu, kinky, max_examples=10)
    testing.check_op(nn.pool, kinky, 2, max_examples=10, stride=2)


@an.op
def leaky_relu_claimed_as_relu(x):
    return np.maximum(x, 0)


@leaky_relu_claimed_as_relu.backward
def leaky_relu_claimed_as_relu_backward(x, dzdy):
    return dzdy * np.where(x > 0, 1.0, 0.1)  # should be 0 below zero


def test_check_op_fails_a_wrong_relu_among_many_kinks():
    kinky = testing.arrays((1, 2, 3, 3), low=-2, high=2, integer_valued=True)
    with pytest.raises(AssertionError, match="gradcheck failed"):
        testing.check_op(leaky_relu_claimed_as_relu, kinky, max_examples=5)
