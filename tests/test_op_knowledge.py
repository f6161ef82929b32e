"""What every op declares about itself (autonn.ops.Op): a shape rule that agrees with its
forward, a receptive-field rule, and the MatConvNet types it implements, which the wrappers
follow. Custom ops declare none of these and still work."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autonn as an
from autonn import dagnn, math_ops, nn, simplenn
from autonn.nn.normalization import bnorm_given_moments_op, bnorm_op
from autonn.ops import REGISTRY, Op
from autonn.shapes import variable_shapes


def nn_test_module(name):
    """A shared module of tests/nn (the block harness and its table). They import one another
    by name, so tests/nn goes on sys.path, as tests/nn/conftest.py puts it for the tests there."""
    folder = str(Path(__file__).with_name("nn"))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


harness = nn_test_module("block_harness")
block_cases = nn_test_module("block_cases")
RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def builtin_ops():
    """The ops a fresh ``import autonn`` registers (other tests register ops of their own)."""
    names = subprocess.run(
        [sys.executable, "-c",
         "import json, autonn; print(json.dumps(sorted(autonn.ops.REGISTRY)))"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    return [REGISTRY[name] for name in json.loads(names)]


def test_every_builtin_op_has_a_shape_rule_and_a_receptive_field_rule(builtin_ops):
    assert len(builtin_ops) > 60
    assert [op.name for op in builtin_ops if op.shape_rule is None] == []
    assert [op.name for op in builtin_ops if op.receptive_field is None] == []


def test_a_receptive_field_rule_must_be_a_marker_or_a_function():
    with pytest.raises(ValueError, match="'elementwize'"):
        Op("misspelt_rule_for_test", np.negative, receptive_field="elementwize")


# ----------------------------------------------------------------------------- shape rules
# The blocks' ops are checked on the graphs of the block harness's cases (tests/nn/block_cases.py,
# test_blocks.py); the examples here cover the math and the ops no block case builds.
def examples():
    """Graphs on Inputs that exercise every built-in op no block case builds, by family, with
    the Inputs' values."""
    x = an.Input("x")            # (2, 3, 6, 5) feature maps
    b = an.Input("b")            # (3, 1, 5): broadcasts against x
    m = an.Input("m")            # (4, 5) matrix
    v = an.Input("v")            # (5,) vector
    t = an.Input("t")            # (3, 1, 2, 5) batch of matrices
    q = an.Input("q")            # (4, 5, 3): broadcasts against t's batch
    values = {x: RNG.uniform(0.1, 0.9, (2, 3, 6, 5)), b: RNG.uniform(0.1, 0.9, (3, 1, 5)),
              m: RNG.standard_normal((4, 5)), v: RNG.standard_normal(5),
              t: RNG.standard_normal((3, 1, 2, 5)), q: RNG.standard_normal((4, 5, 3))}
    unary = [np.absolute, np.arctan, np.ceil, np.cos, np.cosh, np.exp, np.expm1, np.floor,
             np.log, np.log1p, np.negative, np.positive, np.reciprocal, np.rint, np.sign, np.sin,
             np.sinh, np.sqrt, np.square, np.tan, np.tanh]
    binary = [np.add, np.subtract, np.multiply, np.true_divide, np.power, np.maximum,
              np.minimum, np.greater, np.greater_equal, np.less, np.less_equal, np.equal,
              np.not_equal]
    graphs = [f(x) for f in unary]
    graphs += [f(x, b) for f in binary] + [f(2.0, x) for f in binary] + [f(b, x) for f in binary]
    graphs += [x @ m.T, m @ v, v @ m.T, t @ m.T @ m, t @ q, np.matmul(v, v)]
    # dot pairs every leading axis of a with every leading axis of b (not matmul's broadcast)
    graphs += [np.dot(t, q), np.dot(m, v), np.dot(v, v), np.dot(2.0, x)]
    for reduce in (np.sum, np.mean, np.max, np.min):
        graphs += [reduce(x), reduce(x, axis=1), reduce(x, axis=(0, -1), keepdims=True)]
    graphs += [np.argmax(x), np.argmin(x, axis=2)]
    graphs += [x.reshape((6, -1)), x.reshape((-1,)), np.transpose(x), np.transpose(x, (0, 2, 3, 1)),
               np.squeeze(b), np.squeeze(b, axis=1), np.expand_dims(x, 0),
               np.expand_dims(v, (0, 2))]
    graphs += [np.concatenate([x, x * 2], axis=1), np.stack([b, b, b], axis=-1),
               np.where(x > 0.5, x, b), np.clip(x, 0.2, 0.6), np.clip(x, 0.2, None)]
    graphs += [x[0], x[:, 1:], x[..., None, 2], x[:, [0, 2, 2]], x[values[x] > 0.5],
               x[0, :, [1, 3], 1:4]]
    graphs += [math_ops.weighted_sum(x, b, weights=(1.0, -2.0))]
    i = an.Input("i")            # a loop's t: a whole float
    values[i] = np.float64(2.0)
    graphs += [np.take(x, 2, axis=3), np.take(x, np.array([0, 2, 2]), axis=1),
               np.take(m, np.array([[1, 3]])), x[:, i], m[i]]
    # more of NumPy (tests/test_numpy_functions.py checks their values and derivatives)
    s = an.Input("s")            # (2, 3, 3) invertible matrices
    values[s] = RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)
    graphs += [f(x) for f in (np.fabs, np.exp2, np.log2, np.log10, np.cbrt, np.arcsin,
                              np.arccos, np.arcsinh, np.arctanh, np.deg2rad, np.rad2deg,
                              np.trunc, np.logical_not, np.isnan, np.isinf, np.isfinite)]
    graphs += [np.arccosh(x + 1)]
    graphs += [f(x, b) for f in (np.arctan2, np.hypot, np.logaddexp, np.logaddexp2, np.mod,
                                 np.fmod, np.fmax, np.fmin, np.float_power, np.floor_divide,
                                 np.heaviside, np.logical_and, np.logical_or, np.logical_xor)]
    graphs += [np.round(x, 1), np.prod(x, axis=1), np.var(x, axis=(0, 2)), np.std(x, ddof=1),
               np.all(x, axis=0), np.any(x), np.cumsum(x), np.cumsum(x, axis=2),
               np.linalg.norm(x), np.linalg.norm(x, 3, axis=1, keepdims=True), np.flip(x, 1),
               np.roll(x, 2, axis=3), np.swapaxes(x, 1, 3), np.moveaxis(x, 0, -1),
               np.broadcast_to(b, (2, 3, 4, 5)), np.pad(x, ((0, 0), (1, 2), (0, 1), (3, 0))),
               np.tile(b, (2, 1, 1, 3)), np.repeat(x, 2, axis=1), np.repeat(x, [1, 0, 2], 1),
               np.sort(x, axis=2), np.argsort(x), np.diagonal(x, 1, 2, 3), np.tril(m),
               np.triu(m, 1), x.astype(np.float32), np.zeros_like(x), np.ones_like(x),
               np.linalg.inv(s), np.linalg.det(s), np.linalg.solve(s, s[0]),
               np.linalg.solve(s, v[:3]), np.tensordot(t, q, axes=([3], [1])),
               np.einsum("ij,kj->ik", m, m), np.einsum("ii->i", s[0])]
    graphs += list(np.split(x, 3, axis=1)) + list(np.array_split(x, [2, 5], axis=2))
    # ops of the blocks that nn's functions build only eagerly or that no case can pin down:
    # bnorm in a graph is bnorm_train; a graph's dropout draws a random mask (dropout_mask);
    # crop_like is DagNN's
    graphs += [bnorm_op(x, np.ones(3), np.zeros(3), epsilon=1e-4),
               bnorm_given_moments_op(x, np.ones(3), np.zeros(3), np.ones((3, 2))),
               nn.dropout(x, rate=0.3), dagnn.crop_like_op(x, nn.crop(x, 1), offset=(1, 0))]
    return graphs, values


