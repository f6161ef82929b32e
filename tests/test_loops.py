"""an.For and an.While: loops compiled once into inner tapes, checked against the same loops
unrolled by hand (float32 and float64, static and run-time counts), central differences
(float64), AutoNN's own nnwhile.m cases, and PyTorch where it is installed."""

import numpy as np
import pytest

import autonn as an

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def _rnn_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (an.Param(rng.standard_normal((3, 3)).astype(dtype) * 0.5, name="W"),
            an.Param(rng.standard_normal((3, 1)).astype(dtype), name="b"))


def _rnn_step(W, b, x0):
    """One iteration that reads the state, t, Params and an outside Input."""
    def step(h, c, t):
        h_next = np.tanh(W @ h + b * (t + 1) + x0)
        return h_next, c + h_next * h
    return step


def _feed(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return {"h0": rng.standard_normal((3, 2)).astype(dtype),
            "c0": rng.standard_normal((3, 2)).astype(dtype),
            "x0": rng.standard_normal((3, 2)).astype(dtype)}


def _compare(net_a, net_b, feed_a, feed_b, names, dtype):
    net_a.eval({k: v for k, v in feed_a.items() if k in net_a.inputs})
    net_b.eval({k: v for k, v in feed_b.items() if k in net_b.inputs})
    for out_a, out_b in zip(net_a.outputs, net_b.outputs):
        np.testing.assert_allclose(net_a.value(out_a), net_b.value(out_b), **_tol(dtype))
        assert net_a.value(out_a).dtype == dtype
    for name in names:
        if name not in net_b.vars:  # the unrolled loop of zero iterations does not read it
            np.testing.assert_array_equal(net_a.der(name), 0)
            continue
        np.testing.assert_allclose(net_a.der(name), net_b.der(name), **_tol(dtype))
        assert net_a.der(name).dtype == dtype


def _rnn_nets(dtype, count, run_time_count=False, **loop_options):
    W, b = _rnn_params(dtype)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    step = _rnn_step(W, b, x0)
    n = an.Input("n") if run_time_count else count
    h, c = an.For(step, h0, c0, n, **loop_options)
    loop = an.Net((h * c).sum())
    h, c = h0, c0
    for t in range(count):
        h, c = step(h, c, t)
    unrolled = an.Net((h * c).sum())
    return loop, unrolled


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conserve_memory", [False, True])
def test_for_gives_the_values_and_derivatives_of_the_loop_unrolled_by_hand(dtype,
                                                                             conserve_memory):
    loop, unrolled = _rnn_nets(dtype, 5)
    if conserve_memory:
        loop = an.Net(*loop.outputs, conserve_memory=True)
    feed = _feed(dtype)
    _compare(loop, unrolled, feed, feed, ["h0", "c0", "x0", "W", "b"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_run_time_count_gives_the_loop_unrolled_that_many_times(dtype):
    loop, _ = _rnn_nets(dtype, 0, run_time_count=True)
    feed = _feed(dtype)
    for count in (3, 1, 6, 0):
        _, unrolled = _rnn_nets(dtype, count)
        _compare(loop, unrolled, dict(feed, n=count), feed, ["h0", "c0", "x0", "W", "b"], dtype)
    _, unrolled = _rnn_nets(dtype, 2)
    _compare(loop, unrolled, dict(feed, n=np.array(2.0)), feed, ["h0", "x0", "W"], dtype)


def test_the_tape_of_a_for_net_does_not_grow_with_the_count():
    sizes = []
    for count in (1, 10, 1000):
        loop, _ = _rnn_nets(np.float64, 1)
        W, b = _rnn_params(np.float64)
        h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
        h, c = an.For(_rnn_step(W, b, x0), h0, c0, count)
        net = an.Net((h * c).sum())
        body = net.tape.forward[0].op.inner_tapes[0][1]
        sizes.append((len(net.tape.forward), len(net.tape.backward), len(net.tape.names),
                      len(body.forward), len(body.backward)))
    assert sizes[0] == sizes[1] == sizes[2]
    assert [step.op.name for step in net.tape.forward].count("for") == 1


def test_gradcheck_of_whole_loops_in_float64():
    W, b = _rnn_params(np.float64)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, 4)
    an.gradcheck(an.Net((h * c).sum() + h.sum()), _feed(np.float64))
    # concatenated outputs, one chosen
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, 3, concatenate=(1, None))
    an.gradcheck(an.Net(h, c), _feed(np.float64))
    # a run-time count
    n = an.Input("n")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, count=n, concatenate=0)
    an.gradcheck(an.Net((h ** 2).sum(), c), dict(_feed(np.float64), n=3))
    # While with a stop condition on the state and a count limit
    h = an.While(lambda h, t: np.tanh(W @ h + x0) * 1.5, h0, count=6,
                 stop=lambda h, t: (h * h).sum() > 4.1)
    feed = _feed(np.float64)
    del feed["c0"]
    net = an.Net(h)
    report = an.gradcheck(net, feed)
    assert report.passed
    assert net.value("while1_record").shape == (3,)  # it stopped: sums 3.6, 2.7, 3.0, 4.3


