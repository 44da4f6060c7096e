"""Bad input: a clear ValueError/TypeError naming the argument, raised while
tracing, before anything is compiled."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jconv

X = np.zeros((2, 6, 6, 4), np.float32)
K = np.zeros((3, 3, 4, 8), np.float32)

CASES = [
    # (description, args, kwargs, exception, message pattern)
    (
        "x rank",
        (np.zeros((6, 6), np.float32), K),
        {},
        ValueError,
        r"`x` must have rank 4 \(N, H, W, C_in\) or rank 3 .* got shape \(6, 6\)",
    ),
    (
        "x rank 5",
        (np.zeros((1, 2, 6, 6, 4), np.float32), K),
        {},
        ValueError,
        r"`x` must have rank 4",
    ),
    (
        "x rank channels_first",
        (np.zeros((6, 6), np.float32), K),
        {"data_format": "channels_first"},
        ValueError,
        r"rank 4 \(N, C_in, H, W\)",
    ),
    (
        "kernel rank",
        (X, np.zeros((3, 3, 4), np.float32)),
        {},
        ValueError,
        r"`kernel` must have rank 4 \(KH, KW, C_in // groups, C_out\); got shape "
        r"\(3, 3, 4\)",
    ),
    (
        "channel mismatch",
        (X, np.zeros((3, 3, 3, 8), np.float32)),
        {},
        ValueError,
        r"`kernel` shape \(3, 3, 3, 8\) does not match `x` shape \(2, 6, 6, 4\)",
    ),
    (
        "C_in not divisible",
        (X, np.zeros((3, 3, 1, 9), np.float32)),
        {"groups": 3},
        ValueError,
        r"input channels C_in \(=4\) .* divisible by `groups` \(=3\)",
    ),
    (
        "C_out not divisible",
        (X, np.zeros((3, 3, 2, 7), np.float32)),
        {"groups": 2},
        ValueError,
        r"output channels C_out \(=7\) .* divisible by `groups` \(=2\)",
    ),
    ("groups zero", (X, K), {"groups": 0}, ValueError, r"`groups` \(=0\) must be"),
    ("groups float", (X, K), {"groups": 1.0}, TypeError, r"`groups` \(=1.0\)"),
    (
        "strides zero",
        (X, K),
        {"strides": 0},
        ValueError,
        r"`strides` \(=0\) must be positive",
    ),
    (
        "strides negative pair",
        (X, K),
        {"strides": (1, -2)},
        ValueError,
        r"`strides` \(=\(1, -2\)\) must be positive",
    ),
    (
        "strides float",
        (X, K),
        {"strides": 1.5},
        TypeError,
        r"`strides` \(=1.5\) must be an int or a pair of ints",
    ),
    (
        "strides triple",
        (X, K),
        {"strides": (1, 1, 1)},
        TypeError,
        r"`strides` \(=\(1, 1, 1\)\)",
    ),
    ("strides bool", (X, K), {"strides": True}, TypeError, r"`strides` \(=True\)"),
    (
        "dilation zero",
        (X, K),
        {"dilation_rate": (0, 1)},
        ValueError,
        r"`dilation_rate` \(=\(0, 1\)\) must be positive",
    ),
    (
        "dilation float",
        (X, K),
        {"dilation_rate": 2.0},
        TypeError,
        r"`dilation_rate` \(=2.0\) must be an int",
    ),
    (
        "padding string",
        (X, K),
        {"padding": "causal"},
        ValueError,
        r"`padding` \(='causal'\) must be 'valid', 'same'",
    ),
    (
        "padding malformed",
        (X, K),
        {"padding": (1, 2, 3)},
        ValueError,
        r"`padding` \(=\(1, 2, 3\)\) must be",
    ),
    (
        "padding nested malformed",
        (X, K),
        {"padding": ((1, 2), (3,))},
        ValueError,
        r"`padding` \(=\(\(1, 2\), \(3,\)\)\) must be",
    ),
    (
        "padding float",
        (X, K),
        {"padding": 1.5},
        ValueError,
        r"`padding` \(=1.5\) must be",
    ),
    (
        "padding negative",
        (X, K),
        {"padding": ((0, -1), (0, 0))},
        ValueError,
        r"`padding` \(=\(\(0, -1\), \(0, 0\)\)\) must not be negative",
    ),
    (
        "kernel too large",
        (X, np.zeros((7, 3, 4, 8), np.float32)),
        {},
        ValueError,
        r"`kernel` spatial size \(7, 3\) .* spans 7 pixels, more than the padded input",
    ),
    (
        "dilated kernel too large",
        (X, K),
        {"dilation_rate": 3},
        ValueError,
        r"`dilation_rate` \(3, 3\) spans 7 pixels",
    ),
    (
        "data_format",
        (X, K),
        {"data_format": "NHWC"},
        ValueError,
        r"`data_format` \(='NHWC'\) must be one of "
        r"\('channels_last', 'channels_first'\)",
    ),
    (
        "impl",
        (X, K),
        {"impl": "fft"},
        ValueError,
        r"`impl` \(='fft'\) must be one of \('lax', 'einsum'\)",
    ),
    (
        "bias shape",
        (X, K, np.zeros((4,), np.float32)),
        {},
        ValueError,
        r"`bias` must have shape \(C_out,\) = \(8,\); got shape \(4,\)",
    ),
    (
        "x int",
        (X.astype(np.int32), K),
        {},
        TypeError,
        r"`x` has dtype int32; it must be a floating dtype",
    ),
    (
        "kernel bool",
        (X, K.astype(bool)),
        {},
        TypeError,
        r"`kernel` has dtype bool; it must be a floating dtype",
    ),
    (
        "bias int",
        (X, K, np.zeros((8,), np.int32)),
        {},
        TypeError,
        r"`bias` has dtype int32",
    ),
    (
        "x complex",
        (X.astype(np.complex64), K),
        {},
        TypeError,
        r"`x` has dtype complex64",
    ),
    (
        "padding_mode unknown",
        (X, K),
        {"padding_mode": "mirror"},
        ValueError,
        r"`padding_mode` \(='mirror'\) must be one of \('zeros', 'reflect', "
        r"'replicate', 'circular'\)",
    ),
    (
        "padding_mode None",
        (X, K),
        {"padding_mode": None},
        ValueError,
        r"`padding_mode` \(=None\) must be one of",
    ),
    (
        "reflect wider than the input",
        (X, K),
        {"padding": ((6, 0), (0, 0)), "padding_mode": "reflect"},
        ValueError,
        r"`padding_mode` \(='reflect'\) cannot pad an axis of 6 pixels by 6: at "
        r"most size - 1",
    ),
    (
        "reflect full padding too wide",
        (np.zeros((1, 3, 6, 4), np.float32), K),
        {"padding": "full", "dilation_rate": (2, 1), "padding_mode": "reflect"},
        ValueError,
        r"cannot pad an axis of 3 pixels by 4: .* `padding`='full' gives pads "
        r"\(\(4, 4\), \(2, 2\)\)",
    ),
    (
        "circular wider than the input",
        (X, K),
        {"padding": 7, "padding_mode": "circular"},
        ValueError,
        r"`padding_mode` \(='circular'\) cannot pad an axis of 6 pixels by 7: at "
        r"most size \(circular wraps around once\)",
    ),
    (
        "padding string lists the new rules",
        (X, K),
        {"padding": "half"},
        ValueError,
        r"`padding` \(='half'\) must be 'valid', 'same', 'same_lower', 'full'",
    ),
]


@pytest.mark.parametrize("impl", ["lax", "einsum"])
@pytest.mark.parametrize(
    "args,kwargs,exc,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(args, kwargs, exc, pattern, impl):
    kwargs = {"impl": impl, **kwargs}
    with pytest.raises(exc, match=pattern):
        jconv.conv2d(*args, **kwargs)


def test_errors_raise_while_tracing_under_jit():
    f = jax.jit(lambda x, k: jconv.conv2d(x, k, strides=0))
    with pytest.raises(ValueError, match=re.escape("`strides` (=0) must be positive")):
        f(X, K)


def test_variants_refuse_like_conv2d():
    for fn in (jconv.conv2d_lax, jconv.conv2d_einsum):
        with pytest.raises(ValueError, match="`padding`"):
            fn(X, K, padding="full-ish")


def test_explicit_padding_can_make_a_large_kernel_fit():
    k = jnp.zeros((7, 3, 4, 8))
    assert jconv.conv2d(X, k, padding=((1, 0), (0, 0))).shape == (2, 1, 4, 8)


def test_padding_mode_limits_are_inclusive():
    for mode, pad in (("reflect", 5), ("circular", 6), ("replicate", 40)):
        y = jconv.conv2d(X, K, padding=pad, padding_mode=mode)
        assert y.shape == (2, 4 + 2 * pad, 4 + 2 * pad, 8)


# conv2d_transpose: x (2, 4, 4, 3), kernel (KH, KW, C_out, C_in) = (3, 3, 5, 3).
XT = np.zeros((2, 4, 4, 3), np.float32)
KT = np.zeros((3, 3, 5, 3), np.float32)

TRANSPOSE_CASES = [
    (
        "kernel rank",
        (XT, np.zeros((3, 3, 3), np.float32)),
        {},
        ValueError,
        r"`kernel` must have rank 4 \(KH, KW, C_out, C_in\); got shape \(3, 3, 3\)",
    ),
    (
        "kernel layout is C_out, C_in",
        (XT, np.zeros((3, 3, 3, 5), np.float32)),
        {},
        ValueError,
        r"`kernel` shape \(3, 3, 3, 5\) does not match `x` shape \(2, 4, 4, 3\): "
        r"kernel axis 3 must be C_in \(=3\), got 5",
    ),
    (
        "x rank",
        (np.zeros((4, 4), np.float32), KT),
        {},
        ValueError,
        r"`x` must have rank 4 \(N, H, W, C_in\)",
    ),
    (
        "output_padding not below strides",
        (XT, KT),
        {"strides": 2, "output_padding": 2},
        ValueError,
        r"`output_padding` \(=2\) must be smaller than `strides` \(=\(2, 2\)\)",
    ),
    (
        "output_padding with unit strides",
        (XT, KT),
        {"output_padding": (0, 1)},
        ValueError,
        r"`output_padding` \(=\(0, 1\)\) must be smaller than `strides`",
    ),
    (
        "output_padding negative",
        (XT, KT),
        {"strides": 2, "output_padding": -1},
        ValueError,
        r"`output_padding` \(=-1\) must not be negative",
    ),
    (
        "output_padding float",
        (XT, KT),
        {"strides": 2, "output_padding": 0.5},
        TypeError,
        r"`output_padding` \(=0.5\) must be None, an int or a pair of ints",
    ),
    (
        "output_padding triple",
        (XT, KT),
        {"strides": 2, "output_padding": (1, 1, 1)},
        TypeError,
        r"`output_padding` \(=\(1, 1, 1\)\)",
    ),
    (
        "same, even kernel, zero output_padding",
        (XT, np.zeros((2, 2, 5, 3), np.float32)),
        {"strides": 2, "padding": "same", "output_padding": 0},
        ValueError,
        r"`output_padding` \(=\(0, 0\)\) with `padding`='same' gives an output of "
        r"\(6, 6\), but a convolution of that size .* has \(3, 3\) pixels, not "
        r"the input's \(4, 4\).*Keras on TensorFlow refuses it too",
    ),
    (
        "empty output",
        (np.zeros((1, 2, 2, 3), np.float32), np.zeros((4, 4, 5, 3), np.float32)),
        {"padding": "full"},
        ValueError,
        r"the transposed convolution's output \(-1, -1\) is empty",
    ),
    (
        "padding unknown",
        (XT, KT),
        {"padding": "causal"},
        ValueError,
        r"`padding` \(='causal'\) must be 'valid', 'same'",
    ),
    (
        "padding negative",
        (XT, KT),
        {"padding": -1},
        ValueError,
        r"`padding` \(=-1\) must not be negative",
    ),
    ("strides zero", (XT, KT), {"strides": 0}, ValueError, r"`strides` \(=0\)"),
    (
        "dilation float",
        (XT, KT),
        {"dilation_rate": 1.0},
        TypeError,
        r"`dilation_rate` \(=1.0\) must be an int",
    ),
    (
        "bias shape",
        (XT, KT, np.zeros((3,), np.float32)),
        {},
        ValueError,
        r"`bias` must have shape \(C_out,\) = \(5,\); got shape \(3,\)",
    ),
    (
        "data_format",
        (XT, KT),
        {"data_format": "NCHW"},
        ValueError,
        r"`data_format` \(='NCHW'\) must be one of",
    ),
    ("impl", (XT, KT), {"impl": "fft"}, ValueError, r"`impl` \(='fft'\)"),
    (
        "x int",
        (XT.astype(np.int32), KT),
        {},
        TypeError,
        r"`x` has dtype int32; it must be a floating dtype",
    ),
]


@pytest.mark.parametrize("impl", ["lax", "einsum"])
@pytest.mark.parametrize(
    "args,kwargs,exc,pattern",
    [c[1:] for c in TRANSPOSE_CASES],
    ids=[c[0] for c in TRANSPOSE_CASES],
)
def test_conv2d_transpose_bad_input(args, kwargs, exc, pattern, impl):
    kwargs = {"impl": impl, **kwargs}
    with pytest.raises(exc, match=pattern):
        jconv.conv2d_transpose(*args, **kwargs)


# depthwise_conv2d: x (2, 6, 6, 4), kernel (KH, KW, C_in, depth_multiplier).
KD = np.zeros((3, 3, 4, 2), np.float32)

DEPTHWISE_CASES = [
    (
        "kernel rank",
        (X, np.zeros((3, 3, 4), np.float32)),
        {},
        ValueError,
        r"`kernel` must have rank 4 \(KH, KW, C_in, depth_multiplier\); got shape "
        r"\(3, 3, 4\)",
    ),
    (
        "kernel channels",
        (X, np.zeros((3, 3, 2, 2), np.float32)),
        {},
        ValueError,
        r"`kernel` shape \(3, 3, 2, 2\) does not match `x` shape \(2, 6, 6, 4\): "
        r"kernel axis 2 must be C_in \(=4\), got 2",
    ),
    (
        "zero depth multiplier",
        (X, np.zeros((3, 3, 4, 0), np.float32)),
        {},
        ValueError,
        r"`kernel` shape \(3, 3, 4, 0\) has an empty axis",
    ),
    (
        "channels_first x rank",
        (np.zeros((6, 6), np.float32), KD),
        {"data_format": "channels_first"},
        ValueError,
        r"`x` must have rank 4 \(N, C_in, H, W\)",
    ),
    (
        "bias shape",
        (X, KD, np.zeros((4,), np.float32)),
        {},
        ValueError,
        r"`bias` must have shape \(C_out,\) = \(8,\); got shape \(4,\)",
    ),
    (
        "padding_mode",
        (X, KD),
        {"padding_mode": "wrap"},
        ValueError,
        r"`padding_mode` \(='wrap'\) must be one of",
    ),
    ("strides", (X, KD), {"strides": (0, 1)}, ValueError, r"`strides` \(=\(0, 1\)\)"),
    (
        "kernel int",
        (X, KD.astype(np.int32)),
        {},
        TypeError,
        r"`kernel` has dtype int32",
    ),
    ("impl", (X, KD), {"impl": "conv"}, ValueError, r"`impl` \(='conv'\)"),
]


@pytest.mark.parametrize("impl", ["lax", "einsum"])
@pytest.mark.parametrize(
    "args,kwargs,exc,pattern",
    [c[1:] for c in DEPTHWISE_CASES],
    ids=[c[0] for c in DEPTHWISE_CASES],
)
def test_depthwise_conv2d_bad_input(args, kwargs, exc, pattern, impl):
    kwargs = {"impl": impl, **kwargs}
    with pytest.raises(exc, match=pattern):
        jconv.depthwise_conv2d(*args, **kwargs)


def test_shape_functions_refuse_like_the_calls():
    with pytest.raises(ValueError, match=r"`padding` \(='half'\)"):
        jconv.conv_output_shape(X.shape, K.shape, padding="half")
    with pytest.raises(ValueError, match=r"kernel axis 2 must be C_in // groups"):
        jconv.conv_output_shape(X.shape, (3, 3, 3, 8))
    with pytest.raises(ValueError, match=r"`output_padding` \(=3\) must be smaller"):
        jconv.conv_transpose_output_shape(
            XT.shape, KT.shape, strides=3, output_padding=3
        )
    with pytest.raises(ValueError, match=r"kernel axis 3 must be C_in"):
        jconv.conv_transpose_output_shape(XT.shape, (3, 3, 3, 5))


def test_new_errors_raise_while_tracing_under_jit():
    f = jax.jit(lambda x, k: jconv.conv2d_transpose(x, k, strides=2, output_padding=2))
    with pytest.raises(ValueError, match=re.escape("`output_padding` (=2)")):
        f(XT, KT)
