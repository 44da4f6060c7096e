"""An independent float64 reference: explicit loops over output pixels in NumPy
(complex128 for complex arrays), for 1, 2 or 3 spatial axes.

Nothing here comes from jconv: padding rules included, so a shared mistake
cannot hide. The spatial rank is read from the kernel (`kernel.ndim - 2`).
The transposed convolution is a scatter-add loop over input pixels, written
from its definition rather than as a convolution. The `*2d` names are the
2-D functions the older tests call: the same loops at rank 2.
"""

from __future__ import annotations

import numbers

import numpy as np

# How each `padding_mode` fills the border, as `numpy.pad` modes ("wrap"
# wraps around as many times as a pad needs).
NUMPY_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral)


def _per_axis(v, rank: int) -> tuple:
    """An int or `rank` ints as `rank` ints."""
    return (int(v),) * rank if _is_int(v) else tuple(int(a) for a in v)


def _pair(v):
    return _per_axis(v, 2)


def _pads(padding, in_hw, k_hw, strides, dilation, *, rank=None):
    """`(low, high)` pads per spatial axis: of `padding` (a rule, an int,
    one int per axis or one pair per axis) for an input of spatial size
    `in_hw` and a kernel of spatial size `k_hw`. The rank is `len(k_hw)`, or
    `rank`, or the length of a sequence `padding`, or 2 (an int alone)."""
    if rank is None:
        if k_hw is not None:
            rank = len(k_hw)
        elif not _is_int(padding) and not isinstance(padding, str):
            rank = len(padding)
        else:
            rank = 2
    if padding == "valid":
        return ((0, 0),) * rank
    if padding == "full":
        return tuple(((k - 1) * d, (k - 1) * d) for k, d in zip(k_hw, dilation))
    if padding == "causal":  # Keras Conv1D: everything before the input
        return tuple(((k - 1) * d, 0) for k, d in zip(k_hw, dilation))
    if padding in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(in_hw, k_hw, strides, dilation):
            out = -(-size // s)
            need = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pad = (need // 2, need - need // 2)
            pads.append(pad[::-1] if padding == "same_lower" else pad)
        return tuple(pads)
    if _is_int(padding):
        return ((int(padding), int(padding)),) * rank
    if _is_int(padding[0]):
        return tuple((int(p), int(p)) for p in padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _wide(a):
    """`a` in float64, or complex128 if it is complex."""
    a = np.asarray(a)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _channels_last(x, data_format, rank):
    """`x` in float64 (complex128 if complex), batched and channels-last; and
    whether it was unbatched."""
    x = _wide(x)
    unbatched = x.ndim == rank + 1
    if unbatched:
        x = x[None]
    assert x.ndim == rank + 2, (x.shape, rank)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    return x, unbatched


def _from_channels_last(out, bias, data_format, unbatched):
    """The batched channels-last `out` plus `bias`, in the input's layout."""
    if bias is not None:
        out = out + _wide(bias)
    if data_format == "channels_first":
        out = np.moveaxis(out, -1, 1)
    return out[0] if unbatched else out


def _stretch(x, input_dilation):
    """Channels-last batched `x` with `a - 1` zeros between the pixels of
    each spatial axis (`a` its input dilation): size `(size - 1) * a + 1`."""
    sizes = [(n - 1) * a + 1 if n else 0 for n, a in zip(x.shape[1:-1], input_dilation)]
    out = np.zeros((x.shape[0], *sizes, x.shape[-1]), x.dtype)
    out[(slice(None), *(slice(None, None, a) for a in input_dilation))] = x
    return out


def reference_conv(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    input_dilation=1,
    groups=1,
    data_format="channels_last",
    padding_mode="zeros",
):
    """Cross-correlation of any spatial rank, Keras layouts, float64.

    `x` `(N, *S, C_in)` (or `(N, C_in, *S)`, or either without `N`), kernel
    `(*K, C_in // groups, C_out)`. The input is first stretched by
    `input_dilation` (zeros between its pixels), then padded: string rules
    are resolved on the stretched size; `padding_mode` other than "zeros"
    pads with `numpy.pad` ("reflect", "edge" for "replicate", "wrap" for
    "circular", any width). Output pixel `o` sums `kernel[a] @ padded[o * s +
    a * d]` over the taps `a`, per group of channels.
    """
    kernel = _wide(kernel)
    rank = kernel.ndim - 2
    x, unbatched = _channels_last(x, data_format, rank)
    *k_sp, cg, c_out = kernel.shape
    assert cg * groups == x.shape[-1], (kernel.shape, x.shape, groups)
    strides = _per_axis(strides, rank)
    dilation = _per_axis(dilation_rate, rank)
    x = _stretch(x, _per_axis(input_dilation, rank))
    pads = _pads(padding, x.shape[1:-1], k_sp, strides, dilation)
    xp = np.pad(x, ((0, 0), *pads, (0, 0)), mode=NUMPY_MODES[padding_mode])
    spans = [(k - 1) * d + 1 for k, d in zip(k_sp, dilation)]
    out_sp = [(p - span) // s + 1 for p, span, s in zip(xp.shape[1:-1], spans, strides)]
    og = c_out // groups
    out = np.zeros((x.shape[0], *out_sp, c_out), np.result_type(x, kernel))
    for o in np.ndindex(*out_sp):
        window = tuple(
            slice(i * s, i * s + span, d)
            for i, s, span, d in zip(o, strides, spans, dilation)
        )
        for g in range(groups):
            patch = xp[(slice(None), *window, slice(g * cg, (g + 1) * cg))]
            out[(slice(None), *o, slice(g * og, (g + 1) * og))] = np.tensordot(
                patch, kernel[..., g * og : (g + 1) * og], axes=rank + 1
            )
    return _from_channels_last(out, bias, data_format, unbatched)


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
    """`reference_conv` with a 2-D kernel `(KH, KW, C_in // groups, C_out)`."""
    assert np.ndim(kernel) == 4, np.shape(kernel)
    return reference_conv(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        groups=groups,
        data_format=data_format,
        padding_mode=padding_mode,
    )


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
    padded copy holds (`index` -1 is the pixel just before the axis, `size`
    the one just after), None where the copy holds a zero. Circular wraps
    any number of times (`numpy.pad(mode="wrap")`)."""
    if 0 <= index < size:
        return index
    if mode == "zeros":
        return None
    if mode == "reflect":  # -1 -> 1, -2 -> 2, size -> size - 2
        source = -index if index < 0 else 2 * (size - 1) - index
    elif mode == "replicate":  # -1 -> 0, size -> size - 1
        source = min(max(index, 0), size - 1)
    else:  # circular: -1 -> size - 1, size -> 0, -size - 1 -> size - 1
        source = index % size
    assert 0 <= source < size, (index, size, mode)
    return source


def reference_conv_transpose(
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
    """Transposed convolution of any spatial rank by scatter-add, Keras
    layouts, float64.

    Kernel `(*K, C_out // groups, C_in)`. Input pixel `i` adds `kernel[a] @
    x[i]` to output pixel `i * s + a * d - low` (per axis), where `low` are
    the pads the forward convolution of an output-sized input would use;
    group `g` (input channels `g*C_in/G ...`) adds its block of the kernel to
    output channels `g*C_out/G ...`. A position outside the output is a
    pixel of the forward convolution's padded input: with "zeros" dropped,
    otherwise added onto the pixel that `padding_mode` copies there
    (`_source`).
    """
    kernel = _wide(kernel)
    rank = kernel.ndim - 2
    x, unbatched = _channels_last(x, data_format, rank)
    in_sp = x.shape[1:-1]
    *k_sp, c_group, c_in = kernel.shape
    c_out, ig = c_group * groups, c_in // groups
    strides = _per_axis(strides, rank)
    dilation = _per_axis(dilation_rate, rank)
    ops = (None,) * rank if output_padding is None else _per_axis(output_padding, rank)
    explicit = (
        None
        if isinstance(padding, str)
        else _pads(padding, None, None, None, None, rank=rank)
    )
    out_sp = tuple(
        _transpose_out_size(
            size, k, s, d, padding if explicit is None else explicit[axis], op
        )
        for axis, (size, k, s, d, op) in enumerate(
            zip(in_sp, k_sp, strides, dilation, ops)
        )
    )
    lows = [lo for lo, _ in explicit or _pads(padding, out_sp, k_sp, strides, dilation)]
    out = np.zeros((x.shape[0], *out_sp, c_out), np.result_type(x, kernel))
    for i in np.ndindex(*in_sp):
        for a in np.ndindex(*k_sp):
            target = tuple(
                _source(ii * s + aa * d - lo, size, padding_mode)
                for ii, aa, s, d, lo, size in zip(i, a, strides, dilation, lows, out_sp)
            )
            if None in target:
                continue
            for g in range(groups):
                ins = slice(g * ig, (g + 1) * ig)
                outs = slice(g * c_group, (g + 1) * c_group)
                out[(slice(None), *target, outs)] += (
                    x[(slice(None), *i, ins)] @ kernel[(*a, slice(None), ins)].T
                )
    return _from_channels_last(out, bias, data_format, unbatched)


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
    """`reference_conv_transpose` with a 2-D kernel `(KH, KW, C_out //
    groups, C_in)`: input pixel `(i, j)` adds `kernel[a, b] @ x[i, j]` to
    output pixel `(i*sh + a*dh - top, j*sw + b*dw - left)`."""
    assert np.ndim(kernel) == 4, np.shape(kernel)
    return reference_conv_transpose(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        output_padding=output_padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        groups=groups,
        padding_mode=padding_mode,
    )


def reference_depthwise_conv(
    x,
    kernel,
    bias=None,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    input_dilation=1,
    data_format="channels_last",
    padding_mode="zeros",
):
    """Depthwise convolution of any spatial rank, kernel `(*K, C_in, M)`:
    channel `c` with filter `m` gives output channel `c * M + m`. One
    single-channel `reference_conv` per (channel, filter) pair, float64."""
    x = _wide(x)
    kernel = _wide(kernel)
    rank = kernel.ndim - 2
    unbatched = x.ndim == rank + 1
    c_axis = (0 if unbatched else 1) if data_format == "channels_first" else -1
    c_in, m = kernel.shape[-2:]
    outs = []
    for c in range(c_in):
        x_c = np.take(x, [c], axis=c_axis)
        for f in range(m):
            outs.append(
                reference_conv(
                    x_c,
                    kernel[..., c : c + 1, f : f + 1],
                    strides=strides,
                    padding=padding,
                    dilation_rate=dilation_rate,
                    input_dilation=input_dilation,
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
    """`reference_depthwise_conv` with a 2-D kernel `(KH, KW, C_in, M)`."""
    assert np.ndim(kernel) == 4, np.shape(kernel)
    return reference_depthwise_conv(
        x,
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        padding_mode=padding_mode,
    )


def reference_separable_conv(
    x,
    depthwise_kernel,
    pointwise_kernel,
    bias=None,
    *,
    data_format="channels_last",
    **kwargs,
):
    """The depthwise loop reference (`kwargs`: its keywords), then the loop
    1x...x1 convolution by `pointwise_kernel` `((1,) * r + (C_in * M,
    C_out))`, then the bias; float64."""
    y = reference_depthwise_conv(x, depthwise_kernel, data_format=data_format, **kwargs)
    return reference_conv(y, pointwise_kernel, bias, data_format=data_format)
