"""Convolution and transposed convolution: ``conv`` (``vl_nnconv``) and ``convt`` (``vl_nnconvt``).

Both run on the same two kernels and one GEMM (manual 6.1): ``im2col`` copies a chunk of images
into a patch matrix ``P`` of shape ``(C*kh*kw, n*Ho*Wo)``, and per group

    Y = W . P          (forward)        W : (K, C/G*kh*kw) filters, Y : (K, n*Ho*Wo)
    dW = dY . P^T      (filters)        dP = W^T . dY, then ``col2im``  (data)

with the GEMM done by :func:`autonn.kernels.matmul` on the CPU (OpenMP's threads, each running a
single-threaded OpenBLAS on a block) and by cuBLAS through CuPy on the GPU. ``col2im`` is the
adjoint of ``im2col``, so the transposed convolution's forward is the convolution's data
derivative and vice versa (manual 4.2, 6.2).

This module holds the blocks, their geometry (:class:`ConvGeometry`), the checks of their
arguments and the creation of their Params. How a geometry is computed is the business of
:mod:`autonn.nn.convolution_schedules`: a named table of schedules, :data:`SCHEDULES`, tried in
order, each giving a forward and the derivatives beside it,

- "fully connected" and "pointwise": single products for a window covering the whole input and
  for 1x1 filters with stride 1 (both devices);
- "direct" (CPU): the forward in ``conv_forward_direct`` (kernels/conv_direct.h), without a
  patch matrix, where that measured faster (LeNet's and VGG's layers, RGB stems), and the
  derivatives in the units below; "direct + image products" and "direct + chunk products" for
  images too large for the units, or without a BLAS for C;
- "units" (CPU, small images): the C drivers ``conv_forward_units`` / ``conv_backward_units``
  (kernels/conv.h) give each OpenMP thread units of a few images;
- "image products" (CPU) and "chunk products" (both devices; the GPU's general schedule):
  im2col of chunks of the batch, then one product per image or one per chunk;

and a small table of its own, :data:`DATA_DERIVATIVES`, for conv's data derivative: "direct"
(for stride 1, the convolution of ``dy`` with the flipped, transposed filters in the direct
kernel) or "col2im". :func:`choose_schedule` and :func:`choose_data_derivative` say what a
geometry gets, and :func:`force_schedule` (a context manager, per thread) overrides both by
name::

    with autonn.nn.convolution.force_schedule("units", data_derivative="col2im"):
        y = nn.conv(x, w, b)

A forced schedule that cannot compute the geometry (the direct kernel on the GPU, the units
without a BLAS for C) raises a ValueError saying why. The C drivers take the geometry as one
struct, ``an_conv_geometry`` (kernels/_conv_geometry.h), filled by field name.
"""

import math
from typing import NamedTuple

import numpy as np

from ..backend import array_module
from ..layer import Param
from ..ops import Op
from ..receptive_fields import filter_field, filters_field, transposed_filters_field
from . import convolution_schedules as schedules
from ._arguments import (any_layer, as_pair, as_quad, check_devices, check_float_array,
                         check_index_range, takes_name)
# The schedules' tables, the override and the question which schedule a geometry gets, here
# beside the blocks they serve (autonn.nn.convolution.force_schedule("direct")).
from .convolution_schedules import (  # noqa: F401
    DATA_DERIVATIVES, SCHEDULES, choose_data_derivative, choose_schedule, force_schedule)

INITS = ("xavier", "he", "xavierimproved", "gaussian", "zeros")


