"""lstm and lstm_params beyond the block table (block_cases' lstm-* cases run the common
checks): vl_nnlstm's backward and its clipping against block_references, PyTorch's LSTMCell,
the pair of Layers a graph gets, a chain of steps in a Net, the bad inputs, the initial
Params, and vl_nnmask's role (a dropout mask shared by every time step)."""

import block_references as ref
import numpy as np
import pytest
from block_harness import DEVICES

import autonn as an
from autonn import backend, nn

N, M, D = 3, 4, 5


def step_inputs(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return tuple(a.astype(dtype) for a in (
        rng.standard_normal((N, M)), rng.standard_normal((N, D)),
        2 * rng.standard_normal((N, D)), 0.7 * rng.standard_normal((4 * D, M + D)),
        rng.standard_normal(4 * D)))


def projections(seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((N, D)).astype(dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_lstm_derivatives_are_vl_nnlstm_backward(device):
    inputs, (dh, dc) = step_inputs(), projections()
    moved = [backend.to_device(a, device) for a in inputs + (dh, dc)]
    ders = nn.lstm(*moved[:5], dzdy=(moved[5], moved[6]))
    assert len(ders) == 5
    for got, want in zip(ders, ref.lstm_derivatives_reference(*inputs, dh, dc)):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("clip", [0.3, (0.05, 0.1, 0.2, 0.3, 0.4)], ids=["one", "five"])
def test_lstm_clip_grad_clamps_each_derivative_as_vl_nnlstm(clip):
    inputs, (dh, dc) = step_inputs(), projections()
    limits = (clip,) * 5 if np.ndim(clip) == 0 else clip
    want = ref.lstm_derivatives_reference(*inputs, dh, dc, clip=limits)
    unclipped = ref.lstm_derivatives_reference(*inputs, dh, dc)
    for got, expected, free, limit in zip(nn.lstm(*inputs, dzdy=(dh, dc), clip_grad=clip), want,
                                          unclipped, limits):
        assert np.abs(free).max() > limit     # every derivative has entries to clamp
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # the forward is unchanged by clipping
    for got, expected in zip(nn.lstm(*inputs, clip_grad=clip), nn.lstm(*inputs)):
        np.testing.assert_array_equal(got, expected)


def test_lstm_missing_output_derivative_counts_as_zeros():
    inputs, (dh, dc) = step_inputs(), projections()
    for pair, zeros in (((dh, None), (dh, np.zeros_like(dc))),
                        ((None, dc), (np.zeros_like(dh), dc))):
        for got, want in zip(nn.lstm(*inputs, dzdy=pair), nn.lstm(*inputs, dzdy=zeros)):
            np.testing.assert_array_equal(got, want)


def test_lstm_matches_pytorch_lstm_cell_with_its_gate_order():
    torch = pytest.importorskip("torch")
    x, h, c, W, b = step_inputs()
    dh, dc = projections()
    m = x.shape[1]
    # PyTorch's gates are [i; f; g; o], AutoNN's [i; f; o; g]
    order = np.concatenate([np.arange(0, 2 * D), np.arange(3 * D, 4 * D), np.arange(2 * D, 3 * D)])
    cell = torch.nn.LSTMCell(m, D).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(W[order, :m]))
        cell.weight_hh.copy_(torch.from_numpy(W[order, m:]))
        cell.bias_ih.copy_(torch.from_numpy(b[order]))
        cell.bias_hh.zero_()
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    h_next, c_next = cell(tx, (th, tc))
    (h_next * torch.from_numpy(dh) + c_next * torch.from_numpy(dc)).sum().backward()
    ours = nn.lstm(x, h, c, W, b)
    np.testing.assert_allclose(ours[0], h_next.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours[1], c_next.detach().numpy(), rtol=1e-12, atol=1e-14)
    dx, dhp, dcp, dW, db = nn.lstm(x, h, c, W, b, dzdy=(dh, dc))
    for got, want in ((dx, tx.grad), (dhp, th.grad), (dcp, tc.grad),
                      (dW[order, :m], cell.weight_ih.grad), (dW[order, m:], cell.weight_hh.grad),
                      (db[order], cell.bias_ih.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_on_layers_returns_the_pair_of_states_and_a_net_unrolls_steps():
    x0, h0, c0, W, b = step_inputs()
    x1 = np.random.default_rng(5).standard_normal(x0.shape)
    inputs = [an.Input(name=name) for name in ("x0", "x1", "h0", "c0")]
    weights, biases = an.Param(W), an.Param(b)
    states = nn.lstm(inputs[0], inputs[2], inputs[3], weights, biases)
    assert type(states) is tuple and len(states) == 2
    assert all(isinstance(state, an.Layer) for state in states)
    h2, c2 = nn.lstm(inputs[1], *states, weights, biases)
    dh, dc = projections()
    net = an.Net((h2 * dh).sum() + (c2 * dc).sum())
    net.eval({"x0": x0, "x1": x1, "h0": h0, "c0": c0})
    # the same two steps eagerly, backward through the chain
    h1_, c1_ = nn.lstm(x0, h0, c0, W, b)
    np.testing.assert_allclose(net.value(h2), nn.lstm(x1, h1_, c1_, W, b)[0], rtol=1e-12)
    dx1, dh1, dc1, dW1, db1 = nn.lstm(x1, h1_, c1_, W, b, dzdy=(dh, dc))
    dx0, dh0, dc0, dW0, db0 = nn.lstm(x0, h0, c0, W, b, dzdy=(dh1, dc1))
    tol = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(net.der("x1"), dx1, **tol)
    np.testing.assert_allclose(net.der("x0"), dx0, **tol)
    np.testing.assert_allclose(net.der("h0"), dh0, **tol)
    np.testing.assert_allclose(net.der("c0"), dc0, **tol)
    np.testing.assert_allclose(weights.der, dW0 + dW1, **tol)
    np.testing.assert_allclose(biases.der, db0 + db1, **tol)


def test_lstm_in_a_graph_takes_constant_initial_states():
    # minimal_lstm's h{1} = zeros(d, 1): arrays beside Layers
    x, _, _, W, b = step_inputs()
    h, c = nn.lstm(an.Input(name="x"), np.zeros((N, D)), np.zeros((N, D)), an.Param(W),
                   an.Param(b))
    net = an.Net(h.sum() + c.sum())
    net.eval({"x": x})
    np.testing.assert_allclose(net.value(h), nn.lstm(x, np.zeros((N, D)), np.zeros((N, D)),
                                                     W, b)[0], rtol=1e-12)


def test_lstm_refuses_bad_shapes_naming_the_arguments():
    x, h, c, W, b = step_inputs()
    with pytest.raises(ValueError, match=r"lstm: W must be \(4d, m \+ d\) = \(20, 9\).*"
                                         r"W \(20, 8\)"):
        nn.lstm(x, h, c, W[:, :8], b)
    with pytest.raises(ValueError, match=r"lstm: x and h must have the same batch size.*"
                                         r"x \(2, 4\), h \(3, 5\)"):
        nn.lstm(x[:2], h, c, W, b)
    with pytest.raises(ValueError, match=r"lstm: c must have the shape of h.*c \(3, 4\)"):
        nn.lstm(x, h, c[:, :4], W, b)
    with pytest.raises(ValueError, match=r"lstm: b must be \(4d,\) = \(20,\).*b \(19,\)"):
        nn.lstm(x, h, c, W, b[:19])
    with pytest.raises(ValueError, match=r"lstm: x must be \(N, k\) or \(N, k, 1, 1\), got "
                                         r"shape \(3, 4, 2, 1\)"):
        nn.lstm(np.zeros((N, M, 2, 1)), h, c, W, b)
    with pytest.raises(ValueError, match=r"lstm: h must be 2-D or 4-D"):
        nn.lstm(x, h[0], c, W, b)


def test_lstm_refuses_bad_dzdy_and_clip_grad():
    inputs, (dh, dc) = step_inputs(), projections()
    with pytest.raises(TypeError, match=r"lstm: dzdy must be a pair \(dh, dc\).*ndarray"):
        nn.lstm(*inputs, dzdy=dh)
    with pytest.raises(TypeError, match=r"lstm: dzdy must be a pair \(dh, dc\).*tuple of 3"):
        nn.lstm(*inputs, dzdy=(dh, dc, dc))
    with pytest.raises(ValueError, match=r"lstm: dzdy \(dc\) must have the output shape "
                                         r"\(3, 5\), got \(3, 4\)"):
        nn.lstm(*inputs, dzdy=(dh, dc[:, :4]))
    with pytest.raises(ValueError, match=r"lstm: clip_grad must be a number or 5 numbers.*got 2"):
        nn.lstm(*inputs, clip_grad=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"lstm: clip_grad \(dW\) must be positive"):
        nn.lstm(*inputs, clip_grad=(1, 1, 1, 0, 1))
    with pytest.raises(TypeError, match="lstm: dzdy= computes derivatives eagerly"):
        nn.lstm(an.Input(name="x"), *inputs[1:], dzdy=(dh, dc))


def test_lstm_params_are_vl_nnlstm_params():
    np.random.seed(0)
    W, b = nn.lstm_params(6, 3)
    assert isinstance(W, an.Param) and isinstance(b, an.Param)
    assert W.value.shape == (24, 9) and b.value.shape == (24,)
    assert W.value.dtype == b.value.dtype == np.float32
    assert np.abs(W.value).max() <= 0.1 and np.abs(W.value).min() < 0.01
    np.testing.assert_array_equal(b.value[6:12], 1.0)
    assert np.abs(np.delete(b.value, np.s_[6:12])).max() <= 0.1
    assert (W.learning_rate, W.weight_decay, b.learning_rate, b.weight_decay) == (1, 1, 1, 0)
    W, b = nn.lstm_params(2, 2, noise=1.0, forget_bias=-0.5, learning_rate=(2, 3),
                          weight_decay=0.5, dtype=np.float64, rng=np.random.default_rng(1))
    assert W.value.dtype == np.float64 and np.abs(W.value).max() > 0.1
    np.testing.assert_array_equal(b.value[2:4], -0.5)
    assert (W.learning_rate, W.weight_decay, b.learning_rate, b.weight_decay) == (2, 0.5, 3, 0.5)
    with pytest.raises(ValueError, match="lstm_params: d must be a positive int, got 0"):
        nn.lstm_params(0, 3)
    with pytest.raises(ValueError, match="lstm_params: noise must be non-negative"):
        nn.lstm_params(2, 3, noise=-1)
    with pytest.raises(TypeError, match="lstm_params: dtype must be float32 or float64"):
        nn.lstm_params(2, 3, dtype=np.float16)


def test_a_dropout_mask_shared_by_the_time_steps_is_vl_nnmask():
    # AutoNN's vl_nnmask is the mask node of a graph's dropout (dropout(return_mask=True)); an
    # RNN applies that one mask at every time step with dropout(mask=...)
    values = np.random.default_rng(2).standard_normal((4, 50)) + 3
    a, b = an.Input(name="a"), an.Input(name="b")
    ya, mask = nn.dropout(a, rate=0.5, return_mask=True)
    yb = nn.dropout(b, mask=mask)
    net = an.Net(ya.sum() + yb.sum())
    net.eval({"a": values, "b": 2 * values})
    drawn = net.value(mask)
    assert set(np.unique(drawn)) == {0.0, 2.0}
    np.testing.assert_allclose(net.value(ya), values * drawn)
    np.testing.assert_allclose(net.value(yb), 2 * values * drawn)
    np.testing.assert_allclose(net.der("b"), drawn)
    net.eval({"a": values, "b": 2 * values}, mode="test")
    np.testing.assert_allclose(net.value(yb), 2 * values)
