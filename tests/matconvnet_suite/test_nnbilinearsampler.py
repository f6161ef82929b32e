"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnbilinearsampler.m``: the sampler's data
derivative against the numerical one for every input and output size of the original, with one
grid per image and with two grids per image, in float32 and float64; the original's GPU
consistency cases (CUDA against cuDNN) compare the GPU with the CPU here (autonn has no cuDNN
path) and, like the original's, do nothing on the CPU. The grids come from the original's four
affine transforms through ``affinegrid`` (``dagnn.AffineGridGenerator``; MATLAB's ``tf(:)`` is
the column-major order of each 2 x 3 matrix). MATLAB's peppers.png and pears.png are not
shipped: two smooth synthetic RGB images of the same sizes stand in for them. NCHW."""

import numpy as np
import pytest

from autonn import backend, nn
from nntest import NNTest, gather

SIZES = [(ih, iw, oh, ow) for ih in (8, 16) for iw in (4, 8, 16) for oh in (8,) for ow in (4, 8)]


def images(height, width):
    """Two RGB images in 0..255 (the stand-ins for peppers.png and pears.png), (3, H, W)."""
    i, j = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    i1 = np.stack([128 + 120 * np.sin(6 * i + 2 * j), 128 + 100 * np.cos(5 * j),
                   255 * i * j])
    i2 = np.stack([255 * (1 - i), 128 + 120 * np.sin(3 * i * j + 1),
                   128 + 90 * np.cos(4 * i - 7 * j)])
    return np.round(i1), np.round(i2)


def init_params(t, ih, iw, oh, ow, n, multiple_grids):
    assert n % 2 == 0, "n should be a multiple of 2"
    i1, i2 = images(ih, iw)
    nin = n // 2 if multiple_grids else n
    x = np.zeros((nin, 3, ih, iw), t.dtype)
    for i in range(nin // 2):
        x[2 * i], x[2 * i + 1] = i1, i2
    x = x / t.dtype.type(255)
    th = -np.pi / 4
    tf4 = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0]])
    tf4[:, :2] = tf4[:, :2].T  # the transpose of the rotation
    tfs = [np.array([[1, 0, 1], [0, 1, 0]]), np.array([[1, 0, 0], [0, 1, 1]]),
           np.array([[0.5, 0, 0], [0, 0.5, 0]]), tf4]
    aff = np.zeros((n, 6, 1, 1), t.dtype)
    for i in range(n):
        aff[i, :, 0, 0] = tfs[i].flatten(order="F")
    grid = nn.affinegrid(aff, (oh, ow))
    dout = t.randn(n, 3, oh, ow)
    return t.to_device(x), t.to_device(grid), dout


@pytest.mark.parametrize("multiple_grids", [True, False])
@pytest.mark.parametrize("ih, iw, oh, ow", SIZES)
def test_check_der_x(t, ih, iw, oh, ow, multiple_grids):
    if t.device != "cpu":
        return  # as the original
    ims, grids, dout = init_params(t, ih, iw, oh, ow, 4, multiple_grids)
    dx = nn.bilinearsampler(ims, grids, dzdy=dout)[0]
    t.der(lambda inp: nn.bilinearsampler(inp, grids), ims, dout, dx, 1e-2)


def _on_both(t, ih, iw, oh, ow, multiple_grids, function):
    if t.device != "gpu":
        return None  # as the original: a GPU check
    ims, grids, dout = init_params(t, ih, iw, oh, ow, 4, multiple_grids)
    on_gpu = function(ims, grids, dout)
    cpu = NNTest(t.dtype, "cpu")
    on_cpu = function(backend.to_numpy(ims), backend.to_numpy(grids), backend.to_numpy(dout))
    cpu.eq(gather(on_gpu), gather(on_cpu))
    return on_gpu


@pytest.mark.parametrize("multiple_grids", [True, False])
@pytest.mark.parametrize("ih, iw, oh, ow", SIZES)
def test_fwd_consistency(t, ih, iw, oh, ow, multiple_grids):
    _on_both(t, ih, iw, oh, ow, multiple_grids, lambda x, g, d: nn.bilinearsampler(x, g))


@pytest.mark.parametrize("multiple_grids", [True, False])
@pytest.mark.parametrize("ih, iw, oh, ow", SIZES)
def test_bwd_grid_consistency(t, ih, iw, oh, ow, multiple_grids):
    _on_both(t, ih, iw, oh, ow, multiple_grids,
             lambda x, g, d: nn.bilinearsampler(x, g, dzdy=d)[1])


@pytest.mark.parametrize("multiple_grids", [True, False])
@pytest.mark.parametrize("ih, iw, oh, ow", SIZES)
def test_bwd_data_consistency(t, ih, iw, oh, ow, multiple_grids):
    _on_both(t, ih, iw, oh, ow, multiple_grids,
             lambda x, g, d: nn.bilinearsampler(x, g, dzdy=d)[0])
