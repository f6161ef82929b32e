"""``ImageFolder``: a user's own images, one sub-folder per class.

Two layouts are understood::

    root/train/<class>/*.jpg  and  root/val/<class>/*.jpg     (explicit splits)
    root/<class>/*.jpg                                          (split at random per class)

Images are decoded with Pillow in a pool of threads (Pillow releases the GIL while decoding and
resizing), resized so that their shorter side is ``size`` and centre-cropped to ``size`` x
``size``; with ``jitter=True`` training batches are also shifted by a random crop of a
reflection-padded copy and flipped left-right at random. Batches are prepared in a background
thread while the network trains (``prefetch``).
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import Dataset, stratified_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")


class ImageFolder(Dataset):
    """Images from ``root`` (see the module docstring for the layouts).

    Parameters
    ----------
    size : int or (h, w)
        Output size of every image.
    channels : 3 (RGB) or 1 (grey levels)
    val_fraction, seed : the random per-class split when ``root`` has no train/val folders.
    jitter : True for random crops (:class:`RandomCropFlip`) and left-right flips on training
        batches; or a callable ``jitter(images, labels, rng, dataset)``.
    num_threads : decoding threads.
    normalization : default 'channel' (the mean colour of the training images).
    mean_sample : how many training images estimate the mean (decoding all of a large folder
        would take long; MatConvNet's ImageNet example samples too).
    """

    def __init__(self, root, *, size=64, channels=3, val_fraction=0.2, seed=0, jitter=False,
                 num_threads=4, normalization="channel", mean_sample=1000, prefetch=True,
                 **options):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolder: folder {root!r} does not exist")
        if channels not in (1, 3):
            raise ValueError(f"ImageFolder: channels must be 1 or 3, got {channels!r}")
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise ImportError("ImageFolder: needs Pillow to decode images; pip install Pillow "
                              "(or autonn[examples])") from None
        self.size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        self.channels = channels
        self.num_threads = int(num_threads)
        self.mean_sample = int(mean_sample)
        self.root = root
        split_dirs = [os.path.join(root, s) for s in ("train", "val")]
        if all(os.path.isdir(d) for d in split_dirs):
            classes = sorted(set(_class_dirs(split_dirs[0])) | set(_class_dirs(split_dirs[1])))
            files_train, labels_train = _list_images(split_dirs[0], classes)
            files_val, labels_val = _list_images(split_dirs[1], classes)
            self.files = files_train + files_val
            labels = np.asarray(labels_train + labels_val, np.int64)
            train = np.arange(len(files_train))
            val = np.arange(len(files_train), len(self.files))
        else:
            classes = _class_dirs(root)
            self.files, labels = _list_images(root, classes)
            labels = np.asarray(labels, np.int64)
            train, val = (stratified_split(labels, val_fraction, seed) if len(labels)
                          else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        if not self.files:
            raise FileNotFoundError(f"ImageFolder: no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                    f"in class sub-folders of {root!r}")
        if jitter is True:
            jitter = RandomCropFlip()
        super().__init__(labels, train, val, classes, (channels,) + self.size,
                         name="ImageFolder", jitter=jitter or None,
                         normalization=normalization, prefetch=prefetch, **options)

    def load(self, indices):
        """Decode, resize (shorter side to ``size``) and centre-crop the images at ``indices``:
        float32 (n, C, H, W) in [0, 1]."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0,) + self.image_shape, np.float32)
        with ThreadPoolExecutor(max(1, self.num_threads)) as pool:
            images = list(pool.map(lambda k: self._decode(self.files[k], self.size), indices))
        return np.stack(images)

    def _decode(self, path, target):
        from PIL import Image
        with Image.open(path) as image:
            image = image.convert("RGB" if self.channels == 3 else "L")
            h, w = target
            ratio = max(h / image.height, w / image.width)
            resized = image.resize((max(w, round(image.width * ratio)),
                                    max(h, round(image.height * ratio))), Image.BILINEAR)
            left, top = (resized.width - w) // 2, (resized.height - h) // 2
            array = np.asarray(resized.crop((left, top, left + w, top + h)), np.float32)
        array = array * np.float32(1 / 255)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def _compute_mean(self):
        if self.normalization is None:
            return np.float32(0)
        train = self.indices["train"]
        sample = train[np.linspace(0, len(train) - 1, min(len(train), self.mean_sample))
                       .astype(np.int64)]
        total = np.zeros((1,) + self.image_shape, np.float64)
        for start in range(0, len(sample), 256):
            total += self.load(sample[start:start + 256]).sum(axis=0, keepdims=True)
        mean = total / len(sample)
        if self.normalization == "channel":
            mean = mean.mean(axis=(2, 3), keepdims=True)
        return mean.astype(np.float32)


class RandomCropFlip:
    """Training jitter for :class:`ImageFolder`: pad each image by ``pad_fraction`` of its size
    on every side (reflecting the border), crop a random window of the original size, and flip
    it left-right with probability 1/2."""

    def __init__(self, pad_fraction=0.0625, flip=True):
        self.pad_fraction = float(pad_fraction)
        self.flip = bool(flip)

    def __call__(self, images, labels, rng, dataset=None):
        n, _, h, w = images.shape
        ph, pw = int(round(h * self.pad_fraction)), int(round(w * self.pad_fraction))
        padded = np.pad(images, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="reflect")
        tops = rng.integers(0, 2 * ph + 1, size=n)
        lefts = rng.integers(0, 2 * pw + 1, size=n)
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        out = np.empty_like(images)
        for k in range(n):
            crop = padded[k, :, tops[k]:tops[k] + h, lefts[k]:lefts[k] + w]
            out[k] = crop[:, :, ::-1] if flips[k] else crop
        return out

    def __repr__(self):
        return f"RandomCropFlip(pad_fraction={self.pad_fraction}, flip={self.flip})"


def _class_dirs(root):
    return sorted(entry.name for entry in os.scandir(root)
                  if entry.is_dir() and not entry.name.startswith("."))


def _list_images(root, classes):
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(entry.path)
                labels.append(label)
    return files, labels
