"""float32 and float64 are never mixed: a derivative, mask or second input of the other dtype is
a TypeError naming the op and the argument, not a silent conversion (SPEC section 0)."""

import numpy as np
import pytest

from autonn import nn

X = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((3, 4, 3, 3)).astype(np.float32)

# block called with dzdy: (name, function of dzdy, output shape)
BACKWARDS = [
    ("relu", lambda dy: nn.relu(X, dzdy=dy), X.shape),
    ("sigmoid", lambda dy: nn.sigmoid(X, dzdy=dy), X.shape),
    ("softmax", lambda dy: nn.softmax(X, dzdy=dy), X.shape),
    ("normalize", lambda dy: nn.normalize(X, (3, 1.0, 0.5, 0.75), dzdy=dy), X.shape),
    ("spnorm", lambda dy: nn.spnorm(X, (3, 3, 0.5, 0.75), dzdy=dy), X.shape),
    ("bnorm", lambda dy: nn.bnorm(X, dzdy=dy), X.shape),
    ("crop", lambda dy: nn.crop(X, 1, dzdy=dy), (2, 4, 3, 3)),
    ("concat", lambda dy: nn.concat([X, X], dzdy=dy), (2, 8, 5, 5)),
    ("normalizelp", lambda dy: nn.normalizelp(X, dzdy=dy), X.shape),
    ("noffset", lambda dy: nn.noffset(X, (1.0, 0.5), dzdy=dy), X.shape),
    ("pool", lambda dy: nn.pool(X, 2, dzdy=dy), (2, 4, 4, 4)),
    ("conv", lambda dy: nn.conv(X, W, dzdy=dy), (2, 3, 3, 3)),
]


@pytest.mark.parametrize("name, backward, shape", BACKWARDS, ids=[b[0] for b in BACKWARDS])
def test_a_float64_dzdy_for_float32_inputs_is_refused(name, backward, shape):
    derivatives = backward(np.ones(shape, np.float32))        # the right dtype works...
    first = derivatives[0] if isinstance(derivatives, tuple) else derivatives
    first = first[0] if isinstance(first, list) else first
    assert first.dtype == np.float32
    with pytest.raises(TypeError, match=rf"{name}.*dzdy.*float32.*float64"):
        backward(np.ones(shape, np.float64))                  # ...the other one is refused


def test_a_scalar_dzdy_may_be_any_number():
    labels = np.array([0, 3])
    dx = nn.loss(X, labels, dzdy=np.float64(2.0))[0]
    assert dx.dtype == np.float32


def test_dropout_refuses_a_mask_of_the_other_dtype():
    with pytest.raises(TypeError, match="dropout.*x float32.*mask float64"):
        nn.dropout(X, mask=np.ones(X.shape))
