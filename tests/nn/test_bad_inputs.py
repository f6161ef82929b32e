"""Bad input reaches every block as a named error or a right answer, never a raw exception, a
crash or a silently wrong result (SPEC section 0).

One table per class of finding of a campaign that called every block of ``autonn.nn`` with
bad dtypes, ranks, shapes, option values, NaN and huge geometry, one argument at a time:

- options read too generously: a string or a bool taken as a number (float('0.5'),
  float(True)), a string taken as a switch (bool('no') is True);
- a dzdy that is not an array (a list) failing inside the backward, or refused under an
  internal op's name;
- option values that raised NumPy's or Python's own errors (roipool's transform, affinegrid's
  size);
- empty arrays: conv of an image with no channels (a ZeroDivisionError), convt of an image
  without pixels, and conv's data derivative of a padded image without pixels (the direct
  kernel divided by zero: SIGFPE killed the process);
- huge strides and dilations that the direct kernel's padded buffer cannot hold (tens of GiB);
- values: NaN and infinity spread by LRN's sliding window sums beyond their window (and a
  large value cancelled the rest of its window), 'log' loss clamping a NaN probability to
  1e-8, bnorm folding its offset (digits lost for a large mean, NaN for an infinite gain).
"""

import math

import block_references as ref
import numpy as np
import pytest

from autonn import nn
from autonn.nn import convolution_schedules as schedules
from autonn.nn.convolution import force_schedule

F32 = np.float32
RNG = np.random.default_rng(0)


def normal(*shape, dtype=F32):
    return RNG.standard_normal(shape).astype(dtype)


X = normal(2, 3, 4, 4)
LABELS = np.array([0, 2])


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("call, op, argument", [
    (lambda v: nn.relu(X, leak=v), "relu", "leak"),
    (lambda v: nn.bnorm(X, epsilon=v), "bnorm", "epsilon"),
    (lambda v: nn.normalizelp(X, p=v), "normalizelp", "p"),
    (lambda v: nn.normalizelp(X, epsilon=v), "normalizelp", "epsilon"),
    (lambda v: nn.pdist(X, X[:1], v), "pdist", "p"),
    (lambda v: nn.pdist(X, X[:1], 2, epsilon=v), "pdist", "epsilon"),
    (lambda v: nn.loss(X, LABELS, threshold=v), "loss", "threshold"),
    (lambda v: nn.dropout(X, rate=v), "dropout", "rate"),
    (lambda v: nn.normalize(X, (5, v, 1e-4, 0.75)), "normalize", "param"),
    (lambda v: nn.spnorm(X, (v, 3, 1e-4, 0.75)), "spnorm", "param"),
])
@pytest.mark.parametrize("value", [True, "0.5", b"1"])
def test_a_bool_or_a_string_is_not_a_number(call, op, argument, value):
    with pytest.raises(TypeError, match=rf"^{op}: {argument} must be .*number"):
        call(value)


@pytest.mark.parametrize("call, op, argument", [
    (lambda v: nn.loss(X, LABELS, normalise=v), "loss", "normalise"),
    (lambda v: nn.normalizelp(X, spatial=v), "normalizelp", "spatial"),
    (lambda v: nn.pdist(X, X[:1], 2, no_root=v), "pdist", "no_root"),
    (lambda v: nn.pdist(X, X[:1], 2, aggregate=v), "pdist", "aggregate"),
    (lambda v: nn.bnorm(X, return_moments=v), "bnorm", "return_moments"),
    (lambda v: nn.dropout(X, return_mask=v), "dropout", "return_mask"),
])
@pytest.mark.parametrize("value", ["no", None, 2, 0.5])
def test_a_switch_is_true_or_false(call, op, argument, value):
    with pytest.raises(TypeError, match=rf"^{op}: {argument} must be True or False"):
        call(value)


