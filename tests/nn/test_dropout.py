"""Inverted dropout: the mask's statistics, reuse of the mask in backward, graph train/test."""

import numpy as np
import pytest

import autonn as an
from autonn import nn


def test_dropout_scales_kept_units_and_reuses_its_mask():
    np.random.seed(0)
    x = np.ones((50, 40, 5, 5), np.float32)
    y, mask = nn.dropout(x, rate=0.3, return_mask=True)
    assert y.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, np.float32(1 / 0.7)}
    assert abs((mask == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1) < 0.02
    np.testing.assert_array_equal(nn.dropout(x, mask=mask), y)
    dy = np.random.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(nn.dropout(x, mask=mask, dzdy=dy), dy * mask)


def test_dropout_in_a_graph_uses_one_mask_forward_and_backward_and_is_off_in_test_mode():
    x = an.Input(name="x")
    y = nn.dropout(x, rate=0.5)
    net = an.Net((y * 3).sum())
    value = np.random.standard_normal((4, 6, 3, 3))
    net.eval({"x": value})
    kept = net.value(y) != 0
    np.testing.assert_allclose(net.der("x"), np.where(kept, 6.0, 0.0))
    net.eval({"x": value}, mode="test")
    np.testing.assert_array_equal(net.value(y), value)


def test_dropout_checks():
    with pytest.raises(ValueError, match="dropout: rate"):
        nn.dropout(np.zeros(3), rate=1.0)
    with pytest.raises(ValueError, match="dropout: the backward pass needs the mask"):
        nn.dropout(np.zeros(3), dzdy=np.zeros(3))
    with pytest.raises(ValueError, match=r"dropout: mask must have shape \(3,\)"):
        nn.dropout(np.zeros(3), mask=np.zeros(4))
