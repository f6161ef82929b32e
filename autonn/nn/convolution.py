"""Convolution and transposed convolution: ``conv`` (``vl_nnconv``) and ``convt`` (``vl_nnconvt``).

Both run on the same two kernels and one GEMM (manual 6.1): ``im2col`` copies a chunk of images
into a patch matrix ``P`` of shape ``(C*kh*kw, n*Ho*Wo)``, and per group

    Y = W . P          (forward)        W : (K, C/G*kh*kw) filters, Y : (K, n*Ho*Wo)
    dW = dY . P^T      (filters)        dP = W^T . dY, then ``col2im``  (data)

with the GEMM done by :func:`autonn.kernels.matmul` on the CPU (OpenMP's threads, each running a
single-threaded OpenBLAS on a block) and by cuBLAS through CuPy on the GPU. ``col2im`` is the adjoint of ``im2col``, so the transposed convolution's forward is the
convolution's data derivative and vice versa (manual 4.2, 6.2).

Four schedules share that arithmetic:

- on the CPU, the forward of most convolutions with overlapping windows and filters of moderate
  size (see :func:`_direct_on_cpu`: LeNet's and VGG's layers, RGB stems) and the data derivative
  of the stride-1 ones skip the patch matrix: ``conv_forward_direct`` (kernels/conv_direct.h)
  keeps blocks of outputs in SIMD registers over their whole sum and reads the taps where they
  lie in the (padded) image. The data derivative is the convolution of ``dy`` with the flipped,
  transposed filters (manual 4.2);
- small images on the CPU (a patch matrix of at most :data:`UNIT_PATCH_BYTES` per image, as in
  LeNet): the C drivers ``conv_forward_units`` / ``conv_backward_units`` of ``kernels/conv.h``
  give each OpenMP thread units of a few images, with a patch buffer of its own that stays in
  its cache and single-threaded GEMMs from a private OpenBLAS (:func:`autonn.kernels.cpu_gemm`).
  The derivatives of larger images whose forward is direct take units of one image (up to
  :data:`DIRECT_UNIT_PATCH_BYTES`), so that a training step stays in OpenMP's threads;
- otherwise, batches are split into chunks so that ``P`` stays below
  :data:`PATCH_BUFFER_BYTES`, and the products take ``Y`` and ``dW`` as one product per image
  of the chunk (a batched matmul over column blocks of ``P``), which writes ``Y`` in NCHW
  order directly and stays fast on shared cores;
- on the GPU, one GEMM per chunk, followed by a kernel that restores the NCHW layout.
"""

import math
import threading
from typing import NamedTuple

import numpy as np

from .. import kernels
from ..backend import array_module
from ..ops import Op
from ._arguments import any_layer, as_pair, as_quad, check_devices, check_float_array

# Upper bound of the patch matrix of one batch chunk (bytes). A chunk this size stays in the
# last-level cache between im2col and the GEMM (measured: VGG's 3x3 layer 10% faster than with
# 64 MiB chunks), and larger chunks make no GEMM faster. A chunk holds at least one image, so an
# image whose own patch matrix is larger still runs, in chunks of one.
PATCH_BUFFER_BYTES = 8 * 2**20

INITS = ("xavier", "he", "xavierimproved", "gaussian", "zeros")


