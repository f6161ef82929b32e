"""Two source trees of autonn side by side: did a change make anything slower?

    python benchmarks/bench_revisions.py BEFORE_TREE [AFTER_TREE] [--rounds 3]

Each tree is a checkout with its CPU library built in place (``git worktree add /tmp/before
REV && cd /tmp/before && python kernels/build_cpu.py``); AFTER_TREE defaults to this checkout.
The same workloads, written against the public API only, run in a fresh process per tree and
round, the trees alternating, so a burst of load on a shared machine hits both alike. Printed:
each workload's time ratio after ÷ before per round (below 1 is faster), and its range.

Workloads: the tape's per-op overhead (a chain of 200 small element-wise ops, forward and
backward, as bench_tape.py), a LeNet training step at batch 100 (as bench_lenet.py), a VGG 3×3
conv layer's forward and its backward, compiling a 100-block chain, and the first evaluation of one net
after another net was compiled (which regenerated every net's code when the edit counter was
shared by all tapes).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import numpy as np
import autonn as an
from autonn import nn
import bench_tape
from timing import best_times

assert os.path.dirname(an.__file__).startswith(os.path.realpath(sys.argv[1])), an.__file__


def tape_chain():
    net = bench_tape.autonn_chain()        # the chain bench_tape.py measures
    x = np.random.default_rng(0).uniform(-1, 0, bench_tape.SHAPE).astype(np.float32)
    feed = {"x": x}
    return lambda: net.eval(feed)


def lenet_step():
    model = an.models.lenet(seed=0)
    net = an.Net(model["objective"])
    rng = np.random.default_rng(0)
    feed = {model["images"]: rng.standard_normal((100, 1, 28, 28), dtype=np.float32),
            model["labels"]: rng.integers(0, 10, size=100)}
    return lambda: net.eval(feed)


def vgg_conv():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32) * 0.05
    b = np.zeros(64, np.float32)
    dy = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)

    return (lambda: nn.conv(x, w, b, pad=1)), (lambda: nn.conv(x, w, b, pad=1, dzdy=dy))


def chain(n):
    x = an.Input("x")
    y = x
    for _ in range(n):
        y = nn.relu(y) * 0.5 + 0.1
    return y


def compile_chain():
    return lambda: an.Net(chain(100), _name_from=False)


def eval_after_other_compile():
    net = an.Net(chain(100), _name_from=False)
    feed = {"x": np.ones((2, 3), np.float32)}
    net.eval(feed)
    other = chain(5)

    def run():
        an.Net(other, _name_from=False)      # unrelated compile...
        start = time.perf_counter()
        net.eval(feed)                      # ...then this net's first eval
        return time.perf_counter() - start
    return run


vgg_forward, vgg_backward = vgg_conv()
cases = {"tape chain": tape_chain(), "LeNet step": lenet_step(), "VGG conv forward": vgg_forward,
         "VGG conv backward": vgg_backward, "compile 100 blocks": compile_chain()}
times = dict(zip(cases, best_times(*cases.values(), rounds=3)))
run = eval_after_other_compile()
times["eval after another compile"] = min(run() for _ in range(50))
print(json.dumps(times))
"""


def measure(tree):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    # glibc raises its mmap threshold as the process frees large blocks, so whether a fresh
    # 6 MB array is page-faulted anew on every call depends on what the process did before:
    # that alone moved the VGG backward by 15-25% between two identical kernels. Fixed
    # thresholds give both trees the same allocator.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(64 * 2**20))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(128 * 2**20))
    result = subprocess.run([sys.executable, "-c", WORKER, os.path.abspath(tree), HERE],
                            capture_output=True, text=True, env=env, cwd=HERE)
    if result.returncode != 0:
        raise SystemExit(f"bench_revisions: the workloads failed in {tree}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default=os.path.dirname(HERE))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios = {}
    for round_ in range(args.rounds):
        # which tree goes first alternates too: a process started right after another one
        # may find the caches or the host in another state
        if round_ % 2:
            after, before = measure(args.after), measure(args.before)
        else:
            before, after = measure(args.before), measure(args.after)
        for case in before:
            ratios.setdefault(case, []).append(after[case] / before[case])
    print(f"after ÷ before, {args.rounds} rounds (below 1: faster); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'':<28} {'median':>6}  range")
    for case, values in ratios.items():
        listing = " ".join(f"{v:.2f}" for v in values)
        print(f"  {case:<28} {statistics.median(values):6.2f}  {min(values):.2f}–{max(values):.2f}"
              f"   ({listing})")


if __name__ == "__main__":
    main()
