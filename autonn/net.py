"""``Net``: compiles an implicit graph into a tape once, then evaluates it many times.

Compilation (:func:`compile_graph`) sorts the graph, names it, optimises it (merges chains of
``+``, ``-`` and scalar ``*`` into one weighted sum; drops backward steps no derivative reaches),
numbers every variable with an integer slot and writes two flat lists of steps. With
``conserve_memory`` it also plans, by liveness, after which step each value or derivative can be
released. :meth:`Net.eval` is then a tight loop over those lists.
"""

import os
import sys
import time

import numpy as np

from . import backend, codegen, math_ops
from .layer import (Input, Layer, Param, Selector, sequential_names, topological_order,
                    workspace_names)
from .layer import _PACKAGE_DIR
from .tape import BackwardStep, ForwardStep, Tape, edit_count

MODES = ("normal", "test", "forward", "backward")
# AUTONN_DEBUG=1: interpret the tape step by step, printing each step and its results.
DEBUG = os.environ.get("AUTONN_DEBUG", "") not in ("", "0")


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
    """

    def __init__(self, *outputs, optimize=True, conserve_memory=False, meta=None,
                 _name_from=None, _protected=None):
        outputs = _as_output_layers(outputs)
        if _name_from is not False:
            workspace_names(_name_from or _first_user_frame())
        # Layers the user named stay visible: the optimizer never folds them away.
        if _protected is None:
            _protected = {id(layer) for layer in topological_order(outputs) if layer.name}
        self._protected = _protected
        sequential_names(outputs)
        self.outputs = outputs
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
        self._output_slots = [compiled.slot_of[id(layer)] for layer in outputs]
        n = len(self.tape.names)
        self._values = [None] * n
        self._ders = [None] * n
        self._pending_ders = {}  # set_der before a backward pass
        self._generated, self._generated_at = None, None

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
        if mode != "backward":
            self._load(inputs or {})
            self._run_forward(test=(mode == "test"))
        elif inputs:
            raise ValueError("Net.eval: mode='backward' takes no inputs (pass {})")
        if mode in ("normal", "backward"):
            self._run_backward(der_output, accumulate_param_ders)
        return self

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
        if DEBUG:
            return self._interpret_forward(test)
        generated = self._generated_passes()["test" if test else "normal"]
        try:
            generated.function(self._values)
        except Exception as error:
            step, frame_locals = generated.step_at(error.__traceback__)
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
        if DEBUG:
            self._interpret_backward()
        else:
            generated = self._generated_passes()["backward"]
            try:
                generated.function(self._values, ders)
            except Exception as error:
                step, frame_locals = generated.step_at(error.__traceback__)
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
        """The tape as generated Python (see :mod:`autonn.codegen`), redone after any edit."""
        if self._generated is None or self._generated_at != edit_count():
            self._generated = {
                "normal": codegen.forward_pass(self.tape.forward, test=False),
                "test": codegen.forward_pass(self.tape.forward, test=True),
                "backward": codegen.backward_pass(self.tape.backward),
            }
            self._generated_at = edit_count()
        return self._generated

    # The interpreted loops below do what the generated passes do, one step object at a time;
    # AUTONN_DEBUG=1 selects them and prints every step as it runs.
    def _interpret_forward(self, test):
        values = self._values
        step = None
        try:
            for step in self.tape.forward:
                function = step.function_test if test else step.function
                out = function(*[values[i] for i in step.inputs], **step.options)
                _store(values, step, out)
                _debug_print(step, [values[o] for o in step.outputs])
                for slot in (step.free_test if test else step.free):
                    values[slot] = None
        except Exception as error:
            _reraise_at(step, error, [values[i] for i in step.inputs])

    def _interpret_backward(self):
        values, ders = self._values, self._ders
        step = None
        try:
            for step in self.tape.backward:
                if step.multiple_outputs:
                    dzdy = [ders[o] for o in step.outputs]
                    if all(d is None for d in dzdy):
                        continue
                    dzdy = tuple(d if d is not None else _zeros_like(values[o])
                                 for d, o in zip(dzdy, step.outputs))
                    y = tuple(values[o] for o in step.outputs)
                else:
                    dzdy = ders[step.outputs[0]]
                    if dzdy is None:
                        continue
                    y = values[step.outputs[0]]
                args = [values[i] for i in step.inputs]
                if step.uses_backward:
                    extra = {}
                    if step.pass_output:
                        extra["y"] = y
                    if step.op.backward_accepts_need:
                        extra["need"] = step.need
                    result = step.op.backward_fn(*args, dzdy, **step.options, **extra)
                    if type(result) is not tuple and type(result) is not list:
                        result = (result,)
                    contributions = [(result[position], slot) for _, position, slot in step.grads]
                else:
                    contributions = [(rule(dzdy, y, *args, **step.options), slot)
                                     for rule, _, slot in step.grads]
                for d, slot in contributions:
                    if d is not None:
                        current = ders[slot]
                        ders[slot] = d if current is None else current + d
                _debug_print(step, [d for d, _ in contributions])
                for slot in step.free_values:
                    values[slot] = None
                for slot in step.free_ders:
                    ders[slot] = None
        except Exception as error:
            _reraise_at(step, error, [values[i] for i in step.inputs], backward=True)

    def _seed(self, der_output):
        if isinstance(der_output, (list, tuple)):
            if len(der_output) != len(self._output_slots):
                raise ValueError(f"Net.eval: der_output has {len(der_output)} entries for "
                                 f"{len(self._output_slots)} outputs")
            seeds = der_output
        else:
            seeds = [der_output] * len(self._output_slots)
        for slot, seed in zip(self._output_slots, seeds):
            if seed is None or not self._compiled.requires_der[slot]:
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
            slot = compiled.slot_of.get(id(key))
            if slot is None:
                if id(key) in compiled.merged:
                    raise KeyError(f"'{key.name}' was merged into a weighted sum by the "
                                   f"optimizer; compile with optimize=False or name it first")
                raise KeyError(f"Layer '{key.name}' is not part of this net")
            return slot
        slot = compiled.slot_by_name.get(key)
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
        from .receptive_fields import net_receptive_fields
        return net_receptive_fields(self, var)

    def summary(self, input_sizes=None):
        """A table of the variables: name, op, shape, memory (values and derivatives).

        Shapes come from the last evaluation, or from the ops' shape rules when
        ``input_sizes`` (Input name -> shape) is given.
        """
        from .summary import net_summary
        return net_summary(self, input_sizes)

    def __str__(self):
        return str(self.summary())

    def _repr_svg_(self):
        """Jupyter shows a Net as the picture of its compiled tape (see :mod:`autonn.viz`)."""
        from .viz import graph_svg
        return graph_svg(self)

    def __repr__(self):
        return (f"<Net: {len(self.tape.forward)} forward steps, {len(self.tape.backward)} "
                f"backward steps, {len(self.params)} params, inputs {sorted(self.inputs)}>")

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save the graph, parameter values, names, options and ``meta`` to one ``.npz`` file
        (arrays plus a JSON description: no pickle, so loading runs no code)."""
        from .serialization import save_net
        save_net(self, path)

    @staticmethod
    def load(path):
        """Load a net saved by :meth:`save`."""
        from .serialization import load_net
        return load_net(path)


