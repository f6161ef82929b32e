"""DagNN: MatConvNet's explicit-graph wrapper, on autonn's graph and tape.

A :class:`DagNN` holds named layers, each a *block* (``Conv``, ``Pooling``, ``ReLU``, ...) reading
named variables and parameters and writing named variables, as MatConvNet's ``dagnn.DagNN``::

    dag = DagNN()
    dag.add_layer('conv1', Conv(size=(5, 5, 1, 20)), 'input', 'x1', ['conv1f', 'conv1b'])
    dag.add_layer('relu1', ReLU(), 'x1', 'x2')
    dag.add_layer('loss', Loss(), ['x2', 'label'], 'objective')
    dag.init_params()
    dag.eval({'input': images, 'label': labels}, derivatives={'objective': 1.0})
    dag.vars[dag.get_var_index('x1')].value, dag.params[0].der

``eval`` translates the graph into autonn Layers (:func:`to_layers`), compiles it once into a
tape (recompiled only when the graph changes) and runs it; values and derivatives are then copied
into ``vars`` and ``params``. ``an.Net(dag)`` and ``an.Layer.from_dagnn(dag)`` give the same graph.

Conventions are autonn's (SPEC section 0): NCHW data, conv filters (K, C/G, kh, kw), convt filters
(C, K, kh, kw), 0-based labels; block options are MatConvNet's in snake_case (``pool_size``,
``has_bias``, ``num_groups``, ``no_root``...). Sizes given to blocks as ``size`` keep
MatConvNet's order ``(kh, kw, cin, cout)`` as ``nn.conv(size=...)`` does. ``var_sizes`` returns
NCHW shapes. Receptive fields are 0-based (see :mod:`autonn.receptive_fields`).
"""

import numpy as np

from . import nn, registration, simplenn
from .backend import array_module
from .layer import Input, Param, topological_order
from .net import Net
from .nn.normalization import bnorm_given_moments_op
from .ops import Op
from .receptive_fields import receptive_fields
from .shapes import variable_shapes


# ============================================================================== the wrapper
class Var:
    """A variable of a DagNN: ``name``, ``value`` and ``der`` (after ``eval``), ``fanin`` and
    ``fanout`` (how many layers write and read it) and ``precious`` (kept by conserve_memory)."""

    def __init__(self, name):
        self.name, self.value, self.der = name, None, None
        self.fanin = self.fanout = 0
        self.precious = False

    def __repr__(self):
        return f"Var({self.name!r}, value={_shape_text(self.value)})"


class ParamEntry:
    """A parameter of a DagNN: ``name``, ``value``, ``der``, ``learning_rate``, ``weight_decay``,
    ``train_method`` ('gradient', 'average' or 'none') and ``fanout``."""

    def __init__(self, name):
        self.name, self.value, self.der = name, None, None
        self.learning_rate, self.weight_decay, self.train_method = 1.0, 1.0, "gradient"
        self.fanout = 0

    def __repr__(self):
        return f"Param({self.name!r}, value={_shape_text(self.value)})"


class LayerEntry:
    """A layer of a DagNN: ``name``, ``block`` and the names of its ``inputs``, ``outputs`` and
    ``params``."""

    def __init__(self, name, block, inputs, outputs, params):
        self.name, self.block = name, block
        self.inputs, self.outputs, self.params = list(inputs), list(outputs), list(params)

    def __repr__(self):
        return (f"Layer({self.name!r}, {self.block!r}, inputs={self.inputs}, "
                f"outputs={self.outputs}, params={self.params})")