def test_t_is_the_zero_based_iteration_index():
    x0 = an.Input("x0")
    y = an.For(lambda x, t: x + t, x0, 4)
    net = an.Net(y)
    net.eval({"x0": np.float64(1.0)})
    assert net.value(y) == 1.0 + 0 + 1 + 2 + 3
    assert net.der(x0) == 1.0
    ts = an.For(lambda x, t: x * 0 + t, np.zeros(1), 5, concatenate=0)
    net = an.Net(ts)
    net.eval({})
    np.testing.assert_array_equal(net.value(ts), [0, 1, 2, 3, 4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conserve_memory", [False, True])
def test_autonn_nnwhile_cases(dtype, conserve_memory):
    """AutoNN's xtest/nnwhile.m (testFor), with its 1-based counter made 0-based: t + 1."""
    n = 4

    def check(output, expected, params):
        net = an.Net(output, conserve_memory=conserve_memory)
        net.eval({})
        np.testing.assert_allclose(net.value(output), expected, rtol=1e-6)
        an.gradcheck(net, {})
        for p in params:
            p.value = p.value.astype(dtype)
        net.eval({})
        assert net.value(output).dtype == dtype

    xi = an.Param(np.ones(1, dtype))
    check(an.For(lambda x, t: 2 * x, xi, n), [2.0 ** n], [xi])
    check(an.For(lambda x, t: x + (t + 1), xi, n), [1 + sum(range(1, n + 1))], [xi])
    factor = an.Param(np.array([3.0], dtype))
    check(an.For(lambda x, t: factor * x, xi, n), [3.0 ** n], [xi, factor])
    yi = an.Param(np.zeros(1, dtype))
    xf, yf = an.For(lambda x, y, t: (2 * x, y + 1), xi, yi, n)
    check(xf, [2.0 ** n], [xi, yi])
    check(yf, [n], [xi, yi])
    check(an.For(lambda x, t: 2 * x, xi, n, concatenate=0), 2.0 ** np.arange(1, n + 1), [xi])
    xf, yf = an.For(lambda x, y, t: (factor * x, y + (t + 1)), xi, yi, n, concatenate=0)
    check(xf, 3.0 ** np.arange(1, n + 1), [xi, yi, factor])
    check(yf, np.cumsum(np.arange(1, n + 1)), [xi, yi, factor])


def test_concatenate_joins_every_iteration_along_the_axis_as_numpy_concatenate():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 1, 3))
    w = an.Param(rng.standard_normal((2, 1, 3)))
    xs, ys = an.For(lambda x, y, t: (x * w, y + x), x0, x0, 3, concatenate=[1, None])
    net = an.Net(xs, ys)
    net.eval({})
    parts, x, y = [], x0, x0
    for _ in range(3):
        x, y = x * w.value, y + x
        parts.append(x)
    np.testing.assert_allclose(net.value(xs), np.concatenate(parts, axis=1))
    np.testing.assert_allclose(net.value(ys), y)
    assert net.value(xs).shape == (2, 3, 3)
    an.gradcheck(net, {})
    # no iteration: empty along the axis, shaped like the initial value
    n = an.Input("n")
    xs = an.For(lambda x, t: x * w, x0, n, concatenate=-1)
    net = an.Net(xs.sum())
    net.eval({"n": 0})
    assert net.value(xs).shape == (2, 1, 0)
    np.testing.assert_array_equal(net.der(w), np.zeros((2, 1, 3)))