# ============================================================================ public blocks
def conv(x, w=None, b=None, *, stride=1, pad=0, dilate=1, size=None, init="xavier",
         has_bias=True, learning_rate=(1.0, 1.0), weight_decay=(1.0, 0.0), dtype=np.float32,
         dzdy=None):
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
        a fully-connected layer (computed as one matrix product).
    b : (K,) biases, or None.
    stride, dilate : int or (h, w), at least 1.
    pad : int, (h, w) or (top, bottom, left, right).
    size : (kh, kw, cin, cout), graph mode only: create the filter and bias ``Param``s (MatConvNet's
        order; the filter array itself is (cout, cin, kh, kw)). ``init`` is 'xavier' (uniform in
        +-sqrt(3 / (kh*kw*cin)), MatConvNet's default), 'he' or 'xavierimproved' (MatConvNet's
        name; Gaussian, std sqrt(2 / (kh*kw*cin))),
        'gaussian' (std 0.01), 'zeros', or a callable ``shape -> array``; biases start at zero and
        are left out when ``has_bias`` is False. ``learning_rate`` and ``weight_decay`` are
        multipliers for (filters, biases), a pair or one number for both; the default biases get
        no weight decay (MatConvNet's and autonn's convention). ``dtype`` is the Params' type.
    dzdy : (N, K, Ho, Wo), optional. When given, returns ``(dx, dw, db)`` (None for a None input).
    """
    options = _conv_options("conv", stride, pad, dilate)
    if size is not None:
        w, b = _create_params("conv", x, w, b, size, init, has_bias, learning_rate,
                              weight_decay, dtype, transposed=False)
    elif w is None:
        raise TypeError("conv: give the filters w, or size=(kh, kw, cin, cout) in a graph")
    return conv_op(x, w, b, dzdy=dzdy, **options)


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
def conv_forward(x, w, b=None, *, stride=1, pad=0, dilate=1):
    """Eager forward of ``conv`` (see :func:`conv`)."""
    g = conv_geometry("conv", x, w, b, stride, pad, dilate)
    xp = array_module(x, w)
    return _conv_apply(xp.ascontiguousarray(x), xp.ascontiguousarray(w), b, g)


def conv_backward(x, w, b, dzdy, *, stride=1, pad=0, dilate=1, need=(True, True, True)):
    """Derivatives of ``<dzdy, conv(x, w, b)>``: ``(dx, dw, db)``."""
    g = conv_geometry("conv", x, w, b, stride, pad, dilate)
    dzdy = _check_dzdy("conv", dzdy, x, (g.N, g.K, g.Ho, g.Wo))
    xp = array_module(x, w, dzdy)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    dx, dw = _conv_backward(x, w, dzdy, g, need[0], need[1])
    db = dzdy.sum(axis=(0, 2, 3)) if (b is not None and need[2]) else None
    return dx, dw, db


def conv_shape(x_shape, w_shape, b_shape=None, *, stride=1, pad=0, dilate=1):
    g = conv_geometry("conv", _Shaped(x_shape), _Shaped(w_shape),
                      None if b_shape is None else _Shaped(b_shape), stride, pad, dilate)
    return (g.N, g.K, g.Ho, g.Wo)


# The biases are listed among the inputs the backward reads only because their presence decides
# whether db is returned (they are never large).
conv_op = Op("conv", conv_forward, conv_backward, backward_accepts_need=True,
             backward_needs_inputs=(0, 1, 2), shape=conv_shape,
             input_names=("x", "filters", "biases"))


def convt_forward(x, w, b=None, *, upsample=1, crop=0, num_groups=1):
    """Eager forward of ``convt`` (see :func:`convt`)."""
    g = convt_geometry(x, w, b, upsample, crop, num_groups)
    xp = array_module(x, w)
    y, _ = _conv_backward(None, xp.ascontiguousarray(w), xp.ascontiguousarray(x), g, True, False)
    if b is not None:
        add_channel_bias(y, b)
    return y


def convt_backward(x, w, b, dzdy, *, upsample=1, crop=0, num_groups=1,
                   need=(True, True, True)):
    """Derivatives of ``<dzdy, convt(x, w, b)>``: the convolution of dzdy is dx, and the filter
    derivative is conv's with the roles of input (dzdy) and output derivative (x) swapped."""
    g = convt_geometry(x, w, b, upsample, crop, num_groups)
    dzdy = _check_dzdy("convt", dzdy, x, (g.N, g.C, g.H, g.W))
    xp = array_module(x, w, dzdy)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    dx = _conv_apply(dzdy, w, None, g) if need[0] else None
    dw = _conv_backward(dzdy, w, x, g, False, True)[1] if need[1] else None
    db = dzdy.sum(axis=(0, 2, 3)) if (b is not None and need[2]) else None
    return dx, dw, db


def convt_shape(x_shape, w_shape, b_shape=None, *, upsample=1, crop=0, num_groups=1):
    g = convt_geometry(_Shaped(x_shape), _Shaped(w_shape),
                       None if b_shape is None else _Shaped(b_shape), upsample, crop, num_groups)
    return (g.N, g.C, g.H, g.W)


