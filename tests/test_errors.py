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
