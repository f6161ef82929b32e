"""One rank of the data-parallel tests (``tests/test_distributed.py`` starts it under mpirun):

    mpirun -np K python tests/mpi_worker.py CASE OUTPUT_FOLDER [options as JSON]

CASE 'train' trains the small net of :func:`small_problem` and rank 0 writes the Params to
OUTPUT_FOLDER/params.npz; 'shards' records which images each rank loaded; 'die' trains until
the step in options['die_at_step'], where rank options['dying_rank'] kills itself (SIGKILL).
"""

import json
import os
import signal
import sys
import time

import numpy as np

import autonn as an
from autonn import nn
from autonn.datasets.base import ArrayDataset


def small_problem(dtype=np.float64, count=60, seed=0):
    """A conv + pool + conv classifier of 3 classes on random 8x8 images, and its data."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (count, 1, 8, 8)).astype(dtype)
    labels = rng.integers(0, 3, count)
    x, c = an.Input("images"), an.Input("labels")
    w1 = an.Param(rng.standard_normal((4, 1, 3, 3)).astype(dtype) * 0.5, name="w1")
    w2 = an.Param(rng.standard_normal((3, 4, 3, 3)).astype(dtype) * 0.5, name="w2")
    b2 = an.Param(np.zeros(3, dtype), name="b2")
    y = nn.conv(nn.pool(nn.relu(nn.conv(x, w1, None, pad=1)), 2, stride=2), w2, b2)
    scores = y.mean(axis=(2, 3), keepdims=True)
    objective = nn.loss(scores, c)
    objective.name = "objective"
    net = an.Net(objective)
    data = ImagesAsGiven(images, labels, np.arange(count - 12), np.arange(count - 12, count),
                         ["a", "b", "c"], name="random", normalization=None)
    return net, data


class ImagesAsGiven(ArrayDataset):
    """The images in their own dtype (autonn's datasets give float32), unnormalised."""

    def load(self, indices):
        return self.pixels[np.asarray(indices, dtype=np.int64)]

    def normalize(self, raw):
        return raw


class Recording(ImagesAsGiven):
    """Writes the indices of every image it loads."""

    def load(self, indices):
        self.loaded.append(np.asarray(indices).tolist())
        return super().load(indices)


def main():
    case, folder = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    from mpi4py import MPI
    rank = MPI.COMM_WORLD.Get_rank()
    net, data = small_problem(np.dtype(options.get("dtype", "float64")),
                              options.get("count", 60))
    solver = an.solvers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.001)
    train = dict(epochs=options.get("epochs", 2), batch_size=options.get("batch_size", 5),
                 progress=False, plot=False, distributed=True)
    if case == "shards":
        data.__class__, data.loaded = Recording, []
        an.train(net, data, solver, **train)
        with open(os.path.join(folder, f"loaded-{rank}.json"), "w") as file:
            json.dump(data.loaded, file)
        return
    if case == "die":
        steps = [0]
        step = solver.step

        def counting_step(target):
            steps[0] += 1
            if steps[0] == options["die_at_step"] and rank == options["dying_rank"]:
                os.kill(os.getpid(), signal.SIGKILL)
            step(target)
        solver.step = counting_step
    pause = options.get("sleep_per_epoch", 0)  # time for a test to kill the job mid-run
    history = an.train(net, data, solver, exp_dir=options.get("exp_dir"),
                       resume=options.get("resume", False),
                       on_epoch_end=(lambda epoch, history: time.sleep(pause)) if pause else None,
                       **train)
    if rank == 0:
        np.savez(os.path.join(folder, "params.npz"), **net.state_dict())
        with open(os.path.join(folder, "history.json"), "w") as file:
            json.dump(history, file)


if __name__ == "__main__":
    main()
