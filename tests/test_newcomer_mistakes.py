"""The mistakes a PyTorch or MatConvNet user makes in a first hour, and the messages that say
what to do about each: a wrong number of input channels, float64 data, a classifier whose
loss reads a score map, eval for inference, a dataset that normalises behind the user's back,
names for the Layers of a builder function, and a custom op that a reloading process cannot
import."""

import json
import warnings

import numpy as np
import pytest

import autonn as an
from autonn import nn
from autonn.datasets import ArrayDataset


def one_conv_net(size, **options):
    x, labels = an.Input("x"), an.Input("labels")
    scores = nn.conv(x, size=size, **options)
    return an.Net(nn.loss(scores, labels)), scores


# ----------------------------------------------------------------------------- channels
def test_a_graph_from_size_takes_exactly_its_input_channels():
    net, _ = one_conv_net((3, 3, 1, 4))
    x = np.zeros((2, 2, 3, 3), np.float32)   # 2 channels: MatConvNet would run 2 groups
    with pytest.raises(ValueError, match=r"expected x with 1 channel .*got 2 channels "
                                         r"\(x shape \(2, 2, 3, 3\)\)") as error:
        net.eval({"x": x, "labels": np.zeros(2)})
    assert "size=(3, 3, 2, 4)" in str(error.value)       # the remedy
    assert "groups" not in str(error.value).split(": conv: ")[1].split(";")[0]
    assert "divisible" not in str(error.value)


def test_thirty_one_channel_filters_refuse_three_channels():
    net, _ = one_conv_net((3, 3, 1, 30))
    with pytest.raises(ValueError, match=r"expected x with 1 channel .*got 3 channels"):
        net.eval({"x": np.zeros((1, 3, 5, 5), np.float32), "labels": np.zeros(1)})


def test_groups_beside_size_make_grouped_filters_and_check_the_channels():
    net, scores = one_conv_net((3, 3, 4, 6), groups=2)
    filters = scores.inputs[1]
    assert filters.value.shape == (6, 2, 3, 3)
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    net.eval({"x": x, "labels": np.zeros(2)})
    eager = nn.conv(x, filters.value, scores.inputs[2].value)   # inferred G = 4 // 2
    np.testing.assert_allclose(net.value(scores), eager, rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected x with 4 channels \(the filters.*"
                                         r"groups=2\), got 2 channels"):
        net.eval({"x": x[:, :2], "labels": np.zeros(2)})
    with pytest.raises(ValueError, match=r"groups=4 must divide the input channels \(6\)"):
        nn.conv(an.Input(), size=(3, 3, 6, 8), groups=4)


def test_the_eager_block_keeps_matconvnets_inference_and_groups_checks_it():
    x = np.ones((1, 4, 3, 3), np.float32)
    w = np.ones((2, 2, 3, 3), np.float32)
    assert nn.conv(x, w).shape == (1, 2, 1, 1)             # G = 4 // 2 inferred
    assert nn.conv(x, w, groups=2).shape == (1, 2, 1, 1)
    with pytest.raises(ValueError, match="expected x with 2 channels"):
        nn.conv(x, w, groups=1)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nn.conv(x, w, groups=0)


def test_a_net_with_declared_groups_saves_and_loads(tmp_path):
    net, scores = one_conv_net((3, 3, 4, 6), groups=2)
    net.save(tmp_path / "net.npz")
    again = an.Net.load(tmp_path / "net.npz")
    x = np.ones((1, 4, 3, 3), np.float32)
    for each in (net, again):
        each.eval({"x": x, "labels": np.zeros(1)}, mode="test")
    np.testing.assert_allclose(again.value("scores"), net.value(scores))
    with pytest.raises(ValueError, match="expected x with 4 channels"):
        again.eval({"x": x[:, :3], "labels": np.zeros(1)})


# ----------------------------------------------------------------------------- float64
def test_float64_data_into_a_float32_net_says_how_to_convert_it():
    net, _ = one_conv_net((3, 3, 1, 4))
    with pytest.raises(TypeError, match=r"float64.*x\.astype\(np\.float32\)"):
        net.eval({"x": np.zeros((2, 1, 3, 3)), "labels": np.zeros(2)})


# ----------------------------------------------------------------------------- score maps
def readme_net(last_size):
    images, labels = an.Input("images"), an.Input("labels")
    x = nn.conv(images, size=(5, 5, 1, 20))
    x = nn.pool(x, 2, stride=2)
    x = nn.conv(nn.relu(x), size=last_size)
    return an.Net(nn.loss(x, labels, name="objective"), nn.loss(x, labels, loss="classerror"))


def caught(run):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in seen if issubclass(w.category, UserWarning)]


