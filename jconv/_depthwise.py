"""Depthwise 2D convolution: a grouped `conv2d` with one group per channel."""

from __future__ import annotations

from jconv._conv import _as_array, conv2d, public
from jconv._spec import depthwise_groups


@public(omit=("output_padding", "groups"))
def depthwise_conv2d(x, kernel, bias=None, *, data_format, **keywords):
    """Depthwise 2D convolution with Keras `DepthwiseConv2D` semantics.

    Each input channel `c` is convolved with its own `depth_multiplier` filters
    `kernel[:, :, c, m]`, giving output channel `c * depth_multiplier + m`. It
    is `conv2d` with `groups=C_in` and the kernel reshaped to
    `(KH, KW, 1, C_in * depth_multiplier)`, so every `conv2d` rule applies.

    Shapes (channels_last; channels_first swaps C to axis 1):
      x: `(N, H, W, C_in)`, or unbatched `(H, W, C_in)`.
      kernel: `(KH, KW, C_in, depth_multiplier)`.
      bias: `(C_in * depth_multiplier,)` or None.
      output: `(N, H_out, W_out, C_in * depth_multiplier)`, `H_out` as in
        `conv2d`.

    Args:
      x: input images, floating or complex dtype.
      kernel: depthwise kernel, floating or complex dtype.
      bias: optional per-output-channel bias.
      strides, padding, padding_mode, dilation_rate, data_format, precision,
        preferred_element_type, impl: as for `conv2d`.

    Returns:
      The convolved images, dtype promoted from `x`, `kernel` and `bias`, or
      `preferred_element_type`.

    Raises:
      ValueError: bad shapes or values, named in the message.
      TypeError: integer or bool arrays, non-integer strides/dilation, a
        `preferred_element_type` that is not a dtype of the inputs' kind.

    Example (2x2 average pooling is a depthwise convolution):
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(2 * 4 * 4.0).reshape(1, 4, 4, 2)
      >>> y = depthwise_conv2d(x, jnp.full((2, 2, 2, 1), 0.25), strides=2)
      >>> y[0, :, :, 0]
      Array([[ 5.,  9.],
             [21., 25.]], dtype=float32)
    """
    x, kernel = _as_array(x), _as_array(kernel)
    groups, grouped_shape = depthwise_groups(x.shape, kernel.shape, data_format)
    return conv2d(
        x,
        kernel.reshape(grouped_shape),
        bias,
        groups=groups,
        data_format=data_format,
        **keywords,
    )