# ---------------------------------------------------------------------- compilation
class CompiledGraph:
    """What :func:`compile_graph` produces: the tape and the maps from Layers to slots."""

    def __init__(self):
        self.tape = None
        self.slot_of = {}          # id(Layer) -> slot
        self.slot_by_name = {}     # name -> slot
        self.layer_at = {}         # slot -> Layer (Inputs, Params, op nodes)
        self.requires_der = []     # slot -> bool
        self.params = []
        self.inputs = []
        self.merged = set()        # ids of Layers the optimizer folded into weighted sums
        self.merged_names = set()


class _Node:
    """An op node of the graph being compiled (the optimiser rewrites these, never the user's
    Layers)."""

    __slots__ = ("layer", "op", "inputs", "options", "name", "source")

    def __init__(self, layer, op, inputs, options, name, source):
        self.layer, self.op, self.inputs = layer, op, list(inputs)
        self.options, self.name, self.source = options, name, source


def compile_graph(outputs, optimize=True, conserve_memory=False, protected=()):
    """Compile the graph ending in ``outputs`` into a :class:`Tape`.

    ``protected`` holds ids of Layers the optimizer must keep (the ones the user named).
    """
    order = topological_order(outputs)
    _check_unique_names(order)
    compiled = CompiledGraph()
    keep_ids = {id(layer) for layer in outputs} | set(protected)
    nodes = [_Node(layer, layer.op, layer.inputs, layer.options, layer.name, layer.source)
             for layer in order if layer.op is not None]
    if optimize:
        nodes = _merge_linear_chains(nodes, order, keep_ids, compiled)
    selectors = {}
    for layer in order:
        if isinstance(layer, Selector):
            selectors.setdefault(id(layer.inputs[0]), []).append(layer)

    names, constants = [], []
    requires_der = compiled.requires_der

    def new_slot(name, needs_der, layer=None):
        names.append(name)
        requires_der.append(needs_der)
        slot = len(names) - 1
        if layer is not None:
            compiled.layer_at[slot] = layer
            compiled.slot_by_name.setdefault(name, slot)
        return slot

    for layer in order:
        if isinstance(layer, Input):
            compiled.inputs.append(layer)
            compiled.slot_of[id(layer)] = new_slot(layer.name, True, layer)
        elif isinstance(layer, Param):
            compiled.params.append(layer)
            compiled.slot_of[id(layer)] = new_slot(layer.name, True, layer)

    constant_slots = {}

    def slot_for(x):
        if isinstance(x, Layer):
            if isinstance(x, Selector):
                return compiled.slot_of[id(x.inputs[0])][x.index]
            return compiled.slot_of[id(x)]
        key = id(x)
        if key not in constant_slots:
            constant_slots[key] = new_slot(f"const{len(constants)}", False)
            constants.append((constant_slots[key], x))
        return constant_slots[key]

    forward, node_slots = [], []
    for node in nodes:
        inputs = [slot_for(x) for x in node.inputs]
        needs = any(requires_der[s] and node.op.has_derivative(i)
                    for i, s in enumerate(inputs))
        if node.op.num_outputs > 1:
            outs = [new_slot(f"{node.name}_{k}", needs) for k in range(node.op.num_outputs)]
            compiled.layer_at[outs[0]] = node.layer
            compiled.slot_of[id(node.layer)] = outs
            for layer in selectors.get(id(node.layer), ()):
                    compiled.slot_of[id(layer)] = outs[layer.index]
                    compiled.slot_by_name[layer.name] = outs[layer.index]
                    names[outs[layer.index]] = layer.name
        else:
            outs = [new_slot(node.name, needs, node.layer)]
            if node.layer is not None:
                compiled.slot_of[id(node.layer)] = outs[0]
        forward.append(ForwardStep(node.name, node.op, inputs, outs, node.options, node.source))
        node_slots.append((inputs, outs))

    backward = _backward_steps(forward, requires_der,
                               [compiled.slot_of[id(layer)] for layer in outputs])
    compiled.tape = Tape(forward, backward, names, constants)
    if conserve_memory:
        leaves = {compiled.slot_of[id(x)] for x in compiled.inputs + compiled.params}
        keep = leaves | {slot for slot, _ in constants}
        keep |= {compiled.slot_of[id(layer)] for layer in outputs}
        _plan_memory(compiled.tape, keep, der_keep=leaves)
    return compiled


