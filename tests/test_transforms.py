"""jit, vmap, unbatched input, dtypes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import reference_conv2d

import jconv

IMPLS = ["lax", "einsum"]


def _arrays(seed=0, shape=(3, 9, 8, 4), k_shape=(3, 2, 4, 6)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    bias = rng.standard_normal(k_shape[-1]).astype(np.float32)
    return x, kernel, bias


@pytest.mark.parametrize("impl", IMPLS)
def test_jit_with_static_configuration(impl):
    x, kernel, bias = _arrays()
    f = jax.jit(
        jconv.conv2d,
        static_argnames=("strides", "padding", "dilation_rate", "impl", "precision"),
    )
    y = f(
        x,
        kernel,
        bias,
        strides=2,
        padding=((1, 0), (2, 1)),
        impl=impl,
        precision="highest",
    )
    expected = reference_conv2d(x, kernel, bias, strides=2, padding=((1, 0), (2, 1)))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_jit_of_closure_equals_eager(impl):
    x, kernel, bias = _arrays(1)
    f = functools.partial(jconv.conv2d, padding="same", dilation_rate=2, impl=impl)
    np.testing.assert_array_equal(jax.jit(f)(x, kernel, bias), f(x, kernel, bias))


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_over_kernels_and_images(impl):
    x, kernel, _ = _arrays(2)
    kernels = np.stack([kernel, 2 * kernel, -kernel])
    f = functools.partial(jconv.conv2d, impl=impl, precision="highest")
    # One kernel per image: vmap over both leading axes.
    y = jax.vmap(lambda xi, ki: f(xi, ki))(x, kernels)
    for i in range(3):
        np.testing.assert_allclose(
            y[i], reference_conv2d(x[i], kernels[i]), rtol=1e-5, atol=1e-5
        )
    # vmap over an extra leading axis of batched input.
    y2 = jax.vmap(f, in_axes=(0, None))(np.stack([x, x]), kernel)
    assert y2.shape == (2, 3, 7, 7, 6)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_unbatched_input_gives_unbatched_output(impl, data_format):
    x, kernel, bias = _arrays(3)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    y = jconv.conv2d(
        x[0],
        kernel,
        bias,
        impl=impl,
        data_format=data_format,
        strides=(2, 1),
        padding="same",
    )
    batched = jconv.conv2d(
        x,
        kernel,
        bias,
        impl=impl,
        data_format=data_format,
        strides=(2, 1),
        padding="same",
    )
    assert y.shape == batched.shape[1:]
    np.testing.assert_array_equal(y, batched[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_bfloat16(impl):
    x, kernel, bias = _arrays(4)
    xb, kb, bb = (jnp.asarray(a, jnp.bfloat16) for a in (x, kernel, bias))
    y = jconv.conv2d(xb, kb, bb, padding="same", impl=impl)
    assert y.dtype == jnp.bfloat16
    # Reference on the bf16-rounded inputs in float64: what remains is the output
    # rounding (2^-8 relative) and any bf16 accumulation inside the backend, so
    # 2e-2 of the output scale (sums of 24 unit-normal products, ~5) is the bound.
    expected = reference_conv2d(
        *(np.asarray(a, np.float64) for a in (xb, kb, bb)), padding="same"
    )
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        np.asarray(y, np.float64), expected, rtol=0, atol=2e-2 * scale
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_mixed_dtypes_promote(impl):
    x, kernel, _ = _arrays(5)
    y = jconv.conv2d(jnp.asarray(x, jnp.bfloat16), kernel, impl=impl)
    assert y.dtype == jnp.float32


@pytest.mark.parametrize("impl", IMPLS)
def test_grad_through_jit_and_vmap(impl):
    x, kernel, bias = _arrays(6)

    def loss(kernel, bias):
        y = jax.vmap(lambda xi: jconv.conv2d(xi, kernel, bias, impl=impl))(x)
        return jnp.mean(y**2)

    gk, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(kernel, bias)
    assert gk.shape == kernel.shape and gb.shape == bias.shape
    assert np.all(np.isfinite(gk)) and np.abs(gk).max() > 0
