"""``Net``: the runtime. It compiles an implicit graph into a tape once
(:func:`autonn.compiler.compile_graph`), then evaluates it many times: :meth:`Net.eval` is a
tight loop over the tape's flat lists of steps, run as generated Python
(:mod:`autonn.codegen`). Every backward step calls the derivative functions its op made
(:meth:`autonn.ops.Op.derivative_functions`); the net only adds the results up.

The generated passes are cached and made again only when this net's own tape was edited
(:attr:`autonn.tape.Tape.edits`) or the debug switch changed.

Debugging: ``AUTONN_DEBUG=1`` in the environment (read at import into the module attribute
``autonn.net.DEBUG``, which may also be set at run time, e.g. with ``monkeypatch``) runs the same
generated code with a call after every forward and backward step that prints the step and the
shapes of its results, with a timestamp, to stderr (:func:`autonn.codegen.trace_step`). In both
modes an exception inside a step is re-raised naming the op, the layer, the line that created it
and the shapes of the step's inputs.
"""

import copy
import os
import threading
import warnings

import numpy as np

from . import backend, codegen, registration, serialization, state
from .compiler import compile_graph
from .errors import reading
from .layer import Input, Layer, Param, Selector, first_user_frame, sequential_names
from .layer import topological_order
from .layer import workspace_names
from .receptive_fields import net_receptive_fields
from .summary import net_summary

MODES = ("normal", "test", "forward", "backward")
# Trace every step of every Net as it runs (see the module docstring).
DEBUG = os.environ.get("AUTONN_DEBUG", "") not in ("", "0")
# nn.loss's class losses (autonn.nn.losses.CATEGORICAL), which a score map may sum over space
CLASS_LOSSES = ("classerror", "topkerror", "log", "softmaxlog", "mhinge", "mshinge")


