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
    """Explicit `(low, high)` pads per spatial axis: `((top, bottom), (left,
    right))` for a 2D convolution, one pair for 1D, three for 3D.

    The rank is the length of the first of `input_hw`, `kernel_hw`,
    `strides`, `dilation_rate` given as a sequence (where all four are
    ints: 2). Per spatial axis, with `span = (kernel - 1) * dilation + 1`:

    - `"valid"`: no pads.
    - `"same"` (TensorFlow/Keras): `out = ceil(size / stride)` and a total pad of
      `max((out - 1) * stride + span - size, 0)`, the odd extra row/column at
      the bottom/right.
    - `"same_lower"`: the same total, the odd extra at the top/left (lax's
      `SAME_LOWER`).
    - `"full"`: `span - 1` on both sides (every partial overlap of kernel and
      input, the "full padding" of Dumoulin and Visin's guide).
    - `"causal"` (Keras `Conv1D`): `span - 1` before, none after, so output
      `i` reads no input after `i * stride`.
    - explicit: an int, one int per axis (`(pad_h, pad_w)`) or one `(low,
      high)` pair per axis (`((top, bottom), (left, right))`).

    Args:
      input_hw: spatial sizes of the input (`(H, W)`; `(W,)` or `(D, H, W)`;
        an int for every axis), not negative. With `input_dilation`, the
        stretched sizes `(size - 1) * input_dilation + 1`.
      kernel_hw: spatial size of the (undilated) kernel, positive.
      strides: int or one per axis, positive.
      dilation_rate: int or one per axis, positive.
      padding: a rule above (string, any case) or explicit pads.

    Returns:
      One `(low, high)` pair per spatial axis, as Python ints.

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
      >>> resolve_padding((16,), 3, 1, 4, "causal")  # 1D: one pair
      ((8, 0),)
      >>> resolve_padding((4, 8, 8), 3, (1, 2, 2), 1, "same")  # 3D
      ((1, 1), (0, 1), (0, 1))
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
      output_padding: None, int or one per axis (`(ah, aw)`), each in `[0,
        stride)`.

    Returns:
      The output's spatial sizes and one `(low, high)` pair per axis:
      `((H_out, W_out), ((top, bottom), (left, right)))` in 2D.

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
    input_dilation=1,
    groups=1,
    data_format="channels_last",
) -> tuple[int, ...]:
    """Shape of `conv(x, kernel, ...)` for `x.shape == input_shape`, in 1, 2
    or 3 spatial dimensions (read from `kernel_shape`).

    Per spatial axis (Dumoulin and Visin's relationship 15, with the pads of
    `jconv.resolve_padding`):
    `out = (size + pad_lo + pad_hi - (k - 1) * dilation - 1) // stride + 1`,
    `size` the input's, stretched to `(size - 1) * input_dilation + 1` by an
    input dilation.

    Args:
      input_shape: `(N, *S, C_in)` (or `(N, C_in, *S)` with channels_first,
        `S` the spatial sizes: `(H, W)` in 2D), or unbatched without `N`.
      kernel_shape: `(*K, C_in // groups, C_out)`, `K` the kernel's spatial
        sizes (`(KH, KW)` in 2D).
      strides, padding, dilation_rate, input_dilation, groups, data_format:
        as for `conv`.

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
      >>> conv_output_shape((8, 100, 2), (3, 2, 16), dilation_rate=4,
      ...                   padding="causal")  # 1D
      (8, 100, 16)
      >>> conv_output_shape((2, 5, 5, 5, 1), (3, 3, 3, 1, 4), input_dilation=2)
      (2, 7, 7, 7, 4)
    """
    return _output_shape(
        conv_spec,
        input_shape,
        kernel_shape,
        c_out=lambda spec, kernel_shape: kernel_shape[-1],
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        input_dilation=input_dilation,
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
    """Shape of `conv_transpose(x, kernel, ...)` for `x.shape == input_shape`,
    in 1, 2 or 3 spatial dimensions (read from `kernel_shape`).

    With explicit pads `p` and `output_padding` `a` this is the guide's
    relationship 14, `out = stride * (size - 1) + a + span - 2p`; the string
    rules follow Keras (see `jconv.conv2d_transpose`).

    Args:
      input_shape: `(N, *S, C_in)` (or `(N, C_in, *S)`), or unbatched.
      kernel_shape: `(*K, C_out // groups, C_in)`.
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
