"""``gradcheck``: compare analytic derivatives with central differences.

For a function ``f`` and a random projection ``p`` of its output, the scalar
``phi(x) = <p, f(x)>`` has the derivative ``g = f(x, dzdy=p)`` (what autonn computes). Along a
random signed direction ``v`` (entries ±1), the central difference
``(phi(x + eps v) - phi(x - eps v)) / (2 eps)`` must equal ``<g, v>``. Signed directions weigh
every element equally, so one element wrong by 5% shows up even in large inputs. When a
direction fails, bisection over the direction's support finds the wrong elements.

Kinks (ReLU at 0, ties in max): when the one-sided differences disagree (and keep their gap
when the step halves, which curvature does not), ``phi`` is not smooth along ``v``. Crossing one
kink, a correct derivative lies between the left and right derivatives. Crossing several at once
(small integers, 0/1 images, blank backgrounds, zero biases) it need not: the direction is then
split into halves that cross fewer, down to single elements (parts that passed between the
one-sided derivatives are looked into too, within ``LOOK_INSIDE_KINKS`` checks per input). An
element that still sits on several kinks, seen as slopes between its left and right ones at
points near x or along lines past x, proves nothing by differences: it is counted in
``unresolved_kinks`` instead of failed. Kinks whose gaps cancel in the projection, and kinks
near x but inside the step, are told from wrong derivatives the same way (slopes spreading near
x; a central difference that moves as the step shrinks and then agrees). A wrong derivative at a
smooth element, or outside the one-sided derivatives of a lone kink, still fails.

Precision: the step is rounded to a power of two (x ± step is then exact) and the rounding of
phi is measured at x (moves of a few units in the last place, whose effect is known), so the
tolerance is what the data type's precision allows. float64: step 1e-6 (relative to the largest
|x|), rtol 1e-6: errors of about 1e-5 relative and more are seen. float32: step 2^-8 (about the
cube root of float32's epsilon, which balances truncation against rounding), rtol 1e-3: errors of
0.2% and more are seen where rounding permits (a +2% error in a float32-only path fails); deep
nets evaluated in float32 round more, which the measured rounding allows for.
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
        Step of the central differences (default 1e-6 in float64, 2^-8 in float32), relative
        to the largest magnitude of the input, rounded to a power of two.
    rtol, atol : float
        Tolerances (default 1e-6 and 1e-12 in float64; 1e-3 and 1e-6 in float32), on top of
        the rounding measured in the function's evaluation.
    directions : int
        Random signed directions per input (after one of all ones, which keeps ties tied).
    elementwise : int
        Inputs with at most this many elements are also checked element by element.
    raise_on_failure : bool
        Raise ``AssertionError`` with the report when a check fails (the default).
    dtype : numpy dtype
        float64 (default) or float32: the data type the inputs (and a Net's Params) are cast
        to, so a float32 path is what is checked (see the module's notes on what it can see).
    wrt : sequence, optional
        Which inputs to check: positions (or, for a Net, names); all floating inputs by default.
    options : the op's own options (``stride=2``...), passed to ``f``.

    Returns
    -------
    GradcheckReport
        Per input: maximum absolute and relative error, kinks met (``kinks``; elements on
        several kinks at once, which differences cannot judge: ``unresolved_kinks``), elements
        found wrong;
        ``report['x']`` or ``report[0]`` is one input's entry, and iterating gives them all.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"gradcheck: dtype must be float32 or float64, got {dtype}")
    low_precision = dtype == np.float32
    eps = eps if eps is not None else (2.0 ** -8 if low_precision else 1e-6)
    rtol = rtol if rtol is not None else (1e-3 if low_precision else 1e-6)
    atol = atol if atol is not None else (1e-6 if low_precision else 1e-12)
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
        self.unresolved_kinks = 0  # elements on several kinks at once (see the module's notes)
        self.not_finite = 0  # checks that met NaN or infinity: nothing can be judged, it fails
        self.look_inside = LOOK_INSIDE_KINKS
        self.failed_directions = 0
        self.bad_elements = []  # (index, analytic, numerical)

    @property
    def passed(self):
        return self.failed_directions == 0 and not self.bad_elements and not self.not_finite

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
            if e.not_finite:
                lines.append(f"  {e.name}: {e.not_finite} checks met a value or derivative that "
                             f"is not finite (NaN or infinity): the function or its derivative "
                             f"is not defined at these inputs")
            if e.unresolved_kinks:
                lines.append(f"  {e.name}: {e.unresolved_kinks} element checks met several "
                             f"kinks at once and were not judged")
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
PASS, KINKED, FAIL, SPLIT, UNRESOLVED = "pass", "kinked", "fail", "split", "unresolved"
# How many further checks (sub-directions and elements) each input may spend on looking inside
# parts of directions that crossed kinks and passed (a derivative between the one-sided ones
# proves nothing when several kinks are crossed: their halves cross fewer)
LOOK_INSIDE_KINKS = 256


def _step_for(x, eps):
    """The difference step: eps times the largest magnitude of x (at least eps), rounded to a
    power of two so that x ± step is exact for every element of x not larger than the step's
    binade allows (no rounding of the move itself)."""
    scale = max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
    return float(2.0 ** np.round(np.log2(eps * scale)))


def _check_variable(problem, k, name, rng, eps, rtol, atol, directions, elementwise):
    x = problem.values[k]
    check = VariableCheck(name, x.shape)
    step = _step_for(x, eps)
    analytic = problem.gradient(k)
    problem.rounding = _measure_rounding(problem, k, analytic, rng) if x.size else 0.0
    for d in range(directions + 1):
        # first all ones: a shift of every element keeps ties tied (a max-pool whose ties all
        # receive the derivative is wrong along it, and smooth), then random signs
        v = (np.ones(x.shape, x.dtype) if d == 0 else
             rng.choice(np.array([-1.0, 1.0], dtype=x.dtype), size=x.shape))
        status = _check_direction(problem, k, v, analytic, step, rtol, atol, check, rng)
        if status == PASS:
            continue
        # FAIL: a wrong derivative along v; SPLIT: v crosses several kinks at once, where
        # nothing follows from v itself: the halves of its support are checked instead
        bad, failed = _localize(problem, k, v, analytic, step, rtol, atol, check, rng,
                                known=check.bad_elements)
        check.bad_elements = bad
        if status == FAIL or failed:
            check.failed_directions += 1
    if x.size <= elementwise:
        check.bad_elements = _check_elements(problem, k, analytic, step, rtol, atol, check, rng,
                                             np.ndindex(*x.shape), known=check.bad_elements)
    return check


def _check_direction(problem, k, v, analytic, step, rtol, atol, check, rng, single=False):
    """Compare <analytic, v> with the central difference along v.

    Returns PASS, FAIL, SPLIT (v is not smooth and the derivative is outside the one-sided
    ones: v may cross several kinks, a decision needs smaller directions) or, for a single
    element (``single``), UNRESOLVED (the element sits on several kinks at once).
    """
    check.directions += 1
    phi_plus = problem.phi(k, v * step)
    phi_minus = problem.phi(k, -v * step)
    phi_zero = problem.phi(k, None)
    numerical = (phi_plus - phi_minus) / (2 * step)
    computed = float(np.sum(analytic * v))
    if not np.isfinite([phi_plus, phi_minus, phi_zero, computed]).all():
        # NaN compares unequal to everything: without this it looked like a kink, and passed
        check.not_finite += 1
        return FAIL
    # Rounding in phi limits how well a difference can agree; allow for it.
    noise = _noise(problem, step, phi_plus, phi_minus, phi_zero)
    allowed = atol + noise + rtol * max(abs(computed), abs(numerical))
    if abs(computed - numerical) <= allowed:
        check.record(computed, numerical)
        return PASS
    # Halving the step tells truncation error (which shrinks fourfold) from a wrong derivative.
    half_plus = problem.phi(k, v * step / 2)
    half_minus = problem.phi(k, -v * step / 2)
    half = (half_plus - half_minus) / step
    extrapolated = (4 * half - numerical) / 3
    # (what is left after extrapolation is a small fraction of the step's effect; near a kink
    # within the step the difference moves much more and is not trusted)
    if abs(computed - extrapolated) <= allowed + 0.1 * abs(half - numerical):
        check.record(computed, extrapolated)
        return PASS
    check.record(computed, numerical)
    right, left = (phi_plus - phi_zero) / step, (phi_zero - phi_minus) / step
    right_half = (half_plus - phi_zero) / (step / 2)
    left_half = (phi_zero - half_minus) / (step / 2)
    jump, jump_half = right - left, right_half - left_half
    # A kink keeps the gap between the one-sided differences when the step halves; curvature
    # halves it (so a smooth function seen with a large step is not taken for a kink).
    threshold = 2 * allowed
    if not (abs(jump) > threshold and abs(jump_half) > threshold
            and abs(jump_half - jump) < 0.25 * abs(jump) + 2 * _noise(problem, step / 2,
                                                                        half_plus, half_minus)):
        # No gap between the one-sided differences. Several kinks whose gaps cancel (in the
        # projection p) show none either, but the slopes near x then spread as far as the
        # disagreement: a smooth function's hardly move.
        if _agrees_at_smaller_steps(problem, k, v, computed, step, numerical,
                                    abs(half - numerical), rtol, atol, check):
            check.kinks += 1
            return PASS
        curvature = abs(phi_plus - 2 * phi_zero + phi_minus) / step ** 2
        slopes, straddled = _slopes_near(problem, k, v, step, allowed, curvature, rng)
        spread = max(slopes + [numerical]) - min(slopes + [numerical])
        if straddled or (spread > threshold and spread >= 0.25 * abs(computed - numerical)):
            check.kinks += 1
            return UNRESOLVED if single else SPLIT
        return FAIL
    check.kinks += 1
    # One kink: a correct derivative lies between the one-sided ones (which round twice as much
    # as the central difference, at the step and at half of it).
    low, high = min(left, right, left_half, right_half), max(left, right, left_half, right_half)
    slack = allowed + 1e-2 * (high - low)
    rounding = 2 * _noise(problem, step / 2, half_plus, half_minus)
    if low - slack - rounding <= computed <= high + slack + rounding:
        return PASS if single else KINKED
    if not single:
        return SPLIT
    # Seen from points x + s w near x (w random, s the step), the kinks through x move apart:
    # with one, the slope along v there is the left or the right one; with several, slopes
    # in between appear (the pieces between the kinks), or kinks lie close to most points.
    slopes, straddled = _slopes_near(problem, k, v, step, slack, 0.0, rng)
    if straddled or any(min(abs(s - left), abs(s - right)) > 2 * slack for s in slopes):
        return UNRESOLVED
    return UNRESOLVED if _several_kinks(problem, k, v, step, left, right, slack, rng) else FAIL


def _several_kinks(problem, k, v, step, left, right, slack, rng, lines=4, points=33):
    """Whether v crosses several kinks at x. Along x + s w + t v (w random, s the step), the
    kinks through x move apart: with one, the slope is the left one, then the right one; with
    several, slopes in between appear on consecutive segments of the scan (a lone kink can
    bend only the one segment that straddles it)."""
    x = problem.values[k]
    ts = np.linspace(-4 * step, 4 * step, points)
    h = ts[1] - ts[0]
    for _ in range(lines):
        w = rng.standard_normal(x.shape).astype(x.dtype) * x.dtype.type(step)
        values = [problem.phi(k, w + v * x.dtype.type(t)) for t in ts]
        slopes = np.diff(values) / h
        tolerance = 2 * slack + 2 * _noise(problem, h, *values)
        between = [min(abs(s - left), abs(s - right)) > tolerance for s in slopes]
        for i in range(len(slopes) - 1):
            if between[i] and between[i + 1]:
                return True
    return False


def _agrees_at_smaller_steps(problem, k, v, computed, step, numerical, truncation, rtol, atol,
                             check, levels=2):
    """A kink near x but not at it (closer than the step, with no gap at x itself) bends the
    central difference: with steps of a quarter, then a sixteenth, it moves by more than
    rounding and truncation can explain, and agrees once the step no longer reaches the kink.
    A wrong derivative is off by the same amount at every step, so it is not let through."""
    previous, previous_noise = numerical, _noise(problem, step, numerical)
    for _ in range(levels):
        step = step / 4
        plus, minus = problem.phi(k, v * step), problem.phi(k, -v * step)
        smaller = (plus - minus) / (2 * step)
        noise = _noise(problem, step, plus, minus)
        if abs(smaller - previous) <= 2 * (noise + previous_noise) + 2 * truncation:
            return False  # the difference did not move: no kink within the step
        if abs(computed - smaller) <= atol + noise + rtol * max(abs(computed), abs(smaller)):
            check.record(computed, smaller)
            return True
        previous, previous_noise = smaller, noise
    return False


def _slopes_near(problem, k, v, step, slack, curvature, rng, samples=6):
    """The slopes of phi along v at a few random points x + s w near x (s the step) where phi
    is smooth along v (the one-sided differences there agree within ``slack``, rounding and
    ``curvature``), and whether kinks met there so often that several must pass near x
    (half the points or more lie within a small step of one, which a lone kink seldom does)."""
    x = problem.values[k]
    tau = step / 8
    slopes, straddling = [], 0
    for _ in range(samples):
        w = rng.standard_normal(x.shape).astype(x.dtype) * x.dtype.type(step)
        base = problem.phi(k, w)
        plus, minus = problem.phi(k, w + v * tau), problem.phi(k, w - v * tau)
        forward, backward = (plus - base) / tau, (base - minus) / tau
        if abs(forward - backward) <= (slack + 2 * _noise(problem, tau, plus, minus, base)
                                       + 2 * tau * curvature):
            slopes.append((forward + backward) / 2)
        else:
            straddling += 1
    return slopes, 2 * straddling >= samples


def _noise(problem, step, *phis):
    """What rounding in the evaluation of phi can contribute to a difference with this step:
    four times the rounding measured at x (``_measure_rounding``), and no less than a few
    units in the last place of the terms of <p, f(x)>."""
    eps = np.finfo(problem.dtype).eps
    floor = eps * (4 * getattr(problem, "magnitude", 0.0) + max(abs(p) for p in phis))
    return 4 * max(floor, getattr(problem, "rounding", 0.0)) / step


def _measure_rounding(problem, k, analytic, rng, samples=3):
    """How much phi's rounding moves it: phi(x + u) - phi(x) - <g, u> for moves u of a few
    units in the last place of x, whose true effect <g, u> is known to far better than the
    rounding (even a wrong g is off by a fraction of a tiny amount)."""
    x = problem.values[k]
    base = problem.phi(k, None)
    ulp = np.spacing(np.abs(x).astype(x.dtype)).astype(x.dtype)
    worst = 0.0
    for _ in range(samples):
        u = (rng.integers(-4, 5, size=x.shape).astype(x.dtype) * ulp).astype(x.dtype)
        moved = (x + u).astype(x.dtype) - x  # the move as it lands in the data type
        worst = max(worst, abs(problem.phi(k, moved) - base
                               - float(np.sum(analytic * moved.astype(np.float64)))))
    return worst


def _localize(problem, k, v, analytic, step, rtol, atol, check, rng, known=(), limit=20):
    """Bisect the support of a direction to find the wrong elements (added to ``known``);
    also says whether some part of v failed outright (not only by crossing several kinks).

    Parts that fail or cross several kinks are always bisected; parts that crossed kinks and
    passed are looked into as far as ``LOOK_INSIDE_KINKS`` allows."""
    x = problem.values[k]
    required, optional = [np.arange(x.size)], []
    bad = list(known)
    failed = False
    while (required or (optional and check.look_inside > 0)) and len(bad) < limit:
        if required:
            part = required.pop()
        else:
            part = optional.pop()
            check.look_inside -= min(part.size, 2) if part.size > 4 else part.size
        if part.size <= 4:
            bad = _check_elements(problem, k, analytic, step, rtol, atol, check, rng,
                                  (np.unravel_index(i, x.shape) for i in part), known=bad)
            continue
        for half in np.array_split(part, 2):
            w = np.zeros(x.size, dtype=x.dtype)
            w[half] = v.reshape(-1)[half]
            status = _check_direction(problem, k, w.reshape(x.shape), analytic, step, rtol,
                                      atol, check, rng)
            if status in (FAIL, SPLIT):
                failed = failed or status == FAIL
                required.append(half)
            elif status == KINKED:
                optional.append(half)
    return bad, failed or len(bad) > len(known)


def _check_elements(problem, k, analytic, step, rtol, atol, check, rng, indices, known=()):
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
        status = _check_direction(problem, k, e, analytic, step, rtol, atol, check, rng,
                                  single=True)
        if status == UNRESOLVED:
            check.unresolved_kinks += 1
        elif status == FAIL:
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
        self.magnitude = _inner(self.projection, output, absolute=True)
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
        self.magnitude = float(np.sqrt(sum(
            _inner(p, backend.to_numpy(net.value(layer)), absolute=True) ** 2
            for p, layer in zip(self.projections, net.outputs) if p is not None)))
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


def _inner(p, y, absolute=False):
    """<p, y> in float64 (or, ``absolute``, the root of the sum of (p y)^2: the scale of its
    rounding, which adds up like a random walk)."""
    if isinstance(p, tuple):
        if absolute:
            return float(np.sqrt(sum(_inner(a, b, True) ** 2 for a, b in zip(p, y))))
        return sum(_inner(a, b) for a, b in zip(p, y))
    terms = np.asarray(p, dtype=np.float64) * np.asarray(backend.to_numpy(y), dtype=np.float64)
    return float(np.sqrt(np.sum(terms ** 2)) if absolute else np.sum(terms))
