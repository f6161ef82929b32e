"""Port of MatConvNet's ``matlab/xtest/suite/nnsimplenn.m`` (vlfeat/matconvnet): what
``vl_simplenn``'s ``conserveMemory``, ``precious``, ``backPropDepth`` and ``skipForward`` keep
and release, on the suite's LeNet-like network (conv 5x5x1x20, max pool, conv 5x5x20x50, max
pool, conv 4x4x50x500, relu, conv 1x1x500x10, softmaxloss) and a batch of 20 32x32 images.

As in the suite, every case runs on the ``t`` fixture (``nntest.py``, the port of nntest.m): in
single and double precision, on the CPU and, when there is one, the GPU; data are NCHW and the
labels 0-based. MATLAB's ``res(i)`` is
``res[i - 1]`` here and its layer ``i`` is ``net['layers'][i - 1]``.
"""

import pytest

from autonn import simplenn


@pytest.fixture
def setup(t):
    """nnsimplenn's initNet, on ``t`` (nntest): the network (tidied, on t's device), x and the
    labels."""
    def conv(k, c, h, w):
        return {"type": "conv", "weights": [t.randn(k, c, h, w) / t.range, t.zeros(k)],
                "stride": 1, "pad": 0}

    pool = {"type": "pool", "method": "max", "pool": (2, 2), "stride": 2, "pad": 0}
    net = simplenn.tidy({"layers": [conv(20, 1, 5, 5), dict(pool), conv(50, 20, 5, 5), dict(pool),
                                    conv(500, 50, 4, 4), {"type": "relu"},
                                    conv(10, 500, 1, 1), {"type": "softmaxloss"}]})
    x = t.randn(20, 1, 32, 32) / t.range
    labels = t.to_device(t.rng.integers(0, 10, 20))
    return t, net, x, labels


def test_simple_run(setup):
    t, net, x, labels = setup
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
    t, net, x, labels = setup
    net["layers"][-1]["class"] = labels
    res = simplenn.run(net, x, None, conserve_memory=False)
    for record in res:
        assert record.x is not None
    res = simplenn.run(net, x, 1, conserve_memory=False)
    for record in res:
        assert record.x is not None and record.dzdx is not None


def test_precious(setup):
    t, net, x, labels = setup
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
    t, net, x, labels = setup
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
    t, net, x, labels = setup
    net["layers"][-1]["class"] = labels
    res = simplenn.run(net, x, 1)
    res_ = simplenn.run(net, x, 1, res=res, skip_forward=True)
    for a, b in zip(res, res_):
        t.eq(a.x, b.x)
        t.eq(a.dzdx, b.dzdx)
    with pytest.raises(ValueError, match="skip_forward.*dzdy"):          # skipForwardNoBackwPass
        simplenn.run(net, x, None, res=None, skip_forward=True)
    with pytest.raises(ValueError, match="skip_forward needs res"):      # skipForwardEmptyRes
        simplenn.run(net, x, 1, res=None, skip_forward=True)
