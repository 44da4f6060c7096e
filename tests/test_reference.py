"""lax, einsum and `"auto"` against the float64 NumPy loop reference (fft,
with its own bound: test_fft.py)."""

import functools

import pytest
from _data import conv_kwargs, make_arrays
from _grid import grid_params, sample, uncovered
from _tol import assert_matches_reference
from reference import reference_conv2d

import jconv

DEFAULT_CASES = sample(60, seed=1)
SLOW_CASES = sample(600, seed=2)


@pytest.mark.parametrize("case", grid_params(DEFAULT_CASES, SLOW_CASES))
def test_matches_reference(case, any_impl):
    x, kernel, bias = make_arrays(case)
    ours = functools.partial(jconv.conv2d, impl=any_impl)
    kw = conv_kwargs(case)
    assert_matches_reference(
        ours, reference_conv2d, x, kernel, bias, float64=True, **kw
    )


def test_default_grid_covers_every_value():
    assert uncovered(DEFAULT_CASES) == {}
