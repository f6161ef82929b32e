/* _softmax.h -- helper header, not a kernel family: the work items of the softmax kernels
 * (blocks of positions, AN_SOFTMAX_BLOCK) and the exponentials of one position or block of
 * positions, shared by activation.h (softmax) and loss.h (the fused softmax log-loss).
 *
 * x is (N, C, S), S = H*W, channel k of position (n, s) at n*C*S + k*S + s. Guarded once per
 * REAL pass (AN_SOFTMAX_HELPERS_F32 / _F64), like every helper (see portable.h).
 */
#include "_fast_exp.h"

#if !defined(AN_REAL_IS_DOUBLE)
#error "_softmax.h: no AN_REAL_IS_DOUBLE; include it from a family (see portable.h)"
#elif (AN_REAL_IS_DOUBLE && !defined(AN_SOFTMAX_HELPERS_F64)) \
    || (!AN_REAL_IS_DOUBLE && !defined(AN_SOFTMAX_HELPERS_F32))
#if AN_REAL_IS_DOUBLE
#define AN_SOFTMAX_HELPERS_F64
#else
#define AN_SOFTMAX_HELPERS_F32
#endif

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* Softmax work items are blocks of up to `block` consecutive positions s of one image n (at
 * most AN_SOFTMAX_BLOCK): the loops run over channels outside and positions inside, which are
 * contiguous, so they vectorise; the GPU uses block = 1, and a block of width 1 walks its
 * channels directly. For (N, C) scores (S = 1) a work item is instead `block` whole rows, each
 * contiguous, so that small batches stay on one thread (waking threads costs more than the
 * work) and large ones are shared. */
#ifndef AN_SOFTMAX_BLOCK
#if defined(__CUDACC__)
#define AN_SOFTMAX_BLOCK 1      /* one position per thread: keeps the per-thread arrays small */
#else
#define AN_SOFTMAX_BLOCK 128
#endif
#endif

AN_INLINE index_t AN(softmax_block)(index_t item, index_t C, index_t S, index_t block,
                                    index_t *width)
{
    const index_t per_image = (S + block - 1) / block;
    const index_t n = item / per_image, s0 = (item % per_image) * block;
    *width = S - s0 < block ? S - s0 : block;
    return n * C * S + s0;
}

/* out_k = exp(x_k - m) for k < C, m = max_k x_k; returns sum_k out_k (one position). */
AN_INLINE double AN(softmax_exp_position)(const REAL *x, REAL *out, index_t C, index_t S,
                                          REAL *maximum)
{
    if (S == 1) {   /* (N, C) scores: unit stride, which the compiler vectorises */
        /* Four running maxima: a single one is a chain of dependent compares. */
        REAL m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0];
        index_t k = 0;
        for (; k + 4 <= C; k += 4) {
            m0 = x[k] > m0 ? x[k] : m0;
            m1 = x[k + 1] > m1 ? x[k + 1] : m1;
            m2 = x[k + 2] > m2 ? x[k + 2] : m2;
            m3 = x[k + 3] > m3 ? x[k + 3] : m3;
        }
        for (; k < C; ++k)
            m0 = x[k] > m0 ? x[k] : m0;
        m0 = m1 > m0 ? m1 : m0;
        m2 = m3 > m2 ? m3 : m2;
        const REAL m = m2 > m0 ? m2 : m0;
        for (index_t k = 0; k < C; ++k)
            out[k] = AN(fast_exp)(x[k] - m);
        /* Summed apart from the exponentials so that their loop vectorises; four partial
           sums break the chain of dependent additions. */
        double t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (k = 0; k + 4 <= C; k += 4) {
            t0 += out[k];
            t1 += out[k + 1];
            t2 += out[k + 2];
            t3 += out[k + 3];
        }
        for (; k < C; ++k)
            t0 += out[k];
        *maximum = m;
        return (t0 + t1) + (t2 + t3);
    }
    REAL m = x[0];
    for (index_t k = 1; k < C; ++k)
        m = x[k * S] > m ? x[k * S] : m;
    double total = 0;
    for (index_t k = 0; k < C; ++k) {
        const REAL e = AN(fast_exp)(x[k * S] - m);
        out[k * S] = e;
        total += e;
    }
    *maximum = m;
    return total;
}

/* The same for `width` positions at once; maximum[j] and total[j] per position. */
AN_INLINE void AN(softmax_exp_block)(const REAL *AN_RESTRICT x, REAL *AN_RESTRICT out,
                                     index_t C, index_t S, index_t width, REAL *maximum,
                                     double *total)
{
    for (index_t j = 0; j < width; ++j) { maximum[j] = x[j]; total[j] = 0; }
    for (index_t k = 1; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            maximum[j] = x[k * S + j] > maximum[j] ? x[k * S + j] : maximum[j];
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j) {
            const REAL e = AN(fast_exp)(x[k * S + j] - maximum[j]);
            out[k * S + j] = e;
            total[j] += e;
        }
}

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* once per REAL pass */
