"""The generated passes: AUTONN_DEBUG traces the very code a normal run executes, and errors in
a step name its layer in both modes."""

import re

import numpy as np
import pytest

import autonn as an
from autonn.ops import Op

X = np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]])
TRACE_LINE = re.compile(r"^\[autonn (\d+\.\d+)\] (.*) -> (.*)$")


def small_net():
    x = an.Input("x")
    w = an.Param(np.array([[1.0, -2.0], [0.5, 3.0]]), name="w")
    hidden = np.tanh(x @ w)
    return an.Net((hidden * hidden).sum() + np.exp(x).mean()), w


def results(net, w):
    return net.value(net.outputs[0]), net.der("x").copy(), w.der.copy()


def trace_lines(text):
    return [TRACE_LINE.match(line) for line in text.splitlines() if line.startswith("[autonn")]


def test_debug_traces_every_forward_and_backward_step_in_order(monkeypatch, capsys):
    net, w = small_net()
    net.eval({"x": X})
    plain = results(net, w)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(an.net, "DEBUG", True)
    net.eval({"x": X})
    lines = trace_lines(capsys.readouterr().err)
    steps = list(net.tape.forward) + list(net.tape.backward)
    assert len(lines) == len(steps) and all(lines)
    assert [m.group(2) for m in lines] == [repr(step) for step in steps]
    times = [float(m.group(1)) for m in lines]
    assert times == sorted(times)
    assert lines[0].group(3) == "float64[3, 2]"   # x @ w
    traced = results(net, w)
    for a, b in zip(plain, traced):
        np.testing.assert_array_equal(a, b)


def test_debug_runs_the_same_step_code_as_a_normal_run():
    net, _ = small_net()
    plain = net.tape.python_source()
    traced = net.tape.python_source(debug=True)
    assert "trace(" not in plain and traced.count("trace(s") == (len(net.tape.forward)
                                                                  + len(net.tape.backward))
    without_trace = [line for line in traced.splitlines() if "trace(s" not in line]
    strip = [re.sub(r", s\d+|, trace|trace, ", "", line) for line in without_trace]
    assert strip == plain.splitlines()


def test_switching_debug_on_and_off_regenerates_the_passes(monkeypatch, capsys):
    net, _ = small_net()
    net.eval({"x": X})
    monkeypatch.setattr(an.net, "DEBUG", True)
    net.eval({"x": X}, mode="forward")
    assert len(trace_lines(capsys.readouterr().err)) == len(net.tape.forward)
    monkeypatch.setattr(an.net, "DEBUG", False)
    net.eval({"x": X})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("debug", [False, True])
def test_a_forward_error_names_the_layer_in_both_modes(monkeypatch, capsys, debug):
    monkeypatch.setattr(an.net, "DEBUG", debug)
    net, _ = small_net()
    with pytest.raises(ValueError, match=r"matmul layer '.*' \(created at .*test_codegen.py:\d+\) "
                                         r"with inputs \(float64\[3, 5\], float64\[2, 2\]\)"):
        net.eval({"x": np.ones((3, 5))})


failing = Op("test_codegen.failing", lambda x: 2 * x,
             backward=lambda x, dzdy: (_ for _ in ()).throw(ArithmeticError("no derivative here")))


@pytest.mark.parametrize("debug", [False, True])
def test_a_backward_error_names_the_layer_in_both_modes(monkeypatch, capsys, debug):
    monkeypatch.setattr(an.net, "DEBUG", debug)
    x = an.Input("x")
    broken = failing(x)
    net = an.Net(broken.sum())
    with pytest.raises(ArithmeticError, match=r"backward of test_codegen.failing layer 'broken' "
                                              r"\(created at .*test_codegen.py:\d+\) with inputs "
                                              r"\(float64\[3, 2\]\): no derivative here"):
        net.eval({"x": X})
    if debug:  # every step up to the failing one ran and was traced
        traced = [m.group(2) for m in trace_lines(capsys.readouterr().err)]
        steps = list(net.tape.forward) + list(net.tape.backward)
        assert traced == [repr(step) for step in steps[:-1]]


@pytest.mark.parametrize("debug", [False, True])
def test_values_computed_before_a_failing_step_stay_readable(monkeypatch, capsys, debug):
    monkeypatch.setattr(an.net, "DEBUG", debug)
    x = an.Input("x")
    hidden = np.tanh(x)
    net = an.Net((hidden @ np.ones((2, 2))).sum())
    with pytest.raises(ValueError, match="matmul layer"):
        net.eval({"x": np.ones((3, 5))})
    np.testing.assert_array_equal(net.value("hidden"), np.tanh(np.ones((3, 5))))


def test_the_code_of_a_wide_sum_grows_linearly_with_its_terms():
    # one derivative call for all the terms of a weighted sum: a call per term, each passing
    # every term, made the source (and its compile time) quadratic
    def source_length(n):
        x = an.Input("x")
        terms = [np.exp(x * (k / n)) for k in range(n)]
        y = terms[0]
        for t in terms[1:]:
            y = y + t
        net = an.Net(y.sum(), _name_from=False)
        return len(net.tape.python_source())

    assert source_length(800) < 2.5 * source_length(400)