class Net:
    """A compiled network.

    ``Net(*outputs, optimize=True, conserve_memory=False, meta=None)``: ``outputs`` are Layers
    (usually the objective first, then error measures). Unnamed Layers are named after the
    caller's variables, then sequentially (``conv1``, ``conv1_filters``...).

    Attributes
    ----------
    tape : Tape
        The compiled forward and backward steps (readable and editable).
    params : list of Param
        The learnable parameters, each with ``.value`` and, after a backward pass, ``.der``.
    inputs : dict
        Input name -> Input Layer.
    meta : dict
        Free-form, JSON-serialisable information saved with the net (classes, normalisation).
    lock : threading.RLock
        Held by every :meth:`eval`. Threads sharing one Net are serialised: each evaluation
        runs whole, on its own inputs, and gives the right values and derivatives. What
        ``value``/``der`` read afterwards is the last evaluation's, which may be another
        thread's: to evaluate and read as one step, hold the lock (``with net.lock:
        net.eval(...); y = net.value('prob')``). Separate Nets evaluate in parallel.
    """

    def __init__(self, *outputs, optimize=True, conserve_memory=False, meta=None,
                 _name_from=None, _protected=None):
        outputs = _as_output_layers(outputs)
        if _name_from is not False:
            workspace_names(_name_from or first_user_frame())
        # Layers the user named stay visible: the optimizer never folds them away.
        if _protected is None:
            _protected = {id(layer) for layer in topological_order(outputs)
                          if layer.name and not layer.automatic_name}
        self._protected = _protected
        sequential_names(outputs)
        self.outputs = outputs
        self.lock = threading.RLock()
        self.optimize = optimize
        self.conserve_memory = conserve_memory
        self.meta = dict(meta or {})
        self.device = "cpu"
        compiled = compile_graph(outputs, optimize=optimize, conserve_memory=conserve_memory,
                                 protected=_protected)
        self.tape = compiled.tape
        self.params = compiled.params
        self.inputs = {layer.name: layer for layer in compiled.inputs}
        self._compiled = compiled
        self._input_slots = [(layer, compiled.slot_of[id(layer)]) for layer in compiled.inputs]
        self._param_slots = [(p, compiled.slot_of[id(p)]) for p in compiled.params]
        n = len(self.tape.names)
        self._values = [None] * n
        self._ders = [None] * n
        self._pending_ders = {}  # set_der before a backward pass
        self._score_maps_checked = False  # the first forward warns of a classifier's map
        self._generated, self._generated_at = None, None
        # hook(params, ders), called during the backward pass as soon as those Params'
        # derivatives are final (data-parallel training starts their all-reduce then)
        self.on_param_ders = None

    def __deepcopy__(self, memo):
        """A copy with its own graph, Params, tape and lock: it evaluates and trains apart from
        this net. The compiled maps are keyed by the Layers' ids, so they are re-keyed to the
        copies' (``memo`` maps each original's id to its copy)."""
        clone = object.__new__(Net)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            if name not in ("lock", "_generated", "_generated_at", "on_param_ders"):
                object.__setattr__(clone, name, copy.deepcopy(value, memo))
        clone.lock = threading.RLock()
        clone._generated, clone._generated_at = None, None
        clone.on_param_ders = None  # the hook belongs to this net's training, not the copy's
        copied = clone._compiled
        copied.slot_of = {_copied_id(key, memo): slot for key, slot in copied.slot_of.items()}
        copied.merged = {_copied_id(key, memo) for key in copied.merged}
        clone._protected = {_copied_id(key, memo) for key in clone._protected}
        # the copied steps belong to the copied tape alone (deepcopy keeps weak references as
        # they are: they still named this net's tape)
        for step in list(clone.tape.forward) + list(clone.tape.backward):
            step._forget_tapes()
        clone.tape.forward, clone.tape.backward = list(clone.tape.forward), list(clone.tape.backward)
        return clone

    @property
    def _output_slots(self):
        # the tape's: an edit of the tape (Tape.insert) may move an output to a new slot
        return self.tape.outputs

    # ------------------------------------------------------------------ evaluation
    def eval(self, inputs=None, mode="normal", der_output=1.0, accumulate_param_ders=False):
        """Run the network.

        ``inputs`` maps Input names (or Input Layers) to arrays. ``mode`` is 'normal'
        (forward and backward), 'test' (forward only, test-mode ops: dropout off, batch
        normalisation with its stored moments), 'forward' (forward only) or 'backward'
        (backward only, from the values of the last forward). ``der_output`` seeds the
        derivative of every output that carries one (a number, an array, or a list with one
        entry per output, None for none); derivatives given by :meth:`set_der` are added.
        With ``accumulate_param_ders`` the Params' ``.der`` are added to instead of replaced
        (sub-batches).
        """
        if mode not in MODES:
            raise ValueError(f"Net.eval: mode must be one of {MODES}, got {mode!r}")
        if mode == "backward" and inputs:
            raise ValueError("Net.eval: mode='backward' takes no inputs (pass {})")
        with self.lock:  # the slots are the net's own: one evaluation at a time
            if mode != "backward":
                self._load(inputs or {})
                self._run_forward(test=(mode == "test"))
                if not self._score_maps_checked:
                    self._score_maps_checked = True
                    _warn_of_score_maps(self)
            if mode in ("normal", "backward"):
                self._run_backward(der_output, accumulate_param_ders)
        return self

    def predict(self, inputs=None):
        """Inference: a test-mode forward pass (dropout off, batch normalisation with its
        stored moments, no backward), returning the outputs' values: the value of the one
        output, or a tuple of them. What PyTorch's ``model.eval(); model(x)`` does; ``eval``
        is MatConvNet's and AutoNN's, forward and backward. ``inputs`` is the dict of
        :meth:`eval`, or the array of a net with one Input."""
        if not isinstance(inputs, dict) and inputs is not None:
            if len(self.inputs) != 1:
                raise TypeError(f"Net.predict: a net of inputs {sorted(self.inputs)} takes a "
                                f"dict of name -> array, got {type(inputs).__name__}")
            inputs = {next(iter(self.inputs)): inputs}
        with self.lock:
            self.eval(inputs, mode="test")
            values = tuple(self._values[slot] for slot in self._output_slots)
        return values[0] if len(values) == 1 else values

    def _load(self, inputs):
        values = self._values
        for k in range(len(values)):
            values[k] = None
        for slot, value in self.tape.constants:
            values[slot] = value
        for param, slot in self._param_slots:
            values[slot] = param.value
        given = self._resolve_inputs(inputs)
        for layer, slot in self._input_slots:
            if id(layer) not in given:
                raise ValueError(
                    f"Net.eval: no value for input '{layer.name}' (created at {layer.source}); "
                    f"inputs are {sorted(self.inputs)}")
            value = given[id(layer)]
            if isinstance(value, (list, tuple)):
                value = np.asarray(value)
            if self.device == "gpu":
                value = backend.to_device(value, "gpu")
            values[slot] = value

    def _resolve_inputs(self, inputs):
        if not isinstance(inputs, dict):
            raise TypeError(f"Net.eval: inputs must be a dict of name -> array, got "
                            f"{type(inputs).__name__}")
        given = {}
        for key, value in inputs.items():
            layer = self.inputs.get(key) if isinstance(key, str) else key
            if not isinstance(layer, Input) or self.inputs.get(layer.name) is not layer:
                raise ValueError(f"Net.eval: unknown input {_key_text(key)}; inputs are "
                                 f"{sorted(self.inputs)}")
            given[id(layer)] = value
        return given

    def _run_forward(self, test):
        generated = self._generated_passes()["test" if test else "normal"]
        try:
            generated.function(self._values)
        except Exception as error:
            step, frame_locals = generated.step_at(error.__traceback__)
            _keep_slots(frame_locals, "v", self._values)
            _reraise_at(step, error, [frame_locals.get(f"v{i}") for i in step.inputs]
                        if step else [])

    def _run_backward(self, der_output, accumulate):
        ders = self._ders
        for k in range(len(ders)):
            ders[k] = None
        for slot, der in self._pending_ders.items():
            ders[slot] = der
        self._pending_ders = {}
        if der_output is not None:
            self._seed(der_output)
        generated = self._generated_passes()["backward"]
        try:
            generated.function(self._values, ders)
        except Exception as error:
            step, frame_locals = generated.step_at(error.__traceback__)
            _keep_slots(frame_locals, "d", ders)
            _reraise_at(step, error, [frame_locals.get(f"v{i}") for i in step.inputs]
                        if step else [], backward=True)
        for param, slot in self._param_slots:
            der = ders[slot]
            if der is None:
                der = _zeros_like(param.value)
            if accumulate and getattr(param, "der", None) is not None:
                der = param.der + der
            param.der = der

    def _generated_passes(self):
        """The tape as generated Python (see :mod:`autonn.codegen`), made again when this
        net's tape was edited (or replaced) or the debug switch changed."""
        tape = self.tape
        if (self._generated is None or self._generated_at[0] is not tape
                or self._generated_at[1] != tape.edits or self._generated_at[2] != DEBUG
                or self._generated_at[3] is not self.on_param_ders):
            trace = codegen.trace_step if DEBUG else None
            self._fit_slots(tape)
            self._generated = {
                "normal": codegen.forward_pass(tape.forward, test=False, trace=trace),
                "test": codegen.forward_pass(tape.forward, test=True, trace=trace),
                "backward": codegen.backward_pass(tape.backward, trace=trace,
                                                  finished=self._finished_hooks()),
            }
            self._generated_at = (tape, tape.edits, DEBUG, self.on_param_ders)
        return self._generated

    def _finished_hooks(self):
        """For :attr:`on_param_ders`: after which backward step each Param's derivative is
        final (the last step adding to it)."""
        hook = self.on_param_ders
        if hook is None:
            return None
        param_at = {slot: param for param, slot in self._param_slots}
        last = {}
        for k, step in enumerate(self.tape.backward):
            for _, slot in step.targets:
                if slot in param_at:
                    last[slot] = k
        by_step = {}
        for slot, k in last.items():
            by_step.setdefault(k, []).append(slot)

        def finished(slots, ders):
            hook([param_at[slot] for slot in slots], ders)
        return {k: (finished, sorted(slots)) for k, slots in by_step.items()}

    def _fit_slots(self, tape):
        """An edited tape may use slots beyond those compiled: the slot lists (and names,
        ``v12`` for a slot nobody named) grow to hold them."""
        steps = list(tape.forward) + list(tape.backward)
        used = [slot for step in steps for slot in step.inputs + step.outputs]
        count = max([len(tape.names)] + [slot + 1 for slot in used
                                         if type(slot) is int and slot >= 0])
        for k in range(len(tape.names), count):
            tape.names.append(f"v{k}")
        while len(tape.requires_der) < count:
            tape.requires_der.append(False)
        for slots in (self._values, self._ders):
            slots.extend([None] * (count - len(slots)))

    def _seed(self, der_output):
        if isinstance(der_output, (list, tuple)):
            if len(der_output) != len(self._output_slots):
                raise ValueError(f"Net.eval: der_output has {len(der_output)} entries for "
                                 f"{len(self._output_slots)} outputs")
            seeds = der_output
        else:
            seeds = [der_output] * len(self._output_slots)
        for slot, seed in zip(self._output_slots, seeds):
            if seed is None or not self.tape.requires_der[slot]:
                continue
            value = self._values[slot]
            if value is None:
                raise ValueError(f"Net.eval: no forward value of output "
                                 f"'{self.tape.names[slot]}'; run a forward pass first")
            xp = backend.array_module(value)
            if np.ndim(seed) == 0:
                seed = xp.full(np.shape(value), seed, dtype=_float_dtype(value))
            elif np.shape(seed) != np.shape(value):
                raise ValueError(f"Net.eval: der_output for '{self.tape.names[slot]}' has "
                                 f"shape {np.shape(seed)}, the output has {np.shape(value)}")
            current = self._ders[slot]
            self._ders[slot] = seed if current is None else current + seed

    # ------------------------------------------------------------------ access
    def value(self, key):
        """The value of a variable (by name or Layer) after the last evaluation."""
        slot = self._slot(key)
        value = self._values[slot]
        if value is None and self.conserve_memory:
            raise ValueError(f"Net.value: '{self.tape.names[slot]}' was released by "
                             f"conserve_memory; compile with conserve_memory=False to keep it")
        return value

    def der(self, key):
        """The derivative of the objective with respect to a variable (by name or Layer)."""
        if isinstance(key, Param) or (isinstance(key, str) and key in self._param_names()):
            param = key if isinstance(key, Param) else self._param_names()[key]
            self._slot(param)
            return getattr(param, "der", None)
        slot = self._slot(key)
        return self._ders[slot]

    def set_value(self, key, value):
        """Set a variable's value (a Param's value persists across evaluations)."""
        slot = self._slot(key)
        layer = self._layer_at(slot)
        if isinstance(layer, Param):
            layer.value = value
        self._values[slot] = value

    def set_der(self, key, der):
        """Set a variable's derivative. The next backward pass starts from it (added to the
        ``der_output`` seeds; pass ``der_output=None`` to start from it alone)."""
        slot = self._slot(key)
        layer = self._layer_at(slot)
        if isinstance(layer, Param):
            layer.der = der
        self._ders[slot] = der
        self._pending_ders[slot] = der

    def _slot(self, key):
        compiled = self._compiled
        if isinstance(key, Layer):
            for output, slot in zip(self.outputs, self.tape.outputs):
                if output is key:  # where the tape's output is now (Tape.insert may move it)
                    return slot
            slot = compiled.slot_of.get(id(key))
            if slot is None:
                if id(key) in compiled.merged:
                    raise KeyError(f"'{key.name}' was merged into a weighted sum by the "
                                   f"optimizer; compile with optimize=False or name it first")
                raise KeyError(f"Layer '{key.name}' is not part of this net")
            return slot
        slot = compiled.slot_by_name.get(key)
        if slot is None and isinstance(key, str) and key in self.tape.names:
            slot = self.tape.names.index(key)  # a slot an edit of the tape added
        if slot is None:
            if key in compiled.merged_names:
                raise KeyError(f"'{key}' was merged into a weighted sum by the optimizer; "
                               f"compile with optimize=False or give it a name first")
            raise KeyError(f"no variable named {key!r}; variables are "
                           f"{sorted(compiled.slot_by_name)}")
        return slot

    def _layer_at(self, slot):
        return self._compiled.layer_at.get(slot)

    def _param_names(self):
        return {p.name: p for p in self.params}

    @property
    def vars(self):
        """Names of all variables, in slot order."""
        return list(self.tape.names)

    # ------------------------------------------------------------------ devices
    def to(self, device):
        """Move the parameters and constants to 'gpu' or 'cpu'; inputs follow at eval."""
        if device not in ("cpu", "gpu"):
            raise ValueError(f"Net.to: device must be 'cpu' or 'gpu', got {device!r}")
        if device == "gpu" and not backend.gpu_available():
            raise RuntimeError("Net.to('gpu'): no GPU is available (install autonn[cuda] and "
                               "check that a CUDA device is visible)")
        for param in self.params:
            param.value = backend.to_device(param.value, device)
            if getattr(param, "der", None) is not None:
                param.der = backend.to_device(param.der, device)
        self.tape.constants = [(slot, backend.to_device(value, device))
                               for slot, value in self.tape.constants]
        self._values = [backend.to_device(v, device) for v in self._values]
        self._ders = [backend.to_device(d, device) for d in self._ders]
        self.device = device
        return self

    # ------------------------------------------------------------------ display
    def receptive_fields(self, var=None):
        """Receptive field (size, stride, offset; 0-based) of every variable with respect to the
        input ``var`` (a name or Layer; by default the only Input), MatConvNet manual ch. 5:
        ``{name: ReceptiveField or None}``. See :mod:`autonn.receptive_fields`."""
        return net_receptive_fields(self, var)

    def summary(self, input_sizes=None):
        """A table of the variables: name, op, shape, memory (values and derivatives).

        Shapes come from the last evaluation, or from the ops' shape rules when
        ``input_sizes`` (Input name -> shape) is given.
        """
        return net_summary(self, input_sizes)

    def __str__(self):
        outputs = ", ".join(self.tape.names[slot] for slot in self._output_slots)
        return (f"Net: inputs {', '.join(sorted(self.inputs))} -> outputs {outputs}. "
                f"net.predict(inputs): the outputs in test mode (inference); "
                f"net.eval(inputs): forward and backward (training)\n{self.summary()}")

    def _repr_svg_(self):
        """Jupyter shows a Net as the picture of its compiled tape (see :mod:`autonn.viz`)."""
        return registration.provided("graph_svg")(self)

    def __repr__(self):
        return (f"<Net: {len(self.tape.forward)} forward steps, {len(self.tape.backward)} "
                f"backward steps, {len(self.params)} params, inputs {sorted(self.inputs)}>")

    # ------------------------------------------------------------------ persistence
    def state_dict(self):
        """``OrderedDict`` of Param name -> a copy of its value (bnorm moments included)."""
        return state.state_dict(self.params)

    def load_state_dict(self, state_dict, strict=True):
        """Load the arrays of ``state_dict`` into the Params of the same names and shapes.
        ``strict=False`` loads what matches and returns what did not (a
        :class:`autonn.state.LoadReport`: missing, unexpected, mismatched shapes); with
        ``strict=True`` any difference raises and nothing is loaded."""
        return state.load_state_dict(self.params, state_dict, strict)

    def save(self, path):
        """Save the graph, parameter values, names, options and ``meta`` to one ``.npz`` file
        (arrays plus a JSON description: no pickle, so loading runs no code)."""
        serialization.save_net(self, path)

    @staticmethod
    def load(path, ops=None):
        """Load a net saved by :meth:`save`. A malformed file raises
        :class:`autonn.errors.FormatError` (a ValueError) naming it; no file runs code.

        Custom ops are found by the name they were saved under (``module.function``) once
        their module is imported; ``ops`` gives them instead, by that name or the function's
        name: ``Net.load(path, ops={'scale': scale})`` (the only way for an op defined in a
        notebook or a script, whose module is ``__main__``)."""
        graph = serialization.load_graph(path, ops)
        # a graph that cannot compile (two variables of one name, options an op refuses) is a
        # malformed file too
        with reading(f"Net.load({os.path.basename(os.fspath(path))!r})"):
            return Net(*graph.outputs, optimize=graph.optimize,
                       conserve_memory=graph.conserve_memory, meta=graph.meta,
                       _name_from=False, _protected=graph.protected)

