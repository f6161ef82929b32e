"""Recurrent blocks: AutoNN's ``lstm`` (``vl_nnlstm``, one time step of an LSTM cell) and
``lstm_params`` (``vl_nnlstm_params``, its initial parameters).

A time step is one GEMM, ``z = [x h] W^T`` (NumPy's BLAS on the CPU, cuBLAS on the GPU), then
one kernel of ``kernels/lstm.h`` that adds the biases, applies the gates and writes the next
states; the backward is that kernel's derivative and two GEMMs
(``[dx dh] = dz W``, ``dW = dz^T [x h]``). The gate activations are a third, hidden output of
the op (written over ``z``, so they cost no extra memory): the backward reads them instead of
running the forward's GEMM again. ``lstm`` returns only ``(h', c')``.

Shapes are MatConvNet's transposed to batch-first, as NCHW is: vl_nnlstm's x (m x N) and h, c
(d x N), or their 1 x 1 x m x N forms, are here x (N, m) and h, c (N, d), or (N, m, 1, 1) and
(N, d, 1, 1).
"""

import numpy as np

from .. import kernels
from ..backend import array_module, is_gpu_array
from ..layer import Param
from ..ops import Op
from ._arguments import (
    any_layer,
    as_real,
    check_devices,
    check_float_array,
    check_same_dtype,
    is_array,
    takes_name,
)

# the five derivatives vl_nnlstm's clipGrad clamps, in its order
CLIPPED = ("dx", "dh", "dc", "dW", "db")


@takes_name
def lstm(x, h, c, W, b, *, clip_grad=None, dzdy=None):
    """One time step of an LSTM cell, AutoNN's ``vl_nnlstm``: ``(h', c') = lstm(x, h, c, W, b)``.

    With ``z = W [x; h] + b`` split into four blocks of d rows, the gates [i; f; o; g]::

        i = sigmoid(z_i), f = sigmoid(z_f), o = sigmoid(z_o), g = tanh(z_g)
        c' = f * c + i * g,   h' = o * tanh(c')

    Derivatives (``dzdy=(dh', dc')``, either may be None for zeros), with
    ``dc'_full = dc' + dh' o (1 - tanh(c')^2)``: ``dc = dc'_full f``, ``dz_i = dc'_full g i (1-i)``,
    ``dz_f = dc'_full c f (1-f)``, ``dz_o = dh' tanh(c') o (1-o)``, ``dz_g = dc'_full i (1-g^2)``,
    then ``[dx; dh] = W^T dz``, ``dW = dz [x; h]^T``, ``db = sum_n dz``. Returns
    ``(dx, dh, dc, dW, db)``.

    x : (N, m) or (N, m, 1, 1), the input of the step (m features, batch N).
    h, c : (N, d) or (N, d, 1, 1), the previous hidden and cell states (d hidden units).
    W : (4d, m + d), the blocks ``[Wxi Whi; Wxf Whf; Wxo Who; Wxg Whg]`` (the columns of x first).
    b : (4d,) (or (4d, 1)), the biases ``[bi; bf; bo; bg]``.
    clip_grad : None (no clipping), a number, or 5 numbers: each derivative of the backward
        (dx, dh, dc, dW, db, in that order) is clamped to [-clip, clip], vl_nnlstm's
        ``clipGrad`` (whose own default is 10).

    Returns ``(h', c')``, shaped like h; in a graph a pair of Layers.
    """
    clip = _clip_values(clip_grad)
    if any_layer(x, h, c, W, b):
        h_next, c_next, _gates = lstm_op(x, h, c, W, b, dzdy=dzdy, clip_grad=clip)
        return h_next, c_next
    for name, value, ndim in (("x", x, (2, 4)), ("h", h, (2, 4)), ("c", c, (2, 4)),
                              ("W", W, 2), ("b", b, (1, 2))):
        check_float_array("lstm", name, value, ndim=ndim)
    check_same_dtype("lstm", x=x, h=h, c=c, W=W, b=b)
    check_devices("lstm", x=x, h=h, c=c, W=W, b=b)
    _lstm_shapes(x.shape, h.shape, c.shape, W.shape, b.shape)
    if dzdy is None:
        h_next, c_next, _gates = lstm_op(x, h, c, W, b, clip_grad=clip)
        return h_next, c_next
    dh_next, dc_next = _checked_dzdy(dzdy, h, x)
    return lstm_op(x, h, c, W, b, dzdy=(dh_next, dc_next, None), clip_grad=clip)


