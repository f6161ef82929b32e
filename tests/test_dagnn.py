"""DagNN wrapper: building and editing graphs, eval with dict and flat-list inputs, parameter
sharing, every block against the eager functions, sizes, test mode, conserve_memory and precious
variables as MatConvNet's, reset, blocks on arrays, and conversions (fromSimpleNN's names)."""

import numpy as np
import pytest

import autonn as an
from autonn import dagnn, nn, simplenn
from autonn.dagnn import (AffineGridGenerator, BatchNorm, BilinearSampler, Concat, Conv,
                          ConvTranspose, Crop, DagNN, DropOut, LRN, Loss, PDist, Pooling, ReLU,
                          ROIPooling, Scale, Sigmoid, SoftMax, SpatialNorm, Sum)

RNG = np.random.default_rng(2)


def lenet_like():
    dag = DagNN()
    dag.add_layer("conv1", Conv(size=(3, 3, 1, 4), pad=1), "input", "x1", ["conv1f", "conv1b"])
    dag.add_layer("relu1", ReLU(), "x1", "x2")
    dag.add_layer("pool1", Pooling(pool_size=(2, 2), stride=2), "x2", "x3")
    dag.add_layer("fc", Conv(size=(3, 3, 4, 3)), "x3", "pred", ["fcf", "fcb"])
    dag.add_layer("loss", Loss(), ["pred", "label"], "objective")
    dag.init_params(seed=0)
    for p in dag.params:
        p.value = p.value.astype(np.float64)
    return dag


def test_build_eval_and_access_vars_and_params():
    dag = lenet_like()
    assert dag.get_inputs() == ["input", "label"] and dag.get_outputs() == ["objective"]
    assert [p.name for p in dag.params] == ["conv1f", "conv1b", "fcf", "fcb"]
    assert dag.params[0].value.shape == (4, 1, 3, 3) and dag.params[3].value.shape == (3,)
    x = RNG.standard_normal((2, 1, 6, 6))
    c = np.array([0, 2])
    dag.eval(["input", x, "label", c], ["objective", 1.0])      # MatConvNet's flat lists
    value = dag.vars[dag.get_var_index("objective")].value
    # the same function written with the blocks directly
    f, b = dag.params[0].value, dag.params[1].value
    h = nn.pool(nn.relu(nn.conv(x, f, b, pad=1)), 2, stride=2)
    pred = nn.conv(h, dag.params[2].value, dag.params[3].value)
    assert float(value) == pytest.approx(float(nn.loss(pred, c)), rel=1e-12)
    dpred, _ = nn.loss(pred, c, dzdy=1.0)
    _, dwf, dbf = nn.conv(h, dag.params[2].value, dag.params[3].value, dzdy=dpred)
    np.testing.assert_allclose(dag.params[2].der, dwf, rtol=1e-10)
    np.testing.assert_allclose(dag.vars[dag.get_var_index("pred")].der, dpred, rtol=1e-12)
    # forward only: values, no derivatives
    dag.eval({"input": x, "label": c})
    assert dag.vars[0].der is None and dag.vars[-1].value is not None


def test_shared_parameters_accumulate_derivatives():
    dag = DagNN()
    dag.add_layer("a", Conv(size=(3, 3, 2, 2), pad=1, has_bias=False), "x", "y1", "w")
    dag.add_layer("b", Conv(size=(3, 3, 2, 2), pad=1, has_bias=False), "y1", "y2", "w")
    dag.init_params(seed=1)
    w = dag.params[0].value.astype(np.float64)
    dag.params[0].value = w
    assert len(dag.params) == 1 and dag.params[0].fanout == 2
    x = RNG.standard_normal((1, 2, 5, 5))
    p = RNG.standard_normal((1, 2, 5, 5))
    dag.eval({"x": x}, {"y2": p})
    # finite differences along a random direction
    direction = RNG.standard_normal(w.shape)
    eps = 1e-6

    def f(wv):
        return float((nn.conv(nn.conv(x, wv, None, pad=1), wv, None, pad=1) * p).sum())
    numeric = (f(w + eps * direction) - f(w - eps * direction)) / (2 * eps)
    assert float((dag.params[0].der * direction).sum()) == pytest.approx(numeric, rel=1e-6)


