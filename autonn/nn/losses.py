"""Losses: ``loss`` (MatConvNet's ``vl_nnloss``, ten types) and ``softmaxloss``.

Labels come in two kinds, chosen by the loss type:

- categorical (classerror, topkerror, log, softmaxlog, mhinge, mshinge): 0-based class labels
  shaped (N,) (one label per image, repeated over space as MatConvNet does), (N, H, W) or
  (N, 1, H, W); a negative label means "ignore this location" (MatConvNet's label 0);
- attributes (binaryerror, binarylog, logistic, hinge): +1/-1 per prediction, shaped like x;
  0 means "ignore".

The categorical losses run on the C kernels of ``kernels/loss.h`` (softmaxlog, the one networks
train with, fused and vectorised); the attribute losses are element-wise array expressions. The per-location losses ``t`` are multiplied by the instance weights (zero where ignored) and
summed; with ``normalise=True`` (the default) the sum is divided by the batch size N.
"""

import numpy as np

from .. import kernels
from ..backend import array_module
from ..ops import Op
from ._arguments import (
    any_layer,
    as_flag,
    as_real,
    check_devices,
    check_dzdy,
    check_float_array,
    check_same_dtype,
    is_array,
    takes_name,
)
from .activation import position_blocks

CATEGORICAL = ("classerror", "topkerror", "log", "softmaxlog", "mhinge", "mshinge")
ATTRIBUTE = ("binaryerror", "binarylog", "logistic", "hinge")
# Probabilities below this are clamped by 'log' and 'binarylog' (MatConvNet's 1e-8), so that a
# probability of exactly 0 gives a large finite loss instead of inf.
MIN_PROBABILITY = 1e-8


@takes_name
def loss(x, c, *, loss="softmaxlog", instance_weights=None, topk=5, threshold=0.0,
         normalise=True, dzdy=None):
    """Classification and attribute losses, ``vl_nnloss``; returns a scalar (shape ()).

    Per location, with x_c the score of the true class c (categorical) or c = +-1 (attributes):

    - classerror: ``[argmax_k x_k != c]``;  topkerror: 1 when c is not among the top-k scores;
    - log: ``-log x_c`` (x holds probabilities);  softmaxlog: ``log sum_k exp x_k - x_c``;
    - mhinge: ``max(0, 1 - x_c)``;  mshinge: ``max(0, 1 - x_c + max_{k != c} x_k)``;
    - binaryerror: ``[sign(x - threshold) != c]``;  binarylog: ``-log(c (x - 1/2) + 1/2)``;
    - logistic: ``log(1 + exp(-c x))``;  hinge: ``max(0, 1 - c x)``.

    ``y = sum w t`` (divided by N when ``normalise``), w the instance weights times the
    not-ignored mask. Derivatives are MatConvNet's: zero for the error counts; for log
    ``-w / max(x_c, 1e-8)`` at the true class; for softmaxlog ``w (softmax(x) - onehot(c))``; ...
    Only x receives a derivative (``dzdy=`` returns ``(dx, None)``).

    x : (N, C, H, W) or (N, C) scores.
    instance_weights : broadcast to (N, 1, H, W) for class labels (an array shaped like c is
        taken location by location), to x's shape for attributes.
    """
    name = "loss"
    kind = str(loss).lower()
    if kind not in CATEGORICAL + ATTRIBUTE:
        raise ValueError(f"{name}: unknown loss type {loss!r}; expected one of "
                         f"{', '.join(CATEGORICAL + ATTRIBUTE)}")
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"{name}: topk must be a positive integer, got {topk!r}")
    options = {"loss": kind, "topk": int(topk),
               "threshold": as_real(name, "threshold", threshold),
               "normalise": as_flag(name, "normalise", normalise)}
    inputs = (x, c) if instance_weights is None else (x, c, instance_weights)
    if any_layer(*inputs):
        return loss_op(*inputs, dzdy=dzdy, **options)
    check_float_array(name, "x", x, ndim=(2, 4))
    if not is_array(c):
        raise TypeError(f"{name}: labels c must be a NumPy or CuPy array, got {type(c).__name__}")
    if instance_weights is not None:
        check_float_array(name, "instance_weights", instance_weights)
        check_same_dtype(name, x=x, instance_weights=instance_weights)
    check_devices(name, x=x, c=c, instance_weights=instance_weights)
    # Labels and weights are checked by prepare_labels, which the forward and the backward
    # both start with (so graphs check them too).
    if dzdy is not None:
        check_dzdy(name, dzdy, ())         # a real number: the loss is a scalar
        ders = loss_op(*inputs, dzdy=dzdy, **options)
        return ders[0], None
    return loss_op(*inputs, **options)


@takes_name
def softmaxloss(x, c, *, instance_weights=None, normalise=True, dzdy=None):
    """Softmax log-loss, ``vl_nnsoftmaxloss``: the same as ``loss(x, c, loss='softmaxlog')``.

    ``y = sum_locations w (log sum_k exp x_k - x_c)`` (divided by N when ``normalise``);
    ``dz/dx = dzdy w (softmax(x) - onehot(c))``.
    """
    return loss(x, c, loss="softmaxlog", instance_weights=instance_weights,
                normalise=normalise, dzdy=dzdy)


