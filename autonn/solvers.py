"""Solvers: update a Net's Params from the derivatives of its last backward pass.

The update rules are MatConvNet's (``cnn_train.m`` and ``examples/solvers/*.m``). For every Param
``p`` with ``train_method='gradient'`` a solver forms

    lr_p   = learning_rate(epoch) * p.learning_rate
    grad_p = p.der + weight_decay * p.weight_decay * p.value

and applies its own rule to ``grad_p`` with ``lr_p``. ``p.der`` is the derivative of the
objective as the Net computed it: the losses of ``autonn.nn`` are averaged over the batch, so no
division by the batch size happens here (MatConvNet divides because its losses are summed).

Params with ``train_method='average'`` (batch-norm moments) report the value they should move
toward as their "derivative"; they are updated as a moving average,
``value = (1 - p.learning_rate) * value + p.learning_rate * der``, with the Param's own rate
only (MatConvNet's AutoNN). Params with ``train_method='none'`` are never touched.

``learning_rate`` may be a number, a sequence indexed by epoch (the last entry is used once the
sequence is exhausted, as ``cnn_train`` does) or a callable ``epoch -> rate``. Epochs count from 0;
:func:`autonn.train` sets ``solver.epoch`` before each epoch.

Solver state (momentum buffers, moment estimates, the step count) is kept per Param name and can
be saved with :meth:`Solver.state_dict` (a flat dict of NumPy arrays, ready for ``np.savez``) and
restored with :meth:`Solver.load_state_dict`. Updates run on NumPy or CuPy arrays, wherever each
Param lives.
"""

import numbers

import numpy as np

from . import backend

__all__ = ["Solver", "SGD", "Adam", "AdaGrad", "AdaDelta", "RMSProp"]


