"""Net: compilation, evaluation modes, access by name or Layer, the tape, errors."""

import re

import numpy as np
import pytest

import autonn as an
from autonn.ops import Op


def small_net(**options):
    x = an.Input("x")
    w = an.Param(np.array([[1.0, -2.0], [0.5, 3.0]]), name="w")
    hidden = np.tanh(x @ w)
    hidden.name = "hidden"
    objective = (hidden * hidden).sum()
    objective.name = "objective"
    return an.Net(objective, **options), x, w


X = np.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]])


def expected_derivatives(x, w):
    h = np.tanh(x @ w)
    dh = 2 * h * (1 - h ** 2)
    return dh @ w.T, x.T @ dh


def test_eval_normal_mode_gives_values_and_derivatives_by_name_and_layer():
    net, x, w = small_net()
    net.eval({"x": X})
    dx, dw = expected_derivatives(X, w.value)
    assert np.isclose(net.value("objective"), np.sum(np.tanh(X @ w.value) ** 2))
    np.testing.assert_allclose(net.der("x"), dx)
    np.testing.assert_allclose(net.der(x), dx)
    np.testing.assert_allclose(net.der("w"), dw)
    np.testing.assert_allclose(w.der, dw)
    np.testing.assert_allclose(net.params[0].der, dw)
    np.testing.assert_allclose(net.value("hidden"), np.tanh(X @ w.value))


def test_inputs_may_be_keyed_by_layer():
    net, x, w = small_net()
    net.eval({x: X})
    np.testing.assert_allclose(net.value("hidden"), np.tanh(X @ w.value))


def test_der_output_scales_the_derivatives():
    net, _, w = small_net()
    net.eval({"x": X}, der_output=3.0)
    np.testing.assert_allclose(net.der("w"), 3 * expected_derivatives(X, w.value)[1])


def test_forward_then_backward_equals_normal():
    net, _, w = small_net()
    net.eval({"x": X}, mode="forward")
    assert net.der("x") is None or not np.any(net.der("x"))
    net.eval({}, mode="backward", der_output=1.0)
    np.testing.assert_allclose(net.der("w"), expected_derivatives(X, w.value)[1])


def test_accumulate_param_ders_adds_sub_batches():
    net, _, w = small_net()
    net.eval({"x": X[:2]})
    net.eval({"x": X[2:]}, accumulate_param_ders=True)
    full, _, w_full = small_net()
    full.eval({"x": X})
    np.testing.assert_allclose(w.der, w_full.der)


def test_test_mode_uses_the_ops_test_forward_and_computes_no_derivatives():
    noisy = Op("noisy_for_test", lambda x: x + 100.0, vjps=(lambda g, y, x: g,),
               forward_test=lambda x: x)
    x = an.Input("x")
    net = an.Net(noisy(x).sum())
    net.eval({"x": np.ones(3)}, mode="test")
    assert net.value(net.outputs[0]) == 3.0
    net.eval({"x": np.ones(3)})
    assert net.value(net.outputs[0]) == 303.0


def test_set_value_and_set_der():
    net, x, w = small_net()
    net.set_value("w", np.eye(2))
    np.testing.assert_array_equal(w.value, np.eye(2))
    net.eval({"x": X}, mode="forward")
    np.testing.assert_allclose(net.value("hidden"), np.tanh(X))
    net.set_der("hidden", np.ones((3, 2)))
    net.eval({}, mode="backward", der_output=None)
    h = np.tanh(X)
    np.testing.assert_allclose(net.der("x"), (1 - h ** 2) @ np.eye(2).T)
    np.testing.assert_allclose(net.der("w"), X.T @ (1 - h ** 2))


def test_params_list_carries_the_solver_settings():
    x = an.Input("x")
    p = an.Param(np.ones(3), learning_rate=2.0, weight_decay=0.0, train_method="none")
    net = an.Net((x * p).sum())
    (param,) = net.params
    assert (param.learning_rate, param.weight_decay, param.train_method) == (2.0, 0.0, "none")
    assert param.name == "p"


def test_unnamed_layers_are_named_after_caller_variables_then_sequentially():
    images = an.Input()
    scaled = images * 2.0
    net = an.Net(np.exp(scaled).sum())
    assert "images" in net.inputs
    assert images.name == "images" and scaled.name == "scaled"
    assert net.outputs[0].name == "sum1"


