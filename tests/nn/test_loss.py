"""The ten loss types of vl_nnloss against a per-location loop (block_references), label forms,
instance weights, ignored labels, derivatives and argument checks."""

import math

import numpy as np
import pytest
from block_references import loss_reference
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import nn
from autonn.nn.losses import ATTRIBUTE, CATEGORICAL

RNG = np.random.default_rng(2)


def categorical_labels(shape, classes, ignore=True):
    c = RNG.integers(-1 if ignore else 0, classes, size=shape)
    return c


def attribute_labels(shape):
    return RNG.choice([-1.0, 0.0, 1.0], size=shape, p=[0.45, 0.1, 0.45])


@pytest.mark.parametrize("kind", CATEGORICAL + ATTRIBUTE)
@pytest.mark.parametrize("normalise", [True, False])
def test_every_loss_type_matches_the_reference(kind, normalise):
    x = RNG.standard_normal((3, 4, 2, 3))
    if kind == "log":
        x = nn.softmax(x)
    if kind == "binarylog":
        x = RNG.random(x.shape)
    c = categorical_labels((3, 2, 3), 4) if kind in CATEGORICAL else attribute_labels(x.shape)
    options = {"topk": 2} if kind == "topkerror" else {}
    y = nn.loss(x, c, loss=kind, normalise=normalise, **options)
    assert y.shape == () and y.dtype == x.dtype
    np.testing.assert_allclose(y, loss_reference(kind, x, c, normalise=normalise, **options),
                               rtol=1e-10)


@pytest.mark.parametrize("kind", ["log", "softmaxlog", "mhinge", "mshinge", "binarylog",
                                  "logistic", "hinge"])
def test_loss_derivatives(kind):
    x = RNG.standard_normal((2, 3, 2, 2))
    if kind == "log":
        x = 0.1 + RNG.random(x.shape)
    if kind == "binarylog":
        x = 0.1 + 0.8 * RNG.random(x.shape)
    if kind in ("mhinge", "mshinge", "hinge"):
        x = x * 3  # keep away from the hinges' kinks
    c = categorical_labels((2, 2, 2), 3) if kind in CATEGORICAL else attribute_labels(x.shape)
    weights = RNG.random((2, 1, 2, 2)) if kind in CATEGORICAL else RNG.random(x.shape)
    an.gradcheck(lambda x, dzdy=None: nn.loss(x, c, loss=kind, instance_weights=weights,
                                              dzdy=dzdy) if dzdy is None else
                 nn.loss(x, c, loss=kind, instance_weights=weights, dzdy=dzdy)[0], x)


def test_error_counts_have_zero_derivative():
    x = RNG.standard_normal((2, 3, 1, 1))
    for kind in ("classerror", "topkerror"):
        dx, dc = nn.loss(x, np.array([0, 2]), loss=kind, dzdy=1.0)
        assert dc is None and not dx.any()


@pytest.mark.parametrize("form", ["N", "NHW", "N1HW"])
def test_label_forms_agree(form):
    x = RNG.standard_normal((2, 5, 3, 2))
    per_image = np.array([1, 4])
    c = {"N": per_image, "NHW": np.broadcast_to(per_image[:, None, None], (2, 3, 2)),
         "N1HW": np.broadcast_to(per_image[:, None, None, None], (2, 1, 3, 2))}[form]
    np.testing.assert_allclose(nn.softmaxloss(x, c),
                               loss_reference("softmaxlog", x, per_image), rtol=1e-12)


def test_instance_weights_broadcast_and_match_label_shape():
    x = RNG.standard_normal((4, 3))     # (N, C) scores are (N, C, 1, 1)
    c = np.array([0, 2, -1, 1])
    w = np.array([1.0, 0.5, 3.0, 2.0])
    expected = loss_reference("softmaxlog", x[:, :, None, None], c, w.reshape(4, 1, 1, 1))
    np.testing.assert_allclose(nn.loss(x, c, instance_weights=w), expected, rtol=1e-12)
    dx, _ = nn.loss(x, c, instance_weights=w, dzdy=1.0)
    assert dx.shape == x.shape and not dx[2].any()


@pytest.mark.parametrize("kind", ["softmaxlog", "logistic"])
def test_a_vector_of_n_instance_weights_weighs_whole_images(kind):
    """(N,) weights with (N, H, W) labels (or attributes): one weight per image, even when W
    happens to equal N, where NumPy's broadcasting would weigh columns instead."""
    x = RNG.standard_normal((3, 4, 2, 3))
    if kind == "softmaxlog":
        c = RNG.integers(0, 4, size=(3, 2, 3))
    else:
        c = np.sign(RNG.standard_normal(x.shape))
    w = np.array([1.0, 0.0, 2.5])
    expected = loss_reference(kind, x, c, np.broadcast_to(w.reshape(3, 1, 1, 1), x.shape
                                                           if kind == "logistic" else
                                                           (3, 1, 2, 3)))
    np.testing.assert_allclose(nn.loss(x, c, loss=kind, instance_weights=w), expected,
                               rtol=1e-12)
    assert not nn.loss(x, c, loss=kind, instance_weights=w, dzdy=1.0)[0][1].any()


def test_all_labels_ignored_gives_zero_loss_and_derivative():
    x = RNG.standard_normal((2, 3, 2, 2))
    c = -np.ones((2, 2, 2), np.int64)
    for kind in CATEGORICAL:
        assert nn.loss(x, c, loss=kind) == 0
        assert not nn.loss(x, c, loss=kind, dzdy=1.0)[0].any()
    assert nn.loss(x, np.zeros_like(x), loss="hinge") == 0


