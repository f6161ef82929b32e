"""The fixture of MatConvNet's block suite: ``t``, an :class:`nntest.NNTest` for each data type
('single' = float32, 'double' = float64) and device ('cpu'; 'gpu' when CuPy sees a device),
reseeded with 0 before every test, as ``nntest.m``'s ``ClassSetupParameter`` and
``TestMethodSetup`` do. Also puts this folder on ``sys.path`` so that suite files can
``from nntest import NNTest`` (pytest's importlib import mode does not)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from nntest import data_type, device, t  # noqa: E402, F401  (the fixtures)
