"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnloss.m``: every loss type, with labels
partly null (ignored) and without, with and without instance weights, and zero instance
weights giving a zero loss; float32 and float64. NCHW (MATLAB's h x w x C x N is (N, C, h, w))
and 0-based labels: MATLAB's ``randi(numClasses)`` is 0..numClasses-1 here and its null label 0
is -1 (autonn's "ignore"); attribute labels stay +-1 with 0 ignored. MATLAB's weights of shape
h x w (x numAttributes) broadcast over the images: (1, 1, h, w) and (1, A, h, w) here."""

import numpy as np
import pytest

from autonn import nn
from nntest import gather

LOSSES = ["classerror", "log", "softmaxlog", "mhinge", "mshinge", "binaryerror", "binarylog",
          "logistic", "hinge"]
MULTICLASS = ("log", "softmaxlog", "mhinge", "mshinge", "classerror")


def getx(t, loss):
    classes, attributes, images, w, h = 3, 5, 3, 5, 4
    if loss in MULTICLASS:
        weights = t.rand(1, 1, h, w) / t.range / (h * w)
        c = t.rng.integers(0, classes, size=(images, 1, h, w))
    else:
        weights = t.rand(1, attributes, h, w) / t.range / (h * w * attributes)
        c = np.sign(t.randn(images, attributes, h, w))
    c = t.to_data_type(t.to_device(c))
    if loss == "log":
        x = t.rand(images, classes, h, w) / t.range * t.dtype.type(0.6) + t.dtype.type(0.2)
        x = x / x.sum(axis=1, keepdims=True)
    elif loss == "binarylog":
        x = t.rand(images, attributes, h, w) / t.range * t.dtype.type(0.6) + t.dtype.type(0.2)
    elif loss in ("softmaxlog", "mhinge", "mshinge", "classerror"):
        x = t.randn(images, classes, h, w) / t.range
    else:
        x = t.randn(images, attributes, h, w) / t.range
    dzdy = t.randn() / t.range
    return x, c, dzdy, weights


def null(t, loss, c):
    """Null a part of the labels: MatConvNet's c .* (randn > 0)."""
    keep = t.randn(*c.shape) > 0
    if loss in MULTICLASS:
        return np.where(keep, c, t.dtype.type(-1))
    return c * keep


@pytest.mark.parametrize("weighed", [False, True])
@pytest.mark.parametrize("loss", LOSSES)
def test_nullcategories(t, loss, weighed):
    x, c, dzdy, weights = getx(t, loss)
    c = null(t, loss, c)
    opts = {"loss": loss}
    if weighed:
        opts["instance_weights"] = weights
    nn.loss(x, c, **opts)
    dzdx = nn.loss(x, c, dzdy=dzdy, **opts)[0]
    t.der(lambda x: nn.loss(x, c, **opts), x, dzdy, dzdx, 0.001, -5e-1)


@pytest.mark.parametrize("weighed", [False, True])
@pytest.mark.parametrize("loss", LOSSES)
def test_convolutional(t, loss, weighed):
    x, c, dzdy, weights = getx(t, loss)
    opts = {"loss": loss}
    if weighed:
        opts["instance_weights"] = weights
    nn.loss(x, c, **opts)
    dzdx = nn.loss(x, c, dzdy=dzdy, **opts)[0]
    t.der(lambda x: nn.loss(x, c, **opts), x, dzdy, dzdx, 0.001, -5e-1)


@pytest.mark.parametrize("loss", LOSSES)
def test_instance_weights(t, loss):
    # make sure that the instance weights are applied
    x, c, dzdy, weights = getx(t, loss)
    c = null(t, loss, c)
    weights = weights * 0
    y = gather(nn.loss(x, c, loss=loss, instance_weights=weights))
    assert y.dtype == t.dtype
    np.testing.assert_allclose(y, 0, atol=1e-3)