def test_while_stops_at_the_first_state_whose_condition_holds():
    x0 = an.Input("x0")
    w = an.Param(np.array(2.0))
    y = an.While(lambda x, t: x * w, x0, stop=lambda x: x > 100)
    net = an.Net(y)
    net.eval({"x0": np.array(3.0)})
    assert net.value(y) == 3.0 * 2 ** 6  # 192, the first above 100
    np.testing.assert_allclose(net.der(x0), 2.0 ** 6)
    np.testing.assert_allclose(net.der(w), 6 * 3.0 * 2.0 ** 5)  # the count held fixed
    net.eval({"x0": np.array(500.0)})  # holds at once: no iteration
    assert net.value(y) == 500.0 and net.der(x0) == 1.0 and net.der(w) == 0.0
    # the count bounds it; t reaches the stop condition too
    y = an.While(lambda x, t: x * w, x0, count=3, stop=lambda x, t: x > 100)
    net = an.Net(y)
    net.eval({"x0": np.array(3.0)})
    assert net.value(y) == 24.0
    y, steps = an.While(lambda x, k, t: (x * w, k + 1), x0, np.array(0.0),
                        stop=lambda x, k, t: t >= 2)
    net = an.Net(y, steps)
    net.eval({"x0": np.array(1.0)})
    assert net.value(y) == 4.0 and net.value(steps) == 2


def test_while_against_the_loop_unrolled_to_the_count_it_found():
    W, b = _rnn_params(np.float64)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    step = _rnn_step(W, b, x0)
    h, c = an.While(step, h0, c0, count=50, stop=lambda h, c, t: np.abs(c).sum() > 6.0)
    loop = an.Net((h * c).sum())
    feed = _feed(np.float64)
    values = {k: v for k, v in feed.items()}
    found = 0
    hv, cv = values["h0"], values["c0"]
    while np.abs(cv).sum() <= 6.0 and found < 50:
        hv, cv = (np.tanh(W.value @ hv + b.value * (found + 1) + values["x0"]),
                  cv + np.tanh(W.value @ hv + b.value * (found + 1) + values["x0"]) * hv)
        found += 1
    assert 0 < found < 50
    _, unrolled = _rnn_nets(np.float64, found)
    _compare(loop, unrolled, feed, feed, ["h0", "c0", "x0", "W", "b"], np.float64)


def test_params_created_in_the_body_are_shared_by_every_iteration():
    rng = np.random.default_rng(3)
    x0 = an.Input("x0")
    y = an.For(lambda x, t: an.nn.relu(an.nn.conv(x, size=(3, 3, 2, 2), pad=1)), x0, 3)
    net = an.Net(y.sum())
    assert len(net.params) == 2  # one filter bank and one bias for the three iterations
    an.gradcheck(net, {"x0": rng.standard_normal((1, 2, 4, 4))})


def test_loops_nest():
    x0 = an.Input("x0")
    w = an.Param(np.array([1.5]))
    y = an.For(lambda x, t: an.For(lambda z, s: z * w + s, x, 2) + t, x0, 3)
    net = an.Net(y)
    net.eval({"x0": np.array([0.5])})
    x = 0.5
    for t in range(3):
        for s in range(2):
            x = x * 1.5 + s
        x = x + t
    np.testing.assert_allclose(net.value(y), [x])
    an.gradcheck(net, {"x0": np.array([0.5])})


