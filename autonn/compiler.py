"""Compilation: an implicit graph of Layers into a :class:`~autonn.tape.Tape`.

:func:`compile_graph` sorts the graph, optimises it (merges chains of ``+``, ``-`` and scalar
``*`` into one weighted sum; drops backward steps no derivative reaches), numbers every variable
with an integer slot and writes two flat lists of steps. With ``conserve_memory`` it also plans,
by liveness, after which step each value or derivative can be released. The runtime,
:class:`autonn.Net`, only walks what this produces.
"""

import numpy as np

from . import math_ops
from .layer import Input, Layer, Param, Selector, topological_order
from .tape import ForwardStep, Tape, backward_steps


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
            # an op may name its outputs (a loop's last one is its record, ``for1_record``)
            suffixes = getattr(node.op, "output_suffixes", None) or range(node.op.num_outputs)
            outs = [new_slot(f"{node.name}_{k}", needs) for k in suffixes]
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

    output_slots = [compiled.slot_of[id(layer)] for layer in outputs]
    leaves = [compiled.slot_of[id(x)] for x in compiled.inputs + compiled.params]
    backward = backward_steps(forward, requires_der, output_slots)
    compiled.tape = Tape(forward, backward, names, constants, outputs=output_slots,
                         leaves=leaves, requires_der=requires_der)
    if conserve_memory:
        compiled.tape.plan_memory()
    return compiled


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


def _check_unique_names(order):
    seen = {}
    for layer in order:
        if layer.name in seen and seen[layer.name] is not layer:
            raise ValueError(f"Net: two variables are named '{layer.name}' (created at "
                             f"{seen[layer.name].source} and {layer.source}); rename one")
        seen[layer.name] = layer
