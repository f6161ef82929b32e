"""Data-parallel training steps: images/s with 1 and 2 processes on one machine (one thread
each), autonn over MPI (autonn.distributed) against PyTorch's DistributedDataParallel with the
gloo backend, on the same work.

    python benchmarks/bench_distributed.py [--steps 8] [--rounds 3]

Each configuration runs under ``mpirun -np K`` (this file is also the worker: ``--worker``).
A step is forward, backward, the all-reduce of the derivatives and an SGD update, on each
process's own batch of synthetic images (LeNet: 64 per process on 28x28; ResNet-18 on
CIFAR-sized 32x32 images, 16 per process). Weak scaling: the efficiency is K processes' images/s over K times
one process's. Rounds alternate between the frameworks; the figure is the best round.
"""

import argparse
import json
import os
import subprocess
import sys
import time

MODELS = {"lenet": (64, 1, 28), "resnet18-cifar": (16, 3, 32)}


def worker(framework, model, steps):
    import numpy as np
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    batch, channels, side = MODELS[model]
    rng = np.random.default_rng(rank)
    images = rng.standard_normal((batch, channels, side, side)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    if framework == "autonn":
        step = _autonn_step(model, images, labels, size)
    else:
        step = _torch_step(model, images, labels, rank, size)
    step()  # warm-up: compiles, allocates, connects
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - started
    if rank == 0:
        print(json.dumps({"images_per_second": steps * batch * size / elapsed}))


def _autonn_step(model, images, labels, size):
    import autonn as an
    from autonn.distributed import DataParallel
    built = (an.models.lenet(seed=0) if model == "lenet" else
             an.models.resnet(depth=18, width=64, num_classes=10, input_size=32, seed=0))
    net = an.Net(built["objective"])
    parallel = DataParallel() if size > 1 else None
    if parallel is not None:
        parallel.broadcast_params(net)
    solver = an.solvers.SGD(learning_rate=0.01)
    feed = {"images": images, "labels": labels}

    def step():
        if parallel is not None:
            parallel.start_step(net, len(labels), len(labels) * size)
        net.eval(feed)
        if parallel is not None:
            parallel.finish_step(net)
        solver.step(net)
    return step


def _torch_step(model, images, labels, rank, size):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    if size > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29531")
        torch.distributed.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    layers = _torch_lenet() if model == "lenet" else _torch_resnet18(torch)
    if size > 1:
        layers = torch.nn.parallel.DistributedDataParallel(layers)
    optimiser = torch.optim.SGD(layers.parameters(), lr=0.01)
    x, c = torch.from_numpy(images), torch.from_numpy(labels)

    def step():
        optimiser.zero_grad(set_to_none=True)
        F.cross_entropy(layers(x).flatten(1), c).backward()
        optimiser.step()
    return step


def _torch_lenet():
    import torch
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2), torch.nn.Conv2d(20, 50, 5),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(50, 500, 4), torch.nn.ReLU(),
        torch.nn.Conv2d(500, 10, 1))


def _torch_resnet18(torch):
    """The ResNet-18 of autonn.models.resnet (a 7x7 stride-2 stem and max-pool, four stages
    of two basic blocks, global average pooling, a 1x1 classifier)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    blocks, cin = [], 64
    for cout, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                         (512, 1)):
        blocks.append(Block(cin, cout, stride))
        cin = cout
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *blocks, nn.AdaptiveAvgPool2d(1),
                         nn.Conv2d(512, 10, 1))


def run(framework, model, processes, steps):
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        environment.pop(name, None)
    done = subprocess.run([mpirun, "--oversubscribe", "--bind-to", "core", "-np", str(processes),
                           sys.executable, __file__, "--worker", framework, model, str(steps)],
                          capture_output=True, text=True, env=environment, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "MODEL", "STEPS"))
    args = parser.parse_args()
    if args.worker:
        framework, model, steps = args.worker
        worker(framework, model, int(steps))
        return
    print(f"data-parallel steps, images/s (best of {args.rounds} rounds), one thread per "
          f"process; load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':>15} {'procs':>5} {'autonn':>8} {'torch':>8} {'ratio':>6} "
          f"{'autonn eff.':>11} {'torch eff.':>10}")
    for model in args.models:
        best = {}
        for _ in range(args.rounds):
            for processes in (1, 2):
                for framework in ("autonn", "torch"):
                    speed = run(framework, model, processes, args.steps)
                    key = (framework, processes)
                    best[key] = max(best.get(key, 0), speed)
        for processes in (1, 2):
            ours, theirs = best[("autonn", processes)], best[("torch", processes)]
            efficiency = [best[(f, processes)] / (processes * best[(f, 1)])
                          for f in ("autonn", "torch")]
            print(f"{model:>15} {processes:>5} {ours:8.1f} {theirs:8.1f} {ours / theirs:6.2f} "
                  f"{efficiency[0]:11.2f} {efficiency[1]:10.2f}")


if __name__ == "__main__":
    main()
