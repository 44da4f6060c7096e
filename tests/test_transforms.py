"""jit, vmap, unbatched input, dtypes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_conv_close, assert_sums_close
from reference import reference_conv2d

import jconv


def _arrays(seed=0, shape=(3, 9, 8, 4), k_shape=(3, 2, 4, 6), integer=False):
    rng = np.random.default_rng(seed)
    if integer:
        # Small integers: every product and partial sum is exact in float32, so
        # any two evaluations agree to the bit, whatever kernel XLA picks.
        draw = lambda s: rng.integers(-3, 4, s).astype(np.float32)
    else:
        draw = lambda s: rng.standard_normal(s).astype(np.float32)
    return draw(shape), draw(k_shape), draw(k_shape[-1])


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
    kw = dict(strides=2, padding=((1, 0), (2, 1)))
    expected = reference_conv2d(x, kernel, bias, **kw)
    assert_conv_close(y, expected, reference_conv2d, x, kernel, bias, **kw)


def test_jit_of_closure_equals_eager(impl):
    x, kernel, bias = _arrays(1, integer=True)
    f = functools.partial(jconv.conv2d, padding="same", dilation_rate=2, impl=impl)
    np.testing.assert_array_equal(jax.jit(f)(x, kernel, bias), f(x, kernel, bias))


def test_vmap_over_kernels_and_images(impl):
    x, kernel, _ = _arrays(2)
    kernels = np.stack([kernel, 2 * kernel, -kernel])
    f = functools.partial(jconv.conv2d, impl=impl, precision="highest")
    # One kernel per image: vmap over both leading axes.
    y = jax.vmap(lambda xi, ki: f(xi, ki))(x, kernels)
    for i in range(3):
        expected = reference_conv2d(x[i], kernels[i])
        assert_conv_close(y[i], expected, reference_conv2d, x[i], kernels[i])
    # vmap over an extra leading axis of batched input.
    y2 = jax.vmap(f, in_axes=(0, None))(np.stack([x, x]), kernel)
    assert y2.shape == (2, 3, 7, 7, 6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_unbatched_input_gives_unbatched_output(impl, data_format):
    x, kernel, bias = _arrays(3, integer=True)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    conv = lambda x: jconv.conv2d(
        x,
        kernel,
        bias,
        impl=impl,
        data_format=data_format,
        strides=(2, 1),
        padding="same",
    )
    y, batched = conv(x[0]), conv(x)
    assert y.shape == batched.shape[1:]
    np.testing.assert_array_equal(y, batched[0])


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


def test_mixed_dtypes_promote(impl):
    x, kernel, _ = _arrays(5)
    y = jconv.conv2d(jnp.asarray(x, jnp.bfloat16), kernel, impl=impl)
    assert y.dtype == jnp.float32


def test_grad_through_jit_and_vmap(impl):
    x, kernel, bias = (a.astype(np.float64) for a in _arrays(6))

    def loss(kernel, bias):
        y = jax.vmap(lambda xi: jconv.conv2d(xi, kernel, bias, impl=impl))(x)
        return jnp.mean(y**2)

    with jax.enable_x64(True):
        gk, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(kernel, bias)
    # The gradient in closed form, from the float64 reference: with
    # g = 2 y / y.size, d loss / d kernel[a, b] = sum over n, i, j of
    # x[n, i + a, j + b, :] (outer) g[n, i, j, :], and d loss / d bias = sum g.
    y = reference_conv2d(x, kernel, bias)
    g = 2 * y / y.size
    _, ho, wo, _ = y.shape
    window = lambda a, b, x=x: x[:, a : a + ho, b : b + wo]
    kh, kw = kernel.shape[:2]
    want = np.array(
        [
            [np.einsum("nijc,nijo->co", window(a, b), g) for b in range(kw)]
            for a in range(kh)
        ]
    )
    # Sums of N*HO*WO products of x with g, g itself from sums of KH*KW*C_in+1.
    magnitude = np.array(
        [
            [
                np.einsum("nijc,nijo->co", np.abs(window(a, b)), np.abs(g))
                for b in range(kw)
            ]
            for a in range(kh)
        ]
    )
    terms = y.size // y.shape[-1] + kh * kw * x.shape[-1] + 1
    assert_sums_close(gk, want, magnitude, terms, np.float64)
    assert_sums_close(gb, g.sum((0, 1, 2)), np.abs(g).sum((0, 1, 2)), terms, np.float64)
