"""Loops in the graph: AutoNN's ``For`` and ``While``, compiled as inner tapes.

::

    x0, w = an.Input(), an.Param(np.ones(3))
    y = an.For(lambda x, t: w * x + t, x0, 4)              # four iterations, t = 0, 1, 2, 3
    h, c = an.For(step, h0, c0, count=T, concatenate=1)    # T a Layer: known at run time
    z = an.While(lambda x, t: 2 * x, x0, count=100, stop=lambda x, t: x.sum() > 10)

The body is called once, on placeholder Inputs (one per state variable, and ``t``), and the
graph it builds is compiled once into an inner :class:`~autonn.tape.Tape`. The loop itself is one
node of the outer graph, one step of the outer tape: its forward runs the inner forward pass once
per iteration, feeding each iteration's outputs back as the next state; its backward replays the
iterations in reverse, feeding the derivatives of the state back.

What the body reads from outside (Params, Inputs, Layers computed before the loop, Params the
body itself creates) is found by dependence: every Layer of the body's graph that does not depend
on the state or on ``t`` is loop-invariant. It is computed once, outside the loop, and enters the
loop node as a non-recursive input; its derivative is the sum over the iterations. (So a random
op on loop-invariant values alone, such as dropout of a Param, draws once for the whole loop.)

Memory: each iteration records only the values the inner backward pass reads (the inner tape is
always planned as ``conserve_memory`` plans a net: its values are never read by name). The record
is the loop step's last output slot (``for1_record``): the outer tape keeps or releases it like
any value (released after the loop's backward step under the outer ``conserve_memory``, never
recorded in test mode).

Shapes: the op's shape rule runs the inner tape's shape rules, iteration after iteration, so
``net.summary(input_sizes=...)`` and ``Layer.shape`` see through a loop (a concatenated output
of a run-time count has no shape before it runs).

:meth:`autonn.Net.save` writes a loop's inner graph (:class:`LoopGraph`) inside the loop's
entry, and ``Net.load`` compiles it again (:func:`loop_node`). Not done yet: receptive fields
through a loop, ONNX export.
"""

import inspect
import threading
from typing import NamedTuple

import numpy as np

from . import backend, codegen, registration
from . import net as net_module
from .compiler import compile_graph
from .layer import Input, Layer, Selector, sequential_names, topological_order
from .ops import REGISTRY, Op
from .shapes import node_shape, shape_argument


def For(body, *initial, count=None, concatenate=None):  # noqa: N802 (AutoNN's name)
    """A differentiable for-loop (AutoNN's ``For``): ``count`` iterations of ``body``.

    ``For(body, x0, y0, ..., count)`` or ``For(body, x0, y0, ..., count=count)``.

    Parameters
    ----------
    body : callable
        ``body(*state, t)`` returns the next state (one Layer per state variable, a tuple for
        several); ``t`` is the 0-based iteration index, an Input the body may compute with
        (``x + t``, ``t >= 2``): a NumPy scalar of the loop's floating dtype (that of the first
        floating-point initial or outside value), so arithmetic on it keeps float32 float32.
        It carries no derivative. Called once, on placeholders, to build the inner graph.
    initial : Layers or arrays
        The initial value of each state variable.
    count : int or Layer
        The number of iterations, fixed at compile time (an int) or read at run time (a Layer
        whose value is a whole number, e.g. an Input fed ``8``).
    concatenate : None, int or sequence
        None: the loop returns the final state. An axis: every state variable's value after each
        iteration is concatenated along that axis, in iteration order (``numpy.concatenate``:
        AutoNN's ``cat`` over iterations; give the state a size-1 axis there to stack the
        iterations along it, as AutoNN does). A sequence with one axis or None per state
        variable chooses per output. With zero iterations a concatenated output is empty along
        its axis and otherwise shaped like the initial value.

    Returns
    -------
    Layer, or a tuple of Layers (one per state variable).
    """
    if count is None:
        if len(initial) < 2:
            raise TypeError("For: give the initial state and the count, For(body, x0, count) "
                            "or For(body, x0, count=n)")
        initial, count = initial[:-1], initial[-1]
    return _loop("For", body, initial, count, None, concatenate)


