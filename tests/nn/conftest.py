"""Lets the tests of tests/nn import their shared modules (``block_references``,
``block_harness``): pytest's importlib import mode puts no test folder on ``sys.path``."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
