"""Every Blocks II block on each device (NumPy; CuPy when a GPU is present) in float32 agrees
with the float64 CPU result, forward and backward: one declaration per block, run everywhere."""

import numpy as np
import pytest

from autonn import backend, nn

DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not backend.gpu_available(), reason="no GPU")])]

RNG = np.random.default_rng(8)
X = RNG.standard_normal((2, 6, 5, 7))
PROB = nn.softmax(X)
LABELS = RNG.integers(-1, 6, size=(2, 5, 7))
ATTRIBUTES = RNG.choice([-1.0, 0.0, 1.0], size=X.shape)
ROIS = np.array([[0, 0, 0, 4, 3], [1, 2, 1, 6, 4], [0, -3, -3, -1, -1]], dtype=np.float64)
GRID = RNG.uniform(-1.2, 1.2, size=(4, 3, 4, 2))
THETA = RNG.standard_normal((2, 2, 3))

# name -> (function of (float arrays..., dzdy=None), float inputs)
CASES = {
    "relu": (lambda x, dzdy=None: nn.relu(x, leak=0.1, dzdy=dzdy), (X,)),
    "sigmoid": (nn.sigmoid, (X,)),
    "softmax": (nn.softmax, (X,)),
    "lrn": (lambda x, dzdy=None: nn.lrn(x, (5, 1.0, 0.3, 0.75), dzdy=dzdy), (X,)),
    "spnorm": (lambda x, dzdy=None: nn.spnorm(x, (3, 4, 0.5, 0.6), dzdy=dzdy), (X,)),
    "bnorm": (nn.bnorm, (X, RNG.standard_normal(6), RNG.standard_normal(6))),
    "normalizelp": (nn.normalizelp, (X,)),
    "noffset": (lambda x, dzdy=None: nn.noffset(x, (0.3, 0.5), dzdy=dzdy), (X,)),
    "crop": (lambda x, dzdy=None: nn.crop(x, (1, 0, 2, 1), dzdy=dzdy), (X,)),
    "pdist": (lambda x, x0, dzdy=None: nn.pdist(x, x0, 2, dzdy=dzdy), (X, X[:1, :, :1, :1])),
    "roipool": (lambda x, dzdy=None: nn.roipool(x, ROIS, subdivisions=(2, 3), dzdy=dzdy),
                (X,)),
    "bilinearsampler": (nn.bilinearsampler, (X, GRID)),
    "affinegrid": (lambda t, dzdy=None: nn.affinegrid(t, (3, 4), dzdy=dzdy), (THETA,)),
}
for kind, labels, scores in [("softmaxlog", LABELS, X), ("log", LABELS, PROB),
                             ("mshinge", LABELS, X), ("classerror", LABELS, X),
                             ("topkerror", LABELS, X), ("logistic", ATTRIBUTES, X),
                             ("hinge", ATTRIBUTES, X)]:
    CASES[f"loss-{kind}"] = (
        lambda x, dzdy=None, kind=kind, labels=labels:
        nn.loss(x, backend.to_device(labels, backend.device_of(x)), loss=kind, topk=2,
                dzdy=dzdy),
        (scores,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_block_in_float32_on_each_device_matches_float64_cpu(name, device):
    function, inputs = CASES[name]
    expected = function(*inputs)
    dzdy = RNG.standard_normal(np.shape(expected))
    if np.ndim(expected) == 0:
        dzdy = 0.7
    expected_ders = function(*inputs, dzdy=dzdy)
    moved = [backend.to_device(a.astype(np.float32), device) for a in inputs]
    moved_dzdy = dzdy if np.ndim(dzdy) == 0 else backend.to_device(dzdy.astype(np.float32),
                                                                   device)
    value = backend.to_numpy(function(*moved))
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, expected, rtol=2e-4, atol=2e-4)
    ders = function(*moved, dzdy=moved_dzdy)
    ders = ders if isinstance(ders, tuple) else (ders,)
    expected_ders = expected_ders if isinstance(expected_ders, tuple) else (expected_ders,)
    for got, want in zip(ders, expected_ders):
        if want is None:
            assert got is None
            continue
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=2e-3, atol=2e-4)
