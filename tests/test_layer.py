"""The implicit graph: naming, find, deep_copy, repr."""

import numpy as np
import pytest

import autonn as an
from autonn.layer import Input, Param


def test_workspace_names_names_layers_after_variables():
    images = an.Input()
    weights = an.Param(np.ones(3))
    product = images * weights
    given = an.workspace_names()
    assert images.name == "images" and weights.name == "weights" and product.name == "product"
    assert set(given) >= {"images", "weights", "product"}


def test_workspace_names_keeps_existing_names():
    x = an.Input("data")
    an.workspace_names()
    assert x.name == "data"


def test_sequential_names_use_op_and_input_roles():
    x = an.Input()
    w = an.Param(np.ones((2, 2)))
    y = np.tanh(x @ w)
    z = np.tanh(y) + y
    z.sequential_names()
    assert x.name == "input1"
    assert y.name == "tanh1"
    assert w.name.startswith("matmul1_")
    assert z.name == "add1"
    assert z.find("tanh*", index=1).name == "tanh2"
    assert z.find("tanh*", 1) is z.find("tanh*", index=1) and z.find(np.tanh, -1).name == "tanh2"


def test_find_by_name_op_and_kind():
    x = an.Input("x")
    p = an.Param(np.ones(2), name="p")
    y = np.exp(x * p).sum()
    assert y.find("p") == [p]
    assert [layer.op.name for layer in y.find(op="exp")] == ["exp"]
    assert y.find(Input) == [x]
    assert y.find(Param) == [p]
    assert y.find(an.math_ops.multiply)[0].inputs == (x, p)
    with pytest.raises(IndexError, match="1 layers match"):
        y.find("p", index=3)


def test_deep_copy_copies_params_and_shares_what_is_asked():
    x = an.Input("x")
    p = an.Param(np.ones(2), name="p")
    y = (x * p).sum()
    copy = y.deep_copy(x)
    assert copy is not y
    (copied_p,) = copy.find(Param)
    assert copied_p is not p and copied_p.name == "p"
    copied_p.value[:] = 5
    assert p.value[0] == 1
    assert copy.find(Input) == [x]
    net = an.Net(copy)
    net.eval({"x": np.ones(2)})
    assert net.value(copy) == 10


def test_repr_describes_the_node():
    x = an.Input("x")
    y = np.sum(x * 2, axis=0)
    y.name = "total"
    assert repr(y).startswith("Layer(total = sum(")
    assert "axis=0" in repr(y)


def test_layer_records_the_users_source_line():
    x = an.Input("x")
    y = x + 1
    assert y.source.endswith("test_layer.py:" + str(y.source.split(":")[-1]))
    assert "test_layer.py" in x.source


def test_param_rejects_an_unknown_train_method():
    with pytest.raises(ValueError, match="train_method must be one of"):
        an.Param(np.ones(2), train_method="sgd")


def test_indexing_with_a_layer_takes_along_its_axis_and_other_mixes_are_refused():
    x, i = an.Input("x"), an.Input("i")
    assert x[i].op.name == "take" and x[i].options == {"axis": 0}
    assert x[:, i].options == {"axis": 1}
    with pytest.raises(TypeError, match="getitem"):
        x[0, i]


def test_deep_copy_shares_everything_a_shared_layer_depends_on():
    # the diamond d = sqrt(a) + abs(a), copied with sqrt(a) shared: a is shared too (sqrt
    # reads it), so the copy of abs reads the same Input and the copy has one Input named 'a'
    a = an.Input("a")
    b = np.sqrt(a)
    c = np.abs(a)
    d = b + c
    copy = d.deep_copy(b)
    assert copy is not d and copy.inputs[0] is b
    assert copy.inputs[1] is not c and copy.inputs[1].inputs[0] is a
    assert [layer for layer in copy.graph() if isinstance(layer, Input)] == [a]
    net = an.Net(copy)
    value = np.array([4.0, 9.0])
    net.eval({"a": value}, mode="forward")
    np.testing.assert_allclose(net.value(copy), np.sqrt(value) + np.abs(value))


def test_deep_copy_takes_shared_layers_in_lists_and_refuses_the_root():
    a = an.Input("a")
    w = an.Param(np.ones(2))
    y = a * w + 1
    copy = y.deep_copy([a, w])
    assert copy.inputs[0].inputs[0] is a and copy.inputs[0].inputs[1] is w
    copy = y.deep_copy(a, share=w)   # AutoNN's option name
    assert copy.inputs[0].inputs[0] is a and copy.inputs[0].inputs[1] is w
    copy = y.deep_copy(share=[a])
    assert copy.inputs[0].inputs[0] is a and copy.inputs[0].inputs[1] is not w
    with pytest.raises(ValueError, match="deep_copy: the Layer copied"):
        y.deep_copy(y)
    with pytest.raises(TypeError, match="deep_copy: shared layers must be Layers"):
        y.deep_copy("a")


def test_deep_copy_renames_the_copies_only():
    a = an.Input("a")
    b = np.sqrt(a)
    c = np.abs(b)
    an.workspace_names()
    copy = c.deep_copy(a, rename=lambda name: "streamB_" + name)
    assert [layer.name for layer in copy.graph()] == ["a", "streamB_b", "streamB_c"]
    assert (b.name, c.name) == ("b", "c")
    with pytest.raises(TypeError, match="deep_copy: rename must be a function"):
        c.deep_copy(a, rename="x")
    with pytest.raises(TypeError, match=r"deep_copy: rename\('b'\) must return a str"):
        c.deep_copy(a, rename=lambda name: None)


def test_names_given_by_sequential_names_are_automatic_and_user_names_are_not():
    x = an.Input("x")
    y = np.exp(x) + 1
    y.sequential_names()
    assert not x.automatic_name and y.automatic_name and y.inputs[0].automatic_name
    y.name = "y"
    assert not y.automatic_name


def test_dzdy_with_a_layer_input_is_refused_by_name():
    from autonn import nn
    x = an.Input("x")
    dy = np.ones((1, 1, 2, 2), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)

    @an.op
    def twice(u):
        return 2 * u

    @an.op
    def scaled(u, s):
        return u * s

    @scaled.backward
    def scaled_backward(u, s, dzdy):
        return dzdy * s, (dzdy * u).sum()

    calls = {"sigmoid": lambda: nn.sigmoid(x, dzdy=dy), "relu": lambda: nn.relu(x, dzdy=dy),
             "conv": lambda: nn.conv(x, w, dzdy=dy), "dropout": lambda: nn.dropout(x, dzdy=dy),
             "loss": lambda: nn.loss(x, an.Input("c"), dzdy=1.0),
             "bilinearsampler": lambda: nn.bilinearsampler(x, an.Input("g"), dzdy=dy),
             "roipool": lambda: nn.roipool(x, an.Input("r"), dzdy=dy),
             "twice": lambda: twice(x, dzdy=dy), "scaled": lambda: scaled(x, 2.0, dzdy=dy),
             "exp": lambda: an.math_ops.exp(x, dzdy=dy),
             "exp (Layer dzdy)": lambda: an.math_ops.exp(dy, dzdy=x)}
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"dzdy= computes derivatives eagerly") as error:
            call()
        assert str(error.value).split(":")[0].split(".")[-1] in name, name
