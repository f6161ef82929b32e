"""conv and convt against direct loops over the manual's formulas (block_references, sharing no
code with the im2col/GEMM implementation), their derivatives, and their argument checks."""

import importlib
import threading

import numpy as np
import pytest
from block_references import (conv_derivatives_reference, conv_identity_reference, conv_reference,
                              convt_reference)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import backend, kernels, nn

conv_module = importlib.import_module("autonn.nn.convolution")
schedules_module = importlib.import_module("autonn.nn.convolution_schedules")
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not backend.gpu_available(), reason="no GPU")])]


def random(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- no filters
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride, pad", [((1, 1), (0, 0, 0, 0)), ((2, 3), (1, 0, 2, 1)),
                                         ((3, 1), (0, 2, 0, 0)), ((4, 4), (5, 5, 5, 5)),
                                         ((1, 2), (3, 3, 1, 1))])
def test_conv_without_filters_is_matconvnets_identity_filter_bank(stride, pad, dtype):
    rng = np.random.default_rng(sum(stride) + sum(pad))
    x, b = random(rng, (2, 3, 5, 4), dtype), random(rng, (3,), dtype)
    y = nn.conv(x, None, b, stride=stride, pad=pad)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, conv_identity_reference(x, b, stride, pad), **TOL[dtype])
    # the same as explicit 1 x 1 identity filters
    identity = np.eye(3, dtype=dtype).reshape(3, 3, 1, 1)
    np.testing.assert_allclose(y, nn.conv(x, identity, b, stride=stride, pad=pad), **TOL[dtype])
    dy = random(rng, y.shape, dtype)
    dx, dw, db = nn.conv(x, None, b, dzdy=dy, stride=stride, pad=pad)
    want_dx, _, want_db = nn.conv(x, identity, b, dzdy=dy, stride=stride, pad=pad)
    assert dw is None and dx.dtype == dtype and db.dtype == dtype
    np.testing.assert_allclose(dx, want_dx, **TOL[dtype])
    np.testing.assert_allclose(db, want_db, **TOL[dtype])
    assert nn.conv(x, None, None, dzdy=dy, stride=stride, pad=pad)[2] is None
    an.gradcheck(lambda x, w, b, dzdy=None: nn.conv(x, w, b, stride=stride, pad=pad, dzdy=dzdy),
                 x.astype(np.float64), None, b.astype(np.float64), wrt=(0, 2))


def test_conv_without_filters_builds_a_graph_with_shape_and_receptive_field():
    from autonn.receptive_fields import receptive_fields
    from autonn.shapes import variable_shapes
    rng = np.random.default_rng(4)
    values, biases = rng.standard_normal((2, 3, 7, 6)), an.Param(rng.standard_normal(3))
    x = an.Input(name="x")
    y = nn.conv(x, None, biases, stride=2, pad=(1, 0, 1, 1))
    assert variable_shapes([y], {x: values.shape})[y] == (2, 3, 4, 4)
    field = receptive_fields(y, x)[y]
    assert field.size == (1, 1) and field.stride == (2, 2) and field.offset == (-1, -1)
    dy = rng.standard_normal((2, 3, 4, 4))
    net = an.Net((y * dy).sum())
    net.eval({"x": values})
    np.testing.assert_allclose(net.value(y), nn.conv(values, None, biases.value, stride=2,
                                                     pad=(1, 0, 1, 1)), rtol=1e-12)
    dx, _, db = nn.conv(values, None, biases.value, dzdy=dy, stride=2, pad=(1, 0, 1, 1))
    np.testing.assert_allclose(net.der("x"), dx, rtol=1e-12)
    np.testing.assert_allclose(biases.der, db, rtol=1e-12)
    assert conv_module.conv_op.output_shape((2, 3, 7, 6), None, (3,), stride=(2, 2),
                                            pad=(1, 0, 1, 1), dilate=(1, 1)) == (2, 3, 4, 4)


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_matches_the_direct_formula_with_stride_pad_dilate_groups(device, dtype):
    rng = np.random.default_rng(0)
    x, w, b = random(rng, (2, 6, 9, 8), dtype), random(rng, (4, 3, 3, 2), dtype), \
        random(rng, (4,), dtype)
    options = dict(stride=(2, 1), pad=(1, 0, 2, 1), dilate=(1, 2))
    y = nn.conv(*(backend.to_device(a, device) for a in (x, w, b)), **options)
    assert y.dtype == dtype and y.shape == (2, 4, 4, 9)
    np.testing.assert_allclose(backend.to_numpy(y),
                               conv_reference(x, w, b, (2, 1), (1, 0, 2, 1), (1, 2)),
                               **TOL[dtype])


def test_conv_without_bias_and_with_int_options():
    rng = np.random.default_rng(1)
    x, w = random(rng, (3, 2, 7, 7)), random(rng, (5, 2, 3, 3))
    np.testing.assert_allclose(nn.conv(x, w, stride=2, pad=1),
                               conv_reference(x, w, None, (2, 2), (1, 1, 1, 1)), rtol=1e-10)