# ============================================================================ public blocks
@takes_name
def conv(x, w=None, b=None, *, stride=1, pad=0, dilate=1, groups=None, size=None,
         init="xavier", has_bias=True, learning_rate=(1.0, 1.0), weight_decay=(1.0, 0.0),
         dtype=np.float32, dzdy=None):
    """Convolution with a filter bank, ``vl_nnconv``.

    ``y[n, k, oy, ox] = b[k] + sum_{c, i, j} w[k, c, i, j] * x[n, g*C/G + c, oy*sh - pt + i*dh,
    ox*sw - pl + j*dw]`` where ``g = k // (K/G)`` is the group of filter ``k`` and ``x`` is zero
    in the padding. Output size (manual 5.2)::

        Ho = floor((H + pt + pb - (dh*(kh-1) + 1)) / sh) + 1      (likewise Wo)

    Parameters
    ----------
    x : (N, C, H, W) array or Layer.
    w : (K, C/G, kh, kw) filters; the number of groups ``G = C // w.shape[1]`` is inferred as in
        MatConvNet, and K must be a multiple of G. A window covering the whole (unpadded) input is
        a fully-connected layer (computed as one matrix product). ``None`` is MatConvNet's empty
        filter bank: identity filters (1 x 1, K = C), so ``y[n, c, oy, ox] = x[n, c, oy*sh - pt,
        ox*sw - pl] + b[c]``, a subsampling of the padded input; dilate must be 1, and the
        backward returns ``(dx, None, db)``.
    b : (K,) biases, or None.
    stride, dilate : int or (h, w), at least 1.
    pad : int, (h, w) or (top, bottom, left, right).
    groups : G, optional. Given, x must have exactly ``G * w.shape[1]`` channels (a ValueError
        about channels otherwise) instead of G being inferred. With ``size=`` it defaults to 1:
        a graph whose filters came from ``size=(kh, kw, cin, cout)`` takes inputs of exactly
        ``cin`` channels; ``groups=G`` makes the filters (cout, cin/G, kh, kw).
    size : (kh, kw, cin, cout), graph mode only: create the filter and bias ``Param``s (MatConvNet's
        order; the filter array itself is (cout, cin/G, kh, kw)). ``init`` is 'xavier' (uniform in
        +-sqrt(3 / (kh*kw*cin)), MatConvNet's default), 'he' or 'xavierimproved' (MatConvNet's
        name; Gaussian, std sqrt(2 / (kh*kw*cin))),
        'gaussian' (std 0.01), 'zeros', or a callable ``shape -> array``; biases start at zero and
        are left out when ``has_bias`` is False. ``learning_rate`` and ``weight_decay`` are
        multipliers for (filters, biases), a pair or one number for both; the default biases get
        no weight decay (MatConvNet's and autonn's convention). ``dtype`` is the Params' type.
    dzdy : (N, K, Ho, Wo), optional. When given, returns ``(dx, dw, db)`` (None for a None input).
    """
    if size is not None and groups is None:
        groups = 1
    options = _conv_options("conv", stride, pad, dilate, groups)
    if size is not None:
        w, b = _create_params("conv", x, w, b, size, init, has_bias, learning_rate,
                              weight_decay, dtype, transposed=False, groups=groups)
    elif groups is not None and w is None:
        raise TypeError("conv: groups= needs filters (w, or size= in a graph)")
    return conv_op(x, w, b, dzdy=dzdy, **options)


@takes_name
def convt(x, w=None, b=None, *, upsample=1, crop=0, num_groups=1, size=None, init="xavier",
          has_bias=True, learning_rate=(1.0, 1.0), weight_decay=(1.0, 0.0), dtype=np.float32,
          dzdy=None):
    """Transposed convolution ("deconvolution"), ``vl_nnconvt``.

    The exact adjoint (transpose) of ``conv`` with ``stride=upsample`` and ``pad=crop``
    (manual 4.2, 6.2): ``<conv(u, w), z> = <u, convt(z, w)>`` for the same filters. Each input
    pixel scatters ``x[n, c, y, x] * w[c, k, i, j]`` to ``out[n, g*K + k, y*uh - ct + i,
    x*uw - cl + j]``, where group ``g = c // (C/G)``; then ``b`` is added. Output size::

        Ho = uh*(H - 1) + kh - ct - cb                           (likewise Wo)

    Parameters
    ----------
    x : (N, C, H, W).
    w : (C, K, kh, kw); group g maps input channels g*C/G ... (g+1)*C/G - 1 to output channels
        g*K ... (g+1)*K - 1, so the output has K*G channels.
    b : (K*G,) biases, or None.
    upsample : int or (h, w), at least 1. crop : int, (h, w) or (top, bottom, left, right).
    num_groups : G, dividing C.
    size : (kh, kw, K, C), graph mode only, MatConvNet's order for ``vl_nnconvt`` filters (the
        array is (C, K, kh, kw)); creates the Params as ``conv`` does (``init``, ``has_bias``,
        ``learning_rate``, ``weight_decay``, ``dtype``; the bias has K*G entries).
    dzdy : (N, K*G, Ho, Wo), optional. When given, returns ``(dx, dw, db)``.
    """
    options = _convt_options(upsample, crop, num_groups)
    if size is not None:
        w, b = _create_params("convt", x, w, b, size, init, has_bias, learning_rate,
                              weight_decay, dtype, transposed=True, num_groups=num_groups)
    elif w is None:
        raise TypeError("convt: give the filters w, or size=(kh, kw, K, C) in a graph")
    return convt_op(x, w, b, dzdy=dzdy, **options)


