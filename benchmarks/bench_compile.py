"""Compile time against graph size: ``an.Net(...)`` (sort, name, optimise, plan) and the first
``eval`` (which generates and compiles the tape's Python), for three shapes of graph.

    python benchmarks/bench_compile.py [--sizes 1000 10000 100000]

- chain: ``relu`` after ``relu`` (one step per layer);
- wide sum: ``exp(x * k)`` summed over k (one weighted sum of n terms after the optimiser);
- residual: ``y = 0.5 * y + 0.5 * relu(y)`` (three layers per block, the sums merged).

Printed: seconds per graph and microseconds per layer, so that growth faster than linear shows
as a rising per-layer figure. Absolute times depend on the machine; the shape of the curve is
the point.
"""

import argparse
import time

import numpy as np

import autonn as an
from autonn import nn


def chain(n):
    x = an.Input("x")
    y = x
    for _ in range(n):
        y = nn.relu(y)
    return x, y.sum()


def wide_sum(n):
    x = an.Input("x")
    terms = [np.exp(x * (k / n)) for k in range(n)]
    y = terms[0]
    for term in terms[1:]:
        y = y + term
    return x, y.sum()


def residual(n):
    x = an.Input("x")
    y = x
    for _ in range(n // 3):
        y = 0.5 * y + 0.5 * nn.relu(y)
    return x, y.sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    print(f"{'graph':<10} {'layers':>7} {'Net()':>9} {'per layer':>10} {'first eval':>11} "
          f"{'per layer':>10}")
    for make in (chain, wide_sum, residual):
        for n in args.sizes:
            x, objective = make(n)
            start = time.perf_counter()
            net = an.Net(objective, _name_from=False)
            compiled = time.perf_counter()
            net.eval({x: np.ones((1, 4), np.float32)})
            evaluated = time.perf_counter()
            compile_s, first_s = compiled - start, evaluated - compiled
            print(f"{make.__name__:<10} {n:>7} {compile_s:8.2f}s {1e6 * compile_s / n:8.1f}us "
                  f"{first_s:10.2f}s {1e6 * first_s / n:8.1f}us", flush=True)


if __name__ == "__main__":
    main()
