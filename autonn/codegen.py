"""Turn a tape into straight-line Python: the fast way to walk it, and the only one.

A loop over step objects pays, per step, for list indexing, attribute lookups and argument
packing; for small arrays that costs more than the arithmetic. This module writes the same steps
as Python functions, with every slot a local variable and every step function a closure
variable, so a step costs one call; a long pass is a sequence of functions of
``STEPS_PER_FUNCTION`` steps each, which keeps generating it linear in the tape's length. The generated source is the tape, spelled out
(``print(net.tape.python_source())`` shows it); :class:`autonn.Net` regenerates it when its tape
is edited. An error inside it is mapped back, through its line number, to the step that raised.

A forward step is ``v3 = f0(v1, v2, **o0)``. A backward step calls the derivative functions its
op made for it (:meth:`autonn.ops.Op.derivative_functions`, stored in the step's ``calls``) and
does only what an executor must: skip the step when its output received no derivative, add each
result into its target slot, free what ``conserve_memory`` planned::

    if d3 is not None:
        u0 = b0_0(d3, v3, v1, v2, **o0)
        if u0 is not None: d1 = u0 if d1 is None else d1 + u0

With ``trace`` (``AUTONN_DEBUG=1``), the same code also calls ``trace(step, results)`` after
every step, :func:`trace_step` by default: debugging runs the very steps a normal run does.
"""

import sys
import time


# Steps per generated function. CPython compiles a function in time that grows faster than
# linearly with its closure variables and locals (a 40,000-step function took 5x as long per step
# as a 5,000-step one), so a long tape becomes a sequence of functions of this many steps, which
# hand their slots on through the slot lists. A few hundred steps keep that hand-over rare.
STEPS_PER_FUNCTION = 256


class GeneratedPass:
    """The generated functions of one pass, run in order, and the step each of their lines
    executes."""

    def __init__(self, parts):
        self.parts = parts  # list of (function, source, {line number: step})
        self.source = "\n".join(source for _, source, _ in parts)
        functions = [function for function, _, _ in parts]
        if len(functions) == 1:
            self.function = functions[0]
        else:
            def run_parts(*slot_lists):
                for function in functions:
                    function(*slot_lists)
            self.function = run_parts

    def step_at(self, traceback):
        """The step whose line raised, and the generated function's locals (the slots), from
        the traceback of an exception."""
        codes = {function.__code__: line_steps for function, _, line_steps in self.parts}
        while traceback is not None:
            line_steps = codes.get(traceback.tb_frame.f_code)
            if line_steps is not None:
                return line_steps.get(traceback.tb_lineno), traceback.tb_frame.f_locals
            traceback = traceback.tb_next
        return None, {}


def forward_pass(steps, test, trace=None):
    """``run(values)``: the forward steps, reading and writing the slot list ``values``;
    ``trace(step, outputs)`` is called after each step when given."""
    _check_slots(steps)
    return GeneratedPass([_forward_part(steps[first:first + STEPS_PER_FUNCTION], first, test,
                                        trace)
                          for first in _part_starts(steps)])


def _forward_part(steps, first, test, trace):
    writer = _Writer()
    produced = {o for step in steps for o in step.outputs}
    # what the part reads before it writes comes from the slot list: an input, a constant,
    # an earlier part's result, or a slot an edited step writes over after reading it
    read, written = set(), set()
    for step in steps:
        read.update(i for i in step.inputs if i not in written)
        written.update(step.outputs)
    read = sorted(read)
    body = []
    for k, step in enumerate(steps, first):
        function = writer.closure(f"f{k}", step.function_test if test else step.function)
        args = ", ".join(f"v{i}" for i in step.inputs)
        if step.options:
            args += (", " if args else "") + f"**{writer.closure(f'o{k}', step.options)}"
        targets = ", ".join(f"v{o}" for o in step.outputs)
        body.append((f"{targets} = {function}({args})", step))
        if trace is not None:
            body.append((_trace_call(writer, trace, k, step, [f"v{o}" for o in step.outputs]),
                         step))
        for slot in (step.free_test if test else step.free):
            body.append((_free(slot, "v", "values", slot in produced), step))
    lines = [f"v{i} = values[{i}]" for i in read]
    lines_with_steps = [(line, None) for line in lines] + body
    stores = sorted(produced | {s for step in steps
                                for s in (step.free_test if test else step.free)})
    lines_with_steps += [(f"values[{s}] = v{s}", None) for s in stores]
    return writer.build("forward", "values", lines_with_steps)


def backward_pass(steps, trace=None, finished=None):
    """``run(values, ders)``: the backward steps, accumulating into the slot list ``ders``;
    ``trace(step, derivatives)`` is called after each step that ran, when given.

    ``finished`` maps a step's index to ``(hook, slots)``: after that step (whether it ran or
    not) ``hook(slots, derivatives)`` gets the derivatives of ``slots``, which no later step
    adds to (None for one that received nothing): what overlaps communication with the rest
    of the backward pass (data-parallel training)."""
    _check_slots(steps)
    finished = finished or {}
    return GeneratedPass([_backward_part(steps[first:first + STEPS_PER_FUNCTION], first, trace,
                                         finished)
                          for first in _part_starts(steps)])


