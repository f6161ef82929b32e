"""The op registry: one definition per operation.

An :class:`Op` bundles everything the rest of autonn needs to know about an operation:

- ``forward(*inputs, **options)`` computes the output (a tuple when ``num_outputs > 1``);
- the derivative, given either as one ``backward(*inputs, dzdy, **options)`` returning a
  derivative per input (MatConvNet's projected derivative), or as per-input rules
  ``vjps[i](dzdy, y, *inputs, **options)`` (the style of HIPS autograd) so the tape computes only
  the derivatives somebody needs; whichever form, :meth:`Op.derivative_functions` turns it into
  the one convention that the compiled tape, eager ``dzdy=`` calls and the reference executor
  all call;
- which inputs the backward reads (``backward_needs_inputs``) and whether it reads the output
  (``backward_needs_output``): the compiler frees everything else under ``conserve_memory``;
- a shape rule (``shape``: the output shape from the input shapes; every built-in op has one,
  read by :mod:`autonn.shapes`; a custom op without one is run on zeros instead);
- a receptive-field rule (``receptive_field``: ``'elementwise'``, ``'none'`` or a function of
  the node; read by :mod:`autonn.receptive_fields`) and the MatConvNet type names that map to
  it (``matconvnet_types``, read by :mod:`autonn.simplenn` and :mod:`autonn.dagnn`);
- an optional test-mode forward (dropout, batch normalisation).

Calling an op dispatches on its arguments, so every block and math function works three ways::

    y = op(x, w)                  # arrays in, array out
    dx, dw = op(x, w, dzdy=dy)    # derivatives with respect to the inputs, in argument order
    y = op(x_layer, w)            # any Layer argument: builds a graph node instead

Positional arguments are the op's inputs (arrays, Layers, numbers or ``None``); keyword arguments
are its options. Nothing here knows about the tape: the compiler (:mod:`autonn.compiler`) reads
these attributes once, at compile time. An op called on a Layer reaches the Layer class, which
lives in a higher layer of the package, through :mod:`autonn.registration`.
"""

import functools
import inspect

import numpy as np

from . import registration
from .backend import array_module

REGISTRY = {}


