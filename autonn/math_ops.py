"""NumPy's math as autonn ops: a table of (forward, derivative) pairs.

Each entry names a NumPy function and gives, per input, the rule ``vjp(dzdy, y, *inputs)``
for the derivative of ``<dzdy, f(inputs)>`` with respect to that input (``None``: no
derivative). Broadcasting is undone in one place, :func:`unbroadcast`. The forwards are NumPy's
own functions, which CuPy arrays also accept, so the same table serves both devices.

The rest of what autonn needs to know about an op is given per family, in one place each:
the shape rules (``Op(..., shape=)``: NumPy broadcasting for the element-wise ops, and one
rule each for reductions, reshape, transpose, squeeze, expand_dims, concatenate, stack, where,
clip, getitem, matmul and the further shape, linear-algebra and contraction functions) and the
receptive-field rules (``Op(..., receptive_field=)``:
``'elementwise'`` for the element-wise ops, ``'none'`` for the ones that move pixels or mix
them over space). :mod:`autonn.shapes` and :mod:`autonn.receptive_fields` only read them.

``Layer`` maps its operators and ``__array_ufunc__`` / ``__array_function__`` onto these ops
(see :data:`UFUNC_OPS` and :data:`FUNCTION_OPS`); a few NumPy functions are compositions of
them (``outer``, ``inner``, ``vdot``, ``diff``, ``ptp``, ``trace``, ``ravel``), and a NumPy
function in neither table is refused by name on a Layer.
"""

import numpy as np

from .backend import array_module
from .ops import Op


def unbroadcast(dzdy, x):
    """Sum ``dzdy`` over the axes along which ``x`` was broadcast, giving ``x``'s shape."""
    # x.shape first: np.shape() costs more than the check itself on small arrays
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    if dzdy.shape == shape:
        return dzdy
    extra = dzdy.ndim - len(shape)
    if extra:
        dzdy = dzdy.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and dzdy.shape[i] != 1)
    if axes:
        dzdy = dzdy.sum(axis=axes, keepdims=True)
    return dzdy


# ------------------------------------------------------------------ shape rules, per family
# A shape rule receives the shapes of array inputs as tuples and numbers as themselves (see Op).
def _shape_of(argument):
    return tuple(argument) if isinstance(argument, tuple) else ()


def _broadcast_shape(*inputs, **options):
    """Element-wise ops: NumPy broadcasting of the inputs (numbers are scalars)."""
    return np.broadcast_shapes(*(_shape_of(x) for x in inputs))


def _checked_axes(name, axis, ndim):
    """``axis`` (None, an int or a tuple) as sorted non-negative axes of an ``ndim`` array."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of range for an array of rank {ndim}")
    return tuple(sorted(int(a) % ndim for a in axes))


def _reduced_shape(name):
    def shape(x, *, axis=None, keepdims=False):
        x = _shape_of(x)
        axes = _checked_axes(name, axis, len(x))
        if keepdims:
            return tuple(1 if i in axes else n for i, n in enumerate(x))
        return tuple(n for i, n in enumerate(x) if i not in axes)
    return shape


def _matmul_shape(a, b):
    a, b = _shape_of(a), _shape_of(b)
    if not a or not b:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a} "
                         f"and {b}")
    # 1-D operands act as a row (a) or a column (b), which the result then drops
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: shapes {a} and {b} do not match ({a2[-1]} != {b2[-2]})")
    shape = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(a) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b) == 1:
        shape = shape[:-1]
    return shape


def _defmath(name, forward, *vjps, needs_inputs=None, needs_output=False,
             shape=_broadcast_shape, receptive_field="elementwise"):
    return Op(name, forward, vjps=vjps, backward_needs_inputs=needs_inputs,
              backward_needs_output=needs_output, shape=shape, receptive_field=receptive_field)


def _nondifferentiable(name, forward, *, shape=_broadcast_shape,
                       receptive_field="elementwise"):
    return Op(name, forward, differentiable=False, backward_needs_inputs=(), shape=shape,
              receptive_field=receptive_field)


# ------------------------------------------------------------------ elementwise, binary
add = _defmath("add", np.add,
               lambda g, y, a, b: unbroadcast(g, a),
               lambda g, y, a, b: unbroadcast(g, b))
subtract = _defmath("subtract", np.subtract,
                    lambda g, y, a, b: unbroadcast(g, a),
                    lambda g, y, a, b: unbroadcast(-g, b))
multiply = _defmath("multiply", np.multiply,
                    lambda g, y, a, b: unbroadcast(g * b, a),
                    lambda g, y, a, b: unbroadcast(g * a, b))
divide = _defmath("divide", np.true_divide,
                  lambda g, y, a, b: unbroadcast(g / b, a),
                  lambda g, y, a, b: unbroadcast(-g * a / (b * b), b))


def _power_vjp_base(g, y, a, b):
    return unbroadcast(g * b * a ** (b - 1), a)


def _power_vjp_exponent(g, y, a, b):
    xp = array_module(a, y)
    # d(a^b)/db = a^b log a, continued by 0 where a <= 0 (where it is undefined).
    log_a = xp.log(xp.where(a > 0, a, 1))
    return unbroadcast(g * y * log_a, b)


power = _defmath("power", np.power, _power_vjp_base, _power_vjp_exponent, needs_output=True)


def _maximum_vjp(first):
    # Ties go to the first argument, so exactly one input receives the derivative.
    def vjp(g, y, a, b):
        chosen = (a >= b) if first else (a < b)
        # a float mask multiplies faster than a boolean one (no mixed-type loop)
        return unbroadcast(g * chosen.astype(g.dtype), a if first else b)
    return vjp


def _minimum_vjp(first):
    def vjp(g, y, a, b):
        chosen = (a <= b) if first else (a > b)
        return unbroadcast(g * chosen.astype(g.dtype), a if first else b)
    return vjp


maximum = _defmath("maximum", np.maximum, _maximum_vjp(True), _maximum_vjp(False))
minimum = _defmath("minimum", np.minimum, _minimum_vjp(True), _minimum_vjp(False))


def _matmul_as_matrices(g, a, b):
    """View 1-D operands as matrices (a row, b a column) the way np.matmul does."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:
        return g.reshape(1, 1), a2, b2
    g2 = g[..., None, :] if a.ndim == 1 else g
    if b.ndim == 1:
        g2 = g2[..., None]
    return g2, a2, b2


def _matmul_vjp_left(g, y, a, b):
    g2, a2, b2 = _matmul_as_matrices(g, a, b)
    return unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2).reshape(a.shape)


def _matmul_vjp_right(g, y, a, b):
    g2, a2, b2 = _matmul_as_matrices(g, a, b)
    return unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2).reshape(b.shape)


matmul = _defmath("matmul", np.matmul, _matmul_vjp_left, _matmul_vjp_right,
                  shape=_matmul_shape, receptive_field="none")


# np.dot is not matmul beyond 2-D: it multiplies by a scalar, and otherwise sums over the last
# axis of a and the second-to-last of b (the only one of a 1-D b), pairing every leading axis
# of a with every leading axis of b: dot(a, b)[i..., j..., m] = sum_k a[i..., k] b[j..., k, m].
# The rules below follow that at run time, whatever the ranks, with tensordot.
def _dot_shape(a, b):
    a, b = _shape_of(a), _shape_of(b)
    if not a or not b:
        return np.broadcast_shapes(a, b)
    k = b[-2] if len(b) > 1 else b[0]
    if a[-1] != k:
        raise ValueError(f"dot: shapes {a} and {b} do not match (last axis of a {a[-1]} != "
                         f"{'second-to-last' if len(b) > 1 else 'only'} axis of b {k})")
    return a[:-1] + b[:-2] + b[-1:] if len(b) > 1 else a[:-1]


def _dot_vjp_left(g, y, a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * b, a)
    xp = array_module(g)
    if b.ndim == 1:
        return xp.multiply.outer(g, b)
    # g's axes: a's leading ones, then b's except the contracted one
    return xp.tensordot(g, b, axes=(tuple(range(a.ndim - 1, g.ndim)),
                                    tuple(i for i in range(b.ndim) if i != b.ndim - 2)))


def _dot_vjp_right(g, y, a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * a, b)
    xp = array_module(g)
    leading = tuple(range(a.ndim - 1))
    product = xp.tensordot(a, g, axes=(leading, leading))   # (k, b's other axes...)
    return product if b.ndim == 1 else xp.moveaxis(product, 0, -2)


dot = _defmath("dot", np.dot, _dot_vjp_left, _dot_vjp_right, shape=_dot_shape,
               receptive_field="none")

