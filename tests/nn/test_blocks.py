"""Every block of ``autonn.nn``, from one table (block_cases.CASES): each case is checked
forward against its loop reference (float32 and float64, every device), by gradcheck (float64),
in float32 and on every device against float64 on the CPU, inside a compiled Net (with and
without conserve_memory), by shape inference and receptive-field rules on its graph, and for
the dtypes it refuses. Adding a block, or an option set worth its own geometry, is one more
``BlockCase`` in block_cases.py; nothing here changes.
"""

import inspect

import block_harness as harness
import numpy as np
import pytest
from block_cases import CASES, moments, normal
from block_harness import DEVICES

import autonn as an
from autonn import backend, nn


def cases(*, wanted=lambda case: True):
    """The table as pytest parameters, the case names as ids."""
    return [pytest.param(case, id=case.name) for case in CASES if wanted(case)]


@pytest.fixture(autouse=True)
def expected_failures(request):
    harness.mark_expected_failures(request)


DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
# float64 on the CPU is what the others are compared with
OTHER_THAN_FLOAT64_CPU = [pytest.param("cpu", np.float32, id="cpu-float32")] + [
    pytest.param("gpu", dtype, id=f"gpu-{np.dtype(dtype).name}", marks=DEVICES[1].marks)
    for dtype in (np.float32, np.float64)]


# ----------------------------------------------------------------------------- the checks
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", cases())
def test_forward_matches_the_loop_reference(case, device, dtype):
    harness.check_forward_matches_reference(case, device, dtype)


@pytest.mark.parametrize("case", cases())
def test_derivatives_pass_gradcheck(case):
    harness.check_gradcheck(case)


@pytest.mark.parametrize("device, dtype", OTHER_THAN_FLOAT64_CPU)
@pytest.mark.parametrize("case", cases())
def test_every_device_and_dtype_agrees_with_float64_on_the_cpu(case, device, dtype):
    harness.check_agrees_with_float64_on_the_cpu(case, device, dtype)


@pytest.mark.parametrize("computed_inputs", [False, True], ids=["on-inputs", "on-computed"])
@pytest.mark.parametrize("conserve_memory", [False, True], ids=["keep", "conserve-memory"])
@pytest.mark.parametrize("case", cases())
def test_in_a_net_matches_eager_values_and_derivatives(case, conserve_memory, computed_inputs):
    harness.check_in_graph(case, conserve_memory, computed_inputs)


@pytest.mark.parametrize("case", cases())
def test_shapes_inferred_on_its_graph_are_the_forwards_and_its_ops_have_field_rules(case):
    harness.check_shape_rules_in_graph(case)


@pytest.mark.parametrize("case", cases())
def test_float16_and_integer_inputs_are_refused_naming_the_op(case):
    harness.check_refuses_float16_and_integer_inputs(case)


