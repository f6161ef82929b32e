"""Port of vlfeat/matconvnet ``matlab/xtest/suite/nnpdist.m``: pdist's derivatives (for x, and
for x0 when it has x's shape) for every p, no_root and aggregate of the original, in float32
and float64. NCHW: MATLAB's h x w x d x n is (n, d, h, w), and its per-image x0 of 1x1xdxn is
(n, d, 1, 1)."""

import numpy as np
import pytest

from autonn import nn


@pytest.mark.parametrize("aggregate", [False, True])
@pytest.mark.parametrize("p", [0.5, 1, 2, 3])
@pytest.mark.parametrize("no_root", [False, True])
@pytest.mark.parametrize("one_to_one", [False, True])
def test_basic(t, one_to_one, no_root, p, aggregate):
    # smaller when aggregated, to avoid numerical derivative issues with float
    h, w = (2, 2) if aggregate else (13, 17)
    d, n = 4, 5
    x = t.randn(n, d, h, w)
    x0 = t.randn(n, d, h, w) if one_to_one else t.randn(n, d, 1, 1)
    opts = {"no_root": no_root, "aggregate": aggregate}
    y = nn.pdist(x, x0, p, **opts)
    # keep x away from x0 in every dimension: |d| near 0 is not differentiable for some p
    s = np.abs(x - x0) < t.range * 1e-1
    x = x.copy()
    x[s] = x[s] + t.dtype.type(5 * t.range)
    dzdy = t.rand(*np.shape(y))
    dzdx, dzdx0 = nn.pdist(x, x0, p, dzdy=dzdy, **opts)
    t.der(lambda x: nn.pdist(x, x0, p, **opts), x, dzdy, dzdx, t.range * 1e-3)
    if one_to_one:
        # (MatConvNet's pdist does not backpropagate the broadcast to x0)
        t.der(lambda x0: nn.pdist(x, x0, p, **opts), x0, dzdy, dzdx0, t.range * 1e-3)
