"""LRN, bnorm, spnorm, normalizelp and noffset against direct loops over the manual's formulas
(block_references), their derivatives, graph use (bnorm's Params and test mode) and argument
checks."""

import numpy as np
import pytest
from block_references import (
    bnorm_derivatives_reference,
    bnorm_moments_reference,
    bnorm_reference,
    lrn_reference,
    noffset_reference,
    normalizelp_reference,
    spnorm_reference,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import nn

RNG = np.random.default_rng(1)


# ----------------------------------------------------------------------------- LRN
@pytest.mark.parametrize("depth", [1, 2, 5, 8])
def test_lrn_matches_the_manual_including_depth_beyond_the_channels(depth):
    x = RNG.standard_normal((2, 3, 2, 3))
    param = (depth, 2.0, 0.3, 0.75)
    np.testing.assert_allclose(nn.normalize(x, param), lrn_reference(x, *param), rtol=1e-12)
    an.gradcheck(lambda v, dzdy=None: nn.lrn(v, param, dzdy=dzdy), x)


@settings(max_examples=15, deadline=None)
@given(c=st.integers(1, 7), depth=st.integers(1, 9), beta=st.sampled_from([0.5, 0.75, 1.3]))
def test_lrn_derivative_over_channels_and_depths(c, depth, beta):
    x = np.random.default_rng(c * 10 + depth).standard_normal((1, c, 2, 2))
    an.gradcheck(lambda v, dzdy=None: nn.normalize(v, (depth, 1.0, 0.5, beta), dzdy=dzdy), x)


def test_lrn_float32_close_to_float64():
    x = RNG.standard_normal((2, 16, 4, 4))
    param = (5, 1.0, 1e-2, 0.75)
    np.testing.assert_allclose(nn.normalize(x.astype(np.float32), param),
                               nn.normalize(x, param), rtol=1e-5, atol=1e-6)
    an.gradcheck(lambda v, dzdy=None: nn.normalize(v, param, dzdy=dzdy),
                 x[:1, :6, :2, :2].astype(np.float32), dtype=np.float32)


# ----------------------------------------------------------------------------- bnorm
def test_bnorm_matches_the_manual_and_returns_moments():
    x = RNG.standard_normal((3, 4, 2, 3)) * 3 + 1
    g, b = RNG.standard_normal(4), RNG.standard_normal(4)
    y, moments = nn.bnorm(x, g, b, epsilon=1e-3, return_moments=True)
    y_ref = bnorm_reference(x, g, b, epsilon=1e-3)
    moments_ref = bnorm_moments_reference(x, epsilon=1e-3)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(moments, moments_ref, rtol=1e-12)
    np.testing.assert_allclose(nn.bnorm(x, g, b, moments=moments_ref, epsilon=1e-3), y_ref,
                               rtol=1e-10, atol=1e-12)


def test_bnorm_derivatives_with_batch_and_frozen_moments():
    x = RNG.standard_normal((2, 3, 2, 2))
    g, b = RNG.standard_normal(3), RNG.standard_normal(3)
    an.gradcheck(nn.bnorm, x, g, b)
    moments = np.stack([RNG.standard_normal(3), 1 + RNG.random(3)], axis=1)
    # frozen statistics: the moments are constants, the derivative is the forward's own
    an.gradcheck(lambda x, g, b, dzdy=None: nn.bnorm(x, g, b, moments=moments, frozen=True,
                                                     dzdy=dzdy), x, g, b)
    an.gradcheck(nn.bnorm, RNG.standard_normal((5, 3)), g, b)       # (N, C) input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (7, 4), (1, 2, 3, 1)])
def test_bnorm_backward_with_given_moments_is_matconvnets_batch_statistics_derivative(shape,
                                                                                       dtype):
    # vl_nnbnorm(x, g, b, dzdy, 'moments', m) differentiates as if m were the batch's moments
    # (mu, sigma of x), evaluated at the given m; the derivative of bnorm with fixed moments is
    # g / sigma dzdy, which this is not
    x = (RNG.standard_normal(shape) * 2 + 1).astype(dtype)
    g, b = RNG.standard_normal(shape[1]).astype(dtype), RNG.standard_normal(shape[1]).astype(dtype)
    dy = RNG.standard_normal(shape).astype(dtype)
    moments = np.stack([RNG.standard_normal(shape[1]), 1 + RNG.random(shape[1])],
                       axis=1).astype(dtype)
    dx, dg, db = nn.bnorm(x, g, b, moments=moments, dzdy=dy)
    dx_ref, dg_ref, db_ref = bnorm_derivatives_reference(x, g, dy, moments=moments)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for got, want in ((dx, dx_ref), (dg, dg_ref), (db, db_ref)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    assert not np.allclose(dx, g.reshape((1, -1) + (1,) * (len(shape) - 2))
                           / moments[:, 1].reshape((1, -1) + (1,) * (len(shape) - 2)) * dy)


def test_bnorm_backward_with_the_batch_moments_is_the_plain_backward():
    # MatConvNet's nnbnorm.m givenMoments: the moments of this batch give exactly the
    # derivatives of the plain call, and [dzdx, dzdg, dzdb, moments] returns them
    x, g, b = RNG.standard_normal((3, 4, 2, 3)), RNG.standard_normal(4), RNG.standard_normal(4)
    dy = RNG.standard_normal(x.shape)
    _, batch = nn.bnorm(x, g, b, epsilon=1e-3, return_moments=True)
    plain = nn.bnorm(x, g, b, epsilon=1e-3, dzdy=dy, return_moments=True)
    given = nn.bnorm(x, g, b, moments=batch, epsilon=1e-3, dzdy=dy, return_moments=True)
    assert len(plain) == 4 and len(given) == 4
    np.testing.assert_allclose(plain[3], batch, rtol=1e-12)
    np.testing.assert_allclose(given[3], batch, rtol=1e-12)
    for got, want in zip(given[:3], plain[:3]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(plain[:3], bnorm_derivatives_reference(x, g, dy, epsilon=1e-3)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert len(nn.bnorm(x, g, b, moments=batch, dzdy=dy)) == 3


def test_bnorm_frozen_uses_the_constant_moment_derivative():
    x, g, b = RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    moments = np.stack([RNG.standard_normal(3), 1 + RNG.random(3)], axis=1)
    dy = RNG.standard_normal(x.shape)
    dx, dg, db, m = nn.bnorm(x, g, b, moments=moments, frozen=True, dzdy=dy,
                             return_moments=True)
    scale = (g / moments[:, 1]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(dx, scale * dy, rtol=1e-12)
    xhat = (x - moments[:, 0].reshape(1, 3, 1, 1)) / moments[:, 1].reshape(1, 3, 1, 1)
    np.testing.assert_allclose(dg, (dy * xhat).sum(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_array_equal(m, moments)
    np.testing.assert_allclose(nn.bnorm(x, g, b, moments=moments, frozen=True),
                               bnorm_reference(x, g, b, moments=moments), rtol=1e-12)


def test_bnorm_frozen_needs_moments_and_is_a_flag():
    x = RNG.standard_normal((2, 3, 2, 2))
    with pytest.raises(ValueError, match="bnorm: frozen=True needs the moments"):
        nn.bnorm(x, frozen=True)
    with pytest.raises(TypeError, match="bnorm: frozen must be True or False"):
        nn.bnorm(x, moments=np.ones((3, 2)), frozen="no")
    with pytest.raises(ValueError, match="bnorm: frozen=True needs the moments"):
        nn.bnorm(an.Input(name="x"), an.Param(np.ones(3)), an.Param(np.zeros(3)), frozen=True)


def test_a_frozen_graph_bnorm_uses_its_moments_and_constant_moment_derivative_in_every_mode():
    x, g, b = RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    moments = np.stack([RNG.standard_normal(3), 1 + RNG.random(3)], axis=1)
    dy = RNG.standard_normal(x.shape)
    gain, bias = an.Param(g), an.Param(b)
    y = nn.bnorm(an.Input(name="x"), gain, bias, moments=an.Param(moments), frozen=True)
    net = an.Net((y * dy).sum())
    net.eval({"x": x})
    np.testing.assert_allclose(net.value(y), nn.bnorm(x, g, b, moments=moments), rtol=1e-12)
    for got, want in zip((net.der("x"), gain.der, bias.der),
                         nn.bnorm(x, g, b, moments=moments, frozen=True, dzdy=dy)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    net.eval({"x": x}, mode="test")
    np.testing.assert_allclose(net.value(y), nn.bnorm(x, g, b, moments=moments), rtol=1e-12)


def test_a_graph_bnorm_trains_with_the_eager_rule_for_given_moments():
    # in mode 'normal' the graph normalises with the batch's moments and differentiates with
    # the batch-statistics rule: what eager bnorm gives with those moments given
    x, g, b = RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    dy = RNG.standard_normal(x.shape)
    gain, bias = an.Param(g), an.Param(b)
    y = nn.bnorm(an.Input(name="x"), gain, bias, moments=an.Param(np.ones((3, 2))))
    net = an.Net((y * dy).sum())
    net.eval({"x": x})
    _, batch = nn.bnorm(x, g, b, return_moments=True)
    for got, want in zip((net.der("x"), gain.der, bias.der),
                         nn.bnorm(x, g, b, moments=batch, dzdy=dy)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_bnorm_without_gain_and_bias_gives_none_derivatives():
    x = RNG.standard_normal((2, 3, 2, 2))
    dx, dg, db = nn.bnorm(x, dzdy=np.ones_like(x))
    assert dg is None and db is None
    np.testing.assert_allclose(dx, 0, atol=1e-10)  # normalised output sums to a constant
    _, batch = nn.bnorm(x, return_moments=True)
    for frozen in (False, True):
        dx, dg, db, m = nn.bnorm(x, moments=batch, frozen=frozen, dzdy=np.ones_like(x),
                                 return_moments=True)
        assert dg is None and db is None and m is batch
        if not frozen:
            np.testing.assert_allclose(dx, 0, atol=1e-10)


def test_bnorm_in_a_graph_creates_params_and_freezes_moments_in_test_mode():
    x = an.Input(name="x")
    w = an.Param(RNG.standard_normal((4, 3, 1, 1)))
    y = nn.bnorm(nn.conv(x, w))
    gain, bias, moments = y.inputs[1:]
    assert gain.value.shape == (4,) and bias.value.shape == (4,)
    assert moments.value.shape == (4, 2) and moments.train_method == "average"
    net = an.Net((y * y).sum())
    data = RNG.standard_normal((5, 3, 2, 2))
    net.eval({"x": data})
    conv_out = nn.conv(data, w.value)
    batch = nn.bnorm(conv_out, return_moments=True)[1]
    np.testing.assert_allclose(net.value(y), nn.bnorm(conv_out), rtol=1e-5, atol=1e-5)
    # The moments Param 'receives' the batch moments (MatConvNet AutoNN's convention).
    np.testing.assert_allclose(net.der(moments), batch, rtol=1e-5)
    net.eval({"x": data}, mode="test")
    np.testing.assert_allclose(net.value(y), conv_out.astype(np.float32), rtol=1e-5, atol=1e-5)


def test_bnorm_refuses_bad_shapes():
    x = np.zeros((2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"bnorm: g must have shape \(3,\)"):
        nn.bnorm(x, np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"bnorm: moments must have shape \(3, 2\)"):
        nn.bnorm(x, np.ones(3), np.zeros(3), moments=np.ones((2, 3)))
    with pytest.raises(ValueError, match="bnorm: x must be"):
        nn.bnorm(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="bnorm: arguments must share one dtype"):
        nn.bnorm(x, np.ones(3, np.float32), np.zeros(3))


# ----------------------------------------------------------------------------- spnorm
@pytest.mark.parametrize("window", [(1, 1), (3, 3), (2, 5), (7, 4)])
def test_spnorm_matches_the_manual_with_clipped_borders(window):
    x = RNG.standard_normal((2, 2, 4, 5))
    param = window + (0.7, 0.6)
    np.testing.assert_allclose(nn.spnorm(x, param), spnorm_reference(x, *param), rtol=1e-12)
    an.gradcheck(lambda v, dzdy=None: nn.spnorm(v, param, dzdy=dzdy), x)


# ----------------------------------------------------------------------------- normalizelp, noffset
@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("p", [2, 4])
def test_normalizelp_matches_the_definition(spatial, p):
    x = RNG.standard_normal((2, 3, 2, 3))
    np.testing.assert_allclose(nn.normalizelp(x, p=p, epsilon=0.01, spatial=spatial),
                               normalizelp_reference(x, p, 0.01, spatial), rtol=1e-12)
    an.gradcheck(lambda v, dzdy=None: nn.normalizelp(v, p=p, spatial=spatial, dzdy=dzdy), x)


# MatConvNet's nnnormalizelp.m 'dimensions' cases, H x W x C x N 1-based, and their NCHW axes
MATCONVNET_AXES = {1: 2, 2: 3, 3: 1, 4: 0}
MATCONVNET_DIMENSIONS = [[1], [2], [3], [4], [1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4],
                         [1, 2, 3], [2, 3, 4], [1, 2, 3, 4]]
EVERY_SUBSET = [tuple(a for a in range(4) if mask >> a & 1) for mask in range(1, 16)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dimensions", EVERY_SUBSET, ids=str)
def test_normalizelp_over_any_subset_of_the_axes(dimensions, dtype):
    x = RNG.standard_normal((3, 5, 2, 3))
    for p in (2, 4):
        y = nn.normalizelp(x.astype(dtype), p=p, epsilon=1e-4, dimensions=dimensions)
        assert y.dtype == dtype
        tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12}
        np.testing.assert_allclose(y, normalizelp_reference(x, p, 1e-4, dimensions=dimensions),
                                   **tol)
        an.gradcheck(lambda v, dzdy=None: nn.normalizelp(v, p=p, epsilon=1e-4,
                                                         dimensions=dimensions, dzdy=dzdy), x)


def test_normalizelp_dimensions_cover_matconvnets_cases_in_nchw():
    x = RNG.standard_normal((3, 5, 2, 3))
    for matlab in MATCONVNET_DIMENSIONS:
        axes = sorted(MATCONVNET_AXES[d] for d in matlab)
        assert tuple(axes) in EVERY_SUBSET
        norms = np.sqrt((x ** 2).sum(axis=tuple(axes), keepdims=True) + 1e-4)
        np.testing.assert_allclose(nn.normalizelp(x, epsilon=1e-4, dimensions=axes), x / norms,
                                   rtol=1e-12)


def test_normalizelp_dimensions_defaults_and_spellings():
    x = RNG.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(nn.normalizelp(x, dimensions=1), nn.normalizelp(x))
    np.testing.assert_array_equal(nn.normalizelp(x, dimensions=[3, 2]),
                                  nn.normalizelp(x, spatial=True))
    np.testing.assert_array_equal(nn.normalizelp(x, dimensions=(2, 3), spatial=True),
                                  nn.normalizelp(x, spatial=True))
    x2 = RNG.standard_normal((4, 3))
    np.testing.assert_allclose(nn.normalizelp(x2, dimensions=0),
                               x2 / np.sqrt((x2 ** 2).sum(axis=0) + 0.01), rtol=1e-12)


@pytest.mark.parametrize("dimensions, error, pattern", [
    ((), ValueError, r"normalizelp: dimensions must be a non-empty"),
    ([], ValueError, r"normalizelp: dimensions must be a non-empty"),
    ((4,), ValueError, r"normalizelp: dimensions \(4,\) must be axes of x \(0 to 3"),
    ((-1,), ValueError, r"normalizelp: dimensions \(-1,\) must be axes of x \(0 to 3"),
    ((1, 1), ValueError, r"normalizelp: dimensions \(1, 1\) repeat an axis"),
    ((1.5,), TypeError, r"normalizelp: dimensions must contain ints"),
    ((True,), TypeError, r"normalizelp: dimensions must contain ints"),
    ("1", TypeError, r"normalizelp: dimensions must be an int or a tuple of ints"),
])
def test_normalizelp_refuses_bad_dimensions_by_name(dimensions, error, pattern):
    with pytest.raises(error, match=pattern):
        nn.normalizelp(RNG.standard_normal((2, 3, 2, 2)), dimensions=dimensions)
    with pytest.raises(error, match=pattern):
        nn.normalizelp(an.Input(name="x"), dimensions=dimensions)


def test_normalizelp_refuses_dimensions_beyond_the_rank_and_contradicting_spatial():
    with pytest.raises(ValueError, match=r"normalizelp: dimensions \(2,\) must be axes of x "
                                         r"\(0 to 1, x shape \(4, 3\)\)"):
        nn.normalizelp(RNG.standard_normal((4, 3)), dimensions=2)
    with pytest.raises(ValueError, match=r"normalizelp: spatial=True sums over the axes "
                                         r"\(2, 3\); dimensions \(1,\) contradicts it"):
        nn.normalizelp(RNG.standard_normal((2, 3, 2, 2)), spatial=True, dimensions=1)


@pytest.mark.parametrize("dimensions, field", [((1,), "elementwise"), ((0, 1), "elementwise"),
                                               ((2,), "none"), ((0, 3), "none")])
def test_normalizelp_dimensions_in_a_graph(dimensions, field):
    from autonn.receptive_fields import IDENTITY, receptive_fields
    values, dy = RNG.standard_normal((2, 3, 4, 2)), RNG.standard_normal((2, 3, 4, 2))
    x = an.Input(name="x")
    y = nn.normalizelp(x, p=4, dimensions=dimensions)
    net = an.Net((y * dy).sum())
    net.eval({"x": values})
    np.testing.assert_allclose(net.value(y), nn.normalizelp(values, p=4, dimensions=dimensions),
                               rtol=1e-12)
    np.testing.assert_allclose(net.der("x"), nn.normalizelp(values, p=4, dimensions=dimensions,
                                                            dzdy=dy), rtol=1e-12)
    got = receptive_fields(y, x)[y]
    assert (got == IDENTITY) if field == "elementwise" else got is None


def test_noffset_matches_the_definition():
    x = RNG.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(nn.noffset(x, (0.5, 0.7)), noffset_reference(x, 0.5, 0.7))
    an.gradcheck(lambda v, dzdy=None: nn.noffset(v, (0.5, 0.7), dzdy=dzdy), x)


def test_normalisation_options_are_checked():
    x = np.zeros((1, 2, 2, 2))
    with pytest.raises(ValueError, match="normalize: param depth"):
        nn.normalize(x, (0, 1, 1, 1))
    with pytest.raises(ValueError, match="normalize: param must have 4 entries"):
        nn.normalize(x, (5, 1, 1))
    with pytest.raises(ValueError, match="spnorm: param window"):
        nn.spnorm(x, (0, 3, 1, 1))
    with pytest.raises(ValueError, match="normalize: x must be 4-D"):
        nn.normalize(np.zeros((2, 2)), (5, 1, 1, 1))


# ----------------------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       seed=st.integers(0, 100))
def test_bnorm_over_shapes_including_one_value_per_channel(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)) * 2 + 3
    g, b = rng.standard_normal(c), rng.standard_normal(c)
    y, moments = nn.bnorm(x, g, b, return_moments=True)
    y_ref, moments_ref = bnorm_reference(x, g, b), bnorm_moments_reference(x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(moments, moments_ref, rtol=1e-9, atol=1e-12)
    dx, dg, _ = nn.bnorm(x, g, b, dzdy=np.ones_like(x))
    assert np.isfinite(dx).all() and np.isfinite(dg).all()
    if n * h * w > 1:
        an.gradcheck(nn.bnorm, x, g, b)


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 5), w=st.integers(1, 5), ph=st.integers(1, 6), pw=st.integers(1, 6),
       seed=st.integers(0, 100))
def test_spnorm_over_windows_and_sizes(h, w, ph, pw, seed):
    x = np.random.default_rng(seed).standard_normal((1, 2, h, w))
    param = (ph, pw, 0.9, 0.6)
    np.testing.assert_allclose(nn.spnorm(x, param), spnorm_reference(x, *param), rtol=1e-10)


def test_lrn_sliding_window_stays_accurate_over_many_channels():
    x = RNG.standard_normal((1, 512, 2, 2)) * 10
    x[:, ::7] *= 100  # large and small squares side by side
    param = (5, 2.0, 1e-4, 0.75)
    y32 = nn.normalize(x.astype(np.float32), param)
    np.testing.assert_allclose(y32, lrn_reference(x, *param), rtol=1e-5, atol=1e-5)


def test_kernels_take_non_contiguous_inputs_and_refuse_a_dzdy_of_another_dtype():
    x = RNG.standard_normal((2, 6, 4, 4))[:, ::2]
    assert not x.flags.c_contiguous
    param = (3, 1.0, 0.5, 0.75)
    np.testing.assert_allclose(nn.normalize(x, param), lrn_reference(x, *param), rtol=1e-12)
    np.testing.assert_allclose(nn.normalize(x, param, dzdy=np.ones(x.shape)),
                               nn.normalize(np.ascontiguousarray(x), param,
                                            dzdy=np.ones(x.shape)), rtol=1e-12)
    dy32 = np.ones(x.shape, np.float32)
    with pytest.raises(TypeError, match=r"normalize: dzdy must have the dtype of x \(float64"):
        nn.normalize(x, param, dzdy=dy32)
    assert nn.bnorm(x.astype(np.float32), dzdy=dy32)[0].dtype == np.float32


def test_float32_derivatives_of_bnorm_and_spnorm():
    x = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    an.gradcheck(nn.bnorm, x, g, b, dtype=np.float32)
    an.gradcheck(lambda v, dzdy=None: nn.spnorm(v, (3, 3, 0.5, 0.75), dzdy=dzdy), x,
                 dtype=np.float32)


def test_graph_bnorm_takes_its_channels_from_a_given_gain():
    x = an.Input(name="x")
    y = nn.bnorm(x, an.Param(np.ones(5, np.float32)))
    assert y.inputs[3].value.shape == (5, 2) and y.inputs[2].value.shape == (5,)