# ---------------------------------------------------------------------- decompiling
def layers_from_net(net):
    """The implicit graph of a compiled net, read back from its tape: one Layer per forward
    step, with the step's op, options, name and source, and the net's own Input and Param
    Layers (so the graph trains the very Params the net does). Returns the output Layers, in
    the net's order. See :meth:`autonn.Layer.from_compiled_net`.

    The tape is read as it is now, edits included: a step writing a slot that an earlier step
    wrote gives the later readers the new Layer. A step whose function was replaced by one
    that is not its op's cannot be a Layer, and is refused by name.
    """
    if not isinstance(net, Net):
        raise TypeError(f"Layer.from_compiled_net: expected a Net, got {type(net).__name__}")
    tape, compiled = net.tape, net._compiled
    layers = {slot: layer for layer, slot in net._input_slots + net._param_slots}
    constants = dict(tape.constants)

    def graph_input(slot, step):
        if slot in layers:
            return layers[slot]
        if slot in constants:
            return constants[slot]
        raise ValueError(f"Layer.from_compiled_net: step '{step.name}' ({step.op.name}) reads "
                         f"slot {slot}, which no step writes")

    for step in tape.forward:
        if step.function is not step.op.forward or step.function_test is not step.op.forward_test:
            raise ValueError(f"Layer.from_compiled_net: step '{step.name}' ({step.op.name}) "
                             f"runs a function that is not its op's; make it an op (@an.op) "
                             f"and set step.op instead")
        node = Layer(step.op, [graph_input(slot, step) for slot in step.inputs],
                     dict(step.options))
        node.source = step.source
        original = compiled.layer_at.get(step.outputs[0])
        _name_like(node, step.name, original)
        if step.op.num_outputs > 1:
            for index, slot in enumerate(step.outputs):
                selector = Selector(node, index)
                selector.source = step.source
                _name_like(selector, tape.names[slot], None)
                layers[slot] = selector
        else:
            layers[step.outputs[0]] = node
    missing = [tape.names[slot] for slot in net._output_slots if slot not in layers]
    if missing:
        raise ValueError(f"Layer.from_compiled_net: no step writes the outputs {missing}")
    return [layers[slot] for slot in net._output_slots]


