"""Net.save / Net.load round-trip exactly, with no pickle."""

import json

import numpy as np
import pytest

import autonn as an


@an.op
def shifted_square(x, *, shift=0.0):
    return (x - shift) ** 2


@shifted_square.backward
def shifted_square_backward(x, dzdy, *, shift=0.0):
    return 2 * (x - shift) * dzdy


def build():
    x = an.Input("x")
    w = an.Param(np.arange(6.0).reshape(2, 3) / 10, name="w", learning_rate=2.0,
                 weight_decay=0.0)
    h = shifted_square(x @ w, shift=0.5)
    h = h[:, np.array([2, 0])][..., ::-1]
    out = (np.maximum(h, 0.1) * 2 + 1).sum(axis=(0,), keepdims=True)
    return an.Net(out.sum(), meta={"classes": ["a", "b"], "normalization": {"mean": 0.5}})


def test_save_load_round_trip(tmp_path):
    net = build()
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = an.Net.load(path)
    feed = {"x": np.random.default_rng(0).standard_normal((4, 2))}
    net.eval(feed)
    loaded.eval(feed)
    assert loaded.value(loaded.outputs[0]) == net.value(net.outputs[0])
    np.testing.assert_array_equal(loaded.der("w"), net.der("w"))
    assert loaded.tape.names == net.tape.names
    assert loaded.meta == net.meta
    (param,) = loaded.params
    assert (param.name, param.learning_rate, param.weight_decay) == ("w", 2.0, 0.0)
    assert [s.options for s in loaded.tape.forward][1:] != []
    assert repr(loaded.tape) == repr(net.tape)


def test_saved_file_holds_json_and_arrays_only(tmp_path):
    path = tmp_path / "net.npz"
    build().save(path)
    with np.load(path, allow_pickle=False) as data:
        graph = json.loads(str(data["__graph__"]))
        assert all(data[k].dtype != object for k in data.files)
    assert graph["format"] == "autonn-net"


def test_loading_an_unknown_op_names_it(tmp_path):
    path = tmp_path / "net.npz"
    build().save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    graph = json.loads(str(arrays["__graph__"]))
    for layer in graph["layers"]:
        if layer.get("op", "").endswith("shifted_square"):
            layer["op"] = "nowhere.unknown_op"
    arrays["__graph__"] = np.array(json.dumps(graph))
    np.savez(path, **arrays)
    with pytest.raises(KeyError, match="unknown op 'nowhere.unknown_op'"):
        an.Net.load(path)


def test_an_option_that_cannot_be_saved_is_named(tmp_path):
    x = an.Input("x")
    net = an.Net(an.math_ops.clip(x, a_min=object(), a_max=None).sum(), optimize=False)
    with pytest.raises(TypeError, match="option a_min has type object"):
        net.save(tmp_path / "bad.npz")
