"""Every Blocks II block inside a compiled Net (with and without conserve_memory) gives the
eager values and derivatives, and test mode switches dropout and bnorm as documented."""

import numpy as np
import pytest

import autonn as an
from autonn import nn

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 4, 5, 5))
ROIS = np.array([[0, 0, 0, 3, 3], [1, 1, 1, 4, 2]], dtype=np.float64)
LABELS = np.array([1, 3])
GRID = RNG.uniform(-1, 1, size=(2, 3, 3, 2))

# name -> (graph builder from a Layer, eager forward, eager derivative of sum(y * weights))
BLOCKS = {
    "relu": (lambda x: nn.relu(x, leak=0.2), lambda v: nn.relu(v, leak=0.2),
             lambda v, d: nn.relu(v, leak=0.2, dzdy=d)),
    "sigmoid": (nn.sigmoid, nn.sigmoid, lambda v, d: nn.sigmoid(v, dzdy=d)),
    "softmax": (nn.softmax, nn.softmax, lambda v, d: nn.softmax(v, dzdy=d)),
    "lrn": (lambda x: nn.lrn(x, (5, 1, 0.5, 0.75)), lambda v: nn.lrn(v, (5, 1, 0.5, 0.75)),
            lambda v, d: nn.lrn(v, (5, 1, 0.5, 0.75), dzdy=d)),
    "spnorm": (lambda x: nn.spnorm(x, (3, 3, 0.5, 0.75)),
               lambda v: nn.spnorm(v, (3, 3, 0.5, 0.75)),
               lambda v, d: nn.spnorm(v, (3, 3, 0.5, 0.75), dzdy=d)),
    "normalizelp": (nn.normalizelp, nn.normalizelp, lambda v, d: nn.normalizelp(v, dzdy=d)),
    "noffset": (lambda x: nn.noffset(x, (0.3, 0.5)), lambda v: nn.noffset(v, (0.3, 0.5)),
                lambda v, d: nn.noffset(v, (0.3, 0.5), dzdy=d)),
    "crop": (lambda x: nn.crop(x, (1, 0, 0, 2)), lambda v: nn.crop(v, (1, 0, 0, 2)),
             lambda v, d: nn.crop(v, (1, 0, 0, 2), dzdy=d)),
    "roipool": (lambda x: nn.roipool(x, ROIS, subdivisions=2),
                lambda v: nn.roipool(v, ROIS, subdivisions=2),
                lambda v, d: nn.roipool(v, ROIS, subdivisions=2, dzdy=d)[0]),
    "bilinearsampler": (lambda x: nn.bilinearsampler(x, GRID),
                        lambda v: nn.bilinearsampler(v, GRID),
                        lambda v, d: nn.bilinearsampler(v, GRID, dzdy=d)[0]),
    "pdist": (lambda x: nn.pdist(x, X[:1, :, :1, :1], 2),
              lambda v: nn.pdist(v, X[:1, :, :1, :1], 2),
              lambda v, d: nn.pdist(v, X[:1, :, :1, :1], 2, dzdy=d)[0]),
    "loss": (lambda x: nn.loss(x, LABELS), lambda v: nn.loss(v, LABELS),
             lambda v, d: nn.loss(v, LABELS, dzdy=d)[0]),
}


@pytest.mark.parametrize("conserve_memory", [False, True])
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_in_a_net_matches_eager(name, conserve_memory):
    build, forward, derivative = BLOCKS[name]
    x = an.Input(name="x")
    y = build(x)
    y.name = "y"
    expected = forward(X)
    weights = RNG.standard_normal(np.shape(expected))
    net = an.Net((y * weights).sum(), conserve_memory=conserve_memory)
    net.eval({"x": X})
    if not conserve_memory:
        np.testing.assert_allclose(net.value("y"), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.der("x"), derivative(X, weights), rtol=1e-10, atol=1e-12)


def test_relu_chain_short_circuit_gives_the_same_derivative():
    x = an.Input(name="x")
    y = nn.relu(nn.relu(x) * 2 - 1)
    net = an.Net(y.sum(), conserve_memory=True)
    net.eval({"x": X})
    inner = np.maximum(X, 0) * 2 - 1
    np.testing.assert_allclose(net.der("x"), (inner > 0) * 2.0 * (X > 0))


def test_bnorm_params_train_by_average_and_freeze_in_test_mode():
    x = an.Input(name="x")
    w = an.Param(RNG.standard_normal((3, 4, 1, 1)))
    y = nn.bnorm(nn.conv(x, w), epsilon=1e-3)
    net = an.Net((y * y).sum() / 2)
    net.eval({"x": X})
    moments = next(p for p in net.params if p.train_method == "average")
    data = nn.conv(X, w.value)
    _, batch = nn.bnorm(data, epsilon=1e-3, return_moments=True)
    np.testing.assert_allclose(moments.der, batch, rtol=1e-5)
    gain = next(p for p in net.params if p.value.shape == (3,) and p.learning_rate == 2)
    _, dg, _ = nn.bnorm(data, np.ones(3), np.zeros(3), epsilon=1e-3,
                          dzdy=nn.bnorm(data, epsilon=1e-3))
    np.testing.assert_allclose(gain.der, dg, rtol=1e-4, atol=1e-6)
    net.set_value(moments, batch.astype(moments.value.dtype))
    net.eval({"x": X}, mode="test")
    np.testing.assert_allclose(net.value(y), nn.bnorm(data, epsilon=1e-3), rtol=1e-4,
                               atol=1e-5)


def test_bnorm_channel_inference_refuses_unknown_inputs():
    with pytest.raises(ValueError, match="bnorm: cannot infer the number of channels"):
        nn.bnorm(an.Input(name="x"))
