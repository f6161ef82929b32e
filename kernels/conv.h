/* conv.h -- im2col and col2im, the data movement of convolution (manual 6.1).
 *
 * For a chunk of n images x (n, C, H, W), a filter of kh x kw taps with dilation (dh, dw),
 * stride (sh, sw) and padding (pt, pl) at the top and left, the patch matrix is
 *
 *     P[(c*kh + i)*kw + j, b, oy, ox] = x[b, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw]
 *
 * (zero where the index falls in the padding), stored as a (C*kh*kw, n*Ho*Wo) matrix so that
 * the convolution is one GEMM per group, Y (K, n*Ho*Wo) = W (K, C*kh*kw) . P, and the pixels of
 * one filter tap are contiguous (sequential reads of x, sequential writes of P).
 *
 * col2im is the adjoint: dx[b, c, y, x] = sum of the dP entries that im2col copied x[b,c,y,x]
 * to. It is written as a gather over rows of dx, so no two work items write the same element.
 *
 * On the CPU, gcc would turn the row copies into calls to memcpy; rows are short on small maps
 * (8 values in LeNet's second layer), where the call costs more than the copy, so that
 * transformation is off in this file.
 *
 * conv_valid_range and the drivers' an_conv_geometry come from the helper _conv_geometry.h
 * (conv_direct.h includes it too), the BLAS's type and CBLAS's constants from the helper
 * _cblas.h (gemm.h includes it too). This family needs no other family.
 */

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include "_conv_geometry.h"

/* Work item: one (channel c, tap row i, image b): the kw rows r = (c*kh + i)*kw + j of P for
   image b, Ho*Wo values each. Coarser items would starve a GPU; finer ones spend more on
   splitting the item index (divisions) than on copying when maps are small, as in LeNet.
   The output rows whose input row falls in the padding are zeroed in one run; the others copy
   a row segment, with a plain loop when the whole row lies inside (the common case). */
AN_INLINE void AN(im2col_rows)(index_t item, const REAL *AN_RESTRICT x,
                               REAL *AN_RESTRICT patches, index_t n, index_t C, index_t H,
                               index_t W, index_t Ho, index_t Wo, index_t kh, index_t kw,
                               index_t sh, index_t sw, index_t pt, index_t pl,
                               index_t dh, index_t dw)
{
    const index_t b = item % n;
    const index_t ci = item / n;                 /* c*kh + i */
    const index_t i = ci % kh;
    const index_t c = ci / kh;
    const REAL *in_plane = x + (b * C + c) * H * W;
    index_t oy_lo, oy_hi;        /* output rows reading an input row inside [0, H) */
    AN(conv_valid_range)(i * dh - pt, sh, H, Ho, &oy_lo, &oy_hi);
    for (index_t j = 0; j < kw; ++j) {
        const index_t x0 = j * dw - pl;
        index_t lo, hi;
        AN(conv_valid_range)(x0, sw, W, Wo, &lo, &hi);
        REAL *out = patches + ((ci * kw + j) * n + b) * Ho * Wo;
        for (index_t e = 0; e < oy_lo * Wo; ++e) out[e] = 0;
        for (index_t e = oy_hi * Wo; e < Ho * Wo; ++e) out[e] = 0;
        for (index_t oy = oy_lo; oy < oy_hi; ++oy) {
            const REAL *in = in_plane + (oy * sh - pt + i * dh) * W;
            REAL *row = out + oy * Wo;
            if (sw == 1 && lo == 0 && hi == Wo) {
                const REAL *src = in + x0;
                for (index_t ox = 0; ox < Wo; ++ox) row[ox] = src[ox];
                continue;
            }
            for (index_t ox = 0; ox < lo; ++ox) row[ox] = 0;
            if (sw == 1) {
                const REAL *src = in + x0;
                for (index_t ox = lo; ox < hi; ++ox) row[ox] = src[ox];
            } else if (sw == 2) {   /* a constant stride vectorises (strided stems) */
                for (index_t ox = lo; ox < hi; ++ox) row[ox] = in[2 * ox + x0];
            } else {
                for (index_t ox = lo; ox < hi; ++ox) row[ox] = in[ox * sw + x0];
            }
            for (index_t ox = hi; ox < Wo; ++ox) row[ox] = 0;
        }
    }
}