def _backward_steps(forward, requires_der, output_slots):
    """Backward steps in reverse order, only for steps a derivative can reach."""
    receives = set(output_slots)
    steps = []
    for step in reversed(forward):
        if not any(o in receives for o in step.outputs) or not step.op.differentiable:
            continue
        grads = []
        for position, slot in enumerate(step.inputs):
            if requires_der[slot] and step.op.has_derivative(position):
                rule = step.op.vjp_for(position)
                grads.append((rule, position, slot))
        if not grads:
            continue
        steps.append(BackwardStep(step.name, step.op, step.inputs, step.outputs, step.options,
                                  step.source, grads))
        receives.update(slot for _, _, slot in grads)
    return steps


def _plan_memory(tape, keep, der_keep):
    """Liveness: release each value after its last reader, each derivative once consumed."""
    needed_by_backward = set()
    for step in tape.backward:
        needs = step.op.backward_needs_inputs
        positions = range(len(step.inputs)) if needs is None else needs
        needed_by_backward.update(step.inputs[p] for p in positions)
        if step.op.backward_needs_output or step.multiple_outputs:
            needed_by_backward.update(step.outputs)

    def release_after_last_read(steps, readers, protected):
        seen = set()
        for step in reversed(steps):
            dead = [s for s in readers(step) if s not in seen and s not in protected]
            seen.update(readers(step))
            yield step, tuple(dict.fromkeys(dead))

    for step, dead in release_after_last_read(tape.forward, lambda s: s.inputs,
                                              keep | needed_by_backward):
        step.free = dead
    for step, dead in release_after_last_read(tape.forward, lambda s: s.inputs, keep):
        step.free_test = dead
    # An output nobody reads is dead at once, unless the backward pass or the user needs it.
    read = {s for step in tape.forward for s in step.inputs}
    for step in tape.forward:
        unread = tuple(o for o in step.outputs if o not in read and o not in keep)
        step.free += tuple(o for o in unread if o not in needed_by_backward)
        step.free_test += unread

    def backward_reads(step):
        needs = step.op.backward_needs_inputs
        positions = range(len(step.inputs)) if needs is None else needs
        reads = [step.inputs[p] for p in positions]
        if step.op.backward_needs_output or step.multiple_outputs:
            reads += list(step.outputs)
        return reads

    seen = set()
    for step in reversed(tape.backward):
        reads = backward_reads(step)
        step.free_values = tuple(dict.fromkeys(s for s in reads
                                               if s not in seen and s not in keep))
        seen.update(reads)
    for step in tape.backward:
        step.free_ders = tuple(o for o in step.outputs if o not in der_keep)