def test_switches_take_bools_and_matlabs_zero_and_one():
    for value in (True, np.True_, 1):
        assert nn.loss(X, LABELS, normalise=value) == nn.loss(X, LABELS)
    for value in (False, np.False_, 0):
        assert nn.normalizelp(X, spatial=value).shape == X.shape


@pytest.mark.parametrize("transform", ["a", "1.5", True, 1 + 2j, [[1, 0, "a"], [0, 1, 0]]])
def test_roipool_transform_of_the_wrong_type_is_named(transform):
    rois = np.array([[0, 1, 1, 3, 3]], F32)
    with pytest.raises(TypeError, match=r"^roipool: transform must be a number or a 2 x 3"):
        nn.roipool(X, rois, transform=transform)


@pytest.mark.parametrize("size", [1.5, 2.0, None, np.float32(2), math.nan, np.array(2), True,
                                  (2, True), "34"])
def test_affinegrid_size_of_the_wrong_type_is_named(size):
    theta = np.array([[[1, 0, 0], [0, 1, 0]]], F32)
    with pytest.raises(TypeError, match=r"^affinegrid: size must be whole numbers"):
        nn.affinegrid(theta, size)


# ----------------------------------------------------------------------------- dzdy
@pytest.mark.parametrize("call", [
    lambda d: nn.noffset(X, (0.5, 0.5), dzdy=d),
    lambda d: nn.crop(X, 1, dzdy=d),
    lambda d: nn.concat([X, X], dzdy=d),
    lambda d: nn.normalizelp(X, dzdy=d),
    lambda d: nn.dropout(X, mask=np.ones_like(X), dzdy=d),
    lambda d: nn.relu(X, dzdy=d),
], ids=["noffset", "crop", "concat", "normalizelp", "dropout", "relu"])
def test_a_dzdy_that_is_not_an_array_is_named(call):
    with pytest.raises(TypeError, match=r"^\w+: dzdy must be a NumPy or CuPy array"):
        call(np.ones((2, 3, 2, 2)).tolist())


@pytest.mark.parametrize("dzdy", ["abc", b"1", 1 + 2j, True])
def test_a_scalar_dzdy_must_be_a_real_number(dzdy):
    with pytest.raises(TypeError, match=r"^loss: dzdy must be a real number"):
        nn.loss(X, LABELS, dzdy=dzdy)


def test_a_scalar_dzdy_may_be_a_zero_d_array_of_either_float_dtype():
    d32 = nn.loss(X, LABELS, dzdy=np.float32(2.0))[0]
    for dzdy in (np.asarray(2.0), np.asarray(2.0, F32), 2, 2.0):
        np.testing.assert_array_equal(nn.loss(X, LABELS, dzdy=dzdy)[0], d32)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_])
def test_bnorm_with_moments_names_itself_for_a_dzdy_of_the_wrong_dtype(dtype):
    moments = np.stack([np.zeros(3), np.ones(3)], axis=1).astype(F32)
    with pytest.raises(TypeError, match=r"^bnorm: dzdy must .*(float32|dtype)"):
        nn.bnorm(X, moments=moments, dzdy=np.ones(X.shape, dtype))


# ----------------------------------------------------------------------------- empty arrays
def test_conv_of_an_image_without_channels_is_named():
    with pytest.raises(ValueError, match=r"^conv: the channels of x \(C=0"):
        nn.conv(np.ones((2, 0, 5, 5), F32), np.ones((3, 2, 3, 3), F32))


@pytest.mark.parametrize("shape", [(2, 4, 0, 5), (2, 4, 5, 0)])
def test_convt_of_an_image_without_pixels_is_named(shape):
    with pytest.raises(ValueError, match=r"^convt: x must have at least one pixel"):
        nn.convt(np.ones(shape, F32), np.ones((4, 3, 3, 3), F32))


