/* lrn.h -- local response normalisation across channels (manual 4.5.1, 6.5.1).
 *
 * x is (N, C, S) with S = H*W; a work item is one position (n, s), walking its C channels
 * (channel k at n*C*S + k*S + s). With the window Q(k) = [k - before, k + after] clipped to
 * [0, C) and L_k = kappa + alpha * sum_{t in Q(k)} x_t^2:
 *
 *   forward   y_k  = x_k L_k^-beta
 *   backward  dx_d = dy_d L_d^-beta - 2 alpha beta x_d sum_{k : d in Q(k)} dy_k x_k L_k^(-beta-1)
 *
 * The window sums slide along k (add the entering square, drop the leaving one) in double, so a
 * position costs O(C) whatever the depth. A sum is recomputed from its window instead where
 * dropping would lose it: when the leaving term is more than half of the sum (the rest would
 * be the rounding error of the large term: 1e20^2 leaving a window of ones gave 0) or the sum
 * is not finite (a NaN or an infinity that enters would otherwise stay after it leaves,
 * inf - inf being NaN), so every window sum is what it holds, and NaN reaches only the
 * outputs whose window holds the NaN. d is in Q(k) exactly when k is in [d - after,
 * d + before]: the backward slides that mirrored window over eta_k = dy_k x_k L_k^(-beta-1),
 * which the first backward pass stores in `scratch` (same layout as x; each item touches only
 * its own position, so items never race).
 */

/* L^-beta: the usual betas (0.75 in AlexNet, 0.5, 1) through square roots, which are several
   times cheaper than pow. */
AN_INLINE double AN(lrn_power)(double L, double beta)
{
    if (beta == 0.75) return 1 / sqrt(L * sqrt(L));
    if (beta == 0.5) return 1 / sqrt(L);
    if (beta == 1) return 1 / L;
    return pow(L, -beta);
}

/* Sum of a[t] (stride S) for t in [lo, hi] clipped to [0, C). */
AN_INLINE double AN(lrn_window_start)(const REAL *a, index_t S, index_t C, index_t lo,
                                      index_t hi, int square)
{
    double acc = 0;
    for (index_t t = lo < 0 ? 0 : lo; t <= hi && t < C; ++t)
        acc += square ? (double)a[t * S] * a[t * S] : (double)a[t * S];
    return acc;
}

/* The window sum of squares acc of channel k (window [k - before, k + after]) moved on to
   channel k + 1: the entering square added, the leaving one dropped, or, where dropping it
   would leave mostly rounding error or a non-finite sum (see the top), the sum recomputed. */
AN_INLINE double AN(lrn_slide_squares)(const REAL *a, index_t S, index_t C, index_t k,
                                       index_t before, index_t after, double acc)
{
    const index_t enter = k + 1 + after, leave = k - before;
    if (enter < C) acc += (double)a[enter * S] * a[enter * S];
    if (leave < 0) return acc;
    const double dropped = (double)a[leave * S] * a[leave * S];
    if (dropped <= 0.5 * acc && acc - acc == 0)      /* (acc - acc is NaN when acc is not finite) */
        return acc - dropped;
    return AN(lrn_window_start)(a, S, C, k + 1 - before, k + 1 + after, 1);
}

AN_INLINE void AN(lrn_forward_position)(index_t item, const REAL *x, REAL *y, index_t C,
                                        index_t S, index_t before, index_t after, REAL kappa,
                                        REAL alpha, REAL beta)
{
    const index_t base = (item / S) * C * S + item % S;
    const REAL *xp = x + base;
    REAL *yp = y + base;
    double acc = AN(lrn_window_start)(xp, S, C, -before, after, 1);
    for (index_t k = 0; k < C; ++k) {
        const double L = kappa + alpha * acc;
        yp[k * S] = (REAL)(xp[k * S] * AN(lrn_power)(L, beta));
        acc = AN(lrn_slide_squares)(xp, S, C, k, before, after, acc);
    }
}

AN_KERNEL_SIZED(lrn_forward, positions, positions * C,
          (const REAL *x, REAL *y, index_t C, index_t S, index_t before, index_t after,
           REAL kappa, REAL alpha, REAL beta, index_t positions),
          AN(lrn_forward_position)(i, x, y, C, S, before, after, kappa, alpha, beta))

AN_INLINE void AN(lrn_backward_position)(index_t item, const REAL *x, const REAL *dy, REAL *dx,
                                         REAL *scratch, index_t C, index_t S, index_t before,
                                         index_t after, REAL kappa, REAL alpha, REAL beta)
{
    const index_t base = (item / S) * C * S + item % S;
    const REAL *xp = x + base, *dyp = dy + base;
    REAL *dxp = dx + base, *eta = scratch + base;
    double acc = AN(lrn_window_start)(xp, S, C, -before, after, 1);
    for (index_t k = 0; k < C; ++k) {
        const double L = kappa + alpha * acc;
        const double scale = AN(lrn_power)(L, beta);
        dxp[k * S] = (REAL)(dyp[k * S] * scale);
        eta[k * S] = (REAL)(dyp[k * S] * (double)xp[k * S] * scale / L);
        acc = AN(lrn_slide_squares)(xp, S, C, k, before, after, acc);
    }
    /* the mirrored window sums of eta, which has both signs: `magnitude` (the sum of |eta|
       over the window) says when a leaving term dominates it, as the squares above */
    const double factor = 2.0 * alpha * beta;
    double mirrored = AN(lrn_window_start)(eta, S, C, -after, before, 0);
    double magnitude = 0;
    for (index_t t = 0; t <= before && t < C; ++t) magnitude += fabs((double)eta[t * S]);
    for (index_t d = 0; d < C; ++d) {
        dxp[d * S] -= (REAL)(factor * xp[d * S] * mirrored);
        const index_t enter = d + 1 + before, leave = d - after;
        if (enter < C) {
            mirrored += eta[enter * S];
            magnitude += fabs((double)eta[enter * S]);
        }
        if (leave < 0) continue;
        const double dropped = fabs((double)eta[leave * S]);
        if (dropped <= 0.5 * magnitude && mirrored - mirrored == 0) {
            mirrored -= eta[leave * S];
            magnitude -= dropped;
        } else {
            mirrored = AN(lrn_window_start)(eta, S, C, d + 1 - after, d + 1 + before, 0);
            magnitude = 0;
            for (index_t t = d + 1 - after < 0 ? 0 : d + 1 - after; t <= d + 1 + before && t < C;
                 ++t)
                magnitude += fabs((double)eta[t * S]);
        }
    }
}

AN_KERNEL_SIZED(lrn_backward, positions, positions * C,
          (const REAL *x, const REAL *dy, REAL *dx, REAL *scratch, index_t C, index_t S,
           index_t before, index_t after, REAL kappa, REAL alpha, REAL beta, index_t positions),
          AN(lrn_backward_position)(i, x, dy, dx, scratch, C, S, before, after, kappa, alpha,
                                    beta))

