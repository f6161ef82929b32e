"""SimpleNN wrapper: run (forward, backward, test mode, vl_simplenn's conserve_memory rules with
precious layers, back_prop_depth, skip_forward), tidy, display, custom layers, and conversion to
a Net."""

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
    dx = nn.bnorm(res[3].x, g, b, moments=moments, frozen=True, dzdy=res[4].dzdx)[0]
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


# ----------------------------------------------------------------- vl_simplenn's options
def chain():
    """conv, relu, softmaxloss, then a layer after the loss (a loss output read further on)."""
    return {"layers": [
        {"type": "conv", "name": "c1", "weights": [RNG.standard_normal((3, 2, 3, 3)),
                                                    RNG.standard_normal(3)], "pad": 1},
        {"type": "relu"},
        {"type": "conv", "name": "c2", "weights": [RNG.standard_normal((4, 3, 3, 3)),
                                                    RNG.standard_normal(4)]},
        {"type": "sigmoid"},
        {"type": "softmaxloss", "class": np.array([1, 3])},
        {"type": "custom", "forward": lambda v: v * 3.0},
    ]}


def test_conserve_memory_forward_keeps_only_the_output_loss_outputs_and_precious_ones():
    net = chain()
    x = RNG.standard_normal((2, 2, 5, 5))
    full = simplenn.run(net, x)
    res = simplenn.run(net, x, conserve_memory=True)
    kept = [i for i, r in enumerate(res) if r.x is not None]
    assert kept == [5, 6]                    # the loss's output and the network's output
    np.testing.assert_allclose(res[5].x, full[5].x)
    np.testing.assert_allclose(res[6].x, full[6].x)
    net["layers"][1]["precious"] = True      # the relu's output, res[2]
    res = simplenn.run(net, x, conserve_memory=True)
    assert [i for i, r in enumerate(res) if r.x is not None] == [2, 5, 6]
    np.testing.assert_allclose(res[2].x, full[2].x)


def test_conserve_memory_with_derivatives_keeps_input_output_and_precious_derivatives():
    net = chain()
    net["layers"][2]["precious"] = True      # c2's output, res[3]
    x = RNG.standard_normal((2, 2, 5, 5))
    full = simplenn.run(net, x, dzdy=1.0)
    res = simplenn.run(net, x, dzdy=1.0, conserve_memory=True)
    assert [i for i, r in enumerate(res) if r.x is not None] == [0, 3, 6]
    assert [i for i, r in enumerate(res) if r.dzdx is not None] == [0, 3, 6]
    for i in (0, 3, 6):
        np.testing.assert_allclose(res[i].x, full[i].x)
        np.testing.assert_allclose(res[i].dzdx, full[i].dzdx, rtol=1e-12)
    for k in (0, 2):
        for got, want in zip(res[k].dzdw, full[k].dzdw):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_conserve_memory_releases_values_while_the_tape_runs():
    net = chain()
    segment = simplenn._Segment(net, 0, 6, False, [3], True, derivatives=True)
    forward, backward = segment.net.tape.forward, segment.net.tape.backward
    freed = {s for step in forward for s in step.free} | \
        {s for step in backward for s in step.free_values}
    freed_ders = {s for step in backward for s in step.free_ders}
    names = segment.net.tape.names
    assert names.index("x1") in freed and names.index("x2") in freed_ders
    assert names.index("x3") not in freed and names.index("x3") not in freed_ders  # precious


def test_back_prop_depth_stops_the_backward_pass_after_the_last_layers():
    net = chain()
    x = RNG.standard_normal((2, 2, 5, 5))
    full = simplenn.run(net, x, dzdy=1.0)
    res = simplenn.run(net, x, dzdy=1.0, back_prop_depth=4)     # layers 2..5: from c2 on
    for a, b in zip(res, full):
        np.testing.assert_allclose(a.x, b.x)
    assert [r.dzdx is None for r in res] == [True, True, False, False, False, False, False]
    for i in range(2, 7):
        np.testing.assert_allclose(res[i].dzdx, full[i].dzdx, rtol=1e-12)
    assert res[0].dzdw == [] and len(res[2].dzdw) == 2
    np.testing.assert_allclose(res[2].dzdw[0], full[2].dzdw[0], rtol=1e-12)
    deep = simplenn.run(net, x, dzdy=1.0, back_prop_depth=100)
    np.testing.assert_allclose(deep[0].dzdx, full[0].dzdx, rtol=1e-12)
    # with conserve_memory, res[backPropLim] goes too (unless its reader is precious)
    res = simplenn.run(net, x, dzdy=1.0, back_prop_depth=4, conserve_memory=True)
    assert [i for i, r in enumerate(res) if r.x is not None] == [6]
    net["layers"][2]["precious"] = True
    res = simplenn.run(net, x, dzdy=1.0, back_prop_depth=4, conserve_memory=True)
    assert [i for i, r in enumerate(res) if r.x is not None] == [2, 3, 6]
    np.testing.assert_allclose(res[2].dzdx, full[2].dzdx, rtol=1e-12)


