"""NumPy's functions on Layers beyond the basic overloads (tests/test_math_ops.py): each builds
a node whose value is NumPy's own on the same arrays, in float64 and float32, and whose
derivative passes gradcheck (inputs kept away from kinks and singularities); the
non-differentiable ones build nodes without derivatives; what autonn does not implement is
refused by name; a Layer is never silently an array; and Layers know their shape where the
graph fixes it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an

rng = np.random.default_rng(14)


def normal(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def unit(*shape):
    """Inside (-1, 1), away from the ends (arcsin, arccos, arctanh)."""
    return rng.uniform(-0.8, 0.8, size=shape)


def apart(*shape):
    """Distinct values at least 0.1 apart, in random order (sort, max: no ties)."""
    return rng.permutation(np.arange(int(np.prod(shape))) * 0.1 + 0.05).reshape(shape) - 1


def invertible(*shape):
    return rng.standard_normal(shape) + 3 * np.eye(shape[-1])


def evaluate(expression, *arrays):
    """The value of ``expression(*Inputs)`` through a compiled Net, and its output Layer."""
    inputs = [an.Input(f"x{i}") for i in range(len(arrays))]
    output = expression(*inputs)
    net = an.Net(output, optimize=False)
    net.eval({f"x{i}": a for i, a in enumerate(arrays)}, mode="forward")
    return net.value(net.outputs[0]), output


def check_value_and_derivative(f, *arrays):
    """The graph gives NumPy's value in float64 and float32, and passes gradcheck."""
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        cast = [a.astype(dtype) for a in arrays]
        value, _ = evaluate(f, *cast)
        expected = f(*cast)
        assert np.shape(value) == np.shape(expected)
        np.testing.assert_allclose(value, expected, rtol=rtol, atol=rtol)
    an.gradcheck(f, *arrays)


# ------------------------------------------------------------------ element-wise
UNARY = [
    ("exp2", np.exp2, normal), ("log2", np.log2, positive), ("log10", np.log10, positive),
    ("cbrt", np.cbrt, positive), ("cbrt negative", np.cbrt, lambda *s: -positive(*s)),
    ("arcsin", np.arcsin, unit), ("arccos", np.arccos, unit), ("arctanh", np.arctanh, unit),
    ("arcsinh", np.arcsinh, normal), ("arccosh", np.arccosh, lambda *s: positive(*s) + 1),
    ("fabs", np.fabs, lambda *s: positive(*s) * np.sign(normal(*s))),
    ("deg2rad", np.deg2rad, normal), ("radians", np.radians, normal),
    ("rad2deg", np.rad2deg, normal), ("degrees", np.degrees, normal),
]


@pytest.mark.parametrize("name, f, sample", UNARY, ids=[u[0] for u in UNARY])
def test_unary_function_matches_numpy_and_finite_differences(name, f, sample):
    check_value_and_derivative(f, sample(2, 3, 4))


BINARY = [
    ("arctan2", np.arctan2, normal, positive), ("hypot", np.hypot, normal, normal),
    ("logaddexp", np.logaddexp, normal, normal), ("logaddexp2", np.logaddexp2, normal, normal),
    ("fmax", np.fmax, apart, lambda *s: apart(*s) + 0.02),
    ("fmin", np.fmin, apart, lambda *s: apart(*s) + 0.02),
    ("float_power", np.float_power, positive, normal),
    # a/b kept away from integers, where mod and fmod jump
    ("mod", np.mod, lambda *s: rng.uniform(0.1, 0.4, s) + rng.integers(-3, 3, s),
     lambda *s: np.ones(s)),
    ("fmod", np.fmod, lambda *s: rng.uniform(0.1, 0.4, s) + rng.integers(-3, 3, s),
     lambda *s: np.full(s, 1.3)),
]
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (3, 1)), ((4,), (2, 3, 4))]


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name, f, sample_a, sample_b", BINARY, ids=[b[0] for b in BINARY])
def test_binary_function_broadcasts_like_numpy(name, f, sample_a, sample_b, shapes):
    a, b = sample_a(*shapes[0]), sample_b(*shapes[1])
    check_value_and_derivative(f, a, b)
    report = an.gradcheck(f, a, b)
    assert [e.shape for e in report.entries] == list(shapes)


