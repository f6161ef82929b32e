"""The base of MatConvNet's block suite, ported: ``matlab/xtest/suite/nntest.m`` of
vlfeat/matconvnet.

Every suite file of ``tests/matconvnet_suite`` takes the ``t`` fixture (see ``conftest.py``): an
:class:`NNTest` for one data type (float32 or float64, MatConvNet's 'single' and 'double') and
one device ('cpu', and 'gpu' when CuPy sees a device). It plays the part of MATLAB's ``test``::

    def test_basic(t):
        x = t.randn(2, 3, 15, 14)                      # NCHW, t.range * N(0, 1), t.dtype
        y = nn.relu(x)
        dzdy = t.randn(*y.shape)
        dzdx = nn.relu(x, dzdy=dzdy)
        t.der(lambda x: nn.relu(x), x, dzdy, dzdx, 1e-2 * t.range)   # numerical derivative
        t.eq(y, np.maximum(x, 0))                      # automatic tolerance from the range

What is ported, as the original does it:

- ``randn``/``rand`` draw ``range * randn`` / ``range * rand`` in the class's data type
  (``range`` is 128 unless a suite changes it) on the class's device; ``zeros``/``ones``;
  ``to_data_type`` casts to the data type, ``to_device`` moves to the device.
- The random generator is seeded with 0 before every test (MATLAB's ``rng(0)``; NumPy's
  streams differ from MATLAB's, so the numbers are not MATLAB's).
- ``numder(g, x, dzdy, delta)``: the forward difference ``sum(dzdy * (g(x + delta e_i) -
  g(x)) / delta)`` for every element ``i`` of ``x``, with ``g`` evaluated in the data type, as
  MATLAB evaluates it (so float32 derivatives carry float32 rounding; the tolerance allows it).
- ``der(g, x, dzdy, dzdx, delta, tau=None)``: ``eq(numder(...), dzdx, tau)``.
- ``eq(a, b, tau=None)``: ``b`` has the data type of ``a`` and the shape of ``a`` and
  ``|a - b| <= tau`` everywhere. Without ``tau``: ``tau = max(1e-2 (max - min), 1e-3 max(max,
  -min))`` over both arrays (the automatic, range-based tolerance); a negative ``tau`` is a
  floor under that automatic tolerance (``tau_min = -tau``).
"""

import numpy as np
import pytest

from autonn import backend

DATA_TYPES = {"single": np.float32, "double": np.float64}


class NNTest:
    """One (device, data type) of MatConvNet's ``nntest`` class."""

    def __init__(self, dtype=np.float64, device="cpu", seed=0):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"NNTest: dtype must be float32 or float64, got {self.dtype}")
        if device not in ("cpu", "gpu"):
            raise ValueError(f"NNTest: device must be 'cpu' or 'gpu', got {device!r}")
        self.device = device
        self.range = 128
        self.seeds(seed)

    # ------------------------------------------------------------------ set-up
    @property
    def data_type(self):
        """MATLAB's name of the data type: 'single' or 'double'."""
        return "single" if self.dtype == np.float32 else "double"

    def seeds(self, seed=0):
        """Reset the random generator (the original's ``TestMethodSetup``)."""
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ generators
    def randn(self, *shape):
        return self.to_device(self.range * self.rng.standard_normal(_shape(shape))
                              .astype(self.dtype))

    def rand(self, *shape):
        return self.to_device(self.range * self.rng.random(_shape(shape)).astype(self.dtype))

    def randperm(self, n):
        """A random permutation of 1..n (MATLAB's ``randperm``), as float of the data type."""
        return (self.rng.permutation(n) + 1).astype(self.dtype)

    def zeros(self, *shape):
        return self.to_device(np.zeros(_shape(shape), self.dtype))

    def ones(self, *shape):
        return self.to_device(np.ones(_shape(shape), self.dtype))

    def to_data_type(self, x):
        xp = backend.array_module(x)
        return xp.asarray(x).astype(self.dtype)

    def to_device(self, x):
        return backend.to_device(x, self.device)

    # ------------------------------------------------------------------ checks
    def der(self, g, x, dzdy, dzdx, delta=1e-3, tau=None):
        """Check ``dzdx`` (computed by the block) against the numerical derivative of ``g``
        at ``x`` projected on ``dzdy``, with steps ``delta`` and tolerance ``tau``."""
        dzdx_ = self.to_data_type(self.numder(g, x, dzdy, delta))
        self.eq(gather(dzdx_), gather(dzdx), tau)

    def eq(self, a, b, tau=None):
        """``b`` equals ``a`` (same data type, same shape) within ``tau``."""
        a = gather(a)
        b = gather(b)
        tau_min = 0.0
        if tau is not None and tau < 0:
            tau_min, tau = -tau, None
        if tau is None:
            if a.size + b.size == 0:
                tau = 0.0
            else:
                maxv = float(max(np.max(a, initial=-np.inf), np.max(b, initial=-np.inf)))
                minv = float(min(np.min(a, initial=np.inf), np.min(b, initial=np.inf)))
                tau = max(1e-2 * (maxv - minv), 1e-3 * max(maxv, -minv))
        tau = max(tau, tau_min)
        assert b.dtype == a.dtype, (
            f"eq: the second array is {b.dtype}, the first {a.dtype} (the suite's data type "
            f"is {self.dtype})")
        assert a.shape == b.shape, f"eq: shapes differ: {a.shape} and {b.shape}"
        tau = a.dtype.type(tau) if np.issubdtype(a.dtype, np.floating) else tau
        error = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if error.size and not np.all(error <= tau):
            # NaN never compares below tau: it fails, as in MATLAB
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(error), np.inf, error))),
                                     error.shape)
            raise AssertionError(
                f"eq: {int(np.sum(~(error <= tau)))} of {error.size} elements differ by more "
                f"than tau={float(tau):.4g} ({self.data_type}); the worst at {list(worst)}: "
                f"{a[worst]!r} vs {b[worst]!r}")

    @staticmethod
    def numder(g, x, dzdy, delta=1e-3):
        """Forward differences of ``g`` at ``x`` projected on ``dzdy`` (a float64 array)."""
        dzdy = gather(dzdy)
        y = gather(g(x))
        xp = backend.array_module(x)
        flat = xp.asarray(x).reshape(-1)
        dzdx = np.zeros(flat.size, np.float64)
        dtype = flat.dtype
        step = dtype.type(delta) if np.issubdtype(dtype, np.floating) else delta
        for i in range(flat.size):
            x_ = flat.copy()
            x_[i] = x_[i] + step
            y_ = gather(g(x_.reshape(x.shape)))
            # as in MATLAB: the difference and its scaling in the data type of y
            factors = dzdy * ((y_ - y) / (y_ - y).dtype.type(delta))
            dzdx[i] += float(np.sum(factors))
        return dzdx.reshape(np.shape(x))


def gather(x):
    """A NumPy array of ``x`` (MATLAB's ``gather``); plain numbers become 0-d arrays."""
    return np.asarray(backend.to_numpy(x))


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(int(n) for n in shape[0])
    return tuple(int(n) for n in shape)


# ------------------------------------------------------------------ the fixtures
# nntest.m's ClassSetupParameter (device, data type) and TestMethodSetup (rng(0)), for the
# conftest.py of every ported suite to import: ``t``, an NNTest per data type and device.
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("gpu", id="gpu", marks=[
               pytest.mark.gpu,
               pytest.mark.skipif(not backend.gpu_available(), reason="no CUDA device")])]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["single", "double"])
def data_type(request):
    return request.param


@pytest.fixture
def t(device, data_type):
    return NNTest(data_type, device, seed=0)
