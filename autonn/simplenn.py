"""SimpleNN: MatConvNet's chain networks, ``net.layers``, on autonn's graph and tape.

A network is a dict ``{'layers': [...], 'meta': {...}}`` (a bare list of layers is accepted too)
where each layer is a dict with a ``'type'`` and that type's options, as in MatConvNet::

    net = {'layers': [
        {'type': 'conv', 'weights': [w1, b1], 'stride': 1, 'pad': 0},
        {'type': 'pool', 'method': 'max', 'pool': (2, 2), 'stride': 2},
        {'type': 'relu'},
        {'type': 'conv', 'weights': [w2, b2]},
        {'type': 'softmaxloss', 'class': labels},
    ]}
    res = an.simplenn.run(net, images, dzdy=1.0)
    res[-1].x                 # the objective;  res[0].dzdx: derivative w.r.t. the images
    res[0].dzdw               # [dw1, db1], the derivatives of the first layer's weights

Arrays follow autonn's conventions (SPEC section 0): data NCHW; conv filters (K, C/G, kh, kw) and
biases (K,); convt filters (C, K, kh, kw); bnorm weights ``[gain (C,), bias (C,), moments (C, 2)]``;
labels 0-based. Geometric options take an int, a pair or (for pads and crops) a 4-tuple
``(top, bottom, left, right)``, the order of MatConvNet's own ``[top bottom left right]``.

Layer types and their options (defaults in brackets; MatConvNet's camelCase spellings such as
``noRoot``, ``numGroups``, ``instanceWeights`` are accepted and tidied to snake_case):

- ``conv``: weights [w, b], stride [1], pad [0], dilate [1];
- ``convt``: weights [w, b], upsample [1], crop [0], num_groups [1];
- ``pool``: pool [(1, 1)] (the window), method ['max'], stride [1], pad [0];
- ``relu``: leak [0];  ``sigmoid``;  ``softmax``;
- ``normalize`` / ``lrn``: param [(5, 1, 0.0001/5, 0.75)];  ``spnorm``: param [(2, 2, 10, 2)];
- ``bnorm``: weights [gain, bias, moments], epsilon [1e-5]; normal mode uses the batch's moments
  and reports them as the derivative of the moments (as MatConvNet), test mode uses the stored ones;
- ``dropout``: rate [0.5] (the identity in test mode);
- ``softmaxloss``: class (labels);  ``loss``: class, loss ['softmaxlog'], instance_weights, topk;
- ``pdist``: class (the target x0), p [2], no_root [False], epsilon [1e-6], aggregate [False];
- ``custom``: forward, and optionally backward. ``forward(x)`` is an autonn op (``@an.op``), or
  a plain function of arrays with ``backward(x, dzdy) -> dzdx``, or (without backward) a function
  built from autonn operations, which then needs no derivative of its own.

Every layer also takes ``name`` [``layer<i>``], ``learning_rate`` and ``weight_decay`` (one
multiplier per weight [1]) and ``precious``. In a converted network (``an.Net(net)``) the
variables are named as MatConvNet's ``dagnn.DagNN.fromSimpleNN`` names them: ``input``,
``x1`` ... ``x<n>`` (the output of layer i is ``x<i+1>`` counting layers from 0), ``label`` for
the labels of a loss layer (``label2``... for further ones), and the weights ``<name>f``,
``<name>b`` (conv, convt) and ``<name>m``, ``<name>b``, ``<name>x`` (bnorm).

Where things are: which autonn op each layer type builds is declared on the op
(``Op.matconvnet_types``, e.g. ``('conv', 'dagnn.Conv')``), and :data:`LAYER_TYPES` is read from
those declarations; this module adds what only SimpleNN knows (``vl_simplenn_tidy``'s defaults,
the names of the weights, how a layer dict calls its block). ``display`` takes sizes from the
ops' shape rules (:func:`autonn.shapes.variable_shapes`) and receptive fields from the ops'
rules (:mod:`autonn.receptive_fields`).
"""

import copy

import numpy as np

from . import nn
from .formatting import bytes_text, shape_text, text_table, value_shape_text
from .layer import Input, Layer, Param
from .net import Net
from .nn.normalization import bnorm_given_moments_op
from .ops import REGISTRY, Op
from .receptive_fields import receptive_fields
from .shapes import variable_shapes


def layer_type_op(kind):
    """The op that builds SimpleNN layers of type ``kind`` (the op declaring ``kind`` among its
    ``matconvnet_types``), or None (``'custom'``, or an unknown type)."""
    for op in REGISTRY.values():
        if kind in op.matconvnet_types:
            return op
    return None