AN_KERNEL_SIZED(im2col, C * kh * n, C * kh * kw * n * Ho * Wo,
                (const REAL *x, REAL *patches, index_t n, index_t C, index_t H, index_t W,
                 index_t Ho, index_t Wo, index_t kh, index_t kw, index_t sh, index_t sw,
                 index_t pt, index_t pl, index_t dh, index_t dw),
                AN(im2col_rows)(i, x, patches, n, C, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw))

/* Work item: one row of dx, (image b, channel c, input row y); it owns the W outputs. */
AN_INLINE void AN(col2im_row)(index_t item, const REAL *patches, REAL *dx,
                              index_t n, index_t C, index_t H, index_t W,
                              index_t Ho, index_t Wo, index_t kh, index_t kw,
                              index_t sh, index_t sw, index_t pt, index_t pl,
                              index_t dh, index_t dw)
{
    const index_t y = item % H;
    const index_t c = (item / H) % C;
    const index_t b = item / (H * C);
    REAL *out = dx + item * W;
    for (index_t x = 0; x < W; ++x) out[x] = 0;
    for (index_t i = 0; i < kh; ++i) {
        /* tap i of output row oy reads input row oy*sh - pt + i*dh == y */
        const index_t ty = y + pt - i * dh;
        if (ty < 0) continue;
        index_t oy = ty;
        if (sh != 1) {
            if (ty % sh != 0) continue;
            oy = ty / sh;
        }
        if (oy >= Ho) continue;
        for (index_t j = 0; j < kw; ++j) {
            const index_t r = (c * kh + i) * kw + j;
            const REAL *in = patches + ((r * n + b) * Ho + oy) * Wo;
            const index_t x0 = j * dw - pl;
            index_t lo, hi;
            AN(conv_valid_range)(x0, sw, W, Wo, &lo, &hi);
            if (sw == 1) {
                REAL *dst = out + x0;
                for (index_t ox = lo; ox < hi; ++ox) dst[ox] += in[ox];
            } else {
                for (index_t ox = lo; ox < hi; ++ox) out[ox * sw + x0] += in[ox];
            }
        }
    }
}

AN_KERNEL_SIZED(col2im, n * C * H, n * C * H * W * kh * kw,
                (const REAL *patches, REAL *dx, index_t n, index_t C, index_t H, index_t W,
                 index_t Ho, index_t Wo, index_t kh, index_t kw, index_t sh, index_t sw,
                 index_t pt, index_t pl, index_t dh, index_t dw),
                AN(col2im_row)(i, patches, dx, n, C, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw))

/* The GEMM works on (K, n, Ho*Wo) while feature maps are (n, K, Ho*Wo); these two copies move
 * between the layouts, one (image b, channel k) plane of `pixels` values per work item, and the
 * forward one adds the bias on the way (one pass over the output instead of two).
 * Without a bias, pass use_bias = 0 and any valid pointer as bias (it is not read). */
AN_INLINE void AN(gemm_to_nchw_plane)(index_t item, const REAL *product, REAL *y,
                                      const REAL *bias, int use_bias,
                                      index_t n, index_t K, index_t pixels)
{
    const index_t k = item % K, b = item / K;
    const REAL *in = product + (k * n + b) * pixels;
    REAL *out = y + item * pixels;
    const REAL offset = use_bias ? bias[k] : (REAL)0;
    for (index_t p = 0; p < pixels; ++p) out[p] = in[p] + offset;
}

AN_KERNEL_SIZED(gemm_to_nchw, n * K, n * K * pixels,
                (const REAL *product, REAL *y, const REAL *bias, int use_bias, index_t n, index_t K,
                 index_t pixels),
                AN(gemm_to_nchw_plane)(i, product, y, bias, use_bias, n, K, pixels))

AN_INLINE void AN(nchw_to_gemm_plane)(index_t item, const REAL *y, REAL *product,
                                      index_t n, index_t K, index_t pixels)
{
    const index_t b = item % n, k = item / n;
    const REAL *in = y + (b * K + k) * pixels;
    REAL *out = product + item * pixels;
    for (index_t p = 0; p < pixels; ++p) out[p] = in[p];
}

AN_KERNEL_SIZED(nchw_to_gemm, n * K, n * K * pixels,
                (const REAL *y, REAL *product, index_t n, index_t K, index_t pixels),
                AN(nchw_to_gemm_plane)(i, y, product, n, K, pixels))

