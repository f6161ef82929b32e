"""The op registry: one definition per operation.

An :class:`Op` bundles everything the rest of autonn needs to know about an operation:

- ``forward(*inputs, **options)`` computes the output (a tuple when ``num_outputs > 1``);
- the derivative, given either as one ``backward(*inputs, dzdy, **options)`` returning a
  derivative per input (MatConvNet's projected derivative), or as per-input rules
  ``vjps[i](dzdy, y, *inputs, **options)`` (the style of HIPS autograd) so the tape computes only
  the derivatives somebody needs;
- which inputs the backward reads (``backward_needs_inputs``) and whether it reads the output
  (``backward_needs_output``): the compiler frees everything else under ``conserve_memory``;
- an optional shape rule and an optional test-mode forward (dropout, batch normalisation).

Calling an op dispatches on its arguments, so every block and math function works three ways::

    y = op(x, w)                  # arrays in, array out
    dx, dw = op(x, w, dzdy=dy)    # derivatives with respect to the inputs, in argument order
    y = op(x_layer, w)            # any Layer argument: builds a graph node instead

Positional arguments are the op's inputs (arrays, Layers, numbers or ``None``); keyword arguments
are its options. Nothing here knows about the tape: the compiler in :mod:`autonn.net` reads these
attributes once, at compile time.
"""

import inspect

import numpy as np

from . import registration

REGISTRY = {}


class Op:
    """An operation: forward, derivative, shape rule and what the backward pass needs.

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
        ``vjp=(i, dzdy, y, *inputs, **options)`` instead.
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
        ``shape(*input_shapes, **options)`` giving the output shape without computing it.
    input_names : tuple of str, optional
        Names of the inputs, used to name Params (``conv1_filters``); taken from the signature
        of ``forward`` when not given.
    """

    def __init__(self, name, forward, backward=None, *, vjps=None, vjp=None, num_outputs=1,
                 differentiable=True, backward_needs_inputs=None, backward_needs_output=False,
                 backward_accepts_need=False, forward_test=None, shape=None, input_names=None,
                 doc=None):
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
        self.__doc__ = doc or getattr(forward, "__doc__", None)
        self._signature = _signature_or_none(forward)
        self.input_names = tuple(input_names) if input_names else _positional_names(self._signature)
        register(self)

    def __repr__(self):
        return f"<Op {self.name}>"

    # ----------------------------------------------------------------- calling
    def __call__(self, *inputs, dzdy=None, **options):
        if contains_layer(inputs):
            return registration.layer_class().create(self, inputs, options)
        if dzdy is not None:
            return self.derivatives(inputs, dzdy, options)
        return self.forward(*inputs, **options)

    def derivatives(self, inputs, dzdy, options, need=None):
        """Eager backward: the derivative of ``<dzdy, op(inputs)>`` with respect to each input.

        Returns a tuple with one entry per input (``None`` for inputs that are ``None``, that have
        no derivative, or that ``need`` excludes), or the bare derivative for a one-input op.
        """
        if need is None:
            need = tuple(x is not None for x in inputs)
        self._check_dzdy_dtype(inputs, dzdy)
        y = self.forward(*inputs, **options) if self.backward_needs_output else None
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
        """All the needed input derivatives as a tuple (the reference executor uses this)."""
        if not self.differentiable:
            return tuple(None for _ in inputs)
        if self.vjps is not None or self.vjp is not None:
            return tuple(self.vjp_for(i)(dzdy, y, *inputs, **options)
                         if wanted and self.has_derivative(i) else None
                         for i, wanted in enumerate(need))
        if self.backward_fn is None:
            raise NotImplementedError(f"op {self.name!r} has no derivative")
        extra = {}
        if self.backward_needs_output:
            extra["y"] = y
        if self.backward_accepts_need:
            extra["need"] = tuple(need)
        ders = self.backward_fn(*inputs, dzdy, **options, **extra)
        if not isinstance(ders, (tuple, list)):
            ders = (ders,)
        if len(ders) != len(inputs):
            raise ValueError(f"{self.name} backward: returned {len(ders)} derivatives for "
                             f"{len(inputs)} inputs")
        return tuple(d if wanted else None for d, wanted in zip(ders, need))

    def vjp_for(self, index):
        """The rule ``f(dzdy, y, *inputs, **options)`` giving the derivative of input ``index``,
        or None when that input has no derivative."""
        if self.vjps is not None:
            return self.vjps[index] if index < len(self.vjps) else None
        if self.vjp is not None:
            vjp = self.vjp
            return lambda dzdy, y, *inputs, **options: vjp(index, dzdy, y, *inputs, **options)
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

        Uses the op's shape rule when it has one, and otherwise runs the forward on zeros.
        """
        if self.shape_rule is not None:
            return self.shape_rule(*input_shapes, **options)
        dummies = [None if s is None else (s if _is_number(s) else np.zeros(s, np.float64))
                   for s in input_shapes]
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
        if self.backward_fn is None:
            if contains_layer(inputs):
                return self.function(*inputs, **options)
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


# --------------------------------------------------------------------- helpers
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


def _is_number(value):
    return isinstance(value, (int, float, complex, bool, np.number))


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
