"""Net.save / Net.load round-trip exactly, with no pickle."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ----------------------------------------------------------------------------- malformed files
def saved_arrays(tmp_path):
    path = tmp_path / "net.npz"
    build().save(path)
    with np.load(path) as data:
        return path, {k: data[k] for k in data.files}


def rewrite_graph(path, arrays, edit):
    graph = json.loads(str(arrays["__graph__"]))
    edit(graph)
    np.savez(path, **dict(arrays, __graph__=np.array(json.dumps(graph))))


def test_every_malformed_net_file_raises_the_format_error_naming_it(tmp_path):
    path, arrays = saved_arrays(tmp_path)
    good = path.read_bytes()
    cases = {
        "random bytes": np.random.default_rng(0).bytes(256),
        "an empty file": b"",
        "a truncated file": good[:len(good) // 2],
    }
    for what, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(an.FormatError, match=r"Net.load\('net.npz'\)") as error:
            an.Net.load(path)
        assert "allow_pickle" not in str(error.value), what
    edits = {
        "bad JSON": None,
        "a layer index past the layers built": lambda g: g["outputs"].__setitem__(0, 999),
        "a negative layer index": lambda g: g["outputs"].__setitem__(0, -1),
        "a missing array": lambda g: g["arrays"].clear() or
        [layer.update(value="param:nothing") for layer in g["layers"] if "value" in layer],
        "an unknown layer kind": lambda g: g["layers"][0].update(kind="alien"),
        "two variables of one name": lambda g: [layer.update(name="same")
                                                for layer in g["layers"]],
    }
    for what, edit in edits.items():
        if edit is None:
            np.savez(path, **dict(arrays, __graph__=np.array("{not json")))
        else:
            rewrite_graph(path, arrays, edit)
        with pytest.raises(an.FormatError, match=r"Net.load\('net.npz'\)"):
            an.Net.load(path)
    assert issubclass(an.FormatError, ValueError) and an.io.FormatError is an.FormatError


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    import zipfile
    path, arrays = saved_arrays(tmp_path)
    # a 256 MiB array of zeros deflates to about 256 KiB: the member declares its true size
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (2**26,)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__graph__.npy", _npy_bytes(arrays["__graph__"]))
        with archive.open("param:w.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(2**24)
            for _ in range(2**28 // len(chunk)):
                member.write(chunk)
    assert path.stat().st_size < 2**20
    with pytest.raises(an.FormatError, match=r"member 'param:w.npy' would inflate from \d+ to "
                                             r"\d+ bytes"):
        an.Net.load(path)


def test_an_array_other_than_the_graph_declares_is_refused(tmp_path):
    path, arrays = saved_arrays(tmp_path)
    np.savez(path, **dict(arrays, **{"param:w": np.zeros((200, 300))}))
    with pytest.raises(an.FormatError, match=r"array 'param:w' holds \d+ bytes, the graph "
                                             r"declares \(2, 3\) float64 \(48 bytes\)"):
        an.Net.load(path)


def _npy_bytes(array):
    import io
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- mutated files
_SAVED = {}


def _saved_bytes(tmp_path_factory):
    if "net" not in _SAVED:
        path = tmp_path_factory.mktemp("saved") / "net.npz"
        build().save(path)
        _SAVED["net"] = path.read_bytes()
    return _SAVED["net"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_mutated_net_file_loads_or_raises_the_format_error(tmp_path_factory, data):
    # flipped bytes, a cut, or both: the file loads or says FormatError, nothing else
    content = bytearray(_saved_bytes(tmp_path_factory))
    for _ in range(data.draw(st.integers(0, 8))):
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] = data.draw(st.integers(0, 255))
    content = content[:data.draw(st.integers(0, len(content)))]
    path = tmp_path_factory.mktemp("mutated") / "net.npz"
    path.write_bytes(bytes(content))
    try:
        an.Net.load(path)
    except an.FormatError as error:
        assert "Net.load('net.npz')" in str(error)
