"""@an.op: custom layers with and without a backward, eager, with dzdy= and in graphs."""

import numpy as np
import pytest

import autonn as an


@an.op
def scale(x, s, *, bias=0.0):
    """y = x·s + bias"""
    return x * s + bias


@scale.backward
def scale_backward(x, s, dzdy, *, bias=0.0):
    return dzdy * s, (dzdy * x).sum()


@an.op
def softplus(x):
    """A function built from autonn operations: no backward needed."""
    return np.log1p(np.exp(x))


X = np.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]])


def test_custom_op_works_eagerly():
    np.testing.assert_allclose(scale(X, 2.0, bias=1.0), X * 2 + 1)


def test_custom_op_backward_with_dzdy():
    dx, ds = scale(X, 2.0, dzdy=np.ones_like(X))
    np.testing.assert_allclose(dx, np.full_like(X, 2.0))
    assert np.isclose(ds, X.sum())


def test_custom_op_in_a_graph_is_one_node_with_its_backward():
    x = an.Input("x")
    s = an.Param(np.array(3.0), name="s")
    net = an.Net(scale(x, s, bias=0.5).sum())
    assert [step.op.name for step in net.tape.forward][0].endswith("scale")
    net.eval({"x": X})
    np.testing.assert_allclose(net.der("x"), np.full_like(X, 3.0))
    assert np.isclose(s.der, X.sum())


def test_custom_op_passes_gradcheck():
    an.gradcheck(scale, X, np.array(2.0), bias=0.25)


def test_custom_op_without_backward_expands_into_its_operations():
    x = an.Input("x")
    y = softplus(x)
    assert y.op.name == "log1p"
    net = an.Net(y.sum())
    net.eval({"x": X})
    np.testing.assert_allclose(net.der("x"), 1 / (1 + np.exp(-X)))


def test_custom_op_without_backward_differentiates_eagerly_by_tracing():
    dx = softplus(X, dzdy=np.ones_like(X))
    np.testing.assert_allclose(dx, 1 / (1 + np.exp(-X)))
    an.gradcheck(softplus, X)


def test_custom_op_rejects_unknown_options_in_graph_mode():
    x = an.Input("x")
    with pytest.raises(TypeError, match="scale.*unexpected keyword.*'gain'"):
        scale(x, 2.0, gain=3)


def test_redefining_a_custom_op_replaces_it_in_the_registry():
    from autonn.ops import REGISTRY

    @an.op(name="test_custom_ops.twice")
    def twice(x):
        return 2 * x

    @an.op(name="test_custom_ops.twice")
    def twice_again(x):
        return 3 * x

    assert REGISTRY["test_custom_ops.twice"] is twice_again


# ------------------------------------------------------------------ one backward convention
def three_derivatives_for_two_inputs(x, s, dzdy):
    return dzdy * s, (dzdy * x).sum(), dzdy


miscounted = an.Op("test_custom_ops.miscounted", lambda x, s: x * s,
                   three_derivatives_for_two_inputs)
MISCOUNT = r"test_custom_ops.miscounted backward: returned 3 derivatives for 2 inputs"


@pytest.mark.parametrize("debug", [False, True])
def test_a_backward_giving_the_wrong_number_of_derivatives_is_refused_everywhere(monkeypatch,
                                                                                   debug):
    from autonn import reference
    monkeypatch.setattr(an.net, "DEBUG", debug)
    with pytest.raises(ValueError, match=MISCOUNT):
        miscounted(X, 2.0, dzdy=np.ones_like(X))
    x = an.Input("x")
    s = an.Param(np.array(2.0), name="s")
    product = miscounted(x, s)
    net = an.Net(product.sum())
    with pytest.raises(ValueError, match=r"backward of test_custom_ops.miscounted layer "
                                         r"'product' .*" + MISCOUNT):
        net.eval({"x": X})
    with pytest.raises(ValueError, match=MISCOUNT):
        reference.evaluate(net.outputs, {"x": X})


split_in_two = an.Op("test_custom_ops.split_in_two", lambda x: (x[:1], x[1:]), num_outputs=2,
                     backward=lambda x, dzdy: np.concatenate(dzdy))


def test_a_missing_derivative_of_a_multi_output_op_counts_as_zeros_everywhere():
    from autonn import reference
    dy = np.full((1, 3), 5.0)
    expected = np.concatenate([dy, np.zeros((1, 3))])
    np.testing.assert_array_equal(split_in_two(X, dzdy=(dy, None)), expected)
    x = an.Input("x")
    first, _ = split_in_two(x)
    output = (first * 5.0).sum()
    net = an.Net(output)
    net.eval({"x": X})
    np.testing.assert_array_equal(net.der("x"), expected)
    _, ders = reference.evaluate([output], {"x": X})
    np.testing.assert_array_equal(ders[id(x)], expected)


def test_dzdy_of_a_multi_output_op_must_have_one_entry_per_output():
    with pytest.raises(ValueError, match="split_in_two backward: dzdy must be a tuple with one "
                                         "derivative per output"):
        split_in_two(X, dzdy=(np.ones((1, 3)),))


class CountingOp(an.Op):
    """An op whose derivative functions count their calls."""

    calls = 0

    def derivative_functions(self, need):
        def counted(run):
            def run_counted(*args, **options):
                CountingOp.calls += 1
                return run(*args, **options)
            return run_counted
        return tuple((positions, counted(run))
                     for positions, run in super().derivative_functions(need))


def test_eager_calls_the_tape_and_the_reference_executor_all_use_the_ops_derivative_functions():
    from autonn import reference
    counting = CountingOp("test_custom_ops.counting", lambda x, s: x * s,
                          lambda x, s, dzdy: (dzdy * s, (dzdy * x).sum()))
    CountingOp.calls = 0
    counting(X, 2.0, dzdy=np.ones_like(X))
    assert CountingOp.calls == 1
    x = an.Input("x")
    s = an.Param(np.array(2.0), name="s")
    net = an.Net(counting(x, s).sum())
    net.eval({"x": X})
    assert CountingOp.calls == 2
    reference.evaluate(net.outputs, {"x": X})
    assert CountingOp.calls == 3


def test_backward_receives_y_and_need_the_same_way_eagerly_and_in_a_net():
    seen = []

    def backward(x, c, dzdy, *, y, need):
        seen.append((y, need))
        return dzdy * c, None

    product = an.Op("test_custom_ops.product_with_y", lambda x, c: x * c, backward,
                    backward_needs_output=True, backward_accepts_need=True)
    c = np.array([1.0, 2.0, 3.0])
    dx, _ = product(X, c, dzdy=np.ones_like(X))
    x = an.Input("x")
    net = an.Net(product(x, c).sum())
    net.eval({"x": X})
    (eager_y, eager_need), (net_y, net_need) = seen
    np.testing.assert_array_equal(eager_y, X * c)
    np.testing.assert_array_equal(net_y, X * c)
    assert eager_need == (True, True) and net_need == (True, False)  # c is a constant
    np.testing.assert_array_equal(net.der("x"), dx)


def test_a_single_per_input_rule_is_called_directly():
    rule = an.math_ops.exp.vjps[0]
    assert an.math_ops.exp.derivative_functions((True,)) == (((0,), rule),)
