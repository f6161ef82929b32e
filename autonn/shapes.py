"""Shape inference: the shape of every variable of a graph, without computing it.

Ops with a shape rule (``Op.shape_rule``) use it; the others run their forward on zeros.
"""

import numpy as np

from .layer import Input, Layer, Param, Selector, topological_order


def variable_shapes(outputs, input_shapes, *, where="var_sizes"):
    """The shape of every variable of the graph ending in ``outputs`` without computing it.

    ``input_shapes`` maps Input Layers to shapes. Ops with a shape rule use it; the others run on
    zeros (cheap for the element-wise ops that lack one). Returns ``{Layer: shape}``; a variable
    whose inputs have unknown shapes is left out.
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
                shapes[layer] = tuple(shapes[node][layer.index])
            continue
        arguments = []
        known = True
        for x in layer.inputs:
            if isinstance(x, Layer):
                if x not in shapes:
                    known = False
                    break
                arguments.append(shapes[x])
            elif x is None or np.ndim(x) == 0:
                arguments.append(x)
            else:
                arguments.append(tuple(np.shape(x)))
        if not known:
            continue
        try:
            shape = layer.op.output_shape(*arguments, **layer.options)
        except Exception as error:
            raise ValueError(f"{where}: cannot infer the size of '{layer.name}' "
                             f"({layer.op.name}) from input sizes {arguments}: {error}") from None
        shapes[layer] = shape if layer.op.num_outputs > 1 else tuple(shape)
    return shapes