def _name_like(layer, name, original):
    """Name a decompiled Layer as the compiled one was: automatically or by the user."""
    layer.name = name
    if original is not None and getattr(original, "automatic_name", False):
        layer.automatic_name = True


registration.provide("compiled_net_layers", layers_from_net)


# ---------------------------------------------------------------------- tracing
def traced_derivatives(function, inputs, dzdy, options, need):
    """Derivatives of ``<dzdy, function(*inputs)>`` for a function made of autonn operations,
    by tracing it into a small net (used by custom ops that define no backward)."""
    placeholders = [Input(f"in{i}") if _is_array(x) else x for i, x in enumerate(inputs)]
    output = function(*placeholders, **options)
    if not isinstance(output, Layer):
        raise TypeError(f"{getattr(function, '__name__', 'op')}: without a backward, the "
                        f"function must be built from autonn operations on its inputs")
    net = Net(output, optimize=False, _name_from=False)
    feed = {p.name: x for p, x in zip(placeholders, inputs) if isinstance(p, Input)
            and p.name in net.inputs}
    net.eval(feed, der_output=dzdy)
    return tuple(net.der(p) if isinstance(p, Input) and wanted and p.name in net.inputs
                 else None for p, wanted in zip(placeholders, need))


registration.provide("traced_derivatives", traced_derivatives)


