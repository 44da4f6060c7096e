"""Convolution arithmetic: pads and output shapes without running anything.

Every function here goes through the same validation as the convolutions
themselves (`jconv._spec`), so a shape they return is the shape the call
gives, and an argument they refuse is one the call refuses, with the same
message. The rules themselves live in `jconv._padding`.
"""

from __future__ import annotations

from jconv import _padding
from jconv._padding import Pads, Pair
from jconv._spec import (
    _layout,
    _output_padding_pair,
    check_shape,
    conv_spec,
    padding_geometry,
    transpose_spec,
)


def resolve_padding(input_hw, kernel_hw, strides, dilation_rate, padding) -> Pads:
    """Explicit `((top, bottom), (left, right))` pads for a 2D convolution.

    Per spatial axis, with `span = (kernel - 1) * dilation + 1`:

    - `"valid"`: no pads.
    - `"same"` (TensorFlow/Keras): `out = ceil(size / stride)` and a total pad of
      `max((out - 1) * stride + span - size, 0)`, the odd extra row/column at
      the bottom/right.
    - `"same_lower"`: the same total, the odd extra at the top/left (lax's
      `SAME_LOWER`).
    - `"full"`: `span - 1` on both sides (every partial overlap of kernel and
      input, the "full padding" of Dumoulin and Visin's guide).
    - explicit: an int, `(pad_h, pad_w)` or `((top, bottom), (left, right))`.

    Args:
      input_hw: spatial size `(H, W)` of the input (an int for both), sizes
        not negative.
      kernel_hw: spatial size `(KH, KW)` of the (undilated) kernel, positive.
      strides: int or `(stride_h, stride_w)`, positive.
      dilation_rate: int or `(dilation_h, dilation_w)`, positive.
      padding: a rule above (string, any case) or explicit pads.

    Returns:
      `((top, bottom), (left, right))` as Python ints.

    Raises:
      ValueError: unknown padding string, malformed or negative explicit
        padding, negative sizes, non-positive kernel, strides or dilation.
      TypeError: sizes, strides or dilation that are not ints or pairs of ints.

    Example:
      >>> resolve_padding((5, 5), (4, 4), (2, 2), (1, 1), "same")
      ((1, 2), (1, 2))
      >>> resolve_padding((5, 5), (4, 4), 2, 1, "same_lower")
      ((2, 1), (2, 1))
      >>> resolve_padding((5, 5), (3, 2), (1, 1), (2, 1), "full")
      ((4, 4), (1, 1))
    """
    geometry = padding_geometry(input_hw, kernel_hw, strides, dilation_rate)
    return _padding.resolve_padding(*geometry, padding)


def resolve_transpose_padding(
    input_hw, kernel_hw, strides, dilation_rate, padding, output_padding
) -> tuple[Pair, Pads]:
    """Output size and pads of a transposed convolution.

    The transposed convolution is the adjoint of the convolution with the same
    kernel, strides and dilation, applied to an input of the output size; the
    pads returned are that convolution's, by the same `resolve_padding` rule
    (string rules are resolved on the output size, as TensorFlow does).

    Args:
      input_hw, kernel_hw, strides, dilation_rate, padding: as for
        `resolve_padding`.
      output_padding: None, int or `(ah, aw)`, each in `[0, stride)`.

    Returns:
      `((H_out, W_out), ((top, bottom), (left, right)))`.

    Raises:
      ValueError, TypeError: as `resolve_padding`, and for an `output_padding`
        that is negative, not smaller than `strides`, or not None, an int or a
        pair of ints.

    Example:
      >>> resolve_transpose_padding((4, 4), (3, 3), (2, 2), (1, 1), "same", None)
      ((8, 8), ((0, 1), (0, 1)))
    """
    geometry = padding_geometry(input_hw, kernel_hw, strides, dilation_rate)
    output_padding = _output_padding_pair(output_padding, geometry[2])
    return _padding.resolve_transpose_padding(*geometry, padding, output_padding)


def _output_shape(make_spec, input_shape, kernel_shape, *, c_out, **arguments):
    """The output shape of the call `make_spec` (`conv_spec`, `transpose_spec`)
    checks, for shapes checked as sequences of non-negative ints; `c_out(spec,
    kernel_shape)` is its number of output channels."""
    input_shape = check_shape(input_shape, "input_shape")
    kernel_shape = check_shape(kernel_shape, "kernel_shape")
    spec = make_spec(input_shape, kernel_shape, None, **arguments)
    c_out = c_out(spec, kernel_shape)
    shape = _layout(input_shape[0], spec.out_hw, c_out, spec.channels_first)
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
      ValueError, TypeError: as `conv2d` would for these shapes and arguments
        (sizes no device could hold counted at 2 bytes an element, the
        narrowest floating dtype; a kernel wider than the padded input, or
        on an input axis with no pixels a negative output size), and for
        shapes that are not sequences of non-negative ints.

    Example:
      >>> conv_output_shape((8, 5, 5, 3), (3, 3, 3, 16), strides=2, padding=1)
      (8, 3, 3, 16)
      >>> conv_output_shape((3, 7, 7), (3, 3, 3, 4), padding="full",
      ...                   data_format="channels_first")
      (4, 9, 9)
      >>> # No images, or no rows: "same" keeps ceil(0 / stride) = 0 rows.
      >>> conv_output_shape((0, 0, 5, 3), (3, 3, 3, 4), strides=2, padding="same")
      (0, 0, 3, 4)
    """
    return _output_shape(
        conv_spec,
        input_shape,
        kernel_shape,
        c_out=lambda spec, kernel_shape: kernel_shape[3],
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
    )


def conv_transpose_output_shape(
    input_shape,
    kernel_shape,
    *,
    strides=1,
    padding="valid",
    output_padding=None,
    dilation_rate=1,
    groups=1,
    data_format="channels_last",
) -> tuple[int, ...]:
    """Shape of `conv2d_transpose(x, kernel, ...)` for `x.shape == input_shape`.

    With explicit pads `p` and `output_padding` `a` this is the guide's
    relationship 14, `out = stride * (size - 1) + a + span - 2p`; the string
    rules follow Keras (see `jconv.conv2d_transpose`).

    Args:
      input_shape: `(N, H, W, C_in)` (or `(N, C_in, H, W)`), or unbatched.
      kernel_shape: `(KH, KW, C_out // groups, C_in)`.
      strides, padding, output_padding, dilation_rate, groups, data_format:
        as for `conv2d_transpose` (the output does not depend on its
        `padding_mode`).

    Returns:
      The output shape, batched if the input shape is.

    Raises:
      ValueError, TypeError: as `conv2d_transpose` would (sizes as for
        `conv_output_shape`), and for shapes that are not sequences of
        non-negative ints.

    Example:
      >>> conv_transpose_output_shape((1, 3, 3, 16), (3, 3, 8, 16), strides=2,
      ...                             padding=1, output_padding=1)
      (1, 6, 6, 8)
      >>> conv_transpose_output_shape((1, 3, 3, 16), (3, 3, 4, 16), groups=2)
      (1, 5, 5, 8)
    """
    return _output_shape(
        transpose_spec,
        input_shape,
        kernel_shape,
        c_out=lambda spec, kernel_shape: spec.c_out,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
    )
