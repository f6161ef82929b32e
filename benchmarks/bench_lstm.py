"""An LSTM layer over a sequence, forward and forward+backward: autonn's ``nn.lstm`` steps
unrolled into one ``an.Net`` against PyTorch's ``nn.LSTM`` (CPU), 2 threads each, float32,
measured side by side in one run.

    python benchmarks/bench_lstm.py [--batch 64] [--hidden 256] [--input 256] [--steps 100]

autonn: T Inputs x_t (N, m), T calls of ``nn.lstm`` sharing one W (4d, m + d) and b (4d,), from
zero states, and the sum of every hidden state as the objective; ``Net.eval`` computes it and
the derivatives of W, b and every x_t (mode 'forward' for the forward alone). PyTorch: the same
sequence as one (T, N, m) tensor (requires_grad, so that its derivative is computed too)
through ``nn.LSTM(m, d)``, ``out.sum().backward()`` (under ``torch.no_grad()`` for the forward
alone). Neither updates its parameters. Times are the best of ``--repeat`` calls in a row, in
five rounds alternating between the two (benchmarks/timing.py).
"""

import argparse
import os

from timing import best_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy as np
    import autonn as an          # before torch: it sets OpenMP's wait policy (kernels/README.md)
    import torch
    from autonn import nn

    torch.set_num_threads(args.threads)
    N, d, m, T = args.batch, args.hidden, args.input, args.steps
    rng = np.random.default_rng(0)
    sequence = rng.standard_normal((T, N, m), dtype=np.float32)

    inputs = [an.Input(name=f"x{t}") for t in range(T)]
    W, b = nn.lstm_params(d, m, rng=np.random.default_rng(1))
    h = c = np.zeros((N, d), np.float32)
    states = []
    for x in inputs:
        h, c = nn.lstm(x, h, c, W, b)
        states.append(h)
    objective = np.concatenate(states, axis=0).sum()
    net = an.Net(objective)
    feed = {x.name: sequence[t] for t, x in enumerate(inputs)}

    torch.manual_seed(0)
    layer = torch.nn.LSTM(m, d)
    t_sequence = torch.from_numpy(sequence).requires_grad_(True)
    # the same weights (PyTorch's gates are [i; f; g; o], AutoNN's [i; f; o; g]): both compute
    # the same sequence, checked once before the timing
    order = np.concatenate([np.arange(2 * d), np.arange(3 * d, 4 * d), np.arange(2 * d, 3 * d)])
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(W.value[order, :m]))
        layer.weight_hh_l0.copy_(torch.from_numpy(W.value[order, m:]))
        layer.bias_ih_l0.copy_(torch.from_numpy(b.value[order]))
        layer.bias_hh_l0.zero_()
        expected = layer(t_sequence)[0].sum().item()
    net.eval(feed, mode="forward")
    got = float(net.value(objective))
    if abs(got - expected) > 1e-3 * max(1.0, abs(expected)):
        raise SystemExit(f"bench_lstm: autonn's sum {got} differs from PyTorch's {expected}")

    def ours_forward():
        net.eval(feed, mode="forward")

    def ours():
        net.eval(feed)

    def theirs_forward():
        with torch.no_grad():
            layer(t_sequence)

    def theirs():
        layer.zero_grad(set_to_none=True)
        t_sequence.grad = None
        out, _ = layer(t_sequence)
        out.sum().backward()

    flops = 2 * T * N * (m + d) * 4 * d       # the forward's GEMMs; the backward has two more
    print(f"LSTM layer, batch {N}, {d} hidden units, {m} inputs, {T} steps: autonn vs PyTorch "
          f"{torch.__version__} (CPU), {args.threads} threads, float32, best of 5 rounds of "
          f"{args.repeat}; load average before: {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    print(f"{'pass':>16} {'autonn ms':>10} {'torch ms':>9} {'ratio':>6} {'autonn GF/s':>12}")
    for what, pair, work in (("forward", (ours_forward, theirs_forward), flops),
                             ("forward+backward", (ours, theirs), 3 * flops)):
        best = best_times(*pair, repeat=args.repeat)
        print(f"{what:>16} {1e3 * best[0]:10.1f} {1e3 * best[1]:9.1f} {best[1] / best[0]:6.2f} "
              f"{work / best[0] / 1e9:12.1f}")
    print("(ratio = PyTorch's time / autonn's)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