# --------------------------------------------------------------------------- labels
def prepare_labels(x, c, instance_weights, kind):
    """Bring scores, labels and weights to a common NCHW form.

    Returns ``(x4, labels, weights)``: x as (N, C, H, W); for categorical losses ``labels`` is an
    int64 (N, 1, H, W) array of classes (ignored locations read class 0) and ``weights`` is
    (N, 1, H, W); for attribute losses ``labels`` is c as x4's dtype and ``weights`` x4's shape.
    ``weights`` is zero at ignored locations.
    """
    xp = array_module(x)
    x4 = x.reshape(x.shape + (1, 1)) if x.ndim == 2 else x
    n, channels, height, width = x4.shape
    c_shape = tuple(c.shape)
    if c.dtype.kind not in "iuf" or c.dtype == np.float16:
        raise TypeError(f"loss: labels c must be integers or float32/float64, got {c.dtype}")
    if c.dtype.kind == "f" and not bool(xp.isfinite(c).all()):
        raise ValueError(f"loss: labels c contain NaN or infinity (shape {c_shape})")
    if instance_weights is not None and not bool(xp.isfinite(instance_weights).all()):
        raise ValueError(f"loss: instance_weights contain NaN or infinity (shape "
                         f"{tuple(instance_weights.shape)})")

    if kind in CATEGORICAL:
        label_shape = (n, 1, height, width)
        if c_shape == (n,):
            # One label per image: checked and converted once, then repeated over space.
            compact = c.reshape(n, 1, 1, 1)
        elif c_shape in ((n, height, width), label_shape):
            compact = c.reshape(label_shape)
        else:
            raise ValueError(f"loss: labels c for {kind!r} must have shape ({n},), "
                             f"({n}, {height}, {width}) or {label_shape} to match x of shape "
                             f"{tuple(x.shape)}, got {c_shape}")
        if c.dtype.kind == "f" and bool((compact != xp.floor(compact)).any()):
            raise ValueError(f"loss: class labels c must be whole numbers (shape {c_shape})")
        if compact.size and int(compact.max()) >= channels:
            raise ValueError(f"loss: class label {int(compact.max())} out of range for x with "
                             f"{channels} channels (labels are 0-based; shape of c {c_shape})")
        labels = _broadcast(xp, xp.maximum(compact, 0).astype(np.int64, copy=False),
                            label_shape)
        weights = _broadcast(xp, (compact >= 0).astype(x.dtype), label_shape)
        weights = _weigh(weights, instance_weights, c_shape, label_shape, x.shape)
    else:
        if c_shape != tuple(x.shape):
            raise ValueError(f"loss: attribute labels c for {kind!r} must have the shape of x "
                             f"{tuple(x.shape)}, got {c_shape}")
        if bool(((c != 1) & (c != -1) & (c != 0)).any()):
            raise ValueError(f"loss: attribute labels c for {kind!r} must be +1, -1 or 0 "
                             f"(ignore), shape {c_shape}")
        labels = c.reshape(x4.shape).astype(x.dtype)
        weights = (labels != 0).astype(x.dtype)
        weights = _weigh(weights, instance_weights, c_shape, x4.shape, x.shape)
    return x4, labels, weights


def _broadcast(xp, array, shape):
    """``broadcast_to``, skipped when the shape is already right ((N, C) scores: one position per
    image; this loss is often called on small arrays, where the call is a noticeable cost)."""
    return array if array.shape == shape else xp.broadcast_to(array, shape)


def _weigh(weights, instance_weights, c_shape, target_shape, x_shape):
    if instance_weights is None:
        return weights
    w = instance_weights
    if tuple(w.shape) == c_shape:
        w = w.reshape(target_shape if w.size == np.prod(target_shape) else
                      (target_shape[0],) + (1,) * (len(target_shape) - 1))
    elif w.ndim == 1 and w.shape[0] == target_shape[0]:     # one weight per image
        w = w.reshape((target_shape[0],) + (1,) * (len(target_shape) - 1))
    elif len(x_shape) == 2 and w.ndim == 2:
        w = w.reshape(tuple(w.shape) + (1, 1))
    try:
        if np.broadcast_shapes(tuple(w.shape), target_shape) != tuple(target_shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"loss: instance_weights of shape {tuple(instance_weights.shape)} do "
                         f"not broadcast to {tuple(target_shape)} (x {tuple(x_shape)}, "
                         f"c {c_shape})") from None
    return weights * w


