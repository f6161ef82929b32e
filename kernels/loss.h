/* loss.h -- the categorical losses of vl_nnloss: the softmax log-loss (manual 4.6.2), fused,
 * and classerror, topkerror, log, mhinge, mshinge.
 *
 * x is (N, C, S); position p = n*S + s has class label c = labels[p] and weight w = weights[p]
 * (0 for an ignored position, whose label is then any valid class).
 *
 *   forward   terms[p] = w (log sum_k exp(x_k - m) + m - x_c),  m = max_k x_k
 *             (the caller sums the terms, and divides by N when normalising)
 *   backward  dx_k = scale w (softmax(x)_k - [k == c])
 *
 * Work items are those of the softmax kernels (blocks of positions, or of rows for (N, C)
 * scores), from the helper _softmax.h, which activation.h includes too; the exponentials use
 * fast_exp, from the helper _fast_exp.h. This family needs no other family.
 */
#include "_fast_exp.h"
#include "_softmax.h"

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* sum_k exp(x_k - m) over the C channels of `width` positions (stride S between channels),
 * m = maximum[j], without storing the exponentials: for (N, C) scores, along the contiguous
 * channels as SIMD reductions (the sum in double); otherwise along the positions, which are
 * contiguous. */
AN_INLINE void AN(softmax_sums)(const REAL *AN_RESTRICT x, index_t C, index_t S, index_t width,
                                REAL *maximum, double *total)
{
    if (width == 1 && S == 1) {     /* (N, C) scores: the channels are contiguous */
        REAL m = x[0];
        AN_SIMD_REDUCTION(max, m)
        for (index_t k = 1; k < C; ++k)
            m = x[k] > m ? x[k] : m;
        double sum = 0;
        AN_SIMD_REDUCTION(+, sum)
        for (index_t k = 0; k < C; ++k)
            sum += AN(fast_exp)(x[k] - m);
        maximum[0] = m;
        total[0] = sum;
        return;
    }
    for (index_t j = 0; j < width; ++j) { maximum[j] = x[j]; total[j] = 0; }
    for (index_t k = 1; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            maximum[j] = x[k * S + j] > maximum[j] ? x[k * S + j] : maximum[j];
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            total[j] += AN(fast_exp)(x[k * S + j] - maximum[j]);
}

AN_INLINE void AN(softmaxlog_forward_positions)(index_t base, index_t first, index_t width,
                                                const REAL *x, const index_t *labels,
                                                const REAL *weights, REAL *terms, index_t C,
                                                index_t S)
{
    REAL maximum[AN_SOFTMAX_BLOCK];
    double total[AN_SOFTMAX_BLOCK];
    AN(softmax_sums)(x + base, C, S, width, maximum, total);
    for (index_t j = 0; j < width; ++j) {
        const REAL w = weights[first + j];
        terms[first + j] = w == 0 ? (REAL)0 : (REAL)(w * (log(total[j]) + maximum[j]
                                                          - x[base + labels[first + j] * S + j]));
    }
}

AN_INLINE void AN(softmaxlog_forward_block)(index_t item, const REAL *x, const index_t *labels,
                                            const REAL *weights, REAL *terms, index_t C,
                                            index_t S, index_t block, index_t positions)
{
    if (S == 1) {   /* (N, C) scores: `block` whole rows per work item */
        const index_t last = (item + 1) * block < positions ? (item + 1) * block : positions;
        for (index_t n = item * block; n < last; ++n)
            AN(softmaxlog_forward_positions)(n * C, n, 1, x, labels, weights, terms, C, 1);
        return;
    }
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    const index_t first = (base / (C * S)) * S + base % (C * S);   /* position of the block */
    AN(softmaxlog_forward_positions)(base, first, width, x, labels, weights, terms, C, S);
}

AN_KERNEL_SIZED(softmaxlog_forward, blocks, positions * C,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *terms, index_t C,
           index_t S, index_t block, index_t positions, index_t blocks),
          AN(softmaxlog_forward_block)(i, x, labels, weights, terms, C, S, block, positions))

AN_INLINE void AN(softmaxlog_backward_positions)(index_t base, index_t first, index_t width,
                                                 const REAL *x, const index_t *labels,
                                                 const REAL *weights, REAL *dx, index_t C,
                                                 index_t S, REAL scale)
{
    REAL maximum[AN_SOFTMAX_BLOCK], factor[AN_SOFTMAX_BLOCK];
    double total[AN_SOFTMAX_BLOCK];
    if (width == 1) {
        total[0] = AN(softmax_exp_position)(x + base, dx + base, C, S, maximum);
    } else {
        AN(softmax_exp_block)(x + base, dx + base, C, S, width, maximum, total);
    }
    for (index_t j = 0; j < width; ++j)
        factor[j] = (REAL)(scale * weights[first + j] / total[j]);
    if (width == 1) {   /* one position: walk its channels (unit stride for (N, C) scores) */
        for (index_t k = 0; k < C; ++k)
            dx[base + k * S] *= factor[0];
    } else {
        for (index_t k = 0; k < C; ++k)
            for (index_t j = 0; j < width; ++j)
                dx[base + k * S + j] *= factor[j];
    }
    for (index_t j = 0; j < width; ++j)
        dx[base + labels[first + j] * S + j] -= scale * weights[first + j];
}