def lstm_params(d, m, *, noise=0.1, forget_bias=1.0, learning_rate=1.0, weight_decay=(1.0, 0.0),
                dtype=np.float32, rng=None):
    """The Params ``(W, b)`` of an LSTM with d hidden units and an m-dimensional input,
    AutoNN's ``vl_nnlstm_params``.

    W (4d, m + d) and b (4d,) are uniform in [-noise, noise], except the forget gate's biases
    ``b[d:2d]``, set to ``forget_bias`` (a forget gate that starts open keeps the cell state
    through the first steps of learning). ``learning_rate`` and ``weight_decay`` are a number or
    a pair (W, b); as in AutoNN, the biases have no weight decay by default. ``rng`` is a
    ``numpy.random.Generator``; without it NumPy's global generator draws (``np.random.seed``).
    """
    d, m = _positive_int("lstm_params", "d", d), _positive_int("lstm_params", "m", m)
    noise = as_real("lstm_params", "noise", noise, nonnegative=True)
    forget_bias = as_real("lstm_params", "forget_bias", forget_bias)
    lr_w, lr_b = _number_or_pair("lstm_params", "learning_rate", learning_rate)
    wd_w, wd_b = _number_or_pair("lstm_params", "weight_decay", weight_decay)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"lstm_params: dtype must be float32 or float64, got {dtype}")
    uniform = np.random.random_sample if rng is None else rng.random
    weights = (-noise + 2 * noise * uniform((4 * d, m + d))).astype(dtype)
    biases = (-noise + 2 * noise * uniform(4 * d)).astype(dtype)
    biases[d:2 * d] = forget_bias
    return (Param(weights, learning_rate=lr_w, weight_decay=wd_w),
            Param(biases, learning_rate=lr_b, weight_decay=wd_b))


# --------------------------------------------------------------------------- checks
def _lstm_shapes(x_shape, h_shape, c_shape, W_shape, b_shape, *, clip_grad=None):
    """The shapes of (h', c', gates); a ValueError naming the mismatched arguments."""
    shapes = f"x {tuple(x_shape)}, h {tuple(h_shape)}, c {tuple(c_shape)}, W {tuple(W_shape)}"
    shapes += f", b {tuple(b_shape)}"
    x_rows, m = _rows("x", x_shape)
    N, d = _rows("h", h_shape)
    if tuple(c_shape) != tuple(h_shape):
        raise ValueError(f"lstm: c must have the shape of h, got {shapes}")
    if x_rows != N:
        raise ValueError(f"lstm: x and h must have the same batch size (first axis), got "
                         f"{shapes}")
    if len(W_shape) != 2 or tuple(W_shape) != (4 * d, m + d):
        raise ValueError(f"lstm: W must be (4d, m + d) = {(4 * d, m + d)} for m = {m} inputs "
                         f"and d = {d} hidden units, got {shapes}")
    if tuple(b_shape) not in ((4 * d,), (4 * d, 1)):
        raise ValueError(f"lstm: b must be (4d,) = {(4 * d,)}, got {shapes}")
    return tuple(h_shape), tuple(h_shape), (N, 4 * d)


def _rows(name, shape):
    """(N, features) of an (N, k) or (N, k, 1, 1) argument."""
    shape = tuple(shape)
    if len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1)):
        if shape[1] < 1:
            raise ValueError(f"lstm: {name} must have at least one feature, got shape {shape}")
        return shape[0], shape[1]
    raise ValueError(f"lstm: {name} must be (N, k) or (N, k, 1, 1), got shape {shape}")


def _checked_dzdy(dzdy, h, x):
    """dzdy as the pair (dh', dc'): each None or an array shaped like h, of x's dtype and
    device."""
    if type(dzdy) not in (tuple, list) or len(dzdy) != 2:
        raise TypeError(f"lstm: dzdy must be a pair (dh, dc) of the derivatives of the two "
                        f"outputs, got {type(dzdy).__name__}"
                        + (f" of {len(dzdy)}" if type(dzdy) in (tuple, list) else ""))
    for name, der in zip(("dh", "dc"), dzdy):
        if der is None:
            continue
        if not is_array(der):
            raise TypeError(f"lstm: dzdy ({name}) must be a NumPy or CuPy array shaped like h "
                            f"{tuple(h.shape)}, got {type(der).__name__}")
        if tuple(der.shape) != tuple(h.shape):
            raise ValueError(f"lstm: dzdy ({name}) must have the output shape "
                             f"{tuple(h.shape)}, got {tuple(der.shape)}")
        if der.dtype != x.dtype:
            raise TypeError(f"lstm: dzdy ({name}) must have the dtype of x ({x.dtype}, shape "
                            f"{tuple(x.shape)}), got {der.dtype}")
        check_devices("lstm", x=x, **{f"dzdy ({name})": der})
    return tuple(dzdy)


