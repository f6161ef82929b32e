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


def test_indexing_with_a_layer_is_refused():
    x = an.Input("x")
    with pytest.raises(TypeError, match="getitem"):
        x[x]