def test_every_block_matches_the_eager_functions():
    dag = DagNN()
    x = RNG.standard_normal((2, 4, 8, 8))
    dag.add_layer("ct", ConvTranspose(size=(4, 4, 2, 4), upsample=2, crop=1), "x", "up",
                  ["ctf", "ctb"])
    dag.add_layer("lrn", LRN(param=(3, 2.0, 0.1, 0.5)), "x", "n1")
    dag.add_layer("sp", SpatialNorm(param=(3, 3, 0.5, 1.0)), "n1", "n2")
    dag.add_layer("sig", Sigmoid(), "n2", "s")
    dag.add_layer("sm", SoftMax(), "s", "sm")
    dag.add_layer("cat", Concat(axis=1), ["sm", "x"], "cat")
    dag.add_layer("sum", Sum(), ["cat", "cat"], "twice")
    dag.add_layer("scale", Scale(size=(1, 8, 1, 1)), "twice", "scaled", ["k", "kb"])
    dag.add_layer("crop", Crop(crop=(2, 1)), ["up", "x"], "cropped")
    dag.add_layer("dist", PDist(p=1.5), ["cropped", "x0"], "dist")
    dag.add_layer("roi", ROIPooling(subdivisions=(2, 2), transform=1.0), ["x", "rois"], "roi")
    dag.add_layer("grid", AffineGridGenerator(ho=5, wo=6), "theta", "grid")
    dag.add_layer("sample", BilinearSampler(), ["x", "grid"], "sampled")
    dag.init_params(seed=3)
    for p in dag.params:
        p.value = RNG.standard_normal(p.value.shape)
    x0 = RNG.standard_normal((1, 2, 1, 1))
    rois = np.array([[0, 1, 1, 5, 6], [1, 0, 2, 7, 7]], np.float64)
    theta = RNG.standard_normal((2, 2, 3)) * 0.5
    dag.eval({"x": x, "x0": x0, "rois": rois, "theta": theta})
    v = {var.name: var.value for var in dag.vars}
    P = {p.name: p.value for p in dag.params}
    up = nn.convt(x, P["ctf"], P["ctb"], upsample=2, crop=1)
    np.testing.assert_allclose(v["up"], up)
    n2 = nn.spnorm(nn.normalize(x, (3, 2.0, 0.1, 0.5)), (3, 3, 0.5, 1.0))
    sm = nn.softmax(nn.sigmoid(n2))
    twice = 2 * np.concatenate([sm, x], axis=1)
    np.testing.assert_allclose(v["scaled"], twice * P["k"] + P["kb"], rtol=1e-12)
    assert v["cropped"].shape == (2, 2, 8, 8)
    np.testing.assert_allclose(v["cropped"], up[:, :, 2:10, 1:9])
    np.testing.assert_allclose(v["dist"], nn.pdist(up[:, :, 2:10, 1:9], x0, 1.5))
    np.testing.assert_allclose(v["roi"], nn.roipool(x, rois, subdivisions=(2, 2)))
    np.testing.assert_allclose(v["sampled"],
                               nn.bilinearsampler(x, nn.affinegrid(theta, (5, 6))))
    sizes = dict(zip([var.name for var in dag.vars],
                     dag.var_sizes({"x": x.shape, "x0": x0.shape, "rois": rois.shape,
                                    "theta": theta.shape})))
    assert all(sizes[name] == np.shape(value) for name, value in v.items())


def test_batchnorm_and_dropout_in_test_mode():
    dag = DagNN()
    dag.add_layer("bn", BatchNorm(num_channels=3), "x", "y", ["g", "b", "m"])
    dag.add_layer("drop", DropOut(rate=0.5), "y", "z")
    dag.init_params()
    assert dag.params[2].train_method == "average"
    dag.params[2].value = np.array([[1.0, 2.0], [0.0, 1.0], [-1.0, 0.5]], np.float32)
    x = RNG.standard_normal((4, 3, 2, 2)).astype(np.float32)
    dag.mode = "test"
    dag.eval({"x": x}, {"z": np.ones_like(x)})
    z = dag.vars[dag.get_var_index("z")].value
    expected = (x - dag.params[2].value[:, 0].reshape(1, 3, 1, 1)) / \
        dag.params[2].value[:, 1].reshape(1, 3, 1, 1)
    np.testing.assert_allclose(z, expected, rtol=1e-6)
    np.testing.assert_allclose(dag.vars[0].der,
                               np.ones_like(x) / dag.params[2].value[:, 1].reshape(1, 3, 1, 1))
    dag.mode = "normal"
    dag.eval({"x": x})
    z = dag.vars[dag.get_var_index("y")].value
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)