# ------------------------------------------------------------------ elementwise, unary
negative = _defmath("negative", np.negative, lambda g, y, x: -g, needs_inputs=())
positive = _defmath("positive", np.positive, lambda g, y, x: g, needs_inputs=())
exp = _defmath("exp", np.exp, lambda g, y, x: g * y, needs_inputs=(), needs_output=True)
expm1 = _defmath("expm1", np.expm1, lambda g, y, x: g * (y + 1), needs_inputs=(),
                 needs_output=True)
log = _defmath("log", np.log, lambda g, y, x: g / x)
log1p = _defmath("log1p", np.log1p, lambda g, y, x: g / (1 + x))
sqrt = _defmath("sqrt", np.sqrt, lambda g, y, x: g / (2 * y), needs_inputs=(),
                needs_output=True)
square = _defmath("square", np.square, lambda g, y, x: 2 * g * x)
reciprocal = _defmath("reciprocal", np.reciprocal, lambda g, y, x: -g * y * y,
                      needs_inputs=(), needs_output=True)
sin = _defmath("sin", np.sin, lambda g, y, x: g * np.cos(x))
cos = _defmath("cos", np.cos, lambda g, y, x: -g * np.sin(x))
tan = _defmath("tan", np.tan, lambda g, y, x: g * (1 + y * y), needs_inputs=(),
               needs_output=True)
tanh = _defmath("tanh", np.tanh, lambda g, y, x: g * (1 - y * y), needs_inputs=(),
                needs_output=True)
sinh = _defmath("sinh", np.sinh, lambda g, y, x: g * np.cosh(x))
cosh = _defmath("cosh", np.cosh, lambda g, y, x: g * np.sinh(x))
arctan = _defmath("arctan", np.arctan, lambda g, y, x: g / (1 + x * x))
absolute = _defmath("absolute", np.absolute, lambda g, y, x: g * np.sign(x))
fabs = _defmath("fabs", np.fabs, lambda g, y, x: g * np.sign(x))
# (Python floats, not NumPy scalars, so that float32 derivatives stay float32)
_LN2, _LN10, _DEGREE = float(np.log(2.0)), float(np.log(10.0)), float(np.pi / 180)
exp2 = _defmath("exp2", np.exp2, lambda g, y, x: g * y * _LN2, needs_inputs=(),
                needs_output=True)
log2 = _defmath("log2", np.log2, lambda g, y, x: g / (x * _LN2))
log10 = _defmath("log10", np.log10, lambda g, y, x: g / (x * _LN10))
cbrt = _defmath("cbrt", np.cbrt, lambda g, y, x: g / (3 * y * y), needs_inputs=(),
                needs_output=True)
arcsin = _defmath("arcsin", np.arcsin, lambda g, y, x: g / np.sqrt(1 - x * x))
arccos = _defmath("arccos", np.arccos, lambda g, y, x: -g / np.sqrt(1 - x * x))
arcsinh = _defmath("arcsinh", np.arcsinh, lambda g, y, x: g / np.sqrt(x * x + 1))
arccosh = _defmath("arccosh", np.arccosh, lambda g, y, x: g / np.sqrt(x * x - 1))
arctanh = _defmath("arctanh", np.arctanh, lambda g, y, x: g / (1 - x * x))
deg2rad = _defmath("deg2rad", np.deg2rad, lambda g, y, x: g * _DEGREE, needs_inputs=())
rad2deg = _defmath("rad2deg", np.rad2deg, lambda g, y, x: g / _DEGREE, needs_inputs=())

# ------------------------------------------------------------------ elementwise, binary (more)
arctan2 = _defmath("arctan2", np.arctan2,
                   lambda g, y, a, b: unbroadcast(g * b / (a * a + b * b), a),
                   lambda g, y, a, b: unbroadcast(-g * a / (a * a + b * b), b))
hypot = _defmath("hypot", np.hypot,
                 lambda g, y, a, b: unbroadcast(g * a / y, a),
                 lambda g, y, a, b: unbroadcast(g * b / y, b), needs_output=True)
# d/da log(e^a + e^b) = e^(a - y): never overflows, since y >= a
logaddexp = _defmath("logaddexp", np.logaddexp,
                     lambda g, y, a, b: unbroadcast(g * np.exp(a - y), a),
                     lambda g, y, a, b: unbroadcast(g * np.exp(b - y), b), needs_output=True)
logaddexp2 = _defmath("logaddexp2", np.logaddexp2,
                      lambda g, y, a, b: unbroadcast(g * np.exp2(a - y), a),
                      lambda g, y, a, b: unbroadcast(g * np.exp2(b - y), b), needs_output=True)
remainder = _defmath("remainder", np.remainder,
                     lambda g, y, a, b: unbroadcast(g, a),
                     lambda g, y, a, b: unbroadcast(-g * np.floor_divide(a, b), b))
fmod = _defmath("fmod", np.fmod,
                lambda g, y, a, b: unbroadcast(g, a),
                lambda g, y, a, b: unbroadcast(-g * np.trunc(a / b), b))


def _fextremum_vjp(first, compare):
    # fmax/fmin ignore a NaN operand: the other one receives the derivative.
    def vjp(g, y, a, b):
        chosen = np.logical_or(compare(a, b), np.isnan(b))
        chosen = chosen if first else np.logical_not(chosen)
        return unbroadcast(g * chosen.astype(g.dtype), a if first else b)
    return vjp


fmax = _defmath("fmax", np.fmax, _fextremum_vjp(True, np.greater_equal),
                _fextremum_vjp(False, np.greater_equal))
fmin = _defmath("fmin", np.fmin, _fextremum_vjp(True, np.less_equal),
                _fextremum_vjp(False, np.less_equal))


def _in_dtype_of(d, x):
    """``d`` in the floating dtype of ``x`` (float_power computes in float64 whatever its
    inputs, but a float32 input still gets a float32 derivative)."""
    dtype = getattr(x, "dtype", None)
    return d.astype(dtype, copy=False) if dtype is not None and dtype.kind == "f" else d


float_power = _defmath("float_power", np.float_power,
                       lambda g, y, a, b: _in_dtype_of(_power_vjp_base(g, y, a, b), a),
                       lambda g, y, a, b: _in_dtype_of(_power_vjp_exponent(g, y, a, b), b),
                       needs_output=True)

# ------------------------------------------------------------------ non-differentiable
greater = _nondifferentiable("greater", np.greater)
greater_equal = _nondifferentiable("greater_equal", np.greater_equal)
less = _nondifferentiable("less", np.less)
less_equal = _nondifferentiable("less_equal", np.less_equal)
equal = _nondifferentiable("equal", np.equal)
not_equal = _nondifferentiable("not_equal", np.not_equal)
sign = _nondifferentiable("sign", np.sign)
floor = _nondifferentiable("floor", np.floor)
ceil = _nondifferentiable("ceil", np.ceil)
rint = _nondifferentiable("rint", np.rint)
trunc = _nondifferentiable("trunc", np.trunc)
floor_divide = _nondifferentiable("floor_divide", np.floor_divide)
heaviside = _nondifferentiable("heaviside", np.heaviside)
logical_and = _nondifferentiable("logical_and", np.logical_and)
logical_or = _nondifferentiable("logical_or", np.logical_or)
logical_xor = _nondifferentiable("logical_xor", np.logical_xor)
logical_not = _nondifferentiable("logical_not", np.logical_not)
isnan = _nondifferentiable("isnan", np.isnan)
isinf = _nondifferentiable("isinf", np.isinf)
isfinite = _nondifferentiable("isfinite", np.isfinite)


def _round_forward(x, *, decimals=0):
    return x.round(decimals)  # (the method: NumPy and CuPy spell the function differently)


round = _nondifferentiable("round", _round_forward)  # noqa: A001 (NumPy's name)


def _argextremum_shape(name):
    reduced = _reduced_shape(name)
    return lambda x, *, axis=None: reduced(x, axis=axis)


argmax = _nondifferentiable("argmax", lambda x, *, axis=None: np.argmax(x, axis=axis),
                            shape=_argextremum_shape("argmax"), receptive_field="none")
argmin = _nondifferentiable("argmin", lambda x, *, axis=None: np.argmin(x, axis=axis),
                            shape=_argextremum_shape("argmin"), receptive_field="none")


# ------------------------------------------------------------------ reductions
def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(sorted(int(a) % ndim for a in axis))


def _expand_reduced(g, x, axis, keepdims):
    """Reshape a reduction's output derivative so it broadcasts against ``x``."""
    if keepdims or np.ndim(x) == 0:
        return g
    shape = list(np.shape(x))
    for a in _normalize_axes(axis, np.ndim(x)):
        shape[a] = 1
    return g.reshape(shape)


