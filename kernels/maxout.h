/* maxout.h -- AutoNN's vl_nnmaxout: the maximum of each run of `units` consecutive channels.
 *
 * x is (N, C, S), S = H*W, C = units * B; y is (N, B, S). Output element i = (n*B + b)*S + s
 * reads the run x[n, b*units + u, s], u < units, which starts at (i / S)*units*S + i % S with a
 * stride of S:
 *   forward   y[i] = max_u x[n, b*units + u, s]
 *   backward  dx[n, b*units + u, s] = dy[i] for the first u that reaches the maximum, else 0
 * Ties go to the first channel of the run (vl_nnmaxout is vl_nnpool over the channels, and the
 * pooling kernel keeps the first maximum). One work item per output element writes all `units`
 * derivatives of its run, so dx needs no zeroing.
 */

AN_INLINE index_t AN(maxout_run_start)(index_t i, index_t units, index_t S)
{
    return (i / S) * units * S + i % S;
}

AN_INLINE index_t AN(maxout_argmax)(const REAL *x, index_t start, index_t units, index_t S)
{
    index_t best = 0;
    REAL maximum = x[start];
    for (index_t u = 1; u < units; ++u) {
        if (x[start + u * S] > maximum) {
            maximum = x[start + u * S];
            best = u;
        }
    }
    return best;
}

AN_INLINE void AN(maxout_forward_one)(index_t i, const REAL *x, REAL *y, index_t units, index_t S)
{
    const index_t start = AN(maxout_run_start)(i, units, S);
    y[i] = x[start + AN(maxout_argmax)(x, start, units, S) * S];
}

AN_INLINE void AN(maxout_backward_one)(index_t i, const REAL *x, const REAL *dy, REAL *dx,
                                       index_t units, index_t S)
{
    const index_t start = AN(maxout_run_start)(i, units, S);
    const index_t best = AN(maxout_argmax)(x, start, units, S);
    for (index_t u = 0; u < units; ++u)
        dx[start + u * S] = u == best ? dy[i] : (REAL)0;
}

AN_KERNEL(maxout_forward, count,
          (const REAL *x, REAL *y, index_t count, index_t units, index_t S),
          AN(maxout_forward_one)(i, x, y, units, S))

AN_KERNEL(maxout_backward, count,
          (const REAL *x, const REAL *dy, REAL *dx, index_t count, index_t units, index_t S),
          AN(maxout_backward_one)(i, x, dy, dx, units, S))
