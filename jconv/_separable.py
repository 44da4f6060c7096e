"""Separable convolution in 1, 2 or 3 spatial dimensions: a depthwise
convolution, then a 1x1 (1, 1x1x1) one."""

from __future__ import annotations

from jconv._conv import _apply, _as_array, _convolve, public
from jconv._depthwise import _depthwise
from jconv._spec import (
    _check_floating,
    _input,
    conv_spec,
    depthwise_layout,
    kernel_rank,
)

# The arguments of the depthwise step alone: the pointwise step is a 1x1
# convolution at stride 1.
_DEPTHWISE_ONLY = (
    "strides",
    "padding",
    "padding_mode",
    "dilation_rate",
    "input_dilation",
)


def _separable(x, depthwise_kernel, pointwise_kernel, bias, rank, keywords):
    x = _as_array(x)
    depthwise_kernel = _as_array(depthwise_kernel)
    pointwise_kernel = _as_array(pointwise_kernel)
    data_format = keywords["data_format"]
    rank = _check_kernels(x, depthwise_kernel, pointwise_kernel, data_format, rank)
    others = {k: v for k, v in keywords.items() if k != "data_format"}
    y = _depthwise(x, depthwise_kernel, None, rank, data_format, others)
    pointwise = {k: v for k, v in keywords.items() if k not in _DEPTHWISE_ONLY}
    pointwise.update(strides=1, padding="valid", dilation_rate=1, groups=1)
    return _convolve(
        _apply, conv_spec, y, pointwise_kernel, bias, rank=rank, **pointwise
    )


@public(omit=("output_padding", "groups"))
def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, **keywords):
    """Separable 2D convolution with Keras `SeparableConv2D` semantics.

    A `depthwise_conv2d` of `x` by `depthwise_kernel` (strides, padding,
    padding mode and dilation apply to it, and only to it), then a 1x1
    `conv2d` of its `C_in * depth_multiplier` channels by `pointwise_kernel`
    at stride 1, which mixes them into `C_out`; `bias` is added once, at the
    end. The weights are Keras' (`layer.get_weights()` in that order).

    Shapes (channels_last; channels_first swaps C to axis 1):
      x: `(N, H, W, C_in)`, or unbatched `(H, W, C_in)`.
      depthwise_kernel: `(KH, KW, C_in, depth_multiplier)`.
      pointwise_kernel: `(1, 1, C_in * depth_multiplier, C_out)`.
      bias: `(C_out,)` or None.
      output: `(N, H_out, W_out, C_out)` with, per spatial axis,
        `H_out = (H + pad_top + pad_bottom - ((KH - 1) * dilation + 1)) // stride + 1`
        ("same": `ceil(H / stride)`), as for `conv2d`.

    Args:
      x: input images, floating dtype.
      depthwise_kernel: the per-channel filters, floating dtype.
      pointwise_kernel: the 1x1 channel mixing, floating dtype.
      bias: optional per-output-channel bias.
      strides, padding, padding_mode, dilation_rate, data_format, precision,
        impl: as for `conv2d`, for the depthwise step (`data_format`,
        `precision` and `impl` for both steps). Unlike Keras, strides and
        dilation may both exceed 1.
      preferred_element_type: as for `conv2d`, for both steps: the
        intermediate image is kept in it too.

    Returns:
      The convolved images, dtype promoted from `x`, both kernels and `bias`
      (the depthwise step's result, in the dtype of `x` and
      `depthwise_kernel`, is rounded to it, as Keras does).

    Raises:
      ValueError: bad shapes or values, named in the message.
      TypeError: non-floating arrays, non-integer strides/dilation.

    Example (a 3x3 box sum per channel, then the sum of the channels):
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 5, 5, 2)).at[..., 1].set(2.0)
      >>> depthwise = jnp.ones((3, 3, 2, 1))
      >>> pointwise = jnp.ones((1, 1, 2, 4))
      >>> y = separable_conv2d(x, depthwise, pointwise, jnp.arange(4.0))
      >>> y.shape
      (1, 3, 3, 4)
      >>> y[0, 0, 0]
      Array([27., 28., 29., 30.], dtype=float32)
    """
    return _separable(x, depthwise_kernel, pointwise_kernel, bias, 2, keywords)