def test_fmax_and_fmin_send_the_derivative_past_a_nan():
    a, b = np.array([1.0, np.nan, 3.0]), np.array([np.nan, 2.0, 4.0])
    for f, first in ((np.fmax, [1, 0, 0]), (np.fmin, [1, 0, 1])):
        x, y = an.Input("x"), an.Input("y")
        net = an.Net(f(x, y).sum())
        net.eval({"x": a, "y": b})
        np.testing.assert_array_equal(net.value(net.outputs[0]), f(a, b).sum())
        np.testing.assert_array_equal(net.der("x"), first)
        np.testing.assert_array_equal(net.der("y"), 1 - np.array(first))


def test_float_power_of_float32_inputs_gives_float32_derivatives():
    x = an.Input("x")
    net = an.Net(np.float_power(x, 2.0).sum())
    net.eval({"x": positive(3).astype(np.float32)})
    assert net.der("x").dtype == np.float32


# ------------------------------------------------------------------ non-differentiable
NONDIFFERENTIABLE = [
    ("trunc", np.trunc), ("round", np.round), ("around", lambda x: np.around(x, 1)),
    ("round method", lambda x: x.round(2)), ("isnan", np.isnan), ("isinf", np.isinf),
    ("isfinite", np.isfinite), ("logical_not", lambda x: np.logical_not(x > 0)),
    ("logical_and", lambda x: np.logical_and(x > 0, x < 1)),
    ("logical_or", lambda x: np.logical_or(x > 1, x < 0)),
    ("logical_xor", lambda x: np.logical_xor(x > 0, x < 1)),
    ("floor_divide", lambda x: np.floor_divide(x, 0.3)), ("heaviside", lambda x:
                                                          np.heaviside(x, 0.5)),
    ("argsort", lambda x: np.argsort(x, axis=1)), ("argsort flat", lambda x: np.argsort(x, None)),
    ("all", lambda x: np.all(x > -1, axis=0)), ("any", lambda x: np.any(x > 1, keepdims=True)),
    ("zeros_like", np.zeros_like), ("ones_like", np.ones_like),
]


@pytest.mark.parametrize("name, f", NONDIFFERENTIABLE, ids=[n[0] for n in NONDIFFERENTIABLE])
def test_nondifferentiable_function_builds_a_node_with_numpys_value(name, f):
    x = apart(3, 4) * 3
    value, output = evaluate(f, x)
    np.testing.assert_array_equal(value, f(x))
    assert isinstance(output, an.Layer) and output.op.differentiable is False
    net = an.Net((f(an.Input("x")) * an.Input("y")).sum())
    net.eval({"x": x, "y": np.ones(np.shape(f(x)))})
    np.testing.assert_array_equal(net.der("y"), f(x))


