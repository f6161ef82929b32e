"""Normalisation blocks: ``normalize`` (LRN), ``bnorm``, ``spnorm``, ``normalizelp``, ``noffset``.

LRN, bnorm and spnorm run on the C kernels of ``kernels/lrn.h``, ``bnorm.h`` and ``spnorm.h``;
normalizelp and noffset are a few array expressions. Formulas follow the MatConvNet manual
(4.5, 6.5) with H x W x C x N renamed NCHW; where the manual and MatConvNet's code differ, the
code wins (noted at each place).
"""

import math

import numpy as np

from .. import kernels
from ..backend import array_module, is_gpu_array
from ..layer import Param
from ..ops import Op
from ..receptive_fields import filter_field
from ._arguments import (
    any_layer,
    as_flag,
    as_real,
    check_devices,
    check_dzdy,
    check_float_array,
    check_index_range,
    check_same_dtype,
    check_shape,
    real_params,
    takes_name,
)
from .activation import channel_layout, contiguous


# =========================================================================== LRN
@takes_name
def normalize(x, param, *, dzdy=None):
    """Local response normalisation across channels, ``vl_nnnormalize``.

    ``y_k = x_k * (kappa + alpha * sum_{t in Q(k)} x_t^2) ^ (-beta)`` at every (n, i, j), with
    ``Q(k) = [k - floor((depth-1)/2), k + ceil((depth-1)/2)]`` clipped to the channels (no division
    by ``depth``). Derivative (manual 6.5.1), with ``L_k = kappa + alpha * sum_{t in Q(k)} x_t^2``:
    ``dz/dx_d = dz/dy_d L_d^-beta - 2 alpha beta x_d sum_{k: d in Q(k)} dz/dy_k L_k^(-beta-1) x_k``.

    x : (N, C, H, W); param : (depth, kappa, alpha, beta), depth a positive integer. With
    ``kappa = 0`` the formula is undefined where a window holds only zeros (0 * 0^-beta): those
    outputs are NaN, as in MatConvNet; a positive kappa (MatConvNet's models use 1 or 2) never
    divides by zero.
    """
    depth, kappa, alpha, beta = real_params("normalize", "param", param, 4)
    if depth < 1 or depth != int(depth):
        raise ValueError(f"normalize: param depth must be a positive integer, got {param!r}")
    param = (int(depth), kappa, alpha, beta)
    _check_lrn_limits(None, param[0])
    if not any_layer(x):
        check_float_array("normalize", "x", x, ndim=4)
        check_dzdy("normalize", dzdy, x.shape, like=x)
    return normalize_op(x, param=param, dzdy=dzdy)


lrn = normalize


def _check_lrn_limits(shape, depth):
    """kernels/lrn.h forms the window ends k + 1 + after and k - before (k < C) and the
    launch's work estimate positions*C: refuse a depth (or shape) that takes them past the
    index range."""
    values = {"param_depth": depth}
    if shape is not None:
        channels = shape[1] if len(shape) > 1 else 1
        values.update(channels_plus_param_depth=channels + depth,
                      input_bytes=math.prod(shape) * 8)
    check_index_range("normalize", f"param depth {depth}"
                      + (f", x shape {tuple(shape)}" if shape is not None else ""), **values)


def lrn_offsets(depth):
    """Channel offsets (first, last) of the window Q(k) - k."""
    before = (depth - 1) // 2
    return -before, depth - 1 - before


def normalize_forward(x, *, param):
    depth, kappa, alpha, beta = param
    _check_lrn_limits(x.shape, depth)
    x = contiguous(x)
    y = array_module(x).empty_like(x)
    positions, channels, spatial = channel_layout(x)
    before, after = -lrn_offsets(depth)[0], lrn_offsets(depth)[1]
    kernels.launch("lrn_forward", positions, x, y, channels, spatial, before, after, kappa,
                   alpha, beta, positions)
    return y


def normalize_backward(x, dzdy, *, param):
    depth, kappa, alpha, beta = param
    _check_lrn_limits(x.shape, depth)
    xp = array_module(x)
    x = contiguous(x)
    dx = xp.empty_like(x)
    scratch = xp.empty_like(x)
    positions, channels, spatial = channel_layout(x)
    before, after = -lrn_offsets(depth)[0], lrn_offsets(depth)[1]
    kernels.launch("lrn_backward", positions, x, contiguous(dzdy, x.dtype), dx, scratch,
                   channels, spatial, before, after, kappa, alpha, beta, positions)
    return dx