def test_log_loss_of_a_zero_probability_is_finite():
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    y = nn.loss(p, np.array([0, 1]), loss="log")
    assert np.isfinite(y) and y == pytest.approx((-math.log(1e-8) - math.log(0.5)) / 2)
    assert np.isfinite(nn.loss(p, np.array([0, 1]), loss="log", dzdy=1.0)[0]).all()


def test_float32_softmaxloss_is_stable_and_close_to_float64():
    x = RNG.standard_normal((8, 100, 2, 2)) * 30
    c = categorical_labels((8, 2, 2), 100)
    y32 = nn.softmaxloss(x.astype(np.float32), c)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, nn.softmaxloss(x, c), rtol=1e-5)
    one = np.array([3])
    an.gradcheck(lambda v, dzdy=None: nn.softmaxloss(v, one) if dzdy is None else
                 nn.softmaxloss(v, one, dzdy=dzdy)[0],
                 x[:1, :5, :1, :1].astype(np.float32) / 30, dtype=np.float32)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 6), h=st.integers(1, 3), w=st.integers(1, 3),
       kind=st.sampled_from(CATEGORICAL), topk=st.integers(1, 7))
def test_categorical_losses_over_shapes(n, c, h, w, kind, topk):
    rng = np.random.default_rng(n + 10 * c + 100 * h + 1000 * w)
    x = rng.standard_normal((n, c, h, w))
    if kind == "log":
        x = np.abs(x)
    labels = rng.integers(-1, c, size=(n, h, w))
    np.testing.assert_allclose(nn.loss(x, labels, loss=kind, topk=topk),
                               loss_reference(kind, x, labels, topk=topk), rtol=1e-10)


def test_loss_in_a_graph():
    x, labels = an.Input(name="x"), an.Input(name="labels")
    objective = nn.loss(x, labels)
    net = an.Net(objective)
    value = RNG.standard_normal((3, 4, 1, 1))
    c = np.array([0, 3, 1])
    net.eval({"x": value, "labels": c})
    np.testing.assert_allclose(net.value(objective), nn.softmaxloss(value, c))
    np.testing.assert_allclose(net.der("x"), nn.softmaxloss(value, c, dzdy=1.0)[0])


def test_bad_labels_and_options_are_refused():
    x = np.zeros((2, 3, 2, 2))
    with pytest.raises(ValueError, match="loss: unknown loss type 'squared'"):
        nn.loss(x, np.zeros(2), loss="squared")
    with pytest.raises(ValueError, match="loss: class label 3 out of range"):
        nn.loss(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="loss: labels c contain NaN or infinity"):
        nn.loss(x, np.array([0, np.nan]))
    with pytest.raises(ValueError, match="loss: labels c contain NaN or infinity"):
        nn.loss(x, np.array([0, np.inf]))
    with pytest.raises(ValueError, match=r"loss: instance_weights contain NaN or infinity "
                                         r"\(shape \(2,\)\)"):
        nn.loss(x, np.array([0, 1]), instance_weights=np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="loss: labels c for 'softmaxlog' must have shape"):
        nn.loss(x, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="loss: attribute labels c for 'hinge' must have"):
        nn.loss(x, np.zeros(2), loss="hinge")
    with pytest.raises(ValueError, match="loss: instance_weights of shape"):
        nn.loss(x, np.zeros(2), instance_weights=np.ones((2, 3, 2, 2)))
    with pytest.raises(TypeError, match="loss: x must be float32 or float64"):
        nn.loss(x.astype(np.float16), np.zeros(2))
    with pytest.raises(ValueError, match="loss: class labels c must be whole numbers"):
        nn.loss(x, np.array([0.5, 1]))
    with pytest.raises(ValueError, match="loss: attribute labels"):
        nn.loss(x, np.full(x.shape, 2.0), loss="logistic")


def test_ties_follow_matlab_first_maximum_and_stable_sort():
    x = np.array([[2.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
    # classerror: argmax is the first maximum (class 0, then class 1)
    assert nn.loss(x, np.array([1, 1]), loss="classerror", normalise=False) == 1
    # topkerror with k = 1: among tied scores the lower class ranks first
    assert nn.loss(x, np.array([0, 2]), loss="topkerror", topk=1, normalise=False) == 1
    assert nn.loss(x, np.array([1, 1]), loss="topkerror", topk=2, normalise=False) == 0


def test_single_class_mshinge_is_zero_with_zero_derivative():
    x = RNG.standard_normal((3, 1, 2, 2))
    c = np.zeros((3, 2, 2), np.int64)
    assert nn.loss(x, c, loss="mshinge") == 0
    assert not nn.loss(x, c, loss="mshinge", dzdy=1.0)[0].any()


def test_softmaxloss_on_many_rows_of_scores_matches_numpy():
    # (N, C) scores are processed several whole rows per work item, the last item partial.
    x = RNG.standard_normal((70, 1000)) * 3
    c = RNG.integers(-1, 1000, size=70)
    keep = c >= 0
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_p[keep, c[keep]].sum() / 70
    np.testing.assert_allclose(nn.softmaxloss(x, c), expected, rtol=1e-12)
    np.testing.assert_allclose(nn.softmaxloss(x.astype(np.float32), c), expected, rtol=1e-5)
    dx, _ = nn.softmaxloss(x, c, dzdy=1.0)
    onehot = np.zeros_like(x)
    onehot[keep, c[keep]] = 1
    np.testing.assert_allclose(dx, keep[:, None] * (np.exp(log_p) - onehot) / 70, atol=1e-15)
    np.testing.assert_allclose(nn.softmax(x), np.exp(log_p), rtol=1e-12)
