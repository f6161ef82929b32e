"""kernels.matmul: matrix products in OpenMP's threads (kernels/gemm.h) against NumPy's matmul."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autonn import kernels

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(autouse=True, scope="module")
def every_product_in_openmps_threads():
    """The small products of these tests would otherwise go to NumPy's matmul."""
    saved, kernels.MATMUL_MIN_WORK = kernels.MATMUL_MIN_WORK, 0
    yield
    kernels.MATMUL_MIN_WORK = saved


def operand(rng, shape, transposed, dtype):
    """A matrix (or batch) of this shape, stored transposed when asked (a transposed view)."""
    if not transposed:
        return rng.standard_normal(shape).astype(dtype)
    stored = rng.standard_normal(shape[:-2] + shape[-1:] + shape[-2:-1]).astype(dtype)
    return np.swapaxes(stored, -1, -2)


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 80), N=st.integers(1, 80), K=st.integers(1, 70),
       batch=st.sampled_from([None, 1, 3]), shared=st.sampled_from([None, "a", "b"]),
       trans_a=st.booleans(), trans_b=st.booleans(), double=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matmul_gives_numpys_product(M, N, K, batch, shared, trans_a, trans_b, double, seed):
    """2-D products and batches (one operand possibly shared by the batch), either operand
    transposed, products small enough for one block and large enough for several."""
    dtype = np.float64 if double else np.float32
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    a = operand(rng, (lead if shared != "a" else ()) + (M, K), trans_a, dtype)
    b = operand(rng, (lead if shared != "b" else ()) + (K, N), trans_b, dtype)
    assert kernels._gemm_plan(a, b, np.empty(lead + (M, N), dtype)) is not None
    np.testing.assert_allclose(kernels.matmul(a, b), np.matmul(a, b), **TOL[dtype])


def test_matmul_writes_into_out_and_splits_large_products_across_threads():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 300, 200)), rng.standard_normal((200, 500))
    out = np.full((2, 300, 500), np.nan)
    assert kernels.matmul(a, b, out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_layouts_a_blas_cannot_read_fall_back_to_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((8, 6)), rng.standard_normal((12, 5))
    every_other_row = b[::2]                            # a leading dimension of 10: readable
    assert kernels._gemm_plan(a, every_other_row, np.empty((8, 5))) is not None
    np.testing.assert_allclose(kernels.matmul(a, every_other_row), a @ every_other_row,
                               rtol=1e-12)
    strided_both = rng.standard_normal((12, 10))[::2, ::2]
    assert kernels._gemm_plan(a, strided_both, np.empty((8, 5))) is None
    np.testing.assert_allclose(kernels.matmul(a, strided_both), a @ strided_both, rtol=1e-12)
    square = rng.standard_normal((6, 6))
    expected = square @ square
    assert kernels._gemm_plan(square, square, square) is None       # out overlaps an operand
    np.testing.assert_allclose(kernels.matmul(square, square, square), expected, rtol=1e-12)
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(kernels.matmul(ints, ints.T), ints @ ints.T)
    assert kernels.matmul(np.zeros((3, 0)), np.zeros((0, 4))).shape == (3, 4)


def test_mismatched_shapes_are_numpys_error():
    with pytest.raises(ValueError, match="matmul"):
        kernels.matmul(np.zeros((3, 4)), np.zeros((5, 2)))


@pytest.mark.parametrize("groups", [1, 2])
def test_batches_with_a_group_axis_drop_it_when_it_has_length_one(groups):
    """conv's products per image and group: (G, K, R) filters times (n, G, R, P) patches; one
    group is a 3-D batch for the BLAS, two go to NumPy's matmul."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((groups, 5, 7)).astype(np.float32)
    patches = rng.standard_normal((groups, 7, 4, 9)).astype(np.float32).transpose(2, 0, 1, 3)
    out = np.empty((4, groups, 5, 9), np.float32)
    assert kernels.matmul(w, patches, out) is out
    np.testing.assert_allclose(out, np.matmul(w, patches), rtol=1e-5, atol=1e-5)
    if groups == 1:
        squeezed = [kernels._drop_batch_axes(a, 4, {1}) for a in (w, patches, out)]
        assert kernels._gemm_plan(*squeezed) is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_bias_is_added_to_every_row_of_each_product(dtype):
    """conv's 1x1 layers: (K, C) filters times (N, C, HW) images plus b[k] on row k, split
    across threads by image and within an image; NumPy's fallback (ints) adds it too."""
    rng = np.random.default_rng(4)
    w, x, b = (rng.standard_normal(shape).astype(dtype) for shape in [(6, 40), (3, 40, 90), (6,)])
    np.testing.assert_allclose(kernels.matmul(w, x, row_bias=b), w @ x + b[:, None],
                               **TOL[dtype])
    np.testing.assert_allclose(kernels.matmul(w, x[0], row_bias=b), w @ x[0] + b[:, None],
                               **TOL[dtype])
    tall, bias = rng.standard_normal((200, 40)).astype(dtype), np.arange(200).astype(dtype)
    np.testing.assert_allclose(kernels.matmul(tall, x[0, :, :30], row_bias=bias),  # row blocks
                               tall @ x[0, :, :30] + bias[:, None], **TOL[dtype])
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(kernels.matmul(ints, ints.T, row_bias=np.array([1, 2])),
                                  ints @ ints.T + [[1], [2]])
    with pytest.raises(ValueError, match=r"row_bias must have shape \(6,\)"):
        kernels.matmul(w, x, row_bias=b[:4])


def test_small_products_and_vectors_go_to_numpy(monkeypatch):
    monkeypatch.setattr(kernels, "MATMUL_MIN_WORK", 2**18)
    rng = np.random.default_rng(5)
    a, b, v = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(5)
    np.testing.assert_allclose(kernels.matmul(a, b, row_bias=np.ones(4)), a @ b + 1,
                               rtol=1e-12)
    np.testing.assert_allclose(kernels.matmul(a, v), a @ v, rtol=1e-12)
    np.testing.assert_allclose(kernels.matmul(v, b), v @ b, rtol=1e-12)
