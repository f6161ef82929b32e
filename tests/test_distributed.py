"""Data-parallel training over MPI: K ranks with batch B against one process with batch K B,
the ranks' shards, resume after the whole job is killed, and a rank that dies. Each case starts
``mpirun --oversubscribe -np K python tests/mpi_worker.py ...``."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import autonn as an

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_worker  # noqa: E402

MPIRUN = next((path for path in (os.path.join(os.path.dirname(sys.executable), "mpirun"),
                                 "/usr/bin/mpirun") if os.path.exists(path)), None)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIRUN is None,
                                reason="needs mpi4py and mpirun (pip install autonn[distributed])")
# Open MPI refuses to start as root unless told (CI containers run as root)
ENVIRONMENT = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
               "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1"}


def mpirun(ranks, case, folder, timeout=120, environment=None, **options):
    command = [MPIRUN, "--oversubscribe", "-np", str(ranks), sys.executable,
               os.path.join(HERE, "mpi_worker.py"), case, str(folder), json.dumps(options)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**ENVIRONMENT, **(environment or {})})


def one_process(batch_size, epochs=2, dtype="float64"):
    net, data = mpi_worker.small_problem(np.dtype(dtype))
    solver = an.solvers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.001)
    history = an.train(net, data, solver, epochs=epochs, batch_size=batch_size, progress=False,
                       plot=False, distributed=False)
    return net.state_dict(), history


@pytest.mark.parametrize("ranks, dtype", [(2, "float64"), (3, "float64"), (2, "float32")])
def test_k_ranks_take_the_steps_of_one_process_with_k_times_the_batch(tmp_path, ranks, dtype):
    done = mpirun(ranks, "train", tmp_path, batch_size=4, dtype=dtype)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, history = one_process(4 * ranks, dtype=dtype)
    got = np.load(tmp_path / "params.npz")
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=tolerance, atol=tolerance,
                                   err_msg=name)
    # the statistics are those of every image, not rank 0's
    with open(tmp_path / "history.json") as file:
        reduced = json.load(file)
    for split in ("train", "val"):
        assert reduced[split][-1]["num_images"] == history[split][-1]["num_images"]
        np.testing.assert_allclose(reduced[split][-1]["objective"],
                                   history[split][-1]["objective"], rtol=tolerance)


def test_the_ranks_read_disjoint_shards_that_cover_every_batch(tmp_path):
    ranks, batch_size = 3, 5  # 48 training images in batches of 15: the last one has 3
    done = mpirun(ranks, "shards", tmp_path, batch_size=batch_size, epochs=1)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = [json.load(open(tmp_path / f"loaded-{r}.json")) for r in range(ranks)]
    _, data = mpi_worker.small_problem()
    order = [chunk.tolist() for chunk, _ in _batch_indices(data, batch_size * ranks)]
    train = [rank_loads[:len(order)] for rank_loads in loaded]  # training first, then val
    for k, chunk in enumerate(order):
        parts = [train[r][k] for r in range(ranks)]
        assert sum(parts, []) == chunk  # in order: contiguous shards, rank 0 first
        assert all(abs(len(a) - len(b)) <= 1 for a in parts for b in parts)


def _batch_indices(data, batch_size):
    """The chunks of indices of epoch 0's training batches, as one process draws them."""
    class Indices(mpi_worker.ImagesAsGiven):
        def load(self, indices):
            return np.asarray(indices)
    data.__class__ = Indices
    rng = np.random.default_rng([0, 0])
    return list(data.batches("train", batch_size, rng=rng))


def test_resume_after_the_whole_job_was_killed_gives_the_uninterrupted_result(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    uninterrupted.mkdir()
    done = mpirun(2, "train", uninterrupted, epochs=4)
    assert done.returncode == 0, done.stderr[-3000:]

    killed, exp_dir = tmp_path / "killed", tmp_path / "exp"
    killed.mkdir()
    command = [MPIRUN, "--oversubscribe", "-np", "2", sys.executable,
               os.path.join(HERE, "mpi_worker.py"), "train", str(killed),
               json.dumps(dict(epochs=4, exp_dir=str(exp_dir), sleep_per_epoch=1.0))]
    job = subprocess.Popen(command, env=ENVIRONMENT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240  # a loaded machine starts Python slowly
    while not (exp_dir / "state-epoch-1.npz").exists() and time.monotonic() < deadline \
            and job.poll() is None:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # each later epoch waits a second: it cannot be done
    job.wait()
    assert (exp_dir / "state-epoch-1.npz").exists() and not (exp_dir / "state-epoch-4.npz").exists()

    done = mpirun(2, "train", killed, epochs=4, exp_dir=str(exp_dir), resume=True)
    assert done.returncode == 0, done.stderr[-3000:]
    want, got = np.load(uninterrupted / "params.npz"), np.load(killed / "params.npz")
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_rank_that_dies_ends_the_job_with_an_error_in_time(tmp_path):
    started = time.monotonic()
    done = mpirun(2, "die", tmp_path, timeout=90, environment={"AUTONN_MPI_TIMEOUT": "5"},
                  die_at_step=3, dying_rank=1, epochs=3)
    assert done.returncode != 0
    assert time.monotonic() - started < 60


def test_a_training_step_does_not_make_the_net_generate_its_code_again(monkeypatch):
    """The hook stays the same object from step to step (a new one, or none between steps,
    made every step compile the backward pass again). One rank: mpi4py's singleton world."""
    from autonn import codegen
    from autonn.distributed import DataParallel
    net, data = mpi_worker.small_problem()
    images, labels = next(iter(data.batches("train", 6, rng=0)))
    compiled = []
    backward_pass = codegen.backward_pass
    monkeypatch.setattr(codegen, "backward_pass",
                        lambda *a, **k: compiled.append(1) or backward_pass(*a, **k))
    parallel = DataParallel()
    for _ in range(3):
        parallel.start_step(net, len(labels), len(labels))
        net.eval({"images": images, "labels": labels})
        parallel.finish_step(net)
    assert len(compiled) == 1
    parallel.detach(net)
    assert net.on_param_ders is None
