"""`conv2d` as an explicit contraction: strided windows of the padded input
contracted with the kernel by `jnp.einsum`.

No convolution primitive (nor `conv_general_dilated_patches`) appears here, so
comparing this implementation with the lax one is a real cross-check. The only
Python loop runs over the KH * KW kernel taps, never over batch or pixels.

`conv2d_einsum_core` is the one window contraction: the transposed convolution
reaches it through `ConvSpec.lhs_dilation` (the input stretched with zeros) and
a flipped kernel, the depthwise one as a grouped convolution.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jconv._spec import ConvSpec


def _tap_windows(x_padded, spec: ConvSpec, kernel_hw, h_axis: int):
    """One strided slice of the padded input per kernel tap (i, j).

    Tap (i, j) sees input pixel (i * dh + oh * sh, j * dw + ow * sw) at output
    pixel (oh, ow): exactly the cross-correlation of the document, no flip.
    """
    (sh, sw), (dh, dw), (ho, wo) = spec.strides, spec.dilation_rate, spec.out_hw
    windows = []
    for i in range(kernel_hw[0]):
        rows = lax.slice_in_dim(
            x_padded, i * dh, i * dh + (ho - 1) * sh + 1, sh, axis=h_axis
        )
        for j in range(kernel_hw[1]):
            windows.append(
                lax.slice_in_dim(
                    rows, j * dw, j * dw + (wo - 1) * sw + 1, sw, axis=h_axis + 1
                )
            )
    return windows


def conv2d_einsum_core(x, kernel_hwio, spec: ConvSpec, precision):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias."""
    kh, kw, c_group, c_out = kernel_hwio.shape
    g = spec.groups
    h_axis = 2 if spec.channels_first else 1
    # Interior padding stretches the input by lhs_dilation - 1 zeros between
    # pixels (a transposed convolution run as a direct one); negative edge pads
    # crop.
    pad_config = [(0, 0, 0)] * 4
    pad_config[h_axis] = (*spec.pads[0], spec.lhs_dilation[0] - 1)
    pad_config[h_axis + 1] = (*spec.pads[1], spec.lhs_dilation[1] - 1)
    x_padded = lax.pad(x, jnp.zeros((), x.dtype), pad_config)

    # Taps stacked last: p = i * KW + j, matching the kernel reshape below.
    windows = jnp.stack(_tap_windows(x_padded, spec, (kh, kw), h_axis), axis=-1)
    # Keras/lax grouping: group k owns input channels [k*Cg, (k+1)*Cg) and output
    # channels [k*Og, (k+1)*Og), so both channel axes split group-major.
    k_pcgo = kernel_hwio.reshape(kh * kw, c_group, g, c_out // g)
    n = x.shape[0]
    ho, wo = spec.out_hw
    if spec.channels_first:
        win_ngchwp = windows.reshape(n, g, c_group, ho, wo, kh * kw)
        y_ngohw = jnp.einsum(
            "ngchwp,pcgo->ngohw", win_ngchwp, k_pcgo, precision=precision
        )
        return y_ngohw.reshape(n, c_out, ho, wo)
    win_nhwgcp = windows.reshape(n, ho, wo, g, c_group, kh * kw)
    y_nhwgo = jnp.einsum("nhwgcp,pcgo->nhwgo", win_nhwgcp, k_pcgo, precision=precision)
    return y_nhwgo.reshape(n, ho, wo, c_out)
