"""Tests of the suite's base (``nntest.py``, a port of vlfeat/matconvnet
``matlab/xtest/suite/nntest.m``): the numerical derivative, the automatic tolerance and the
generators do what the original does, and a wrong derivative fails."""

import numpy as np
import pytest

from nntest import NNTest, gather


def test_generators_have_the_data_type_and_range(t):
    x = gather(t.randn(2, 3, 4, 5))
    assert x.shape == (2, 3, 4, 5) and x.dtype == t.dtype
    assert 50 < float(np.std(x)) < 250
    r = gather(t.rand((100,)))
    assert r.dtype == t.dtype and r.min() >= 0 and r.max() <= 128 and r.max() > 64
    assert t.zeros(3).dtype == t.dtype and float(t.ones(2, 2).sum()) == 4
    assert sorted(t.randperm(6)) == [1, 2, 3, 4, 5, 6]
    assert t.to_data_type(np.arange(3)).dtype == t.dtype


def test_seeded_with_zero_before_each_test(data_type):
    a, b = NNTest(data_type), NNTest(data_type)
    np.testing.assert_array_equal(a.randn(5), b.randn(5))


def test_numder_is_the_projected_forward_difference():
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    dzdy = np.array([2.0, -1.0])
    # g(x) = (sum x^2, x[0,0] * x[1,1]); forward difference with delta 1e-3
    g = lambda x: np.array([np.sum(x ** 2), x[0, 0] * x[1, 1]])  # noqa: E731
    d = NNTest.numder(g, x, dzdy, 1e-3)
    exact = 2 * (2 * x + 1e-3)
    exact[0, 0] -= x[1, 1]
    exact[1, 1] -= x[0, 0]
    np.testing.assert_allclose(d, exact, rtol=1e-9)


def test_eq_automatic_tolerance_from_the_range(data_type):
    t = NNTest(data_type)
    a = np.array([0.0, 100.0], data_type)
    t.eq(a, np.array([0.99, 100.0], data_type))      # tau = 1e-2 * (100 - 0) = 1
    with pytest.raises(AssertionError, match="differ"):
        t.eq(a, np.array([1.5, 100.0], data_type))
    b = np.array([-1000.0, -1000.0], data_type)       # no range: tau = 1e-3 * 1000 = 1
    t.eq(b, np.array([-1000.0, -999.2], data_type))
    with pytest.raises(AssertionError):
        t.eq(b, np.array([-1000.0, -998.0], data_type))
    t.eq(a, a + data_type(1.5), tau=-2)   # a negative tau is a floor
    with pytest.raises(AssertionError):
        t.eq(a, a + data_type(0.5), tau=0.1)


def test_eq_wants_the_data_type_and_shape():
    t = NNTest(np.float32)
    with pytest.raises(AssertionError, match="float64"):
        t.eq(np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(AssertionError, match="shapes"):
        t.eq(np.zeros(3, np.float32), np.zeros((3, 1), np.float32))
    with pytest.raises(AssertionError):
        t.eq(np.zeros(3, np.float32), np.array([0, np.nan, 0], np.float32))
    t.eq(np.zeros(0, np.float32), np.zeros(0, np.float32))


def test_der_passes_a_right_derivative_and_fails_a_wrong_one(t):
    x = t.randn(1, 2, 3, 3) / t.range
    dzdy = t.randn(1, 2, 3, 3)
    g = lambda x: np.sin(x)  # noqa: E731
    t.der(g, x, dzdy, dzdy * np.cos(x), 1e-3)
    with pytest.raises(AssertionError):
        t.der(g, x, dzdy, dzdy * np.cos(x) * t.dtype.type(1.05), 1e-3)
