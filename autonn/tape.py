"""The compiled form of a network: flat lists of steps over numbered variable slots.

``Tape.forward`` and ``Tape.backward`` are plain Python lists of :class:`ForwardStep` and
:class:`BackwardStep`; a :class:`autonn.Net` only walks them. They are public on purpose: print a
tape to read what a network does, or edit a step (swap its function, change an option) to
experiment without rebuilding the graph.

Slot ``k`` holds the value ``values[k]`` and the derivative ``ders[k]`` of one variable;
``names[k]`` says which. Constants live in slots too, so every step reads its inputs the same way.
"""

import numpy as np

from . import codegen

# Edits to any tape (a step's attribute, a list of steps) bump this count, so a Net knows when
# the Python it generated from its tape is stale.
_edits = [0]


def edit_count():
    return _edits[0]


class StepList(list):
    """A list of steps that records edits."""

    def _edited(method):
        def wrapper(self, *args, **kwargs):
            _edits[0] += 1
            return method(self, *args, **kwargs)
        wrapper.__name__ = method.__name__
        return wrapper

    for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
                  "insert", "pop", "remove", "clear", "sort", "reverse"):
        locals()[_name] = _edited(getattr(list, _name))
    del _name, _edited


class _Step:
    """Base of the step classes: any attribute assignment counts as an edit."""

    __slots__ = ()

    def __setattr__(self, name, value):
        _edits[0] += 1
        object.__setattr__(self, name, value)


class ForwardStep(_Step):
    """``values[outputs] = function(*values[inputs], **options)``.

    ``function_test`` replaces ``function`` in test mode. After the step, the slots in ``free``
    (``free_test`` in test mode) are released: that is ``conserve_memory`` at work.
    """

    __slots__ = ("name", "op", "function", "function_test", "inputs", "outputs", "options",
                 "source", "free", "free_test", "multiple_outputs")

    def __init__(self, name, op, inputs, outputs, options, source, function=None):
        self.name = name
        self.op = op
        self.function = function or op.forward
        self.function_test = op.forward_test if function is None else function
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.options = options
        self.source = source
        self.free = ()
        self.free_test = ()
        self.multiple_outputs = len(self.outputs) > 1

    def __repr__(self):
        outputs = ", ".join(f"v{o}" for o in self.outputs)
        inputs = ", ".join(f"v{i}" for i in self.inputs)
        options = "".join(f", {k}={_option_text(v)}" for k, v in self.options.items())
        text = f"{outputs} = {self.op.name}({inputs}{options})"
        if self.free:
            text += "   free " + ", ".join(f"v{i}" for i in self.free)
        return f"{text:<60} # {self.name}"


class BackwardStep(_Step):
    """Derivatives of one forward step's inputs from the derivative of its output(s).

    ``grads`` lists ``(rule, input_position, der_slot)``: with per-input rules (``vjp``),
    ``rule(dzdy, y, *inputs, **options)`` is added into ``ders[der_slot]``; when the op has one
    ``backward`` for all inputs, ``rule`` is None and that backward is called once with ``need``.
    After the step, the value slots ``free_values`` and derivative slots ``free_ders`` are
    released (``conserve_memory``).
    """

    __slots__ = ("name", "op", "inputs", "outputs", "options", "source", "grads",
                 "uses_backward", "need", "pass_output", "free_values", "free_ders",
                 "multiple_outputs")

    def __init__(self, name, op, inputs, outputs, options, source, grads):
        self.name = name
        self.op = op
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.options = options
        self.source = source
        self.grads = tuple(grads)
        self.uses_backward = grads[0][0] is None
        positions = {position for _, position, _ in grads}
        self.need = tuple(i in positions for i in range(len(self.inputs)))
        self.pass_output = op.backward_needs_output
        self.free_values = ()
        self.free_ders = ()
        self.multiple_outputs = len(self.outputs) > 1

    def __repr__(self):
        targets = ", ".join(f"d{slot}" for _, _, slot in self.grads)
        douts = ", ".join(f"d{o}" for o in self.outputs)
        text = f"{targets} += {self.op.name}'({douts})"
        freed = [f"v{i}" for i in self.free_values] + [f"d{i}" for i in self.free_ders]
        if freed:
            text += "   free " + ", ".join(freed)
        return f"{text:<60} # {self.name}"


class Tape:
    """The forward and backward step lists, the slot names and the constants."""

    def __init__(self, forward, backward, names, constants):
        self.forward = StepList(forward)
        self.backward = StepList(backward)
        self.names = names
        self.constants = constants  # list of (slot, value) loaded before every evaluation

    def __setattr__(self, name, value):
        if name in ("forward", "backward") and not isinstance(value, StepList):
            value = StepList(value)
        _edits[0] += 1
        object.__setattr__(self, name, value)

    def python_source(self):
        """The Python that :class:`autonn.Net` generates from this tape and runs."""
        return "\n".join(p.source for p in (codegen.forward_pass(self.forward, test=False),
                                             codegen.backward_pass(self.backward)))

    def __repr__(self):
        lines = ["forward:"]
        lines += [f"  {step!r}" for step in self.forward]
        lines += ["backward:"]
        lines += [f"  {step!r}" for step in self.backward]
        slots = ", ".join(f"v{k}={name}" for k, name in enumerate(self.names))
        lines += [f"slots: {slots}"]
        return "\n".join(lines)


def _option_text(value):
    if hasattr(value, "shape") and np.ndim(value) > 0:
        return f"array{tuple(np.shape(value))}"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."
