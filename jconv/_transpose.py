"""Transposed 2D convolution: the adjoint of `conv2d`, run as a direct
convolution of the zero-stretched input by any implementation (lax, einsum,
fft)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jconv._conv import _convolve, _run
from jconv._spec import ConvSpec, transpose_spec


@functools.partial(jax.jit, static_argnames=("spec", "precision", "impl"))
def _apply_transpose(x, kernel, bias, *, spec: ConvSpec, precision, impl: str):
    # Keras' (KH, KW, C_out, C_in) kernel, flipped in space, is the HWIO
    # kernel of the equivalent direct convolution once its channel axes swap.
    k_hwio = jnp.flip(kernel, axis=(0, 1)).transpose(0, 1, 3, 2)
    return _run(x, k_hwio, bias, spec, precision, impl)


def conv2d_transpose(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    output_padding=None,
    dilation_rate=1,
    data_format="channels_last",
    precision=None,
    impl="auto",
):
    """Transposed 2D convolution with Keras `Conv2DTranspose` semantics.

    For the same kernel, strides, padding and dilation it is exactly the adjoint
    of `conv2d`: `conv2d_transpose(y, kernel, ...)` equals the VJP of
    `x -> conv2d(x, kernel, ...)` at `y`, for an `x` of the transposed
    convolution's output size (`padding` is resolved on that size, as
    TensorFlow does). Each input pixel scatters `x[i, j] @ kernel[a, b].T` to
    output pixel `(i * sh + a * dh - top, j * sw + b * dw - left)`.

    Shapes (channels_last; channels_first swaps C to axis 1):
      x: `(N, H, W, C_in)`, or unbatched `(H, W, C_in)`.
      kernel: `(KH, KW, C_out, C_in)` (Keras' transposed layout: the kernel of
        the `conv2d` from `C_out` to `C_in` channels it is the adjoint of).
      bias: `(C_out,)` or None.
      output: `(N, H_out, W_out, C_out)` with, per spatial axis,
        `span = (KH - 1) * dilation + 1` and `a = output_padding`:
        "valid": `H * stride + max(span - stride, 0)`, or
        `(H - 1) * stride + span + a`;
        "same"/"same_lower": `H * stride`, or
        `(H - 1) * stride + span % 2 + a`;
        "full": `H * stride - (stride + span - 2)`, or
        `(H - 1) * stride - span + 2 + a`;
        explicit `(top, bottom)`: `(H - 1) * stride + span - top - bottom + a`.

    Args:
      x: input images, floating dtype.
      kernel: kernel `(KH, KW, C_out, C_in)`, floating dtype.
      bias: optional per-output-channel bias.
      strides: int or `(sh, sw)`, positive: the upsampling factor.
      padding: `"valid"`, `"same"`, `"same_lower"`, `"full"` or explicit pads
        as for `conv2d`: the padding of the convolution this is the adjoint of.
      output_padding: None, int or `(ah, aw)`, each in `[0, stride)`: extra
        rows/columns at the bottom/right, choosing among the output sizes
        that a strided convolution maps to the same input size.
      dilation_rate: int or `(dh, dw)`, positive; unlike Keras, may exceed 1
        together with strides.
      data_format: `"channels_last"` (NHWC) or `"channels_first"` (NCHW).
      precision: passed to the contraction.
      impl: `"auto"` (default, as for `conv2d`), `"lax"`
        (`lax.conv_general_dilated` with input dilation) or `"einsum"` (the
        input stretched with zeros by `lax.pad`, then the same window
        contraction as `conv2d`, with the kernel flipped and its channel axes
        swapped), `"fft"` (that stretched input, convolved in the frequency
        domain). Same answers, same gradients, up to rounding.

    Returns:
      The upsampled images, dtype promoted from `x`, `kernel` and `bias`.

    Raises:
      ValueError: bad shapes or values, named in the message: `output_padding`
        not smaller than `strides`, an empty input or output, a "same"
        even-kernel `output_padding=0` that no convolution is the adjoint of,
        or a stretched input or output no device could hold (as for
        `conv2d`).
      TypeError: non-floating arrays, non-integer strides/dilation/
        output_padding.

    Example (the adjoint of a strided "same" convolution):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 4, 4, 3))
      >>> k = jnp.ones((3, 3, 3, 2))  # conv2d: 3 -> 2 channels
      >>> y = conv2d_transpose(jnp.ones((1, 2, 2, 2)), k, strides=2, padding="same")
      >>> y.shape
      (1, 4, 4, 3)
      >>> from jconv import conv2d
      >>> _, vjp = jax.vjp(lambda x: conv2d(x, k, strides=2, padding="same"), x)
      >>> bool(jnp.array_equal(vjp(jnp.ones((1, 2, 2, 2)))[0], y))
      True
    """
    return _convolve(
        _apply_transpose,
        transpose_spec,
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        precision=precision,
        impl=impl,
    )