class DagNN:
    """MatConvNet's DAG network wrapper (``dagnn.DagNN``).

    Attributes: ``layers``, ``vars``, ``params`` (lists of :class:`LayerEntry`, :class:`Var`,
    :class:`ParamEntry`), ``meta`` (dict: classes, normalization...), ``mode`` ('normal' or
    'test') and ``conserve_memory`` (release the values and derivatives of variables that no
    later step needs; set ``vars[i].precious = True`` to keep a variable's value).
    """

    def __init__(self, meta=None):
        self.layers, self.vars, self.params = [], [], []
        self.meta = dict(meta or {})
        self.mode = "normal"
        self.conserve_memory = False
        self._version = 0      # bumped by every structural change: the compiled net is stale
        self._compiled = {}

    # ---------------------------------------------------------------------- building
    def add_layer(self, name, block, inputs, outputs, params=()):
        """Add a layer computing ``outputs = block(inputs, params)``; names may be one string or
        a list. Variables and parameters are created on first mention."""
        if not isinstance(block, Block):
            raise TypeError(f"DagNN.add_layer: block of layer {name!r} must be a dagnn block "
                            f"(Conv, ReLU, ...), got {type(block).__name__}")
        if any(layer.name == name for layer in self.layers):
            raise ValueError(f"DagNN.add_layer: there is already a layer named {name!r}")
        inputs, outputs, params = _names(inputs), _names(outputs), _names(params)
        for where, value in (("inputs", inputs), ("outputs", outputs)):
            if not value:
                raise ValueError(f"DagNN.add_layer: layer {name!r} needs at least one of "
                                 f"{where}")
        block.check_arity(name, len(inputs), len(outputs), len(params))
        self.layers.append(LayerEntry(name, block, inputs, outputs, params))
        try:
            self._check_writers()
        except ValueError:
            self.layers.pop()
            raise
        self._rebuild()

    def remove_layer(self, name):
        """Remove a layer (or a list of layers) by name; variables and parameters that nothing
        uses any more disappear with it."""
        for one in _names(name):
            self.layers.pop(self.get_layer_index(one))
        self._rebuild()

    def rename_layer(self, old, new):
        if any(layer.name == new for layer in self.layers):
            raise ValueError(f"DagNN.rename_layer: there is already a layer named {new!r}")
        self.layers[self.get_layer_index(old)].name = new
        self._rebuild()

    def rename_var(self, old, new):
        """Rename a variable everywhere it is read or written (merging into ``new`` if it
        exists, as MatConvNet)."""
        self.get_var_index(old)
        before = [(layer.inputs, layer.outputs) for layer in self.layers]
        for layer in self.layers:
            layer.inputs = [new if v == old else v for v in layer.inputs]
            layer.outputs = [new if v == old else v for v in layer.outputs]
        try:
            self._check_writers()
        except ValueError:
            for layer, (inputs, outputs) in zip(self.layers, before):
                layer.inputs, layer.outputs = inputs, outputs
            raise
        self._rebuild(renamed_vars={old: new})

    def rename_param(self, old, new):
        index = self.get_param_index(old)
        if any(p.name == new for p in self.params):
            raise ValueError(f"DagNN.rename_param: there is already a parameter named {new!r}")
        self.params[index].name = new
        for layer in self.layers:
            layer.params = [new if p == old else p for p in layer.params]
        self._rebuild()

    def set_layer_inputs(self, layer, inputs):
        self._set_layer_names(layer, "inputs", inputs)

    def set_layer_outputs(self, layer, outputs):
        self._set_layer_names(layer, "outputs", outputs)

    def set_layer_params(self, layer, params):
        self._set_layer_names(layer, "params", params)

    def _set_layer_names(self, layer, what, names):
        entry = self.layers[self.get_layer_index(layer)]
        counts = {"inputs": len(entry.inputs), "outputs": len(entry.outputs),
                  "params": len(entry.params)}
        counts[what] = len(_names(names))
        entry.block.check_arity(entry.name, counts["inputs"], counts["outputs"],
                                counts["params"])
        before = getattr(entry, what)
        setattr(entry, what, _names(names))
        try:
            self._check_writers()
        except ValueError:
            setattr(entry, what, before)
            raise
        self._rebuild()

    def init_params(self, seed=None):
        """Initialise every parameter from its block (``block.init_params()``: Xavier/He-style
        filters, zero biases, unit batch-norm gains)."""
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            values = layer.block.init_params(rng)
            for name, value in zip(layer.params, values):
                self.params[self.get_param_index(name)].value = value
            for name, (learning_rate, weight_decay, method) in zip(
                    layer.params, layer.block.param_settings()):
                entry = self.params[self.get_param_index(name)]
                entry.learning_rate, entry.weight_decay = learning_rate, weight_decay
                entry.train_method = method
        self._compiled.clear()

    # ---------------------------------------------------------------------- lookup
    def get_layer_index(self, name):
        return _index(self.layers, name, "layer", "get_layer_index")

    def get_var_index(self, name):
        return _index(self.vars, name, "variable", "get_var_index")

    def get_param_index(self, name):
        return _index(self.params, name, "parameter", "get_param_index")

    def get_inputs(self):
        """Names of the variables no layer writes (the network's inputs)."""
        return [v.name for v in self.vars if v.fanin == 0]

    def get_outputs(self):
        """Names of the variables no layer reads (the network's outputs)."""
        return [v.name for v in self.vars if v.fanout == 0]

    # ---------------------------------------------------------------------- evaluation
    def eval(self, inputs, derivatives=None):
        """Forward (and, with ``derivatives``, backward) pass.

        inputs : {'name': array} or MatConvNet's flat list ``['input', x, 'label', c]``.
        derivatives : {'output name': projection} (or a flat list), e.g. ``{'objective': 1.0}``.
        Afterwards ``vars[i].value``, ``vars[i].der`` and ``params[i].der`` hold the results.
        """
        feed = _pairs(inputs, "DagNN.eval", "inputs")
        ders = _pairs(derivatives, "DagNN.eval", "derivatives") if derivatives is not None \
            else None
        test_mode = self.mode == "test"
        if self.mode not in ("normal", "test"):
            raise ValueError(f"DagNN.eval: mode must be 'normal' or 'test', got {self.mode!r}")
        compiled = self._compile(test_mode)
        net = compiled["net"]
        for entry, param in compiled["params"]:
            param.value = entry.value
        for name in feed:
            if name not in net.inputs:
                raise ValueError(f"DagNN.eval: {name!r} is not an input of the network; inputs "
                                 f"are {sorted(net.inputs)}")
        missing = sorted(set(net.inputs) - set(feed))
        if missing:
            raise ValueError(f"DagNN.eval: no value for inputs {missing}; inputs are "
                             f"{sorted(net.inputs)}")
        if ders is None:
            net.eval(feed, mode="forward")
        else:
            outputs = [layer.name for layer in net.outputs]
            for name in ders:
                if name not in self.get_outputs():
                    raise ValueError(f"DagNN.eval: derivatives given for {name!r}, which is not "
                                     f"an output of the network (outputs: {outputs})")
            net.eval(feed, der_output=[ders.get(name) for name in outputs])
        for var in self.vars:
            var.value = _value_or_none(net, var.name)
            var.der = _der_or_none(net, var.name) if ders is not None else None
        if ders is not None:
            for entry, param in compiled["params"]:
                entry.der = getattr(param, "der", None)
        return self

    def _compile(self, test_mode):
        key = (self._version, test_mode, self.conserve_memory)
        if self._compiled.get(test_mode, {}).get("key") != key:
            outputs, params = _build(self, test_mode)
            # Precious variables survive conserve_memory: the net keeps its outputs' values.
            precious = [v.name for v in self.vars if v.precious and v.fanout > 0]
            if precious:
                layers = _layers_by_name(outputs)
                outputs = outputs + [layers[name] for name in precious if name in layers]
            net = Net(*outputs, optimize=False, conserve_memory=self.conserve_memory,
                      _name_from=False)
            self._compiled[test_mode] = {"key": key, "net": net, "params": params}
        return self._compiled[test_mode]

    # ---------------------------------------------------------------------- geometry
    def var_sizes(self, input_sizes):
        """The NCHW shape of every variable (a list aligned with ``vars``; None where unknown)
        for inputs of the given sizes ({'input': (N, C, H, W)} or a flat list)."""
        sizes = _pairs(input_sizes, "DagNN.var_sizes", "input_sizes")
        outputs, _ = _build(self, False)
        layers = _layers_by_name(outputs)
        unknown = [name for name in sizes if name not in layers
                   or not isinstance(layers[name], Input)]
        if unknown:
            raise ValueError(f"DagNN.var_sizes: {unknown} are not inputs of the network; "
                             f"inputs are {self.get_inputs()}")
        shapes = variable_shapes(outputs, {layers[n]: s for n, s in sizes.items()},
                                 where="DagNN.var_sizes")
        return [shapes.get(layers.get(v.name)) for v in self.vars]

    def var_receptive_fields(self, var):
        """Receptive field of every variable with respect to variable ``var`` (a list aligned
        with ``vars``: a ReceptiveField, or None for variables that do not depend on ``var`` or
        whose dependence is not a sliding window); MatConvNet's ``getVarReceptiveFields``."""
        self.get_var_index(var)
        outputs, _ = _build(self, False)
        layers = _layers_by_name(outputs)
        fields = receptive_fields(outputs, layers[var])
        return [fields.get(layers.get(v.name)) for v in self.vars]

    # ---------------------------------------------------------------------- display
    def print(self, input_sizes=None, file=None):
        """Print the layers (block, inputs, outputs, params), the parameters and the variables
        (with their sizes when ``input_sizes`` is given)."""
        print(self.describe(input_sizes), file=file)

    def describe(self, input_sizes=None):
        """The text that :meth:`print` prints."""
        lines = [_table(["layer", "block", "inputs", "outputs", "params"],
                        [[layer.name, type(layer.block).__name__, ", ".join(layer.inputs),
                          ", ".join(layer.outputs), ", ".join(layer.params)]
                         for layer in self.layers]), ""]
        lines.append(_table(["param", "size", "learning rate", "weight decay", "method"],
                            [[p.name, _shape_text(p.value), f"{p.learning_rate:g}",
                              f"{p.weight_decay:g}", p.train_method] for p in self.params]))
        sizes = self.var_sizes(input_sizes) if input_sizes is not None else None
        rows = []
        for k, var in enumerate(self.vars):
            size = sizes[k] if sizes is not None else None
            rows.append([var.name, "×".join(map(str, size)) if size else "",
                         _bytes_text(4 * int(np.prod(size))) if size else "",
                         str(var.fanin), str(var.fanout)])
        lines += ["", _table(["var", "size", "memory", "fanin", "fanout"], rows)]
        return "\n".join(lines)

    def __str__(self):
        return self.describe()

    def __repr__(self):
        return (f"<DagNN: {len(self.layers)} layers, {len(self.vars)} vars, "
                f"{len(self.params)} params, inputs {self.get_inputs()}, outputs "
                f"{self.get_outputs()}>")

    # ---------------------------------------------------------------------- conversion
    @staticmethod
    def from_simplenn(net):
        """A DagNN computing the same function as a SimpleNN network, named as MatConvNet's
        ``fromSimpleNN``: variables ``input``, ``x1``...; labels ``label``; weights
        ``<layer>f``/``<layer>b`` (conv) and ``<layer>m``/``<layer>b``/``<layer>x`` (bnorm)."""
        tidied = simplenn.tidy(net)
        dag = DagNN(meta=tidied["meta"])
        previous, label_count = "input", 0
        for index, layer in enumerate(tidied["layers"]):
            block, extra_inputs = _block_from_simplenn(layer, index)
            inputs = [previous]
            if extra_inputs:
                label_count += 1
                inputs.append("label" if label_count == 1 else f"label{label_count}")
            output = f"x{index + 1}"
            weights = layer.get("weights") or []
            suffixes = simplenn.WEIGHT_SUFFIXES.get(layer["type"], ())
            params = [f"{layer['name']}{suffixes[k]}" for k, w in enumerate(weights)
                      if w is not None and np.size(w) > 0]
            if isinstance(block, (Conv, ConvTranspose)):
                block.has_bias = len(params) > 1
            dag.add_layer(layer["name"], block, inputs, output, params)
            rates = simplenn._per_weight(layer.get("learning_rate"), len(weights))
            decays = simplenn._per_weight(layer.get("weight_decay"), len(weights))
            for k, name in enumerate(params):
                entry = dag.params[dag.get_param_index(name)]
                value = np.asarray(weights[k]) if not hasattr(weights[k], "shape") \
                    else weights[k]
                if isinstance(block, (Conv, ConvTranspose)) and k == 1:
                    value = value.reshape(-1)
                entry.value = value
                entry.learning_rate, entry.weight_decay = rates[k], decays[k]
                entry.train_method = "average" if isinstance(block, BatchNorm) and k == 2 \
                    else "gradient"
            previous = output
        return dag

    # ---------------------------------------------------------------------- bookkeeping
    def _check_writers(self):
        writers = {}
        for layer in self.layers:
            for name in layer.outputs:
                if name in writers:
                    raise ValueError(f"DagNN: variable {name!r} would be written by two layers, "
                                     f"{writers[name]!r} and {layer.name!r}")
                writers[name] = layer.name

    def _rebuild(self, renamed_vars=None):
        """Recompute vars, params, fan-ins and fan-outs from the layers, keeping the values
        of entries that survive."""
        renamed_vars = renamed_vars or {}
        old_vars = {renamed_vars.get(v.name, v.name): v for v in self.vars}
        old_params = {p.name: p for p in self.params}
        self.vars, self.params = [], []
        var_index, param_index = {}, {}

        def var(name):
            if name not in var_index:
                entry = old_vars.get(name) or Var(name)
                entry.name, entry.fanin, entry.fanout = name, 0, 0
                var_index[name] = entry
                self.vars.append(entry)
            return var_index[name]

        for layer in self.layers:
            for name in layer.inputs:
                var(name).fanout += 1
            for name in layer.outputs:
                v = var(name)
                v.fanin += 1
            for name in layer.params:
                if name not in param_index:
                    entry = old_params.get(name) or ParamEntry(name)
                    entry.fanout = 0
                    param_index[name] = entry
                    self.params.append(entry)
                param_index[name].fanout += 1
        self._version += 1
        self._compiled.clear()