def While(body, *initial, count=None, stop=None, concatenate=None):  # noqa: N802
    """A differentiable while-loop: iterate ``body`` until ``stop`` holds or ``count``
    iterations have run.

    ``stop(*state, t)`` (or ``stop(*state)``) is evaluated on the state before each iteration,
    as Python's ``while not stop(state): state = body(state)``: the loop returns the first state
    for which it is true (the initial state itself when it holds at once), or the state after
    ``count`` iterations. It must give a single truth value (a Layer of one element). Either or
    both of ``count`` and ``stop`` must be given; without ``count`` nothing bounds the loop.

    Derivatives: the number of iterations is a step function of the inputs, so the derivative
    is that of the loop with the iteration count the forward pass found held fixed: the stop
    decision is not differentiated (its derivative is zero wherever the count does not jump,
    and undefined where it does). ``body``, ``count`` and ``concatenate`` are as in
    :func:`For`; the stop condition's graph is compiled once too, into a second inner tape, and
    what it reads from outside enters the loop like the body's.
    """
    if count is None and stop is None:
        raise TypeError("While: give count= (the most iterations), stop= (a condition on the "
                        "state) or both, or the loop never ends")
    if stop is not None and not callable(stop):
        raise TypeError(f"While: stop must be a function of the state, got "
                        f"{type(stop).__name__}")
    return _loop("While", body, initial, count, stop, concatenate)


# ---------------------------------------------------------------------- building the loop
def _loop(kind, body, initial, count, stop, concatenate):
    if not callable(body):
        raise TypeError(f"{kind}: body must be a function body(*state, t), got "
                        f"{type(body).__name__}")
    if not initial:
        raise TypeError(f"{kind}: give the initial value of at least one state variable")
    _check_count(kind, count)
    axes = _concatenate_axes(kind, concatenate, len(initial))
    _check_arity(kind, "body", body, len(initial) + 1)
    state_names = _state_names(body, len(initial))
    states = [Input(name) for name in state_names]
    t = Input("t")
    outputs = _as_outputs(kind, body(*states, t), len(initial))
    stop_output = None
    if stop is not None:
        stop_output = stop(*states, t) if _takes(stop, len(initial) + 1) else stop(*states)
        if not isinstance(stop_output, Layer):
            raise TypeError(f"{kind}: stop must return a Layer (a condition computed from the "
                            f"state), got {type(stop_output).__name__}")
    graph_outputs = outputs + ([stop_output] if stop_output is not None else [])
    outside, placeholders = _hoist_invariants(graph_outputs, states + [t],
                                              set(state_names) | {"t"})
    outputs = [placeholders.get(id(x), x) for x in outputs]
    if stop_output is not None:
        stop_output = placeholders.get(id(stop_output), stop_output)
    node = loop_node(LoopGraph(kind, outputs, states, t, [placeholders[id(x)] for x in outside],
                               stop_output, axes), list(initial) + outside + [count])
    selectors = tuple(Selector(node, k) for k in range(len(initial)))
    return selectors[0] if len(selectors) == 1 else selectors


class LoopGraph(NamedTuple):
    """A loop's inner graph, closed: the body's outputs (and the stop condition's) read only
    the placeholder Inputs (the state, ``t``, one per outside value) and constants. It is what
    the loop compiles and what :meth:`autonn.Net.save` writes."""

    kind: str            # 'For' or 'While'
    outputs: list        # the next state, one Layer per state variable
    states: list         # the state's placeholder Inputs
    t: Layer             # the iteration index's Input
    outside: list        # the placeholder Inputs of the outside values, in the node's order
    stop: object         # the stop condition's Layer, or None
    axes: list           # concatenate: an axis or None per state variable


def loop_node(graph, inputs):
    """The loop node of ``graph`` (a :class:`LoopGraph`, or its fields in order) on
    ``inputs`` (``*initial, *outside, count``): compiles the inner graph. Also how
    :func:`autonn.serialization.load_graph` rebuilds a saved loop."""
    graph = LoopGraph(*graph)
    expected = len(graph.states) + len(graph.outside) + 1
    if len(inputs) != expected:
        raise ValueError(f"{graph.kind}: the loop node takes {expected} inputs (initial "
                         f"states, outside values, count), got {len(inputs)}")
    program = LoopProgram(graph)
    return Layer(LoopOp(graph.kind.lower(), program, len(graph.states), len(graph.outside)),
                 inputs)


