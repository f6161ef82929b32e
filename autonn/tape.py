"""The compiled form of a network: flat lists of steps over numbered variable slots.

``Tape.forward`` and ``Tape.backward`` are lists of :class:`ForwardStep` and
:class:`BackwardStep`; a :class:`autonn.Net` only walks them. They are public on purpose: print a
tape to read what a network does, or edit a step (swap its function, change an option) to
experiment without rebuilding the graph.

Slot ``k`` holds the value ``values[k]`` and the derivative ``ders[k]`` of one variable;
``names[k]`` says which. Constants live in slots too, so every step reads its inputs the same way.

A backward step holds the derivative functions its op made for it
(:meth:`autonn.ops.Op.derivative_functions`) and the slots their results are added into: how an
op states its derivative (per-input rules, one ``backward``, several outputs) never reaches the
executors.

Each tape counts its own edits (:attr:`Tape.edits`): assigning a step's attribute, changing a
list of steps or replacing one. A step knows the tapes whose lists it was put in (weakly, so a
tape is still freed as soon as its net is), and a :class:`autonn.Net` regenerates the Python it
runs only when its own tape's count moved: editing or compiling another net costs it nothing.
"""

import weakref

import numpy as np

from . import codegen


class StepList(list):
    """A tape's list of steps: every change counts as an edit of that tape, and the steps put
    in it learn which tape to tell when they are edited."""

    _tape = None  # weak reference to the owning Tape (None for a list no tape owns)

    def __init__(self, steps=(), tape=None):
        super().__init__(steps)
        self._tape = weakref.ref(tape) if tape is not None else None
        for step in self:
            step._join(tape)

    def _edited(self, new_steps=()):
        tape = self._tape() if self._tape is not None else None
        if tape is not None:
            for step in new_steps:
                step._join(tape)
            tape._edited()

    def __setitem__(self, index, value):
        value = list(value) if isinstance(index, slice) else value
        super().__setitem__(index, value)
        self._edited(value if isinstance(index, slice) else (value,))

    def __iadd__(self, steps):
        steps = list(steps)
        super().__iadd__(steps)
        self._edited(steps)
        return self

    def append(self, step):
        super().append(step)
        self._edited((step,))

    def extend(self, steps):
        steps = list(steps)
        super().extend(steps)
        self._edited(steps)

    def insert(self, index, step):
        super().insert(index, step)
        self._edited((step,))

    def _removing(method):
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            self._edited()
            return result
        wrapper.__name__ = method.__name__
        return wrapper

    # Steps taken out keep their tape: at worst it regenerates once more than it must.
    for _name in ("__delitem__", "__imul__", "pop", "remove", "clear", "sort", "reverse"):
        locals()[_name] = _removing(getattr(list, _name))
    del _name, _removing


class _Step:
    """Base of the step classes: assigning any attribute is an edit of the step's tapes."""

    __slots__ = ("_tapes",)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        for ref in getattr(self, "_tapes", ()):  # unset while copy.copy restores a step
            tape = ref()
            if tape is not None:
                tape._edited()

    def _forget_tapes(self):
        """Belong to no tape (a copy of a step, about to join the copy of its tape)."""
        object.__setattr__(self, "_tapes", ())

    def _join(self, tape):
        """Record that ``tape`` holds this step (a step copied into a second tape tells both)."""
        if tape is None:
            return
        if not self._tapes:  # a new step: the usual case, while a net compiles
            object.__setattr__(self, "_tapes", (weakref.ref(tape),))
        elif all(ref() is not tape for ref in self._tapes):
            live = tuple(ref for ref in self._tapes if ref() is not None)
            object.__setattr__(self, "_tapes", live + (weakref.ref(tape),))


def _initialise(step, **attributes):
    """Set a new step's attributes: it is in no tape yet, so this is no edit (and skipping
    ``_Step.__setattr__`` keeps compiling a long chain cheap)."""
    for name, value in attributes.items():
        object.__setattr__(step, name, value)
    object.__setattr__(step, "_tapes", ())


