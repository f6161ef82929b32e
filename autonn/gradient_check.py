"""``gradcheck``: compare analytic derivatives with central differences.

For a function ``f`` and a random projection ``p`` of its output, the scalar
``phi(x) = <p, f(x)>`` has the derivative ``g = f(x, dzdy=p)`` (what autonn computes). Along a
random signed direction ``v`` (entries ±1), the central difference
``(phi(x + eps v) - phi(x - eps v)) / (2 eps)`` must equal ``<g, v>``. Signed directions weigh
every element equally, so one element wrong by 5% shows up even in large inputs. When a
direction fails, bisection over the direction's support finds the wrong elements.

Kinks (ReLU at 0, ties in max): when the one-sided differences disagree, ``phi`` is not smooth
along ``v``; a correct op's derivative then lies between the left and right derivatives, which
is what is checked (never a false alarm, while a wrong derivative outside that range still fails).
"""

import inspect

import numpy as np

from . import backend
from .layer import Layer
from .net import Net, traced_derivatives
from .ops import Op

_GRADCHECK_OPTIONS = ("eps", "rtol", "atol", "directions", "seed", "elementwise",
                      "raise_on_failure", "dtype", "wrt")


def gradcheck(f, *inputs, eps=None, rtol=None, atol=None, directions=4, seed=0,
              elementwise=64, raise_on_failure=True, dtype=np.float64, wrt=None, **options):
    """Check the derivatives of ``f`` at ``inputs`` against central differences.

    Parameters
    ----------
    f : Op, block function, ``@an.op`` custom layer, Net, or any function of Layers
        Ops and blocks are differentiated with ``dzdy=``; a :class:`Net` with
        ``net.eval``; any other function is traced into a Net first.
    inputs : arrays (or, for a Net, one dict of input name -> array)
        Floating-point arrays are checked; others (labels, indices) are held fixed. A Net's
        Params are checked too, except 'average' ones (bnorm's moments, which are assigned,
        not descended) and 'none' ones.
    eps : float
        Step of the central differences (default 1e-6 in float64, 1e-3 in float32), relative
        to the largest magnitude of the input.
    rtol, atol : float
        Tolerances (default 1e-6 and 1e-12 in float64; 2e-2 and 1e-5 in float32).
    directions : int
        Random signed directions per input.
    elementwise : int
        Inputs with at most this many elements are also checked element by element.
    raise_on_failure : bool
        Raise ``AssertionError`` with the report when a check fails (the default).
    dtype : numpy dtype
        float64 (default) or float32.
    wrt : sequence, optional
        Which inputs to check: positions (or, for a Net, names); all floating inputs by default.
    options : the op's own options (``stride=2``...), passed to ``f``.

    Returns
    -------
    GradcheckReport
        Per input: maximum absolute and relative error, kinks met, elements found wrong;
        ``report['x']`` or ``report[0]`` is one input's entry, and iterating gives them all.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"gradcheck: dtype must be float32 or float64, got {dtype}")
    low_precision = dtype == np.float32
    eps = eps if eps is not None else (1e-3 if low_precision else 1e-6)
    rtol = rtol if rtol is not None else (2e-2 if low_precision else 1e-6)
    atol = atol if atol is not None else (1e-5 if low_precision else 1e-12)
    problem = _problem_for(f, inputs, options, dtype, wrt)
    rng = np.random.default_rng(seed)
    try:
        report = GradcheckReport(problem.label)
        for k, name in enumerate(problem.names):
            report.entries.append(_check_variable(problem, k, name, rng, eps, rtol, atol,
                                                  directions, elementwise))
    finally:
        problem.restore()
    if raise_on_failure and not report.passed:
        raise AssertionError(f"gradcheck failed:\n{report}")
    return report


# ---------------------------------------------------------------------- the report
class VariableCheck:
    """The outcome for one checked input."""

    def __init__(self, name, shape):
        self.name = name
        self.shape = tuple(shape)
        self.max_abs_error = 0.0
        self.max_rel_error = 0.0
        self.directions = 0
        self.kinks = 0
        self.failed_directions = 0
        self.bad_elements = []  # (index, analytic, numerical)

    @property
    def passed(self):
        return self.failed_directions == 0 and not self.bad_elements

    def record(self, analytic, numerical):
        """Note the error of one comparison in the maxima the report shows."""
        error = abs(analytic - numerical)
        scale = max(abs(analytic), abs(numerical))
        self.max_abs_error = max(self.max_abs_error, error)
        if scale > 0:
            self.max_rel_error = max(self.max_rel_error, error / scale)


class GradcheckReport:
    """Per-input results of :func:`gradcheck`; true when every check passed."""

    def __init__(self, label):
        self.label = label
        self.entries = []

    @property
    def passed(self):
        return all(entry.passed for entry in self.entries)

    def __bool__(self):
        return self.passed

    def __getitem__(self, key):
        """The entry of an input, by name or by position."""
        if isinstance(key, (int, np.integer)):
            return self.entries[key]
        for entry in self.entries:
            if entry.name == key:
                return entry
        raise KeyError(f"gradcheck report: no input named {key!r}; the inputs are "
                       f"{[entry.name for entry in self.entries]}")

    def __iter__(self):
        return iter(self.entries)

    def __len__(self):
        return len(self.entries)

    def rows(self):
        return [(e.name, "×".join(map(str, e.shape)) or "scalar", f"{e.max_abs_error:.2e}",
                 f"{e.max_rel_error:.2e}", str(e.kinks), "pass" if e.passed else "FAIL")
                for e in self.entries]

    def __repr__(self):
        header = ("input", "shape", "max abs err", "max rel err", "kinks", "result")
        rows = [header] + self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [f"gradcheck of {self.label}: {'passed' if self.passed else 'FAILED'}"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
        for e in self.entries:
            for index, analytic, numerical in e.bad_elements[:10]:
                lines.append(f"  {e.name}{list(index)}: computed {analytic:.6g}, "
                             f"numerical {numerical:.6g}")
            if len(e.bad_elements) > 10:
                lines.append(f"  ... and {len(e.bad_elements) - 10} more wrong elements of "
                             f"{e.name}")
        return "\n".join(lines)

    def _repr_html_(self):
        import html
        header = ("input", "shape", "max abs err", "max rel err", "kinks", "result")
        cells = "".join(f"<th>{h}</th>" for h in header)
        body = ""
        for row in self.rows():
            color = "#c00" if row[-1] == "FAIL" else "#080"
            body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row[:-1])
            body += f"<td style='color:{color}'><b>{row[-1]}</b></td></tr>"
        bad = ""
        for e in self.entries:
            for index, analytic, numerical in e.bad_elements[:10]:
                bad += (f"<li>{html.escape(e.name)}{list(index)}: computed {analytic:.6g}, "
                        f"numerical {numerical:.6g}</li>")
        title = html.escape(f"gradcheck of {self.label}")
        return (f"<b>{title}</b><table><tr>{cells}</tr>{body}</table>"
                + (f"<ul>{bad}</ul>" if bad else ""))


# ---------------------------------------------------------------------- the check
def _check_variable(problem, k, name, rng, eps, rtol, atol, directions, elementwise):
    x = problem.values[k]
    check = VariableCheck(name, x.shape)
    step = eps * max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
    analytic = problem.gradient(k)
    for _ in range(directions):
        v = rng.choice(np.array([-1.0, 1.0], dtype=x.dtype), size=x.shape)
        if not _check_direction(problem, k, v, analytic, step, rtol, atol, check):
            check.failed_directions += 1
            check.bad_elements = _localize(problem, k, v, analytic, step, rtol, atol, check,
                                           known=check.bad_elements)
    if x.size <= elementwise:
        check.bad_elements = _check_elements(problem, k, analytic, step, rtol, atol, check,
                                             np.ndindex(*x.shape), known=check.bad_elements)
    return check


def _check_direction(problem, k, v, analytic, step, rtol, atol, check):
    """Compare <analytic, v> with the central difference along v; True when they agree."""
    check.directions += 1
    phi_plus = problem.phi(k, v * step)
    phi_minus = problem.phi(k, -v * step)
    phi_zero = problem.phi(k, None)
    numerical = (phi_plus - phi_minus) / (2 * step)
    computed = float(np.sum(analytic * v))
    # Rounding in phi limits how well a difference can agree; allow for it.
    noise = 64 * np.finfo(problem.dtype).eps * (abs(phi_plus) + abs(phi_minus)
                                                + abs(phi_zero)) / (2 * step)
    allowed = atol + noise + rtol * max(abs(computed), abs(numerical))
    if abs(computed - numerical) <= allowed:
        check.record(computed, numerical)
        return True
    # Halving the step tells truncation error (which shrinks fourfold) from a wrong derivative.
    half = (problem.phi(k, v * step / 2) - problem.phi(k, -v * step / 2)) / step
    extrapolated = (4 * half - numerical) / 3
    if abs(computed - extrapolated) <= allowed + abs(half - numerical):
        check.record(computed, extrapolated)
        return True
    check.record(computed, numerical)
    right = (phi_plus - phi_zero) / step
    left = (phi_zero - phi_minus) / step
    if abs(right - left) > 4 * allowed + 1e-3 * max(abs(right), abs(left)):
        # Not smooth along v: a correct derivative lies between the one-sided ones.
        check.kinks += 1
        low, high = min(left, right), max(left, right)
        slack = allowed + 1e-2 * (high - low)
        if low - slack <= computed <= high + slack:
            return True
    return False


def _localize(problem, k, v, analytic, step, rtol, atol, check, known=(), limit=20):
    """Bisect the support of a failing direction to find the wrong elements (added to
    ``known``)."""
    x = problem.values[k]
    suspects = [np.arange(x.size)]
    bad = list(known)
    while suspects and len(bad) < limit:
        part = suspects.pop()
        if part.size <= 4:
            bad = _check_elements(problem, k, analytic, step, rtol, atol, check,
                                  (np.unravel_index(i, x.shape) for i in part), known=bad)
            continue
        for half in np.array_split(part, 2):
            w = np.zeros(x.size, dtype=x.dtype)
            w[half] = v.reshape(-1)[half]
            if not _check_direction(problem, k, w.reshape(x.shape), analytic, step, rtol, atol,
                                    check):
                suspects.append(half)
    return bad


def _check_elements(problem, k, analytic, step, rtol, atol, check, indices, known=()):
    bad = list(known)
    seen = {tuple(int(i) for i in index) for index, _, _ in known}
    x = problem.values[k]
    for index in indices:
        index = tuple(int(i) for i in index)
        if index in seen:
            continue
        e = np.zeros(x.shape, dtype=x.dtype)
        e[index] = 1.0
        a = float(analytic[index])
        if not _check_direction(problem, k, e, analytic, step, rtol, atol, check):
            plus, minus = problem.phi(k, e * step), problem.phi(k, -e * step)
            bad.append((index, a, (plus - minus) / (2 * step)))
            seen.add(index)
    return bad


# ---------------------------------------------------------------------- what is checked
class _Problem:
    """The scalar function phi(x) = <p, f(x)> of the checked variables, and its gradient."""

    label = "f"
    dtype = np.float64

    def phi(self, k, delta):
        """phi with variable k moved by delta (None: unmoved)."""
        values = list(self.values)
        if delta is not None:
            values[k] = values[k] + delta
        return self.evaluate(values)

    def restore(self):
        pass


class _OpProblem(_Problem):
    """An op, block or custom layer called eagerly: forward, then ``dzdy=`` backward."""

    def __init__(self, f, inputs, options, dtype, wrt):
        self.f, self.options, self.dtype = f, options, dtype
        self.label = getattr(f, "name", None) or getattr(f, "__name__", repr(f))
        self.all_inputs = [_cast(x, dtype) for x in inputs]
        checkable = [i for i, x in enumerate(self.all_inputs) if _is_float_array(x)]
        self.positions = list(wrt) if wrt is not None else checkable
        for i in self.positions:
            if i not in checkable:
                raise ValueError(f"gradcheck: input {i} of {self.label} is not a floating-point "
                                 f"array and cannot be checked")
        self.names = [_argument_name(f, i) for i in self.positions]
        self.values = [self.all_inputs[i] for i in self.positions]
        output = self.forward(self.values)
        rng = np.random.default_rng(12345)
        self.projection = _random_like(output, rng)
        ders = self.f(*self.all_inputs, dzdy=self.projection, **self.options)
        if len(self.all_inputs) == 1 or not isinstance(ders, (tuple, list)):
            ders = (ders,)
        self.gradients = [_as_float64(ders[i], self.label, i) for i in self.positions]

    def forward(self, values):
        args = list(self.all_inputs)
        for i, value in zip(self.positions, values):
            args[i] = value
        return self.f(*args, **self.options)

    def evaluate(self, values):
        return _inner(self.projection, self.forward(values))

    def gradient(self, k):
        return self.gradients[k]


class _NetProblem(_Problem):
    """A compiled Net: checks its float inputs and its Params."""

    def __init__(self, net, feed, dtype, wrt):
        self.net, self.dtype, self.label = net, dtype, "Net"
        feed = {(k.name if isinstance(k, Layer) else k): v for k, v in (feed or {}).items()}
        self.feed = {k: _cast(v, dtype) for k, v in feed.items()}
        self.saved_params = [(p, p.value) for p in net.params]
        for p in net.params:
            p.value = _cast(p.value, dtype)
        names = [n for n, v in self.feed.items() if _is_float_array(v)]
        # 'average' Params (bnorm's moments) receive new values, not derivatives, and 'none'
        # Params are fixed: only 'gradient' ones have a derivative to check
        names += [p.name for p in net.params if p.train_method == "gradient"]
        self.names = list(wrt) if wrt is not None else names
        self.values = [self._current(name) for name in self.names]
        net.eval(self._feed(self.values), mode="forward")
        rng = np.random.default_rng(12345)
        self.projections = [
            _random_like(backend.to_numpy(net.value(layer)), rng)
            if net._compiled.requires_der[net._compiled.slot_of[id(layer)]] else None
            for layer in net.outputs]
        net.eval(self._feed(self.values), der_output=self.projections)
        self.gradients = [_as_float64(backend.to_numpy(net.der(name)), "Net", name)
                          for name in self.names]

    def _current(self, name):
        if name in self.feed:
            return self.feed[name]
        for p in self.net.params:
            if p.name == name:
                return p.value
        raise ValueError(f"gradcheck: the net has no input or param named {name!r}")

    def _feed(self, values):
        feed = dict(self.feed)
        params = {p.name: p for p in self.net.params}
        for name, value in zip(self.names, values):
            if name in params:
                params[name].value = value
            else:
                feed[name] = value
        return feed

    def evaluate(self, values):
        self.net.eval(self._feed(values), mode="forward")
        return sum(_inner(p, backend.to_numpy(self.net.value(layer)))
                   for p, layer in zip(self.projections, self.net.outputs) if p is not None)

    def gradient(self, k):
        return self.gradients[k]

    def restore(self):
        for p, value in self.saved_params:
            p.value = value


def _problem_for(f, inputs, options, dtype, wrt):
    if isinstance(f, Net):
        if len(inputs) > 1 or (inputs and not isinstance(inputs[0], dict)):
            raise TypeError("gradcheck: a Net is checked with one dict of inputs")
        if options:
            raise TypeError(f"gradcheck: unknown options {sorted(options)} for a Net")
        return _NetProblem(f, inputs[0] if inputs else {}, dtype, wrt)
    if isinstance(f, Op) or _accepts_dzdy(f):
        return _OpProblem(f, inputs, options, dtype, wrt)
    if callable(f):
        return _OpProblem(_traced(f), inputs, options, dtype, wrt)
    raise TypeError(f"gradcheck: cannot check {type(f).__name__}; give an op, a block, "
                    f"a Net or a function of Layers")


def _traced(function):
    """A function of Layers, made callable with ``dzdy=`` by tracing it into a Net."""

    def call(*inputs, dzdy=None, **options):
        if dzdy is None:
            return function(*inputs, **options)
        need = tuple(_is_float_array(x) for x in inputs)
        ders = traced_derivatives(function, inputs, dzdy, options, need)
        return ders[0] if len(inputs) == 1 else ders
    call.__name__ = getattr(function, "__name__", "function")
    call.__wrapped__ = function
    return call


def _accepts_dzdy(f):
    try:
        return "dzdy" in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False


def _argument_name(f, i):
    names = getattr(f, "input_names", None)
    if not names:
        try:
            names = [p.name for p in inspect.signature(getattr(f, "__wrapped__", f))
                     .parameters.values() if p.kind in (p.POSITIONAL_ONLY,
                                                        p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            names = []
    return names[i] if i < len(names) else f"input{i}"


def _cast(x, dtype):
    if _is_float_array(x):
        return backend.to_numpy(x).astype(dtype)
    return x


def _is_float_array(x):
    return hasattr(x, "dtype") and hasattr(x, "shape") and np.issubdtype(x.dtype, np.floating)


def _as_float64(d, label, which):
    if d is None:
        raise ValueError(f"gradcheck: {label} returned no derivative for input {which}")
    return np.asarray(backend.to_numpy(d), dtype=np.float64)


def _random_like(output, rng):
    if isinstance(output, (tuple, list)):
        return tuple(_random_like(o, rng) for o in output)
    output = np.asarray(output)
    return rng.standard_normal(output.shape).astype(
        output.dtype if np.issubdtype(output.dtype, np.floating) else np.float64)


def _inner(p, y):
    if isinstance(p, tuple):
        return sum(_inner(a, b) for a, b in zip(p, y))
    return float(np.sum(np.asarray(p, dtype=np.float64)
                        * np.asarray(backend.to_numpy(y), dtype=np.float64)))