@pytest.mark.parametrize("schedule", ["direct", "units", "chunk products", None])
@pytest.mark.parametrize("data_derivative", ["direct", "col2im"])
@pytest.mark.parametrize("shape", [(2, 4, 0, 6), (2, 4, 6, 0), (0, 4, 6, 6)])
def test_conv_of_padding_only_is_the_bias_and_its_derivatives_zeros(schedule, data_derivative,
                                                                    shape):
    # the data derivative of a padded image without pixels reached the direct kernel with an
    # empty output, which divided by it (SIGFPE)
    x, w, b = np.ones(shape, F32), normal(6, 4, 3, 3), normal(6)
    with force_schedule(schedule, data_derivative=data_derivative):
        y = nn.conv(x, w, b, pad=2)
        dx, dw, db = nn.conv(x, w, b, pad=2, dzdy=np.ones_like(y))
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 6, 1, 1), y.shape))
    assert dx.shape == x.shape and dw.shape == w.shape
    assert not dw.any()
    np.testing.assert_allclose(db, np.full(6, y[:, 0].size, F32))


# ----------------------------------------------------------------------------- huge geometry
# pad and dilate of 2**30 along the width: of the three taps of each row only the middle one
# reads the image, so the result is the convolution with the middle column of the filters;
# the direct kernel's padded buffer for it would take 24 GiB per thread.
HUGE = {"pad": (0, 0, 2**30, 2**30), "dilate": (1, 2**30)}


def test_direct_schedule_refuses_a_buffer_beyond_its_bound():
    x, w = normal(1, 2, 8, 8), normal(3, 2, 3, 3)
    with force_schedule("direct"), pytest.raises(ValueError, match=(
            r"^conv: the forced schedule 'direct' cannot compute .*dilate \(1, 1073741824\).*"
            r"padded copy of the input would take \d+ bytes per thread")):
        nn.conv(x, w, **HUGE)
    with force_schedule(data_derivative="direct"), pytest.raises(ValueError, match=(
            r"^conv: the forced data derivative 'direct' .*padded copy")):
        nn.conv(x, w, dzdy=np.ones((1, 3, 6, 8), F32), **HUGE)


def test_huge_dilation_falls_back_from_the_direct_schedule_and_computes():
    x, w, b = normal(1, 2, 8, 8), normal(3, 2, 3, 3), normal(3)
    g = nn.convolution.conv_geometry("conv", x, w, b, 1, HUGE["pad"], HUGE["dilate"])
    assert schedules.direct_buffer_bytes(g, F32) > schedules.DIRECT_BUFFER_BYTES
    assert not schedules.choose_schedule(g, F32).name.startswith("direct")
    middle = np.ascontiguousarray(w[:, :, :, 1:2])
    y = nn.conv(x, w, b, **HUGE)
    np.testing.assert_allclose(y, nn.conv(x, middle, b), rtol=1e-5, atol=1e-5)
    dy = normal(*y.shape)
    dx, dw, _ = nn.conv(x, w, b, dzdy=dy, **HUGE)
    dx_middle, dw_middle, _ = nn.conv(x, middle, b, dzdy=dy)
    np.testing.assert_allclose(dx, dx_middle, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw[:, :, :, 1:2], dw_middle, rtol=1e-5, atol=1e-5)
    assert not dw[:, :, :, [0, 2]].any()


