/* bnorm.h -- batch normalisation (manual 4.5.2, 6.5.2).
 *
 * x is (N, C, S) with S = H*W (S = 1 for (N, C) input); M = N*S values per channel.
 *
 *   moments  (per channel, work item c)   mu = mean x, sigma = sqrt(var + epsilon), var biased;
 *            one pass over x in double, centred on the channel's first value so that the
 *            E[d^2] - E[d]^2 form does not cancel catastrophically.
 *   forward  y = g (x - mu) / sigma + b
 *   sums     (per channel)                 db = sum dy,  dg = sum dy (x - mu) / sigma
 *   backward dx = g / sigma (dy - db / M - xhat dg / M)     (given moments: db = dg = 0)
 *
 * The element-wise kernels take work items of `chunk` elements inside one (n, c) plane, so the
 * per-channel constants are loaded once and the inner loop vectorises on the CPU (chunk = S
 * rounded to a few thousand), while the GPU uses chunk = 1. `moments` and `sums` are (C, 2).
 */

/* The channel sums are reductions: letting gcc reassociate them (scoped to this file) is what
   lets it vectorise them; they are accumulated in double, so the order hardly matters. */
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("associative-math", "no-signed-zeros", "no-trapping-math")
#endif

AN_INLINE void AN(bnorm_moments_channel)(index_t c, const REAL *x, REAL *moments, index_t N,
                                         index_t C, index_t S, REAL epsilon)
{
    const double shift = x[c * S];
    double sum = 0, squares = 0;
    for (index_t n = 0; n < N; ++n) {
        const REAL *plane = x + (n * C + c) * S;
        for (index_t s = 0; s < S; ++s) {
            const double d = plane[s] - shift;
            sum += d;
            squares += d * d;
        }
    }
    const double count = (double)(N * S), mean = sum / count;
    double variance = squares / count - mean * mean;
    variance = variance > 0 ? variance : 0;
    moments[2 * c] = (REAL)(shift + mean);
    moments[2 * c + 1] = (REAL)sqrt(variance + epsilon);
}

AN_KERNEL_SIZED(bnorm_moments, C, N * C * S,
                (const REAL *x, REAL *moments, index_t N, index_t C, index_t S,
                             REAL epsilon),
          AN(bnorm_moments_channel)(i, x, moments, N, C, S, epsilon))

/* Work item -> (plane, [first, last)) of the chunked element-wise kernels. */
AN_INLINE index_t AN(bnorm_chunk)(index_t item, index_t S, index_t chunk, index_t *first,
                                  index_t *last)
{
    const index_t per_plane = (S + chunk - 1) / chunk, plane = item / per_plane;
    const index_t start = (item % per_plane) * chunk;
    *first = plane * S + start;
    *last = plane * S + (start + chunk < S ? start + chunk : S);
    return plane;
}

AN_INLINE void AN(bnorm_forward_chunk)(index_t item, const REAL *AN_RESTRICT x,
                                       const REAL *g, const REAL *b, const REAL *moments,
                                       REAL *AN_RESTRICT y, index_t C, index_t S, index_t chunk)
{
    index_t first, last;
    const index_t c = AN(bnorm_chunk)(item, S, chunk, &first, &last) % C;
    /* (x - mu) scale + b, not x scale + (b - mu scale): the folded offset cancels against
       x scale when |mu| is large beside sigma (x = 1e4 + noise lost its digits in float32),
       and gave inf - inf = NaN for an infinite gain */
    const REAL scale = g[c] / moments[2 * c + 1];
    const REAL mu = moments[2 * c], bias = b[c];
    for (index_t j = first; j < last; ++j)
        y[j] = (x[j] - mu) * scale + bias;
}

AN_KERNEL_SIZED(bnorm_forward, planes * ((S + chunk - 1) / chunk), planes * S,
          (const REAL *x, const REAL *g, const REAL *b, const REAL *moments, REAL *y,
           index_t C, index_t S, index_t chunk, index_t planes),
          AN(bnorm_forward_chunk)(i, x, g, b, moments, y, C, S, chunk))

AN_INLINE void AN(bnorm_sums_channel)(index_t c, const REAL *x, const REAL *dy,
                                      const REAL *moments, REAL *sums, index_t N, index_t C,
                                      index_t S)
{
    const double mu = moments[2 * c];
    double db = 0, dxhat = 0;
    for (index_t n = 0; n < N; ++n) {
        const REAL *xp = x + (n * C + c) * S, *dyp = dy + (n * C + c) * S;
        for (index_t s = 0; s < S; ++s) {
            db += dyp[s];
            dxhat += (double)dyp[s] * (xp[s] - mu);
        }
    }
    sums[2 * c] = (REAL)(dxhat / moments[2 * c + 1]);   /* dz/dg */
    sums[2 * c + 1] = (REAL)db;                          /* dz/db */
}

AN_KERNEL_SIZED(bnorm_sums, C, N * C * S,
                (const REAL *x, const REAL *dy, const REAL *moments, REAL *sums,
                          index_t N, index_t C, index_t S),
          AN(bnorm_sums_channel)(i, x, dy, moments, sums, N, C, S))

AN_INLINE void AN(bnorm_backward_chunk)(index_t item, const REAL *AN_RESTRICT x,
                                        const REAL *AN_RESTRICT dy, const REAL *g,
                                        const REAL *moments, const REAL *sums,
                                        REAL *AN_RESTRICT dx, index_t C, index_t S,
                                        index_t chunk, REAL count, int batch_statistics)
{
    index_t first, last;
    const index_t c = AN(bnorm_chunk)(item, S, chunk, &first, &last) % C;
    const REAL mu = moments[2 * c], inverse_sigma = 1 / moments[2 * c + 1];
    const REAL gain = g[c] * inverse_sigma;
    /* dx = gain dy - gain db / M - gain (x - mu) / sigma dg / M = a dy + b x + c0 */
    const REAL dg = batch_statistics ? sums[2 * c] / count : 0;
    const REAL db = batch_statistics ? sums[2 * c + 1] / count : 0;
    const REAL slope = -gain * dg * inverse_sigma;
    const REAL offset = -gain * db - slope * mu;
    for (index_t j = first; j < last; ++j)
        dx[j] = gain * dy[j] + slope * x[j] + offset;
}

AN_KERNEL_SIZED(bnorm_backward, planes * ((S + chunk - 1) / chunk), planes * S,
          (const REAL *x, const REAL *dy, const REAL *g, const REAL *moments, const REAL *sums,
           REAL *dx, index_t C, index_t S, index_t chunk, REAL count, int batch_statistics,
           index_t planes),
          AN(bnorm_backward_chunk)(i, x, dy, g, moments, sums, dx, C, S, chunk, count,
                                   batch_statistics))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

