"""`conv` as an explicit contraction: strided windows of the padded input
contracted with the kernel by `jnp.einsum`.

Written here for 2D (NHWC, KH * KW taps); 1D and 3D are the same with one
spatial axis or three, a tap per element of the kernel's spatial product.

No convolution primitive (nor `conv_general_dilated_patches`) appears here, so
comparing this implementation with the lax one is a real cross-check. The only
Python loop runs over the KH * KW kernel taps, never over batch or pixels.

`conv2d_einsum_core` is the one window contraction: the transposed convolution
reaches it through `ConvSpec.lhs_dilation` (the input stretched with zeros) and
a flipped kernel, the depthwise one as a grouped convolution.

Tap p = i * KW + j is one strided slice ("window") of the padded input; with
P = KH * KW taps and M = N * H_out * W_out output pixels, three formulations
compute the same sum, and `choose_formulation` picks one from static shapes:

- `"tap_sum"` (depthwise: groups > 1, one input channel per group):
  `y = sum_p window_p * k[p]`, elementwise. There is nothing to contract over
  channels, so a matmul would be a batch of 1-wide products; the tap sum never
  builds the P-fold window buffer.
- `"transposed"` (groups == 1, P * C_in <= `SMALL_CONTRACTION` and
  C_out <= `SMALL_OUTPUT`, e.g. the 1-channel kernel-learning race):
  `(O, P*C) @ (P*C, M)`, `"ko,km->om"`. With tiny contraction and output axes
  the long pixel axis must be the GEMM's last (vectorised) dimension; with more
  output channels (MNIST's first layer, 9 -> 32) im2col wins, because the
  output transpose back to NHWC then dominates.
- `"im2col"` (everything else): windows concatenated on the channel axis with
  taps before channels, HWIO's own memory order, so the kernel reshapes to
  `(P*C, O)` for free and one GEMM `"mk,ko->mo"` does the work (with groups,
  `"mpgc,pcgo->mgo"`). The window buffer is P times the input; when it would
  exceed `WINDOW_BUDGET_BYTES` (128 MiB: the ResNet 3x3 shapes at batch 16
  stay whole) the batch is split into the fewest equal chunks that fit, run one
  after another by `lax.map` under `jax.checkpoint`, so the backward pass
  rebuilds one chunk's windows at a time instead of keeping all of them. That
  bounds peak memory at some cost in speed.

The thresholds were calibrated with `make bench`; the measured figures live in
the README's benchmark section, beside the machine they were measured on.

Backward passes are plain autodiff of these expressions.

The buffer each formulation builds (the windows, or the tap sum's accumulator)
is checked at trace time like the arrays `jconv._spec` checks: one that XLA
cannot represent or no device could hold is refused by a `ValueError`.

An empty output (a batch of no images, or an input axis with no pixels, see
`jconv._spec`) is zeros, built without windows; so are its gradients.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jconv._spec import ConvSpec, check_allocatable, empty_output, spatial_layout

# P * C_in and C_out at or below which the pixel axis goes last in the GEMM
# (1-channel 3x3 and 5x5 kernels: 9, 25, into a few channels).
SMALL_CONTRACTION = 32
SMALL_OUTPUT = 8
# Largest im2col window buffer (bytes) built at once; above it, batch chunks.
WINDOW_BUDGET_BYTES = 128 * 2**20


def choose_formulation(c_in: int, c_out: int, groups: int, kernel_hw) -> str:
    """`"tap_sum"`, `"transposed"` or `"im2col"`: the rule in the module doc."""
    c_group = c_in // groups
    if groups > 1 and c_group == 1:
        return "tap_sum"
    small_k = math.prod(kernel_hw) * c_in <= SMALL_CONTRACTION
    if groups == 1 and small_k and c_out <= SMALL_OUTPUT:
        return "transposed"
    return "im2col"


def batch_chunks(n: int, window_bytes: int) -> int:
    """Fewest chunks dividing `n` whose share of `window_bytes` fits the budget
    (one for an empty batch, whose windows take no bytes)."""
    for chunks in range(1, max(n, 1) + 1):
        if n % chunks == 0 and window_bytes // chunks <= WINDOW_BUDGET_BYTES:
            return chunks
    return n


def _tap_windows(x_padded_nhwc, spec: ConvSpec, kernel_hw):
    """One strided slice `(N, H_out, W_out, C)` of the padded input per tap,
    taps in the kernel's row-major order (the spatial axes are 1 .. rank).

    Tap (i, j) sees input pixel (i * dh + oh * sh, j * dw + ow * sw) at output
    pixel (oh, ow): exactly the cross-correlation of the document, no flip.
    """
    axes = tuple(zip(kernel_hw, spec.strides, spec.dilation_rate, spec.out_hw))

    def cut(a, axis: int):
        if axis > len(axes):
            return [a]
        k, s, d, out = axes[axis - 1]
        windows = []
        for i in range(k):
            part = lax.slice_in_dim(a, i * d, i * d + (out - 1) * s + 1, s, axis=axis)
            windows.extend(cut(part, axis + 1))
        return windows

    return cut(x_padded_nhwc, 1)


def _tap_sum(x_padded_nhwc, k_hwio, spec, precision, preferred):
    """Depthwise: sum over taps of window * k[tap], channel multiplier last."""
    *kernel_hw, _, c_out = k_hwio.shape
    taps, rank = math.prod(kernel_hw), len(kernel_hw)
    c_in = x_padded_nhwc.shape[-1]
    # Accumulate in at least float32: a dot accumulates wide internally, but
    # these are plain adds, and the kernel gradient (a sum over every pixel of
    # the batch) loses ~15% in bfloat16 otherwise.
    # The input is widened once, before it fans out into the taps, so that
    # its gradient (the sum of every tap's share) accumulates wide too.
    # `preferred_element_type` only ever widens it.
    acc = jnp.promote_types(x_padded_nhwc.dtype, jnp.float32)
    if preferred is not None:
        acc = jnp.promote_types(acc, preferred)
    x_wide = x_padded_nhwc.astype(acc)
    ones = (1,) * (rank + 1)
    k_p11cm = k_hwio.astype(acc).reshape(taps, *ones, c_in, c_out // c_in)
    y_nhwcm = None
    for p, win_nhwc in enumerate(_tap_windows(x_wide, spec, kernel_hw)):
        term = win_nhwc[..., None] * k_p11cm[p]
        y_nhwcm = term if y_nhwcm is None else y_nhwcm + term
    y_nhwc = y_nhwcm.reshape(*y_nhwcm.shape[: rank + 1], c_out)
    return y_nhwc.astype(x_padded_nhwc.dtype if preferred is None else preferred)


def _transposed(x_padded_nhwc, k_hwio, spec, precision, preferred):
    """Small P*C: `(O, P*C) @ (P*C, M)`, the pixel axis last in the GEMM."""
    *kernel_hw, c_in, c_out = k_hwio.shape
    taps, rank = math.prod(kernel_hw), len(kernel_hw)
    n = x_padded_nhwc.shape[0]
    out_hw = spec.out_hw
    # (C, H, W, N) keeps H, W on the axes the slicer expects.
    swap = (rank + 1, *range(1, rank + 1), 0)
    x_padded_chwn = jnp.transpose(x_padded_nhwc, swap)
    wins = _tap_windows(x_padded_chwn, spec, kernel_hw)
    cols_km = jnp.stack(wins, axis=0)  # (P, C, H_out, W_out, N)
    cols_km = cols_km.reshape(taps * c_in, math.prod(out_hw) * n)
    y_om = jnp.einsum(
        "ko,km->om",
        k_hwio.reshape(taps * c_in, c_out),
        cols_km,
        precision=precision,
        preferred_element_type=preferred,
    )
    return jnp.transpose(y_om.reshape(c_out, *out_hw, n), swap)


def _im2col(x_padded_nhwc, k_hwio, spec, precision, preferred):
    """Tap-major windows `(M, P*C)` times the kernel `(P*C, O)`, one GEMM."""
    *kernel_hw, c_group, c_out = k_hwio.shape
    taps = math.prod(kernel_hw)
    g = spec.groups
    n = x_padded_nhwc.shape[0]
    out_hw = spec.out_hw
    cols = jnp.concatenate(_tap_windows(x_padded_nhwc, spec, kernel_hw), axis=-1)
    m = n * math.prod(out_hw)
    if g == 1:
        cols_mk = cols.reshape(m, taps * c_group)
        k_ko = k_hwio.reshape(taps * c_group, c_out)
        y_mo = jnp.einsum(
            "mk,ko->mo",
            cols_mk,
            k_ko,
            precision=precision,
            preferred_element_type=preferred,
        )
        return y_mo.reshape(n, *out_hw, c_out)
    # Keras/lax grouping: group k owns input channels [k*Cg, (k+1)*Cg) and
    # output channels [k*Og, (k+1)*Og), so both channel axes split group-major.
    cols_mpgc = cols.reshape(m, taps, g, c_group)
    k_pcgo = k_hwio.reshape(taps, c_group, g, c_out // g)
    y_mgo = jnp.einsum(
        "mpgc,pcgo->mgo",
        cols_mpgc,
        k_pcgo,
        precision=precision,
        preferred_element_type=preferred,
    )
    return y_mgo.reshape(n, *out_hw, c_out)


def _im2col_chunked(x_padded_nhwc, k_hwio, spec, precision, preferred):
    """`_im2col` over batch chunks sized by `WINDOW_BUDGET_BYTES`."""
    *kernel_hw, c_group, _ = k_hwio.shape
    n = x_padded_nhwc.shape[0]
    window_bytes = (
        n
        * math.prod(spec.out_hw)
        * math.prod(kernel_hw)
        * c_group
        * spec.groups
        * x_padded_nhwc.dtype.itemsize
    )
    chunks = batch_chunks(n, window_bytes)
    if chunks == 1:
        return _im2col(x_padded_nhwc, k_hwio, spec, precision, preferred)
    x_chunks = x_padded_nhwc.reshape(chunks, n // chunks, *x_padded_nhwc.shape[1:])
    y_chunks = lax.map(
        jax.checkpoint(lambda xc: _im2col(xc, k_hwio, spec, precision, preferred)),
        x_chunks,
    )
    return y_chunks.reshape(n, *y_chunks.shape[2:])


def _buffer(formulation: str, x_padded_shape, k_hwio_shape, spec, itemsize):
    """`(shape, itemsize)` of the largest buffer `formulation` builds at once."""
    n, c_in = x_padded_shape[0], x_padded_shape[-1]
    *kernel_hw, c_group, c_out = k_hwio_shape
    taps, pixels = math.prod(kernel_hw), math.prod(spec.out_hw)
    if formulation == "tap_sum":
        # the float32+ accumulator
        return (n, *spec.out_hw, c_out), max(itemsize, 4)
    if formulation == "transposed":
        return (taps * c_in, pixels * n), itemsize
    window_bytes = n * pixels * taps * c_group * spec.groups * itemsize
    chunk = n // batch_chunks(n, window_bytes) if window_bytes else n
    return (chunk, *spec.out_hw, taps * c_in), itemsize


FORMULATIONS = {
    "tap_sum": _tap_sum,
    "transposed": _transposed,
    "im2col": _im2col_chunked,
}


def conv2d_einsum_core(
    x, kernel_hwio, spec: ConvSpec, precision, preferred_element_type=None
):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias,
    summed in and returned as `preferred_element_type` (None: `x`'s dtype)."""
    *kernel_hw, _, c_out = kernel_hwio.shape
    empty = empty_output(x, kernel_hwio, spec, preferred_element_type)
    if empty is not None:
        # No window to slice (the padded input may be shorter than the
        # kernel), nothing to sum.
        return empty
    x_nhwc = jnp.moveaxis(x, 1, -1) if spec.channels_first else x
    # Interior padding stretches the input by lhs_dilation - 1 zeros between
    # pixels (a transposed convolution run as a direct one); negative edge pads
    # crop.
    pad_config = [
        (0, 0, 0),
        *((*pad, s - 1) for pad, s in zip(spec.pads, spec.lhs_dilation)),
        (0, 0, 0),
    ]
    x_padded = lax.pad(x_nhwc, jnp.zeros((), x.dtype), pad_config)
    if preferred_element_type is not None and (
        jnp.dtype(preferred_element_type).itemsize > x.dtype.itemsize
    ):
        # Widened before it fans out into the windows, so that its gradient
        # (the sum of every window's share) accumulates wide too, as lax's
        # does: the windows' cotangents would be rounded to `x`'s dtype.
        x_padded = x_padded.astype(preferred_element_type)
    formulation = choose_formulation(x_nhwc.shape[-1], c_out, spec.groups, kernel_hw)
    shape, itemsize = _buffer(
        formulation, x_padded.shape, kernel_hwio.shape, spec, x_padded.dtype.itemsize
    )
    check_allocatable(
        f"its {formulation!r} buffer",
        shape,
        itemsize,
        lambda: (
            f"`impl`='einsum' on an input of shape {x.shape} with a kernel "
            f"of shape ({spatial_layout(kernel_hwio.ndim - 2, 'K')}, C_in // groups, "
            f"C_out) = {kernel_hwio.shape}"
        ),
        hint="; impl='lax' builds no such buffer",
    )
    y_nhwc = FORMULATIONS[formulation](
        x_padded, kernel_hwio, spec, precision, preferred_element_type
    )
    return jnp.moveaxis(y_nhwc, -1, 1) if spec.channels_first else y_nhwc
