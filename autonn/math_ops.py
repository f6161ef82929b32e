"""NumPy's math as autonn ops: a table of (forward, derivative) pairs.

Each entry names a NumPy function and gives, per input, the rule ``vjp(dzdy, y, *inputs)``
for the derivative of ``<dzdy, f(inputs)>`` with respect to that input (``None``: no
derivative). Broadcasting is undone in one place, :func:`unbroadcast`. The forwards are NumPy's
own functions, which CuPy arrays also accept, so the same table serves both devices.

The rest of what autonn needs to know about an op is given per family, in one place each:
the shape rules (``Op(..., shape=)``: NumPy broadcasting for the element-wise ops, and one
rule each for reductions, reshape, transpose, squeeze, expand_dims, concatenate, stack, where,
clip, getitem and matmul) and the receptive-field rules (``Op(..., receptive_field=)``:
``'elementwise'`` for the element-wise ops, ``'none'`` for the ones that move pixels or mix
them over space). :mod:`autonn.shapes` and :mod:`autonn.receptive_fields` only read them.

``Layer`` maps its operators and ``__array_ufunc__`` / ``__array_function__`` onto these ops
(see :data:`UFUNC_OPS` and :data:`FUNCTION_OPS`).
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


FUNCTION_OPS = {
    np.sum: _reduction_call(sum), np.mean: _reduction_call(mean),
    np.max: _reduction_call(max), np.min: _reduction_call(min),
    np.amax: _reduction_call(max), np.amin: _reduction_call(min),
    np.reshape: _reshape_call, np.transpose: _transpose_call,
    np.concatenate: _concatenate_call, np.stack: _stack_call, np.squeeze: _squeeze_call,
    np.expand_dims: _expand_dims_call, np.clip: _clip_call, np.where: _where_call,
    np.dot: _dot_call, np.argmax: _argmax_call, np.argmin: _argmin_call,
}
