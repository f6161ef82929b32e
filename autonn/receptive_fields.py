"""Receptive-field geometry (MatConvNet manual, chapter 5), for any autonn graph.

Output pixel ``i`` (0-based, per spatial axis) of a variable depends only on the input pixels

    offset + stride * i + [-(size - 1) / 2, (size - 1) / 2]

of a chosen input variable. ``stride``, ``offset`` and ``size`` are pairs (vertical,
horizontal). The manual counts from 1 and calls them alpha, beta and Delta; here pixels count
from 0, so ``offset = beta - 1`` and everything else is the same:

- a filter (conv, pool) of extent ``k' = dilate (k - 1) + 1``, stride S and top padding P:
  ``stride = S``, ``offset = (k' - 1) / 2 - P``, ``size = k'`` (manual 5.2);
- a transposed convolution with upsampling U, top crop C and filter height k:
  ``stride = 1 / U``, ``offset = (2 C - k + 1) / (2 U)``, ``size = (k - 1) / U + 1`` (manual 5.3;
  a slight enlargement, since the true set cannot be written as one sliding window);
- element-wise blocks (ReLU, batch normalisation, LRN, sums, ...) are 1 x 1 filters;
- composition ``h = g o f`` (manual 5.5): ``stride = s_f s_g``, ``offset = s_f o_g + o_f``,
  ``size = s_f (size_g - 1) + size_f``;
- overlay of several paths from the input into one variable (manual 5.6): the strides must
  agree, and the union of the windows gives the new offset and size. Paths with different
  strides, or through blocks with no sliding-window geometry (reshape, global sums, ROI pooling,
  bilinear sampling), leave the receptive field undefined (``None``).

The functions here read only the graph of :class:`~autonn.layer.Layer` objects (ops, options and
filter shapes), so the same code serves ``Net.receptive_fields``, ``DagNN.var_receptive_fields``
and ``simplenn.display``.
"""

import math
from typing import NamedTuple

import numpy as np

from .layer import Input, Layer, Param, Selector, topological_order


def _field(size, stride, offset):
    """A ReceptiveField with whole numbers stored as ints (so they print as such)."""
    return ReceptiveField(*(tuple(_tidy_number(float(v)) for v in pair)
                            for pair in (size, stride, offset)))


class ReceptiveField(NamedTuple):
    """Receptive field of a variable with respect to an input: ``(size, stride, offset)``, each a
    pair ``(vertical, horizontal)``; offsets are 0-based input pixel coordinates of the centre
    of the window of output pixel ``(0, 0)``."""

    size: tuple
    stride: tuple
    offset: tuple

    def window(self, i, axis=0):
        """The (first, last) input pixel, possibly fractional, affecting output pixel ``i`` along
        ``axis`` (0 vertical, 1 horizontal)."""
        centre = self.offset[axis] + self.stride[axis] * i
        half = (self.size[axis] - 1) / 2
        return centre - half, centre + half

    def __str__(self):
        return (f"size {_pair_text(self.size)}, stride {_pair_text(self.stride)}, "
                f"offset {_pair_text(self.offset)}")


IDENTITY = ReceptiveField((1, 1), (1, 1), (0, 0))

# Ops that act on each spatial position separately (pixel i of the output reads pixel i of each
# input): 1 x 1 filters in the manual's terms. Parameters broadcast over space do not depend on
# the input, so they do not matter.
ELEMENTWISE_OPS = {
    # blocks
    "relu", "sigmoid", "softmax", "normalize", "bnorm", "bnorm_train", "bnorm_given_moments",
    "dropout", "dropout_mask", "noffset", "pdist", "loss_map",
    # NumPy math on Layers
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "negative",
    "positive", "exp", "log", "sqrt", "square", "reciprocal", "sin", "cos", "tan", "tanh", "sinh",
    "cosh", "arctan", "absolute", "sign", "floor", "ceil", "rint", "clip", "where",
    "weighted_sum", "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
}


