"""The model zoo: each model builds, runs forward and backward with the documented shapes,
starts near chance level, is reproducible from its seed, and refuses sizes that do not fit."""

import numpy as np
import pytest

import autonn as an
from autonn import models


def learnable_count(net):
    return sum(p.value.size for p in net.params if p.train_method == "gradient")


SMALL_CONFIGS = {
    "lenet": (dict(), 1, 28, 10),
    "lenet_bnorm": (dict(batch_norm=True), 1, 28, 10),
    "character_cnn": (dict(), 1, 32, 26),
    "vgg": (dict(depth=(1, 1, 2), width=8, fc_width=32, num_classes=10, input_size=32), 3, 32, 10),
    "vgg_plain": (dict(depth=(1, 1), width=4, fc_width=16, num_classes=10, input_size=16,
                       batch_norm=False, dropout=0), 3, 16, 10),
    "resnet_basic": (dict(depth=("basic", (1, 1, 1)), width=8, num_classes=10, input_size=16,
                          small_input=True), 3, 16, 10),
    "resnet_bottleneck": (dict(depth=("bottleneck", (1, 2)), width=4, num_classes=7,
                               input_size=40), 3, 40, 7),
    "alexnet": (dict(width=0.05, num_classes=10, input_size=99), 3, 99, 10),
    "alexnet_bnorm": (dict(width=0.05, num_classes=10, input_size=67, batch_norm=True), 3, 67, 10),
    "nin": (dict(num_classes=10, input_size=16), 3, 16, 10),
}


def build(key, seed=0):
    options, channels, size, classes = SMALL_CONFIGS[key]
    function = getattr(models, key.split("_")[0] if key != "character_cnn" else key)
    return function(seed=seed, **options), channels, size, classes


@pytest.mark.parametrize("key", sorted(SMALL_CONFIGS))
def test_model_runs_forward_backward_near_chance(key):
    model, channels, size, classes = build(key)
    net = an.Net(*model["outputs"])
    assert sorted(net.inputs) == ["images", "labels"]
    rng = np.random.default_rng(1)
    images = rng.standard_normal((6, channels, size, size)).astype(np.float32) * 0.3
    labels = rng.integers(0, classes, 6)
    net.eval({"images": images, "labels": labels})
    assert net.value("prediction").shape == (6, classes, 1, 1)
    objective = float(net.value("objective"))
    # Sensible initialisation: scores of moderate size, so the loss starts near log(classes).
    assert np.isfinite(objective) and objective < 3 * np.log(classes)
    for param in net.params:
        assert param.der is not None and param.der.shape == param.value.shape
        if param.train_method == "gradient":
            assert np.all(np.isfinite(param.der))
    assert any(np.abs(p.der).max() > 0 for p in net.params if p.train_method == "gradient")
    assert ("top5err" in model) == (classes > 5)


def test_lenet_matches_matconvnet_cnn_mnist_sizes():
    model = models.lenet()
    net = an.Net(*model["outputs"])
    shapes = sorted(p.value.shape for p in net.params)
    assert shapes == sorted([(20, 1, 5, 5), (20,), (50, 20, 5, 5), (50,), (500, 50, 4, 4),
                             (500,), (10, 500, 1, 1), (10,)])
    assert learnable_count(net) == 431080


def test_character_cnn_is_the_practicals_and_runs_on_a_sentence():
    model = models.character_cnn()
    net = an.Net(model["prediction"])
    shapes = sorted(p.value.shape for p in net.params)
    assert (26, 500, 2, 2) in shapes and (500, 50, 4, 4) in shapes
    sentence = np.zeros((1, 1, 32, 32 + 4 * 20), np.float32)
    net.eval({"images": sentence}, mode="test")
    assert net.value("prediction").shape == (1, 26, 1, 21)  # one column every 4 pixels


def test_resnet18_and_50_have_the_published_parameter_counts():
    # torchvision's resnet18/50 (convolutions without biases, bnorm gains and biases, fc):
    # 11,689,512 and 25,557,032 parameters.
    for depth, expected in ((18, 11689512), (50, 25557032)):
        net = an.Net(*models.resnet(depth=depth)["outputs"])
        assert learnable_count(net) == expected


def test_same_seed_same_net_and_global_random_state_untouched():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = an.Net(*models.lenet(seed=4)["outputs"])
    b = an.Net(*models.lenet(seed=4)["outputs"])
    c = an.Net(*models.lenet(seed=5)["outputs"])
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    for p, q, r in zip(a.params, b.params, c.params):
        np.testing.assert_array_equal(p.value, q.value)
        if p.value.ndim == 4:
            assert not np.array_equal(p.value, r.value)


def test_he_initialisation_scale():
    net = an.Net(*models.lenet(seed=0)["outputs"])
    filters = {p.name: p.value for p in net.params if p.value.ndim == 4}
    big = max(filters.values(), key=lambda v: v.size)  # (500, 50, 4, 4)
    assert big.dtype == np.float32
    assert abs(big.std() - np.sqrt(2 / (50 * 16))) < 0.01 * np.sqrt(2 / (50 * 16)) * 10


def test_sizes_that_do_not_fit_are_refused_with_the_model_name():
    with pytest.raises(ValueError, match="lenet: .*does not fit"):
        models.lenet(input_size=8)
    with pytest.raises(ValueError, match="resnet: depth must be one of"):
        models.resnet(depth=20)
    with pytest.raises(ValueError, match="vgg: depth must be one of"):
        models.vgg(depth=12)
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        models.nin(input_size=0)