normalize_op = Op("normalize", normalize_forward, normalize_backward,
                  shape=lambda x_shape, **options: tuple(x_shape), receptive_field="elementwise",
                  matconvnet_types=("normalize", "lrn", "dagnn.LRN"), input_names=("x",),
                  doc=normalize.__doc__)


# =========================================================================== bnorm
@takes_name
def bnorm(x, g=None, b=None, *, moments=None, epsilon=1e-4, return_moments=False, frozen=False,
          dzdy=None):
    """Batch normalisation, ``vl_nnbnorm`` (manual 4.5.2, 6.5.2).

    ``y = g_k (x - mu_k) / sigma_k + b_k`` per channel k, where ``mu_k`` is the mean of channel
    k over N, H, W, ``sigma_k = sqrt(var_k + epsilon)`` and ``var_k`` the biased variance.
    Derivatives, with M = N H W and ``xhat = (x - mu) / sigma``:
    ``dz/dg = sum dz/dy xhat``, ``dz/db = sum dz/dy``,
    ``dz/dx = g / sigma (dz/dy - dz/db / M - xhat dz/dg / M)``.

    x : (N, C, H, W) or (N, C); g, b : (C,) or None (gain 1, bias 0).
    moments : (C, 2) array ``[mu, sigma]`` used in place of the batch's moments. As
        MatConvNet's ``vl_nnbnorm(x, g, b, dzdy, 'moments', m)``, the backward still takes them
        for the batch's own statistics (the derivative above, evaluated at the given mu and
        sigma): the moments of this batch give exactly the derivatives of the call without
        them. A sigma of 0 divides by zero (inf, or NaN where x = mu): moments computed by
        bnorm itself have sigma >= sqrt(epsilon).
    frozen : with ``moments``, frozen statistics (test mode, fine-tuning): the moments are
        constants and ``dz/dx = g / sigma dz/dy`` (the forward's own derivative). In a graph a
        frozen bnorm uses its moments in every mode and gives them their true derivative: keep
        them fixed as an array or a Param with ``train_method='none'`` (an ``'average'`` Param
        would move towards that derivative).
    return_moments : also return the moments used: ``(y, moments)``, or with ``dzdy=``
        ``(dx, dg, db, moments)`` (MatConvNet's ``[dzdx, dzdg, dzdb, moments]``).

    In a graph, ``nn.bnorm(x)`` creates the gain (ones), bias (zeros) and moments Params; the
    moments Param has ``train_method='average'``: training uses the batch statistics and reports
    them as the moments' derivative (as MatConvNet's AutoNN), so the solver moves the Param
    towards them; test mode uses the Param (with the constant-moment rule of ``frozen``).
    """
    epsilon = as_real("bnorm", "epsilon", epsilon, positive=True)
    return_moments = as_flag("bnorm", "return_moments", return_moments)
    frozen = as_flag("bnorm", "frozen", frozen)
    if frozen and moments is None:
        raise ValueError("bnorm: frozen=True needs the moments (moments=, a (C, 2) array "
                         "[mu, sigma] or Layer) to hold constant")
    if any_layer(x, g, b, moments):
        if return_moments:
            raise ValueError("bnorm: return_moments is only available eagerly; in a graph the "
                             "moments Param holds the running moments")
        return _bnorm_layer(x, g, b, moments, epsilon, frozen)
    check_float_array("bnorm", "x", x, ndim=(2, 4))
    channels = x.shape[1]
    for name, value, shape in (("g", g, (channels,)), ("b", b, (channels,)),
                               ("moments", moments, (channels, 2))):
        if value is not None:
            check_float_array("bnorm", name, value)
            check_shape("bnorm", name, value, shape)
    check_same_dtype("bnorm", x=x, g=g, b=b, moments=moments)
    check_devices("bnorm", x=x, g=g, b=b, moments=moments)
    check_dzdy("bnorm", dzdy, x.shape, like=x)
    if dzdy is not None:
        if moments is None:
            ders = bnorm_op(x, g, b, epsilon=epsilon, dzdy=dzdy)
        elif frozen:
            ders = bnorm_given_moments_op(x, g, b, moments, dzdy=dzdy)[:3]
        else:
            ders = _bnorm_given_moments_derivatives(x, g, b, moments, dzdy)
        if return_moments:
            return (*ders, batch_moments(x, epsilon) if moments is None else moments)
        return ders
    if moments is None:
        y = bnorm_op(x, g, b, epsilon=epsilon)
        return (y, batch_moments(x, epsilon)) if return_moments else y
    y = bnorm_given_moments_op(x, g, b, moments)
    return (y, moments) if return_moments else y