def _broadcast_copy(g, shape):
    xp = array_module(g)
    return xp.array(xp.broadcast_to(g, shape))


def _sum_forward(x, *, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(g, y, x, *, axis=None, keepdims=False):
    return _broadcast_copy(_expand_reduced(g, x, axis, keepdims), np.shape(x))


def _mean_forward(x, *, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def _mean_vjp(g, y, x, *, axis=None, keepdims=False):
    count = 1
    for a in _normalize_axes(axis, np.ndim(x)):
        count *= np.shape(x)[a]
    return _broadcast_copy(_expand_reduced(g, x, axis, keepdims) / count, np.shape(x))


def _extremum_vjp(pick):
    """Derivative of max/min: all of it goes to one arg-extremum (the first), as MatConvNet's
    pooling does, so ties never split the derivative."""
    def vjp(g, y, x, *, axis=None, keepdims=False):
        xp = array_module(x)
        axes = _normalize_axes(axis, x.ndim)
        kept = [a for a in range(x.ndim) if a not in axes]
        moved = xp.transpose(x, kept + list(axes))
        flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
        index = pick(flat, axis=-1)[..., None]
        dflat = xp.zeros_like(flat)
        gk = _expand_reduced(g, x, axis, keepdims)
        gk = xp.transpose(xp.broadcast_to(gk, _keepdims_shape(x.shape, axes)), kept + list(axes))
        gk = gk.reshape(gk.shape[:len(kept)] + (1,))
        xp.put_along_axis(dflat, index, gk, axis=-1)
        dmoved = dflat.reshape(moved.shape)
        return xp.transpose(dmoved, np.argsort(kept + list(axes)))
    return vjp


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _max_forward(x, *, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


def _min_forward(x, *, axis=None, keepdims=False):
    return np.min(x, axis=axis, keepdims=keepdims)


sum = Op("sum", _sum_forward, vjps=(_sum_vjp,),  # noqa: A001 (NumPy's name, on purpose)
         shape=_reduced_shape("sum"), receptive_field="none")
mean = Op("mean", _mean_forward, vjps=(_mean_vjp,), shape=_reduced_shape("mean"),
          receptive_field="none")
max = Op("max", _max_forward,  # noqa: A001
         vjps=(_extremum_vjp(lambda a, axis: a.argmax(axis=axis)),),
         shape=_reduced_shape("max"), receptive_field="none")
min = Op("min", _min_forward,  # noqa: A001
         vjps=(_extremum_vjp(lambda a, axis: a.argmin(axis=axis)),),
         shape=_reduced_shape("min"), receptive_field="none")


# ------------------------------------------------------------------ shape manipulation
def _reshape_forward(x, *, shape):
    return np.reshape(x, shape)


def _transpose_forward(x, *, axes=None):
    return np.transpose(x, axes)


def _transpose_vjp(g, y, x, *, axes=None):
    if axes is None:
        return np.transpose(g)
    return np.transpose(g, np.argsort(axes))


def _squeeze_forward(x, *, axis=None):
    return np.squeeze(x, axis=axis)


def _expand_dims_forward(x, *, axis):
    return np.expand_dims(x, axis)


def _back_to_shape(g, y, x, **options):
    return g.reshape(np.shape(x))


def _reshape_shape(x, *, shape):
    x = _shape_of(x)
    size = int(np.prod(x, dtype=np.int64))
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
    if shape.count(-1) == 1 and known and size % known == 0:
        shape = tuple(size // known if n == -1 else n for n in shape)
    if shape.count(-1) or int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"reshape: cannot reshape an array of shape {x} into shape {shape}")
    return shape


def _transpose_shape(x, *, axes=None):
    x = _shape_of(x)
    if axes is None:
        return x[::-1]
    if len(axes) != len(x) or sorted(int(a) % len(x) for a in axes) != list(range(len(x))):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the axes of an "
                         f"array of shape {x}")
    return tuple(x[a] for a in axes)


def _squeeze_shape(x, *, axis=None):
    x = _shape_of(x)
    if axis is None:
        return tuple(n for n in x if n != 1)
    axes = _checked_axes("squeeze", axis, len(x))
    if any(x[a] != 1 for a in axes):
        raise ValueError(f"squeeze: axis {axis} of an array of shape {x} does not have size 1")
    return tuple(n for i, n in enumerate(x) if i not in axes)


def _expand_dims_shape(x, *, axis):
    x = _shape_of(x)
    count = 1 if isinstance(axis, (int, np.integer)) else len(axis)
    axes = _checked_axes("expand_dims", axis, len(x) + count)
    rest = iter(x)
    return tuple(1 if i in axes else next(rest) for i in range(len(x) + count))


reshape = Op("reshape", _reshape_forward, vjps=(_back_to_shape,), shape=_reshape_shape,
             receptive_field="none")
transpose = Op("transpose", _transpose_forward, vjps=(_transpose_vjp,), backward_needs_inputs=(),
               shape=_transpose_shape, receptive_field="none")
squeeze = Op("squeeze", _squeeze_forward, vjps=(_back_to_shape,), shape=_squeeze_shape,
             receptive_field="none")
expand_dims = Op("expand_dims", _expand_dims_forward, vjps=(_back_to_shape,),
                 shape=_expand_dims_shape, receptive_field="none")


def _concatenate_forward(*xs, axis=0):
    return array_module(*xs).concatenate(xs, axis=axis)


def _concatenate_backward(*xs_and_dzdy, axis=0, need):
    # One call for every input (a call per input, each passed all of them, would take time
    # quadratic in their number).
    *xs, g = xs_and_dzdy
    return split_along(g, [np.shape(x)[axis] for x in xs], axis, need)


def split_along(g, sizes, axis, need, copy=False):
    """The pieces of ``g`` along ``axis`` of the given sizes, where ``need`` asks for them."""
    ders, start = [], 0
    where = [slice(None)] * g.ndim
    for size, wanted in zip(sizes, need):
        where[axis] = slice(start, start + size)
        piece = g[tuple(where)] if wanted else None
        ders.append(piece.copy() if copy and wanted else piece)
        start += size
    return tuple(ders)


def _stack_forward(*xs, axis=0):
    return array_module(*xs).stack(xs, axis=axis)


def _stack_backward(*xs_and_dzdy, axis=0, need):
    g = xs_and_dzdy[-1]
    xp = array_module(g)
    return tuple(xp.take(g, index, axis=axis) if wanted else None
                 for index, wanted in enumerate(need))


def _concatenate_shape(*xs, axis=0):
    shapes = [_shape_of(x) for x in xs]
    first = shapes[0]
    (axis,) = _checked_axes("concatenate", axis, len(first))
    for shape in shapes[1:]:
        if len(shape) != len(first) or any(a != b for k, (a, b) in enumerate(zip(shape, first))
                                           if k != axis):
            raise ValueError(f"concatenate: shapes {shapes} differ other than along axis {axis}")
    # (sum, max and min are ops in this module)
    return first[:axis] + (int(np.sum([shape[axis] for shape in shapes])),) + first[axis + 1:]


def concatenation_field(node):
    """Receptive-field rule of concatenations (``concatenate``, ``nn.concat``): along the
    batch or the channel axis every pixel stays where it was (element-wise); along a spatial
    axis pixels move, which no sliding window describes."""
    return "elementwise" if node.options.get("axis", 0) in (0, 1, -4, -3) else "none"


def _stack_shape(*xs, axis=0):
    shapes = [_shape_of(x) for x in xs]
    if any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"stack: all inputs must have the same shape, got {shapes}")
    (axis,) = _checked_axes("stack", axis, len(shapes[0]) + 1)
    return shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]


concatenate = Op("concatenate", _concatenate_forward, _concatenate_backward,
                 backward_accepts_need=True, shape=_concatenate_shape,
                 receptive_field=concatenation_field)
stack = Op("stack", _stack_forward, _stack_backward, backward_accepts_need=True,
           backward_needs_inputs=(), shape=_stack_shape, receptive_field="none")


def _where_forward(condition, a, b):
    return np.where(condition, a, b)


where = Op("where", _where_forward, vjps=(
    None,
    lambda g, y, c, a, b: unbroadcast(g * c, a),
    lambda g, y, c, a, b: unbroadcast(g * np.logical_not(c), b)),
    shape=_broadcast_shape, receptive_field="elementwise")


def _clip_forward(x, *, a_min=None, a_max=None):
    return np.clip(x, a_min, a_max)


def _clip_vjp(g, y, x, *, a_min=None, a_max=None):
    inside = True
    if a_min is not None:
        inside = np.logical_and(inside, x >= a_min)
    if a_max is not None:
        inside = np.logical_and(inside, x <= a_max)
    return g * inside


