/* conv_direct.h -- CPU only: the forward of conv computed directly, without a patch matrix.
 *
 *     y[b, k, oy, ox] = bias[k] + sum over (c, i, j) of
 *                       w[k, c, i, j] * x[b, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw]
 *
 * (c over the channels of k's group). im2col + GEMM writes and reads a patch matrix kh*kw times
 * the size of the input, and its GEMM is thin when an output has few taps (C/G*kh*kw: LeNet, an
 * RGB stem). Here each vector of outputs stays in a register for its whole sum, as in a GEMM's
 * micro-kernel, and the "patch matrix" is read where it lies, in the image. autonn/nn/convolution.py
 * runs conv's forward here where that measured faster, and the data derivative of stride-1
 * convolutions, which is the convolution of dy with the flipped, transposed filters.
 *
 * Per band of output rows, the input rows it reads are first copied into a zero-padded,
 * phase-split buffer
 *
 *     xs[c, yp, f, m] = x[c, yp - pt, m*sw + f - pl]        (0 outside x)
 *
 * in which tap (c, i, j) of output (oy, ox) is xs[c, oy*sh + i*dh, (j*dw) % sw, ox + (j*dw) / sw]:
 * consecutive outputs read consecutive memory for any stride, so V outputs of a row are one
 * vector load, and padding needs no test. The filters are packed KB side by side,
 * wp[g, block, tap, KB] (zero filters fill the last block of a group). The micro-kernel holds
 * NV vectors of outputs (V consecutive pixels of a row each) for KB filters: per tap, NV loads,
 * KB broadcasts and NV*KB multiply-adds, the register blocking of a GEMM kernel.
 *
 * Vectors are GCC's vector extension (also clang's): plain C that the compiler maps to the
 * machine's SIMD width (AVX: one register per vector). GCC in ISO C mode does not fuse a*b + c
 * into an FMA, so this file asks it to.
 */
#ifndef __CUDACC__
#if !defined(__GNUC__)
#error "autonn: kernels/conv_direct.h needs GCC's vector extension: build with gcc or clang"
#endif
#include <string.h>
#include "_conv_geometry.h"       /* conv_valid_range, an_conv_geometry (conv.h uses them too) */
#if defined(__GNUC__) && !defined(__clang__)   /* (clang fuses within an expression already) */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#endif

#ifndef AN_DIRECT_NV
#define AN_DIRECT_NV 3            /* output vectors per tile */
#define AN_DIRECT_KB 4            /* filters per tile: 12 accumulators of AVX's 16 registers */
#define AN_DIRECT_BYTES 32        /* bytes per vector */
#endif

typedef REAL AN(direct_vec) __attribute__((vector_size(AN_DIRECT_BYTES)));
/* the same, for loads from any REAL's address (as the compilers' own unaligned SIMD types) */
typedef REAL AN(direct_unaligned)
    __attribute__((vector_size(AN_DIRECT_BYTES), aligned(sizeof(REAL)), may_alias));
#define AN_DIRECT_V ((index_t)(AN_DIRECT_BYTES / sizeof(REAL)))

/* xs (C, rows, sw, Mw), channel planes `plane` apart, for the padded rows [y0, y0 + rows) of
   one image's channels x (C, H, W), as above. */