def _merge_linear_chains(nodes, order, keep_ids, compiled):
    """Fold chains of +, -, unary - and multiplication/division by a number into single
    weighted sums. A node is folded into its consumer only when nobody else reads it, it is
    not an output and the user did not name it."""
    consumers = {}
    for layer in order:
        for x in layer.inputs:
            if isinstance(x, Layer):
                consumers[id(x)] = consumers.get(id(x), 0) + 1

    def foldable(x):
        return (isinstance(x, Layer) and type(x) is Layer and _linear_terms(x) is not None
                and consumers.get(id(x)) == 1 and id(x) not in keep_ids)

    def expand(root):
        """The root's terms with folded chains flattened, left to right (iteratively: chains
        may be thousands long)."""
        terms, absorbed = [], []
        stack = list(reversed(_linear_terms(root)))
        while stack:
            term, weight = stack.pop()
            if foldable(term):
                absorbed.append(term)
                stack += [(t, weight * w) for t, w in reversed(_linear_terms(term))]
            else:
                terms.append((term, weight))
        return terms, absorbed

    folded_ids = set()
    by_layer = {id(node.layer): node for node in nodes}
    for layer in reversed(order):
        if type(layer) is not Layer or id(layer) in folded_ids or _linear_terms(layer) is None:
            continue
        terms, absorbed = expand(layer)
        if not absorbed:
            continue
        node = by_layer[id(layer)]
        node.op = math_ops.weighted_sum
        node.inputs = [t for t, _ in terms]
        node.options = {"weights": tuple(_plain_number(w) for _, w in terms)}
        for x in absorbed:
            folded_ids.add(id(x))
            compiled.merged.add(id(x))
            compiled.merged_names.add(x.name)
    return [node for node in nodes if id(node.layer) not in folded_ids]