@pytest.mark.parametrize("case", cases(wanted=lambda case: len(case.differentiable) > 1))
def test_mixed_float32_and_float64_inputs_are_refused_naming_the_op(case):
    harness.check_refuses_mixed_float_dtypes(case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", cases())
def test_a_dzdy_of_the_other_float_dtype_is_refused_naming_the_op(case, dtype):
    harness.check_refuses_a_dzdy_of_the_other_dtype(case, dtype)


def test_the_table_covers_every_block_autonn_nn_exports():
    exported = {name for name, value in vars(nn).items()
                if not name.startswith("_") and inspect.isfunction(value)}
    covered = {name for name in exported if any(case.block is getattr(nn, name)
                                                for case in CASES)}
    assert exported - covered == set()
    assert len({case.name for case in CASES}) == len(CASES)


# ----------------------------------------------------------------------------- tie rules
# At a tie a max sends the whole derivative to exactly one input; which one is part of the
# contract (and what MatConvNet does). A flipped comparison in a kernel changes it.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order(device, dtype):
    # each 2 x 2 window holds its maximum twice: at (0, 1) and (1, 0), (0, 1) first row-major
    window = np.array([[0.0, 5.0], [5.0, 1.0]])
    x = np.tile(window, (2, 2))[None, None].astype(dtype)
    dx = nn.pool(backend.to_device(x, device), 2, stride=2,
                 dzdy=backend.to_device(np.ones((1, 1, 2, 2), dtype), device))
    np.testing.assert_array_equal(backend.to_numpy(dx)[0, 0], np.tile([[0, 1], [0, 0]], (2, 2)))
    # overlapping windows over a constant image: every window credits its top-left element
    dx = nn.pool(backend.to_device(np.zeros((1, 1, 3, 4), dtype), device), 2, stride=1,
                 dzdy=backend.to_device(np.ones((1, 1, 2, 3), dtype), device))
    np.testing.assert_array_equal(backend.to_numpy(dx)[0, 0],
                                  [[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_roipool_ties_go_to_the_first_maximum_in_column_major_order(device, dtype):
    # one bin over the 2 x 2 image, maximum at (0, 1) and (1, 0): MatConvNet's column-major
    # scan (columns outside, rows inside) meets (1, 0) first
    x = np.array([[[[0.0, 5.0], [5.0, 1.0]]]], dtype)
    rois = np.array([[0, 0, 0, 1, 1]], dtype)
    dx, _ = nn.roipool(backend.to_device(x, device), backend.to_device(rois, device),
                       dzdy=backend.to_device(np.ones((1, 1, 1, 1), dtype), device))
    np.testing.assert_array_equal(backend.to_numpy(dx)[0, 0], [[0, 0], [1, 0]])


# ----------------------------------------------------------------------------- beyond the table
def test_dropout_refuses_a_mask_of_the_other_dtype():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="dropout.*x float32.*mask float64"):
        nn.dropout(x, mask=np.ones(x.shape))


def test_a_graph_bnorm_with_given_moments_uses_them_in_test_mode_only():
    # eager bnorm uses given moments; in a graph they are the running-average Param, read in
    # test mode (which is why the in-graph check of 'bnorm-given-moments' is skipped)
    rng = np.random.default_rng(3)
    x, g, b, m = normal(rng, 2, 3, 2, 2), normal(rng, 3), normal(rng, 3), moments(rng, 3)
    y = nn.bnorm(an.Input(name="x"), an.Param(g), an.Param(b), moments=an.Param(m))
    net = an.Net(y.sum())
    net.eval({"x": x}, mode="test")
    np.testing.assert_allclose(net.value(y), nn.bnorm(x, g, b, moments=m), rtol=1e-12)
    net.eval({"x": x})
    np.testing.assert_allclose(net.value(y), nn.bnorm(x, g, b), rtol=1e-12)


def test_bnorm_backward_with_given_moments_is_the_batch_statistics_one():
    rng = np.random.default_rng(5)
    x, g, b = normal(rng, 2, 3, 2, 2), normal(rng, 3), normal(rng, 3)
    dy = normal(rng, 2, 3, 2, 2)
    _, batch = nn.bnorm(x, g, b, return_moments=True)
    expected = nn.bnorm(x, g, b, dzdy=dy)
    given = nn.bnorm(x, g, b, moments=batch, dzdy=dy, return_moments=True)
    assert len(given) == 4
    for got, want in zip(given[:3], expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(given[3], batch)


def test_bnorm_params_train_by_average_and_freeze_in_test_mode():
    rng = np.random.default_rng(7)
    images = rng.standard_normal((2, 4, 5, 5))
    x = an.Input(name="x")
    w = an.Param(rng.standard_normal((3, 4, 1, 1)))
    y = nn.bnorm(nn.conv(x, w), epsilon=1e-3)
    net = an.Net((y * y).sum() / 2)
    net.eval({"x": images})
    moments_param = next(p for p in net.params if p.train_method == "average")
    data = nn.conv(images, w.value)
    _, batch = nn.bnorm(data, epsilon=1e-3, return_moments=True)
    np.testing.assert_allclose(moments_param.der, batch, rtol=1e-5)
    gain = next(p for p in net.params if p.value.shape == (3,) and p.learning_rate == 2)
    _, dg, _ = nn.bnorm(data, np.ones(3), np.zeros(3), epsilon=1e-3,
                        dzdy=nn.bnorm(data, epsilon=1e-3))
    np.testing.assert_allclose(gain.der, dg, rtol=1e-4, atol=1e-6)
    net.set_value(moments_param, batch.astype(moments_param.value.dtype))
    net.eval({"x": images}, mode="test")
    np.testing.assert_allclose(net.value(y), nn.bnorm(data, epsilon=1e-3), rtol=1e-4,
                               atol=1e-5)


def test_bnorm_channel_inference_refuses_unknown_inputs():
    with pytest.raises(ValueError, match="bnorm: cannot infer the number of channels"):
        nn.bnorm(an.Input(name="x"))


def test_relu_chain_short_circuit_gives_the_same_derivative():
    # under conserve_memory a ReLU may overwrite its input with its output
    values = np.random.default_rng(7).standard_normal((2, 4, 5, 5))
    x = an.Input(name="x")
    y = nn.relu(nn.relu(x) * 2 - 1)
    net = an.Net(y.sum(), conserve_memory=True)
    net.eval({"x": values})
    inner = np.maximum(values, 0) * 2 - 1
    np.testing.assert_allclose(net.der("x"), (inner > 0) * 2.0 * (values > 0))