def test_a_step_edited_to_a_bad_slot_is_named():
    x = an.Input("x")
    net = an.Net(np.exp(x).sum(), _name_from=False)
    net.tape.forward[0].inputs = (-1,)
    with pytest.raises(ValueError, match=r"tape step '\w+' \(exp\): slots must be non-negative "
                                         r"ints, got inputs \(-1,\)"):
        net.eval({"x": np.ones(2)})


def long_chain(length):
    x = an.Input("x")
    y = x
    for k in range(length):
        y = np.tanh(y) if k % 2 else y * 1.5
    return x, y.sum()


@pytest.mark.parametrize("conserve_memory", [False, True])
def test_a_long_tape_runs_as_several_functions_with_the_same_results(monkeypatch,
                                                                     conserve_memory):
    # CPython compiles one huge function in superlinear time: a long pass is split, and the
    # slots cross from one function to the next through the slot lists
    x, objective = long_chain(60)
    whole = an.Net(objective, conserve_memory=conserve_memory, _name_from=False)
    whole.eval({x: X})
    monkeypatch.setattr(an.codegen, "STEPS_PER_FUNCTION", 7)
    split = an.Net(objective, conserve_memory=conserve_memory, _name_from=False)
    split.eval({x: X})
    passes = split._generated_passes()
    assert len(passes["normal"].parts) == -(-len(split.tape.forward) // 7) > 5
    assert len(passes["backward"].parts) == -(-len(split.tape.backward) // 7) > 5
    assert split.value(split.outputs[0]) == whole.value(whole.outputs[0])
    np.testing.assert_array_equal(split.der(x), whole.der(x))
    kept = [v is not None for v in split._values]
    assert kept == [v is not None for v in whole._values]
    if conserve_memory:  # what conserve_memory frees is freed across the functions too
        assert sum(kept) < len(kept) // 2


def test_an_error_in_a_later_function_names_its_layer_and_keeps_earlier_values(monkeypatch):
    monkeypatch.setattr(an.codegen, "STEPS_PER_FUNCTION", 4)
    x = an.Input("x")
    y = x
    for _ in range(10):
        y = np.tanh(y)
    before = y
    net = an.Net((y @ np.ones((2, 2))).sum(), _name_from=False)
    assert len(net._generated_passes()["normal"].parts) == 3
    with pytest.raises(ValueError, match=r"matmul layer"):
        net.eval({x: np.ones((3, 5))})
    expected = np.ones((3, 5))
    for _ in range(10):
        expected = np.tanh(expected)
    np.testing.assert_array_equal(net.value(before), expected)
    assert net.tape.python_source().count("def forward(values):") == 3


@pytest.mark.parametrize("build", [
    lambda terms: sum(terms[1:], terms[0]),                       # a weighted sum
    lambda terms: an.nn.concat(terms, axis=1),
    lambda terms: np.concatenate(terms, axis=0),
    lambda terms: np.stack(terms, axis=0),
])
def test_the_derivative_of_a_wide_op_is_one_call(monkeypatch, build):
    # a call of the op's rule per input, each passed all the inputs, took time quadratic in
    # their number (a sum of 100,000 terms did not finish)
    x = an.Input("x")
    terms = [x * (k + 1.0) for k in range(50)]
    net = an.Net(build(terms).sum(), _name_from=False)
    (wide,) = [s for s in net.tape.forward if len(s.inputs) == 50]
    calls = []
    for rule in ("backward_fn", "vjp"):  # whichever the op has
        original = getattr(wide.op, rule)
        if original is not None:
            monkeypatch.setattr(wide.op, rule, lambda *a, _f=original, **o: calls.append(1)
                                or _f(*a, **o))
    net = an.Net(build(terms).sum(), _name_from=False)
    net.eval({x: X})
    assert calls == [1]
    np.testing.assert_allclose(net.der(x), np.full(X.shape, sum(range(1, 51))))


def test_a_forward_part_loads_each_slot_it_reads_before_writing_it(monkeypatch):
    # v0 is read, then written over: the generated code must load it from the slot list
    # first (it loaded only the slots no step wrote: UnboundLocalError), in every part
    from autonn import codegen, math_ops
    from autonn.tape import ForwardStep
    steps = [ForwardStep("twice", math_ops.multiply, [0, 1], [2]),
             ForwardStep("negate", math_ops.negative, [0], [0]),
             ForwardStep("sum", math_ops.add, [0, 2], [3])]
    for per_function in (256, 1):
        monkeypatch.setattr(codegen, "STEPS_PER_FUNCTION", per_function)
        for test in (False, True):
            values = [np.array([1.0, 2.0]), 2.0, None, None]
            codegen.forward_pass(steps, test=test).function(values)
            np.testing.assert_allclose(values[0], [-1.0, -2.0])
            np.testing.assert_allclose(values[3], [1.0, 2.0])
