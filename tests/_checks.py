"""Checks that several test files run alike on a convolution: its derivatives
(`check_grads`), its transforms (jit, vmap, an unbatched call), and a
transposed convolution's adjoint property."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _tol import assert_sums_close
from jax.test_util import check_grads
from reference import reference_conv2d

import jconv


def check_grads_float64(f, args):
    """`check_grads` of `f` at `args` in float64 (x64 on, the arguments
    copied to float64): second order, forward and reverse mode."""
    with jax.enable_x64(True):
        args = tuple(a.astype(np.float64) for a in args)
        check_grads(f, args, order=2, modes=("fwd", "rev"))


def assert_batch_consistent(f, x, *, vmap=True):
    """`f` of a batch `x` of small integers, whose products and sums are exact
    in float32 (so the same bits whatever kernel XLA picks for each batch
    size): jitted, vmapped over the batch (with `vmap`) and on one unbatched
    image, the same as `f(x)`."""
    batched = f(x)
    np.testing.assert_array_equal(jax.jit(f)(x), batched)
    if vmap:
        np.testing.assert_array_equal(jax.vmap(f)(x), batched)
    np.testing.assert_array_equal(f(x[0]), batched[0])


def assert_adjoint(y, kernel, x_shape, impl, kwargs, conv_kwargs, close, terms):
    """In float64, both with `impl`: `conv2d_transpose(y, kernel, **kwargs)`
    is the VJP at `y` of `x -> conv2d(x, kernel, **conv_kwargs)` for `x` of
    `x_shape` (compared by `close(got, expected)`), and `<conv2d(x), y> ==
    <x, conv2d_transpose(y)>` for a standard-normal `x`, within
    `_tol.assert_sums_close`'s bound for sums of `terms` products."""
    with jax.enable_x64(True):
        y, kernel = y.astype(np.float64), kernel.astype(np.float64)
        x = np.random.default_rng(6).standard_normal(x_shape)

        def conv(x):
            return jconv.conv2d(x, kernel, impl=impl, **conv_kwargs)

        conv_x, vjp = jax.vjp(conv, x)
        assert conv_x.shape == y.shape
        (expected,) = vjp(y)
        got = jconv.conv2d_transpose(y, kernel, impl=impl, **kwargs)
        close(got, expected)
        magnitude = np.vdot(
            reference_conv2d(np.abs(x), np.abs(kernel), **conv_kwargs), np.abs(y)
        )
        assert_sums_close(
            jnp.vdot(conv_x, y), jnp.vdot(x, got), magnitude, terms, np.float64
        )
