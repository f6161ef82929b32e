"""Region-of-interest pooling (Fast R-CNN), MatConvNet's ``vl_nnroipool``.

Coordinate convention (0-based, unlike MatConvNet's 1-based one): a ROI is
``[image, x1, y1, x2, y2]`` where ``image`` indexes the batch from 0 and ``(x1, y1)``, ``(x2, y2)``
are the first and last pixel (inclusive) of the region, column x and row y counted from 0. The
``transform`` maps ROI coordinates to feature-map coordinates (e.g. 1/16 for a stride-16
network) and is applied to these 0-based coordinates. A ROI ``[n, x1, y1, x2, y2]`` here is the
ROI ``[n+1, x1+1, y1+1, x2+1, y2+1]`` of MatConvNet (with transform 1 both select the same pixels).

The bins are computed here (a few numbers per ROI); the pooling runs on the C kernels of
``kernels/roipool.h``.
"""

import numpy as np

from .. import kernels
from ..backend import array_module, to_numpy
from ..ops import Op
from ._arguments import (
    any_layer,
    as_pair,
    check_devices,
    check_dzdy,
    check_float_array,
    check_index_range,
    is_array,
    takes_name,
)


@takes_name
def roipool(x, rois, *, method="max", subdivisions=(1, 1), transform=1.0, dzdy=None):
    """Pool each region of interest into a fixed ``sh x sw`` grid of bins, ``vl_nnroipool``.

    For ROI r with corners mapped by ``transform`` to ``(u1, v1)``, ``(u2, v2)``, the pixels
    ``round(v1) .. round(v2)`` x ``round(u1) .. round(u2)`` (round half up; at least one pixel)
    are split into ``sh x sw`` bins: bin (i, j) spans rows ``floor(i h / sh) .. ceil((i+1) h / sh)
    - 1`` (h the ROI height), likewise columns, clipped to the image. Each bin is pooled per
    channel by max or average; an empty bin (outside the image) gives 0. Derivative: max sends
    dz/dy to the bin's first maximum (column-major order, as MatConvNet), avg spreads it evenly.

    x : (N, C, H, W); rois : (R, 5) (or (5, R), MatConvNet's layout) rows
        ``[image, x1, y1, x2, y2]``, 0-based (see the module docstring);
    subdivisions : (sh, sw) bins; transform : a number s (coordinates scaled by s) or a 2 x 3
        matrix A, ``[u, v] = A @ [x, y, 1]``.
    Returns (R, C, sh, sw). ``dzdy=`` returns ``(dx, None)``.
    """
    name = "roipool"
    if method not in ("max", "avg"):
        raise ValueError(f"{name}: method must be 'max' or 'avg', got {method!r}")
    subdivisions = as_pair(name, "subdivisions", subdivisions)
    if min(subdivisions) < 1:
        raise ValueError(f"{name}: subdivisions must be positive, got {subdivisions}")
    transform = _transform_matrix(transform)
    options = {"method": method, "subdivisions": subdivisions, "transform": transform}
    if any_layer(x, rois):
        return roipool_op(x, rois, dzdy=dzdy, **options)
    check_float_array(name, "x", x, ndim=4)
    if not is_array(rois):
        raise TypeError(f"{name}: rois must be a NumPy or CuPy array, got {type(rois).__name__}")
    if rois.dtype.kind not in "iuf":
        raise TypeError(f"{name}: rois must hold numbers, got dtype {rois.dtype} (shape "
                        f"{tuple(rois.shape)})")
    check_devices(name, x=x, rois=rois)
    table = roi_table(rois)
    if table.shape[0] and (np.isnan(table).any() or table[:, 0].min() < 0
                           or table[:, 0].max() >= x.shape[0]
                           or (table[:, 0] != np.floor(table[:, 0])).any()):
        raise ValueError(f"{name}: ROI image indices must be whole numbers in [0, {x.shape[0]}) "
                         f"(0-based) and coordinates not NaN; rois shape {tuple(rois.shape)}")
    check_dzdy(name, dzdy, (table.shape[0], x.shape[1]) + subdivisions, like=x)
    if dzdy is not None:
        return roipool_op(x, rois, dzdy=dzdy, **options)
    return roipool_op(x, rois, **options)


def _transform_matrix(transform):
    if isinstance(transform, (str, bytes, bool, np.bool_)):
        raise TypeError(f"roipool: transform must be a number or a 2 x 3 matrix, got "
                        f"{transform!r}")
    try:
        values = np.asarray(transform, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"roipool: transform must be a number or a 2 x 3 matrix of real "
                        f"numbers, got {transform!r}") from None
    if values.ndim == 0:
        s = float(values)
        values = np.array([[s, 0, 0], [0, s, 0]])
    if values.shape != (2, 3) or not np.isfinite(values).all():
        raise ValueError(f"roipool: transform must be a number or a finite 2 x 3 matrix, got "
                         f"{transform!r}")
    return tuple(tuple(float(v) for v in row) for row in values)


def roi_table(rois):
    """The ROIs as a float64 NumPy (R, 5) table, from (R, 5) or MatConvNet's (5, R)."""
    table = np.asarray(to_numpy(rois), dtype=np.float64)
    if table.ndim == 2 and table.shape[1] == 5:
        return table
    if table.ndim == 2 and table.shape[0] == 5:
        return table.T
    if table.ndim == 1 and table.shape[0] == 5:
        return table[None, :]
    raise ValueError(f"roipool: rois must have shape (R, 5) or (5, R), got {tuple(rois.shape)}")