# ============================================================================== conversion
def to_layers(dag, test_mode=False):
    """The implicit graph of a DagNN: the Layers of its outputs (variables no layer reads)."""
    outputs, _ = _build(dag, test_mode)
    return outputs


def _build(dag, test_mode):
    """Translate ``dag`` into Layers. Returns (output Layers, [(ParamEntry, Param)])."""
    values = {}
    for name in dag.get_inputs():
        values[name] = Input(name)
    params = {}
    pairs = []
    for entry in dag.params:
        if entry.value is None:
            raise ValueError(f"DagNN: parameter {entry.name!r} has no value; call init_params() "
                             f"or set params[{dag.get_param_index(entry.name)}].value")
        param = Param(entry.value, name=entry.name, learning_rate=entry.learning_rate,
                      weight_decay=entry.weight_decay, train_method=entry.train_method)
        params[entry.name] = param
        pairs.append((entry, param))
    pending = list(dag.layers)
    while pending:
        ready = [layer for layer in pending if all(v in values for v in layer.inputs)]
        if not ready:
            missing = {v for layer in pending for v in layer.inputs if v not in values}
            raise ValueError(f"DagNN: layers {[layer.name for layer in pending]} can never run: "
                             f"variables {sorted(missing)} are part of a cycle")
        for layer in ready:
            pending.remove(layer)
            inputs = [values[v] for v in layer.inputs]
            try:
                outputs = layer.block.forward(inputs, [params[p] for p in layer.params],
                                              test_mode=test_mode)
            except (TypeError, ValueError) as error:
                raise type(error)(f"DagNN: layer {layer.name!r} ({type(layer.block).__name__})"
                                  f": {error}") from None
            if len(outputs) != len(layer.outputs):
                raise ValueError(f"DagNN: layer {layer.name!r} gives {len(outputs)} outputs for "
                                 f"{len(layer.outputs)} output variables {layer.outputs}")
            for name, output in zip(layer.outputs, outputs):
                if output.name is not None:  # an identity (dropout in test mode): own node
                    output = +output
                output.name = name
                values[name] = output
    return [values[name] for name in dag.get_outputs()], pairs


