"""Gradients to second order, forward and reverse, for input, kernel and bias."""

import jax
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from _family import CONV2D
from _grid import AXES, table
from _tol import assert_sums_close, conv_terms
from reference import reference_conv2d

import jconv

CASES = table(
    AXES,
    # kernel, strides, dilation_rate, padding, groups, data_format, hw, bias
    ((3, 3), 1, 1, "valid", 1, "channels_last", (5, 5), True),
    ((2, 3), 2, 2, "same", 2, "channels_first", (7, 6), True),
    ((4, 4), (2, 1), 1, ((1, 2), (0, 1)), 2, "channels_last", (6, 5), True),
)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_check_grads(case, impl):
    CONV2D.check_grads(case, impl, batch=1, c_in=2, c_out=4)


def test_grads_agree_between_impls():
    case = CASES[1]
    x, kernel, bias = (a.astype(np.float64) for a in make_arrays(case, batch=2))

    def loss(params, impl):
        x, kernel, bias = params
        y = jconv.conv2d(x, kernel, bias, impl=impl, **conv_kwargs(case))
        return (y**2).sum()

    with jax.enable_x64(True):
        g_lax = jax.grad(loss)((x, kernel, bias), "lax")
        g_einsum = jax.grad(loss)((x, kernel, bias), "einsum")
    # Scalar float64 bound: every gradient element sums at most `terms` products
    # 2*y*(x or kernel or 1), y from sums of conv_terms products, |y| <= y_max.
    absolute = reference_conv2d(
        np.abs(x), np.abs(kernel), np.abs(bias), **conv_kwargs(case)
    )
    y_max = absolute.max()
    kh, kw, _, c_out = kernel.shape
    n_out = absolute.size // c_out
    terms = max(n_out, kh * kw * c_out) + conv_terms(kernel, bias=bias)
    factor = max(np.abs(x).max(), np.abs(kernel).max(), 1.0)
    magnitude = 2 * y_max * factor * max(n_out, kh * kw * c_out)
    for a, b in zip(g_lax, g_einsum, strict=True):
        assert_sums_close(a, b, magnitude, terms, np.float64)
