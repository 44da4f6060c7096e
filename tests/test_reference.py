"""Both implementations against the float64 NumPy loop reference."""

import jax
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from _grid import case_id, sample, uncovered
from _tol import assert_conv_close
from reference import reference_conv2d

import jconv

DEFAULT_CASES = sample(60, seed=1)
SLOW_CASES = sample(600, seed=2)


def _check(case, impl):
    x, kernel, bias = make_arrays(case)
    expected = reference_conv2d(x, kernel, bias, **conv_kwargs(case))
    y = jconv.conv2d(
        x, kernel, bias, precision="highest", impl=impl, **conv_kwargs(case)
    )
    assert y.dtype == np.float32
    kw = conv_kwargs(case)
    assert_conv_close(y, expected, reference_conv2d, x, kernel, bias, **kw)
    with jax.enable_x64(True):
        y64 = jconv.conv2d(
            x.astype(np.float64),
            kernel.astype(np.float64),
            None if bias is None else bias.astype(np.float64),
            impl=impl,
            **conv_kwargs(case),
        )
        assert y64.dtype == np.float64
        assert_conv_close(
            y64, expected, reference_conv2d, x, kernel, bias, dtype=np.float64, **kw
        )


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=case_id)
def test_matches_reference(case, impl):
    _check(case, impl)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES, ids=case_id)
def test_matches_reference_large_grid(case, impl):
    _check(case, impl)


def test_default_grid_covers_every_value():
    assert uncovered(DEFAULT_CASES) == {}
