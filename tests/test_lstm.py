"""AutoNN's examples/minimal/minimal_lstm.m: an LSTM learns binary addition, one bit per time
step (least significant first), and must get every bit right once trained.

The time steps are unrolled in Python into one graph (the MATLAB example's ``for t = 1:T``
loop): the 8 steps share one W and b, and the same 1x1 conv projects every hidden state to
the logit of its bit.
"""

import numpy as np

import autonn as an
from autonn import nn

T = 8         # bits, time steps
D = 16        # LSTM state size
ITERATIONS = 1500


def bits(values):
    """(T, len(values)) bits of each value, least significant first."""
    return (np.asarray(values)[None, :] >> np.arange(T)[:, None]) & 1


def minimal_lstm_net():
    """The example's graph: x (T, 1, 2) the two numbers' bits, y (T, 1, 1, 1) the sum's bits
    as -1 / +1; returns (net, loss, err, prediction)."""
    x, y = an.Input(name="x"), an.Input(name="y")
    W, b = nn.lstm_params(D, 2)
    h = c = np.zeros((1, D), np.float32)
    states = []
    for t in range(T):
        h, c = nn.lstm(x[t], h, c, W, b)
        states.append(h)
    H = np.concatenate(states, axis=0).reshape((T, D, 1, 1))    # the T steps as a batch
    prediction = nn.conv(H, size=(1, 1, D, 1))
    prediction.name = "prediction"
    loss = nn.loss(prediction, y, loss="logistic")
    err = nn.loss(prediction, y, loss="binaryerror")
    return an.Net(loss, err), loss, err, prediction


def addition_problem(rng):
    """Two numbers below 2^(T-1) (so the sum does not overflow) and their sum's bits."""
    a, b = rng.integers(0, 2 ** (T - 1), size=2)
    data_x = bits([a, b]).reshape(T, 1, 2).astype(np.float32)
    data_y = (bits([a + b]).reshape(T, 1, 1, 1) * 2 - 1).astype(np.float32)
    return data_x, data_y


def test_minimal_lstm_learns_binary_addition():
    np.random.seed(0)                 # lstm_params and the conv's initial filters
    rng = np.random.default_rng(0)    # the problems
    net, loss, err, prediction = minimal_lstm_net()
    solver = an.solvers.Adam(learning_rate=1e-2)
    losses, errors = [], []
    for _ in range(ITERATIONS):
        data_x, data_y = addition_problem(rng)
        net.eval({"x": data_x, "y": data_y})
        solver.step(net)
        losses.append(float(net.value(loss)))
        errors.append(float(net.value(err)))
    assert np.mean(losses[:100]) > 0.5           # it started from chance (log 2 = 0.69) ...
    assert np.mean(losses[-100:]) < 0.1          # ... and learnt
    assert np.mean(errors[-100:]) < 0.01
    # new problems, in test mode: every bit of every sum right
    for _ in range(50):
        data_x, data_y = addition_problem(rng)
        net.eval({"x": data_x, "y": data_y}, mode="test")
        np.testing.assert_array_equal(net.value(prediction) > 0, data_y > 0)