def _clip_values(clip_grad):
    """None, or the 5 clip values (dx, dh, dc, dW, db) as floats."""
    if clip_grad is None:
        return None
    if isinstance(clip_grad, (tuple, list, np.ndarray)):
        values = tuple(clip_grad)
        if len(values) != len(CLIPPED):
            raise ValueError(f"lstm: clip_grad must be a number or 5 numbers (one each for "
                             f"{', '.join(CLIPPED)}), got {len(values)}: {clip_grad!r}")
    else:
        values = (clip_grad,) * len(CLIPPED)
    return tuple(as_real("lstm", f"clip_grad ({name})", v, positive=True)
                 for name, v in zip(CLIPPED, values))


def _positive_int(op, name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _number_or_pair(op, name, value):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{op}: {name} must be a number or a pair (W, b), got {value!r}")
    return tuple(as_real(op, name, v) for v in values)


# --------------------------------------------------------------------------- kernels
def _product(a, b):
    """``a @ b`` into a fresh array, by NumPy's BLAS (its own threads) or cuBLAS. Not
    ``kernels.matmul``: on the step of benchmarks/bench_lstm.py (64 x 512 by 512 x 1024) its
    blocks of rows per OpenMP thread ran at half the speed of one multi-threaded GEMM."""
    return a @ b


def _chunk(a, d):
    """Units per work item of the gate kernels: a run of up to 256 units of one sample on the
    CPU (a vectorised loop), one unit per thread on the GPU."""
    return 1 if is_gpu_array(a) else min(d, 256)


def _inputs_and_state(x, h):
    """[x h], (N, m + d), C-contiguous, in x's dtype."""
    xp = array_module(x)
    N = x.shape[0]
    return xp.concatenate([x.reshape(N, -1), h.reshape(N, -1).astype(x.dtype, copy=False)],
                          axis=1)


def _clip(a, limit):
    if limit is not None:
        array_module(a).clip(a, -limit, limit, out=a)
    return a


def lstm_forward(x, h, c, W, b, *, clip_grad=None):
    xp = array_module(x)
    N, d = x.shape[0], W.shape[0] // 4
    gates = _product(_inputs_and_state(x, h), W.astype(x.dtype, copy=False).T)
    h_next = xp.empty((N, d), x.dtype)
    c_next = xp.empty((N, d), x.dtype)
    chunk = _chunk(x, d)
    kernels.launch("lstm_forward", N * -(-d // chunk), gates,
                   xp.ascontiguousarray(b.reshape(-1), dtype=x.dtype),
                   xp.ascontiguousarray(c.reshape(N, d), dtype=x.dtype), h_next, c_next, N, d,
                   chunk)
    return h_next.reshape(h.shape), c_next.reshape(h.shape), gates


def lstm_backward(x, h, c, W, b, dzdy, *, y, need, clip_grad=None):
    xp = array_module(x)
    _, c_next, gates = y
    dh_next, dc_next, _ = dzdy
    N, d = x.shape[0], W.shape[0] // 4
    m = W.shape[1] - d
    clip = clip_grad or (None,) * len(CLIPPED)
    dz = xp.empty_like(gates)
    dc = xp.empty((N, d), x.dtype)
    chunk = _chunk(x, d)
    kernels.launch("lstm_backward", N * -(-d // chunk), gates,
                   xp.ascontiguousarray(c.reshape(N, d), dtype=x.dtype),
                   xp.ascontiguousarray(c_next.reshape(N, d)),
                   xp.ascontiguousarray(dh_next.reshape(N, d), dtype=x.dtype),
                   xp.ascontiguousarray(dc_next.reshape(N, d), dtype=x.dtype), dz, dc,
                   float("inf") if clip[2] is None else clip[2], N, d, chunk)
    dx = dh = dW = db = None
    if need[0] or need[1]:
        dxh = _product(dz, W.astype(x.dtype, copy=False))
        dx = _clip(dxh[:, :m], clip[0]).reshape(x.shape) if need[0] else None
        dh = _clip(dxh[:, m:], clip[1]).reshape(h.shape) if need[1] else None
    if need[3]:
        dW = _clip(_product(dz.T, _inputs_and_state(x, h)), clip[3])
    if need[4]:
        db = _clip(dz.sum(axis=0), clip[4]).reshape(b.shape)
    return dx, dh, dc.reshape(c.shape), dW, db


lstm_op = Op("lstm", lstm_forward, lstm_backward, num_outputs=3,
             backward_needs_output=True, backward_accepts_need=True, shape=_lstm_shapes, receptive_field="none",
             input_names=("x", "h", "c", "W", "b"), doc=lstm.__doc__)
