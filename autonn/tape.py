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


def _derivative_calls(op, num_inputs, slot_of):
    """``(function, targets)`` pairs: the op's derivative functions for the inputs that
    ``slot_of`` (input position -> derivative slot) names."""
    need = tuple(i in slot_of for i in range(num_inputs))
    return tuple((function, tuple((p, slot_of[p]) for p in positions))
                 for positions, function in op.derivative_functions(need))


def _fully_built(step):
    try:
        object.__getattribute__(step, "_tapes")
    except AttributeError:
        return False
    return True


def _initialise(step, **attributes):
    """Set a new step's attributes: it is in no tape yet, so this is no edit (and skipping
    ``_Step.__setattr__`` keeps compiling a long chain cheap)."""
    for name, value in attributes.items():
        object.__setattr__(step, name, value)
    object.__setattr__(step, "_tapes", ())


class ForwardStep(_Step):
    """``values[outputs] = function(*values[inputs], **options)``.

    ``function_test`` replaces ``function`` in test mode (dropout, batch normalisation);
    assigning ``function`` sets both, assigning ``op`` sets both to the op's. After the step, the slots in ``free`` (``free_test`` in
    test mode) are released: that is ``conserve_memory`` at work.
    """

    __slots__ = ("name", "op", "function", "function_test", "inputs", "outputs", "options",
                 "source", "free", "free_test", "multiple_outputs")

    def __init__(self, name, op, inputs, outputs, options=None, source="", function=None):
        outputs = tuple(outputs)
        _initialise(self, name=name, op=op, function=function or op.forward,
                    function_test=op.forward_test if function is None else function,
                    inputs=tuple(inputs), outputs=outputs,
                    options={} if options is None else options, source=source,
                    free=(), free_test=(), multiple_outputs=len(outputs) > 1)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        # A new function replaces the op in every mode: left alone, test mode would still run
        # the old op. (A distinct test-mode function is assigned to function_test after it.)
        # While copy restores a step its _tapes is not set yet: each slot is restored as is.
        if name == "function" and _fully_built(self):
            object.__setattr__(self, "function_test", value)
        elif name == "op" and _fully_built(self):  # a new op runs its own forwards
            object.__setattr__(self, "function", value.forward)
            object.__setattr__(self, "function_test", value.forward_test)

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
        _initialise(self, name=name, op=op, inputs=inputs, outputs=outputs, options=options,
                    source=source, calls=_derivative_calls(op, len(inputs), slot_of),
                    free_values=(), free_ders=(), multiple_outputs=len(outputs) > 1)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "op" and _fully_built(self):  # a new op: its derivatives, same targets
            object.__setattr__(self, "calls", _derivative_calls(value, len(self.inputs),
                                                                dict(self.targets)))

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

    ``outputs`` are the slots of the net's outputs (where the backward pass starts),
    ``leaves`` those of its Inputs and Params, ``requires_der[k]`` whether slot ``k`` carries a
    derivative. ``edits`` counts the changes made to this tape since it was built (see the
    module docstring); assigning ``forward`` or ``backward`` copies the steps into a new list of
    this tape.

    The lists may be edited freely, and what is run is what they hold. :meth:`insert`,
    :meth:`delete` and :meth:`replace` edit the forward steps *and* keep the rest consistent:
    the backward steps are derived again from the forward ones (those of unchanged steps are
    kept, with any edit made to them), the memory plan of ``conserve_memory`` is made again,
    and every slot keeps one value (a step written over an existing slot is given a new one,
    and the later steps read it from there), so that every mode (normal, test, forward,
    backward) runs the edited network and its derivatives.
    """

    def __init__(self, forward, backward, names, constants, *, outputs=(), leaves=(),
                 requires_der=None):
        object.__setattr__(self, "_edits", 0)  # counted from here, restarted once built
        self.forward = forward
        self.backward = backward
        self.names = names
        self.constants = constants  # list of (slot, value) loaded before every evaluation
        self.outputs = list(outputs)
        self.leaves = tuple(leaves)
        self.requires_der = [True] * len(names) if requires_der is None else requires_der
        self.memory_planned = False
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

    # ------------------------------------------------------------------ consistent editing
    def new_slot(self, name):
        """A new variable slot named ``name`` (for the output of an inserted step)."""
        self.names.append(name)
        self.requires_der.append(False)
        self._edited()
        return len(self.names) - 1

    def index(self, which):
        """The position in ``forward`` of a step given as a position, a step or a step name."""
        forward = self.forward
        if isinstance(which, ForwardStep):
            for k, step in enumerate(forward):
                if step is which:
                    return k
            raise ValueError(f"tape: step '{which.name}' ({which.op.name}) is not in this "
                             f"tape's forward steps")
        if isinstance(which, str):
            for k, step in enumerate(forward):
                if step.name == which:
                    return k
            raise ValueError(f"tape: no forward step is named {which!r}; steps are "
                             f"{[step.name for step in forward]}")
        if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
            if -len(forward) <= which < len(forward):
                return int(which) % len(forward)
            raise IndexError(f"tape: step {which} is out of range ({len(forward)} forward "
                             f"steps)")
        raise TypeError(f"tape: a step is given by its position, the step or its name, got "
                        f"{type(which).__name__}")

    def insert(self, position, step):
        """Insert the forward step ``step`` before ``position`` (``len(tape.forward)``: at the
        end), then derive the backward steps again. Its inputs must be written before it.
        An output slot beyond the names is created (named after the step); an output slot that
        already holds a value (an Input, a Param, an earlier step's output) is given a new slot
        instead, and the later steps and the net's outputs read that one: inserting
        ``v0 = f(v0)`` after Input ``v0`` makes every reader of the Input read ``f`` of it,
        and the Input still receives its derivative."""
        _check_new_step(step)
        if not isinstance(position, (int, np.integer)) or isinstance(position, bool):
            raise TypeError(f"tape.insert: position must be an int, got "
                            f"{type(position).__name__}")
        position = max(0, min(int(position) + (len(self.forward) if position < 0 else 0),
                              len(self.forward)))
        self._check_reads(step, position, "tape.insert")
        defined = self._defined(self.forward[:position])
        written_later = self._written(self.forward[position:])
        renamed = {}
        outputs = []
        for k, slot in enumerate(step.outputs):
            if not isinstance(slot, (int, np.integer)) or slot < 0:
                raise ValueError(f"tape.insert: step '{step.name}': output slots must be "
                                 f"non-negative ints, got {step.outputs}")
            name = step.name if len(step.outputs) == 1 else f"{step.name}_{k}"
            if slot in written_later:
                raise ValueError(f"tape.insert: step '{step.name}' writes slot {slot} "
                                 f"({self.names[slot]!r}), which a later step writes")
            if slot >= len(self.names):
                while len(self.names) <= slot:
                    self.new_slot(name)
            elif slot in defined:
                renamed[slot] = self.new_slot(name)
                slot = renamed[slot]
            outputs.append(int(slot))
        step.outputs = tuple(outputs)
        self.forward.insert(position, step)
        self._rewire(self.forward[position + 1:], renamed)
        self.update()
        return step

    def delete(self, which, rewire=None):
        """Remove a forward step (a position, the step or its name) and derive the backward
        steps again. Steps or net outputs that read its output read the slot ``rewire`` (a
        slot number or a name) instead; without ``rewire`` they raise a ValueError naming
        them. Returns the removed step."""
        position = self.index(which)
        step = self.forward[position]
        later = self.forward[position + 1:]
        readers = [s.name for s in later if set(s.inputs) & set(step.outputs)]
        readers += [f"output {self.names[o]!r}" for o in self.outputs if o in step.outputs]
        renamed = {}
        if rewire is not None:
            if len(step.outputs) != 1:
                raise ValueError(f"tape.delete: step '{step.name}' has {len(step.outputs)} "
                                 f"outputs; rewire stands for one")
            target = self._slot_of(rewire, "tape.delete")
            if target not in self._defined(self.forward[:position]):
                raise ValueError(f"tape.delete: rewire slot {target} ({self.names[target]!r}) "
                                 f"is not written before step '{step.name}'")
            renamed = {step.outputs[0]: target}
        elif readers:
            raise ValueError(f"tape.delete: {readers} read the output of step '{step.name}' "
                             f"({step.op.name}); give rewire= (the slot they should read "
                             f"instead) or delete them first")
        del self.forward[position]
        self._rewire(later, renamed)
        self.update()
        return step

    def replace(self, which, step):
        """Put the forward step ``step`` in the place of another (a position, the step or its
        name) and derive the backward steps again. Its inputs must be written before it; when
        its outputs are other slots than the old step's (as many), the later steps and the net's
        outputs read them instead. Returns the replaced step."""
        _check_new_step(step)
        position = self.index(which)
        old = self.forward[position]
        self._check_reads(step, position, "tape.replace")
        renamed = {}
        if tuple(step.outputs) != tuple(old.outputs):
            if len(step.outputs) != len(old.outputs):
                raise ValueError(f"tape.replace: step '{step.name}' has {len(step.outputs)} "
                                 f"outputs, the step it replaces ('{old.name}') has "
                                 f"{len(old.outputs)}")
            for slot in step.outputs:
                if not isinstance(slot, (int, np.integer)) or slot < 0:
                    raise ValueError(f"tape.replace: step '{step.name}': output slots must "
                                     f"be non-negative ints, got {step.outputs}")
                while len(self.names) <= slot:
                    self.new_slot(step.name)
            renamed = dict(zip(old.outputs, step.outputs))
        self.forward[position] = step
        self._rewire(self.forward[position + 1:], renamed)
        self.update()
        return old

    def update(self):
        """Derive again what follows from the forward steps: which slots carry a derivative,
        the backward steps (a step whose forward step is unchanged is kept as it is, edits
        included) and, under ``conserve_memory``, the plan of what to release. The editing
        methods call this; call it after editing ``forward`` by hand to make the backward
        pass follow."""
        requires_der = [False] * len(self.names)
        for slot in self.leaves:
            requires_der[slot] = True
        for step in self.forward:
            needs = any(requires_der[s] and step.op.has_derivative(i)
                        for i, s in enumerate(step.inputs))
            for slot in step.outputs:
                requires_der[slot] = needs
        self.requires_der[:] = requires_der
        self.backward = backward_steps(self.forward, requires_der, self.outputs,
                                       reuse=self.backward)
        if self.memory_planned:
            self.plan_memory()

    def plan_memory(self):
        """``conserve_memory``: by liveness, release each value after its last reader and each
        derivative once consumed; the leaves, constants and outputs are kept."""
        leaves = set(self.leaves)
        keep = leaves | {slot for slot, _ in self.constants} | set(self.outputs)
        _plan_memory(self, keep, der_keep=leaves)
        self.memory_planned = True

    def _slot_of(self, slot, where):
        if isinstance(slot, str):
            if slot not in self.names:
                raise ValueError(f"{where}: no slot is named {slot!r}")
            return self.names.index(slot)
        if isinstance(slot, (int, np.integer)) and 0 <= slot < len(self.names):
            return int(slot)
        raise ValueError(f"{where}: {slot!r} is not a slot of this tape ({len(self.names)} "
                         f"slots)")

    def _written(self, steps):
        return {o for step in steps for o in step.outputs}

    def _defined(self, steps):
        """The slots holding a value after ``steps``: leaves, constants and their outputs."""
        return set(self.leaves) | {slot for slot, _ in self.constants} | self._written(steps)

    def _check_reads(self, step, position, where):
        defined = self._defined(self.forward[:position])
        unwritten = [slot for slot in step.inputs if slot not in defined]
        if unwritten:
            raise ValueError(f"{where}: step '{step.name}' ({step.op.name}) reads slots "
                             f"{unwritten}, which hold no value before position {position}")

    def _rewire(self, steps, renamed):
        """Later steps and the outputs read the renamed slots from their new places."""
        if not renamed:
            return
        for step in steps:
            if any(s in renamed for s in step.inputs):
                step.inputs = tuple(renamed.get(s, s) for s in step.inputs)
        self.outputs[:] = [renamed.get(s, s) for s in self.outputs]

    def python_source(self, debug=False):
        """The Python that :class:`autonn.Net` generates from this tape and runs (with
        ``debug``, as ``AUTONN_DEBUG=1`` runs it: a trace call after every step)."""
        trace = codegen.trace_step if debug else None
        return "\n".join(p.source for p in (
            codegen.forward_pass(self.forward, test=False, trace=trace),
            codegen.backward_pass(self.backward, trace=trace)))

    def __repr__(self):
        lines = ["forward:"]
        for step in self.forward:
            lines.append(f"  {step!r}")
            # a loop's step holds its inner graph: its inner steps, indented under it
            describe_inner = getattr(step.op, "describe_inner", None)
            lines += [f"      {line}" for line in describe_inner()] if describe_inner else []
        lines += ["backward:"]
        lines += [f"  {step!r}" for step in self.backward]
        slots = ", ".join(f"v{k}={name}" for k, name in enumerate(self.names))
        lines += [f"slots: {slots}"]
        return "\n".join(lines)


def backward_steps(forward, requires_der, output_slots, reuse=()):
    """Backward steps in reverse order, only for steps a derivative can reach. A step of
    ``reuse`` made for the same forward step (name, op, options, slots and targets) is kept
    instead of a new one."""
    kept = {_backward_key(step.name, step.op, step.inputs, step.outputs, step.options,
                          step.targets): step for step in reuse}
    receives = set(output_slots)
    steps = []
    for step in reversed(forward):
        if not any(o in receives for o in step.outputs) or not step.op.differentiable:
            continue
        targets = [(position, slot) for position, slot in enumerate(step.inputs)
                   if requires_der[slot] and step.op.has_derivative(position)]
        if not targets:
            continue
        old = kept.get(_backward_key(step.name, step.op, step.inputs, step.outputs,
                                     step.options, targets)) if kept else None
        steps.append(old or BackwardStep(step.name, step.op, step.inputs, step.outputs,
                                         step.options, step.source, targets))
        receives.update(slot for _, slot in targets)
    return steps


def _plan_memory(tape, keep, der_keep):
    """Liveness: release each value after its last reader, each derivative once consumed."""
    needed_by_backward = set()
    for step in tape.backward:
        needs = step.op.backward_needs_inputs
        positions = range(len(step.inputs)) if needs is None else needs
        needed_by_backward.update(step.inputs[p] for p in positions)
        if step.op.backward_needs_output or step.multiple_outputs:
            needed_by_backward.update(step.outputs)

    def release_after_last_read(steps, readers, protected):
        seen = set()
        for step in reversed(steps):
            dead = [s for s in readers(step) if s not in seen and s not in protected]
            seen.update(readers(step))
            yield step, tuple(dict.fromkeys(dead))

    for step, dead in release_after_last_read(tape.forward, lambda s: s.inputs,
                                              keep | needed_by_backward):
        step.free = dead
    for step, dead in release_after_last_read(tape.forward, lambda s: s.inputs, keep):
        step.free_test = dead
    # An output nobody reads is dead at once, unless the backward pass or the user needs it.
    read = {s for step in tape.forward for s in step.inputs}
    for step in tape.forward:
        unread = tuple(o for o in step.outputs if o not in read and o not in keep)
        step.free += tuple(o for o in unread if o not in needed_by_backward)
        step.free_test += unread

    def backward_reads(step):
        needs = step.op.backward_needs_inputs
        positions = range(len(step.inputs)) if needs is None else needs
        reads = [step.inputs[p] for p in positions]
        if step.op.backward_needs_output or step.multiple_outputs:
            reads += list(step.outputs)
        return reads

    seen = set()
    for step in reversed(tape.backward):
        reads = backward_reads(step)
        step.free_values = tuple(dict.fromkeys(s for s in reads
                                               if s not in seen and s not in keep))
        seen.update(reads)
    for step in tape.backward:
        step.free_ders = tuple(o for o in step.outputs if o not in der_keep)


def _backward_key(name, op, inputs, outputs, options, targets):
    return (name, id(op), tuple(inputs), tuple(outputs), id(options), tuple(map(tuple, targets)))


def _check_new_step(step):
    if not isinstance(step, ForwardStep):
        raise TypeError(f"tape: expected a ForwardStep, got {type(step).__name__}")


def _option_text(value):
    if hasattr(value, "shape") and np.ndim(value) > 0:
        return f"array{tuple(np.shape(value))}"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."
