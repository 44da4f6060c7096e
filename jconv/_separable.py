"""Separable 2D convolution: a `depthwise_conv2d`, then a 1x1 `conv2d`."""

from __future__ import annotations

from jconv._conv import _as_array, conv2d, public
from jconv._depthwise import depthwise_conv2d
from jconv._spec import _check_floating, _input

# The arguments of the depthwise step alone: the pointwise step is a 1x1
# convolution at stride 1.
_DEPTHWISE_ONLY = ("strides", "padding", "padding_mode", "dilation_rate")


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
    x = _as_array(x)
    depthwise_kernel = _as_array(depthwise_kernel)
    pointwise_kernel = _as_array(pointwise_kernel)
    _check_kernels(x, depthwise_kernel, pointwise_kernel, keywords["data_format"])
    y = depthwise_conv2d(x, depthwise_kernel, **keywords)
    pointwise = {k: v for k, v in keywords.items() if k not in _DEPTHWISE_ONLY}
    return conv2d(y, pointwise_kernel, bias, **pointwise)


def _check_kernels(x, depthwise_kernel, pointwise_kernel, data_format) -> None:
    """The two kernels' dtypes and shapes against `x`, by their names (the
    steps would name either `kernel`); `x`, `bias` and the other arguments
    are checked by the steps."""
    _check_floating(depthwise_kernel, "depthwise_kernel")
    _check_floating(pointwise_kernel, "pointwise_kernel")
    c_in = _input(x.shape, data_format).channels
    dw_shape, pw_shape = tuple(depthwise_kernel.shape), tuple(pointwise_kernel.shape)
    if len(dw_shape) != 4:
        raise ValueError(
            f"`depthwise_kernel` must have rank 4 (KH, KW, C_in, "
            f"depth_multiplier); got shape {dw_shape}"
        )
    if min(dw_shape) < 1:
        raise ValueError(f"`depthwise_kernel` shape {dw_shape} has an empty axis")
    if dw_shape[2] != c_in:
        raise ValueError(
            f"`depthwise_kernel` shape {dw_shape} does not match `x` shape "
            f"{tuple(x.shape)}: its axis 2 must be C_in (={c_in}), got {dw_shape[2]}"
        )
    channels = c_in * dw_shape[3]
    if len(pw_shape) != 4 or pw_shape[:3] != (1, 1, channels) or pw_shape[3] < 1:
        raise ValueError(
            f"`pointwise_kernel` shape {pw_shape} must be (1, 1, C_in * "
            f"depth_multiplier, C_out) = (1, 1, {c_in} * {dw_shape[3]}, C_out) "
            f"= (1, 1, {channels}, C_out) with C_out >= 1, for `x` shape "
            f"{tuple(x.shape)} and `depthwise_kernel` shape {dw_shape}"
        )
