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


def test_float32_mode_uses_looser_tolerances():
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
