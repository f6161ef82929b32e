"""Saving and loading networks without pickle.

A saved net is one ``.npz`` file: every array (parameter values, constants, array options) under
its own key, and under ``__graph__`` a JSON description of the graph: its Layers in topological
order, each with its op's registered name, inputs, options, name and source line, plus the
net's settings and ``meta``. Loading builds the Layers again and recompiles; it never unpickles,
so a hostile file cannot run code. Custom ops are found by name in the op registry: import the
module that defines them before loading.
"""

import json
import math
import os
import zipfile
from typing import NamedTuple

import numpy as np

from . import backend, registration
from .errors import FormatError, UnknownOp, reading, check_zip_members
from .layer import Input, Layer, Param, Selector, topological_order
from .ops import Op, lookup

FORMAT = "autonn-net"
VERSION = 1


def save_net(net, path):
    arrays = {}
    order = topological_order(net.outputs)
    index = {id(layer): k for k, layer in enumerate(order)}
    layers = [_describe_layer(layer, index, arrays) for layer in order]
    graph = {
        "format": FORMAT, "version": VERSION, "layers": layers,
        "outputs": [index[id(layer)] for layer in net.outputs],
        "protected": sorted(index[i] for i in net._protected if i in index),
        "optimize": net.optimize, "conserve_memory": net.conserve_memory,
        "meta": _encode(net.meta, arrays, "meta"),
        # what each array must be, so that a reader checks a member before inflating it
        "arrays": {key: {"shape": list(a.shape), "dtype": a.dtype.str}
                   for key, a in arrays.items()},
    }
    with open(path, "wb") as file:
        np.savez(file, __graph__=np.array(json.dumps(graph)), **arrays)


class SavedGraph(NamedTuple):
    """What a saved file describes; :meth:`autonn.Net.load` compiles it."""

    outputs: list
    protected: set
    optimize: bool
    conserve_memory: bool
    meta: dict


def load_graph(path, ops=None):
    """The graph and settings saved by :func:`save_net` (Layers built anew, nothing compiled).
    ``ops`` maps op names, as saved or their last dotted part, to the ops to use (see
    :meth:`autonn.Net.load`).

    A malformed file raises :class:`autonn.errors.FormatError` naming it; nothing is inflated
    beyond what the graph declares (a zip member larger than its array is refused unread).
    """
    where = f"Net.load({os.path.basename(os.fspath(path))!r})"
    if ops is not None and not (isinstance(ops, dict) and all(
            isinstance(k, str) and isinstance(v, Op) for k, v in ops.items())):
        raise TypeError(f"{where}: ops must be a dict of op name -> op (an @an.op function or "
                        f"an autonn Op), got {ops!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file {os.fspath(path)!r}")
    with reading(where):
        members = _check_members(path, where)
        with np.load(path, allow_pickle=False) as data:
            if "__graph__" not in data.files:
                raise FormatError(f"{where}: not an autonn network file (no graph)")
            graph = json.loads(str(data["__graph__"]))
            if not isinstance(graph, dict) or graph.get("format") != FORMAT:
                raise FormatError(f"{where}: not an autonn network file")
            if graph.get("version", 0) > VERSION:
                raise FormatError(f"{where}: written by a newer autonn (format version "
                                  f"{graph['version']})")
            _check_declared_sizes(members, graph.get("arrays"), where)
            arrays = {key: data[key] for key in data.files if key != "__graph__"}
        layers = []
        for entry in graph["layers"]:
            layers.append(_build_layer(entry, layers, arrays, where, ops))
        protected = {id(_earlier(layers, k, where)) for k in graph["protected"]}
        for layer in layers:  # the others were named by the Net that saved them
            if id(layer) not in protected:
                layer.automatic_name = True
        return SavedGraph(outputs=[_earlier(layers, k, where) for k in graph["outputs"]],
                          protected=protected,
                          optimize=bool(graph["optimize"]),
                          conserve_memory=bool(graph["conserve_memory"]),
                          meta=_decode(graph["meta"], arrays))