AN_INLINE void AN(direct_split)(const REAL *AN_RESTRICT x, REAL *AN_RESTRICT xs, index_t C,
                                index_t H, index_t W, index_t y0, index_t rows, index_t plane,
                                index_t Mw, index_t sw, index_t pt, index_t pl)
{
    for (index_t c = 0; c < C; ++c) {
        for (index_t r = 0; r < rows; ++r) {
            REAL *dst = xs + c * plane + r * sw * Mw;
            const index_t yy = y0 + r - pt;
            if (yy < 0 || yy >= H) {
                for (index_t e = 0; e < sw * Mw; ++e) dst[e] = 0;
                continue;
            }
            const REAL *src = x + (c * H + yy) * W;
            for (index_t f = 0; f < sw; ++f) {  /* phase f: the columns m*sw + f - pl */
                REAL *out = dst + f * Mw;
                index_t lo, hi;                 /* the columns m that fall inside the row */
                AN(conv_valid_range)(f - pl, sw, W, Mw, &lo, &hi);
                for (index_t m = 0; m < lo; ++m) out[m] = 0;
                const REAL *from = src + f - pl;
                if (sw == 1) {
                    for (index_t m = lo; m < hi; ++m) out[m] = from[m];
                } else if (sw == 2) {           /* a constant stride vectorises */
                    for (index_t m = lo; m < hi; ++m) out[m] = from[2 * m];
                } else {
                    for (index_t m = lo; m < hi; ++m) out[m] = from[m * sw];
                }
                for (index_t m = hi; m < Mw; ++m) out[m] = 0;
            }
        }
    }
}

/* One tile: for the NV output vectors whose reads start at xs + base[v] and the KB filters of
 * the block wp (tap t's weights at wp[t*KB .. t*KB + KB)), the sums
 *     out[v] + k*stride  <-  init[k] + sum over taps t of xs[base[v] + offsets[t]] * wp[t*KB + k]
 * (V pixels each) for the first `filters` filters, writing the first lanes[v] pixels of vector
 * v. The bias comes in as the sums' initial value. */
AN_INLINE void AN(direct_tile)(const REAL *const *base, const index_t *offsets, index_t taps,
                               const REAL *wp, const REAL *init, REAL *const *out,
                               index_t stride, index_t filters, const index_t *lanes)
{
    AN(direct_vec) sum[AN_DIRECT_NV][AN_DIRECT_KB];
    const REAL *from[AN_DIRECT_NV];
    for (int v = 0; v < AN_DIRECT_NV; ++v) {
        from[v] = base[v];
        for (int k = 0; k < AN_DIRECT_KB; ++k) sum[v][k] = (AN(direct_vec)){0} + init[k];
    }
    for (index_t t = 0; t < taps; ++t) {
        AN(direct_vec) in[AN_DIRECT_NV];
        #pragma GCC unroll 8
        for (int v = 0; v < AN_DIRECT_NV; ++v)
            in[v] = *(const AN(direct_unaligned) *)(from[v] + offsets[t]);
        #pragma GCC unroll 8
        for (int k = 0; k < AN_DIRECT_KB; ++k) {
            const REAL weight = wp[t * AN_DIRECT_KB + k];
            #pragma GCC unroll 8
            for (int v = 0; v < AN_DIRECT_NV; ++v) sum[v][k] += in[v] * weight;
        }
    }
    int whole = filters == AN_DIRECT_KB;
    for (int v = 0; v < AN_DIRECT_NV; ++v) whole = whole && lanes[v] == AN_DIRECT_V;
    if (whole) {        /* the common case: whole vectors of every filter */
        for (int v = 0; v < AN_DIRECT_NV; ++v)
            for (int k = 0; k < AN_DIRECT_KB; ++k)
                *(AN(direct_unaligned) *)(out[v] + k * stride) = sum[v][k];
        return;
    }
    for (index_t k = 0; k < filters; ++k)
        for (int v = 0; v < AN_DIRECT_NV; ++v) {
            REAL lane[AN_DIRECT_BYTES / sizeof(REAL)];
            memcpy(lane, &sum[v][k], sizeof lane);
            for (index_t l = 0; l < lanes[v]; ++l) out[v][k * stride + l] = lane[l];
        }
}

/* How a convolution is cut for the direct kernel: bands of (nearly) equal numbers of output
 * rows, each holding as many rows as keep the input they read (xs of one group's channels) to
 * about band_bytes (at least one row), so that it stays in the core's cache while the kernel
 * passes over it once per block of filters; and the strides of xs. */
