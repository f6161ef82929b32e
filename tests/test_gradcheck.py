"""gradcheck catches wrong derivatives (down to one element off by 5%), passes right ones,
handles kinks without false alarms and reports readably."""

import numpy as np
import pytest

import autonn as an
from autonn.ops import Op


def tanh_with_planted_error(position, factor):
    def backward(x, dzdy):
        d = dzdy * (1 - np.tanh(x) ** 2)
        d.reshape(-1)[position] *= factor
        return d
    return Op(f"tanh_planted_{position}_{factor}", np.tanh, backward)


@pytest.mark.parametrize("shape", [(7,), (40, 30), (8, 16, 32)])
def test_catches_one_element_wrong_by_five_percent(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    position = x.size // 3
    report = an.gradcheck(tanh_with_planted_error(position, 1.05), x, raise_on_failure=False)
    assert not report.passed
    index = np.unravel_index(position, shape)
    assert [tuple(e[0]) for e in report.entries[0].bad_elements] == [index]


def test_passes_a_correct_derivative():
    x = np.random.default_rng(1).standard_normal((20, 20))
    report = an.gradcheck(tanh_with_planted_error(0, 1.0), x)
    assert report.passed and bool(report)


def test_raises_with_the_report_by_default():
    x = np.random.default_rng(2).standard_normal(10)
    with pytest.raises(AssertionError, match=r"gradcheck failed:[\s\S]*x\[3\]: computed"):
        an.gradcheck(tanh_with_planted_error(3, 0.5), x)


def test_no_false_alarm_at_relu_kinks_and_max_ties():
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 0.0, 3.0], [3.0, 3.0, -2.0]])
    an.gradcheck(lambda v: np.maximum(v, 0).max(axis=1), x)
    an.gradcheck(lambda v: abs(v).sum(), x)


def test_kink_does_not_hide_a_wrong_derivative():
    wrong_relu = Op("relu_wrong_slope", lambda x: np.maximum(x, 0),
                    lambda x, dzdy: dzdy * (x > 0) * 1.5)
    x = np.array([0.0, 1.0, -1.0, 2.0])
    assert not an.gradcheck(wrong_relu, x, raise_on_failure=False).passed


def test_checks_every_input_and_holds_integer_inputs_fixed():
    def pick(x, labels):
        return x[np.arange(3), labels]
    pick_op = Op("pick_for_test", pick, vjps=(
        lambda g, y, x, labels: _scatter(x, labels, g), None))
    x = np.random.default_rng(3).standard_normal((3, 4))
    report = an.gradcheck(pick_op, x, np.array([0, 3, 1]))
    assert [e.name for e in report.entries] == ["x"]


def _scatter(x, labels, g):
    d = np.zeros_like(x)
    d[np.arange(3), labels] = g
    return d


def test_checks_a_whole_net_with_its_params():
    x = an.Input("x")
    w = an.Param(np.random.default_rng(4).standard_normal((3, 2)), name="w")
    net = an.Net(np.tanh(x @ w).sum())
    report = an.gradcheck(net, {"x": np.random.default_rng(5).standard_normal((4, 3))})
    assert [e.name for e in report.entries] == ["x", "w"]
    assert w.value.dtype == np.float64


def test_a_net_with_bnorm_passes_and_its_moments_are_not_checked():
    from autonn import nn
    x = an.Input("x")
    y = nn.bnorm(nn.conv(x, size=(3, 3, 4, 2)))
    net = an.Net((y * y).sum())
    report = an.gradcheck(net, {"x": np.random.default_rng(7).standard_normal((2, 4, 6, 6))})
    methods = {p.name: p.train_method for p in net.params}
    assert sorted(methods.values()) == ["average", "gradient", "gradient", "gradient",
                                         "gradient"]
    assert [e.name for e in report] == ["x"] + [name for name, method in methods.items()
                                                if method == "gradient"]
    assert report.passed


def test_float32_mode_passes_a_smooth_function():
    x = np.random.default_rng(6).standard_normal((5, 5)).astype(np.float32)
    report = an.gradcheck(lambda v: np.tanh(v) * v, x, dtype=np.float32)
    assert report.passed


