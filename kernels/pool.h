/* pool.h -- max and average pooling (manual 4.3, 6.3), forward and backward.
 *
 * For x (P planes, H, W) with P = N*C, window ph x pw, stride (sh, sw), padding (pt, pl) at the
 * top and left, output pixel (oy, ox) covers rows [oy*sh - pt, oy*sh - pt + ph) and columns
 * [ox*sw - pl, ox*sw - pl + pw), clipped to the input: padding never takes part, which is what
 * padding with -inf does for max, and avg divides by the number of *unpadded* elements.
 * The caller guarantees pad < window, so every clipped window holds at least one element.
 *
 * Max ties go to the first maximum in row-major order. A backward work item owns a whole plane,
 * so no two work items write the same element.
 */

/* The clipped window [*ylo, *yhi) x [*xlo, *xhi) of output (oy, ox). */
AN_INLINE void AN(pool_window)(index_t oy, index_t ox, index_t H, index_t W,
                               index_t ph, index_t pw, index_t sh, index_t sw,
                               index_t pt, index_t pl,
                               index_t *ylo, index_t *yhi, index_t *xlo, index_t *xhi)
{
    const index_t y0 = oy * sh - pt, x0 = ox * sw - pl;
    *ylo = y0 > 0 ? y0 : 0;
    *yhi = y0 + ph < H ? y0 + ph : H;
    *xlo = x0 > 0 ? x0 : 0;
    *xhi = x0 + pw < W ? x0 + pw : W;
}

/* Flat index (y*W + x) of the first maximum of the window of (oy, ox) in one plane. */
AN_INLINE index_t AN(pool_argmax)(const REAL *plane, index_t oy, index_t ox,
                                  index_t H, index_t W, index_t ph, index_t pw,
                                  index_t sh, index_t sw, index_t pt, index_t pl)
{
    index_t ylo, yhi, xlo, xhi;
    AN(pool_window)(oy, ox, H, W, ph, pw, sh, sw, pt, pl, &ylo, &yhi, &xlo, &xhi);
    index_t best = ylo * W + xlo;
    REAL m = plane[best];
    for (index_t y = ylo; y < yhi; ++y)
        for (index_t x = xlo; x < xhi; ++x)
            if (plane[y * W + x] > m) { m = plane[y * W + x]; best = y * W + x; }
    return best;
}

/* Forward, work item: one output row (plane p, row oy). */
AN_INLINE void AN(pool_forward_row)(index_t item, const REAL *x, REAL *y, int average,
                                    index_t H, index_t W, index_t Ho, index_t Wo,
                                    index_t ph, index_t pw, index_t sh, index_t sw,
                                    index_t pt, index_t pl)
{
    const index_t oy = item % Ho, p = item / Ho;
    const REAL *plane = x + p * H * W;
    REAL *out = y + item * Wo;
    for (index_t ox = 0; ox < Wo; ++ox) {
        index_t ylo, yhi, xlo, xhi;
        AN(pool_window)(oy, ox, H, W, ph, pw, sh, sw, pt, pl, &ylo, &yhi, &xlo, &xhi);
        if (average) {
            REAL sum = 0;
            for (index_t yy = ylo; yy < yhi; ++yy)
                for (index_t xx = xlo; xx < xhi; ++xx) sum += plane[yy * W + xx];
            out[ox] = sum / (REAL)((yhi - ylo) * (xhi - xlo));
        } else {
            REAL m = plane[ylo * W + xlo];
            for (index_t yy = ylo; yy < yhi; ++yy)
                for (index_t xx = xlo; xx < xhi; ++xx) {
                    const REAL v = plane[yy * W + xx];
                    m = v > m ? v : m;
                }
            out[ox] = m;
        }
    }
}

AN_KERNEL_SIZED(pool_max_forward, planes * Ho, planes * Ho * Wo * ph * pw,
                (const REAL *x, REAL *y, index_t planes, index_t H, index_t W, index_t Ho,
                 index_t Wo, index_t ph, index_t pw, index_t sh, index_t sw, index_t pt,
                 index_t pl),
                AN(pool_forward_row)(i, x, y, 0, H, W, Ho, Wo, ph, pw, sh, sw, pt, pl))

AN_KERNEL_SIZED(pool_avg_forward, planes * Ho, planes * Ho * Wo * ph * pw,
                (const REAL *x, REAL *y, index_t planes, index_t H, index_t W, index_t Ho,
                 index_t Wo, index_t ph, index_t pw, index_t sh, index_t sw, index_t pt,
                 index_t pl),
                AN(pool_forward_row)(i, x, y, 1, H, W, Ho, Wo, ph, pw, sh, sw, pt, pl))

/* Backward, work item: one plane p, which it owns: dx starts at zero, then every window adds
   its derivative to its first maximum (max) or, divided by its size, to each of its unpadded
   elements (avg). Each window is visited once; overlapping windows accumulate in order, within
   the one work item that owns the plane, so there are no races. */
AN_INLINE void AN(pool_backward_plane)(index_t p, const REAL *x, const REAL *dy, REAL *dx,
                                       int average, index_t H, index_t W, index_t Ho, index_t Wo,
                                       index_t ph, index_t pw, index_t sh, index_t sw,
                                       index_t pt, index_t pl)
{
    const REAL *plane = x + p * H * W;
    const REAL *dplane = dy + p * Ho * Wo;
    REAL *out = dx + p * H * W;
    for (index_t e = 0; e < H * W; ++e) out[e] = 0;
    for (index_t oy = 0; oy < Ho; ++oy) {
        for (index_t ox = 0; ox < Wo; ++ox) {
            const REAL derivative = dplane[oy * Wo + ox];
            if (average) {
                index_t ylo, yhi, xlo, xhi;
                AN(pool_window)(oy, ox, H, W, ph, pw, sh, sw, pt, pl, &ylo, &yhi, &xlo, &xhi);
                const REAL share = derivative / (REAL)((yhi - ylo) * (xhi - xlo));
                for (index_t yy = ylo; yy < yhi; ++yy)
                    for (index_t xx = xlo; xx < xhi; ++xx) out[yy * W + xx] += share;
            } else {
                out[AN(pool_argmax)(plane, oy, ox, H, W, ph, pw, sh, sw, pt, pl)] += derivative;
            }
        }
    }
}

AN_KERNEL_SIZED(pool_max_backward, planes, planes * (H * W + Ho * Wo * ph * pw),
                (const REAL *x, const REAL *dy, REAL *dx, index_t planes, index_t H, index_t W,
                 index_t Ho, index_t Wo, index_t ph, index_t pw, index_t sh, index_t sw,
                 index_t pt, index_t pl),
                AN(pool_backward_plane)(i, x, dy, dx, 0, H, W, Ho, Wo, ph, pw, sh, sw, pt, pl))

AN_KERNEL_SIZED(pool_avg_backward, planes, planes * (H * W + Ho * Wo * ph * pw),
                (const REAL *x, const REAL *dy, REAL *dx, index_t planes, index_t H, index_t W,
                 index_t Ho, index_t Wo, index_t ph, index_t pw, index_t sh, index_t sw,
                 index_t pt, index_t pl),
                AN(pool_backward_plane)(i, x, dy, dx, 1, H, W, Ho, Wo, ph, pw, sh, sw, pt, pl))
