"""Activation blocks: ``relu``, ``sigmoid`` and ``softmax`` (manual 4.4, 4.5.4, 6.4, 6.5.4), and
AutoNN's ``maxout``.

Each runs on the C kernels of ``kernels/activation.h`` and ``kernels/maxout.h`` (OpenMP on the
CPU, CUDA on the GPU). The first three derivatives read only the block *output*, never its input
(``backward_needs_inputs=()``): under ``conserve_memory`` the tape frees the input as soon as no
later forward step reads it. (The output is a fresh array: the kernels' inputs and outputs
never alias, so there is no in-place "ReLU short-circuit".)
"""

import numpy as np

from .. import kernels
from ..backend import array_module, is_gpu_array
from ..ops import Op
from ._arguments import any_layer, as_real, check_dzdy, check_float_array, takes_name


@takes_name
def relu(x, *, leak=0.0, dzdy=None):
    """Rectified linear unit, ``vl_nnrelu``.

    ``y = x`` where ``x > 0`` and ``y = leak * x`` elsewhere (``leak = 0``: ``y = max(x, 0)``).
    Derivative: ``dz/dx = dz/dy * s`` with ``s = 1`` where ``x > 0`` and ``s = leak`` elsewhere,
    computed from the sign of ``y`` (equal to the sign of ``x`` for ``leak >= 0``).

    x : array of any shape, float32 or float64.
    """
    leak = as_real("relu", "leak", leak, nonnegative=True)
    if not any_layer(x):
        check_float_array("relu", "x", x)
        check_dzdy("relu", dzdy, x.shape, like=x)
    return relu_op(x, leak=leak, dzdy=dzdy)


@takes_name
def sigmoid(x, *, dzdy=None):
    """Logistic sigmoid, ``vl_nnsigmoid``: ``y = 1 / (1 + exp(-x))``, ``dz/dx = dz/dy * y * (1 - y)``.

    Evaluated as ``exp(min(x, 0)) / (1 + exp(-|x|))`` so that no exponential overflows.
    """
    if not any_layer(x):
        check_float_array("sigmoid", "x", x)
        check_dzdy("sigmoid", dzdy, x.shape, like=x)
    return sigmoid_op(x, dzdy=dzdy)


@takes_name
def softmax(x, *, dzdy=None):
    """Softmax over channels (axis 1), ``vl_nnsoftmax``.

    ``y_k = exp(x_k - m) / sum_t exp(x_t - m)`` with ``m = max_t x_t`` (manual 6.5.4: subtracting
    the maximum avoids overflow and leaves the result unchanged). Derivative:
    ``dz/dx_d = y_d * (dz/dy_d - sum_k dz/dy_k * y_k)``.

    x : (N, C) or (N, C, H, W).
    """
    if not any_layer(x):
        check_float_array("softmax", "x", x, ndim=(2, 4))
        check_dzdy("softmax", dzdy, x.shape, like=x)
    return softmax_op(x, dzdy=dzdy)


@takes_name
def maxout(x, units, *, dzdy=None):
    """Maxout, AutoNN's ``vl_nnmaxout``: the maximum of each run of ``units`` consecutive
    channels, ``y[n, b, h, w] = max_{u < units} x[n, b*units + u, h, w]``.

    The derivative goes to the first maximum of each run (the first channel at a tie, as
    ``vl_nnpool`` over the channels).

    x : (N, C, H, W) with C a multiple of ``units``; y : (N, C / units, H, W).
    """
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
        raise ValueError(f"maxout: units must be a positive int, got {units!r}")
    units = int(units)
    if not any_layer(x):
        check_float_array("maxout", "x", x, ndim=4)
        check_dzdy("maxout", dzdy, _maxout_shape(x.shape, units=units), like=x)
    return maxout_op(x, units=units, dzdy=dzdy)