def _block_from_simplenn(layer, index):
    """The DagNN block of a SimpleNN layer, and whether it reads labels."""
    kind = layer["type"]
    weights = layer.get("weights") or []
    if kind == "conv":
        k, c, h, w = np.shape(weights[0])
        return Conv(size=(h, w, c, k), stride=layer["stride"], pad=layer["pad"],
                    dilate=layer["dilate"]), False
    if kind == "convt":
        c, k, h, w = np.shape(weights[0])
        return ConvTranspose(size=(h, w, k, c), upsample=layer["upsample"], crop=layer["crop"],
                             num_groups=int(layer["num_groups"])), False
    if kind == "pool":
        return Pooling(method=layer["method"], pool_size=layer["pool"], stride=layer["stride"],
                       pad=layer["pad"]), False
    if kind == "relu":
        return ReLU(leak=layer["leak"]), False
    if kind == "sigmoid":
        return Sigmoid(), False
    if kind == "softmax":
        return SoftMax(), False
    if kind in ("normalize", "lrn"):
        return LRN(param=layer["param"]), False
    if kind == "spnorm":
        return SpatialNorm(param=layer["param"]), False
    if kind == "bnorm":
        return BatchNorm(num_channels=int(np.size(weights[0])) if weights else None,
                         epsilon=layer["epsilon"]), False
    if kind == "dropout":
        return DropOut(rate=layer["rate"]), False
    if kind == "softmaxloss":
        return Loss(loss="softmaxlog"), True
    if kind == "loss":
        return Loss(loss=layer["loss"], topk=layer["topk"]), True
    if kind == "pdist":
        return PDist(p=layer["p"], no_root=layer["no_root"], epsilon=layer["epsilon"],
                     aggregate=layer["aggregate"]), True
    raise ValueError(f"DagNN.from_simplenn: layer {index} ('{layer['name']}') of type {kind!r} "
                     f"has no DagNN block (custom layers cannot be converted)")


