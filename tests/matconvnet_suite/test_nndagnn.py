"""Port of MatConvNet's ``matlab/xtest/suite/nndagnn.m`` (vlfeat/matconvnet): what a DagNN
converted from SimpleNN keeps and releases with ``conserveMemory`` and ``precious``, and that
``getVarReceptiveFields`` works for every variable, on the suite's LeNet-like network (conv
5x5x1x20, max pool, conv 5x5x20x50, max pool, conv 4x4x50x500, relu, conv 1x1x500x10,
softmaxloss) and a batch of 20 32x32 images.

As in the suite, every case runs on the ``t`` fixture (``nntest.py``, the port of nntest.m): in
single and double precision, on the CPU and, when there is one, the GPU (the weights are made
there, which stands for ``net.move(device)``); data are NCHW and the labels 0-based. The
suite's ``forward`` and ``backward`` helpers reset the network and evaluate it on
``{'x0', x, 'label', class}`` (and ``{'x8', 1}``): ``fromSimpleNN`` names the input ``x0``.
"""

import pytest

from autonn import simplenn
from autonn.dagnn import DagNN


class Suite:
    """nndagnn's properties (net, x, class, inputs, outputs) and its forward/backward helpers,
    on ``t`` (nntest)."""

    def __init__(self, t):
        def conv(k, c, h, w):
            return {"type": "conv", "weights": [t.randn(k, c, h, w), t.zeros(k)], "stride": 1,
                    "pad": 0}

        pool = {"type": "pool", "method": "max", "pool": (2, 2), "stride": 2, "pad": 0}
        layers = [conv(20, 1, 5, 5), dict(pool), conv(50, 20, 5, 5), dict(pool),
                  conv(500, 50, 4, 4), {"type": "relu"}, conv(10, 500, 1, 1),
                  {"type": "softmaxloss"}]
        self.net = DagNN.from_simplenn(simplenn.tidy({"layers": layers}))
        self.inputs = self.net.get_inputs()
        self.outputs = self.net.get_outputs()
        self.x = t.randn(20, 1, 32, 32)
        self.cls = t.to_device(t.rng.integers(0, 10, 20))

    def forward(self):
        self.net.reset()
        self.net.eval({"x0": self.x, "label": self.cls})

    def backward(self):
        self.net.reset()
        self.net.eval({"x0": self.x, "label": self.cls}, {"x8": 1})


@pytest.fixture
def suite(t):
    return Suite(t)


def test_simple_run(suite):
    # the forget functionality of the forward pass
    suite.net.conserve_memory = True
    suite.forward()
    for var in suite.net.vars:
        if var.name in suite.outputs:
            assert var.value is not None
        else:
            assert var.value is None
    # and of the backward pass
    suite.backward()
    for var in suite.net.vars:
        if var.name in suite.inputs:
            assert var.value is not None
        else:
            assert var.value is None
    for param in suite.net.params:
        assert param.der is not None


def test_conserve_memory(suite):
    suite.net.conserve_memory = False
    suite.forward()
    for var in suite.net.vars:
        assert var.value is not None
    suite.backward()
    for var in suite.net.vars:
        assert var.value is not None
        if var.name not in suite.inputs:
            assert var.der is not None


def test_precious(suite):
    sel_layer = 3                                     # MATLAB's layer 3, the second conv
    output_idx = suite.net.layers[sel_layer - 1].output_indexes[0]
    suite.net.vars[output_idx].precious = True
    suite.net.conserve_memory = True
    suite.forward()
    for ri, var in enumerate(suite.net.vars):
        if var.name in suite.outputs or ri == output_idx:
            assert var.value is not None
        else:
            assert var.value is None
    suite.net.vars[output_idx].precious = False


def test_get_receptive_fields(suite):
    # just that it does not fail
    for var in suite.net.vars:
        suite.net.var_receptive_fields(var.name)