def test_each_shape_rule_of_the_examples_gives_the_shape_of_its_forward():
    harness.check_shape_rules(*examples())


def test_every_builtin_op_is_checked_by_an_example_or_a_block_case(builtin_ops):
    graphs, _ = examples()
    checked = {op.name for op in harness.graph_ops(graphs)}
    checked |= harness.ops_checked_in_graph(block_cases.CASES)
    assert sorted({op.name for op in builtin_ops} - checked) == []


def test_shape_rules_name_the_op_when_the_shapes_do_not_fit():
    a, b = an.Input("a"), an.Input("b")
    with pytest.raises(ValueError, match="matmul"):
        variable_shapes([a @ b], {a: (2, 3), b: (4, 5)})
    with pytest.raises(ValueError, match="reshape"):
        variable_shapes([a.reshape((4, -1))], {a: (2, 3)})
    with pytest.raises(ValueError, match="concatenate"):
        variable_shapes([np.concatenate([a, b], axis=1)], {a: (2, 3), b: (3, 3)})


def test_custom_ops_need_no_shape_rule_and_have_no_receptive_field():
    @an.op
    def halve_width(x):
        return x[..., ::2] * 1.0

    x = an.Input("x")
    y = halve_width(nn.relu(x))
    y.name = "y"
    net = an.Net(nn.relu(y))
    assert variable_shapes([y], {x: (1, 2, 4, 6)})[y] == (1, 2, 4, 3)
    assert net.receptive_fields("x")["y"] is None
    assert "1×2×4×3" in str(net.summary(input_sizes={"x": (1, 2, 4, 6)}))


