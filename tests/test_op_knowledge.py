"""What every op declares about itself (autonn.ops.Op): a shape rule that agrees with its
forward, a receptive-field rule, and the MatConvNet types it implements, which the wrappers
follow. Custom ops declare none of these and still work."""

import json
import subprocess
import sys

import numpy as np
import pytest

import autonn as an
from autonn import dagnn, math_ops, nn, simplenn
from autonn.nn.normalization import bnorm_given_moments_op, bnorm_op
from autonn.ops import REGISTRY, Op
from autonn.shapes import shape_argument, variable_shapes

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
def examples():
    """Graphs on Inputs that exercise every built-in op, by family, with the Inputs' values."""
    x = an.Input("x")            # (2, 3, 6, 5) feature maps
    b = an.Input("b")            # (3, 1, 5): broadcasts against x
    m = an.Input("m")            # (4, 5) matrix
    v = an.Input("v")            # (5,) vector
    t = an.Input("t")            # (3, 1, 2, 5) batch of matrices
    q = an.Input("q")            # (4, 5, 3): broadcasts against t's batch
    labels = an.Input("labels")  # (2,)
    rois = an.Input("rois")      # (2, 5)
    theta = an.Input("theta")    # (2, 2, 3)
    values = {x: RNG.uniform(0.1, 0.9, (2, 3, 6, 5)), b: RNG.uniform(0.1, 0.9, (3, 1, 5)),
              m: RNG.standard_normal((4, 5)), v: RNG.standard_normal(5),
              t: RNG.standard_normal((3, 1, 2, 5)), q: RNG.standard_normal((4, 5, 3)),
              labels: np.array([0, 2]),
              rois: np.array([[0, 0, 0, 3, 4], [1, 1, 1, 4, 5]], np.float64),
              theta: RNG.standard_normal((2, 2, 3)) * 0.3}
    unary = [np.absolute, np.arctan, np.ceil, np.cos, np.cosh, np.exp, np.expm1, np.floor,
             np.log, np.log1p, np.negative, np.positive, np.reciprocal, np.rint, np.sign, np.sin,
             np.sinh, np.sqrt, np.square, np.tan, np.tanh]
    binary = [np.add, np.subtract, np.multiply, np.true_divide, np.power, np.maximum,
              np.minimum, np.greater, np.greater_equal, np.less, np.less_equal, np.equal,
              np.not_equal]
    graphs = [f(x) for f in unary]
    graphs += [f(x, b) for f in binary] + [f(2.0, x) for f in binary] + [f(b, x) for f in binary]
    graphs += [x @ m.T, m @ v, v @ m.T, t @ m.T @ m, t @ q, np.matmul(v, v)]
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
    # the blocks
    w = RNG.standard_normal((4, 3, 3, 2))
    graphs += [nn.conv(x, w, np.zeros(4), stride=(2, 1), pad=(1, 0, 2, 1), dilate=(1, 2)),
               nn.conv(x, RNG.standard_normal((6, 1, 2, 2)), None, stride=2),
               nn.convt(x, RNG.standard_normal((3, 2, 3, 3)), np.zeros(2), upsample=2, crop=1),
               nn.convt(x, RNG.standard_normal((3, 2, 2, 2)), None, num_groups=3),
               nn.pool(x, (3, 2), stride=2, pad=1), nn.pool(x, 2, method="avg"),
               nn.relu(x, leak=0.1), nn.sigmoid(x), nn.softmax(x),
               nn.normalize(x, (3, 1.0, 0.1, 0.75)), nn.spnorm(x, (3, 2, 0.5, 1.0)),
               nn.normalizelp(x), nn.normalizelp(x, spatial=True), nn.noffset(x, (0.1, 0.5)),
               nn.bnorm(x, an.Param(np.ones(3)), an.Param(np.zeros(3))),
               bnorm_op(x, np.ones(3), np.zeros(3), epsilon=1e-4),
               bnorm_given_moments_op(x, np.ones(3), np.zeros(3), np.ones((3, 2))),
               nn.dropout(x, rate=0.3), nn.loss(x, labels), nn.softmaxloss(x, labels),
               nn.pdist(x, np.zeros((1, 3, 1, 1)), 2), nn.pdist(x, x * 0.5, 1, aggregate=True),
               nn.concat([x, x], axis=0), nn.crop(x, (1, 0, 2, 1)),
               nn.roipool(x, rois, subdivisions=(2, 3)),
               nn.bilinearsampler(x, nn.affinegrid(theta, (4, 3))),
               dagnn.crop_like_op(x, nn.crop(x, 1), offset=(1, 0))]
    return graphs, values


def evaluate(outputs, values):
    """Each node's value from its op's forward, as the reference executor computes them."""
    results = dict(values)
    for layer in an.layer.topological_order(outputs):
        if layer in results:
            continue
        if isinstance(layer, an.Param):
            results[layer] = layer.value
        elif isinstance(layer, an.Selector):
            results[layer] = results[layer.inputs[0]][layer.index]
        else:
            args = [results[x] if isinstance(x, an.Layer) else x for x in layer.inputs]
            results[layer] = layer.op.forward(*args, **layer.options)
    return results


def test_each_builtin_shape_rule_gives_the_shape_of_its_forward(builtin_ops):
    graphs, values = examples()
    results = evaluate(graphs, values)
    checked = set()
    for layer, value in results.items():
        if type(layer) is not an.Layer:
            continue
        arguments = [tuple(np.shape(results[x])) if isinstance(x, an.Layer)
                     else shape_argument(x) for x in layer.inputs]
        shape = layer.op.output_shape(*arguments, **layer.options)
        expected = (tuple(np.shape(y) for y in value) if layer.op.num_outputs > 1
                    else np.shape(value))
        assert tuple(shape) == expected, (layer.op.name, arguments, layer.options)
        checked.add(layer.op.name)
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
