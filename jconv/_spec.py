"""Validation and normalisation of every `conv2d` argument, once, at trace time.

`conv_spec` turns user arguments into a hashable `ConvSpec`; the implementations
only ever see a `ConvSpec`, so they share one reading of the arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp

from jconv._padding import Pads, Pair, _is_int, resolve_padding

DATA_FORMATS = ("channels_last", "channels_first")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated 2D convolution, in the terms the implementations use."""

    strides: Pair
    dilation_rate: Pair
    pads: Pads
    groups: int
    channels_first: bool
    batched: bool
    out_hw: Pair


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
) -> ConvSpec:
    """Checks shapes and arguments; raises `ValueError`/`TypeError` naming them."""
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
    if len(kernel_shape) != 4:
        raise ValueError(
            "`kernel` must have rank 4 (KH, KW, C_in // groups, C_out); "
            f"got shape {tuple(kernel_shape)}"
        )
    if not _is_int(groups):
        raise TypeError(f"`groups` (={groups!r}) must be an int")
    if groups < 1:
        raise ValueError(f"`groups` (={groups!r}) must be positive")
    strides = _positive_pair(strides, "strides")
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate")

    c_in = x_shape[1] if channels_first else x_shape[3]
    in_hw = tuple(x_shape[2:4]) if channels_first else tuple(x_shape[1:3])
    kh, kw, k_in, c_out = kernel_shape
    if c_in % groups:
        raise ValueError(
            f"input channels C_in (={c_in}) of `x` (shape {tuple(x_shape)}) must "
            f"be divisible by `groups` (={groups})"
        )
    if c_out % groups:
        raise ValueError(
            f"output channels C_out (={c_out}) of `kernel` (shape "
            f"{tuple(kernel_shape)}) must be divisible by `groups` (={groups})"
        )
    if k_in * groups != c_in:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{tuple(x_shape)}: kernel axis 2 must be C_in // groups "
            f"(={c_in} // {groups} = {c_in // groups}), got {k_in}"
        )
    if min(kh, kw, c_out) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    if bias_shape is not None and tuple(bias_shape) != (c_out,):
        raise ValueError(
            f"`bias` must have shape (C_out,) = ({c_out},); "
            f"got shape {tuple(bias_shape)}"
        )

    pads = resolve_padding(in_hw, (kh, kw), strides, dilation_rate, padding)
    out_hw = []
    for size, k, s, d, (lo, hi) in zip(in_hw, (kh, kw), strides, dilation_rate, pads):
        span = (k - 1) * d + 1
        if size + lo + hi < span:
            raise ValueError(
                f"`kernel` spatial size {(kh, kw)} with `dilation_rate` "
                f"{dilation_rate} spans {span} pixels, more than the padded input "
                f"(input {in_hw}, `padding`={padding!r} -> pads {pads})"
            )
        out_hw.append((size + lo + hi - span) // s + 1)

    return ConvSpec(
        strides=strides,
        dilation_rate=dilation_rate,
        pads=pads,
        groups=int(groups),
        channels_first=channels_first,
        batched=batched,
        out_hw=tuple(out_hw),
    )
