"""relu, sigmoid, softmax and maxout against direct per-element formulas (block_references), their
derivatives, graph use and argument checks."""

import numpy as np
import pytest
from block_references import relu_reference, sigmoid_reference, softmax_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import nn

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("leak", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_the_definition_and_its_derivative(leak, dtype):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(dtype)
    np.testing.assert_allclose(nn.relu(x, leak=leak), relu_reference(x, leak), rtol=1e-6)
    dy = RNG.standard_normal(x.shape).astype(dtype)
    dx = nn.relu(x, leak=leak, dzdy=dy)
    np.testing.assert_allclose(dx, dy * np.where(x > 0, 1, leak), rtol=1e-6)
    assert dx.dtype == dtype


def test_relu_backward_reads_only_its_output():
    op = nn.activation.relu_op
    assert op.backward_needs_inputs == () and op.backward_needs_output


def test_sigmoid_is_stable_and_exact():
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = nn.sigmoid(x)
    np.testing.assert_allclose(y, sigmoid_reference(x), rtol=1e-12, atol=1e-300)
    an.gradcheck(nn.sigmoid, RNG.standard_normal((2, 3, 2, 2)))


def test_softmax_matches_a_loop_and_survives_huge_scores():
    x = RNG.standard_normal((2, 4, 3, 2)) * 5
    np.testing.assert_allclose(nn.softmax(x), softmax_reference(x), rtol=1e-12)
    big = np.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(nn.softmax(big), [[1.0, 0.0, 0.0]])
    an.gradcheck(nn.softmax, x)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 3), w=st.integers(1, 3),
       leak=st.sampled_from([0.0, 0.01, 0.5]))
def test_activation_derivatives_over_shapes(n, c, h, w, leak):
    x = np.random.default_rng(n * 100 + c).standard_normal((n, c, h, w))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from relu's kink
    an.gradcheck(lambda v, dzdy=None: nn.relu(v, leak=leak, dzdy=dzdy), x)
    an.gradcheck(nn.softmax, x)


def test_float32_derivatives_with_loose_tolerance():
    x = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    an.gradcheck(nn.softmax, x, dtype=np.float32)
    an.gradcheck(nn.sigmoid, x, dtype=np.float32)


def test_activations_build_graphs():
    x = an.Input(name="x")
    y = nn.softmax(nn.relu(x, leak=0.1))
    assert isinstance(y, an.Layer)
    net = an.Net(y.sum())
    value = RNG.standard_normal((2, 3, 2, 2))
    net.eval({"x": value})
    np.testing.assert_allclose(net.value(y), nn.softmax(nn.relu(value, leak=0.1)))


def test_bad_input_is_refused_with_the_op_name():
    with pytest.raises(TypeError, match="relu.*float16"):
        nn.relu(np.zeros(3, np.float16))
    with pytest.raises(ValueError, match="softmax.*shape"):
        nn.softmax(np.zeros(3))
    with pytest.raises(ValueError, match="relu: leak"):
        nn.relu(np.zeros(3), leak=-1)
    with pytest.raises(ValueError, match="sigmoid: dzdy"):
        nn.sigmoid(np.zeros((2, 2)), dzdy=np.zeros(3))


def test_maxout_sends_a_tie_to_the_first_channel_of_its_run():
    # vl_nnmaxout pools over the channels, and pooling keeps the first maximum
    x = np.array([2.0, 2.0, 1.0, -1.0, 3.0, 3.0], np.float32).reshape(1, 6, 1, 1)
    np.testing.assert_array_equal(nn.maxout(x, 3).ravel(), [2.0, 3.0])
    dx = nn.maxout(x, 3, dzdy=np.array([5.0, 7.0], np.float32).reshape(1, 2, 1, 1))
    np.testing.assert_array_equal(dx.ravel(), [5.0, 0.0, 0.0, 0.0, 7.0, 0.0])


def test_maxout_refuses_channels_that_are_not_a_multiple_of_units():
    with pytest.raises(ValueError, match=r"maxout: the 5 channels of x \(shape \(1, 5, 2, 2\)\)"):
        nn.maxout(np.zeros((1, 5, 2, 2)), 2)
    with pytest.raises(ValueError, match="maxout: units must be a positive int"):
        nn.maxout(np.zeros((1, 4, 2, 2)), 0)


def test_relu_of_a_negative_number_is_plus_zero_like_max():
    # leak * x with leak 0 and x < 0 is -0.0 in IEEE arithmetic; max(x, 0) is +0.0
    for dtype in (np.float32, np.float64):
        y = nn.relu(np.array([-1.0, -0.0, -3e-8] * 3000, dtype))
        assert not np.signbit(y).any()


def test_a_nan_score_stays_nan_through_the_fast_exponential():
    # fast_exp clamps before its integer arithmetic, where a NaN's bits were undefined behaviour
    for dtype in (np.float32, np.float64):
        x = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]] * 64, dtype)
        y = nn.softmax(x)
        assert np.isnan(y[0::2]).all() and np.isfinite(y[1::2]).all()
        np.testing.assert_allclose(y[1], np.exp(x[1]) / np.exp(x[1]).sum(), rtol=1e-6)