class Op:
    """An operation: forward, derivative, shape rule and what the backward pass needs.

    The derivative is stated as ``backward`` or as per-input ``vjps``/``vjp``; the op alone
    knows how to call either (the ``y=``/``need=`` extras, bare or tuple results, zeros for the
    missing derivatives of a multi-output op, the count check): :meth:`derivative_functions`
    gives the functions every executor calls and only adds up.

    Parameters
    ----------
    name : str
        Unique name; also the key under which saved networks refer to the op.
    forward : callable
        ``forward(*inputs, **options)``.
    backward : callable, optional
        ``backward(*inputs, dzdy, **options)`` returning one derivative per input (a bare array
        when the op has one input). With ``backward_needs_output`` it also gets ``y=``; with
        ``backward_accepts_need`` it also gets ``need=`` (a bool per input) and may return
        ``None`` where ``need`` is False.
    vjps : tuple of callables or None, optional
        Per-input rules ``vjps[i](dzdy, y, *inputs, **options)``; ``None`` marks an input with no
        derivative (labels, indices). For ops with a variable number of inputs give
        ``vjp=(i, dzdy, y, *inputs, **options)`` instead, or, for ops of thousands of inputs,
        a ``backward`` with ``backward_accepts_need`` (one call for all of them).
    num_outputs : int
        Greater than one for ops that return a tuple; in graphs they give a tuple of Layers.
    differentiable : bool
        False for ops whose outputs carry no derivative at all (comparisons, error counts).
    backward_needs_inputs : tuple of int or None
        Indices of the inputs the derivative reads; ``None`` means all of them.
    backward_needs_output : bool
        Whether the derivative reads the forward output (then it receives it as ``y``).
    forward_test : callable, optional
        Forward used in test mode; defaults to ``forward``.
    shape : callable, optional
        ``shape(*input_shapes, **options)`` giving the output shape without computing it (a
        tuple of shapes for a multi-output op). Arrays come as their shapes, numbers as
        themselves, absent inputs as ``None``. Every built-in op has one; without it
        :meth:`output_shape` runs the forward on zeros.
    receptive_field : str or callable, optional
        How output pixels depend on input pixels (MatConvNet manual, ch. 5), read by
        :mod:`autonn.receptive_fields`: ``'elementwise'`` (pixel i of the output reads pixel i
        of each input: a 1 x 1 window), ``'none'`` (no sliding-window form: matmul, reshape,
        sums over space) or ``rule(node)`` of the graph node (a Layer), returning one of those
        two or a tuple with one entry per input: a ``ReceptiveField`` (the window through which
        the output reads that input), ``'none'`` (read whole, as filters are) or ``None`` (only
        its shape is read). Every built-in op has one; ``None`` (not declared: a custom op)
        leaves the receptive field unknown.
    matconvnet_types : tuple of str, optional
        The MatConvNet blocks this op implements, spelt as MatConvNet's files spell them: SimpleNN
        layer types (``'conv'``, ``'lrn'``) and DagNN block types (``'dagnn.Conv'``).
        :mod:`autonn.simplenn` and :mod:`autonn.dagnn` find their blocks through them.
    input_names : tuple of str, optional
        Names of the inputs, used to name Params (``conv1_filters``); taken from the signature
        of ``forward`` when not given.
    """

    def __init__(self, name, forward, backward=None, *, vjps=None, vjp=None, num_outputs=1,
                 differentiable=True, backward_needs_inputs=None, backward_needs_output=False,
                 backward_accepts_need=False, forward_test=None, shape=None, receptive_field=None,
                 matconvnet_types=(), input_names=None, doc=None):
        if sum(f is not None for f in (backward, vjps, vjp)) > 1:
            raise TypeError(f"Op {name!r}: give only one of backward, vjps or vjp")
        self.name = name
        self.forward = forward
        self.backward_fn = backward
        self.vjps = tuple(vjps) if vjps is not None else None
        self.vjp = vjp
        self.num_outputs = num_outputs
        self.differentiable = differentiable
        self.backward_needs_inputs = (None if backward_needs_inputs is None
                                      else tuple(backward_needs_inputs))
        self.backward_needs_output = backward_needs_output
        self.backward_accepts_need = backward_accepts_need
        self.forward_test = forward_test or forward
        self.shape_rule = shape
        if not (receptive_field in (None, "elementwise", "none") or callable(receptive_field)):
            raise ValueError(f"Op {name!r}: receptive_field must be 'elementwise', 'none' or a "
                             f"function of the node, got {receptive_field!r}")
        self.receptive_field = receptive_field
        self.matconvnet_types = tuple(matconvnet_types)
        self.__doc__ = doc or getattr(forward, "__doc__", None)
        self._signature = _signature_or_none(forward)
        self.input_names = tuple(input_names) if input_names else _positional_names(self._signature)
        register(self)

    def __repr__(self):
        return f"<Op {self.name}>"

    # ----------------------------------------------------------------- calling
    def __call__(self, *inputs, dzdy=None, **options):
        name = self.pop_name(options)
        if dzdy is not None:
            _refuse_dzdy_in_graph(self.name, inputs, dzdy)
        if contains_layer(inputs):
            return registration.layer_class().create(self, inputs, options, name=name)
        if dzdy is not None:
            return self.derivatives(inputs, dzdy, options)
        return self.forward(*inputs, **options)

    def pop_name(self, options):
        """Take ``name=`` out of a call's options: every graph-building call may name the Layer
        it builds (an eager call computes and ignores it). An op whose forward has an option
        called ``name`` keeps it as that option."""
        if "name" not in options or (self._signature is not None
                                      and "name" in self._signature.parameters):
            return None
        name = options.pop("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{self.name}: name must be a str, got {type(name).__name__}")
        return name

    def derivatives(self, inputs, dzdy, options, need=None):
        """Eager backward: the derivative of ``<dzdy, op(inputs)>`` with respect to each input.

        Returns a tuple with one entry per input (``None`` for inputs that are ``None``, that have
        no derivative, or that ``need`` excludes), or the bare derivative for a one-input op.
        """
        if need is None:
            need = tuple(x is not None for x in inputs)
        self._check_dzdy_dtype(inputs, dzdy)
        # y is computed only when the backward reads it, or to size the zeros standing in for
        # the missing dzdy of an op with several outputs.
        missing = (self.num_outputs > 1 and type(dzdy) in (tuple, list)
                   and any(d is None for d in dzdy))
        y = self.forward(*inputs, **options) if self.backward_needs_output or missing else None
        ders = self.compute_derivatives(inputs, y, dzdy, options, need)
        return ders[0] if len(inputs) == 1 else ders

    def _check_dzdy_dtype(self, inputs, dzdy):
        """An array ``dzdy`` must have the dtype of the first floating-point input (float32 and
        float64 are never mixed); a scalar may be any number."""
        dtype = getattr(dzdy, "dtype", None)
        if dtype is None or np.ndim(dzdy) == 0:
            return
        for i, x in enumerate(inputs):
            x_dtype = getattr(x, "dtype", None)
            if x_dtype is None or x_dtype.kind != "f":
                continue
            if dtype != x_dtype:
                name = self.input_names[i] if i < len(self.input_names) else f"input {i}"
                raise TypeError(f"{self.name}: dzdy must have the dtype of {name} ({x_dtype}, "
                                f"shape {tuple(x.shape)}), got {dtype} (shape "
                                f"{tuple(np.shape(dzdy))})")
            return

    def compute_derivatives(self, inputs, y, dzdy, options, need):
        """The needed input derivatives, one entry per input (None where ``need`` is False or
        the input has no derivative), through :meth:`derivative_functions` like the tape: eager
        ``dzdy=`` calls and the reference executor use this."""
        ders = [None] * len(inputs)
        if not self.differentiable:
            return tuple(ders)
        if self.backward_fn is None and self.vjps is None and self.vjp is None:
            raise NotImplementedError(f"op {self.name!r} has no derivative")
        for positions, run in self.derivative_functions(need):
            result = run(dzdy, y, *inputs, **options)
            for position, der in zip(positions, (result,) if len(positions) == 1 else result):
                ders[position] = der
        return tuple(ders)

    def derivative_functions(self, need):
        """The one backward convention: how the retained values and ``dzdy`` become the
        derivatives of the inputs ``need`` selects (a bool per input; inputs without a
        derivative are left out).

        Returns ``((positions, run), ...)``: ``run(dzdy, y, *inputs, **options)`` gives the
        derivatives of the inputs at ``positions`` — bare for one position, a tuple in that
        order for several. ``y`` is the forward output and ``dzdy`` its derivative: tuples for
        an op with several outputs, where a missing derivative (None) counts as zeros shaped
        like its output. Every executor calls these and only adds the results up: the
        generated tape, eager ``dzdy=`` calls and the reference executor. How the op states its
        derivative stays here:

        - per-input rules: one ``run`` per needed input, the rule itself (no extra call on the
          hot path); for several outputs, one ``run`` filling the missing ``dzdy`` first;
        - one ``backward``: a single ``run`` calling it once, with ``y=``/``need=`` when the op
          asks for them, making its bare result a tuple and checking that it gave one derivative
          per input (a ValueError naming the op otherwise).
        """
        # Compiling makes one call per backward step, mostly with the same few ``need``s: the
        # answer is kept per need and per derivative definition (a later @op.backward, or any
        # assignment to backward_fn, vjps or vjp, makes a new key).
        key = (tuple(need), self.backward_fn, self.vjps, self.vjp, self.num_outputs,
               self.differentiable)
        cache = self.__dict__.setdefault("_derivative_functions", {})
        functions = cache.get(key)
        if functions is None:
            functions = cache[key] = self._make_derivative_functions(key[0])
        return functions

    def _make_derivative_functions(self, need):
        positions = tuple(i for i, wanted in enumerate(need) if wanted and self.has_derivative(i))
        if not positions:
            return ()
        if self.vjps is not None or (self.vjp is not None and len(positions) == 1):
            rules = tuple(self.vjp_for(i) for i in positions)
            if self.num_outputs == 1:
                return tuple(((p,), rule) for p, rule in zip(positions, rules))
            run = _call_rules(rules)
        elif self.vjp is not None:
            # An op of any number of inputs: one call for all the needed positions, which
            # keeps the generated code linear in them (the rule itself still gets every input
            # once per position: the built-in wide ops give one ``backward`` instead).
            run = _call_vjp_at(self.vjp, positions)
        elif self.backward_fn is not None:
            run = _call_backward(self, positions, len(need))
        else:
            raise NotImplementedError(f"op {self.name!r} has no derivative")
        if self.num_outputs > 1:
            run = _fill_missing_dzdy(run, self.name, self.num_outputs)
        return ((positions, run),)

    def vjp_for(self, index):
        """The rule ``f(dzdy, y, *inputs, **options)`` giving the derivative of input ``index``,
        or None when that input has no derivative."""
        if self.vjps is not None:
            return self.vjps[index] if index < len(self.vjps) else None
        if self.vjp is not None:
            return functools.partial(self.vjp, index)  # a C-level call: cheaper than a lambda
        return None

    def has_derivative(self, index):
        """Whether input ``index`` can receive a derivative through this op."""
        if not self.differentiable:
            return False
        if self.vjps is not None:
            return index < len(self.vjps) and self.vjps[index] is not None
        return self.vjp is not None or self.backward_fn is not None

    def backward(self, function):
        """Decorator: define (or replace) the derivative ``function(*inputs, dzdy, **options)``."""
        self.backward_fn = function
        self.vjps = self.vjp = None
        return function

    # ----------------------------------------------------------------- checks and shapes
    def check_options(self, num_inputs, options, where=""):
        """Raise a TypeError naming the op when the options do not fit its signature."""
        if self._signature is None:
            return
        try:
            self._signature.bind(*([None] * num_inputs), **options)
        except TypeError as error:
            raise TypeError(f"{self.name}{where}: {error}; signature is "
                            f"{self.name}{self._signature}") from None

    def output_shape(self, *input_shapes, **options):
        """The output shape(s) for the given input shapes (``None`` for absent inputs).

        Uses the op's shape rule when it has one, and otherwise (a custom op) runs the forward
        on zeros. Shapes are tuples; anything else (a number, a constant) passes as itself.
        """
        if self.shape_rule is not None:
            return self.shape_rule(*input_shapes, **options)
        dummies = [np.zeros(s, np.float64) if isinstance(s, tuple) else s for s in input_shapes]
        with np.errstate(all="ignore"):  # zeros make 0/0 and log(0): only the shape matters
            y = self.forward(*dummies, **options)
        if self.num_outputs > 1:
            return tuple(np.shape(v) for v in y)
        return np.shape(y)