/* y[b, k, :] += bias[k] for y (n, K, pixels): one plane per work item. */
AN_INLINE void AN(add_channel_bias_plane)(index_t item, REAL *y, const REAL *bias, index_t K,
                                          index_t pixels)
{
    REAL *out = y + item * pixels;
    const REAL offset = bias[item % K];
    for (index_t p = 0; p < pixels; ++p) out[p] += offset;
}

AN_KERNEL_SIZED(add_channel_bias, n * K, n * K * pixels,
                (REAL *y, const REAL *bias, index_t n, index_t K, index_t pixels),
                AN(add_channel_bias_plane)(i, y, bias, K, pixels))

#ifndef __CUDACC__
/* ---------------------------------------------------------------- CPU only: small images
 * Convolution of small images (LeNet's): the batch is cut into units of `unit` images, and
 * each OpenMP thread takes whole units: im2col of its unit into a patch buffer of its own
 * (small enough to stay in the thread's cache), single-threaded GEMMs by the cblas_?gemm the
 * caller passes, and the layout copies. On such images a multi-threaded GEMM over the whole
 * batch spends as much on the patch matrix's trip through memory, on the layout passes and
 * on waking and synchronising BLAS threads as on arithmetic; here a thread that the OS
 * preempts takes fewer units instead of holding the others at a barrier.
 * Both drivers return -1 when a buffer cannot be allocated, 0 otherwise. */
/* The drivers take the geometry as one an_conv_geometry (_conv_geometry.h) and the
 * single-threaded cblas_?gemm as a void * of type AN(cblas_gemm_t) (_cblas.h). */
#include "_cblas.h"

/* y = conv(x, w) + bias for a C-contiguous batch, in units of `unit` images. */
AN_CPU_FUNCTION(conv_forward_units,
                (const REAL *x, const REAL *w, const REAL *bias, int use_bias, REAL *y,
                 const an_conv_geometry *geometry, index_t unit, void *gemm))
{
    const index_t N = geometry->N, C = geometry->C, H = geometry->H, W = geometry->W;
    const index_t K = geometry->K, G = geometry->G, Ho = geometry->Ho, Wo = geometry->Wo;
    const index_t kh = geometry->kh, kw = geometry->kw, sh = geometry->sh, sw = geometry->sw;
    const index_t pt = geometry->pt, pl = geometry->pl, dh = geometry->dh, dw = geometry->dw;
    const AN(cblas_gemm_t) gemm_fn = (AN(cblas_gemm_t))gemm;
    const index_t pixels = Ho * Wo, rows_g = C / G * kh * kw, K_g = K / G;
    const index_t units = (N + unit - 1) / unit;
    int failed = 0;
    #pragma omp parallel if(units > 1)
    {
        REAL *patches = malloc(sizeof(REAL) * C * kh * kw * unit * pixels);
        REAL *product = malloc(sizeof(REAL) * K * unit * pixels);
        if (!patches || !product) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic)
        for (index_t u = 0; u < units; ++u) {
            if (!patches || !product) continue;
            const index_t n0 = u * unit, n = N - n0 < unit ? N - n0 : unit;
            const int cols = (int)(n * pixels);
            for (index_t item = 0; item < C * kh * n; ++item)
                AN(im2col_rows)(item, x + n0 * C * H * W, patches, n, C, H, W, Ho, Wo, kh, kw,
                                sh, sw, pt, pl, dh, dw);
            for (index_t g = 0; g < G; ++g)        /* Y_g = W_g . P_g */
                gemm_fn(AN_CBLAS_ROW_MAJOR, AN_CBLAS_NO_TRANS, AN_CBLAS_NO_TRANS, (int)K_g, cols,
                        (int)rows_g, 1, w + g * K_g * rows_g, (int)rows_g,
                        patches + g * rows_g * cols, cols, 0, product + g * K_g * cols, cols);
            for (index_t item = 0; item < n * K; ++item)
                AN(gemm_to_nchw_plane)(item, product, y + n0 * K * pixels, bias, use_bias,
                                       n, K, pixels);
        }
        free(patches);
        free(product);
    }
    return failed ? -1 : 0;
}

/* dx = col2im(W^T dY) and dw += dY P^T for output derivatives dy (N, K, Ho, Wo); dx is written
 * whole, dw (K, C/G*kh*kw) must hold zeros. x is read only when need_dw.
 * The units are dealt out in at most AN_CONV_SUMS runs of consecutive units, each summing its
 * filter derivatives into a buffer of its own; the buffers are then added in order. The result
 * is therefore the same whatever the number of threads and whichever thread takes which run
 * (training must resume exactly), which per-thread sums would not give. */