# --------------------------------------------------------------------------- kernels
def contiguous(a, dtype=None):
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is): kernels index
    raw memory."""
    return array_module(a).ascontiguousarray(a, dtype=dtype)


def elementwise_chunk(a):
    """Elements per work item of the chunked element-wise kernels: a vectorised inner loop of a
    few thousand on the CPU, one element per thread on the GPU."""
    return 1 if is_gpu_array(a) else 4096


def _elementwise(kernel, *arrays, scalars=()):
    """Run a chunked element-wise kernel ``kernel(inputs..., out, scalars..., n, chunk)``; the
    output has the shape and dtype of the first input."""
    first = contiguous(arrays[0])
    inputs = [first] + [contiguous(a, first.dtype) for a in arrays[1:]]
    out = array_module(first).empty_like(first)
    chunk = elementwise_chunk(first)
    kernels.launch(kernel, -(-first.size // chunk), *inputs, out, *scalars, first.size, chunk)
    return out


def channel_layout(x):
    """(positions, C, S) of x (N, C[, H, W]): N*H*W positions of C channels, S = H*W."""
    spatial = x.size // (x.shape[0] * x.shape[1]) if x.size else 0
    return x.shape[0] * spatial, x.shape[1], spatial


def position_blocks(x):
    """(blocks, C, S, block, positions) for the blocked softmax kernels.

    Work items are runs of up to ``block`` positions of one image: 1 on the GPU, on the CPU up to
    128 (AN_SOFTMAX_BLOCK), smaller when that leaves fewer than 64 blocks to share among the
    threads. For (N, C) scores (S = 1) an item is ``block`` whole rows, about a sixteenth of
    the batch but 8K to 32K values, so a small batch stays on one thread (waking a second costs
    more than its share of the work) and a larger one is shared evenly.
    """
    positions, channels, spatial = channel_layout(x)
    if is_gpu_array(x):
        block = 1
    elif spatial == 1:
        # about 16 items for the threads to share, each of 8K to 32K values
        rows_min, rows_max = max(1, 8192 // max(channels, 1)), max(1, 32768 // max(channels, 1))
        block = min(rows_max, max(rows_min, -(-positions // 16)))
    else:
        block = max(1, min(spatial, 128, max(8, positions // 64)))
    if spatial == 1:
        blocks = -(-positions // block)
    else:
        blocks = x.shape[0] * -(-spatial // block) if spatial else 0
    return blocks, channels, spatial, block, positions


# --------------------------------------------------------------------------- relu
def relu_forward(x, *, leak=0.0):
    return _elementwise("relu_forward", x, scalars=(leak,))


def relu_backward(x, dzdy, *, y, leak=0.0):
    # x may already be freed by the tape (backward_needs_inputs=()): only y is read.
    return _elementwise("relu_backward", y, dzdy, scalars=(leak,))


relu_op = Op("relu", relu_forward, relu_backward, backward_needs_inputs=(),
             backward_needs_output=True, shape=lambda x_shape, **options: tuple(x_shape),
             receptive_field="elementwise", matconvnet_types=("relu", "dagnn.ReLU"),
             input_names=("x",), doc=relu.__doc__)


# --------------------------------------------------------------------------- sigmoid
def sigmoid_forward(x):
    return _elementwise("sigmoid_forward", x)


def sigmoid_backward(x, dzdy, *, y):
    return _elementwise("sigmoid_backward", y, dzdy)


sigmoid_op = Op("sigmoid", sigmoid_forward, sigmoid_backward, backward_needs_inputs=(),
                backward_needs_output=True, shape=lambda x_shape: tuple(x_shape),
                receptive_field="elementwise", matconvnet_types=("sigmoid", "dagnn.Sigmoid"),
                input_names=("x",), doc=sigmoid.__doc__)


# --------------------------------------------------------------------------- softmax
def softmax_forward(x):
    x = contiguous(x)
    y = array_module(x).empty_like(x)
    blocks, channels, spatial, block, positions = position_blocks(x)
    kernels.launch("softmax_forward", blocks, x, y, channels, spatial, block, positions, blocks)
    return y


def softmax_backward(x, dzdy, *, y):
    y = contiguous(y)
    dx = array_module(y).empty_like(y)
    blocks, channels, spatial, block, positions = position_blocks(y)
    kernels.launch("softmax_backward", blocks, y, contiguous(dzdy, y.dtype), dx, channels,
                   spatial, block, positions, blocks)
    return dx


softmax_op = Op("softmax", softmax_forward, softmax_backward, backward_needs_inputs=(),
                backward_needs_output=True, shape=lambda x_shape: tuple(x_shape),
                receptive_field="elementwise", matconvnet_types=("softmax", "dagnn.SoftMax"),
                input_names=("x",), doc=softmax.__doc__)


# --------------------------------------------------------------------------- maxout
def _maxout_shape(x_shape, *, units):
    N, C, H, W = x_shape
    if C % units:
        raise ValueError(f"maxout: the {C} channels of x (shape {tuple(x_shape)}) are not a "
                         f"multiple of units={units}")
    return (N, C // units, H, W)


def maxout_forward(x, *, units):
    x = contiguous(x)
    y = array_module(x).empty(_maxout_shape(x.shape, units=units), x.dtype)
    kernels.launch("maxout_forward", y.size, x, y, y.size, units, x.shape[2] * x.shape[3])
    return y


def maxout_backward(x, dzdy, *, units):
    x = contiguous(x)
    dx = array_module(x).empty_like(x)
    count = x.size // units
    kernels.launch("maxout_backward", count, x, contiguous(dzdy, x.dtype), dx, count, units,
                   x.shape[2] * x.shape[3])
    return dx


maxout_op = Op("maxout", maxout_forward, maxout_backward, shape=_maxout_shape,
               receptive_field="elementwise", input_names=("x",), doc=maxout.__doc__)