# ---------------------------------------------------------------------- helpers
def _keep_slots(frame_locals, prefix, slots):
    """After an error, keep what the steps before it computed (``v3``/``d3`` locals of the
    generated pass), so ``net.value``/``net.der`` show how far the pass got."""
    for name, value in frame_locals.items():
        if name[:1] == prefix and name[1:].isdigit():
            slots[int(name[1:])] = value


def _reraise_at(step, error, args, backward=False):
    """Re-raise an error from inside a step with the Layer's name, source line and shapes."""
    if step is None:
        raise error
    shapes = ", ".join(codegen.describe_value(a) for a in args)
    phase = "backward of " if backward else ""
    message = (f"{phase}{step.op.name} layer '{step.name}' (created at {step.source}) with "
               f"inputs ({shapes}): {error}{_dtype_remedy(error, args)}")
    try:
        new_error = type(error)(message)
    except Exception:
        new_error = RuntimeError(message)
    raise new_error.with_traceback(error.__traceback__) from None


def _warn_of_score_maps(net):
    """A class loss of one label per image on a score map of more than 1x1 sums the loss over
    the map's positions: what a segmentation net does with per-pixel labels, but mostly a
    classifier whose last conv does not cover its input (a 32x32 image into LeNet). Warned
    once per Net, naming the loss, the map and the remedy."""
    values = net._values
    producer = {slot: step for step in net.tape.forward for slot in step.outputs}
    for step in net.tape.forward:
        if getattr(step.op, "name", None) != "loss" or len(step.inputs) < 2 or \
                step.options.get("loss") not in CLASS_LOSSES:
            continue
        x, c = values[step.inputs[0]], values[step.inputs[1]]
        if x is None or c is None or np.ndim(x) != 4 or np.ndim(c) != 1:
            continue
        n, classes, height, width = np.shape(x)
        if height * width == 1:
            continue
        scores = net.tape.names[step.inputs[0]]
        remedy = "a last conv whose size= covers the map it reads"
        last = producer.get(step.inputs[0])
        if last is not None and getattr(last.op, "name", None) == "conv":
            read = values[last.inputs[0]]
            if read is not None and np.ndim(read) == 4:
                _, cin, hin, win = np.shape(read)
                remedy = (f"a last conv whose size= covers the map it reads: "
                          f"size=({hin}, {win}, {cin}, {classes}) on its {hin}×{win} input "
                          f"'{net.tape.names[last.inputs[0]]}'")
        warnings.warn(
            f"loss '{step.name}' ({step.options['loss']}) reads the {height}×{width} score map "
            f"'{scores}' with one label per image: it sums the loss over the {height * width} "
            f"positions. For a classifier, use {remedy}, or build an.models' nets with "
            f"input_size= of your images; per-pixel labels ({n}, {height}, {width}) make it "
            f"a dense loss", UserWarning, stacklevel=3)
        return  # one warning a Net (its error measures read the same map)


