/* activation.h -- relu, sigmoid and softmax (manual 4.4, 6.4, 6.5.4).
 *
 *   relu:     y = x > 0 ? x : leak * x;          dx = y > 0 ? dy : leak * dy   (reads y only)
 *   sigmoid:  y = 1 / (1 + exp(-x)), as exp(min(x,0)) / (1 + exp(-|x|)) so nothing overflows;
 *             dx = dy * y * (1 - y)
 *   softmax:  over the C channels of every (n, s) position of x (N, C, S), S = H*W:
 *             y_k = exp(x_k - m) / sum_t exp(x_t - m), m = max_t x_t;
 *             dx_d = y_d (dy_d - sum_k dy_k y_k)
 * Channel k of position (n, s) sits at n*C*S + k*S + s.
 */

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
        y[j] = v > 0 ? v : leak * v;
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


/* exp(v) with only arithmetic, so that loops calling it vectorise on the CPU (the C library's
 * exp is a function call, one element at a time): v = k ln2 + r with |r| <= ln2/2 (ln2 split in
 * two parts, Cody-Waite), e^r by a polynomial, 2^k built in the exponent bits (adding 1.5 * 2^23
 * or 1.5 * 2^52 puts the integer k in the low mantissa bits). float uses Cephes' expf
 * polynomial in float arithmetic (8 lanes per AVX vector; relative error ~1e-7), double the
 * Taylor series to degree 11 (below double rounding). Arguments below -87 (float) or -708
 * (double) give 0, large ones saturate at exp(88) or exp(709). The GPU uses its own exp.
 * Also used by loss.h (included after this file). */
AN_INLINE REAL AN(fast_exp)(REAL value)
{
#if defined(__CUDACC__)
    return exp(value);
#else
    if (sizeof(REAL) == sizeof(float)) {
        float v = (float)value > 88.0f ? 88.0f : (float)value;
        v = v < -87.0f ? -87.0f : v;
        const float k = floorf(v * 1.44269504088896341f + 0.5f);
        const float r = (v - k * 0.693359375f) + k * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        const float magic = 12582912.0f, shifted = k + magic;
        int32_t shifted_bits, magic_bits;
        __builtin_memcpy(&shifted_bits, &shifted, sizeof(float));
        __builtin_memcpy(&magic_bits, &magic, sizeof(float));
        const int32_t scale_bits = (shifted_bits - magic_bits + 127) << 23;
        float scale;
        __builtin_memcpy(&scale, &scale_bits, sizeof(float));
        return value < -87 ? (REAL)0 : (REAL)(p * scale);
    }
    double v = value < -708.0 ? -708.0 : (double)value;
    v = v > 709.0 ? 709.0 : v;
    const double k = floor(v * 1.4426950408889634 + 0.5);
    const double r = (v - k * 0.693145751953125) - k * 1.4286068203094172321e-6;
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const double magic = 6755399441055744.0, shifted = k + magic;
    int64_t shifted_bits, magic_bits;
    __builtin_memcpy(&shifted_bits, &shifted, sizeof(double));
    __builtin_memcpy(&magic_bits, &magic, sizeof(double));
    const int64_t scale_bits = (shifted_bits - magic_bits + 1023) << 52;
    double scale;
    __builtin_memcpy(&scale, &scale_bits, sizeof(double));
    return value < -708 ? (REAL)0 : (REAL)(p * scale);
#endif
}

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