def test_editing_the_graph():
    dag = lenet_like()
    dag.rename_var("x3", "pooled")
    assert dag.layers[dag.get_layer_index("fc")].inputs == ["pooled"]
    dag.rename_param("fcf", "fc_filters")
    assert dag.layers[dag.get_layer_index("fc")].params == ["fc_filters", "fcb"]
    assert dag.params[dag.get_param_index("fc_filters")].value.shape == (3, 4, 3, 3)
    dag.rename_layer("relu1", "rectify")
    dag.remove_layer("rectify")
    assert "x2" in dag.get_inputs()          # still read by pool1, so now an input
    dag.set_layer_inputs("pool1", "x1")
    assert "x2" not in [v.name for v in dag.vars]
    x = RNG.standard_normal((1, 1, 6, 6))
    dag.eval({"input": x, "label": np.array([1])})
    pooled = dag.vars[dag.get_var_index("pooled")].value
    f, b = dag.params[0].value, dag.params[1].value
    np.testing.assert_allclose(pooled, nn.pool(nn.conv(x, f, b, pad=1), 2, stride=2))


def test_errors_are_clear():
    dag = lenet_like()
    with pytest.raises(KeyError, match="DagNN.get_var_index: no variable named 'nope'"):
        dag.get_var_index("nope")
    with pytest.raises(ValueError, match="'x9' is not an input"):
        dag.eval({"input": np.zeros((1, 1, 6, 6)), "label": np.zeros(1), "x9": 1})
    with pytest.raises(ValueError, match=r"DagNN.eval: no value for inputs \['label'\]"):
        dag.eval({"input": np.zeros((1, 1, 6, 6))})
    with pytest.raises(ValueError, match="'x1' would be written by two layers"):
        dag.add_layer("again", ReLU(), "input", "x1")
    assert "again" not in [layer.name for layer in dag.layers]
    with pytest.raises(ValueError, match="Loss layer 'l2' takes 2 or 3 inputs, got 1"):
        dag.add_layer("l2", Loss(), "pred", "o2")
    with pytest.raises(ValueError, match="not an output"):
        dag.eval({"input": np.zeros((1, 1, 6, 6)), "label": np.zeros(1)}, {"x1": 1.0})
    fresh = DagNN()
    fresh.add_layer("c", Conv(size=(1, 1, 1, 1)), "a", "b", ["f", "g"])
    with pytest.raises(ValueError, match="parameter 'f' has no value; call init_params"):
        fresh.eval({"a": np.zeros((1, 1, 2, 2))})
    cyclic = DagNN()
    cyclic.add_layer("r1", ReLU(), "a", "b")
    cyclic.add_layer("r2", Sum(), ["b", "c"], "c")
    with pytest.raises(ValueError, match="cycle"):
        cyclic.eval({"a": np.zeros((1, 1, 2, 2))})


def test_simplenn_round_trip_and_conversions():
    w = RNG.standard_normal((3, 2, 3, 3))
    layers = [{"type": "conv", "weights": [w, RNG.standard_normal(3)], "stride": 2},
              {"type": "sigmoid"},
              {"type": "dropout", "rate": 0.3},
              {"type": "pdist", "p": 2}]
    x = RNG.standard_normal((2, 2, 7, 7))
    target = RNG.standard_normal((1, 3, 1, 1))
    dzdy = RNG.standard_normal((2, 1, 3, 3))
    res = simplenn.run(layers, x, dzdy=dzdy, mode="test", labels=target)
    dag = DagNN.from_simplenn(layers)
    assert [type(layer.block).__name__ for layer in dag.layers] == \
        ["Conv", "Sigmoid", "DropOut", "PDist"]
    dag.mode = "test"
    dag.eval({"x0": x, "label": target}, {"x4": dzdy})
    np.testing.assert_allclose(dag.vars[dag.get_var_index("x4")].value, res[-1].x)
    np.testing.assert_allclose(dag.vars[0].der, res[0].dzdx, rtol=1e-12)
    np.testing.assert_allclose(dag.params[0].der, res[0].dzdw[0], rtol=1e-12)
    outputs = an.Layer.from_dagnn(dag)
    assert [layer.name for layer in outputs] == ["x4"]
    net = an.Net(dag)
    net.eval({"x0": x, "label": target}, mode="test")
    np.testing.assert_allclose(net.value("x4"), res[-1].x)


