"""Convolution configurations shared by the grid tests.

The full product is large; by default a fixed-seed sample that still covers
every value runs, and the `slow` mark runs a much larger one.
"""

from __future__ import annotations

import itertools
import random

# Every value of every axis; strides/dilations include unequal pairs.
AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (2, 3)],
    "strides": [1, 2, 3, (1, 2)],
    "dilation_rate": [1, 2, 3, (2, 1)],
    "padding": ["valid", "same", 1, (2, 0), ((0, 2), (1, 0))],
    "groups": [1, 2],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(7, 7), (8, 8), (8, 7)],
    "bias": [False, True],
}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _explicit(padding):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return None  # always fits
    if isinstance(padding, int):
        return ((padding, padding),) * 2
    if isinstance(padding[0], int):
        return ((padding[0],) * 2, (padding[1],) * 2)
    return padding


def fits(case) -> bool:
    """Whether the dilated kernel fits in the padded input."""
    pads = _explicit(case["padding"])
    if pads is None:
        return True
    k, d = case["kernel"], _pair(case["dilation_rate"])
    return all(
        size + lo + hi >= (kk - 1) * dd + 1
        for size, (lo, hi), kk, dd in zip(case["hw"], pads, k, d)
    )


def all_cases():
    cases = [dict(zip(AXES, values)) for values in itertools.product(*AXES.values())]
    return [c for c in cases if fits(c)]


def sample(n: int, seed: int = 0, keras_only: bool = False):
    cases = all_cases()
    if keras_only:
        # Keras refuses strides > 1 together with dilation > 1, and explicit pads.
        cases = [
            c
            for c in cases
            if c["padding"] in ("valid", "same")
            and (_pair(c["strides"]) == (1, 1) or _pair(c["dilation_rate"]) == (1, 1))
        ]
    return random.Random(seed).sample(cases, min(n, len(cases)))


def case_id(case) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()).replace(" ", "")
