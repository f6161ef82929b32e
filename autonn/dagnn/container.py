"""The DagNN container: layers, variables and parameters by name, on autonn's graph and tape.

See :mod:`autonn.dagnn` for the wrapper as a whole. :class:`DagNN` keeps the graph as MatConvNet
does (``layers``, ``vars``, ``params``, fan-ins and fan-outs) and, for ``eval``, ``var_sizes``
and ``var_receptive_fields``, translates it into autonn Layers (:func:`to_layers`): the sizes
then come from the ops' shape rules (:func:`autonn.shapes.variable_shapes`) and the receptive
fields from the ops' rules (:mod:`autonn.receptive_fields`). The blocks are in
:mod:`autonn.dagnn.blocks`.
"""

import numpy as np

from .. import simplenn
from ..formatting import bytes_text, shape_text, text_table, value_shape_text
from ..layer import Input, Param, topological_order
from ..receptive_fields import receptive_fields
from ..shapes import variable_shapes
from .blocks import Block, Loss, SoftMax, block_from_simplenn

__all__ = ["DagNN", "LayerEntry", "ParamEntry", "Var", "to_layers"]


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
    ``params``; ``input_indexes``, ``output_indexes`` and ``param_indexes`` are their positions
    in the DagNN's ``vars`` and ``params`` (MatConvNet's ``inputIndexes``..., 0-based), kept up
    to date by every edit made through the DagNN."""

    def __init__(self, name, block, inputs, outputs, params):
        self.name, self.block = name, block
        self.inputs, self.outputs, self.params = list(inputs), list(outputs), list(params)
        self.input_indexes, self.output_indexes, self.param_indexes = [], [], []

    def __repr__(self):
        return (f"Layer({self.name!r}, {self.block!r}, inputs={self.inputs}, "
                f"outputs={self.outputs}, params={self.params})")


class DagNN:
    """MatConvNet's DAG network wrapper (``dagnn.DagNN``).

    Attributes: ``layers``, ``vars``, ``params`` (lists of :class:`LayerEntry`, :class:`Var`,
    :class:`ParamEntry`), ``meta`` (dict: classes, normalization...), ``mode`` ('normal' or
    'test') and ``conserve_memory`` (MatConvNet's ``conserveMemory``; False by default, so that
    every value can be read after ``eval``). With ``conserve_memory``, as MatConvNet's
    ``forwardAdvanced`` and ``backwardAdvanced``: a forward pass releases each variable after
    its last reader, inputs included, so only the outputs are left; a pass with derivatives
    keeps everything through the forward pass and releases the value and derivative of each
    layer's outputs as its backward runs, so only the inputs (and the parameters' derivatives)
    are left. ``vars[i].precious = True`` keeps a variable's value and derivative.
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
        block.attach([self.params[k] for k in self.layers[-1].param_indexes])

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
        ders = ders or None  # MatConvNet: an empty derOutputs is a forward pass
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
                                     f"an output of the network (outputs: "
                                     f"{self.get_outputs()})")
            net.eval(feed, der_output=[ders.get(name) for name in outputs])
        released = self._released(ders) if self.conserve_memory else set()
        for var in self.vars:
            if var.name in released:
                var.value = var.der = None
                if var.fanin == 0:  # an input: the tape kept it, as it keeps every leaf
                    net.set_value(var.name, None)
                continue
            var.value = _value_or_none(net, var.name)
            var.der = _der_or_none(net, var.name) if ders is not None else None
        if ders is not None:
            for entry, param in compiled["params"]:
                entry.der = getattr(param, "der", None)
        return self

    def reset(self):
        """Clear the values and derivatives of the variables and the derivatives of the
        parameters (MatConvNet's ``reset``), here and in the compiled tapes."""
        for var in self.vars:
            var.value = var.der = None
        for param in self.params:
            param.der = None
        for compiled in self._compiled.values():
            net = compiled["net"]
            slots = set(net.vars)
            for var in self.vars:
                if var.name in slots:
                    net.set_value(var.name, None)
            for _, param in compiled["params"]:
                param.der = None

    def _released(self, ders):
        """Names of the variables conserve_memory releases: after a forward pass, every one
        some layer reads (forwardAdvanced); after a backward pass, the outputs of the layers
        whose backward ran (backwardAdvanced: those all of whose outputs got a derivative).
        Precious variables are kept."""
        if ders is None:
            return {v.name for v in self.vars if v.fanout > 0 and not v.precious}
        has_der = {name for name, der in ders.items() if der is not None}
        released = set()
        for layer in reversed(_execution_order(self)):
            if all(name in has_der for name in layer.outputs):
                has_der.update(layer.inputs)
                released.update(layer.outputs)
        precious = {v.name for v in self.vars if v.precious}
        return released - precious

    def _compile(self, test_mode):
        precious = tuple(v.name for v in self.vars if v.precious)
        key = (self._version, test_mode, bool(self.conserve_memory), precious)
        if self._compiled.get(test_mode, {}).get("key") != key:
            outputs, params = _build(self, test_mode)
            # Precious variables survive conserve_memory, values and derivatives.
            layers = _layers_by_name(outputs)
            kept = [layers[name] for name in precious if name in layers]
            net = simplenn.compile_keeping(outputs, kept, bool(self.conserve_memory))
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
        lines = text_table(["layer", "block", "inputs", "outputs", "params"],
                           [[layer.name, type(layer.block).__name__, ", ".join(layer.inputs),
                             ", ".join(layer.outputs), ", ".join(layer.params)]
                            for layer in self.layers]) + [""]
        lines += text_table(["param", "size", "learning rate", "weight decay", "method"],
                            [[p.name, _shape_text(p.value), f"{p.learning_rate:g}",
                              f"{p.weight_decay:g}", p.train_method] for p in self.params])
        sizes = self.var_sizes(input_sizes) if input_sizes is not None else None
        rows = []
        for k, var in enumerate(self.vars):
            size = sizes[k] if sizes is not None else None
            rows.append([var.name, shape_text(size, scalar=""),
                         bytes_text(4 * int(np.prod(size)), space=False) if size else "",
                         str(var.fanin), str(var.fanout)])
        lines += [""] + text_table(["var", "size", "memory", "fanin", "fanout"], rows)
        return "\n".join(lines)

    def __str__(self):
        return self.describe()

    def __repr__(self):
        return (f"<DagNN: {len(self.layers)} layers, {len(self.vars)} vars, "
                f"{len(self.params)} params, inputs {self.get_inputs()}, outputs "
                f"{self.get_outputs()}>")

    # ---------------------------------------------------------------------- conversion
    @staticmethod
    def from_simplenn(net, canonical_names=False):
        """A DagNN computing the same function as a SimpleNN network, named as MatConvNet's
        ``fromSimpleNN``: variables ``x0`` (the input), ``x1``, ... (``x<i>`` the output of
        the i-th layer, counting from 1); the labels of loss layers ``label`` (then ``label1``,
        ``label2``...); weights ``<layer>f``/``<layer>b`` (conv, convt) and ``<layer>m``/
        ``<layer>b``/``<layer>x`` (bnorm; the moments learn at rate 0.1 unless the layer gives
        learning rates, without weight decay if it gives weight decays, as MatConvNet).
        ``meta['inputs']``, if any, names its first input after the network's.

        canonical_names : rename as MatConvNet's ``'CanonicalNames'`` option: the input
            ``input``, the output of each SoftMax ``prob`` (``prob1``...) and its input
            ``prediction`` (``prediction1``...), the output of each Loss ``objective`` and its
            input, unless it is a ``prob``, ``prediction``. (MatConvNet names every Loss output
            ``objective``, which two losses cannot share: the second is ``objective1``.)
        """
        # simplenn.build names the variables, labels and weights, and sets the weights'
        # learning rates, decays and train methods; the blocks read the layers' options.
        built = simplenn.build(net, where="DagNN.from_simplenn", input_name="x0")
        raw = net["layers"] if isinstance(net, dict) else list(net)
        dag = DagNN(meta=built.meta)
        labels = {index: label.name for label, index, _ in built.labels}
        for index, layer in enumerate(built.layers):
            block = block_from_simplenn(layer, index)
            inputs = [built.variables[index].name] + ([labels[index]] if index in labels else [])
            params = [p for p in built.params[index] if p is not None]
            dag.add_layer(layer["name"], block, inputs, built.variables[index + 1].name,
                          [p.name for p in params])
            for param in params:
                entry = dag.params[dag.get_param_index(param.name)]
                entry.value, entry.train_method = param.value, param.train_method
                entry.learning_rate, entry.weight_decay = param.learning_rate, param.weight_decay
            if layer["type"] == "bnorm" and len(params) == 3:
                # dagnn.BatchNorm's attach sets the moments' learning rate to 0.1, which only a
                # learningRate of the layer overrides; fromSimpleNN zeroes their weight decay
                # when the layer has a weightDecay
                given = set(raw[index]) if isinstance(raw[index], dict) else set()
                moments = dag.params[dag.get_param_index(params[2].name)]
                if not given & {"learning_rate", "learningRate"}:
                    moments.learning_rate = 0.1
                if given & {"weight_decay", "weightDecay"}:
                    moments.weight_decay = 0.0
        if canonical_names:
            dag._canonical_names()
        if "inputs" in dag.meta and dag.layers:
            dag.meta["inputs"] = _first_input_named(dag.meta["inputs"], dag.layers[0].inputs[0])
        return dag

    def _canonical_names(self):
        """fromSimpleNN's CanonicalNames renaming, in its order."""
        for index, layer in enumerate(self.layers):
            if index == 0:
                self.rename_var(layer.inputs[0], "input")
            if isinstance(layer.block, SoftMax):
                self.rename_var(layer.outputs[0], self._new_var_name("prob"))
                self.rename_var(layer.inputs[0], self._new_var_name("prediction"))
            if isinstance(layer.block, Loss):
                self.rename_var(layer.outputs[0], self._new_var_name("objective"))
                if not layer.inputs[0].startswith("prob"):
                    self.rename_var(layer.inputs[0], self._new_var_name("prediction"))

    def _new_var_name(self, prefix):
        """``prefix``, or ``prefix1``, ``prefix2``... the first no variable has (MatConvNet's
        getNewVarName)."""
        names = {v.name for v in self.vars}
        name, t = prefix, 0
        while name in names:
            t += 1
            name = f"{prefix}{t}"
        return name

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
        var_at = {v.name: k for k, v in enumerate(self.vars)}
        param_at = {p.name: k for k, p in enumerate(self.params)}
        for layer in self.layers:
            layer.input_indexes = [var_at[name] for name in layer.inputs]
            layer.output_indexes = [var_at[name] for name in layer.outputs]
            layer.param_indexes = [param_at[name] for name in layer.params]
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
    for layer in _execution_order(dag):
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


def _execution_order(dag):
    """The layers in an order that runs each after the writers of its inputs (MatConvNet's
    executionOrder: the order of ``layers`` where it allows)."""
    known = set(dag.get_inputs())
    order, pending = [], list(dag.layers)
    while pending:
        ready = [layer for layer in pending if all(v in known for v in layer.inputs)]
        if not ready:
            missing = {v for layer in pending for v in layer.inputs if v not in known}
            raise ValueError(f"DagNN: layers {[layer.name for layer in pending]} can never run: "
                             f"variables {sorted(missing)} are part of a cycle")
        for layer in ready:
            pending.remove(layer)
            known.update(layer.outputs)
            order.append(layer)
    return order


# ============================================================================== helpers
def _first_input_named(inputs, name):
    """A copy of ``meta['inputs']`` (a dict or a list of dicts) whose first input is named
    ``name``."""
    if isinstance(inputs, dict):
        return {**inputs, "name": name}
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], dict):
        return [{**inputs[0], "name": name}] + list(inputs[1:])
    return inputs


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


def _shape_text(value):
    return value_shape_text(value, unknown="-")