typedef struct {
    index_t Cg, Kg, taps;         /* channels, filters and taps per group */
    index_t row_vectors;          /* output vectors per row: V pixels each, the last part-filled */
    index_t Mw, row, plane;       /* xs: columns per phase, row stride, channel stride */
    index_t band, bands;          /* output rows per band, bands per image */
} AN(direct_plan);

AN_INLINE AN(direct_plan) AN(direct_make_plan)(index_t C, index_t K, index_t G, index_t Ho,
                                               index_t Wo, index_t kh, index_t kw, index_t sh,
                                               index_t sw, index_t dh, index_t dw,
                                               index_t band_bytes)
{
    AN(direct_plan) p;
    p.Cg = C / G;
    p.Kg = K / G;
    p.taps = p.Cg * kh * kw;
    p.row_vectors = (Wo + AN_DIRECT_V - 1) / AN_DIRECT_V;
    p.Mw = p.row_vectors * AN_DIRECT_V + (kw - 1) * dw / sw;
    p.row = sw * p.Mw;
    const index_t row_bytes = p.Cg * sh * p.row * (index_t)sizeof(REAL);
    index_t band = band_bytes / (row_bytes > 0 ? row_bytes : 1);
    band = band < 1 ? 1 : band > Ho ? Ho : band;
    p.bands = (Ho + band - 1) / band;
    p.band = (Ho + p.bands - 1) / p.bands;
    /* channel planes an odd number of cache lines apart: taps of successive channels then
       fall in different cache sets (a power-of-two stride would evict them from each other) */
    const index_t line = 64 / (index_t)sizeof(REAL);
    const index_t rows_in = (p.band - 1) * sh + (kh - 1) * dh + 1;
    p.plane = ((rows_in * p.row + line - 1) / line | 1) * line;
    return p;
}

/* offsets[t]: where tap t = (c*kh + i)*kw + j of an output reads xs, from where its output
   vector's reads start (the tap (0, 0, 0)). */
AN_INLINE void AN(direct_offsets)(const AN(direct_plan) *p, index_t *offsets, index_t kh,
                                  index_t kw, index_t sw, index_t dh, index_t dw)
{
    for (index_t c = 0; c < p->Cg; ++c)
        for (index_t i = 0; i < kh; ++i)
            for (index_t j = 0; j < kw; ++j)
                offsets[(c * kh + i) * kw + j] =
                    c * p->plane + i * dh * p->row + (j * dw) % sw * p->Mw + (j * dw) / sw;
}

/* y = conv(x, w) + bias for C-contiguous x (N, C, H, W), w (K, C/G, kh, kw), y (N, K, Ho, Wo),
 * the sizes, stride, padding and dilation given by `geometry` (_conv_geometry.h's
 * an_conv_geometry); without a bias, pass use_bias = 0 and any valid pointer as bias. A work
 * item is a band of output rows of one image and group (see direct_plan): its thread splits
 * the input rows the band reads, then every filter block of the group runs its tiles over
 * them. Returns -1 when a buffer cannot be allocated, 0 otherwise. */
