"""Speed of the Blocks II blocks against PyTorch (CPU), in the same process and thread count.

    python benchmarks/bench_blocks.py [--threads 2] [--repeat 5]

For each case prints the best time of autonn and of PyTorch and the ratio
``torch time / autonn time`` (>= 1: autonn is faster; the target is >= 0.9): the best of
``repeat`` calls in a row, in five rounds alternating between the two (benchmarks/timing.py). Forward+backward
cases run the forward and then the derivative with respect to the input, as a training step
does. PyTorch's LRN divides alpha by the window size, so it is given ``alpha * depth`` to compute
the same function.
"""

import argparse
import os

from timing import best_times


def cases(np, torch, nn):
    rng = np.random.default_rng(0)
    F = torch.nn.functional

    def tensor(a, grad=False):
        t = torch.from_numpy(a)
        return t.requires_grad_(grad)

    def torch_step(forward, *inputs):
        def run():
            for t in inputs:
                t.grad = None
            out = forward(*inputs)
            out.backward(torch.ones_like(out) if out.dim() else None)
        return run

    x = rng.standard_normal((32, 64, 56, 56)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    tx = tensor(x)
    yield ("relu forward (32,64,56,56)", lambda: nn.relu(x), lambda: F.relu(tx))

    tx_grad = tensor(x.copy(), True)
    # What a tape runs: the forward, then the backward reading the output.
    relu_backward = nn.activation.relu_backward
    yield ("relu forward+backward",
           lambda: relu_backward(None, dy, y=nn.relu(x)), torch_step(F.relu, tx_grad))

    param = (5, 2.0, 1e-4, 0.75)
    lrn_x = rng.standard_normal((16, 96, 27, 27)).astype(np.float32)
    lrn_dy = rng.standard_normal(lrn_x.shape).astype(np.float32)
    t_lrn = tensor(lrn_x)
    yield ("LRN depth 5 forward (16,96,27,27)", lambda: nn.normalize(lrn_x, param),
           lambda: F.local_response_norm(t_lrn, 5, alpha=param[2] * 5, beta=param[3],
                                         k=param[1]))
    t_lrn_grad = tensor(lrn_x.copy(), True)
    yield ("LRN depth 5 forward+backward",
           lambda: (nn.normalize(lrn_x, param), nn.normalize(lrn_x, param, dzdy=lrn_dy)),
           torch_step(lambda t: F.local_response_norm(t, 5, alpha=param[2] * 5, beta=param[3],
                                                      k=param[1]), t_lrn_grad))

    bn_x = rng.standard_normal((32, 64, 28, 28)).astype(np.float32)
    bn_dy = rng.standard_normal(bn_x.shape).astype(np.float32)
    g = np.ones(64, np.float32)
    b = np.zeros(64, np.float32)
    tg, tb = tensor(g.copy(), True), tensor(b.copy(), True)
    t_bn = tensor(bn_x)
    yield ("bnorm forward (32,64,28,28)", lambda: nn.bnorm(bn_x, g, b),
           lambda: F.batch_norm(t_bn, None, None, tg.detach(), tb.detach(), training=True,
                                eps=1e-4))
    t_bn_grad = tensor(bn_x.copy(), True)
    yield ("bnorm forward+backward",
           lambda: (nn.bnorm(bn_x, g, b), nn.bnorm(bn_x, g, b, dzdy=bn_dy)),
           torch_step(lambda t, w, c: F.batch_norm(t, None, None, w, c, training=True,
                                                   eps=1e-4), t_bn_grad, tg, tb))

    scores = rng.standard_normal((100, 1000, 1, 1)).astype(np.float32)
    labels = rng.integers(0, 1000, size=100)
    t_scores = tensor(scores.reshape(100, 1000).copy(), True)
    t_labels = torch.from_numpy(labels)
    yield ("softmaxloss fwd+bwd (100,1000,1,1)",
           lambda: (nn.softmaxloss(scores, labels), nn.softmaxloss(scores, labels, dzdy=1.0)),
           torch_step(lambda t: F.cross_entropy(t, t_labels, reduction="sum") / 100, t_scores))

    seg = rng.standard_normal((8, 21, 64, 64)).astype(np.float32)
    seg_labels = rng.integers(-1, 21, size=(8, 64, 64))
    t_seg = tensor(seg.copy(), True)
    t_seg_labels = torch.from_numpy(seg_labels)
    yield ("softmaxloss fwd+bwd (8,21,64,64) seg",
           lambda: (nn.softmaxloss(seg, seg_labels), nn.softmaxloss(seg, seg_labels, dzdy=1.0)),
           torch_step(lambda t: F.cross_entropy(t, t_seg_labels, ignore_index=-1,
                                                reduction="sum") / 8, t_seg))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # Both libraries get the same threads: OpenMP (autonn kernels, PyTorch) and BLAS.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy as np

    from autonn import kernels, nn
    # Load the kernel library (and its OpenMP settings, see kernels/README.md) before PyTorch
    # starts its own OpenMP runtime, so that both run under the same wait policy.
    kernels.cpu_library()
    import torch
    torch.set_num_threads(args.threads)
    print(f"autonn vs PyTorch {torch.__version__} (CPU, {args.threads} threads), best of 5 "
          f"rounds of {args.repeat}")
    print(f"{'case':40s} {'autonn ms':>10s} {'torch ms':>10s} {'ratio':>7s}")
    for name, ours, theirs in cases(np, torch, nn):
        t_ours, t_theirs = best_times(ours, theirs, repeat=args.repeat)
        print(f"{name:40s} {1e3 * t_ours:10.2f} {1e3 * t_theirs:10.2f} "
              f"{t_theirs / t_ours:7.2f}")


if __name__ == "__main__":
    main()
