"""`impl="lax"` never hands XLA a convolution it aborts on.

XLA swaps a convolution's operands where its window is larger than its
input, leaving out of the comparison, and copying unchanged, an axis whose
base dilation (`lhs_dilation`) equals its window size; the swapped
convolution's copied axis then does not match its kernel, a CHECK fails and
the process aborts while compiling (jax 0.10.2; `jax.grad` of
`lax.conv_general_dilated` itself does). Base dilations come with the input
gradient of a strided convolution, the transposed convolution, and a
convolution with `input_dilation` and its kernel gradient. There
`jconv._lax.aborts_xla` holds and the einsum formulation computes the term.
The cases are the aborts random sweeps of small strided geometries found
(each aborted the process before); each must compile and give the float64
reference's answer.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import reference_conv, reference_conv2d, reference_conv2d_transpose

import jconv

# (x shape, kernel shape, strides, padding, dilation_rate)
CASES = [
    ((1, 4, 5, 2), (2, 3, 2, 2), (2, 2), ((1, 1), (3, 0)), (1, 2)),
    ((1, 6, 6, 1), (4, 2, 1, 1), (2, 2), ((3, 0), (1, 1)), (2, 1)),
    ((1, 4, 2, 1), (2, 3, 1, 2), (2, 3), ((1, 2), (3, 1)), (1, 1)),
    ((1, 4, 4, 1), (3, 2, 1, 2), (3, 2), ((3, 0), (1, 2)), (1, 1)),
    ((1, 4, 3, 1), (2, 3, 1, 1), (2, 3), ((1, 1), (3, 2)), (1, 2)),
]


def _arguments(case, seed=0):
    x_shape, k_shape, strides, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal(k_shape)
    kwargs = dict(strides=strides, padding=padding, dilation_rate=dilation)
    return x, kernel, kwargs


def _output_padding(x_shape, y_shape, k_shape, strides, padding, dilation):
    """The rows and columns at the bottom/right that no window reads: the
    transposed convolution's `output_padding` that gives back `x`'s size."""
    return tuple(
        size - ((out - 1) * s + (k - 1) * d + 1 - lo - hi)
        for size, out, k, s, (lo, hi), d in zip(
            x_shape[1:3], y_shape[1:3], k_shape[:2], strides, padding, dilation
        )
    )


@pytest.mark.parametrize("impl", ["lax", "auto"])
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_input_gradient_compiles(case, impl):
    x, kernel, kwargs = _arguments(case)
    f = lambda x, k: jnp.sum(jconv.conv2d(x, k, impl=impl, **kwargs) ** 2)
    grads = jax.jit(jax.grad(f, argnums=(0, 1)))(
        x.astype(np.float32), kernel.astype(np.float32)
    )
    assert [g.shape for g in grads] == [x.shape, kernel.shape]
    # The values in float64: XLA's float32 convolution is wrong where a pad
    # exceeds the kernel's span (test_onednn.py), which case 2 has.
    y = reference_conv2d(x, kernel, **kwargs)
    ct = np.random.default_rng(1).standard_normal(y.shape)
    with jax.enable_x64(True):
        _, vjp = jax.vjp(lambda x: jconv.conv2d(x, kernel, impl=impl, **kwargs), x)
        (dx,) = vjp(ct)
    pad = _output_padding(x.shape, y.shape, kernel.shape, *kwargs.values())
    expected = reference_conv2d_transpose(ct, kernel, output_padding=pad, **kwargs)
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", ["lax", "auto"])
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_transposed_convolution_compiles(case, impl):
    x, kernel, kwargs = _arguments(case)
    y = reference_conv2d(x, kernel, **kwargs)
    pad = _output_padding(x.shape, y.shape, kernel.shape, *kwargs.values())
    up = jax.jit(
        lambda y: jconv.conv2d_transpose(
            y, kernel.astype(np.float32), output_padding=pad, impl=impl, **kwargs
        )
    )(y.astype(np.float32))
    assert up.shape == x.shape
    with jax.enable_x64(True):
        up = jconv.conv2d_transpose(y, kernel, output_padding=pad, impl=impl, **kwargs)
    expected = reference_conv2d_transpose(y, kernel, output_padding=pad, **kwargs)
    np.testing.assert_allclose(up, expected, rtol=1e-10, atol=1e-10)


def test_kernel_gradient_with_input_dilation_compiles():
    """A convolution of an input stretched 2x along H whose kernel gradient
    (window: the 2 x 6 output gradient, over the 3 x 3 input) aborted XLA."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 3, 2))
    kernel = rng.standard_normal((4, 1, 2, 1))
    kwargs = dict(input_dilation=(2, 1), padding=((0, 0), (2, 1)), impl="lax")
    f = lambda x, k: jnp.sum(jconv.conv2d(x, k, **kwargs) ** 2)
    grads = jax.jit(jax.grad(f, argnums=(0, 1)))(
        x.astype(np.float32), kernel.astype(np.float32)
    )
    assert [g.shape for g in grads] == [x.shape, kernel.shape]
    with jax.enable_x64(True):
        dk = jax.grad(f, argnums=1)(x, kernel)
    # d sum(y**2) / dk = 2 * sum over outputs of y * window, with the float64
    # loop reference's y; the window, the stretched and padded input's.
    y = reference_conv(x, kernel, input_dilation=(2, 1), padding=((0, 0), (2, 1)))
    stretched = np.zeros((1, 5, 3, 2))
    stretched[:, ::2] = x
    padded = np.pad(stretched, ((0, 0), (0, 0), (2, 1), (0, 0)))
    expected = np.zeros_like(kernel)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            window = padded[0, i : i + 4, j : j + 1, :]  # (4, 1, C_in)
            expected += 2 * window[..., None] * y[0, i, j]
    np.testing.assert_allclose(dk, expected, rtol=1e-10, atol=1e-10)