# ----------------------------------------------------------------------------- MatConvNet types
def test_matconvnet_types_name_simplenn_types_and_dagnn_blocks(builtin_ops):
    declared = [t for op in builtin_ops for t in op.matconvnet_types]
    assert len(declared) == len(set(declared)), "a MatConvNet type declared by two ops"
    simplenn_types = {t for t in declared if not t.startswith("dagnn.")}
    dagnn_types = {t[len("dagnn."):] for t in declared if t.startswith("dagnn.")}
    assert simplenn_types | {"custom"} == set(simplenn.LAYER_TYPES) == set(simplenn.DEFAULTS)
    # every block is some op's, but for the two made of NumPy math
    assert set(dagnn.BLOCKS) - dagnn_types == {"Sum", "Scale"}
    assert dagnn_types <= set(dagnn.BLOCKS)


def test_simplenn_types_convert_to_the_block_their_op_declares():
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    layers = [{"type": "conv", "weights": [w, np.zeros(2, np.float32)], "pad": 1},
              {"type": "bnorm", "weights": [np.ones(2, np.float32), np.zeros(2, np.float32),
                                            np.ones((2, 2), np.float32)]},
              {"type": "lrn"}, {"type": "normalize"}, {"type": "spnorm"},
              {"type": "pool", "pool": 2, "stride": 2}, {"type": "relu", "leak": 0.2},
              {"type": "dropout"}, {"type": "sigmoid"}, {"type": "softmax"},
              {"type": "convt", "weights": [RNG.standard_normal((2, 2, 2, 2))]},
              {"type": "softmaxloss"}]
    dag = dagnn.DagNN.from_simplenn(layers)
    for layer, entry in zip(layers, dag.layers):
        op = simplenn.layer_type_op(layer["type"])
        assert f"dagnn.{type(entry.block).__name__}" in op.matconvnet_types
    assert dag.layers[6].block.leak == 0.2 and dag.layers[5].block.pool_size == 2
    assert dag.layers[10].block.has_bias is False and dag.layers[0].block.size == (3, 3, 3, 2)
    assert simplenn.layer_type_op("custom") is None