def _check_members(path, where):
    """Refuse a zip bomb before anything is inflated: a member far larger than its bytes on
    disk. Returns the members' ZipInfo."""
    if not zipfile.is_zipfile(path):
        raise FormatError(f"{where}: not an autonn network file (not an .npz archive)")
    with zipfile.ZipFile(path) as archive:
        return check_zip_members(archive, where)


def _check_declared_sizes(members, declared, where):
    """Each array member must be the size the graph declares for it (files written before
    the graph declared sizes have only the bound of :func:`_check_members`)."""
    if declared is None:
        return
    for info in members:
        key = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else None
        if key is None or key == "__graph__":
            continue
        if key not in declared:
            raise FormatError(f"{where}: array {key!r} is not declared by the graph")
        shape, dtype = declared[key]["shape"], np.dtype(declared[key]["dtype"])
        nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
        if not nbytes <= info.file_size <= nbytes + NPY_HEADER_BYTES:
            raise FormatError(f"{where}: array {key!r} holds {info.file_size} bytes, the "
                              f"graph declares {tuple(shape)} {dtype} ({nbytes} bytes)")


NPY_HEADER_BYTES = 4096  # an .npy header, generously


def _earlier(layers, index, where):
    """``layers[index]`` for an index the file gives: one of the Layers already built."""
    if not (isinstance(index, int) and 0 <= index < len(layers)):
        raise FormatError(f"{where}: layer index {index!r} does not name one of the "
                          f"{len(layers)} layers built before it")
    return layers[index]


# ---------------------------------------------------------------------- layers
def _describe_layer(layer, index, arrays):
    entry = {"name": layer.name, "source": layer.source}
    if isinstance(layer, Input):
        entry["kind"] = "input"
    elif isinstance(layer, Param):
        key = f"param:{layer.name}"
        arrays[key] = backend.to_numpy(layer.value)
        entry.update(kind="param", value=key, learning_rate=layer.learning_rate,
                     weight_decay=layer.weight_decay, train_method=layer.train_method)
    elif isinstance(layer, Selector):
        entry.update(kind="selector", node=index[id(layer.inputs[0])], index=layer.index)
    else:
        where = f"layer '{layer.name}'"
        loop = getattr(layer.op, "loop_graph", None)
        if loop is not None:  # an.For/an.While: its inner graph, described the same way
            entry.update(kind="loop", loop=_describe_loop(loop, arrays))
        else:
            entry.update(kind="op", op=layer.op.name)
        entry.update(inputs=[{"layer": index[id(x)]} if isinstance(x, Layer)
                             else _encode(x, arrays, f"{where} input {k}")
                             for k, x in enumerate(layer.inputs)],
                     options={name: _encode(value, arrays, f"{where} option {name}")
                              for name, value in layer.options.items()})
    return entry


def _build_layer(entry, layers, arrays, where, ops=None):
    kind = entry["kind"]
    if kind == "input":
        layer = Input(entry["name"])
    elif kind == "param":
        layer = Param(arrays[entry["value"]], name=entry["name"],
                      learning_rate=entry["learning_rate"], weight_decay=entry["weight_decay"],
                      train_method=entry["train_method"])
    elif kind == "selector":
        layer = Selector(_earlier(layers, entry["node"], where), entry["index"])
        layer.name = entry["name"]
    elif kind in ("op", "loop"):
        inputs = [_earlier(layers, x["layer"], where) if isinstance(x, dict) and "layer" in x
                  else _decode(x, arrays) for x in entry["inputs"]]
        options = {k: _decode(v, arrays) for k, v in entry["options"].items()}
        if kind == "loop":
            layer = registration.provided("loop_node")(
                _build_loop(entry["loop"], arrays, where, ops), inputs)
            layer.name = entry["name"]
        else:
            op = _lookup(entry["op"], ops, where)
            layer = Layer(op, inputs, options, name=entry["name"])
    else:
        raise FormatError(f"{where}: unknown layer kind {kind!r}")
    layer.source = entry.get("source", "?")
    return layer


