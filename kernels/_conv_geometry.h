/* _conv_geometry.h -- helper header, not a kernel family: what conv.h (im2col, col2im, the
 * units drivers) and conv_direct.h (the direct kernel) share about a convolution's geometry.
 *
 *   an_conv_geometry     (CPU only) the geometry of x (N, C, H, W) * w (K, C/G, kh, kw) ->
 *                        y (N, K, Ho, Wo) as the CPU drivers (conv_forward_units,
 *                        conv_backward_units, conv_forward_direct) take it: one struct, which
 *                        the caller fills by field name (autonn/nn/convolution_schedules.py,
 *                        through cffi, which refuses a misspelt name), where sixteen integers in
 *                        a row would let two swapped ones (sh and sw) pass unnoticed.
 *   AN(conv_valid_range) (both targets) the output columns whose tap falls inside the input.
 *
 * The struct is the same for both REAL types, so it is defined once per translation unit, under
 * an ordinary include guard, with a plain `an_` name (no type suffix): that is the declaration
 * autonn/kernel_sources.py copies into cffi's cdef (it reads the helpers as well as the
 * families). conv_valid_range is an AN() function, defined once per REAL pass (guard
 * AN_CONV_GEOMETRY_F32 / _F64, chosen by AN_REAL_IS_DOUBLE; see portable.h).
 */
#if !defined(AN_REAL_IS_DOUBLE)
#error "_conv_geometry.h: no AN_REAL_IS_DOUBLE; include it from a family (see portable.h)"
#endif

#if !defined(__CUDACC__) && !defined(AN_CONV_GEOMETRY_STRUCT)
#define AN_CONV_GEOMETRY_STRUCT       /* once per translation unit, not per REAL pass */
typedef struct {
    index_t N, C, H, W;     /* images, channels, rows, columns of the input */
    index_t K, G;           /* filters, groups */
    index_t Ho, Wo;         /* rows, columns of the output */
    index_t kh, kw;         /* filter taps */
    index_t sh, sw;         /* stride */
    index_t pt, pl;         /* padding at the top and the left (Ho and Wo imply the rest) */
    index_t dh, dw;         /* dilation */
} an_conv_geometry;
#endif

#if (AN_REAL_IS_DOUBLE && !defined(AN_CONV_GEOMETRY_F64)) \
    || (!AN_REAL_IS_DOUBLE && !defined(AN_CONV_GEOMETRY_F32))
#if AN_REAL_IS_DOUBLE
#define AN_CONV_GEOMETRY_F64
#else
#define AN_CONV_GEOMETRY_F32
#endif

/* [*lo, *hi): the output columns ox < n_out whose tap ox*s + x0 lies inside [0, W). Stride 1,
   the common case, needs no division (index divisions dominate im2col on small maps). */
AN_INLINE void AN(conv_valid_range)(index_t x0, index_t s, index_t W, index_t n_out,
                                    index_t *lo, index_t *hi)
{
    if (s == 1) {
        *lo = x0 >= 0 ? 0 : -x0;
        *hi = W - x0;
    } else {
        *lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
        *hi = W - 1 - x0 >= 0 ? (W - 1 - x0) / s + 1 : 0;
    }
    if (*hi > n_out) *hi = n_out;
    if (*hi < 0) *hi = 0;
    if (*lo > *hi) *lo = *hi;
}

#endif /* once per REAL pass */
