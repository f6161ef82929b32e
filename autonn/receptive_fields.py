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

What each op does is declared on the op, ``Op(..., receptive_field=rule)`` (see
:class:`~autonn.ops.Op`): ``'elementwise'``, ``'none'`` or a function of the graph node giving
the window through which the output reads each input. The blocks declare theirs in their family
modules of :mod:`autonn.nn` (the filters' rules call :func:`filters_field` and
:func:`transposed_filters_field` below), NumPy's math per family in :mod:`autonn.math_ops`.
This module holds the geometry (the formulas above) and the walk over a graph of
:class:`~autonn.layer.Layer` objects, which reads only ops, options and filter shapes; the same
code serves ``Net.receptive_fields``, ``DagNN.var_receptive_fields`` and ``simplenn.display``.
An op without a rule (a custom op) leaves its output's receptive field unknown (None).
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
    """The receptive field of ``layer`` given those of its inputs (``fields`` by id), from its
    op's rule (see :class:`~autonn.ops.Op`): the paths through the inputs that depend on the
    measured input, each composed with its window, are overlaid."""
    if isinstance(layer, Selector):
        return fields[id(layer.inputs[0])]
    rule = layer.op.receptive_field
    if callable(rule):
        rule = rule(layer)
    if rule is None or rule == "none":
        return None
    windows = (IDENTITY,) * len(layer.inputs) if rule == "elementwise" else tuple(rule)
    paths = []
    for index, x in enumerate(layer.inputs):
        if not (isinstance(x, Layer) and id(x) in fields):
            continue  # does not depend on the measured input
        window = windows[index] if index < len(windows) else "none"
        if window is None:
            continue  # only the shape of this input is read
        if window == "none" or fields[id(x)] is None:
            return None  # read whole (filters computed from the input), or no window before
        paths.append(compose(fields[id(x)], window))
    return overlay(paths)


# ----------------------------------------------------------------------------- rules
# Functions the ops' rules call: the manual's formulas, in terms of a block's options.
def filters_field(filters, stride, pad, dilate=(1, 1)):
    """A convolution's window over its data input (manual 5.2): ``filters`` a Param or an array
    (K, C, kh, kw) whose shape is known before running, ``pad`` (top, bottom, left, right).
    ``'none'`` when the filters are computed by the graph (their size is not known)."""
    shape = _static_shape(filters)
    if shape is None:
        return "none"
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilate, shape[2:]))
    return filter_field(extent, stride, (pad[0], pad[2]))


def transposed_filters_field(filters, upsample, crop):
    """A transposed convolution's window over its data input (manual 5.3), ``filters``
    (C, K, kh, kw) and ``crop`` (top, bottom, left, right); ``'none'`` as
    :func:`filters_field`."""
    shape = _static_shape(filters)
    if shape is None:
        return "none"
    return transposed_field(shape[2:], upsample, (crop[0], crop[2]))


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
