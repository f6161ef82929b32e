"""The compiled tape against the reference executor on Hypothesis-generated random graphs
(mixing ops, broadcasting, fan-out and indexing), with and without optimisation and
conserve_memory."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autonn as an
from autonn import reference

SHAPE = (3, 4)

UNARY = [np.tanh, np.exp, lambda x: -x, lambda x: x * 0.5, lambda x: np.maximum(x, 0),
         lambda x: x.sum(axis=0, keepdims=True), lambda x: x[:, ::-1],
         lambda x: x[np.array([0, 0, -1])].mean(axis=0, keepdims=True), lambda x: np.sin(x) / 3,
         lambda x: x.T.T, lambda x: (x * x).mean(axis=1, keepdims=True)]
BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
          lambda a, b: np.maximum(a, b), lambda a, b: a * 2 - b / 4,
          lambda a, b: np.concatenate([a + 0 * b, b + 0 * a], axis=0)[1:4]]


@st.composite
def random_graphs(draw):
    """A recipe: a list of (kind, op index, operand indices) over a growing pool of nodes."""
    steps = []
    pool = 3  # two Inputs and one Param to start
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            steps.append(("unary", draw(st.integers(0, len(UNARY) - 1)),
                          (draw(st.integers(0, pool - 1)),)))
        else:
            steps.append(("binary", draw(st.integers(0, len(BINARY) - 1)),
                          (draw(st.integers(0, pool - 1)), draw(st.integers(0, pool - 1)))))
        pool += 1
    outputs = draw(st.lists(st.integers(3, pool - 1), min_size=1, max_size=2, unique=True))
    return steps, outputs


def build(recipe):
    steps, output_indices = recipe
    a, b = an.Input("a"), an.Input("b")
    w = an.Param(np.linspace(-1, 1, 4)[None, :], name="w")
    nodes = [a, b, w]
    for kind, k, operands in steps:
        args = [nodes[i] for i in operands]
        nodes.append(UNARY[k](*args) if kind == "unary" else BINARY[k](*args))
    return [nodes[i] for i in output_indices], (a, b, w)


@settings(max_examples=150, deadline=None)
@given(random_graphs(), st.booleans(), st.booleans())
def test_tape_matches_reference_executor(recipe, optimize, conserve_memory):
    outputs, (a, b, w) = build(recipe)
    rng = np.random.default_rng(1)
    feed = {"a": rng.standard_normal(SHAPE), "b": rng.standard_normal((1, 4))}
    net = an.Net(*outputs, optimize=optimize, conserve_memory=conserve_memory)
    feed = {name: value for name, value in feed.items() if name in net.inputs}
    values, ders = reference.evaluate(outputs, feed)
    net.eval(feed)
    for output in outputs:
        np.testing.assert_allclose(net.value(output), values[id(output)], rtol=1e-12,
                                   atol=1e-12)
    for leaf, name in ((a, "a"), (b, "b")):
        if name not in net.inputs:
            continue
        expected = ders.get(id(leaf))
        got = net.der(name)
        if expected is None:
            assert got is None or not np.any(got)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    if any(p is w for p in net.params):
        np.testing.assert_allclose(w.der, ders.get(id(w), np.zeros((1, 4))), rtol=1e-10,
                                   atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(random_graphs())
def test_conserve_memory_keeps_only_what_later_steps_need(recipe):
    outputs, _ = build(recipe)
    rng = np.random.default_rng(2)
    feed = {"a": rng.standard_normal(SHAPE), "b": rng.standard_normal((1, 4))}
    net = an.Net(*outputs, conserve_memory=True)
    net.eval({name: value for name, value in feed.items() if name in net.inputs})
    kept = {slot for slot, v in enumerate(net._values) if v is not None}
    leaves = {net._compiled.slot_of[id(x)] for x in net._compiled.inputs + net.params}
    constants = {slot for slot, _ in net.tape.constants}
    outputs_slots = set(net._output_slots)
    assert kept <= leaves | constants | outputs_slots


def test_fan_out_accumulates_derivatives():
    x = an.Input("x")
    y = x * x + np.sin(x) + x
    net = an.Net(y.sum())
    value = np.array([0.3, -1.2])
    net.eval({"x": value})
    np.testing.assert_allclose(net.der("x"), 2 * value + np.cos(value) + 1)


@pytest.mark.parametrize("optimize", [True, False])
def test_deep_chain_of_thousands_of_layers_compiles_without_recursion(optimize):
    x = an.Input("x")
    y = x
    for _ in range(3000):
        y = y * 1.0001 + 0.0
    net = an.Net(y.sum(), optimize=optimize)
    net.eval({"x": np.ones(2)})
    np.testing.assert_allclose(net.der("x"), np.full(2, 1.0001 ** 3000), rtol=1e-9)
    if optimize:
        assert len(net.tape.forward) == 2  # one weighted sum and the sum
