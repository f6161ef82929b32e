/* _fast_exp.h -- helper header, not a kernel family: AN(fast_exp), an exp that vectorises on
 * the CPU. Included by activation.h (sigmoid, softmax) and loss.h (softmax log-loss), directly
 * and through _softmax.h.
 *
 * A helper (kernels/_*.h) is included only by the families that use it, never by the translation
 * unit itself, so no family depends on the order in which the families are included. Families
 * are included once per REAL type, and two families of the same REAL pass may both include a
 * helper, so its guard is per pass: AN_FAST_EXP_F32 in the float pass, AN_FAST_EXP_F64 in the
 * double pass, chosen by AN_REAL_IS_DOUBLE (0 or 1), which the translation unit defines for each
 * pass (portable.h describes the pattern).
 */
#if !defined(AN_REAL_IS_DOUBLE)
#error "_fast_exp.h: no AN_REAL_IS_DOUBLE; include it from a family (see portable.h)"
#elif (AN_REAL_IS_DOUBLE && !defined(AN_FAST_EXP_F64)) \
    || (!AN_REAL_IS_DOUBLE && !defined(AN_FAST_EXP_F32))
#if AN_REAL_IS_DOUBLE
#define AN_FAST_EXP_F64
#else
#define AN_FAST_EXP_F32
#endif

/* As in the families that use it: gcc may assume that floating-point operations do not trap. */
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* exp(v) with only arithmetic, so that loops calling it vectorise on the CPU (the C library's
 * exp is a function call, one element at a time): v = k ln2 + r with |r| <= ln2/2 (ln2 split in
 * two parts, Cody-Waite), e^r by a polynomial, 2^k built in the exponent bits (adding 1.5 * 2^23
 * or 1.5 * 2^52 puts the integer k in the low mantissa bits). float uses Cephes' expf
 * polynomial in float arithmetic (8 lanes per AVX vector; relative error ~1e-7), double the
 * Taylor series to degree 11 (below double rounding). Arguments below -87 (float) or -708
 * (double) give 0, large ones saturate at exp(88) or exp(709). The GPU uses its own exp. */
AN_INLINE REAL AN(fast_exp)(REAL value)
{
#if defined(__CUDACC__)
    return exp(value);
#else
    if (sizeof(REAL) == sizeof(float)) {
        /* clamped so that a NaN becomes a number too (its bits never reach the integer
         * arithmetic below, where they would make the shift undefined); NaN is returned as is */
        float v = (float)value < 88.0f ? (float)value : 88.0f;
        v = v > -87.0f ? v : -87.0f;
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
        return value != value ? value : value < -87 ? (REAL)0 : (REAL)(p * scale);
    }
    double v = value > -708.0 ? (double)value : -708.0;   /* NaN-safe clamps, as above */
    v = v < 709.0 ? v : 709.0;
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
    return value != value ? value : value < -708 ? (REAL)0 : (REAL)(p * scale);
#endif
}

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* once per REAL pass */