# The types the ops declare (SimpleNN's are those without the 'dagnn.' of DagNN's blocks), and
# 'custom': a layer of the user's own functions.
LAYER_TYPES = tuple(dict.fromkeys(
    t for op in list(REGISTRY.values()) for t in op.matconvnet_types
    if not t.startswith("dagnn."))) + ("custom",)

# Options of each type with their defaults (vl_simplenn_tidy's); layers with a 'class' read
# labels.
DEFAULTS = {
    "conv": {"weights": [], "stride": 1, "pad": 0, "dilate": 1},
    "convt": {"weights": [], "upsample": 1, "crop": 0, "num_groups": 1},
    "pool": {"pool": (1, 1), "method": "max", "stride": 1, "pad": 0},
    "relu": {"leak": 0.0},
    "sigmoid": {},
    "softmax": {},
    "normalize": {"param": (5, 1.0, 0.0001 / 5, 0.75)},
    "lrn": {"param": (5, 1.0, 0.0001 / 5, 0.75)},
    "spnorm": {"param": (2, 2, 10.0, 2.0)},
    "bnorm": {"weights": [], "epsilon": 1e-5},
    "dropout": {"rate": 0.5},
    "softmaxloss": {"class": None},
    "loss": {"class": None, "loss": "softmaxlog", "instance_weights": None, "topk": 5},
    "pdist": {"class": None, "p": 2.0, "no_root": False, "epsilon": 1e-6, "aggregate": False,
              "instance_weights": None},
    "custom": {"backward": None},
}

# MatConvNet's spellings -> autonn's.
ALIASES = {"noRoot": "no_root", "numGroups": "num_groups", "instanceWeights": "instance_weights",
           "learningRate": "learning_rate", "weightDecay": "weight_decay"}

# Names of the weights of a layer in a converted network (fromSimpleNN's suffixes).
WEIGHT_SUFFIXES = {"conv": ("f", "b"), "convt": ("f", "b"), "bnorm": ("m", "b", "x")}


class Record:
    """One entry of ``run``'s result, MatConvNet's ``res(i)``: ``x`` is the input of layer i
    (the last record holds the network's output), ``dzdx`` the derivative with respect to ``x``
    and ``dzdw`` the list of derivatives of layer i's weights (when a derivative was asked)."""

    __slots__ = ("x", "dzdx", "dzdw")

    def __init__(self, x=None, dzdx=None, dzdw=None):
        self.x, self.dzdx, self.dzdw = x, dzdx, list(dzdw or [])

    def __repr__(self):
        return (f"Record(x={_shape_text(self.x)}, dzdx={_shape_text(self.dzdx)}, "
                f"dzdw=[{', '.join(_shape_text(d) for d in self.dzdw)}])")


def run(net, x, dzdy=None, conserve_memory=False, *, mode="normal", labels=None):
    """Evaluate a SimpleNN network, MatConvNet's ``res = vl_simplenn(net, x, dzdy)``.

    x : (N, C, H, W) input. dzdy : the projection of the output's derivative (1.0 for a loss),
    or None for a forward pass only. mode : 'normal' (dropout active, batch normalisation on the
    batch's moments) or 'test'. labels : the labels of loss and pdist layers whose ``'class'`` is
    not set (one array for all of them). With ``conserve_memory`` the intermediate ``x`` and
    ``dzdx`` that no later step needs are released (None), as MatConvNet's ``'conserveMemory'``.

    Returns a list of ``len(layers) + 1`` :class:`Record`.

    The network is translated into autonn Layers and compiled into a tape: no second engine.
    """
    if mode not in ("normal", "test"):
        raise ValueError(f"simplenn.run: mode must be 'normal' or 'test', got {mode!r}")
    built = build(net, test_mode=(mode == "test"), where="simplenn.run")
    if not hasattr(x, "shape") or len(x.shape) != 4:
        raise ValueError(f"simplenn.run: x must be an (N, C, H, W) array, got "
                         f"{_shape_text(x) if hasattr(x, 'shape') else type(x).__name__}")
    compiled = Net(built.output, optimize=False, conserve_memory=conserve_memory,
                   _name_from=False)
    feed = {built.input.name: x}
    for label_input, index, value in built.labels:
        if value is None:
            value = labels
        if value is None:
            raise ValueError(f"simplenn.run: layer {index} "
                             f"('{built.layers[index]['name']}') needs labels: set its 'class' "
                             f"or pass labels=")
        feed[label_input.name] = np.asarray(value) if isinstance(value, (list, tuple)) else value
    if dzdy is None:
        compiled.eval(feed, mode="forward")
    else:
        compiled.eval(feed, der_output=dzdy)

    records = []
    for index, variable in enumerate(built.variables):
        record = Record(_value_or_none(compiled, variable))
        if dzdy is not None:
            record.dzdx = compiled.der(variable)
            if index < len(built.params):
                record.dzdw = [getattr(p, "der", None) for p in built.params[index]]
        records.append(record)
    return records


