"""Spatial pooling, ``vl_nnpool`` (manual 4.3, 6.3): max and average over sliding windows.

One kernel work item evaluates each output row (forward); in the backward one work item owns a
whole plane and adds each window's derivative where it belongs, so no atomics are needed.
"""

from .. import kernels
from ..backend import array_module
from ..ops import Op
from ..receptive_fields import filter_field
from ._arguments import (any_layer, as_pair, as_quad, check_devices, check_float_array,
                         check_index_range, takes_name)

METHODS = ("max", "avg")


@takes_name
def pool(x, size, *, method="max", stride=1, pad=0, dzdy=None):
    """Max or average pooling over ``size`` windows, ``vl_nnpool``.

    ``y[n, c, oy, ox] = max`` (or mean) of ``x[n, c, y, x]`` over the window
    ``oy*sh - pt <= y < oy*sh - pt + ph``, ``ox*sw - pl <= x < ox*sw - pl + pw``, where the
    padding takes no part: 'max' behaves as if padded with -inf, and 'avg' divides by the number of
    *unpadded* elements in the window. Output size (manual 5.2)::

        Ho = floor((H + pt + pb - ph) / sh) + 1                   (likewise Wo)

    Derivative: max sends each ``dzdy[n, c, oy, ox]`` to the first maximum of its window
    (row-major order: ties go to one input); avg spreads it evenly over the unpadded elements.

    Parameters
    ----------
    x : (N, C, H, W) array or Layer.
    size : int or (ph, pw), the window.
    method : 'max' or 'avg'.
    stride : int or (h, w), at least 1.
    pad : int, (h, w) or (top, bottom, left, right); each must be smaller than the window
        (otherwise a window could hold padding only).
    dzdy : (N, C, Ho, Wo), optional. When given, returns ``dx``.
    """
    options = _pool_options(size, method, stride, pad)
    return pool_op(x, dzdy=dzdy, **options)


def pool_forward(x, *, size, method="max", stride=1, pad=0):
    """Eager forward of ``pool`` (see :func:`pool`)."""
    g = pool_geometry(x, size, method, stride, pad)
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty((g["N"], g["C"], g["Ho"], g["Wo"]), dtype=x.dtype)
    planes = g["N"] * g["C"]
    kernels.launch(f"pool_{g['method']}_forward", planes * g["Ho"], x, y, planes,
                   *_kernel_geometry(g))
    return y


def pool_backward(x, dzdy, *, size, method="max", stride=1, pad=0):
    """Derivative of ``<dzdy, pool(x)>`` with respect to x."""
    g = pool_geometry(x, size, method, stride, pad)
    check_float_array("pool", "dzdy", dzdy)
    shape = (g["N"], g["C"], g["Ho"], g["Wo"])
    if tuple(dzdy.shape) != shape:
        raise ValueError(f"pool: dzdy must have the output shape {shape}, "
                         f"got {tuple(dzdy.shape)}")
    if dzdy.dtype != x.dtype:
        raise TypeError(f"pool: dzdy must have the dtype of x ({x.dtype}), got {dzdy.dtype}")
    check_devices("pool", x=x, dzdy=dzdy)
    xp = array_module(x)
    x, dzdy = xp.ascontiguousarray(x), xp.ascontiguousarray(dzdy)
    dx = xp.empty_like(x)
    planes = g["N"] * g["C"]
    kernels.launch(f"pool_{g['method']}_backward", planes, x, dzdy, dx, planes,
                   *_kernel_geometry(g))
    return dx


def pool_shape(x_shape, *, size, method="max", stride=1, pad=0):
    g = pool_geometry(_Shaped(x_shape), size, method, stride, pad)
    return (g["N"], g["C"], g["Ho"], g["Wo"])


pool_op = Op("pool", pool_forward, pool_backward, backward_needs_inputs=(0,),
             shape=pool_shape,
             receptive_field=lambda node: (filter_field(
                 node.options["size"], node.options["stride"], node.options["pad"][::2]),),
             matconvnet_types=("pool", "dagnn.Pooling"), input_names=("x",))


def pool_geometry(x, size, method, stride, pad):
    """Validate the arguments of ``pool``; a dict of the sizes the kernels need."""
    options = _pool_options(size, method, stride, pad)
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = options["size"], options["stride"], options["pad"]
    if isinstance(x, _Shaped):
        if len(x.shape) != 4:
            raise ValueError(f"pool: x must be 4-D (NCHW), got shape {x.shape}")
    else:
        check_float_array("pool", "x", x, ndim=4)
    N, C, H, W = x.shape
    if H + pt + pb < ph or W + pl + pr < pw:
        raise ValueError(f"pool: the window {(ph, pw)} is larger than the padded input "
                         f"({H}+{pt}+{pb} x {W}+{pl}+{pr}, x shape {tuple(x.shape)})")
    Ho, Wo = (H + pt + pb - ph) // sh + 1, (W + pl + pr - pw) // sw + 1
    # what kernels/pool.h computes: window starts oy*sh - pt and ends y0 + ph (at most the
    # padded extent plus a window), the launch's count planes*Ho and its OpenMP work estimate
    # planes*Ho*Wo*ph*pw, the flat indices y*W + x of a plane, and the output's bytes
    check_index_range("pool", f"x shape {tuple(x.shape)}, size {(ph, pw)}, stride {(sh, sw)}, "
                      f"pad {(pt, pb, pl, pr)}",
                      input_height_plus_pad_plus_size=H + pt + pb + ph,
                      input_width_plus_pad_plus_size=W + pl + pr + pw,
                      stride_times_output_height=sh * Ho + ph,
                      stride_times_output_width=sw * Wo + pw,
                      window_elements=ph * pw,
                      work_estimate=N * C * Ho * Wo * ph * pw,
                      input_bytes=N * C * H * W * 8,
                      output_bytes=N * C * Ho * Wo * 8)
    return {"N": N, "C": C, "H": H, "W": W, "Ho": Ho, "Wo": Wo, "ph": ph, "pw": pw,
            "sh": sh, "sw": sw, "pt": pt, "pl": pl, "method": options["method"]}


def _kernel_geometry(g):
    return (g["H"], g["W"], g["Ho"], g["Wo"], g["ph"], g["pw"], g["sh"], g["sw"], g["pt"],
            g["pl"])


def _pool_options(size, method, stride, pad):
    size = as_pair("pool", "size", size)
    stride = as_pair("pool", "stride", stride)
    pad = as_quad("pool", "pad", pad)
    if min(size) < 1:
        raise ValueError(f"pool: size must be at least 1, got {size}")
    if min(stride) < 1:
        raise ValueError(f"pool: stride must be at least 1, got {stride}")
    if max(pad[:2]) >= size[0] or max(pad[2:]) >= size[1]:
        raise ValueError(f"pool: pad {pad} must be smaller than the window {size} (a window of "
                         f"padding only has no value)")
    if method not in METHODS:
        raise ValueError(f"pool: unknown method {method!r}; use one of {METHODS}")
    return {"size": size, "method": method, "stride": stride, "pad": pad}


class _Shaped:
    """A stand-in carrying only a shape, so that the shape rule shares the validation code."""

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)
