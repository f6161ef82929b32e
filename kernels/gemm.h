/* gemm.h -- CPU only: matrix products in OpenMP's threads.
 *
 *     C[b] = A[b] . B[b] (+ bias[i] on every row i)    for b < batch, row-major, A and B
 *                                                      optionally transposed
 *
 * Each work item, a block of rows or columns of one C[b], is one call of the single-threaded
 * cblas_?gemm the caller passes (autonn.kernels.cpu_gemm). autonn's CPU ops take their matrix
 * products here rather than from NumPy's matmul because NumPy's OpenBLAS threads keep spinning
 * for a while after each product and take the cores from the OpenMP kernels that run next
 * (LeNet's training step ran 1.6x faster with those threads out of the way). Strides and leading dimensions count elements; a batch stride of 0 shares one
 * matrix across the batch. The bias (use_bias = 1; any valid pointer otherwise) is added to
 * each block as soon as its product is done, while the block is still in cache: conv's 1x1
 * layers are one call. The BLAS's type and CBLAS's constants come from the helper _cblas.h
 * (conv.h includes it too); this family needs no other family.
 */
#ifndef __CUDACC__
#include "_cblas.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Output blocks are at least this many rows or columns (thinner GEMMs lose the BLAS's speed). */
#ifndef AN_GEMM_MIN_BLOCK
#define AN_GEMM_MIN_BLOCK 32
#endif

AN_CPU_FUNCTION(gemm_batched,
                (int trans_a, int trans_b, index_t batch, index_t M, index_t N, index_t K,
                 const REAL *A, index_t lda, index_t stride_a,
                 const REAL *B, index_t ldb, index_t stride_b,
                 REAL *C, index_t ldc, index_t stride_c, const REAL *bias, int use_bias,
                 void *gemm))
{
    const AN(cblas_gemm_t) gemm_fn = (AN(cblas_gemm_t))gemm;
#ifdef _OPENMP
    const index_t threads = omp_get_max_threads();
#else
    const index_t threads = 1;
#endif
    /* Split C[b] along its longer side into about as many blocks as keep every thread busy
       (counting the whole batch), none thinner than AN_GEMM_MIN_BLOCK. */
    const int by_rows = M > N;
    const index_t side = by_rows ? M : N;
    index_t blocks = (threads + batch - 1) / batch;
    if (blocks > side / AN_GEMM_MIN_BLOCK) blocks = side / AN_GEMM_MIN_BLOCK;
    if (blocks < 1) blocks = 1;
    const index_t block = (side + blocks - 1) / blocks;
    const double work = (double)batch * M * N * K;
    #pragma omp parallel for schedule(dynamic) if(batch * blocks > 1 && work >= 1e6)
    for (index_t item = 0; item < batch * blocks; ++item) {
        const index_t b = item / blocks, start = item % blocks * block;
        const index_t size = side - start < block ? side - start : block;
        if (size <= 0) continue;
        const REAL *a = A + b * stride_a, *bm = B + b * stride_b;
        REAL *c = C + b * stride_c;
        index_t rows = M, columns = size, first_row = 0;     /* the block of C[b] */
        if (by_rows) {          /* rows [start, start + size) of C: the same rows of op(A) */
            a += trans_a ? start : start * lda;
            c += start * ldc;
            rows = size, columns = N, first_row = start;
            gemm_fn(AN_CBLAS_ROW_MAJOR, trans_a ? AN_CBLAS_TRANS : AN_CBLAS_NO_TRANS,
                    trans_b ? AN_CBLAS_TRANS : AN_CBLAS_NO_TRANS, (int)size, (int)N, (int)K, 1, a,
                    (int)lda, bm, (int)ldb, 0, c, (int)ldc);
        } else {                /* columns [start, start + size): the same columns of op(B) */
            bm += trans_b ? start * ldb : start;
            c += start;
            gemm_fn(AN_CBLAS_ROW_MAJOR, trans_a ? AN_CBLAS_TRANS : AN_CBLAS_NO_TRANS,
                    trans_b ? AN_CBLAS_TRANS : AN_CBLAS_NO_TRANS, (int)M, (int)size, (int)K, 1, a,
                    (int)lda, bm, (int)ldb, 0, c, (int)ldc);
        }
        if (use_bias)
            for (index_t i = 0; i < rows; ++i) {
                const REAL offset = bias[first_row + i];
                for (index_t j = 0; j < columns; ++j) c[i * ldc + j] += offset;
            }
    }
    return 0;
}
#endif /* __CUDACC__ */