@pytest.mark.parametrize("groups", [1, 2])
def test_fully_connected_fast_path_matches_the_formula(groups):
    rng = np.random.default_rng(2)
    x, w, b = random(rng, (4, 4, 5, 3)), random(rng, (6, 4 // groups, 5, 3)), random(rng, (6,))
    y = nn.conv(x, w, b)
    assert y.shape == (4, 6, 1, 1)
    np.testing.assert_allclose(y, conv_reference(x, w, b), rtol=1e-10)
    an.gradcheck(nn.conv, x, w, b)


# The schedules that compute any geometry, forced by name (conv_module.force_schedule); the
# "fully connected" and "pointwise" ones compute only their own shapes.
GENERAL_SCHEDULES = ["direct", "direct + image products", "direct + chunk products", "units",
                     "image products", "chunk products"]
# Every schedule computes both geometries (stride and dilation differing between the axes,
# padding on three sides, groups); the second has stride 1, so that dx can come from the direct
# kernel too.
SCHEDULE_CASES = {    # x shape, filters shape, options
    "strided": ((3, 4, 7, 6), (6, 2, 3, 2), dict(stride=(1, 2), pad=(1, 0, 1, 1), dilate=(2, 1))),
    "stride 1": ((3, 4, 7, 6), (6, 2, 3, 2), dict(stride=(1, 1), pad=(1, 0, 1, 1),
                                                  dilate=(2, 1))),
}


def test_the_schedules_table_is_tried_in_this_order():
    assert [s.name for s in conv_module.SCHEDULES] == ["fully connected", "pointwise",
                                                       *GENERAL_SCHEDULES]
    assert [d.name for d in conv_module.DATA_DERIVATIVES] == ["direct", "col2im"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case, data_derivative", [("strided", "col2im"), ("stride 1", "col2im"),
                                                   ("stride 1", "direct")])
@pytest.mark.parametrize("schedule", GENERAL_SCHEDULES)
def test_every_schedule_gives_the_formula_and_its_derivatives(schedule, case, data_derivative,
                                                              dtype):
    x_shape, w_shape, options = SCHEDULE_CASES[case]
    rng = np.random.default_rng(11)
    x, w, b = random(rng, x_shape, dtype), random(rng, w_shape, dtype), random(rng, (6,), dtype)
    y_reference = conv_reference(x, w, b, **options)
    dy = random(rng, y_reference.shape, dtype)
    dx_reference, dw_reference = conv_derivatives_reference(x, w, dy, **options)
    geometry = conv_module.conv_geometry("conv", x, w, b, *options.values())
    with conv_module.force_schedule(schedule, data_derivative=data_derivative):
        assert conv_module.choose_schedule(geometry, dtype).name == schedule
        assert conv_module.choose_data_derivative(geometry, dtype).name == data_derivative
        y = nn.conv(x, w, b, **options)
        dx, dw, db = nn.conv(x, w, b, dzdy=dy, **options)
        dx_alone = conv_module.conv_backward(x, w, b, dy, need=(True, False, False), **options)[0]
        dw_alone = conv_module.conv_backward(x, w, b, dy, need=(False, True, False), **options)[1]
    np.testing.assert_allclose(y, y_reference, **TOL[dtype])
    for got, want in ((dx, dx_reference), (dx_alone, dx_reference), (dw, dw_reference),
                      (dw_alone, dw_reference), (db, dy.sum(axis=(0, 2, 3)))):
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("schedule, x_shape, w_shape", [
    ("fully connected", (4, 4, 5, 3), (6, 2, 5, 3)),
    ("pointwise", (3, 5, 4, 3), (6, 5, 1, 1)),
])
def test_the_single_product_schedules_give_the_formula_and_its_derivatives(schedule, x_shape,
                                                                          w_shape, dtype):
    rng = np.random.default_rng(19)
    x, w, b = random(rng, x_shape, dtype), random(rng, w_shape, dtype), random(rng, (6,), dtype)
    geometry = conv_module.conv_geometry("conv", x, w, b, 1, 0, 1)
    assert conv_module.choose_schedule(geometry, dtype).name == schedule      # automatically
    y_reference = conv_reference(x, w, b)
    dy = random(rng, y_reference.shape, dtype)
    with conv_module.force_schedule(schedule):
        y = nn.conv(x, w, b)
        dx, dw, db = nn.conv(x, w, b, dzdy=dy)
    np.testing.assert_allclose(y, y_reference, **TOL[dtype])
    for got, want in zip((dx, dw, db), (*conv_derivatives_reference(x, w, dy),
                                        dy.sum(axis=(0, 2, 3)))):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_a_forced_schedule_that_cannot_compute_the_geometry_says_why(monkeypatch):
    geometry = conv_module.conv_geometry("conv", X, W, None, 1, 0, 1)
    with conv_module.force_schedule("direct"), pytest.raises(
            ValueError, match=r"conv: the forced schedule 'direct' cannot compute this "
                              r"convolution \(x shape \(2, 4, 5, 5\), filters shape "
                              r"\(6, 2, 3, 3\).*CPU only"):
        conv_module.choose_schedule(geometry, np.float32, device="gpu")
    with conv_module.force_schedule("fully connected"), pytest.raises(
            ValueError, match=r"conv: the forced schedule 'fully connected' .*whole unpadded"):
        nn.conv(X, W)
    with conv_module.force_schedule("pointwise"), pytest.raises(
            ValueError, match=r"convt: the forced schedule 'pointwise' .*1x1"):
        nn.convt(X, np.zeros((4, 2, 3, 3), np.float32))
    dy = np.zeros((2, 6, 2, 2), np.float32)
    with conv_module.force_schedule(data_derivative="direct"):
        with pytest.raises(ValueError, match=r"conv: the forced data derivative 'direct' .*"
                                             r"stride \(2, 2\).*only for stride 1"):
            nn.conv(X, W, stride=2, dzdy=dy)
        dw = conv_module.conv_backward(X, W, None, dy, stride=2,
                                       need=(False, True, False))[1]   # no dx, nothing to force
        assert not dw.any()
    monkeypatch.setattr(kernels, "_cpu_gemms", {})     # as when scipy-openblas32 is missing
    with conv_module.force_schedule("units"), pytest.raises(
            ValueError, match=r"conv: the forced schedule 'units' .*scipy-openblas32"):
        nn.conv(X, W)


def direct_geometry():
    """A geometry whose automatic schedule is "direct" (float32)."""
    x, w = np.empty((5, 3, 8, 8), np.float32), np.empty((4, 3, 3, 3), np.float32)
    return conv_module.conv_geometry("conv", x, w, None, 1, 0, 1)


def test_force_schedule_refuses_unknown_names_and_ends_with_its_block():
    geometry = direct_geometry()
    with pytest.raises(ValueError, match=r"conv: force_schedule's schedule must be one of "
                                         r"'fully connected', 'pointwise', 'direct'.*got 'gemm'"):
        with conv_module.force_schedule("gemm"):
            pass
    with pytest.raises(ValueError, match=r"force_schedule's data_derivative must be one of "
                                         r"'direct', 'col2im'"):
        with conv_module.force_schedule(data_derivative="im2col"):
            pass
    with pytest.raises(ValueError, match=r"conv: device must be 'cpu' or 'gpu', got 'cuda'"):
        conv_module.choose_schedule(geometry, np.float32, device="cuda")
    with conv_module.force_schedule("chunk products"):
        with conv_module.force_schedule("units"):
            assert conv_module.choose_schedule(geometry, np.float32).name == "units"
        assert conv_module.choose_schedule(geometry, np.float32).name == "chunk products"
    assert conv_module.choose_schedule(geometry, np.float32).name == "direct"


def test_the_override_holds_only_in_the_thread_that_forced_it():
    geometry = direct_geometry()
    seen_by_another_thread = []
    with conv_module.force_schedule("chunk products"):
        thread = threading.Thread(target=lambda: seen_by_another_thread.append(
            conv_module.choose_schedule(geometry, np.float32).name))
        thread.start()
        thread.join()
        assert conv_module.choose_schedule(geometry, np.float32).name == "chunk products"
    assert seen_by_another_thread == ["direct"]


def test_units_give_the_same_filter_derivative_every_time(monkeypatch):
    """Runs of units sum into buffers of their own, added in order: whichever thread takes
    which run, dw comes out bit for bit the same (training resumes exactly)."""
    rng = np.random.default_rng(14)
    x, w = random(rng, (96, 3, 10, 10), np.float32), random(rng, (8, 3, 3, 3), np.float32)
    dy = random(rng, (96, 8, 8, 8), np.float32)
    monkeypatch.setattr(schedules_module, "UNIT_PATCH_BYTES", 2 * 27 * 64 * 4)  # 48 units
    with conv_module.force_schedule("units"):
        first = nn.conv(x, w, dzdy=dy)[1]
        for _ in range(20):
            np.testing.assert_array_equal(nn.conv(x, w, dzdy=dy)[1], first)


@pytest.mark.parametrize("x_shape, pad, with_blas, without_blas", [
    ((5, 3, 4, 4), 1, "units", "chunk products"),          # rows of 4 in vectors of 8
    ((5, 3, 8, 8), 0, "direct", "direct + chunk products"),
])
def test_without_a_blas_for_c_small_images_take_numpys_matmul(monkeypatch, x_shape, pad,
                                                              with_blas, without_blas):
    rng = np.random.default_rng(13)
    x, w, b = (random(rng, shape, np.float32) for shape in (x_shape, (4, 3, 3, 3), (4,)))
    geometry = conv_module.conv_geometry("conv", x, w, b, 1, pad, 1)
    assert conv_module.choose_schedule(geometry, np.float32).name == with_blas
    monkeypatch.setattr(kernels, "_cpu_gemms", {})     # as when scipy-openblas32 is missing
    assert conv_module.choose_schedule(geometry, np.float32).name == without_blas
    np.testing.assert_allclose(nn.conv(x, w, b, pad=pad),
                               conv_reference(x, w, b, pad=(pad,) * 4), **TOL[np.float32])
    dy = random(rng, (geometry.N, geometry.K, geometry.Ho, geometry.Wo), np.float32)
    for got, want in zip(nn.conv(x, w, dzdy=dy, pad=pad)[:2],
                         conv_derivatives_reference(x, w, dy, pad=(pad,) * 4)):
        np.testing.assert_allclose(got, want, **TOL[np.float32])


@pytest.mark.parametrize("dtype", DTYPES)
def test_units_of_small_images_agree_with_one_gemm_per_chunk(monkeypatch, dtype):
    """Many units over both threads (37 images, 3 per unit, the last one short), groups, and a
    filter derivative summed across the threads' buffers."""
    rng = np.random.default_rng(12)
    x, w, b = random(rng, (37, 4, 9, 9), dtype), random(rng, (6, 2, 3, 3), dtype), \
        random(rng, (6,), dtype)
    dy = random(rng, (37, 6, 7, 7), dtype)
    per_image = 4 * 9 * 49 * x.dtype.itemsize
    monkeypatch.setattr(schedules_module, "UNIT_PATCH_BYTES", 3 * per_image)
    with conv_module.force_schedule("units", data_derivative="col2im"):
        units = (nn.conv(x, w, b), *nn.conv(x, w, b, dzdy=dy), nn.convt(dy, w[:, :2].copy()))
    with conv_module.force_schedule("chunk products", data_derivative="col2im"):
        reference = (nn.conv(x, w, b), *nn.conv(x, w, b, dzdy=dy), nn.convt(dy, w[:, :2].copy()))
    for got, want in zip(units, reference):
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("band_bytes", [1, 3000, 10**6])
def test_direct_kernel_matches_the_formula_over_bands_tails_and_groups(monkeypatch, dtype,
                                                                      band_bytes):
    """Filter blocks of 4 with a short last one (6 filters per group), rows of 19 pixels (the
    last vector part-filled), stride, dilation, 4-side padding, and bands of one row, of a
    few rows with a short last band, or of the whole image; 9 images (dealt out image by
    image) and 2 (band by band)."""
    monkeypatch.setattr(schedules_module, "DIRECT_BAND_BYTES", band_bytes)
    rng = np.random.default_rng(15)
    w, b = random(rng, (12, 3, 3, 5), dtype), random(rng, (12,), dtype)
    options = dict(stride=(2, 1), pad=(2, 1, 0, 3), dilate=(1, 2))
    for N in (9, 2):
        x = random(rng, (N, 6, 25, 24), dtype)
        with conv_module.force_schedule("direct"):
            y = nn.conv(x, w, b, **options)
            y_without_bias = nn.conv(x, w, **options)
        assert y.shape == (N, 12, 13, 19)
        np.testing.assert_allclose(y, conv_reference(x, w, b, (2, 1), (2, 1, 0, 3), (1, 2)),
                                   **TOL[dtype])
        np.testing.assert_allclose(y_without_bias,
                                   conv_reference(x, w, None, (2, 1), (2, 1, 0, 3), (1, 2)),
                                   **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_data_derivative_of_stride_1_matches_the_gemm(monkeypatch, dtype):
    """conv's dx for stride 1 is the direct convolution of dy with the flipped filters: groups,
    dilation and 4-side padding (each side's derivative padding differs), and convt with
    upsample 1, whose forward it is."""
    rng = np.random.default_rng(16)
    x, w = random(rng, (3, 10, 20, 21), dtype), random(rng, (12, 5, 3, 5), dtype)
    options = dict(pad=(1, 2, 3, 0), dilate=(2, 1))
    geometry = conv_module.conv_geometry("conv", x, w, None, 1, (1, 2, 3, 0), (2, 1))
    transposed = schedules_module.transposed_geometry(geometry)
    assert (transposed.pt, transposed.pb, transposed.pl, transposed.pr) == (3, 2, 1, 4)
    assert conv_module.choose_data_derivative(geometry, dtype).name == "direct"
    dy = random(rng, nn.conv(x, w, **options).shape, dtype)
    calls, call_cpu = [], kernels.call_cpu
    monkeypatch.setattr(kernels, "call_cpu", lambda name, *args: calls.append(name)
                        or call_cpu(name, *args))
    direct = nn.conv(x, w, dzdy=dy, **options)
    convt_direct = nn.convt(dy, w, crop=(1, 2, 3, 0), num_groups=2)
    assert calls.count("conv_forward_direct") == 2         # conv's dx, then convt's forward
    with conv_module.force_schedule("chunk products", data_derivative="col2im"):
        gemm = nn.conv(x, w, dzdy=dy, **options)
        convt_gemm = nn.convt(dy, w, crop=(1, 2, 3, 0), num_groups=2)
    np.testing.assert_allclose(direct[0], gemm[0], **TOL[dtype])
    np.testing.assert_allclose(direct[1], gemm[1], **TOL[dtype])
    np.testing.assert_allclose(convt_direct, convt_gemm, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_units_of_one_larger_image_give_the_gemms_derivatives(dtype):
    """Images past UNIT_PATCH_BYTES (900 KiB of patches each in float32), stride 2 so that dx
    comes from the units too."""
    rng = np.random.default_rng(18)
    x, w = random(rng, (3, 16, 80, 40), dtype), random(rng, (8, 16, 3, 3), dtype)
    geometry = conv_module.conv_geometry("conv", x, w, None, (2, 1), 1, 1)
    assert schedules_module._patch_bytes(geometry, x.itemsize) > schedules_module.UNIT_PATCH_BYTES
    assert conv_module.choose_schedule(geometry, dtype).name == "direct"
    dy = random(rng, nn.conv(x, w, stride=(2, 1), pad=1).shape, dtype)
    units = nn.conv(x, w, stride=(2, 1), pad=1, dzdy=dy)
    with conv_module.force_schedule("chunk products"):
        gemm = nn.conv(x, w, stride=(2, 1), pad=1, dzdy=dy)
    for got, want in zip(units[:2], gemm[:2]):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_small_images_leave_the_data_derivative_to_the_direct_kernel(monkeypatch):
    """When the direct kernel gave dx, the units compute only dw (not dx a second time)."""
    rng = np.random.default_rng(17)
    x, w, dy = random(rng, (4, 8, 10, 10)), random(rng, (8, 8, 3, 3)), random(rng, (4, 8, 10, 10))
    geometry = conv_module.conv_geometry("conv", x, w, None, 1, 1, 1)
    assert conv_module.choose_schedule(geometry, x.dtype).name == "direct"
    assert conv_module.choose_data_derivative(geometry, x.dtype).name == "direct"
    calls, call_cpu = [], kernels.call_cpu
    monkeypatch.setattr(kernels, "call_cpu", lambda name, *args: calls.append((name, args))
                        or call_cpu(name, *args))
    dx, dw, _ = nn.conv(x, w, pad=1, dzdy=dy)
    assert [name for name, _ in calls] == ["conv_forward_direct", "conv_backward_units"]
    need_dx, need_dw = calls[1][1][5:7]
    assert (need_dx, need_dw) == (0, 1)
    np.testing.assert_allclose(np.vdot(x, dx), np.vdot(nn.conv(x, w, pad=1), dy), rtol=1e-10)


def test_the_drivers_get_the_geometry_by_field_name():
    """The C drivers' an_conv_geometry is filled field by field from the ConvGeometry of the
    same names (every field distinct here, so a swap would show), and cffi refuses a name the
    struct does not have."""
    geometry = conv_module.ConvGeometry(N=2, C=6, H=30, W=31, K=9, G=3, kh=5, kw=4, Ho=7, Wo=11,
                                        sh=3, sw=2, pt=1, pb=0, pl=8, pr=0, dh=12, dw=13)
    struct = schedules_module.c_geometry(geometry)
    fields = [name for name, _ in kernels.cpu_library().ffi.typeof(struct[0]).fields]
    assert fields == ["N", "C", "H", "W", "K", "G", "Ho", "Wo", "kh", "kw", "sh", "sw", "pt",
                      "pl", "dh", "dw"]
    assert {name: getattr(struct, name) for name in fields} == {
        name: getattr(geometry, name) for name in fields}
    with pytest.raises(KeyError, match="sx"):
        kernels.cpu_library().ffi.new("an_conv_geometry *", {"sx": 1})


@st.composite
def direct_cases(draw):
    return dict(draw(conv_geometries()), band_bytes=draw(st.integers(1, 4096)))


@settings(max_examples=40, deadline=None)
@given(geometry=direct_cases())
def test_direct_kernel_fuzz_matches_the_formula(geometry):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(schedules_module, "DIRECT_BAND_BYTES", geometry["band_bytes"])
        check_conv_fuzz_case(geometry, "direct")


# The automatic choice for named layers (float32, with scipy-openblas32's BLAS for C): which
# schedule, and where conv's dx comes from. The direct forward is taken where it measured
# faster than im2col's GEMM (see convolution_schedules.direct_forward_measured_faster), its
# derivatives in units up to 16 MiB of patches per image.
@pytest.mark.parametrize("x_shape, w_shape, stride, pad, schedule, data_derivative", [
    ((100, 1, 28, 28), (20, 1, 5, 5), 1, 0, "direct", "col2im"),         # LeNet conv1
    ((100, 20, 12, 12), (50, 20, 5, 5), 1, 0, "direct", "col2im"),       # LeNet conv2
    ((100, 50, 4, 4), (500, 50, 4, 4), 1, 0, "fully connected", "col2im"),   # LeNet fc
    ((32, 3, 224, 224), (64, 3, 7, 7), 2, 3, "direct", "col2im"),        # RGB stem
    ((16, 64, 56, 56), (64, 64, 3, 3), 1, 1, "direct", "direct"),        # VGG, 7 MiB of patches
    ((2, 64, 224, 224), (64, 64, 3, 3), 1, 1,                            # 110 MiB of patches
     "direct + image products", "direct"),
    ((16, 64, 56, 56), (64, 1, 3, 3), 1, 1, "direct", "direct"),         # depthwise
    ((16, 256, 56, 56), (64, 256, 1, 1), 1, 0, "pointwise", "col2im"),   # ResNet 1x1
    ((16, 64, 56, 56), (128, 64, 1, 1), 2, 0, "units", "col2im"),        # windows that barely
    ((16, 64, 56, 56), (128, 64, 3, 3), 2, 1, "image products", "col2im"),   # overlap
    ((16, 32, 56, 56), (64, 32, 3, 3), 2, 1, "image products", "col2im"),
    ((16, 16, 56, 56), (32, 16, 5, 5), 2, 2, "direct", "col2im"),
    ((16, 64, 56, 56), (64, 64, 2, 2), 1, 0, "direct", "direct"),
    ((16, 256, 14, 14), (256, 256, 3, 3), 1, 1, "chunk products", "col2im"),  # large filters
    ((100, 64, 4, 4), (64, 64, 3, 3), 1, 1, "units", "col2im"),          # rows of 4 in vectors
])                                                                       # of 8
def test_the_automatic_choice_takes_what_measured_fastest_for_named_layers(
        x_shape, w_shape, stride, pad, schedule, data_derivative):
    x, w = np.empty(x_shape, np.float32), np.empty(w_shape, np.float32)
    geometry = conv_module.conv_geometry("conv", x, w, None, stride, pad, 1)
    assert conv_module.choose_schedule(geometry, np.float32).name == schedule
    assert conv_module.choose_data_derivative(geometry, np.float32).name == data_derivative
    # the GPU runs the single products, or chunks with one product each
    on_gpu = schedule if schedule in ("fully connected", "pointwise") else "chunk products"
    assert conv_module.choose_schedule(geometry, np.float32, device="gpu").name == on_gpu
    assert conv_module.choose_data_derivative(geometry, np.float32, device="gpu").name == "col2im"


def test_pointwise_fast_path_matches_the_formula():
    rng = np.random.default_rng(10)
    x, w, b = random(rng, (3, 5, 4, 3)), random(rng, (6, 5, 1, 1)), random(rng, (6,))
    assert conv_module.conv_geometry("conv", x, w, b, 1, 0, 1).pointwise
    np.testing.assert_allclose(nn.conv(x, w, b), conv_reference(x, w, b), rtol=1e-10)
    an.gradcheck(nn.conv, x, w, b)


def test_empty_batches_give_empty_results():
    x, w, b = np.zeros((0, 3, 5, 5)), np.ones((2, 3, 3, 3)), np.ones(2)
    assert nn.conv(x, w, b).shape == (0, 2, 3, 3)
    dx, dw, db = nn.conv(x, w, b, dzdy=np.zeros((0, 2, 3, 3)))
    assert dx.shape == x.shape and not dw.any() and not db.any()
    assert nn.convt(np.zeros((0, 2, 3, 3)), w[:, :2].copy()).shape == (0, 2, 5, 5)


def test_window_exactly_fitting_the_padded_input_gives_one_pixel():
    rng = np.random.default_rng(3)
    x, w = random(rng, (2, 3, 4, 5)), random(rng, (2, 3, 3, 3))
    options = dict(pad=(1, 0, 0, 0), dilate=(2, 1), stride=3)   # 4+1 = 2*(3-1)+1; 5 = 3+2 -> 1
    y = nn.conv(x, w, **options)
    assert y.shape == (2, 2, 1, 1)
    np.testing.assert_allclose(y, conv_reference(x, w, None, (3, 3), (1, 0, 0, 0), (2, 1)),
                               rtol=1e-10)


@pytest.mark.parametrize("schedule", ["image products", "chunk products"])
def test_conv_splits_large_batches_into_chunks_without_changing_the_result(monkeypatch,
                                                                           schedule):
    rng = np.random.default_rng(4)
    x, w, b = random(rng, (7, 3, 6, 6)), random(rng, (4, 3, 3, 3)), random(rng, (4,))
    with conv_module.force_schedule(schedule, data_derivative="col2im"):
        y = nn.conv(x, w, b, pad=1)
        dy = random(rng, y.shape)
        expected = nn.conv(x, w, b, pad=1, dzdy=dy)
        per_image = 3 * 9 * 36 * 8
        monkeypatch.setattr(schedules_module, "PATCH_BUFFER_BYTES", 2 * per_image)  # 2 images
        geometry = conv_module.conv_geometry("conv", x, w, b, 1, 1, 1)
        assert [n for _, n in schedules_module._chunks(geometry, 8)] == [2, 2, 2, 1]
        np.testing.assert_allclose(nn.conv(x, w, b, pad=1), y, rtol=1e-12)
        for got, want in zip(nn.conv(x, w, b, pad=1, dzdy=dy), expected):
            np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_convt_matches_the_direct_scatter_formula(device, dtype):
    rng = np.random.default_rng(5)
    x, w, b = random(rng, (2, 4, 3, 4), dtype), random(rng, (4, 3, 3, 2), dtype), \
        random(rng, (6,), dtype)
    options = dict(upsample=(2, 3), crop=(1, 0, 0, 2), num_groups=2)
    y = nn.convt(*(backend.to_device(a, device) for a in (x, w, b)), **options)
    assert y.dtype == dtype and y.shape == (2, 6, 2 * 2 + 3 - 1, 3 * 3 + 2 - 2)
    np.testing.assert_allclose(backend.to_numpy(y),
                               convt_reference(x, w, b, (2, 3), (1, 0, 0, 2), 2), **TOL[dtype])


# ----------------------------------------------------------------------------- derivatives
def test_conv_derivatives_pass_gradcheck():
    rng = np.random.default_rng(6)
    x, w, b = random(rng, (2, 4, 6, 5)), random(rng, (4, 2, 3, 2)), random(rng, (4,))
    an.gradcheck(nn.conv, x, w, b, stride=(2, 1), pad=(1, 2, 0, 1), dilate=(1, 2))


def test_convt_derivatives_pass_gradcheck():
    rng = np.random.default_rng(7)
    x, w, b = random(rng, (2, 4, 3, 3)), random(rng, (4, 2, 3, 2)), random(rng, (4,))
    an.gradcheck(nn.convt, x, w, b, upsample=(2, 1), crop=(1, 0, 1, 1), num_groups=2)


def test_eager_backward_returns_none_for_absent_biases():
    rng = np.random.default_rng(8)
    x, w = random(rng, (1, 2, 5, 5)), random(rng, (3, 2, 3, 3))
    dx, dw, db = nn.conv(x, w, dzdy=np.ones((1, 3, 3, 3)))
    assert dx.shape == x.shape and dw.shape == w.shape and db is None
    dx, dw, db = nn.convt(x, w.transpose(1, 0, 2, 3).copy()[:2, :3], dzdy=np.ones((1, 3, 7, 7)))
    assert dx.shape == x.shape and db is None


@st.composite
def conv_geometries(draw):
    """Small conv problems; ``slack = 0`` makes the window exactly fit the padded input."""
    groups = draw(st.integers(1, 2))
    cg, kg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    slack_h, slack_w = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    H = max(1, dh * (kh - 1) + 1 - pad[0] - pad[1] + slack_h)
    W = max(1, dw * (kw - 1) + 1 - pad[2] - pad[3] + slack_w)
    N = draw(st.integers(1, 2))
    return dict(x=(N, cg * groups, H, W), w=(kg * groups, cg, kh, kw), stride=(sh, sw),
                pad=pad, dilate=(dh, dw), seed=draw(st.integers(0, 2**16)))


@pytest.mark.parametrize("schedule", GENERAL_SCHEDULES)
@settings(max_examples=40, deadline=None)
@given(geometry=conv_geometries())
def test_conv_fuzz_matches_formula_and_its_backward_is_the_adjoint(schedule, geometry):
    check_conv_fuzz_case(geometry, schedule)


def check_conv_fuzz_case(geometry, schedule):
    """conv under the forced schedule against the loops; the direct schedules take conv's dx
    from the direct kernel too wherever it is a convolution (stride 1), the others from col2im."""
    rng = np.random.default_rng(geometry["seed"])
    x, w = random(rng, geometry["x"]), random(rng, geometry["w"])
    options = {k: geometry[k] for k in ("stride", "pad", "dilate")}
    shape = conv_module.conv_geometry("conv", x, w, None, *options.values())
    direct_dx = (schedule.startswith("direct")
                 and schedules_module.transposed_geometry(shape) is not None)
    with conv_module.force_schedule(schedule,
                                    data_derivative="direct" if direct_dx else "col2im"):
        y = nn.conv(x, w, **options)
        dy = random(rng, y.shape)
        dx, dw, _ = nn.conv(x, w, dzdy=dy, **options)
    np.testing.assert_allclose(y, conv_reference(x, w, None, **options), rtol=1e-9, atol=1e-9)
    for got, want in zip((dx, dw), conv_derivatives_reference(x, w, dy, **options)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # conv is linear in x and in w: <conv(x, w), dy> = <x, dx> = <w, dw>
    inner = np.vdot(y, dy)
    np.testing.assert_allclose(np.vdot(x, dx), inner, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.vdot(w, dw), inner, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(conv_geometries())
def test_convt_fuzz_is_the_adjoint_of_conv_and_matches_formula(geometry):
    rng = np.random.default_rng(geometry["seed"])
    (sh, sw), (pt, pb, pl, pr) = geometry["stride"], geometry["pad"]
    K, Cg, kh, kw = geometry["w"]
    N, C, H, W = geometry["x"]
    # conv's output size for this geometry; convt maps it back to Ho_t = s(Ho-1)+kh-pt-pb rows,
    # and the two are adjoint for inputs of exactly that size (rows beyond it would be read by
    # conv but never written by convt).
    Ho, Wo = (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1
    Ht, Wt = sh * (Ho - 1) + kh - pt - pb, sw * (Wo - 1) + kw - pl - pr
    assume(Ho >= 1 and Wo >= 1 and Ht >= 1 and Wt >= 1)
    u, w = random(rng, (N, C, Ht, Wt)), random(rng, (K, Cg, kh, kw))
    z = nn.conv(u, w, stride=(sh, sw), pad=(pt, pb, pl, pr))
    assert z.shape == (N, K, Ho, Wo)
    dz = random(rng, z.shape)
    groups = C // Cg
    # conv filters (K, C/G, kh, kw) are convt filters (C_in = K, K_out = C/G, kh, kw)
    back = nn.convt(dz, w, upsample=(sh, sw), crop=(pt, pb, pl, pr), num_groups=groups)
    assert back.shape == u.shape
    np.testing.assert_allclose(np.vdot(z, dz), np.vdot(u, back), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(back, convt_reference(dz, w, None, (sh, sw), (pt, pb, pl, pr),
                                                     groups), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- graphs
def test_size_creates_xavier_filters_and_biases_in_matconvnet_order():
    x = an.Input()
    y = nn.conv(x, size=(5, 3, 2, 7), stride=2)
    assert isinstance(y, an.Layer)
    filters, biases = y.inputs[1], y.inputs[2]
    assert filters.value.shape == (7, 2, 5, 3) and filters.value.dtype == np.float32
    assert np.abs(filters.value).max() <= np.sqrt(3 / (5 * 3 * 2))
    assert biases.value.shape == (7,) and not biases.value.any()
    assert (filters.weight_decay, biases.weight_decay) == (1.0, 0.0)
    t = nn.convt(x, size=(4, 4, 3, 2), num_groups=2, has_bias=True, init="zeros")
    assert t.inputs[1].value.shape == (2, 3, 4, 4) and t.inputs[2].value.shape == (6,)
    assert nn.conv(x, size=(1, 1, 2, 3), has_bias=False).inputs[2] is None


def test_he_init_answers_to_matconvnets_name_xavierimproved():
    x = an.Input()
    np.random.seed(5)
    he = nn.conv(x, size=(3, 3, 16, 32), init="he").inputs[1].value
    np.random.seed(5)
    improved = nn.conv(x, size=(3, 3, 16, 32), init="xavierimproved").inputs[1].value
    np.testing.assert_array_equal(he, improved)
    assert abs(he.std() - np.sqrt(2 / (3 * 3 * 16))) < 0.01


def test_conv_in_a_net_matches_eager_values_and_derivatives():
    rng = np.random.default_rng(9)
    x = an.Input(name="x")
    y = nn.pool(nn.conv(x, size=(3, 3, 2, 4), pad=1, dtype=np.float64), 2, stride=2)
    net = an.Net(y.sum())
    images = random(rng, (2, 2, 6, 6))
    net.eval({"x": images})
    w, b = (p.value for p in net.params)
    conv_out = nn.conv(images, w, b, pad=1)
    np.testing.assert_allclose(net.value(y).sum(), nn.pool(conv_out, 2, stride=2).sum())
    dconv = nn.pool(conv_out, 2, stride=2, dzdy=np.ones((2, 4, 3, 3)))
    dx, _, _ = nn.conv(images, w, b, pad=1, dzdy=dconv)
    np.testing.assert_allclose(net.der("x"), dx, rtol=1e-12)


# ----------------------------------------------------------------------------- bad input
X = np.zeros((2, 4, 5, 5), np.float32)
W = np.zeros((6, 2, 3, 3), np.float32)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: nn.conv(X[0], W), ValueError, r"conv: x must be 4-D .*\(4, 5, 5\)"),
    (lambda: nn.conv(X, W[0]), ValueError, r"conv: filters must be 4-D"),
    (lambda: nn.conv(X, np.zeros((6, 3, 3, 3), np.float32)), ValueError,
     r"conv: the channels of x \(C=4.*multiple of filters.shape\[1\] \(3"),
    (lambda: nn.conv(X, np.zeros((5, 2, 3, 3), np.float32)), ValueError,
     r"conv: the number of filters \(K=5.*groups G=2"),
    (lambda: nn.conv(X, W, np.zeros(5, np.float32)), ValueError,
     r"conv: biases must have shape \(6,\).*got \(5,\)"),
    (lambda: nn.conv(X, W, dilate=3), ValueError, r"conv: the filter window .*larger than the "
                                                  r"padded input"),
    (lambda: nn.conv(X, W, stride=0), ValueError, r"conv: stride must be at least 1"),
    (lambda: nn.conv(X, W, dilate=(1, -1)), ValueError, r"conv: dilate must be at least 1"),
    (lambda: nn.conv(X, W, pad=-1), ValueError, r"conv: pad must be non-negative"),
    (lambda: nn.conv(X, W.astype(np.float64)), TypeError, r"conv: .*share one dtype.*x float32"),
    (lambda: nn.conv(X.astype(np.float16), W.astype(np.float16)), TypeError,
     r"conv: x must be float32 or float64, got float16"),
    (lambda: nn.conv(X, W, dzdy=np.zeros((2, 6, 4, 4), np.float32)), ValueError,
     r"conv: dzdy must have the output shape \(2, 6, 3, 3\)"),
    (lambda: nn.conv(X, None, dilate=2), ValueError, r"conv: dilate must be 1 without filters"),
    (lambda: nn.conv(X, None, np.zeros(5, np.float32)), ValueError,
     r"conv: biases must have shape \(4,\) without filters.*got \(5,\)"),
    (lambda: nn.conv(X, None, np.zeros(4)), TypeError, r"conv: x and biases must share one "
                                                       r"dtype.*float32.*float64"),
    (lambda: nn.conv(X[0], None), ValueError, r"conv: x must be 4-D"),
    (lambda: nn.conv(X, size=(3, 3, 4, 2)), TypeError, r"conv: size= creates Params"),
    (lambda: nn.convt(X, W), ValueError, r"convt: filters.shape\[0\] \(6.*channels of x \(C=4"),
    (lambda: nn.convt(X, np.zeros((4, 2, 3, 3), np.float32), num_groups=3), ValueError,
     r"convt: num_groups=3 must divide"),
    (lambda: nn.convt(X, np.zeros((4, 2, 3, 3), np.float32), np.zeros(2, np.float32),
                      num_groups=2), ValueError, r"convt: biases must have shape \(4,\)"),
    (lambda: nn.convt(X, np.zeros((4, 2, 3, 3), np.float32), upsample=0), ValueError,
     r"convt: upsample must be at least 1"),
    (lambda: nn.convt(X, np.zeros((4, 2, 1, 1), np.float32), crop=3), ValueError,
     r"convt: the crop .* removes the whole output"),
])
def test_bad_arguments_raise_errors_naming_op_argument_and_shapes(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_bad_options_fail_when_building_a_graph():
    x = an.Input()
    with pytest.raises(ValueError, match="conv: stride must be at least 1"):
        nn.conv(x, size=(3, 3, 1, 1), stride=0)
    with pytest.raises(ValueError, match="conv: unknown init 'glorot'"):
        nn.conv(x, size=(3, 3, 1, 1), init="glorot")


def test_shape_rule_gives_the_output_size_without_computing():
    assert conv_module.conv_op.output_shape((2, 4, 9, 8), (6, 2, 3, 3), (6,), stride=(2, 2),
                                            pad=(1, 1, 1, 1), dilate=(1, 1)) == (2, 6, 5, 4)
    assert conv_module.convt_op.output_shape((2, 4, 3, 3), (4, 5, 3, 3), None,
                                             upsample=(2, 2), crop=(0, 1, 0, 1),
                                             num_groups=2) == (2, 10, 6, 6)


def test_the_units_are_not_chosen_for_a_large_filter_derivative_on_tiny_maps():
    """VGG-16's 512-channel 3x3 layers on 2x2 maps: the units' backward sums a 9.4 MB dW per
    thread from products with 12-pixel inner dimensions (5-30x slower than the chunked
    products); small layers keep the units."""
    from autonn.nn.convolution import conv_geometry
    from autonn.nn.convolution_schedules import choose_schedule

    def chosen(x_shape, w_shape, stride=1):
        x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
        return choose_schedule(conv_geometry("conv", x, w, None, stride, 1, 1),
                               np.float32).name

    assert chosen((32, 512, 2, 2), (512, 512, 3, 3)) != "units"
    assert chosen((32, 512, 4, 4), (512, 512, 3, 3)) != "units"
    assert chosen((64, 16, 8, 8), (32, 16, 3, 3), stride=2) == "units"  # a small dW
