"""The one sampler for the grid tests, and `conv2d`'s grid.

A grid is a dict of axes (every value each setting takes) and a predicate for
the combinations jconv accepts. The full product is large; by default a
fixed-seed sample that still covers every value runs, and the `slow` mark runs
a much larger one.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import NamedTuple

import pytest

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


def pair(v):
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
    k, d = case["kernel"], pair(case["dilation_rate"])
    return all(
        size + lo + hi >= (kk - 1) * dd + 1
        for size, (lo, hi), kk, dd in zip(case["hw"], pads, k, d)
    )


def keras_accepts(case) -> bool:
    """Keras takes "valid"/"same" only, and never strides > 1 with dilation > 1."""
    return case["padding"] in ("valid", "same") and (
        pair(case["strides"]) == (1, 1) or pair(case["dilation_rate"]) == (1, 1)
    )


def sample(n: int, seed: int = 0, keras_only: bool = False, *, axes=AXES, valid=fits):
    """`n` of the valid cases of the grid `axes` (all of them if fewer), the
    same ones for the same seed; `keras_only` keeps those Keras accepts."""
    cases = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    cases = [c for c in cases if valid(c) and (keras_accepts(c) or not keras_only)]
    return random.Random(seed).sample(cases, min(n, len(cases)))


def uncovered(cases, axes=AXES) -> dict:
    """The values of each axis that no case takes (empty: every value is covered)."""
    missing = {}
    for key, values in axes.items():
        seen = {repr(case[key]) for case in cases}
        left = [v for v in values if repr(v) not in seen]
        if left:
            missing[key] = left
    return missing


def table(axes, *rows) -> list[dict]:
    """Hand-written cases, one a row: the values of `axes`' keys, in order."""
    return [dict(zip(axes, row, strict=True)) for row in rows]


def case_id(case) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()).replace(" ", "")


def grid_params(default, slow):
    """The one parametrization of a grid test: `default` cases unmarked, `slow`
    ones marked `slow` with ids prefixed `large_grid-`, so `-m "not slow"` runs
    exactly the default sample and `-m slow` exactly the large one."""
    return [pytest.param(c, id=case_id(c)) for c in default] + [
        pytest.param(c, id=f"large_grid-{case_id(c)}", marks=pytest.mark.slow)
        for c in slow
    ]


class Grid(NamedTuple):
    """A test module's grid: the values of each axis and the predicate for the
    combinations jconv accepts; `Grid()` is `conv2d`'s."""

    axes: dict = AXES
    valid: Callable = fits

    def sample(self, n: int, seed: int = 0, keras_only: bool = False):
        """`sample` of this grid."""
        return sample(n, seed, keras_only, axes=self.axes, valid=self.valid)

    def reference_tests(self, check, default, slow):
        """The two tests every grid module has, for it to bind to their names:
        `test_default_grid_covers_every_value`, that the `default` cases take
        every value of every axis, and `test_matches_reference(case, impl)`,
        `check(case, impl)` on each `default` case and, marked `slow`, each
        `slow` one (`grid_params`)."""

        def test_default_grid_covers_every_value():
            assert uncovered(default, self.axes) == {}

        @pytest.mark.parametrize("case", grid_params(default, slow))
        def test_matches_reference(case, impl):
            check(case, impl)

        return test_default_grid_covers_every_value, test_matches_reference
