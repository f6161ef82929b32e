"""The timing rule every benchmark here shares."""

import time


def best_times(*functions, rounds=5, repeat=5, warmup=0.3, settle=0.2):
    """The best time of each function (seconds).

    First each function runs for about ``warmup`` seconds, untimed: the first tens of
    milliseconds of a burst of work run slowly on a virtual machine (we measured LeNet's first
    convolutions at half their later speed), and would otherwise fall on the first case
    measured. Then, in each of ``rounds`` rounds, every function in turn runs untimed for
    about ``settle`` seconds (at least once), then ``repeat`` times in a row, timed. The untimed
    runs let the threads that the previous function's library left spinning go idle
    (OpenBLAS's spin for about a tenth of a second after each product, and slowed autonn's
    OpenMP kernels that ran next by a third), without leaving the cores idle either (after a
    pause, LeNet's layers ran at half speed again); the calls in a row measure the function's
    steady state. The rounds alternate between the functions, so that a burst of load on a
    shared machine hits them alike.
    """
    for function in functions:
        start = time.perf_counter()
        while time.perf_counter() - start < warmup:
            function()
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, function in enumerate(functions):
            start = time.perf_counter()
            function()
            while time.perf_counter() - start < settle:
                function()
            for _ in range(repeat):
                start = time.perf_counter()
                function()
                best[k] = min(best[k], time.perf_counter() - start)
    return best
