"""AutoNN's layer and math tests, ported: ``matlab/xtest/nnlayers.m`` of vlfeat/autonn, with
its base class ``matlab/xtest/nncheckder.m`` (``check_der`` below).

Every input is a Param, so that its value is chosen now; each output is compiled (with and
without ``conserve_memory``), evaluated, and its derivatives with respect to every Param are
checked numerically. The original's check (forward differences along each element with a
tolerance guessed from the derivatives' range) is done by ``an.gradcheck`` (central
differences along random directions and element by element, tolerances for the data type).
NCHW instead of H x W x C x N: x is (5, 2, 7, 7), the filters (3, 2, 3, 3); ``convt`` filters
are (C, K, kh, kw), the original's ``permute(w, [1 2 4 3])``; labels are 0-based (the
original's ones are zeros). MATLAB's matrix operators become NumPy's: ``a * b`` is ``a @ b``,
``a'`` is ``a.T``, ``a / b`` is ``a @ inv(b)``, ``a \\ b`` is ``solve(a, b)``, ``.*`` and ``./``
broadcast, ``sort`` sorts the columns (axis 0); ``a .^ c``, complex in MATLAB where ``a < 0``,
is differentiated with respect to ``c`` on a non-negative base only. The original skips the double-precision
batch-norm case (its Params are single) and the extra conv tests in double; here every case
runs in float32 and float64 (bnorm's Params are cast to the data type, as a solver would).
"""

import numpy as np
import pytest

import autonn as an
from autonn import nn


def check_der(t, output, conserve_memory, ignore=()):
    """nncheckder.m: compile ``output``, run it forward and backward, and check its
    derivatives with respect to the Params (those in ``ignore`` aside). Returns the output."""
    net = an.Net(output, conserve_memory=conserve_memory)
    net.eval({}, mode="forward")
    y = net.value(output)
    assert y is not None and np.size(y) > 0   # the output is not empty
    der = t.to_data_type(t.rng.standard_normal(np.shape(y)))
    if t.device == "gpu":
        net.to("gpu")
        der = t.to_device(der)
    net.eval({}, mode="normal", der_output=der)
    params = [p for p in output.find(an.Param)
              if p.train_method == "gradient" and not any(p is q for q in ignore)]
    for param in params:
        assert net.der(param) is not None and np.shape(net.der(param)) == np.shape(param.value)
    if params:
        an.gradcheck(net, {}, dtype=t.dtype, wrt=[p.name for p in params])
    return y


def randn(t, *shape):
    """MATLAB's plain ``randn(..., dataType)`` (unit variance, not the suite's range)."""
    return t.to_data_type(t.rng.standard_normal(shape))


def rand(t, *shape):
    return t.to_data_type(t.rng.random(shape))


@pytest.fixture(params=[False, True], ids=["keep", "conserve_memory"])
def conserve_memory(request):
    return request.param


def test_layers(t, conserve_memory):
    # use Params for all inputs so their values are chosen now
    x = an.Param(randn(t, 5, 2, 7, 7))
    w = an.Param(randn(t, 3, 2, 3, 3))
    b = an.Param(randn(t, 3))
    labels = np.zeros(5, np.int64)
    an.workspace_names()

    def do(output, *ignore):
        return check_der(t, output, conserve_memory, ignore)

    # several layers and syntaxes
    do(nn.relu(x))
    do(nn.conv(x, w, b))
    do(nn.conv(x, w, b, stride=3, pad=2))
    w_transposed = np.transpose(w, (1, 0, 2, 3))
    do(nn.convt(x, w_transposed, b))
    do(nn.convt(x, w_transposed, b, upsample=3, crop=2))
    do(nn.pool(x, 2))
    do(nn.pool(x, (2, 2), stride=2, pad=1))
    do(nn.loss(x, labels, loss="classerror"))

    # dropout is composed of 2 parts: the mask generator, and the dropout mask applier. run
    # the derivative check with a fixed mask
    rate = 0.1
    dropout = nn.dropout(x, rate=rate)
    mask = dropout.inputs[1]
    assert isinstance(mask, an.Layer)
    assert mask.op.name == "dropout_mask"
    _, fixed_mask = nn.dropout(x.value, rate=rate, return_mask=True)
    dropout.inputs = (x, fixed_mask)   # make it constant
    do(dropout)

    # batch normalisation: its Params are created in float32; the moments (the 4th input)
    # are not updated by gradient descent but by a moving average, so they are not checked
    bnorm = nn.bnorm(x)
    for param in bnorm.inputs[1:]:
        param.value = t.to_data_type(param.value)
    assert bnorm.inputs[3].train_method == "average"
    do(bnorm, bnorm.inputs[3])


def test_math(t, conserve_memory):
    # use Params for all inputs so their values are chosen now
    a = an.Param(randn(t, 3, 3) + t.to_data_type(0.1 * np.eye(3)))   # matrix
    b = an.Param(randn(t, 3, 3) + t.to_data_type(0.1 * np.eye(3)))   # matrix
    c = an.Param(t.to_data_type(2 * np.ones((1, 1))))                # scalar
    d = an.Param(randn(t, 3, 1))                                      # vector
    e = an.Param(rand(t, 3, 3) + t.to_data_type(1e-3 * np.ones((3, 3))))   # non-negative
    f = an.Param(rand(t, 3, 3) * 2 - 1)                               # matrix in -1..1
    an.workspace_names()

    def do(output, *ignore):
        return check_der(t, output, conserve_memory, ignore)

    # weighted sums
    do(a + b)
    do(10 * a)
    y = do(a + 2 * b - c)   # collected arguments in a single weighted sum
    t.eq(y, a.value + 2 * b.value - c.value)

    # matrix
    do(a @ b)
    do(a.T)
    do(np.linalg.inv(a))
    do(a @ np.linalg.inv(b))   # a / b
    do(np.linalg.solve(a, b))  # a \ b

    # binary with expanded dimensions
    do(a * d)
    do(a / d)
    # MATLAB's a .^ c is complex where a < 0, and its check compares real parts; here the
    # derivative with respect to the exponent is checked on the non-negative base e
    y = do(a ** c, c)
    t.eq(y, a.value ** 2)
    do(e ** c)
    do(np.arctan2(a, b))

    # matrix ops deal with scalars gracefully
    do(a * c)
    do(a / c)

    # unary
    do(np.sqrt(e))
    do(np.sin(a))
    do(np.cos(a))
    do(np.tan(a))
    do(np.arcsin(f))
    do(np.arccos(f))
    do(np.arctan(a))

    # sorting is a kind of math
    do(np.sort(a, axis=0))


def test_conv(t, conserve_memory):
    # extra conv tests
    x = an.Param(randn(t, 5, 2, 7, 7))

    def do(output):
        return check_der(t, output, conserve_memory)

    # the 'size' syntax
    do(nn.conv(x, size=(7, 7, 2, 5), dtype=t.dtype))

    # no bias
    layer = nn.conv(x, size=(7, 7, 2, 5), has_bias=False, dtype=t.dtype)
    do(layer)
    assert layer.inputs[2] is None

    # Param learning arguments
    layer = nn.conv(x, size=(7, 7, 2, 5), learning_rate=(1, 2), weight_decay=(3, 4),
                    dtype=t.dtype)
    do(layer)
    assert layer.inputs[1].learning_rate == 1
    assert layer.inputs[2].learning_rate == 2
    assert layer.inputs[1].weight_decay == 3
    assert layer.inputs[2].weight_decay == 4
