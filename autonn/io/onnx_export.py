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

OPSET = 17  # GridSample from 16
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

    def float_inputs(self, step, slots=None):
        """The step's inputs (or ``slots``) in one dtype, as ONNX wants: the dtype NumPy
        promoted them to (a Python number counting for nothing); constants are stored in it,
        computed inputs of another dtype go through a Cast."""
        slots = step.inputs if slots is None else slots
        computed = [s for s in slots if s not in self.static]
        dtype = np.result_type(*(self.dtype(s) for s in computed)) if computed else \
            np.result_type(*(np.asarray(self.value(s)) for s in slots))
        names = []
        for slot in slots:
            name = self.input(slot, dtype)
            if slot not in self.static and self.dtype(slot) != dtype:
                name = self.node("Cast", [name], [self.temp("cast")],
                                 to=_tensor_type(dtype))
            names.append(name)
        return names


def _onnx_pads(pad):
    top, bottom, left, right = pad
    return [top, left, bottom, right]


# ------------------------------------------------------------------------------ blocks
def _conv(g, step, *, stride, pad, dilate, groups=None):
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


CATEGORICAL_LOSSES = ("softmaxlog", "log", "classerror", "topkerror", "mhinge", "mshinge")
ATTRIBUTE_LOSSES = ("binaryerror", "binarylog", "logistic", "hinge")


def _loss(g, step, *, loss, topk, threshold, normalise):
    """The losses' forward: per position (categorical, on labels (N,), (N,H,W) or (N,1,H,W);
    negative labels count 0) or per element (attributes, +1/-1 shaped like x; 0 counts 0),
    summed and (with ``normalise``) divided by the batch size."""
    if len(step.inputs) != 2:
        raise ExportError(f"export_onnx: step '{step.name}': loss with instance_weights is not "
                          f"translated")
    x, c = step.inputs
    n = np.shape(g.value(x))[0]
    dtype = g.dtype(x)
    if loss in CATEGORICAL_LOSSES:
        terms, valid = _categorical_terms(g, step, loss, topk)
    else:
        terms, valid = _attribute_terms(g, step, loss, threshold)
    kept = g.node("Where", [valid, terms, g.constant(np.array(0, dtype), "zero")],
                  [g.temp("kept")])
    total = g.node("ReduceSum", [kept], [g.temp("total")], keepdims=0)
    if normalise:
        g.node("Div", [total, g.constant(np.array(n, dtype), "batch")], [g.out(step)])
    else:
        g.node("Identity", [total], [g.out(step)])


