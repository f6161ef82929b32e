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
