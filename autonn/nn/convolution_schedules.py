"""How ``conv`` and ``convt`` are computed: a named table of schedules, tried in order.

Every schedule computes the arithmetic of :mod:`autonn.nn.convolution` (manual 6.1), for the
geometry of a convolution ``x (N, C, H, W) * w (K, C/G, kh, kw) -> y (N, K, Ho, Wo)``
(``convt`` runs the schedules of the convolution it transposes). One entry of
:data:`SCHEDULES` gives both the forward and the derivatives, since the derivatives' best
schedule depends on the forward that runs beside them (below, "direct"):

=========================  ===================================  ===================================
name                       forward                              derivatives (dw, and dx)
=========================  ===================================  ===================================
fully connected            one product of the flattened images  two products
pointwise                  a product per image, in place        products per image
direct                     ``conv_forward_direct``              ``conv_backward_units``
direct + image products    ``conv_forward_direct``              im2col chunks, a product per image
direct + chunk products    ``conv_forward_direct``              im2col chunks, a product per chunk
units                      ``conv_forward_units``               ``conv_backward_units``
image products             im2col chunks, a product per image   the same
chunk products             im2col chunks, a product per chunk   the same
=========================  ===================================  ===================================

- *fully connected*: the window covers the whole unpadded input; *pointwise*: 1x1 filters,
  stride 1, no padding, one group (each image is its own patch matrix). Both devices.
- *direct* (CPU): ``conv_forward_direct`` (kernels/conv_direct.h) skips the patch matrix: it
  keeps blocks of outputs in SIMD registers over their whole sum and reads the taps where they
  lie in the (padded) image. Taken where it measured faster than im2col's GEMM (see
  :func:`direct_forward_measured_faster`). The derivatives take the units below, of one image
  for images past :data:`UNIT_PATCH_BYTES` (up to :data:`DIRECT_UNIT_PATCH_BYTES`), so that a
  training step stays in OpenMP's threads; larger images, or no BLAS for C, take the chunks.
- *units* (CPU, small images: a patch matrix of at most :data:`UNIT_PATCH_BYTES`, as in LeNet):
  the C drivers ``conv_forward_units`` / ``conv_backward_units`` (kernels/conv.h) give each
  OpenMP thread units of a few images, with a patch buffer of its own that stays in its cache,
  and single-threaded GEMMs from a private OpenBLAS (:func:`autonn.kernels.cpu_gemm`).
- *image products*, *chunk products*: the batch is split into chunks whose patch matrix ``P``
  stays below :data:`PATCH_BUFFER_BYTES`. On the CPU, images of at least
  :data:`PER_IMAGE_MIN_PIXELS` output pixels take one product per image of the chunk (a batched
  matmul over column blocks of ``P``, which writes ``Y`` in NCHW order directly and stays fast
  on shared cores); smaller ones, and the GPU, one GEMM per chunk followed by a kernel that
  restores the NCHW layout.

The automatic choice (:func:`choose_schedule`) takes the first entry that can run the geometry
on the arrays' device (``refuses`` says why one cannot: the direct kernel and the units run on
the CPU only, the units need a BLAS for C) and whose ``applies`` rule says it measured fastest.
The last entry runs everything, so on the GPU the choice is fully connected, pointwise or chunk
products.

conv's data derivative has a choice of its own, :data:`DATA_DERIVATIVES`: for stride 1 it is
the convolution of ``dy`` with the flipped, transposed filters (manual 4.2), which the direct
kernel computes where that measured faster ("direct", :func:`choose_data_derivative`); the
schedule's backward then computes only dw. Otherwise dx comes from the schedule's backward,
``col2im(W^T . dY)`` ("col2im").

:func:`force_schedule` overrides both choices by name for a block of code, in the current
thread (a context variable): for tests, and to compare schedules on a layer::

    with autonn.nn.convolution.force_schedule("units", data_derivative="col2im"):
        dx, dw, db = nn.conv(x, w, b, dzdy=dy)

A forced schedule that cannot run the geometry (the direct kernel on the GPU, units without a
BLAS for C, the fully-connected product on a smaller window) raises a ValueError that says why.

The C drivers take the geometry as one struct, ``an_conv_geometry``
(kernels/_conv_geometry.h), filled by field name (:func:`c_geometry`).
"""

import contextlib
import contextvars
import functools
import math
import threading
from typing import Callable, NamedTuple, Optional

