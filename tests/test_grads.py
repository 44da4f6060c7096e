"""Gradients to second order, forward and reverse, for input, kernel and bias."""

import jax
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from _tol import assert_sums_close, conv_terms
from jax.test_util import check_grads
from reference import reference_conv2d

import jconv

CASES = [
    dict(
        kernel=(3, 3),
        strides=1,
        dilation_rate=1,
        padding="valid",
        groups=1,
        data_format="channels_last",
        hw=(5, 5),
        bias=True,
    ),
    dict(
        kernel=(2, 3),
        strides=2,
        dilation_rate=2,
        padding="same",
        groups=2,
        data_format="channels_first",
        hw=(7, 6),
        bias=True,
    ),
    dict(
        kernel=(4, 4),
        strides=(2, 1),
        dilation_rate=1,
        padding=((1, 2), (0, 1)),
        groups=2,
        data_format="channels_last",
        hw=(6, 5),
        bias=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_check_grads(case, impl):
    x, kernel, bias = make_arrays(case, batch=1, c_in=2, c_out=4)
    with jax.enable_x64(True):
        x, kernel, bias = (a.astype(np.float64) for a in (x, kernel, bias))

        def f(x, kernel, bias):
            return jconv.conv2d(x, kernel, bias, impl=impl, **conv_kwargs(case))

        check_grads(f, (x, kernel, bias), order=2, modes=("fwd", "rev"))


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
