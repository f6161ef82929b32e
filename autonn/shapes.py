"""Shape inference: the shape of every variable of a graph, or of every slot of a compiled
tape, without computing it.

The knowledge is on the ops: every built-in op has a shape rule (``Op(..., shape=rule)``; the
blocks' beside them in their family modules of :mod:`autonn.nn`, NumPy's math per family in
:mod:`autonn.math_ops`) and :meth:`autonn.ops.Op.output_shape` applies it, or runs a custom op's
forward on zeros. This module only walks graphs, one node at a time with :func:`node_shape`:

- :func:`variable_shapes` over Layers: ``simplenn.display``, ``DagNN.var_sizes`` and the
  pictures of a graph (:mod:`autonn.viz`);
- :func:`net_slot_shapes` over a Net's tape: ``net.summary()`` and the picture of a Net.
"""

import numpy as np

from .layer import Input, Layer, Param, Selector, topological_order


def variable_shapes(outputs, input_shapes, *, where="var_sizes", strict=True):
    """The shape of every variable of the graph ending in ``outputs``.

    ``input_shapes`` maps Input Layers to shapes. Returns ``{Layer: shape}`` (a tuple of shapes
    for a multi-output node); a variable whose inputs have unknown shapes is left out. A shape
    rule that fails raises a ValueError naming ``where``, the variable and its input sizes, or
    with ``strict=False`` leaves that variable out too.
    """
    shapes = {}
    for layer in topological_order(list(outputs)):
        if isinstance(layer, Input):
            if layer in input_shapes:
                shapes[layer] = tuple(int(n) for n in input_shapes[layer])
            continue
        if isinstance(layer, Param):
            shapes[layer] = tuple(np.shape(layer.value))
            continue
        if isinstance(layer, Selector):
            node = layer.inputs[0]
            if node in shapes:
                shapes[layer] = shapes[node][layer.index]
            continue
        if any(isinstance(x, Layer) and x not in shapes for x in layer.inputs):
            continue
        arguments = [shapes[x] if isinstance(x, Layer) else shape_argument(x)
                     for x in layer.inputs]
        try:
            shapes[layer] = node_shape(layer.op, arguments, layer.options)
        except Exception as error:
            if strict:
                raise ValueError(f"{where}: cannot infer the size of '{layer.name}' "
                                 f"({layer.op.name}) from input sizes {arguments}: "
                                 f"{error}") from None
    return shapes


def net_slot_shapes(net, input_sizes):
    """``{slot: shape}`` for the slots of a compiled Net's tape, from ``input_sizes`` (Input
    name -> shape), the Params' values and the constants. A step whose inputs are unknown, or
    whose shape rule cannot work from shapes alone, leaves its outputs unknown."""
    shapes = {}
    for layer, slot in net._input_slots:
        if layer.name in input_sizes:
            shapes[slot] = tuple(int(n) for n in input_sizes[layer.name])
    for param, slot in net._param_slots:
        shapes[slot] = tuple(np.shape(param.value))
    constants = dict(net.tape.constants)
    for step in net.tape.forward:
        if any(i not in shapes and i not in constants for i in step.inputs):
            continue
        arguments = [shapes[i] if i in shapes else shape_argument(constants[i])
                     for i in step.inputs]
        try:
            out = node_shape(step.op, arguments, step.options)
        except Exception:  # a shape rule that cannot work from shapes alone: leave it unknown
            continue
        for slot, shape in zip(step.outputs, out if len(step.outputs) > 1 else (out,)):
            shapes[slot] = shape
    return shapes


def node_shape(op, arguments, options):
    """The output shape (a tuple of ints; a tuple of them for a multi-output op) of ``op`` on
    ``arguments``, each the shape of an array input or a constant as :func:`shape_argument`
    gives it."""
    shape = op.output_shape(*arguments, **options)
    if op.num_outputs > 1:
        return tuple(tuple(int(n) for n in s) for s in shape)
    return tuple(int(n) for n in shape)


def shape_argument(value):
    """What a shape rule receives for a constant input: None and numbers as themselves, an
    array as its shape."""
    if value is None or np.ndim(value) == 0:
        return value
    return tuple(np.shape(value))
