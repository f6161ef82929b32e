"""Coverage-guided fuzzing of autonn's file readers with atheris (libFuzzer for Python).

    python scripts/fuzz_loaders.py TARGET [libFuzzer options, e.g. -max_total_time=60]

Every input is made into a file and read; the reader must return or raise
``autonn.FormatError``. Anything else (another exception, a crash, a hang past ``-timeout``,
memory past ``-rss_limit_mb``) is a finding: libFuzzer prints it, saves the input as
``crash-*``/``timeout-*``/``oom-*`` and the script exits non-zero. The targets:

- ``net``: the bytes as a whole ``.npz`` file, for :meth:`autonn.Net.load`;
- ``net-graph``: the bytes as the JSON graph inside an otherwise valid ``.npz``, so that
  mutations reach the graph reader rather than stopping at the zip's checksums;
- ``pth``: the bytes as a whole ``.pth`` file (zip or legacy stream), for
  :func:`autonn.io.load_torch_state_dict`;
- ``pth-pickle``: the bytes as the data pickle inside a valid zip ``.pth`` (with its storages),
  so that mutations reach the restricted unpickler;
- ``mat``: the bytes as a whole MatConvNet ``.mat`` file (MATLAB v5), for
  :func:`autonn.io.load_matconvnet`;
- ``onnx``: the bytes as a whole ONNX model, for :func:`autonn.io.load_onnx`;
- ``safetensors``: the bytes as a whole safetensors file, for
  :func:`autonn.io.load_safetensors`.

Each target starts from valid files written here. The slow tests run every target for a
bounded time (``tests/test_fuzz_loaders.py``).
"""

import collections
import io
import os
import pickle
import struct
import sys
import tempfile
import types
import zipfile

import atheris
import numpy as np

with atheris.instrument_imports(include=["autonn"]):
    import autonn as an
    from autonn import nn
    from autonn.io import load_matconvnet, load_onnx, load_safetensors, load_torch_state_dict

TARGETS = ("net", "net-graph", "pth", "pth-pickle", "mat", "onnx", "safetensors")


# ------------------------------------------------------------------------------ valid files
def net_file():
    x = an.Input("x")
    w = an.Param(np.linspace(-1, 1, 2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3),
                 name="w")
    y = nn.pool(nn.relu(nn.conv(x, w, np.zeros(2, np.float32), pad=1)), 2, stride=2)
    objective = nn.loss(y.reshape(1, -1)[:, :3], an.Input("label"))
    net = an.Net(objective, meta={"classes": ["a", "b", "c"]})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.npz")
        net.save(path)
        with open(path, "rb") as file:
            return file.read()


