"""Validation and normalisation of every convolution argument, once, at trace
time.

`conv_spec` (and its variants `transpose_spec`, `depthwise_groups`) turn user
arguments into a hashable `ConvSpec`; the implementations only ever see a
`ConvSpec`, so they share one reading of the arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp

from jconv._padding import (
    PADDING_MODES,
    Pads,
    Pair,
    _is_int,
    resolve_padding,
    resolve_transpose_padding,
    stretched_pads,
)

DATA_FORMATS = ("channels_last", "channels_first")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated 2D convolution, in the terms the implementations use.

    `lhs_dilation` stretches the input by `lhs_dilation - 1` zeros between
    pixels before padding (how a transposed convolution runs as a direct one);
    pads may then be negative, which crops. `padding_mode` says how `pads` are
    filled; the implementations only ever see "zeros" (`conv2d` pads other
    modes itself first).
    """

    strides: Pair
    dilation_rate: Pair
    pads: Pads
    groups: int
    channels_first: bool
    batched: bool
    out_hw: Pair
    lhs_dilation: Pair = (1, 1)
    padding_mode: str = "zeros"


@dataclasses.dataclass(frozen=True)
class _Input:
    """What the input's shape says, once its rank and format are checked."""

    channels_first: bool
    batched: bool
    shape: tuple[int, ...]  # always batched
    channels: int
    hw: Pair


def _positive_pair(value, name: str) -> Pair:
    if _is_int(value):
        pair = (value, value)
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        pair = tuple(value)
    else:
        raise TypeError(f"`{name}` (={value!r}) must be an int or a pair of ints")
    pair = tuple(int(v) for v in pair)
    if any(v < 1 for v in pair):
        raise ValueError(f"`{name}` (={value!r}) must be positive")
    return pair


def _check_floating(array, name: str) -> None:
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` has dtype {array.dtype}; it must be a floating dtype "
            f"(float32, bfloat16, float16, float64): cast it, e.g. "
            f"`{name}.astype(jnp.float32)`"
        )


def _input(x_shape, data_format) -> _Input:
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` (={data_format!r}) must be one of {DATA_FORMATS}"
        )
    channels_first = data_format == "channels_first"
    layout = "(N, C_in, H, W)" if channels_first else "(N, H, W, C_in)"
    batched = len(x_shape) == 4
    if len(x_shape) == 3:
        x_shape = (1, *x_shape)
    elif len(x_shape) != 4:
        raise ValueError(
            f"`x` must have rank 4 {layout} or rank 3 without the batch axis "
            f"(data_format={data_format!r}); got shape {tuple(x_shape)}"
        )
    x_shape = tuple(x_shape)
    return _Input(
        channels_first=channels_first,
        batched=batched,
        shape=x_shape,
        channels=x_shape[1] if channels_first else x_shape[3],
        hw=x_shape[2:4] if channels_first else x_shape[1:3],
    )


def _check_kernel_rank(kernel_shape, layout: str) -> None:
    if len(kernel_shape) != 4:
        raise ValueError(
            f"`kernel` must have rank 4 {layout}; got shape {tuple(kernel_shape)}"
        )


def _check_bias(bias_shape, c_out: int) -> None:
    if bias_shape is not None and tuple(bias_shape) != (c_out,):
        raise ValueError(
            f"`bias` must have shape (C_out,) = ({c_out},); "
            f"got shape {tuple(bias_shape)}"
        )


def _output_hw(in_hw, kernel_hw, strides, dilation_rate, pads, padding) -> Pair:
    """Per axis `(size + lo + hi - span) // stride + 1`, the kernel must fit."""
    out_hw = []
    for size, k, s, d, (lo, hi) in zip(in_hw, kernel_hw, strides, dilation_rate, pads):
        span = (k - 1) * d + 1
        if size + lo + hi < span:
            raise ValueError(
                f"`kernel` spatial size {tuple(kernel_hw)} with `dilation_rate` "
                f"{dilation_rate} spans {span} pixels, more than the padded input "
                f"(input {tuple(in_hw)}, `padding`={padding!r} -> pads {pads})"
            )
        out_hw.append((size + lo + hi - span) // s + 1)
    return tuple(out_hw)


# How far each mode can pad an axis of length `size`.
_MODE_LIMITS = {
    "reflect": (lambda size: size - 1, "size - 1 (reflect repeats no edge pixel)"),
    "circular": (lambda size: size, "size (circular wraps around once)"),
}


def _check_padding_mode(padding_mode, pads: Pads, in_hw: Pair, padding) -> None:
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(
            f"`padding_mode` (={padding_mode!r}) must be one of {tuple(PADDING_MODES)}"
        )
    if padding_mode not in _MODE_LIMITS:
        return
    limit, why = _MODE_LIMITS[padding_mode]
    for size, pair in zip(in_hw, pads):
        if max(pair) > limit(size):
            raise ValueError(
                f"`padding_mode` (={padding_mode!r}) cannot pad an axis of "
                f"{size} pixels by {max(pair)}: at most {why}; `padding`="
                f"{padding!r} gives pads {pads} for input {tuple(in_hw)}"
            )


def conv_spec(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    strides,
    padding,
    dilation_rate,
    groups,
    data_format,
    padding_mode="zeros",
) -> ConvSpec:
    """Checks shapes and arguments; raises `ValueError`/`TypeError` naming them."""
    x = _input(x_shape, data_format)
    _check_kernel_rank(kernel_shape, "(KH, KW, C_in // groups, C_out)")
    if not _is_int(groups):
        raise TypeError(f"`groups` (={groups!r}) must be an int")
    if groups < 1:
        raise ValueError(f"`groups` (={groups!r}) must be positive")
    strides = _positive_pair(strides, "strides")
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate")

    kh, kw, k_in, c_out = kernel_shape
    if x.channels % groups:
        raise ValueError(
            f"input channels C_in (={x.channels}) of `x` (shape {x.shape}) must "
            f"be divisible by `groups` (={groups})"
        )
    if c_out % groups:
        raise ValueError(
            f"output channels C_out (={c_out}) of `kernel` (shape "
            f"{tuple(kernel_shape)}) must be divisible by `groups` (={groups})"
        )
    if k_in * groups != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis 2 must be C_in // groups "
            f"(={x.channels} // {groups} = {x.channels // groups}), got {k_in}"
        )
    if min(kh, kw, c_out) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    _check_bias(bias_shape, c_out)

    pads = resolve_padding(x.hw, (kh, kw), strides, dilation_rate, padding)
    _check_padding_mode(padding_mode, pads, x.hw, padding)
    return ConvSpec(
        strides=strides,
        dilation_rate=dilation_rate,
        pads=pads,
        groups=int(groups),
        channels_first=x.channels_first,
        batched=x.batched,
        out_hw=_output_hw(x.hw, (kh, kw), strides, dilation_rate, pads, padding),
        padding_mode=padding_mode,
    )


