"""The DagNN blocks: MatConvNet's ``dagnn.Conv``, ``dagnn.Pooling``, ``dagnn.ReLU``, ...

Each block holds its options (MatConvNet's, in snake_case) and builds autonn Layers in
``forward``; ``init_params`` and ``param_settings`` give its parameters' initial values and
training settings, as MatConvNet's ``initParams``. :data:`BLOCKS` lists them by class name,
the name after ``dagnn.`` in MatConvNet's files.

Which autonn op a block computes is declared on the op (``Op.matconvnet_types``, e.g.
``('conv', 'dagnn.Conv')``); :func:`block_from_simplenn` follows that declaration from a SimpleNN
layer type to its block. ``Sum`` and ``Scale`` are made of NumPy math and stand for no one op.
This module also defines the one op of its own, ``crop_like`` (``dagnn.Crop``).
"""

import inspect

import numpy as np

from .. import nn, simplenn
from ..backend import array_module
from ..layer import Input, Param
from ..net import Net
from ..nn.normalization import bnorm_given_moments_op
from ..ops import Op
from ..receptive_fields import ReceptiveField

__all__ = [
    "BLOCKS",
    "LRN",
    "AffineGridGenerator",
    "BatchNorm",
    "BilinearSampler",
    "Block",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Crop",
    "DropOut",
    "Loss",
    "PDist",
    "Pooling",
    "ROIPooling",
    "ReLU",
    "Scale",
    "Sigmoid",
    "SoftMax",
    "SpatialNorm",
    "Sum",
    "block_from_simplenn",
    "crop_like_op",
]


class Block:
    """Base of the DagNN blocks: options as attributes, ``forward`` building Layers.

    ``forward(inputs, params, test_mode)`` receives the input Layers and parameter Params and
    returns a list of output Layers. ``init_params(rng)`` gives initial parameter values,
    ``param_settings()`` their (learning rate, weight decay, train method), and
    ``from_simplenn(layer)`` the block of a SimpleNN layer of the same MatConvNet block.
    """

    num_params = (0,)            # allowed parameter counts
    num_inputs = (1,)            # allowed input counts (None: any number)
    num_outputs = 1

    def check_arity(self, layer, inputs, outputs, params):
        name = type(self).__name__
        if self.num_inputs is not None and inputs not in self.num_inputs:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} takes "
                             f"{' or '.join(map(str, self.num_inputs))} inputs, got {inputs}")
        if outputs != self.num_outputs:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} has {self.num_outputs} "
                             f"outputs, got {outputs}")
        if params not in self.num_params:
            raise ValueError(f"DagNN.add_layer: {name} layer {layer!r} takes "
                             f"{' or '.join(map(str, self.num_params))} params, got {params}")

    @classmethod
    def from_simplenn(cls, layer):
        """The block of a tidied SimpleNN layer (see :func:`autonn.simplenn.tidy`): the
        layer's options named as this block's parameters carry over (``leak``, ``param``,
        ``rate``, ``p``...); blocks whose options differ say how."""
        names = inspect.signature(cls).parameters
        return cls(**{key: value for key, value in layer.items() if key in names})

    def forward(self, inputs, params, test_mode=False):
        raise NotImplementedError

    def backward(self, inputs, params, der_outputs, test_mode=False):
        """MatConvNet's ``[derInputs, derParams] = block.backward(inputs, params, derOutputs)``
        on arrays: the derivatives of the inputs and of the params, from the derivatives of the
        outputs. (``forward`` takes arrays as well as Layers: the blocks are made of autonn
        operations, which work on both.) The derivatives come from the block's own graph,
        compiled into a tape; an input nothing differentiates (labels) gets None."""
        xs = [Input(f"{type(self).__name__}_input{k + 1}") for k in range(len(inputs))]
        ps = [Param(value, name=f"{type(self).__name__}_param{k + 1}")
              for k, value in enumerate(params)]
        outputs = self.forward(xs, ps, test_mode=test_mode)
        if len(der_outputs) != len(outputs):
            raise ValueError(f"{type(self).__name__}.backward: der_outputs has "
                             f"{len(der_outputs)} entries for {len(outputs)} outputs")
        outputs = [+y if isinstance(y, Input) else y for y in outputs]  # each its own node
        net = Net(*outputs, optimize=False, _name_from=False)
        net.eval({x.name: value for x, value in zip(xs, inputs)}, der_output=list(der_outputs))
        return [net.der(x) for x in xs], [p.der for p in ps]

    def init_params(self, rng):
        return []

    def param_settings(self):
        return []

    def attach(self, params):
        """Called by ``DagNN.add_layer`` with the layer's parameter entries: a block may set
        their training settings there (MatConvNet's ``attach``); most leave them as they are."""

    def options(self):
        return dict(vars(self))

    def __repr__(self):
        text = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({text})"