# ------------------------------------------------------------------ reductions, reshaping, ...
FUNCTIONS = [
    ("prod", np.prod, positive), ("prod axis", lambda x: np.prod(x, axis=1), positive),
    ("prod keepdims", lambda x: x.prod(axis=(0, 2), keepdims=True), positive),
    ("var", np.var, normal), ("var axis ddof", lambda x: np.var(x, axis=1, ddof=1), normal),
    ("var method", lambda x: x.var(axis=(0, 2), keepdims=True), normal),
    ("std", np.std, normal), ("std axis ddof", lambda x: np.std(x, axis=-1, ddof=1), normal),
    ("std method", lambda x: x.std(axis=0, keepdims=True), normal),
    ("cumsum", np.cumsum, normal), ("cumsum axis", lambda x: np.cumsum(x, axis=1), normal),
    ("cumsum method", lambda x: x.cumsum(-1), normal),
    ("norm", np.linalg.norm, normal),
    ("norm axes", lambda x: np.linalg.norm(x, axis=(1, 2), keepdims=True), normal),
    ("norm fro", lambda x: np.linalg.norm(x[0], "fro"), normal),
    ("norm 1", lambda x: np.linalg.norm(x, 1, axis=2), positive),
    ("norm 3", lambda x: np.linalg.norm(x, 3, axis=0), normal),
    ("norm inf", lambda x: np.linalg.norm(x, np.inf, axis=1), apart),
    ("norm vector", lambda x: np.linalg.norm(x[0, 0], 2.5), normal),
    ("ptp", lambda x: np.ptp(x, axis=1), apart),
    ("sort", np.sort, apart), ("sort axis", lambda x: np.sort(x, axis=0), apart),
    ("sort flat", lambda x: np.sort(x, axis=None), apart),
    ("flip", np.flip, normal), ("flip axis", lambda x: np.flip(x, (0, 2)), normal),
    ("fliplr", np.fliplr, normal), ("flipud", np.flipud, normal),
    ("roll", lambda x: np.roll(x, 5), normal),
    ("roll axes", lambda x: np.roll(x, (1, -2), axis=(0, 2)), normal),
    ("pad", lambda x: np.pad(x, 1), normal),
    ("pad widths", lambda x: np.pad(x, ((0, 1), (2, 0), (1, 1)), constant_values=0.5), normal),
    ("tile", lambda x: np.tile(x, 2), normal), ("tile more", lambda x: np.tile(x, (2, 1, 1, 3)),
                                                normal),
    ("tile fewer", lambda x: np.tile(x[0], (3, 2, 1)), normal),
    ("repeat", lambda x: np.repeat(x, 2), normal),
    ("repeat axis", lambda x: np.repeat(x, 3, axis=1), normal),
    ("repeat uneven", lambda x: np.repeat(x, [2, 0, 1], axis=-2), normal),
    ("repeat method", lambda x: x.repeat(2, axis=0), normal),
    ("diff", np.diff, normal), ("diff axis", lambda x: np.diff(x, axis=0), normal),
    ("diff twice", lambda x: np.diff(x, n=2, axis=-2), normal),
    ("diagonal", np.diagonal, normal),
    ("diagonal offset", lambda x: np.diagonal(x, -1, 1, 2), normal),
    ("trace", lambda x: np.trace(x[0]), normal),
    ("trace method", lambda x: x.trace(1, 1, 2), normal),
    ("tril", lambda x: np.tril(x), normal), ("triu", lambda x: np.triu(x, -1), normal),
    ("broadcast_to", lambda x: np.broadcast_to(x[:, :1], (5, 2, 3, 4)), normal),
    ("ravel", np.ravel, normal), ("flatten", lambda x: x.flatten(), normal),
    ("ravel method", lambda x: x.ravel(), normal),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2), normal),
    ("swapaxes method", lambda x: x.swapaxes(-1, 1), normal),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), normal),
    ("moveaxis several", lambda x: np.moveaxis(x, (0, 1), (2, 0)), normal),
    ("outer", lambda x: np.outer(x[0], x[1, 0]), normal),
    ("vdot", lambda x: np.vdot(x[0], x[1]), normal),
    ("clip method", lambda x: x.clip(-0.5, 0.5), normal),
    ("astype", lambda x: x.astype(np.float64), normal),
]


@pytest.mark.parametrize("name, f, sample", FUNCTIONS, ids=[u[0] for u in FUNCTIONS])
def test_function_matches_numpy_and_finite_differences(name, f, sample):
    check_value_and_derivative(f, sample(2, 3, 4))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_prod_derivative_is_exact_where_factors_are_zero(shape, data):
    x = rng.uniform(0.5, 2.0, shape) * rng.integers(0, 2, shape)   # about half zeros
    axis = data.draw(st.sampled_from([None] + list(range(len(shape)))))
    value, _ = evaluate(lambda v: np.prod(v, axis=axis), x)
    np.testing.assert_allclose(value, np.prod(x, axis=axis))
    an.gradcheck(lambda v: np.prod(v, axis=axis), x)


@pytest.mark.parametrize("split", [
    lambda x: np.split(x, 2), lambda x: np.split(x, 3, axis=1),
    lambda x: np.split(x, [1, 3], axis=-1), lambda x: np.array_split(x, 3, axis=2),
    lambda x: np.array_split(x, [5], axis=2)], ids=["halves", "thirds", "indices",
                                                    "array_split", "empty piece"])
def test_split_gives_numpys_pieces_and_their_derivatives(split):
    x = normal(4, 3, 4)
    pieces = split(an.Input("x"))
    assert all(isinstance(piece, an.Layer) for piece in pieces)
    for piece, expected in zip(pieces, split(x)):
        net = an.Net(piece, optimize=False)
        net.eval({"x": x}, mode="forward")
        np.testing.assert_array_equal(net.value(piece), expected)
    # each piece weighted differently, so that a derivative sent to the wrong piece shows
    an.gradcheck(lambda v: sum((p * (i + 1)).sum() for i, p in enumerate(split(v))), x)