def test_optimizer_merges_sums_and_scalings_into_one_weighted_sum():
    a, b, c = an.Input("a"), an.Input("b"), an.Input("c")
    y = (2 * a - b / 4 + c) * 3
    net = an.Net(y.sum())
    assert [step.op.name for step in net.tape.forward] == ["weighted_sum", "sum"]
    assert net.tape.forward[0].options["weights"] == (6.0, -0.75, 3.0)
    plain = an.Net(y.sum(), optimize=False)
    assert len(plain.tape.forward) == 6
    feed = {"a": np.ones(2), "b": np.arange(2.0), "c": -np.ones(2)}
    net.eval(feed)
    plain.eval(feed)
    assert np.isclose(net.value(net.outputs[0]), plain.value(plain.outputs[0]))
    np.testing.assert_allclose(net.der("b"), plain.der("b"))


def test_optimizer_keeps_named_and_shared_intermediates():
    a, b = an.Input("a"), an.Input("b")
    s = a + b          # named by the caller's variable: stays visible
    net = an.Net((s * 2).sum())
    net.eval({"a": np.ones(2), "b": np.ones(2)})
    np.testing.assert_array_equal(net.value("s"), [2, 2])


def test_value_of_a_folded_layer_explains_the_optimizer():
    a = an.Input("a")
    net = an.Net(((a + 1) * 2).sum())
    net.eval({"a": np.ones(2)})
    folded = net.outputs[0].inputs[0].inputs[0]
    with pytest.raises(KeyError, match="merged"):
        net.value(folded)


def test_optimizer_keeps_integer_arithmetic_integer():
    labels = an.Input("labels")
    net = an.Net(((labels + 1) * 2).sum())
    net.eval({"labels": np.arange(3)}, mode="forward")
    assert net.tape.forward[0].op.name == "weighted_sum"
    assert net.value(net.outputs[0]) == 12 and net.value(net.outputs[0]).dtype.kind == "i"


def test_backward_skips_branches_that_need_no_derivative():
    x = an.Input("x")
    constant_branch = np.exp(np.ones(3)) * 2
    net = an.Net((x * constant_branch).sum())
    assert all(step.op.name != "exp" for step in net.tape.backward)


def test_tape_is_readable_and_editable():
    x = an.Input("x")
    y = np.exp(x).sum()
    net = an.Net(y)
    text = repr(net.tape)
    assert "exp(v0)" in text and "sum(" in text and "backward:" in text
    net.tape.forward[0].function = np.sin   # edit a step: exp -> sin
    net.eval({"x": np.zeros(2)}, mode="forward")
    assert net.value(net.outputs[0]) == 0.0


def test_conserve_memory_frees_intermediates_and_keeps_derivatives_exact():
    def build(conserve):
        x = an.Input("x")
        h = x
        for _ in range(5):
            h = np.tanh(h * 1.5)
        return an.Net(h.sum(), conserve_memory=conserve)
    lean, full = build(True), build(False)
    value = np.linspace(-1, 1, 7)
    lean.eval({"x": value})
    full.eval({"x": value})
    np.testing.assert_allclose(lean.der("x"), full.der("x"))
    alive = sum(v is not None for v in lean._values)
    assert alive < sum(v is not None for v in full._values)
    with pytest.raises(ValueError, match="conserve_memory"):
        lean.value(lean.tape.names[lean.tape.forward[1].outputs[0]])


def test_summary_lists_every_variable_with_shapes_and_memory():
    net, _, _ = small_net()
    net.eval({"x": X})
    text = str(net.summary())
    assert re.search(r"x\s+Input\s+3×2", text)
    assert re.search(r"hidden\s+tanh\s+\S+\s+3×2", text)
    assert "total memory" in text
    header, table = str(net).split("\n", 1)   # print(net): what predict and eval do, the table
    assert table == text and "net.predict(inputs)" in header and "net.eval(inputs)" in header
    summary = net.summary()
    assert isinstance(summary, str) and "hidden" in summary and repr(summary) == text
    assert [row["name"] for row in summary.rows][:1] == ["x"]
    assert "<table>" in summary._repr_html_()


def test_summary_shows_receptive_fields_on_the_image_input():
    from autonn import nn
    images, labels = an.Input("images"), an.Input("labels")
    y = nn.conv(images, size=(5, 5, 1, 4))
    pooled = nn.pool(y, 2, stride=2)
    net = an.Net(nn.loss(pooled, labels))
    text = str(net.summary(input_sizes={"images": (2, 1, 12, 12), "labels": (2,)}))
    assert re.search(r"pooled\s+pool\s+y\s+2×4×4×4\s+.*\s6×6 s2 o2.5", text)


