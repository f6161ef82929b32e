/* _cblas.h -- helper header, not a kernel family, CPU only: the single-threaded cblas_?gemm
 * that the CPU drivers of conv.h (conv_forward_units, conv_backward_units) and gemm.h
 * (gemm_batched) call through the `void *gemm` the caller passes (autonn.kernels.cpu_gemm).
 *
 *   AN_CBLAS_ROW_MAJOR, AN_CBLAS_NO_TRANS, AN_CBLAS_TRANS
 *                      CBLAS's values of its enums (type-independent: defined once per
 *                      translation unit, under an ordinary include guard)
 *   AN(cblas_gemm_t)   the type of cblas_sgemm (REAL = float) or cblas_dgemm (REAL = double),
 *                      defined once per REAL pass (guard AN_CBLAS_F32 / _F64; see portable.h)
 *
 * Everything here is under #ifndef __CUDACC__: the GPU has no BLAS to call.
 */
#if !defined(AN_REAL_IS_DOUBLE)
#error "_cblas.h: no AN_REAL_IS_DOUBLE; include it from a family (see portable.h)"
#endif

#ifndef __CUDACC__

#ifndef AN_CBLAS_CONSTANTS
#define AN_CBLAS_CONSTANTS            /* once per translation unit, not per REAL pass */
enum { AN_CBLAS_ROW_MAJOR = 101, AN_CBLAS_NO_TRANS = 111, AN_CBLAS_TRANS = 112 };
#endif

#if (AN_REAL_IS_DOUBLE && !defined(AN_CBLAS_F64)) || (!AN_REAL_IS_DOUBLE && !defined(AN_CBLAS_F32))
#if AN_REAL_IS_DOUBLE
#define AN_CBLAS_F64
#else
#define AN_CBLAS_F32
#endif

typedef void (*AN(cblas_gemm_t))(int order, int trans_a, int trans_b, int m, int n, int k,
                                 REAL alpha, const REAL *a, int lda, const REAL *b, int ldb,
                                 REAL beta, REAL *c, int ldc);

#endif /* once per REAL pass */

#endif /* __CUDACC__ */