def _clip_shape(x, *, a_min=None, a_max=None):
    return np.broadcast_shapes(_shape_of(x), np.shape(a_min) if a_min is not None else (),
                               np.shape(a_max) if a_max is not None else ())


clip = Op("clip", _clip_forward, vjps=(_clip_vjp,), shape=_clip_shape,
          receptive_field="elementwise")


# ------------------------------------------------------------------ indexing
def _getitem_forward(x, *, index):
    return x[index]


def _getitem_vjp(g, y, x, *, index):
    xp = array_module(x)
    dx = xp.zeros(x.shape, dtype=g.dtype)
    if _is_basic_index(index):
        dx[index] = g
    elif xp is np:
        np.add.at(dx, index, g)  # repeated indices accumulate
    else:
        import cupyx
        cupyx.scatter_add(dx, index, g)
    return dx


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


def _getitem_shape(x, *, index):
    # Index a zero-strided stand-in: basic indexing costs nothing, and advanced indexing (or a
    # boolean mask, whose result size depends on its values) one byte per output element.
    return np.broadcast_to(np.zeros((), np.int8), _shape_of(x))[index].shape


getitem = Op("getitem", _getitem_forward, vjps=(_getitem_vjp,), shape=_getitem_shape,
             receptive_field="none")


def _take_forward(x, indices, *, axis=None):
    return array_module(x).take(x, _whole_indices(x, indices), axis=axis)


def _take_vjp(g, y, x, indices, *, axis=None):
    indices = _whole_indices(x, indices)
    if axis is None:  # np.take without an axis reads x flattened
        return _getitem_vjp(g, y, x.reshape(-1), index=indices).reshape(x.shape)
    axis = axis % x.ndim
    return _getitem_vjp(g, y, x, index=(slice(None),) * axis + (indices,))


def _whole_indices(x, indices):
    """An index given as a number or array (a Layer's value: a loop's ``t`` is a float) as
    integers, on the device of ``x``; a fraction is refused."""
    xp = array_module(x)
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
        return int(indices)
    array = xp.asarray(indices)
    if array.dtype.kind == "f":
        if not bool(xp.all(array == xp.floor(array))):
            raise ValueError(f"take: indices must be whole numbers, got {indices!r}")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got dtype {array.dtype}")
    return int(array) if array.ndim == 0 else array


def _take_shape(x, indices, *, axis=None):
    shape, index_shape = _shape_of(x), _shape_of(indices)
    if axis is None:
        return index_shape
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"take: axis {axis} is out of range for shape {shape}")
    axis %= len(shape)
    return shape[:axis] + index_shape + shape[axis + 1:]


# np.take(x, indices, axis), and x[i] / x[:, i] with a Layer i (a loop's t): the indices are an
# input, read when the net runs, without a derivative
take = Op("take", _take_forward, vjps=(_take_vjp, None), shape=_take_shape,
          receptive_field="none")


# ------------------------------------------------------------------ more reductions
def _axes_last(x, axis):
    """``x`` with the reduced ``axis`` moved last and flattened into one, and the function
    that puts an array of that layout back into ``x``'s."""
    xp = array_module(x)
    axes = _normalize_axes(axis, x.ndim)
    order = [a for a in range(x.ndim) if a not in axes] + list(axes)
    moved = xp.transpose(x, order)
    flat = moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,))
    return flat, lambda d: xp.transpose(d.reshape(moved.shape), np.argsort(order))


def _prod_forward(x, *, axis=None, keepdims=False):
    return array_module(x).prod(x, axis=axis, keepdims=keepdims)


