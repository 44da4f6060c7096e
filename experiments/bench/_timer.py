"""The benchmark's one timer: every convolution and training run it reports is
timed here."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def stopwatch(fn: Callable, *args):
    """`(seconds, result)` of one call `fn(*args)`; `fn` must return only once
    its work is done (a JAX `block_until_ready`, a TensorFlow `.numpy()`).

    Example:
      >>> seconds, out = stopwatch(time.sleep, 0.01)
      >>> seconds >= 0.01 and out is None
      True
    """
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def median_seconds(fn: Callable, repeats: int, *, reset: Callable = lambda: None):
    """Median of `repeats` timed calls `fn()`, each after an untimed `reset()`."""
    times = []
    for _ in range(repeats):
        reset()
        times.append(stopwatch(fn)[0])
    return statistics.median(times)