def tidy(net):
    """A copy of ``net`` as ``{'layers': [...], 'meta': {...}}`` with every option filled in,
    MatConvNet's ``vl_simplenn_tidy``: default values and names (``layer<i>``), MatConvNet's
    camelCase option names and old ``filters``/``biases`` fields turned into autonn's, and
    unknown types or options rejected with an error naming the layer."""
    layers, meta = _split(net, "simplenn.tidy")
    tidied = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise TypeError(f"simplenn.tidy: layer {index} must be a dict with a 'type', got "
                            f"{type(layer).__name__}")
        layer = {ALIASES.get(k, k): v for k, v in layer.items()}
        kind = layer.get("type")
        if kind not in LAYER_TYPES:
            raise ValueError(f"simplenn.tidy: layer {index} has unknown type {kind!r}; known "
                             f"types are {', '.join(LAYER_TYPES)}")
        if "filters" in layer or "biases" in layer:  # MatConvNet's beta-era fields
            layer["weights"] = [layer.pop("filters", None), layer.pop("biases", None)]
        if kind == "custom" and not callable(layer.get("forward")):
            raise ValueError(f"simplenn.tidy: custom layer {index} needs a callable 'forward'")
        full = {"type": kind, "name": f"layer{index + 1}", "precious": False}
        full.update(copy.copy(DEFAULTS[kind]))
        full.update(layer)
        if full.get("name") is None:
            full["name"] = f"layer{index + 1}"
        if "weights" in full:
            full["weights"] = list(w for w in full["weights"])
            count = len(full["weights"])
            full.setdefault("learning_rate", (1.0,) * count)
            full.setdefault("weight_decay", (1.0,) * count)
        allowed = set(DEFAULTS[kind]) | {"type", "name", "precious", "learning_rate",
                                         "weight_decay", "forward", "backward", "opts"}
        unknown = sorted(set(full) - allowed)
        if unknown:
            raise ValueError(f"simplenn.tidy: layer {index} ('{full['name']}', type {kind!r}) "
                             f"has unknown options {unknown}; options of {kind!r} are "
                             f"{sorted(DEFAULTS[kind])}")
        tidied.append(full)
    return {"layers": tidied, "meta": copy.copy(meta)}


def display(net, input_size=None, *, file=None):
    """Print the table of ``vl_simplenn_display``: for each layer its type, filter support,
    filter channels, stride, pad, output size, receptive field (size, stride, offset, with
    respect to the input, 0-based) and output memory. Returns the rows as a list of dicts.

    input_size : (N, C, H, W) or (C, H, W); without it sizes and memory are not shown.
    """
    built = build(net, where="simplenn.display")
    shapes = {}
    if input_size is not None:
        input_size = tuple(int(n) for n in input_size)
        if len(input_size) == 3:
            input_size = (1,) + input_size
        if len(input_size) != 4:
            raise ValueError(f"simplenn.display: input_size must be (N, C, H, W) or (C, H, W), "
                             f"got {input_size}")
        shapes = variable_shapes([built.output], {built.input: input_size},
                                 where="simplenn.display")
    fields = receptive_fields([built.output], built.input)
    rows = []
    for index, layer in enumerate(built.layers):
        output = built.variables[index + 1]
        node = built.nodes[index]
        kind = layer["type"]
        row = {"layer": index + 1, "name": layer["name"], "type": kind,
               "support": "", "filter": "", "stride": "", "pad": "",
               "size": "", "rf_size": "", "rf_stride": "", "rf_offset": "", "memory": ""}
        if kind in ("conv", "convt", "pool") and node is not None:
            options = node.options
            if kind == "pool":
                row["support"] = _pair(options["size"])
            elif layer["weights"]:
                w = np.shape(layer["weights"][0])
                row["support"] = _pair(w[2:])
                row["filter"] = f"{w[1]}→{w[0]}" if kind == "conv" else f"{w[0]}→{w[1]}"
            stride = options.get("stride", options.get("upsample"))
            row["stride"] = _pair(stride) if kind != "convt" else f"1/{_pair(stride)}"
            pad = tuple(options.get("pad", options.get("crop")))
            row["pad"] = str(pad[0]) if len(set(pad)) == 1 else "×".join(map(str, pad))
        shape = shapes.get(output)
        if shape is not None:
            row["size"] = shape_text(shape, scalar="1")
            row["memory"] = bytes_text(4 * int(np.prod(shape)), space=False)
        field = fields.get(output)
        if field is not None:
            row["rf_size"] = _pair(field.size)
            row["rf_stride"] = _pair(field.stride)
            row["rf_offset"] = _pair(field.offset)
        rows.append(row)
    _print_table(rows, input_size, file)
    return rows


