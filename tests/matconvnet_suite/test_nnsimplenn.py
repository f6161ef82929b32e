"""Port of MatConvNet's ``matlab/xtest/suite/nnsimplenn.m`` (vlfeat/matconvnet): what
``vl_simplenn``'s ``conserveMemory``, ``precious``, ``backPropDepth`` and ``skipForward`` keep
and release, on the suite's LeNet-like network (conv 5x5x1x20, max pool, conv 5x5x20x50, max
pool, conv 4x4x50x500, relu, conv 1x1x500x10, softmaxloss) and a batch of 20 32x32 images.

As in the suite (``nntest``), every case runs in single and double precision, on the CPU and,
when there is one, the GPU; data are NCHW and the labels 0-based. MATLAB's ``res(i)`` is
``res[i - 1]`` here and its layer ``i`` is ``net['layers'][i - 1]``.
"""

import numpy as np
import pytest

import autonn as an
from autonn import backend, simplenn

RANGE = 128          # nntest's range: randn(...)/range is a standard normal
DTYPES = [np.float32, np.float64]
DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "gpu" and not an.gpu_available():
        pytest.skip("no GPU")
    return request.param


@pytest.fixture(params=DTYPES, ids=["single", "double"])
def setup(request, device):
    """nnsimplenn's initNet: the network (tidied and moved to the device), x and the labels."""
    dtype = request.param
    rng = np.random.default_rng(0)

    def randn(*shape):
        return backend.to_device((RANGE * rng.standard_normal(shape)).astype(dtype), device)

    def zeros(*shape):
        return backend.to_device(np.zeros(shape, dtype), device)

    def conv(k, c, h, w):
        return {"type": "conv", "weights": [randn(k, c, h, w) / RANGE, zeros(k)], "stride": 1,
                "pad": 0}

    pool = {"type": "pool", "method": "max", "pool": (2, 2), "stride": 2, "pad": 0}
    net = simplenn.tidy({"layers": [conv(20, 1, 5, 5), dict(pool), conv(50, 20, 5, 5), dict(pool),
                                    conv(500, 50, 4, 4), {"type": "relu"},
                                    conv(10, 500, 1, 1), {"type": "softmaxloss"}]})
    x = randn(20, 1, 32, 32) / RANGE
    labels = backend.to_device(rng.integers(0, 10, 20), device)
    return net, x, labels


def eq(a, b):
    """nntest's eq: equal up to 1% of the range of the values."""
    a, b = backend.to_device(a, "cpu"), backend.to_device(b, "cpu")
    both = np.concatenate([np.ravel(a), np.ravel(b)])
    tau = max(1e-2 * (both.max() - both.min()), 1e-3 * max(both.max(), -both.min()))
    np.testing.assert_allclose(a, b, rtol=0, atol=tau)


def test_simple_run(setup):
    net, x, labels = setup
    net["layers"][-1]["class"] = labels
    # the forget functionality of the forward pass: only the output survives
    res = simplenn.run(net, x, None, conserve_memory=True)
    for ri, record in enumerate(res):
        if ri == len(res) - 1:
            assert record.x is not None
        else:
            assert record.x is None
    # and of the backward pass: everything between the input and the output goes
    res = simplenn.run(net, x, 1, conserve_memory=True)
    for record in res[1:-1]:
        assert record.x is None and record.dzdx is None
    # the derivatives of the weights are kept
    for layer, record in zip(net["layers"], res[:-1]):
        if layer["type"] == "conv":
            assert record.dzdw and all(d is not None for d in record.dzdw)


def test_conserve_memory(setup):
    net, x, labels = setup
    net["layers"][-1]["class"] = labels
    res = simplenn.run(net, x, None, conserve_memory=False)
    for record in res:
        assert record.x is not None
    res = simplenn.run(net, x, 1, conserve_memory=False)
    for record in res:
        assert record.x is not None and record.dzdx is not None


def test_precious(setup):
    net, x, labels = setup
    sel_layer = 3                            # MATLAB's layer 3, the second conv
    net["layers"][-1]["class"] = labels
    net["layers"][sel_layer - 1]["precious"] = True
    res = simplenn.run(net, x, None, conserve_memory=True)
    for ri, record in enumerate(res, 1):     # ri counts from 1, as MATLAB's
        if ri - 1 == sel_layer or ri == len(res):
            assert record.x is not None
        else:
            assert record.x is None
    res = simplenn.run(net, x, 1, conserve_memory=True)
    for ri in range(2, len(res)):
        record = res[ri - 1]
        if ri - 1 == sel_layer:
            assert record.x is not None and record.dzdx is not None
        else:
            assert record.x is None and record.dzdx is None


def test_back_prop_depth(setup):
    net, x, labels = setup
    depth = 3
    net["layers"][-1]["class"] = labels
    options = {"conserve_memory": True, "back_prop_depth": depth}
    res = simplenn.run(net, x, None, **options)
    for record in res[:-1]:                  # the depth is ignored by a forward pass
        assert record.x is None
    res = simplenn.run(net, x, 1, **options)
    for record in res[1:-1]:
        assert record.x is None and record.dzdx is None
    for ri in range(1, len(res)):
        if net["layers"][ri - 1]["type"] == "conv":
            if ri >= len(res) - depth + 1:
                assert res[ri - 1].dzdw and all(d is not None for d in res[ri - 1].dzdw)
            else:
                assert not res[ri - 1].dzdw


def test_skip_forward(setup):
    net, x, labels = setup
    net["layers"][-1]["class"] = labels
    res = simplenn.run(net, x, 1)
    res_ = simplenn.run(net, x, 1, res=res, skip_forward=True)
    for a, b in zip(res, res_):
        eq(a.x, b.x)
        eq(a.dzdx, b.dzdx)
    with pytest.raises(ValueError, match="skip_forward.*dzdy"):          # skipForwardNoBackwPass
        simplenn.run(net, x, None, res=None, skip_forward=True)
    with pytest.raises(ValueError, match="skip_forward needs res"):      # skipForwardEmptyRes
        simplenn.run(net, x, 1, res=None, skip_forward=True)
