"""Blocks that only move data: ``crop`` (``vl_nncrop``) and ``concat`` (``vl_nnconcat``)."""

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
)


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


def concat(xs, axis=1, *, dzdy=None):
    """Concatenation along an axis (default 1, the channels), ``vl_nnconcat``.

    ``y = [x_1, x_2, ...]`` along ``axis``; the derivative of each x_i is its slice of dz/dy.
    xs : sequence of arrays of equal rank and equal sizes except along ``axis``. With ``dzdy=``
    returns a tuple with one derivative per element of xs.
    """
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise TypeError(f"concat: xs must be a non-empty list or tuple of arrays, got {xs!r}")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"concat: axis must be an int, got {axis!r}")
    xs = tuple(xs)
    if any_layer(*xs):
        return concat_op(*xs, axis=axis)
    for i, x in enumerate(xs):
        check_float_array("concat", f"xs[{i}]", x)
    ndim = xs[0].ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"concat: axis {axis} out of range for arrays of rank {ndim}")
    axis %= ndim
    for i, x in enumerate(xs):
        if x.ndim != ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, xs[0].shape))
                                 if k != axis):
            raise ValueError(f"concat: xs[{i}] of shape {tuple(x.shape)} does not match xs[0] "
                             f"of shape {tuple(xs[0].shape)} except along axis {axis}")
    check_same_dtype("concat", **{f"xs[{i}]": x for i, x in enumerate(xs)})
    check_devices("concat", **{f"xs[{i}]": x for i, x in enumerate(xs)})
    if dzdy is not None:
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        check_dzdy("concat", dzdy, shape, like=xs[0], like_name="xs[0]")
        ders = concat_op(*xs, axis=axis, dzdy=dzdy)
        return ders if isinstance(ders, tuple) else (ders,)
    return concat_op(*xs, axis=axis)


def concat_forward(*xs, axis=1):
    return array_module(*xs).concatenate(xs, axis=axis)


def concat_backward(*xs_and_dzdy, axis=1, need):
    *xs, dzdy = xs_and_dzdy
    return split_along(dzdy, [x.shape[axis] for x in xs], axis, need, copy=True)


def _concat_shape(*shapes, axis=1):
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return tuple(shape)


concat_op = Op("concat", concat_forward, concat_backward, backward_accepts_need=True,
               shape=_concat_shape,
               receptive_field=concatenation_field, matconvnet_types=("dagnn.Concat",),
               input_names=("xs",), doc=concat.__doc__)