@public(omit=("output_padding", "groups"))
def separable_conv(x, depthwise_kernel, pointwise_kernel, bias=None, **keywords):
    """Separable convolution in 1, 2 or 3 spatial dimensions, read from the
    depthwise kernel `(*K, C_in, depth_multiplier)`; the pointwise kernel is
    `(1, ..., 1, C_in * depth_multiplier, C_out)`, one 1 per spatial axis
    (Keras `SeparableConv1D`/`SeparableConv2D` weights). `separable_conv2d`'s
    rules per spatial axis.

    Args:
      x, depthwise_kernel, pointwise_kernel, bias, strides, padding,
        padding_mode, dilation_rate, input_dilation, data_format, precision,
        preferred_element_type, impl: as for `separable_conv2d` (the
        per-axis arguments and `input_dilation` for the depthwise step).

    Returns:
      The convolved arrays.

    Raises:
      ValueError, TypeError: as `separable_conv2d`.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((2, 50, 3))
      >>> y = separable_conv(x, jnp.ones((5, 3, 2)), jnp.ones((1, 6, 8)))
      >>> y.shape
      (2, 46, 8)
    """
    return _separable(x, depthwise_kernel, pointwise_kernel, bias, None, keywords)


def _ranked(rank: int, example: str):
    def convolution(x, depthwise_kernel, pointwise_kernel, bias=None, **keywords):
        return _separable(x, depthwise_kernel, pointwise_kernel, bias, rank, keywords)

    name = f"separable_conv{rank}d"
    convolution.__name__ = convolution.__qualname__ = name
    convolution.__doc__ = f"""Separable {rank}D convolution: `separable_conv`
    for a depthwise kernel of rank {rank + 2}, refusing any other rank.

    Args:
      x, depthwise_kernel, pointwise_kernel, bias, strides, padding,
        padding_mode, dilation_rate, input_dilation, data_format, precision,
        preferred_element_type, impl: as for `separable_conv`.

    Returns:
      The convolved arrays.

    Raises:
      ValueError, TypeError: as `separable_conv2d`.

    Example:
{example}"""
    return public(omit=("output_padding", "groups"))(convolution)


separable_conv1d = _ranked(
    1,
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((2, 50, 3))
      >>> separable_conv1d(x, jnp.ones((3, 3, 1)), jnp.ones((1, 3, 4))).shape
      (2, 48, 4)
    """,
)
separable_conv3d = _ranked(
    3,
    """\
      >>> import jax.numpy as jnp
      >>> x, dw = jnp.ones((1, 6, 6, 6, 2)), jnp.ones((3, 3, 3, 2, 1))
      >>> separable_conv3d(x, dw, jnp.ones((1, 1, 1, 2, 5)), padding="same").shape
      (1, 6, 6, 6, 5)
    """,
)


def _check_kernels(x, depthwise_kernel, pointwise_kernel, data_format, rank) -> int:
    """The two kernels' dtypes and shapes against `x`, by their names (the
    steps would name either `kernel`); `x`, `bias` and the other arguments
    are checked by the steps. Returns the spatial rank."""
    _check_floating(depthwise_kernel, "depthwise_kernel")
    _check_floating(pointwise_kernel, "pointwise_kernel")
    dw_shape, pw_shape = tuple(depthwise_kernel.shape), tuple(pointwise_kernel.shape)
    rank = kernel_rank(dw_shape, rank, depthwise_layout, "depthwise_kernel")
    c_in = _input(x.shape, data_format, rank).channels
    if min(dw_shape) < 1:
        raise ValueError(f"`depthwise_kernel` shape {dw_shape} has an empty axis")
    if dw_shape[-2] != c_in:
        raise ValueError(
            f"`depthwise_kernel` shape {dw_shape} does not match `x` shape "
            f"{tuple(x.shape)}: its axis {rank} must be C_in (={c_in}), got "
            f"{dw_shape[-2]}"
        )
    channels = c_in * dw_shape[-1]
    ones = (1,) * rank
    if (
        len(pw_shape) != rank + 2
        or pw_shape[: rank + 1] != (*ones, channels)
        or pw_shape[-1] < 1
    ):
        lead = ", ".join(["1"] * rank)
        raise ValueError(
            f"`pointwise_kernel` shape {pw_shape} must be ({lead}, C_in * "
            f"depth_multiplier, C_out) = ({lead}, {c_in} * {dw_shape[-1]}, C_out) "
            f"= ({lead}, {channels}, C_out) with C_out >= 1, for `x` shape "
            f"{tuple(x.shape)} and `depthwise_kernel` shape {dw_shape}"
        )
    return rank
