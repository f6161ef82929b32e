/* roipool.h -- region-of-interest pooling (Fast R-CNN, MatConvNet's vl_nnroipool).
 *
 * x is (N, C, H, W), y is (R, C, sh, sw). The caller computes, for every ROI r, its image
 * images[r] and the clipped bin edges: rows[(r*sh + i)*2 + {0,1}] = [first, last) of bin row i,
 * cols[(r*sw + j)*2 + {0,1}] likewise. An empty bin gives 0.
 *
 *   forward   (work item: one output element)  max or mean of the bin in its channel
 *   backward  (work item: one input plane (n, c), which it zeroes and then owns, so items never
 *             race): for every ROI of image n and every bin, max adds dy to the bin's first
 *             maximum in column-major order (columns outside, rows inside, as MatConvNet),
 *             avg adds dy / (bin size) to every element of the bin.
 */

AN_INLINE void AN(roipool_forward_element)(index_t item, const REAL *x, const index_t *images,
                                           const index_t *rows, const index_t *cols, REAL *y,
                                           index_t C, index_t H, index_t W, index_t sh,
                                           index_t sw, int average)
{
    const index_t j = item % sw, i = (item / sw) % sh, c = (item / (sw * sh)) % C;
    const index_t r = item / (sw * sh * C);
    const index_t h0 = rows[(r * sh + i) * 2], h1 = rows[(r * sh + i) * 2 + 1];
    const index_t w0 = cols[(r * sw + j) * 2], w1 = cols[(r * sw + j) * 2 + 1];
    if (h1 <= h0 || w1 <= w0) { y[item] = 0; return; }
    const REAL *plane = x + (images[r] * C + c) * H * W;
    if (average) {
        double total = 0;
        for (index_t h = h0; h < h1; ++h)
            for (index_t w = w0; w < w1; ++w)
                total += plane[h * W + w];
        y[item] = (REAL)(total / (double)((h1 - h0) * (w1 - w0)));
        return;
    }
    REAL best = plane[h0 * W + w0];
    for (index_t h = h0; h < h1; ++h)
        for (index_t w = w0; w < w1; ++w)
            best = plane[h * W + w] > best ? plane[h * W + w] : best;
    y[item] = best;
}

AN_KERNEL(roipool_forward, count,
          (const REAL *x, const index_t *images, const index_t *rows, const index_t *cols,
           REAL *y, index_t C, index_t H, index_t W, index_t sh, index_t sw, int average,
           index_t count),
          AN(roipool_forward_element)(i, x, images, rows, cols, y, C, H, W, sh, sw, average))

AN_INLINE void AN(roipool_backward_plane)(index_t item, const REAL *x, const index_t *images,
                                          const index_t *rows, const index_t *cols,
                                          const REAL *dy, REAL *dx, index_t R, index_t C,
                                          index_t H, index_t W, index_t sh, index_t sw,
                                          int average)
{
    const index_t n = item / C, c = item % C;
    const REAL *plane = x + item * H * W;
    REAL *dplane = dx + item * H * W;
    for (index_t k = 0; k < H * W; ++k) dplane[k] = 0;
    for (index_t r = 0; r < R; ++r) {
        if (images[r] != n) continue;
        for (index_t i = 0; i < sh; ++i) {
            const index_t h0 = rows[(r * sh + i) * 2], h1 = rows[(r * sh + i) * 2 + 1];
            for (index_t j = 0; j < sw; ++j) {
                const index_t w0 = cols[(r * sw + j) * 2], w1 = cols[(r * sw + j) * 2 + 1];
                if (h1 <= h0 || w1 <= w0) continue;
                const REAL d = dy[((r * C + c) * sh + i) * sw + j];
                if (average) {
                    const REAL share = d / (REAL)((h1 - h0) * (w1 - w0));
                    for (index_t h = h0; h < h1; ++h)
                        for (index_t w = w0; w < w1; ++w)
                            dplane[h * W + w] += share;
                    continue;
                }
                index_t best = h0 * W + w0;
                for (index_t w = w0; w < w1; ++w)
                    for (index_t h = h0; h < h1; ++h)
                        if (plane[h * W + w] > plane[best]) best = h * W + w;
                dplane[best] += d;
            }
        }
    }
}

AN_KERNEL(roipool_backward, planes,
          (const REAL *x, const index_t *images, const index_t *rows, const index_t *cols,
           const REAL *dy, REAL *dx, index_t R, index_t C, index_t H, index_t W, index_t sh,
           index_t sw, int average, index_t planes),
          AN(roipool_backward_plane)(i, x, images, rows, cols, dy, dx, R, C, H, W, sh, sw,
                                     average))
