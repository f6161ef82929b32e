"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnroipool.m``: roipool's derivative for max
and average pooling and every subdivision of the original, on an input whose elements are all
different, and the identity case (a whole image with a transposing transform), in float32 and
float64. NCHW (15x14x3x2 is (2, 3, 15, 14)) and 0-based ROIs: MatConvNet's ROI
``[image, x1, y1, x2, y2]`` is ``[image - 1, x1 - 1, ...]`` here (same pixels)."""

import numpy as np
import pytest

from autonn import nn

# the original's 5 x 8 matrix of ROIs (one per column), 1-based
ROIS_MATCONVNET = np.array([[1, 1, 1, 2, 2, 2, 1, 1],
                            [0, 1, 2, 0, 1, 2, 1, 1],
                            [0, 4, 3, 0, 1, 2, 1, 1],
                            [15, 5, 6, 15, 4, 2, 9, 0],
                            [14, 7, 9, 14, 4, 8, 1, 0]])


def data(t):
    x = t.to_device(t.randperm(15 * 14 * 3 * 2).reshape(2, 3, 15, 14))
    t.range = 10
    return x


@pytest.mark.parametrize("subdivisions", [(1, 1), (2, 1), (1, 2), (3, 7), (16, 16)])
@pytest.mark.parametrize("method", ["avg", "max"])
def test_basic(t, method, subdivisions):
    rois = t.to_device(t.to_data_type(ROIS_MATCONVNET - 1))
    x = data(t)
    args = {"method": method, "subdivisions": subdivisions}
    y = nn.roipool(x, rois, **args)
    dzdy = t.randn(*y.shape)
    dzdx = nn.roipool(x, rois, dzdy=dzdy, **args)[0]
    t.der(lambda x: nn.roipool(x, rois, **args), x, dzdy, dzdx, t.range * 1e-2)


@pytest.mark.parametrize("method", ["avg", "max"])
def test_identity(t, method):
    x = t.to_device(t.to_data_type(np.outer(np.arange(2, 11), np.arange(1, 11))))[None, None]
    rois = t.to_device(t.to_data_type(np.array([1, 1, 1, 9, 10]) - 1))[None]
    transform = np.array([[0, 1, 0], [1, 0, 0]])
    y = nn.roipool(x, rois, method=method, subdivisions=(9, 10), transform=transform)
    t.eq(x, y)
