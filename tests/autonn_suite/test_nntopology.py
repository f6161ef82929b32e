"""AutoNN's evaluation tests, ported: ``matlab/xtest/nntopology.m`` of vlfeat/autonn.

Two small networks whose outputs and input derivatives are worked out by hand, compiled with
and without ``conserve_memory``: a sequence of three layers (conv by the identity, ReLU, conv
by minus the identity plus a bias) and a diamond (the input through two matrix products, joined
by a subtraction: derivatives accumulate where the input fans out). NCHW instead of H x W x C x
N: the original's 1 x 1 x 2 arrays are (1, 2, 1, 1) here. The original runs in single precision
only (on the CPU and the GPU); each case here runs in float32 and float64.
"""

import numpy as np
import pytest

import autonn as an
from autonn import nn


@pytest.mark.parametrize("topology", ["sequential", "diamond"])
@pytest.mark.parametrize("conserve_memory", [False, True])
def test_eval(t, topology, conserve_memory):
    x = an.Input()
    if topology == "sequential":
        # a sequence of 3 layers that can be worked out by hand
        x_value = t.to_data_type(np.array([1, -1]).reshape(1, 2, 1, 1))
        y_value = t.to_data_type(np.array([1, 2]).reshape(1, 2, 1, 1))   # expected output
        x_der = t.to_data_type(np.array([-1, 0]).reshape(1, 2, 1, 1))    # expected derivative
        y_der = t.ones(1, 2, 1, 1)                                       # derivative for backprop
        # convs will just be the identity, or its negative
        w_value = t.to_data_type(np.eye(2).reshape(2, 2, 1, 1))
        y = nn.conv(x, an.Param(w_value), None)
        y = nn.relu(y)
        y = nn.conv(y, an.Param(-w_value), an.Param(t.to_data_type(np.array([2, 2]))))
    else:
        # the input branches out into 2 middle layers, which are then joined again: tests the
        # accumulation of derivatives, and math operators
        x_value = t.to_data_type(np.array([[3], [10]]))
        y_value = t.to_data_type(np.array([[9], [30]]))
        x_der = t.to_data_type(np.array([[3], [3]]))
        y_der = t.ones(2, 1)
        # ensure they are matrix products, not scalar ones
        x1 = 2 * t.to_data_type(np.eye(2)) @ x
        x2 = 5 * t.to_data_type(np.eye(2)) @ x
        y = x2 - x1

    # name layers, create net and set input
    an.workspace_names()
    net = an.Net(y, conserve_memory=conserve_memory)
    if t.device == "gpu":
        net.to("gpu")
        y_der = t.to_device(y_der)

    # run forward and backward
    net.eval({"x": t.to_device(x_value)}, mode="normal", der_output=y_der)

    # check output and input derivatives
    t.eq(net.value(y), y_value)
    t.eq(net.der(x), x_der)
