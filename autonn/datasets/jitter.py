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

    gap : None (the practical) puts the neighbours' patches half a patch (16 pixels at 32x32)
        left and right of the character's; a pair ``(low, high)`` draws each neighbour's
        distance in pixels from [low, high] instead, independently left and right (closer
        neighbours, as in a line of proportional text, where letters are 10 to 14 pixels apart
        at the practical's size).
    """

    def __init__(self, max_dx=5, max_dy=2, gap=None):
        self.max_dx = int(max_dx)
        self.max_dy = int(max_dy)
        if gap is not None:
            gap = (int(gap[0]), int(gap[1]))
            if not 0 < gap[0] <= gap[1]:
                raise ValueError(f"NeighbourLetters: gap must be (low, high) with "
                                 f"0 < low <= high, got {gap!r}")
        self.gap = gap

    def __call__(self, images, labels, rng, dataset):
        n, c, h, w = images.shape
        train = dataset.split_indices("train")
        left = dataset.load(train[rng.integers(0, len(train), size=n)])
        right = dataset.load(train[rng.integers(0, len(train), size=n)])
        if self.gap is not None:
            return self._with_gaps(images, left, right, rng)
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

    def _with_gaps(self, images, left, right, rng):
        n, c, h, w = images.shape
        low, high = self.gap
        to_left = rng.integers(low, high + 1, size=n)
        to_right = rng.integers(low, high + 1, size=n)
        dx = rng.integers(-self.max_dx, self.max_dx + 1, size=n)
        dy = rng.integers(-self.max_dy, self.max_dy + 1, size=n)
        # A strip of three patches' width (white beyond), the character's in the middle.
        strip = np.ones((c, h, 3 * w + 2 * high), images.dtype)
        start = w + high
        out = np.empty_like(images)
        for k in range(n):
            strip[:] = 1
            strip[:, :, start:start + w] = images[k]
            a = start - to_left[k]
            strip[:, :, a:a + w] = np.minimum(strip[:, :, a:a + w], left[k])
            b = start + to_right[k]
            strip[:, :, b:b + w] = np.minimum(strip[:, :, b:b + w], right[k])
            window = strip[:, :, start + dx[k]:start + dx[k] + w]
            out[k] = np.roll(window, dy[k], axis=1)
        return out

    def __repr__(self):
        gap = "" if self.gap is None else f", gap={self.gap}"
        return f"NeighbourLetters(max_dx={self.max_dx}, max_dy={self.max_dy}{gap})"