def test_print_lists_layers_params_and_sizes(capsys):
    dag = lenet_like()
    dag.print({"input": (2, 1, 6, 6), "label": (2,)})
    text = capsys.readouterr().out
    assert "conv1f" in text and "Pooling" in text and "2×4×3×3" in text
    assert dagnn.BLOCKS["Conv"] is Conv


def test_conserve_memory_keeps_only_precious_variables():
    dag = lenet_like()
    dag.conserve_memory = True
    dag.vars[dag.get_var_index("x2")].precious = True
    x = RNG.standard_normal((2, 1, 6, 6))
    dag.eval({"input": x, "label": np.array([0, 1])}, {"objective": 1.0})
    assert dag.vars[dag.get_var_index("x1")].value is None
    assert dag.vars[dag.get_var_index("x2")].value is not None
    assert dag.params[0].der is not None and dag.vars[0].der is not None
    # backwardAdvanced releases the outputs of every layer it runs, the objective's too
    assert dag.vars[dag.get_var_index("objective")].value is None
    x2, dx2 = dag.vars[dag.get_var_index("x2")].value, dag.vars[dag.get_var_index("x2")].der
    dag.conserve_memory = False
    dag.eval({"input": x, "label": np.array([0, 1])}, {"objective": 1.0})
    np.testing.assert_allclose(x2, dag.vars[dag.get_var_index("x2")].value)
    np.testing.assert_allclose(dx2, dag.vars[dag.get_var_index("x2")].der)


def test_converted_dag_passes_gradcheck():
    dag = DagNN()
    dag.add_layer("ct", ConvTranspose(size=(3, 3, 2, 3), upsample=2, crop=(0, 1, 1, 0)), "x",
                  "up", ["ctf", "ctb"])
    dag.add_layer("crop", Crop(crop=(1, 2)), ["up", "ref"], "cropped")
    dag.add_layer("cat", Concat(axis=1), ["cropped", "ref"], "cat")
    dag.add_layer("scale", Scale(size=(1, 4, 1, 1)), "cat", "scaled", ["k", "kb"])
    dag.add_layer("pool", Pooling(method="avg", pool_size=(2, 2), stride=1, pad=1), "scaled",
                  "pooled")
    dag.add_layer("sig", Sigmoid(), "pooled", "out")
    dag.init_params(seed=7)
    for p in dag.params:
        p.value = RNG.standard_normal(p.value.shape)
    net = an.Net(dag)
    x = RNG.standard_normal((1, 3, 3, 4))
    ref = RNG.standard_normal((1, 2, 4, 5))
    report = an.gradcheck(net, {"x": x, "ref": ref})
    assert report is not None


def test_conserve_memory_forward_clears_each_variable_after_its_last_reader():
    dag = lenet_like()
    dag.add_layer("side", ReLU(), "x2", "side")        # x2 has two readers; side is an output
    x, c = RNG.standard_normal((2, 1, 6, 6)), np.array([1, 0])
    dag.eval({"input": x, "label": c})
    full = {v.name: v.value for v in dag.vars}
    dag.conserve_memory = True
    dag.eval({"input": x, "label": c})
    kept = [v.name for v in dag.vars if v.value is not None]
    assert kept == ["objective", "side"]               # the inputs are released too
    np.testing.assert_allclose(dag.vars[dag.get_var_index("side")].value, full["side"])
    # precious, set after the network was compiled once
    dag.vars[dag.get_var_index("x1")].precious = True
    dag.vars[dag.get_var_index("input")].precious = True
    dag.eval({"input": x, "label": c})
    assert [v.name for v in dag.vars if v.value is not None] == \
        ["input", "x1", "objective", "side"]
    np.testing.assert_allclose(dag.vars[dag.get_var_index("x1")].value, full["x1"])