def _prod_vjp(g, y, x, *, axis=None, keepdims=False):
    # The product of the other factors, as exclusive products from each side: right where
    # some factors are 0 (y / x would give 0/0 there).
    xp = array_module(x)
    flat, restore = _axes_last(x, axis)
    ones = xp.ones(flat.shape[:-1] + (1,), flat.dtype)
    before = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = xp.cumprod(xp.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return restore(before * after) * _expand_reduced(g, x, axis, keepdims)


def _count(x, axis):
    count = 1
    for a in _normalize_axes(axis, np.ndim(x)):
        count *= np.shape(x)[a]
    return count


def _var_forward(x, *, axis=None, ddof=0, keepdims=False):
    return array_module(x).var(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _var_vjp(g, y, x, *, axis=None, ddof=0, keepdims=False):
    centred = x - x.mean(axis=axis, keepdims=True)
    return _expand_reduced(g, x, axis, keepdims) * centred * (2 / (_count(x, axis) - ddof))


def _std_forward(x, *, axis=None, ddof=0, keepdims=False):
    return array_module(x).std(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _std_vjp(g, y, x, *, axis=None, ddof=0, keepdims=False):
    centred = x - x.mean(axis=axis, keepdims=True)
    scale = _expand_reduced(g / y, x, axis, keepdims) / (_count(x, axis) - ddof)
    return scale * centred


def _moment_shape(name):
    reduced = _reduced_shape(name)
    return lambda x, *, axis=None, ddof=0, keepdims=False: reduced(x, axis=axis,
                                                                   keepdims=keepdims)


prod = Op("prod", _prod_forward, vjps=(_prod_vjp,), shape=_reduced_shape("prod"),
          receptive_field="none")
var = Op("var", _var_forward, vjps=(_var_vjp,), shape=_moment_shape("var"),
         receptive_field="none")
std = Op("std", _std_forward, vjps=(_std_vjp,), backward_needs_output=True,
         shape=_moment_shape("std"), receptive_field="none")


def _all_forward(x, *, axis=None, keepdims=False):
    return array_module(x).all(x, axis=axis, keepdims=keepdims)


def _any_forward(x, *, axis=None, keepdims=False):
    return array_module(x).any(x, axis=axis, keepdims=keepdims)


# (all_of, any_of: the builtins all and any are used in this module)
all_of = _nondifferentiable("all", _all_forward, shape=_reduced_shape("all"),
                            receptive_field="none")
any_of = _nondifferentiable("any", _any_forward, shape=_reduced_shape("any"),
                            receptive_field="none")


def _cumsum_forward(x, *, axis=None):
    return array_module(x).cumsum(x, axis=axis)


def _cumsum_vjp(g, y, x, *, axis=None):
    # each input adds to its own and every later partial sum: a cumulative sum from the end
    xp = array_module(g)
    along = 0 if axis is None else axis
    reversed_sum = xp.flip(xp.cumsum(xp.flip(g, along), axis=along), along)
    return reversed_sum.reshape(np.shape(x))


def _cumsum_shape(x, *, axis=None):
    x = _shape_of(x)
    if axis is None:
        return (int(np.prod(x, dtype=np.int64)),)
    _checked_axes("cumsum", axis, len(x))
    return x


cumsum = Op("cumsum", _cumsum_forward, vjps=(_cumsum_vjp,), shape=_cumsum_shape,
            receptive_field="none")


# np.linalg.norm on Layers: the vector norms (ord a number >= 1 or inf, along one axis or of
# a vector) and the 2-norm of all the elements along any axes (ord None or 'fro'). NumPy's
# matrix norms (ord 2, 1, inf... of a matrix) have no derivative here: they are refused.
def _norm_forward(x, *, ord=None, axis=None, keepdims=False):  # noqa: A002 (NumPy's name)
    _check_norm(ord, axis, np.ndim(x))
    return array_module(x).linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


def _check_norm(ord, axis, ndim):  # noqa: A002
    if ord is None or ord == "fro":
        return
    is_vector = isinstance(axis, int) or (axis is None and ndim == 1)
    if not is_vector or not (ord == np.inf or (isinstance(ord, (int, float)) and ord >= 1)):
        raise TypeError(f"linalg.norm: ord={ord!r} with axis={axis!r} on an array of rank "
                        f"{ndim} is not supported on Layers; the vector norms (ord >= 1 or "
                        f"inf, along one axis) and ord=None/'fro' are")


def _norm_vjp(g, y, x, *, ord=None, axis=None, keepdims=False):  # noqa: A002
    xp = array_module(x)
    g, y = (_expand_reduced(v, x, axis, keepdims) for v in (g, y))
    if ord is None or ord == "fro" or ord == 2:
        return g * x / y
    if ord == np.inf:
        return _extremum_vjp(lambda a, axis: a.argmax(axis=axis))(
            g, None, xp.abs(x), axis=axis, keepdims=True) * xp.sign(x)
    # d||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1)
    return g * xp.sign(x) * (xp.abs(x) / y) ** (ord - 1)


def _norm_shape(x, *, ord=None, axis=None, keepdims=False):  # noqa: A002
    _check_norm(ord, axis, len(_shape_of(x)))
    return _reduced_shape("linalg.norm")(x, axis=axis, keepdims=keepdims)


norm = Op("norm", _norm_forward, vjps=(_norm_vjp,), backward_needs_output=True,
          shape=_norm_shape, receptive_field="none")


# ------------------------------------------------------------------ more shape manipulation
def _same_shape(x, **options):
    return _shape_of(x)


def _view_shape(function):
    """A shape rule that applies a NumPy view function to a zero-strided stand-in (free)."""
    def shape(x, **options):
        return function(np.broadcast_to(np.zeros((), np.int8), _shape_of(x)), **options).shape
    return shape


def _flip_forward(x, *, axis=None):
    return array_module(x).flip(x, axis)


def _flip_vjp(g, y, x, *, axis=None):
    return array_module(g).flip(g, axis)


def _roll_forward(x, *, shift, axis=None):
    return array_module(x).roll(x, shift, axis)


def _roll_vjp(g, y, x, *, shift, axis=None):
    back = -shift if isinstance(shift, int) else tuple(-s for s in shift)
    return array_module(g).roll(g, back, axis)


flip = Op("flip", _flip_forward, vjps=(_flip_vjp,), backward_needs_inputs=(),
          shape=_view_shape(lambda x, axis=None: np.flip(x, axis)), receptive_field="none")
roll = Op("roll", _roll_forward, vjps=(_roll_vjp,), backward_needs_inputs=(),
          shape=_same_shape, receptive_field="none")


def _swapaxes_forward(x, *, axis1, axis2):
    return array_module(x).swapaxes(x, axis1, axis2)


def _swapaxes_vjp(g, y, x, *, axis1, axis2):
    return array_module(g).swapaxes(g, axis1, axis2)


def _moveaxis_forward(x, *, source, destination):
    return array_module(x).moveaxis(x, source, destination)


def _moveaxis_vjp(g, y, x, *, source, destination):
    return array_module(g).moveaxis(g, destination, source)


swapaxes = Op("swapaxes", _swapaxes_forward, vjps=(_swapaxes_vjp,), backward_needs_inputs=(),
              shape=_view_shape(lambda x, axis1, axis2: np.swapaxes(x, axis1, axis2)),
              receptive_field="none")
moveaxis = Op("moveaxis", _moveaxis_forward, vjps=(_moveaxis_vjp,), backward_needs_inputs=(),
              shape=_view_shape(lambda x, source, destination:
                                np.moveaxis(x, source, destination)),
              receptive_field="none")


def _broadcast_to_forward(x, *, shape):
    return _broadcast_copy(x, shape)


def _broadcast_to_vjp(g, y, x, *, shape):
    return unbroadcast(g, x)


def _broadcast_to_shape(x, *, shape):
    x = _shape_of(x)
    if len(x) > len(shape) or np.broadcast_shapes(x, shape) != shape:
        raise ValueError(f"broadcast_to: an array of shape {x} does not broadcast to {shape}")
    return shape


broadcast_to = Op("broadcast_to", _broadcast_to_forward, vjps=(_broadcast_to_vjp,),
                  shape=_broadcast_to_shape, receptive_field="none")


def _pad_forward(x, *, pad_width, constant_values=0):
    return array_module(x).pad(x, pad_width, mode="constant", constant_values=constant_values)


def _pad_widths(pad_width, ndim):
    return np.broadcast_to(np.asarray(pad_width, dtype=np.int64).reshape(-1, 2)
                           if np.ndim(pad_width) == 2 else np.asarray(pad_width, np.int64),
                           (ndim, 2))


def _pad_vjp(g, y, x, *, pad_width, constant_values=0):
    widths = _pad_widths(pad_width, g.ndim)
    return g[tuple(slice(int(before), n - int(after))
                   for (before, after), n in zip(widths, g.shape))]


def _pad_shape(x, *, pad_width, constant_values=0):
    x = _shape_of(x)
    try:
        widths = _pad_widths(pad_width, len(x))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width} does not fit an array of shape "
                         f"{x}") from None
    return tuple(int(n + before + after) for n, (before, after) in zip(x, widths))


pad = Op("pad", _pad_forward, vjps=(_pad_vjp,), backward_needs_inputs=(), shape=_pad_shape,
         receptive_field="none")


def _tile_forward(x, *, reps):
    return array_module(x).tile(x, reps)


def _tile_layout(shape, reps):
    rank = np.maximum(len(shape), len(reps))
    return (1,) * (rank - len(shape)) + tuple(shape), (1,) * (rank - len(reps)) + tuple(reps)


def _tile_vjp(g, y, x, *, reps):
    # the output's axis k holds reps[k] copies of x's axis k: split it, sum the copies
    shape, reps = _tile_layout(np.shape(x), reps)
    split = g.reshape([n for pair in zip(reps, shape) for n in pair])
    return split.sum(axis=tuple(range(0, 2 * len(shape), 2))).reshape(np.shape(x))


def _tile_shape(x, *, reps):
    shape, reps = _tile_layout(_shape_of(x), reps)
    return tuple(n * r for n, r in zip(shape, reps))


tile = Op("tile", _tile_forward, vjps=(_tile_vjp,), shape=_tile_shape, receptive_field="none")


def _repeat_forward(x, *, repeats, axis=None):
    return array_module(x).repeat(x, repeats, axis)


def _repeat_vjp(g, y, x, *, repeats, axis=None):
    xp = array_module(g)
    shape = np.shape(x) if axis is not None else (int(np.size(x)),)
    axis = 0 if axis is None else axis % len(shape)
    n = shape[axis]
    if isinstance(repeats, int) or len(repeats) == 1:
        count = repeats if isinstance(repeats, int) else repeats[0]
        split = g.reshape(shape[:axis] + (n, count) + shape[axis + 1:])
        return split.sum(axis=axis + 1).reshape(np.shape(x))
    # uneven repeats: sums over consecutive runs, as differences of a cumulative sum
    ends = np.cumsum(repeats)
    totals = xp.cumsum(g, axis=axis)
    zero = xp.zeros_like(totals[(slice(None),) * axis + (slice(0, 1),)])
    totals = xp.concatenate([zero, totals], axis=axis)
    runs = (xp.take(totals, xp.asarray(ends), axis=axis)
            - xp.take(totals, xp.asarray(ends - np.asarray(repeats)), axis=axis))
    return runs.reshape(np.shape(x))


def _repeat_shape(x, *, repeats, axis=None):
    x = _shape_of(x)
    shape = x if axis is not None else (int(np.prod(x, dtype=np.int64)),)
    (axis,) = _checked_axes("repeat", 0 if axis is None else axis, len(shape))
    if isinstance(repeats, int):
        total = shape[axis] * repeats
    elif len(repeats) in (1, shape[axis]):
        total = shape[axis] * repeats[0] if len(repeats) == 1 else int(np.sum(repeats))
    else:
        raise ValueError(f"repeat: {len(repeats)} repeats for an axis of length {shape[axis]}")
    return shape[:axis] + (total,) + shape[axis + 1:]


repeat = Op("repeat", _repeat_forward, vjps=(_repeat_vjp,), shape=_repeat_shape,
            receptive_field="none")


# np.split gives a list whose length the call fixes (sections or indices), so each piece is
# its own node: split_piece(x, piece=i) is the i-th array np.split (or np.array_split, with
# even=False) would give.
def _split_bounds(length, sections, piece, even):
    if isinstance(sections, int):
        if sections <= 0 or (even and length % sections):
            raise ValueError(f"split: an axis of length {length} does not split into "
                             f"{sections} equal pieces")
        size, extra = divmod(length, sections)
        start = piece * size + np.minimum(piece, extra)
        return slice(int(start), int(start + size + (piece < extra)))
    points = (0,) + tuple(sections) + (length,)
    return slice(points[piece], points[piece + 1])


def _split_index(ndim, axis, bounds):
    axis = axis % ndim
    return (slice(None),) * axis + (bounds,)


def _split_piece_forward(x, *, sections, piece, axis=0, even=True):
    bounds = _split_bounds(np.shape(x)[axis], sections, piece, even)
    return x[_split_index(np.ndim(x), axis, bounds)]


def _split_piece_vjp(g, y, x, *, sections, piece, axis=0, even=True):
    dx = array_module(g).zeros(np.shape(x), dtype=g.dtype)
    dx[_split_index(np.ndim(x), axis, _split_bounds(np.shape(x)[axis], sections, piece,
                                                    even))] = g
    return dx


def _split_piece_shape(x, *, sections, piece, axis=0, even=True):
    x = _shape_of(x)
    (axis,) = _checked_axes("split", axis, len(x))
    bounds = _split_bounds(x[axis], sections, piece, even)
    return x[:axis] + (len(range(x[axis])[bounds]),) + x[axis + 1:]


split_piece = Op("split_piece", _split_piece_forward, vjps=(_split_piece_vjp,),
                 shape=_split_piece_shape, receptive_field="none")


def _sort_forward(x, *, axis=-1):
    return array_module(x).sort(x, axis=axis)


def _sort_vjp(g, y, x, *, axis=-1):
    # each sorted value goes back where it came from: scatter by the sorting permutation
    xp = array_module(x)
    flat = x.reshape(-1) if axis is None else x
    along = -1 if axis is None else axis
    order = xp.argsort(flat, axis=along)
    dx = xp.zeros(flat.shape, dtype=g.dtype)
    xp.put_along_axis(dx, order, g, axis=along)
    return dx.reshape(x.shape)


def _argsort_forward(x, *, axis=-1):
    return array_module(x).argsort(x, axis=axis)


def _sort_shape(x, *, axis=-1):
    x = _shape_of(x)
    if axis is None:
        return (int(np.prod(x, dtype=np.int64)),)
    _checked_axes("sort", axis, len(x))
    return x


sort = Op("sort", _sort_forward, vjps=(_sort_vjp,), shape=_sort_shape, receptive_field="none")
argsort = _nondifferentiable("argsort", _argsort_forward, shape=_sort_shape,
                             receptive_field="none")


def _diagonal_forward(x, *, offset=0, axis1=0, axis2=1):
    return array_module(x).diagonal(x, offset, axis1, axis2).copy()  # NumPy's is read-only


def _diagonal_vjp(g, y, x, *, offset=0, axis1=0, axis2=1):
    xp = array_module(g)
    dx = xp.zeros(x.shape, dtype=g.dtype)
    # np.diagonal puts the diagonal last: write g through the same layout
    view = xp.moveaxis(dx, (axis1, axis2), (-2, -1))
    steps = xp.arange(g.shape[-1])
    view[..., steps + np.maximum(-offset, 0), steps + np.maximum(offset, 0)] = g
    return dx


diagonal = Op("diagonal", _diagonal_forward, vjps=(_diagonal_vjp,),
              shape=_view_shape(lambda x, offset=0, axis1=0, axis2=1:
                                np.diagonal(x, offset, axis1, axis2)),
              receptive_field="none")


def _tril_forward(x, *, k=0):
    return array_module(x).tril(x, k)


def _triu_forward(x, *, k=0):
    return array_module(x).triu(x, k)


tril = Op("tril", _tril_forward, vjps=(lambda g, y, x, *, k=0: array_module(g).tril(g, k),),
          backward_needs_inputs=(), shape=_same_shape, receptive_field="none")
triu = Op("triu", _triu_forward, vjps=(lambda g, y, x, *, k=0: array_module(g).triu(g, k),),
          backward_needs_inputs=(), shape=_same_shape, receptive_field="none")


def _astype_forward(x, *, dtype):
    return x.astype(dtype)


def _astype_vjp(g, y, x, *, dtype):
    # a cast to integers or booleans passes no derivative
    if np.dtype(dtype).kind not in "fc":
        return array_module(g).zeros(x.shape, dtype=x.dtype)
    return g.astype(x.dtype, copy=False)


astype = Op("astype", _astype_forward, vjps=(_astype_vjp,), shape=_same_shape,
            receptive_field="elementwise")


def _zeros_like_forward(x):
    return array_module(x).zeros_like(x)


def _ones_like_forward(x):
    return array_module(x).ones_like(x)


zeros_like = _nondifferentiable("zeros_like", _zeros_like_forward, shape=_same_shape)
ones_like = _nondifferentiable("ones_like", _ones_like_forward, shape=_same_shape)


# ------------------------------------------------------------------ linear algebra
def _square_shape(name):
    def shape(a):
        a = _shape_of(a)
        if len(a) < 2 or a[-1] != a[-2]:
            raise ValueError(f"{name}: needs square matrices in its last two axes, got shape "
                             f"{a}")
        return a
    return shape


def _matrix_transpose(a):
    return array_module(a).swapaxes(a, -1, -2)


def _inv_forward(a):
    return array_module(a).linalg.inv(a)


def _inv_vjp(g, y, a):
    # d(A^-1) = -A^-1 dA A^-1, so dA = -A^-T g A^-T
    y_t = _matrix_transpose(y)
    return -(y_t @ g @ y_t)


inv = Op("inv", _inv_forward, vjps=(_inv_vjp,), backward_needs_inputs=(),
         backward_needs_output=True, shape=_square_shape("linalg.inv"), receptive_field="none")


def _det_forward(a):
    return array_module(a).linalg.det(a)


def _det_vjp(g, y, a):
    # d det(A) = det(A) tr(A^-1 dA)
    xp = array_module(a)
    return (g * y)[..., None, None] * _matrix_transpose(xp.linalg.inv(a))


det = Op("det", _det_forward, vjps=(_det_vjp,), backward_needs_output=True,
         shape=lambda a: _square_shape("linalg.det")(a)[:-2], receptive_field="none")


# np.linalg.solve (NumPy 2): b is one vector when it is 1-D, otherwise a stack of matrices
# whose columns are solved for.
def _as_columns(b):
    return b[:, None] if b.ndim == 1 else b


def _solve_forward(a, b):
    x = array_module(a, b).linalg.solve(a, _as_columns(b))
    return x[..., 0] if b.ndim == 1 else x


def _solve_vjp_left(g, y, a, b):
    # x = A^-1 b: dA = -A^-T g x^T
    xp = array_module(a)
    db = xp.linalg.solve(_matrix_transpose(a), _as_columns_like(g, b))
    return unbroadcast(-(db @ _matrix_transpose(_as_columns_like(y, b))), a)


def _solve_vjp_right(g, y, a, b):
    # db = A^-T g
    xp = array_module(a)
    db = xp.linalg.solve(_matrix_transpose(a), _as_columns_like(g, b))
    return unbroadcast(db, _as_columns(b)).reshape(b.shape)


def _as_columns_like(v, b):
    return v[..., None] if b.ndim == 1 else v


def _solve_shape(a, b):
    a = _square_shape("linalg.solve")(a)
    b = _shape_of(b)
    if len(b) == 1:
        if b[0] != a[-1]:
            raise ValueError(f"linalg.solve: a of shape {a} and b of shape {b} do not match")
        return a[:-1]
    if len(b) < 2 or b[-2] != a[-1]:
        raise ValueError(f"linalg.solve: a of shape {a} and b of shape {b} do not match")
    return np.broadcast_shapes(a[:-2], b[:-2]) + b[-2:]


solve = Op("solve", _solve_forward, vjps=(_solve_vjp_left, _solve_vjp_right),
           backward_needs_output=True, shape=_solve_shape, receptive_field="none")


def _tensordot_axes(axes, ndim_a, ndim_b):
    """np.tensordot's ``axes`` as two lists of non-negative axes (of a, then of b)."""
    if isinstance(axes, int):
        return list(range(ndim_a - axes, ndim_a)), list(range(axes))
    return [int(i) % ndim_a for i in axes[0]], [int(i) % ndim_b for i in axes[1]]


def _tensordot_forward(a, b, *, axes=2):
    return array_module(a, b).tensordot(a, b, axes)


def _tensordot_vjp_left(g, y, a, b, *, axes=2):
    xp = array_module(g)
    contracted_a, contracted_b = _tensordot_axes(axes, a.ndim, b.ndim)
    free_a = [i for i in range(a.ndim) if i not in contracted_a]
    free_b = [i for i in range(b.ndim) if i not in contracted_b]
    # g's trailing axes are b's free ones; what is left of b comes in b's order
    product = xp.tensordot(g, b, (list(range(len(free_a), g.ndim)), free_b))
    source = free_a + [contracted_a[contracted_b.index(j)] for j in sorted(contracted_b)]
    return xp.transpose(product, np.argsort(source))


def _tensordot_vjp_right(g, y, a, b, *, axes=2):
    xp = array_module(g)
    contracted_a, contracted_b = _tensordot_axes(axes, a.ndim, b.ndim)
    free_a = [i for i in range(a.ndim) if i not in contracted_a]
    free_b = [i for i in range(b.ndim) if i not in contracted_b]
    product = xp.tensordot(a, g, (free_a, list(range(len(free_a)))))
    source = [contracted_b[contracted_a.index(i)] for i in sorted(contracted_a)] + free_b
    return xp.transpose(product, np.argsort(source))


def _tensordot_shape(a, b, *, axes=2):
    a, b = _shape_of(a), _shape_of(b)
    contracted_a, contracted_b = _tensordot_axes(axes, len(a), len(b))
    if [a[i] for i in contracted_a] != [b[j] for j in contracted_b]:
        raise ValueError(f"tensordot: shapes {a} and {b} do not match along axes {axes}")
    return (tuple(n for i, n in enumerate(a) if i not in contracted_a)
            + tuple(n for j, n in enumerate(b) if j not in contracted_b))


tensordot = Op("tensordot", _tensordot_forward,
               vjps=(_tensordot_vjp_left, _tensordot_vjp_right), shape=_tensordot_shape,
               receptive_field="none")


# np.einsum with explicit subscripts ('ij,jk->ik'; the call makes implicit ones explicit).
# The derivative of each operand is an einsum of the output's derivative with the other
# operands. An index repeated within the operand (a diagonal, 'ii->i') is renamed and tied
# to its original by an identity matrix; an index that only that operand has (summed away,
# 'ij->i') is broadcast back afterwards.
def _einsum_forward(*operands, subscripts):
    return array_module(*operands).einsum(subscripts, *operands)


def _einsum_parts(subscripts):
    inputs, output = subscripts.split("->")
    return inputs.split(","), output


def _einsum_vjp(i, g, y, *operands, subscripts):
    xp = array_module(g)
    inputs, output = _einsum_parts(subscripts)
    target, x = inputs[i], operands[i]
    sizes = dict(zip(target, x.shape))
    spare = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 if c not in subscripts)
    renamed, ties, seen = "", [], set()
    for c in target:
        if c in seen:
            fresh = next(spare)
            renamed += fresh
            ties.append(c + fresh)
        else:
            seen.add(c)
            renamed += c
    terms = [output] + [s for k, s in enumerate(inputs) if k != i] + ties
    arrays = [g] + [v for k, v in enumerate(operands) if k != i]
    arrays += [xp.eye(sizes[tie[0]], dtype=g.dtype) for tie in ties]
    reached = set("".join(terms))
    result = "".join(c for c in renamed if c in reached)
    der = xp.einsum(",".join(terms) + "->" + result, *arrays)
    if result != renamed:
        der = der.reshape([n if c in reached else 1 for c, n in zip(renamed, x.shape)])
        der = _broadcast_copy(der, x.shape)
    return der


