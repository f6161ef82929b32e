"""The tape: every edit of a net's own tape reaches its next eval, and only its own edits make
it regenerate the Python it runs (each tape counts its edits)."""

import gc
import weakref

import numpy as np
import pytest

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


# ---------------------------------------------------------------------- editing, every mode
MODES_CHECKED = ("normal", "test", "forward")


def assert_net_computes(net, reference, inputs):
    """``net`` (edited) gives the values of ``reference`` (compiled from the graph the edit
    stands for) in every forward mode, and the same derivatives, with a backward-only pass
    too."""
    reference.eval(inputs)
    expected_value = reference.value(reference.outputs[0])
    expected_ders = {name: reference.der(name) for name in reference.inputs}
    for mode in MODES_CHECKED:
        net.eval(inputs, mode=mode)
        np.testing.assert_allclose(net.value(net.tape.names[net.tape.outputs[0]]),
                                   expected_value, rtol=1e-12)
    net.eval(inputs, mode="forward")
    net.eval({}, mode="backward")
    for name, der in expected_ders.items():
        np.testing.assert_allclose(net.der(name), der, rtol=1e-12)
    net.eval(inputs)
    for name, der in expected_ders.items():
        np.testing.assert_allclose(net.der(name), der, rtol=1e-12)


def test_a_step_inserted_in_the_list_may_write_over_an_input_slot():
    # the generated code read the input only when no step wrote its slot (UnboundLocalError)
    net = scaled_net()
    x_slot = net.tape.names.index("x")
    net.tape.forward.insert(0, negate_in_place(x_slot))
    for mode in MODES_CHECKED:
        net.eval({"x": X}, mode=mode)
        np.testing.assert_allclose(net.value(net.outputs[0]), np.exp(-2 * X).sum())


def test_a_step_inserted_in_the_list_may_write_a_new_slot():
    # the slot lists were sized at compile time (IndexError)
    net = scaled_net()
    last = net.tape.forward[-1].outputs[0]
    new = len(net.tape.names)
    net.tape.forward.append(ForwardStep("negated", math_ops.negative, [last], [new]))
    for mode in MODES_CHECKED:
        net.eval({"x": X}, mode=mode)
        np.testing.assert_allclose(net.value(f"v{new}"), -np.exp(2 * X).sum())


def test_assigning_a_step_function_changes_every_mode():
    net = scaled_net()
    step = step_named(net.tape.forward, "exp")
    step.function = np.sin
    assert step.function_test is np.sin
    for mode in MODES_CHECKED:
        net.eval({"x": X}, mode=mode)
        np.testing.assert_allclose(net.value(net.outputs[0]), np.sin(2 * X).sum())
    # a distinct test-mode function is still possible, assigned after
    step.function_test = np.cos
    net.eval({"x": X}, mode="test")
    np.testing.assert_allclose(net.value(net.outputs[0]), np.cos(2 * X).sum())
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value(net.outputs[0]), np.sin(2 * X).sum())


def test_a_copy_of_a_step_keeps_its_test_mode_function():
    import copy
    net = scaled_net()
    step = step_named(net.tape.forward, "exp")
    step.function = np.sin
    step.function_test = np.cos
    clone = copy.copy(step)
    assert (clone.function, clone.function_test) == (np.sin, np.cos)


@pytest.mark.parametrize("conserve_memory", [False, True])
def test_tape_insert_over_an_input_keeps_values_and_derivatives_right(conserve_memory):
    x = an.Input("x")
    net = an.Net(np.exp(scaled(x, k=2.0)).sum(), conserve_memory=conserve_memory)
    step = net.tape.insert(0, negate_in_place(net.tape.names.index("x")))
    assert step.outputs != (net.tape.names.index("x"),)   # given a slot of its own
    u = an.Input("x")
    reference = an.Net(np.exp(scaled(-u, k=2.0)).sum())
    assert_net_computes(net, reference, {"x": X})
    an.gradcheck(net, {"x": X})


@pytest.mark.parametrize("conserve_memory", [False, True])
def test_tape_insert_of_a_step_with_a_new_slot_and_replace_rewire_the_readers(conserve_memory):
    x = an.Input("x")
    net = an.Net(np.exp(scaled(x, k=2.0)).sum(), conserve_memory=conserve_memory)
    exp_position = net.tape.index("exp1")
    scaled_slot = net.tape.forward[exp_position - 1].outputs[0]
    # a new step (writing a new slot) between scaled and exp, which then reads it
    sine = ForwardStep("sine", math_ops.sin, [scaled_slot], [net.tape.new_slot("sine")])
    net.tape.insert(exp_position, sine)
    exp_step = net.tape.forward[exp_position + 1]
    net.tape.replace(exp_step, ForwardStep("exp1", math_ops.exp, sine.outputs,
                                           exp_step.outputs, source="edit"))
    u = an.Input("x")
    reference = an.Net(np.exp(np.sin(scaled(u, k=2.0))).sum())
    assert_net_computes(net, reference, {"x": X})
    if not conserve_memory:
        np.testing.assert_allclose(net.value("sine"), np.sin(2 * X))
    # replace the exp by a tanh writing another slot: the sum reads that one
    net.tape.replace("exp1", ForwardStep("tanh", math_ops.tanh, sine.outputs,
                                         [net.tape.new_slot("tanh")]))
    reference = an.Net(np.tanh(np.sin(scaled(an.Input("x"), k=2.0))).sum())
    assert_net_computes(net, reference, {"x": X})
    an.gradcheck(net, {"x": X})