def test_test_mode_runs_the_loop_without_recording_it():
    x0 = an.Input("x0")
    y = an.For(lambda x, t: an.nn.dropout(x, rate=0.5), x0, 3)
    net = an.Net(y)
    value = np.ones((4, 4))
    net.eval({"x0": value}, mode="test")
    np.testing.assert_array_equal(net.value(y), value)
    assert net.value("for1_record") is None
    with pytest.raises(ValueError, match="test mode"):
        net.eval({}, mode="backward")
    net.eval({"x0": value})
    assert net.value("for1_record").shape == (3,)


def test_the_record_holds_what_the_inner_backward_reads():
    # tanh's derivative reads its output, matmul its inputs: per iteration the record keeps
    # the state and the tanh (the outside W is loaded again, not recorded)
    W = an.Param(np.eye(3) * 0.5)
    x0 = an.Input("x0")
    y = an.For(lambda x, t: np.tanh(W @ x), x0, 4)
    net = an.Net(y.sum(), conserve_memory=True)
    net.eval({"x0": np.ones((3, 5))})
    record = net._values[net.tape.names.index("for1_record")]
    assert record is None  # released after the loop's backward step
    net.eval({"x0": np.ones((3, 5))}, mode="forward")
    record = net.value("for1_record")
    assert record.shape == (4,)
    assert all(len(values) == 2 for values in record.values)
    # each iteration's state is the tanh of the one before: five arrays in all, counted once
    assert record.nbytes == 5 * 15 * 8


def test_the_loop_shows_its_inner_graph_in_the_tape_the_summary_and_the_picture():
    W, b = _rnn_params(np.float64)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, 3)
    net = an.Net((h * c).sum())
    tape_text = repr(net.tape)
    assert "= for(" in tape_text and "body: " in tape_text and "tanh" in tape_text
    summary = str(net)
    assert "for1_record" in summary and "body: " in summary and "tanh" in summary
    svg = an.viz.graph_svg(net, engine="python")
    assert "body: " in svg and "tanh" in svg
    svg = an.viz.graph_svg(h, engine="python")
    assert "body: " in svg


def test_a_net_with_a_loop_reads_back_from_its_tape_and_deep_copies():
    import copy
    W, b = _rnn_params(np.float64)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, 3)
    net = an.Net((h * c).sum())
    feed = _feed(np.float64)
    net.eval(feed)
    again = an.Net(*an.Layer.from_compiled_net(net))
    clone = copy.deepcopy(net)
    for other in (again, clone):
        other.eval(feed)
        np.testing.assert_allclose(other.value(other.outputs[0]), net.value(net.outputs[0]))
    np.testing.assert_allclose(clone.der("W"), net.der("W"))


def test_save_and_load_round_trip_a_net_with_loops(tmp_path):
    W, b = _rnn_params(np.float64)
    h0, c0, x0, n = an.Input("h0"), an.Input("c0"), an.Input("x0"), an.Input("n")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, count=n, concatenate=(1, None))
    w = an.Param(np.array([1.5]), name="w")
    nested = an.For(lambda x, t: an.For(lambda z, s: z * w + s, x, 2) + t, c.sum(), 3)
    stopped = an.While(lambda x, t: x * w, nested, count=20, stop=lambda x: x > 1e3)
    net = an.Net((h * h).sum() + stopped.sum(), meta={"task": "loops"})
    feed = dict(_feed(np.float64), n=3)
    net.eval(feed)
    net.save(tmp_path / "loops.npz")
    loaded = an.Net.load(tmp_path / "loops.npz")
    loaded.eval(feed)
    assert loaded.meta == {"task": "loops"}
    np.testing.assert_allclose(loaded.value(loaded.outputs[0]), net.value(net.outputs[0]),
                               rtol=1e-12)
    for name in ("h0", "c0", "x0", "W", "b", "w"):
        np.testing.assert_allclose(loaded.der(name), net.der(name), rtol=1e-12)
    assert [s.op.name for s in loaded.tape.forward] == [s.op.name for s in net.tape.forward]
    assert repr(loaded.tape) == repr(net.tape)