def _lookup(name, ops, where):
    """The op a saved graph names: from ``ops`` (by the saved name, or its last dotted part:
    ``'__main__.scale'`` or ``'scale'``), else from the registry."""
    ops = ops or {}
    chosen = ops.get(name, ops.get(name.rsplit(".", 1)[-1]))
    if chosen is not None:
        return chosen
    try:
        return lookup(name)
    except KeyError as error:
        short = name.rsplit(".", 1)[-1]
        raise UnknownOp(f"{where}: {error.args[0]}, or pass it: Net.load(path, "
                        f"ops={{{short!r}: {short}}}) (an op defined in a notebook or a "
                        f"script, module '__main__', can only be given this way)") from None


def _describe_loop(loop, arrays):
    """A loop's inner graph (``op.loop_graph``: its outputs, placeholders, kind and axes) as
    its own list of layers, which the loop's placeholders and outputs index."""
    order = topological_order(list(loop.outputs) + ([loop.stop] if loop.stop is not None
                                                    else [])
                              + list(loop.states) + [loop.t] + list(loop.outside))
    index = {id(layer): k for k, layer in enumerate(order)}
    return {"kind": loop.kind, "axes": list(loop.axes),
            "layers": [_describe_layer(layer, index, arrays) for layer in order],
            "outputs": [index[id(x)] for x in loop.outputs],
            "states": [index[id(x)] for x in loop.states], "t": index[id(loop.t)],
            "outside": [index[id(x)] for x in loop.outside],
            "stop": index[id(loop.stop)] if loop.stop is not None else None}


def _build_loop(description, arrays, where, ops=None):
    """The inner graph of a saved loop, checked: an entry of the file's own kinds and indices,
    Inputs where the loop loads values."""
    if not isinstance(description, dict) or description.get("kind") not in ("For", "While"):
        raise FormatError(f"{where}: a loop entry must describe a For or While loop")
    layers = []
    for entry in description["layers"]:
        layers.append(_build_layer(entry, layers, arrays, where, ops))

    def inputs(indices):
        chosen = [_earlier(layers, k, where) for k in indices]
        if not all(isinstance(x, Input) for x in chosen):
            raise FormatError(f"{where}: a loop's state, t and outside values must be Inputs")
        return chosen

    states, outside = inputs(description["states"]), inputs(description["outside"])
    axes = description["axes"]
    if not (isinstance(axes, list) and len(axes) == len(states) and all(
            a is None or (isinstance(a, int) and not isinstance(a, bool)) for a in axes)):
        raise FormatError(f"{where}: a loop's axes must be one int or null per state")
    stop = description["stop"]
    # (kind, outputs, states, t, outside, stop, axes): autonn.loops.LoopGraph's fields
    return (description["kind"], [_earlier(layers, k, where) for k in description["outputs"]],
            states, inputs([description["t"]])[0], outside,
            _earlier(layers, stop, where) if stop is not None else None, axes)


# ---------------------------------------------------------------------- values
def _encode(value, arrays, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return {"__scalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays, where) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays, where), _encode(v, arrays, where)]
                             for k, v in value.items()]}
    if isinstance(value, slice):
        return {"__slice__": [_encode(v, arrays, where)
                              for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).str}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.asarray(backend.to_numpy(value))
        if array.dtype == object:
            raise TypeError(f"Net.save: {where} is an object array, which cannot be saved "
                            f"without pickle")
        key = f"array{len(arrays)}"
        arrays[key] = array
        return {"__array__": key}
    raise TypeError(f"Net.save: {where} has type {type(value).__name__}, which cannot be saved")


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
    if "__slice__" in value:
        return slice(*(_decode(v, arrays) for v in value["__slice__"]))
    if "__ellipsis__" in value:
        return Ellipsis
    if "__scalar__" in value:
        return np.dtype(value["dtype"]).type(value["__scalar__"])
    if "__dtype__" in value:
        return np.dtype(value["__dtype__"])
    if "__array__" in value:
        return arrays[value["__array__"]]
    raise ValueError(f"Net.load: unknown encoded value {value!r}")