registration.provide("loop_node", loop_node)


def _hoist_invariants(outputs, placeholders, taken):
    """Find what the body reads from outside: the Layers of its graph that do not depend on a
    placeholder, read by one that does (or returned as they are). Each is replaced, in the
    body's own Layers, by an Input of the inner graph. Returns the outside Layers in order and
    ``{id(outside Layer): inner Input}``."""
    variant = {id(p) for p in placeholders}
    order = topological_order(outputs)
    for layer in order:
        if any(isinstance(x, Layer) and id(x) in variant for x in layer.inputs):
            variant.add(id(layer))
    outside, inner = [], {}

    def inner_input(x):
        if id(x) not in inner:
            name = x.name if x.name and x.name not in taken else f"outside{len(outside) + 1}"
            while name in taken:
                name += "_"
            taken.add(name)
            outside.append(x)
            inner[id(x)] = Input(name)
        return inner[id(x)]

    for layer in order:
        if id(layer) not in variant or isinstance(layer, Input):
            continue
        if any(isinstance(x, Layer) and id(x) not in variant for x in layer.inputs):
            # the body's own Layer (it depends on a placeholder made here): rewire it
            layer.inputs = tuple(inner_input(x) if isinstance(x, Layer) and id(x) not in variant
                                 else x for x in layer.inputs)
    for x in outputs:
        if id(x) not in variant:
            inner_input(x)
    return outside, inner