def _linear_terms(layer):
    """``[(input, weight), ...]`` when ``layer`` is a linear combination of its inputs."""
    op, inputs = layer.op, layer.inputs
    if op is math_ops.add:
        return [(inputs[0], 1), (inputs[1], 1)]
    if op is math_ops.subtract:
        return [(inputs[0], 1), (inputs[1], -1)]
    if op is math_ops.negative:
        return [(inputs[0], -1)]
    if op is math_ops.multiply:
        a, b = inputs
        if _is_scalar(a) and isinstance(b, Layer):
            return [(b, a)]
        if _is_scalar(b) and isinstance(a, Layer):
            return [(a, b)]
    if op is math_ops.divide and _is_scalar(inputs[1]) and isinstance(inputs[0], Layer):
        return [(inputs[0], 1.0 / inputs[1])]
    return None


def _plain_number(w):
    """A weight as a Python int when it is whole (so integer arrays stay integer, as they would
    without the optimizer), else a Python float."""
    return int(w) if float(w).is_integer() and isinstance(w, (int, np.integer)) else float(w)


def _is_scalar(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and x != 0


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


# ---------------------------------------------------------------------- helpers
def _store(values, step, out):
    if step.multiple_outputs:
        if len(out) != len(step.outputs):
            raise ValueError(f"returned {len(out)} outputs, expected {len(step.outputs)}")
        for slot, value in zip(step.outputs, out):
            values[slot] = value
    else:
        values[step.outputs[0]] = out


def _debug_print(step, results):
    shapes = ", ".join(_describe_value(r) for r in results)
    print(f"[autonn {time.perf_counter():.6f}] {step!r} -> {shapes}", file=sys.stderr)


def _reraise_at(step, error, args, backward=False):
    """Re-raise an error from inside a step with the Layer's name, source line and shapes."""
    if step is None:
        raise error
    shapes = ", ".join(_describe_value(a) for a in args)
    phase = "backward of " if backward else ""
    message = (f"{phase}{step.op.name} layer '{step.name}' (created at {step.source}) with "
               f"inputs ({shapes}): {error}")
    try:
        new_error = type(error)(message)
    except Exception:
        new_error = RuntimeError(message)
    raise new_error.with_traceback(error.__traceback__) from None


def _describe_value(value):
    if value is None:
        return "None"
    if hasattr(value, "shape"):
        return f"{getattr(value, 'dtype', '')}{list(value.shape)}"
    return repr(value)


def _zeros_like(value):
    return backend.array_module(value).zeros_like(value)


def _float_dtype(value):
    dtype = getattr(value, "dtype", np.dtype(np.float64))
    return dtype if np.issubdtype(dtype, np.floating) else np.float64


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _as_output_layers(outputs):
    if len(outputs) == 1 and isinstance(outputs[0], (list, tuple)) and all(
            isinstance(x, Layer) for x in outputs[0]):
        outputs = tuple(outputs[0])
    if len(outputs) == 1 and not isinstance(outputs[0], Layer):
        from .wrappers import to_output_layers  # a SimpleNN net (dict or list) or a DagNN
        outputs = tuple(to_output_layers(outputs[0]))
    for output in outputs:
        if not isinstance(output, Layer):
            raise TypeError(f"Net: outputs must be Layers, got {type(output).__name__}")
    return list(outputs)


def _check_unique_names(order):
    seen = {}
    for layer in order:
        if layer.name in seen and seen[layer.name] is not layer:
            raise ValueError(f"Net: two variables are named '{layer.name}' (created at "
                             f"{seen[layer.name].source} and {layer.source}); rename one")
        seen[layer.name] = layer


def _first_user_frame():
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def _key_text(key):
    return repr(key) if isinstance(key, str) else f"Layer '{getattr(key, 'name', key)}'"