def test_report_reads_as_a_table_and_as_html():
    report = an.gradcheck(lambda v: np.exp(v), np.zeros(3))
    text = repr(report)
    assert "max abs err" in text and "pass" in text
    assert "<table>" in report._repr_html_()
    assert report["v"].passed
    assert report[0] is report["v"] and len(report) == 1 and list(report) == report.entries
    with pytest.raises(KeyError, match="no input named 'w'"):
        report["w"]


# ---------------------------------------------------------------------- several kinks at once
def _relu_op(name, backward):
    return Op(name, lambda x: np.maximum(x, 0), backward)


def _pool_2x2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _pool_to_last(x, dzdy):
    n, c, h, w = x.shape
    d = np.zeros((n, c, h // 2, 2, w // 2, 2))
    d[:, :, :, 1, :, 1] = dzdy
    return d.reshape(x.shape)


def _relu_one_element_off(x, dzdy):
    d = dzdy * (x > 0)
    d.reshape(-1)[np.flatnonzero(x > 0)[3]] *= 1.05
    return d


def _integers(seed):
    return np.random.default_rng(seed).integers(-3, 4, size=(2, 3, 4, 4)).astype(float)


def _bits(seed):
    return np.random.default_rng(seed).integers(0, 2, size=(1, 2, 6, 6)).astype(float)


@pytest.mark.parametrize("seed", range(30))
def test_correct_relu_on_small_integers_passes_every_seed(seed):
    # every direction crosses several of the zeros' kinks at once
    from autonn import nn
    an.gradcheck(nn.relu, _integers(seed), seed=seed)


@pytest.mark.parametrize("seed", range(20))
def test_correct_max_pool_on_bits_passes_every_seed(seed):
    from autonn import nn
    an.gradcheck(nn.pool, _bits(seed), 2, stride=2, seed=seed)


@pytest.mark.parametrize("seed", [0])
def test_lenet_on_a_blank_background_passes(seed):
    # zero biases: the blank pixels meet ties in every pooling window and ReLUs at 0
    m = an.models.lenet()
    net = an.Net(m["objective"])
    x = np.zeros((2, 1, 28, 28))
    x[:, 0, 8:20, 10:18] = np.random.default_rng(seed).random((2, 12, 8))
    report = an.gradcheck(net, {"images": x, "labels": np.array([3, 1])}, seed=seed,
                          wrt=["images"])
    assert report["images"].kinks > 0


@pytest.mark.parametrize("name, backward", [
    ("leaky", lambda x, dzdy: dzdy * np.where(x > 0, 1.0, 0.1)),
    ("two_percent", lambda x, dzdy: dzdy * (x > 0) * 1.02),
    ("one_element", _relu_one_element_off),
    ("two_at_zero", lambda x, dzdy: dzdy * np.where(x > 0, 1.0, 2.0 * (x == 0))),
])
@pytest.mark.parametrize("seed", range(5))
def test_wrong_relu_on_small_integers_still_fails(name, backward, seed):
    op = _relu_op(f"relu_planted_{name}", backward)
    assert not an.gradcheck(op, _integers(seed), seed=seed, raise_on_failure=False).passed


def _pool_to_every_tie(x, dzdy):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    ties = blocks == blocks.max(axis=(3, 5), keepdims=True)
    return (ties * dzdy.reshape(n, c, h // 2, 1, w // 2, 1)).reshape(x.shape)


@pytest.mark.parametrize("backward", [_pool_to_last, _pool_to_every_tie])
@pytest.mark.parametrize("seed", range(5))
def test_wrong_max_pool_on_bits_still_fails(backward, seed):
    # sending the derivative to a fixed element, or to every tied maximum, is wrong
    op = Op(f"pool_planted_{backward.__name__}", _pool_2x2, backward)
    assert not an.gradcheck(op, _bits(seed), seed=seed, raise_on_failure=False).passed


def test_several_kinks_at_once_are_counted_not_failed():
    # one element in two tied windows of a stride-1 max-pool: its gap at x says nothing
    from autonn import nn
    x = np.zeros((1, 1, 3, 3))
    report = an.gradcheck(nn.pool, x, 2, stride=1)
    assert report["x"].kinks > 0 and report["x"].unresolved_kinks > 0
    assert "met several kinks at once" in repr(report)


# ---------------------------------------------------------------------- float32
def _scaled(f, factor, only=None):
    def g(*args, dzdy=None, **options):
        if dzdy is None:
            return f(*args, **options)
        d = f(*args, dzdy=dzdy, **options)
        if only is not None and args[0].dtype != only:
            return d
        if isinstance(d, (tuple, list)):
            return tuple(None if e is None else e * factor for e in d)
        return d * factor
    g.__name__ = f"{getattr(f, '__name__', 'f')}_times_{factor}"
    return g


def _float32_cases():
    from autonn import nn
    rng = np.random.default_rng(0)

    def tanh(x, dzdy=None):
        return np.tanh(x) if dzdy is None else dzdy * (1 - np.tanh(x) ** 2)
    return [
        ("tanh", tanh, [rng.standard_normal((32, 32)) * 3], {}),
        ("sigmoid", nn.sigmoid, [rng.standard_normal((2, 3, 4, 4))], {}),
        ("softmax", nn.softmax, [rng.standard_normal((2, 5, 3, 3))], {}),
        ("relu", nn.relu, [rng.standard_normal((2, 3, 5, 5))], {}),
        ("conv", nn.conv, [rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)),
                           rng.standard_normal(4)], {}),
        ("max_pool", nn.pool, [rng.standard_normal((2, 3, 6, 6)), 3], {}),
        ("bnorm", nn.bnorm, [rng.standard_normal((4, 3, 4, 4)), rng.standard_normal(3),
                             rng.standard_normal(3)], {}),
        ("softmaxloss", nn.softmaxloss, [rng.standard_normal((4, 5, 2, 2)),
                                         rng.integers(0, 5, (4, 1, 2, 2))], {}),
    ]


@pytest.mark.parametrize("case", _float32_cases(), ids=lambda case: case[0])
def test_float32_passes_right_derivatives_and_catches_two_percent(case):
    _, f, args, options = case
    for seed in range(3):
        an.gradcheck(f, *args, dtype=np.float32, seed=seed, **options)
        report = an.gradcheck(_scaled(f, 1.02), *args, dtype=np.float32, seed=seed,
                              raise_on_failure=False, **options)
        assert not report.passed


def test_a_bug_only_in_float32_is_caught_in_float32():
    from autonn import nn
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 4))
    buggy = _scaled(nn.sigmoid, 1.02, only=np.float32)
    an.gradcheck(buggy, x)  # float64: right
    assert not an.gradcheck(buggy, x, dtype=np.float32, raise_on_failure=False).passed


def test_lenet_in_float32_on_a_blank_background_passes():
    # the one-sided differences round twice as much as the central one: at single blank pixels
    # of a float32 LeNet that is the same order as the derivatives themselves
    m = an.models.lenet()
    net = an.Net(m["objective"])
    x = np.zeros((2, 1, 28, 28))
    x[:, 0, 8:20, 10:18] = np.random.default_rng(2).random((2, 12, 8))
    an.gradcheck(net, {"images": x, "labels": np.array([3, 1])}, seed=2, dtype=np.float32,
                 wrt=["images"])


def test_values_that_are_not_finite_fail_the_check_instead_of_passing_as_kinks():
    """sqrt of negative numbers: NaN everywhere, which compares unequal to everything and was
    counted as kinks (the check passed, with a wrong derivative)."""
    @an.op
    def root(x):
        return np.sqrt(x)

    @root.backward
    def root_backward(x, dzdy):
        return dzdy * 7.0

    with np.errstate(invalid="ignore"):
        report = an.gradcheck(root, np.array([-1.0, -2.0, -3.0]), raise_on_failure=False)
    assert not report.passed
    assert "not finite (NaN or infinity)" in repr(report)