def _bnorm_given_moments_derivatives(x, g, b, moments, dzdy):
    """MatConvNet's backward with given moments: the batch-statistics derivative at them."""
    dx, dg, db = _bnorm_derivatives(x, g, moments, dzdy, True)
    return dx, None if g is None else dg, None if b is None else db


def _bnorm_layer(x, g, b, moments, epsilon, frozen):
    """Graph mode: create the missing Params, then a node training on batch statistics (or,
    frozen, one that always uses the given moments as constants)."""
    if g is None or b is None or moments is None:
        known = [getattr(v, "value", v) for v in (g, b) if v is not None]
        known = [v for v in known if hasattr(v, "shape") and len(v.shape) == 1]
        channels = int(known[0].shape[0]) if known else _layer_channels(x)
        if g is None:
            # MatConvNet's AutoNN defaults: the gain learns twice as fast, no weight decay.
            g = Param(np.ones(channels, np.float32), learning_rate=2.0, weight_decay=0.0)
        if b is None:
            b = Param(np.zeros(channels, np.float32), learning_rate=1.0, weight_decay=0.0)
        if moments is None:
            # learning_rate of an 'average' Param is the rate of its moving average.
            moments = Param(np.concatenate([np.zeros((channels, 1), np.float32),
                                            np.ones((channels, 1), np.float32)], axis=1),
                            learning_rate=0.1, weight_decay=0.0, train_method="average")
    if frozen:
        return bnorm_given_moments_op(x, g, b, moments)
    return bnorm_train_op(x, g, b, moments, epsilon=epsilon)


# Ops whose output has as many channels as their first input (used to size bnorm's Params).
_CHANNEL_PRESERVING = {
    "relu", "sigmoid", "softmax", "normalize", "spnorm", "normalizelp", "noffset", "bnorm",
    "bnorm_train", "bnorm_given_moments", "dropout", "pool", "crop", "roipool",
    "bilinearsampler", "weighted_sum", "add", "subtract", "multiply", "divide", "negative",
}


def _layer_channels(x):
    """The channel count of a Layer, needed to size the Params that ``nn.bnorm(x)`` creates.

    Layers carry no shapes before a network runs, so this follows the graph back to the block
    that fixes the channels: a conv/convt filter Param, a Param, or a concatenation, through
    blocks that keep the channel count.
    """
    channels = _channels_of(x)
    if channels is None:
        raise ValueError("bnorm: cannot infer the number of channels of the input Layer (it "
                         "does not come from a conv/convt with a filter Param through "
                         "channel-preserving blocks); pass the gain and bias explicitly, e.g. "
                         "nn.bnorm(x, Param(np.ones(C)), Param(np.zeros(C)))")
    return channels


def _channels_of(layer):
    value = getattr(layer, "value", None)
    if layer.op is None:
        return int(value.shape[1]) if value is not None and value.ndim >= 2 else None
    name, inputs = layer.op.name, layer.inputs
    if name in ("conv", "convt") and len(inputs) > 1:
        filters = getattr(inputs[1], "value", inputs[1])
        if not hasattr(filters, "shape") or len(filters.shape) != 4:
            return None
        if name == "conv":
            return int(filters.shape[0])
        return int(filters.shape[1]) * int(layer.options.get("num_groups", 1))
    if name == "concat" and layer.options.get("axis", 1) == 1:
        parts = [_channels_of(v) if hasattr(v, "op") else int(v.shape[1]) for v in inputs]
        return None if None in parts else sum(parts)
    if name in _CHANNEL_PRESERVING:
        for v in inputs:
            if hasattr(v, "op"):
                return _channels_of(v)
    return None