def _categorical_terms(g, step, loss, topk):
    x, c = step.inputs
    n, channels, height, width = np.shape(g.value(x))
    labels_shape = np.shape(g.value(c))
    if np.asarray(g.value(c)).dtype.kind not in "iu" or \
            np.prod(labels_shape) != n * height * width:
        raise ExportError(f"export_onnx: step '{step.name}': loss '{loss}' is translated for "
                          f"integer class labels, one per position; got labels of shape "
                          f"{labels_shape}")
    dtype = g.dtype(x)
    labels = g.node("Reshape", [g.input(c), g.constant(np.array([n, 1, height, width],
                                                                np.int64), "label_shape")],
                    [g.temp("labels")])
    labels = g.node("Cast", [labels], [g.temp("labels64")], to=7)  # int64
    zero = g.constant(np.array(0, np.int64), "zero")
    valid = g.node("GreaterOrEqual", [labels, zero], [g.temp("valid")])
    safe = g.node("Max", [labels, zero], [g.temp("safe_labels")])
    as_float = dict(to=_tensor_type(dtype))
    one = g.constant(np.array(1, dtype), "one")
    scores = g.input(x)
    if loss == "classerror":
        best = g.node("ArgMax", [scores], [g.temp("best")], axis=1, keepdims=1)
        wrong = g.node("Not", [g.node("Equal", [best, safe], [g.temp("right")])],
                       [g.temp("wrong")])
        return g.node("Cast", [wrong], [g.temp("errors")], **as_float), valid
    if loss == "topkerror":
        k = g.constant(np.array([min(topk, channels)], np.int64), "k")
        _, best = g.node("TopK", [scores, k], [g.temp("top"), g.temp("top_classes")], axis=1)
        hits = g.node("Cast", [g.node("Equal", [best, safe], [g.temp("hit")])],
                      [g.temp("hits")], **as_float)
        found = g.node("ReduceMax", [hits], [g.temp("found")], axes=[1], keepdims=1)
        return g.node("Sub", [one, found], [g.temp("errors")]), valid
    if loss == "softmaxlog":
        scores = g.node("LogSoftmax", [scores], [g.temp("log_softmax")], axis=1)
    picked = g.node("GatherElements", [scores, safe], [g.temp("picked")], axis=1)
    if loss == "log":  # -log max(x_c, 1e-8)
        clamped = g.node("Max", [picked, g.constant(np.array(1e-8, dtype), "floor")],
                         [g.temp("clamped")])
        return g.node("Neg", [g.node("Log", [clamped], [g.temp("log")])],
                      [g.temp("losses")]), valid
    if loss == "softmaxlog":
        return g.node("Neg", [picked], [g.temp("losses")]), valid
    margin = g.node("Sub", [one, picked], [g.temp("margin")])
    if loss == "mshinge":  # 1 - x_c + max_{k != c} x_k
        if channels < 2:
            raise ExportError(f"export_onnx: step '{step.name}': mshinge of one class is not "
                              f"translated")
        classes = g.constant(np.arange(channels, dtype=np.int64).reshape(1, -1, 1, 1),
                             "classes")
        is_label = g.node("Equal", [classes, safe], [g.temp("is_label")])
        others = g.node("Where", [is_label, g.constant(np.array(-np.inf, dtype), "minus_inf"),
                                  scores], [g.temp("others")])
        rival = g.node("ReduceMax", [others], [g.temp("rival")], axes=[1], keepdims=1)
        margin = g.node("Add", [margin, rival], [g.temp("shifted_margin")])
    return g.node("Relu", [margin], [g.temp("losses")]), valid


def _attribute_terms(g, step, loss, threshold):
    x, c = step.inputs
    if np.shape(g.value(c)) != np.shape(g.value(x)):
        raise ExportError(f"export_onnx: step '{step.name}': loss '{loss}' is translated for "
                          f"attributes shaped like x {np.shape(g.value(x))}, got "
                          f"{np.shape(g.value(c))}")
    dtype = g.dtype(x)
    labels = g.node("Cast", [g.input(c)], [g.temp("attributes")], to=_tensor_type(dtype))
    zero, one = (g.constant(np.array(v, dtype), name) for v, name in ((0, "zero"), (1, "one")))
    valid = g.node("Not", [g.node("Equal", [labels, zero], [g.temp("ignored")])],
                   [g.temp("valid")])
    scores = g.input(x)
    if loss == "binaryerror":  # [sign(x - threshold) != c]
        shifted = g.node("Sub", [scores, g.constant(np.array(threshold, dtype), "threshold")],
                         [g.temp("shifted")])
        sign = g.node("Sign", [shifted], [g.temp("sign")])
        wrong = g.node("Not", [g.node("Equal", [sign, labels], [g.temp("right")])],
                       [g.temp("wrong")])
        return g.node("Cast", [wrong], [g.temp("errors")], to=_tensor_type(dtype)), valid
    product = g.node("Mul", [labels, scores], [g.temp("product")])
    if loss == "binarylog":  # -log max(c (x - 1/2) + 1/2, 1e-8)
        half = g.constant(np.array(0.5, dtype), "half")
        p = g.node("Add", [g.node("Mul", [labels, g.node("Sub", [scores, half],
                                                         [g.temp("centred")])],
                                  [g.temp("scaled")]), half], [g.temp("probability")])
        clamped = g.node("Max", [p, g.constant(np.array(1e-8, dtype), "floor")],
                         [g.temp("clamped")])
        return g.node("Neg", [g.node("Log", [clamped], [g.temp("log")])],
                      [g.temp("losses")]), valid
    if loss == "logistic":  # log(1 + exp(a)), a = -c x, as max(a, 0) + log(1 + exp(-|a|))
        a = g.node("Neg", [product], [g.temp("a")])
        tail = g.node("Log", [g.node("Add", [one, g.node("Exp", [g.node(
            "Neg", [g.node("Abs", [a], [g.temp("abs")])], [g.temp("minus_abs")])],
            [g.temp("exp")])], [g.temp("one_plus")])], [g.temp("log")])
        return g.node("Add", [g.node("Relu", [a], [g.temp("positive")]), tail],
                      [g.temp("losses")]), valid
    return g.node("Relu", [g.node("Sub", [one, product], [g.temp("margin")])],
                  [g.temp("losses")]), valid  # hinge: max(0, 1 - c x)


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
    dtype = np.asarray(g.value(step.outputs[0])).dtype
    for x, weight in zip(g.float_inputs(step), weights):
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


