"""`conv2d`'s spec (`jconv._spec.ConvSpec`), for the tests that run a
formulation or a plan directly, below the public functions."""

from __future__ import annotations

from jconv._spec import conv_spec

# `conv2d`'s defaults.
CONV2D_DEFAULTS = dict(
    strides=1, padding="valid", dilation_rate=1, groups=1, data_format="channels_last"
)


def conv2d_spec(x_shape, k_shape, **kwargs):
    """The spec `conv2d(x, kernel, **kwargs)` runs for `x` of `x_shape` and
    `kernel` of `k_shape`, without a bias; `kwargs` may also hold
    `conv_spec`'s `itemsize`."""
    return conv_spec(x_shape, k_shape, None, **{**CONV2D_DEFAULTS, **kwargs})