class ForwardStep(_Step):
    """``values[outputs] = function(*values[inputs], **options)``.

    ``function_test`` replaces ``function`` in test mode. After the step, the slots in ``free``
    (``free_test`` in test mode) are released: that is ``conserve_memory`` at work.
    """

    __slots__ = ("name", "op", "function", "function_test", "inputs", "outputs", "options",
                 "source", "free", "free_test", "multiple_outputs")

    def __init__(self, name, op, inputs, outputs, options, source, function=None):
        outputs = tuple(outputs)
        _initialise(self, name=name, op=op, function=function or op.forward,
                    function_test=op.forward_test if function is None else function,
                    inputs=tuple(inputs), outputs=outputs, options=options, source=source,
                    free=(), free_test=(), multiple_outputs=len(outputs) > 1)

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

    ``calls`` lists ``(function, targets)`` pairs, the op's derivative functions
    (:meth:`autonn.ops.Op.derivative_functions`) for the inputs this step differentiates;
    ``targets`` holds ``(input_position, der_slot)`` pairs. The step runs
    ``function(dzdy, y, *values[inputs], **options)``, which returns the derivatives of those
    inputs (bare for one target, a tuple in order for several), and adds each into
    ``ders[der_slot]``. ``dzdy`` and ``y`` are the output's derivative and value (tuples for
    several outputs); the step is skipped when no output received a derivative. After the step,
    the value slots ``free_values`` and derivative slots ``free_ders`` are released
    (``conserve_memory``).
    """

    __slots__ = ("name", "op", "inputs", "outputs", "options", "source", "calls",
                 "free_values", "free_ders", "multiple_outputs")

    def __init__(self, name, op, inputs, outputs, options, source, targets):
        inputs, outputs = tuple(inputs), tuple(outputs)
        slot_of = dict(targets)
        need = tuple(i in slot_of for i in range(len(inputs)))
        calls = tuple((function, tuple((p, slot_of[p]) for p in positions))
                      for positions, function in op.derivative_functions(need))
        _initialise(self, name=name, op=op, inputs=inputs, outputs=outputs, options=options,
                    source=source, calls=calls, free_values=(), free_ders=(),
                    multiple_outputs=len(outputs) > 1)

    @property
    def targets(self):
        """Every ``(input_position, der_slot)`` this step adds a derivative into."""
        return tuple(target for _, targets in self.calls for target in targets)

    def __repr__(self):
        targets = ", ".join(f"d{slot}" for _, slot in self.targets)
        douts = ", ".join(f"d{o}" for o in self.outputs)
        text = f"{targets} += {self.op.name}'({douts})"
        freed = [f"v{i}" for i in self.free_values] + [f"d{i}" for i in self.free_ders]
        if freed:
            text += "   free " + ", ".join(freed)
        return f"{text:<60} # {self.name}"


class Tape:
    """The forward and backward step lists, the slot names and the constants.

    ``edits`` counts the changes made to this tape since it was built (see the module
    docstring); assigning ``forward`` or ``backward`` copies the steps into a new list of this
    tape.
    """

    def __init__(self, forward, backward, names, constants):
        object.__setattr__(self, "_edits", 0)  # counted from here, restarted once built
        self.forward = forward
        self.backward = backward
        self.names = names
        self.constants = constants  # list of (slot, value) loaded before every evaluation
        object.__setattr__(self, "_edits", 0)

    @property
    def edits(self):
        """How many times this tape (its lists, its steps, its attributes) was edited."""
        return self._edits

    def _edited(self):
        object.__setattr__(self, "_edits", self._edits + 1)

    def __setattr__(self, name, value):
        if name in ("forward", "backward"):
            value = StepList(value, self)
        object.__setattr__(self, name, value)
        self._edited()

    def python_source(self, debug=False):
        """The Python that :class:`autonn.Net` generates from this tape and runs (with
        ``debug``, as ``AUTONN_DEBUG=1`` runs it: a trace call after every step)."""
        trace = codegen.trace_step if debug else None
        return "\n".join(p.source for p in (
            codegen.forward_pass(self.forward, test=False, trace=trace),
            codegen.backward_pass(self.backward, trace=trace)))

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