AN_CPU_FUNCTION(conv_forward_direct,
                (const REAL *x, const REAL *w, const REAL *bias, int use_bias, REAL *y,
                 const an_conv_geometry *geometry, index_t band_bytes))
{
    const index_t N = geometry->N, C = geometry->C, H = geometry->H, W = geometry->W;
    const index_t K = geometry->K, G = geometry->G, Ho = geometry->Ho, Wo = geometry->Wo;
    const index_t kh = geometry->kh, kw = geometry->kw, sh = geometry->sh, sw = geometry->sw;
    const index_t pt = geometry->pt, pl = geometry->pl, dh = geometry->dh, dw = geometry->dw;
    const index_t V = AN_DIRECT_V, NV = AN_DIRECT_NV, KB = AN_DIRECT_KB;
    const AN(direct_plan) p = AN(direct_make_plan)(C, K, G, Ho, Wo, kh, kw, sh, sw, dh, dw,
                                                   band_bytes);
    const index_t Cg = p.Cg, Kg = p.Kg, taps = p.taps, band = p.band, bands = p.bands;
    const index_t blocks = (Kg + KB - 1) / KB;           /* filter blocks per group */
    const index_t positions = band * p.row_vectors;      /* output vectors of a full band */
    REAL *wp = malloc(sizeof(REAL) * G * blocks * taps * KB);
    index_t *offsets = malloc(sizeof(index_t) * taps);
    index_t *in_at = malloc(sizeof(index_t) * positions);     /* per vector of a band: its xs */
    index_t *out_at = malloc(sizeof(index_t) * positions);    /* and y offsets in the band */
    index_t *lanes_at = malloc(sizeof(index_t) * positions);  /* and its pixels inside the row */
    int failed = !wp || !offsets || !in_at || !out_at || !lanes_at;
    if (!failed) {
        for (index_t g = 0; g < G; ++g)
            for (index_t blk = 0; blk < blocks; ++blk)
                for (index_t t = 0; t < taps; ++t)
                    for (index_t kk = 0; kk < KB; ++kk) {
                        const index_t k = blk * KB + kk;
                        wp[((g * blocks + blk) * taps + t) * KB + kk] =
                            k < Kg ? w[(g * Kg + k) * taps + t] : 0;
                    }
        AN(direct_offsets)(&p, offsets, kh, kw, sw, dh, dw);
        for (index_t r = 0; r < band; ++r)
            for (index_t xv = 0; xv < p.row_vectors; ++xv) {
                const index_t q = r * p.row_vectors + xv;
                in_at[q] = r * sh * p.row + xv * V;
                out_at[q] = r * Wo + xv * V;
                lanes_at[q] = Wo - xv * V < V ? Wo - xv * V : V;
            }
    }
    const index_t items = N * G * bands;
    #pragma omp parallel if(items > 1 && !failed)
    {
        REAL *xs = failed ? NULL : malloc(sizeof(REAL) * Cg * p.plane);
        if (!xs) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic)
        for (index_t item = 0; item < items; ++item) {
            if (!xs) continue;
            const index_t b = item / (G * bands), g = item / bands % G;
            const index_t oy0 = item % bands * band;
            const index_t rows = Ho - oy0 < band ? Ho - oy0 : band;
            const index_t count = rows * p.row_vectors;  /* output vectors of this band */
            AN(direct_split)(x + (b * C + g * Cg) * H * W, xs, Cg, H, W, oy0 * sh,
                             (rows - 1) * sh + (kh - 1) * dh + 1, p.plane, p.Mw, sw, pt, pl);
            for (index_t blk = 0; blk < blocks; ++blk) {
                const index_t k0 = g * Kg + blk * KB;
                const index_t filters = Kg - blk * KB < KB ? Kg - blk * KB : KB;
                const REAL *wg = wp + (g * blocks + blk) * taps * KB;
                REAL *yb = y + ((b * K + k0) * Ho + oy0) * Wo;
                REAL init[AN_DIRECT_KB];
                for (index_t kk = 0; kk < KB; ++kk)
                    init[kk] = use_bias && kk < filters ? bias[k0 + kk] : 0;
                for (index_t q0 = 0; q0 < count; q0 += NV) {
                    const REAL *base[AN_DIRECT_NV];
                    REAL *out[AN_DIRECT_NV];
                    index_t lanes[AN_DIRECT_NV];
                    for (index_t v = 0; v < NV; ++v) {   /* past the end: redo the last vector */
                        const index_t q = q0 + v < count ? q0 + v : count - 1;
                        base[v] = xs + in_at[q];
                        out[v] = yb + out_at[q];
                        lanes[v] = lanes_at[q];
                    }
                    AN(direct_tile)(base, offsets, taps, wg, init, out, Ho * Wo, filters, lanes);
                }
            }
        }
        free(xs);
    }
    free(wp);
    free(offsets);
    free(in_at);
    free(out_at);
    free(lanes_at);
    return failed ? -1 : 0;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#endif /* __CUDACC__ */