def test_a_loss_on_a_classifiers_score_map_warns_once_with_the_remedy():
    net = readme_net((5, 5, 20, 10))                  # 28x28 in: an 8x8 map of scores
    feed = {"images": np.zeros((4, 1, 28, 28), np.float32), "labels": np.arange(4)}
    messages = caught(lambda: net.eval(feed))
    assert len(messages) == 1                         # the error measure is not warned again
    assert "loss 'objective' (softmaxlog)" in messages[0]
    assert "8×8 score map" in messages[0] and "64 positions" in messages[0]
    assert "size=(12, 12, 20, 10)" in messages[0] and "input_size=" in messages[0]
    assert caught(lambda: net.eval(feed)) == []       # once per Net
    assert caught(lambda: net.predict(feed)) == []


def test_no_warning_for_a_1x1_map_or_per_pixel_labels():
    net = readme_net((12, 12, 20, 10))                # covers the 12x12 map: 1x1 scores
    feed = {"images": np.zeros((4, 1, 28, 28), np.float32), "labels": np.arange(4)}
    assert caught(lambda: net.eval(feed)) == []
    dense = readme_net((5, 5, 20, 10))
    feed["labels"] = np.zeros((4, 8, 8), np.int64)    # segmentation: labels per pixel
    assert caught(lambda: dense.eval(feed)) == []


def test_lenet_fed_32x32_images_warns_through_train():
    model = an.models.lenet(input_size=28, seed=0)
    net = an.Net(*model["outputs"])
    feed = {"images": np.zeros((2, 1, 32, 32), np.float32), "labels": np.arange(2)}
    messages = caught(lambda: net.eval(feed))
    assert len(messages) == 1 and "2×2 score map 'prediction'" in messages[0]


def test_class_losses_listed_by_net_are_nns():
    from autonn import net as net_module
    from autonn.nn import losses
    assert net_module.CLASS_LOSSES == losses.CATEGORICAL


# ----------------------------------------------------------------------------- predict
def test_predict_is_the_test_mode_forward_returning_the_outputs():
    x = an.Input("x")
    y = nn.dropout(nn.conv(x, size=(1, 1, 2, 3)), rate=0.5)
    net = an.Net(y)
    value = np.random.default_rng(0).standard_normal((4, 2, 5, 5)).astype(np.float32)
    predicted = net.predict({"x": value})
    net.eval({"x": value}, mode="test")
    np.testing.assert_array_equal(predicted, net.value(y))   # no dropout: test mode
    np.testing.assert_array_equal(net.predict(value), predicted)   # one Input: an array
    assert net.der("x") is None                               # no backward ran
    two = an.Net(y, y.sum())
    values = two.predict(value)
    assert isinstance(values, tuple) and len(values) == 2
    np.testing.assert_allclose(values[1], values[0].sum(), rtol=1e-5)
    with pytest.raises(TypeError, match="takes a dict"):
        an.Net(x * an.Input("z")).predict(value)


def test_print_net_says_what_predict_and_eval_do():
    net, _ = one_conv_net((3, 3, 1, 4))
    header = str(net).splitlines()[0]
    assert "net.predict(inputs)" in header and "test mode" in header
    assert "net.eval(inputs): forward and backward" in header


# ----------------------------------------------------------------------------- ArrayDataset
def test_array_dataset_of_images_and_labels_changes_nothing():
    images = np.full((20, 1, 4, 4), 5.5, np.float32)
    labels = np.arange(20) % 4
    dataset = ArrayDataset(images, labels)
    batch, batch_labels = next(dataset.batches("train", 20, shuffle=False))
    np.testing.assert_array_equal(batch, images)            # the mean of 5.5 stays 5.5
    np.testing.assert_array_equal(batch_labels, labels)
    assert dataset.num_images("train") == 20 and dataset.num_images("val") == 0
    assert dataset.classes == ["0", "1", "2", "3"]
    split = ArrayDataset(images[:, 0], labels, val_fraction=0.25)   # (N, H, W): one channel
    assert split.num_images("val") == 4 and split.image_shape == (1, 4, 4)
    assert list(np.bincount(labels[split.split_indices("val")])) == [1, 1, 1, 1]
    normalised = ArrayDataset(images, labels, normalization="image")
    np.testing.assert_allclose(normalised.get("train")[0], 0)
    with pytest.raises(ValueError, match="0-based integer classes"):
        ArrayDataset(images, labels - 1)
    with pytest.raises(ValueError, match="0-based integer classes"):
        ArrayDataset(images, labels + 0.5)
    assert ArrayDataset(images, labels.astype(np.float64)).labels.dtype == np.int64


def test_the_packaged_datasets_still_subtract_the_mean_image():
    digits = an.datasets.digits()
    assert digits.normalization == "image"
    assert abs(float(digits.get("train")[0].mean())) < 1e-5


