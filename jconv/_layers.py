"""What the Flax modules share, whatever the Flax API: construction-time checks
(the core's own, run on a probe shape), kernel shapes, default initialisers and
the call.

`jconv.nnx` and `jconv.linen` hold parameters their own way and call in here;
every argument is read by `jconv._spec`/`jconv._padding`, as for the functions.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from flax.nnx.nn import initializers
from flax.nnx.nn.dtypes import promote_dtype

from jconv._conv import _check_impl, conv2d
from jconv._depthwise import depthwise_conv2d
from jconv._padding import PADDING_MODES, _is_int, resolve_padding
from jconv._spec import (
    DATA_FORMATS,
    _input,
    _positive_pair,
    canonical_precision,
    choice,
    conv_spec,
    depthwise_groups,
    transpose_spec,
)
from jconv._transpose import conv2d_transpose

# Flax's defaults (`nnx.Conv`, `linen.Conv`): LeCun normal over the fan-in,
# zero bias.
default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()
# A transposed kernel `(KH, KW, C_out, C_in)` reads its fan-in on the last axis.
default_transpose_kernel_init = initializers.lecun_normal(in_axis=-1, out_axis=-2)

KINDS = ("conv", "transpose", "depthwise")


@dataclasses.dataclass(frozen=True)
class Layer:
    """A checked layer configuration: the keyword arguments of its function.

    `features` is what the kernel shape needs besides `kernel_size`: `(C_in,
    C_out)` for "conv" and "transpose", `(C_in, depth_multiplier)` for
    "depthwise"; `C_in` is None for a Linen module before its first call.
    """

    kind: str
    kernel_size: tuple[int, int]
    in_features: int | None
    out_features: int
    kwargs: tuple[tuple[str, object], ...]

    def kernel_shape(self, in_features: int) -> tuple[int, int, int, int]:
        kh, kw = self.kernel_size
        if self.kind == "conv":
            groups = dict(self.kwargs)["groups"]
            return (kh, kw, in_features // groups, self.out_features)
        if self.kind == "transpose":
            return (kh, kw, self.out_features, in_features)
        return (kh, kw, in_features, self.out_features)

    def bias_shape(self, in_features: int) -> tuple[int]:
        if self.kind == "depthwise":
            return (in_features * self.out_features,)
        return (self.out_features,)

    def init_kernel(self, kernel_init, key, in_features: int, param_dtype):
        """A depthwise kernel is initialised as the grouped kernel `(KH, KW, 1,
        C_in * depth_multiplier)` it is (fan-in KH * KW, as for a Flax `Conv`
        with `feature_group_count=C_in`), then reshaped."""
        shape = self.kernel_shape(in_features)
        if self.kind != "depthwise":
            return kernel_init(key, shape, param_dtype)
        kh, kw, c_in, multiplier = shape
        grouped = kernel_init(key, (kh, kw, 1, c_in * multiplier), param_dtype)
        return grouped.reshape(shape)

    def __call__(self, x, kernel, bias, *, dtype, precision):
        """Promotes to `dtype` (Flax's rule), flattens extra leading batch
        axes, runs the function."""
        x, kernel, bias = promote_dtype((x, kernel, bias), dtype=dtype)
        batch_shape = x.shape[:-3]
        if len(batch_shape) > 1:
            x = x.reshape(-1, *x.shape[-3:])
        fn = {
            "conv": conv2d,
            "transpose": conv2d_transpose,
            "depthwise": depthwise_conv2d,
        }[self.kind]
        y = fn(x, kernel, bias, precision=precision, **dict(self.kwargs))
        if len(batch_shape) > 1:
            y = y.reshape(*batch_shape, *y.shape[1:])
        return y


def _positive_int(value, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"`{name}` (={value!r}) must be an int")
    if value < 1:
        raise ValueError(f"`{name}` (={value!r}) must be positive")
    return int(value)


# How messages name the channel counts: NNX takes `in_features` and
# `out_features`; Linen takes `features` and reads the input channels from `x`.
NNX_NAMES = ("`in_features`", "out_features")
LINEN_NAMES = ("the input channels C_in of `x`", "features")


def hashable(value):
    """Lists become tuples (Flax keeps module attributes in hashed graph
    definitions; `jit` needs hashable static arguments)."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    return value


def check_precision(precision):
    """A module's `precision`, checked when it is built; lists become tuples."""
    canonical_precision(precision)
    return hashable(precision)


def input_channels(x_shape, data_format) -> int:
    """`x`'s channel count, its rank checked as the functions check it (a
    module also takes more leading batch axes, flattened for the call)."""
    x_shape = tuple(x_shape)
    return _input(x_shape[-3:] if len(x_shape) > 3 else x_shape, data_format).channels


def _probe_hw(kernel_size, strides, dilation_rate, padding) -> tuple[int, int]:
    """An input size on which every size-independent check can run: the
    kernel fits and every padding mode can pad it."""
    pads = resolve_padding((1, 1), kernel_size, strides, dilation_rate, padding)
    return tuple(
        ((k - 1) * d + 1) * s + max(lo, hi) + 1
        for k, s, d, (lo, hi) in zip(kernel_size, strides, dilation_rate, pads)
    )


def _probe_shape(hw, channels: int, data_format) -> tuple[int, int, int, int]:
    if data_format == "channels_first":
        return (1, channels, *hw)
    return (1, *hw, channels)


def _refuse_flax_padding_modes(padding) -> None:
    """Flax's "CIRCULAR"/"REFLECT" padding strings are a padding mode with
    pads `((k - 1) // 2, k // 2)`; say how to write them here."""
    if not isinstance(padding, str) or padding.lower() not in ("circular", "reflect"):
        return
    mode = padding.lower()
    raise ValueError(
        f"`padding` (={padding!r}) is a Flax padding mode: write "
        f"padding='same', padding_mode='{mode}' (pads by the 'same' rule for "
        f"the stride) or, for Flax's pads ((k - 1) // 2, k // 2) whatever the "
        f"stride, those explicit pads with padding_mode='{mode}'"
    )


def _common(kernel_size, strides, dilation_rate, padding, use_bias, impl):
    """Checks what every layer takes; returns the kernel size, a probe input
    size and the lower-cased `impl`."""
    impl = _check_impl(impl)
    _refuse_flax_padding_modes(padding)
    if not isinstance(use_bias, bool):
        raise TypeError(f"`use_bias` (={use_bias!r}) must be a bool")
    kernel_size = _positive_pair(kernel_size, "kernel_size")
    strides = _positive_pair(strides, "strides")
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate")
    hw = _probe_hw(kernel_size, strides, dilation_rate, padding)
    return kernel_size, hw, impl


def _strings(data_format, padding_mode="zeros"):
    """`data_format` and `padding_mode` lower-cased, as the layer stores them
    (the Keras export compares them)."""
    return (
        choice(data_format, "data_format", DATA_FORMATS),
        choice(padding_mode, "padding_mode", tuple(PADDING_MODES)),
    )


def conv_layer(
    *,
    in_features,
    out_features,
    kernel_size,
    strides,
    padding,
    padding_mode,
    dilation_rate,
    groups,
    data_format,
    use_bias,
    impl,
    names=NNX_NAMES,
) -> Layer:
    """Checks a `Conv2D`'s arguments (`in_features` None: not known yet)."""
    in_name, out_name = names
    if in_features is not None:
        in_features = _positive_int(in_features, "in_features")
    out_features = _positive_int(out_features, out_name)
    groups = _positive_int(groups, "groups")
    for label, n in ((in_name, in_features), (f"`{out_name}`", out_features)):
        if n is not None and n % groups:
            raise ValueError(
                f"{label} (={n}) must be divisible by `groups` (={groups})"
            )
    kernel_size, hw, impl = _common(
        kernel_size, strides, dilation_rate, padding, use_bias, impl
    )
    data_format, padding_mode = _strings(data_format, padding_mode)
    kwargs = dict(
        strides=strides,
        padding=padding,
        padding_mode=padding_mode,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
        impl=impl,
    )
    layer = Layer("conv", kernel_size, in_features, out_features, _items(kwargs))
    c_in = groups if in_features is None else in_features
    conv_spec(
        _probe_shape(hw, c_in, data_format),
        layer.kernel_shape(c_in),
        None,
        **{k: v for k, v in kwargs.items() if k != "impl"},
    )
    return layer


def transpose_layer(
    *,
    in_features,
    out_features,
    kernel_size,
    strides,
    padding,
    output_padding,
    dilation_rate,
    data_format,
    use_bias,
    impl,
    names=NNX_NAMES,
) -> Layer:
    """Checks a `Conv2DTranspose`'s arguments (`in_features` None: not known
    yet)."""
    if in_features is not None:
        in_features = _positive_int(in_features, "in_features")
    out_features = _positive_int(out_features, names[1])
    kernel_size, hw, impl = _common(
        kernel_size, strides, dilation_rate, padding, use_bias, impl
    )
    data_format, _ = _strings(data_format)
    kwargs = dict(
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        impl=impl,
    )
    layer = Layer("transpose", kernel_size, in_features, out_features, _items(kwargs))
    c_in = 1 if in_features is None else in_features
    transpose_spec(
        _probe_shape(hw, c_in, data_format),
        layer.kernel_shape(c_in),
        None,
        **{k: v for k, v in kwargs.items() if k != "impl"},
    )
    return layer


def depthwise_layer(
    *,
    in_features,
    depth_multiplier,
    kernel_size,
    strides,
    padding,
    padding_mode,
    dilation_rate,
    data_format,
    use_bias,
    impl,
) -> Layer:
    """Checks a `DepthwiseConv2D`'s arguments (`in_features` None: not known
    yet)."""
    if in_features is not None:
        in_features = _positive_int(in_features, "in_features")
    depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
    kernel_size, hw, impl = _common(
        kernel_size, strides, dilation_rate, padding, use_bias, impl
    )
    data_format, padding_mode = _strings(data_format, padding_mode)
    kwargs = dict(
        strides=strides,
        padding=padding,
        padding_mode=padding_mode,
        dilation_rate=dilation_rate,
        data_format=data_format,
        impl=impl,
    )
    layer = Layer(
        "depthwise", kernel_size, in_features, depth_multiplier, _items(kwargs)
    )
    c_in = 1 if in_features is None else in_features
    x_shape = _probe_shape(hw, c_in, data_format)
    groups, grouped_shape = depthwise_groups(
        x_shape, layer.kernel_shape(c_in), data_format
    )
    conv_spec(
        x_shape,
        grouped_shape,
        None,
        groups=groups,
        **{k: v for k, v in kwargs.items() if k != "impl"},
    )
    return layer


def _items(kwargs: dict) -> tuple[tuple[str, object], ...]:
    return tuple((k, hashable(v)) for k, v in kwargs.items())


def check_dtype(value, name: str) -> None:
    """`dtype` (None: inferred) and `param_dtype` must be floating dtypes."""
    if value is None and name == "dtype":
        return
    try:
        if value is None:  # numpy would read None as float64
            raise TypeError
        dtype = jnp.dtype(value)
    except TypeError:
        raise TypeError(f"`{name}` (={value!r}) is not a dtype") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`{name}` (={value!r}) must be a floating dtype (float32, "
            f"bfloat16, float16, float64)"
        )