class LoopProgram:
    """The compiled inner graph(s) of one loop and how to run them: the body's tape (and the
    stop condition's), the slots of the state, of ``t`` and of the outside values, and the
    slots each iteration records for the backward pass."""

    def __init__(self, graph):
        self.graph = graph
        kind, outputs, states, t, outside, stop_output, axes = graph
        self.kind, self.axes = kind, list(axes)
        sequential_names(list(outputs) + ([stop_output] if stop_output is not None else []))
        self.body = _InnerTape(list(outputs), states, t, outside)
        self.stop = (_InnerTape([stop_output], states, t, outside)
                     if stop_output is not None else None)
        self.num_states = len(states)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs, test):
        """Run the loop on the outer step's inputs: the states, then ``(record or None)``."""
        n, kind = self.num_states, self.kind
        state = list(inputs[:n])
        outside = inputs[n:-1]
        count = _count_value(kind, inputs[-1])
        t_type = _index_type(inputs[:-1])
        body = self.body.passes(test)
        stop = self.stop.passes(test) if self.stop is not None else None
        constants = self.body.constants_like(inputs)
        stop_constants = self.stop.constants_like(inputs) if self.stop is not None else None
        recorded = [] if not test else None
        collected = [[] for _ in range(n)]
        t = 0
        while count is None or t < count:
            if stop is not None and self._stops(stop, stop_constants, state, outside, t,
                                                t_type):
                break
            values = self.body.load(constants, state, outside, t, t_type)
            self.body.run(body[0], values, t)
            state = [values[s] for s in self.body.output_slots]
            if recorded is not None:
                recorded.append(tuple(values[s] for s in self.body.record_slots))
            for k, axis in enumerate(self.axes):
                if axis is not None:
                    collected[k].append(state[k])
            t += 1
        results = [self._concatenated(k, collected[k], inputs[k]) if axis is not None
                   else state[k] for k, axis in enumerate(self.axes)]
        record = None
        if recorded is not None:
            sizes = [[np.shape(v)[axis] for v in collected[k]] if axis is not None else None
                     for k, axis in enumerate(self.axes)]
            record = LoopRecord(recorded, sizes)
        return tuple(results) + (record,)

    def _stops(self, passes, constants, state, outside, t, t_type):
        values = self.stop.load(constants, state, outside, t, t_type)
        self.stop.run(passes[0], values, t)
        flag = values[self.stop.output_slots[0]]
        if np.size(flag) != 1:
            raise ValueError(f"{self.kind}: the stop condition must be one truth value, got "
                             f"shape {tuple(np.shape(flag))} at iteration t={t}")
        return bool(flag.item() if hasattr(flag, "item") else flag)

    def _concatenated(self, k, parts, initial):
        axis = self.axes[k]
        xp = backend.array_module(initial)
        if not parts:  # no iteration: empty along the axis, shaped like the initial value
            shape = list(np.shape(initial))
            if not -len(shape) <= axis < len(shape):
                raise ValueError(f"{self.kind}: concatenate axis {axis} is out of range for "
                                 f"state {k} of shape {tuple(shape)}")
            shape[axis] = 0
            return xp.zeros(shape, getattr(initial, "dtype", np.float64))
        ndim = np.ndim(parts[0])
        if not -ndim <= axis < ndim:
            raise ValueError(f"{self.kind}: concatenate axis {axis} is out of range for "
                             f"state {k}, whose value has shape {tuple(np.shape(parts[0]))} "
                             f"(give it an axis to concatenate along)")
        return backend.array_module(parts[0]).concatenate(parts, axis=axis)

    # ------------------------------------------------------------------ backward
    def backward(self, inputs, outputs, dzdy, need):
        """The derivatives of the initial states and of the outside values (None for those
        ``need`` does not ask for), replaying the recorded iterations in reverse."""
        n = self.num_states
        record = outputs[-1]
        if record is None:
            raise ValueError(f"{self.kind}: no recorded iterations to differentiate (the "
                             f"forward pass ran in test mode)")
        outside = inputs[n:-1]
        body = self.body
        backward = body.passes(False)[1]
        constants = body.constants_like(inputs)
        t_type = _index_type(inputs[:-1])
        splits = [_slices(dzdy[k], axis, record.sizes[k]) if axis is not None and
                  dzdy[k] is not None else None for k, axis in enumerate(self.axes)]
        count = len(record.values)
        state_ders = [dzdy[k] if self.axes[k] is None else None for k in range(n)]
        outside_ders = [None] * len(outside)
        for t in reversed(range(count)):
            values = body.load(constants, [None] * n, outside, t, t_type)
            for slot, value in zip(body.record_slots, record.values[t]):
                values[slot] = value
            ders = [None] * len(values)
            for k, slot in enumerate(body.output_slots):
                seed = _add(state_ders[k], splits[k][t] if splits[k] is not None else None)
                if seed is not None:
                    ders[slot] = _add(ders[slot], seed)
            body.run(backward, values, t, ders)
            state_ders = [ders[s] if s is not None else None for s in body.state_slots]
            for j, slot in enumerate(body.outside_slots):
                if slot is not None and need[n + j]:
                    outside_ders[j] = _add(outside_ders[j], ders[slot])
        ders = state_ders + outside_ders
        # what no iteration reached (zero iterations, a value the body does not differentiate)
        # has a zero derivative, as an op's input always gets one
        return [None if not need[k] else d if d is not None or not hasattr(inputs[k], "shape")
                else backend.array_module(inputs[k]).zeros_like(inputs[k])
                for k, d in enumerate(ders)]

    # ------------------------------------------------------------------ shapes
    def shape(self, *arguments):
        """The loop's output shapes from its inputs' (the op's shape rule): the inner tape's
        shape rules, iterated ``count`` times or until the state's shapes stop changing. A
        shape that depends on a number of iterations known only at run time (a Layer count,
        a stop condition) raises a ValueError, which leaves it unknown to the summaries."""
        n, kind = self.num_states, self.kind
        state = [_shape_or_scalar(a) for a in arguments[:n]]
        outside = arguments[n:-1]
        count = arguments[-1]
        known_count = (count if isinstance(count, (int, np.integer)) and self.stop is None
                       else None)
        sizes = [0] * n
        t = 0
        while known_count is None or t < known_count:
            following = self.body.output_shapes(state, outside)
            for k, axis in enumerate(self.axes):
                if axis is not None:
                    sizes[k] += _axis_size(kind, following[k], axis, k)
            fixed = following == state
            state = following
            t += 1
            if fixed and (known_count is None or all(a is None for a in self.axes)):
                break
        if known_count is None and any(a is not None for a in self.axes):
            raise ValueError(f"{kind}: a concatenated output's size follows the number of "
                             f"iterations, known only at run time")
        results = []
        for k, axis in enumerate(self.axes):
            if axis is None:
                results.append(tuple(state[k]))
                continue
            shape = list(state[k] if known_count else _shape_or_scalar(arguments[k]))
            _axis_size(kind, shape, axis, k)
            if known_count and t < known_count:  # fixed point: every iteration alike
                sizes[k] += (known_count - t) * shape[axis]
            shape[axis] = sizes[k]
            results.append(tuple(shape))
        return tuple(results) + (((known_count,) if known_count is not None else (0,)),)

    def describe(self):
        """The inner tapes as text lines, for the outer tape's and summary's display."""
        lines = [f"body: {line}" for line in self.body.step_lines()]
        if self.stop is not None:
            lines += [f"stop: {line}" for line in self.stop.step_lines()]
        return lines


