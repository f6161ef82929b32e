/* spnorm.h -- spatial normalisation (manual 4.5.3, 6.5.3).
 *
 * x is (P, H, W) planes (P = N*C). The window of pixel (i, j) is rows [i - top, i + bottom] and
 * columns [j - left, j + right] (top = floor((ph-1)/2), bottom = ph - 1 - top, likewise left and
 * right), clipped to the image; n2 is the mean of x^2 over its pixels inside the image and
 * f = 1 + alpha n2.
 *
 *   forward         y = x f^-beta                                  (work item: one pixel)
 *   backward_first  dx = dy f^-beta,  scratch = dy x f^(-beta-1) / |window|   (one pixel)
 *   backward_second dx -= 2 alpha beta x sum_{windows containing the pixel} scratch
 *                   (pixel (u, v) is in the window of (i, j) exactly when i is in
 *                   [u - bottom, u + top] and j in [v - right, v + left])   (one pixel)
 * Two launches, so the second reads the first's complete scratch; each writes only its pixel.
 */

/* Mean of x^2 over the clipped window of (i, j) in one plane, and the window's pixel count. */
AN_INLINE double AN(spnorm_energy)(const REAL *plane, index_t i, index_t j, index_t H,
                                   index_t W, index_t top, index_t bottom, index_t left,
                                   index_t right, double *count)
{
    const index_t r0 = i - top > 0 ? i - top : 0, r1 = i + bottom < H - 1 ? i + bottom : H - 1;
    const index_t c0 = j - left > 0 ? j - left : 0, c1 = j + right < W - 1 ? j + right : W - 1;
    double total = 0;
    for (index_t r = r0; r <= r1; ++r)
        for (index_t c = c0; c <= c1; ++c)
            total += (double)plane[r * W + c] * plane[r * W + c];
    *count = (double)((r1 - r0 + 1) * (c1 - c0 + 1));
    return total / *count;
}

AN_INLINE void AN(spnorm_forward_pixel)(index_t item, const REAL *x, REAL *y, index_t H,
                                        index_t W, index_t top, index_t bottom, index_t left,
                                        index_t right, REAL alpha, REAL beta)
{
    const index_t j = item % W, i = (item / W) % H;
    double count;
    const double f = 1 + alpha * AN(spnorm_energy)(x + (item / (H * W)) * H * W, i, j, H, W,
                                                   top, bottom, left, right, &count);
    y[item] = (REAL)(x[item] * pow(f, -(double)beta));
}

AN_KERNEL(spnorm_forward, count,
          (const REAL *x, REAL *y, index_t H, index_t W, index_t top, index_t bottom,
           index_t left, index_t right, REAL alpha, REAL beta, index_t count),
          AN(spnorm_forward_pixel)(i, x, y, H, W, top, bottom, left, right, alpha, beta))

AN_INLINE void AN(spnorm_backward_first_pixel)(index_t item, const REAL *x, const REAL *dy,
                                               REAL *dx, REAL *scratch, index_t H, index_t W,
                                               index_t top, index_t bottom, index_t left,
                                               index_t right, REAL alpha, REAL beta)
{
    const index_t j = item % W, i = (item / W) % H;
    double count;
    const double f = 1 + alpha * AN(spnorm_energy)(x + (item / (H * W)) * H * W, i, j, H, W,
                                                   top, bottom, left, right, &count);
    const double scale = pow(f, -(double)beta);
    dx[item] = (REAL)(dy[item] * scale);
    scratch[item] = (REAL)(dy[item] * (double)x[item] * scale / f / count);
}

AN_KERNEL(spnorm_backward_first, count,
          (const REAL *x, const REAL *dy, REAL *dx, REAL *scratch, index_t H, index_t W,
           index_t top, index_t bottom, index_t left, index_t right, REAL alpha, REAL beta,
           index_t count),
          AN(spnorm_backward_first_pixel)(i, x, dy, dx, scratch, H, W, top, bottom, left,
                                          right, alpha, beta))

AN_INLINE void AN(spnorm_backward_second_pixel)(index_t item, const REAL *x,
                                                const REAL *scratch, REAL *dx, index_t H,
                                                index_t W, index_t top, index_t bottom,
                                                index_t left, index_t right, REAL alpha,
                                                REAL beta)
{
    const index_t v = item % W, u = (item / W) % H;
    const REAL *plane = scratch + (item / (H * W)) * H * W;
    const index_t r0 = u - bottom > 0 ? u - bottom : 0, r1 = u + top < H - 1 ? u + top : H - 1;
    const index_t c0 = v - right > 0 ? v - right : 0, c1 = v + left < W - 1 ? v + left : W - 1;
    double total = 0;
    for (index_t r = r0; r <= r1; ++r)
        for (index_t c = c0; c <= c1; ++c)
            total += plane[r * W + c];
    dx[item] -= (REAL)(2.0 * alpha * beta * x[item] * total);
}

AN_KERNEL(spnorm_backward_second, count,
          (const REAL *x, const REAL *scratch, REAL *dx, index_t H, index_t W, index_t top,
           index_t bottom, index_t left, index_t right, REAL alpha, REAL beta, index_t count),
          AN(spnorm_backward_second_pixel)(i, x, scratch, dx, H, W, top, bottom, left, right,
                                           alpha, beta))