def test_ordinary_layers_stay_far_inside_the_direct_buffer_bound():
    for x_shape, w_shape in [((8, 64, 56, 56), (64, 64, 3, 3)), ((1, 3, 224, 224), (64, 3, 7, 7)),
                             ((1, 512, 28, 28), (512, 512, 3, 3))]:
        g = nn.convolution.conv_geometry("conv", nn.convolution._Shaped(x_shape),
                                         nn.convolution._Shaped(w_shape), None, 1, 1, 1)
        assert schedules.direct_buffer_bytes(g, np.float64) < schedules.DIRECT_BUFFER_BYTES / 64


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_normalize_keeps_a_non_finite_value_inside_its_window(bad):
    # depth 3: channel 0 is in the windows of channels 0 and 1 only
    x = np.abs(normal(1, 8, 2, 2)) + 0.5
    x[0, 0, 0, 0] = bad
    param = (3, 1.0, 0.5, 0.75)
    y = nn.normalize(x, param)
    assert not np.isfinite(y[0, :2, 0, 0]).all()
    np.testing.assert_allclose(y[0, 2:, 0, 0], ref.lrn_reference(x, *param)[0, 2:, 0, 0],
                               rtol=1e-5)
    # dx of channels 3.. reads no window holding channel 0
    dy = normal(*x.shape)
    clean = x.copy()
    clean[0, 0, 0, 0] = 0.7
    np.testing.assert_allclose(nn.normalize(x, param, dzdy=dy)[0, 3:, 0, 0],
                               nn.normalize(clean, param, dzdy=dy)[0, 3:, 0, 0], rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_window_sums_survive_a_large_value_leaving(dtype):
    x = np.ones((1, 8, 1, 1), dtype)
    x[0, 0] = 1e18
    for param in ((3, 0.0, 1.0, 0.5), (3, 1.0, 1.0, 0.75), (5, 2.0, 1e-2, 1.0)):
        np.testing.assert_allclose(nn.normalize(x, param), ref.lrn_reference(x, *param),
                                   rtol=1e-5)
        dy = np.ones_like(x)
        dx = nn.normalize(x, param, dzdy=dy)
        assert np.isfinite(dx).all()
        np.testing.assert_allclose(dx[0, 4:], _lrn_derivative(x, dy, *param)[0, 4:], rtol=1e-4,
                                   atol=1e-6)


def _lrn_derivative(x, dy, depth, kappa, alpha, beta):
    """dx of <dy, lrn(x)> by central differences in float64 (channels far from the large one)."""
    x = x.astype(np.float64)
    dx = np.zeros_like(x)
    for k in range(4, x.shape[1]):
        step = np.zeros_like(x)
        step[0, k] = 1e-6
        dx[0, k] = ((ref.lrn_reference(x + step, depth, kappa, alpha, beta)
                     - ref.lrn_reference(x - step, depth, kappa, alpha, beta)) * dy).sum() / 2e-6
    return dx


def test_log_loss_of_a_nan_probability_is_nan():
    p = np.full((2, 3), 0.5, F32)
    p[0, 1] = np.nan
    c = np.array([1, 2])
    assert np.isnan(nn.loss(p, c, loss="log"))
    dx = nn.loss(p, c, loss="log", dzdy=1.0)[0]
    assert np.isnan(dx[0, 1]) and np.isfinite(np.delete(dx.ravel(), 1)).all()
    p[0, 1] = 0.0                     # a probability of 0 is still clamped to 1e-8
    assert nn.loss(p, c, loss="log") == pytest.approx((-math.log(1e-8) - math.log(0.5)) / 2)


def test_bnorm_keeps_its_digits_for_a_large_mean():
    # x scale + (b - mu scale) lost 0.06 of each output to the cancellation of two 1e6
    # (the moments themselves are float32, so they are given here, as they are stored)
    x = (1e4 + 0.01 * RNG.standard_normal((8, 2, 4, 4))).astype(F32)
    moments = ref.bnorm_moments_reference(x).astype(F32)
    np.testing.assert_allclose(nn.bnorm(x, moments=moments),
                               ref.bnorm_reference(x, moments=moments), atol=1e-3)


def test_bnorm_with_an_infinite_gain_is_infinite_not_nan():
    g = np.array([np.inf, 1.0, -np.inf], F32)
    y = nn.bnorm(X, g, np.zeros(3, F32))
    want = ref.bnorm_reference(X, g.astype(np.float64), np.zeros(3))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    np.testing.assert_array_equal(np.sign(y), np.sign(want))
