"""Activation blocks: ``relu``, ``sigmoid`` and ``softmax`` (manual 4.4, 4.5.4, 6.4, 6.5.4).

All three derivatives read only the block *output*, never its input: the tape can free the input
as soon as the forward step has run, and the compiler's ReLU short-circuit (overwriting the input
slot with the output) relies on it.
"""

from ..backend import array_module
from ..ops import Op
from ._arguments import any_layer, as_real, check_dzdy, check_float_array


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
        check_dzdy("relu", dzdy, x.shape)
    return relu_op(x, leak=leak, dzdy=dzdy)


def sigmoid(x, *, dzdy=None):
    """Logistic sigmoid, ``vl_nnsigmoid``: ``y = 1 / (1 + exp(-x))``, ``dz/dx = dz/dy * y * (1 - y)``.

    Evaluated as ``exp(min(x, 0)) / (1 + exp(-|x|))`` so that no exponential overflows.
    """
    if not any_layer(x):
        check_float_array("sigmoid", "x", x)
        check_dzdy("sigmoid", dzdy, x.shape)
    return sigmoid_op(x, dzdy=dzdy)


def softmax(x, *, dzdy=None):
    """Softmax over channels (axis 1), ``vl_nnsoftmax``.

    ``y_k = exp(x_k - m) / sum_t exp(x_t - m)`` with ``m = max_t x_t`` (manual 6.5.4: subtracting
    the maximum avoids overflow and leaves the result unchanged). Derivative:
    ``dz/dx_d = y_d * (dz/dy_d - sum_k dz/dy_k * y_k)``.

    x : (N, C) or (N, C, H, W).
    """
    if not any_layer(x):
        check_float_array("softmax", "x", x, ndim=(2, 4))
        check_dzdy("softmax", dzdy, x.shape)
    return softmax_op(x, dzdy=dzdy)


# --------------------------------------------------------------------------- relu
def relu_forward(x, *, leak=0.0):
    xp = array_module(x)
    if leak == 0.0:
        return xp.maximum(x, 0)
    return xp.where(x > 0, x, x * x.dtype.type(leak))


def relu_backward(x, dzdy, *, y, leak=0.0):
    # x may already be freed by the tape (backward_needs_inputs=()): only y is read.
    xp = array_module(y, dzdy)
    if leak == 0.0:
        return xp.where(y > 0, dzdy, y.dtype.type(0))
    return xp.where(y > 0, dzdy, dzdy * y.dtype.type(leak))


relu_op = Op("relu", relu_forward, relu_backward, backward_needs_inputs=(),
             backward_needs_output=True, shape=lambda x_shape, **options: tuple(x_shape),
             input_names=("x",), doc=relu.__doc__)


# --------------------------------------------------------------------------- sigmoid
def sigmoid_forward(x):
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    # For x >= 0: 1 / (1 + e^-x); for x < 0: e^x / (1 + e^x); both use e = exp(-|x|) <= 1.
    return xp.where(x >= 0, 1, e) / (1 + e)


def sigmoid_backward(x, dzdy, *, y):
    return dzdy * y * (1 - y)


sigmoid_op = Op("sigmoid", sigmoid_forward, sigmoid_backward, backward_needs_inputs=(),
                backward_needs_output=True, shape=lambda x_shape: tuple(x_shape),
                input_names=("x",), doc=sigmoid.__doc__)


# --------------------------------------------------------------------------- softmax
def softmax_forward(x):
    xp = array_module(x)
    y = x - x.max(axis=1, keepdims=True)
    xp.exp(y, out=y)
    y /= y.sum(axis=1, keepdims=True)
    return y


def softmax_backward(x, dzdy, *, y):
    return y * (dzdy - (dzdy * y).sum(axis=1, keepdims=True))


softmax_op = Op("softmax", softmax_forward, softmax_backward, backward_needs_inputs=(),
                backward_needs_output=True, shape=lambda x_shape: tuple(x_shape),
                input_names=("x",), doc=softmax.__doc__)
