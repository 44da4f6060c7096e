"""An independent float64 reference: explicit loops over output pixels in NumPy
(complex128 for complex arrays).

Nothing here comes from jconv: padding rules included, so a shared mistake
cannot hide. The transposed convolution is a scatter-add loop over input
pixels, written from its definition rather than as a convolution.
"""

from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pads(padding, in_hw, k_hw, strides, dilation):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "full":
        return tuple(((k - 1) * d, (k - 1) * d) for k, d in zip(k_hw, dilation))
    if padding in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(in_hw, k_hw, strides, dilation):
            out = -(-size // s)
            need = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pad = (need // 2, need - need // 2)
            pads.append(pad[::-1] if padding == "same_lower" else pad)
        return tuple(pads)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def _wide(a):
    """`a` in float64, or complex128 if it is complex."""
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _nhwc(x, data_format):
    """`x` in float64 (complex128 if complex), batched and channels-last; and
    whether it was unbatched."""
    x = _wide(x)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    return x, unbatched


def _from_nhwc(out, bias, data_format, unbatched):
    """The batched channels-last `out` plus `bias`, in the input's layout."""
    if bias is not None:
        out = out + _wide(bias)
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out[0] if unbatched else out


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
    padding_mode="zeros",
):
    """Cross-correlation, Keras layouts, computed in float64.

    `padding_mode` other than "zeros" pads with `numpy.pad` ("reflect",
    "edge" for "replicate", "wrap" for "circular").
    """
    x, unbatched = _nhwc(x, data_format)
    kernel = _wide(kernel)
    n, h, w, c = x.shape
    kh, kw, cg, c_out = kernel.shape
    assert cg * groups == c
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation_rate)
    (top, bottom), (left, right) = _pads(padding, (h, w), (kh, kw), (sh, sw), (dh, dw))
    numpy_mode = {
        "zeros": "constant",
        "reflect": "reflect",
        "replicate": "edge",
        "circular": "wrap",
    }[padding_mode]
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=numpy_mode)
    ho = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    wo = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    og = c_out // groups
    out = np.zeros((n, ho, wo, c_out), np.result_type(x, kernel))
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
    return _from_nhwc(out, bias, data_format, unbatched)


def _transpose_out_size(size, k, s, d, padding, output_padding):
    """Keras' `Conv2DTranspose` output length; explicit pads as in PyTorch."""
    span = (k - 1) * d + 1
    if not isinstance(padding, str):
        lo, hi = padding
        return (size - 1) * s + span - lo - hi + (output_padding or 0)
    if output_padding is None:
        return {
            "valid": size * s + max(span - s, 0),
            "full": size * s - (s + span - 2),
        }.get(padding, size * s)
    pad = {"valid": 0, "full": span - 1}.get(padding, span // 2)
    return (size - 1) * s + span - 2 * pad + output_padding


def _source(index, size, mode):
    """The pixel of an axis of `size` pixels that position `index` of its
    padded copy holds (`index` -1 is the row just above the axis, `size` the
    one just below), None where the copy holds a zero."""
    if 0 <= index < size:
        return index
    if mode == "zeros":
        return None
    if mode == "reflect":  # -1 -> 1, -2 -> 2, size -> size - 2
        source = -index if index < 0 else 2 * (size - 1) - index
    elif mode == "replicate":  # -1 -> 0, size -> size - 1
        source = min(max(index, 0), size - 1)
    else:  # circular: -1 -> size - 1, size -> 0
        source = index % size
    assert 0 <= source < size, (index, size, mode)
    return source


def reference_conv2d_transpose(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    output_padding=None,
    dilation_rate=1,
    data_format="channels_last",
    groups=1,
    padding_mode="zeros",
):
    """Transposed convolution by scatter-add, Keras layouts, float64.

    Kernel `(KH, KW, C_out // groups, C_in)`. Input pixel `(i, j)` adds
    `kernel[a, b] @ x[i, j]` to output pixel `(i*sh + a*dh - top,
    j*sw + b*dw - left)`, where `top`/`left` are the pads the forward
    convolution of an output-sized input would use; group `g` (input
    channels `g*C_in/G ...`) adds its block of the kernel to output channels
    `g*C_out/G ...`. A position outside the output is a pixel of the forward
    convolution's padded input: with "zeros" dropped, otherwise added onto the
    pixel that `padding_mode` copies there (`_source`).
    """
    x, unbatched = _nhwc(x, data_format)
    kernel = _wide(kernel)
    n, h, w, _ = x.shape
    kh, kw, c_group, c_in = kernel.shape
    c_out, ig = c_group * groups, c_in // groups
    strides, dilation = _pair(strides), _pair(dilation_rate)
    ops = (None, None) if output_padding is None else _pair(output_padding)
    explicit = (
        None if isinstance(padding, str) else _pads(padding, None, None, None, None)
    )
    out_hw = tuple(
        _transpose_out_size(
            size, k, s, d, padding if explicit is None else explicit[axis], op
        )
        for axis, (size, k, s, d, op) in enumerate(
            zip((h, w), (kh, kw), strides, dilation, ops)
        )
    )
    (top, _), (left, _) = explicit or _pads(
        padding, out_hw, (kh, kw), strides, dilation
    )
    (sh, sw), (dh, dw) = strides, dilation
    out = np.zeros((n, *out_hw, c_out), np.result_type(x, kernel))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    p, q = i * sh + a * dh - top, j * sw + b * dw - left
                    p = _source(p, out_hw[0], padding_mode)
                    q = _source(q, out_hw[1], padding_mode)
                    if p is None or q is None:
                        continue
                    for g in range(groups):
                        ins, outs = (
                            slice(g * ig, (g + 1) * ig),
                            slice(g * c_group, (g + 1) * c_group),
                        )
                        out[:, p, q, outs] += x[:, i, j, ins] @ kernel[a, b, :, ins].T
    return _from_nhwc(out, bias, data_format, unbatched)


def reference_depthwise_conv2d(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    data_format="channels_last",
    padding_mode="zeros",
):
    """Depthwise convolution, kernel `(KH, KW, C_in, M)`: channel `c` with
    filter `m` gives output channel `c * M + m`. One single-channel
    `reference_conv2d` per (channel, filter) pair, float64."""
    x = _wide(x)
    kernel = _wide(kernel)
    c_axis = 1 if data_format == "channels_first" else -1
    _, _, c_in, m = kernel.shape
    outs = []
    for c in range(c_in):
        x_c = np.take(x, [c], axis=c_axis)
        for f in range(m):
            outs.append(
                reference_conv2d(
                    x_c,
                    kernel[:, :, c : c + 1, f : f + 1],
                    strides=strides,
                    padding=padding,
                    dilation_rate=dilation_rate,
                    data_format=data_format,
                    padding_mode=padding_mode,
                )
            )
    out = np.concatenate(outs, axis=c_axis)
    if bias is not None:
        shape = [1] * out.ndim
        shape[c_axis] = -1
        out = out + _wide(bias).reshape(shape)
    return out
