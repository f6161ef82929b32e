/* bilinearsampler.h -- bilinear sampling at a grid of points (MatConvNet's
 * vl_nnbilinearsampler, the spatial transformer's sampler).
 *
 * x is (Nx, C, H, W), grid (N, Ho, Wo, 2) holds normalised (y, x) in [-1, 1], y is
 * (N, C, Ho, Wo); grid n reads image n / (N / Nx). A point maps to py = (gy + 1)(H - 1)/2,
 * px = (gx + 1)(W - 1)/2 and reads its four neighbours (sy + a, sx + b), sy = floor(py),
 * with weights |1 - a - fy| |1 - b - fx| (fy = py - sy); neighbours outside the image read 0.
 *
 *   forward        (work item: one grid point, all channels)
 *   backward_grid  (work item: one grid point) dgy = (H-1)/2 sum_c dy_c sum_ab x_ab dwy_a wx_b
 *   backward_data  (work item: one input plane (m, c), zeroed and then owned, so no races):
 *                  scatters dy of every point of the grids reading image m
 */

/* The neighbours of a grid point: top-left corner and fractional offsets. */
AN_INLINE void AN(bilinear_point)(const REAL *grid, index_t point, index_t H, index_t W,
                                  index_t *sy, index_t *sx, REAL *fy, REAL *fx)
{
    const REAL py = (grid[2 * point] + 1) * (REAL)(H - 1) / 2;
    const REAL px = (grid[2 * point + 1] + 1) * (REAL)(W - 1) / 2;
    const REAL fly = floor(py), flx = floor(px);
    /* A corner far outside reads only zeros whatever it is: clamped to [-2, H] (or W) before
     * the cast, since a float beyond index_t's range has no integer value (undefined). */
    *sy = fly < -2 ? -2 : fly > (REAL)H ? H : (index_t)fly;
    *sx = flx < -2 ? -2 : flx > (REAL)W ? W : (index_t)flx;
    *fy = py - fly;
    *fx = px - flx;
}

AN_INLINE void AN(bilinear_forward_point)(index_t point, const REAL *x, const REAL *grid,
                                          REAL *y, index_t C, index_t H, index_t W,
                                          index_t S, index_t group)
{
    index_t sy, sx;
    REAL fy, fx;
    AN(bilinear_point)(grid, point, H, W, &sy, &sx, &fy, &fx);
    const index_t n = point / S, s = point % S;
    const REAL *image = x + (n / group) * C * H * W;
    REAL *out = y + n * C * S + s;
    for (index_t c = 0; c < C; ++c) {
        const REAL *plane = image + c * H * W;
        REAL value = 0;
        for (int a = 0; a < 2; ++a) {
            const index_t row = sy + a;
            if (row < 0 || row >= H) continue;
            const REAL wy = a ? fy : 1 - fy;
            for (int b = 0; b < 2; ++b) {
                const index_t col = sx + b;
                if (col < 0 || col >= W) continue;
                value += wy * (b ? fx : 1 - fx) * plane[row * W + col];
            }
        }
        out[c * S] = value;
    }
}

AN_KERNEL(bilinear_forward, points,
          (const REAL *x, const REAL *grid, REAL *y, index_t C, index_t H, index_t W,
           index_t S, index_t group, index_t points),
          AN(bilinear_forward_point)(i, x, grid, y, C, H, W, S, group))

AN_INLINE void AN(bilinear_backward_grid_point)(index_t point, const REAL *x, const REAL *grid,
                                                const REAL *dy, REAL *dgrid, index_t C,
                                                index_t H, index_t W, index_t S, index_t group)
{
    index_t sy, sx;
    REAL fy, fx;
    AN(bilinear_point)(grid, point, H, W, &sy, &sx, &fy, &fx);
    const index_t n = point / S, s = point % S;
    const REAL *image = x + (n / group) * C * H * W;
    const REAL *d = dy + n * C * S + s;
    double gy = 0, gx = 0;
    for (index_t c = 0; c < C; ++c) {
        const REAL *plane = image + c * H * W;
        for (int a = 0; a < 2; ++a) {
            const index_t row = sy + a;
            if (row < 0 || row >= H) continue;
            for (int b = 0; b < 2; ++b) {
                const index_t col = sx + b;
                if (col < 0 || col >= W) continue;
                const double v = (double)d[c * S] * plane[row * W + col];
                gy += v * (b ? fx : 1 - fx) * (a ? 1 : -1);
                gx += v * (a ? fy : 1 - fy) * (b ? 1 : -1);
            }
        }
    }
    dgrid[2 * point] = (REAL)(gy * (H - 1) / 2);
    dgrid[2 * point + 1] = (REAL)(gx * (W - 1) / 2);
}

AN_KERNEL(bilinear_backward_grid, points,
          (const REAL *x, const REAL *grid, const REAL *dy, REAL *dgrid, index_t C, index_t H,
           index_t W, index_t S, index_t group, index_t points),
          AN(bilinear_backward_grid_point)(i, x, grid, dy, dgrid, C, H, W, S, group))

AN_INLINE void AN(bilinear_backward_data_plane)(index_t item, const REAL *grid, const REAL *dy,
                                                REAL *dx, index_t C, index_t H, index_t W,
                                                index_t S, index_t group)
{
    const index_t m = item / C, c = item % C;
    REAL *dplane = dx + item * H * W;
    for (index_t k = 0; k < H * W; ++k) dplane[k] = 0;
    for (index_t n = m * group; n < (m + 1) * group; ++n) {
        for (index_t s = 0; s < S; ++s) {
            index_t sy, sx;
            REAL fy, fx;
            AN(bilinear_point)(grid, n * S + s, H, W, &sy, &sx, &fy, &fx);
            const REAL d = dy[(n * C + c) * S + s];
            for (int a = 0; a < 2; ++a) {
                const index_t row = sy + a;
                if (row < 0 || row >= H) continue;
                const REAL wy = a ? fy : 1 - fy;
                for (int b = 0; b < 2; ++b) {
                    const index_t col = sx + b;
                    if (col < 0 || col >= W) continue;
                    dplane[row * W + col] += wy * (b ? fx : 1 - fx) * d;
                }
            }
        }
    }
}

AN_KERNEL(bilinear_backward_data, planes,
          (const REAL *grid, const REAL *dy, REAL *dx, index_t C, index_t H, index_t W,
           index_t S, index_t group, index_t planes),
          AN(bilinear_backward_data_plane)(i, grid, dy, dx, C, H, W, S, group))
