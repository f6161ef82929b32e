"""Dataset basics: splits, shuffled reproducible batches, mean normalisation, jitter, prefetch."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autonn.datasets import ArrayDataset, Shift, stratified_split


def make_dataset(n=50, **options):
    options.setdefault("normalization", "image")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, 2, 4, 5), dtype=np.uint8)
    labels = np.arange(n) % 5
    train, val = stratified_split(labels, 0.2, seed=0)
    return ArrayDataset(pixels, labels, train, val, list("abcde"), name="toy", **options)


def test_stratified_split_is_disjoint_complete_and_per_class():
    labels = np.repeat(np.arange(4), 25)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0
    assert sorted(np.concatenate([train, val])) == list(range(100))
    assert np.all(np.bincount(labels[val]) == 5)


def test_batches_cover_the_split_once_shuffled_and_reproducible():
    dataset = make_dataset()
    batches = list(dataset.batches("train", 7, rng=1))
    assert [len(labels) for _, labels in batches] == [7] * 5 + [5]
    images = np.concatenate([b[0] for b in batches])
    assert images.shape == (40, 2, 4, 5) and images.dtype == np.float32
    labels = np.concatenate([b[1] for b in batches])
    assert labels.dtype == np.int64
    order = list(dataset.batches("train", 7, rng=1))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in order]), images)
    other = np.concatenate([b[1] for b in dataset.batches("train", 7, rng=2)])
    assert sorted(other) == sorted(labels) and list(other) != list(labels)
    val = np.concatenate([b[1] for b in dataset.batches("val", 3)])
    np.testing.assert_array_equal(val, dataset.labels[dataset.split_indices("val")])


def test_mean_of_training_images_is_subtracted():
    dataset = make_dataset()
    train_images, _ = dataset.get("train")
    np.testing.assert_allclose(train_images.mean(axis=0), 0, atol=1e-5)
    raw = dataset.load(dataset.split_indices("train"))
    np.testing.assert_allclose(dataset.mean[0], raw.mean(axis=0), rtol=1e-5)
    channel = make_dataset(normalization="channel")
    assert channel.mean.shape == (1, 2, 1, 1)
    scaled = make_dataset(scale=256.0)
    np.testing.assert_allclose(scaled.get("val")[0], 256 * dataset.get("val")[0], rtol=1e-5)


def test_prefetch_gives_the_same_batches_as_inline_with_jitter():
    dataset = make_dataset(jitter=Shift(1))
    inline = list(dataset.batches("train", 8, rng=5, prefetch=False))
    threaded = list(dataset.batches("train", 8, rng=5, prefetch=True))
    for (a, la), (b, lb) in zip(inline, threaded):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    plain = list(dataset.batches("train", 8, rng=5, jitter=False))
    assert any(not np.array_equal(a, p) for (a, _), (p, _) in zip(inline, plain))


def test_prefetch_reraises_errors_of_the_worker():
    dataset = make_dataset()

    def broken(images, labels, rng, ds):
        raise RuntimeError("jitter exploded")

    with pytest.raises(RuntimeError, match="jitter exploded"):
        list(dataset.batches("train", 8, jitter=broken, prefetch=True))


def test_shift_moves_content_and_fills_the_border():
    images = np.zeros((50, 1, 5, 5), np.float32)
    images[:, :, 2, 2] = 1
    shifted = Shift(2)(images, None, np.random.default_rng(0))
    assert np.all(shifted.sum(axis=(1, 2, 3)) == 1)
    positions = {tuple(np.argwhere(s[0])[0]) for s in shifted}
    assert len(positions) > 5 and all(0 <= y < 5 and 0 <= x < 5 for y, x in positions)


def test_bad_arguments():
    dataset = make_dataset()
    with pytest.raises(ValueError, match="toy: split must be one of"):
        dataset.num_images("test")
    with pytest.raises(ValueError, match="toy.batches: batch_size"):
        dataset.batches("train", 0)
    with pytest.raises(ValueError, match="share 1 images"):
        ArrayDataset(np.zeros((3, 1, 2, 2)), [0, 1, 2], [0, 1], [1, 2], ["x"], name="toy")
    with pytest.raises(ValueError, match=r"toy: pixels must be \(N, C, H, W\) or \(N, H, W\), "
                                         r"got shape"):
        ArrayDataset(np.zeros((3, 4)), [0, 1, 2], [0], [1], ["x"], name="toy")


def test_limit_keeps_the_first_images_of_each_split():
    dataset = make_dataset()
    small = dataset.limit(10, 3)
    assert small.num_images("train") == 10 and small.num_images("val") == 3
    np.testing.assert_array_equal(small.split_indices("train"),
                                  dataset.split_indices("train")[:10])
    assert dataset.num_images("train") == 40


def test_abandoned_prefetch_stops_its_thread():
    import threading
    import time

    def prefetch_threads():
        return [t for t in threading.enumerate() if t.name == "autonn-prefetch" and t.is_alive()]

    dataset = make_dataset()
    unused = dataset.batches("train", 2, prefetch=True)
    assert not prefetch_threads()  # nothing starts before the first batch is asked for
    batches = dataset.batches("train", 2, prefetch=True)
    next(batches)
    batches.close()
    del unused
    deadline = time.time() + 5
    while prefetch_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert not prefetch_threads()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(6, 60), batch_size=st.integers(1, 70), seed=st.integers(0, 1000))
def test_batches_partition_each_split_for_any_sizes(n, batch_size, seed):
    dataset = make_dataset(n)
    for split in ("train", "val"):
        labels, count = [], 0
        for images, batch_labels in dataset.batches(split, batch_size, rng=seed):
            assert 1 <= len(batch_labels) <= batch_size and len(images) == len(batch_labels)
            labels.append(batch_labels)
            count += 1
        expected = dataset.labels[dataset.split_indices(split)]
        assert count == -(-len(expected) // batch_size)
        assert sorted(np.concatenate(labels + [np.zeros(0, np.int64)])) == sorted(expected)
