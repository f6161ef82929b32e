"""Blocks that only move data: ``crop`` (``vl_nncrop``) and ``concat`` (``vl_nnconcat``)."""

import numpy as np

from ..backend import array_module
from ..math_ops import concatenation_field, split_along
from ..ops import Op
from ..receptive_fields import ReceptiveField
from ._arguments import (
    any_layer,
    as_quad,
    check_devices,
    check_dzdy,
    check_float_array,
    check_same_dtype,
    is_array,
    takes_name,
)


@takes_name
def crop(x, crop, *, dzdy=None):
    """Spatial crop, ``vl_nncrop``: ``y = x[:, :, top:H-bottom, left:W-right]``.

    crop : int, pair ``(h, w)`` or ``(top, bottom, left, right)``. The derivative pads dz/dy
    back with zeros.
    """
    crop = as_quad("crop", "crop", crop)
    if not any_layer(x):
        check_float_array("crop", "x", x, ndim=4)
        top, bottom, left, right = crop
        if top + bottom >= x.shape[2] or left + right >= x.shape[3]:
            raise ValueError(f"crop: crop {crop} leaves nothing of x with shape "
                             f"{tuple(x.shape)}")
        check_dzdy("crop", dzdy, _crop_shape(x.shape, crop=crop), like=x)
    return crop_op(x, crop=crop, dzdy=dzdy)


def _crop_shape(x_shape, *, crop):
    top, bottom, left, right = crop
    return (x_shape[0], x_shape[1], x_shape[2] - top - bottom, x_shape[3] - left - right)


def _crop_window(shape, crop):
    top, bottom, left, right = crop
    return (slice(None), slice(None), slice(top, shape[2] - bottom), slice(left, shape[3] - right))


def crop_forward(x, *, crop):
    return x[_crop_window(x.shape, crop)].copy()


def crop_backward(x, dzdy, *, crop):
    # x's size follows from dzdy's and the crop, so the tape may have released x
    # (backward_needs_inputs=())
    top, bottom, left, right = crop
    N, C, Ho, Wo = dzdy.shape
    dx = array_module(dzdy).zeros((N, C, Ho + top + bottom, Wo + left + right), dzdy.dtype)
    dx[:, :, top:top + Ho, left:left + Wo] = dzdy
    return dx


crop_op = Op("crop", crop_forward, crop_backward, backward_needs_inputs=(),
             shape=_crop_shape,
             # a 1 x 1 window, shifted by the top and left crop
             receptive_field=lambda node: (ReceptiveField((1, 1), (1, 1),
                                                          node.options["crop"][::2]),),
             input_names=("x",), doc=crop.__doc__)


@takes_name
def concat(xs, axis=1, input_sizes=None, *, dzdy=None):
    """Concatenation along an axis (default 1, the channels), ``vl_nnconcat``.

    ``y = [x_1, x_2, ...]`` along ``axis``; the derivative of each x_i is its slice of dz/dy.
    xs : sequence of arrays of equal rank and equal sizes except along ``axis``. With ``dzdy=``
        returns a tuple with one derivative per element of xs.
    input_sizes : MatConvNet's ``inputSizes``: one entry per input, its shape or its size along
        ``axis``. The backward then splits dz/dy by these sizes, so it needs no inputs:
        ``nn.concat([], axis, input_sizes=[s1, s2], dzdy=dy)`` (or xs all None). Where the
        inputs are given too (eagerly, or in a graph) they must have these sizes.
    """
    if not isinstance(xs, (list, tuple)) or (len(xs) == 0 and input_sizes is None):
        raise TypeError(f"concat: xs must be a non-empty list or tuple of arrays, got {xs!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"concat: axis must be an int, got {axis!r}")
    axis = int(axis)
    xs = tuple(xs)
    if input_sizes is not None:
        input_sizes = _as_input_sizes(input_sizes)
        if xs and len(xs) != len(input_sizes):
            raise ValueError(f"concat: {len(input_sizes)} input_sizes for {len(xs)} inputs")
    if any_layer(*xs):
        options = {"axis": axis} if input_sizes is None else {"axis": axis,
                                                              "input_sizes": input_sizes}
        return concat_op(*xs, **options)
    if input_sizes is not None and all(x is None for x in xs):
        if dzdy is None:
            raise ValueError("concat: the forward needs the arrays xs (input_sizes alone serve "
                             "the backward, with dzdy=)")
        return _split_by_sizes(dzdy, axis, input_sizes)
    if any(x is None for x in xs):
        raise TypeError("concat: xs must be all arrays, or all None (with input_sizes and "
                        "dzdy=)")
    for i, x in enumerate(xs):
        check_float_array("concat", f"xs[{i}]", x)
    ndim = xs[0].ndim
    axis = _check_axis(axis, ndim)
    for i, x in enumerate(xs):
        if x.ndim != ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, xs[0].shape))
                                 if k != axis):
            raise ValueError(f"concat: xs[{i}] of shape {tuple(x.shape)} does not match xs[0] "
                             f"of shape {tuple(xs[0].shape)} except along axis {axis}")
    check_same_dtype("concat", **{f"xs[{i}]": x for i, x in enumerate(xs)})
    check_devices("concat", **{f"xs[{i}]": x for i, x in enumerate(xs)})
    if input_sizes is not None:
        _check_inputs_have_sizes(xs, axis, input_sizes)
    if dzdy is not None:
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        check_dzdy("concat", dzdy, shape, like=xs[0], like_name="xs[0]")
        ders = concat_op(*xs, axis=axis, dzdy=dzdy)
        return ders if isinstance(ders, tuple) else (ders,)
    return concat_op(*xs, axis=axis)


