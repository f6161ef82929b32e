"""The tape: every edit of a net's own tape reaches its next eval, and only its own edits make
it regenerate the Python it runs (each tape counts its edits)."""

import gc
import weakref

import numpy as np

import autonn as an
from autonn import math_ops
from autonn.ops import Op
from autonn.tape import BackwardStep, ForwardStep

scaled = Op("test_tape.scaled", lambda x, *, k=1.0: x * k,
            vjps=(lambda dzdy, y, x, *, k=1.0: dzdy * k,))
X = np.array([0.5, -1.0, 2.0])


def scaled_net():
    x = an.Input("x")
    return an.Net(np.exp(scaled(x, k=2.0)).sum())


def generated(net):
    """The generated passes a net runs, as objects (identity says whether it regenerated)."""
    return dict(net._generated)


def step_named(steps, op_name):
    return next(step for step in steps if step.op.name == op_name)


def test_assigning_a_step_option_changes_the_next_eval():
    net = scaled_net()
    net.eval({"x": X})
    forward = step_named(net.tape.forward, "test_tape.scaled")
    backward = step_named(net.tape.backward, "test_tape.scaled")
    forward.options = {"k": 3.0}
    backward.options = {"k": 3.0}
    net.eval({"x": X})
    np.testing.assert_allclose(net.value(net.outputs[0]), np.exp(3 * X).sum())
    np.testing.assert_allclose(net.der("x"), 3 * np.exp(3 * X))


def test_swapping_a_forward_step_function_changes_the_next_eval():
    net = scaled_net()
    net.eval({"x": X})
    step_named(net.tape.forward, "exp").function = np.sin
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), np.sin(2 * X).sum())


def test_swapping_a_backward_step_function_changes_the_next_eval():
    net = scaled_net()
    net.eval({"x": X})
    step = step_named(net.tape.backward, "exp")
    (_, targets), = step.calls
    step.calls = ((lambda dzdy, y, x: -dzdy * y, targets),)
    net.eval({"x": X})
    np.testing.assert_allclose(net.der("x"), -2 * np.exp(2 * X))


def negate_in_place(slot):
    """A step that negates a slot's value where it is."""
    return ForwardStep("negate", math_ops.negative, [slot], [slot], {}, "test_tape")


def test_inserting_and_removing_steps_changes_the_next_eval():
    net = scaled_net()
    net.eval({"x": X}, mode="forward")
    exp_step = step_named(net.tape.forward, "exp")
    position = list(net.tape.forward).index(exp_step)
    negate = negate_in_place(exp_step.outputs[0])
    net.tape.forward.insert(position + 1, negate)
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), -np.exp(2 * X).sum())
    net.tape.forward.remove(negate)
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), np.exp(2 * X).sum())
    net.tape.forward.append(negate_in_place(net.tape.forward[-1].outputs[0]))
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), -np.exp(2 * X).sum())
    del net.tape.forward[-1]
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), np.exp(2 * X).sum())


def test_replacing_the_forward_list_changes_the_next_eval():
    net = scaled_net()
    net.eval({"x": X}, mode="forward")
    steps = list(net.tape.forward)
    net.tape.forward = steps + [negate_in_place(steps[-1].outputs[0])]
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), -np.exp(2 * X).sum())
    steps[-1].function = lambda v, **options: 10.0   # a step of the new list is still watched
    net.eval({"x": X}, mode="forward")
    assert net.value(net.outputs[0]) == -10.0


def test_compiling_or_editing_another_net_does_not_regenerate_this_one():
    a = scaled_net()
    a.eval({"x": X})
    before = generated(a)
    edits = a.tape.edits
    b = scaled_net()                                   # compiling another net
    b.eval({"x": X})
    step_named(b.tape.forward, "exp").function = np.sin      # editing its steps
    step_named(b.tape.forward, "test_tape.scaled").options = {"k": 5.0}
    b.tape.backward[0].free_ders = ()
    b.tape.forward.append(negate_in_place(b.tape.forward[-1].outputs[0]))
    b.tape.forward = list(b.tape.forward)              # replacing its list
    b.eval({"x": X}, mode="forward")
    a.eval({"x": X})
    after = generated(a)
    assert all(after[mode] is before[mode] for mode in before)
    assert a.tape.edits == edits
    np.testing.assert_allclose(a.value(a.outputs[0]), np.exp(2 * X).sum())


def test_a_step_shared_by_two_tapes_tells_both_when_edited():
    a, b = scaled_net(), scaled_net()
    a.eval({"x": X}, mode="forward")
    b.eval({"x": X}, mode="forward")
    shared = negate_in_place(a.tape.forward[-1].outputs[0])
    a.tape.forward.append(shared)
    b.tape.forward.append(shared)
    a_edits, b_edits = a.tape.edits, b.tape.edits
    shared.function = lambda v: 2 * v
    assert a.tape.edits > a_edits and b.tape.edits > b_edits
    a.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(a.value(a.outputs[0]), 2 * np.exp(2 * X).sum())


def test_edits_count_changes_of_the_tape_its_lists_and_its_steps():
    net = scaled_net()
    count = net.tape.edits
    net.tape.forward[0].free = ()
    assert net.tape.edits == count + 1
    net.tape.backward.reverse()
    assert net.tape.edits == count + 2
    net.tape.constants = list(net.tape.constants)
    assert net.tape.edits == count + 3


def test_backward_steps_hold_the_ops_derivative_functions_and_their_targets():
    x, w = an.Input("x"), an.Param(np.ones(3), name="w")
    net = an.Net((x * w).sum())
    step = step_named(net.tape.backward, "multiply")
    assert isinstance(step, BackwardStep)
    slots = net._compiled.slot_of
    assert step.targets == ((0, slots[id(x)]), (1, slots[id(w)]))
    # per-input rules are called directly, one call per rule
    assert [function for function, _ in step.calls] == list(math_ops.multiply.vjps)


def test_a_tape_is_freed_with_its_net():
    net = scaled_net()
    net.eval({"x": X})
    tape = weakref.ref(net.tape)
    del net
    gc.collect()
    assert tape() is None
