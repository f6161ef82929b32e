"""pool against a direct loop over its windows (block_references), its derivatives, and its
argument checks."""

import numpy as np
import pytest
from block_references import pool_derivatives_reference, pool_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import backend, nn

DTYPES = [np.float32, np.float64]
DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not backend.gpu_available(), reason="no GPU")])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["max", "avg"])
def test_pool_matches_the_window_loop(device, dtype, method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    options = dict(stride=(2, 1), pad=(1, 0, 2, 1))
    y = nn.pool(backend.to_device(x, device), (3, 3), method=method, **options)
    expected = pool_reference(x, (3, 3), method, (2, 1), (1, 0, 2, 1))
    assert y.dtype == dtype and y.shape == expected.shape
    np.testing.assert_allclose(backend.to_numpy(y), expected, rtol=1e-6, atol=1e-6)
    ones = np.ones(y.shape, dtype)
    dx = nn.pool(backend.to_device(x, device), (3, 3), method=method,
                 dzdy=backend.to_device(ones, device), **options)
    np.testing.assert_allclose(backend.to_numpy(dx),
                               pool_derivatives_reference(x, ones, (3, 3), method, (2, 1),
                                                          (1, 0, 2, 1)), rtol=1e-6)


def test_max_ties_send_the_whole_derivative_to_one_input():
    x = np.zeros((1, 1, 4, 4))
    dx = nn.pool(x, 2, stride=1, dzdy=np.ones((1, 1, 3, 3)))
    # each of the 9 windows credits only its first (top-left) element, never all four
    expected = np.zeros((4, 4))
    expected[:3, :3] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_avg_divides_by_the_number_of_unpadded_elements():
    x = np.ones((1, 1, 3, 3))
    y = nn.pool(x, 3, method="avg", pad=1)
    np.testing.assert_allclose(y, np.ones((1, 1, 3, 3)))   # padding would make corners 4/9


@pytest.mark.parametrize("method", ["max", "avg"])
def test_pool_derivatives_pass_gradcheck(method):
    rng = np.random.default_rng(1)
    # distinct values: finite differences of max need no near-ties
    x = (rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) * 0.1
         + rng.uniform(0, 0.01, (2, 2, 6, 5)))
    an.gradcheck(nn.pool, x, (3, 2), method=method, stride=(2, 1), pad=(1, 2, 0, 1))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_pool_fuzz_matches_the_window_loop(data):
    ph, pw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    pad = (data.draw(st.integers(0, ph - 1)), data.draw(st.integers(0, ph - 1)),
           data.draw(st.integers(0, pw - 1)), data.draw(st.integers(0, pw - 1)))
    # slack 0: the window exactly fits the padded input
    H = max(1, ph - pad[0] - pad[1] + data.draw(st.integers(0, 4)))
    W = max(1, pw - pad[2] - pad[3] + data.draw(st.integers(0, 4)))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    method = data.draw(st.sampled_from(["max", "avg"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((2, 2, H, W))
    y = nn.pool(x, (ph, pw), method=method, stride=stride, pad=pad)
    np.testing.assert_allclose(y, pool_reference(x, (ph, pw), method, stride, pad), rtol=1e-12)
    ones = np.ones(y.shape)
    dx = nn.pool(x, (ph, pw), method=method, stride=stride, pad=pad, dzdy=ones)
    np.testing.assert_allclose(dx, pool_derivatives_reference(x, ones, (ph, pw), method, stride,
                                                              pad), rtol=1e-12)


def test_pool_builds_a_graph_node_with_a_shape_rule():
    x = an.Input()
    y = nn.pool(x, 2, stride=2)
    assert isinstance(y, an.Layer)
    assert y.op.output_shape((3, 4, 9, 8), size=(2, 2), method="max", stride=(2, 2),
                             pad=(0, 0, 0, 0)) == (3, 4, 4, 4)


X = np.zeros((2, 3, 5, 5), np.float32)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: nn.pool(X[0], 2), ValueError, r"pool: x must be 4-D .*\(3, 5, 5\)"),
    (lambda: nn.pool(X, 6), ValueError, r"pool: the window \(6, 6\) is larger than the padded "
                                        r"input .*\(2, 3, 5, 5\)"),
    (lambda: nn.pool(X, 2, pad=2), ValueError, r"pool: pad \(2, 2, 2, 2\) must be smaller than "
                                               r"the window \(2, 2\)"),
    (lambda: nn.pool(X, 2, stride=0), ValueError, r"pool: stride must be at least 1"),
    (lambda: nn.pool(X, 0), ValueError, r"pool: size must be at least 1"),
    (lambda: nn.pool(X, 2, method="median"), ValueError, r"pool: unknown method 'median'"),
    (lambda: nn.pool(X.astype(np.float16), 2), TypeError, r"pool: x must be float32 or float64"),
    (lambda: nn.pool(X, 2, dzdy=np.ones((2, 3, 5, 5), np.float32)), ValueError,
     r"pool: dzdy must have the output shape \(2, 3, 4, 4\), got \(2, 3, 5, 5\)"),
    (lambda: nn.pool(X, 2, dzdy=np.ones((2, 3, 4, 4))), TypeError,
     r"pool: dzdy must have the dtype of x"),
    (lambda: nn.pool(X, 2.5), TypeError, r"pool: size must"),
])
def test_bad_arguments_raise_errors_naming_op_argument_and_shapes(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