def test_summary_infers_shapes_from_input_sizes_before_evaluation():
    net, _, _ = small_net()
    text = str(net.summary(input_sizes={"x": (5, 2)}))
    assert re.search(r"hidden\s+tanh\s+\S+\s+5×2", text)


def test_missing_input_is_a_clear_error():
    net, _, _ = small_net()
    with pytest.raises(ValueError, match=r"no value for input 'x' \(created at .*test_net.py"):
        net.eval({})


def test_unknown_input_is_a_clear_error():
    net, _, _ = small_net()
    with pytest.raises(ValueError, match=r"unknown input 'y'; inputs are \['x'\]"):
        net.eval({"x": X, "y": X})


def test_shape_mismatch_names_the_layer_its_source_and_the_shapes():
    net, _, _ = small_net()
    with pytest.raises(ValueError, match=r"matmul layer '.*' \(created at .*test_net.py:\d+\) "
                                         r"with inputs \(float64\[3, 5\], float64\[2, 2\]\)"):
        net.eval({"x": np.ones((3, 5))})


def test_unknown_option_is_refused_when_the_layer_is_built():
    x = an.Input("x")
    with pytest.raises(TypeError, match="sum.*unexpected keyword"):
        an.math_ops.sum(x, axes=1)


def test_unknown_mode_and_bad_der_output_are_refused():
    net, _, _ = small_net()
    with pytest.raises(ValueError, match="mode must be one of"):
        net.eval({"x": X}, mode="train")
    with pytest.raises(ValueError, match="der_output"):
        net.eval({"x": X}, der_output=np.ones(3))


def test_duplicate_names_are_refused():
    a, b = an.Input("same"), an.Input("same")
    with pytest.raises(ValueError, match="two variables are named 'same'"):
        an.Net((a + b).sum())