def _bnorm_geometry(x):
    """(N, C, S): bnorm sees x (N, C, H, W) or (N, C) as N x C planes of S values."""
    spatial = x.size // (x.shape[0] * x.shape[1]) if x.size else 0
    return x.shape[0], x.shape[1], spatial


def _bnorm_chunk(x, spatial):
    return 1 if is_gpu_array(x) else max(1, min(spatial, 8192))


def _gain_and_bias(x, g, b):
    xp = array_module(x)
    channels = x.shape[1]
    g = xp.ones(channels, x.dtype) if g is None else contiguous(g, x.dtype)
    b = xp.zeros(channels, x.dtype) if b is None else contiguous(b, x.dtype)
    return g, b


def batch_moments(x, epsilon):
    """The (C, 2) moments ``[mu, sqrt(var + epsilon)]`` of a batch (biased variance)."""
    x = contiguous(x)
    n, channels, spatial = _bnorm_geometry(x)
    moments = array_module(x).empty((channels, 2), dtype=x.dtype)
    if x.size == 0:
        raise ValueError(f"bnorm: cannot compute batch moments of an empty batch "
                         f"(x shape {tuple(x.shape)})")
    kernels.launch("bnorm_moments", channels, x, moments, n, channels, spatial, epsilon)
    return moments