def register(op):
    """Add an op to the registry under its name (later definitions replace earlier ones, so a
    notebook cell that redefines a custom layer simply updates it)."""
    REGISTRY[op.name] = op
    return op


def lookup(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}: import the module that defines it before loading "
                       f"a network that uses it") from None


# --------------------------------------------------------------------- custom layers
class CustomOp(Op):
    """An op made from a plain Python function by :func:`op`.

    Without a backward, the function is treated as a composition of autonn operations: on Layers
    it expands into those operations (so the tape differentiates it), and its eager ``dzdy=``
    derivative is computed by tracing it into a small network.
    """

    def __init__(self, function, name=None):
        self.function = function
        super().__init__(name or f"{function.__module__}.{function.__qualname__}", function,
                         doc=function.__doc__)
        self.__wrapped__ = function
        self.__name__ = function.__name__

    def __call__(self, *inputs, dzdy=None, **options):
        if dzdy is not None:
            _refuse_dzdy_in_graph(self.name, inputs, dzdy)
        if self.backward_fn is None:
            name = self.pop_name(options)
            if contains_layer(inputs):
                return registration.layer_class().name_result(self.function(*inputs, **options),
                                                              name)
            if dzdy is not None:
                traced_derivatives = registration.provided("traced_derivatives")
                need = tuple(x is not None for x in inputs)
                ders = traced_derivatives(self.function, inputs, dzdy, options, need)
                return ders[0] if len(inputs) == 1 else ders
        return super().__call__(*inputs, dzdy=dzdy, **options)

    def has_derivative(self, index):
        return True


