"""Convolutions in a loop body keep the layout XLA gives them at top level.

XLA's CPU compiler rewrites convolutions into its fast layout (NHWC input,
HWIO kernel, NHWC output) only in the entry computation; inside a `lax.scan`
body they keep the labels JAX wrote, and JAX's default derivatives of an NHWC
convolution are not canonical (jax-ml/jax#12868). These tests compile a
training step once at top level and once as a scan body and compare the
dimension labels of every convolution: a layout that only the top level gets
would mean the loop runs the slow path. They read compiled HLO, not timings.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jconv

CALLS_FORMATS = ("channels_last", "channels_first")
# The layout XLA's CPU fast path takes, in HLO's dimension-label spelling.
CANONICAL = "b01f_01io->b01f"

# name: (function, its arguments, input NHWC, kernel)
CALLS = {
    "conv2d": (jconv.conv2d, dict(padding="same"), (6, 8, 8, 4), (3, 3, 4, 5)),
    "conv2d_strided_dilated": (
        jconv.conv2d,
        dict(strides=2, dilation_rate=2, padding="same"),
        (6, 9, 9, 4),
        (3, 3, 4, 5),
    ),
    "grouped": (jconv.conv2d, dict(groups=2), (6, 8, 8, 4), (3, 3, 2, 6)),
    "depthwise": (
        jconv.depthwise_conv2d,
        dict(padding="same"),
        (6, 8, 8, 4),
        (3, 3, 4, 2),
    ),
    "conv2d_transpose": (
        jconv.conv2d_transpose,
        dict(strides=2, padding="same"),
        (6, 5, 5, 4),
        (3, 3, 5, 4),
    ),
}


def _labels(hlo_text):
    return sorted(set(re.findall(r"dim_labels=([^,\s]+)", hlo_text)))


def _compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile().as_text()


def _arrays(x_shape, k_shape, data_format, dtype):
    rng = np.random.default_rng(0)
    if data_format == "channels_first":
        x_shape = (x_shape[0], x_shape[3], *x_shape[1:3])
    x = jnp.asarray(rng.standard_normal(x_shape), dtype)
    k = jnp.asarray(rng.standard_normal(k_shape), dtype)
    return x, k


def _layouts(name, data_format, dtype, impl="lax"):
    """Labels of the top-level step's and of the scanned steps' convolutions."""
    call, kw, x_shape, k_shape = CALLS[name]
    x, k = _arrays(x_shape, k_shape, data_format, dtype)
    conv = functools.partial(call, **kw, data_format=data_format, impl=impl)

    def loss(x, k):
        return jnp.sum(conv(x, k).astype(jnp.float32) ** 2)

    step = jax.grad(loss, argnums=(0, 1))

    def steps(x, k):
        def body(k, _):
            gx, gk = step(x, k)
            return k - (1e-3 * gk).astype(k.dtype), gx.sum()

        return lax.scan(body, k, None, length=3)

    return _labels(_compiled(step, x, k)), _labels(_compiled(steps, x, k))


# Every call in both formats in float32; bfloat16 (the same tangents, other
# element types) on the dense and the grouped call.
LAYOUT_CASES = [
    *((name, fmt, "float32") for name in CALLS for fmt in CALLS_FORMATS),
    ("conv2d", "channels_last", "bfloat16"),
    ("grouped", "channels_first", "bfloat16"),
]


@pytest.mark.parametrize(("name", "data_format", "dtype"), LAYOUT_CASES)
def test_scan_body_has_the_top_level_layout(name, data_format, dtype):
    top, scanned = _layouts(name, data_format, dtype)
    assert scanned == top
    if name != "conv2d_transpose":
        assert scanned == [CANONICAL]
    else:
        # The input-dilated convolutions of a transposed convolution are not
        # on the fast path at top level either; XLA leaves them as they are.
        assert CANONICAL in scanned


def test_jax_default_derivatives_would_fail_this_check():
    """The check sees the problem it guards against: `lax.conv_general_dilated`
    differentiated by JAX leaves non-canonical convolutions in the loop body."""
    x, k = _arrays((6, 8, 8, 4), (3, 3, 4, 5), "channels_last", "float32")

    def loss(x, k):
        y = lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.sum(y**2)

    step = jax.grad(loss, argnums=(0, 1))

    def steps(x, k):
        return lax.scan(lambda k, _: (k - 1e-3 * step(x, k)[1], None), k, None, 3)

    top = _labels(_compiled(step, x, k))
    scanned = _labels(_compiled(steps, x, k))
    assert top == [CANONICAL]
    assert scanned != top


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_forward_mode_and_second_order_in_a_scan(data_format):
    """Forward-over-reverse (a Hessian-vector product) compiles and equals the
    one JAX computes from its own derivatives of the same convolution."""
    x, k = _arrays((2, 6, 6, 3), (3, 3, 3, 2), data_format, "float32")
    dims = "NCHW" if data_format == "channels_first" else "NHWC"

    def plain(x, k):
        return lax.conv_general_dilated(
            x,
            k,
            (1, 1),
            "SAME",
            dimension_numbers=(dims, "HWIO", dims),
            precision="highest",
        )

    def ours(x, k):
        return jconv.conv2d(
            x,
            k,
            padding="same",
            data_format=data_format,
            precision="highest",
            impl="lax",
        )

    def hvp(conv, x, k, v):
        grad = jax.grad(lambda k: jnp.sum(jnp.sin(conv(x, k))))
        return jax.jvp(grad, (k,), (v,))[1]

    v = jnp.ones_like(k)
    expected = hvp(plain, x, k, v)
    actual = jax.jit(hvp, static_argnums=0)(ours, x, k, v)
    # Same products summed by the same XLA convolutions in other layouts; the
    # bound is a few float32 ulps of the largest entry.
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)