def _dtype_remedy(error, args):
    """What to do about float64 data meeting float32 Params (NumPy makes float64 by default)."""
    dtypes = {str(getattr(a, "dtype", "")) for a in args}
    if not isinstance(error, TypeError) or not {"float32", "float64"} <= dtypes:
        return ""
    return ("; float32 and float64 are never mixed: convert the data with "
            "x.astype(np.float32) (NumPy's arrays are float64 by default), or make the net's "
            "Params float64 (size=..., dtype=np.float64)")


def _zeros_like(value):
    return backend.array_module(value).zeros_like(value)


def _float_dtype(value):
    dtype = getattr(value, "dtype", np.dtype(np.float64))
    return dtype if np.issubdtype(dtype, np.floating) else np.float64


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _copied_id(key, memo):
    """The id of the copy of the object whose id was ``key`` (itself when it was not copied)."""
    return id(memo[key]) if key in memo else key


def _as_output_layers(outputs):
    if len(outputs) == 1 and isinstance(outputs[0], (list, tuple)) and all(
            isinstance(x, Layer) for x in outputs[0]):
        outputs = tuple(outputs[0])
    if len(outputs) == 1 and not isinstance(outputs[0], Layer):
        # a SimpleNN net (dict or list) or a DagNN
        outputs = tuple(registration.provided("wrapper_outputs")(outputs[0]))
    for output in outputs:
        if not isinstance(output, Layer):
            raise TypeError(f"Net: outputs must be Layers, got {type(output).__name__}")
    if not outputs:
        raise TypeError("Net: give at least one output Layer, e.g. Net(objective)")
    return list(outputs)


def _key_text(key):
    return repr(key) if isinstance(key, str) else f"Layer '{getattr(key, 'name', key)}'"
