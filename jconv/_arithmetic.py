"""Convolution arithmetic: output shapes without running anything.

Both functions go through the same validation as the convolutions themselves
(`jconv._spec`), so a shape they return is the shape the call gives, and an
argument they refuse is one the call refuses, with the same message.
"""

from __future__ import annotations

from jconv._spec import ConvSpec, conv_spec, transpose_spec


def _full_shape(spec: ConvSpec, batch: int, channels: int) -> tuple[int, ...]:
    hw = spec.out_hw
    shape = (batch, channels, *hw) if spec.channels_first else (batch, *hw, channels)
    return shape if spec.batched else shape[1:]


def conv_output_shape(
    input_shape,
    kernel_shape,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    groups=1,
    data_format="channels_last",
) -> tuple[int, ...]:
    """Shape of `conv2d(x, kernel, ...)` for `x.shape == input_shape`.

    Per spatial axis (Dumoulin and Visin's relationship 15, with the pads of
    `jconv.resolve_padding`):
    `out = (size + pad_lo + pad_hi - (k - 1) * dilation - 1) // stride + 1`.

    Args:
      input_shape: `(N, H, W, C_in)` (or `(N, C_in, H, W)` with
        channels_first), or unbatched without `N`.
      kernel_shape: `(KH, KW, C_in // groups, C_out)`.
      strides, padding, dilation_rate, groups, data_format: as for `conv2d`.

    Returns:
      The output shape, batched if the input shape is.

    Raises:
      ValueError, TypeError: as `conv2d` would for these shapes and arguments.

    Example:
      >>> conv_output_shape((8, 5, 5, 3), (3, 3, 3, 16), strides=2, padding=1)
      (8, 3, 3, 16)
      >>> conv_output_shape((3, 7, 7), (3, 3, 3, 4), padding="full",
      ...                   data_format="channels_first")
      (4, 9, 9)
    """
    input_shape, kernel_shape = tuple(input_shape), tuple(kernel_shape)
    spec = conv_spec(
        input_shape,
        kernel_shape,
        None,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
    )
    return _full_shape(spec, input_shape[0], kernel_shape[3])


def conv_transpose_output_shape(
    input_shape,
    kernel_shape,
    *,
    strides=1,
    padding="valid",
    output_padding=None,
    dilation_rate=1,
    data_format="channels_last",
) -> tuple[int, ...]:
    """Shape of `conv2d_transpose(x, kernel, ...)` for `x.shape == input_shape`.

    With explicit pads `p` and `output_padding` `a` this is the guide's
    relationship 14, `out = stride * (size - 1) + a + span - 2p`; the string
    rules follow Keras (see `jconv.conv2d_transpose`).

    Args:
      input_shape: `(N, H, W, C_in)` (or `(N, C_in, H, W)`), or unbatched.
      kernel_shape: `(KH, KW, C_out, C_in)`.
      strides, padding, output_padding, dilation_rate, data_format: as for
        `conv2d_transpose`.

    Returns:
      The output shape, batched if the input shape is.

    Raises:
      ValueError, TypeError: as `conv2d_transpose` would.

    Example:
      >>> conv_transpose_output_shape((1, 3, 3, 16), (3, 3, 8, 16), strides=2,
      ...                             padding=1, output_padding=1)
      (1, 6, 6, 8)
    """
    input_shape, kernel_shape = tuple(input_shape), tuple(kernel_shape)
    spec = transpose_spec(
        input_shape,
        kernel_shape,
        None,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
    )
    return _full_shape(spec, input_shape[0], kernel_shape[2])
