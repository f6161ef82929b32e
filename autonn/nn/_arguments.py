"""Argument checks shared by the blocks of Blocks II (activations, normalisations, losses, ...).

Every block validates its arguments here, eagerly, before it touches an array, so that bad input
fails with a message naming the op, the argument and the shapes (SPEC section 0) rather than with
a NumPy broadcasting error deep inside the computation. When any argument is a ``Layer`` the block
is building a graph: shapes are unknown, so only the options are checked.
"""

import functools
import inspect
import math

import numpy as np

from ..backend import check_same_device, is_gpu_array
from ..layer import Layer
from ..ops import contains_layer

FLOAT_DTYPES = (np.float32, np.float64)


def takes_name(block):
    """``block`` taking ``name=`` too, as every graph-building call does: the Layer it builds
    gets that name and its unnamed Params are named after it (``nn.conv(x, size=...,
    name='scores')`` makes ``scores``, ``scores_filters`` and ``scores_biases``). An eager
    call ignores the name."""
    @functools.wraps(block)
    def named_block(*args, name=None, **options):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{block.__name__}: name must be a str, got {type(name).__name__}")
        return Layer.name_result(block(*args, **options), name)

    signature = inspect.signature(block)
    parameters = list(signature.parameters.values())
    named = inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None)
    named_block.__signature__ = signature.replace(parameters=parameters + [named])
    return named_block


def any_layer(*values):
    """True when one of the values is a graph ``Layer`` (the block then builds a node)."""
    return contains_layer(values)


def is_array(value):
    return isinstance(value, np.ndarray) or is_gpu_array(value)


def check_float_array(op, name, x, ndim=None):
    """``x`` must be a float32/float64 NumPy or CuPy array, optionally of a given rank."""
    if not is_array(x):
        raise TypeError(f"{op}: {name} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {x.dtype} "
                        f"(float16 is not supported)")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            wanted = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{op}: {name} must be {wanted} (NCHW), got shape {tuple(x.shape)}")
    return x


def check_same_dtype(op, **arrays):
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{op}: arguments must share one dtype, got {listing}")


def check_shape(op, name, a, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def check_devices(op, **arrays):
    check_same_device(op, **arrays)


def check_dzdy(op, dzdy, shape, like=None, like_name="x"):
    """The projection ``dzdy`` must be shaped like the block output: an array (float32/float64,
    of the dtype and device of the array ``like`` when given), or a real number for a scalar
    output. A list or a string is refused here by name, rather than failing inside the
    backward."""
    if dzdy is None:
        return
    if tuple(shape) == () and np.ndim(dzdy) == 0:
        # a scalar output takes any real number (a 0-d array of either float dtype, too)
        if is_array(dzdy) and dzdy.dtype.kind not in "fiu":
            raise TypeError(f"{op}: dzdy must be a real number, got dtype {dzdy.dtype}")
        as_real(op, "dzdy", dzdy if not is_array(dzdy) else float(dzdy))
        return
    if not is_array(dzdy):
        raise TypeError(f"{op}: dzdy must be a NumPy or CuPy array of the output shape "
                        f"{tuple(shape)}, got {type(dzdy).__name__}")
    if dzdy.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: dzdy must be float32 or float64, got {dzdy.dtype} "
                        f"(shape {tuple(dzdy.shape)})")
    if tuple(dzdy.shape) != tuple(shape):
        raise ValueError(f"{op}: dzdy must have the output shape {tuple(shape)}, "
                         f"got {tuple(dzdy.shape)}")
    if like is not None:
        if dzdy.dtype != like.dtype:
            raise TypeError(f"{op}: dzdy must have the dtype of {like_name} ({like.dtype}, shape "
                            f"{tuple(like.shape)}), got {dzdy.dtype}")
        check_same_device(op, **{like_name: like, "dzdy": dzdy})


def as_flag(op, name, value):
    """A switch: True or False (NumPy's bools, and the 0 and 1 of MATLAB's logicals, too). A
    string such as 'no' would otherwise read as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{op}: {name} must be True or False, got {value!r}")


def as_pair(op, name, value):
    """An int or a pair ``(h, w)`` of non-negative ints, as a tuple."""
    values = _int_tuple(op, name, value)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair (h, w), got {value!r}")
    return values


def as_quad(op, name, value):
    """An int, a pair ``(h, w)`` or ``(top, bottom, left, right)``, as a 4-tuple."""
    values = _int_tuple(op, name, value)
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = (values[0], values[0], values[1], values[1])
    if len(values) != 4:
        raise ValueError(f"{op}: {name} must be an int, a pair (h, w) or a 4-tuple "
                         f"(top, bottom, left, right), got {value!r}")
    if min(values) < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {value!r}")
    return values


def as_real(op, name, value, *, positive=False, nonnegative=False):
    """A finite real number, as a float. Strings and bools are refused: float('0.5') and
    float(True) would read them as numbers."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    if positive and number <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    if nonnegative and number < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {value!r}")
    return number


def real_params(op, name, param, count):
    """A parameter vector such as LRN's (depth, kappa, alpha, beta), as a tuple of floats."""
    if isinstance(param, (str, bytes)) or (isinstance(param, (tuple, list)) and any(
            isinstance(v, (str, bytes, bool, np.bool_)) for v in param)):
        raise TypeError(f"{op}: {name} must be {count} numbers, got {param!r}")
    try:
        values = tuple(float(v) for v in np.asarray(param, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be {count} numbers, got {param!r}") from None
    if len(values) != count:
        raise ValueError(f"{op}: {name} must have {count} entries, got {len(values)}: {param!r}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{op}: {name} must be finite, got {param!r}")
    return values


def _int_tuple(op, name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),)
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: {name} must contain ints, got {value!r}")
    return tuple(int(v) for v in values)


# The largest value any size, extent or product the kernels compute from user geometry may take.
# The C code indexes with signed 64-bit integers (index_t) and sizes its buffers in size_t; a
# bound of 2**62 leaves a factor of two for the sums of two checked quantities (an offset plus
# an extent, a loop bound plus one) that the kernels form without a check of their own.
INDEX_LIMIT = 2**62


def check_index_range(op, arguments="", **named_values):
    """Each keyword's value (a Python int, computed unbounded from the geometry as the C code
    computes it) must lie in ``[-INDEX_LIMIT, INDEX_LIMIT]``; otherwise a ValueError naming the
    op, the quantity and its value, and ``arguments`` (a description of the arguments that gave
    it). Called before anything is allocated or launched, so that a geometry the kernels'
    64-bit arithmetic cannot represent is refused instead of wrapping around (a wrapped buffer
    size makes malloc return a small block that the kernel then writes past)."""
    for name, value in named_values.items():
        value = int(value)
        if not -INDEX_LIMIT <= value <= INDEX_LIMIT:
            context = f" ({arguments})" if arguments else ""
            raise ValueError(f"{op}: {name.replace('_', ' ')} = {value} exceeds the kernels' "
                             f"index range (at most 2**62){context}")