def _backward_part(steps, first, trace, finished=None):
    writer = _Writer()
    value_slots, der_slots = set(), set()
    body = []
    for k, step in enumerate(steps, first):
        value_slots.update(step.inputs)
        value_slots.update(step.outputs)
        der_slots.update(step.outputs)
        der_slots.update(slot for _, slot in step.targets)
        args = "".join(f", v{i}" for i in step.inputs)
        options = f", **{writer.closure(f'o{k}', step.options)}" if step.options else ""
        if step.multiple_outputs:
            body.append(("if " + " or ".join(f"d{o} is not None" for o in step.outputs) + ":",
                         step))
            dzdy = _tuple_text([f"d{o}" for o in step.outputs])
            y = _tuple_text([f"v{o}" for o in step.outputs])
        else:
            body.append((f"if d{step.outputs[0]} is not None:", step))
            dzdy, y = f"d{step.outputs[0]}", f"v{step.outputs[0]}"
        results = []
        for j, (function, targets) in enumerate(step.calls):
            function = writer.closure(f"b{k}_{j}", function)
            names = [f"u{len(results) + t}" for t in range(len(targets))]
            assign = f"{', '.join(names)} = " if names else ""
            body.append((f"    {assign}{function}({dzdy}, {y}{args}{options})", step))
            for u, (_, slot) in zip(names, targets):
                add = f"    if {u} is not None: d{slot} = {u} if d{slot} is None else d{slot} + {u}"
                body.append((add, step))
            results += names
        if trace is not None:
            body.append(("    " + _trace_call(writer, trace, k, step, results), step))
        if k in (finished or {}):
            hook, slots = finished[k]
            der_slots.update(slots)
            hook = writer.closure(f"finished{k}", hook)
            body.append((f"{hook}({tuple(slots)!r}, {_tuple_text([f'd{s}' for s in slots])})",
                         step))
        for slot in step.free_values:
            body.append((_free(slot, "v", "values", False), step))
        for slot in step.free_ders:
            body.append((_free(slot, "d", "ders", False), step))
    lines = [(f"v{i} = values[{i}]", None) for i in sorted(value_slots)]
    lines += [(f"d{i} = ders[{i}]", None) for i in sorted(der_slots)]
    freed_values = sorted({s for step in steps for s in step.free_values})
    lines += body
    lines += [(f"values[{s}] = v{s}", None) for s in freed_values]
    lines += [(f"ders[{s}] = d{s}", None) for s in sorted(der_slots)]
    return writer.build("backward", "values, ders", lines)


def _part_starts(steps):
    return range(0, max(len(steps), 1), STEPS_PER_FUNCTION)


def _free(slot, prefix, slot_list, local_only):
    """Free a slot (``conserve_memory``). A slot that came in through the slot list is dropped
    there too, at once: an earlier function of a long pass handed it on."""
    if local_only:
        return f"{prefix}{slot} = None"
    return f"{prefix}{slot} = {slot_list}[{slot}] = None"


def _check_slots(steps):
    """Slots become variable names (``v3``): an edited step must give non-negative ints, or the
    generated source would not even parse."""
    for step in steps:
        slots = tuple(step.inputs) + tuple(step.outputs) + tuple(
            slot for _, slot in getattr(step, "targets", ()))
        if not all(type(slot) is int and slot >= 0 for slot in slots):
            raise ValueError(f"tape step '{step.name}' ({step.op.name}): slots must be "
                             f"non-negative ints, got inputs {step.inputs}, outputs "
                             f"{step.outputs}")


def trace_step(step, results):
    """The ``AUTONN_DEBUG`` trace: a timestamp, the step and its results' shapes, on stderr."""
    shapes = ", ".join(describe_value(r) for r in results)
    print(f"[autonn {time.perf_counter():.6f}] {step!r} -> {shapes}", file=sys.stderr)


def describe_value(value):
    """``float32[2, 3]`` for an array, ``None``, or the repr of anything else."""
    if value is None:
        return "None"
    if hasattr(value, "shape"):
        return f"{getattr(value, 'dtype', '')}{list(value.shape)}"
    return repr(value)


def _trace_call(writer, trace, k, step, results):
    trace_name = writer.closure("trace", trace)
    step_name = writer.closure(f"s{k}", step)
    return f"{trace_name}({step_name}, {_tuple_text(results)})"


def _tuple_text(names):
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


class _Writer:
    """Collects closure variables and assembles the generated function."""

    def __init__(self):
        self.closures = {}

    def closure(self, name, value):
        self.closures[name] = value
        return name

    def build(self, name, parameters, lines_with_steps):
        names = sorted(self.closures)
        header = [f"def make({', '.join(names)}):", f"    def {name}({parameters}):"]
        if not lines_with_steps:
            lines_with_steps = [("pass", None)]
        source_lines = header + [f"        {line}" for line, _ in lines_with_steps]
        source_lines += [f"    return {name}"]
        source = "\n".join(source_lines) + "\n"
        line_steps = {len(header) + 1 + k: step
                      for k, (_, step) in enumerate(lines_with_steps) if step is not None}
        namespace = {}
        exec(compile(source, f"<autonn {name} pass>", "exec"), namespace)  # noqa: S102
        function = namespace["make"](*[self.closures[n] for n in names])
        return function, source, line_steps
