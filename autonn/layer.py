"""The implicit graph: ``Layer``, ``Input``, ``Param`` and selectors.

A ``Layer`` records one call of an op on its inputs (other Layers, constant arrays, numbers or
``None``) and its options. Nothing is computed here: Python operators and NumPy functions on
Layers build nodes, and :class:`autonn.Net` compiles the graph into a tape. ::

    a, b = Input(), Input()
    c = np.sqrt(np.maximum(a, 0) + a * b / 2)    # a graph of five nodes

Layers are compared by identity everywhere inside autonn: ``==`` on Layers builds a comparison
node, as NumPy's ``==`` on arrays builds an array.
"""

import fnmatch
import os
import sys

import numpy as np

from . import math_ops, registration
from .ops import Op

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
TRAIN_METHODS = ("gradient", "average", "none")


class Layer:
    """A node of the implicit graph: ``op(*inputs, **options)``.

    Attributes
    ----------
    op : Op or None
        None for :class:`Input`, :class:`Param` and :class:`Selector`.
    inputs : tuple
        Layers, constants (arrays, numbers) or None, in the op's argument order.
    options : dict
        The op's keyword options.
    name : str or None
        Set by the user, by :func:`workspace_names`, by :meth:`sequential_names` or at compile.
    automatic_name : bool
        True when the name was given by :meth:`sequential_names` (as every Net does for the
        Layers left unnamed); assigning ``name`` makes it a user name. The optimizer may fold
        away Layers with automatic names, never those the user named, so a graph compiles the
        same the second time as the first.
    source : str
        ``file:line`` of the user code that created the Layer, for error messages.
    """

    # NumPy defers to these methods instead of treating a Layer as an object array.
    __array_priority__ = 1000

    def __init__(self, op=None, inputs=(), options=None, *, name=None):
        self.op = op
        self.inputs = tuple(inputs)
        self.options = dict(options or {})
        self.name = name
        self.source = _user_source()

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        # A name the user gives (or a variable's, by workspace_names) is a user name: the
        # optimizer keeps that Layer visible. Only sequential_names gives automatic names.
        self._name = name
        self.automatic_name = False

    def _set_automatic_name(self, name):
        self._name = name
        self.automatic_name = True

    @classmethod
    def create(cls, op, inputs, options, name=None):
        """A node for ``op(*inputs, **options)``; a tuple of selectors for multi-output ops.
        ``name`` names it (see :meth:`name_result`)."""
        op.check_options(len(inputs), options)
        layer = cls(op, [_as_graph_input(op, x) for x in inputs], options)
        if op.num_outputs > 1:
            return cls.name_result(tuple(Selector(layer, i) for i in range(op.num_outputs)),
                                   name)
        return cls.name_result(layer, name)

    @staticmethod
    def name_result(result, name):
        """Give ``name`` (a call's ``name=``; None: nothing) to the Layer a graph-building call
        returned, and its unnamed Params the names of their role in it (``scores_filters``,
        ``scores_biases``), so Params are named after the layer they belong to wherever the
        graph is built. Several outputs of one op name that op; other tuples are named
        ``name_0``, ``name_1``... Returns ``result``."""
        if name is None:
            return result
        if isinstance(result, tuple):
            bases = {id(x.inputs[0]): x.inputs[0] for x in result if isinstance(x, Selector)}
            if len(bases) == 1 and all(isinstance(x, Selector) for x in result):
                Layer.name_result(next(iter(bases.values())), name)
            else:
                for k, x in enumerate(result):
                    Layer.name_result(x, f"{name}_{k}")
            return result
        if not isinstance(result, Layer):
            return result
        result.name = name
        if result.op is not None:
            roles = result.op.input_names
            for position, x in enumerate(result.inputs):
                if isinstance(x, Param) and x.name is None:
                    role = roles[position] if position < len(roles) else f"param{position}"
                    x.name = f"{name}_{role}"
        return result

    # ------------------------------------------------------------------ display
    def __repr__(self):
        return f"Layer({self.describe()})"

    def describe(self):
        """One line: ``name = op(input names, options)``."""
        args = [_input_label(x) for x in self.inputs]
        args += [f"{k}={_short_repr(v)}" for k, v in self.options.items()]
        op_name = self.op.name if self.op is not None else type(self).__name__
        return f"{self.name or '?'} = {op_name}({', '.join(args)})"

    def _repr_svg_(self):
        """Jupyter shows a Layer as the picture of its graph (see :mod:`autonn.viz`)."""
        return registration.provided("graph_svg")(self)

    # ------------------------------------------------------------------ traversal
    def graph(self):
        """All Layers this one depends on, itself included, in topological order."""
        return topological_order([self])

    def find(self, what=None, index=None, *, name=None, op=None, kind=None):
        """Layers of this graph matching a name (glob patterns allowed), an op (an Op, a block
        function or an op name) or a kind (``Input``, ``Param``, ...).

        ``what`` guesses which of these it is. Returns a list, or the ``index``-th match
        (``layer.find(nn.relu, 0)``, ``-1`` for the last, as AutoNN's ``find(..., n)``); an
        int alone is that index among all the Layers (``layer.find(0)``: the first).
        """
        if isinstance(what, (int, np.integer)) and not isinstance(what, bool) and index is None:
            what, index = None, int(what)
        if isinstance(what, str):
            name = what
        elif isinstance(what, type):
            kind = what
        elif what is not None:
            op = what
        matches = [layer for layer in self.graph()
                   if (name is None or (layer.name is not None
                                        and fnmatch.fnmatchcase(layer.name, name)))
                   and (op is None or _op_matches(layer, op))
                   and (kind is None or isinstance(layer, kind))]
        if index is None:
            return matches
        try:
            return matches[index]
        except IndexError:
            raise IndexError(f"find: {len(matches)} layers match, index {index} is out of "
                             f"range") from None

    def sequential_names(self, start=1):
        """Name every unnamed Layer of the graph after its op and position: ``conv1``,
        ``conv1_filters``, ``relu2``, ``input1``... Returns self."""
        sequential_names([self], start)
        return self

    def deep_copy(self, *shared, share=(), rename=None):
        """A copy of the whole graph up to this Layer (AutoNN's ``deepCopy``). Params are copied
        with their values.

        ``shared`` (Layers, or lists of them) are reused instead of copied, and so is everything
        they depend on: a shared Layer reading the copy of its input would read two different
        graphs (``(sqrt(a) + abs(a)).deep_copy(b)`` with ``b = sqrt(a)`` shares ``a`` too,
        which ``abs`` reads). Share the Inputs for a second stream on the same data, the Params
        for tied weights. ``rename(name)`` gives each named copy its name (AutoNN's
        ``renameFn``), e.g. ``rename=lambda name: 'streamB_' + name``; unnamed copies stay
        unnamed. ``share=`` (a Layer or a list, AutoNN's option name) adds to ``shared``.
        """
        roots = _flatten_layers("deep_copy", shared + (share,))
        if any(layer is self for layer in roots):
            raise ValueError(f"deep_copy: the Layer copied ({self.name or self.describe()!r}) "
                             f"cannot be one of the shared Layers")
        if rename is not None and not callable(rename):
            raise TypeError(f"deep_copy: rename must be a function of a name, got "
                            f"{type(rename).__name__}")
        copies = {id(layer): layer for layer in topological_order(roots)}
        if id(self) in copies:
            raise ValueError(f"deep_copy: the Layer copied ({self.name or self.describe()!r}) "
                             f"is an input of a shared Layer, so it is shared too: nothing "
                             f"would be copied")
        for layer in self.graph():
            if id(layer) in copies:
                continue
            clone = layer._copy_with(
                [copies[id(x)] if isinstance(x, Layer) else x for x in layer.inputs])
            if rename is not None and layer.name is not None:
                automatic = layer.automatic_name
                clone.name = rename(layer.name)
                if not isinstance(clone.name, str):
                    raise TypeError(f"deep_copy: rename({layer.name!r}) must return a str, "
                                    f"got {type(clone.name).__name__}")
                clone.automatic_name = automatic
            copies[id(layer)] = clone
        return copies[id(self)]

    def _copy_with(self, inputs):
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.inputs = tuple(inputs)
        clone.options = dict(self.options)
        return clone

    # ------------------------------------------------------------------ Python's protocols
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError(f"Layer {self.name or ''} has no truth value: it is a node of a graph, "
                        f"evaluated only by a Net")

    def __iter__(self):
        # Without this, Python would iterate a Layer through __getitem__ forever.
        raise TypeError("a Layer is not iterable; index it explicitly (x[0], x[1], ...)")

    def __len__(self):
        raise TypeError("a Layer has no length until a Net evaluates it")

    # ------------------------------------------------------------------ NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = math_ops.UFUNC_OPS.get(ufunc)
        if op is None or method != "__call__":
            name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
            raise _unsupported(f"numpy.{name}")
        if kwargs.get("out") is not None:
            raise TypeError(f"{ufunc.__name__}: out= cannot write into a Layer")
        unsupported = {k: v for k, v in kwargs.items() if k != "out"}
        if unsupported:
            raise TypeError(f"{ufunc.__name__}: options {sorted(unsupported)} are not "
                            f"supported on Layers")
        return op(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        handler = math_ops.FUNCTION_OPS.get(func)
        if handler is None:
            raise _unsupported(f"{func.__module__}.{func.__name__}")
        return handler(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        # Without this NumPy would wrap the Layer in a 0-d object array, and code that meant
        # to compute would silently build nonsense.
        raise TypeError(f"Layer {self.name or self.describe()!r} is a node of a graph, not an "
                        f"array: np.asarray/np.array cannot convert it; evaluate it with a Net "
                        f"(net.eval(...), net.value(layer))")

    # ------------------------------------------------------------------ shape
    @property
    def shape(self):
        """The output's shape, where the graph fixes it: from the Params' values, the
        constants and the Inputs whose shape was declared (``x.shape = (2, 3)``), through each
        op's shape rule. A Layer whose shape is not known has no ``shape`` attribute."""
        shape = _known_shape(self)
        if shape is None:
            raise AttributeError(f"the shape of Layer {self.name or self.describe()!r} is "
                                 f"not known: it depends on an Input whose shape was not "
                                 f"declared (input.shape = (...)) or on a custom op")
        return shape

    @shape.setter
    def shape(self, shape):
        if not isinstance(self, Input):
            raise AttributeError(f"shape: only an Input's shape can be declared; the shape of "
                                 f"{self.describe()!r} follows from its inputs")
        self._declared_shape = None if shape is None else tuple(int(n) for n in shape)

    @property
    def ndim(self):
        """The rank of the output, where its shape is known (see :attr:`shape`)."""
        return len(self.shape)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return math_ops.add(self, other)

    def __radd__(self, other):
        return math_ops.add(other, self)

    def __sub__(self, other):
        return math_ops.subtract(self, other)

    def __rsub__(self, other):
        return math_ops.subtract(other, self)

    def __mul__(self, other):
        return math_ops.multiply(self, other)

    def __rmul__(self, other):
        return math_ops.multiply(other, self)

    def __truediv__(self, other):
        return math_ops.divide(self, other)

    def __rtruediv__(self, other):
        return math_ops.divide(other, self)

    def __pow__(self, other):
        return math_ops.power(self, other)

    def __rpow__(self, other):
        return math_ops.power(other, self)

    def __matmul__(self, other):
        return math_ops.matmul(self, other)

    def __rmatmul__(self, other):
        return math_ops.matmul(other, self)

    def __neg__(self):
        return math_ops.negative(self)

    def __pos__(self):
        return math_ops.positive(self)

    def __abs__(self):
        return math_ops.absolute(self)

    def __lt__(self, other):
        return math_ops.less(self, other)

    def __le__(self, other):
        return math_ops.less_equal(self, other)

    def __gt__(self, other):
        return math_ops.greater(self, other)

    def __ge__(self, other):
        return math_ops.greater_equal(self, other)

    def __eq__(self, other):
        return math_ops.equal(self, other)

    def __ne__(self, other):
        return math_ops.not_equal(self, other)

    def __getitem__(self, index):
        if isinstance(index, Layer):
            return math_ops.take(self, index, axis=0)
        if isinstance(index, tuple) and any(isinstance(i, Layer) for i in index):
            # x[:, t]: one Layer index after whole slices, as np.take(x, t, axis=1)
            position = next(k for k, i in enumerate(index) if isinstance(i, Layer))
            rest = index[:position] + index[position + 1:]
            if any(not (isinstance(i, slice) and i == slice(None)) for i in rest):
                raise TypeError("getitem: a Layer index is supported alone or after whole "
                                "slices (x[t], x[:, t]); index with arrays, slices and "
                                "integers otherwise")
            return math_ops.take(self, index[position], axis=position)
        return math_ops.getitem(self, index=_freeze_index(index))

    # ------------------------------------------------------------------ array-like methods
    @property
    def T(self):  # noqa: N802 (NumPy's name)
        return math_ops.transpose(self)

    def reshape(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        return math_ops.reshape(self, shape=math_ops._shape_option(shape))

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = axes[0]
        return math_ops.transpose(self, axes=tuple(int(a) for a in axes) if axes else None)

    def sum(self, axis=None, keepdims=False):
        return math_ops.sum(self, axis=math_ops._axis_option(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return math_ops.mean(self, axis=math_ops._axis_option(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return math_ops.max(self, axis=math_ops._axis_option(axis), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return math_ops.min(self, axis=math_ops._axis_option(axis), keepdims=keepdims)

    def squeeze(self, axis=None):
        return math_ops.squeeze(self, axis=math_ops._axis_option(axis))

    def argmax(self, axis=None):
        return math_ops.argmax(self, axis=axis)

    def argmin(self, axis=None):
        return math_ops.argmin(self, axis=axis)

    def astype(self, dtype):
        return math_ops.astype(self, dtype=np.dtype(dtype).name)

    def flatten(self):
        return math_ops.reshape(self, shape=(-1,))

    def ravel(self):
        return math_ops.reshape(self, shape=(-1,))

    def prod(self, axis=None, keepdims=False):
        return math_ops.prod(self, axis=math_ops._axis_option(axis), keepdims=keepdims)

    def var(self, axis=None, ddof=0, keepdims=False):
        return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis=None, ddof=0, keepdims=False):
        return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def cumsum(self, axis=None):
        return np.cumsum(self, axis=axis)

    def clip(self, min=None, max=None):  # noqa: A002 (NumPy's names)
        return np.clip(self, min, max)

    def round(self, decimals=0):
        return np.round(self, decimals)

    def swapaxes(self, axis1, axis2):
        return np.swapaxes(self, axis1, axis2)

    def repeat(self, repeats, axis=None):
        return np.repeat(self, repeats, axis)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return np.diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1):
        return np.trace(self, offset, axis1, axis2)

    def dot(self, other):
        return np.dot(self, other)

    def argsort(self, axis=-1):
        return np.argsort(self, axis)

    # ------------------------------------------------------------------ conversions
    @staticmethod
    def from_compiled_net(net):
        """The implicit graph of a compiled :class:`autonn.Net`, read back from its tape
        (AutoNN's ``Layer.fromCompiledNet``): a list of the output Layers, whose nodes carry
        the steps' ops, options and names, and which share the net's Inputs and Params
        (values included). ``Net(*Layer.from_compiled_net(net))`` compiles to the same tape.
        Edits of the tape are read back too (:func:`autonn.net.layers_from_net`)."""
        return registration.provided("compiled_net_layers")(net)

    @staticmethod
    def from_dagnn(dag):
        """The implicit graph of a :class:`autonn.dagnn.DagNN`: its output Layers (the
        conversion lives in :func:`autonn.dagnn.to_layers`)."""
        return registration.provided("dagnn_layers")(dag)


registration.provide("Layer", Layer)


class Input(Layer):
    """A network input, fed by ``net.eval({'name': value})``."""

    def __init__(self, name=None):
        super().__init__(None, (), None, name=name)

    def describe(self):
        return f"{self.name or '?'} = Input()"


class Param(Layer):
    """A learnable parameter.

    Parameters
    ----------
    value : array
        Initial value (copied when it is not already an array of a float type).
    learning_rate, weight_decay : float
        Multipliers of the solver's learning rate and weight decay for this parameter.
    train_method : {'gradient', 'average', 'none'}
        'gradient' descends the derivative; 'average' moves the value toward what the backward
        pass reports (batch-norm moments); 'none' keeps it fixed.
    """

    def __init__(self, value, *, name=None, learning_rate=1.0, weight_decay=1.0,
                 train_method="gradient"):
        super().__init__(None, (), None, name=name)
        if train_method not in TRAIN_METHODS:
            raise ValueError(f"Param: train_method must be one of {TRAIN_METHODS}, "
                             f"got {train_method!r}")
        if not hasattr(value, "shape"):
            value = np.asarray(value, dtype=np.float32)
        self.value = value
        self.der = None
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.train_method = train_method

    def describe(self):
        return f"{self.name or '?'} = Param({_shape_text(self.value)})"

    def _copy_with(self, inputs):
        clone = super()._copy_with(inputs)
        clone.value = self.value.copy()
        return clone


class Selector(Layer):
    """Output ``index`` of a multi-output op node."""

    def __init__(self, node, index):
        super().__init__(None, (node,), None)
        self.index = index

    def describe(self):
        return f"{self.name or '?'} = {_input_label(self.inputs[0])}[output {self.index}]"


# ---------------------------------------------------------------------- naming
def workspace_names(frame=None, *, overwrite=False):
    """Name the unnamed Layers held in the caller's variables after those variables.

    ``x = an.Input(); an.workspace_names()`` names it ``'x'``. With ``overwrite``, named Layers
    are renamed too. Returns the mapping of names given.
    """
    frame = frame or sys._getframe(1)
    given = {}
    for scope in (frame.f_locals, frame.f_globals):
        for variable, value in list(scope.items()):
            if isinstance(value, Layer) and not variable.startswith("_") and (
                    value.name is None or overwrite) and variable not in given:
                value.name = variable
                given[variable] = value
    return given


def sequential_names(outputs, start=1):
    """Name the unnamed Layers of the graph ending in ``outputs`` (see
    :meth:`Layer.sequential_names`); one numbering for the whole graph, so names never clash."""
    order = topological_order(outputs)
    counts = {}
    used = {layer.name for layer in order if layer.name is not None}

    def fresh(base):
        while True:
            counts[base] = counts.get(base, start - 1) + 1
            candidate = f"{base}{counts[base]}"
            if candidate not in used:
                used.add(candidate)
                return candidate

    for layer in order:
        if layer.name is None and type(layer) is Layer:
            layer._set_automatic_name(fresh(layer.op.name))
        elif layer.name is None and isinstance(layer, Input):
            layer._set_automatic_name(fresh("input"))
    for layer in order:
        if isinstance(layer, Selector) and layer.name is None:
            layer._set_automatic_name(_unique(f"{layer.inputs[0].name}_{layer.index}", used))
        if type(layer) is not Layer:
            continue
        for position, x in enumerate(layer.inputs):
            if isinstance(x, Param) and x.name is None:
                role = (layer.op.input_names[position]
                        if position < len(layer.op.input_names) else f"param{position}")
                x._set_automatic_name(_unique(f"{layer.name}_{role}", used))
    for layer in order:  # what is left: Params that are outputs themselves
        if layer.name is None:
            layer._set_automatic_name(fresh("param" if isinstance(layer, Param) else "var"))


def topological_order(outputs):
    """Layers reachable from ``outputs``, each after all its inputs (iterative: deep chains of
    thousands of nodes are fine)."""
    order, state = [], {}
    for root in outputs:
        stack = [(root, False)]
        while stack:
            layer, expanded = stack.pop()
            key = id(layer)
            if expanded:
                if state.get(key) != 2:
                    state[key] = 2
                    order.append(layer)
                continue
            if key in state:
                continue
            state[key] = 1
            stack.append((layer, True))
            for x in reversed(layer.inputs):
                if not isinstance(x, Layer):
                    continue
                if state.get(id(x)) == 1:
                    # state 1 marks the Layers on the path being expanded: x is its own input
                    raise ValueError(f"the graph has a cycle: '{x.name or x.describe()}' "
                                     f"(created at {x.source}) depends on itself (an edit of "
                                     f"a Layer's inputs?)")
                if id(x) not in state:
                    stack.append((x, False))
    return order


# ---------------------------------------------------------------------- helpers
def _flatten_layers(where, values):
    """Layers given one by one or in lists (AutoNN passes cell arrays)."""
    layers = []
    for value in values:
        items = value if isinstance(value, (list, tuple)) else (value,)
        for item in items:
            if not isinstance(item, Layer):
                raise TypeError(f"{where}: shared layers must be Layers, got "
                                f"{type(item).__name__}")
            layers.append(item)
    return layers


def _unsupported(function):
    return TypeError(f"{function} is not supported on Layers (no autonn op implements it); "
                     f"write it as a custom layer with @an.op, a function of arrays with a "
                     f"backward (or built from supported operations)")


def _known_shape(layer):
    """The shape of ``layer`` from what its graph fixes (see :attr:`Layer.shape`), or None.
    (:mod:`autonn.shapes` walks graphs from given Input shapes; this reads only the graph.)"""
    shapes = {}
    for node in topological_order([layer]):
        if isinstance(node, Input):
            shape = node.__dict__.get("_declared_shape")
        elif isinstance(node, Param):
            shape = tuple(np.shape(node.value))
        elif isinstance(node, Selector):
            shape = shapes.get(id(node.inputs[0]))
            shape = None if shape is None else shape[node.index]
        elif any(isinstance(x, Layer) and shapes.get(id(x)) is None for x in node.inputs):
            shape = None
        else:
            arguments = [shapes[id(x)] if isinstance(x, Layer) else
                         x if x is None or np.ndim(x) == 0 else tuple(np.shape(x))
                         for x in node.inputs]
            shape = _op_shape(node.op, arguments, node.options)
        shapes[id(node)] = shape
    return shapes[id(layer)]


def _op_shape(op, arguments, options):
    if op.shape_rule is None:  # a custom op: its forward on zeros may fail for any reason
        try:
            shape = op.output_shape(*arguments, **options)
        except Exception:  # noqa: BLE001
            return None
    else:
        shape = op.output_shape(*arguments, **options)
    if op.num_outputs > 1:
        return tuple(tuple(int(n) for n in s) for s in shape)
    return tuple(int(n) for n in shape)


def _as_graph_input(op, x):
    if isinstance(x, Layer) or x is None or isinstance(x, (int, float, bool, np.number)):
        return x
    if isinstance(x, (list, tuple)):
        if any(isinstance(v, Layer) for v in x):
            raise TypeError(f"{op.name}: a list containing Layers cannot be one input; "
                            f"pass the Layers as separate arguments")
        return np.asarray(x)
    return x


def _freeze_index(index):
    """Indices become tuples/arrays so they can be stored, printed and saved."""
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(np.asarray(i) if isinstance(i, list) else i for i in index)
    return index


def first_user_frame():
    """The innermost frame of the call stack whose code lies outside the autonn package: the
    user's line that built a Layer or a Net."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(
            frame.f_code.co_filename)).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def _user_source():
    """``file:line`` of the first caller outside autonn."""
    frame = first_user_frame()
    if frame is None:
        return "?"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _op_matches(layer, op):
    if layer.op is None:
        return False
    if isinstance(op, str):
        return layer.op.name == op
    if isinstance(op, Op):
        return layer.op is op
    # a block function (nn.conv) matches the op it calls when they share a name
    return layer.op.name == getattr(op, "__name__", None)


def _unique(name, used):
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}{n}"
    used.add(candidate)
    return candidate


def _input_label(x):
    if isinstance(x, Layer):
        return x.name or f"<{x.op.name if x.op else type(x).__name__}>"
    if x is None:
        return "None"
    return _short_repr(x)


def _short_repr(value):
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        return f"array{_shape_text(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _shape_text(value):
    return "×".join(str(n) for n in np.shape(value)) or "scalar"