def _check_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise ValueError(f"concat: axis {axis} out of range for arrays of rank {ndim}")
    return axis % ndim


def _as_input_sizes(input_sizes):
    """input_sizes as a tuple with, per input, its shape (a tuple of ints) or its size along
    the axis (an int)."""
    if isinstance(input_sizes, (str, bytes)) or not isinstance(input_sizes, (list, tuple)):
        raise TypeError(f"concat: input_sizes must be a sequence of shapes or sizes, one per "
                        f"input, got {input_sizes!r}")
    if len(input_sizes) == 0:
        raise ValueError("concat: input_sizes must be a non-empty sequence of shapes or sizes")
    sizes = []
    for i, size in enumerate(input_sizes):
        if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
            entries = (int(size),)
        elif isinstance(size, (list, tuple)) and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                for v in size):
            entries = tuple(int(v) for v in size)
        else:
            raise TypeError(f"concat: input_sizes[{i}] must be a shape (a tuple of ints) or an "
                            f"int, got {size!r}")
        if any(v < 0 for v in entries):
            raise ValueError(f"concat: input_sizes[{i}] must be non-negative, got {size!r}")
        sizes.append(entries[0] if isinstance(size, (int, np.integer)) else entries)
    return tuple(sizes)


def _size_along(size, axis):
    return size if isinstance(size, int) else size[axis]


def _check_inputs_have_sizes(xs, axis, input_sizes):
    """Each input has the shape (or the size along ``axis``) its entry of input_sizes says."""
    for i, (x, size) in enumerate(zip(xs, input_sizes)):
        if isinstance(size, int):
            if x.shape[axis] != size:
                raise ValueError(f"concat: input_sizes[{i}] {size} is not the size of xs[{i}] "
                                 f"along axis {axis} (shape {tuple(x.shape)})")
        elif tuple(x.shape) != size:
            raise ValueError(f"concat: input_sizes[{i}] {size} is not the shape of xs[{i}] "
                             f"{tuple(x.shape)}")


def _split_by_sizes(dzdy, axis, input_sizes):
    """The backward without inputs: dz/dy cut along ``axis`` by input_sizes (copies)."""
    if not is_array(dzdy):
        raise TypeError(f"concat: dzdy must be a NumPy or CuPy array, got "
                        f"{type(dzdy).__name__}")
    check_float_array("concat", "dzdy", dzdy)
    axis = _check_axis(axis, dzdy.ndim)
    for i, size in enumerate(input_sizes):
        if isinstance(size, tuple) and (len(size) != dzdy.ndim or any(
                a != b for k, (a, b) in enumerate(zip(size, dzdy.shape)) if k != axis)):
            raise ValueError(f"concat: input_sizes[{i}] {size} does not match dzdy of shape "
                             f"{tuple(dzdy.shape)} except along axis {axis}")
    along = tuple(_size_along(size, axis) for size in input_sizes)
    if sum(along) != dzdy.shape[axis]:
        raise ValueError(f"concat: input_sizes {along} add up to {sum(along)} along axis "
                         f"{axis}, but dzdy has {dzdy.shape[axis]} (shape "
                         f"{tuple(dzdy.shape)})")
    return split_along(dzdy, along, axis, (True,) * len(along), copy=True)


def concat_forward(*xs, axis=1, input_sizes=None):
    if input_sizes is not None:
        _check_inputs_have_sizes(xs, axis % xs[0].ndim, input_sizes)
    return array_module(*xs).concatenate(xs, axis=axis)


def concat_backward(*xs_and_dzdy, axis=1, need, input_sizes=None):
    *xs, dzdy = xs_and_dzdy
    if input_sizes is not None:
        sizes = [_size_along(size, axis % dzdy.ndim) for size in input_sizes]
    else:
        sizes = [x.shape[axis] for x in xs]
    return split_along(dzdy, sizes, axis, need, copy=True)


def _concat_shape(*shapes, axis=1, input_sizes=None):
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return tuple(shape)


concat_op = Op("concat", concat_forward, concat_backward, backward_accepts_need=True,
               shape=_concat_shape,
               receptive_field=concatenation_field, matconvnet_types=("dagnn.Concat",),
               input_names=("xs",), doc=concat.__doc__)