def _bnorm_apply(x, g, b, moments):
    x = contiguous(x)
    n, channels, spatial = _bnorm_geometry(x)
    g, b = _gain_and_bias(x, g, b)
    y = array_module(x).empty_like(x)
    chunk = _bnorm_chunk(x, spatial)
    planes = n * channels
    kernels.launch("bnorm_forward", planes * -(-spatial // chunk), x, g, b,
                   contiguous(moments, x.dtype), y, channels, spatial, chunk, planes)
    return y


def _bnorm_derivatives(x, g, moments, dzdy, batch_statistics):
    """(dx, dg, db) for the given moments; with ``batch_statistics`` the moments are those of
    x, and dx includes their dependence on x."""
    xp = array_module(x)
    x = contiguous(x)
    dzdy = contiguous(dzdy, x.dtype)
    moments = contiguous(moments, x.dtype)
    n, channels, spatial = _bnorm_geometry(x)
    gain, _ = _gain_and_bias(x, g, None)
    sums = xp.empty((channels, 2), dtype=x.dtype)
    kernels.launch("bnorm_sums", channels, x, dzdy, moments, sums, n, channels, spatial)
    dx = xp.empty_like(x)
    chunk = _bnorm_chunk(x, spatial)
    planes = n * channels
    kernels.launch("bnorm_backward", planes * -(-spatial // chunk), x, dzdy, gain, moments,
                   sums, dx, channels, spatial, chunk, float(n * spatial),
                   int(batch_statistics), planes)
    return dx, sums[:, 0].copy(), sums[:, 1].copy()


def bnorm_forward(x, g, b, *, epsilon=1e-4):
    return _bnorm_apply(x, g, b, batch_moments(x, epsilon))


def bnorm_backward(x, g, b, dzdy, *, epsilon=1e-4):
    return _bnorm_derivatives(x, g, batch_moments(x, epsilon), dzdy, True)


bnorm_op = Op("bnorm", bnorm_forward, bnorm_backward, backward_needs_inputs=(0, 1),
              shape=lambda x_shape, g_shape=None, b_shape=None, **options: tuple(x_shape),
              receptive_field="elementwise", input_names=("x", "g", "b"), doc=bnorm.__doc__)


def bnorm_given_moments_forward(x, g, b, moments):
    return _bnorm_apply(x, g, b, moments)


def bnorm_given_moments_backward(x, g, b, moments, dzdy):
    """Exact derivatives with the moments held as an input (frozen statistics: test mode,
    fine-tuning; ``nn.bnorm(..., frozen=True)``)."""
    xp = array_module(x)
    dx, dg, db = _bnorm_derivatives(x, g, moments, dzdy, False)
    # y = g (x - mu) / sigma + b: dy/dmu = -g / sigma, dy/dsigma = -g xhat / sigma.
    gain = 1 / moments[:, 1] if g is None else g / moments[:, 1]
    return dx, dg, db, xp.stack([-gain * db, -gain * dg], axis=1)


bnorm_given_moments_op = Op(
    "bnorm_given_moments", bnorm_given_moments_forward, bnorm_given_moments_backward,
    backward_needs_inputs=(0, 1, 3),
    shape=lambda x_shape, *shapes: tuple(x_shape), receptive_field="elementwise",
    input_names=("x", "g", "b", "moments"), doc=bnorm.__doc__)


def bnorm_train_backward(x, g, b, moments, dzdy, *, epsilon=1e-4):
    """Batch-statistics derivatives; the moments input 'receives' the batch moments themselves,
    which a solver uses to move the 'average' moments Param towards them (MatConvNet AutoNN)."""
    batch = batch_moments(x, epsilon)
    dx, dg, db = _bnorm_derivatives(x, g, batch, dzdy, True)
    return dx, dg, db, batch


def bnorm_train_forward_test(x, g, b, moments, *, epsilon=1e-4):
    return bnorm_given_moments_forward(x, g, b, moments)


def bnorm_train_forward(x, g, b, moments, *, epsilon=1e-4):
    return bnorm_forward(x, g, b, epsilon=epsilon)


bnorm_train_op = Op(
    "bnorm_train", bnorm_train_forward, bnorm_train_backward,
    backward_needs_inputs=(0, 1), forward_test=bnorm_train_forward_test,
    shape=lambda x_shape, *shapes, **options: tuple(x_shape), receptive_field="elementwise",
    # the op the wrappers build for MatConvNet's bnorm (test mode: bnorm_given_moments)
    matconvnet_types=("bnorm", "dagnn.BatchNorm"),
    input_names=("x", "g", "b", "moments"), doc=bnorm.__doc__)


# =========================================================================== spnorm
@takes_name
def spnorm(x, param, *, dzdy=None):
    """Spatial normalisation, ``vl_nnspnorm`` (manual 4.5.3, 6.5.3).

    ``n2 = mean of x^2 over a ph x pw window`` around each pixel (rows
    ``i - floor((ph-1)/2) .. i + ph - 1 - floor((ph-1)/2)``, likewise columns), the mean taken over
    the window's pixels inside the image; ``y = x (1 + alpha n2)^(-beta)``. Derivative:
    ``dz/dx = dz/dy f^-beta - 2 alpha beta x P*(dz/dy f^(-beta-1) x)`` with ``f = 1 + alpha n2``
    and ``P*`` the adjoint of the averaging.

    x : (N, C, H, W); param : (ph, pw, alpha, beta).
    """
    ph, pw, alpha, beta = real_params("spnorm", "param", param, 4)
    if min(ph, pw) < 1 or ph != int(ph) or pw != int(pw):
        raise ValueError(f"spnorm: param window (ph, pw) must be positive integers, "
                         f"got {param!r}")
    param = (int(ph), int(pw), alpha, beta)
    _check_spnorm_limits(None, param[0], param[1])
    if not any_layer(x):
        check_float_array("spnorm", "x", x, ndim=4)
        check_dzdy("spnorm", dzdy, x.shape, like=x)
    return spnorm_op(x, param=param, dzdy=dzdy)


def _check_spnorm_limits(shape, ph, pw):
    """kernels/spnorm.h forms the window rows i - top .. i + bottom (likewise columns) and
    their pixel count: refuse a window (or shape) that takes them past the index range."""
    values = {"param_window_height": ph, "param_window_width": pw}
    if shape is not None:
        values.update(height_plus_param_window_height=shape[2] + ph,
                      width_plus_param_window_width=shape[3] + pw,
                      input_bytes=math.prod(shape) * 8)
    check_index_range("spnorm", f"param window {(ph, pw)}"
                      + (f", x shape {tuple(shape)}" if shape is not None else ""), **values)


def _spnorm_geometry(x, ph, pw):
    """(pixels, H, W, top, bottom, left, right) for the kernels of ``kernels/spnorm.h``."""
    top, left = (ph - 1) // 2, (pw - 1) // 2
    return x.size, x.shape[2], x.shape[3], top, ph - 1 - top, left, pw - 1 - left


def spnorm_forward(x, *, param):
    ph, pw, alpha, beta = param
    _check_spnorm_limits(x.shape, ph, pw)
    x = contiguous(x)
    y = array_module(x).empty_like(x)
    pixels, *geometry = _spnorm_geometry(x, ph, pw)
    kernels.launch("spnorm_forward", pixels, x, y, *geometry, alpha, beta, pixels)
    return y


def spnorm_backward(x, dzdy, *, param):
    ph, pw, alpha, beta = param
    _check_spnorm_limits(x.shape, ph, pw)
    xp = array_module(x)
    x = contiguous(x)
    dx, scratch = xp.empty_like(x), xp.empty_like(x)
    pixels, *geometry = _spnorm_geometry(x, ph, pw)
    kernels.launch("spnorm_backward_first", pixels, x, contiguous(dzdy, x.dtype), dx, scratch,
                   *geometry, alpha, beta, pixels)
    kernels.launch("spnorm_backward_second", pixels, x, scratch, dx, *geometry, alpha, beta,
                   pixels)
    return dx


spnorm_op = Op("spnorm", spnorm_forward, spnorm_backward,
               shape=lambda x_shape, **options: tuple(x_shape),
               # a ph x pw window at stride 1, from floor((k-1)/2) pixels before each pixel
               receptive_field=lambda node: (filter_field(
                   node.options["param"][:2], (1, 1),
                   tuple((k - 1) // 2 for k in node.options["param"][:2])),),
               matconvnet_types=("spnorm", "dagnn.SpatialNorm"), input_names=("x",),
               doc=spnorm.__doc__)


# =========================================================================== normalizelp
@takes_name
def normalizelp(x, *, p=2, epsilon=0.01, spatial=False, dimensions=None, dzdy=None):
    """Lp normalisation, ``vl_nnnormalizelp``.

    ``y = x / (sum x^p + epsilon)^(1/p)``, the sum over the channels at each pixel (the
    default), over the spatial positions of each channel when ``spatial=True``, or over the
    axes ``dimensions`` of NCHW: any non-empty subset of (0, 1, 2, 3) (an int or a tuple;
    MatConvNet's 1-based H, W, C, N dimensions are the NCHW axes 2, 3, 1, 0; spatial is
    ``dimensions=(2, 3)``). As MatConvNet, ``x^p`` is not ``|x|^p``: use an even p (or
    non-negative x). Derivative, with ``m = (sum x^p + eps)^(1/p)``:
    ``dz/dx = dz/dy / m - x^(p-1) / m^p * sum(dz/dy x) / m``, the sum over the same axes.

    x : (N, C, H, W), or (N, C) when the sum is over axes 0 and 1 only. With ``epsilon = 0``
    a group whose values are all zero gives 0 / 0 = NaN; keep epsilon positive (the default
    0.01) where that can happen.
    """
    p = as_real("normalizelp", "p", p, positive=True)
    epsilon = as_real("normalizelp", "epsilon", epsilon, nonnegative=True)
    spatial = as_flag("normalizelp", "spatial", spatial)
    options = {"p": p, "epsilon": epsilon, "spatial": spatial}
    if dimensions is not None:
        dimensions = _lp_dimensions(dimensions, spatial)
        options = {"p": p, "epsilon": epsilon, "dimensions": dimensions}
    if not any_layer(x):
        check_float_array("normalizelp", "x", x,
                          ndim=4 if spatial and dimensions is None else (2, 4))
        _check_lp_rank(x, _lp_axes(spatial, dimensions))
        check_dzdy("normalizelp", dzdy, x.shape, like=x)
    return normalizelp_op(x, dzdy=dzdy, **options)


def _lp_dimensions(dimensions, spatial):
    """``dimensions`` as a sorted tuple of distinct NCHW axes, refused by name otherwise."""
    if isinstance(dimensions, (str, bytes, bool, np.bool_)):
        raise TypeError(f"normalizelp: dimensions must be an int or a tuple of ints, got "
                        f"{dimensions!r}")
    if isinstance(dimensions, (int, np.integer)):
        axes = (int(dimensions),)
    else:
        try:
            axes = tuple(dimensions)
        except TypeError:
            raise TypeError(f"normalizelp: dimensions must be an int or a tuple of ints, got "
                            f"{dimensions!r}") from None
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
                   for a in axes):
            raise TypeError(f"normalizelp: dimensions must contain ints (axes of NCHW), got "
                            f"{dimensions!r}")
        axes = tuple(int(a) for a in axes)
    if not axes:
        raise ValueError("normalizelp: dimensions must be a non-empty subset of the axes "
                         "(0, 1, 2, 3) of NCHW, got ()")
    if not all(0 <= a <= 3 for a in axes):
        raise ValueError(f"normalizelp: dimensions {axes} must be axes of x (0 to 3 of NCHW)")
    if len(set(axes)) != len(axes):
        raise ValueError(f"normalizelp: dimensions {axes} repeat an axis")
    axes = tuple(sorted(axes))
    if spatial and axes != (2, 3):
        raise ValueError(f"normalizelp: spatial=True sums over the axes (2, 3); dimensions "
                         f"{axes} contradicts it (give one of the two)")
    return axes


def _lp_axes(spatial, dimensions=None):
    if dimensions is not None:
        return tuple(dimensions)
    return (2, 3) if spatial else (1,)


def _check_lp_rank(x, axes):
    if max(axes) >= x.ndim:
        raise ValueError(f"normalizelp: dimensions {axes} must be axes of x (0 to {x.ndim - 1}, "
                         f"x shape {tuple(x.shape)})")


def normalizelp_forward(x, *, p=2.0, epsilon=0.01, spatial=False, dimensions=None):
    axes = _lp_axes(spatial, dimensions)
    _check_lp_rank(x, axes)
    massp = (x ** p).sum(axis=axes, keepdims=True) + epsilon
    return x / massp ** (1 / p)


def normalizelp_backward(x, dzdy, *, p=2.0, epsilon=0.01, spatial=False, dimensions=None):
    axes = _lp_axes(spatial, dimensions)
    _check_lp_rank(x, axes)
    massp = (x ** p).sum(axis=axes, keepdims=True) + epsilon
    dzdy = dzdy / massp ** (1 / p)
    return dzdy - (dzdy * x).sum(axis=axes, keepdims=True) * (x ** (p - 1) / massp)


def _lp_field(node):
    # a sum over channels or images: per pixel; one over space: every pixel reads them all
    axes = _lp_axes(node.options.get("spatial", False), node.options.get("dimensions"))
    return "none" if set(axes) & {2, 3} else "elementwise"


normalizelp_op = Op("normalizelp", normalizelp_forward, normalizelp_backward,
                    shape=lambda x_shape, **options: tuple(x_shape), receptive_field=_lp_field,
                    input_names=("x",), doc=normalizelp.__doc__)


# =========================================================================== noffset
@takes_name
def noffset(x, param, *, dzdy=None):
    """Norm-dependent offset, ``vl_nnnoffset``: ``y = x - a L^b`` with ``L = max(sum_c x^2, 1e-8)``.

    Derivative as MatConvNet's code: ``dz/dx = dz/dy - 2 a b x (sum_c dz/dy) L^(b-1)`` (the
    clamp of L is ignored by the derivative, as there).

    x : (N, C, H, W) or (N, C); param : (a, b).
    """
    param = real_params("noffset", "param", param, 2)
    if not any_layer(x):
        check_float_array("noffset", "x", x, ndim=(2, 4))
        check_dzdy("noffset", dzdy, x.shape, like=x)
    return noffset_op(x, param=param, dzdy=dzdy)


def _channel_energy(x):
    xp = array_module(x)
    return xp.maximum((x * x).sum(axis=1, keepdims=True), x.dtype.type(1e-8))


def noffset_forward(x, *, param):
    a, b = param
    return x - a * _channel_energy(x) ** b


def noffset_backward(x, dzdy, *, param):
    a, b = param
    energy = _channel_energy(x)
    return dzdy - (2 * a * b) * x * (dzdy.sum(axis=1, keepdims=True) * energy ** (b - 1))


noffset_op = Op("noffset", noffset_forward, noffset_backward,
                shape=lambda x_shape, **options: tuple(x_shape), receptive_field="elementwise",
                input_names=("x",), doc=noffset.__doc__)


__all__ = ["bnorm", "lrn", "noffset", "normalize", "normalizelp", "spnorm"]
