"""Receptive fields (manual ch. 5) against brute force: perturb one input pixel at a time and see
which output pixels change."""

import numpy as np
import pytest

import autonn as an
from autonn import dagnn, nn, simplenn
from autonn.receptive_fields import ReceptiveField, compose, overlay, transposed_field

RNG = np.random.default_rng(0)


def positive_filters(k, c, kh, kw):
    # Positive weights: no two paths can cancel, so "depends on" shows up as "changes".
    return RNG.uniform(0.5, 1.5, (k, c, kh, kw))


def dependence(net, shape, output):
    """For every output pixel, the (rows, cols) of the input pixels whose perturbation changes
    it. One forward pass over a batch holding one perturbed image per input pixel."""
    _, c, h, w = shape
    base = RNG.uniform(-1, 1, (1, c, h, w))
    batch = np.repeat(base, h * w + 1, axis=0)
    for k in range(h * w):
        batch[k + 1, :, k // w, k % w] += 1.0
    net.eval({"x": batch}, mode="forward")
    y = net.value(output)
    changed = np.abs(y[1:] - y[:1]).max(axis=1) > 1e-9      # (h*w, Ho, Wo)
    return changed.reshape(h, w, *changed.shape[1:])


def check_exact(field, changed):
    """Every output pixel depends only on input pixels inside its window; where the window lies
    wholly inside the image (no padding involved) it depends on all of them."""
    h, w, ho, wo = changed.shape
    interior = 0
    for oy in range(ho):
        for ox in range(wo):
            rows, cols = np.nonzero(changed[:, :, oy, ox])
            first_r, last_r = field.window(oy, 0)
            first_c, last_c = field.window(ox, 1)
            assert rows.min() >= first_r and rows.max() <= last_r, (oy, ox)
            assert cols.min() >= first_c and cols.max() <= last_c, (oy, ox)
            if first_r >= 0 and last_r <= h - 1 and first_c >= 0 and last_c <= w - 1:
                interior += 1
                assert set(rows) == set(range(int(first_r), int(last_r) + 1)), (oy, ox)
                assert set(cols) == set(range(int(first_c), int(last_c) + 1)), (oy, ox)
    assert interior > 0  # the test saw at least one window with no padding


def test_conv_pool_dilated_chain_matches_brute_force():
    x = an.Input("x")
    y = nn.conv(x, positive_filters(3, 2, 3, 3), None, pad=1)
    y = nn.pool(y, 2, method="avg", stride=2)
    y = nn.sigmoid(y)
    z = nn.conv(y, positive_filters(2, 3, 3, 2), None, stride=2, dilate=2, pad=(1, 0, 2, 1))
    z.name = "z"
    net = an.Net(z)
    fields = net.receptive_fields("x")
    # conv 3/pad 1 -> size 3, offset 0; pool 2/2 -> size 4, stride 2, offset 0.5;
    # dilated 5x3-extent conv, stride 2, pads (1, 2): composed by hand.
    assert fields["z"] == ReceptiveField((12, 8), (4, 4), (2.5, -1.5))
    check_exact(fields["z"], dependence(net, (1, 2, 17, 16), "z"))


def test_overlay_of_two_branches_matches_brute_force():
    x = an.Input("x")
    a = nn.conv(x, positive_filters(2, 1, 3, 3), None, stride=2)
    b = nn.conv(x, positive_filters(2, 1, 5, 5), None, stride=2, pad=1)
    s = a + b
    s.name = "s"
    net = an.Net(s)
    fields = net.receptive_fields()
    # a: size 3 offset 1; b: size 5 offset 1 -> union [-1, 3]: size 5, offset 1.
    assert fields["s"] == ReceptiveField((5, 5), (2, 2), (1, 1))
    check_exact(fields["s"], dependence(net, (1, 1, 11, 11), "s"))


def test_different_strides_cannot_be_overlaid():
    assert overlay([ReceptiveField((3, 3), (2, 2), (1, 1)),
                    ReceptiveField((4, 4), (3, 3), (1, 1))]) is None
    x = an.Input("x")
    a = nn.conv(x, positive_filters(1, 1, 3, 3), None, stride=2)        # 5 -> 2
    b = nn.pool(x, 3, stride=3)                                          # 5 -> 2
    s = a + b
    s.name = "s"
    assert an.Net(s).receptive_fields("x")["s"] is None


def test_convt_field_contains_the_true_dependence():
    x = an.Input("x")
    y = nn.convt(x, RNG.uniform(0.5, 1.5, (1, 2, 4, 4)), None, upsample=2, crop=1)
    y.name = "y"
    net = an.Net(y)
    field = net.receptive_fields("x")["y"]
    assert field == transposed_field((4, 4), (2, 2), (1, 1))
    assert field.stride == (0.5, 0.5)
    changed = dependence(net, (1, 1, 6, 6), "y")
    for oy in range(changed.shape[2]):
        rows = np.nonzero(changed[:, :, oy, 5])[0]
        first, last = field.window(oy, 0)
        assert rows.min() >= np.floor(first) and rows.max() <= np.ceil(last)
        # and the window is tight up to the rounding the manual mentions
        assert last - first + 1 <= len(rows) + 1


def test_conv_then_convt_composes_to_stride_one():
    down = ReceptiveField((4, 4), (2, 2), (0.5, 0.5))
    up = transposed_field((4, 4), (2, 2), (1, 1))
    both = compose(down, up)
    assert both.stride == (1, 1)
    assert both.size == (2 * (up.size[0] - 1) + 4,) * 2


def test_reshape_has_no_sliding_window():
    x = an.Input("x")
    y = nn.relu(x).reshape((1, -1))
    y.name = "y"
    r = nn.relu(x)
    r.name = "r"
    net = an.Net(y, r)
    fields = net.receptive_fields("x")
    assert fields["y"] is None
    assert fields["r"] == ReceptiveField((1, 1), (1, 1), (0, 0))


def test_expm1_and_log1p_are_element_wise():
    x = an.Input("x")
    y = nn.conv(x, positive_filters(1, 1, 3, 3), None, stride=2)
    outputs = {"expm1": np.expm1(y), "log1p": np.log1p(y), "spatial_concat":
               np.concatenate([y, y], axis=3), "aggregate": nn.pdist(y, y * 2, 2, aggregate=True)}
    for name, layer in outputs.items():
        layer.name = name
    fields = an.Net(*outputs.values()).receptive_fields("x")
    assert fields["expm1"] == fields["log1p"] == ReceptiveField((3, 3), (2, 2), (1, 1))
    assert fields["spatial_concat"] is None and fields["aggregate"] is None


def test_wrappers_agree_with_the_net():
    w1 = RNG.standard_normal((4, 3, 5, 5)).astype(np.float32)
    w2 = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)
    layers = [{"type": "conv", "weights": [w1, np.zeros(4, np.float32)], "stride": 2, "pad": 2},
              {"type": "relu"},
              {"type": "pool", "pool": 3, "stride": 2},
              {"type": "conv", "weights": [w2, np.zeros(6, np.float32)], "pad": 1}]
    net = an.Net({"layers": layers})
    from_net = net.receptive_fields("input")
    dag = dagnn.DagNN.from_simplenn(layers)
    from_dag = dict(zip([v.name for v in dag.vars], dag.var_receptive_fields("x0")))
    rows = simplenn.display(layers, (1, 3, 32, 32), file=open("/dev/null", "w"))
    assert from_net["x4"] == from_dag["x4"] == ReceptiveField((17, 17), (4, 4), (2, 2))
    assert rows[3]["rf_size"] == "17" and rows[3]["rf_offset"] == "2"


def test_receptive_fields_need_a_known_input():
    a, b = an.Input("a"), an.Input("b")
    c = a + b
    net = an.Net(c)
    with pytest.raises(ValueError, match="2 inputs"):
        net.receptive_fields()
    with pytest.raises(KeyError, match="no variable named 'q'"):
        net.receptive_fields("q")