import numpy as np

from .. import kernels
from ..backend import array_module


# ============================================================================ table entries
class Schedule(NamedTuple):
    """One way to compute a convolution's forward and its derivatives."""
    name: str
    # (geometry, on_cpu, dtype) -> why the schedule cannot compute the geometry there, or None
    refuses: Callable[..., Optional[str]]
    # (geometry, dtype) -> whether the automatic choice takes it (the measured rule)
    applies: Callable[..., bool]
    # (x, w, b, y, geometry): y = conv(x, w) + b, for C-contiguous arrays and b (K,) or None
    forward: Callable[..., None]
    # (x, w, dy, dx, dw, geometry): writes dx whole when it is not None, and adds the filter
    # derivative to dw, zeros of shape (G, K/G, C/G*kh*kw), when it is not None
    backward: Callable[..., None]


class DataDerivative(NamedTuple):
    """One way to compute conv's data derivative dx."""
    name: str
    # (geometry, transposed, on_cpu) -> why it cannot compute dx there, or None; `transposed` is
    # the geometry of the convolution that gives dx (transposed_geometry), or None
    refuses: Callable[..., Optional[str]]
    # (geometry, transposed, dtype) -> whether the automatic choice takes it (the measured rule)
    applies: Callable[..., bool]
    # (w, dy, geometry, transposed) -> dx, computed apart from the schedule's backward; None
    # when the schedule's backward computes dx beside dw
    compute: Optional[Callable]


# ============================================================================ choosing
# (schedule name, data derivative name) forced by force_schedule in this context; None: automatic
_forced = contextvars.ContextVar("autonn_conv_forced_schedule", default=(None, None))


@contextlib.contextmanager
def force_schedule(schedule=None, *, data_derivative=None):
    """Within the ``with`` block, conv and convt use the schedule of :data:`SCHEDULES` named
    ``schedule`` and the data derivative of :data:`DATA_DERIVATIVES` named ``data_derivative``
    instead of the automatic choice (None: the automatic choice for that one, even inside an
    outer block that forced it).

    The override holds in the thread (the context) that entered the block; other threads keep
    choosing automatically. A convolution that the forced choice cannot compute raises a
    ValueError saying why.
    """
    _check_name("schedule", schedule, _SCHEDULES_BY_NAME)
    _check_name("data_derivative", data_derivative, _DATA_DERIVATIVES_BY_NAME)
    token = _forced.set((schedule, data_derivative))
    try:
        yield
    finally:
        _forced.reset(token)


def choose_schedule(geometry, dtype, device="cpu"):
    """The entry of :data:`SCHEDULES` that conv uses for ``geometry`` (a
    :class:`~autonn.nn.convolution.ConvGeometry`) on arrays of ``dtype`` on ``device`` ('cpu' or
    'gpu'): the forced one inside :func:`force_schedule`, otherwise the automatic choice."""
    return _schedule_for("conv", geometry, _on_cpu(device), np.dtype(dtype))


def choose_data_derivative(geometry, dtype, device="cpu"):
    """The entry of :data:`DATA_DERIVATIVES` that computes conv's dx for ``geometry``, as
    :func:`choose_schedule` does for the schedule."""
    return _data_derivative_for("conv", geometry, transposed_geometry(geometry),
                                _on_cpu(device), np.dtype(dtype))


def _schedule_for(op, g, on_cpu, dtype):
    forced = _forced.get()[0]
    if forced is not None:
        schedule = _SCHEDULES_BY_NAME[forced]
        _check_forced(op, "schedule", forced, schedule.refuses(g, on_cpu, dtype), g)
        return schedule
    for schedule in SCHEDULES:
        if schedule.refuses(g, on_cpu, dtype) is None and schedule.applies(g, dtype):
            return schedule
    raise AssertionError("conv: the last schedule runs every geometry")


def _data_derivative_for(op, g, transposed, on_cpu, dtype):
    forced = _forced.get()[1]
    if forced is not None:
        choice = _DATA_DERIVATIVES_BY_NAME[forced]
        _check_forced(op, "data derivative", forced, choice.refuses(g, transposed, on_cpu), g)
        return choice
    for choice in DATA_DERIVATIVES:
        if choice.refuses(g, transposed, on_cpu) is None and choice.applies(g, transposed, dtype):
            return choice
    raise AssertionError("conv: the last data derivative runs every geometry")


