"""The fixture of the ported AutoNN suite: ``t``, an ``NNTest`` (the port of MatConvNet's
``nntest.m``, which AutoNN's test classes extend) for each data type ('single' = float32,
'double' = float64) and device ('cpu'; 'gpu' when CuPy sees a device), reseeded with 0 before
every test. Puts ``tests/matconvnet_suite`` on ``sys.path`` for ``from nntest import NNTest``
(pytest's importlib import mode does not).

Ported from ``matlab/xtest/`` of vlfeat/autonn: nncopy.m, nnfind.m, nntopology.m, nncycle.m,
nndecompile.m and nnlayers.m with its base nncheckder.m. nnwhile.m is ported with the loops,
in tests/test_loops.py. Not ported: nntrain.m (whole MNIST trainings with each solver
against target objectives: a dataset download and minutes of training, not a unit test)."""

import os
import sys

SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "matconvnet_suite")
if SUITE not in sys.path:
    sys.path.insert(0, SUITE)

from nntest import data_type, device, t  # noqa: E402, F401  (the fixtures)