class _InnerTape:
    """One compiled inner graph: its tape, the slots the loop loads and reads, and the
    generated passes (made again when the tape is edited, like a Net's)."""

    def __init__(self, outputs, states, t, outside):
        compiled = compile_graph(outputs, optimize=True, conserve_memory=True)
        tape = compiled.tape
        slot = compiled.slot_of.get
        self.state_slots = [slot(id(s)) for s in states]
        self.t_slot = slot(id(t))
        self.outside_slots = [slot(id(x)) for x in outside]
        if self.t_slot is not None:  # t carries no derivative
            tape.leaves = tuple(s for s in tape.leaves if s != self.t_slot)
            tape.update()
        self.tape = tape
        self.output_slots = list(tape.outputs)
        self.params = compiled.params
        if self.params:  # hoisting moves every Param outside; a Param here is a bug
            raise AssertionError(f"loop: Params left in the inner graph: {self.params}")
        self._lock = threading.Lock()
        self._generated, self._generated_at = None, None
        self._constants_by_device = {}
        self._record_slots()

    def _record_slots(self):
        """The slots the backward pass reads that the loop does not load again each
        iteration (outside values, constants and ``t`` are loaded; the rest is recorded)."""
        reloaded = {s for s in self.outside_slots if s is not None}
        reloaded |= {slot for slot, _ in self.tape.constants}
        reloaded.add(self.t_slot)
        read = set()
        for step in self.tape.backward:
            needs = step.op.backward_needs_inputs
            positions = range(len(step.inputs)) if needs is None else needs
            read.update(step.inputs[p] for p in positions)
            if step.op.backward_needs_output or step.multiple_outputs:
                read.update(step.outputs)
        self.record_slots = sorted(read - reloaded)

    def passes(self, test):
        """(forward, backward) generated functions for this tape as it is now."""
        tape, debug = self.tape, net_module.DEBUG
        with self._lock:
            if self._generated_at != (tape.edits, debug):
                self._record_slots()
                trace = codegen.trace_step if debug else None
                self._generated = {
                    False: (codegen.forward_pass(tape.forward, test=False, trace=trace),
                            codegen.backward_pass(tape.backward, trace=trace)),
                    True: (codegen.forward_pass(tape.forward, test=True, trace=trace), None)}
                self._generated_at = (tape.edits, debug)
            return self._generated[test]

    def constants_like(self, inputs):
        """The inner constants on the device of the loop's inputs (moved once per device)."""
        device = next((backend.device_of(x) for x in inputs if hasattr(x, "shape")), "cpu")
        constants = self._constants_by_device.get(device)
        if constants is None:
            constants = [(slot, backend.to_device(value, device) if hasattr(value, "shape")
                          else value) for slot, value in self.tape.constants]
            self._constants_by_device[device] = constants
        return constants

    def load(self, constants, state, outside, t, t_type):
        values = [None] * len(self.tape.names)
        for slot, value in constants:
            values[slot] = value
        for slot, value in zip(self.outside_slots, outside):
            if slot is not None:
                values[slot] = value
        for slot, value in zip(self.state_slots, state):
            if slot is not None:
                values[slot] = value
        if self.t_slot is not None:
            values[self.t_slot] = t_type(t)
        return values

    def run(self, generated, values, t, ders=None):
        """Run a generated pass; an error names the inner step, its inputs and ``t``."""
        try:
            if ders is None:
                generated.function(values)
            else:
                generated.function(values, ders)
        except Exception as error:
            step, frame_locals = generated.step_at(error.__traceback__)
            if step is None:
                raise
            shapes = ", ".join(codegen.describe_value(frame_locals.get(f"v{i}"))
                               for i in step.inputs)
            phase = "backward of " if ders is not None else ""
            message = (f"at iteration t={t}, {phase}{step.op.name} layer '{step.name}' of the "
                       f"loop body (created at {step.source}) with inputs ({shapes}): {error}")
            try:
                new_error = type(error)(message)
            except Exception:  # noqa: BLE001 (an exception type that takes other arguments)
                new_error = RuntimeError(message)
            raise new_error.with_traceback(error.__traceback__) from None

    def output_shapes(self, state, outside):
        """The shapes of the body's outputs for the given state and outside shapes."""
        shapes = {slot: shape for slot, shape in zip(self.state_slots, state)
                  if slot is not None}
        shapes.update((slot, _shape_or_scalar(shape)) for slot, shape in
                      zip(self.outside_slots, outside) if slot is not None)
        if self.t_slot is not None:
            shapes[self.t_slot] = ()
        constants = dict(self.tape.constants)
        for step in self.tape.forward:
            arguments = [shapes[i] if i in shapes else shape_argument(constants[i])
                         for i in step.inputs]
            out = node_shape(step.op, arguments, step.options)
            for slot, shape in zip(step.outputs, out if len(step.outputs) > 1 else (out,)):
                shapes[slot] = shape
        return [tuple(shapes[slot]) for slot in self.output_slots]

    def step_lines(self):
        names = self.tape.names
        return [f"{', '.join(names[o] for o in step.outputs)} = {step.op.name}("
                f"{', '.join(names[i] for i in step.inputs)})" for step in self.tape.forward]


