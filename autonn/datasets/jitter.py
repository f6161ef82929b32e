"""Jitter: random changes applied to the raw pixels of training batches.

Each jitter is a callable ``jitter(images, labels, rng, dataset) -> images`` on float images in
[0, 1], NCHW, drawing its randomness from ``rng`` only (so that batches are reproducible).
"""

import numpy as np


class Shift:
    """Shift each image by a random whole number of pixels, up to ``max_shift`` = (dy, dx) each
    way, filling the uncovered border with ``fill`` (0 for MNIST-like images: black
    background)."""

    def __init__(self, max_shift=2, fill=0.0):
        if isinstance(max_shift, (int, np.integer)):
            max_shift = (max_shift, max_shift)
        self.max_shift = tuple(int(s) for s in max_shift)
        self.fill = float(fill)

    def __call__(self, images, labels, rng, dataset=None):
        sy, sx = self.max_shift
        n, _, h, w = images.shape
        padded = np.full(images.shape[:2] + (h + 2 * sy, w + 2 * sx), self.fill, images.dtype)
        padded[:, :, sy:sy + h, sx:sx + w] = images
        dy = rng.integers(-sy, sy + 1, size=n)
        dx = rng.integers(-sx, sx + 1, size=n)
        out = np.empty_like(images)
        for k in range(n):
            out[k] = padded[k, :, sy - dy[k]:sy - dy[k] + h, sx - dx[k]:sx - dx[k] + w]
        return out

    def __repr__(self):
        return f"Shift(max_shift={self.max_shift}, fill={self.fill})"


class NeighbourLetters:
    """The practical's ``getBatchWithJitter`` (Part 4.6) for dark characters on white.

    Two random training characters are placed left and right of each one (a 64-pixel-wide
    strip, the character's 32 columns overlaid in the middle with ``min``); the 32x32 window is
    then cut at a random horizontal offset in [-max_dx, max_dx] and shifted circularly by a
    random vertical offset in [-max_dy, max_dy] (the practical's ``circshift``).
    """

    def __init__(self, max_dx=5, max_dy=2):
        self.max_dx = int(max_dx)
        self.max_dy = int(max_dy)

    def __call__(self, images, labels, rng, dataset):
        n, c, h, w = images.shape
        train = dataset.split_indices("train")
        left = dataset.load(train[rng.integers(0, len(train), size=n)])
        right = dataset.load(train[rng.integers(0, len(train), size=n)])
        half = w // 2
        strip = np.concatenate([left, right], axis=3)          # (n, c, h, 2w)
        middle = strip[:, :, :, half:half + w]
        strip[:, :, :, half:half + w] = np.minimum(middle, images)
        dx = rng.integers(-self.max_dx, self.max_dx + 1, size=n)
        dy = rng.integers(-self.max_dy, self.max_dy + 1, size=n)
        out = np.empty_like(images)
        for k in range(n):
            window = strip[k, :, :, half + dx[k]:half + dx[k] + w]
            out[k] = np.roll(window, dy[k], axis=1)
        return out

    def __repr__(self):
        return f"NeighbourLetters(max_dx={self.max_dx}, max_dy={self.max_dy})"
