"""The fixture of MatConvNet's block suite: ``t``, an :class:`nntest.NNTest` for each data type
('single' = float32, 'double' = float64) and device ('cpu'; 'gpu' when CuPy sees a device),
reseeded with 0 before every test, as ``nntest.m``'s ``ClassSetupParameter`` and
``TestMethodSetup`` do. Also puts this folder on ``sys.path`` so that suite files can
``from nntest import NNTest`` (pytest's importlib import mode does not)."""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from autonn import backend  # noqa: E402
from nntest import NNTest  # noqa: E402

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