#ifndef AN_CONV_SUMS
#define AN_CONV_SUMS 32
#endif

AN_CPU_FUNCTION(conv_backward_units,
                (const REAL *x, const REAL *w, const REAL *dy, REAL *dx, REAL *dw_out,
                 int need_dx, int need_dw, const an_conv_geometry *geometry, index_t unit,
                 void *gemm))
{
    const index_t N = geometry->N, C = geometry->C, H = geometry->H, W = geometry->W;
    const index_t K = geometry->K, G = geometry->G, Ho = geometry->Ho, Wo = geometry->Wo;
    const index_t kh = geometry->kh, kw = geometry->kw, sh = geometry->sh, sw = geometry->sw;
    const index_t pt = geometry->pt, pl = geometry->pl, dh = geometry->dh, dw = geometry->dw;
    const AN(cblas_gemm_t) gemm_fn = (AN(cblas_gemm_t))gemm;
    const index_t pixels = Ho * Wo, rows_g = C / G * kh * kw, K_g = K / G;
    const index_t units = (N + unit - 1) / unit;
    const index_t runs = units < AN_CONV_SUMS ? units : AN_CONV_SUMS;
    const index_t dw_size = K * rows_g;
    REAL *sums = need_dw ? calloc(runs * dw_size + 1, sizeof(REAL)) : NULL;
    int failed = need_dw && !sums;
    #pragma omp parallel if(runs > 1 && !failed)
    {
        REAL *patches = malloc(sizeof(REAL) * C * kh * kw * unit * pixels);
        REAL *product = malloc(sizeof(REAL) * K * unit * pixels);
        const int ready = patches && product && !failed;
        if (!ready) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic)
        for (index_t run = 0; run < runs; ++run) {
            if (!ready) continue;
            REAL *dw_sum = need_dw ? sums + run * dw_size : NULL;
            for (index_t u = run * units / runs; u < (run + 1) * units / runs; ++u) {
                const index_t n0 = u * unit, n = N - n0 < unit ? N - n0 : unit;
                const int cols = (int)(n * pixels);
                for (index_t item = 0; item < n * K; ++item)  /* dY as the GEMM's (K, n*pixels) */
                    AN(nchw_to_gemm_plane)(item, dy + n0 * K * pixels, product, n, K, pixels);
                if (need_dw) {
                    for (index_t item = 0; item < C * kh * n; ++item)
                        AN(im2col_rows)(item, x + n0 * C * H * W, patches, n, C, H, W, Ho, Wo,
                                        kh, kw, sh, sw, pt, pl, dh, dw);
                    for (index_t g = 0; g < G; ++g)    /* dW_g += dY_g . P_g^T */
                        gemm_fn(AN_CBLAS_ROW_MAJOR, AN_CBLAS_NO_TRANS, AN_CBLAS_TRANS, (int)K_g,
                                (int)rows_g, cols, 1, product + g * K_g * cols, cols,
                                patches + g * rows_g * cols, cols, 1,
                                dw_sum + g * K_g * rows_g, (int)rows_g);
                }
                if (need_dx) {
                    for (index_t g = 0; g < G; ++g)    /* dP_g = W_g^T . dY_g */
                        gemm_fn(AN_CBLAS_ROW_MAJOR, AN_CBLAS_TRANS, AN_CBLAS_NO_TRANS, (int)rows_g,
                                cols, (int)K_g, 1, w + g * K_g * rows_g, (int)rows_g,
                                product + g * K_g * cols, cols, 0,
                                patches + g * rows_g * cols, cols);
                    for (index_t item = 0; item < n * C * H; ++item)
                        AN(col2im_row)(item, patches, dx + n0 * C * H * W, n, C, H, W, Ho, Wo,
                                       kh, kw, sh, sw, pt, pl, dh, dw);
                }
            }
        }
        free(patches);
        free(product);
    }
    if (need_dw && !failed)
        for (index_t run = 0; run < runs; ++run)
            for (index_t e = 0; e < dw_size; ++e)
                dw_out[e] += sums[run * dw_size + e];
    free(sums);
    return failed ? -1 : 0;
}
#endif

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
