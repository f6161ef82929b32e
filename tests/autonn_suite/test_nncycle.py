"""AutoNN's cycle check, ported: ``matlab/xtest/nncycle.m`` of vlfeat/autonn.

Edits of a diamond's inputs that make the graph cyclic (``b`` reading ``e``, which depends on
``b``; ``d`` reading itself) are caught. AutoNN checks when an input is assigned; autonn when
the graph is walked (``graph()``, ``find()``, compiling a Net), with a ValueError naming the
Layer. The graph holds no numbers: the case runs once per data type unchanged.
"""

import numpy as np
import pytest

import autonn as an


def diamond():
    a = an.Input("a")
    b = np.sqrt(a)
    c = np.abs(a)
    d = b + c
    e = np.exp(d)
    an.workspace_names()
    return a, b, c, d, e


def test_cycle(t):
    a, b, c, d, e = diamond()
    b.inputs = (e,)   # introduce a cycle in the DAG
    with pytest.raises(ValueError, match="the graph has a cycle"):
        an.Net(e)
    with pytest.raises(ValueError, match="the graph has a cycle"):
        e.graph()

    a, b, c, d, e = diamond()
    d.inputs = (d.inputs[0], d)   # d its own input
    with pytest.raises(ValueError, match="the graph has a cycle: 'd'"):
        e.find()
    with pytest.raises(ValueError, match="the graph has a cycle"):
        an.Net(e)