def test_bad_back_prop_depth_and_res_are_named():
    net, x = chain(), RNG.standard_normal((2, 2, 5, 5))
    for depth in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="back_prop_depth must be a positive"):
            simplenn.run(net, x, dzdy=1.0, back_prop_depth=depth)
    with pytest.raises(ValueError, match="back_prop_depth must be a positive whole"):
        simplenn.run(net, x, dzdy=1.0, back_prop_depth=1.5)
    for depth in (True, "2", None):
        with pytest.raises(TypeError, match="back_prop_depth"):
            simplenn.run(net, x, dzdy=1.0, back_prop_depth=depth)
    res = simplenn.run(net, x, dzdy=1.0)
    with pytest.raises(ValueError, match="res has 6 records; a network of 6 layers has 7"):
        simplenn.run(net, x, dzdy=1.0, res=res[:-1], skip_forward=True)
    with pytest.raises(TypeError, match="res must be the list of Records"):
        simplenn.run(net, x, dzdy=1.0, res=[1, 2], skip_forward=True)
    net["layers"][0]["precious"] = "yes"
    with pytest.raises(TypeError, match="layer 'c1' precious must be True or False"):
        simplenn.run(net, x, conserve_memory=True)


def test_skip_forward_runs_only_the_backward_pass_from_the_given_values():
    calls = []

    def forward(v):
        calls.append("forward")
        return v * 2.0

    def backward(v, dzdy):
        calls.append("backward")
        return 2.0 * dzdy

    net = chain()
    net["layers"].insert(2, {"type": "custom", "forward": forward, "backward": backward})
    net["layers"].insert(1, {"type": "dropout", "rate": 0.5})
    x = RNG.standard_normal((2, 2, 5, 5))
    res = simplenn.run(net, x, dzdy=1.0)
    assert calls == ["forward", "backward"] and res[2].aux        # the dropout mask
    again = simplenn.run(net, None, dzdy=1.0, res=res, skip_forward=True)
    assert calls == ["forward", "backward", "backward"]
    for a, b in zip(res, again):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_allclose(a.dzdx, b.dzdx, rtol=1e-12)  # the same mask
    # the backward pass reads the records: change the input of the loss (its dzdy is 3, from
    # the layer after it)
    changed = [simplenn.Record(r.x, aux=r.aux) for r in res]
    changed[6].x = RNG.standard_normal(res[6].x.shape)
    labels = net["layers"][6]["class"]
    out = simplenn.run(net, None, dzdy=1.0, res=changed, skip_forward=True)
    np.testing.assert_allclose(out[6].dzdx, nn.softmaxloss(changed[6].x, labels, dzdy=3.0)[0],
                               rtol=1e-12)
    assert res[6].dzdx is not out[6].dzdx and changed[6].dzdx is None   # res is left alone
    # only the last layers, from the values of a conserve_memory run: they are needed
    kept = simplenn.run(net, x, dzdy=1.0, conserve_memory=True)
    with pytest.raises(ValueError, match=r"skip_forward needs the forward values res\[1\].x"):
        simplenn.run(net, None, dzdy=1.0, res=kept, skip_forward=True)
    top = simplenn.run(net, None, dzdy=1.0, res=res, skip_forward=True, back_prop_depth=2)
    np.testing.assert_allclose(top[6].dzdx, res[6].dzdx, rtol=1e-12)
    assert top[5].dzdx is None and top[4].dzdw == []


def test_empty_dzdy_and_res_mean_none_as_matlab_empties():
    net, x = chain(), RNG.standard_normal((2, 2, 5, 5))
    res = simplenn.run(net, x, [], conserve_memory=True)
    assert [r.x is not None for r in res] == [False] * 5 + [True, True]
    assert all(r.dzdx is None for r in res)
    with pytest.raises(ValueError, match="skip_forward needs res"):
        simplenn.run(net, x, 1.0, res=[], skip_forward=True)


def test_tidy_fills_vl_simplenn_tidys_defaults_pdist_epsilon_and_bnorm_moments():
    gain, bias = np.ones(3, np.float32), np.zeros(3, np.float32)
    net = simplenn.tidy([{"type": "pdist"}, {"type": "bnorm", "weights": [gain, bias]}])
    pdist, bnorm = net["layers"]
    assert pdist["epsilon"] == 1e-3
    moments = bnorm["weights"][2]
    assert moments.shape == (3, 2) and moments.dtype == np.float32 and not moments.any()
    x = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    res = simplenn.run([{"type": "bnorm", "weights": [gain, bias]}], x, dzdy=np.ones_like(x))
    np.testing.assert_allclose(res[1].x, nn.bnorm(x, gain, bias, epsilon=1e-5), rtol=1e-5,
                               atol=1e-6)