def _einsum_shape(*operands, subscripts):
    inputs, output = _einsum_parts(subscripts)
    sizes = {}
    for term, shape in zip(inputs, operands):
        shape = _shape_of(shape)
        if len(term) != len(shape):
            raise ValueError(f"einsum: subscripts {term!r} for an operand of shape {shape}")
        for c, n in zip(term, shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum ({subscripts}): index {c!r} has sizes {sizes[c]} "
                                 f"and {n}")
    return tuple(sizes[c] for c in output)


einsum = Op("einsum", _einsum_forward, vjp=_einsum_vjp, shape=_einsum_shape,
            receptive_field="none")


# ------------------------------------------------------------------ the optimiser's op
def _weighted_sum_forward(*xs, weights):
    y = xs[0] * weights[0] if weights[0] != 1 else xs[0]
    for x, w in zip(xs[1:], weights[1:]):
        y = y + (x * w if w != 1 else x)
    return y


def _weighted_sum_backward(*xs_and_dzdy, weights, need):
    *xs, g = xs_and_dzdy
    return tuple(unbroadcast(g * w if w != 1 else g, x) if wanted else None
                 for x, w, wanted in zip(xs, weights, need))


weighted_sum = Op("weighted_sum", _weighted_sum_forward, _weighted_sum_backward,
                  backward_accepts_need=True, shape=_broadcast_shape, receptive_field="elementwise",
                  doc="y = Σ_i weights[i]·x_i (what the compiler merges chains of +, − and "
                      "scalar × into).")