# ============================================================================ ops
def conv_forward(x, w, b=None, *, stride=1, pad=0, dilate=1, groups=None):
    """Eager forward of ``conv`` (see :func:`conv`)."""
    if w is None:
        return identity_forward(x, b, identity_geometry(x, b, stride, pad, dilate))
    g = conv_geometry("conv", x, w, b, stride, pad, dilate, groups)
    xp = array_module(x, w)
    return schedules.forward("conv", xp.ascontiguousarray(x), xp.ascontiguousarray(w), b, g)


def conv_backward(x, w, b, dzdy, *, stride=1, pad=0, dilate=1, groups=None,
                  need=(True, True, True)):
    """Derivatives of ``<dzdy, conv(x, w, b)>``: ``(dx, dw, db)``."""
    if w is None:
        g = identity_geometry(x, b, stride, pad, dilate)
        dzdy = _check_dzdy("conv", dzdy, x, (g.N, g.K, g.Ho, g.Wo))
        dx = identity_backward(dzdy, g) if need[0] else None
        db = dzdy.sum(axis=(0, 2, 3)) if (b is not None and need[2]) else None
        return dx, None, db
    g = conv_geometry("conv", x, w, b, stride, pad, dilate, groups)
    dzdy = _check_dzdy("conv", dzdy, x, (g.N, g.K, g.Ho, g.Wo))
    xp = array_module(x, w, dzdy)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    dx, dw = schedules.backward("conv", x, w, dzdy, g, need[0], need[1])
    db = dzdy.sum(axis=(0, 2, 3)) if (b is not None and need[2]) else None
    return dx, dw, db


def conv_shape(x_shape, w_shape, b_shape=None, *, stride=1, pad=0, dilate=1, groups=None):
    b = None if b_shape is None else _Shaped(b_shape)
    if w_shape is None:
        g = identity_geometry(_Shaped(x_shape), b, stride, pad, dilate)
    else:
        g = conv_geometry("conv", _Shaped(x_shape), _Shaped(w_shape), b, stride, pad, dilate,
                          groups)
    return (g.N, g.K, g.Ho, g.Wo)


def _conv_field(node):
    """The window through which conv reads x: its filters', or 1 x 1 for the identity bank."""
    stride, pad = node.options["stride"], node.options["pad"]
    if node.inputs[1] is None:
        return (filter_field((1, 1), stride, (pad[0], pad[2])),)
    return (filters_field(node.inputs[1], stride, pad, node.options["dilate"]),)


# The biases are listed among the inputs the backward reads only because their presence decides
# whether db is returned (they are never large).
conv_op = Op("conv", conv_forward, conv_backward, backward_accepts_need=True,
             backward_needs_inputs=(0, 1, 2), shape=conv_shape, receptive_field=_conv_field,
             matconvnet_types=("conv", "dagnn.Conv"), input_names=("x", "filters", "biases"))


def convt_forward(x, w, b=None, *, upsample=1, crop=0, num_groups=1):
    """Eager forward of ``convt`` (see :func:`convt`)."""
    g = convt_geometry(x, w, b, upsample, crop, num_groups)
    xp = array_module(x, w)
    y, _ = schedules.backward("convt", None, xp.ascontiguousarray(w), xp.ascontiguousarray(x),
                              g, True, False)
    if b is not None:
        schedules.add_channel_bias(y, b)
    return y