def test_split_into_unequal_sections_is_refused_like_numpy():
    with pytest.raises(ValueError, match="split"):
        evaluate(lambda v: np.split(v, 3)[0], normal(4, 2))


def test_sort_sends_each_derivative_back_to_its_element():
    x = np.array([3.0, 1.0, 2.0])
    X = an.Input("X")
    net = an.Net((np.sort(X) * np.array([1.0, 10.0, 100.0])).sum())
    net.eval({"X": x})
    np.testing.assert_array_equal(net.der("X"), [100, 1, 10])


def test_norm_refuses_matrix_norms_it_cannot_differentiate():
    with pytest.raises(TypeError, match="linalg.norm"):
        evaluate(lambda v: np.linalg.norm(v, 2), normal(3, 3))
    with pytest.raises(TypeError, match="pad"):
        np.pad(an.Input("x"), 1, mode="reflect")


# ------------------------------------------------------------------ linear algebra, contractions
LINEAR_ALGEBRA = [
    ("inv", np.linalg.inv, (invertible(3, 3),)),
    ("inv batch", np.linalg.inv, (invertible(2, 4, 4),)),
    ("det", np.linalg.det, (invertible(3, 3),)),
    ("det batch", np.linalg.det, (invertible(2, 3, 3),)),
    ("solve vector", np.linalg.solve, (invertible(3, 3), normal(3))),
    ("solve matrix", np.linalg.solve, (invertible(3, 3), normal(3, 2))),
    ("solve batch", np.linalg.solve, (invertible(2, 3, 3), normal(2, 3, 2))),
    ("solve batch vector", np.linalg.solve, (invertible(2, 3, 3), normal(3))),
    ("solve broadcast", np.linalg.solve, (invertible(3, 3), normal(2, 3, 4))),
    ("solve broadcast a", np.linalg.solve, (invertible(2, 1, 3, 3), normal(4, 3, 1))),
    ("tensordot", np.tensordot, (normal(2, 3, 4), normal(3, 4, 5))),
    ("tensordot 1", lambda a, b: np.tensordot(a, b, 1), (normal(2, 3), normal(3, 4))),
    ("tensordot 0", lambda a, b: np.tensordot(a, b, 0), (normal(2, 3), normal(4))),
    ("tensordot pairs", lambda a, b: np.tensordot(a, b, ([2, 0], [0, 2])),
     (normal(2, 3, 4), normal(4, 5, 2))),
    ("tensordot ints", lambda a, b: np.tensordot(a, b, (1, -1)), (normal(2, 3), normal(4, 3))),
    ("inner", np.inner, (normal(2, 3), normal(4, 3))),
    ("matmul by einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), (normal(2, 3), normal(3, 4))),
    ("einsum implicit", lambda a, b: np.einsum("ij,jk", a, b), (normal(2, 3), normal(3, 4))),
    ("einsum batch", lambda a, b: np.einsum("bij,bjk->bki", a, b),
     (normal(2, 2, 3), normal(2, 3, 4))),
    ("einsum sum out", lambda a: np.einsum("ijk->i", a), (normal(2, 3, 4),)),
    ("einsum diagonal", lambda a: np.einsum("ii->i", a), (normal(3, 3),)),
    ("einsum trace", lambda a: np.einsum("ii", a), (normal(3, 3),)),
    ("einsum repeated", lambda a, b: np.einsum("iij,j->i", a, b), (normal(3, 3, 2), normal(2))),
    ("einsum three", lambda a, b, c: np.einsum("i,ij,jk->k", a, b, c),
     (normal(2), normal(2, 3), normal(3, 4))),
    ("einsum dot", lambda a, b: np.einsum("i, i ->", a, b), (normal(3), normal(3))),
    ("einsum outer only", lambda a, b: np.einsum("i,j->ji", a, b), (normal(3), normal(2))),
]


@pytest.mark.parametrize("name, f, arrays", LINEAR_ALGEBRA, ids=[u[0] for u in LINEAR_ALGEBRA])
def test_linear_algebra_matches_numpy_and_finite_differences(name, f, arrays):
    check_value_and_derivative(f, *arrays)


def test_einsum_names_what_it_does_not_support():
    a = an.Input("a")
    with pytest.raises(TypeError, match="ellipses"):
        np.einsum("...i->i", a)
    with pytest.raises(TypeError, match="interleaved"):
        np.einsum(a, [0, 1], [1])
    with pytest.raises(ValueError, match="2 operands"):
        np.einsum("ij->i", a, a)


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("call, name", [
    (lambda x: np.fft.fft(x), "numpy.fft.fft"), (lambda x: np.median(x), "numpy.median"),
    (lambda x: np.copysign(x, 1.0), "numpy.copysign"), (lambda x: np.add.reduce(x),
                                                        "numpy.add.reduce"),
    (lambda x: np.multiply.outer(x, x), "numpy.multiply.outer")])
def test_an_unsupported_numpy_call_names_the_function_and_points_to_an_op(call, name):
    with pytest.raises(TypeError, match="@an.op") as error:
        call(an.Input("x"))
    assert name in str(error.value)


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda x: np.array([x, x])])
def test_a_layer_is_never_converted_to_an_array(convert):
    with pytest.raises(TypeError, match="not an array"):
        convert(an.Input("x"))


