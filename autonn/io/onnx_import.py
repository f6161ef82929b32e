"""An ONNX model as an autonn graph: :func:`load_onnx`.

Each node becomes the autonn block or NumPy operation on Layers that computes it, so the result
trains like any other graph: float initializers with more than one element become Params (named
as in the file), BatchNormalization becomes ``nn.bnorm`` with its moments ``[mean,
sqrt(var + epsilon)]`` (batch statistics when training, those moments in test mode), and the
rest are constants. The model is checked by ``onnx.checker`` and its shapes inferred by ONNX
first. Nothing in a file is executed: external data (tensors stored in other files) is refused,
as is any node or attribute the reader does not translate (:class:`autonn.FormatError`, naming
the file and the node).
"""

import math
import os
import re

import numpy as np

from .. import nn
from ..errors import FormatError, reading
from ..layer import Input, Layer, Param

MAX_INITIALIZER_ELEMENTS = 2**31


def load_onnx(path):
    """Read the ONNX model at ``path`` into an :class:`autonn.Net` of the same computation
    (inputs and outputs named as in the model's graph)."""
    from ..net import Net
    from .onnx_export import _onnx

    onnx = _onnx("load_onnx")
    path = os.fspath(path)
    where = f"load_onnx({os.path.basename(path)!r})"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: no such file {path!r}")
    with reading(where):
        try:
            model = onnx.load(path, load_external_data=False)
            onnx.checker.check_model(model)
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            raise FormatError(f"{where}: not a valid ONNX model ({error})") from None
        except Exception as error:  # protobuf's DecodeError, among others
            if type(error).__module__.startswith("google.protobuf"):
                raise FormatError(f"{where}: not an ONNX model ({error})") from None
            raise
        outputs = _Reader(model, where).outputs()
        if not outputs:
            raise FormatError(f"{where}: the graph has no outputs")
        # a graph that cannot compile (options a block refuses) is a malformed file too
        return Net(*outputs, _name_from=False)


class _Reader:
    def __init__(self, model, where):
        from onnx import numpy_helper
        self.where, self.numpy_helper = where, numpy_helper
        graph = model.graph
        self.graph = graph
        self.opsets = {o.domain: o.version for o in model.opset_import}
        self.shapes = {}
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = info.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[info.name] = tuple(d.dim_value for d in dims)
        self.values = {}  # ONNX name -> Layer or NumPy array
        initializers = {t.name for t in graph.initializer}
        for tensor in graph.initializer:
            self.values[tensor.name] = self._tensor(tensor)
        for info in graph.input:
            if info.name not in initializers:
                self.values[info.name] = Input(info.name)

    def outputs(self):
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise FormatError(f"{self.where}: node '{node.name}' is of domain "
                                  f"'{node.domain}'; only standard ONNX ops are read")
            convert = IMPORTERS.get(node.op_type)
            if convert is None:
                raise FormatError(f"{self.where}: node '{node.name or node.output[0]}' runs "
                                  f"{node.op_type}, which load_onnx does not translate; "
                                  f"supported: {', '.join(sorted(IMPORTERS))}")
            attributes = {a.name: self._attribute(node, a) for a in node.attribute}
            inputs = [self.values[name] if name else None for name in node.input]
            results = convert(self, node, inputs, attributes)
            results = results if isinstance(results, tuple) else (results,)
            for name, result in zip(node.output, results):
                if isinstance(result, Layer) and all(result is not x for x in inputs):
                    result.name = _layer_name(name)  # a new node (an Input keeps its name)
                self.values[name] = result
        outputs = []
        for info in self.graph.output:
            value = self.values[info.name]
            if not isinstance(value, Layer):
                raise FormatError(f"{self.where}: output '{info.name}' does not depend on "
                                  f"any input")
            outputs.append(value)
        return outputs

    # ------------------------------------------------------------------ reading pieces
    def _tensor(self, tensor):
        if tensor.data_location == 1:  # EXTERNAL: a path to another file
            raise FormatError(f"{self.where}: initializer '{tensor.name}' keeps its data in "
                              f"another file; load_onnx reads self-contained models only")
        count = math.prod(tensor.dims)
        if any(d < 0 for d in tensor.dims) or count > MAX_INITIALIZER_ELEMENTS:
            raise FormatError(f"{self.where}: initializer '{tensor.name}' has dimensions "
                              f"{list(tensor.dims)}")
        array = self.numpy_helper.to_array(tensor)
        if array.size != count:
            raise FormatError(f"{self.where}: initializer '{tensor.name}' holds {array.size} "
                              f"values for dimensions {list(tensor.dims)}")
        if array.dtype.kind == "f" and array.size > 1:
            return Param(array.copy(), name=_layer_name(tensor.name))
        return array

    def _attribute(self, node, attribute):
        from onnx import helper
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif hasattr(value, "dims"):  # a tensor (Constant's value)
            value = self._tensor(value)
            value = getattr(value, "value", value)
        return value

    def constant(self, node, value, what):
        """A value the file must give as a constant (shapes, axes, pads...)."""
        if isinstance(value, Param):
            value = value.value
        if isinstance(value, Layer) or value is None:
            raise FormatError(f"{self.where}: node '{node.name or node.output[0]}' "
                              f"({node.op_type}): {what} must be a constant")
        return np.asarray(value)

    def shape(self, name):
        shape = self.shapes.get(name)
        if shape is None:
            raise FormatError(f"{self.where}: the shape of '{name}' is not known")
        return shape

    def refuse(self, node, what):
        raise FormatError(f"{self.where}: node '{node.name or node.output[0]}' "
                          f"({node.op_type}): {what} is not supported")