def roi_bins(x_shape, rois, subdivisions, transform, dtype):
    """Per ROI: image index and the clipped [start, end) rows and columns of every bin.

    Returns int64 arrays ``images`` (R,), ``rows`` (R, sh, 2) and ``cols`` (R, sw, 2). The bin
    sizes are computed in the input's float type, as MatConvNet does.
    """
    height, width = x_shape[2], x_shape[3]
    table = roi_table(rois)
    (a, b, tx), (c, d, ty) = transform
    with np.errstate(invalid="ignore", over="ignore"):     # refused below when not finite
        u1 = a * table[:, 1] + b * table[:, 2] + tx
        v1 = c * table[:, 1] + d * table[:, 2] + ty
        u2 = a * table[:, 3] + b * table[:, 4] + tx
        v2 = c * table[:, 3] + d * table[:, 4] + ty
    corners = np.stack([u1, v1, u2, v2])
    if not (np.isfinite(corners).all() and
            (np.abs(corners) <= _ROI_COORDINATE_LIMIT).all()):
        raise ValueError(f"roipool: rois coordinates must be finite and, after the transform, "
                         f"at most 2**62 in magnitude (the kernels' index range); rois shape "
                         f"{tuple(np.shape(rois))}, transform {transform}")
    check_roi_limits(x_shape, table.shape[0], subdivisions)
    start_h, start_w = np.floor(v1 + 0.5), np.floor(u1 + 0.5)
    roi_h = np.maximum(np.floor(v2 + 0.5) - start_h + 1, 1)
    roi_w = np.maximum(np.floor(u2 + 0.5) - start_w + 1, 1)
    rows = _bin_edges(roi_h, start_h, subdivisions[0], height, dtype)
    cols = _bin_edges(roi_w, start_w, subdivisions[1], width, dtype)
    return table[:, 0].astype(np.int64), rows, cols


def check_roi_limits(x_shape, count, subdivisions):
    """Refuse subdivisions whose output (count, C, sh, sw), bin tables (count, sh|sw, 2) or
    kernel work item indices exceed the kernels' 64-bit index range (kernels/roipool.h)."""
    sh, sw = subdivisions
    n, channels, height, width = x_shape
    check_index_range("roipool", f"x shape {tuple(x_shape)}, {count} rois, subdivisions "
                      f"{tuple(subdivisions)}",
                      subdivisions_height=sh, subdivisions_width=sw,
                      output_bytes=count * channels * sh * sw * 8,
                      bin_table_bytes=count * (sh + sw + 2) * 2 * 8,
                      input_bytes=n * channels * height * width * 8)


# Transformed ROI corners must lie within this many pixels of the origin: their bin edges are
# then finite in every float type, and exact enough, before they are clipped to the image.
_ROI_COORDINATE_LIMIT = 2.0**62


def _bin_edges(length, start, bins, limit, dtype):
    size = (length.astype(dtype) / dtype(bins))[:, None]
    index = np.arange(bins + 1, dtype=dtype)[None, :]
    # clipped while still floats, so that an edge far outside the image cannot wrap as an int64
    first = np.floor(index[:, :-1] * size).astype(np.float64) + start[:, None]
    last = np.ceil(index[:, 1:] * size).astype(np.float64) + start[:, None]
    return np.stack([np.clip(first, 0, limit).astype(np.int64),
                     np.clip(last, 0, limit).astype(np.int64)], axis=2)


def _bin_tables(x, rois, subdivisions, transform):
    """The ROI images and bin edges as int64 arrays on x's device, for the kernels."""
    xp = array_module(x)
    images, rows, cols = roi_bins(x.shape, rois, subdivisions, transform or
                                  _transform_matrix(1.0), x.dtype.type)
    return tuple(xp.asarray(np.ascontiguousarray(a, dtype=np.int64))
                 for a in (images, rows, cols))


def roipool_forward(x, rois, *, method="max", subdivisions=(1, 1), transform=None):
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    images, rows, cols = _bin_tables(x, rois, subdivisions, transform)
    _, channels, height, width = x.shape
    y = xp.empty((len(images), channels) + tuple(subdivisions), dtype=x.dtype)
    kernels.launch("roipool_forward", y.size, x, images, rows, cols, y, channels, height,
                   width, subdivisions[0], subdivisions[1], int(method == "avg"), y.size)
    return y


def roipool_backward(x, rois, dzdy, *, method="max", subdivisions=(1, 1), transform=None):
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    images, rows, cols = _bin_tables(x, rois, subdivisions, transform)
    n, channels, height, width = x.shape
    dx = xp.empty_like(x)
    kernels.launch("roipool_backward", n * channels, x, images, rows, cols,
                   xp.ascontiguousarray(dzdy, dtype=x.dtype), dx, len(images), channels,
                   height, width, subdivisions[0], subdivisions[1], int(method == "avg"),
                   n * channels)
    return dx, None


roipool_op = Op("roipool", roipool_forward, roipool_backward,
                shape=lambda x_shape, rois_shape, *, subdivisions=(1, 1), **options:
                (rois_shape[0] if rois_shape[-1] == 5 else rois_shape[1], x_shape[1])
                + tuple(subdivisions),
                receptive_field="none", matconvnet_types=("dagnn.ROIPooling",),
                input_names=("x", "rois"), doc=roipool.__doc__)
