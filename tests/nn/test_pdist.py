"""pdist against a per-location loop (block_references), its derivatives for every p branch,
and checks."""

import numpy as np
import pytest
from block_references import pdist_reference

import autonn as an
from autonn import nn

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("p", [0.5, 1, 2, 3])
@pytest.mark.parametrize("no_root", [False, True])
def test_pdist_matches_the_definition_and_derivatives(p, no_root):
    x = RNG.standard_normal((2, 3, 2, 2))
    x0 = RNG.standard_normal((1, 3, 1, 1))
    np.testing.assert_allclose(nn.pdist(x, x0, p, no_root=no_root),
                               pdist_reference(x, x0, p, no_root), rtol=1e-12)
    an.gradcheck(lambda a, b, dzdy=None: nn.pdist(a, b, p, no_root=no_root, epsilon=1e-12,
                                                  dzdy=dzdy), x, x0)


def test_pdist_instance_weights_and_aggregate():
    x, x0 = RNG.standard_normal((2, 3, 2, 2)), RNG.standard_normal((2, 3, 2, 2))
    w = RNG.random((2, 1, 2, 2))
    y = nn.pdist(x, x0, 2, instance_weights=w, aggregate=True)
    assert y.shape == ()
    np.testing.assert_allclose(y, pdist_reference(x, x0, 2, instance_weights=w, aggregate=True),
                               rtol=1e-12)
    an.gradcheck(lambda a, b, dzdy=None: nn.pdist(a, b, 2, instance_weights=w, aggregate=True,
                                                  dzdy=dzdy), x, x0)


def test_pdist_in_a_graph():
    x = an.Input(name="x")
    target = RNG.standard_normal((1, 3, 1, 1))
    y = nn.pdist(x, target, 2, aggregate=True)
    net = an.Net(y)
    value = RNG.standard_normal((2, 3, 2, 2))
    net.eval({"x": value})
    np.testing.assert_allclose(net.der("x"), nn.pdist(value, target, 2, aggregate=True,
                                                       dzdy=1.0)[0])


def test_pdist_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="pdist: x0 of shape"):
        nn.pdist(np.zeros((2, 3, 2, 2)), np.zeros((1, 4, 1, 1)), 2)
    with pytest.raises(ValueError, match="pdist: instance_weights"):
        nn.pdist(np.zeros((2, 3, 2, 2)), np.zeros((2, 3, 2, 2)), 2,
                 instance_weights=np.zeros((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="pdist: p must be positive"):
        nn.pdist(np.zeros((2, 3)), np.zeros((2, 3)), 0)
