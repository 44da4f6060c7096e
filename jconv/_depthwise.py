"""Depthwise convolution in 1, 2 or 3 spatial dimensions: a grouped `conv`
with one group per channel."""

from __future__ import annotations

from jconv._conv import _apply, _as_array, _convolve, public
from jconv._spec import conv_spec, depthwise_groups


def _depthwise(x, kernel, bias, rank, data_format, keywords):
    """The grouped convolution equal to the depthwise one."""
    x, kernel = _as_array(x), _as_array(kernel)
    groups, grouped_shape = depthwise_groups(x.shape, kernel.shape, data_format, rank)
    return _convolve(
        _apply,
        conv_spec,
        x,
        kernel.reshape(grouped_shape),
        bias,
        rank=rank,
        groups=groups,
        data_format=data_format,
        **keywords,
    )


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
    return _depthwise(x, kernel, bias, 2, data_format, keywords)


@public(omit=("output_padding", "groups"))
def depthwise_conv(x, kernel, bias=None, *, data_format, **keywords):
    """Depthwise convolution in 1, 2 or 3 spatial dimensions, read from the
    kernel `(*K, C_in, depth_multiplier)` (Keras `DepthwiseConv1D`/
    `DepthwiseConv2D` layout): `depthwise_conv2d`'s rules per spatial axis,
    `x` of shape `(N, *S, C_in)` (channels_first: `(N, C_in, *S)`), output
    channel `c * depth_multiplier + m`.

    Args:
      x, kernel, bias, strides, padding, padding_mode, dilation_rate,
        input_dilation, data_format, precision, preferred_element_type, impl:
        as for `depthwise_conv2d` and `conv`, per spatial axis.

    Returns:
      The convolved arrays, dtype promoted from `x`, `kernel` and `bias`, or
      `preferred_element_type`.

    Raises:
      ValueError, TypeError: as `conv`.

    Example (a per-channel causal difference over a sequence):
      >>> import jax.numpy as jnp
      >>> x = jnp.stack([jnp.arange(5.0), jnp.arange(5.0) ** 2], axis=-1)
      >>> k = jnp.array([-1.0, 1.0])[:, None, None] * jnp.ones((2, 2, 1))
      >>> depthwise_conv(x, k, padding="causal")[:, 1]
      Array([0., 1., 3., 5., 7.], dtype=float32)
    """
    return _depthwise(x, kernel, bias, None, data_format, keywords)


def _ranked(rank: int, example: str):
    def convolution(x, kernel, bias=None, *, data_format, **keywords):
        return _depthwise(x, kernel, bias, rank, data_format, keywords)

    name = f"depthwise_conv{rank}d"
    convolution.__name__ = convolution.__qualname__ = name
    axes = {
        1: "(KW, C_in, depth_multiplier)",
        3: "(KD, KH, KW, C_in, depth_multiplier)",
    }
    convolution.__doc__ = f"""Depthwise {rank}D convolution: `depthwise_conv`
    for a kernel of shape `{axes[rank]}`, refusing any other rank.

    Args:
      x, kernel, bias, strides, padding, padding_mode, dilation_rate,
        input_dilation, data_format, precision, preferred_element_type, impl:
        as for `depthwise_conv2d` and `conv`, per spatial axis.

    Returns:
      The convolved arrays.

    Raises:
      ValueError, TypeError: as `conv`.

    Example:
{example}"""
    return public(omit=("output_padding", "groups"))(convolution)


depthwise_conv1d = _ranked(
    1,
    """\
      >>> import jax.numpy as jnp
      >>> depthwise_conv1d(jnp.ones((2, 100, 4)), jnp.ones((5, 4, 2))).shape
      (2, 96, 8)
    """,
)
depthwise_conv3d = _ranked(
    3,
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 8, 4))
      >>> depthwise_conv3d(x, jnp.ones((3, 3, 3, 4, 1)), padding="same").shape
      (1, 8, 8, 8, 4)
    """,
)
