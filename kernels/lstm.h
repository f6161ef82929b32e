/* lstm.h -- the gates of one LSTM time step, AutoNN's vl_nnlstm, batch-major.
 *
 * z (N, 4d) is the GEMM [x h] W^T; unit j of sample n has its four pre-activations at
 * z[n*4d + k*d + j], k = 0, 1, 2, 3 for the gates [i; f; o; g], and b (4d) their biases:
 *   forward   i = sigmoid(z_i + b_i), f = sigmoid(z_f + b_f), o = sigmoid(z_o + b_o),
 *             g = tanh(z_g + b_g);  c' = f c + i g;  h' = o tanh(c')
 *             (the activations i, f, o, g overwrite z: they are what the backward reads)
 *   backward  with dc'_full = dc' + dh' o (1 - tanh(c')^2):
 *             dc = clip(dc'_full f);  dz_i = dc'_full g i (1 - i),  dz_f = dc'_full c f (1 - f),
 *             dz_o = dh' tanh(c') o (1 - o),  dz_g = dc'_full i (1 - g^2)
 * clip(v) clamps v to [-clip_c, clip_c] (vl_nnlstm's clipGrad for the cell state's derivative;
 * an infinite clip_c leaves it as it is). Work items are chunks of `chunk` consecutive units
 * of one sample: a whole row on the CPU (a loop gcc vectorises), one unit on the GPU. Every
 * item reads and writes only its own units, in place over z in the forward.
 */
#include "_fast_exp.h"

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

/* sigmoid(v) = exp(min(v, 0)) / (1 + exp(-|v|)) and tanh(v) = sign(v) (1 - e) / (1 + e) with
 * e = exp(-2|v|) <= 1: no exponential overflows. */
AN_INLINE REAL AN(lstm_sigmoid)(REAL v)
{
    const REAL e = AN(fast_exp)(v > 0 ? -v : v);
    return (v >= 0 ? (REAL)1 : e) / (1 + e);
}

AN_INLINE REAL AN(lstm_tanh)(REAL v)
{
    const REAL e = AN(fast_exp)(v > 0 ? -2 * v : 2 * v);
    const REAL t = (1 - e) / (1 + e);
    return v < 0 ? -t : t;
}

AN_INLINE void AN(lstm_forward_chunk)(index_t item, REAL *AN_RESTRICT z,
                                      const REAL *AN_RESTRICT b, const REAL *AN_RESTRICT c,
                                      REAL *AN_RESTRICT h_next, REAL *AN_RESTRICT c_next,
                                      index_t d, index_t chunk)
{
    const index_t chunks = (d + chunk - 1) / chunk;
    const index_t n = item / chunks, start = (item % chunks) * chunk;
    const index_t end = start + chunk < d ? start + chunk : d;
    REAL *zi = z + n * 4 * d, *zf = zi + d, *zo = zf + d, *zg = zo + d;
    const REAL *cp = c + n * d;
    REAL *hn = h_next + n * d, *cn = c_next + n * d;
    for (index_t j = start; j < end; ++j) {
        const REAL i = AN(lstm_sigmoid)(zi[j] + b[j]);
        const REAL f = AN(lstm_sigmoid)(zf[j] + b[d + j]);
        const REAL o = AN(lstm_sigmoid)(zo[j] + b[2 * d + j]);
        const REAL g = AN(lstm_tanh)(zg[j] + b[3 * d + j]);
        const REAL cell = f * cp[j] + i * g;
        zi[j] = i;
        zf[j] = f;
        zo[j] = o;
        zg[j] = g;
        cn[j] = cell;
        hn[j] = o * AN(lstm_tanh)(cell);
    }
}

AN_KERNEL_SIZED(lstm_forward, N * ((d + chunk - 1) / chunk), N * d,
                (REAL *z, const REAL *b, const REAL *c, REAL *h_next, REAL *c_next, index_t N,
                 index_t d, index_t chunk),
                AN(lstm_forward_chunk)(i, z, b, c, h_next, c_next, d, chunk))

AN_INLINE void AN(lstm_backward_chunk)(index_t item, const REAL *AN_RESTRICT gates,
                                       const REAL *AN_RESTRICT c, const REAL *AN_RESTRICT c_next,
                                       const REAL *AN_RESTRICT dh_next,
                                       const REAL *AN_RESTRICT dc_next, REAL *AN_RESTRICT dz,
                                       REAL *AN_RESTRICT dc, REAL clip_c, index_t d,
                                       index_t chunk)
{
    const index_t chunks = (d + chunk - 1) / chunk;
    const index_t n = item / chunks, start = (item % chunks) * chunk;
    const index_t end = start + chunk < d ? start + chunk : d;
    const REAL *gi = gates + n * 4 * d, *gf = gi + d, *go = gf + d, *gg = go + d;
    REAL *dzi = dz + n * 4 * d, *dzf = dzi + d, *dzo = dzf + d, *dzg = dzo + d;
    const REAL *cp = c + n * d, *cn = c_next + n * d;
    const REAL *dhn = dh_next + n * d, *dcn = dc_next + n * d;
    REAL *dcp = dc + n * d;
    for (index_t j = start; j < end; ++j) {
        const REAL i = gi[j], f = gf[j], o = go[j], g = gg[j];
        const REAL tc = AN(lstm_tanh)(cn[j]);
        const REAL dcell = dcn[j] + dhn[j] * o * (1 - tc * tc);
        const REAL dcf = dcell * f;
        dcp[j] = dcf > clip_c ? clip_c : (dcf < -clip_c ? -clip_c : dcf);
        dzi[j] = dcell * g * i * (1 - i);
        dzf[j] = dcell * cp[j] * f * (1 - f);
        dzo[j] = dhn[j] * tc * o * (1 - o);
        dzg[j] = dcell * i * (1 - g * g);
    }
}

AN_KERNEL_SIZED(lstm_backward, N * ((d + chunk - 1) / chunk), N * d,
                (const REAL *gates, const REAL *c, const REAL *c_next, const REAL *dh_next,
                 const REAL *dc_next, REAL *dz, REAL *dc, REAL clip_c, index_t N, index_t d,
                 index_t chunk),
                AN(lstm_backward_chunk)(i, gates, c, c_next, dh_next, dc_next, dz, dc, clip_c,
                                        d, chunk))

#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