# ============================================================================== blocks
class Block:
    """Base of the DagNN blocks: options as attributes, ``forward`` building Layers.

    ``forward(inputs, params, test_mode)`` receives the input Layers and parameter Params and
    returns a list of output Layers. ``init_params(rng)`` gives initial parameter values,
    ``param_settings()`` their (learning rate, weight decay, train method).
    """

    num_params = (0,)            # allowed parameter counts
    num_inputs = (1,)            # allowed input counts (None: any number)
    num_outputs = 1

    def check_arity(self, layer, inputs, outputs, params):
        name = type(self).__name__
        if self.num_inputs is not None and inputs not in self.num_inputs:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} takes "
                             f"{' or '.join(map(str, self.num_inputs))} inputs, got {inputs}")
        if outputs != self.num_outputs:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} has {self.num_outputs} "
                             f"outputs, got {outputs}")
        if params not in self.num_params:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} takes "
                             f"{' or '.join(map(str, self.num_params))} params, got {params}")

    def forward(self, inputs, params, test_mode=False):
        raise NotImplementedError

    def init_params(self, rng):
        return []

    def param_settings(self):
        return []

    def options(self):
        return dict(vars(self))

    def __repr__(self):
        text = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({text})"


class Conv(Block):
    """Convolution: inputs [x], params [filters (K, C/G, kh, kw), biases (K,)] (or [filters]
    with ``has_bias=False``). ``size = (kh, kw, cin, cout)`` sizes the initial filters."""

    num_params = (1, 2)

    def __init__(self, size=None, has_bias=True, stride=1, pad=0, dilate=1):
        self.size, self.has_bias = _size(size), has_bias
        self.stride, self.pad, self.dilate = stride, pad, dilate

    def forward(self, inputs, params, test_mode=False):
        bias = params[1] if len(params) > 1 else None
        return [nn.conv(inputs[0], params[0], bias, stride=self.stride, pad=self.pad,
                        dilate=self.dilate)]

    def init_params(self, rng):
        kh, kw, cin, cout = _need_size(self)
        # MatConvNet's dagnn.Conv.initParams: Gaussian with std sqrt(2 / fan-in) (He).
        filters = (rng.standard_normal((cout, cin, kh, kw)) * np.sqrt(2 / (kh * kw * cin)))
        values = [filters.astype(np.float32)]
        if self.has_bias:
            values.append(np.zeros(cout, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (2.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class ConvTranspose(Block):
    """Transposed convolution: params [filters (C, K, kh, kw), biases (K*G,)];
    ``size = (kh, kw, K, C)`` as ``nn.convt``."""

    num_params = (1, 2)

    def __init__(self, size=None, has_bias=True, upsample=1, crop=0, num_groups=1):
        self.size, self.has_bias = _size(size), has_bias
        self.upsample, self.crop, self.num_groups = upsample, crop, int(num_groups)

    def forward(self, inputs, params, test_mode=False):
        bias = params[1] if len(params) > 1 else None
        return [nn.convt(inputs[0], params[0], bias, upsample=self.upsample, crop=self.crop,
                         num_groups=self.num_groups)]

    def init_params(self, rng):
        kh, kw, k, c = _need_size(self)
        filters = rng.standard_normal((c, k, kh, kw)) * np.sqrt(2 / (kh * kw * k))
        values = [filters.astype(np.float32)]
        if self.has_bias:
            values.append(np.zeros(k * self.num_groups, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (2.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class Pooling(Block):
    """Max or average pooling over ``pool_size`` windows."""

    def __init__(self, method="max", pool_size=(1, 1), stride=1, pad=0):
        self.method, self.pool_size, self.stride, self.pad = method, pool_size, stride, pad

    def forward(self, inputs, params, test_mode=False):
        return [nn.pool(inputs[0], self.pool_size, method=self.method, stride=self.stride,
                        pad=self.pad)]


class ReLU(Block):
    def __init__(self, leak=0.0):
        self.leak = float(leak)

    def forward(self, inputs, params, test_mode=False):
        return [nn.relu(inputs[0], leak=self.leak)]


class Sigmoid(Block):
    def forward(self, inputs, params, test_mode=False):
        return [nn.sigmoid(inputs[0])]


class SoftMax(Block):
    def forward(self, inputs, params, test_mode=False):
        return [nn.softmax(inputs[0])]


class LRN(Block):
    """Cross-channel normalisation, ``param = (depth, kappa, alpha, beta)``."""

    def __init__(self, param=(5, 1.0, 0.0001 / 5, 0.75)):
        self.param = tuple(float(v) for v in np.ravel(param))

    def forward(self, inputs, params, test_mode=False):
        return [nn.normalize(inputs[0], self.param)]


class SpatialNorm(Block):
    """Spatial normalisation, ``param = (ph, pw, alpha, beta)``."""

    def __init__(self, param=(2, 2, 10.0, 2.0)):
        self.param = tuple(float(v) for v in np.ravel(param))

    def forward(self, inputs, params, test_mode=False):
        return [nn.spnorm(inputs[0], self.param)]


class BatchNorm(Block):
    """Batch normalisation: params [gain (C,), bias (C,), moments (C, 2)]; normal mode uses the
    batch's moments (and reports them as the moments' derivative), test mode the stored ones."""

    num_params = (3,)

    def __init__(self, num_channels=None, epsilon=1e-5):
        self.num_channels, self.epsilon = num_channels, float(epsilon)

    def forward(self, inputs, params, test_mode=False):
        gain, bias, moments = params
        if test_mode:
            return [bnorm_given_moments_op(inputs[0], gain, bias, moments)]
        return [nn.bnorm(inputs[0], gain, bias, moments=moments, epsilon=self.epsilon)]

    def init_params(self, rng):
        if self.num_channels is None:
            raise ValueError("BatchNorm.init_params: set num_channels")
        c = int(self.num_channels)
        moments = np.concatenate([np.zeros((c, 1)), np.ones((c, 1))], axis=1)
        return [np.ones(c, np.float32), np.zeros(c, np.float32), moments.astype(np.float32)]

    def param_settings(self):
        return [(2.0, 0.0, "gradient"), (1.0, 0.0, "gradient"), (0.1, 0.0, "average")]


class DropOut(Block):
    def __init__(self, rate=0.5):
        self.rate = float(rate)

    def forward(self, inputs, params, test_mode=False):
        return [inputs[0] if test_mode else nn.dropout(inputs[0], rate=self.rate)]


class Loss(Block):
    """Loss (``vl_nnloss``): inputs [x, labels] or [x, labels, instance_weights]."""

    num_inputs = (2, 3)

    def __init__(self, loss="softmaxlog", topk=5, threshold=0.0, normalise=True):
        self.loss, self.topk = loss, int(topk)
        self.threshold, self.normalise = float(threshold), bool(normalise)

    def forward(self, inputs, params, test_mode=False):
        weights = inputs[2] if len(inputs) > 2 else None
        return [nn.loss(inputs[0], inputs[1], loss=self.loss, instance_weights=weights,
                        topk=self.topk, threshold=self.threshold, normalise=self.normalise)]


class Concat(Block):
    """Concatenation along ``axis`` (1: channels, MatConvNet's dim 3)."""

    num_inputs = None

    def __init__(self, axis=1):
        self.axis = int(axis)

    def forward(self, inputs, params, test_mode=False):
        return [nn.concat(list(inputs), axis=self.axis)]


class Sum(Block):
    """Sum of all inputs."""

    num_inputs = None

    def forward(self, inputs, params, test_mode=False):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return [total]


class Scale(Block):
    """``y = x * scale + bias`` with the scale and bias broadcast to x: taken from params
    [scale, bias] (``size`` NCHW, e.g. (1, C, 1, 1)) or from the inputs [x, scale(, bias)]."""

    num_inputs = (1, 2, 3)
    num_params = (0, 1, 2)

    def __init__(self, size=None, has_bias=True):
        self.size, self.has_bias = (None if size is None else tuple(int(s) for s in size)), \
            has_bias

    def forward(self, inputs, params, test_mode=False):
        terms = list(inputs[1:]) + list(params)
        y = inputs[0] * terms[0]
        if len(terms) > 1:
            y = y + terms[1]
        return [y]

    def init_params(self, rng):
        if self.size is None:
            raise ValueError("Scale.init_params: set size (NCHW, e.g. (1, C, 1, 1))")
        values = [np.ones(self.size, np.float32)]
        if self.has_bias:
            values.append(np.zeros(self.size, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (1.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class Crop(Block):
    """Crop the first input to the spatial size of the second, starting ``crop = (top,
    left)`` pixels in (reduced if the first input is too small, as MatConvNet)."""

    num_inputs = (2,)

    def __init__(self, crop=(0, 0)):
        self.crop = tuple(int(c) for c in np.ravel(crop))[:2]

    def forward(self, inputs, params, test_mode=False):
        return [crop_like_op(inputs[0], inputs[1], offset=self.crop)]


class PDist(Block):
    """p-distance between inputs [x, x0] (or [x, x0, instance_weights])."""

    num_inputs = (2, 3)

    def __init__(self, p=2.0, no_root=False, epsilon=1e-6, aggregate=False):
        self.p, self.no_root = float(p), bool(no_root)
        self.epsilon, self.aggregate = float(epsilon), bool(aggregate)

    def forward(self, inputs, params, test_mode=False):
        weights = inputs[2] if len(inputs) > 2 else None
        return [nn.pdist(inputs[0], inputs[1], self.p, no_root=self.no_root,
                         epsilon=self.epsilon, aggregate=self.aggregate,
                         instance_weights=weights)]


class ROIPooling(Block):
    """Region-of-interest pooling: inputs [x, rois] (rows [image, x1, y1, x2, y2], 0-based)."""

    num_inputs = (2,)

    def __init__(self, method="max", subdivisions=(6, 6), transform=1 / 16):
        self.method, self.subdivisions, self.transform = method, subdivisions, transform

    def forward(self, inputs, params, test_mode=False):
        return [nn.roipool(inputs[0], inputs[1], method=self.method,
                           subdivisions=self.subdivisions, transform=self.transform)]


class BilinearSampler(Block):
    """Bilinear sampling: inputs [x, grid (N, Ho, Wo, 2) with y first]."""

    num_inputs = (2,)

    def forward(self, inputs, params, test_mode=False):
        return [nn.bilinearsampler(inputs[0], inputs[1])]


class AffineGridGenerator(Block):
    """Sampling grid of size (ho, wo) from affine transforms theta."""

    def __init__(self, ho=1, wo=1):
        self.ho, self.wo = int(ho), int(wo)

    def forward(self, inputs, params, test_mode=False):
        return [nn.affinegrid(inputs[0], (self.ho, self.wo))]


BLOCKS = {cls.__name__: cls for cls in (
    Conv, ConvTranspose, Pooling, ReLU, Sigmoid, SoftMax, LRN, SpatialNorm, BatchNorm, DropOut,
    Loss, Concat, Sum, Scale, Crop, PDist, ROIPooling, BilinearSampler, AffineGridGenerator)}


# ============================================================================== crop_like op
def _crop_window(x_shape, ref_shape, offset):
    """MatConvNet's dagnn.Crop.getAdjustedCrop: the offset shrinks when x is too small."""
    top = max(0, min(x_shape[2] - ref_shape[2], offset[0]))
    left = max(0, min(x_shape[3] - ref_shape[3], offset[1]))
    return (slice(None), slice(None), slice(top, top + ref_shape[2]),
            slice(left, left + ref_shape[3]))


def _crop_like_forward(x, ref, *, offset):
    if x.shape[2] < ref.shape[2] or x.shape[3] < ref.shape[3]:
        raise ValueError(f"Crop: input of shape {tuple(x.shape)} is smaller than the reference "
                         f"of shape {tuple(ref.shape)}")
    return x[_crop_window(x.shape, ref.shape, offset)].copy()


def _crop_like_backward(dzdy, y, x, ref, *, offset):
    dx = array_module(dzdy).zeros(x.shape, dtype=dzdy.dtype)
    dx[_crop_window(x.shape, ref.shape, offset)] = dzdy
    return dx


crop_like_op = Op("crop_like", _crop_like_forward, vjps=(_crop_like_backward, None),
                  shape=lambda x_shape, ref_shape, *, offset: (x_shape[0], x_shape[1],
                                                               ref_shape[2], ref_shape[3]),
                  doc="dagnn.Crop: crop x to the spatial size of ref from (top, left) = offset.")


# ============================================================================== helpers
def _names(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"DagNN: names must be strings, got {name!r}")
    return names


def _index(entries, name, what, where):
    for k, entry in enumerate(entries):
        if entry.name == name:
            return k
    raise KeyError(f"DagNN.{where}: no {what} named {name!r}; {what}s are "
                   f"{[e.name for e in entries]}")


def _pairs(value, where, argument):
    """A dict from a dict or MatConvNet's flat list ['name', value, ...]."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        if len(value) % 2 or not all(isinstance(n, str) for n in value[::2]):
            raise ValueError(f"{where}: {argument} must be a dict or a flat list ['name', value, "
                             f"'name', value, ...], got {len(value)} entries")
        return dict(zip(value[::2], value[1::2]))
    raise TypeError(f"{where}: {argument} must be a dict or a flat list ['name', value, ...], "
                    f"got {type(value).__name__}")


def _size(size):
    return None if size is None else tuple(int(s) for s in np.ravel(size))


def _need_size(block):
    if block.size is None or len(block.size) != 4:
        raise ValueError(f"{type(block).__name__}.init_params: set size=(kh, kw, cin, cout) to "
                         f"initialise the parameters, got {block.size}")
    return block.size


def _layers_by_name(outputs):
    return {layer.name: layer for layer in topological_order(outputs) if layer.name}


def _value_or_none(net, name):
    try:
        return net.value(name)
    except (KeyError, ValueError):
        return None


def _der_or_none(net, name):
    try:
        return net.der(name)
    except (KeyError, ValueError):
        return None


def _table(header, rows):
    table = [header] + rows
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shape_text(value):
    if value is None:
        return "-"
    return "×".join(str(n) for n in np.shape(value)) or "scalar"


def _bytes_text(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1024


registration.provide("dagnn_layers", to_layers)