def op(function=None, *, name=None):
    """Turn a function of arrays into an autonn op (a custom layer).

    ::

        @an.op
        def scale(x, s, *, bias=0.0):
            return x * s + bias

        @scale.backward
        def scale_backward(x, s, dzdy, *, bias=0.0):
            return dzdy * s, (dzdy * x).sum()

    Positional parameters are the inputs, keyword-only parameters are options. The result works
    eagerly on arrays, with ``dzdy=`` and on Layers. A function built only from autonn operations
    needs no backward.
    """
    def wrap(function):
        return CustomOp(function, name)
    return wrap(function) if function is not None else wrap


# --------------------------------------------------------------------- the backward convention
def _call_rules(rules):
    """Per-input rules as one derivative function (see :meth:`Op.derivative_functions`)."""
    if len(rules) == 1:
        return rules[0]

    def run(dzdy, y, *inputs, **options):
        return tuple([rule(dzdy, y, *inputs, **options) for rule in rules])
    return run


def _call_vjp_at(vjp, positions):
    """``vjp(i, dzdy, y, *inputs, **options)`` for every position, as one derivative function."""
    def run(dzdy, y, *inputs, **options):
        return tuple([vjp(i, dzdy, y, *inputs, **options) for i in positions])
    return run


def _call_backward(op, positions, num_inputs):
    """An op's one ``backward(*inputs, dzdy, **options)`` as a derivative function: the
    ``y=``/``need=`` extras it asks for, its result normalised to a tuple and counted."""
    backward, name, needs_y = op.backward_fn, op.name, op.backward_needs_output
    wanted = set(positions)  # (a tuple's `in` would make a wide op's call quadratic)
    need = tuple(i in wanted for i in range(num_inputs)) if op.backward_accepts_need else None
    single = positions[0] if len(positions) == 1 else None
    every = positions == tuple(range(num_inputs))

    def run(dzdy, y, *inputs, **options):
        # options is the fresh dict of this call's **options: adding to it is safe
        if needs_y:
            options["y"] = y
        if need is not None:
            options["need"] = need
        ders = backward(*inputs, dzdy, **options)
        if type(ders) is not tuple:
            ders = tuple(ders) if type(ders) is list else (ders,)
        if len(ders) != num_inputs:
            raise ValueError(f"{name} backward: returned {len(ders)} derivatives for "
                             f"{num_inputs} inputs")
        if single is not None:
            return ders[single]
        return ders if every else tuple([ders[p] for p in positions])
    return run