def _check_forced(op, what, name, reason, g):
    if reason is not None:
        raise ValueError(
            f"{op}: the forced {what} {name!r} cannot compute this convolution (x shape "
            f"{(g.N, g.C, g.H, g.W)}, filters shape {(g.K, g.C // g.G, g.kh, g.kw)}, stride "
            f"{(g.sh, g.sw)}, pad {(g.pt, g.pb, g.pl, g.pr)}, dilate {(g.dh, g.dw)}): {reason}")


def _check_name(argument, name, table):
    if name is not None and name not in table:
        raise ValueError(f"conv: force_schedule's {argument} must be one of "
                         f"{', '.join(map(repr, table))} (or None), got {name!r}")


def _on_cpu(device):
    if device not in ("cpu", "gpu"):
        raise ValueError(f"conv: device must be 'cpu' or 'gpu', got {device!r}")
    return device == "cpu"


# ============================================================================ entry points
def forward(op, x, w, b, g):
    """``y = conv(x, w) + b`` for C-contiguous x (N, C, H, W), w (K, C/G, kh, kw), b (K,) or None,
    in the schedule :func:`choose_schedule` gives (``op`` names the block in errors)."""
    xp = array_module(x, w)
    y = xp.empty((g.N, g.K, g.Ho, g.Wo), dtype=x.dtype)
    schedule = _schedule_for(op, g, xp is np, x.dtype)
    if y.size:                  # (the kernels are never handed an empty geometry)
        schedule.forward(x, w, b, y, g)
    return y