def _output_padding_pair(output_padding, strides: Pair) -> Pair | None:
    if output_padding is None:
        return None
    if _is_int(output_padding):
        pair = (output_padding, output_padding)
    elif (
        isinstance(output_padding, Sequence)
        and not isinstance(output_padding, str)
        and len(output_padding) == 2
        and all(_is_int(v) for v in output_padding)
    ):
        pair = tuple(int(v) for v in output_padding)
    else:
        raise TypeError(
            f"`output_padding` (={output_padding!r}) must be None, an int or a "
            f"pair of ints"
        )
    if any(a < 0 for a in pair):
        raise ValueError(f"`output_padding` (={output_padding!r}) must not be negative")
    if any(a >= s for a, s in zip(pair, strides)):
        raise ValueError(
            f"`output_padding` (={output_padding!r}) must be smaller than "
            f"`strides` (={strides}) on each axis"
        )
    return pair


def transpose_spec(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    strides,
    padding,
    output_padding,
    dilation_rate,
    data_format,
) -> ConvSpec:
    """Checks a transposed convolution's arguments; returns the spec of the
    equivalent direct convolution (stride 1 over the stretched input, which the
    kernel, flipped and with its channel axes swapped, runs over)."""
    x = _input(x_shape, data_format)
    _check_kernel_rank(kernel_shape, "(KH, KW, C_out, C_in)")
    strides = _positive_pair(strides, "strides")
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate")
    output_padding = _output_padding_pair(output_padding, strides)
    kh, kw, c_out, k_in = kernel_shape
    if k_in != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis 3 must be C_in (={x.channels}), got {k_in}"
        )
    if min(kh, kw, c_out) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    _check_bias(bias_shape, c_out)

    kernel_hw = (kh, kw)
    out_hw, forward_pads = resolve_transpose_padding(
        x.hw, kernel_hw, strides, dilation_rate, padding, output_padding
    )
    if min(out_hw) < 1:
        raise ValueError(
            f"the transposed convolution's output {out_hw} is empty: input "
            f"{x.hw}, `kernel` spatial size {kernel_hw}, `strides` {strides}, "
            f"`dilation_rate` {dilation_rate}, `padding`={padding!r}, "
            f"`output_padding`={output_padding}"
        )
    # The adjoint property holds by construction only if the convolution it is
    # the adjoint of maps the output size back to the input size.
    back = _output_hw(out_hw, kernel_hw, strides, dilation_rate, forward_pads, padding)
    if back != x.hw:
        raise ValueError(
            f"`output_padding` (={output_padding}) with `padding`={padding!r} "
            f"gives an output of {out_hw}, but a convolution of that size with "
            f"these `strides` {strides}, `padding` and `dilation_rate` has "
            f"{back} pixels, not the input's {x.hw}, so no convolution has "
            f"this transposed convolution as its adjoint (Keras on TensorFlow "
            f"refuses it too): use output_padding=None, an odd kernel, a "
            f"non-zero output_padding or explicit padding"
        )
    return ConvSpec(
        strides=(1, 1),
        dilation_rate=dilation_rate,
        pads=stretched_pads(
            x.hw, out_hw, kernel_hw, strides, dilation_rate, forward_pads
        ),
        groups=1,
        channels_first=x.channels_first,
        batched=x.batched,
        out_hw=out_hw,
        lhs_dilation=strides,
    )


def depthwise_groups(
    x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], data_format
) -> tuple[int, tuple[int, int, int, int]]:
    """Checks a depthwise kernel `(KH, KW, C_in, depth_multiplier)` against `x`;
    returns the `groups` and kernel shape of the equal grouped convolution."""
    x = _input(x_shape, data_format)
    _check_kernel_rank(kernel_shape, "(KH, KW, C_in, depth_multiplier)")
    kh, kw, k_in, multiplier = kernel_shape
    if min(kernel_shape) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    if k_in != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis 2 must be C_in (={x.channels}), got {k_in}"
        )
    return x.channels, (kh, kw, 1, x.channels * multiplier)
