"""A Net's test-mode forward as an ONNX model: :func:`export_onnx`.

The exporter walks the compiled forward tape: each step becomes the ONNX nodes that compute what
its op computes in test mode (dropout is the identity, bnorm uses its moments). Params and
constants become initializers; the shapes of every variable come from one test-mode evaluation
on the example inputs, so the model has the examples' fixed shapes. An op ONNX cannot express
(or one not translated yet) raises :class:`ExportError` naming it.

MatConvNet's definitions are kept exactly: pads (top, bottom, left, right) become ONNX's (top,
left, bottom, right); average pooling divides by the unpadded elements of the window
(``count_include_pad=0``); LRN's ``alpha`` is not divided by the depth (ONNX's is, so it gets
``alpha * depth``); bnorm's moments ``[mu, sigma]`` become a mean and a variance ``sigma^2``
with ``epsilon = 0``; the losses are their forward (summed over space, averaged over the batch,
negative labels ignored).
"""

import os

import numpy as np

from .. import backend

OPSET = 17
PRODUCER = "autonn"


class ExportError(ValueError):
    """A net that ONNX cannot express (the message names the op and the step)."""


def export_onnx(net, path, inputs, *, check=True):
    """Write ``net``'s test-mode forward to ``path`` as an ONNX model (opset 17).

    ``inputs`` maps each Input's name to an example array (its shape and dtype become the
    model's; labels are int64). The net is evaluated once on them in test mode. With ``check``
    the model goes through ``onnx.checker``. Returns the ``onnx.ModelProto``.
    """
    onnx = _onnx("export_onnx")
    from onnx import helper, numpy_helper

    examples = _examples(net, inputs)
    net.eval(examples, mode="test")
    graph = _Graph(net, numpy_helper)
    for step in net.tape.forward:
        convert = CONVERTERS.get(step.op.name)
        if convert is None:
            raise ExportError(f"export_onnx: step '{step.name}' runs op '{step.op.name}', "
                              f"which the ONNX exporter does not translate; supported ops: "
                              f"{', '.join(sorted(CONVERTERS))}")
        convert(graph, step, **step.options)
    declared = []
    for name, value in examples.items():
        declared.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
    outputs = []
    for layer in net.outputs:
        slot = net._slot(layer)
        value = graph.value(slot)
        outputs.append(helper.make_tensor_value_info(
            graph.names[slot], helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype),
            np.shape(value)))
    model = helper.make_model(
        helper.make_graph(graph.nodes, "autonn", declared, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER)
    model.ir_version = min(model.ir_version, 8)  # what ONNX Runtime releases of opset 17 read
    if check:
        onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.fspath(path))
    return model


def _examples(net, inputs):
    if not isinstance(inputs, dict):
        raise TypeError(f"export_onnx: inputs must map Input names to example arrays, got "
                        f"{type(inputs).__name__}")
    names = sorted(net.inputs)
    given = {getattr(key, "name", key): value for key, value in inputs.items()}
    if sorted(given) != names:
        raise ValueError(f"export_onnx: inputs must give an example for each of the net's "
                         f"Inputs {names}, got {sorted(given)}")
    return {name: backend.to_numpy(np.asarray(value) if not hasattr(value, "shape") else value)
            for name, value in given.items()}


def _onnx(caller):
    try:
        import onnx
    except ImportError:
        raise ImportError(f"{caller}: needs the onnx package (pip install "
                          f"autonn[interchange])") from None
    return onnx


class _Graph:
    """The ONNX nodes and initializers made so far, and the net's values by slot."""

    def __init__(self, net, numpy_helper):
        self.net, self.numpy_helper = net, numpy_helper
        self.names = list(net.tape.names)
        self.nodes, self.initializers = [], []
        self.static = {}  # slot -> value known before running: Params and constants
        for param in net.params:
            self.static[net._slot(param)] = param.value
        for slot, value in net.tape.constants:
            self.static[slot] = value
        self._made = set()
        self._count = 0

    def value(self, slot):
        """The value of a slot in the test-mode evaluation (static or computed)."""
        if slot in self.static:
            return self.static[slot]
        return self.net.value(self.names[slot])

    def dtype(self, slot):
        return np.asarray(self.value(slot)).dtype

    def input(self, slot, dtype=None):
        """The ONNX name of a slot, adding it as an initializer when it is static."""
        if slot not in self.static:
            return self.names[slot]
        value = self.static[slot]
        if value is None:
            return ""
        array = np.asarray(backend.to_numpy(value) if hasattr(value, "shape") else value,
                           dtype=dtype)
        name = self.names[slot] if dtype is None or array.dtype == self.dtype(slot) else \
            f"{self.names[slot]}_as_{array.dtype}"
        if name not in self._made:
            self._made.add(name)
            self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def constant(self, array, hint):
        self._count += 1
        name = f"{hint}_{self._count}"
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def temp(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def node(self, op_type, inputs, outputs, **attributes):
        from onnx import helper
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                           **attributes))
        return outputs[0] if len(outputs) == 1 else outputs

    def out(self, step, k=0):
        return self.names[step.outputs[k]]

    def float_inputs(self, step):
        """The step's inputs, constants cast to the dtype of its first computed input (ONNX
        wants one type; NumPy promoted a Python number)."""
        computed = [s for s in step.inputs if s not in self.static]
        dtype = self.dtype(computed[0]) if computed else None
        return [self.input(s, dtype) for s in step.inputs]