def test_a_malformed_loop_entry_is_a_format_error(tmp_path):
    import json
    x0 = an.Input("x0")
    net = an.Net(an.For(lambda x, t: 2 * x, x0, 3))
    net.save(tmp_path / "loop.npz")
    with np.load(tmp_path / "loop.npz") as data:
        arrays = {k: data[k] for k in data.files}
    graph = json.loads(str(arrays["__graph__"]))
    entry = next(e for e in graph["layers"] if e["kind"] == "loop")
    for field, value, message in [("kind", "Until", "must describe a For or While loop"),
                                  ("states", entry["loop"]["outputs"], "must be Inputs"),
                                  ("axes", [0, 1], "one int or null per state"),
                                  ("outputs", [99], "layer index 99")]:
        broken = json.loads(json.dumps(graph))
        next(e for e in broken["layers"] if e["kind"] == "loop")["loop"][field] = value
        path = tmp_path / f"broken_{field}.npz"
        np.savez(path, **dict(arrays, __graph__=np.array(json.dumps(broken))))
        with pytest.raises(an.FormatError, match=message):
            an.Net.load(path)
    assert entry["loop"]["kind"] == "For"


def test_bad_loops_are_refused_by_name():
    x0 = an.Input("x0")
    with pytest.raises(TypeError, match="For: count must be an int or a Layer"):
        an.For(lambda x, t: x, x0, 2.5)
    with pytest.raises(TypeError, match="For: count must be an int"):
        an.For(lambda x, t: x, x0, True)
    with pytest.raises(ValueError, match="For: count must be at least 0"):
        an.For(lambda x, t: x, x0, -1)
    with pytest.raises(TypeError, match="give the initial state and the count"):
        an.For(lambda x, t: x, 3)
    with pytest.raises(TypeError, match=r"body must take the 1 state value\(s\) and the "
                                        r"iteration index t"):
        an.For(lambda x: x, x0, 3)
    with pytest.raises(ValueError, match="body must return the next value of each of the 2"):
        an.For(lambda x, y, t: x, x0, x0, 3)
    with pytest.raises(TypeError, match="body must return Layers"):
        an.For(lambda x, t: 1.0, x0, 3)
    with pytest.raises(TypeError, match="concatenate must be None, an axis"):
        an.For(lambda x, t: x, x0, 3, concatenate="time")
    with pytest.raises(TypeError, match="While: give count="):
        an.While(lambda x, t: x, x0)
    with pytest.raises(TypeError, match="While: stop must return a Layer"):
        an.While(lambda x, t: x, x0, stop=lambda x: True)
    with pytest.raises(TypeError, match="body must be a function"):
        an.For(3, x0, 3)


def test_bad_run_time_values_are_refused_by_name():
    x0, n = an.Input("x0"), an.Input("n")
    net = an.Net(an.For(lambda x, t: 2 * x, x0, n))
    for count, message in [(-1, "count must be a whole number of at least 0"),
                           (1.5, "count must be a whole number"),
                           (np.ones(2), "count must be one number")]:
        with pytest.raises(ValueError, match=message):
            net.eval({"x0": np.ones(1), "n": count})
    net = an.Net(an.While(lambda x, t: 2 * x, x0, count=3, stop=lambda x: x > 1))
    with pytest.raises(ValueError, match="stop condition must be one truth value"):
        net.eval({"x0": np.ones(2)})
    net = an.Net(an.For(lambda x, t: x @ np.ones((2, 2)), x0, 3))
    with pytest.raises(ValueError, match=r"for layer 'for1'.*iteration t=0.*matmul"):
        net.eval({"x0": np.ones((3, 3))})
    net = an.Net(an.For(lambda x, t: 2 * x, x0, 3, concatenate=0))
    with pytest.raises(ValueError, match="concatenate axis 0 is out of range"):
        net.eval({"x0": np.float64(1.0)})


