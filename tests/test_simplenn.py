"""SimpleNN wrapper: run (forward, backward, test mode, conserve_memory), tidy, display, custom
layers, and conversion to a Net."""

import io

import numpy as np
import pytest

import autonn as an
from autonn import nn, simplenn

RNG = np.random.default_rng(1)


def small_net(dtype=np.float64):
    def r(*shape):
        return RNG.standard_normal(shape).astype(dtype)
    moments = np.stack([r(4) * 0.1, 1 + np.abs(r(4))], axis=1)
    return {"layers": [
        {"type": "conv", "name": "conv1", "weights": [r(4, 3, 3, 3), r(4)], "pad": 1},
        {"type": "relu", "leak": 0.1},
        {"type": "pool", "pool": (2, 2), "stride": 2, "method": "avg"},
        {"type": "bnorm", "name": "bn", "weights": [1 + r(4) * 0.1, r(4) * 0.1, moments]},
        {"type": "lrn", "param": (3, 1.0, 0.01, 0.75)},
        {"type": "conv", "name": "fc", "weights": [r(5, 4, 4, 4), r(5)]},
        {"type": "softmaxloss"},
    ], "meta": {"classes": list("abcde")}}


def by_hand(net, x, labels):
    """The same network with eager blocks and MatConvNet's backward recursion, layer by layer."""
    (conv1, relu, pool, bn, lrn, fc, _) = net["layers"]
    xs = [x]
    xs.append(nn.conv(xs[-1], *conv1["weights"], pad=1))
    xs.append(nn.relu(xs[-1], leak=0.1))
    xs.append(nn.pool(xs[-1], 2, stride=2, method="avg"))
    xs.append(nn.bnorm(xs[-1], *bn["weights"][:2], epsilon=1e-5))
    xs.append(nn.normalize(xs[-1], (3, 1.0, 0.01, 0.75)))
    xs.append(nn.conv(xs[-1], *fc["weights"]))
    xs.append(nn.softmaxloss(xs[-1], labels))
    d = {}
    dz = 1.0
    d[6], _ = nn.softmaxloss(xs[6], labels, dzdy=dz)
    d[5], dwf, dbf = nn.conv(xs[5], *fc["weights"], dzdy=d[6])
    d[4] = nn.normalize(xs[4], (3, 1.0, 0.01, 0.75), dzdy=d[5])
    d[3], dg, db = nn.bnorm(xs[3], *bn["weights"][:2], epsilon=1e-5, dzdy=d[4])
    d[2] = nn.pool(xs[2], 2, stride=2, method="avg", dzdy=d[3])
    d[1] = nn.relu(xs[1], leak=0.1, dzdy=d[2])
    d[0], dw1, db1 = nn.conv(xs[0], *conv1["weights"], pad=1, dzdy=d[1])
    return xs, d, (dw1, db1), (dg, db), (dwf, dbf)


def test_run_matches_the_blocks_composed_by_hand():
    net = small_net()
    x = RNG.standard_normal((3, 3, 8, 8))
    labels = np.array([0, 4, 2])
    net["layers"][-1]["class"] = labels
    res = simplenn.run(net, x, dzdy=1.0)
    xs, d, dconv1, dbn, dfc = by_hand(net, x, labels)
    assert len(res) == 8
    for i in range(8):
        np.testing.assert_allclose(res[i].x, xs[i], rtol=1e-10, atol=1e-12)
    for i in range(7):
        np.testing.assert_allclose(res[i].dzdx, d[i], rtol=1e-9, atol=1e-12)
    for got, want in zip(res[0].dzdw, dconv1):
        np.testing.assert_allclose(got, want, rtol=1e-9)
    for got, want in zip(res[5].dzdw, dfc):
        np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(res[3].dzdw[0], dbn[0], rtol=1e-9)
    # bnorm's third derivative is the batch's moments, as MatConvNet reports them
    mu = xs[3].mean(axis=(0, 2, 3))
    sigma = np.sqrt(xs[3].var(axis=(0, 2, 3)) + 1e-5)
    np.testing.assert_allclose(res[3].dzdw[2], np.stack([mu, sigma], 1), rtol=1e-9)
    assert res[1].dzdw == [] and res[7].dzdw == []


def test_forward_only_has_no_derivatives_and_bare_lists_work():
    net = small_net()
    x = RNG.standard_normal((2, 3, 8, 8))
    res = simplenn.run(net["layers"][:-1], x)
    assert res[-1].x.shape == (2, 5, 1, 1)
    assert all(r.dzdx is None for r in res)


def test_test_mode_uses_stored_moments_and_skips_dropout():
    net = small_net()
    net["layers"].insert(4, {"type": "dropout", "rate": 0.5})
    x = RNG.standard_normal((2, 3, 8, 8))
    res = simplenn.run(net, x, mode="test", labels=np.array([1, 2]), dzdy=1.0)
    g, b, moments = net["layers"][3]["weights"]
    expected = nn.bnorm(res[3].x, g, b, moments=moments)
    np.testing.assert_allclose(res[4].x, expected, rtol=1e-12)
    np.testing.assert_array_equal(res[5].x, res[4].x)       # dropout is the identity
    dx = nn.bnorm(res[3].x, g, b, moments=moments, dzdy=res[4].dzdx)[0]
    np.testing.assert_allclose(res[3].dzdx, dx, rtol=1e-9)  # derivative of the test function
    train = simplenn.run(net, x, labels=np.array([1, 2]))
    assert not np.allclose(train[4].x, res[4].x)             # normal mode: batch moments


