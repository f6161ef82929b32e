/* loss.h -- the softmax log-loss (vl_nnloss 'softmaxlog', manual 4.6.2), fused.
 *
 * x is (N, C, S); position p = n*S + s has class label c = labels[p] and weight w = weights[p]
 * (0 for an ignored position, whose label is then any valid class).
 *
 *   forward   terms[p] = w (log sum_k exp(x_k - m) + m - x_c),  m = max_k x_k
 *             (the caller sums the terms, and divides by N when normalising)
 *   backward  dx_k = scale w (softmax(x)_k - [k == c])
 *
 * Work items are the position blocks of the softmax kernels, and the exponentials use
 * fast_exp, both from activation.h (included before this file).
 */
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "associative-math", "no-signed-zeros")
#endif

AN_INLINE void AN(softmaxlog_forward_block)(index_t item, const REAL *x, const index_t *labels,
                                            const REAL *weights, REAL *terms, REAL *scratch,
                                            index_t C, index_t S, index_t block)
{
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    const index_t first = (base / (C * S)) * S + base % (C * S);   /* position of the block */
    REAL maximum[AN_SOFTMAX_BLOCK];
    double total[AN_SOFTMAX_BLOCK];
    if (width == 1) {
        total[0] = AN(softmax_exp_position)(x + base, scratch + base, C, S, maximum);
    } else {
        AN(softmax_exp_block)(x + base, scratch + base, C, S, width, maximum, total);
    }
    for (index_t j = 0; j < width; ++j) {
        const REAL w = weights[first + j];
        terms[first + j] = w == 0 ? (REAL)0 : (REAL)(w * (log(total[j]) + maximum[j]
                                                          - x[base + labels[first + j] * S + j]));
    }
}

AN_KERNEL(softmaxlog_forward, blocks,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *terms,
           REAL *scratch, index_t C, index_t S, index_t block, index_t blocks),
          AN(softmaxlog_forward_block)(i, x, labels, weights, terms, scratch, C, S, block))

AN_INLINE void AN(softmaxlog_backward_block)(index_t item, const REAL *x, const index_t *labels,
                                             const REAL *weights, REAL *dx, index_t C,
                                             index_t S, index_t block, REAL scale)
{
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    const index_t first = (base / (C * S)) * S + base % (C * S);
    REAL maximum[AN_SOFTMAX_BLOCK], factor[AN_SOFTMAX_BLOCK];
    double total[AN_SOFTMAX_BLOCK];
    if (width == 1) {
        total[0] = AN(softmax_exp_position)(x + base, dx + base, C, S, maximum);
    } else {
        AN(softmax_exp_block)(x + base, dx + base, C, S, width, maximum, total);
    }
    for (index_t j = 0; j < width; ++j)
        factor[j] = (REAL)(scale * weights[first + j] / total[j]);
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            dx[base + k * S + j] *= factor[j];
    for (index_t j = 0; j < width; ++j)
        dx[base + labels[first + j] * S + j] -= scale * weights[first + j];
}

AN_KERNEL(softmaxlog_backward, blocks,
          (const REAL *x, const index_t *labels, const REAL *weights, REAL *dx, index_t C,
           index_t S, index_t block, REAL scale, index_t blocks),
          AN(softmaxlog_backward_block)(i, x, labels, weights, dx, C, S, block, scale))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