# ------------------------------------------------------------------ NumPy dispatch tables
UFUNC_OPS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
    np.power: power, np.maximum: maximum, np.minimum: minimum, np.matmul: matmul,
    np.negative: negative, np.positive: positive, np.exp: exp, np.expm1: expm1, np.log: log,
    np.log1p: log1p, np.sqrt: sqrt, np.square: square, np.reciprocal: reciprocal, np.sin: sin,
    np.cos: cos, np.tan: tan, np.tanh: tanh, np.sinh: sinh, np.cosh: cosh, np.arctan: arctan,
    np.absolute: absolute, np.greater: greater, np.greater_equal: greater_equal,
    np.less: less, np.less_equal: less_equal, np.equal: equal, np.not_equal: not_equal,
    np.sign: sign, np.floor: floor, np.ceil: ceil, np.rint: rint,
    np.fabs: fabs, np.exp2: exp2, np.log2: log2, np.log10: log10, np.cbrt: cbrt,
    np.arcsin: arcsin, np.arccos: arccos, np.arcsinh: arcsinh, np.arccosh: arccosh,
    np.arctanh: arctanh, np.deg2rad: deg2rad, np.radians: deg2rad, np.rad2deg: rad2deg,
    np.degrees: rad2deg, np.arctan2: arctan2, np.hypot: hypot, np.logaddexp: logaddexp,
    np.logaddexp2: logaddexp2, np.remainder: remainder, np.fmod: fmod, np.fmax: fmax,
    np.fmin: fmin, np.float_power: float_power, np.trunc: trunc,
    np.floor_divide: floor_divide, np.heaviside: heaviside, np.logical_and: logical_and,
    np.logical_or: logical_or, np.logical_xor: logical_xor, np.logical_not: logical_not,
    np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite,
}


def _reduction_call(op):
    def call(a, axis=None, keepdims=False, **unsupported):
        _refuse(op.name, unsupported)
        return op(a, axis=_axis_option(axis), keepdims=bool(keepdims))
    return call


def _axis_option(axis):
    if axis is None or isinstance(axis, int):
        return axis
    if isinstance(axis, np.integer):
        return int(axis)
    return tuple(int(a) for a in axis)


def _refuse(name, unsupported):
    given = {k: v for k, v in unsupported.items() if v is not None and v is not np._NoValue}
    if given:
        raise TypeError(f"{name}: options {sorted(given)} are not supported on Layers")


def _reshape_call(a, *args, **kwargs):
    shape = kwargs.pop("newshape", None) or kwargs.pop("shape", None) or args[0]
    _refuse("reshape", {k: v for k, v in kwargs.items() if k != "order" or v != "C"})
    return reshape(a, shape=_shape_option(shape))


def _shape_option(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(n) for n in shape)


def _transpose_call(a, axes=None):
    return transpose(a, axes=None if axes is None else tuple(int(i) for i in axes))


def _concatenate_call(arrays, axis=0, **unsupported):
    _refuse("concatenate", unsupported)
    return concatenate(*arrays, axis=int(axis))


def _stack_call(arrays, axis=0, **unsupported):
    _refuse("stack", unsupported)
    return stack(*arrays, axis=int(axis))


def _squeeze_call(a, axis=None):
    return squeeze(a, axis=_axis_option(axis))


def _expand_dims_call(a, axis):
    return expand_dims(a, axis=_axis_option(axis))


def _clip_call(a, a_min=None, a_max=None, **unsupported):
    _refuse("clip", unsupported)
    return clip(a, a_min=a_min, a_max=a_max)


def _where_call(condition, x, y):
    return where(condition, x, y)


def _dot_call(a, b, **unsupported):
    _refuse("dot", unsupported)
    return dot(a, b)


def _argmax_call(a, axis=None, **unsupported):
    _refuse("argmax", unsupported)
    return argmax(a, axis=axis)


def _argmin_call(a, axis=None, **unsupported):
    _refuse("argmin", unsupported)
    return argmin(a, axis=axis)


def _moment_call(op):
    def call(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **unsupported):
        _refuse(op.name, dict(unsupported, dtype=dtype, out=out))
        return op(a, axis=_axis_option(axis), ddof=_number_option(ddof),
                  keepdims=bool(keepdims))
    return call