def _spnorm(g, step, *, param):
    """``x (1 + alpha n2)^(-beta)``, n2 the mean of x^2 over the window's pixels inside the
    image: an average pool that does not count the padding."""
    ph, pw, alpha, beta = param
    top, left = (ph - 1) // 2, (pw - 1) // 2
    x, dtype = g.input(step.inputs[0]), g.dtype(step.inputs[0])
    square = g.node("Mul", [x, x], [g.temp("square")])
    n2 = g.node("AveragePool", [square], [g.temp("n2")], kernel_shape=[ph, pw], strides=[1, 1],
                pads=[top, left, ph - 1 - top, pw - 1 - left], count_include_pad=0)
    f = g.node("Add", [g.constant(np.array(1, dtype), "one"), g.node(
        "Mul", [n2, g.constant(np.array(alpha, dtype), "alpha")], [g.temp("scaled")])],
        [g.temp("f")])
    scale = g.node("Pow", [f, g.constant(np.array(-beta, dtype), "minus_beta")],
                   [g.temp("scale")])
    g.node("Mul", [x, scale], [g.out(step)])


def _normalizelp(g, step, *, p, epsilon, spatial, dimensions=None):
    from ..nn.normalization import _lp_axes
    axes = _lp_axes(spatial, dimensions)
    axes = [axes] if isinstance(axes, int) else list(axes)
    x, dtype = g.input(step.inputs[0]), g.dtype(step.inputs[0])
    power = g.node("Pow", [x, g.constant(np.array(p, dtype), "p")], [g.temp("power")])
    total = g.node("ReduceSum", [power, g.constant(np.array(axes, np.int64), "axes")],
                   [g.temp("total")], keepdims=1)
    mass = g.node("Add", [total, g.constant(np.array(epsilon, dtype), "epsilon")],
                  [g.temp("mass")])
    norm = g.node("Pow", [mass, g.constant(np.array(1 / p, dtype), "inverse_p")],
                  [g.temp("norm")])
    g.node("Div", [x, norm], [g.out(step)])


def _noffset(g, step, *, param):
    """``x - a L^b`` with ``L = max(sum_c x^2, 1e-8)``."""
    a, b = param
    x, dtype = g.input(step.inputs[0]), g.dtype(step.inputs[0])
    square = g.node("Mul", [x, x], [g.temp("square")])
    total = g.node("ReduceSum", [square, g.constant(np.array([1], np.int64), "channels")],
                   [g.temp("total")], keepdims=1)
    clamped = g.node("Max", [total, g.constant(np.array(1e-8, dtype), "floor")],
                     [g.temp("clamped")])
    power = g.node("Pow", [clamped, g.constant(np.array(b, dtype), "b")], [g.temp("power")])
    offset = g.node("Mul", [power, g.constant(np.array(a, dtype), "a")], [g.temp("offset")])
    g.node("Sub", [x, offset], [g.out(step)])


