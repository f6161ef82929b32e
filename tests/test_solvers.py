"""Solvers: each update rule against a direct NumPy formula, the per-Param multipliers, the
'average' and 'none' train methods, schedules, state round trips, and MatConvNet's nnsolvers
test (logistic regression on two Gaussian classes, < 35% error within one epoch)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import autonn as an
from autonn import solvers


class FakeParam:
    """What a solver reads from a Param: a value, a derivative and the multipliers."""

    def __init__(self, name, value, der, learning_rate=1.0, weight_decay=1.0,
                 train_method="gradient"):
        self.name, self.value, self.der = name, value, der
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.train_method = train_method


class FakeNet:
    def __init__(self, *params):
        self.params = list(params)


def reference_step(kind, w, g, state, t, lr, wd, options):
    """One step of each rule written out directly from MatConvNet's solvers/*.m."""
    g = g + wd * w
    if kind == "SGD":
        mom = options.get("momentum", 0.9)
        m = mom * state.get("m", 0) - g
        delta = mom * m - g if options.get("nesterov") else m
        return w + lr * delta, {"m": m}
    if kind == "Adam":
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = b1 * state.get("m", 0) + (1 - b1) * g
        v = b2 * state.get("v", 0) + (1 - b2) * g ** 2
        return w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps), \
            {"m": m, "v": v}
    if kind == "AdaGrad":
        s = state.get("s", 0) + g ** 2
        return w - lr * g / (np.sqrt(s) + 1e-10), {"s": s}
    if kind == "AdaDelta":
        rho, eps = 0.9, 1e-6
        g2 = rho * state.get("g2", 0) + (1 - rho) * g ** 2
        d = -np.sqrt((state.get("d2", 0) + eps) / (g2 + eps)) * g
        d2 = rho * state.get("d2", 0) + (1 - rho) * d ** 2
        return w + lr * d, {"g2": g2, "d2": d2}
    if kind == "RMSProp":
        s = 0.99 * state.get("s", 0) + 0.01 * g ** 2
        return w - lr * g / (np.sqrt(s) + 1e-8), {"s": s}
    raise AssertionError(kind)


KINDS = ["SGD", "Adam", "AdaGrad", "AdaDelta", "RMSProp"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), lr=st.floats(1e-4, 1.0),
       lr_mult=st.sampled_from([0.0, 0.5, 1.0, 2.0]), wd=st.floats(0.0, 0.01),
       wd_mult=st.sampled_from([0.0, 1.0, 3.0]))
def test_three_steps_match_direct_numpy_formula(kind, seed, lr, lr_mult, wd, wd_mult):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((3, 4))
    solver = getattr(solvers, kind)(learning_rate=lr, weight_decay=wd)
    param = FakeParam("w", w0.copy(), None, learning_rate=lr_mult, weight_decay=wd_mult)
    net = FakeNet(param)
    w, state = w0.copy(), {}
    for t in range(1, 4):
        g = rng.standard_normal((3, 4))
        param.der = g
        solver.step(net)
        w, state = reference_step(kind, w, g, state, t, lr * lr_mult, wd * wd_mult, {})
        np.testing.assert_allclose(param.value, w, rtol=1e-10, atol=1e-12)


def test_nesterov_sgd_matches_formula():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(5)
    param = FakeParam("w", w0.copy(), None)
    solver = solvers.SGD(learning_rate=0.1, momentum=0.8, weight_decay=0.01, nesterov=True)
    w, state = w0.copy(), {}
    for t in range(1, 4):
        g = rng.standard_normal(5)
        param.der = g
        solver.step(FakeNet(param))
        w, state = reference_step("SGD", w, g, state, t, 0.1, 0.01,
                                  {"momentum": 0.8, "nesterov": True})
    np.testing.assert_allclose(param.value, w, rtol=1e-12)


def test_average_params_move_toward_reported_value_with_their_own_rate():
    param = FakeParam("moments", np.zeros((2, 2)), np.full((2, 2), 10.0), learning_rate=0.1,
                      train_method="average")
    solvers.SGD(learning_rate=123.0).step(FakeNet(param))
    np.testing.assert_allclose(param.value, np.full((2, 2), 1.0))


def test_none_params_stay_fixed_and_der_is_never_written():
    der = np.ones(3)
    frozen = FakeParam("frozen", np.zeros(3), der, train_method="none")
    shared = FakeParam("shared", np.zeros(3), der)
    solvers.Adam(learning_rate=0.5).step(FakeNet(frozen, shared))
    np.testing.assert_array_equal(frozen.value, np.zeros(3))
    np.testing.assert_array_equal(der, np.ones(3))  # read-only: it may alias other ders
    assert np.all(shared.value < 0)


def test_float32_values_stay_float32():
    for kind in KINDS:
        param = FakeParam("w", np.ones(4, np.float32), np.ones(4, np.float32))
        solver = getattr(solvers, kind)()
        solver.step(FakeNet(param))
        solver.step(FakeNet(param))
        assert param.value.dtype == np.float32, kind