@pytest.mark.parametrize("conserve_memory", [False, True])
def test_tape_delete_rewires_the_readers_or_names_them(conserve_memory):
    x = an.Input("x")
    net = an.Net(np.exp(-scaled(x, k=2.0)).sum(), conserve_memory=conserve_memory,
                 optimize=False)
    negative = step_named(net.tape.forward, "negative")
    with pytest.raises(ValueError, match=r"tape.delete: \['exp1'\] read the output of step"):
        net.tape.delete(negative)
    scaled_slot = negative.inputs[0]
    removed = net.tape.delete("negative1", rewire=scaled_slot)
    assert removed is negative
    assert all(step.op is not math_ops.negative for step in net.tape.forward)
    assert all(step.op is not math_ops.negative for step in net.tape.backward)
    reference = an.Net(np.exp(scaled(an.Input("x"), k=2.0)).sum())
    assert_net_computes(net, reference, {"x": X})


def test_tape_editing_keeps_the_backward_steps_of_unchanged_steps_with_their_edits():
    net = scaled_net()
    exp_backward = step_named(net.tape.backward, "exp")
    (_, targets), = exp_backward.calls
    exp_backward.calls = ((lambda dzdy, y, x: -dzdy * y, targets),)
    net.tape.insert(0, negate_in_place(net.tape.names.index("x")))
    assert step_named(net.tape.backward, "exp") is exp_backward
    net.eval({"x": X})
    np.testing.assert_allclose(net.der("x"), 2 * np.exp(-2 * X))   # -(-1) * 2 exp(-2x)


def test_tape_editing_refuses_what_would_not_run():
    net = scaled_net()
    unwritten = net.tape.forward[-1].outputs[0]
    with pytest.raises(ValueError, match=r"tape.insert: step 'negate' \(negative\) reads "
                                         r"slots \[\d+\], which hold no value before"):
        net.tape.insert(0, negate_in_place(unwritten))
    with pytest.raises(ValueError, match="tape.insert: step 'negate' writes slot"):
        net.tape.insert(0, ForwardStep("negate", math_ops.negative, [0], [unwritten]))
    with pytest.raises(TypeError, match="tape: expected a ForwardStep"):
        net.tape.insert(0, "exp")
    with pytest.raises(ValueError, match="tape: no forward step is named 'nope'"):
        net.tape.delete("nope")
    with pytest.raises(IndexError, match="tape: step 7 is out of range"):
        net.tape.replace(7, negate_in_place(0))
    with pytest.raises(ValueError, match="tape.replace: step 'pair' has 2 outputs"):
        net.tape.replace(0, ForwardStep("pair", math_ops.negative, [0], [20, 21]))
    net.eval({"x": X})   # nothing was changed by the refused edits
    np.testing.assert_allclose(net.value(net.outputs[0]), np.exp(2 * X).sum())


def test_an_edited_tape_reads_back_as_a_graph():
    net = scaled_net()
    net.tape.insert(0, negate_in_place(net.tape.names.index("x")))
    outputs = an.Layer.from_compiled_net(net)
    again = an.Net(*outputs)
    assert [s.op.name for s in again.tape.forward] == [s.op.name for s in net.tape.forward]
    again.eval({"x": X})
    np.testing.assert_allclose(again.value(again.outputs[0]), np.exp(-2 * X).sum())
    np.testing.assert_allclose(again.der("x"), -2 * np.exp(-2 * X))


def test_assigning_a_step_op_runs_that_op_forward_and_backward_in_every_mode():
    net = scaled_net()
    step_named(net.tape.forward, "exp").op = math_ops.sin
    step_named(net.tape.backward, "exp").op = math_ops.sin
    for mode in MODES_CHECKED:
        net.eval({"x": X}, mode=mode)
        np.testing.assert_allclose(net.value(net.outputs[0]), np.sin(2 * X).sum())
    net.eval({"x": X})
    np.testing.assert_allclose(net.der("x"), 2 * np.cos(2 * X))


def test_a_step_inserted_after_the_output_becomes_the_nets_output():
    x = an.Input("x")
    objective = np.exp(scaled(x, k=2.0)).sum()
    net = an.Net(objective)
    net.tape.insert(len(net.tape.forward), negate_in_place(net.tape.outputs[0]))
    net.eval({"x": X})
    np.testing.assert_allclose(net.value(objective), -np.exp(2 * X).sum())
    np.testing.assert_allclose(net.der("x"), -2 * np.exp(2 * X))
    report = an.gradcheck(net, {"x": X})
    assert report.passed