def _layer_name(name):
    return name.replace(":", "_")


def _pads(reader, node, attributes):
    if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        reader.refuse(node, f"auto_pad={attributes['auto_pad']}")
    top, left, bottom, right = attributes.get("pads", (0, 0, 0, 0))
    return (top, bottom, left, right)


def _known(reader, node, attributes, allowed):
    unknown = sorted(set(attributes) - set(allowed))
    if unknown:
        reader.refuse(node, f"attribute(s) {unknown}")


def _spatial(reader, node, attributes, name, default):
    value = tuple(attributes.get(name, default))
    if len(value) != 2:
        reader.refuse(node, f"{name}={list(value)} (autonn's blocks are 2-D)")
    return value


# ------------------------------------------------------------------------------ blocks
def _conv(reader, node, inputs, attributes):
    _known(reader, node, attributes, ("kernel_shape", "strides", "pads", "dilations", "group",
                                      "auto_pad"))
    x, w, b = (inputs + [None])[:3]
    channels = reader.shapes.get(node.input[0], (None, None))[1]
    filters = getattr(w, "value", w)
    filter_channels = np.shape(filters)[1] if hasattr(filters, "shape") else \
        reader.shapes.get(node.input[1], (None, None))[1]
    if None not in (channels, filter_channels) and \
            channels != int(attributes.get("group", 1)) * filter_channels:
        # autonn's conv infers the groups from the shapes, as MatConvNet does
        reader.refuse(node, f"group={attributes.get('group', 1)} with {channels} input "
                            f"channels and filters of {filter_channels}")
    return nn.conv(x, w, b, stride=_spatial(reader, node, attributes, "strides", (1, 1)),
                   pad=_pads(reader, node, attributes),
                   dilate=_spatial(reader, node, attributes, "dilations", (1, 1)))


