"""ImageFolder: a user's images in class folders, decoded in threads, resized and cropped."""

import numpy as np
import pytest

from autonn import datasets

Image = pytest.importorskip("PIL.Image")


def write_images(root, classes, per_class, size=(20, 14)):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for j in range(per_class):
            colour = np.zeros(size[::-1] + (3,), np.uint8)
            colour[..., k % 3] = 200
            colour = (colour + rng.integers(0, 40, colour.shape)).astype(np.uint8)
            Image.fromarray(colour).save(folder / f"{j}.png")
    (root / classes[0] / "notes.txt").write_text("not an image")


def test_random_split_layout(tmp_path):
    write_images(tmp_path, ["cat", "dog", "emu"], 10)
    dataset = datasets.ImageFolder(str(tmp_path), size=8, val_fraction=0.2)
    assert dataset.classes == ["cat", "dog", "emu"]
    assert dataset.num_images("train") == 24 and dataset.num_images("val") == 6
    assert len(np.intersect1d(dataset.split_indices("train"), dataset.split_indices("val"))) == 0
    images, labels = next(dataset.batches("train", 5, rng=0))
    assert images.shape == (5, 3, 8, 8) and images.dtype == np.float32
    raw = dataset.load([0])  # a 'cat' image: red channel strongest
    assert raw.shape == (1, 3, 8, 8) and raw[0, 0].mean() > raw[0, 1].mean()
    assert dataset.mean.shape == (1, 3, 1, 1)


def test_train_val_folders_grey_and_jitter(tmp_path):
    write_images(tmp_path / "train", ["a", "b"], 4)
    write_images(tmp_path / "val", ["a", "b"], 2)
    dataset = datasets.ImageFolder(str(tmp_path), size=(6, 10), channels=1, jitter=True)
    assert dataset.num_images("train") == 8 and dataset.num_images("val") == 4
    train = np.concatenate([b[1] for b in dataset.batches("train", 3, rng=0)])
    assert sorted(train) == [0, 0, 0, 0, 1, 1, 1, 1]
    images, _ = next(dataset.batches("train", 8, rng=0))
    assert images.shape == (8, 1, 6, 10)
    again, _ = next(dataset.batches("train", 8, rng=0))
    np.testing.assert_array_equal(images, again)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.ImageFolder(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        datasets.ImageFolder(str(tmp_path / "empty"))
