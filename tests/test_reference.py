"""lax, einsum and `"auto"` against the float64 NumPy loop reference (fft,
with its own bound: test_fft.py)."""

import pytest
from _family import CONV2D
from _grid import grid_params, sample, uncovered

# Every value of every axis (asserted below) in 20 cases; 600 under `slow`.
DEFAULT_CASES = sample(20, seed=1)
SLOW_CASES = sample(600, seed=2)


@pytest.mark.parametrize("case", grid_params(DEFAULT_CASES, SLOW_CASES))
def test_matches_reference(case, any_impl):
    CONV2D.assert_matches_reference(case, any_impl, float64=True)


def test_default_grid_covers_every_value():
    assert uncovered(DEFAULT_CASES) == {}