def test_conserve_memory_releases_intermediate_values():
    net = small_net()
    x = RNG.standard_normal((2, 3, 8, 8))
    res = simplenn.run(net, x, dzdy=1.0, conserve_memory=True, labels=np.array([0, 1]))
    full = simplenn.run(net, x, dzdy=1.0, labels=np.array([0, 1]))
    assert res[2].x is None and res[4].dzdx is None
    np.testing.assert_allclose(res[-1].x, full[-1].x)
    np.testing.assert_allclose(res[0].dzdx, full[0].dzdx)
    np.testing.assert_allclose(res[5].dzdw[0], full[5].dzdw[0])


def test_net_conversion_gives_the_same_values_and_derivatives():
    net = small_net()
    x = RNG.standard_normal((2, 3, 8, 8))
    labels = np.array([3, 1])
    res = simplenn.run(net, x, dzdy=1.0, labels=labels)
    converted = an.Net(net)
    converted.eval({"input": x, "label": labels})
    assert float(converted.value("x7")) == pytest.approx(float(res[-1].x), rel=1e-12)
    np.testing.assert_allclose(converted.der("input"), res[0].dzdx, rtol=1e-12)
    np.testing.assert_allclose(converted.der("conv1f"), res[0].dzdw[0], rtol=1e-12)
    assert [p.name for p in converted.params] == ["conv1f", "conv1b", "bnm", "bnb", "bnx",
                                                   "fcf", "fcb"]
    assert converted.params[4].train_method == "average"


def test_tidy_fills_defaults_and_translates_matconvnet_names():
    net = simplenn.tidy([{"type": "conv", "filters": np.ones((2, 1, 3, 3)), "biases": np.zeros(2),
                          "learningRate": [1, 2]},
                         {"type": "pdist", "noRoot": True},
                         {"type": "pool"}])
    conv, pdist, pool = net["layers"]
    assert conv["name"] == "layer1" and conv["stride"] == 1 and conv["dilate"] == 1
    assert conv["learning_rate"] == [1, 2] and len(conv["weights"]) == 2
    assert pdist["no_root"] is True and pdist["p"] == 2.0
    assert pool["method"] == "max" and pool["pool"] == (1, 1)
    assert net["meta"] == {}


def test_errors_name_the_function_layer_and_problem():
    with pytest.raises(ValueError, match=r"simplenn.tidy: layer 1 has unknown type 'convx'"):
        simplenn.tidy([{"type": "relu"}, {"type": "convx"}])
    with pytest.raises(ValueError, match=r"layer 0 \('layer1', type 'relu'\) has unknown "
                                         r"options \['strid'\]"):
        simplenn.tidy([{"type": "relu", "strid": 2}])
    with pytest.raises(ValueError, match=r"simplenn.run: layer 0 .*filters must be 4-D.*\(3, 3\)"):
        simplenn.run([{"type": "conv", "weights": [np.ones((3, 3)), None]}],
                     np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="needs labels"):
        simplenn.run([{"type": "softmaxloss"}], np.ones((1, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"simplenn.run: x must be an \(N, C, H, W\) array"):
        simplenn.run([{"type": "relu"}], np.ones((3, 3)))


def test_custom_layers_with_and_without_backward():
    calls = []

    def forward(x):
        return x ** 3

    def backward(x, dzdy):
        calls.append(x.shape)
        return 3 * x ** 2 * dzdy

    x = RNG.standard_normal((1, 2, 3, 3))
    dzdy = RNG.standard_normal((1, 2, 3, 3))
    res = simplenn.run([{"type": "custom", "forward": forward, "backward": backward}], x,
                       dzdy=dzdy)
    np.testing.assert_allclose(res[1].x, x ** 3)
    np.testing.assert_allclose(res[0].dzdx, 3 * x ** 2 * dzdy)
    assert calls == [(1, 2, 3, 3)]
    # built from autonn operations: no backward needed
    res = simplenn.run([{"type": "custom", "forward": lambda v: np.tanh(v) * 2}], x, dzdy=dzdy)
    np.testing.assert_allclose(res[0].dzdx, 2 * (1 - np.tanh(x) ** 2) * dzdy, rtol=1e-12)


def test_display_prints_sizes_fields_and_memory():
    net = small_net(np.float32)
    out = io.StringIO()
    rows = simplenn.display(net, input_size=(2, 3, 8, 8), file=out)
    text = out.getvalue()
    assert "rf size" in text and "conv1" in text
    assert rows[0]["size"] == "2×4×8×8" and rows[0]["support"] == "3" and rows[0]["filter"] == "3→4"
    assert rows[2]["rf_size"] == "4" and rows[2]["rf_stride"] == "2"
    assert rows[5]["size"] == "2×5×1×1" and rows[5]["rf_size"] == "10"
    assert rows[0]["memory"] == "2.0KB" and rows[0]["pad"] == "1" and rows[2]["pad"] == "0"


def test_converted_simplenn_passes_gradcheck():
    net = small_net()
    del net["layers"][3]                  # bnorm's moments "derivative" is not a derivative
    net["layers"].insert(3, {"type": "spnorm", "param": (3, 3, 0.5, 0.75)})
    converted = an.Net(net)
    x = RNG.standard_normal((2, 3, 8, 8))
    an.gradcheck(converted, {"input": x, "label": np.array([1, 4])})
