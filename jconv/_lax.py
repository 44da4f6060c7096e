"""`conv2d` on XLA's convolution primitive."""

from __future__ import annotations

from jax import lax

from jconv._spec import ConvSpec


def conv2d_lax_core(x, kernel_hwio, spec: ConvSpec, precision):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias."""
    layout = "NCHW" if spec.channels_first else "NHWC"
    return lax.conv_general_dilated(
        x,
        kernel_hwio,
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=spec.lhs_dilation,
        rhs_dilation=spec.dilation_rate,
        dimension_numbers=(layout, "HWIO", layout),
        feature_group_count=spec.groups,
        precision=precision,
    )
