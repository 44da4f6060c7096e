"""The one place where a `padding` argument becomes explicit pads.

Both implementations, the output-shape arithmetic and every later variant call
`resolve_padding`, so "same" cannot mean two things in two places.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]

PADDING_STRINGS = ("valid", "same")

_PADDING_HELP = (
    "must be 'valid', 'same', an int, a pair of ints (pad_h, pad_w) or "
    "((top, bottom), (left, right))"
)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _explicit_pads(padding) -> Pads:
    """Turns `int | (ph, pw) | ((t, b), (l, r))` into `((t, b), (l, r))`."""
    if _is_int(padding):
        pads = ((padding, padding), (padding, padding))
    elif isinstance(padding, Sequence) and len(padding) == 2:
        if all(_is_int(p) for p in padding):
            ph, pw = padding
            pads = ((ph, ph), (pw, pw))
        elif all(
            isinstance(p, Sequence) and len(p) == 2 and all(_is_int(q) for q in p)
            for p in padding
        ):
            pads = tuple(tuple(p) for p in padding)
        else:
            raise ValueError(f"`padding` (={padding!r}) {_PADDING_HELP}")
    else:
        raise ValueError(f"`padding` (={padding!r}) {_PADDING_HELP}")
    pads = tuple(tuple(int(q) for q in p) for p in pads)
    if any(q < 0 for p in pads for q in p):
        raise ValueError(f"`padding` (={padding!r}) must not be negative")
    return pads


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> Pair:
    # TensorFlow's rule: the output has ceil(size / stride) rows; odd padding
    # puts the extra row at the end (bottom/right).
    span = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    input_hw: Pair,
    kernel_hw: Pair,
    strides: Pair,
    dilation_rate: Pair,
    padding,
) -> Pads:
    """Explicit `((top, bottom), (left, right))` pads for a 2D convolution.

    Args:
      input_hw: spatial size `(H, W)` of the input.
      kernel_hw: spatial size `(KH, KW)` of the (undilated) kernel.
      strides: `(stride_h, stride_w)`.
      dilation_rate: `(dilation_h, dilation_w)`.
      padding: `"valid"`, `"same"` (case-insensitive; TensorFlow/Keras rule: the
        odd extra row/column goes at the bottom/right), an int, a pair
        `(pad_h, pad_w)` or `((top, bottom), (left, right))`.

    Returns:
      `((top, bottom), (left, right))` as Python ints.

    Raises:
      ValueError: unknown padding string, malformed or negative explicit padding.

    Example:
      >>> resolve_padding((5, 5), (4, 4), (2, 2), (1, 1), "same")
      ((1, 2), (1, 2))
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return tuple(
                _same_pads(*args)
                for args in zip(input_hw, kernel_hw, strides, dilation_rate)
            )
        raise ValueError(f"`padding` (={padding!r}) {_PADDING_HELP}")
    return _explicit_pads(padding)
