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
    np.testing.assert_allclose(evaluate(lambda x, y: x @ y, a, b), a @ b, rtol=1e-12)
    an.gradcheck(lambda x, y: x @ y, a, b)
    an.gradcheck(lambda x, y: np.dot(x, y), a, b) if a.ndim <= 2 and b.ndim <= 2 else None


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