convt_op = Op("convt", convt_forward, convt_backward, backward_accepts_need=True,
              backward_needs_inputs=(0, 1, 2), shape=convt_shape,
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


def conv_geometry(op, x, w, b, stride, pad, dilate):
    """Validate the arguments of ``conv`` and return their :class:`ConvGeometry`."""
    _check_arrays(op, x, w, b)
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = _conv_options(op, stride, pad, dilate).values()
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    if Cg < 1 or C % Cg != 0:
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
    return ConvGeometry(N, C, H, W, K, G, kh, kw, Ho, Wo, sh, sw, pt, pb, pl, pr, dh, dw)


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
    Ho = uh * (H - 1) + kh - ct - cb
    Wo = uw * (W - 1) + kw - cl - cr
    if Ho < 1 or Wo < 1 or min(kh, kw) < 1:
        raise ValueError(f"convt: the crop {(ct, cb, cl, cr)} removes the whole output (x shape "
                         f"{tuple(x.shape)}, filters shape {tuple(w.shape)}, upsample "
                         f"{(uh, uw)} give {Ho}x{Wo})")
    return ConvGeometry(N, K * G, Ho, Wo, C, G, kh, kw, H, W, uh, uw, ct, cb, cl, cr, 1, 1)


# ============================================================================ computation
# Groups are the leading axis of batched matrix products: the filters (K, C/G, kh, kw) are
# (G, K/G, C/G*kh*kw) and the patch matrix (C*kh*kw, M) is (G, C/G*kh*kw, M), so one matmul
# call covers every group (a Python loop over groups would dominate depthwise convolutions).
def _conv_apply(x, w, b, g):
    """``y = conv(x, w) + b`` for C-contiguous x (N, C, H, W), w (K, C/G, kh, kw), b (K,) or None."""
    xp = array_module(x, w)
    N, K, G = g.N, g.K, g.G
    Kg, rows_g = K // G, w[0].size            # filters per group, patch rows per group
    w3 = w.reshape(G, Kg, rows_g)
    y = xp.empty((N, K, g.Ho, g.Wo), dtype=x.dtype)
    if g.fully_connected:
        per_group = _matmul(xp, x.reshape(N, G, rows_g).transpose(1, 0, 2), w3.transpose(0, 2, 1))
        y.reshape(N, G, Kg)[...] = per_group.transpose(1, 0, 2)
    elif g.pointwise:
        # one GEMM per image, written in place, the bias added while its outputs are in cache
        x3, y3 = x.reshape(N, g.C, g.H * g.W), y.reshape(N, K, g.Ho * g.Wo)
        if xp is np:
            kernels.matmul(w3[0], x3, y3, row_bias=b)
            return y
        for n0, n in _chunks(g, x.dtype.itemsize):
            xp.matmul(w3[0], x3[n0:n0 + n], out=y3[n0:n0 + n])
            if b is not None:
                add_channel_bias(y[n0:n0 + n], b)
        return y
    elif _direct_on_cpu(xp, g, x.dtype):
        _conv_forward_direct(x, w, b, y, g)
        return y
    elif _small_images_on_cpu(xp, g, x.dtype):
        _conv_forward_units(x, w, b, y, g)
        return y
    else:
        pixels = g.Ho * g.Wo
        for n0, n in _chunks(g, x.dtype.itemsize):
            patches = _im2col(x[n0:n0 + n], g, n)
            if _per_image_products(xp, pixels):
                # One product per image, written straight into y (n, G, K/G, Ho*Wo): no change
                # of layout, and the threads take whole images, which stays robust on shared
                # cores (see _conv_backward); the bias follows while the outputs are in cache.
                _matmul(xp, w3, patches.reshape(G, rows_g, n, pixels).transpose(2, 0, 1, 3),
                        out=y[n0:n0 + n].reshape(n, G, Kg, pixels))
                if b is not None:
                    add_channel_bias(y[n0:n0 + n], b)
                continue
            product = _workspace(xp, "product", (K, n * pixels), x.dtype)
            _matmul(xp, w3, patches.reshape(G, rows_g, n * pixels),
                    out=product.reshape(G, Kg, n * pixels))
            # (K, n, Ho*Wo) -> (n, K, Ho*Wo) plus bias, in one pass; without a bias the kernel
            # reads no bias values, and `product` stands in for the pointer
            bias = xp.ascontiguousarray(b) if b is not None else product
            kernels.launch("gemm_to_nchw", n * K, product, y[n0:n0 + n], bias,
                           int(b is not None), n, K, pixels)
        return y
    if b is not None:
        add_channel_bias(y, b)
    return y


def _matmul(xp, a, b, out=None):
    """``a @ b``; on the CPU in OpenMP's threads (:func:`autonn.kernels.matmul`)."""
    return kernels.matmul(a, b, out) if xp is np else xp.matmul(a, b, out=out)


def _conv_backward(x, w, dy, g, need_dx, need_dw):
    """``(dx, dw)`` of ``conv`` for input x, filters w and output derivative dy (N, K, Ho, Wo):
    per chunk, ``dW += dY P^T`` and ``dx = col2im(W^T dY)``. Also convt's forward (``dx`` for
    ``dy`` = convt's input; x may then be None) and convt's filter derivative."""
    xp = array_module(w, dy)
    N, K, G = g.N, g.K, g.G
    Kg, rows_g = K // G, w[0].size
    w3 = w.reshape(G, Kg, rows_g)
    transposed = _transposed_geometry(g) if need_dx else None
    if transposed is not None and _direct_data_derivative(xp, g, transposed, dy.dtype):
        dx = _data_derivative_direct(w, dy, g, transposed)
        need_dx = False
    else:
        dx = xp.empty((N, g.C, g.H, g.W), dtype=dy.dtype) if need_dx else None
    dw = xp.zeros((G, Kg, rows_g), dtype=dy.dtype) if need_dw else None
    if not (need_dx or need_dw):
        pass                                # nothing left (dx may come from the direct kernel)
    elif g.fully_connected:
        dy3 = dy.reshape(N, G, Kg).transpose(1, 0, 2)                 # (G, N, Kg)
        if need_dx:
            dx.reshape(N, G, rows_g)[...] = _matmul(xp, dy3, w3).transpose(1, 0, 2)
        if need_dw:
            dw[...] = _matmul(xp, dy3.transpose(0, 2, 1),
                              x.reshape(N, G, rows_g).transpose(1, 0, 2))
    elif g.pointwise:
        dy3 = dy.reshape(N, K, g.Ho * g.Wo)
        if need_dx:
            _matmul(xp, w3[0].T, dy3, out=dx.reshape(N, g.C, g.H * g.W))
        if need_dw:
            dw[0] = _matmul(xp, dy3, x.reshape(N, g.C, g.H * g.W).transpose(0, 2, 1)).sum(axis=0)
    elif _units_for_backward(xp, g, dy.dtype):
        _conv_backward_units(x, w, dy, dx if need_dx else None, dw, g)
    else:
        pixels = g.Ho * g.Wo
        for n0, n in _chunks(g, dy.dtype.itemsize):
            M = n * pixels
            if n == 1:      # one image's (K, Ho*Wo) derivative is already in the GEMM's layout
                dy3 = dy[n0].reshape(G, Kg, M)
            else:
                dy_chunk = _workspace(xp, "product", (K, M), dy.dtype)
                kernels.launch("nchw_to_gemm", n * K, dy[n0:n0 + n], dy_chunk, n, K, pixels)
                dy3 = dy_chunk.reshape(G, Kg, M)
            if need_dw:
                patches = _im2col(x[n0:n0 + n], g, n).reshape(G, rows_g, M)
                if _per_image_products(xp, pixels):
                    # One product per image, then a sum: NumPy's OpenBLAS split a single GEMM
                    # with a small output and a long inner dimension (n*Ho*Wo) across its
                    # threads in a way that collapsed when the cores were shared (measured:
                    # 1.5 ms alone, up to 3 s beside other jobs; per image: 2.4 ms beside them).
                    per_image = _matmul(xp, dy3.reshape(G, Kg, n, pixels).transpose(2, 0, 1, 3),
                                        patches.reshape(G, rows_g, n, pixels)
                                        .transpose(2, 0, 3, 1))
                    dw += per_image.sum(axis=0)
                else:
                    dw += _matmul(xp, dy3, patches.transpose(0, 2, 1))
            if need_dx:
                # the patch buffer is free again: dw's product has been taken
                dpatches = _workspace(xp, "patches", (G * rows_g, M), dy.dtype)
                _matmul(xp, w3.transpose(0, 2, 1), dy3, out=dpatches.reshape(G, rows_g, M))
                kernels.launch("col2im", n * g.C * g.H, dpatches, dx[n0:n0 + n],
                               *_kernel_geometry(g, n))
    if need_dw:
        dw = dw.reshape(K, rows_g // (g.kh * g.kw), g.kh, g.kw)
    return dx, dw


# Below this many output pixels per image, per-image products are too small for the BLAS and
# the chunk is one GEMM (LeNet's second layer has 64).
PER_IMAGE_MIN_PIXELS = 256


def _per_image_products(xp, pixels):
    """Whether the CPU takes the GEMMs of a chunk image by image (see _conv_apply)."""
    return xp is np and pixels >= PER_IMAGE_MIN_PIXELS


# Images whose patch matrix is at most this large (bytes) are convolved on the CPU by the C
# drivers ``conv_forward_units`` and ``conv_backward_units`` (kernels/conv.h): each thread takes
# units of whole images that together stay below this size, so that their patch matrix lives in
# the thread's L2 cache. For larger images, the forward loses more to single-threaded GEMMs
# reading their patches from memory than it gains (measured: VGG's 3x3 layer at a third of the
# chunked speed); their derivatives may still take units (see DIRECT_UNIT_PATCH_BYTES).
UNIT_PATCH_BYTES = 256 * 2**10


def _small_images_on_cpu(xp, g, dtype):
    """Whether conv and its derivatives take the per-thread units of the C drivers: small
    images on the CPU, when a single-threaded BLAS for C is installed (scipy-openblas32). (The
    size bound also keeps every GEMM dimension far inside the BLAS's int range.)"""
    return (xp is np and _patch_bytes(g, np.dtype(dtype).itemsize) <= UNIT_PATCH_BYTES
            and kernels.cpu_gemm(dtype) is not None)


# Beside a forward in the direct kernel (OpenMP's threads), the derivatives of larger images
# take the units too, of one image each, up to this patch size: NumPy's OpenBLAS threads keep
# spinning for a while after each GEMM, and took the cores from the direct kernels that ran
# next (VGG's 3x3 layer: a forward+backward step 1.6x faster with the units; beside NumPy's
# GEMMs its forward ran 1.8x slower). Bounded: each thread holds an image's patches.
DIRECT_UNIT_PATCH_BYTES = 16 * 2**20


def _units_for_backward(xp, g, dtype):
    """Whether conv's derivatives take the units of the C drivers (see DIRECT_UNIT_PATCH_BYTES)."""
    if _small_images_on_cpu(xp, g, dtype):
        return True
    return (_direct_on_cpu(xp, g, dtype) and kernels.cpu_gemm(dtype) is not None
            and _patch_bytes(g, np.dtype(dtype).itemsize) <= DIRECT_UNIT_PATCH_BYTES)


def _conv_forward_units(x, w, b, y, g):
    bias = np.ascontiguousarray(b) if b is not None else y      # not read without a bias
    _call_units("conv_forward_units", g, x.dtype, x, w, bias, int(b is not None), y)


def _conv_backward_units(x, w, dy, dx, dw, g):
    """dx (written whole) and dw (accumulated into zeros) when either is not None."""
    # arrays the driver does not read stand in for absent ones (cffi needs a buffer)
    _call_units("conv_backward_units", g, dy.dtype, dy if x is None else x, w, dy,
                dy if dx is None else dx, dy if dw is None else dw,
                int(dx is not None), int(dw is not None))


def _call_units(name, g, dtype, *arrays_and_flags):
    itemsize = np.dtype(dtype).itemsize
    per_image = _patch_bytes(g, itemsize)
    # a unit's GEMM output (K, unit*Ho*Wo) is bounded too: many filters on tiny maps would
    # otherwise make it far larger than its patches
    unit = max(1, UNIT_PATCH_BYTES // max(per_image, g.K * g.Ho * g.Wo * itemsize))
    status = kernels.call_cpu(name, *arrays_and_flags, g.N, g.C, g.H, g.W, g.K, g.G, g.Ho, g.Wo,
                              g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, unit,
                              kernels.cpu_gemm(dtype))
    if status != 0:
        raise MemoryError(f"conv: cannot allocate the buffers of the CPU threads ({unit} "
                          f"images of {per_image} bytes of patches each)")


# The CPU computes a convolution's forward directly (``conv_forward_direct``,
# kernels/conv_direct.h: no patch matrix; outputs kept in SIMD registers over their whole sum)
# unless im2col's GEMM is the better deal, which it is (measured, 2 cores, float32) when
# - the windows barely overlap (kh*kw < 3*sh*sw, each input pixel read by fewer than three taps
#   on average: 1x1, 2x2 and 3x3 convolutions with stride 2): the patch matrix is then little
#   larger than the input, and the direct kernel gets little reuse from each input row it
#   loads (0.58-0.95x the GEMM's speed);
# - the filters of a group hold more than DIRECT_MAX_FILTER_VALUES values (ResNet's 3x3 layers
#   from 256 channels on): every band of output rows then streams them from beyond the L2
#   cache, while the GEMM is thick and runs near the machine's peak (0.83-0.89x);
# - output rows would fill less than DIRECT_MIN_LANE_USE of the vectors they take (V pixels of
#   a row per vector: 4x4 maps use half of AVX's 8 floats; 0.83x).
# Everywhere else it measured 1.1-3x faster: LeNet, CIFAR-sized nets, VGG's 3x3 layers, RGB
# stems with stride 2 or 4, grouped and depthwise convolutions.
DIRECT_VECTOR_BYTES = 32              # AN_DIRECT_BYTES in kernels/conv_direct.h
DIRECT_MAX_FILTER_VALUES = 2**16
DIRECT_MIN_LANE_USE = 0.6
# The input rows a band of output rows reads are kept to about this size (bytes): they stay in
# the core's L2 cache while the kernel passes over them once per block of 4 filters.
DIRECT_BAND_BYTES = 96 * 2**10


def _direct_on_cpu(xp, g, dtype):
    """Whether conv's forward runs in the direct CPU kernel (the measurements behind the rule
    are above DIRECT_VECTOR_BYTES)."""
    if xp is not np:
        return False
    lanes = DIRECT_VECTOR_BYTES // np.dtype(dtype).itemsize
    lanes_taken = -(-g.Wo // lanes) * lanes
    filter_values = (g.K // g.G) * (g.C // g.G) * g.kh * g.kw
    return (g.kh * g.kw >= 3 * g.sh * g.sw and filter_values <= DIRECT_MAX_FILTER_VALUES
            and g.Wo >= DIRECT_MIN_LANE_USE * lanes_taken)


def _transposed_geometry(g):
    """The geometry of the convolution that gives conv's data derivative, when there is one:
    for stride 1, dx = conv(dy, w flipped and transposed, pad = dilated extent - 1 - pad)
    (manual 4.2), a convolution in its own right when that padding is not negative. None
    otherwise, and for the fully-connected and pointwise shapes, which are single GEMMs."""
    pads = (g.dh * (g.kh - 1) - g.pt, g.dh * (g.kh - 1) - g.pb,
            g.dw * (g.kw - 1) - g.pl, g.dw * (g.kw - 1) - g.pr)
    if (g.sh, g.sw) != (1, 1) or min(pads) < 0 or g.fully_connected or g.pointwise:
        return None
    return ConvGeometry(g.N, g.K, g.Ho, g.Wo, g.C, g.G, g.kh, g.kw, g.H, g.W, 1, 1, *pads,
                        g.dh, g.dw)


# Fewer filters per group than this leave the direct kernel's blocks of 4 too empty for conv's
# data derivative (1 or 2 measured 0.4-0.7x the GEMM's speed, 3 and 4 1.1-1.3x).
DIRECT_MIN_DATA_FILTERS = 3


def _direct_data_derivative(xp, g, transposed, dtype):
    """Whether conv's data derivative (stride 1) runs in the direct CPU kernel: when the
    convolution that gives it (see _transposed_geometry) would, and when
    - its padding leaves at least half of the padded input real (the derivative of a 5x5 layer
      on 8x8 maps, LeNet's second, reads 16x16 maps three quarters zero: 0.66x the GEMM);
    - it has at least DIRECT_MIN_DATA_FILTERS filters per group, unless each group of the
      forward has a single filter (depthwise): the GEMM's inner dimension is then 1, and the
      direct kernel measured 10x faster."""
    padded = ((transposed.H + transposed.pt + transposed.pb) *
              (transposed.W + transposed.pl + transposed.pr))
    enough_filters = g.C // g.G >= DIRECT_MIN_DATA_FILTERS or g.K == g.G
    return (enough_filters and 2 * transposed.H * transposed.W >= padded
            and _direct_on_cpu(xp, transposed, dtype))


def _data_derivative_direct(w, dy, g, transposed):
    """conv's dx (stride 1) as the direct convolution of dy with w' (C, K/G, kh, kw),
    w'[group*C/G + c, k, i, j] = w[group*K/G + k, c, kh-1-i, kw-1-j]."""
    Kg, Cg = g.K // g.G, g.C // g.G
    flipped = w.reshape(g.G, Kg, Cg, g.kh, g.kw)[:, :, :, ::-1, ::-1]
    w_t = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4)).reshape(g.C, Kg, g.kh, g.kw)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=dy.dtype)
    _conv_forward_direct(np.ascontiguousarray(dy), w_t, None, dx, transposed)
    return dx


def _conv_forward_direct(x, w, b, y, g):
    bias = np.ascontiguousarray(b) if b is not None else y      # not read without a bias
    status = kernels.call_cpu("conv_forward_direct", x, w, bias, int(b is not None), y,
                              g.N, g.C, g.H, g.W, g.K, g.G, g.Ho, g.Wo, g.kh, g.kw, g.sh, g.sw,
                              g.pt, g.pl, g.dh, g.dw, DIRECT_BAND_BYTES)
    if status != 0:
        raise MemoryError(f"conv: cannot allocate the buffers of the direct CPU kernel "
                          f"(x shape {tuple(x.shape)}, filters shape {tuple(w.shape)})")


def add_channel_bias(y, b):
    """``y[n, k] += b[k]`` in place, for a C-contiguous y (N, K, H, W)."""
    N, K = y.shape[:2]
    kernels.launch("add_channel_bias", N * K, y, array_module(b).ascontiguousarray(b), N, K,
                   math.prod(y.shape[2:]))


def _im2col(x_chunk, g, n):
    """The patch matrix (C*kh*kw, n*Ho*Wo) of a chunk of n images (manual 6.1)."""
    xp = array_module(x_chunk)
    patches = _workspace(xp, "patches", (g.C * g.kh * g.kw, n * g.Ho * g.Wo), x_chunk.dtype)
    kernels.launch("im2col", g.C * g.kh * g.kw * n * g.Ho, x_chunk, patches,
                   *_kernel_geometry(g, n))
    return patches


def _kernel_geometry(g, n):
    """The trailing arguments of the im2col/col2im kernels."""
    return (n, g.C, g.H, g.W, g.Ho, g.Wo, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw)


def _patch_bytes(g, itemsize):
    """The size of one image's patch matrix, (C*kh*kw, Ho*Wo)."""
    return g.C * g.kh * g.kw * g.Ho * g.Wo * itemsize


def _chunks(g, itemsize):
    """(start, size) of batch chunks whose patch matrix fits in PATCH_BUFFER_BYTES, of (nearly)
    equal sizes so that no chunk is a sliver."""
    if g.N == 0:
        return []
    per_image = _patch_bytes(g, itemsize)
    most = max(1, min(g.N, PATCH_BUFFER_BYTES // max(per_image, 1)))
    count = -(-g.N // most)
    size = -(-g.N // count)
    return [(n0, min(size, g.N - n0)) for n0 in range(0, g.N, size)]


# Reused scratch buffers, per thread (kernels and BLAS release the GIL, so two threads may run
# convolutions at once), per role and dtype. On the CPU a fresh 8 MiB buffer per call would be
# returned to the OS and page-faulted in again every time (several ms); CuPy has its own memory
# pool, so there the buffers are simply allocated.
_workspaces = threading.local()


def _workspace(xp, role, shape, dtype):
    size = math.prod(shape)
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    buffers = _workspaces.__dict__
    key = (role, np.dtype(dtype).str)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        buffers[key] = buffer
    return buffer[:size].reshape(shape)


# ============================================================================ arguments
def _conv_options(op, stride, pad, dilate):
    stride = as_pair(op, "stride", stride)
    dilate = as_pair(op, "dilate", dilate)
    for name, value in (("stride", stride), ("dilate", dilate)):
        if min(value) < 1:
            raise ValueError(f"{op}: {name} must be at least 1, got {value}")
    return {"stride": stride, "pad": as_quad(op, "pad", pad), "dilate": dilate}


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
                   transposed, num_groups=1):
    """The filter and bias Params for ``size`` (MatConvNet order (kh, kw, d3, d4))."""
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
    from ..layer import Param
    lr_w, lr_b = _pair_of_reals(op, "learning_rate", learning_rate)
    wd_w, wd_b = _pair_of_reals(op, "weight_decay", weight_decay)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    # MATLAB's kh x kw x d3 x d4 array is (d4, d3, kh, kw) in NCHW order; the fan-in of a filter
    # is kh*kw*d3 in both cases (for convt, the output channels: MatConvNet's convention).
    shape = (d4, d3, kh, kw)
    filters = Param(initial_filters(op, shape, init, kh * kw * d3, dtype),
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
