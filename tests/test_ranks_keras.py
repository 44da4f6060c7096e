"""Live cross-checks of the 1-D and 3-D convolutions against Keras on its
TensorFlow backend (`_keras.py`): `Conv1D` (causal, dilated, strided,
grouped), `Conv3D`, `Conv1DTranspose`, `Conv3DTranspose`, `DepthwiseConv1D`
and `SeparableConv1D`, each holding the kernels and bias jconv's functional
API (`jconv.conv`, `conv_transpose`, `depthwise_conv`, `separable_conv`) is
given.

Two comparisons per case and implementation, as test_keras.py's: on
small-integer data, where every sum is exact in float32, to the last bit; on
standard-normal data at `precision="highest"` within `2 gamma_n
sum|products|` (test_ranks.py's counts). The FFT, inexact, within its own
bound plus Keras' float32 error. Layers TensorFlow's CPU kernels lack
without oneDNN (channels_first, dilated transposed convolutions) run
through XLA on every CPU (`call`); where the output's last axis equals its
channels, Keras' channels_first bias lands on it (`_keras.bias_lands_on_width`)
and is moved back.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from _grid import case_id
from _keras import bias_lands_on_width, built
from _tol import assert_fft_close, assert_sums_close, sum_bound
from test_ranks import (
    C_OUT,
    CF,
    CL,
    CONV,
    DEPTHWISE,
    ONEDNN,
    SEPARABLE,
    TRANSPOSE,
    absolute,
    per_axis,
    per_rank,
    plane,
    taps_first,
)

import jconv

TRANSPOSED_LAYERS = (keras.layers.Conv1DTranspose, keras.layers.Conv3DTranspose)
# Keras works around TensorFlow's missing CPU kernels for these itself.
SELF_TRANSPOSING = (keras.layers.DepthwiseConv1D, keras.layers.SeparableConv1D)


def needs_xla(layer) -> bool:
    """Whether TensorFlow's CPU kernels without oneDNN lack `layer`'s op: a
    channels_first convolution (NCW, NCDHW) or a dilated transposed one."""
    if isinstance(layer, SELF_TRANSPOSING):
        return False
    dilated = max(layer.dilation_rate) > 1
    transposed = isinstance(layer, TRANSPOSED_LAYERS)
    return layer.data_format == CF or (transposed and dilated)


def call(layer, x) -> np.ndarray:
    if needs_xla(layer):
        return np.asarray(tf.function(layer, jit_compile=True)(x))
    return np.asarray(layer(x))


def undo_bias_quirk(expected, bias, data_format):
    """`_keras.undo_bias_quirk` for any rank: the bias moved from the last
    axis back to the channel axis where `bias_lands_on_width`."""
    if bias_lands_on_width(data_format, expected.shape, bias):
        return expected - bias + bias.reshape(-1, *[1] * (expected.ndim - 2))
    return expected


def keras_layer(family, case, input_shape, kernels, bias):
    """The Keras layer of `family` and `case`'s rank, built for
    `input_shape` and holding `kernels` and `bias`."""
    r = case["rank"]
    kwargs = dict(
        kernel_size=per_axis(case["kernel"], r),
        strides=per_rank(case["strides"], r),
        padding=case["padding"],
        dilation_rate=per_rank(case["dilation_rate"], r),
        data_format=case["data_format"],
        use_bias=bias is not None,
    )
    if family is CONV:
        cls = {1: keras.layers.Conv1D, 3: keras.layers.Conv3D}[r]
        kwargs.update(filters=C_OUT, groups=case["groups"])
    elif family is TRANSPOSE:
        cls = {1: keras.layers.Conv1DTranspose, 3: keras.layers.Conv3DTranspose}[r]
        kwargs.update(filters=C_OUT, output_padding=per_rank(case["output_padding"], r))
    elif family is DEPTHWISE:
        cls = keras.layers.DepthwiseConv1D
        kwargs.update(depth_multiplier=case["depth_multiplier"])
    else:
        cls = keras.layers.SeparableConv1D
        kwargs.update(filters=C_OUT, depth_multiplier=case["depth_multiplier"])
    weights = [*kernels] if bias is None else [*kernels, bias]
    return built(cls, weights, input_shape, **kwargs)


FAMILIES = {f.name: f for f in (CONV, TRANSPOSE, DEPTHWISE, SEPARABLE)}


@functools.cache
def keras_output(family_name, items, integer):
    """Keras' answer on the case `dict(items)`'s data (the same for every
    implementation: computed once)."""
    family, case = FAMILIES[family_name], dict(items)
    x, kernels, bias = family.arrays(case, integer=integer, seed=4)
    layer = keras_layer(family, case, x.shape, kernels, bias)
    return undo_bias_quirk(call(layer, x), bias, case["data_format"])


def case_axes(family, rank, kernel, strides, dilation, padding, data_format, size,
              bias, **more):  # fmt: skip
    case = dict(
        rank=rank,
        kernel=kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        groups=more.pop("groups", 1),
        data_format=data_format,
        size=size,
        bias=bias,
    )
    return family, dict(case, **more)


# Keras takes "valid" and "same" (and "causal" in Conv1D), never strides and
# dilation both above 1 but in SeparableConv1D.
CASES = [
    # Conv1D: causal with dilation 1-3, causal with strides, channels_first,
    # groups; "same" and "valid".
    case_axes(CONV, 1, (3,), 1, 1, "causal", CL, (9,), True),
    case_axes(CONV, 1, (3,), 1, 2, "causal", CL, (10,), True, groups=2),
    case_axes(CONV, 1, (2,), 1, 3, "causal", CF, (9,), False),
    case_axes(CONV, 1, (4,), 2, 1, "causal", CL, (9,), True, groups=2),
    case_axes(CONV, 1, (5,), 3, 1, "causal", CF, (11,), True),
    case_axes(CONV, 1, (3,), 3, 1, "same", CF, (8,), True),
    case_axes(CONV, 1, (3,), 1, 2, "valid", CL, (9,), False, groups=2),
    # Conv3D.
    case_axes(CONV, 3, (3, 3, 3), 1, 1, "same", CL, (5, 4, 6), True),
    case_axes(CONV, 3, (2, 3, 2), (2, 1, 2), 1, "valid", CF, (5, 4, 6), True),
    case_axes(CONV, 3, (3, 2, 2), 1, (2, 1, 1), "same", CL, (5, 4, 6), False, groups=2),
    case_axes(CONV, 3, (2, 2, 2), 2, 1, "same", CF, (5, 4, 5), True, groups=2),
    # Conv1DTranspose: strides, output_padding, dilation, both layouts.
    case_axes(TRANSPOSE, 1, (3,), 2, 1, "same", CL, (5,), True, output_padding=None),
    case_axes(TRANSPOSE, 1, (4,), 2, 1, "same", CF, (4,), True, output_padding=1),
    case_axes(TRANSPOSE, 1, (3,), 1, 2, "valid", CL, (5,), False, output_padding=None),
    case_axes(TRANSPOSE, 1, (2,), 3, 1, "valid", CF, (4,), True, output_padding=2),
    # Conv3DTranspose.
    case_axes(TRANSPOSE, 3, (2, 3, 2), (2, 1, 2), 1, "same", CL, (3, 4, 3), True,
              output_padding=None),
    case_axes(TRANSPOSE, 3, (3, 2, 2), 2, 1, "valid", CF, (3, 3, 2), True,
              output_padding=(1, 0, 1)),
    case_axes(TRANSPOSE, 3, (2, 2, 2), 1, (1, 2, 1), "same", CL, (3, 3, 4), False,
              output_padding=None),
    # DepthwiseConv1D.
    case_axes(DEPTHWISE, 1, (3,), 1, 1, "same", CL, (9,), True, depth_multiplier=2),
    case_axes(DEPTHWISE, 1, (2,), 2, 1, "valid", CF, (8,), True, depth_multiplier=1),
    case_axes(DEPTHWISE, 1, (3,), 1, 2, "same", CF, (9,), False, depth_multiplier=2),
    # SeparableConv1D (strides and dilation together: Keras takes both here).
    case_axes(SEPARABLE, 1, (3,), 1, 1, "same", CL, (9,), True, depth_multiplier=1),
    case_axes(SEPARABLE, 1, (2,), 2, 1, "valid", CF, (8,), True, depth_multiplier=2),
    case_axes(SEPARABLE, 1, (3,), 2, 2, "same", CL, (9,), False, depth_multiplier=2),
]  # fmt: skip


def layer_name(family, case) -> str:
    r = case["rank"]
    return {
        "conv": f"Conv{r}D",
        "transpose": f"Conv{r}DTranspose",
        "depthwise": "DepthwiseConv1D",
        "separable": "SeparableConv1D",
    }[family.name]


# Every case with lax and einsum; the first case of each layer with "auto"
# and "onednn" too (where oneDNN is loaded: elsewhere test_ranks.py checks
# its refusal).
FIRST_OF_EACH = {}
for _family, _case in CASES:
    FIRST_OF_EACH.setdefault(layer_name(_family, _case), _case)
EXTRA_IMPLS = ["auto", *(["onednn"] if ONEDNN else [])]
PARAMS = [
    pytest.param(f, c, impl, id=f"{layer_name(f, c)}-{impl}-{case_id(c)}")
    for f, c in CASES
    for impl in ["lax", "einsum"]
    + (EXTRA_IMPLS if FIRST_OF_EACH[layer_name(f, c)] is c else [])
]


def test_cases_cover_every_layer_and_rule():
    names = {layer_name(f, c) for f, c in CASES}
    assert names == {
        "Conv1D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "SeparableConv1D",
    }
    conv1d = [c for f, c in CASES if layer_name(f, c) == "Conv1D"]
    causal = [c for c in conv1d if c["padding"] == "causal"]
    assert {c["dilation_rate"] for c in causal} == {1, 2, 3}
    assert {c["strides"] for c in causal} == {1, 2, 3}
    assert {c["data_format"] for f, c in CASES} == {CL, CF}


@pytest.mark.parametrize("family, case, impl", PARAMS)
def test_matches_keras(family, case, impl):
    """Exact on small integers; within the bound on standard-normal data."""
    kw = family.kwargs(case)
    items = tuple(case.items())
    for integer in (True, False):
        x, kernels, bias = family.arrays(case, integer=integer, seed=4)
        expected = keras_output(family.name, items, integer)
        y = np.asarray(
            family.call(x, kernels, bias, impl=impl, precision="highest", **kw)
        )
        assert y.dtype == np.float32
        assert y.shape == expected.shape
        if integer:
            np.testing.assert_array_equal(y, expected)
            continue
        abs_x, *abs_kernels, abs_bias = absolute(x, *kernels, bias)
        magnitude = family.reference_of(abs_x, abs_kernels, abs_bias, kw)
        terms = family.terms(case, kernels, bias)
        assert_sums_close(y, expected, magnitude, terms)


FFT_CASES = [CASES[1], CASES[7], CASES[11]]  # causal Conv1D, Conv3D, Conv1DTranspose


@pytest.mark.parametrize(
    "family, case",
    FFT_CASES,
    ids=[f"{layer_name(f, c)}-{case_id(c)}" for f, c in FFT_CASES],
)
def test_fft_matches_keras(family, case):
    """Keras' float32 answer is itself within `2 gamma_n sum|products|` of
    the exact one; the FFT's bound comes on top."""
    x, kernels, bias = family.arrays(case, seed=4)
    kw = family.kwargs(case)
    expected = keras_output(family.name, tuple(case.items()), False)
    y = family.call(x, kernels, bias, impl="fft", **kw)
    abs_x, *abs_kernels, abs_bias = absolute(x, *kernels, bias)
    magnitude = family.reference_of(abs_x, abs_kernels, abs_bias, kw)
    keras_error = sum_bound(magnitude, family.terms(case, kernels, bias))
    stretch, pads, _ = family.geometry(case)
    groups = case["groups"]
    channels = kernels[0].shape[-1] if family is TRANSPOSE else kernels[0].shape[-2]
    assert_fft_close(
        y,
        expected,
        x,
        taps_first(kernels[0]),
        plane=plane(case, stretch, pads),
        channels=channels // (groups if family is TRANSPOSE else 1),
        extra=keras_error,
    )


def test_causal_conv1d_reads_no_future():
    """Keras' and jconv's causal Conv1D on an impulse: output t sees input
    t0 only for t0 <= t (and t0 >= t - dilation * (k - 1))."""
    x = np.zeros((1, 9, 1), np.float32)
    x[0, 4, 0] = 1
    kernel = np.array([1, 2, 4], np.float32)[:, None, None]
    layer = built(
        keras.layers.Conv1D,
        [kernel],
        x.shape,
        filters=1,
        kernel_size=3,
        padding="causal",
        dilation_rate=2,
        use_bias=False,
    )
    expected = call(layer, x)[0, :, 0]
    y = np.asarray(jconv.conv1d(x, kernel, padding="causal", dilation_rate=2))
    np.testing.assert_array_equal(y[0, :, 0], expected)
    # Output t reads inputs t - 4, t - 2, t with weights 1, 2, 4.
    np.testing.assert_array_equal(expected, [0, 0, 0, 0, 4, 0, 2, 0, 1])