def convt_backward(x, w, b, dzdy, *, upsample=1, crop=0, num_groups=1,
                   need=(True, True, True)):
    """Derivatives of ``<dzdy, convt(x, w, b)>``: the convolution of dzdy is dx, and the filter
    derivative is conv's with the roles of input (dzdy) and output derivative (x) swapped."""
    g = convt_geometry(x, w, b, upsample, crop, num_groups)
    dzdy = _check_dzdy("convt", dzdy, x, (g.N, g.C, g.H, g.W))
    xp = array_module(x, w, dzdy)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    dx = schedules.forward("convt", dzdy, w, None, g) if need[0] else None
    dw = schedules.backward("convt", dzdy, w, x, g, False, True)[1] if need[1] else None
    db = dzdy.sum(axis=(0, 2, 3)) if (b is not None and need[2]) else None
    return dx, dw, db


def convt_shape(x_shape, w_shape, b_shape=None, *, upsample=1, crop=0, num_groups=1):
    g = convt_geometry(_Shaped(x_shape), _Shaped(w_shape),
                       None if b_shape is None else _Shaped(b_shape), upsample, crop, num_groups)
    return (g.N, g.C, g.H, g.W)


convt_op = Op("convt", convt_forward, convt_backward, backward_accepts_need=True,
              backward_needs_inputs=(0, 1, 2), shape=convt_shape,
              receptive_field=lambda node: (transposed_filters_field(
                  node.inputs[1], node.options["upsample"], node.options["crop"]),),
              matconvnet_types=("convt", "dagnn.ConvTranspose"),
              input_names=("x", "filters", "biases"))


# ============================================================================ geometry
class ConvGeometry(NamedTuple):
    """A convolution ``x (N, C, H, W) * w (K, C/G, kh, kw) -> (N, K, Ho, Wo)``.

    ``convt`` uses the geometry of the convolution it transposes: its output is this ``x``.
    """
    N: int
    C: int
    H: int
    W: int
    K: int
    G: int
    kh: int
    kw: int
    Ho: int
    Wo: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    dh: int
    dw: int

    @property
    def fully_connected(self):
        """The window covers the whole unpadded input: one output pixel, one matrix product."""
        return (self.kh == self.H and self.kw == self.W and self.pt == self.pb == self.pl ==
                self.pr == 0 and (self.dh == 1 or self.kh == 1) and (self.dw == 1 or self.kw == 1))

    @property
    def pointwise(self):
        """A 1x1 filter, stride 1, no padding, one group: each image is already its own patch
        matrix (C, H*W), so y[n] = W . x[n] needs no im2col and no change of layout."""
        return (self.kh == self.kw == 1 and self.sh == self.sw == 1 and self.G == 1 and
                self.pt == self.pb == self.pl == self.pr == 0)