def test_conserve_memory_backward_keeps_inputs_and_unreached_layers_outputs():
    dag = lenet_like()
    dag.add_layer("side", ReLU(), "x2", "side")        # no derivative reaches this layer
    x, c = RNG.standard_normal((2, 1, 6, 6)), np.array([1, 0])
    dag.conserve_memory = True
    dag.eval({"input": x, "label": c}, {"objective": 1.0})
    assert [v.name for v in dag.vars if v.value is not None] == ["input", "label", "side"]
    assert dag.vars[0].der is not None and all(p.der is not None for p in dag.params)
    dag.vars[dag.get_var_index("x3")].precious = True
    dag.eval({"input": x, "label": c}, {"objective": 1.0})
    x3 = dag.vars[dag.get_var_index("x3")]
    dx3 = nn.conv(x3.value, dag.params[2].value, dag.params[3].value,
                  dzdy=nn.loss(nn.conv(x3.value, dag.params[2].value, dag.params[3].value), c,
                               dzdy=1.0)[0])[0]
    np.testing.assert_allclose(x3.der, dx3, rtol=1e-10)


def test_reset_clears_values_and_derivatives():
    dag = lenet_like()
    x, c = RNG.standard_normal((2, 1, 6, 6)), np.array([1, 0])
    dag.eval({"input": x, "label": c}, {"objective": 1.0})
    assert dag.params[0].der is not None and dag.vars[1].value is not None
    values = [p.value for p in dag.params]
    dag.reset()
    assert all(v.value is None and v.der is None for v in dag.vars)
    assert all(p.der is None for p in dag.params)
    assert all(p.value is v for p, v in zip(dag.params, values))   # parameters stay
    net = dag._compiled[False]["net"]
    assert net.value("x1") is None and net.value("input") is None   # the tape lets go too
    dag.eval({"input": x, "label": c}, {"objective": 1.0})
    assert dag.vars[dag.get_var_index("objective")].value is not None


def lenet_simplenn():
    r = RNG.standard_normal
    return {"layers": [
        {"type": "conv", "weights": [r((3, 1, 3, 3)), np.zeros(3)]},
        {"type": "relu"},
        {"type": "conv", "weights": [r((4, 3, 2, 2)), np.zeros(4)]},
        {"type": "softmax"},
        {"type": "conv", "weights": [r((5, 4, 1, 1)), np.zeros(5)]},
        {"type": "softmaxloss"},
        {"type": "loss", "loss": "classerror"},
    ], "meta": {"inputs": {"name": "data", "size": (5, 5, 1)}}}


def test_from_simplenn_names_as_fromsimplenn():
    net = lenet_simplenn()
    net["layers"] = net["layers"][:6]
    dag = DagNN.from_simplenn(net)
    assert [v.name for v in dag.vars] == ["x0", "x1", "x2", "x3", "x4", "x5", "label", "x6"]
    assert dag.get_inputs() == ["x0", "label"] and dag.get_outputs() == ["x6"]
    assert dag.meta["inputs"] == {"name": "x0", "size": (5, 5, 1)}
    assert dag.layers[5].input_indexes == [5, 6] and dag.layers[5].output_indexes == [7]
    assert dag.layers[2].param_indexes == [2, 3]
    dag.rename_var("x5", "scores")
    dag.remove_layer("layer2")
    assert dag.layers[4].input_indexes == [dag.get_var_index("scores"), dag.get_var_index("label")]
    assert dag.layers[1].input_indexes == [dag.get_var_index("x2")]
    assert net["meta"]["inputs"]["name"] == "data"        # the given net is left alone
    two = DagNN.from_simplenn(lenet_simplenn()["layers"])
    assert two.get_inputs() == ["x0", "label", "label1"]   # getNewVarName's numbering