def npz_members(content):
    """The arrays of an .npz file, the graph JSON apart."""
    with np.load(io.BytesIO(content), allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return str(arrays.pop("__graph__")), arrays


def pth_storages():
    weights = np.linspace(-1, 1, 3 * 2 * 2 * 2, dtype=np.float32)
    rows = np.arange(20, dtype=np.float32)
    return {"0": weights, "1": rows}


def pth_pickle(legacy=False):
    """The data pickle torch.save writes for a small state dict (with its torch globals, faked
    for the writing)."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only written, never called")

    for module, value, name in ((torch, FloatStorage, "FloatStorage"),
                                (utils, _rebuild_tensor_v2, "_rebuild_tensor_v2")):
        value.__module__, value.__qualname__ = module.__name__, name
        setattr(module, name, value)

    class Tensor:
        def __init__(self, key, offset, size, stride):
            self.args = (("storage", key), offset, size, stride, False,
                         collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    storages = pth_storages()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and obj[:1] == ("storage",):
                pid = ("storage", FloatStorage, obj[1], "cpu", storages[obj[1]].size)
                return pid + (None,) if legacy else pid
            return None

    state = collections.OrderedDict([
        ("conv.weight", Tensor("0", 0, (3, 2, 2, 2), (8, 4, 2, 1))),
        ("fc.weight_t", Tensor("1", 0, (5, 4), (1, 5))),
        ("fc.row", Tensor("1", 10, (5,), (1,))),
    ])
    saved = dict(sys.modules)
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(state)
        return buffer.getvalue()
    finally:
        sys.modules.clear()
        sys.modules.update(saved)


def pth_zip(data_pickle):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", data_pickle)
        for key, values in pth_storages().items():
            archive.writestr(f"model/data/{key}", values.tobytes())
    return buffer.getvalue()


def pth_legacy():
    buffer = io.BytesIO()
    for header in (0x1950a86a20f9469cfc6c, 1001,
                   {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    buffer.write(pth_pickle(legacy=True))
    storages = pth_storages()
    pickle.dump(list(storages), buffer, protocol=2)
    for values in storages.values():
        buffer.write(struct.pack("<q", values.size) + values.tobytes())
    return buffer.getvalue()


def mat_files():
    from scipy import io as scipy_io

    def cell(*items):
        array = np.empty((1, len(items)), dtype=object)
        array[0, :] = items
        return array

    layers = cell(
        {"type": "conv", "name": "c", "weights": cell(np.ones((3, 3, 1, 2), np.float32),
                                                      np.ones(2, np.float32)),
         "stride": 1, "pad": 0},
        {"type": "relu", "name": "r"},
        {"type": "pool", "name": "p", "method": "max", "pool": np.array([2.0, 2.0]),
         "stride": 2.0, "pad": 0.0},
        {"type": "softmax", "name": "s"})
    meta = {"classes": {"name": cell("a", "b")}, "normalization": {"imageSize": [8, 8, 1]}}
    files = []
    for variables in ({"layers": layers}, {"layers": layers, "meta": meta}):
        buffer = io.BytesIO()
        scipy_io.savemat(buffer, variables)
        files.append(buffer.getvalue())
    return files


def onnx_file():
    x = an.Input("x")
    y = nn.pool(nn.relu(nn.conv(x, np.ones((2, 1, 3, 3), np.float32), np.zeros(2, np.float32),
                                pad=1)), 2, stride=2)
    net = an.Net(nn.bnorm(y, np.ones(2, np.float32), np.zeros(2, np.float32),
                          moments=np.ones((2, 2), np.float32)).sum(axis=1))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.onnx")
        an.io.export_onnx(net, path, {"x": np.zeros((1, 1, 6, 6), np.float32)})
        with open(path, "rb") as file:
            return file.read()


def safetensors_file():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.safetensors")
        an.io.save_safetensors({"w": np.ones((2, 3), np.float32), "n": np.arange(3)}, path)
        with open(path, "rb") as file:
            return file.read()


def seeds(target):
    if target == "net":
        return [net_file()]
    if target == "net-graph":
        return [npz_members(net_file())[0].encode()]
    if target == "pth":
        return [pth_zip(pth_pickle()), pth_legacy()]
    if target == "pth-pickle":
        return [pth_pickle()]
    if target == "onnx":
        return [onnx_file()]
    if target == "safetensors":
        return [safetensors_file()]
    return mat_files()


# ------------------------------------------------------------------------------ one input
def reader(target, path):
    """``test_one_input(data)`` for a target, reading every input through the file ``path``,
    and ``check_seed(data)``, which lets no error pass."""
    graph_arrays = npz_members(net_file())[1] if target == "net-graph" else None

    def write(data):
        if target == "net-graph":
            with open(path, "wb") as file:
                np.savez(file, __graph__=np.array(data.decode("latin-1")), **graph_arrays)
        elif target == "pth-pickle":
            with open(path, "wb") as file:
                file.write(pth_zip(data))
        else:
            with open(path, "wb") as file:
                file.write(data)

    load = LOADERS[target]

    def test_one_input(data):
        write(data)
        try:
            load(path)
        except an.FormatError:
            pass

    def check_seed(data):  # a seed must load, or the fuzzing starts from nothing
        write(data)
        load(path)
    return test_one_input, check_seed


LOADERS = {"net": an.Net.load, "net-graph": an.Net.load, "pth": load_torch_state_dict,
           "pth-pickle": load_torch_state_dict, "mat": load_matconvnet, "onnx": load_onnx,
           "safetensors": load_safetensors}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz_loaders.py {{{','.join(TARGETS)}}} [libFuzzer options]")
    target, options = sys.argv[1], sys.argv[2:]
    folder = tempfile.mkdtemp(prefix="autonn-fuzz-")
    corpus = os.path.join(folder, "corpus")
    os.mkdir(corpus)
    for k, seed in enumerate(seeds(target)):
        with open(os.path.join(corpus, f"seed{k}"), "wb") as file:
            file.write(seed)
    suffix = {"net": ".npz", "net-graph": ".npz", "pth": ".pth", "pth-pickle": ".pth",
              "mat": ".mat", "onnx": ".onnx", "safetensors": ".safetensors"}[target]
    test_one_input, check_seed = reader(target, os.path.join(folder, "input" + suffix))
    for seed in seeds(target):
        check_seed(seed)
    atheris.Setup([sys.argv[0], *options, corpus], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
