"""Convolution and pooling speed: autonn against PyTorch (CPU) and NumPy's sgemm, 2 threads each.

    python benchmarks/bench_conv.py [--repeat 4] [--threads 2] [--quick]

For each case: forward and forward+backward GFLOP/s of autonn and PyTorch (same inputs, float32,
NCHW), their ratio, and the GFLOP/s NumPy's matmul (2 threads, into a preallocated output)
reaches on the GEMM of one batch chunk, filters (K, C/G*kh*kw) times the chunk's patch matrix
(C*kh*kw, n*Ho*Wo), n the images whose patches fit in autonn's chunk buffer, with autonn's
forward as a fraction of it. (The forward of all but ResNet's 1x1 layer runs no GEMM: the direct
kernel of kernels/conv_direct.h computes it; the sgemm on the conv's own GEMM shape is the
yardstick of what im2col + GEMM could reach at best.)
Forward FLOPs are 2*N*K*Ho*Wo*C/G*kh*kw; the backward computes dx and dw, twice more.
Pooling reports milliseconds (its work is memory traffic, not FLOPs).

Times are the best of ``--repeat`` calls in a row, in five rounds alternating between autonn,
PyTorch and the sgemm (benchmarks/timing.py).
"""

import argparse
import os

from timing import best_times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller batches (a smoke test)")
    args = parser.parse_args()
    # Thread counts must be set before NumPy (OpenBLAS), OpenMP and PyTorch start their pools.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    # autonn first: it loads the OpenMP runtime with OMP_WAIT_POLICY=PASSIVE (see
    # kernels/README.md), and PyTorch then shares that runtime (PyTorch's own times did not
    # change with the policy when we measured).
    from autonn import nn
    from autonn.nn import convolution, convolution_schedules   # the geometry, the chunking rule

    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    scale = 4 if args.quick else 1
    # name, N, C, H, K, k, stride, pad
    cases = [("LeNet conv1", 100, 1, 28, 20, 5, 1, 0),
             ("LeNet conv2", 100, 20, 12, 50, 5, 1, 0),
             ("VGG 3x3", 16, 64, 56, 64, 3, 1, 1),
             ("ResNet 1x1", 16, 256, 56, 64, 1, 1, 0),
             ("stem 7x7 s2", 32, 3, 224, 64, 7, 2, 3)]
    rng = np.random.default_rng(0)

    # Other work on the machine slows the multi-phase autonn pipeline (kernel, GEMM, kernel) more
    # than PyTorch's single kernels: read the ratios together with the load.
    print(f"autonn vs PyTorch {torch.__version__} (CPU), {args.threads} threads, float32, "
          f"best of 5 rounds of {args.repeat}; load average before: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    header = (f"{'case':<13} {'fwd GF/s':>9} {'torch':>7} {'ratio':>6} | {'f+b GF/s':>9} "
              f"{'torch':>7} {'ratio':>6} | {'sgemm':>7} {'fwd/sgemm':>9}")
    print(header)
    print("-" * len(header))
    for name, N, C, H, K, k, stride, pad in cases:
        N = max(1, N // scale)
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        w = (rng.standard_normal((K, C, k, k), dtype=np.float32) * 0.1)
        b = rng.standard_normal(K, dtype=np.float32)
        y = nn.conv(x, w, b, stride=stride, pad=pad)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        Ho, Wo = y.shape[2:]
        flops = 2.0 * N * K * Ho * Wo * C * k * k

        def ours_forward():
            nn.conv(x, w, b, stride=stride, pad=pad)

        def ours_both():
            nn.conv(x, w, b, stride=stride, pad=pad)
            nn.conv(x, w, b, stride=stride, pad=pad, dzdy=dy)

        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.from_numpy(w).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_forward():
            with torch.no_grad():
                F.conv2d(tx, tw, tb, stride=stride, padding=pad)

        def torch_both():
            tx.grad = tw.grad = tb.grad = None
            F.conv2d(tx, tw, tb, stride=stride, padding=pad).backward(tdy)

        # The GEMM of one chunk: (K, C*k*k) x (C*k*k, n*Ho*Wo).
        geometry = convolution.conv_geometry("conv", x, w, b, stride, pad, 1)
        chunk = convolution_schedules._chunks(geometry, 4)[0][1]
        gemm_a = rng.standard_normal((K, C * k * k), dtype=np.float32)
        gemm_b = rng.standard_normal((C * k * k, chunk * Ho * Wo), dtype=np.float32)
        gemm_out = np.empty((K, chunk * Ho * Wo), np.float32)
        times = best_times(ours_forward, torch_forward, ours_both, torch_both,
                           lambda: np.matmul(gemm_a, gemm_b, out=gemm_out), repeat=args.repeat)
        fwd, fwd_torch = flops / times[0] / 1e9, flops / times[1] / 1e9
        both, both_torch = 3 * flops / times[2] / 1e9, 3 * flops / times[3] / 1e9
        sgemm = 2.0 * K * C * k * k * chunk * Ho * Wo / times[4] / 1e9
        print(f"{name:<13} {fwd:9.1f} {fwd_torch:7.1f} {fwd / fwd_torch:6.2f} | {both:9.1f} "
              f"{both_torch:7.1f} {both / both_torch:6.2f} | {sgemm:7.1f} {fwd / sgemm:9.2f}")

    # Max pooling 2x2, stride 2, on a VGG-sized map.
    x = rng.standard_normal((max(1, 16 // scale), 64, 112, 112), dtype=np.float32)
    dy = rng.standard_normal((x.shape[0], 64, 56, 56), dtype=np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)

    def torch_pool_forward():
        with torch.no_grad():
            F.max_pool2d(tx, 2, 2)

    def torch_pool_both():
        tx.grad = None
        F.max_pool2d(tx, 2, 2).backward(torch.from_numpy(dy))

    forward, forward_torch, both, both_torch = best_times(
        lambda: nn.pool(x, 2, stride=2), torch_pool_forward,
        lambda: (nn.pool(x, 2, stride=2), nn.pool(x, 2, stride=2, dzdy=dy)), torch_pool_both,
        repeat=args.repeat)
    print(f"{'maxpool 2x2':<13} {forward * 1e3:7.2f}ms {forward_torch * 1e3:5.2f}ms "
          f"{forward_torch / forward:6.2f} | {both * 1e3:7.2f}ms {both_torch * 1e3:5.2f}ms "
          f"{both_torch / both:6.2f} |   (x {x.shape}; ratio = torch time / autonn time)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