# --------------------------------------------------------------------------- forward
def loss_forward(x, c, instance_weights=None, *, loss="softmaxlog", topk=5, threshold=0.0,
                 normalise=True):
    xp = array_module(x)
    x4, labels, weights = prepare_labels(x, c, instance_weights, loss)
    if loss in CATEGORICAL:
        if loss == "softmaxlog":
            terms = _softmaxlog_kernel("softmaxlog_forward", x4, labels, weights)
        else:
            terms = _categorical_kernel("categorical_forward", x4, labels, weights, loss,
                                        topk=topk)
        total = terms.sum(dtype=np.float64)
        return xp.asarray(total / x4.shape[0] if normalise else total, dtype=x.dtype)
    if loss == "binaryerror":
        t = xp.sign(x4 - threshold) != labels
    elif loss == "binarylog":
        t = -xp.log(xp.maximum(labels * (x4 - 0.5) + 0.5, MIN_PROBABILITY))
    elif loss == "logistic":
        # log(1 + exp(a)), a = -c x, evaluated as max(a, 0) + log(exp(-|a|) + 1).
        a = -labels * x4
        t = xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))
    else:  # hinge
        t = xp.maximum(0, 1 - labels * x4)
    # Ignored locations carry weight 0; where() keeps a non-finite t there out of the sum.
    total = xp.where(weights != 0, weights * t, 0).sum()
    if normalise:
        total = total / x4.shape[0]
    return xp.asarray(total, dtype=x.dtype)


# The `kind` codes of the categorical kernels in kernels/loss.h.
_CATEGORICAL_KIND = {"classerror": 0, "topkerror": 1, "log": 2, "mhinge": 3, "mshinge": 4}


def _categorical_kernel(name, x4, labels, weights, loss, *, topk=5, scale=None):
    """classerror, topkerror, log, mhinge and mshinge on the kernels of ``kernels/loss.h``: one
    work item per (n, h, w) position, giving its weighted term (forward) or dx (backward)."""
    xp = array_module(x4)
    x4 = xp.ascontiguousarray(x4)
    n, channels, height, width = x4.shape
    positions, spatial = n * height * width, height * width
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    weights = xp.ascontiguousarray(weights, dtype=x4.dtype)
    kind = _CATEGORICAL_KIND[loss]
    if scale is None:
        terms = xp.empty(positions, dtype=x4.dtype)
        kernels.launch(name, positions, x4, labels, weights, terms, channels, spatial, kind,
                       topk, positions)
        return terms
    dx = xp.empty_like(x4)
    kernels.launch(name, positions, x4, labels, weights, dx, channels, spatial, kind, scale,
                   positions)
    return dx


def _softmaxlog_kernel(name, x4, labels, weights, scale=None):
    """The fused softmax log-loss kernels of ``kernels/loss.h``: per-position weighted terms
    (forward) or dx (backward), over the position blocks of the softmax kernels."""
    xp = array_module(x4)
    x4 = xp.ascontiguousarray(x4)
    blocks, channels, spatial, block, positions = position_blocks(x4)
    labels = xp.ascontiguousarray(labels, dtype=np.int64)
    weights = xp.ascontiguousarray(weights, dtype=x4.dtype)
    if scale is None:
        terms = xp.empty(positions, dtype=x4.dtype)
        kernels.launch(name, blocks, x4, labels, weights, terms, channels, spatial, block,
                       positions, blocks)
        return terms
    dx = xp.empty_like(x4)
    kernels.launch(name, blocks, x4, labels, weights, dx, channels, spatial, block, scale,
                   positions, blocks)
    return dx


# --------------------------------------------------------------------------- backward
def loss_backward(x, c, instance_weights=None, dzdy=1.0, *, loss="softmaxlog", topk=5,
                  threshold=0.0, normalise=True):
    xp = array_module(x)
    x4, labels, weights = prepare_labels(x, c, instance_weights, loss)
    scale = float(dzdy / x4.shape[0] if normalise else dzdy)
    if loss == "softmaxlog":
        dx = _softmaxlog_kernel("softmaxlog_backward", x4, labels, weights, scale=scale)
    elif loss in CATEGORICAL:
        dx = _categorical_kernel("categorical_backward", x4, labels, weights, loss,
                                 scale=scale)
    elif loss == "binaryerror":
        dx = xp.zeros_like(x4)
    else:
        w = (weights * scale).astype(x.dtype, copy=False)
        if loss == "binarylog":
            p = labels * (x4 - 0.5) + 0.5
            dx = -w * labels / xp.maximum(p, MIN_PROBABILITY)
        elif loss == "logistic":
            # d/dx log(1 + exp(-c x)) = -c sigmoid(-c x), a sigmoid that never overflows.
            a = -labels * x4
            e = xp.exp(-xp.abs(a))
            dx = -w * labels * xp.where(a >= 0, 1, e) / (1 + e)
        else:  # hinge
            dx = -w * labels * (labels * x4 < 1)
    return dx.astype(x.dtype, copy=False).reshape(x.shape)


def _loss_backward(x, c, *rest, **options):
    """Adapter: the op's inputs are (x, c) or (x, c, instance_weights), then dzdy."""
    instance_weights = rest[0] if len(rest) == 2 else None
    dzdy = rest[-1]
    dx = loss_backward(x, c, instance_weights, dzdy, **options)
    return (dx, None) if len(rest) == 1 else (dx, None, None)


loss_op = Op("loss", loss_forward, _loss_backward, backward_needs_inputs=None,
             shape=lambda *shapes, **options: (), receptive_field="none",
             matconvnet_types=("softmaxloss", "loss", "dagnn.Loss"),
             input_names=("x", "c", "instance_weights"), doc=loss.__doc__)