def _onnx_pads(pad):
    top, bottom, left, right = pad
    return [top, left, bottom, right]


# ------------------------------------------------------------------------------ blocks
def _conv(g, step, *, stride, pad, dilate):
    x, w, b = step.inputs
    filters = np.asarray(g.value(w))
    channels = np.shape(g.value(x))[1]
    g.node("Conv", [g.input(x), g.input(w)] + ([g.input(b)] if g.input(b) else []),
           [g.out(step)], strides=list(stride), pads=_onnx_pads(pad), dilations=list(dilate),
           group=channels // filters.shape[1], kernel_shape=list(filters.shape[2:]))


def _convt(g, step, *, upsample, crop, num_groups):
    x, w, b = step.inputs
    filters = np.asarray(g.value(w))
    g.node("ConvTranspose", [g.input(x), g.input(w)] + ([g.input(b)] if g.input(b) else []),
           [g.out(step)], strides=list(upsample), pads=_onnx_pads(crop), group=num_groups,
           kernel_shape=list(filters.shape[2:]))


def _pool(g, step, *, size, method, stride, pad):
    attributes = dict(kernel_shape=list(size), strides=list(stride), pads=_onnx_pads(pad))
    if method == "max":
        g.node("MaxPool", [g.input(step.inputs[0])], [g.out(step)], **attributes)
    else:  # MatConvNet divides by the elements of the window inside the image
        g.node("AveragePool", [g.input(step.inputs[0])], [g.out(step)], count_include_pad=0,
               **attributes)


def _relu(g, step, *, leak):
    if leak:
        g.node("LeakyRelu", [g.input(step.inputs[0])], [g.out(step)], alpha=float(leak))
    else:
        g.node("Relu", [g.input(step.inputs[0])], [g.out(step)])


def _normalize(g, step, *, param):
    depth, kappa, alpha, beta = param
    g.node("LRN", [g.input(step.inputs[0])], [g.out(step)], size=int(depth),
           alpha=float(alpha) * int(depth), beta=float(beta), bias=float(kappa))


def _bnorm_with_moments(g, step, **_):
    x, gain, bias, moments = step.inputs
    if moments not in g.static:
        raise ExportError(f"export_onnx: step '{step.name}' ({step.op.name}) takes its moments "
                          f"from a computed variable; ONNX's BatchNormalization wants them "
                          f"fixed (Params or constants)")
    m = np.asarray(backend.to_numpy(g.static[moments]), dtype=g.dtype(x))
    mean = g.constant(m[:, 0], f"{step.name}_mean")
    variance = g.constant((m[:, 1].astype(np.float64) ** 2).astype(m.dtype),
                          f"{step.name}_variance")
    # sigma = sqrt(fl(sigma^2)) exactly in binary floating point: the round trip is exact.
    # The epsilon that training adds to the batch variance travels in the doc string.
    g.node("BatchNormalization", [g.input(x), g.input(gain), g.input(bias), mean, variance],
           [g.out(step)], epsilon=0.0,
           doc_string=f"autonn bnorm epsilon={step.options.get('epsilon', 1e-4)!r}")


def _bnorm_batch(g, step, *, epsilon):
    """Batch statistics, as ``bnorm`` computes them in every mode."""
    x, gain, bias = (g.input(s) for s in step.inputs)
    dtype = g.dtype(step.inputs[0])
    axes = dict(axes=[0, 2, 3], keepdims=1)
    mean = g.node("ReduceMean", [x], [g.temp("mean")], **axes)
    centred = g.node("Sub", [x, mean], [g.temp("centred")])
    square = g.node("Mul", [centred, centred], [g.temp("square")])
    variance = g.node("ReduceMean", [square], [g.temp("variance")], **axes)
    shifted = g.node("Add", [variance, g.constant(np.array(epsilon, dtype), "epsilon")],
                     [g.temp("shifted")])
    sigma = g.node("Sqrt", [shifted], [g.temp("sigma")])
    shape = g.constant(np.array([1, -1, 1, 1], np.int64), "channel_shape")
    scaled = g.node("Div", [centred, sigma], [g.temp("normalised")])
    gains = g.node("Reshape", [gain, shape], [g.temp("gain")])
    biases = g.node("Reshape", [bias, shape], [g.temp("bias")])
    product = g.node("Mul", [scaled, gains], [g.temp("scaled")])
    g.node("Add", [product, biases], [g.out(step)])


def _identity(g, step, **_):
    g.node("Identity", [g.input(step.inputs[0])], [g.out(step)])


def _softmax(g, step):
    g.node("Softmax", [g.input(step.inputs[0])], [g.out(step)], axis=1)


def _sigmoid(g, step):
    g.node("Sigmoid", [g.input(step.inputs[0])], [g.out(step)])


def _concat(g, step, *, axis, **_):
    g.node("Concat", g.float_inputs(step), [g.out(step)], axis=int(axis))


def _crop(g, step, *, crop):
    x = step.inputs[0]
    _, _, height, width = np.shape(g.value(x))
    top, bottom, left, right = crop
    starts = g.constant(np.array([top, left], np.int64), "starts")
    ends = g.constant(np.array([height - bottom, width - right], np.int64), "ends")
    axes = g.constant(np.array([2, 3], np.int64), "axes")
    g.node("Slice", [g.input(x), starts, ends, axes], [g.out(step)])


def _loss(g, step, *, loss, topk, threshold, normalise):
    """The categorical losses on labels (N,), (N,H,W) or (N,1,H,W): per position, summed over
    space and (with ``normalise``) divided by the batch size; negative labels count 0."""
    if len(step.inputs) != 2 or loss not in ("softmaxlog", "log", "classerror", "topkerror"):
        raise ExportError(f"export_onnx: step '{step.name}': loss '{loss}'"
                          f"{' with instance_weights' if len(step.inputs) != 2 else ''} is not "
                          f"translated (softmaxlog, log, classerror and topkerror on labels are)")
    x, c = step.inputs
    n, channels, height, width = np.shape(g.value(x))
    labels_shape = np.shape(g.value(c))
    if np.asarray(g.value(c)).dtype.kind not in "iu" or np.prod(labels_shape) != n * height * width:
        raise ExportError(f"export_onnx: step '{step.name}': loss is translated for integer "
                          f"class labels, one per position; got labels of shape "
                          f"{labels_shape}")
    dtype = g.dtype(x)
    labels = g.node("Reshape", [g.input(c), g.constant(np.array([n, 1, height, width], np.int64),
                                                       "label_shape")], [g.temp("labels")])
    labels = g.node("Cast", [labels], [g.temp("labels64")], to=7)  # int64
    zero = g.constant(np.array(0, np.int64), "zero")
    valid = g.node("GreaterOrEqual", [labels, zero], [g.temp("valid")])
    safe = g.node("Max", [labels, zero], [g.temp("safe_labels")])
    mask = g.node("Cast", [valid], [g.temp("mask")], to=_tensor_type(dtype))
    if loss == "classerror":
        best = g.node("ArgMax", [g.input(x)], [g.temp("best")], axis=1, keepdims=1)
        wrong = g.node("Not", [g.node("Equal", [best, safe], [g.temp("right")])],
                       [g.temp("wrong")])
        per_position = g.node("Cast", [wrong], [g.temp("errors")], to=_tensor_type(dtype))
    elif loss == "topkerror":
        k = g.constant(np.array([min(topk, channels)], np.int64), "k")
        _, best = g.node("TopK", [g.input(x), k], [g.temp("top"), g.temp("top_classes")],
                         axis=1)
        hits = g.node("Cast", [g.node("Equal", [best, safe], [g.temp("hit")])],
                      [g.temp("hits")], to=_tensor_type(dtype))
        found = g.node("ReduceMax", [hits], [g.temp("found")], axes=[1], keepdims=1)
        per_position = g.node("Sub", [g.constant(np.array(1, dtype), "one"), found],
                              [g.temp("errors")])
    else:
        scores = g.input(x)
        if loss == "softmaxlog":
            scores = g.node("LogSoftmax", [scores], [g.temp("log_softmax")], axis=1)
        picked = g.node("GatherElements", [scores, safe], [g.temp("picked")], axis=1)
        if loss == "log":  # MatConvNet's log loss: -log(max(x_c, 1e-8)) ... clamped below
            picked = g.node("Log", [g.node("Max", [picked, g.constant(
                np.array(1e-8, dtype), "floor")], [g.temp("clamped")])], [g.temp("log")])
        per_position = g.node("Neg", [picked], [g.temp("losses")])
    masked = g.node("Mul", [per_position, mask], [g.temp("masked")])
    total = g.node("ReduceSum", [masked], [g.temp("total")], keepdims=0)
    if normalise:
        g.node("Div", [total, g.constant(np.array(n, dtype), "batch")], [g.out(step)])
    else:
        g.node("Identity", [total], [g.out(step)])


def _tensor_type(dtype):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


# ------------------------------------------------------------------------------ math
def _elementwise(op_type):
    def convert(g, step):
        g.node(op_type, g.float_inputs(step), [g.out(step)])
    return convert


def _square(g, step):
    x = g.input(step.inputs[0])
    g.node("Mul", [x, x], [g.out(step)])


def _weighted_sum(g, step, *, weights):
    terms = []
    dtype = g.dtype(next(s for s in step.inputs if s not in g.static))
    for slot, weight in zip(step.inputs, weights):
        x = g.input(slot, dtype)
        if weight != 1:
            x = g.node("Mul", [x, g.constant(np.array(weight, dtype), "weight")],
                       [g.temp("term")])
        terms.append(x)
    g.node("Sum", terms, [g.out(step)])


def _reduce(op_type):
    def convert(g, step, *, axis, keepdims):
        x = step.inputs[0]
        ndim = np.ndim(g.value(x))
        axes = None if axis is None else [a % ndim for a in np.atleast_1d(axis).tolist()]
        if op_type == "ReduceSum":  # axes is an input from opset 13
            inputs = [g.input(x)] + ([g.constant(np.array(axes, np.int64), "axes")]
                                     if axes is not None else [])
            g.node(op_type, inputs, [g.out(step)], keepdims=int(keepdims))
        else:
            extra = {} if axes is None else {"axes": axes}
            g.node(op_type, [g.input(x)], [g.out(step)], keepdims=int(keepdims), **extra)
    return convert


def _reshape(g, step, **_):
    shape = np.shape(g.value(step.outputs[0]))
    g.node("Reshape", [g.input(step.inputs[0]), g.constant(np.array(shape, np.int64), "shape")],
           [g.out(step)])


def _transpose(g, step, *, axes=None):
    ndim = np.ndim(g.value(step.inputs[0]))
    perm = list(range(ndim))[::-1] if axes is None else [a % ndim for a in axes]
    g.node("Transpose", [g.input(step.inputs[0])], [g.out(step)], perm=perm)


def _getitem(g, step, *, index):
    """Basic indexing by integers and slices with steps of 1 (Slice, then Squeeze)."""
    x = step.inputs[0]
    shape = np.shape(g.value(x))
    index = index if isinstance(index, tuple) else (index,)
    starts, ends, axes, squeeze = [], [], [], []
    for axis, item in enumerate(index):
        if isinstance(item, (int, np.integer)):
            start = int(item) % shape[axis]
            starts.append(start), ends.append(start + 1), axes.append(axis)
            squeeze.append(axis)
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(shape[axis])
            starts.append(start), ends.append(max(stop, start)), axes.append(axis)
        else:
            raise ExportError(f"export_onnx: step '{step.name}': indexing with {item!r} is not "
                              f"translated (integers and slices of step 1 are)")
    out = g.node("Slice", [g.input(x), g.constant(np.array(starts, np.int64), "starts"),
                           g.constant(np.array(ends, np.int64), "ends"),
                           g.constant(np.array(axes, np.int64), "axes")],
                 [g.temp("sliced") if squeeze else g.out(step)])
    if squeeze:
        g.node("Squeeze", [out, g.constant(np.array(squeeze, np.int64), "squeeze")],
               [g.out(step)])


CONVERTERS = {
    "conv": _conv, "convt": _convt, "pool": _pool, "relu": _relu, "sigmoid": _sigmoid,
    "softmax": _softmax, "normalize": _normalize, "bnorm": _bnorm_batch,
    "bnorm_train": _bnorm_with_moments, "bnorm_given_moments": _bnorm_with_moments,
    "dropout": lambda g, step, **_: _identity(g, step),
    "dropout_mask": lambda g, step, **_: None,  # test mode: no mask is drawn or read
    "concat": _concat, "concatenate": _concat, "crop": _crop, "loss": _loss,
    "add": _elementwise("Add"), "subtract": _elementwise("Sub"),
    "multiply": _elementwise("Mul"), "divide": _elementwise("Div"),
    "power": _elementwise("Pow"), "maximum": _elementwise("Max"),
    "minimum": _elementwise("Min"), "matmul": _elementwise("MatMul"),
    "negative": _elementwise("Neg"), "exp": _elementwise("Exp"), "log": _elementwise("Log"),
    "sqrt": _elementwise("Sqrt"), "absolute": _elementwise("Abs"),
    "tanh": _elementwise("Tanh"), "sin": _elementwise("Sin"), "cos": _elementwise("Cos"),
    "reciprocal": _elementwise("Reciprocal"), "square": _square,
    "weighted_sum": _weighted_sum,
    "sum": _reduce("ReduceSum"), "mean": _reduce("ReduceMean"), "max": _reduce("ReduceMax"),
    "min": _reduce("ReduceMin"),
    "reshape": _reshape, "transpose": _transpose, "getitem": _getitem,
}
