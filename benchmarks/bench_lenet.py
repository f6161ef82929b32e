"""A whole training step: LeNet (MatConvNet's cnn_mnist) forward+backward, autonn against
PyTorch (CPU), 2 threads each, float32, measured in one run.

    python benchmarks/bench_lenet.py [--batch 100 50] [--repeat 5]

autonn runs ``an.Net`` compiled from ``an.models.lenet()`` (conv 5x5x20, max-pool, conv 5x5x50,
max-pool, conv 4x4x500, ReLU, conv 1x1x10, softmax log-loss); PyTorch the same layers as an
``nn.Sequential`` with ``cross_entropy``. Both compute the loss and every parameter derivative;
neither updates the parameters (the solver's step is the same few array operations in both).
Times are the best of ``--repeat`` steps in a row, in five rounds alternating between the two
(benchmarks/timing.py).
"""

import argparse
import os

from timing import best_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 50])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy as np
    import autonn as an          # before torch: it sets OpenMP's wait policy (kernels/README.md)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    model = an.models.lenet(seed=0)
    net = an.Net(model["objective"])

    torch.manual_seed(0)
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2), torch.nn.Conv2d(20, 50, 5),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(50, 500, 4), torch.nn.ReLU(),
        torch.nn.Conv2d(500, 10, 1), torch.nn.Flatten())

    print(f"LeNet forward+backward, autonn vs PyTorch {torch.__version__} (CPU), "
          f"{args.threads} threads, float32, best of 5 rounds of {args.repeat}; load average before: "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'batch':>5} {'autonn im/s':>12} {'torch im/s':>11} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for batch in args.batch:
        images = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, size=batch)
        feed = {model["images"]: images, model["labels"]: labels}
        t_images, t_labels = torch.from_numpy(images), torch.from_numpy(labels)

        def ours():
            net.eval(feed)

        def theirs():
            layers.zero_grad(set_to_none=True)
            F.cross_entropy(layers(t_images), t_labels).backward()

        best = best_times(ours, theirs, repeat=args.repeat)
        ours_rate, torch_rate = batch / best[0], batch / best[1]
        print(f"{batch:>5} {ours_rate:12.0f} {torch_rate:11.0f} {ours_rate / torch_rate:6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
