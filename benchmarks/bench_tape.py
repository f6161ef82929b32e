"""Per-op overhead of the compiled tape: Net.eval forward+backward on a chain of 200
elementwise ops (add, mul, relu/maximum, exp) on a 1×16 float32 array, against PyTorch eager
autograd on the same chain, measured in one run.

    python benchmarks/bench_tape.py          (needs: pip install -e ".[bench]")

Target: autonn's microseconds per op at most a third of PyTorch's.
"""

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import autonn as an  # noqa: E402

CHAIN = 200
SHAPE = (1, 16)
REPEATS = 300


def autonn_chain():
    x = an.Input("x")
    shift = np.full(SHAPE, 0.5, np.float32)
    scale = np.full(SHAPE, 0.25, np.float32)  # keeps exp(...) bounded along the chain
    y = x
    for i in range(CHAIN):
        kind = i % 4
        if kind == 0:
            y = y + shift
        elif kind == 1:
            y = y * scale
        elif kind == 2:
            y = np.maximum(y, 0)
        else:
            y = np.exp(y)
    return an.Net(y.sum())


def torch_chain(torch, x, shift, scale):
    y = x
    for i in range(CHAIN):
        kind = i % 4
        if kind == 0:
            y = y + shift
        elif kind == 1:
            y = y * scale
        elif kind == 2:
            y = torch.relu(y)
        else:
            y = torch.exp(y)
    y.sum().backward()


def best_time(run, repeats=REPEATS, rounds=5):
    """Best of several rounds of the mean time per call: the least disturbed measurement."""
    for _ in range(20):
        run()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def main():
    x = np.random.default_rng(0).uniform(-1, 0, SHAPE).astype(np.float32)
    net = autonn_chain()
    autonn_seconds = best_time(lambda: net.eval({"x": x}))
    ops = CHAIN + 1  # the chain and the final sum
    print(f"chain of {CHAIN} elementwise ops on {SHAPE} float32, forward+backward")
    print(f"autonn Net.eval : {autonn_seconds / ops * 1e6:7.2f} us per op")
    try:
        import torch
    except ImportError:
        print("PyTorch not installed (pip install -e '.[bench]'): no comparison")
        return
    torch.set_num_threads(2)
    tx = torch.tensor(x, requires_grad=True)
    shift, scale = torch.full(SHAPE, 0.5), torch.full(SHAPE, 0.25)
    torch_seconds = best_time(lambda: torch_chain(torch, tx, shift, scale))
    print(f"PyTorch eager   : {torch_seconds / ops * 1e6:7.2f} us per op")
    print(f"ratio autonn / PyTorch: {autonn_seconds / torch_seconds:.2f} (target <= 0.33)")


if __name__ == "__main__":
    main()