def _conv_transpose(reader, node, inputs, attributes):
    _known(reader, node, attributes, ("kernel_shape", "strides", "pads", "group", "dilations",
                                      "output_padding", "auto_pad"))
    if any(attributes.get("output_padding", ())) or \
            any(d != 1 for d in attributes.get("dilations", ())):
        reader.refuse(node, "output_padding or dilations other than 1")
    x, w, b = (inputs + [None])[:3]
    return nn.convt(x, w, b, upsample=_spatial(reader, node, attributes, "strides", (1, 1)),
                    crop=_pads(reader, node, attributes),
                    num_groups=int(attributes.get("group", 1)))


def _pool(method):
    def convert(reader, node, inputs, attributes):
        _known(reader, node, attributes, ("kernel_shape", "strides", "pads", "ceil_mode",
                                          "count_include_pad", "auto_pad", "dilations",
                                          "storage_order"))
        pad = _pads(reader, node, attributes)
        if attributes.get("ceil_mode", 0) or any(d != 1 for d in attributes.get("dilations", ())):
            reader.refuse(node, "ceil_mode or dilations")
        if method == "avg" and attributes.get("count_include_pad", 0) and any(pad):
            reader.refuse(node, "count_include_pad=1 with padding (MatConvNet divides by the "
                                "unpadded elements)")
        if len(node.output) > 1:
            reader.refuse(node, "the indices output")
        return nn.pool(inputs[0], _spatial(reader, node, attributes, "kernel_shape", ()),
                       method=method, pad=pad,
                       stride=_spatial(reader, node, attributes, "strides", (1, 1)))
    return convert


def _batch_normalization(reader, node, inputs, attributes):
    _known(reader, node, attributes, ("epsilon", "momentum", "training_mode"))
    if attributes.get("training_mode", 0) or len(node.output) > 1:
        reader.refuse(node, "training mode")
    x, gain, bias, mean, variance = inputs
    epsilon = float(attributes.get("epsilon", 1e-5))
    mean = reader.constant(node, mean, "the mean")
    variance = reader.constant(node, variance, "the variance")
    if epsilon == 0:  # autonn's export: the variance is sigma^2, and sqrt gives sigma back
        sigma = np.sqrt(variance)
        written = re.fullmatch(r"autonn bnorm epsilon=([0-9.e+-]+)", node.doc_string)
        epsilon = float(written.group(1)) if written else 1e-4
    else:
        sigma = np.sqrt(variance.astype(np.float64) + epsilon)
    moments = Param(np.stack([mean, sigma], axis=1).astype(mean.dtype),
                    name=_layer_name(node.output[0]) + "_moments", learning_rate=0.1,
                    weight_decay=0.0, train_method="average")
    return nn.bnorm(x, gain, bias, moments=moments, epsilon=epsilon)


def _lrn(reader, node, inputs, attributes):
    size = int(attributes["size"])
    return nn.normalize(inputs[0], (size, float(attributes.get("bias", 1.0)),
                                    float(attributes.get("alpha", 1e-4)) / size,
                                    float(attributes.get("beta", 0.75))))


def _softmax(reader, node, inputs, attributes):
    axis = int(attributes.get("axis", -1))
    x = inputs[0]
    rank = len(reader.shape(node.input[0]))
    if axis % rank == 1 and rank == 4:
        return nn.softmax(x)
    axis %= rank
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _relu(reader, node, inputs, attributes):
    return nn.relu(inputs[0])


def _leaky_relu(reader, node, inputs, attributes):
    return nn.relu(inputs[0], leak=float(attributes.get("alpha", 0.01)))


def _identity(reader, node, inputs, attributes):
    return inputs[0]


def _dropout(reader, node, inputs, attributes):
    if len(node.output) > 1:
        reader.refuse(node, "the mask output")
    return inputs[0]


def _concat(reader, node, inputs, attributes):
    return nn.concat(list(inputs), axis=int(attributes["axis"]))


def _global_average_pool(reader, node, inputs, attributes):
    return inputs[0].mean(axis=(2, 3), keepdims=True)


