"""The timing rule every benchmark here shares."""

import time


def best_times(*functions, rounds=5, repeat=5):
    """The best time of each function (seconds).

    In each of ``rounds`` rounds every function runs once untimed, then ``repeat`` times in a
    row, timed. Runs in a row measure a function's steady state: the threads that the previous
    function's library left spinning (OpenBLAS's, PyTorch's) have settled by the second call.
    The rounds alternate between the functions, so that a burst of load on a shared machine
    hits them alike.
    """
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, function in enumerate(functions):
            function()
            for _ in range(repeat):
                start = time.perf_counter()
                function()
                best[k] = min(best[k], time.perf_counter() - start)
    return best