class Conv(Block):
    """Convolution: inputs [x], params [filters (K, C/G, kh, kw), biases (K,)] (or [filters]
    with ``has_bias=False``). ``size = (kh, kw, cin, cout)`` sizes the initial filters."""

    num_params = (1, 2)

    def __init__(self, size=None, has_bias=True, stride=1, pad=0, dilate=1):
        self.size, self.has_bias = _size(size), has_bias
        self.stride, self.pad, self.dilate = stride, pad, dilate

    @classmethod
    def from_simplenn(cls, layer):
        k, c, h, w = np.shape(layer["weights"][0])
        return cls(size=(h, w, c, k), has_bias=_has_weight(layer, 1), stride=layer["stride"],
                   pad=layer["pad"], dilate=layer["dilate"])

    def forward(self, inputs, params, test_mode=False):
        bias = params[1] if len(params) > 1 else None
        return [nn.conv(inputs[0], params[0], bias, stride=self.stride, pad=self.pad,
                        dilate=self.dilate)]

    def init_params(self, rng):
        kh, kw, cin, cout = _need_size(self)
        # MatConvNet's dagnn.Conv.initParams: Gaussian with std sqrt(2 / fan-in) (He).
        filters = (rng.standard_normal((cout, cin, kh, kw)) * np.sqrt(2 / (kh * kw * cin)))
        values = [filters.astype(np.float32)]
        if self.has_bias:
            values.append(np.zeros(cout, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (2.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class ConvTranspose(Block):
    """Transposed convolution: params [filters (C, K, kh, kw), biases (K*G,)];
    ``size = (kh, kw, K, C)`` as ``nn.convt``."""

    num_params = (1, 2)

    def __init__(self, size=None, has_bias=True, upsample=1, crop=0, num_groups=1):
        self.size, self.has_bias = _size(size), has_bias
        self.upsample, self.crop, self.num_groups = upsample, crop, int(num_groups)

    @classmethod
    def from_simplenn(cls, layer):
        c, k, h, w = np.shape(layer["weights"][0])
        return cls(size=(h, w, k, c), has_bias=_has_weight(layer, 1), upsample=layer["upsample"],
                   crop=layer["crop"], num_groups=layer["num_groups"])

    def forward(self, inputs, params, test_mode=False):
        bias = params[1] if len(params) > 1 else None
        return [nn.convt(inputs[0], params[0], bias, upsample=self.upsample, crop=self.crop,
                         num_groups=self.num_groups)]

    def init_params(self, rng):
        kh, kw, k, c = _need_size(self)
        filters = rng.standard_normal((c, k, kh, kw)) * np.sqrt(2 / (kh * kw * k))
        values = [filters.astype(np.float32)]
        if self.has_bias:
            values.append(np.zeros(k * self.num_groups, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (2.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class Pooling(Block):
    """Max or average pooling over ``pool_size`` windows."""

    def __init__(self, method="max", pool_size=(1, 1), stride=1, pad=0):
        self.method, self.pool_size, self.stride, self.pad = method, pool_size, stride, pad

    @classmethod
    def from_simplenn(cls, layer):
        return cls(method=layer["method"], pool_size=layer["pool"], stride=layer["stride"],
                   pad=layer["pad"])

    def forward(self, inputs, params, test_mode=False):
        return [nn.pool(inputs[0], self.pool_size, method=self.method, stride=self.stride,
                        pad=self.pad)]


class ReLU(Block):
    def __init__(self, leak=0.0):
        self.leak = float(leak)

    def forward(self, inputs, params, test_mode=False):
        return [nn.relu(inputs[0], leak=self.leak)]


class Sigmoid(Block):
    def forward(self, inputs, params, test_mode=False):
        return [nn.sigmoid(inputs[0])]


class SoftMax(Block):
    def forward(self, inputs, params, test_mode=False):
        return [nn.softmax(inputs[0])]


class LRN(Block):
    """Cross-channel normalisation, ``param = (depth, kappa, alpha, beta)``."""

    def __init__(self, param=(5, 1.0, 0.0001 / 5, 0.75)):
        self.param = tuple(float(v) for v in np.ravel(param))

    def forward(self, inputs, params, test_mode=False):
        return [nn.normalize(inputs[0], self.param)]


class SpatialNorm(Block):
    """Spatial normalisation, ``param = (ph, pw, alpha, beta)``."""

    def __init__(self, param=(2, 2, 10.0, 2.0)):
        self.param = tuple(float(v) for v in np.ravel(param))

    def forward(self, inputs, params, test_mode=False):
        return [nn.spnorm(inputs[0], self.param)]


class BatchNorm(Block):
    """Batch normalisation: params [gain (C,), bias (C,), moments (C, 2)]; normal mode uses the
    batch's moments (and reports them as the moments' derivative), test mode the stored ones."""

    num_params = (3,)

    def __init__(self, num_channels=None, epsilon=1e-5):
        self.num_channels, self.epsilon = num_channels, float(epsilon)

    @classmethod
    def from_simplenn(cls, layer):
        weights = layer.get("weights") or []
        return cls(num_channels=int(np.size(weights[0])) if weights else None,
                   epsilon=layer["epsilon"])

    def attach(self, params):
        """The moments are a running average, learning at rate 0.1 (MatConvNet's attach)."""
        params[2].train_method, params[2].learning_rate = "average", 0.1

    def forward(self, inputs, params, test_mode=False):
        gain, bias, moments = params
        if test_mode:
            return [bnorm_given_moments_op(inputs[0], gain, bias, moments)]
        return [nn.bnorm(inputs[0], gain, bias, moments=moments, epsilon=self.epsilon)]

    def init_params(self, rng):
        if self.num_channels is None:
            raise ValueError("BatchNorm.init_params: set num_channels")
        c = int(self.num_channels)
        moments = np.concatenate([np.zeros((c, 1)), np.ones((c, 1))], axis=1)
        return [np.ones(c, np.float32), np.zeros(c, np.float32), moments.astype(np.float32)]

    def param_settings(self):
        return [(2.0, 0.0, "gradient"), (1.0, 0.0, "gradient"), (0.1, 0.0, "average")]


class DropOut(Block):
    def __init__(self, rate=0.5):
        self.rate = float(rate)

    def forward(self, inputs, params, test_mode=False):
        return [inputs[0] if test_mode else nn.dropout(inputs[0], rate=self.rate)]


class Loss(Block):
    """Loss (``vl_nnloss``): inputs [x, labels] or [x, labels, instance_weights]."""

    num_inputs = (2, 3)

    def __init__(self, loss="softmaxlog", topk=5, threshold=0.0, normalise=True):
        self.loss, self.topk = loss, int(topk)
        self.threshold, self.normalise = float(threshold), bool(normalise)

    def forward(self, inputs, params, test_mode=False):
        weights = inputs[2] if len(inputs) > 2 else None
        return [nn.loss(inputs[0], inputs[1], loss=self.loss, instance_weights=weights,
                        topk=self.topk, threshold=self.threshold, normalise=self.normalise)]


class Concat(Block):
    """Concatenation along ``axis`` (1: channels, MatConvNet's dim 3)."""

    num_inputs = None

    def __init__(self, axis=1):
        self.axis = int(axis)

    def forward(self, inputs, params, test_mode=False):
        return [nn.concat(list(inputs), axis=self.axis)]


class Sum(Block):
    """Sum of all inputs."""

    num_inputs = None

    def forward(self, inputs, params, test_mode=False):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return [total]


class Scale(Block):
    """``y = x * scale + bias`` with the scale and bias broadcast to x: taken from params
    [scale, bias] (``size`` NCHW, e.g. (1, C, 1, 1)) or from the inputs [x, scale(, bias)]."""

    num_inputs = (1, 2, 3)
    num_params = (0, 1, 2)

    def __init__(self, size=None, has_bias=True):
        self.size, self.has_bias = (None if size is None else tuple(int(s) for s in size)), \
            has_bias

    def forward(self, inputs, params, test_mode=False):
        terms = list(inputs[1:]) + list(params)
        y = inputs[0] * terms[0]
        if len(terms) > 1:
            y = y + terms[1]
        return [y]

    def init_params(self, rng):
        if self.size is None:
            raise ValueError("Scale.init_params: set size (NCHW, e.g. (1, C, 1, 1))")
        values = [np.ones(self.size, np.float32)]
        if self.has_bias:
            values.append(np.zeros(self.size, np.float32))
        return values

    def param_settings(self):
        return [(1.0, 1.0, "gradient"), (1.0, 0.0, "gradient")][:1 + bool(self.has_bias)]


class Crop(Block):
    """Crop the first input to the spatial size of the second, starting ``crop = (top,
    left)`` pixels in (reduced if the first input is too small, as MatConvNet)."""

    num_inputs = (2,)

    def __init__(self, crop=(0, 0)):
        self.crop = tuple(int(c) for c in np.ravel(crop))[:2]

    def forward(self, inputs, params, test_mode=False):
        return [crop_like_op(inputs[0], inputs[1], offset=self.crop)]


class PDist(Block):
    """p-distance between inputs [x, x0] (or [x, x0, instance_weights])."""

    num_inputs = (2, 3)

    def __init__(self, p=2.0, no_root=False, epsilon=1e-6, aggregate=False):
        self.p, self.no_root = float(p), bool(no_root)
        self.epsilon, self.aggregate = float(epsilon), bool(aggregate)

    def forward(self, inputs, params, test_mode=False):
        weights = inputs[2] if len(inputs) > 2 else None
        return [nn.pdist(inputs[0], inputs[1], self.p, no_root=self.no_root,
                         epsilon=self.epsilon, aggregate=self.aggregate,
                         instance_weights=weights)]


class ROIPooling(Block):
    """Region-of-interest pooling: inputs [x, rois] (rows [image, x1, y1, x2, y2], 0-based)."""

    num_inputs = (2,)

    def __init__(self, method="max", subdivisions=(6, 6), transform=1 / 16):
        self.method, self.subdivisions, self.transform = method, subdivisions, transform

    def forward(self, inputs, params, test_mode=False):
        return [nn.roipool(inputs[0], inputs[1], method=self.method,
                           subdivisions=self.subdivisions, transform=self.transform)]


class BilinearSampler(Block):
    """Bilinear sampling: inputs [x, grid (N, Ho, Wo, 2) with y first]."""

    num_inputs = (2,)

    def forward(self, inputs, params, test_mode=False):
        return [nn.bilinearsampler(inputs[0], inputs[1])]


class AffineGridGenerator(Block):
    """Sampling grid of size (ho, wo) from affine transforms theta."""

    def __init__(self, ho=1, wo=1):
        self.ho, self.wo = int(ho), int(wo)

    def forward(self, inputs, params, test_mode=False):
        return [nn.affinegrid(inputs[0], (self.ho, self.wo))]


BLOCKS = {cls.__name__: cls for cls in (
    Conv, ConvTranspose, Pooling, ReLU, Sigmoid, SoftMax, LRN, SpatialNorm, BatchNorm, DropOut,
    Loss, Concat, Sum, Scale, Crop, PDist, ROIPooling, BilinearSampler, AffineGridGenerator)}


def block_from_simplenn(layer, index):
    """The DagNN block of a tidied SimpleNN layer: its type's op (the op declaring the type in
    ``matconvnet_types``) names the block (``'dagnn.Conv'``), and the block class reads the
    layer's options."""
    op = simplenn.layer_type_op(layer["type"])
    names = [t[len("dagnn."):] for t in (op.matconvnet_types if op else ())
             if t.startswith("dagnn.")]
    if not names:
        raise ValueError(f"DagNN.from_simplenn: layer {index} ('{layer['name']}') of type "
                         f"{layer['type']!r} has no DagNN block (custom layers cannot be "
                         f"converted)")
    return BLOCKS[names[0]].from_simplenn(layer)


# ============================================================================== crop_like op
def _crop_window(x_shape, ref_shape, offset):
    """MatConvNet's dagnn.Crop.getAdjustedCrop: the offset shrinks when x is too small."""
    top = max(0, min(x_shape[2] - ref_shape[2], offset[0]))
    left = max(0, min(x_shape[3] - ref_shape[3], offset[1]))
    return (slice(None), slice(None), slice(top, top + ref_shape[2]),
            slice(left, left + ref_shape[3]))


def _crop_like_forward(x, ref, *, offset):
    if x.shape[2] < ref.shape[2] or x.shape[3] < ref.shape[3]:
        raise ValueError(f"Crop: input of shape {tuple(x.shape)} is smaller than the reference "
                         f"of shape {tuple(ref.shape)}")
    return x[_crop_window(x.shape, ref.shape, offset)].copy()


def _crop_like_backward(dzdy, y, x, ref, *, offset):
    dx = array_module(dzdy).zeros(x.shape, dtype=dzdy.dtype)
    dx[_crop_window(x.shape, ref.shape, offset)] = dzdy
    return dx


crop_like_op = Op("crop_like", _crop_like_forward, vjps=(_crop_like_backward, None),
                  shape=lambda x_shape, ref_shape, *, offset: (x_shape[0], x_shape[1],
                                                               ref_shape[2], ref_shape[3]),
                  # x is read through a 1 x 1 window shifted by the offset, ref for its size only
                  receptive_field=lambda node: (
                      ReceptiveField((1, 1), (1, 1), tuple(node.options["offset"])), None),
                  matconvnet_types=("dagnn.Crop",),
                  doc="dagnn.Crop: crop x to the spatial size of ref from (top, left) = offset.")


# ============================================================================== helpers
def _size(size):
    return None if size is None else tuple(int(s) for s in np.ravel(size))


def _need_size(block):
    if block.size is None or len(block.size) != 4:
        raise ValueError(f"{type(block).__name__}.init_params: set size=(kh, kw, cin, cout) to "
                         f"initialise the parameters, got {block.size}")
    return block.size


def _has_weight(layer, k):
    weights = layer.get("weights") or []
    return len(weights) > k and weights[k] is not None and np.size(weights[k]) > 0
