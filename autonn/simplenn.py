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
- ``bnorm``: weights [gain, bias, moments] (missing moments: zeros), epsilon [1e-5]; normal mode
  uses the batch's moments and reports them as the derivative of the moments (as MatConvNet),
  test mode uses the stored ones;
- ``dropout``: rate [0.5] (the identity in test mode);
- ``softmaxloss``: class (labels);  ``loss``: class, loss ['softmaxlog'], instance_weights, topk;
- ``pdist``: class (the target x0), p [2], no_root [False], epsilon [1e-3], aggregate [False];
- ``custom``: forward, and optionally backward. ``forward(x)`` is an autonn op (``@an.op``), or
  a plain function of arrays with ``backward(x, dzdy) -> dzdx``, or (without backward) a function
  built from autonn operations, which then needs no derivative of its own.

Every layer also takes ``name`` [``layer<i>``], ``learning_rate`` and ``weight_decay`` (one
multiplier per weight [1]) and ``precious``. In a converted network (``an.Net(net)``) the
variables are named as MatConvNet's ``dagnn.DagNN.fromSimpleNN`` names them, but for the input,
``input`` as with its canonical names (``DagNN.from_simplenn`` names it ``x0``): ``x1`` ...
``x<n>`` (the output of layer i is ``x<i+1>`` counting layers from 0), ``label`` for the labels
of a loss layer (``label1``, ``label2``... for further ones), and the weights ``<name>f``,
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
from .backend import array_module
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
    "pdist": {"class": None, "p": 2.0, "no_root": False, "epsilon": 1e-3, "aggregate": False,
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
    (the last record holds the network's output), ``dzdx`` the derivative with respect to ``x``,
    ``dzdw`` the list of derivatives of layer i's weights (when a derivative was asked) and
    ``aux`` the values the layer before computed besides ``x`` (``{name: value}``, such as the
    mask of a dropout layer, MatConvNet's ``res(i+1).aux``), which ``skip_forward`` reuses."""

    __slots__ = ("x", "dzdx", "dzdw", "aux")

    def __init__(self, x=None, dzdx=None, dzdw=None, aux=None):
        self.x, self.dzdx, self.dzdw = x, dzdx, list(dzdw or [])
        self.aux = dict(aux or {})

    def __repr__(self):
        return (f"Record(x={_shape_text(self.x)}, dzdx={_shape_text(self.dzdx)}, "
                f"dzdw=[{', '.join(_shape_text(d) for d in self.dzdw)}])")


def run(net, x, dzdy=None, conserve_memory=False, back_prop_depth=np.inf, skip_forward=False,
        res=None, *, mode="normal", labels=None):
    """Evaluate a SimpleNN network, MatConvNet's ``res = vl_simplenn(net, x, dzdy, res, ...)``.

    x : (N, C, H, W) input (unused with ``skip_forward``). dzdy : the projection of the
    output's derivative (1.0 for a loss), or None (or MATLAB's empty ``[]``) for a forward pass
    only. mode : 'normal' (dropout active, batch normalisation on the batch's moments) or
    'test'. labels : the labels of loss and pdist layers whose ``'class'`` is not set (one array
    for all of them).

    conserve_memory : release what ``vl_simplenn`` releases. In a forward pass, every ``x``
    but the output's, unless the layer that computed it is a loss or is marked
    ``'precious': True``; with a derivative, every ``x`` and ``dzdx`` strictly between the
    input and the output, unless the layer that computed it is precious. The values are
    released while the tape runs, not only in the result.
    back_prop_depth : back-propagate through the last N layers only (a positive number, ``inf``
        for all): the records before them get no ``dzdx`` and their layers no ``dzdw``.
    skip_forward, res : run only the backward pass, from the forward values (``x`` and
        ``aux``) of ``res``, the records of an earlier ``run`` of the same network (needs
        ``dzdy``; ``res`` itself is not changed).

    Returns a list of ``len(layers) + 1`` :class:`Record`.

    The network is translated into autonn Layers and compiled into a tape: no second engine.
    The layers before the back-propagated ones get a tape of their own, forward only.
    """
    if mode not in ("normal", "test"):
        raise ValueError(f"simplenn.run: mode must be 'normal' or 'test', got {mode!r}")
    test_mode = mode == "test"
    dzdy = None if _empty(dzdy) else dzdy      # vl_simplenn's isempty(dzdy), isempty(res)
    res = None if _empty(res) else res
    layers = tidy(net)["layers"]
    n = len(layers)
    depth = _back_prop_depth(back_prop_depth)
    skip_forward = _flag("skip_forward", skip_forward)
    conserve_memory = _flag("conserve_memory", conserve_memory)
    if skip_forward and dzdy is None:
        raise ValueError("simplenn.run: skip_forward runs only the backward pass, which needs "
                         "dzdy (got dzdy=None)")
    if skip_forward and res is None:
        raise ValueError("simplenn.run: skip_forward needs res=, the records of an earlier run "
                         "holding the forward values")
    if skip_forward:
        _check_records(res, n)
    elif not hasattr(x, "shape") or len(x.shape) != 4:
        raise ValueError(f"simplenn.run: x must be an (N, C, H, W) array, got "
                         f"{_shape_text(x) if hasattr(x, 'shape') else type(x).__name__}")
    # The first back-propagated layer (MatConvNet's backPropLim, 0-based); n: none.
    first = n if dzdy is None else (0 if depth >= n else n - int(depth))
    records = [Record() for _ in range(n + 1)]

    if skip_forward:
        for record, given in zip(records, res):
            record.x, record.aux = given.x, dict(given.aux)
    else:
        records[0].x = x
        if first > 0:  # the layers before the back-propagated ones: forward only
            kept = [k for k in range(1, first + 1) if k == first or _kept_forward(layers, k)]
            before = _Segment(net, 0, first, test_mode, kept, conserve_memory)
            before.forward(x, labels)
            before.read(records, derivatives=False)

    if first < n:
        # Back-propagated layers: precious outputs keep their values and derivatives.
        kept = [k for k in range(first + 1, n) if _precious(layers[k - 1])] + [n]
        after = _Segment(net, first, n, test_mode, kept, conserve_memory, derivatives=True)
        if skip_forward:
            after.backward_from(records, labels, dzdy)
        else:
            after.forward(records[first].x, labels, dzdy=dzdy)
        after.read(records, derivatives=True)

    if conserve_memory:
        _forget(records, layers, first, dzdy is not None, skip_forward)
    return records


def compile_keeping(outputs, kept, conserve_memory):
    """A Net computing ``outputs`` whose ``conserve_memory`` releases neither the values nor the
    derivatives of the Layers in ``kept`` (MatConvNet's precious variables). The kept Layers
    that are not outputs follow ``outputs`` among the net's outputs, to be seeded with no
    derivative (None)."""
    extra = [k for k in dict.fromkeys(kept) if all(k is not o for o in outputs)]
    net = Net(*outputs, *extra, optimize=False, conserve_memory=conserve_memory,
              _name_from=False)
    if conserve_memory and kept:
        # Outputs keep their values; the memory plan still frees every derivative but those of
        # the leaves once consumed, so the kept ones are taken off its lists.
        names = {name: slot for slot, name in reversed(list(enumerate(net.tape.names)))}
        slots = {names[layer.name] for layer in kept}
        for step in net.tape.backward:
            if any(s in slots for s in step.free_ders):
                step.free_ders = tuple(s for s in step.free_ders if s not in slots)
    return net


class _Segment:
    """Layers ``start`` .. ``stop - 1`` of a network on a tape of their own: the first reads an
    Input holding ``x<start>`` (``input`` for the network's input), the records ``kept`` (the
    indices of res) survive conserve_memory."""

    def __init__(self, net, start, stop, test_mode, kept, conserve_memory, derivatives=False):
        self.built = build(net, test_mode=test_mode, where="simplenn.run", start=start,
                           stop=stop)
        self.start = start
        built = self.built
        _name_internals(built)
        self.net = compile_keeping([built.output], [built.variables[k - start] for k in kept],
                                   conserve_memory)
        self.derivatives = derivatives

    def feed(self, x, labels):
        feed = {self.built.input.name: x}
        for label_input, index, value in self.built.labels:
            if value is None:
                value = labels
            if value is None:
                raise ValueError(f"simplenn.run: layer {index} "
                                 f"('{self.built.layers[index]['name']}') needs labels: set its "
                                 f"'class' or pass labels=")
            feed[label_input.name] = np.asarray(value) if isinstance(value, (list, tuple)) \
                else value
        return feed

    def forward(self, x, labels, dzdy=None):
        feed = self.feed(x, labels)
        if dzdy is None:
            self.net.eval(feed, mode="forward")
        else:
            self.net.eval(feed, der_output=self._seeds(dzdy))

    def backward_from(self, records, labels, dzdy):
        """The backward pass alone, from the forward values held by ``records``."""
        built, net, start = self.built, self.net, self.start
        missing = [f"res[{start + k}].x" for k, _ in enumerate(built.variables)
                   if records[start + k].x is None]
        for k, internals in enumerate(built.internals):
            aux = records[start + k + 1].aux
            missing += [f"res[{start + k + 1}].aux[{layer.name!r}]" for layer in internals
                        if aux.get(layer.name) is None]
        if missing:
            raise ValueError(f"simplenn.run: skip_forward needs the forward values "
                             f"{', '.join(missing)}, which res does not hold (a run with "
                             f"conserve_memory releases them)")
        # Loads the Params, constants and inputs as a forward pass would, without running it.
        net._load(self.feed(records[start].x, labels))
        for k, variable in enumerate(built.variables[1:], start + 1):
            net.set_value(variable, records[k].x)
        for k, internals in enumerate(built.internals):
            for layer in internals:
                net.set_value(layer, records[start + k + 1].aux[layer.name])
        net.eval({}, mode="backward", der_output=self._seeds(dzdy))

    def read(self, records, derivatives):
        built, start = self.built, self.start
        for k, variable in enumerate(built.variables):
            record = records[start + k]
            if k > 0:  # the segment's input is the record given to it
                record.x = _value_or_none(self.net, variable)
                record.aux = {layer.name: value for layer in built.internals[k - 1]
                              for value in [_value_or_none(self.net, layer)]
                              if value is not None}
            if derivatives:
                record.dzdx = self.net.der(variable)
                if k < len(built.params):
                    record.dzdw = [getattr(p, "der", None) for p in built.params[k]]

    def _seeds(self, dzdy):
        return [dzdy] + [None] * (len(self.net.outputs) - 1)


def _empty(value):
    return isinstance(value, (list, tuple)) and len(value) == 0


def _kept_forward(layers, k):
    """Whether a forward pass with conserve_memory keeps ``res[k].x`` (vl_simplenn keeps the
    output of a loss or of a precious layer)."""
    return layers[k - 1]["type"] in ("loss", "softmaxloss") or _precious(layers[k - 1])


def _forget(records, layers, first, derivatives, skip_forward):
    """vl_simplenn's conserve-memory rules, on the records (the tape already released the
    memory; this clears what the rules clear and the tape had to keep, such as the input)."""
    n = len(layers)
    if not skip_forward:
        for i in range(min(first, n)):  # layers not back-propagated: forget their input
            if i == 0 or not _kept_forward(layers, i):
                records[i].x = None
    if not derivatives:
        return
    for i in range(first, n - 1):  # after layer i's backward: its output, unless precious
        if not _precious(layers[i]):
            records[i + 1].x = records[i + 1].dzdx = None
    # MatConvNet reads the flag of the layer *reading* res(backPropLim) here.
    if first > 0 and not _precious(layers[first]):
        records[first].x = records[first].dzdx = None


def _precious(layer):
    return _flag(f"layer '{layer['name']}' precious", layer.get("precious", False))


def _flag(name, value):
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and value in (0, 1)):
        return bool(value)
    raise TypeError(f"simplenn.run: {name} must be True or False, got {value!r}")


def _back_prop_depth(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
        raise TypeError(f"simplenn.run: back_prop_depth must be a positive number of layers "
                        f"(or inf), got {value!r}")
    if not value > 0 or (np.isfinite(value) and value != int(value)):
        raise ValueError(f"simplenn.run: back_prop_depth must be a positive whole number of "
                         f"layers (or inf), got {value!r}")
    return value


def _check_records(res, n):
    if not isinstance(res, (list, tuple)) or not all(hasattr(r, "x") and hasattr(r, "aux")
                                                     for r in res):
        raise TypeError(f"simplenn.run: res must be the list of Records of an earlier run, got "
                        f"{type(res).__name__}")
    if len(res) != n + 1:
        raise ValueError(f"simplenn.run: res has {len(res)} records; a network of {n} layers "
                         f"has {n + 1}")


def _name_internals(built):
    """Name the values each layer computes besides its output (``x3_aux1``...): ``aux`` and
    ``skip_forward`` find them by name, whatever segment of the network a tape holds."""
    for index, internals in enumerate(built.internals, built.start + 1):
        for k, layer in enumerate(internals, 1):
            if layer.name is None:
                layer.name = f"x{index}_aux{k}"


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
            if kind == "bnorm" and len(full["weights"]) == 2 and full["weights"][0] is not None:
                # vl_simplenn_tidy: moments missing from an older net start at zero
                gain = full["weights"][0]
                gain = gain if hasattr(gain, "dtype") else np.asarray(gain, np.float32)
                full["weights"].append(array_module(gain).zeros((int(np.size(gain)), 2),
                                                                dtype=gain.dtype))
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
    network's meta, ``variables[i]`` the input of layer ``start + i`` (``variables[-1]`` the
    output), ``params[i]`` that layer's Params, ``nodes[i]`` the Layer of its main op (for
    geometry), ``internals[i]`` the Layers it computes besides its output (a dropout mask, the
    steps of a custom layer), ``labels`` (Input, layer index, value) for loss layers."""

    def __init__(self):
        self.layers, self.variables, self.params, self.nodes, self.labels = [], [], [], [], []
        self.internals = []
        self.input, self.meta, self.start = None, {}, 0

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


def build(net, *, test_mode=False, where="simplenn", x=None, input_name="input", start=0,
          stop=None):
    """Translate ``net`` into autonn Layers (see :class:`Built`). ``test_mode`` builds the test
    graph itself (bnorm on its stored moments, no dropout) so that derivatives asked in test mode
    are the derivatives of the test-mode function. ``x``: the Layer the first layer reads (by
    default a new Input named ``input_name``). ``start``, ``stop``: build only the layers
    ``start`` .. ``stop - 1`` (the names stay those of the whole network: the first reads an
    Input ``x<start>`` when ``start > 0``)."""
    net = tidy(net)
    built = Built()
    built.layers, built.meta, built.start = net["layers"], net["meta"], start
    stop = len(built.layers) if stop is None else stop
    if x is None:
        x = Input(input_name if start == 0 else f"x{start}")
    built.input = x
    built.variables.append(x)
    known = {id(x)}
    label_count = 0
    for index, layer in enumerate(built.layers[:stop]):
        kind = layer["type"]
        if "class" in DEFAULTS[kind]:  # counted over the whole network: the names stay put
            label_count += 1
        if index < start:
            continue
        params = _make_params(layer, where, index)
        node = None
        if "class" in DEFAULTS[kind]:
            # fromSimpleNN's getNewVarName: label, label1, label2...
            label = Input("label" if label_count == 1 else f"label{label_count - 1}")
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
        known.update(id(p) for p in params if p is not None)
        known.update(id(label_input) for label_input, _, _ in built.labels)
        built.internals.append(_internals(y, known))
        known.add(id(y))
        built.variables.append(y)
        built.params.append(params)
        built.nodes.append(node)
        x = y
    return built


def _internals(y, known):
    """The Layers computed on the way to ``y`` from the ``known`` ones (which this adds them
    to), leaving out multi-output nodes (their Selectors stand for their values)."""
    found, stack = [], [y]
    while stack:
        layer = stack.pop()
        for source in layer.inputs:
            if isinstance(source, Layer) and id(source) not in known \
                    and not isinstance(source, (Input, Param)):
                known.add(id(source))
                stack.append(source)
                if source.op is None or source.op.num_outputs == 1:
                    found.append(source)
    return found[::-1]


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
