"""An independent float64 reference: explicit loops over output pixels in NumPy.

Nothing here comes from jconv: padding rules included, so a shared mistake
cannot hide.
"""

from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pads(padding, in_hw, k_hw, strides, dilation):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for size, k, s, d in zip(in_hw, k_hw, strides, dilation):
            out = -(-size // s)
            need = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((need // 2, need - need // 2))
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def reference_conv2d(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    groups=1,
    data_format="channels_last",
):
    """Cross-correlation, Keras layouts, computed in float64."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    n, h, w, c = x.shape
    kh, kw, cg, c_out = kernel.shape
    assert cg * groups == c
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation_rate)
    (top, bottom), (left, right) = _pads(padding, (h, w), (kh, kw), (sh, sw), (dh, dw))
    xp = np.zeros((n, h + top + bottom, w + left + right, c))
    xp[:, top : top + h, left : left + w] = x
    ho = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    wo = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    og = c_out // groups
    out = np.zeros((n, ho, wo, c_out))
    for oh in range(ho):
        for ow in range(wo):
            for g in range(groups):
                patch = xp[
                    :,
                    oh * sh : oh * sh + (kh - 1) * dh + 1 : dh,
                    ow * sw : ow * sw + (kw - 1) * dw + 1 : dw,
                    g * cg : (g + 1) * cg,
                ]
                out[:, oh, ow, g * og : (g + 1) * og] = np.tensordot(
                    patch, kernel[..., g * og : (g + 1) * og], axes=3
                )
    if bias is not None:
        out += np.asarray(bias, np.float64)
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out[0] if unbatched else out