def test_layers_have_no_truth_value_and_are_not_iterable():
    x = an.Input("x")
    with pytest.raises(TypeError, match="no truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)


def test_moving_to_gpu_without_one_is_a_clear_error():
    if an.gpu_available():
        pytest.skip("a GPU is present")
    net, _, _ = small_net()
    with pytest.raises(RuntimeError, match="no GPU"):
        net.to("gpu")
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        net.to("tpu")


@pytest.mark.skipif(not an.gpu_available(), reason="needs a GPU")
def test_net_on_gpu_matches_cpu():
    import cupy
    net, _, w = small_net()
    net.eval({"x": X})
    cpu = w.der.copy()
    net.to("gpu")
    net.eval({"x": X})
    assert isinstance(w.der, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(w.der), cpu, rtol=1e-10)
    net.to("cpu")
    assert isinstance(w.value, np.ndarray)


def test_multi_output_ops_return_selectors():
    split = Op("split_for_test", lambda x: (x[:2], x[2:]), num_outputs=2,
               backward=lambda x, dzdy: np.concatenate(dzdy))
    x = an.Input("x")
    first, second = split(x)
    net = an.Net((first * 2).sum() + second.sum() * 0.0)
    net.eval({"x": np.arange(4.0)})
    np.testing.assert_array_equal(net.der("x"), [2, 2, 0, 0])
    np.testing.assert_array_equal(net.value(first), [0, 1])


def test_relu_short_circuit_releases_its_input_right_after_the_relu():
    from autonn import nn
    x = an.Input("x")
    w = an.Param(np.array([[1.0, -2.0], [0.5, 3.0]]), name="w")
    h = x @ w
    y = nn.relu(h)
    lean = an.Net((y * y).sum(), conserve_memory=True)
    relu_step = next(s for s in lean.tape.forward if s.op.name == "relu")
    assert lean._compiled.slot_of[id(h)] in relu_step.free  # the backward reads only y
    full = an.Net((y * y).sum())
    lean.eval({"x": X})
    full.eval({"x": X})
    np.testing.assert_allclose(lean.der("w"), full.der("w"))


def test_net_accepts_a_simplenn_layer_list_and_a_list_of_outputs():
    layers = [{"type": "conv", "weights": [np.ones((2, 1, 3, 3), np.float32),
                                           np.zeros(2, np.float32)], "stride": 1, "pad": 0},
              {"type": "relu"}]
    assert len(an.Net(layers).tape.forward) == 2
    a = an.Input("a")
    assert len(an.Net([a.sum(), a.max()]).outputs) == 2


# ------------------------------------------------------------------ sharing a net
def test_one_net_evaluated_from_several_threads_gives_each_its_own_right_results():
    import threading
    x = an.Input("x")
    w = an.Param(np.arange(12.0).reshape(4, 3))
    y = np.tanh(w @ x)
    net = an.Net((y * y).sum(), y)
    inputs = [np.random.default_rng(k).standard_normal(3) for k in range(4)]
    expected = []
    for value in inputs:
        with net.lock:
            net.eval({"x": value})
            expected.append((net.value(y).copy(), net.der("x").copy()))
    wrong = []

    def worker(k):
        for _ in range(200):
            with net.lock:  # evaluate and read as one step
                net.eval({"x": inputs[k]})
                value, der = net.value(y), net.der("x")
            if not (np.array_equal(value, expected[k][0]) and np.array_equal(der, expected[k][1])):
                wrong.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_eval_holds_the_nets_lock():
    x = an.Input("x")
    seen = []

    @an.op
    def probe(v):
        seen.append(net.lock._is_owned())
        return v

    @probe.backward
    def probe_backward(v, dzdy):
        return dzdy

    net = an.Net(probe(x).sum())
    net.eval({"x": np.ones(2)})
    assert seen == [True]


def test_a_deep_copy_of_a_net_evaluates_and_trains_apart_from_it():
    import copy
    x = an.Input("x")
    w = an.Param(np.ones((2, 3)))
    objective = (w @ x).sum()
    net = an.Net(objective)
    clone = copy.deepcopy(net)
    clone.eval({"x": np.full(3, 2.0)})
    net.eval({"x": np.ones(3)})
    assert clone.value(clone.outputs[0]) == 12.0 and net.value(objective) == 6.0
    assert clone.params[0] is not w and clone.params[0].value is not w.value
    np.testing.assert_array_equal(clone.der(clone.params[0]), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(w.der, np.ones((2, 3)))
    # its tape is its own: an edit there regenerates the copy only
    before = net.tape.edits
    clone.tape.forward[0].options = {}
    assert net.tape.edits == before and clone.tape.edits > 0


def test_a_cycle_made_by_editing_inputs_is_named():
    x = an.Input("x")
    a = np.exp(x)
    b = np.sin(a)
    b.name = "b"
    a.inputs = (b,)
    with pytest.raises(ValueError, match=r"cycle: 'b' \(created at .*test_net.py:\d+\) depends on "
                                         r"itself"):
        an.Net(b.sum())


def test_a_net_needs_an_output():
    with pytest.raises(TypeError, match="Net: give at least one output Layer"):
        an.Net()
    with pytest.raises(TypeError, match="Net: give at least one output Layer"):
        an.Net([])



def test_compiling_a_graph_twice_keeps_the_optimisations():
    # the first Net names every Layer; those names are automatic, so the second Net folds the
    # same chain into one weighted sum instead of taking them for user names
    x = an.Input("x")
    objective = (np.exp(x) * 2 + x * 3 - 1).sum()
    first = an.Net(objective)
    second = an.Net(objective)
    ops = [step.op.name for step in first.tape.forward]
    assert ops == ["exp", "weighted_sum", "sum"]
    assert [step.op.name for step in second.tape.forward] == ops
    value = np.array([0.5, -1.0])
    for net in (first, second):
        net.eval({"x": value})
        np.testing.assert_allclose(net.value(objective), (np.exp(value) * 2 + value * 3 - 1).sum())
        np.testing.assert_allclose(net.der("x"), np.exp(value) * 2 + 3)


def test_a_name_the_user_gives_after_a_compile_is_kept_by_the_next():
    x = an.Input("x")
    scaled = x * 3
    objective = (scaled + 1).sum()
    assert [s.op.name for s in an.Net(objective, _name_from=False).tape.forward] == [
        "weighted_sum", "sum"]
    scaled.name = "scaled"
    net = an.Net(objective, _name_from=False)
    assert [s.op.name for s in net.tape.forward] == ["multiply", "add", "sum"]
    net.eval({"x": np.ones(2)}, mode="forward")
    np.testing.assert_allclose(net.value("scaled"), [3.0, 3.0])


def test_from_compiled_net_gives_back_the_graph_with_the_nets_params_and_inputs():
    x = an.Input("x")
    w = an.Param(np.array([1.0, 2.0]), name="w", learning_rate=0.5)
    y, z = np.tanh(x * w), (x - 1) * 2
    objective = y.sum() + z.sum()
    net = an.Net(objective, y)
    outputs = an.Layer.from_compiled_net(net)
    assert len(outputs) == 2 and outputs[0] is not objective
    graph = outputs[0].graph()
    assert [layer for layer in graph if isinstance(layer, an.Param)] == [w]
    assert [layer for layer in graph if isinstance(layer, an.Input)] == [x]
    assert [layer.name for layer in graph if type(layer) is an.Layer] == [
        step.name for step in net.tape.forward]
    again = an.Net(*outputs)
    assert [repr(step) for step in again.tape.forward] == [repr(s) for s in net.tape.forward]
    assert [repr(step) for step in again.tape.backward] == [repr(s) for s in net.tape.backward]
    value = np.array([0.3, -0.7])
    net.eval({"x": value})
    again.eval({"x": value})
    for name in ("x", "w"):
        np.testing.assert_allclose(again.der(name), net.der(name))
    np.testing.assert_allclose(again.value(outputs[1]), np.tanh(value * w.value))


def test_from_compiled_net_refuses_a_step_whose_function_is_not_its_ops():
    x = an.Input("x")
    net = an.Net(np.exp(x).sum())
    net.tape.forward[0].function = np.sin
    with pytest.raises(ValueError, match=r"from_compiled_net: step 'exp1' \(exp\) runs a "
                                         r"function that is not its op's"):
        an.Layer.from_compiled_net(net)
    with pytest.raises(TypeError, match="from_compiled_net: expected a Net"):
        an.Layer.from_compiled_net(x)


def test_a_loaded_graph_compiles_again_with_the_same_optimisations(tmp_path):
    x = an.Input("x")
    kept = np.exp(x)
    kept.name = "kept"
    objective = (kept * 2 + x * 3 - 1).sum()
    net = an.Net(objective, _name_from=False)
    net.save(tmp_path / "net.npz")
    loaded = an.Net.load(tmp_path / "net.npz")
    again = an.Net(*loaded.outputs, _name_from=False)
    ops = [step.op.name for step in net.tape.forward]
    assert ops == ["exp", "weighted_sum", "sum"]
    assert [step.op.name for step in loaded.tape.forward] == ops
    assert [step.op.name for step in again.tape.forward] == ops
    assert "kept" in again.vars


def test_from_compiled_net_reads_back_an_op_with_several_outputs_as_selectors():
    from autonn.ops import Op
    pair = Op("test_net.pair", lambda x: (x * 2, x * 3),
              lambda x, dzdy: dzdy[0] * 2 + dzdy[1] * 3, num_outputs=2)
    x = an.Input("x")
    doubled, tripled = pair(x)
    net = an.Net((doubled * tripled).sum())
    objective, = an.Layer.from_compiled_net(net)
    selectors = objective.find(an.Selector)
    assert [s.name for s in selectors] == ["doubled", "tripled"]
    assert selectors[0].inputs[0] is selectors[1].inputs[0]
    again = an.Net(objective)
    assert [repr(s) for s in again.tape.forward] == [repr(s) for s in net.tape.forward]
    value = np.arange(3.0)
    net.eval({"x": value})
    again.eval({"x": value})
    np.testing.assert_allclose(again.der("x"), 12 * value)
    np.testing.assert_allclose(again.der("x"), net.der("x"))


def test_the_backward_pass_hands_over_each_params_derivative_once_when_it_is_final():
    """Net.on_param_ders (data-parallel training starts each all-reduce from it): every Param
    once, in the order the backward pass finishes them, with the derivative it ends with."""
    from autonn import models
    model = models.lenet(seed=0)
    net = an.Net(*model["outputs"])
    handed = []
    net.on_param_ders = lambda params, ders: handed.extend(
        (p.name, d.copy()) for p, d in zip(params, ders))
    rng = np.random.default_rng(0)
    net.eval({"images": rng.standard_normal((3, 1, 28, 28)).astype(np.float32),
              "labels": np.array([1, 2, 3])})
    names = [name for name, _ in handed]
    assert sorted(names) == sorted(p.name for p in net.params) and len(set(names)) == len(names)
    assert names[:2] == ["prediction_filters", "prediction_biases"]  # the last layer first
    assert names[-2:] == ["conv1_filters", "conv1_biases"]
    for name, der in handed:
        np.testing.assert_array_equal(der, net.der(name))
    net.on_param_ders = None  # without the hook, the generated code has no calls
    net.eval({"images": rng.standard_normal((3, 1, 28, 28)).astype(np.float32),
              "labels": np.array([1, 2, 3])})
    assert len(handed) == len(net.params)
