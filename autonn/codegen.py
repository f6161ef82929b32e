"""Turn a tape into straight-line Python: the fast way to walk it.

A loop over step objects pays, per step, for list indexing, attribute lookups and argument
packing; for small arrays that costs more than the arithmetic. This module writes the same steps
as one Python function per pass, with every slot a local variable and every step function a
closure variable, so a step costs one call. The generated source is the tape, spelled out
(``print(net.tape.python_source())`` shows it); it is regenerated whenever the tape is edited.
An error inside it is mapped back, through its line number, to the step that raised it.
"""

import numpy as np

from .backend import array_module


class GeneratedPass:
    """A generated function and the step each of its lines executes."""

    def __init__(self, function, source, line_steps):
        self.function = function
        self.source = source
        self.line_steps = line_steps  # line number -> step

    def step_at(self, traceback):
        """The step whose line raised, and the generated function's locals (the slots), from
        the traceback of an exception."""
        while traceback is not None:
            if traceback.tb_frame.f_code is self.function.__code__:
                return self.line_steps.get(traceback.tb_lineno), traceback.tb_frame.f_locals
            traceback = traceback.tb_next
        return None, {}


def forward_pass(steps, test):
    """``run(values)``: the forward steps, reading and writing the slot list ``values``."""
    writer = _Writer()
    produced = {o for step in steps for o in step.outputs}
    read = sorted({i for step in steps for i in step.inputs} - produced)
    body = []
    for k, step in enumerate(steps):
        function = writer.closure(f"f{k}", step.function_test if test else step.function)
        args = ", ".join(f"v{i}" for i in step.inputs)
        if step.options:
            args += (", " if args else "") + f"**{writer.closure(f'o{k}', step.options)}"
        targets = ", ".join(f"v{o}" for o in step.outputs)
        body.append((f"{targets} = {function}({args})", step))
        for slot in (step.free_test if test else step.free):
            body.append((f"v{slot} = None", step))
    lines = [f"v{i} = values[{i}]" for i in read]
    lines_with_steps = [(line, None) for line in lines] + body
    stores = sorted(produced | {s for step in steps
                                for s in (step.free_test if test else step.free)})
    lines_with_steps += [(f"values[{s}] = v{s}", None) for s in stores]
    return writer.build("forward", "values", lines_with_steps)


def backward_pass(steps):
    """``run(values, ders)``: the backward steps, accumulating into the slot list ``ders``."""
    writer = _Writer()
    value_slots, der_slots = set(), set()
    body = []
    for k, step in enumerate(steps):
        value_slots.update(step.inputs)
        value_slots.update(step.outputs)
        der_slots.update(step.outputs)
        der_slots.update(slot for _, _, slot in step.grads)
        args = ", ".join(f"v{i}" for i in step.inputs)
        options = f", **{writer.closure(f'o{k}', step.options)}" if step.options else ""
        if len(step.outputs) == 1:
            out = step.outputs[0]
            body.append((f"g = d{out}", step))
            body.append(("if g is not None:", step))
            y = f"v{out}"
        else:
            zeros = writer.closure("zeros_like", _zeros_like)
            ders = ", ".join(f"d{o}" for o in step.outputs)
            body.append((f"if any(d is not None for d in ({ders},)):", step))
            body.append(("    g = (" + ", ".join(
                f"d{o} if d{o} is not None else {zeros}(v{o})" for o in step.outputs) + ",)",
                step))
            y = "(" + ", ".join(f"v{o}" for o in step.outputs) + ",)"
        if step.uses_backward:
            backward = writer.closure(f"b{k}", step.op.backward_fn)
            extra = ""
            if step.pass_output:
                extra += f", y={y}"
            if step.op.backward_accepts_need:
                extra += f", need={writer.closure(f'n{k}', step.need)}"
            sep = ", " if args else ""
            body.append((f"    t = {backward}({args}{sep}g{options}{extra})", step))
            body.append(("    if type(t) is not tuple and type(t) is not list: t = (t,)", step))
            for _, position, slot in step.grads:
                body.append((f"    u = t[{position}]", step))
                body.append((f"    if u is not None: d{slot} = u if d{slot} is None "
                              f"else d{slot} + u", step))
        else:
            for j, (rule, position, slot) in enumerate(step.grads):
                rule_name = writer.closure(f"r{k}_{j}", rule)
                sep = ", " if args else ""
                body.append((f"    u = {rule_name}(g, {y}{sep}{args}{options})", step))
                body.append((f"    d{slot} = u if d{slot} is None else d{slot} + u", step))
        for slot in step.free_values:
            body.append((f"v{slot} = None", step))
        for slot in step.free_ders:
            body.append((f"d{slot} = None", step))
    lines = [(f"v{i} = values[{i}]", None) for i in sorted(value_slots)]
    lines += [(f"d{i} = ders[{i}]", None) for i in sorted(der_slots)]
    freed_values = sorted({s for step in steps for s in step.free_values})
    lines += body
    lines += [(f"values[{s}] = v{s}", None) for s in freed_values]
    lines += [(f"ders[{s}] = d{s}", None) for s in sorted(der_slots)]
    return writer.build("backward", "values, ders", lines)


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
        return GeneratedPass(function, source, line_steps)


def _zeros_like(value):
    return array_module(value).zeros_like(value) if value is not None else np.zeros(())
