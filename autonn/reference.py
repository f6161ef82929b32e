"""The reference executor: evaluate a graph by walking it, with no compilation.

No slots, no optimisation, no memory planning: each Layer's value is computed from its inputs'
values, then derivatives flow back in reverse topological order and add up where a variable fans
out. It is slow and obviously right, which makes it the oracle the compiled tape is tested
against. Derivatives come from the ops through the same convention as the tape's
(:meth:`autonn.ops.Op.compute_derivatives`, built on ``Op.derivative_functions``), so what this
checks is the compilation: slots, optimisation, accumulation and memory planning.
"""

from .backend import array_module
from .layer import Input, Layer, Param, Selector, topological_order


def evaluate(outputs, inputs, der_output=1.0, mode="normal"):
    """Values and derivatives of every Layer reachable from ``outputs``.

    ``inputs`` maps Input Layers (or their names) to arrays. Returns two dicts keyed by
    ``id(layer)``: values, and derivatives (empty unless mode is 'normal').
    """
    order = topological_order(outputs)
    by_name = {layer.name: layer for layer in order if isinstance(layer, Input)}
    feed = {id(by_name[k] if isinstance(k, str) else k): v for k, v in inputs.items()}
    values = {}
    for layer in order:
        if isinstance(layer, Input):
            values[id(layer)] = feed[id(layer)]
        elif isinstance(layer, Param):
            values[id(layer)] = layer.value
        elif isinstance(layer, Selector):
            values[id(layer)] = values[id(layer.inputs[0])][layer.index]
        else:
            forward = layer.op.forward_test if mode == "test" else layer.op.forward
            values[id(layer)] = forward(*[_value(x, values) for x in layer.inputs],
                                        **layer.options)
    ders = {}
    if mode != "normal":
        return values, ders
    for output in outputs:
        seed = der_output * _ones_like(values[id(output)])
        ders[id(output)] = ders[id(output)] + seed if id(output) in ders else seed
    for layer in reversed(order):
        if id(layer) not in ders:
            continue
        if isinstance(layer, Selector):
            _accumulate_selector(layer, ders, values)
        elif type(layer) is Layer:
            _backpropagate(layer, ders, values)
    return values, ders


def _backpropagate(layer, ders, values):
    args = [_value(x, values) for x in layer.inputs]
    need = [isinstance(x, Layer) and layer.op.has_derivative(i)
            for i, x in enumerate(layer.inputs)]
    if not any(need):
        return
    dzdy, y = ders[id(layer)], values[id(layer)]
    for x, d in zip(layer.inputs, layer.op.compute_derivatives(args, y, dzdy, layer.options,
                                                               need)):
        if d is not None:
            ders[id(x)] = ders[id(x)] + d if id(x) in ders else d


def _accumulate_selector(selector, ders, values):
    """Gather a selector's derivative into the tuple derivative of its multi-output node (None
    for outputs nobody differentiated: the op's derivative function makes those zeros)."""
    node = selector.inputs[0]
    current = list(ders.get(id(node)) or [None] * len(values[id(node)]))
    der = ders[id(selector)]
    previous = current[selector.index]
    current[selector.index] = der if previous is None else previous + der
    ders[id(node)] = tuple(current)


def _value(x, values):
    return values[id(x)] if isinstance(x, Layer) else x


def _ones_like(value):
    return array_module(value).ones_like(value)