def test_top5_error_is_recorded_only_with_more_than_5_classes():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16, 1, 4, 4)).astype(np.float32)
    for classes, recorded in ((4, ["top1err"]), (6, ["top1err", "top5err"])):
        dataset = ArrayDataset(images, np.arange(16) % classes, val_fraction=0.25)
        x, labels = an.Input("images"), an.Input("labels")
        net = an.Net(nn.loss(nn.conv(x, size=(4, 4, 1, classes)), labels))
        history = an.train(net, dataset, an.solvers.SGD(0.01), epochs=1, batch_size=8,
                           progress=False, plot=False)
        assert [k for k in history["train"][0] if k.startswith("top")] == recorded


# ----------------------------------------------------------------------------- names
def test_every_block_takes_a_name_and_its_params_are_named_after_it():
    def classifier(features):          # a builder: its local names never reach the Net
        s = nn.conv(features, size=(3, 3, 1, 10), name="scores")
        return nn.relu(s, name="rectified")
    images, labels = an.Input("images"), an.Input("labels")
    objective = nn.loss(classifier(images), labels, name="objective")
    net = an.Net(objective)
    assert [p.name for p in net.params] == ["scores_filters", "scores_biases"]
    assert {"scores", "rectified", "objective"} <= set(net.tape.names)
    h, c = nn.lstm(an.Input("x"), an.Input("h"), an.Input("c"), an.Param(np.zeros((8, 4))),
                   an.Param(np.zeros(8)), name="cell")
    assert h.inputs[0].name == "cell" and h.inputs[0].inputs[3].name == "cell_W"
    bnormed = nn.bnorm(nn.conv(images, size=(1, 1, 1, 2)), name="bn")
    assert [x.name for x in bnormed.inputs[1:3]] == ["bn_g", "bn_b"]
    y = nn.conv(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 3, 3), np.float32),
                name="eager")                     # computing: the name is ignored
    assert y.shape == (1, 1, 1, 1)
    with pytest.raises(TypeError, match="relu: name must be a str"):
        nn.relu(images, name=3)


def test_custom_ops_take_a_name_too():
    @an.op
    def double(x):
        return 2 * x

    @an.op
    def scale(x, s):
        return x * s

    @scale.backward
    def scale_backward(x, s, dzdy):
        return dzdy * s, (dzdy * x).sum()

    x = an.Input("x")
    assert double(x, name="twice").name == "twice"
    w = an.Param(np.float32(3))
    scaled = scale(x, w, name="scaled")
    assert scaled.name == "scaled" and w.name == "scaled_s"
    assert double(np.float32(2), name="ignored") == 4


# ----------------------------------------------------------------------------- Net.load
def test_a_custom_op_of_the_main_module_loads_through_ops(tmp_path):
    def triple(x):
        return 3 * x
    triple.__module__ = "__main__"       # as in a notebook, whose module cannot be imported
    triple.__qualname__ = "triple_of_a_notebook"
    op = an.op(triple)
    op.backward(lambda x, dzdy: 3 * dzdy)
    x = an.Input("x")
    path = tmp_path / "net.npz"
    an.Net(op(x).sum()).save(path)
    with np.load(path) as data:
        graph = json.loads(str(data["__graph__"]))
    assert "__main__.triple_of_a_notebook" in [layer.get("op") for layer in graph["layers"]]
    from autonn.ops import REGISTRY
    del REGISTRY["__main__.triple_of_a_notebook"]   # a new process: the op is unknown
    with pytest.raises(KeyError, match=r"unknown op '__main__.triple_of_a_notebook'.*"
                                       r"Net.load\(path, ops=\{'triple_of_a_notebook': "
                                       r"triple_of_a_notebook\}\).*'__main__'"):
        an.Net.load(path)
    for key in ("__main__.triple_of_a_notebook", "triple_of_a_notebook"):
        net = an.Net.load(path, ops={key: op})
        net.eval({"x": np.ones(2, np.float32)})
        assert float(net.value(net.outputs[0])) == 6
        np.testing.assert_array_equal(net.der("x"), [3, 3])
    with pytest.raises(TypeError, match="ops must be a dict of op name -> op"):
        an.Net.load(path, ops={"triple_of_a_notebook": triple})


# ----------------------------------------------------------------------------- README
def test_readmes_first_example_is_a_classifier_that_trains_without_a_warning():
    import os
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "README.md")
    if not os.path.exists(readme):
        pytest.skip("no README beside the tests")
    code = open(readme, encoding="utf-8").read().split("```python\n", 1)[1].split("```")[0]
    rng = np.random.default_rng(0)
    names = {"batch": rng.random((8, 1, 28, 28), dtype=np.float32),
             "batch_labels": np.arange(8) % 10,
             "test_images": rng.random((3, 1, 28, 28), dtype=np.float32)}
    messages = caught(lambda: exec(code, names))
    assert messages == []
    assert names["scores"].shape == (3, 10, 1, 1)
    assert ".predict(" in code and "net.eval(" in code
