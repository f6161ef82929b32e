"""Port of ``matlab/xtest/suite/nnmnist.m`` (vlfeat/matconvnet): one epoch of ``cnn_mnist``
(LeNet, SimpleNN and DagNN) on the whole of MNIST must end below 8% training and 2.5%
validation error, in single precision.

MNIST itself (60,000 + 10,000 digits) ships with no package that installs offline, so the test
reads the four IDX files from the folder in ``AUTONN_MNIST_ROOT`` and skips without it. As
``cnn_mnist``: the pixels 0-255 less the training mean image, the layers of
``cnn_mnist_init`` (0.01 randn filters, zero biases, batch normalisation by default), SGD with
learning rate 0.001, momentum 0.9, weight decay 0.0005, batches of 100.
"""

import os

import numpy as np
import pytest

import autonn as an
from autonn import dagnn

ROOT = os.environ.get("AUTONN_MNIST_ROOT")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not ROOT, reason="needs MNIST's IDX files in AUTONN_MNIST_ROOT")]


def cnn_mnist_init(rng):
    """``cnn_mnist_init``'s layers, NCHW filters, with its default batch normalisation:
    ``insertBnorm`` after the first three convolutions (whose biases it removes), gains 1,
    biases 0, learning rates [1 1 0.05] (the moments' is their averaging rate), no decay."""
    def conv(k, c, size, bias=True):
        weights = [(0.01 * rng.standard_normal((k, c, size, size))).astype(np.float32)]
        return {"type": "conv", "weights": weights + ([np.zeros(k, np.float32)] if bias else []),
                "stride": 1, "pad": 0}

    def bnorm(channels):
        return {"type": "bnorm", "weights": [np.ones(channels, np.float32),
                                             np.zeros(channels, np.float32)],
                "learningRate": [1, 1, 0.05], "weightDecay": [0, 0]}
    pool = {"type": "pool", "method": "max", "pool": (2, 2), "stride": 2, "pad": 0}
    return {"layers": [conv(20, 1, 5, bias=False), bnorm(20), dict(pool),
                       conv(50, 20, 5, bias=False), bnorm(50), dict(pool),
                       conv(500, 50, 4, bias=False), bnorm(500), {"type": "relu"},
                       conv(10, 500, 1), {"type": "softmaxloss"}]}


@pytest.mark.parametrize("network_type", ["simplenn", "dagnn"])
def test_val_error_rate(network_type):
    data = an.datasets.mnist(ROOT, scale=255.0)
    net_layers = cnn_mnist_init(np.random.default_rng(0))
    if network_type == "simplenn":
        net = an.Net(net_layers)
        inputs = ("input", "label")
    else:
        dag = dagnn.DagNN.from_simplenn(net_layers, canonical_names=True)
        dag.add_layer("error", dagnn.Loss(loss="classerror"), ["prediction", "label"], "error")
        net = an.Net(dag)
        inputs = ("input", "label")
    batch = 100
    solver = an.solvers.SGD(learning_rate=0.001, momentum=0.9, weight_decay=0.0005)
    history = an.train(net, data, solver, epochs=1, batch_size=batch, progress=False,
                       plot=False, inputs=inputs)
    error = "top1err" if "top1err" in history["train"][-1] else "error"
    assert history["train"][-1][error] < 0.08
    assert history["val"][-1][error] < 0.025
