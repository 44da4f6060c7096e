"""The one place where a `padding` argument becomes explicit pads.

Both implementations, the output-shape arithmetic and every variant (transposed,
depthwise, padding modes) call these functions, so "same" cannot mean two things
in two places.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp

Pair = tuple[int, int]
# One `(low, high)` pair per spatial axis (1, 2 or 3 of them).
Pads = tuple[Pair, ...]

PADDING_STRINGS = ("valid", "same", "same_lower", "full", "causal")
# Rules a transposed convolution takes: "causal" is a forward convolution's.
TRANSPOSE_PADDING_STRINGS = ("valid", "same", "same_lower", "full")

# How each `padding_mode` fills the border, as `jnp.pad`/`numpy.pad` modes.
PADDING_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}

_PADDING_HELP = (
    "must be 'valid', 'same', 'same_lower', 'full', 'causal', an int, a pair "
    "of ints (pad_h, pad_w) or ((top, bottom), (left, right))"
)
# The same for the other ranks: what "one per axis" means there.
_PADDING_HELP_RANK = {
    1: "must be 'valid', 'same', 'same_lower', 'full', 'causal', an int, one "
    "int per spatial axis (pad_w,) or one (low, high) pair per axis ((left, "
    "right),)",
    3: "must be 'valid', 'same', 'same_lower', 'full', 'causal', an int, one "
    "int per spatial axis (pad_d, pad_h, pad_w) or one (low, high) pair per "
    "axis ((front, back), (top, bottom), (left, right))",
}


def padding_help(rank: int) -> str:
    return _PADDING_HELP_RANK.get(rank, _PADDING_HELP)


# XLA's shapes, strides, pads and byte counts are int64.
INT64_MAX = 2**63 - 1


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def show(value) -> str:
    """`repr(value)`, or a description where Python refuses to print it (an
    int of more than 4300 digits)."""
    try:
        return repr(value)
    except ValueError:
        return f"<{type(value).__name__} too long to print>"


def _explicit_pads(padding, rank: int = 2) -> Pads:
    """Turns `int | (p_1, ..., p_r) | ((lo_1, hi_1), ..., (lo_r, hi_r))`, one
    entry per spatial axis, into `((lo_1, hi_1), ..., (lo_r, hi_r))`."""
    help_text = padding_help(rank)
    if _is_int(padding):
        pads = ((padding, padding),) * rank
    elif isinstance(padding, Sequence) and len(padding) == rank:
        if all(_is_int(p) for p in padding):
            pads = tuple((p, p) for p in padding)
        elif all(
            isinstance(p, Sequence) and len(p) == 2 and all(_is_int(q) for q in p)
            for p in padding
        ):
            pads = tuple(tuple(p) for p in padding)
        else:
            raise ValueError(f"`padding` (={padding!r}) {help_text}")
    else:
        raise ValueError(f"`padding` (={padding!r}) {help_text}")
    pads = tuple(tuple(int(q) for q in p) for p in pads)
    if any(q < 0 for p in pads for q in p):
        raise ValueError(f"`padding` (={show(padding)}) must not be negative")
    if any(q > INT64_MAX for p in pads for q in p):
        raise ValueError(
            f"`padding` (={show(padding)}) must be at most 2**63 - 1 on each "
            f"side: XLA's sizes are 64-bit"
        )
    return pads


def _padding_string(padding, rank: int = 2) -> str | None:
    """The lower-cased padding rule, None for explicit pads; refuses unknown
    strings."""
    if not isinstance(padding, str):
        return None
    rule = padding.lower()
    if rule not in PADDING_STRINGS:
        raise ValueError(f"`padding` (={padding!r}) {padding_help(rank)}")
    return rule


def _span(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def _same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool) -> Pair:
    # TensorFlow's rule: the output has ceil(size / stride) rows. An odd total
    # puts the extra row at the end (bottom/right), or at the start for
    # "same_lower" (lax's SAME_LOWER).
    out = -(-size // stride)
    total = max((out - 1) * stride + _span(kernel, dilation) - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def resolve_padding(
    input_hw: tuple[int, ...],
    kernel_hw: tuple[int, ...],
    strides: tuple[int, ...],
    dilation_rate: tuple[int, ...],
    padding,
) -> Pads:
    """Explicit `(low, high)` pads per spatial axis: the rule of
    `jconv.resolve_padding` (documented there), on checked sizes (one per
    axis, all of one length, the rank)."""
    rank = len(kernel_hw)
    rule = _padding_string(padding, rank)
    if rule is None:
        return _explicit_pads(padding, rank)
    axes = tuple(zip(input_hw, kernel_hw, strides, dilation_rate))
    if rule == "valid":
        return ((0, 0),) * rank
    if rule == "full":
        return tuple((_span(k, d) - 1,) * 2 for _, k, _, d in axes)
    if rule == "causal":
        # Keras' causal padding: every pad before the input, so output i
        # reads inputs up to i (times the stride) and none after.
        return tuple((_span(k, d) - 1, 0) for _, k, _, d in axes)
    return tuple(_same_pads(*axis, lower=rule == "same_lower") for axis in axes)


def transpose_output_size(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding,
    output_padding: int | None,
) -> int:
    """Output length of a transposed convolution along one axis (Keras rule).

    With `span = (kernel - 1) * dilation + 1` and `a = output_padding`:

    - `a` None: `"valid"` gives `size * stride + max(span - stride, 0)`,
      `"same"`/`"same_lower"` give `size * stride`, `"full"` gives
      `size * stride - (stride + span - 2)`.
    - `a` given: `(size - 1) * stride + span - 2 * pad + a` with `pad = 0`
      ("valid"), `span // 2` ("same"), `span - 1` ("full").
    - explicit pads `(lo, hi)`: `(size - 1) * stride + span - lo - hi + a`
      (`a` None counts as 0), the guide's relationship 14.
    """
    span = _span(kernel, dilation)
    rule = padding if isinstance(padding, str) else None
    if rule is None:
        lo, hi = padding
        return (size - 1) * stride + span - lo - hi + (output_padding or 0)
    if output_padding is None:
        if rule == "valid":
            return size * stride + max(span - stride, 0)
        if rule == "full":
            return size * stride - (stride + span - 2)
        return size * stride
    pad = {"valid": 0, "full": span - 1}.get(rule, span // 2)
    return (size - 1) * stride + span - 2 * pad + output_padding


def resolve_transpose_padding(
    input_hw: tuple[int, ...],
    kernel_hw: tuple[int, ...],
    strides: tuple[int, ...],
    dilation_rate: tuple[int, ...],
    padding,
    output_padding: tuple[int, ...] | None,
) -> tuple[tuple[int, ...], Pads]:
    """Output size and pads of a transposed convolution: the rule of
    `jconv.resolve_transpose_padding` (documented there), on checked sizes."""
    rank = len(kernel_hw)
    rule = _padding_string(padding, rank)
    if rule == "causal":
        raise ValueError(
            f"`padding` (={padding!r}) is a forward convolution's rule; a "
            f"transposed convolution takes 'valid', 'same', 'same_lower', "
            f"'full' or explicit pads (Keras' transposed layers refuse "
            f"'causal' too)"
        )
    explicit = None if rule is not None else _explicit_pads(padding, rank)
    out_hw = tuple(
        transpose_output_size(
            size,
            k,
            s,
            d,
            rule if explicit is None else explicit[axis],
            None if output_padding is None else output_padding[axis],
        )
        for axis, (size, k, s, d) in enumerate(
            zip(input_hw, kernel_hw, strides, dilation_rate)
        )
    )
    if explicit is not None:
        return out_hw, explicit
    return out_hw, resolve_padding(out_hw, kernel_hw, strides, dilation_rate, rule)


def pad_spatial(x, pads: Pads, mode: str, h_axis: int):
    """Pads the `len(pads)` spatial axes of `x` (starting at `h_axis`) by
    `mode`.

    `mode` is a `padding_mode`: "zeros", "reflect" (mirror without repeating
    the edge, numpy's "reflect"), "replicate" (repeat the edge, numpy's
    "edge") or "circular" (wrap around as many times as the pad needs,
    numpy's "wrap").
    """
    widths = [(0, 0)] * x.ndim
    widths[h_axis : h_axis + len(pads)] = pads
    return jnp.pad(x, widths, mode=PADDING_MODES[mode])


def fold_spatial(y, pads: Pads, mode: str, h_axis: int):
    """The adjoint (transpose) of `pad_spatial`: folds the border of `y` back.

    `pad_spatial` is linear: each padded pixel is a copy of one pixel of its
    input (or a zero). Its transpose adds every border pixel of `y` onto the
    pixel it was copied from, and drops the interior's frame: `y` of spatial
    size `(H + top + bottom, W + left + right)` gives `(H, W)` (and so on
    for each of the `len(pads)` axes). So
    `<pad_spatial(x), y> == <x, fold_spatial(y)>` for every `x` and `y`.
    Computed by `jax.linear_transpose` of `pad_spatial` itself (slices, flips
    and adds; jittable and differentiable), so the two cannot disagree.

    Example (reflect copies rows 1 and 2 above row 0; fold adds them back):
      >>> import jax.numpy as jnp
      >>> y = jnp.arange(5.0)[:, None]  # padded rows 0..4 of a 3-row x
      >>> fold_spatial(y, ((2, 0), (0, 0)), "reflect", 0)[:, 0]
      Array([2., 4., 4.], dtype=float32)
    """
    shape = list(y.shape)
    for axis, (lo, hi) in enumerate(pads, start=h_axis):
        shape[axis] -= lo + hi
    pad = functools.partial(pad_spatial, pads=pads, mode=mode, h_axis=h_axis)
    (x,) = jax.linear_transpose(pad, jax.ShapeDtypeStruct(tuple(shape), y.dtype))(y)
    return x


def stretched_size(size: int, stride: int) -> int:
    """Length of an axis of `size` pixels stretched by `stride - 1` zeros
    between pixels: `(size - 1) * stride + 1`, and 0 for an empty axis (as
    `lax.pad`'s interior padding and `lax.conv_general_dilated`'s
    `lhs_dilation` stretch it)."""
    return (size - 1) * stride + 1 if size else 0


def stretched_pads(
    input_hw: tuple[int, ...],
    output_hw: tuple[int, ...],
    kernel_hw: tuple[int, ...],
    strides: tuple[int, ...],
    dilation_rate: tuple[int, ...],
    forward_pads: Pads,
) -> Pads:
    """Pads that turn a transposed convolution into a direct one.

    The transposed convolution equals a stride-1 convolution, with the kernel
    flipped and its channel axes swapped, of the input stretched by `stride - 1`
    zeros between pixels and padded by `span - 1 - top` before and whatever
    makes the output `output_hw` long after (the guide's `p' = k - p - 1`, plus
    its `a` at the bottom/right). Either may be negative: then it crops.
    """
    pads = []
    for size, out, k, s, d, (top, _) in zip(
        input_hw, output_hw, kernel_hw, strides, dilation_rate, forward_pads
    ):
        span = _span(k, d)
        lo = span - 1 - top
        stretched = stretched_size(size, s)
        pads.append((lo, out + span - 1 - stretched - lo))
    return tuple(pads)