def _number_option(value):
    """A NumPy or Python number as a plain int (when whole) or float, as options are saved."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _cumsum_call(a, axis=None, **unsupported):
    _refuse("cumsum", unsupported)
    return cumsum(a, axis=None if axis is None else int(axis))


def _norm_call(x, ord=None, axis=None, keepdims=False):  # noqa: A002 (NumPy's name)
    if isinstance(ord, (np.integer, np.floating)):
        ord = ord.item()  # noqa: A001
    return norm(x, ord=ord, axis=_axis_option(axis), keepdims=bool(keepdims))


def _round_call(a, decimals=0, out=None):
    _refuse("round", {"out": out})
    return round(a, decimals=int(decimals))


def _flip_call(m, axis=None):
    return flip(m, axis=_axis_option(axis))


def _roll_call(a, shift, axis=None):
    shift = int(shift) if np.ndim(shift) == 0 else tuple(int(s) for s in shift)
    return roll(a, shift=shift, axis=_axis_option(axis))


def _swapaxes_call(a, axis1, axis2):
    return swapaxes(a, axis1=int(axis1), axis2=int(axis2))


def _moveaxis_call(a, source, destination):
    return moveaxis(a, source=_axis_option(source), destination=_axis_option(destination))


def _broadcast_to_call(array, shape, **unsupported):
    _refuse("broadcast_to", {k: v for k, v in unsupported.items() if v is not False})
    return broadcast_to(array, shape=_shape_option(shape))


def _pad_call(array, pad_width, mode="constant", constant_values=0, **unsupported):
    if mode != "constant" or np.ndim(constant_values) != 0:
        raise TypeError(f"pad: only mode='constant' with one constant value is supported on "
                        f"Layers, got mode={mode!r}, constant_values={constant_values!r}")
    _refuse("pad", unsupported)
    return pad(array, pad_width=_pad_width_option(pad_width),
               constant_values=float(constant_values))


def _pad_width_option(pad_width):
    """np.pad's widths (an int, a pair, or a pair per axis) as plain ints and tuples."""
    widths = np.asarray(pad_width, dtype=np.int64)
    if widths.ndim == 0:
        return int(widths)
    if widths.ndim == 1:
        return tuple(widths.tolist())
    return tuple(tuple(pair) for pair in widths.tolist())


def _tile_call(A, reps):
    return tile(A, reps=_shape_option(reps))


def _repeat_call(a, repeats, axis=None):
    repeats = int(repeats) if np.ndim(repeats) == 0 else tuple(int(r) for r in repeats)
    return repeat(a, repeats=repeats, axis=None if axis is None else int(axis))


def _split_call(even):
    def call(ary, indices_or_sections, axis=0):
        if np.ndim(indices_or_sections) == 0:
            sections = int(indices_or_sections)
            count = sections
        else:
            sections = tuple(int(i) for i in indices_or_sections)
            count = len(sections) + 1
        return [split_piece(ary, sections=sections, piece=piece, axis=int(axis), even=even)
                for piece in range(count)]
    return call


def _sort_call(a, axis=-1, kind=None, order=None, **unsupported):
    _refuse("sort", dict(unsupported, order=order))  # kind: any gives the same values
    return sort(a, axis=None if axis is None else int(axis))


def _argsort_call(a, axis=-1, kind=None, order=None, **unsupported):
    _refuse("argsort", dict(unsupported, order=order))
    return argsort(a, axis=None if axis is None else int(axis))


def _diagonal_call(a, offset=0, axis1=0, axis2=1):
    return diagonal(a, offset=int(offset), axis1=int(axis1), axis2=int(axis2))


def _trace_call(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _refuse("trace", {"dtype": dtype, "out": out})
    return sum(_diagonal_call(a, offset, axis1, axis2), axis=-1)


def _triangle_call(op):
    def call(m, k=0):
        return op(m, k=int(k))
    return call


def _like_call(op):
    def call(a, dtype=None, order="K", subok=True, shape=None, **unsupported):
        _refuse(op.name, dict(unsupported, dtype=dtype, shape=shape))
        return op(a)
    return call


def _tensordot_call(a, b, axes=2):
    if np.ndim(axes) == 0:
        return tensordot(a, b, axes=int(axes))
    first, second = axes
    return tensordot(a, b, axes=(_int_tuple(first), _int_tuple(second)))


def _int_tuple(value):
    return (int(value),) if np.ndim(value) == 0 else tuple(int(i) for i in value)


def _einsum_call(*operands, out=None, **unsupported):
    subscripts, *operands = operands
    if not isinstance(subscripts, str):
        raise TypeError("einsum: on Layers give the subscripts as one string ('ij,jk->ik'); "
                        "the interleaved form (operand, [axes], ...) is not supported")
    _refuse("einsum", dict({k: v for k, v in unsupported.items() if k != "optimize"}, out=out))
    return einsum(*operands, subscripts=_explicit_subscripts(subscripts, len(operands)))


def _explicit_subscripts(subscripts, count):
    """``subscripts`` with its output named ('ij,jk' -> 'ij,jk->ik', as NumPy reads it)."""
    subscripts = subscripts.replace(" ", "")
    if "." in subscripts:
        raise TypeError(f"einsum: ellipses ({subscripts!r}) are not supported on Layers; name "
                        f"every axis")
    inputs, arrow, output = subscripts.partition("->")
    terms = inputs.split(",")
    if len(terms) != count or not all(t.isalpha() or t == "" for t in terms):
        raise ValueError(f"einsum: subscripts {subscripts!r} for {count} operands")
    if not arrow:
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return f"{inputs}->{output}"


def _outer_call(a, b, out=None):
    _refuse("outer", {"out": out})
    return multiply(reshape(a, shape=(-1, 1)), reshape(b, shape=(1, -1)))


def _inner_call(a, b):
    return tensordot(a, b, axes=((-1,), (-1,)))


def _vdot_call(a, b):
    return sum(multiply(reshape(a, shape=(-1,)), reshape(b, shape=(-1,))))


def _ravel_call(a, order="C"):
    _refuse("ravel", {"order": None if order == "C" else order})
    return reshape(a, shape=(-1,))


def _diff_call(a, n=1, axis=-1, **unsupported):
    # slices along the axis, written without knowing the rank (a Layer's is not known yet)
    _refuse("diff", unsupported)
    axis = int(axis)
    lead = (slice(None),) * axis if axis >= 0 else (Ellipsis,)
    trail = () if axis >= 0 else (slice(None),) * (-axis - 1)
    for _ in range(int(n)):
        a = subtract(getitem(a, index=lead + (slice(1, None),) + trail),
                     getitem(a, index=lead + (slice(None, -1),) + trail))
    return a


def _ptp_call(a, axis=None, out=None, keepdims=False):
    _refuse("ptp", {"out": out})
    axis, keepdims = _axis_option(axis), bool(keepdims)
    return subtract(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


def _layer_attribute(name):
    """np.shape / np.ndim / np.size of a Layer: its attribute, where its shape is known."""
    def call(a, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{name}: only np.{name}(layer) is supported on Layers")
        return getattr(a, name)
    return call


FUNCTION_OPS = {
    np.sum: _reduction_call(sum), np.mean: _reduction_call(mean),
    np.max: _reduction_call(max), np.min: _reduction_call(min),
    np.amax: _reduction_call(max), np.amin: _reduction_call(min),
    np.reshape: _reshape_call, np.transpose: _transpose_call,
    np.concatenate: _concatenate_call, np.stack: _stack_call, np.squeeze: _squeeze_call,
    np.expand_dims: _expand_dims_call, np.clip: _clip_call, np.where: _where_call,
    np.dot: _dot_call, np.argmax: _argmax_call, np.argmin: _argmin_call,
    np.prod: _reduction_call(prod), np.var: _moment_call(var), np.std: _moment_call(std),
    np.all: _reduction_call(all_of), np.any: _reduction_call(any_of), np.cumsum: _cumsum_call,
    np.linalg.norm: _norm_call, np.round: _round_call, np.around: _round_call,
    np.flip: _flip_call, np.fliplr: lambda m: flip(m, axis=1),
    np.flipud: lambda m: flip(m, axis=0), np.roll: _roll_call, np.swapaxes: _swapaxes_call,
    np.moveaxis: _moveaxis_call, np.broadcast_to: _broadcast_to_call, np.pad: _pad_call,
    np.tile: _tile_call, np.repeat: _repeat_call, np.split: _split_call(even=True),
    np.array_split: _split_call(even=False), np.sort: _sort_call, np.argsort: _argsort_call,
    np.diagonal: _diagonal_call, np.trace: _trace_call, np.tril: _triangle_call(tril),
    np.triu: _triangle_call(triu), np.zeros_like: _like_call(zeros_like),
    np.ones_like: _like_call(ones_like), np.linalg.inv: inv, np.linalg.det: det,
    np.linalg.solve: solve, np.tensordot: _tensordot_call, np.einsum: _einsum_call,
    np.outer: _outer_call, np.inner: _inner_call, np.vdot: _vdot_call, np.ravel: _ravel_call,
    np.diff: _diff_call, np.ptp: _ptp_call, np.shape: _layer_attribute("shape"),
    np.ndim: _layer_attribute("ndim"),
    np.take: lambda a, indices, axis=None: take(a, indices, axis=_axis_option(axis)),
}