def test_learning_rate_schedules_sequence_and_callable():
    solver = solvers.SGD(learning_rate=[0.1, 0.01, 0.001])
    assert [solver.current_learning_rate(e) for e in (0, 1, 2, 7)] == [0.1, 0.01, 0.001, 0.001]
    solver = solvers.Adam(learning_rate=lambda epoch: 0.5 ** epoch)
    solver.epoch = 3
    assert solver.current_learning_rate() == 0.125
    param = FakeParam("w", np.zeros(1), np.ones(1))
    sgd = solvers.SGD(learning_rate=[1.0, 0.5], momentum=0.0, weight_decay=0.0)
    sgd.epoch = 1
    sgd.step(FakeNet(param))
    np.testing.assert_allclose(param.value, [-0.5])


def test_bad_arguments_name_the_solver_and_the_param():
    with pytest.raises(ValueError, match="SGD: learning_rate"):
        solvers.SGD(learning_rate=[])
    with pytest.raises(ValueError, match="Adam: beta1"):
        solvers.Adam(beta1="x")
    param = FakeParam("conv1_filters", np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"conv1_filters.*\(2, 3\).*\(3,\)"):
        solvers.SGD().step(FakeNet(param))
    with pytest.raises(ValueError, match="no derivative"):
        solvers.SGD().step(FakeNet(FakeParam("w", np.zeros(3), None)))


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_continues_identically(kind, tmp_path):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(6) for _ in range(6)]
    straight = getattr(solvers, kind)(learning_rate=0.01)
    p1 = FakeParam("w", np.ones(6), None)
    for g in grads:
        p1.der = g
        straight.step(FakeNet(p1))

    first = getattr(solvers, kind)(learning_rate=0.01)
    p2 = FakeParam("w", np.ones(6), None)
    for g in grads[:3]:
        p2.der = g
        first.step(FakeNet(p2))
    np.savez(tmp_path / "state.npz", **first.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as data:
        restored_state = {k: data[k] for k in data.files}
    second = getattr(solvers, kind)(learning_rate=0.01)
    second.load_state_dict(restored_state)
    for g in grads[3:]:
        p2.der = g
        second.step(FakeNet(p2))
    np.testing.assert_array_equal(p1.value, p2.value)


def two_gaussians(n, seed):
    """Two Gaussian classes in the plane, labels +-1 (MatConvNet's nnsolvers test data)."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    points = rng.standard_normal((n, 2)).astype(np.float32) + labels[:, None] * np.float32(1.5)
    return points, labels


@pytest.mark.parametrize("kind, learning_rate", [
    ("SGD", 0.01), ("Adam", 0.01), ("AdaGrad", 0.1), ("AdaDelta", 1.0), ("RMSProp", 0.01)])
def test_logistic_regression_reaches_low_error_in_one_epoch(kind, learning_rate):
    x, y = an.Input("x"), an.Input("y")
    w = an.Param(np.full((2, 1), -0.3, np.float32), name="w")  # pointing the wrong way
    b = an.Param(np.zeros((1,), np.float32), name="b")
    scores = (x @ w + b).reshape((-1,))
    objective = np.log(1 + np.exp(-y * scores)).mean()
    error = (y * scores <= 0).mean()
    net = an.Net(objective, error)
    solver = getattr(solvers, kind)(learning_rate=learning_rate)
    points, labels = two_gaussians(2000, seed=1)
    net.eval({"x": points, "y": labels}, mode="test")
    initial_error = float(net.value(error))
    for start in range(0, 2000, 20):  # one epoch of 100 mini-batches
        net.eval({"x": points[start:start + 20], "y": labels[start:start + 20]})
        solver.step(net)
    val_points, val_labels = two_gaussians(1000, seed=2)
    net.eval({"x": val_points, "y": val_labels}, mode="test")
    assert initial_error > 0.5
    assert float(net.value(error)) < 0.35


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_updates_on_cupy_arrays_match_numpy(kind):
    if not an.gpu_available():
        pytest.skip("no CUDA device")
    import cupy
    rng = np.random.default_rng(0)
    value, grads = rng.standard_normal(7), [rng.standard_normal(7) for _ in range(3)]
    on_cpu = FakeParam("w", value.copy(), None)
    on_gpu = FakeParam("w", cupy.asarray(value), None)
    cpu_solver, gpu_solver = getattr(solvers, kind)(), getattr(solvers, kind)()
    for g in grads:
        on_cpu.der, on_gpu.der = g, cupy.asarray(g)
        cpu_solver.step(FakeNet(on_cpu))
        gpu_solver.step(FakeNet(on_gpu))
    assert isinstance(on_gpu.value, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(on_gpu.value), on_cpu.value, rtol=1e-10)
    state = gpu_solver.state_dict()  # plain NumPy arrays, ready for np.savez
    assert all(isinstance(v, np.ndarray) for v in state.values())
