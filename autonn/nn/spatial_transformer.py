"""Spatial transformer blocks: ``bilinearsampler`` (``vl_nnbilinearsampler``) and ``affinegrid``
(``dagnn.AffineGridGenerator``).

Grids follow MatConvNet: normalised coordinates in [-1, 1], -1 the centre of the first pixel and
+1 the centre of the last, the **row (y) coordinate first**. MatConvNet's 2 x Ho x Wo x N grid
is here (N, Ho, Wo, 2) with ``grid[..., 0] = y`` and ``grid[..., 1] = x`` (note: the reverse of
PyTorch's ``grid_sample`` order). The sampler runs on the C kernels of
``kernels/bilinearsampler.h``; affinegrid is two small einsums.
"""

from .. import kernels
from ..backend import array_module
from ..ops import Op
from ._arguments import (
    any_layer,
    as_pair,
    check_devices,
    check_dzdy,
    check_float_array,
    check_index_range,
    check_same_dtype,
    takes_name,
)


@takes_name
def bilinearsampler(x, grid, *, dzdy=None):
    """Bilinear sampling of x at the grid's points, ``vl_nnbilinearsampler``.

    ``y[n, c, i, j] = sum_{a, b in {0, 1}} x[m, c, sy + a, sx + b] |1 - a - fy| |1 - b - fx|``
    with ``py = (grid[n, i, j, 0] + 1) (H - 1) / 2``, ``sy = floor(py)``, ``fy = py - sy`` (likewise
    x), pixels outside the image reading 0, and ``m = n // (N / Nx)``: the batch of the grid may
    be a multiple of x's, each input image serving ``N / Nx`` consecutive grids. Derivatives: dz/dx
    scatters dz/dy with the same weights; dz/dgrid differentiates the weights,
    e.g. ``dy/dgrid_y = (H - 1) / 2 sum_b (x[sy+1, sx+b] - x[sy, sx+b]) |1 - b - fx|``.

    x : (Nx, C, H, W); grid : (N, Ho, Wo, 2). Returns (N, C, Ho, Wo); ``dzdy=`` gives
    ``(dx, dgrid)``.
    """
    name = "bilinearsampler"
    if any_layer(x, grid):
        return bilinearsampler_op(x, grid, dzdy=dzdy)
    check_float_array(name, "x", x, ndim=4)
    check_float_array(name, "grid", grid, ndim=4)
    if grid.shape[3] != 2:
        raise ValueError(f"{name}: grid must have shape (N, Ho, Wo, 2) with (y, x) last, got "
                         f"{tuple(grid.shape)}")
    if grid.shape[0] % max(x.shape[0], 1) != 0 or (x.shape[0] == 0) != (grid.shape[0] == 0):
        raise ValueError(f"{name}: the grid batch {grid.shape[0]} must be a multiple of the "
                         f"input batch {x.shape[0]} (x {tuple(x.shape)}, grid "
                         f"{tuple(grid.shape)})")
    check_same_dtype(name, x=x, grid=grid)
    check_devices(name, x=x, grid=grid)
    check_dzdy(name, dzdy, (grid.shape[0], x.shape[1], grid.shape[1], grid.shape[2]),
               like=x)
    return bilinearsampler_op(x, grid, dzdy=dzdy)


def check_sampler_limits(x_shape, grid_shape):
    """Refuse shapes whose output (N, C, Ho, Wo), grid points or kernel indices
    (kernels/bilinearsampler.h: n*C*S + c*S, (n / group)*C*H*W) exceed the index range."""
    nx, channels, height, width = x_shape
    n, out_h, out_w = grid_shape[:3]
    check_index_range("bilinearsampler", f"x shape {tuple(x_shape)}, grid shape "
                      f"{tuple(grid_shape)}",
                      grid_points=n * out_h * out_w * 2,
                      output_bytes=n * channels * out_h * out_w * 8,
                      input_bytes=nx * channels * height * width * 8)