# ------------------------------------------------------------------------------ math
def _numpy(function):
    def convert(reader, node, inputs, attributes):
        _known(reader, node, attributes, ())
        result = inputs[0]
        if len(inputs) == 1:
            return function(result)
        for x in inputs[1:]:
            result = function(result, x)
        return result
    return convert


def _gemm(reader, node, inputs, attributes):
    a, b, c = (inputs + [None])[:3]
    if attributes.get("transA", 0):
        a = a.T
    if attributes.get("transB", 0):
        b = b.T
    y = a @ b
    if attributes.get("alpha", 1.0) != 1.0:
        y = y * float(attributes["alpha"])
    if c is not None:
        y = y + (c if attributes.get("beta", 1.0) == 1.0 else c * float(attributes["beta"]))
    return y


def _axes(reader, node, inputs, attributes):
    if len(inputs) > 1 and inputs[1] is not None:
        return tuple(int(a) for a in reader.constant(node, inputs[1], "axes"))
    if "axes" in attributes:
        return tuple(int(a) for a in attributes["axes"])
    return None


def _reduce(method):
    def convert(reader, node, inputs, attributes):
        _known(reader, node, attributes, ("axes", "keepdims", "noop_with_empty_axes"))
        axes = _axes(reader, node, inputs, attributes)
        if axes == () and attributes.get("noop_with_empty_axes", 0):
            return inputs[0]
        return getattr(inputs[0], method)(axis=axes or None,
                                          keepdims=bool(attributes.get("keepdims", 1)))
    return convert


def _to_output_shape(reader, node, inputs, attributes):
    """Reshape, Flatten, Squeeze, Unsqueeze: the input reshaped to the output's inferred shape
    (which resolves ONNX's 0, copy the input's dimension, and -1)."""
    return inputs[0].reshape(reader.shape(node.output[0]))


def _transpose(reader, node, inputs, attributes):
    perm = attributes.get("perm")
    return np.transpose(inputs[0], None if perm is None else tuple(perm))


def _slice(reader, node, inputs, attributes):
    x = inputs[0]
    shape = reader.shape(node.input[0])
    starts = reader.constant(node, inputs[1], "starts")
    ends = reader.constant(node, inputs[2], "ends")
    axes = reader.constant(node, inputs[3], "axes") if len(inputs) > 3 and inputs[3] is not None \
        else np.arange(len(starts))
    steps = reader.constant(node, inputs[4], "steps") if len(inputs) > 4 and \
        inputs[4] is not None else np.ones(len(starts), np.int64)
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % len(shape)
        # ONNX clamps huge ends (INT64_MAX means "to the end"), as Python's slices do
        index[axis] = slice(int(max(min(start, 2**62), -2**62)),
                            int(max(min(end, 2**62), -2**62)), int(step))
    return x[tuple(index)]


def _clip(reader, node, inputs, attributes):
    x, low, high = (inputs + [None, None])[:3]
    low = None if low is None else reader.constant(node, low, "the minimum")[()]
    high = None if high is None else reader.constant(node, high, "the maximum")[()]
    return np.clip(x, low, high)


def _where(reader, node, inputs, attributes):
    return np.where(*inputs)


def _pad(reader, node, inputs, attributes):
    if attributes.get("mode", "constant") != "constant" or (len(inputs) > 3 and inputs[3]):
        reader.refuse(node, "a mode other than constant, or axes")
    pads = reader.constant(node, inputs[1], "pads").astype(np.int64)
    value = 0.0 if len(inputs) < 3 or inputs[2] is None else \
        float(reader.constant(node, inputs[2], "the value"))
    half = len(pads) // 2
    return np.pad(inputs[0], tuple(zip(pads[:half].tolist(), pads[half:].tolist())),
                  constant_values=value)


def _tile(reader, node, inputs, attributes):
    return np.tile(inputs[0], tuple(reader.constant(node, inputs[1], "repeats").tolist()))


def _cast(reader, node, inputs, attributes):
    from onnx import helper
    return inputs[0].astype(helper.tensor_dtype_to_np_dtype(int(attributes["to"])))