def receptive_fields(outputs, input_layer=None):
    """Receptive fields of every variable of the graph ending in ``outputs`` with respect to
    ``input_layer`` (a Layer of that graph; by default its only :class:`~autonn.layer.Input`).

    Returns ``{Layer: ReceptiveField or None}`` for the variables that depend on the input (the
    input itself included, with the identity field); ``None`` marks a variable whose dependence
    has no sliding-window form.
    """
    if isinstance(outputs, Layer):
        outputs = [outputs]
    order = topological_order(list(outputs))
    if input_layer is None:
        inputs = [layer for layer in order if isinstance(layer, Input)]
        if len(inputs) != 1:
            raise ValueError(f"receptive_fields: the graph has {len(inputs)} inputs "
                             f"({[x.name for x in inputs]}); say which one to measure against")
        input_layer = inputs[0]
    if not any(layer is input_layer for layer in order):
        raise ValueError(f"receptive_fields: '{getattr(input_layer, 'name', input_layer)}' is "
                         f"not a variable of this graph")
    fields = {id(input_layer): IDENTITY}
    result = {input_layer: IDENTITY}
    for layer in order:
        if layer is input_layer or isinstance(layer, (Input, Param)):
            continue
        sources = [x for x in layer.inputs if isinstance(x, Layer) and id(x) in fields]
        if not sources:
            continue  # does not depend on the input
        field = _layer_field(layer, fields)
        fields[id(layer)] = field
        result[layer] = field
    return result


def net_receptive_fields(net, var=None):
    """``Net.receptive_fields``: ``{variable name: ReceptiveField or None}`` with respect to
    ``var`` (a name or Layer of the net; by default its only Input), for the variables that
    depend on it."""
    layers = topological_order(list(net.outputs))
    if isinstance(var, str):
        matches = [layer for layer in layers if layer.name == var]
        if not matches:
            raise KeyError(f"Net.receptive_fields: no variable named {var!r}; inputs are "
                           f"{sorted(net.inputs)}")
        var = matches[0]
    fields = receptive_fields(net.outputs, var)
    return {layer.name: field for layer, field in fields.items()}


def _layer_field(layer, fields):
    """The receptive field of ``layer`` given those of its inputs (``fields`` by id)."""
    if isinstance(layer, Selector):
        return fields[id(layer.inputs[0])]
    name = layer.op.name
    if name in ("conv", "convt", "pool"):
        data = layer.inputs[0]
        # Filters or other arguments computed from the input: no sliding window.
        if any(isinstance(x, Layer) and id(x) in fields for x in layer.inputs[1:]):
            return None
        inner = fields.get(id(data)) if isinstance(data, Layer) else None
        block = block_field(layer)
        if inner is None or block is None:
            return None
        return compose(inner, block)
    if name == "spnorm":
        ph, pw = layer.options["param"][:2]
        block = ReceptiveField((ph, pw), (1, 1), (_window_centre(ph), _window_centre(pw)))
        return _overlay_inputs(layer, fields, block)
    if name == "crop":
        top, _, left, _ = layer.options["crop"]
        return _overlay_inputs(layer, fields, ReceptiveField((1, 1), (1, 1), (top, left)))
    if name in ("concat", "concatenate") and layer.options.get("axis", 1) in (0, 1, -4, -3):
        return _overlay_inputs(layer, fields, IDENTITY)
    if name == "normalizelp" and not layer.options.get("spatial", False):
        return _overlay_inputs(layer, fields, IDENTITY)
    if name == "crop_like":  # dagnn.Crop: crops its first input to the size of the second
        top, left = layer.options["offset"]
        data = layer.inputs[0]
        if not (isinstance(data, Layer) and id(data) in fields) or fields[id(data)] is None:
            return None
        return compose(fields[id(data)], ReceptiveField((1, 1), (1, 1), (top, left)))
    if name in ELEMENTWISE_OPS:
        return _overlay_inputs(layer, fields, IDENTITY)
    return None