def bilinearsampler_forward(x, grid):
    xp = array_module(x, grid)
    check_sampler_limits(x.shape, grid.shape)
    if not bool(xp.isfinite(grid).all()):  # here, not in the wrapper: a graph computes grids
        raise ValueError(f"bilinearsampler: the grid (shape {tuple(grid.shape)}) holds NaN or "
                         f"infinite points")
    x = xp.ascontiguousarray(x)
    grid = xp.ascontiguousarray(grid, dtype=x.dtype)
    n, out_h, out_w = grid.shape[:3]
    _, channels, height, width = x.shape
    y = xp.empty((n, channels, out_h, out_w), dtype=x.dtype)
    points = n * out_h * out_w
    kernels.launch("bilinear_forward", points, x, grid, y, channels, height, width,
                   out_h * out_w, n // max(x.shape[0], 1), points)   # (an empty batch: n = 0)
    return y


def bilinearsampler_backward(x, grid, dzdy):
    xp = array_module(x, grid)
    check_sampler_limits(x.shape, grid.shape)
    x = xp.ascontiguousarray(x)
    grid = xp.ascontiguousarray(grid, dtype=x.dtype)
    dzdy = xp.ascontiguousarray(dzdy, dtype=x.dtype)
    n, out_h, out_w = grid.shape[:3]
    nx, channels, height, width = x.shape
    points, group = n * out_h * out_w, n // max(nx, 1)
    dgrid = xp.empty_like(grid)
    kernels.launch("bilinear_backward_grid", points, x, grid, dzdy, dgrid, channels, height,
                   width, out_h * out_w, group, points)
    dx = xp.empty_like(x)
    kernels.launch("bilinear_backward_data", nx * channels, grid, dzdy, dx, channels, height,
                   width, out_h * out_w, group, nx * channels)
    return dx, dgrid


bilinearsampler_op = Op("bilinearsampler", bilinearsampler_forward, bilinearsampler_backward,
                        shape=lambda x_shape, grid_shape: (grid_shape[0], x_shape[1],
                                                           grid_shape[1], grid_shape[2]),
                        receptive_field="none", matconvnet_types=("dagnn.BilinearSampler",),
                        input_names=("x", "grid"), doc=bilinearsampler.__doc__)


# --------------------------------------------------------------------------- affinegrid
@takes_name
def affinegrid(theta, size, *, dzdy=None):
    """Sampling grid of an affine transformation, ``dagnn.AffineGridGenerator``.

    With ``theta[n] = [[c1, c2, c5], [c3, c4, c6]]`` and the output pixel (i, j) at normalised
    coordinates ``h_i = linspace(-1, 1, Ho)[i]``, ``w_j = linspace(-1, 1, Wo)[j]``:
    ``grid[n, i, j] = (c1 h_i + c2 w_j + c5, c3 h_i + c4 w_j + c6)`` (y first, as the sampler).
    Derivative: ``dz/dtheta[n] = sum_ij dz/dgrid[n, i, j] (h_i, w_j, 1)^T``.

    theta : (N, 2, 3), or MatConvNet's (N, 6, 1, 1) / (N, 6) holding ``c1 .. c6`` in that order;
    size : (Ho, Wo). Returns (N, Ho, Wo, 2).
    """
    name = "affinegrid"
    try:
        size = as_pair(name, "size", size)
    except TypeError:
        raise TypeError(f"{name}: size must be whole numbers (Ho, Wo), got {size!r}") from None
    if min(size) < 1:
        raise ValueError(f"{name}: size must be (Ho, Wo) with positive entries, got {size!r}")
    if any_layer(theta):
        return affinegrid_op(theta, size=size)
    check_float_array(name, "theta", theta, ndim=(2, 3, 4))
    if tuple(theta.shape[1:]) not in ((2, 3), (6, 1, 1), (6,)):
        raise ValueError(f"{name}: theta must have shape (N, 2, 3), (N, 6, 1, 1) or (N, 6), "
                         f"got {tuple(theta.shape)}")
    check_dzdy(name, dzdy, (theta.shape[0],) + size + (2,), like=theta,
               like_name="theta")
    return affinegrid_op(theta, size=size, dzdy=dzdy)


def check_affinegrid_limits(count, size):
    """Refuse a size whose grid (N, Ho, Wo, 2) or base grid (Ho, Wo, 3) exceeds the index
    range (a ValueError naming the size, rather than an allocation that cannot succeed)."""
    out_h, out_w = size
    check_index_range("affinegrid", f"size {tuple(size)}, {count} transformations",
                      grid_bytes=count * out_h * out_w * 2 * 8,
                      base_grid_bytes=out_h * out_w * 3 * 8)


def _as_matrices(theta):
    """(N, 2, 3) matrices [[c1, c2, c5], [c3, c4, c6]] from any accepted layout."""
    if theta.shape[1:] == (2, 3):
        return theta
    c = theta.reshape(theta.shape[0], 6)
    xp = array_module(theta)
    return xp.stack([c[:, [0, 1, 4]], c[:, [2, 3, 5]]], axis=1)


def _from_matrices(matrices, shape):
    if tuple(shape[1:]) == (2, 3):
        return matrices
    xp = array_module(matrices)
    m = matrices
    c = xp.stack([m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2]], axis=1)
    return c.reshape(shape)


def _base_grid(size, xp, dtype):
    """(Ho, Wo, 3) homogeneous coordinates (h_i, w_j, 1)."""
    h = xp.linspace(-1, 1, size[0]).astype(dtype) if size[0] > 1 else xp.full(1, 1, dtype)
    w = xp.linspace(-1, 1, size[1]).astype(dtype) if size[1] > 1 else xp.full(1, 1, dtype)
    hh, ww = xp.meshgrid(h, w, indexing="ij")
    return xp.stack([hh, ww, xp.ones_like(hh)], axis=2)


def affinegrid_forward(theta, *, size):
    xp = array_module(theta)
    check_affinegrid_limits(theta.shape[0], size)
    base = _base_grid(size, xp, theta.dtype)
    return xp.einsum("ijk,nlk->nijl", base, _as_matrices(theta))


def affinegrid_backward(theta, dzdy, *, size):
    xp = array_module(theta)
    check_affinegrid_limits(theta.shape[0], size)
    base = _base_grid(size, xp, theta.dtype)
    dmatrices = xp.einsum("nijl,ijk->nlk", dzdy, base)
    return _from_matrices(dmatrices.astype(theta.dtype, copy=False), theta.shape)


affinegrid_op = Op("affinegrid", affinegrid_forward, affinegrid_backward,
                   backward_needs_inputs=(0,),
                   shape=lambda theta_shape, *, size: (theta_shape[0],) + tuple(size) + (2,),
                   receptive_field="none", matconvnet_types=("dagnn.AffineGridGenerator",),
                   input_names=("theta",), doc=affinegrid.__doc__)