def test_for_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    W, U = rng.standard_normal((4, 4)) * 0.4, rng.standard_normal((4, 3))
    h0, seq = rng.standard_normal((4, 2)), rng.standard_normal((5, 3, 2))
    Wp, Up = an.Param(W, name="W"), an.Param(U, name="U")
    h_in, xs = an.Input("h_in"), an.Input("xs")
    # the sequence rides along in the state, one step consumed per iteration
    hs, _ = an.For(lambda h, rest, t: (np.tanh(Wp @ h + Up @ rest[0]), rest[1:]),
                   h_in, xs, 5, concatenate=(1, None))
    net = an.Net((hs ** 2).sum())
    net.eval({"h_in": h0, "xs": seq})
    Wt, Ut = (torch.tensor(a, requires_grad=True) for a in (W, U))
    ht, seqt = torch.tensor(h0, requires_grad=True), torch.tensor(seq, requires_grad=True)
    h, outs = ht, []
    for t in range(5):
        h = torch.tanh(Wt @ h + Ut @ seqt[t])
        outs.append(h)
    (torch.cat(outs, dim=1) ** 2).sum().backward()
    np.testing.assert_allclose(net.value(hs), torch.cat(outs, dim=1).detach().numpy(),
                               rtol=1e-12)
    for name, tensor in [("W", Wt), ("U", Ut), ("h_in", ht), ("xs", seqt)]:
        np.testing.assert_allclose(net.der(name), tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_shape_inference_sees_through_the_loop():
    W = an.Param(np.ones((3, 3)))
    x0, n = an.Input("x0"), an.Input("n")
    x0.shape, n.shape = (3, 2), ()
    assert an.For(lambda x, t: np.tanh(W @ x), x0, 4).shape == (3, 2)
    assert an.For(lambda x, t: np.tanh(W @ x), x0, 4, concatenate=1).shape == (3, 8)
    assert an.For(lambda x, t: np.tanh(W @ x), x0, n).shape == (3, 2)
    assert an.While(lambda x, t: W @ x, x0, count=9, stop=lambda x: x.sum() > 1).shape == (3, 2)
    # a state that grows: the shape rules run once per iteration
    grow = an.For(lambda x, t: np.concatenate([x, x[:, :1]], axis=1), x0, 3, concatenate=1)
    assert grow.shape == (3, 3 + 4 + 5)
    net = an.Net(grow)
    net.eval({"x0": np.ones((3, 2))})
    assert net.value(grow).shape == grow.shape
    with pytest.raises(ValueError, match="known only at run time"):
        an.For(lambda x, t: W @ x, x0, n, concatenate=1).shape
    summary = an.Net(an.For(lambda x, t: np.tanh(W @ x), x0, 4, concatenate=0).sum()).summary(
        input_sizes={"x0": (3, 2)})
    assert "12×2" in summary


def test_an_lstm_over_a_sequence_against_the_lstm_unrolled_by_hand():
    from autonn import nn
    if not hasattr(nn, "lstm"):
        pytest.skip("nn.lstm is not there")
    W, b = nn.lstm_params(4, 2)
    xs = an.Input("xs")
    h0, c0 = np.zeros((3, 4)), np.zeros((3, 4))

    def step(h, c, rest, t):  # the sequence rides in the state: one step per iteration
        h, c = nn.lstm(rest[0], h, c, W, b)
        return h, c, rest[1:]
    hs, c, _ = an.For(step, h0, c0, xs, 5, concatenate=(1, None, None))
    loop = an.Net((hs ** 2).sum() + c.sum())
    h, c, parts = h0, c0, []
    for t in range(5):
        h, c = nn.lstm(xs[t], h, c, W, b)
        parts.append(h)
    unrolled = an.Net((np.concatenate(parts, axis=1) ** 2).sum() + c.sum())
    feed = {"xs": np.random.default_rng(0).standard_normal((5, 3, 2)).astype(np.float32)}
    _compare(loop, unrolled, feed, feed, ["xs", W.name, b.name], np.float32)
    feed = {"xs": feed["xs"].astype(np.float64)}
    an.gradcheck(loop, feed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_body_indexes_a_sequence_with_t(dtype):
    rng = np.random.default_rng(4)
    W = an.Param((rng.standard_normal((4, 4)) * 0.4).astype(dtype), name="W")
    U = an.Param(rng.standard_normal((4, 3)).astype(dtype), name="U")
    xs, h0, n = an.Input("xs"), an.Input("h0"), an.Input("n")
    hs = an.For(lambda h, t: np.tanh(W @ h + U @ xs[t]), h0, n, concatenate=1)
    loop = an.Net((hs ** 2).sum())
    feed = {"xs": rng.standard_normal((6, 3, 2)).astype(dtype),
            "h0": rng.standard_normal((4, 2)).astype(dtype)}
    for count in (6, 2):
        h, parts = h0, []
        for t in range(count):
            h = np.tanh(W @ h + U @ xs[t])
            parts.append(h)
        unrolled = an.Net((np.concatenate(parts, axis=1) ** 2).sum())
        _compare(loop, unrolled, dict(feed, n=count), feed, ["xs", "h0", "W", "U"], dtype)
    # along another axis, as x[:, t] or np.take
    ys = an.For(lambda y, t: y + xs[:, t] * np.take(xs, t + 1, axis=1), np.zeros((6, 2)), 2)
    net = an.Net(ys)
    net.eval({"xs": feed["xs"]})
    expected = sum(feed["xs"][:, t] * feed["xs"][:, t + 1] for t in range(2))
    np.testing.assert_allclose(net.value(ys), expected, **_tol(dtype))
    an.gradcheck(net, {"xs": feed["xs"]})


def test_take_indexes_with_a_layer_and_accumulates_repeated_indices():
    rng = np.random.default_rng(6)
    x, i = an.Input("x"), an.Input("i")
    y = np.take(x, i, axis=1) * 2 + x[i].sum()
    net = an.Net(y)
    value, index = rng.standard_normal((3, 4)), np.array([0, 2, 2])
    net.eval({"x": value, "i": index})
    np.testing.assert_allclose(net.value(y), np.take(value, index, axis=1) * 2
                               + value[index].sum())
    an.gradcheck(net, {"x": value, "i": index})
    with pytest.raises(ValueError, match="take: indices must be whole numbers"):
        net.eval({"x": value, "i": np.array(0.5)})
    with pytest.raises(TypeError, match="a Layer index is supported alone or after whole"):
        x[1:, i]


def test_nets_sharing_one_loop_evaluate_in_parallel_threads():
    import copy
    import threading
    W, b = _rnn_params(np.float64)
    h0, c0, x0 = an.Input("h0"), an.Input("c0"), an.Input("x0")
    h, c = an.For(_rnn_step(W, b, x0), h0, c0, 20)
    nets = [an.Net((h * c).sum())]
    nets += [copy.deepcopy(nets[0]) for _ in range(3)]  # the copies share the loop's op
    assert all(n.tape.forward[0].op is nets[0].tape.forward[0].op for n in nets)
    feeds = [_feed(np.float64, seed) for seed in range(4)]
    expected = []
    for net, feed in zip(nets, feeds):
        net.eval(feed)
        expected.append((net.value(net.outputs[0]), net.der("W")))
    errors = []

    def run(net, feed, want):
        try:
            for _ in range(10):
                net.eval(feed)
                np.testing.assert_allclose(net.value(net.outputs[0]), want[0], rtol=1e-13)
                np.testing.assert_allclose(net.der("W"), want[1], rtol=1e-13)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
    threads = [threading.Thread(target=run, args=args) for args in zip(nets, feeds, expected)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_outside_layers_named_like_the_placeholders_keep_their_own_values():
    t, x = an.Param(np.array([2.0]), name="t"), an.Param(np.array([1.0]), name="x")
    y = an.For(lambda x_, i: x_ * t + i * x, x, 3)  # the outer t and x, the inner x_ and i
    net = an.Net(y)
    net.eval({})
    value = 1.0
    for i in range(3):
        value = value * 2.0 + i * 1.0
    np.testing.assert_allclose(net.value(y), [value])
    an.gradcheck(net, {})