def _grid_sample(reader, node, inputs, attributes):
    _known(reader, node, attributes, ("mode", "padding_mode", "align_corners"))
    if attributes.get("mode", "bilinear") not in ("bilinear", "linear") or \
            attributes.get("padding_mode", "zeros") != "zeros" or \
            not attributes.get("align_corners", 0):
        reader.refuse(node, "a mode other than bilinear with zero padding and align_corners=1 "
                            "(MatConvNet's sampler)")
    x, grid = inputs
    return nn.bilinearsampler(x, grid[..., ::-1])  # ONNX's (x, y) to MatConvNet's (y, x)


def _gather(reader, node, inputs, attributes):
    axis = int(attributes.get("axis", 0))
    indices = reader.constant(node, inputs[1], "the indices").astype(np.int64)
    rank = len(reader.shape(node.input[0]))
    return inputs[0][(slice(None),) * (axis % rank) + (indices,)]


def _constant(reader, node, inputs, attributes):
    if set(attributes) != {"value"}:
        reader.refuse(node, f"attribute(s) {sorted(attributes)}")
    return np.asarray(attributes["value"])


IMPORTERS = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"), "GlobalAveragePool": _global_average_pool,
    "BatchNormalization": _batch_normalization, "LRN": _lrn, "Relu": _relu,
    "LeakyRelu": _leaky_relu, "Sigmoid": lambda r, n, i, a: nn.sigmoid(i[0]),
    "Softmax": _softmax, "Dropout": _dropout, "Identity": _identity, "Concat": _concat,
    "Add": _numpy(np.add), "Sub": _numpy(np.subtract), "Mul": _numpy(np.multiply),
    "Div": _numpy(np.divide), "Pow": _numpy(np.power), "Max": _numpy(np.maximum),
    "Min": _numpy(np.minimum), "Sum": _numpy(np.add), "MatMul": _numpy(np.matmul),
    "Neg": _numpy(np.negative), "Exp": _numpy(np.exp), "Log": _numpy(np.log),
    "Sqrt": _numpy(np.sqrt), "Abs": _numpy(np.abs), "Tanh": _numpy(np.tanh),
    "Sin": _numpy(np.sin), "Cos": _numpy(np.cos), "Reciprocal": _numpy(np.reciprocal),
    "Gemm": _gemm, "ReduceSum": _reduce("sum"), "ReduceMean": _reduce("mean"),
    "ReduceMax": _reduce("max"), "ReduceMin": _reduce("min"), "Reshape": _to_output_shape,
    "Flatten": _to_output_shape, "Squeeze": _to_output_shape, "Transpose": _transpose, "Slice": _slice,
    "Constant": _constant, "Unsqueeze": _to_output_shape, "Clip": _clip, "Where": _where,
    "Pad": _pad, "Tile": _tile, "Cast": _cast, "GridSample": _grid_sample, "Gather": _gather,
    "Asin": _numpy(np.arcsin), "Acos": _numpy(np.arccos), "Atan": _numpy(np.arctan),
    "Sinh": _numpy(np.sinh), "Cosh": _numpy(np.cosh), "Tan": _numpy(np.tan),
    "Asinh": _numpy(np.arcsinh), "Acosh": _numpy(np.arccosh), "Atanh": _numpy(np.arctanh),
    "Floor": _numpy(np.floor), "Ceil": _numpy(np.ceil), "Sign": _numpy(np.sign),
    "Round": _numpy(np.rint), "Greater": _numpy(np.greater),
    "GreaterOrEqual": _numpy(np.greater_equal), "Less": _numpy(np.less),
    "LessOrEqual": _numpy(np.less_equal), "Equal": _numpy(np.equal),
    "And": _numpy(np.logical_and), "Or": _numpy(np.logical_or),
    "Xor": _numpy(np.logical_xor), "Not": _numpy(np.logical_not),
}