class LoopRecord:
    """What a loop's forward pass keeps for its backward pass: per iteration, the values of
    the inner slots the backward reads, and the sizes of the concatenated outputs along their
    axes. ``shape`` is ``(iterations,)`` and ``nbytes`` the arrays' bytes (for summaries)."""

    def __init__(self, values, sizes):
        self.values, self.sizes = values, sizes

    @property
    def shape(self):
        return (len(self.values),)

    @property
    def nbytes(self):
        seen, total = set(), 0
        for values in self.values:
            for value in values:
                if id(value) not in seen:
                    seen.add(id(value))
                    total += int(getattr(value, "nbytes", 0))
        return total

    def __repr__(self):
        return f"<LoopRecord: {len(self.values)} iterations, {self.nbytes} bytes>"


class LoopOp(Op):
    """The op of one loop node: ``(*initial, *outside, count) -> (*final, record)``.

    One per loop (it holds the loop's inner tapes), so it is not put in the op registry.
    ``inner_tapes`` is what the displays read (the outer tape's repr, ``net.summary()``, the
    graph picture) to show the loop as one node holding its inner graph.
    """

    def __init__(self, name, program, num_states, num_outside):
        previous = REGISTRY.get(name)
        super().__init__(name, self._forward, num_outputs=num_states + 1,
                         backward_needs_inputs=range(num_states, num_states + num_outside),
                         backward_needs_output=True, forward_test=self._forward_test,
                         shape=program.shape, receptive_field="none",
                         doc=f"AutoNN's {program.kind}: an inner tape run once per iteration")
        if previous is None:  # one op per loop: never the registry's
            REGISTRY.pop(name, None)
        else:
            REGISTRY[name] = previous
        self.program = program
        self.num_states, self.num_outside = num_states, num_outside
        self.output_suffixes = tuple(range(num_states)) + ("record",)
        self.input_names = tuple(f"initial{k}" for k in range(num_states)) + tuple(
            f"outside{j}" for j in range(num_outside)) + ("count",)

    @property
    def loop_graph(self):
        """The inner graph (:class:`LoopGraph`) this op compiled: what Net.save writes."""
        return self.program.graph

    @property
    def inner_tapes(self):
        tapes = [("body", self.program.body.tape)]
        if self.program.stop is not None:
            tapes.append(("stop", self.program.stop.tape))
        return tuple(tapes)

    def describe_inner(self):
        return self.program.describe()

    def _forward(self, *inputs):
        return self.program.forward(inputs, test=False)

    def _forward_test(self, *inputs):
        return self.program.forward(inputs, test=True)

    def has_derivative(self, index):
        return index < self.num_states + self.num_outside

    def derivative_functions(self, need):
        need = tuple(bool(n) and self.has_derivative(i) for i, n in enumerate(need))
        positions = tuple(i for i, wanted in enumerate(need) if wanted)
        if not positions:
            return ()
        program = self.program

        def run(dzdy, y, *inputs):
            ders = program.backward(inputs, y, dzdy, need)
            return ders[positions[0]] if len(positions) == 1 else tuple(ders[p]
                                                                        for p in positions)
        return ((positions, run),)

    def __deepcopy__(self, memo):
        return self  # the inner tapes are the graph's, shared like any op

    def __copy__(self):
        return self