# =============================================================================== building
class Built:
    """A SimpleNN network translated into Layers: ``layers`` the tidied layers, ``meta`` the
    network's meta, ``variables[i]`` the input of layer i (``variables[-1]`` the output),
    ``params[i]`` layer i's Params, ``nodes[i]`` the Layer of its main op (for geometry),
    ``labels`` (Input, layer index, value) for loss layers."""

    def __init__(self):
        self.layers, self.variables, self.params, self.nodes, self.labels = [], [], [], [], []
        self.input, self.meta = None, {}

    @property
    def output(self):
        return self.variables[-1]


def is_simplenn(network):
    """Whether ``network`` looks like a SimpleNN net: a dict with 'layers' holding dicts, or a
    non-empty list of dicts with a 'type'."""
    if isinstance(network, dict) and isinstance(network.get("layers"), (list, tuple)):
        return all(isinstance(layer, dict) for layer in network["layers"])
    return (isinstance(network, (list, tuple)) and len(network) > 0
            and all(isinstance(layer, dict) and "type" in layer for layer in network))


def to_layers(net):
    """The implicit graph of a SimpleNN network: a list holding its output Layer."""
    return [build(net, where="Net").output]


def build(net, *, test_mode=False, where="simplenn", x=None):
    """Translate ``net`` into autonn Layers (see :class:`Built`). ``test_mode`` builds the test
    graph itself (bnorm on its stored moments, no dropout) so that derivatives asked in test mode
    are the derivatives of the test-mode function. ``x``: the Layer the first layer reads (by
    default a new Input named ``input``)."""
    net = tidy(net)
    built = Built()
    built.layers, built.meta = net["layers"], net["meta"]
    x = built.input = Input("input") if x is None else x
    built.variables.append(x)
    label_count = 0
    for index, layer in enumerate(built.layers):
        kind = layer["type"]
        params = _make_params(layer, where, index)
        node = None
        if "class" in DEFAULTS[kind]:
            label_count += 1
            label = Input("label" if label_count == 1 else f"label{label_count}")
            built.labels.append((label, index, layer["class"]))
        try:
            if kind == "conv":
                node = y = nn.conv(x, params[0], _bias(params), stride=layer["stride"],
                                   pad=layer["pad"], dilate=layer["dilate"])
            elif kind == "convt":
                node = y = nn.convt(x, params[0], _bias(params), upsample=layer["upsample"],
                                    crop=layer["crop"], num_groups=int(layer["num_groups"]))
            elif kind == "pool":
                node = y = nn.pool(x, layer["pool"], method=layer["method"],
                                   stride=layer["stride"], pad=layer["pad"])
            elif kind == "relu":
                y = nn.relu(x, leak=float(layer["leak"]))
            elif kind == "sigmoid":
                y = nn.sigmoid(x)
            elif kind == "softmax":
                y = nn.softmax(x)
            elif kind in ("normalize", "lrn"):
                y = nn.normalize(x, tuple(layer["param"]))
            elif kind == "spnorm":
                y = nn.spnorm(x, tuple(layer["param"]))
            elif kind == "bnorm":
                y = _bnorm(x, params, layer, test_mode)
            elif kind == "dropout":
                y = x if test_mode else nn.dropout(x, rate=float(layer["rate"]))
            elif kind == "softmaxloss":
                y = nn.loss(x, label, loss="softmaxlog")
            elif kind == "loss":
                y = nn.loss(x, label, loss=layer["loss"], topk=int(layer["topk"]),
                            instance_weights=layer["instance_weights"])
            elif kind == "pdist":
                y = nn.pdist(x, label, float(layer["p"]), no_root=bool(layer["no_root"]),
                             epsilon=float(layer["epsilon"]), aggregate=bool(layer["aggregate"]),
                             instance_weights=layer["instance_weights"])
            else:
                y = _custom(x, layer, index, where)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: layer {index} ('{layer['name']}', type {kind!r}): "
                              f"{error}") from None
        if y is x:  # dropout in test mode: the identity, but each variable needs its own node
            y = x * 1.0
        y.name = f"x{index + 1}"
        built.variables.append(y)
        built.params.append(params)
        built.nodes.append(node)
        x = y
    return built


