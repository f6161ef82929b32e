"""The practical's characters rendered from installed fonts, split by font family, with the
practical's jitter."""

import numpy as np
import pytest

from autonn import datasets

pytest.importorskip("PIL")


def dejavu_and_friends(limit=12):
    fonts = datasets.find_fonts()
    if len(fonts) < 4:
        pytest.skip("fewer than 4 fonts installed (scripts/install_data.sh installs them)")
    return list(fonts[:limit])


def test_letters_rendered_centred_dark_on_white():
    patches = None
    for path in dejavu_and_friends(40):
        patches = datasets.render_letters(path, 32)
        if patches is not None:
            break
    assert patches is not None and patches.shape == (26, 32, 32) and patches.dtype == np.uint8
    assert np.all(patches[:, 0, :] == 255) and np.all(patches[:, :, 0] == 255)  # white border
    ink = np.argwhere(patches[0] < 128)
    centre = ink.mean(axis=0)
    assert np.all(np.abs(centre - 15.5) < 4)


def test_split_by_font_family_is_disjoint():
    dataset = datasets.characters(fonts=dejavu_and_friends(30), val_fraction=0.3)
    assert dataset.image_shape == (1, 32, 32) and dataset.num_classes == 26
    families = np.repeat(dataset.font_families, 26)
    train_families = set(families[dataset.split_indices("train")])
    val_families = set(families[dataset.split_indices("val")])
    assert train_families and val_families and not train_families & val_families
    assert np.all(dataset.labels[:26] == np.arange(26))
    images, labels = next(dataset.batches("train", 20, rng=0))
    assert images.shape == (20, 1, 32, 32) and labels.max() < 26


def test_practical_jitter_adds_neighbours_and_shifts():
    dataset = datasets.characters(fonts=dejavu_and_friends(30), jitter=True)
    indices = dataset.split_indices("train")[:64]
    raw = dataset.load(indices)
    jittered = dataset.jitter(raw, dataset.labels[indices], np.random.default_rng(0), dataset)
    assert jittered.shape == raw.shape
    # Neighbouring letters only add ink (min), so the jittered patches are darker on average.
    assert jittered.mean() < raw.mean()
    assert not np.array_equal(jittered, raw)


def test_no_usable_fonts_names_the_debian_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="fonts-aenigma"):
        datasets.characters(fonts=[str(tmp_path / "missing.ttf")])
