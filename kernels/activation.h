/* activation.h -- relu, sigmoid and softmax (manual 4.4, 6.4, 6.5.4).
 *
 *   relu:     y = x > 0 ? x : leak * x;          dx = y > 0 ? dy : leak * dy   (reads y only)
 *   sigmoid:  y = 1 / (1 + exp(-x)), as exp(min(x,0)) / (1 + exp(-|x|)) so nothing overflows;
 *             dx = dy * y * (1 - y)
 *   softmax:  over the C channels of every (n, s) position of x (N, C, S), S = H*W:
 *             y_k = exp(x_k - m) / sum_t exp(x_t - m), m = max_t x_t;
 *             dx_d = y_d (dy_d - sum_k dy_k y_k)
 * Softmax work items are positions (n, s); channel k of position (n, s) sits at n*C*S + k*S + s.
 */

/* Element-wise kernels work on chunks of `chunk` consecutive elements per work item: on the CPU
 * a chunk of a few thousand elements is an inner loop that gcc vectorises (a select such as
 * `v > 0 ? v : leak * v` only vectorises without trapping-math, hence the pragma, scoped to
 * this file); on the GPU chunk = 1 gives one element per thread. AN_RESTRICT promises that
 * inputs and outputs do not overlap, which the callers guarantee (outputs are fresh arrays). */
#ifndef AN_RESTRICT
#if defined(__CUDACC__)
#define AN_RESTRICT __restrict__
#else
#define AN_RESTRICT restrict
#endif
#endif
#ifndef AN_CHUNK_END
#define AN_CHUNK_END(item, n, chunk) (((item) + 1) * (chunk) < (n) ? ((item) + 1) * (chunk) : (n))
#endif

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

AN_INLINE void AN(relu_forward_chunk)(index_t item, const REAL *AN_RESTRICT x,
                                      REAL *AN_RESTRICT y, REAL leak, index_t n, index_t chunk)
{
    const index_t end = AN_CHUNK_END(item, n, chunk);
    for (index_t j = item * chunk; j < end; ++j) {
        const REAL v = x[j];
        y[j] = v > 0 ? v : leak * v;
    }
}

AN_KERNEL(relu_forward, (n + chunk - 1) / chunk,
          (const REAL *x, REAL *y, REAL leak, index_t n, index_t chunk),
          AN(relu_forward_chunk)(i, x, y, leak, n, chunk))

AN_INLINE void AN(relu_backward_chunk)(index_t item, const REAL *AN_RESTRICT y,
                                       const REAL *AN_RESTRICT dy, REAL *AN_RESTRICT dx,
                                       REAL leak, index_t n, index_t chunk)
{
    const index_t end = AN_CHUNK_END(item, n, chunk);
    for (index_t j = item * chunk; j < end; ++j) {
        const REAL d = dy[j];
        dx[j] = y[j] > 0 ? d : leak * d;
    }
}

AN_KERNEL(relu_backward, (n + chunk - 1) / chunk,
          (const REAL *y, const REAL *dy, REAL *dx, REAL leak, index_t n, index_t chunk),
          AN(relu_backward_chunk)(i, y, dy, dx, leak, n, chunk))

AN_INLINE void AN(sigmoid_backward_chunk)(index_t item, const REAL *AN_RESTRICT y,
                                          const REAL *AN_RESTRICT dy, REAL *AN_RESTRICT dx,
                                          index_t n, index_t chunk)
{
    const index_t end = AN_CHUNK_END(item, n, chunk);
    for (index_t j = item * chunk; j < end; ++j)
        dx[j] = dy[j] * y[j] * (1 - y[j]);
}

AN_KERNEL(sigmoid_backward, (n + chunk - 1) / chunk,
          (const REAL *y, const REAL *dy, REAL *dx, index_t n, index_t chunk),
          AN(sigmoid_backward_chunk)(i, y, dy, dx, n, chunk))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

AN_INLINE void AN(sigmoid_forward_element)(index_t i, const REAL *x, REAL *y)
{
    const REAL e = exp(-fabs((double)x[i]));
    y[i] = (x[i] >= 0 ? (REAL)1 : e) / (1 + e);
}

AN_KERNEL(sigmoid_forward, n, (const REAL *x, REAL *y, index_t n),
          AN(sigmoid_forward_element)(i, x, y))


AN_INLINE void AN(softmax_forward_position)(index_t item, const REAL *x, REAL *y,
                                            index_t C, index_t S)
{
    const index_t base = (item / S) * C * S + item % S;
    REAL m = x[base];
    for (index_t k = 1; k < C; ++k)
        m = x[base + k * S] > m ? x[base + k * S] : m;
    double total = 0;
    for (index_t k = 0; k < C; ++k) {
        const REAL e = exp((double)(x[base + k * S] - m));
        y[base + k * S] = e;
        total += e;
    }
    const REAL scale = (REAL)(1 / total);
    for (index_t k = 0; k < C; ++k)
        y[base + k * S] *= scale;
}

AN_KERNEL(softmax_forward, positions, (const REAL *x, REAL *y, index_t C, index_t S,
                                       index_t positions),
          AN(softmax_forward_position)(i, x, y, C, S))

AN_INLINE void AN(softmax_backward_position)(index_t item, const REAL *y, const REAL *dy,
                                             REAL *dx, index_t C, index_t S)
{
    const index_t base = (item / S) * C * S + item % S;
    double projection = 0;
    for (index_t k = 0; k < C; ++k)
        projection += (double)dy[base + k * S] * y[base + k * S];
    for (index_t k = 0; k < C; ++k)
        dx[base + k * S] = y[base + k * S] * (REAL)(dy[base + k * S] - projection);
}

AN_KERNEL(softmax_backward, positions, (const REAL *y, const REAL *dy, REAL *dx, index_t C,
                                        index_t S, index_t positions),
          AN(softmax_backward_position)(i, y, dy, dx, C, S))
