"""One declaration per block case, every check run from it (the idea of Chainer's
``FunctionTestCase``): see :class:`BlockCase` for what a case declares, and the ``check_*``
functions for what is checked. ``tests/nn/block_cases.py`` holds the table of cases and
``tests/nn/test_blocks.py`` runs every check on every case.

A case's ``call(*inputs, dzdy=None)`` is the block with its options bound; its ``inputs(rng)``
are float64 arrays (and integer labels, or None for an absent input), cast here to each dtype
and moved to each device. Derivatives are read in argument order from what ``dzdy=`` returns
(a bare array for one derivative); trailing inputs without a derivative may be left out.
"""

import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import autonn as an
from autonn import backend, reference
from autonn.layer import topological_order
from autonn.receptive_fields import receptive_fields
from autonn.shapes import variable_shapes

DEVICES = ("cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not an.gpu_available(), reason="no GPU (CuPy with a CUDA device)")]))

# (rtol, atol) of values against the loop reference and against float64 on the CPU; derivatives
# get DERIVATIVE_SLACK times more (their sums cancel more).
TOLERANCE = {np.float32: (1e-4, 1e-5), np.float64: (1e-10, 1e-12)}
DERIVATIVE_SLACK = 10
SCALAR_DZDY = 0.7


@dataclass(frozen=True)
class BlockCase:
    """One block with one set of options.

    name : the test id, ``block-variant``.
    block : the ``autonn.nn`` function exercised (the table must cover every exported block).
    call : ``call(*inputs, dzdy=None)``, the block with the case's options bound.
    inputs : ``inputs(rng)`` -> tuple of float64 arrays, integer arrays (labels) or None.
    reference : ``reference(*inputs)`` -> the float64 output, from the manual's formula.
    differentiable : positions of the inputs that receive a derivative.
    op : the name the block's error messages start with.
    gradcheck : True, or the reason gradcheck does not apply (error counts).
    tolerance : {dtype: (rtol, atol)} overriding :data:`TOLERANCE`.
    graph_params : positions of the inputs that enter a graph as Params instead of Inputs.
    in_graph : None, or the reason the graph check does not apply.
    xfail : None, or why the whole case is expected to fail today (a missing feature).
    known_bugs : ``(fragment, reason)`` pairs: the tests whose id contains ``fragment`` fail
        today because of a bug in the block; marked strict xfail, so the fix is noticed.
    """

    name: str
    block: object
    call: object
    inputs: object
    reference: object
    differentiable: tuple = (0,)
    op: str = ""
    gradcheck: object = True
    tolerance: dict = field(default_factory=dict)
    graph_params: tuple = ()
    in_graph: object = None
    xfail: object = None
    known_bugs: tuple = ()

    def __post_init__(self):
        if not self.op:
            object.__setattr__(self, "op", self.block.__name__)

    def make_inputs(self):
        """The case's inputs in float64, the same at every call (seeded by the case's name)."""
        return self.inputs(np.random.default_rng(zlib.crc32(self.name.encode())))

    def tol(self, dtype, derivative=False):
        rtol, atol = self.tolerance.get(dtype, TOLERANCE[dtype])
        scale = DERIVATIVE_SLACK if derivative else 1
        return {"rtol": rtol * scale, "atol": atol * scale}

    def derivatives(self, inputs, dzdy):
        """{position: derivative} of the differentiable inputs, from the eager backward; the
        others must get None (or nothing)."""
        ders = self.call(*inputs, dzdy=dzdy)
        ders = tuple(ders) if isinstance(ders, (tuple, list)) else (ders,)
        assert len(ders) <= len(inputs), f"{self.name}: {len(ders)} derivatives returned"
        for i, der in enumerate(ders):
            if i not in self.differentiable:
                assert der is None, f"{self.name}: input {i} has no derivative, got one"
        missing = [i for i in self.differentiable if i >= len(ders) or ders[i] is None]
        assert not missing, f"{self.name}: no derivative for inputs {missing}"
        return {i: ders[i] for i in self.differentiable}


def mark_expected_failures(request):
    """Apply a case's ``xfail`` and ``known_bugs`` to the running test (an autouse fixture
    of the table's module calls this)."""
    callspec = getattr(request.node, "callspec", None)
    case = callspec.params.get("case") if callspec else None
    if not isinstance(case, BlockCase):
        return
    if case.xfail:
        request.applymarker(pytest.mark.xfail(reason=case.xfail, strict=False))
    for fragment, reason in case.known_bugs:
        if fragment in request.node.name:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


# ----------------------------------------------------------------------------- helpers
def cast(inputs, dtype):
    """Float arrays to ``dtype``; labels (integers) and None unchanged."""
    return tuple(x.astype(dtype) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x
                 for x in inputs)


def to_device(inputs, device):
    return tuple(backend.to_device(x, device) if isinstance(x, np.ndarray) else x
                 for x in inputs)


def projection(output, dtype=np.float64):
    """The dzdy of the backward checks: a fixed random array shaped like the output, or a number
    for a scalar output."""
    if np.ndim(output) == 0:
        return SCALAR_DZDY
    rng = np.random.default_rng(99)
    return rng.standard_normal(np.shape(output)).astype(dtype)


def _assert_close(got, want, what, **tol):
    np.testing.assert_allclose(backend.to_numpy(got), want, err_msg=what, **tol)


# ----------------------------------------------------------------------------- the checks
def check_forward_matches_reference(case, device, dtype):
    """The block's output, on ``device`` in ``dtype``, equals the loop reference evaluated in
    float64 on the same (rounded) inputs; it keeps the dtype and the device."""
    inputs = cast(case.make_inputs(), dtype)
    y = case.call(*to_device(inputs, device))
    assert y.dtype == dtype, f"{case.name}: output dtype {y.dtype}, inputs {np.dtype(dtype)}"
    assert backend.device_of(y) == device
    expected = case.reference(*cast(inputs, np.float64))
    assert np.shape(y) == np.shape(expected)
    _assert_close(y, expected, f"{case.name} forward", **case.tol(dtype))


def check_gradcheck(case):
    """The eager derivatives of the differentiable inputs match central differences (float64)."""
    if case.gradcheck is not True:
        pytest.skip(case.gradcheck)
    an.gradcheck(case.call, *case.make_inputs(), wrt=case.differentiable)


def check_agrees_with_float64_on_the_cpu(case, device, dtype):
    """Forward and backward on ``device`` in ``dtype`` give float64 CPU's values and
    derivatives (computed from the same rounded inputs), in ``dtype`` and on ``device``."""
    inputs = cast(cast(case.make_inputs(), dtype), np.float64)
    expected = case.call(*inputs)
    dzdy = projection(expected)
    expected_ders = case.derivatives(inputs, dzdy)
    moved = to_device(cast(inputs, dtype), device)
    moved_dzdy = dzdy if np.ndim(dzdy) == 0 else backend.to_device(dzdy.astype(dtype), device)
    y = case.call(*moved)
    assert y.dtype == dtype and backend.device_of(y) == device
    _assert_close(y, expected, f"{case.name} forward", **case.tol(dtype))
    for i, der in case.derivatives(moved, moved_dzdy).items():
        assert der.dtype == dtype and backend.device_of(der) == device, \
            f"{case.name}: derivative {i} is {der.dtype} on {backend.device_of(der)}"
        _assert_close(der, expected_ders[i], f"{case.name} derivative of input {i}",
                      **case.tol(dtype, derivative=True))


def check_in_graph(case, conserve_memory, computed_inputs):
    """The block on Input Layers (Params where the case says so), compiled by ``an.Net`` and
    evaluated in mode 'normal', gives the eager value and the eager ``dzdy=`` derivatives.

    With ``computed_inputs`` the block reads ``Input + 0`` instead: values the tape computes,
    and may free (or overwrite) under conserve_memory once the steps that declared they read
    them are done, so a block that reads more than it declares fails here.
    """
    if case.in_graph is not None:
        pytest.skip(case.in_graph)
    graph = build_graph(case, computed_inputs)
    y, values = graph.output, graph.values
    y.name = "y"
    expected = case.call(*values)
    dzdy = projection(expected)
    objective = y * dzdy if np.ndim(dzdy) == 0 else (y * dzdy).sum()
    net = an.Net(objective, conserve_memory=conserve_memory)
    net.eval({x.name: values[i] for i, x in graph.inputs.items()}, mode="normal")
    tol = {"rtol": 1e-10, "atol": 1e-12}
    _assert_close(net.value(objective), np.sum(expected * dzdy), f"{case.name} objective", **tol)
    if not conserve_memory:
        _assert_close(net.value("y"), expected, f"{case.name} value", **tol)
    for i, der in case.derivatives(values, dzdy).items():
        node = graph.nodes[i]
        got = node.der if isinstance(node, an.Param) else net.der(graph.inputs[i])
        _assert_close(got, der, f"{case.name} derivative of input {i}", **tol)


def check_shape_rules_in_graph(case):
    """On the graph of :func:`check_in_graph` (nothing compiled), shape inference gives every
    node the shape of its forward, and every op has a receptive-field rule that runs: see
    :func:`check_shape_rules`."""
    if case.in_graph is not None:
        pytest.skip(case.in_graph)
    graph = build_graph(case)
    check_shape_rules([graph.output], {x: graph.values[i] for i, x in graph.inputs.items()})


def check_shape_rules(outputs, feed):
    """``autonn.shapes.variable_shapes`` of the graph ending in ``outputs``, from the shapes of
    the values in ``feed`` ({Input: array}), gives every node the shape of the value the
    reference executor computes for it (each op's forward); every op of the graph has a
    receptive-field rule, and the rules run against each Input."""
    values, _ = reference.evaluate(outputs, feed, mode="forward")
    shapes = variable_shapes(outputs, {x: np.shape(value) for x, value in feed.items()})
    for layer in topological_order(outputs):
        if isinstance(layer, an.Input):
            continue
        value = values[id(layer)]
        is_op = type(layer) is an.Layer
        expected = (tuple(np.shape(v) for v in value) if is_op and layer.op.num_outputs > 1
                    else np.shape(value))
        what = layer.op.name if is_op else type(layer).__name__
        assert shapes.get(layer) == expected, \
            f"{what} '{layer.name}': inferred shape {shapes.get(layer)}, forward {expected}"
    ops = graph_ops(outputs)
    assert sorted(op.name for op in ops if op.receptive_field is None) == []
    for x in feed:
        receptive_fields(outputs, x)


def ops_checked_in_graph(cases):
    """The names of the ops whose shape and receptive-field rules
    :func:`check_shape_rules_in_graph` checks on the graphs of ``cases`` (those it does not skip
    and that are not expected to fail)."""
    return {op.name for case in cases if case.in_graph is None and case.xfail is None
            for op in graph_ops([build_graph(case).output])}


def graph_ops(outputs):
    """The ops of the nodes of the graph ending in ``outputs``."""
    return {layer.op for layer in topological_order(outputs) if type(layer) is an.Layer}


@dataclass
class Graph:
    """A case's block on graph nodes: ``output`` the Layer it builds; ``values`` the case's
    inputs; ``nodes[i]`` what stands for input i (an Input, ``Input + 0``, a Param or None);
    ``inputs`` {i: Input}, named ``input{i}``."""

    output: object
    values: tuple
    nodes: list
    inputs: dict


def build_graph(case, computed_inputs=False):
    """The block of ``case`` called on Input Layers, Params at the positions of
    ``case.graph_params`` and None for absent inputs; ``Input + 0`` instead of each Input with
    ``computed_inputs``."""
    values = case.make_inputs()
    nodes, inputs = [], {}
    for i, value in enumerate(values):
        if value is None:
            nodes.append(None)
        elif i in case.graph_params:
            nodes.append(an.Param(value, name=f"param{i}"))
        else:
            inputs[i] = an.Input(name=f"input{i}")
            nodes.append(inputs[i] + 0 if computed_inputs else inputs[i])
    y = case.call(*nodes)
    assert isinstance(y, an.Layer), f"{case.name}: a call on Layers must build a Layer"
    return Graph(y, values, nodes, inputs)


def check_refuses_float16_and_integer_inputs(case):
    """A float16 or integer array in place of any differentiable input is a TypeError or
    ValueError naming the op."""
    inputs = case.make_inputs()
    for i in case.differentiable:
        for dtype in (np.float16, np.int64):
            bad = list(inputs)
            bad[i] = inputs[i].astype(dtype)
            with pytest.raises((TypeError, ValueError), match=rf"^{case.op}\b"):
                case.call(*bad)


def check_refuses_mixed_float_dtypes(case):
    """float32 and float64 differentiable inputs in one call are refused, naming the op."""
    if len(case.differentiable) < 2:
        pytest.skip("one differentiable input")
    inputs = list(case.make_inputs())
    first = case.differentiable[0]
    inputs[first] = inputs[first].astype(np.float32)
    with pytest.raises((TypeError, ValueError), match=rf"^{case.op}\b.*float32.*float64|"
                                                        rf"^{case.op}\b.*float64.*float32"):
        case.call(*inputs)


def check_refuses_a_dzdy_of_the_other_dtype(case, dtype):
    """With inputs in ``dtype``, an array dzdy in the other float dtype is a TypeError naming
    the op, dzdy and both dtypes; a scalar dzdy (scalar outputs) may be any number and leaves
    the derivatives in ``dtype``."""
    other = np.float64 if dtype == np.float32 else np.float32
    inputs = cast(case.make_inputs(), dtype)
    y = case.call(*inputs)
    if np.ndim(y) == 0:
        for number in (other(SCALAR_DZDY), np.asarray(SCALAR_DZDY, other), SCALAR_DZDY):
            for der in case.derivatives(inputs, number).values():
                assert der.dtype == dtype
        return
    for der in case.derivatives(inputs, projection(y, dtype)).values():
        assert der.dtype == dtype
    name = np.dtype(dtype).name
    with pytest.raises(TypeError, match=rf"^{case.op}\w*: .*dzdy.*{name}.*{np.dtype(other).name}"):
        case.call(*inputs, dzdy=projection(y, other))