# ------------------------------------------------------------------ shape, ndim
def test_shape_is_known_where_the_graph_fixes_it():
    w = an.Param(np.zeros((3, 4)))
    y = np.tanh(w @ np.ones((4, 2))).T
    assert y.shape == (2, 3) and y.ndim == 2 and np.shape(y) == (2, 3) and np.ndim(y) == 2
    x = an.Input("x")
    z = np.concatenate([x, x * 2], axis=1).sum(axis=0)
    assert not hasattr(z, "shape")
    with pytest.raises(AttributeError, match="not known"):
        z.ndim  # noqa: B018
    x.shape = (5, 3)
    assert z.shape == (6,) and x.shape == (5, 3)
    pieces = np.split(x, [1], axis=0)
    assert [p.shape for p in pieces] == [(1, 3), (4, 3)]


def test_shape_agrees_with_the_value_after_evaluation():
    x = an.Input("x")
    x.shape = (2, 3, 4)
    y = np.einsum("ijk,kl->lji", np.pad(x, 1), np.ones((6, 5)))
    net = an.Net(y, optimize=False)
    net.eval({"x": normal(2, 3, 4)}, mode="forward")
    assert y.shape == net.value(y).shape == (5, 5, 4)


def test_only_an_inputs_shape_can_be_declared_and_mismatches_name_the_op():
    x = an.Input("x")
    with pytest.raises(AttributeError, match="only an Input"):
        (x + 1).shape = (2,)
    x.shape = (2, 3)
    with pytest.raises(ValueError, match="matmul"):
        (x @ x).shape  # noqa: B018


def test_astype_casts_and_passes_the_derivative_back_in_the_input_dtype():
    x = an.Input("x")
    a = normal(2, 3)
    net = an.Net((x.astype(np.float32) * 3).sum())
    net.eval({"x": a})
    assert net.value(net.outputs[0]).dtype == np.float32
    np.testing.assert_array_equal(net.der("x"), np.full((2, 3), 3.0))
    assert net.der("x").dtype == np.float64
    y = an.Input("y")
    net = an.Net((x.astype(int) * y).sum())
    net.eval({"x": a * 3, "y": a})
    np.testing.assert_array_equal(net.der("x"), 0)
    np.testing.assert_array_equal(net.der("y"), (a * 3).astype(int))


# ------------------------------------------------------------------ what the backward reads
DIFFERENTIABLE = ([(name, f, (sample(2, 3, 4),)) for name, f, sample in UNARY + FUNCTIONS]
                  + [(name, f, (a(3, 4), b(3, 4))) for name, f, a, b in BINARY]
                  + LINEAR_ALGEBRA)


@pytest.mark.parametrize("name, f, arrays", DIFFERENTIABLE, ids=[d[0] for d in DIFFERENTIABLE])
def test_derivatives_need_only_what_the_op_declares_it_keeps(name, f, arrays):
    # conserve_memory frees every input and output the op does not declare its backward reads
    inputs = [an.Input(f"x{i}") for i in range(len(arrays))]
    output = f(*inputs)
    projection = normal(*np.shape(f(*arrays)))
    ders = []
    for conserve_memory in (False, True):
        net = an.Net((output * projection).sum(), conserve_memory=conserve_memory)
        net.eval({f"x{i}": a for i, a in enumerate(arrays)})
        ders.append([net.der(x) for x in inputs])
    for kept, freed in zip(*ders):
        np.testing.assert_allclose(freed, kept, rtol=1e-12)
