"""The fixture of the ported AutoNN suite: ``t``, an ``NNTest`` (the port of MatConvNet's
``nntest.m``, which AutoNN's test classes extend) for each data type ('single' = float32,
'double' = float64) and device ('cpu'; 'gpu' when CuPy sees a device), reseeded with 0 before
every test. Puts ``tests/matconvnet_suite`` on ``sys.path`` for ``from nntest import NNTest``
(pytest's importlib import mode does not).

Ported from ``matlab/xtest/`` of vlfeat/autonn: nncopy.m, nnfind.m, nntopology.m, nncycle.m,
nndecompile.m and nnlayers.m with its base nncheckder.m. Not ported: nnwhile.m (For and While
loops, which autonn does not have yet) and nntrain.m (whole MNIST trainings with each solver
against target objectives: a dataset download and minutes of training, not a unit test)."""

import os
import sys

import numpy as np
import pytest

SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "matconvnet_suite")
if SUITE not in sys.path:
    sys.path.insert(0, SUITE)

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
