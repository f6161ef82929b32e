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


def text_dataset():
    try:
        return datasets.characters()
    except FileNotFoundError:
        pytest.skip("no text fonts installed (scripts/install_data.sh installs them)")


def test_default_keeps_the_text_families_once_each():
    dataset = text_dataset()
    assert set(dataset.font_families) <= set(datasets.TEXT_FAMILIES)
    assert len(dataset.font_paths) == len(dataset.font_families) == len(dataset.labels) // 26
    # fonts-liberation and fonts-liberation2 both ship Liberation: each style is kept once.
    from PIL import ImageFont
    styles = [ImageFont.truetype(path, 12).getname() for path in dataset.font_paths]
    assert len(set(styles)) == len(styles)
    # The val families are those of the val images.
    families = np.repeat(dataset.font_families, 26)
    assert set(families[dataset.split_indices("val")]) == set(dataset.val_families)


def test_remakes_stay_in_the_split_of_their_original():
    fonts = [path for path in datasets.find_fonts()
             if any(name in path for name in ("NimbusRoman", "texgyretermes", "NimbusSans-",
                                              "texgyreheros-", "DejaVuSerif", "LiberationMono"))]
    dataset = datasets.characters(fonts=fonts, val_fraction=0.5)
    if len(set(dataset.font_families)) < 6:
        pytest.skip("URW base35, TeX Gyre, DejaVu and Liberation fonts are not all installed")
    families = np.repeat(dataset.font_families, 26)
    val = set(families[dataset.split_indices("val")])
    for remake, original in datasets.CLONES.items():
        if remake in set(families):
            assert (remake in val) == (original in val)


def test_all_fonts_is_the_former_default_and_a_superset():
    text = text_dataset()
    every = datasets.characters(fonts="all")
    assert len(every.labels) >= len(text.labels)
    assert set(text.font_families) <= set(every.font_families)
    with pytest.raises(ValueError, match="fonts must be"):
        datasets.characters(fonts="legible")


def test_no_usable_fonts_names_the_debian_packages(tmp_path):
    with pytest.raises(FileNotFoundError, match="fonts-aenigma"):
        datasets.characters(fonts=[str(tmp_path / "missing.ttf")])


def test_neighbour_gap_of_half_a_patch_is_the_practical_jitter():
    dataset = datasets.characters(fonts=dejavu_and_friends(30))
    indices = dataset.split_indices("train")[:32]
    raw, labels = dataset.load(indices), dataset.labels[indices]
    practical = datasets.NeighbourLetters(max_dx=0, max_dy=0)
    same = datasets.NeighbourLetters(max_dx=0, max_dy=0, gap=(16, 16))
    closer = datasets.NeighbourLetters(max_dx=0, max_dy=0, gap=(8, 8))
    expected = practical(raw, labels, np.random.default_rng(1), dataset)
    assert np.array_equal(same(raw, labels, np.random.default_rng(1), dataset), expected)
    near = closer(raw, labels, np.random.default_rng(1), dataset)
    # Closer neighbours cover more of the patch.
    assert near.mean() < expected.mean()
    with pytest.raises(ValueError, match="gap"):
        datasets.NeighbourLetters(gap=(0, 16))
