"""The p-distance block, MatConvNet's ``vl_nnpdist``."""

import numpy as np

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
    takes_name,
)


@takes_name
def pdist(x, x0, p, *, no_root=False, epsilon=1e-6, aggregate=False, instance_weights=None,
          dzdy=None):
    """p-distance of every feature vector of x to the one of x0, ``vl_nnpdist``.

    ``y = (sum_c |x_c - x0_c|^p)^(1/p)`` at each (n, i, j), shaped (N, 1, H, W);
    ``no_root=True`` drops the 1/p power (``p=2`` then gives the squared L2 distance). The result
    is multiplied by ``instance_weights`` (broadcast to (N, 1, H, W)) and, with ``aggregate``,
    summed into a scalar. Derivative (``d = x - x0``), as MatConvNet's code:

    - p = 1: ``dz/dy sign(d)``;  p = 2: ``dz/dy d / sqrt(max(sum d^2, epsilon))``;
    - p < 1: ``dz/dy (sum |d|^p)^((1-p)/p) max(|d|, epsilon)^(p-1) sign(d)``;
    - p > 1: ``dz/dy max(sum |d|^p, epsilon)^((1-p)/p) |d|^(p-1) sign(d)``;

    with no_root: ``p dz/dy |d|^(p-1) sign(d)`` (|d| bounded below by epsilon when p < 1).
    ``dz/dx0 = -dz/dx`` summed over the axes along which x0 broadcasts.

    x : (N, C, H, W) or (N, C); x0 : x's shape, or broadcasting to it with the same C, e.g.
    (1, C, 1, 1). ``dzdy=`` returns ``(dx, dx0)``.
    """
    name = "pdist"
    p = as_real(name, "p", p, positive=True)
    options = {"p": p, "no_root": as_flag(name, "no_root", no_root),
               "epsilon": as_real(name, "epsilon", epsilon, nonnegative=True),
               "aggregate": as_flag(name, "aggregate", aggregate)}
    inputs = (x, x0) if instance_weights is None else (x, x0, instance_weights)
    if any_layer(*inputs):
        return pdist_op(*inputs, **options)
    check_float_array(name, "x", x, ndim=(2, 4))
    check_float_array(name, "x0", x0, ndim=x.ndim)
    if x0.shape[1] != x.shape[1] or any(a not in (1, b) for a, b in zip(x0.shape, x.shape)):
        raise ValueError(f"{name}: x0 of shape {tuple(x0.shape)} does not match x of shape "
                         f"{tuple(x.shape)} (same channels; other axes equal or 1)")
    out_shape = (x.shape[0], 1) + tuple(x.shape[2:])
    if instance_weights is not None:
        check_float_array(name, "instance_weights", instance_weights)
        try:
            ok = np.broadcast_shapes(tuple(instance_weights.shape), out_shape) == out_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{name}: instance_weights of shape {tuple(instance_weights.shape)}"
                             f" do not broadcast to the output shape {out_shape}")
    check_same_dtype(name, x=x, x0=x0, instance_weights=instance_weights)
    check_devices(name, x=x, x0=x0, instance_weights=instance_weights)
    check_dzdy(name, dzdy, () if aggregate else out_shape, like=x)
    if dzdy is not None:
        return pdist_op(*inputs, dzdy=dzdy, **options)[:2]
    return pdist_op(*inputs, **options)


def pdist_forward(x, x0, instance_weights=None, *, p=2.0, no_root=False, epsilon=1e-6,
                  aggregate=False):
    xp = array_module(x)
    d = x - x0
    if p == 1:
        y = xp.abs(d).sum(axis=1, keepdims=True)
    elif p == 2:
        y = (d * d).sum(axis=1, keepdims=True)
        if not no_root:
            y = xp.sqrt(y)
    else:
        y = (xp.abs(d) ** p).sum(axis=1, keepdims=True)
        if not no_root:
            y = y ** (1 / p)
    if instance_weights is not None:
        y = y * instance_weights
    if aggregate:
        return xp.asarray(y.sum(), dtype=x.dtype)
    return y


def pdist_backward(x, x0, *rest, p=2.0, no_root=False, epsilon=1e-6, aggregate=False):
    instance_weights = rest[0] if len(rest) == 2 else None
    dzdy = rest[-1]
    xp = array_module(x)
    if instance_weights is not None:
        dzdy = dzdy * instance_weights
    d = x - x0
    sign = xp.sign(d)
    if no_root:
        if p == 1:
            dx = dzdy * sign
        elif p == 2:
            dx = (2 * dzdy) * d
        elif p < 1:
            dx = (p * dzdy) * xp.maximum(xp.abs(d), epsilon) ** (p - 1) * sign
        else:
            dx = (p * dzdy) * xp.abs(d) ** (p - 1) * sign
    else:
        if p == 1:
            dx = dzdy * sign
        elif p == 2:
            dx = dzdy * xp.maximum((d * d).sum(axis=1, keepdims=True), epsilon) ** -0.5 * d
        elif p < 1:
            scale = (xp.abs(d) ** p).sum(axis=1, keepdims=True) ** ((1 - p) / p)
            dx = dzdy * scale * xp.maximum(xp.abs(d), epsilon) ** (p - 1) * sign
        else:
            scale = xp.maximum((xp.abs(d) ** p).sum(axis=1, keepdims=True),
                               epsilon) ** ((1 - p) / p)
            dx = dzdy * scale * xp.abs(d) ** (p - 1) * sign
    dx = xp.broadcast_to(dx, x.shape).astype(x.dtype)
    # x0 broadcasts along the axes where it has size 1: its derivative sums over them.
    axes = tuple(a for a in range(x.ndim) if x0.shape[a] == 1 and x.shape[a] != 1)
    dx0 = -(dx.sum(axis=axes, keepdims=True) if axes else dx)
    return (dx, dx0) if len(rest) == 1 else (dx, dx0, None)


pdist_op = Op("pdist", pdist_forward, pdist_backward,
              shape=lambda x_shape, x0_shape, *rest, aggregate=False, **options:
              () if aggregate else (x_shape[0], 1) + tuple(x_shape[2:]),
              receptive_field=lambda node: "none" if node.options.get("aggregate") else
              "elementwise", matconvnet_types=("pdist", "dagnn.PDist"),
              input_names=("x", "x0", "instance_weights"), doc=pdist.__doc__)
