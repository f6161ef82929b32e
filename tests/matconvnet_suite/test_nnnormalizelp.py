"""Port of MatConvNet's ``matlab/xtest/suite/nnnormalizelp.m`` (vlfeat/matconvnet):
``vl_nnnormalizelp``'s L2 normalisation of every small map (``basicl2``: h, w in 1..4, d in 2..4,
3 images), its Lp normalisation for p = 2, 4 (``lp``) and the thirteen sets of ``dimensions``
(``dimensions``), each derivative checked against a numerical one (nntest's ``der``).

MATLAB's x = randn(h, w, d, 3) is NCHW (3, d, h, w), and its dimensions 1, 2, 3, 4 (H, W, C, N)
are NCHW's axes 2, 3, 1, 0. As in the original, ``dimensions`` runs with 'p', 2 whatever its
parameter p (the parameter only repeats the test). Runs on the ``t`` fixture (``nntest.py``):
single and double precision, CPU and GPU.
"""

import pytest
from exhaustive import combinations

from autonn import nn

AXIS_OF_DIM = {1: 2, 2: 3, 3: 1, 4: 0}
DIMENSIONS = [[1], [2], [3], [4],
              [1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4],
              [1, 2, 3], [2, 3, 4],
              [1, 2, 3, 4]]


@pytest.mark.parametrize("h, w, d", combinations([1, 2, 3, 4], [1, 2, 3, 4], [2, 3, 4]))
def test_basicl2(t, h, w, d):
    x = t.randn(3, d, h, w)
    y = nn.normalizelp(x)
    dzdy = t.rand(*y.shape) - 0.5
    dzdx = nn.normalizelp(x, dzdy=dzdy)
    t.der(lambda x: nn.normalizelp(x), x, dzdy, dzdx, 1e-4, 0.3)


@pytest.mark.parametrize("p", [2, 4])
def test_lp(t, p):
    x = t.randn(3, 5, 2, 3) / t.range
    y = nn.normalizelp(x, p=p)
    dzdy = t.rand(*y.shape) - 0.5
    dzdx = nn.normalizelp(x, dzdy=dzdy, p=p)
    t.der(lambda x: nn.normalizelp(x, p=p), x, dzdy, dzdx, 1e-4, 0.3)


@pytest.mark.parametrize("p", [2, 4])
def test_dimensions(t, p):
    x = t.randn(3, 5, 2, 3) / t.range
    for dims in DIMENSIONS:
        opts = {"p": 2, "dimensions": [AXIS_OF_DIM[d] for d in dims], "epsilon": 1e-4}
        y = nn.normalizelp(x, **opts)
        dzdy = t.rand(*y.shape) - 0.5
        dzdx = nn.normalizelp(x, dzdy=dzdy, **opts)
        t.der(lambda x: nn.normalizelp(x, **opts), x, dzdy, dzdx, 0.5e-4, 1.0)