def block_field(layer):
    """The receptive field of one conv, convt or pool node with respect to its data input, or
    None when its filter shape is not known before running (filters computed by the graph)."""
    options = layer.options
    if layer.op.name == "pool":
        (kh, kw), (sh, sw), pad = options["size"], options["stride"], options["pad"]
        return filter_field((kh, kw), (sh, sw), (pad[0], pad[2]))
    filters = _static_shape(layer.inputs[1])
    if filters is None:
        return None
    kh, kw = filters[2], filters[3]
    if layer.op.name == "conv":
        dh, dw = options["dilate"]
        pad = options["pad"]
        return filter_field((dh * (kh - 1) + 1, dw * (kw - 1) + 1), options["stride"],
                            (pad[0], pad[2]))
    (uh, uw), crop = options["upsample"], options["crop"]
    return transposed_field((kh, kw), (uh, uw), (crop[0], crop[2]))


def filter_field(extent, stride, pad_before):
    """A simple filter of ``extent`` pixels (dilation included), ``stride`` and top/left pad."""
    return _field(extent, stride, tuple((k - 1) / 2 - p for k, p in zip(extent, pad_before)))


def transposed_field(kernel, upsample, crop_before):
    """A transposed convolution (manual 5.3, in 0-based coordinates)."""
    return _field(
        tuple((k - 1) / u + 1 for k, u in zip(kernel, upsample)),
        tuple(1 / u for u in upsample),
        tuple((2 * c - k + 1) / (2 * u) for k, u, c in zip(kernel, upsample, crop_before)))


def compose(inner, outer):
    """Field of ``h = outer o inner``: ``inner`` relates the input to an intermediate
    variable, ``outer`` the intermediate variable to h (manual 5.5)."""
    return _field(
        tuple(si * (zo - 1) + zi for si, zo, zi in zip(inner.stride, outer.size, inner.size)),
        tuple(si * so for si, so in zip(inner.stride, outer.stride)),
        tuple(si * oo + oi for si, oo, oi in zip(inner.stride, outer.offset, inner.offset)))


def overlay(fields):
    """Combine the fields of several paths into one variable (manual 5.6): the smallest window
    holding all of them. None when a path is undefined or the strides disagree."""
    fields = list(fields)
    if not fields or any(f is None for f in fields):
        return None
    stride = fields[0].stride
    if any(not _close(f.stride, stride) for f in fields):
        return None
    size, offset = [], []
    for axis in range(2):
        first = min(f.offset[axis] - (f.size[axis] - 1) / 2 for f in fields)
        last = max(f.offset[axis] + (f.size[axis] - 1) / 2 for f in fields)
        size.append(_tidy_number(last - first + 1))
        offset.append(_tidy_number((first + last) / 2))
    return _field(size, stride, offset)


# ----------------------------------------------------------------------------- helpers
def _overlay_inputs(layer, fields, block):
    paths = [compose(fields[id(x)], block) if fields[id(x)] is not None else None
             for x in layer.inputs if isinstance(x, Layer) and id(x) in fields]
    return overlay(paths)


def _window_centre(size):
    """Centre, relative to the pixel, of spnorm's window ``-floor((k-1)/2) .. k-1-floor(...)``."""
    before = (size - 1) // 2
    return (size - 1 - 2 * before) / 2


def _static_shape(x):
    if isinstance(x, Param):
        return tuple(np.shape(x.value))
    if isinstance(x, Layer) or x is None:
        return None
    return tuple(np.shape(x))


def _close(a, b):
    return all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12) for u, v in zip(a, b))


def _tidy_number(value):
    """Exact integers print as integers."""
    return int(round(value)) if math.isclose(value, round(value), abs_tol=1e-9) else value


def _pair_text(pair):
    return "×".join(f"{v:g}" for v in pair)
