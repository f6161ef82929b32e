/* activation.h -- relu, sigmoid and softmax (manual 4.4, 6.4, 6.5.4).
 *
 *   relu:     y = x > 0 ? x : leak * x;          dx = y > 0 ? dy : leak * dy   (reads y only)
 *   sigmoid:  y = 1 / (1 + exp(-x)), as exp(min(x,0)) / (1 + exp(-|x|)) so nothing overflows;
 *             dx = dy * y * (1 - y)
 *   softmax:  over the C channels of every (n, s) position of x (N, C, S), S = H*W:
 *             y_k = exp(x_k - m) / sum_t exp(x_t - m), m = max_t x_t;
 *             dx_d = y_d (dy_d - sum_k dy_k y_k)
 * Channel k of position (n, s) sits at n*C*S + k*S + s.
 *
 * fast_exp comes from the helper _fast_exp.h; the softmax work items (blocks of positions) and
 * the exponentials of a block from _softmax.h, which loss.h includes too.
 */
#include "_fast_exp.h"
#include "_softmax.h"

/* Element-wise kernels work on chunks of `chunk` consecutive elements per work item: on the CPU
 * a chunk of a few thousand elements is an inner loop that gcc vectorises (a select such as
 * `v > 0 ? v : leak * v` only vectorises without trapping-math, hence the pragma, scoped to
 * this file; reassociation stays off, since it would undo fast_exp's two-part ln2); on the GPU
 * chunk = 1 gives one element per thread. AN_RESTRICT promises that inputs and outputs do not
 * overlap, which the callers guarantee (outputs are fresh arrays). A work item is many
 * elements' work, so the kernels give OpenMP their element counts (AN_KERNEL_SIZED). */

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
        /* + 0 makes leak * v = -0.0 (leak 0, v < 0) a +0.0, as max(v, 0) gives */
        y[j] = v > 0 ? v : leak * v + (REAL)0;
    }
}

AN_KERNEL_SIZED(relu_forward, (n + chunk - 1) / chunk, n,
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

AN_KERNEL_SIZED(relu_backward, (n + chunk - 1) / chunk, n,
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

AN_KERNEL_SIZED(sigmoid_backward, (n + chunk - 1) / chunk, n,
          (const REAL *y, const REAL *dy, REAL *dx, index_t n, index_t chunk),
          AN(sigmoid_backward_chunk)(i, y, dy, dx, n, chunk))

AN_INLINE void AN(sigmoid_forward_chunk)(index_t item, const REAL *AN_RESTRICT x,
                                         REAL *AN_RESTRICT y, index_t n, index_t chunk)
{
    const index_t end = AN_CHUNK_END(item, n, chunk);
    for (index_t j = item * chunk; j < end; ++j) {
        const REAL v = x[j];
        const REAL e = AN(fast_exp)(v > 0 ? -v : v);     /* exp(-|v|) <= 1: no overflow */
        y[j] = (v >= 0 ? (REAL)1 : e) / (1 + e);
    }
}

AN_KERNEL_SIZED(sigmoid_forward, (n + chunk - 1) / chunk, n,
          (const REAL *x, REAL *y, index_t n, index_t chunk),
          AN(sigmoid_forward_chunk)(i, x, y, n, chunk))

/* One position (channels at stride S from x + base), e.g. a row of (N, C) scores. */
AN_INLINE void AN(softmax_forward_position)(index_t base, const REAL *x, REAL *y, index_t C,
                                            index_t S)
{
    REAL maximum;
    const REAL scale = (REAL)(1 / AN(softmax_exp_position)(x + base, y + base, C, S,
                                                            &maximum));
    for (index_t k = 0; k < C; ++k)
        y[base + k * S] *= scale;
}

AN_INLINE void AN(softmax_forward_block)(index_t item, const REAL *x, REAL *y, index_t C,
                                         index_t S, index_t block, index_t positions)
{
    if (S == 1) {   /* (N, C) scores: `block` whole rows per work item */
        const index_t last = (item + 1) * block < positions ? (item + 1) * block : positions;
        for (index_t n = item * block; n < last; ++n)
            AN(softmax_forward_position)(n * C, x, y, C, 1);
        return;
    }
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    if (width == 1) {
        AN(softmax_forward_position)(base, x, y, C, S);
        return;
    }
    REAL maximum[AN_SOFTMAX_BLOCK];
    double total[AN_SOFTMAX_BLOCK];
    AN(softmax_exp_block)(x + base, y + base, C, S, width, maximum, total);
    REAL scale[AN_SOFTMAX_BLOCK];
    for (index_t j = 0; j < width; ++j) scale[j] = (REAL)(1 / total[j]);
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            y[base + k * S + j] *= scale[j];
}

AN_KERNEL_SIZED(softmax_forward, blocks, positions * C,
          (const REAL *x, REAL *y, index_t C, index_t S, index_t block, index_t positions,
           index_t blocks),
          AN(softmax_forward_block)(i, x, y, C, S, block, positions))

AN_INLINE void AN(softmax_backward_positions)(index_t base, const REAL *AN_RESTRICT y,
                                              const REAL *AN_RESTRICT dy,
                                              REAL *AN_RESTRICT dx, index_t C, index_t S,
                                              index_t width)
{
    double projection[AN_SOFTMAX_BLOCK];
    for (index_t j = 0; j < width; ++j) projection[j] = 0;
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            projection[j] += (double)dy[base + k * S + j] * y[base + k * S + j];
    for (index_t k = 0; k < C; ++k)
        for (index_t j = 0; j < width; ++j)
            dx[base + k * S + j] = y[base + k * S + j]
                                   * (REAL)(dy[base + k * S + j] - projection[j]);
}

AN_INLINE void AN(softmax_backward_block)(index_t item, const REAL *y, const REAL *dy,
                                          REAL *dx, index_t C, index_t S, index_t block,
                                          index_t positions)
{
    if (S == 1) {   /* (N, C) scores: `block` whole rows per work item */
        const index_t last = (item + 1) * block < positions ? (item + 1) * block : positions;
        for (index_t n = item * block; n < last; ++n)
            AN(softmax_backward_positions)(n * C, y, dy, dx, C, 1, 1);
        return;
    }
    index_t width;
    const index_t base = AN(softmax_block)(item, C, S, block, &width);
    AN(softmax_backward_positions)(base, y, dy, dx, C, S, width);
}

AN_KERNEL_SIZED(softmax_backward, blocks, positions * C,
          (const REAL *y, const REAL *dy, REAL *dx, index_t C, index_t S, index_t block,
           index_t positions, index_t blocks),
          AN(softmax_backward_block)(i, y, dy, dx, C, S, block, positions))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