def conv_geometry(op, x, w, b, stride, pad, dilate, groups=None):
    """Validate the arguments of ``conv`` and return their :class:`ConvGeometry`. With
    ``groups`` (declared: ``groups=`` or ``size=``), x must have ``groups * w.shape[1]``
    channels; without, the groups are inferred as in MatConvNet."""
    _check_arrays(op, x, w, b)
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = _conv_options(op, stride, pad, dilate).values()
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    if groups is not None and C != groups * Cg:
        cin, made = groups * Cg, f"size=({kh}, {kw}, {groups * Cg}, {K})"
        made += f", groups={groups}" if groups > 1 else ""
        remedy = f"size=({kh}, {kw}, {C}, {K})" + (f", groups={groups}" if groups > 1 else "")
        raise ValueError(
            f"{op}: expected x with {cin} channel{'s' * (cin != 1)} (the filters, shape "
            f"{tuple(w.shape)}, are those of {made}), got {C} channel{'s' * (C != 1)} (x shape "
            f"{tuple(x.shape)}); feed {cin}-channel data, or build the layer with {remedy}")
    if Cg < 1 or C < Cg or C % Cg != 0:
        raise ValueError(f"{op}: the channels of x (C={C}, x shape {tuple(x.shape)}) must be a "
                         f"multiple of filters.shape[1] ({Cg}, filters shape {tuple(w.shape)})")
    G = C // Cg
    if K % G != 0:
        raise ValueError(f"{op}: the number of filters (K={K}, filters shape {tuple(w.shape)}) "
                         f"must be divisible by the number of groups G={G} "
                         f"(C={C} // filters.shape[1]={Cg})")
    if b is not None and tuple(b.shape) != (K,):
        raise ValueError(f"{op}: biases must have shape ({K},) for filters of shape "
                         f"{tuple(w.shape)}, got {tuple(b.shape)}")
    extent_h, extent_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if H + pt + pb < extent_h or W + pl + pr < extent_w or min(kh, kw) < 1:
        raise ValueError(f"{op}: the filter window ({kh}x{kw}, dilated {extent_h}x{extent_w}, "
                         f"filters shape {tuple(w.shape)}) is larger than the padded input "
                         f"({H}+{pt}+{pb} x {W}+{pl}+{pr}, x shape {tuple(x.shape)})")
    Ho = (H + pt + pb - extent_h) // sh + 1
    Wo = (W + pl + pr - extent_w) // sw + 1
    g = ConvGeometry(N, C, H, W, K, G, kh, kw, Ho, Wo, sh, sw, pt, pb, pl, pr, dh, dw)
    check_conv_limits(op, g, f"x shape {tuple(x.shape)}, filters shape {tuple(w.shape)}, "
                      f"stride {(sh, sw)}, pad {(pt, pb, pl, pr)}, dilate {(dh, dw)}")
    return g