class Solver:
    """Base class: the per-Param bookkeeping shared by every update rule.

    Subclasses name their per-Param buffers in ``buffers`` and implement :meth:`update`.
    """

    buffers = ()

    def __init__(self, learning_rate, weight_decay):
        _check_schedule(type(self).__name__, learning_rate)
        weight_decay = _check_real(type(self).__name__, "weight_decay", weight_decay)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epoch = 0
        self.num_steps = 0
        # buffer name -> {param name -> array}
        self.state = {name: {} for name in self.buffers}

    # ------------------------------------------------------------------ public
    def current_learning_rate(self, epoch=None):
        """The global learning rate at ``epoch`` (default: ``self.epoch``)."""
        epoch = self.epoch if epoch is None else epoch
        schedule = self.learning_rate
        if callable(schedule):
            rate = schedule(epoch)
        elif isinstance(schedule, numbers.Real):
            rate = schedule
        else:
            rate = schedule[min(epoch, len(schedule) - 1)]
        return float(rate)

    def step(self, net):
        """Update every Param of ``net`` from its ``.der`` (one solver iteration).

        Raises ValueError naming the Param when its derivative is missing or shaped unlike its
        value. ``param.der`` is only read: several derivatives may share one array.
        """
        params = net.params if hasattr(net, "params") else list(net)
        rate = self.current_learning_rate()
        self.num_steps += 1
        for param in params:
            if param.train_method == "none":
                continue
            der = getattr(param, "der", None)
            if der is None:
                raise ValueError(f"{type(self).__name__}.step: Param '{param.name}' has no "
                                 f"derivative; run net.eval(inputs) (forward and backward) "
                                 f"before step()")
            if np.shape(der) != np.shape(param.value):
                raise ValueError(f"{type(self).__name__}.step: Param '{param.name}' has value "
                                 f"shape {np.shape(param.value)} but derivative shape "
                                 f"{np.shape(der)}")
            xp = backend.array_module(param.value)
            if param.train_method == "average":
                rate_p = param.learning_rate
                param.value = ((1 - rate_p) * param.value + rate_p * der).astype(
                    param.value.dtype, copy=False)
                continue
            rate_p = rate * param.learning_rate
            decay_p = self.weight_decay * param.weight_decay
            grad = der + decay_p * param.value if decay_p != 0 else der
            state = {name: self._buffer(name, param, xp) for name in self.buffers}
            new_value, new_state = self.update(param.value, grad, rate_p, state, xp)
            param.value = new_value.astype(param.value.dtype, copy=False)
            for name, array in new_state.items():
                self.state[name][param.name] = array

    def update(self, value, grad, rate, state, xp):
        """The rule: ``(new value, {buffer name: new buffer})`` from the current value, the
        gradient (weight decay included), this Param's learning rate and its buffers."""
        raise NotImplementedError(f"{type(self).__name__} does not define update()")

    def state_dict(self):
        """The solver's state as a flat dict of NumPy arrays (``'buffer/param name'`` keys plus
        ``'num_steps'`` and ``'epoch'``), suitable for ``np.savez`` (no pickle)."""
        result = {"num_steps": np.asarray(self.num_steps, np.int64),
                  "epoch": np.asarray(self.epoch, np.int64)}
        for buffer, arrays in self.state.items():
            for name, array in arrays.items():
                result[f"{buffer}/{name}"] = backend.to_numpy(array)
        return result

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (arrays move to a Param's device at its
        next update)."""
        self.num_steps = int(state["num_steps"])
        self.epoch = int(state["epoch"])
        self.state = {name: {} for name in self.buffers}
        for key, array in state.items():
            if key in ("num_steps", "epoch"):
                continue
            buffer, _, name = key.partition("/")
            if buffer not in self.state:
                raise ValueError(f"{type(self).__name__}.load_state_dict: unknown buffer "
                                 f"{buffer!r} in key {key!r}; expected one of {self.buffers}")
            self.state[buffer][name] = np.array(array)

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}, " \
               f"weight_decay={self.weight_decay!r})"

    # ------------------------------------------------------------------ helpers
    def _buffer(self, name, param, xp):
        array = self.state[name].get(param.name)
        if array is None or array.shape != param.value.shape:
            return xp.zeros_like(param.value)
        if backend.array_module(array) is not xp:  # restored on the CPU, param on the GPU
            array = xp.asarray(array)
        return array


class SGD(Solver):
    """Stochastic gradient descent with momentum (``cnn_train``'s default solver).

    ``m = momentum * m - grad``; ``value += lr * m``, or with ``nesterov``
    ``value += lr * (momentum * m - grad)``.
    """

    buffers = ("momentum",)

    def __init__(self, learning_rate=0.001, momentum=0.9, weight_decay=0.0005, nesterov=False):
        super().__init__(learning_rate, weight_decay)
        self.momentum = _check_real("SGD", "momentum", momentum)
        self.nesterov = bool(nesterov)

    def update(self, value, grad, rate, state, xp):
        momentum = self.momentum * state["momentum"] - grad
        delta = self.momentum * momentum - grad if self.nesterov else momentum
        return value + rate * delta, {"momentum": momentum}


class Adam(Solver):
    """Adam (Kingma and Ba), as MatConvNet's ``solvers/adam.m``.

    ``m = beta1 m + (1 - beta1) grad``; ``v = beta2 v + (1 - beta2) grad^2``;
    ``value -= lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + epsilon)``.
    """

    buffers = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 weight_decay=0):
        super().__init__(learning_rate, weight_decay)
        self.beta1 = _check_real("Adam", "beta1", beta1)
        self.beta2 = _check_real("Adam", "beta2", beta2)
        self.epsilon = _check_real("Adam", "epsilon", epsilon)

    def update(self, value, grad, rate, state, xp):
        t = self.num_steps
        m = self.beta1 * state["m"] + (1 - self.beta1) * grad
        v = self.beta2 * state["v"] + (1 - self.beta2) * grad * grad
        # A Python float keeps float32 values float32 (a NumPy float64 would promote them).
        correction = float(np.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t))
        return value - (rate * correction) * m / (xp.sqrt(v) + self.epsilon), {"m": m, "v": v}


class AdaGrad(Solver):
    """AdaGrad: ``g2 += grad^2``; ``value -= lr grad / (sqrt(g2) + epsilon)``."""

    buffers = ("g2",)

    def __init__(self, learning_rate=0.001, epsilon=1e-10, weight_decay=0):
        super().__init__(learning_rate, weight_decay)
        self.epsilon = _check_real("AdaGrad", "epsilon", epsilon)

    def update(self, value, grad, rate, state, xp):
        g2 = state["g2"] + grad * grad
        return value - rate * grad / (xp.sqrt(g2) + self.epsilon), {"g2": g2}


class AdaDelta(Solver):
    """AdaDelta (Zeiler), as MatConvNet's ``solvers/adadelta.m``.

    ``g2 = rho g2 + (1 - rho) grad^2``;
    ``delta = -sqrt((d2 + epsilon) / (g2 + epsilon)) grad``;
    ``d2 = rho d2 + (1 - rho) delta^2``; ``value += lr delta``.
    """

    buffers = ("g2", "d2")

    def __init__(self, learning_rate=1.0, rho=0.9, epsilon=1e-6, weight_decay=0):
        super().__init__(learning_rate, weight_decay)
        self.rho = _check_real("AdaDelta", "rho", rho)
        self.epsilon = _check_real("AdaDelta", "epsilon", epsilon)

    def update(self, value, grad, rate, state, xp):
        rho, eps = self.rho, self.epsilon
        g2 = rho * state["g2"] + (1 - rho) * grad * grad
        delta = -xp.sqrt((state["d2"] + eps) / (g2 + eps)) * grad
        d2 = rho * state["d2"] + (1 - rho) * delta * delta
        return value + rate * delta, {"g2": g2, "d2": d2}


class RMSProp(Solver):
    """RMSProp: ``g2 = rho g2 + (1 - rho) grad^2``; ``value -= lr grad / (sqrt(g2) + epsilon)``."""

    buffers = ("g2",)

    def __init__(self, learning_rate=0.001, rho=0.99, epsilon=1e-8, weight_decay=0):
        super().__init__(learning_rate, weight_decay)
        self.rho = _check_real("RMSProp", "rho", rho)
        self.epsilon = _check_real("RMSProp", "epsilon", epsilon)

    def update(self, value, grad, rate, state, xp):
        g2 = self.rho * state["g2"] + (1 - self.rho) * grad * grad
        return value - rate * grad / (xp.sqrt(g2) + self.epsilon), {"g2": g2}


# ---------------------------------------------------------------------- helpers
def _check_real(solver, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{solver}: {name} must be a finite number, got {value!r}")
    return float(value)


def _check_schedule(solver, schedule):
    if callable(schedule) or (isinstance(schedule, numbers.Real)
                              and not isinstance(schedule, bool)):
        return
    if isinstance(schedule, (str, bytes)) or not hasattr(schedule, "__len__") \
            or len(schedule) == 0:
        raise ValueError(f"{solver}: learning_rate must be a number, a non-empty sequence "
                         f"indexed by epoch or a callable of the epoch, got {schedule!r}")