def _pdist(g, step, *, p, no_root, epsilon, aggregate):
    """``(sum_c |x - x0|^p)^(1/p)`` over the channels, times the instance weights, summed
    with ``aggregate``."""
    dtype = g.dtype(step.inputs[0])
    names = g.float_inputs(step)
    d = g.node("Sub", names[:2], [g.temp("difference")])
    if p == 2:
        powers = g.node("Mul", [d, d], [g.temp("square")])
    else:
        powers = g.node("Abs", [d], [g.temp("abs")])
        if p != 1:
            powers = g.node("Pow", [powers, g.constant(np.array(p, dtype), "p")],
                            [g.temp("power")])
    y = g.node("ReduceSum", [powers, g.constant(np.array([1], np.int64), "channels")],
               [g.temp("total")], keepdims=1)
    if not no_root and p != 1:
        y = g.node("Sqrt", [y], [g.temp("root")]) if p == 2 else g.node(
            "Pow", [y, g.constant(np.array(1 / p, dtype), "inverse_p")], [g.temp("root")])
    if len(names) == 3:
        y = g.node("Mul", [y, names[2]], [g.temp("weighted")])
    if aggregate:
        g.node("ReduceSum", [y], [g.out(step)], keepdims=0)
    else:
        g.node("Identity", [y], [g.out(step)])