def _fill_missing_dzdy(run, name, num_outputs):
    """For an op with several outputs: a missing output derivative (None) becomes zeros."""
    def run_with_zeros(dzdy, y, *inputs, **options):
        if type(dzdy) not in (tuple, list) or len(dzdy) != num_outputs:
            raise ValueError(f"{name} backward: dzdy must be a tuple with one derivative per "
                             f"output ({num_outputs}), got {_describe(dzdy)}")
        if any(d is None for d in dzdy):
            dzdy = tuple(_zeros_like(v) if d is None else d for d, v in zip(dzdy, y))
        return run(dzdy, y, *inputs, **options)
    return run_with_zeros


def _zeros_like(value):
    return array_module(value).zeros_like(value) if value is not None else np.zeros(())


def _describe(value):
    if type(value) in (tuple, list):
        return f"{type(value).__name__} of {len(value)}"
    return f"{type(value).__name__} of shape {tuple(np.shape(value))}"


# --------------------------------------------------------------------- helpers
def _refuse_dzdy_in_graph(name, inputs, dzdy):
    """``dzdy=`` is the eager projected derivative, of arrays. With a Layer among the inputs
    (or as ``dzdy``) the call would otherwise build the plain forward node and drop ``dzdy``
    without a word; a graph gets its derivatives from the Net instead."""
    if contains_layer(inputs) or contains_layer((dzdy,)):
        raise TypeError(f"{name}: dzdy= computes derivatives eagerly, of arrays; it cannot be "
                        f"given with a Layer input or a Layer dzdy. In a graph the Net "
                        f"computes the derivatives: net.eval(inputs, der_output=dzdy), then "
                        f"net.der(...)")


def contains_layer(values):
    """Whether any of ``values`` (or of a list or tuple among them, as ``concat`` takes) is a
    graph node, a Layer: then a call builds the graph instead of computing."""
    layer = registration.layer_class()
    if layer is None:
        return False
    for value in values:
        if isinstance(value, layer):
            return True
        if type(value) in (list, tuple) and any(isinstance(v, layer) for v in value):
            return True
    return False


def _signature_or_none(function):
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _positional_names(signature):
    if signature is None:
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in signature.parameters.values() if p.kind in kinds)
