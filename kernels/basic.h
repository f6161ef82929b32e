/* basic.h -- the smallest kernels: they show the pattern and test the build machinery.
 *
 *   fill:  y[i] = value                    for i < n
 *   axpy:  y[i] = a * x[i] + y[i]          for i < n
 */

AN_INLINE void AN(fill_element)(index_t i, REAL *y, REAL value)
{
    y[i] = value;
}

AN_KERNEL(fill, n, (REAL *y, REAL value, index_t n),
          AN(fill_element)(i, y, value))

AN_INLINE void AN(axpy_element)(index_t i, REAL a, const REAL *x, REAL *y)
{
    y[i] = a * x[i] + y[i];
}

AN_KERNEL(axpy, n, (REAL a, const REAL *x, REAL *y, index_t n),
          AN(axpy_element)(i, a, x, y))