def backward(op, x, w, dy, g, need_dx, need_dw):
    """``(dx, dw)`` of ``conv`` for input x, filters w and output derivative dy (N, K, Ho, Wo),
    None where not needed. Also convt's forward (``dx`` for ``dy`` = convt's input; x may then
    be None) and convt's filter derivative."""
    xp = array_module(w, dy)
    on_cpu = xp is np
    schedule = _schedule_for(op, g, on_cpu, dy.dtype)
    dx = None
    if need_dx and g.N * g.C * g.H * g.W == 0:
        # an empty input (a padded image of no pixels, or an empty batch): nothing to compute,
        # and the kernels are never handed an empty geometry (the direct kernel divided by it)
        dx = xp.zeros((g.N, g.C, g.H, g.W), dtype=dy.dtype)
        need_dx = False
    if need_dx:
        transposed = transposed_geometry(g)
        data_derivative = _data_derivative_for(op, g, transposed, on_cpu, dy.dtype)
        if data_derivative.compute is not None:
            dx = data_derivative.compute(w, dy, g, transposed)
            need_dx = False
        else:
            dx = xp.empty((g.N, g.C, g.H, g.W), dtype=dy.dtype)
    rows_g = w[0].size                      # patch rows per group
    dw = xp.zeros((g.G, g.K // g.G, rows_g), dtype=dy.dtype) if need_dw else None
    if need_dx or (need_dw and dy.size and g.C * g.H * g.W):
        # (dx may have come from the direct kernel; dw stays zero without outputs or inputs)
        schedule.backward(x, w, dy, dx if need_dx else None, dw, g)
    if need_dw:
        dw = dw.reshape(g.K, rows_g // (g.kh * g.kw), g.kh, g.kw)
    return dx, dw


# ============================================================================ the rules
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


# The direct kernel's threads each copy the input rows of a band into a zero-padded buffer
# (kernels/conv_direct.h, ``direct_make_plan``): at least one output row's worth, whose width
# grows with the stride and the dilation (a row holds stride x the columns of a phase, which
# reach past the dilated filter). Ordinary layers take at most a few MiB; a huge stride or
# dilation would take more memory than the machine has, and the kernel writes every byte of
# it. A geometry whose buffer exceeds this bound (bytes per thread) is not given to the direct
# kernel: the automatic choice takes the next schedule (im2col's patch matrix, whose size
# follows the output), and a forced direct schedule is refused by name.
DIRECT_BUFFER_BYTES = 256 * 2**20


def direct_buffer_bytes(g, dtype):
    """The bytes of the padded input buffer each thread of ``conv_forward_direct`` allocates
    for geometry ``g`` (``direct_make_plan`` in kernels/conv_direct.h, in Python ints)."""
    itemsize = np.dtype(dtype).itemsize
    lanes, line = DIRECT_VECTOR_BYTES // itemsize, 64 // itemsize
    channels = g.C // max(g.G, 1)
    row_vectors = -(-g.Wo // lanes)
    row = g.sw * (row_vectors * lanes + (g.kw - 1) * g.dw // g.sw)
    band = DIRECT_BAND_BYTES // max(channels * g.sh * row * itemsize, 1)
    band = min(max(band, 1), max(g.Ho, 1))
    band = -(-g.Ho // -(-g.Ho // band)) if g.Ho else 1
    rows_in = (band - 1) * g.sh + (g.kh - 1) * g.dh + 1
    plane = (-(-(rows_in * row) // line) | 1) * line
    return channels * plane * itemsize


def _direct_buffer_refuses(g, dtype):
    size = direct_buffer_bytes(g, dtype)
    if size <= DIRECT_BUFFER_BYTES:
        return None
    return (f"its padded copy of the input would take {size} bytes per thread (more than "
            f"DIRECT_BUFFER_BYTES = {DIRECT_BUFFER_BYTES}), from the stride and dilation")


def direct_forward_measured_faster(g, dtype):
    """Whether conv's forward on the CPU is faster in the direct kernel than by im2col's GEMM
    (the measurements behind the rule are above DIRECT_VECTOR_BYTES)."""
    lanes = DIRECT_VECTOR_BYTES // np.dtype(dtype).itemsize
    lanes_taken = -(-g.Wo // lanes) * lanes
    filter_values = (g.K // g.G) * (g.C // g.G) * g.kh * g.kw
    return (g.kh * g.kw >= 3 * g.sh * g.sw and filter_values <= DIRECT_MAX_FILTER_VALUES
            and g.Wo >= DIRECT_MIN_LANE_USE * lanes_taken)


# Images whose patch matrix is at most this large (bytes) are convolved on the CPU by the C
# drivers ``conv_forward_units`` and ``conv_backward_units`` (kernels/conv.h): each thread takes
# units of whole images that together stay below this size, so that their patch matrix lives in
# the thread's L2 cache. For larger images, the forward loses more to single-threaded GEMMs
# reading their patches from memory than it gains (measured: VGG's 3x3 layer at a third of the
# chunked speed); their derivatives may still take units (see DIRECT_UNIT_PATCH_BYTES). (The
# size bound also keeps every GEMM dimension far inside the BLAS's int range.)
UNIT_PATCH_BYTES = 256 * 2**10

# Beside a forward in the direct kernel (OpenMP's threads), the derivatives of larger images
# take the units too, of one image each, up to this patch size: NumPy's OpenBLAS threads keep
# spinning for a while after each GEMM, and took the cores from the direct kernels that ran
# next (VGG's 3x3 layer: a forward+backward step 1.6x faster with the units; beside NumPy's
# GEMMs its forward ran 1.8x slower). Bounded: each thread holds an image's patches.
DIRECT_UNIT_PATCH_BYTES = 16 * 2**20

# The units' filter derivative: each thread's run of units sums into a zeroed dW of its own,
# and each unit's dW product has the unit's pixels as its inner dimension. With a large dW and
# few pixels per unit (VGG-16's 512-channel 3x3 layers on 2x2 maps: 12 pixels per unit, a
# 9.4 MB dW) the backward ran at 2-6 GFLOP/s, 5-30x slower than the chunked products; the
# units are kept for filter derivatives of at most this size or units of at least this many
# pixels (measured on a 2-core AVX-512 machine; the issue that found it measured the same rule
# on another: VGG-16's step 4-4.8x faster, ResNet-18's 1.0-1.24x).
UNIT_MAX_FILTER_DERIVATIVE_BYTES = 2**20
UNIT_MIN_PIXELS = 256

# Below this many output pixels per image, per-image products are too small for the BLAS and
# the chunk is one GEMM (LeNet's second layer has 64).
PER_IMAGE_MIN_PIXELS = 256

# Upper bound of the patch matrix of one batch chunk (bytes). A chunk this size stays in the
# last-level cache between im2col and the GEMM (measured: VGG's 3x3 layer 10% faster than with
# 64 MiB chunks), and larger chunks make no GEMM faster. A chunk holds at least one image, so an
# image whose own patch matrix is larger still runs, in chunks of one.
PATCH_BUFFER_BYTES = 8 * 2**20


def _enough_pixels_per_image(g, dtype):
    """Whether the CPU takes the GEMMs of a chunk image by image (PER_IMAGE_MIN_PIXELS)."""
    return g.Ho * g.Wo >= PER_IMAGE_MIN_PIXELS


# Fewer filters per group than this leave the direct kernel's blocks of 4 too empty for conv's
# data derivative (1 or 2 measured 0.4-0.7x the GEMM's speed, 3 and 4 1.1-1.3x).
DIRECT_MIN_DATA_FILTERS = 3


def direct_data_derivative_measured_faster(g, transposed, dtype):
    """Whether conv's data derivative (stride 1) is faster in the direct CPU kernel: when the
    convolution that gives it (``transposed``, see transposed_geometry) would be, and when
    - its padding leaves at least half of the padded input real (the derivative of a 5x5 layer
      on 8x8 maps, LeNet's second, reads 16x16 maps three quarters zero: 0.66x the GEMM);
    - it has at least DIRECT_MIN_DATA_FILTERS filters per group, unless each group of the
      forward has a single filter (depthwise): the GEMM's inner dimension is then 1, and the
      direct kernel measured 10x faster."""
    padded = ((transposed.H + transposed.pt + transposed.pb) *
              (transposed.W + transposed.pl + transposed.pr))
    enough_filters = g.C // g.G >= DIRECT_MIN_DATA_FILTERS or g.K == g.G
    return (enough_filters and 2 * transposed.H * transposed.W >= padded
            and direct_forward_measured_faster(transposed, dtype))


def transposed_geometry(g):
    """The geometry of the convolution that gives conv's data derivative, when there is one:
    for stride 1, dx = conv(dy, w flipped and transposed, pad = dilated extent - 1 - pad)
    (manual 4.2), a convolution in its own right when that padding is not negative. None
    otherwise, and for the fully-connected and pointwise shapes, which are single GEMMs."""
    pads = (g.dh * (g.kh - 1) - g.pt, g.dh * (g.kh - 1) - g.pb,
            g.dw * (g.kw - 1) - g.pl, g.dw * (g.kw - 1) - g.pr)
    if (g.sh, g.sw) != (1, 1) or min(pads) < 0 or g.fully_connected or g.pointwise:
        return None
    pt, pb, pl, pr = pads
    # type(g) is ConvGeometry, which autonn.nn.convolution defines (and which imports this module)
    return type(g)(N=g.N, C=g.K, H=g.Ho, W=g.Wo, K=g.C, G=g.G, kh=g.kh, kw=g.kw, Ho=g.H, Wo=g.W,
                   sh=1, sw=1, pt=pt, pb=pb, pl=pl, pr=pr, dh=g.dh, dw=g.dw)


# ============================================================================ the schedules
# Groups are the leading axis of batched matrix products: the filters (K, C/G, kh, kw) are
# (G, K/G, C/G*kh*kw) and the patch matrix (C*kh*kw, M) is (G, C/G*kh*kw, M), so one matmul
# call covers every group (a Python loop over groups would dominate depthwise convolutions).
def _filter_matrices(w, g):
    """The filters as (G, K/G, C/G*kh*kw) matrices."""
    return w.reshape(g.G, g.K // g.G, w[0].size)


def _forward_fully_connected(x, w, b, y, g):
    xp = array_module(x, w)
    Kg, rows_g = g.K // g.G, w[0].size
    per_group = _matmul(xp, x.reshape(g.N, g.G, rows_g).transpose(1, 0, 2),
                        _filter_matrices(w, g).transpose(0, 2, 1))
    y.reshape(g.N, g.G, Kg)[...] = per_group.transpose(1, 0, 2)
    if b is not None:
        add_channel_bias(y, b)


def _backward_fully_connected(x, w, dy, dx, dw, g):
    xp = array_module(w, dy)
    Kg, rows_g = g.K // g.G, w[0].size
    dy3 = dy.reshape(g.N, g.G, Kg).transpose(1, 0, 2)                 # (G, N, Kg)
    if dx is not None:
        dx.reshape(g.N, g.G, rows_g)[...] = _matmul(xp, dy3, _filter_matrices(w, g)).transpose(
            1, 0, 2)
    if dw is not None:
        dw[...] = _matmul(xp, dy3.transpose(0, 2, 1),
                          x.reshape(g.N, g.G, rows_g).transpose(1, 0, 2))


def _forward_pointwise(x, w, b, y, g):
    # one GEMM per image, written in place, the bias added while its outputs are in cache
    xp = array_module(x, w)
    w2 = _filter_matrices(w, g)[0]
    x3, y3 = x.reshape(g.N, g.C, g.H * g.W), y.reshape(g.N, g.K, g.Ho * g.Wo)
    if xp is np:
        kernels.matmul(w2, x3, y3, row_bias=b)
        return
    for n0, n in _chunks(g, x.dtype.itemsize):
        xp.matmul(w2, x3[n0:n0 + n], out=y3[n0:n0 + n])
        if b is not None:
            add_channel_bias(y[n0:n0 + n], b)


def _backward_pointwise(x, w, dy, dx, dw, g):
    xp = array_module(w, dy)
    dy3 = dy.reshape(g.N, g.K, g.Ho * g.Wo)
    if dx is not None:
        _matmul(xp, _filter_matrices(w, g)[0].T, dy3, out=dx.reshape(g.N, g.C, g.H * g.W))
    if dw is not None:
        dw[0] = _matmul(xp, dy3, x.reshape(g.N, g.C, g.H * g.W).transpose(0, 2, 1)).sum(axis=0)


def _forward_chunks(x, w, b, y, g, per_image):
    xp = array_module(x, w)
    G, K = g.G, g.K
    w3 = _filter_matrices(w, g)
    Kg, rows_g = w3.shape[1:]
    pixels = g.Ho * g.Wo
    for n0, n in _chunks(g, x.dtype.itemsize):
        patches = _im2col(x[n0:n0 + n], g, n)
        if per_image:
            # One product per image, written straight into y (n, G, K/G, Ho*Wo): no change of
            # layout, and the threads take whole images, which stays robust on shared cores
            # (see _backward_chunks); the bias follows while the outputs are in cache.
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


def _backward_chunks(x, w, dy, dx, dw, g, per_image):
    """per chunk, ``dW += dY P^T`` and ``dx = col2im(W^T dY)``."""
    xp = array_module(w, dy)
    G, K = g.G, g.K
    w3 = _filter_matrices(w, g)
    Kg, rows_g = w3.shape[1:]
    pixels = g.Ho * g.Wo
    for n0, n in _chunks(g, dy.dtype.itemsize):
        M = n * pixels
        if n == 1:      # one image's (K, Ho*Wo) derivative is already in the GEMM's layout
            dy3 = dy[n0].reshape(G, Kg, M)
        else:
            dy_chunk = _workspace(xp, "product", (K, M), dy.dtype)
            kernels.launch("nchw_to_gemm", n * K, dy[n0:n0 + n], dy_chunk, n, K, pixels)
            dy3 = dy_chunk.reshape(G, Kg, M)
        if dw is not None:
            patches = _im2col(x[n0:n0 + n], g, n).reshape(G, rows_g, M)
            if per_image:
                # One product per image, then a sum: NumPy's OpenBLAS split a single GEMM
                # with a small output and a long inner dimension (n*Ho*Wo) across its
                # threads in a way that collapsed when the cores were shared (measured:
                # 1.5 ms alone, up to 3 s beside other jobs; per image: 2.4 ms beside them).
                products = _matmul(xp, dy3.reshape(G, Kg, n, pixels).transpose(2, 0, 1, 3),
                                   patches.reshape(G, rows_g, n, pixels).transpose(2, 0, 3, 1))
                dw += products.sum(axis=0)
            else:
                dw += _matmul(xp, dy3, patches.transpose(0, 2, 1))
        if dx is not None:
            # the patch buffer is free again: dw's product has been taken
            dpatches = _workspace(xp, "patches", (G * rows_g, M), dy.dtype)
            _matmul(xp, w3.transpose(0, 2, 1), dy3, out=dpatches.reshape(G, rows_g, M))
            kernels.launch("col2im", n * g.C * g.H, dpatches, dx[n0:n0 + n],
                           *_kernel_geometry(g, n))


def _matmul(xp, a, b, out=None):
    """``a @ b``; on the CPU in OpenMP's threads (:func:`autonn.kernels.matmul`)."""
    return kernels.matmul(a, b, out) if xp is np else xp.matmul(a, b, out=out)


def _forward_units(x, w, b, y, g):
    bias = np.ascontiguousarray(b) if b is not None else y      # not read without a bias
    _call_units("conv_forward_units", g, x.dtype, x, w, bias, int(b is not None), y)


def _backward_units(x, w, dy, dx, dw, g):
    """dx (written whole) and dw (accumulated into zeros) when either is not None."""
    # arrays the driver does not read stand in for absent ones (cffi needs a buffer)
    _call_units("conv_backward_units", g, dy.dtype, dy if x is None else x, w, dy,
                dy if dx is None else dx, dy if dw is None else dw,
                int(dx is not None), int(dw is not None))


def _images_per_unit(g, itemsize):
    """The images of one unit of the C drivers: their patches stay below UNIT_PATCH_BYTES;
    a unit's GEMM output (K, unit*Ho*Wo) is bounded too (many filters on tiny maps would
    otherwise make it far larger than its patches)."""
    per_image = _patch_bytes(g, itemsize)
    return max(1, UNIT_PATCH_BYTES // max(per_image, g.K * g.Ho * g.Wo * itemsize, 1))


def _call_units(name, g, dtype, *arrays_and_flags):
    itemsize = np.dtype(dtype).itemsize
    per_image = _patch_bytes(g, itemsize)
    unit = _images_per_unit(g, itemsize)
    status = kernels.call_cpu(name, *arrays_and_flags, c_geometry(g), unit,
                              kernels.cpu_gemm(dtype))
    if status != 0:
        raise MemoryError(f"conv: cannot allocate the buffers of the CPU threads ({unit} "
                          f"images of {per_image} bytes of patches each)")


def _data_derivative_direct(w, dy, g, transposed):
    """conv's dx (stride 1) as the direct convolution of dy with w' (C, K/G, kh, kw),
    w'[group*C/G + c, k, i, j] = w[group*K/G + k, c, kh-1-i, kw-1-j]."""
    Kg, Cg = g.K // g.G, g.C // g.G
    flipped = w.reshape(g.G, Kg, Cg, g.kh, g.kw)[:, :, :, ::-1, ::-1]
    w_t = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4)).reshape(g.C, Kg, g.kh, g.kw)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=dy.dtype)
    _forward_direct(np.ascontiguousarray(dy), w_t, None, dx, transposed)
    return dx


def _forward_direct(x, w, b, y, g):
    bias = np.ascontiguousarray(b) if b is not None else y      # not read without a bias
    status = kernels.call_cpu("conv_forward_direct", x, w, bias, int(b is not None), y,
                              c_geometry(g), DIRECT_BAND_BYTES)
    if status != 0:
        raise MemoryError(f"conv: cannot allocate the buffers of the direct CPU kernel "
                          f"(x shape {tuple(x.shape)}, filters shape {tuple(w.shape)})")


# Built once per geometry (the drivers only read it): filling the struct field by field costs
# more than the whole Python side of a small convolution's call.
@functools.lru_cache(maxsize=256)
def c_geometry(g):
    """``g`` as the C drivers' ``an_conv_geometry *`` (kernels/_conv_geometry.h): every field of
    the C struct is filled from the geometry's field of the same name, so a field added in C
    without its Python namesake fails here, and cffi refuses a name the struct does not have."""
    return kernels.cpu_library().ffi.new("an_conv_geometry *",
                                         {name: getattr(g, name) for name in _c_geometry_fields()})


@functools.lru_cache(maxsize=None)
def _c_geometry_fields():
    return tuple(name for name, _ in kernels.cpu_library().ffi.typeof("an_conv_geometry").fields)


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
    """The trailing arguments of the im2col/col2im kernels (which run on the GPU too, whose
    launcher passes plain integers)."""
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


# ============================================================================ the tables
def _always(g, *_):
    return True


def _runs_anywhere(g, *_):
    return None


def _needs_fully_connected(g, on_cpu, dtype):
    if g.fully_connected:
        return None
    return "its single product needs a window covering the whole unpadded input"


def _needs_pointwise(g, on_cpu, dtype):
    if g.pointwise:
        return None
    return "its products per image need 1x1 filters, stride 1, no padding and one group"


def _cpu_only(g, on_cpu, dtype):
    return None if on_cpu else "it runs on the CPU only, and the arrays are on the GPU"


def _cpu_with_blas(g, on_cpu, dtype):
    if not on_cpu:
        return _cpu_only(g, on_cpu, dtype)
    if kernels.cpu_gemm(dtype) is None:
        return ("its C drivers need a single-threaded BLAS for C (the scipy-openblas32 "
                "package), which is not installed or cannot be loaded")
    return None


def _direct_with_blas(g, on_cpu, dtype):
    return _cpu_with_blas(g, on_cpu, dtype) or _direct_buffer_refuses(g, dtype)


def _direct_cpu_only(g, on_cpu, dtype):
    return _cpu_only(g, on_cpu, dtype) or _direct_buffer_refuses(g, dtype)


def _direct_then_units(g, dtype):
    return (direct_forward_measured_faster(g, dtype)
            and _patch_bytes(g, np.dtype(dtype).itemsize) <= DIRECT_UNIT_PATCH_BYTES
            and _units_backward_efficient(g, dtype, images_per_unit=1))


def _units_backward_efficient(g, dtype, images_per_unit):
    """UNIT_MAX_FILTER_DERIVATIVE_BYTES / UNIT_MIN_PIXELS."""
    dw_bytes = g.K * (g.C // g.G) * g.kh * g.kw * np.dtype(dtype).itemsize
    pixels = min(images_per_unit, max(g.N, 1)) * g.Ho * g.Wo
    return dw_bytes <= UNIT_MAX_FILTER_DERIVATIVE_BYTES or pixels >= UNIT_MIN_PIXELS


def _direct_then_image_products(g, dtype):
    return direct_forward_measured_faster(g, dtype) and _enough_pixels_per_image(g, dtype)


def _small_images(g, dtype):
    itemsize = np.dtype(dtype).itemsize
    return (_patch_bytes(g, itemsize) <= UNIT_PATCH_BYTES
            and _units_backward_efficient(g, dtype, _images_per_unit(g, itemsize)))


def _forward_image_products(x, w, b, y, g):
    _forward_chunks(x, w, b, y, g, per_image=True)


def _forward_chunk_products(x, w, b, y, g):
    _forward_chunks(x, w, b, y, g, per_image=False)


def _backward_image_products(x, w, dy, dx, dw, g):
    _backward_chunks(x, w, dy, dx, dw, g, per_image=True)


def _backward_chunk_products(x, w, dy, dx, dw, g):
    _backward_chunks(x, w, dy, dx, dw, g, per_image=False)


# Tried in order by the automatic choice (the rules are under "the rules" above); the last
# entry runs every geometry on both devices.
SCHEDULES = (
    #        name                       refuses                 applies
    #        forward                    backward
    Schedule("fully connected",         _needs_fully_connected, _always,
             _forward_fully_connected,  _backward_fully_connected),
    Schedule("pointwise",               _needs_pointwise,       _always,
             _forward_pointwise,        _backward_pointwise),
    Schedule("direct",                  _direct_with_blas,      _direct_then_units,
             _forward_direct,      _backward_units),
    Schedule("direct + image products", _direct_cpu_only,       _direct_then_image_products,
             _forward_direct,      _backward_image_products),
    Schedule("direct + chunk products", _direct_cpu_only,       direct_forward_measured_faster,
             _forward_direct,      _backward_chunk_products),
    Schedule("units",                   _cpu_with_blas,         _small_images,
             _forward_units,            _backward_units),
    Schedule("image products",          _cpu_only,              _enough_pixels_per_image,
             _forward_image_products,   _backward_image_products),
    Schedule("chunk products",          _runs_anywhere,         _always,
             _forward_chunk_products,   _backward_chunk_products),
)


def _direct_data_derivative_refuses(g, transposed, on_cpu):
    if not on_cpu:
        return "the direct kernel runs on the CPU only, and the arrays are on the GPU"
    if transposed is None:
        return ("dx is a convolution of dy only for stride 1 and padding at most the dilated "
                "filter's extent less 1, and not for the fully-connected and pointwise shapes")
    return _direct_buffer_refuses(transposed, np.float64)     # (the larger itemsize bounds both)


# Tried in order by the automatic choice, for conv's dx (when it is needed).
DATA_DERIVATIVES = (
    DataDerivative("direct", _direct_data_derivative_refuses,
                   direct_data_derivative_measured_faster, _data_derivative_direct),
    DataDerivative("col2im", _runs_anywhere, _always, None),
)

_SCHEDULES_BY_NAME = {schedule.name: schedule for schedule in SCHEDULES}
_DATA_DERIVATIVES_BY_NAME = {choice.name: choice for choice in DATA_DERIVATIVES}
