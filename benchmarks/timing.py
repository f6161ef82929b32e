"""The timing rule every benchmark here shares."""

import time


def best_times(*functions, rounds=5, repeat=5, warmup=0.3):
    """The best time of each function (seconds).

    First each function runs for about ``warmup`` seconds, untimed: the first tens of
    milliseconds of a burst of work run slowly on a virtual machine (we measured LeNet's first
    convolutions at half their later speed), and would otherwise fall on the first case
    measured. Then, in each of ``rounds`` rounds, every function runs once untimed, then
    ``repeat`` times in a row, timed. Runs in a row measure a function's steady state: the threads that the previous
    function's library left spinning (OpenBLAS's, PyTorch's) have settled by the second call.
    The rounds alternate between the functions, so that a burst of load on a shared machine
    hits them alike.
    """
    for function in functions:
        start = time.perf_counter()
        while time.perf_counter() - start < warmup:
            function()
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, function in enumerate(functions):
            function()
            for _ in range(repeat):
                start = time.perf_counter()
                function()
                best[k] = min(best[k], time.perf_counter() - start)
    return best