# ---------------------------------------------------------------------- helpers
def _check_count(kind, count):
    if isinstance(count, Layer) or (count is None and kind == "While"):
        return
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"{kind}: count must be an int or a Layer (a count known at run "
                        f"time), got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"{kind}: count must be at least 0, got {count}")


def _count_value(kind, count):
    """The number of iterations from the value of the count input (None: no limit)."""
    if count is None:
        return None
    if np.size(count) != 1:
        raise ValueError(f"{kind}: count must be one number, got shape "
                         f"{tuple(np.shape(count))}")
    value = count.item() if hasattr(count, "item") else count
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise ValueError(f"{kind}: count must be a whole number of at least 0, got {value!r}")
    return int(value)


def _concatenate_axes(kind, concatenate, num_states):
    if concatenate is None:
        return [None] * num_states
    if isinstance(concatenate, (int, np.integer)) and not isinstance(concatenate, bool):
        return [int(concatenate)] * num_states
    if isinstance(concatenate, (list, tuple)) and len(concatenate) == num_states and all(
            a is None or (isinstance(a, (int, np.integer)) and not isinstance(a, bool))
            for a in concatenate):
        return [None if a is None else int(a) for a in concatenate]
    raise TypeError(f"{kind}: concatenate must be None, an axis, or one axis or None per "
                    f"state variable ({num_states}), got {concatenate!r}")


def _check_arity(kind, what, function, count):
    if not _takes(function, count):
        try:
            signature = f"{getattr(function, '__name__', what)}{inspect.signature(function)}"
        except (TypeError, ValueError):
            signature = what
        raise TypeError(f"{kind}: {what} must take the {count - 1} state value(s) and the "
                        f"iteration index t, {what}(*state, t); {signature} does not")


def _takes(function, count):
    try:
        inspect.signature(function).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume it does
        return True
    return True


def _state_names(body, count):
    """The body's parameter names for the state placeholders (``x``, ``y``), where it has
    them; ``state1``... otherwise. ``t`` is the index's."""
    try:
        parameters = [p.name for p in inspect.signature(body).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    names = parameters[:count] if len(parameters) >= count else []
    names = [name if name != "t" else f"state{k + 1}" for k, name in enumerate(names)]
    if len(set(names)) != count:
        names = [f"state{k + 1}" for k in range(count)]
    return names


def _as_outputs(kind, result, count):
    outputs = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(outputs) != count:
        raise ValueError(f"{kind}: body must return the next value of each of the {count} "
                         f"state variable(s), got {len(outputs)}")
    for k, output in enumerate(outputs):
        if not isinstance(output, Layer):
            raise TypeError(f"{kind}: body must return Layers (computed from the state, t or "
                            f"outside Layers); output {k} is a {type(output).__name__}")
    return outputs


def _shape_or_scalar(argument):
    """A shape argument (a shape, or a number or None for a constant) as a shape."""
    return tuple(argument) if isinstance(argument, tuple) else ()


def _axis_size(kind, shape, axis, k):
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"{kind}: concatenate axis {axis} is out of range for state {k} of "
                         f"shape {tuple(shape)}")
    return shape[axis]


def _index_type(values):
    """The type ``t`` is given as: a NumPy scalar of the loop's floating dtype (the first
    floating-point value among the initial and outside values, else float64), so that
    ``x * (t + 1)`` keeps float32 a float32 (a NumPy integer would promote it to float64) and
    works on the GPU too."""
    for value in values:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind == "f":
            return dtype.type
    return np.float64


def _slices(der, axis, sizes):
    """The parts of a concatenated output's derivative, one per iteration."""
    parts, start = [], 0
    index = [slice(None)] * np.ndim(der)
    for size in sizes:
        index[axis] = slice(start, start + size)
        parts.append(der[tuple(index)])
        start += size
    return parts


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b
