"""AutoNN's examples/rnn/minimal_dynamic_lstm.m: an LSTM in an ``an.For`` loop whose number of
iterations is an Input, decided at every problem (the sums have 1 to 16 bits), learns binary
addition, least significant bit first. One Net serves every length: the loop compiles once.
"""

import numpy as np

import autonn as an
from autonn import nn

MAX_T = 16    # most bits
D = 16        # LSTM state size
ITERATIONS = 1500


def dynamic_lstm_net():
    """The example's graph: T the number of bits, x (T, 1, 2) the two numbers' bits, y
    (T, 1, 1, 1) the sum's bits as -1 / +1; returns (net, loss, err, prediction)."""
    T, x, y = an.Input(name="T"), an.Input(name="x"), an.Input(name="y")
    W, b = nn.lstm_params(D, 2)
    initial = np.zeros((1, D), np.float32)
    # one iteration reads bit t of both numbers; the hidden states of every step are kept
    h, c = an.For(lambda h, c, t: nn.lstm(x[t], h, c, W, b), initial, initial, T,
                  concatenate=(0, None))
    prediction = nn.conv(h.reshape((-1, D, 1, 1)), size=(1, 1, D, 1))  # the steps as a batch
    prediction.name = "prediction"
    loss = nn.loss(prediction, y, loss="logistic")
    err = nn.loss(prediction, y, loss="binaryerror")
    return an.Net(loss, err), loss, err, prediction


def addition_problem(rng):
    """A random number of bits, two numbers whose last bit is 0 (no overflow), the sum's bits."""
    T = int(rng.integers(1, MAX_T + 1))
    a, b = (int(v) for v in rng.integers(0, 2 ** (T - 1), size=2))
    bits = (np.array([a, b, a + b])[None, :] >> np.arange(T)[:, None]) & 1
    data_x = bits[:, :2].reshape(T, 1, 2).astype(np.float32)
    data_y = (bits[:, 2].reshape(T, 1, 1, 1) * 2 - 1).astype(np.float32)
    return T, data_x, data_y


def test_the_net_has_one_loop_step_whatever_the_length():
    net, *_ = dynamic_lstm_net()
    assert [step.op.name for step in net.tape.forward].count("for") == 1
    rng = np.random.default_rng(1)
    for _ in range(3):
        T, data_x, data_y = addition_problem(rng)
        net.eval({"T": T, "x": data_x, "y": data_y})
        assert net.value("prediction").shape == (T, 1, 1, 1)


def test_minimal_dynamic_lstm_learns_binary_addition_of_any_length():
    np.random.seed(0)                 # lstm_params and the conv's initial filters
    rng = np.random.default_rng(0)    # the problems
    net, loss, err, prediction = dynamic_lstm_net()
    solver = an.solvers.Adam(learning_rate=1e-2)
    losses, errors = [], []
    for _ in range(ITERATIONS):
        T, data_x, data_y = addition_problem(rng)
        net.eval({"T": T, "x": data_x, "y": data_y})
        solver.step(net)
        losses.append(float(net.value(loss)))
        errors.append(float(net.value(err)))
    assert np.mean(losses[:100]) > 0.4           # it started near chance ...
    assert np.mean(losses[-100:]) < 0.1          # ... and learnt
    assert np.mean(errors[-100:]) < 0.01
    for _ in range(50):                           # new problems, every bit of every sum right
        T, data_x, data_y = addition_problem(rng)
        net.eval({"T": T, "x": data_x, "y": data_y}, mode="test")
        np.testing.assert_array_equal(net.value(prediction) > 0, data_y > 0)
