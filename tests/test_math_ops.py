"""Every Layer overload and NumPy function: forward against NumPy itself, derivatives against
finite differences (gradcheck), broadcasting reduced back to each input's shape."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an

rng = np.random.default_rng(0)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def normal(*shape):
    return rng.standard_normal(shape)


def evaluate(expression, *arrays):
    """Value and input derivatives of ``expression(*Inputs)`` through a compiled Net."""
    inputs = [an.Input(f"x{i}") for i in range(len(arrays))]
    net = an.Net(expression(*inputs), optimize=False)
    net.eval({f"x{i}": a for i, a in enumerate(arrays)}, mode="forward")
    return net.value(net.outputs[0])


UNARY = [
    ("negative", lambda x: -x, normal),
    ("positive", lambda x: +x, normal),
    ("abs", lambda x: abs(x), normal),
    ("exp", np.exp, normal),
    ("expm1", np.expm1, normal),
    ("log", np.log, positive),
    ("log1p", np.log1p, positive),
    ("sqrt", np.sqrt, positive),
    ("square", np.square, normal),
    ("reciprocal", np.reciprocal, positive),
    ("sin", np.sin, normal),
    ("cos", np.cos, normal),
    ("tan", np.tan, lambda *s: rng.uniform(-1, 1, size=s)),
    ("tanh", np.tanh, normal),
    ("sinh", np.sinh, normal),
    ("cosh", np.cosh, normal),
    ("arctan", np.arctan, normal),
    ("absolute", np.absolute, normal),
    ("T", lambda x: x.T, normal),
    ("transpose", lambda x: np.transpose(x, (1, 0, 2)), normal),
    ("method transpose", lambda x: x.transpose(2, 0, 1), normal),
    ("reshape", lambda x: np.reshape(x, (4, -1)), normal),
    ("method reshape", lambda x: x.reshape(2, 12), normal),
    ("sum all", np.sum, normal),
    ("sum axis", lambda x: np.sum(x, axis=1), normal),
    ("sum keepdims", lambda x: x.sum(axis=(0, 2), keepdims=True), normal),
    ("mean", lambda x: np.mean(x, axis=-1), normal),
    ("method mean", lambda x: x.mean(), normal),
    ("max", lambda x: np.max(x, axis=0), normal),
    ("method max", lambda x: x.max(axis=(1, 2), keepdims=True), normal),
    ("min", lambda x: np.min(x, axis=2), normal),
    ("amax", lambda x: np.amax(x), normal),
    ("squeeze", lambda x: np.squeeze(x[:, :1, :], axis=1), normal),
    ("expand_dims", lambda x: np.expand_dims(x, 1), normal),
    ("clip", lambda x: np.clip(x, -0.5, 0.5), normal),
    ("basic index", lambda x: x[1, ::2, -1], normal),
    ("ellipsis index", lambda x: x[..., 1:3], normal),
    ("newaxis index", lambda x: x[None, 0], normal),
    ("advanced index", lambda x: x[[0, 1, 0], :, [3, 2, 3]], normal),
    ("repeated index", lambda x: x[np.array([1, 1, 1, 0])], normal),
    ("boolean index", lambda x: x[np.arange(24).reshape(2, 3, 4) % 3 == 0], normal),
]


@pytest.mark.parametrize("name, f, sample", UNARY, ids=[u[0] for u in UNARY])
def test_unary_operation_matches_numpy_and_finite_differences(name, f, sample):
    x = sample(2, 3, 4)
    np.testing.assert_allclose(evaluate(f, x), f(x), rtol=1e-12)
    an.gradcheck(f, x)


BINARY = [
    ("add", lambda a, b: a + b),
    ("radd", lambda a, b: np.add(a, b)),
    ("subtract", lambda a, b: a - b),
    ("multiply", lambda a, b: a * b),
    ("divide", lambda a, b: a / b),
    ("power", lambda a, b: a ** b),
    ("maximum", np.maximum),
    ("minimum", np.minimum),
    ("where", lambda a, b: np.where(np.arange(4) % 2 == 0, a, b)),
]

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3, 4)),
                    ((), (3, 4))]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name, f", BINARY, ids=[b[0] for b in BINARY])
def test_binary_operation_broadcasts_like_numpy(name, f, shapes):
    a, b = positive(*shapes[0]), positive(*shapes[1])
    np.testing.assert_allclose(evaluate(f, a, b), f(a, b), rtol=1e-12)
    report = an.gradcheck(f, a, b)
    assert [e.shape for e in report.entries] == [shapes[0], shapes[1]]


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                              ((4,), (4,)), ((2, 3, 4), (4, 2)),
                                              ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_matches_numpy_for_every_rank(shape_a, shape_b):
    a, b = normal(*shape_a), normal(*shape_b)
    for f in (lambda x, y: x @ y, np.matmul):
        np.testing.assert_allclose(evaluate(f, a, b), a @ b, rtol=1e-12)
        an.gradcheck(f, a, b)


def test_reflected_operators_with_arrays_on_the_left():
    a = positive(3, 4)
    c = positive(3, 4)
    for f in (lambda x: c + x, lambda x: c - x, lambda x: c * x, lambda x: c / x,
              lambda x: c ** x, lambda x: 2.0 ** x, lambda x: 1 - x):
        np.testing.assert_allclose(evaluate(f, a), f(a), rtol=1e-12)
        an.gradcheck(f, a)


@pytest.mark.parametrize("combine", ["concatenate", "stack"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_split_the_derivative(combine, axis):
    a, b, c = normal(2, 3), normal(2, 3), normal(2, 3)
    f = lambda x, y, z: getattr(np, combine)([x, y, z * 2], axis=axis)  # noqa: E731
    np.testing.assert_allclose(evaluate(f, a, b, c), f(a, b, c))
    an.gradcheck(f, a, b, c)


def test_comparisons_build_nodes_without_derivatives():
    a, b = normal(3, 4), normal(3, 4)
    for f in (lambda x, y: x < y, lambda x, y: x <= y, lambda x, y: x > y,
              lambda x, y: x >= y, lambda x, y: x == y, lambda x, y: x != y):
        np.testing.assert_array_equal(evaluate(f, a, b), f(a, b))
    x, y = an.Input("x"), an.Input("y")
    net = an.Net(((x > 0) * x * y).sum())
    net.eval({"x": a, "y": b})
    np.testing.assert_allclose(net.der("x"), (a > 0) * b)


def test_max_sends_the_whole_derivative_to_one_argmax_on_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    X = an.Input("X")
    net = an.Net(X.max(axis=1).sum())
    net.eval({"X": x})
    np.testing.assert_array_equal(net.der("X"), [[0, 1, 0], [1, 0, 0]])


def test_repeated_advanced_indices_accumulate_derivatives():
    X = an.Input("X")
    net = an.Net(X[np.array([0, 2, 0, 0])].sum())
    net.eval({"X": np.arange(3.0)})
    np.testing.assert_array_equal(net.der("X"), [3, 0, 1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.data())
def test_broadcast_derivatives_reduce_to_each_input_shape(shape, data):
    # drop some leading axes and set some sizes to 1 to make a broadcastable partner
    cut = data.draw(st.integers(0, len(shape)))
    partner = [1 if data.draw(st.booleans()) else n for n in shape[cut:]]
    a, b = normal(*shape), normal(*partner)
    report = an.gradcheck(lambda x, y: x * y + y, a, b)
    assert report.entries[1].shape == tuple(partner)


def test_unsupported_numpy_function_on_a_layer_raises_type_error():
    x = an.Input("x")
    with pytest.raises(TypeError):
        np.linalg.svd(x)
    with pytest.raises(TypeError, match="not supported"):
        np.add(x, 1, where=True)


# ------------------------------------------------------------------ np.dot: NumPy's semantics
def dot_through_a_net(a, b, g):
    """Value of np.dot on two Params (whose ranks a graph knows) and the derivatives of
    <g, dot(a, b)>, through a compiled Net; the Net too, for gradcheck."""
    pa, pb = an.Param(a, name="a"), an.Param(b, name="b")
    y = np.dot(pa, pb)
    y.name = "y"
    net = an.Net((y * g).sum())
    net.eval({})
    return net.value("y"), pa.der, pb.der, net


def dot_derivatives_by_numpy(a, b, g):
    """The derivatives of <g, np.dot(a, b)>, one element at a time with NumPy's own dot
    (dot is linear in each argument: the derivative along e_i is <g, dot(e_i, b)>)."""
    def along(shape, product):
        d = np.zeros(shape)
        for index in np.ndindex(*shape):
            e = np.zeros(shape)
            e[index] = 1
            d[index] = np.sum(g * product(e))
        return d
    return along(np.shape(a), lambda e: np.dot(e, b)), along(np.shape(b), lambda e: np.dot(a, e))


DOT_SHAPES = [((4,), (4,)), ((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
              ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
              ((3, 4), (2, 3, 4, 2)), ((2, 1, 4), (3, 4, 2)), ((), (3, 4)), ((2, 3), ())]


@pytest.mark.parametrize("shape_a, shape_b", DOT_SHAPES, ids=str)
def test_dot_follows_numpy_for_every_rank(shape_a, shape_b):
    # N-D: sums the last axis of a with the second-to-last of b, giving
    # a.shape[:-1] + b.shape[:-2] + b.shape[-1:] (not matmul's broadcast batch); scalars multiply
    a, b = normal(*shape_a), normal(*shape_b)
    expected = np.dot(a, b)
    g = normal(*np.shape(expected))
    value, da, db = dot_through_a_net(a, b, g)[:3]
    assert np.shape(value) == np.shape(expected)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    da_numpy, db_numpy = dot_derivatives_by_numpy(a, b, g)
    np.testing.assert_allclose(da, da_numpy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db_numpy, rtol=1e-12, atol=1e-12)
    an.gradcheck(dot_through_a_net(a, b, g)[3], {})


@pytest.mark.parametrize("shape_a, shape_b", [((2, 3, 4), (2, 4, 5)), ((3, 4), (4, 5)),
                                              ((4,), (2, 4, 5)), ((2, 3, 4), (4,))], ids=str)
def test_dot_of_an_input_and_an_array_follows_numpy(shape_a, shape_b):
    # the Input's rank is unknown when the graph is built: b's (an array's) is enough
    a, b = normal(*shape_a), normal(*shape_b)
    np.testing.assert_allclose(evaluate(lambda x: np.dot(x, b), a), np.dot(a, b), rtol=1e-12)
    an.gradcheck(lambda x: np.dot(x, b), a)
    if a.ndim == 1:  # a vector a makes dot matmul whatever b's rank
        np.testing.assert_allclose(evaluate(lambda y: np.dot(a, y), b), np.dot(a, b),
                                   rtol=1e-12)
        an.gradcheck(lambda y: np.dot(a, y), b)


@pytest.mark.parametrize("shape_a, shape_b", DOT_SHAPES, ids=str)
def test_dot_of_two_inputs_follows_numpy_whatever_their_ranks(shape_a, shape_b):
    # no rank is known when the graph is built: the dot op follows NumPy when the Net runs
    a, b = normal(*shape_a), normal(*shape_b)
    np.testing.assert_allclose(evaluate(lambda u, v: np.dot(u, v), a, b), np.dot(a, b),
                               rtol=1e-12)
    x, y = an.Input("x"), an.Input("y")
    net = an.Net(np.dot(x, y).sum())
    an.gradcheck(net, {"x": a, "y": b})


def test_dot_of_mismatched_shapes_names_the_op_and_the_shapes():
    x, y = an.Input("x"), an.Input("y")
    net = an.Net(np.dot(x, y).sum())
    with pytest.raises(ValueError, match=r"dot layer .*\(float64\[2, 3, 4\], float64\[5, 2\]\)"):
        net.eval({"x": normal(2, 3, 4), "y": normal(5, 2)})


# ------------------------------------------------------------------ tie rules
# At a tie exactly one input receives the derivative: the first argument of maximum/minimum,
# the first extremum (row-major over the reduced axes) of max/min. MatConvNet's max pooling
# does the same; gradcheck cannot see it (a tie is a kink), so these pin it.
def ders(expression, *arrays):
    inputs = [an.Input(f"x{i}") for i in range(len(arrays))]
    net = an.Net(expression(*inputs).sum())
    net.eval({f"x{i}": a for i, a in enumerate(arrays)})
    return [net.der(f"x{i}") for i in range(len(arrays))]


def test_maximum_and_minimum_send_a_tie_to_their_first_argument():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.0, 0.0, 3.0, 5.0])          # ties at 0 and 2
    da, db = ders(np.maximum, a, b)
    np.testing.assert_array_equal(da, [1, 1, 1, 0])
    np.testing.assert_array_equal(db, [0, 0, 0, 1])
    db, da = ders(np.maximum, b, a)
    np.testing.assert_array_equal(db, [1, 0, 1, 1])
    np.testing.assert_array_equal(da, [0, 1, 0, 0])
    da, db = ders(np.minimum, a, b)
    np.testing.assert_array_equal(da, [1, 0, 1, 1])
    np.testing.assert_array_equal(db, [0, 1, 0, 0])
    db, da = ders(np.minimum, b, a)
    np.testing.assert_array_equal(db, [1, 1, 1, 0])
    np.testing.assert_array_equal(da, [0, 0, 0, 1])


def test_maximum_with_a_constant_at_a_tie_follows_the_argument_order():
    x = np.array([-1.0, 0.0, 2.0])
    (dx,) = ders(lambda v: np.maximum(v, 0), x)     # x first: the tie at 0 is x's
    np.testing.assert_array_equal(dx, [0, 1, 1])
    (dx,) = ders(lambda v: np.maximum(0, v), x)     # the constant first: it keeps the tie
    np.testing.assert_array_equal(dx, [0, 0, 1])
    (dx,) = ders(lambda v: np.minimum(v, 0), x)
    np.testing.assert_array_equal(dx, [1, 1, 0])


@pytest.mark.parametrize("method", ["max", "min"])
def test_max_and_min_reductions_send_a_tie_to_the_first_extremum_in_row_major_order(method):
    sign = 1.0 if method == "max" else -1.0
    x = sign * np.array([[3.0, 1.0, 3.0], [3.0, 3.0, 2.0]])
    def reduce(axis):
        return lambda v: getattr(v, method)(axis=axis)
    (dx,) = ders(reduce(None), x)
    np.testing.assert_array_equal(dx, [[1, 0, 0], [0, 0, 0]])
    (dx,) = ders(reduce(0), x)
    np.testing.assert_array_equal(dx, [[1, 0, 1], [0, 1, 0]])
    (dx,) = ders(reduce(1), x)
    np.testing.assert_array_equal(dx, [[1, 0, 0], [1, 0, 0]])
    # over axes (0, 2) of a 2 x 2 x 2 array: the extremum at (0, j, 1) and (1, j, 0), the
    # first of them in row-major order over (i, k) is (0, j, 1)
    y = np.zeros((2, 2, 2))
    y[0, :, 1] = y[1, :, 0] = sign
    (dy,) = ders(reduce((0, 2)), y)
    expected = np.zeros((2, 2, 2))
    expected[0, :, 1] = 1
    np.testing.assert_array_equal(dy, expected)
    (dy,) = ders(lambda v: getattr(np, method)(v, axis=(2, 0), keepdims=True), y)
    np.testing.assert_array_equal(dy, expected)
