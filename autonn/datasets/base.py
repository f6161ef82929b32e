"""What every dataset shares: splits, mean normalisation, shuffled mini-batches, jitter, prefetch.

A dataset is MatConvNet's ``imdb`` plus its ``getBatch``: a set of images with 0-based labels,
the indices of its ``'train'`` and ``'val'`` splits, and :meth:`Dataset.batches`, which yields
``(images, labels)`` mini-batches ready for a Net — NCHW float32 images with the mean of the
training images subtracted, int64 labels.

Subclasses provide the raw pixels of a set of images through :meth:`Dataset.load` (floats in
[0, 1]: in memory for the small datasets, decoded from files for :class:`ImageFolder`). Jitter
(random shifts, the practical's neighbouring letters) is applied to the raw pixels of training
batches, before the mean is subtracted, as the practical's ``getBatchWithJitter`` does.

Randomness is reproducible: the batch order and one seed per batch are drawn in the calling
thread from the ``rng`` passed to :meth:`Dataset.batches`, so the batches are the same whether
they are prepared in a background thread or not.
"""

import queue
import threading

import numpy as np

SPLITS = ("train", "val")


class Dataset:
    """Labelled images with train/val splits.

    Parameters
    ----------
    labels : int array (N,)
        0-based class labels.
    train, val : int arrays
        Indices of the images of each split (disjoint).
    classes : list of str
        Class names, ``classes[label]``.
    image_shape : tuple (C, H, W)
    name : str
    jitter : callable or None
        ``jitter(images, labels, rng, dataset) -> images`` applied to the raw pixels (floats in
        [0, 1], NCHW) of training batches.
    normalization : 'image', 'channel' or None
        Subtract the mean image of the training split (MatConvNet's ``imageMean``), the mean of
        each channel, or nothing.
    scale : float
        Multiplies the images after the mean is subtracted (the practical uses 256).
    prefetch : bool
        Prepare the next batches in a background thread while the network trains.
    """

    def __init__(self, labels, train, val, classes, image_shape, *, name, jitter=None,
                 normalization="image", scale=1.0, prefetch=False):
        if normalization not in ("image", "channel", None):
            raise ValueError(f"{name}: normalization must be 'image', 'channel' or None, got "
                             f"{normalization!r}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.indices = {"train": np.asarray(train, dtype=np.int64),
                        "val": np.asarray(val, dtype=np.int64)}
        overlap = np.intersect1d(self.indices["train"], self.indices["val"])
        if overlap.size:
            raise ValueError(f"{name}: the train and val splits share {overlap.size} images")
        self.classes = list(classes)
        self.image_shape = tuple(int(n) for n in image_shape)
        self.name = name
        self.jitter = jitter
        self.normalization = normalization
        self.scale = float(scale)
        self.prefetch = prefetch
        self._mean = None

    # ------------------------------------------------------------------ what subclasses define
    def load(self, indices):
        """Raw pixels of the images at ``indices``: float32 (n, C, H, W) in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} does not define load()")

    # ------------------------------------------------------------------ public
    @property
    def num_classes(self):
        return len(self.classes)

    def num_images(self, split):
        """How many images ``split`` ('train' or 'val') holds."""
        return len(self.split_indices(split))

    def split_indices(self, split):
        if split not in SPLITS:
            raise ValueError(f"{self.name}: split must be one of {SPLITS}, got {split!r}")
        return self.indices[split]

    @property
    def mean(self):
        """The mean subtracted from every image: (1, C, H, W) for 'image' normalisation,
        (1, C, 1, 1) for 'channel', 0 for none; computed from the training split."""
        if self._mean is None:
            self._mean = self._compute_mean()
        return self._mean

    def normalize(self, raw):
        """``(raw - mean) * scale``: what the network sees, from raw pixels in [0, 1]."""
        return ((raw - self.mean) * np.float32(self.scale)).astype(np.float32, copy=False)

    def get(self, split, count=None):
        """The first ``count`` images of ``split`` (all by default), normalised, with their
        labels — for evaluation and demos; training uses :meth:`batches`."""
        indices = self.split_indices(split)[:count]
        return self.normalize(self.load(indices)), self.labels[indices]

    def batches(self, split="train", batch_size=100, *, shuffle=None, rng=None, jitter=None,
                prefetch=None, shard=None):
        """Yield ``(images, labels)`` mini-batches of ``split``.

        shuffle : default True for 'train', False for 'val'.
        rng : numpy Generator (or seed) for the order and the jitter; default a fresh one.
        jitter : default: the dataset's jitter on 'train', none on 'val'; False turns it off.
        prefetch : default: the dataset's setting.
        shard : ``(rank, size)``: of each batch, only the rank's part is loaded (contiguous,
            as even as can be): the ranks of data-parallel training, drawing the same order
            from the same ``rng``, read disjoint parts that together make every batch.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{self.name}.batches: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        indices = self.split_indices(split)
        rng = np.random.default_rng(rng)
        if shuffle is None:
            shuffle = split == "train"
        if jitter is None:
            jitter = self.jitter if split == "train" else None
        elif jitter is False:
            jitter = None
        if prefetch is None:
            prefetch = self.prefetch
        order = rng.permutation(indices) if shuffle else indices
        chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
        # Seeds drawn here, in order, make jittered batches independent of the prefetch thread.
        seeds = rng.integers(0, 2 ** 63 - 1, size=len(chunks)) if jitter is not None else None

        if shard is not None:
            rank, size = shard
            if not 0 <= rank < size:
                raise ValueError(f"{self.name}.batches: shard must be (rank, size) with "
                                 f"0 <= rank < size, got {shard!r}")

        def make(k):
            chunk = chunks[k]
            if shard is not None:
                chunk = np.array_split(chunk, shard[1])[shard[0]]
            raw = self.load(chunk)
            if jitter is not None:
                raw = jitter(raw, self.labels[chunk], np.random.default_rng(seeds[k]), self)
            return self.normalize(raw), self.labels[chunk]

        if prefetch:
            return _prefetched(make, len(chunks))
        return (make(k) for k in range(len(chunks)))

    def limit(self, num_train=None, num_val=None):
        """A view of this dataset keeping only the first ``num_train`` training and ``num_val``
        validation images (quick experiments, tests). Shares the images and the mean."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.indices = {"train": self.indices["train"][:num_train],
                        "val": self.indices["val"][:num_val]}
        view._mean = None
        return view

    def __repr__(self):
        c, h, w = self.image_shape
        return (f"<{self.name}: {self.num_images('train')} train and {self.num_images('val')} "
                f"val images, {c}x{h}x{w}, {self.num_classes} classes>")

    # ------------------------------------------------------------------ helpers
    def _compute_mean(self):
        if self.normalization is None:
            return np.float32(0)
        train = self.indices["train"]
        if len(train) == 0:
            raise ValueError(f"{self.name}: cannot compute the mean of an empty training split")
        total = np.zeros((1,) + self.image_shape, np.float64)
        for start in range(0, len(train), 1000):
            total += self.load(train[start:start + 1000]).sum(axis=0, keepdims=True)
        mean = total / len(train)
        if self.normalization == "channel":
            mean = mean.mean(axis=(2, 3), keepdims=True)
        return mean.astype(np.float32)


class ArrayDataset(Dataset):
    """A dataset held in memory: ``ArrayDataset(images, labels)``.

    ``images`` are (N, C, H, W), or (N, H, W) for one channel: uint8 (0-255, read as
    ``value / 255``) or floats, which the network sees as they are unless ``normalization``
    asks otherwise. ``labels`` are 0-based classes (N,).

    train, val : the indices of each split; by default ``val_fraction`` of every class goes to
        'val' at random (``seed``), or, without ``val_fraction``, every image is 'train' (and
        'val' is empty). Given one split, the other is the rest.
    classes : class names (default ``'0'``, ``'1'``, ...).
    normalization : None (the default: nothing is subtracted), 'image' (subtract the training
        split's mean image, MatConvNet's ``imageMean``) or 'channel' (its mean per channel).
    The other options (``jitter``, ``scale``, ``prefetch``) are :class:`Dataset`'s.
    """

    def __init__(self, pixels, labels, train=None, val=None, classes=None, *, name="arrays",
                 val_fraction=None, seed=0, normalization=None, **options):
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[:, None]
        if pixels.ndim != 4:
            raise ValueError(f"{name}: pixels must be (N, C, H, W) or (N, H, W), got shape "
                             f"{pixels.shape}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(pixels):
            raise ValueError(f"{name}: {len(pixels)} images but labels of shape "
                             f"{labels.shape} (expected ({len(pixels)},))")
        whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and bool(
            np.all(np.isfinite(labels)) and np.all(labels == np.floor(labels))))
        if labels.size and (not whole or labels.min() < 0):
            raise ValueError(f"{name}: labels must be 0-based integer classes, got "
                             f"{labels.dtype} from {labels.min()} to {labels.max()}")
        if classes is None:
            classes = [str(k) for k in range(int(labels.max()) + 1 if labels.size else 0)]
        train, val = _splits(name, labels, train, val, val_fraction, seed)
        super().__init__(labels, train, val, classes, pixels.shape[1:], name=name,
                         normalization=normalization, **options)
        self.pixels = pixels

    def load(self, indices):
        raw = self.pixels[np.asarray(indices, dtype=np.int64)]
        if raw.dtype == np.uint8:
            return raw.astype(np.float32) * np.float32(1 / 255)
        return raw.astype(np.float32, copy=False)


def _splits(name, labels, train, val, val_fraction, seed):
    """ArrayDataset's train and val indices (see there)."""
    if val_fraction is not None:
        if train is not None or val is not None:
            raise TypeError(f"{name}: give the train and val indices or val_fraction, not both")
        return stratified_split(labels, val_fraction, seed)
    everything = np.arange(len(labels))
    if train is None and val is None:
        return everything, everything[:0]
    if train is None:
        return np.setdiff1d(everything, val), val
    if val is None:
        return train, np.setdiff1d(everything, train)
    return train, val


def stratified_split(labels, val_fraction, seed):
    """Train and val indices with ``val_fraction`` of every class in val, both shuffled."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"stratified_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = int(round(val_fraction * len(members)))
        val.append(members[:count])
        train.append(members[count:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def _prefetched(make, count, depth=2):
    """Yield ``make(0), ..., make(count - 1)`` computed by a background thread, ``depth`` ahead.

    Exceptions in the thread are re-raised in the consumer; abandoning the generator stops the
    thread.
    """
    results = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        for k in range(count):
            if stop.is_set():
                return
            try:
                item = (True, make(k))
            except BaseException as error:  # handed to the consumer, which re-raises it
                item = (False, error)
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    def consume():
        # The thread starts with the first request, so a generator that is never iterated
        # leaves no thread behind; closing it (or its garbage collection) stops the thread.
        thread = threading.Thread(target=work, name="autonn-prefetch", daemon=True)
        thread.start()
        try:
            for _ in range(count):
                ok, value = results.get()
                if not ok:
                    raise value
                yield value
        finally:
            stop.set()

    return consume()