def identity_geometry(x, b, stride, pad, dilate):
    """Validate the arguments of ``conv`` without filters (MatConvNet's empty filter bank:
    1 x 1 identity filters, K = C) and return their :class:`ConvGeometry`."""
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = _conv_options("conv", stride, pad, dilate).values()
    if (dh, dw) != (1, 1):
        raise ValueError(f"conv: dilate must be 1 without filters (w None, the identity filter "
                         f"bank), got {(dh, dw)}")
    for name, value in (("x", x), ("biases", b)):
        if value is not None and not isinstance(value, _Shaped):
            check_float_array("conv", name, value, ndim=4 if name == "x" else None)
    if len(x.shape) != 4:
        raise ValueError(f"conv: x must be 4-D, got shape {tuple(x.shape)}")
    N, C, H, W = x.shape
    if b is not None and tuple(b.shape) != (C,):
        raise ValueError(f"conv: biases must have shape ({C},) without filters (identity "
                         f"filters, one per channel of x shape {tuple(x.shape)}), got "
                         f"{tuple(b.shape)}")
    if b is not None and not isinstance(b, _Shaped):
        if b.dtype != x.dtype:
            raise TypeError(f"conv: x and biases must share one dtype, got x {x.dtype} "
                            f"{tuple(x.shape)}, biases {b.dtype} {tuple(b.shape)}")
        check_devices("conv", x=x, biases=b)
    Ho = max(0, (H + pt + pb - 1) // sh + 1)
    Wo = max(0, (W + pl + pr - 1) // sw + 1)
    check_index_range("conv", f"x shape {tuple(x.shape)}, no filters, stride {(sh, sw)}, pad "
                      f"{(pt, pb, pl, pr)}", input_height_plus_pad=H + pt + pb,
                      input_width_plus_pad=W + pl + pr, output_bytes=N * C * Ho * Wo * 8)
    return ConvGeometry(N, C, H, W, C, 1, 1, 1, Ho, Wo, sh, sw, pt, pb, pl, pr, 1, 1)


def _identity_taps(size, before, stride, outputs):
    """(output slice, input slice) of the outputs o whose tap ``o*stride - before`` lies in
    ``[0, size)`` (the others read the padding)."""
    first = -(-before // stride)
    last = min(outputs - 1, (size - 1 + before) // stride)
    if last < first:
        return slice(0, 0), slice(0, 0)
    return (slice(first, last + 1),
            slice(first * stride - before, last * stride - before + 1, stride))


def _identity_windows(g):
    rows_out, rows_in = _identity_taps(g.H, g.pt, g.sh, g.Ho)
    cols_out, cols_in = _identity_taps(g.W, g.pl, g.sw, g.Wo)
    return (..., rows_out, cols_out), (..., rows_in, cols_in)


def identity_forward(x, b, g):
    """conv with the identity filter bank: the padded input subsampled by the stride, plus b."""
    y = array_module(x).zeros((g.N, g.C, g.Ho, g.Wo), dtype=x.dtype)
    out, into = _identity_windows(g)
    y[out] = x[into]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def identity_backward(dzdy, g):
    """The adjoint of :func:`identity_forward`'s subsampling: dz/dy scattered back, 0 where
    no output read x."""
    dx = array_module(dzdy).zeros((g.N, g.C, g.H, g.W), dtype=dzdy.dtype)
    out, into = _identity_windows(g)
    dx[into] = dzdy[out]
    return dx


def convt_geometry(x, w, b, upsample, crop, num_groups):
    """Validate the arguments of ``convt`` and return the geometry of the convolution it
    transposes (whose input is convt's output and whose output is convt's input)."""
    _check_arrays("convt", x, w, b)
    (uh, uw), (ct, cb, cl, cr), G = _convt_options(upsample, crop, num_groups).values()
    N, C, H, W = x.shape
    Cw, K, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"convt: filters.shape[0] ({Cw}, filters shape {tuple(w.shape)}) must "
                         f"equal the channels of x (C={C}, x shape {tuple(x.shape)})")
    if C % G != 0:
        raise ValueError(f"convt: num_groups={G} must divide the channels of x (C={C}, x shape "
                         f"{tuple(x.shape)})")
    if b is not None and tuple(b.shape) != (K * G,):
        raise ValueError(f"convt: biases must have shape ({K * G},) (K={K} filters x "
                         f"num_groups={G}), got {tuple(b.shape)}")
    if H < 1 or W < 1:
        # the convolution it transposes would have an empty output: no such convolution
        raise ValueError(f"convt: x must have at least one pixel, got x shape {tuple(x.shape)}")
    Ho = uh * (H - 1) + kh - ct - cb
    Wo = uw * (W - 1) + kw - cl - cr
    if Ho < 1 or Wo < 1 or min(kh, kw) < 1:
        raise ValueError(f"convt: the crop {(ct, cb, cl, cr)} removes the whole output (x shape "
                         f"{tuple(x.shape)}, filters shape {tuple(w.shape)}, upsample "
                         f"{(uh, uw)} give {Ho}x{Wo})")
    g = ConvGeometry(N, K * G, Ho, Wo, C, G, kh, kw, H, W, uh, uw, ct, cb, cl, cr, 1, 1)
    check_conv_limits("convt", g, f"x shape {tuple(x.shape)}, filters shape {tuple(w.shape)}, "
                      f"upsample {(uh, uw)}, crop {(ct, cb, cl, cr)}, num_groups {G}")
    return g


# The direct kernel's vectors (kernels/conv_direct.h: AN_DIRECT_BYTES / sizeof(REAL) lanes, at
# most 8) and filter blocks (AN_DIRECT_KB), and the largest itemsize: the bounds below take the
# largest of each, so that they bound the sizes of every dtype.
_DIRECT_LANES, _DIRECT_KB, _ITEMSIZE = 8, 4, 8


def _conv_quantities(g):
    """The sizes the conv kernels and drivers compute from the geometry ``g``, as Python ints
    (upper bounds where the C code's value depends on the dtype or on a cut into bands):
    extents, element counts and the buffers of kernels/conv.h (patch matrices, GEMM products)
    and of kernels/conv_direct.h (``direct_make_plan``'s rows and planes, the packed filters,
    the per-band vector tables), in bytes."""
    V, item = _DIRECT_LANES, _ITEMSIZE
    Cg, Kg = g.C // max(g.G, 1), g.K // max(g.G, 1)
    extent_h, extent_w = g.dh * (g.kh - 1) + 1, g.dw * (g.kw - 1) + 1
    taps = Cg * g.kh * g.kw
    row_vectors = -(-g.Wo // V)
    Mw = row_vectors * V + (g.kw - 1) * g.dw // g.sw    # xs columns per phase
    row = g.sw * Mw                                     # xs row stride
    rows_in = (g.Ho - 1) * g.sh + extent_h              # the rows a band of all Ho rows reads
    plane = rows_in * row + 64                          # xs channel stride (rounded up)
    return {
        "input_height_plus_pad": g.H + g.pt + g.pb,
        "input_width_plus_pad": g.W + g.pl + g.pr,
        "dilated_filter_height": extent_h,
        "dilated_filter_width": extent_w,
        "stride_times_output_height": g.sh * (g.Ho + V),
        "stride_times_output_width": g.sw * (g.Wo + V),
        "input_bytes": g.N * g.C * g.H * g.W * item,
        "output_bytes": g.N * g.K * g.Ho * g.Wo * item,
        "patch_matrix_bytes": g.N * g.C * g.kh * g.kw * g.Ho * g.Wo * item,
        "direct_row_bytes": Cg * g.sh * row * item,
        "direct_input_buffer_bytes": Cg * plane * item,
        "direct_filter_buffer_bytes": g.G * -(-Kg // _DIRECT_KB) * taps * _DIRECT_KB * item,
        "direct_vector_table_bytes": g.Ho * row_vectors * item,
    }


def check_conv_limits(op, g, arguments):
    """Refuse (ValueError naming ``op`` and ``arguments``) a geometry any of whose
    :func:`_conv_quantities`, or those of the convolution that gives its data derivative
    (``transposed_geometry``), exceeds the kernels' 64-bit index range."""
    check_index_range(op, arguments, **_conv_quantities(g))
    transposed = schedules.transposed_geometry(g)
    if transposed is not None:
        check_index_range(op, arguments, **{f"data_derivative_{name}": value for name, value
                                             in _conv_quantities(transposed).items()})


# ============================================================================ arguments
def _conv_options(op, stride, pad, dilate, groups=None):
    stride = as_pair(op, "stride", stride)
    dilate = as_pair(op, "dilate", dilate)
    for name, value in (("stride", stride), ("dilate", dilate)):
        if min(value) < 1:
            raise ValueError(f"{op}: {name} must be at least 1, got {value}")
    options = {"stride": stride, "pad": as_quad(op, "pad", pad), "dilate": dilate}
    if groups is not None:  # declared grouping: checked against x (None: inferred)
        if (not isinstance(groups, (int, np.integer)) or isinstance(groups, bool)
                or groups < 1):
            raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
        options["groups"] = int(groups)
    return options


def _convt_options(upsample, crop, num_groups):
    upsample = as_pair("convt", "upsample", upsample)
    if min(upsample) < 1:
        raise ValueError(f"convt: upsample must be at least 1, got {upsample}")
    if (not isinstance(num_groups, (int, np.integer)) or isinstance(num_groups, bool)
            or num_groups < 1):
        raise ValueError(f"convt: num_groups must be a positive int, got {num_groups!r}")
    return {"upsample": upsample, "crop": as_quad("convt", "crop", crop),
            "num_groups": int(num_groups)}


def _check_arrays(op, x, w, b):
    names = ("x", "filters", "biases")
    for name, value, ndim in zip(names, (x, w, b), (4, 4, None)):
        if value is None and name == "biases":
            continue
        if isinstance(value, _Shaped):
            if ndim is not None and len(value.shape) != ndim:
                raise ValueError(f"{op}: {name} must be 4-D, got shape {value.shape}")
            continue
        check_float_array(op, name, value, ndim=ndim)
    arrays = {n: v for n, v in zip(names, (x, w, b)) if v is not None and not isinstance(v, _Shaped)}
    dtypes = {n: v.dtype for n, v in arrays.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n} {d} {tuple(arrays[n].shape)}" for n, d in dtypes.items())
        raise TypeError(f"{op}: x, filters and biases must share one dtype, got {listing}")
    check_devices(op, **arrays)


def _check_dzdy(op, dzdy, x, shape):
    check_float_array(op, "dzdy", dzdy)
    if tuple(dzdy.shape) != tuple(shape):
        raise ValueError(f"{op}: dzdy must have the output shape {tuple(shape)}, "
                         f"got {tuple(dzdy.shape)}")
    if dzdy.dtype != x.dtype:
        raise TypeError(f"{op}: dzdy must have the dtype of x ({x.dtype}), got {dzdy.dtype}")
    check_devices(op, x=x, dzdy=dzdy)
    return array_module(dzdy).ascontiguousarray(dzdy)


class _Shaped:
    """A stand-in carrying only a shape, so that shape rules share the validation code."""

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)


# ============================================================================ Params
def _create_params(op, x, w, b, size, init, has_bias, learning_rate, weight_decay, dtype,
                   transposed, num_groups=1, groups=1):
    """The filter and bias Params for ``size`` (MatConvNet order (kh, kw, d3, d4)); conv's
    ``groups`` G makes the filters (d4, d3/G, kh, kw)."""
    if w is not None or b is not None:
        raise TypeError(f"{op}: give either the filters (and biases) or size=, not both")
    if not any_layer(x):
        raise TypeError(f"{op}: size= creates Params and is for building graphs; x must be a "
                        f"Layer (got {type(x).__name__}); pass the filters to compute eagerly")
    try:
        kh, kw, d3, d4 = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: size must be (kh, kw, cin, cout) for conv or (kh, kw, K, C) "
                         f"for convt, got {size!r}") from None
    if min(kh, kw, d3, d4) < 1:
        raise ValueError(f"{op}: size entries must be positive, got {tuple(size)}")
    if d3 % groups or d4 % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({d3}) and the "
                         f"filters ({d4}) of size={tuple(size)}")
    lr_w, lr_b = _pair_of_reals(op, "learning_rate", learning_rate)
    wd_w, wd_b = _pair_of_reals(op, "weight_decay", weight_decay)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    # MATLAB's kh x kw x d3 x d4 array is (d4, d3, kh, kw) in NCHW order; the fan-in of a filter
    # is kh*kw*d3 in both cases (for convt, the output channels: MatConvNet's convention), and
    # a filter of a grouped conv reads d3/G channels.
    shape = (d4, d3 // groups, kh, kw)
    filters = Param(initial_filters(op, shape, init, kh * kw * (d3 // groups), dtype),
                    learning_rate=lr_w, weight_decay=wd_w)
    biases = None
    if has_bias:
        outputs = d3 * num_groups if transposed else d4
        biases = Param(np.zeros(outputs, dtype=dtype), learning_rate=lr_b, weight_decay=wd_b)
    return filters, biases


def initial_filters(op, shape, init, fan_in, dtype):
    """Initial filter values: 'xavier', 'he', 'gaussian', 'zeros' or a callable(shape)."""
    if callable(init):
        value = np.asarray(init(shape), dtype=dtype)
        if value.shape != tuple(shape):
            raise ValueError(f"{op}: init returned shape {value.shape}, expected {tuple(shape)}")
        return value
    if init == "xavier":
        scale = math.sqrt(3.0 / fan_in)
        return ((np.random.rand(*shape) * 2 - 1) * scale).astype(dtype)
    if init in ("he", "xavierimproved"):     # MatConvNet's name for He et al.'s rule
        return (np.random.randn(*shape) * math.sqrt(2.0 / fan_in)).astype(dtype)
    if init == "gaussian":
        return (np.random.randn(*shape) * 0.01).astype(dtype)
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    raise ValueError(f"{op}: unknown init {init!r}; use one of {INITS} or a callable")


def _pair_of_reals(op, name, value):
    values = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2:
        raise ValueError(f"{op}: {name} must be a number or a pair (filters, biases), "
                         f"got {value!r}")
    return float(values[0]), float(values[1])