def _maxout(g, step, *, units):
    """The maximum of each run of ``units`` channels: (N, C/u, u, H*W), reduced over u."""
    n, channels, height, width = np.shape(g.value(step.inputs[0]))
    runs = g.node("Reshape", [g.input(step.inputs[0]), g.constant(
        np.array([n, channels // units, units, height * width], np.int64), "runs_shape")],
        [g.temp("runs")])
    best = g.node("ReduceMax", [runs], [g.temp("best")], axes=[2], keepdims=0)
    g.node("Reshape", [best, g.constant(np.array([n, channels // units, height, width],
                                                 np.int64), "shape")], [g.out(step)])


def _bilinearsampler(g, step):
    """GridSample with MatConvNet's convention: -1 and 1 are the centres of the first and last
    pixels (align_corners), points outside read 0, and the grid's last axis is (y, x)."""
    x, grid = step.inputs
    if np.shape(g.value(x))[0] != np.shape(g.value(grid))[0]:
        raise ExportError(f"export_onnx: step '{step.name}': bilinearsampler with more grids "
                          f"than images (each image serving several) is not translated")
    big = np.iinfo(np.int64)
    xy = g.node("Slice", [g.input(grid), g.constant(np.array([-1], np.int64), "starts"),
                          g.constant(np.array([big.min], np.int64), "ends"),
                          g.constant(np.array([3], np.int64), "axes"),
                          g.constant(np.array([-1], np.int64), "steps")], [g.temp("xy")])
    inputs = g.float_inputs(step, (x,)) + [xy]
    g.node("GridSample", inputs, [g.out(step)], mode="bilinear", padding_mode="zeros",
           align_corners=1)


def _affinegrid(g, step, *, size):
    """``grid[n, i, j] = M[n] (h_i, w_j, 1)``: the (Ho Wo, 3) base grid times each matrix."""
    from ..nn.spatial_transformer import _base_grid
    theta = step.inputs[0]
    shape, dtype = np.shape(g.value(theta)), g.dtype(theta)
    n = shape[0]
    matrices = g.input(theta)
    if shape[1:] != (2, 3):  # MatConvNet's c1..c6 as [[c1, c2, c5], [c3, c4, c6]]
        flat = g.node("Reshape", [matrices, g.constant(np.array([n, 6], np.int64), "flat")],
                      [g.temp("coefficients")])
        ordered = g.node("Gather", [flat, g.constant(np.array([0, 1, 4, 2, 3, 5], np.int64),
                                                     "order")], [g.temp("ordered")], axis=1)
        matrices = g.node("Reshape", [ordered, g.constant(np.array([n, 2, 3], np.int64),
                                                          "matrix_shape")], [g.temp("matrices")])
    base = g.constant(_base_grid(size, np, dtype).reshape(-1, 3), "base_grid")
    transposed = g.node("Transpose", [matrices], [g.temp("transposed")], perm=[0, 2, 1])
    points = g.node("MatMul", [base, transposed], [g.temp("points")])
    g.node("Reshape", [points, g.constant(np.array([n, size[0], size[1], 2], np.int64),
                                          "grid_shape")], [g.out(step)])


def _composite(*op_types, constant=None, before=False):
    """``op_types`` applied in turn; ``constant`` (a number) joins the first as its other
    operand, before or after the input."""
    def convert(g, step):
        x = g.input(step.inputs[0])
        dtype = g.dtype(step.inputs[0])
        for k, op_type in enumerate(op_types):
            inputs = [x]
            if k == 0 and constant is not None:
                c = g.constant(np.array(constant, dtype), "constant")
                inputs = [c, x] if before else [x, c]
            last = k == len(op_types) - 1
            x = g.node(op_type, inputs, [g.out(step) if last else g.temp(op_type.lower())])
    return convert


def _expm1(g, step):
    x, dtype = g.input(step.inputs[0]), g.dtype(step.inputs[0])
    g.node("Sub", [g.node("Exp", [x], [g.temp("exp")]), g.constant(np.array(1, dtype), "one")],
           [g.out(step)])


def _log_base(base):
    def convert(g, step):
        x, dtype = g.input(step.inputs[0]), g.dtype(step.inputs[0])
        log = g.node("Log", [x], [g.temp("log")])
        g.node("Div", [log, g.constant(np.array(np.log(base), dtype), "log_base")],
               [g.out(step)])
    return convert


def _clip(g, step, *, a_min, a_max):
    dtype = g.dtype(step.inputs[0])
    bounds = [g.constant(np.array(v, dtype), "bound") if v is not None else ""
              for v in (a_min, a_max)]
    g.node("Clip", [g.input(step.inputs[0])] + bounds, [g.out(step)])


def _where(g, step):
    condition = step.inputs[0]
    inputs = [g.input(condition)] + g.float_inputs(step, step.inputs[1:])
    if g.dtype(condition) != np.bool_:
        inputs[0] = g.node("Cast", [inputs[0]], [g.temp("condition")], to=9)  # bool
    g.node("Where", inputs, [g.out(step)])


def _expand_dims(g, step, *, axis):
    ndim = np.ndim(g.value(step.outputs[0]))
    axes = [a % ndim for a in np.atleast_1d(axis).tolist()]
    g.node("Unsqueeze", [g.input(step.inputs[0]), g.constant(np.array(axes, np.int64), "axes")],
           [g.out(step)])


def _squeeze(g, step, *, axis=None):
    shape = np.shape(g.value(step.inputs[0]))
    axes = [a for a, n in enumerate(shape) if n == 1] if axis is None else \
        [a % len(shape) for a in np.atleast_1d(axis).tolist()]
    g.node("Squeeze", [g.input(step.inputs[0]), g.constant(np.array(axes, np.int64), "axes")],
           [g.out(step)])


def _stack(g, step, *, axis):
    ndim = np.ndim(g.value(step.outputs[0]))
    axes = g.constant(np.array([axis % ndim], np.int64), "axes")
    pieces = [g.node("Unsqueeze", [x, axes], [g.temp("piece")]) for x in g.float_inputs(step)]
    g.node("Concat", pieces, [g.out(step)], axis=axis % ndim)


def _pad(g, step, *, pad_width, constant_values=0.0):
    ndim = np.ndim(g.value(step.inputs[0]))
    widths = np.broadcast_to(np.asarray(pad_width, np.int64), (ndim, 2))
    dtype = g.dtype(step.inputs[0])
    g.node("Pad", [g.input(step.inputs[0]),
                   g.constant(np.concatenate([widths[:, 0], widths[:, 1]]), "pads"),
                   g.constant(np.array(constant_values, dtype), "value")], [g.out(step)],
           mode="constant")


def _flip(g, step, *, axis=None):
    ndim = np.ndim(g.value(step.inputs[0]))
    axes = list(range(ndim)) if axis is None else [a % ndim for a in np.atleast_1d(axis)]
    big = np.iinfo(np.int64)
    g.node("Slice", [g.input(step.inputs[0]),
                     g.constant(np.full(len(axes), -1, np.int64), "starts"),
                     g.constant(np.full(len(axes), big.min, np.int64), "ends"),
                     g.constant(np.array(axes, np.int64), "axes"),
                     g.constant(np.full(len(axes), -1, np.int64), "steps")], [g.out(step)])


def _tile(g, step, *, reps):
    ndim = np.ndim(g.value(step.inputs[0]))
    reps = np.atleast_1d(np.asarray(reps, np.int64))
    if len(reps) != ndim:
        raise ExportError(f"export_onnx: step '{step.name}': tile with {len(reps)} repetitions "
                          f"of a rank-{ndim} array is not translated (give one per axis)")
    g.node("Tile", [g.input(step.inputs[0]), g.constant(reps, "repeats")], [g.out(step)])


def _astype(g, step, *, dtype):
    g.node("Cast", [g.input(step.inputs[0])], [g.out(step)], to=_tensor_type(dtype))


def _round(g, step, decimals=0):
    if decimals:
        raise ExportError(f"export_onnx: step '{step.name}': round to {decimals} decimals is "
                          f"not translated (to whole numbers is)")
    g.node("Round", [g.input(step.inputs[0])], [g.out(step)])


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
    "spnorm": _spnorm, "normalizelp": _normalizelp, "noffset": _noffset, "pdist": _pdist,
    "maxout": _maxout, "bilinearsampler": _bilinearsampler, "affinegrid": _affinegrid,
    "arcsin": _elementwise("Asin"), "arccos": _elementwise("Acos"),
    "arctan": _elementwise("Atan"), "sinh": _elementwise("Sinh"),
    "cosh": _elementwise("Cosh"), "tan": _elementwise("Tan"),
    "arcsinh": _elementwise("Asinh"), "arccosh": _elementwise("Acosh"),
    "arctanh": _elementwise("Atanh"), "floor": _elementwise("Floor"),
    "ceil": _elementwise("Ceil"), "sign": _elementwise("Sign"), "rint": _elementwise("Round"),
    "round": lambda g, step, **options: _round(g, step, **options),
    "fabs": _elementwise("Abs"), "positive": _elementwise("Identity"),
    "expm1": _expm1,
    "log1p": _composite("Add", "Log", constant=1, before=True),
    "exp2": _composite("Pow", constant=2.0, before=True),
    "log2": _log_base(2), "log10": _log_base(10),
    "clip": _clip, "where": _where, "expand_dims": _expand_dims, "squeeze": _squeeze,
    "stack": _stack, "pad": _pad, "flip": _flip, "tile": _tile, "astype": _astype,
    "greater": _elementwise("Greater"), "greater_equal": _elementwise("GreaterOrEqual"),
    "less": _elementwise("Less"), "less_equal": _elementwise("LessOrEqual"),
    "equal": _elementwise("Equal"),
    "logical_and": _elementwise("And"), "logical_or": _elementwise("Or"),
    "logical_xor": _elementwise("Xor"), "logical_not": _elementwise("Not"),
}