AN_INLINE void AN(softmaxlog_backward_block)(index_t item, const REAL *x, const index_t *labels,
                                             const REAL *weights, REAL *dx, index_t C,
                                             index_t S, index_t block, REAL scale,
                                             index_t positions)
{
    if (S == 1) {   /* (N, C) scores: `block` whole rows per work item */
        const index_t last = (item + 1) * block < positions ? (item + 1) * block : positions;
        for (index_t n = item * block; n < last; ++n)
            AN(softmaxlog_backward_positions)(n * C, n, 1, x, labels, weights, dx, C, 1, scale);
        return;
    }
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    const index_t first = (base / (C * S)) * S + base % (C * S);
    AN(softmaxlog_backward_positions)(base, first, width, x, labels, weights, dx, C, S, scale);
}

AN_KERNEL_SIZED(softmaxlog_backward, blocks, positions * C,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *dx, index_t C,
           index_t S, index_t block, REAL scale, index_t positions, index_t blocks),
          AN(softmaxlog_backward_block)(i, x, labels, weights, dx, C, S, block, scale,
                                        positions))

/* The other categorical losses, one work item per position p (channel k at stride S); `kind`
 * selects the loss:
 *   0 classerror  t = [first argmax_k x_k != c]           (derivative 0)
 *   1 topkerror   t = [rank of c >= topk], rank = #{k: x_k > x_c} + #{k < c: x_k = x_c}
 *                 (a stable descending sort, as MATLAB's)    (derivative 0)
 *   2 log         t = -log max(x_c, 1e-8);                dx_c = -w / max(x_c, 1e-8)
 *   3 mhinge      t = max(0, 1 - x_c);                    dx_c = -w [x_c < 1]
 *   4 mshinge     t = max(0, 1 - x_c + x_q), q the first argmax over k != c (none when C = 1);
 *                 dx_c = -w [x_c - x_q < 1], dx_q = +w [x_c - x_q < 1]
 */
AN_INLINE void AN(categorical_forward_position)(index_t item, const REAL *x,
                                                const index_t *labels, const REAL *weights,
                                                REAL *terms, index_t C, index_t S, int kind,
                                                index_t topk)
{
    const REAL w = weights[item];
    if (w == 0) { terms[item] = 0; return; }
    const REAL *xp = x + (item / S) * C * S + item % S;
    const index_t c = labels[item];
    const REAL xc = xp[c * S];
    double t = 0;
    if (kind == 0) {
        index_t best = 0;
        for (index_t k = 1; k < C; ++k)
            if (xp[k * S] > xp[best * S]) best = k;
        t = best != c;
    } else if (kind == 1) {
        index_t rank = 0;
        for (index_t k = 0; k < C; ++k)
            rank += xp[k * S] > xc || (k < c && xp[k * S] == xc);
        t = rank >= topk;
    } else if (kind == 2) {
        t = -log(xc > (REAL)1e-8 || xc != xc ? (double)xc : 1e-8);   /* (NaN stays NaN) */
    } else if (kind == 3) {
        t = 1 - xc > 0 ? 1 - xc : 0;
    } else if (C > 1) {
        index_t q = c == 0 ? 1 : 0;
        for (index_t k = q + 1; k < C; ++k)
            if (k != c && xp[k * S] > xp[q * S]) q = k;
        const double margin = 1 - (double)xc + xp[q * S];
        t = margin > 0 ? margin : 0;
    }
    terms[item] = (REAL)(w * t);
}

AN_KERNEL_SIZED(categorical_forward, positions, positions * C,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *terms, index_t C,
           index_t S, int kind, index_t topk, index_t positions),
          AN(categorical_forward_position)(i, x, labels, weights, terms, C, S, kind, topk))

AN_INLINE void AN(categorical_backward_position)(index_t item, const REAL *x,
                                                 const index_t *labels, const REAL *weights,
                                                 REAL *dx, index_t C, index_t S, int kind,
                                                 REAL scale)
{
    const index_t base = (item / S) * C * S + item % S;
    const REAL *xp = x + base;
    REAL *dxp = dx + base;
    for (index_t k = 0; k < C; ++k) dxp[k * S] = 0;
    const REAL w = weights[item] * scale;
    if (w == 0 || kind < 2) return;
    const index_t c = labels[item];
    const REAL xc = xp[c * S];
    if (kind == 2) {
        dxp[c * S] = -w / (xc > (REAL)1e-8 || xc != xc ? xc : (REAL)1e-8);
    } else if (kind == 3) {
        dxp[c * S] = xc < 1 ? -w : 0;
    } else if (C > 1) {
        index_t q = c == 0 ? 1 : 0;
        for (index_t k = q + 1; k < C; ++k)
            if (k != c && xp[k * S] > xp[q * S]) q = k;
        if (xc - xp[q * S] < 1) {
            dxp[c * S] = -w;
            dxp[q * S] = w;
        }
    }
}

AN_KERNEL_SIZED(categorical_backward, positions, positions * C,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *dx, index_t C,
           index_t S, int kind, REAL scale, index_t positions),
          AN(categorical_backward_position)(i, x, labels, weights, dx, C, S, kind, scale))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

