"""Gradients to second order, forward and reverse, for input, kernel and bias."""

import jax
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from jax.test_util import check_grads

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


@pytest.mark.parametrize("impl", ["lax", "einsum"])
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
    x, kernel, bias = make_arrays(case, batch=2)

    def loss(params, impl):
        x, kernel, bias = params
        y = jconv.conv2d(
            x, kernel, bias, impl=impl, precision="highest", **conv_kwargs(case)
        )
        return (y**2).sum()

    g_lax = jax.grad(loss)((x, kernel, bias), "lax")
    g_einsum = jax.grad(loss)((x, kernel, bias), "einsum")
    for a, b in zip(g_lax, g_einsum):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