def _make_params(layer, where, index):
    weights = layer.get("weights") or []
    kind = layer["type"]
    suffixes = WEIGHT_SUFFIXES.get(kind, tuple(f"w{k + 1}" for k in range(len(weights))))
    learning = _per_weight(layer.get("learning_rate"), len(weights))
    decay = _per_weight(layer.get("weight_decay"), len(weights))
    params = []
    for k, value in enumerate(weights):
        if value is None or np.size(value) == 0:
            params.append(None)
            continue
        if not hasattr(value, "shape"):
            value = np.asarray(value, dtype=np.float32)
        if kind in ("conv", "convt") and k == 0 and value.ndim != 4:
            raise ValueError(f"{where}: layer {index} ('{layer['name']}', {kind}): filters must "
                             f"be 4-D, (K, C, kh, kw) for conv or (C, K, kh, kw) for convt; got "
                             f"shape {tuple(value.shape)}")
        if kind in ("conv", "convt") and k == 1:
            value = value.reshape(-1)
        method = "average" if (kind == "bnorm" and k == 2) else "gradient"
        suffix = suffixes[k] if k < len(suffixes) else f"w{k + 1}"
        params.append(Param(value, name=f"{layer['name']}{suffix}", learning_rate=learning[k],
                            weight_decay=decay[k], train_method=method))
    if kind in ("conv", "convt") and (not params or params[0] is None):
        raise ValueError(f"{where}: layer {index} ('{layer['name']}', {kind}) has no filters "
                         f"in 'weights'")
    return params


def _bnorm(x, params, layer, test_mode):
    if len(params) != 3 or any(p is None for p in params):
        raise ValueError(f"bnorm needs weights [gain (C,), bias (C,), moments (C, 2)], got "
                         f"{len(params)} weights")
    gain, bias, moments = params
    if test_mode:
        return bnorm_given_moments_op(x, gain, bias, moments)
    return nn.bnorm(x, gain, bias, moments=moments, epsilon=float(layer["epsilon"]))


def _custom(x, layer, index, where):
    forward, backward = layer["forward"], layer.get("backward")
    if isinstance(forward, Op):
        return forward(x)
    if backward is None:
        y = forward(x)
        if not isinstance(y, Layer):
            raise TypeError(f"custom forward without a backward must be built from autonn "
                            f"operations (return a Layer when given one), got "
                            f"{type(y).__name__}")
        return y
    op = Op(f"simplenn.custom.{layer['name']}", lambda x: forward(x),
            lambda x, dzdy: backward(x, dzdy), input_names=("x",))
    return op(x)


def _bias(params):
    return params[1] if len(params) > 1 else None


def _per_weight(values, count):
    if values is None:
        return (1.0,) * count
    values = tuple(float(v) for v in np.ravel(values))
    if len(values) == 1:
        values = values * count
    return values + (1.0,) * max(0, count - len(values))


def _split(net, where):
    if isinstance(net, dict):
        if "layers" not in net:
            raise ValueError(f"{where}: a SimpleNN net is a dict with 'layers' (and 'meta'), "
                             f"got keys {sorted(net)}")
        return list(net["layers"]), dict(net.get("meta") or {})
    if isinstance(net, (list, tuple)):
        return list(net), {}
    raise TypeError(f"{where}: expected a SimpleNN net (dict with 'layers' or a list of layer "
                    f"dicts), got {type(net).__name__}")


def _value_or_none(compiled, variable):
    try:
        return compiled.value(variable)
    except ValueError:  # released by conserve_memory
        return None


# =============================================================================== display
def _print_table(rows, input_size, file):
    columns = [("layer", "layer"), ("name", "name"), ("type", "type"), ("support", "support"),
               ("filter", "filt dim"), ("stride", "stride"), ("pad", "pad"),
               ("size", "out size"), ("rf_size", "rf size"), ("rf_stride", "rf stride"),
               ("rf_offset", "rf offset"), ("memory", "memory")]
    lines = text_table([title for _, title in columns],
                       [[row[key] for key, _ in columns] for row in rows])
    if input_size is not None:
        total = 4 * int(np.prod(input_size)) + sum(
            4 * int(np.prod([int(n) for n in row["size"].split("×")])) for row in rows
            if row["size"])
        lines.append(f"input {'×'.join(str(n) for n in input_size)}; data memory (float32, "
                     f"values only): {bytes_text(total, space=False)}")
    print("\n".join(lines), file=file)


def _pair(values):
    values = tuple(values)
    if len(values) == 2 and values[0] == values[1]:
        return f"{values[0]:g}"
    return "×".join(f"{v:g}" for v in values)


def _shape_text(value):
    return value_shape_text(value, unknown="None")