def test_from_simplenn_canonical_names():
    dag = DagNN.from_simplenn(lenet_simplenn(), canonical_names=True)
    # the second loss reads the first one's objective, which becomes its prediction (in
    # fromSimpleNN's order: the second objective is named while the first still holds the name)
    assert [v.name for v in dag.vars] == ["input", "x1", "x2", "prediction", "prob",
                                          "prediction1", "label", "prediction2", "label1",
                                          "objective1"]
    assert dag.meta["inputs"]["name"] == "input"
    assert [layer.inputs for layer in dag.layers][3:] == \
        [["prediction"], ["prob"], ["prediction1", "label"], ["prediction2", "label1"]]
    single = DagNN.from_simplenn(lenet_simplenn()["layers"][:4], canonical_names=True)
    assert [v.name for v in single.vars] == ["input", "x1", "x2", "prediction", "prob"]
    layers = lenet_simplenn()["layers"][:6]
    one_loss = DagNN.from_simplenn(layers, canonical_names=True)
    assert one_loss.get_outputs() == ["objective"]
    assert one_loss.layers[-1].inputs == ["prediction1", "label"]
    x = RNG.standard_normal((2, 1, 5, 5))
    c = np.array([0, 3])
    res = simplenn.run(layers, x, labels=c)
    one_loss.eval({"input": x, "label": c})
    assert float(one_loss.vars[-1].value) == pytest.approx(float(res[-1].x), rel=1e-12)


def test_blocks_forward_and_backward_on_arrays_as_matconvnet_blocks():
    block = Conv(size=(3, 3, 2, 4), pad=1)
    f, b = block.init_params(np.random.default_rng(0))
    f, b = f.astype(np.float64), b.astype(np.float64)
    x = RNG.standard_normal((2, 2, 5, 5))
    (y,) = block.forward([x], [f, b])
    np.testing.assert_allclose(y, nn.conv(x, f, b, pad=1))
    dzdy = RNG.standard_normal(y.shape)
    (dx,), (df, db) = block.backward([x], [f, b], [dzdy])
    want = nn.conv(x, f, b, pad=1, dzdy=dzdy)
    for got, expected in zip((dx, df, db), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    scores, labels = RNG.standard_normal((2, 3, 1, 1)), np.array([2, 0])
    (dscores, dlabels), _ = Loss().backward([scores, labels], [], [1.0])
    np.testing.assert_allclose(dscores, nn.loss(scores, labels, dzdy=1.0)[0], rtol=1e-12)
    assert dlabels is None
    dzdx = RNG.standard_normal(x.shape)
    (dx,), _ = DropOut().backward([x], [], [dzdx], test_mode=True)     # the identity
    np.testing.assert_array_equal(dx, dzdx)
    with pytest.raises(ValueError, match="Conv.backward: der_outputs has 2 entries for 1"):
        block.backward([x], [f, b], [dzdy, dzdy])


def test_empty_derivatives_are_a_forward_pass():
    dag = lenet_like()
    dag.conserve_memory = True
    dag.eval({"input": RNG.standard_normal((2, 1, 6, 6)), "label": np.array([0, 1])}, [])
    assert [v.name for v in dag.vars if v.value is not None] == ["objective"]
    assert all(v.der is None for v in dag.vars)


def test_from_simplenn_sets_batchnorm_moments_as_matconvnet():
    weights = [np.ones(3), np.zeros(3), np.zeros((3, 2))]
    plain = DagNN.from_simplenn([{"type": "bnorm", "weights": weights}])
    assert [(p.learning_rate, p.weight_decay, p.train_method) for p in plain.params] == \
        [(1.0, 1.0, "gradient"), (1.0, 1.0, "gradient"), (0.1, 1.0, "average")]
    given = DagNN.from_simplenn([{"type": "bnorm", "weights": weights,
                                  "learningRate": [2, 1, 0.3], "weightDecay": [1, 0, 1]}])
    assert [(p.learning_rate, p.weight_decay) for p in given.params] == \
        [(2.0, 1.0), (1.0, 0.0), (0.3, 0.0)]


def test_add_layer_lets_batchnorm_set_its_moments_training_as_matconvnets_attach():
    dag = DagNN()
    dag.add_layer("bn", BatchNorm(num_channels=2), "x", "y", ["g", "b", "m"])
    assert [(p.learning_rate, p.train_method) for p in dag.params] == \
        [(1.0, "gradient"), (1.0, "gradient"), (0.1, "average")]
