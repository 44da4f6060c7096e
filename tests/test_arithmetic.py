"""Convolution arithmetic: every numbered relationship of Dumoulin and Visin,
"A guide to convolution arithmetic for deep learning" (arXiv:1603.07285),
checked against the shapes `conv2d`/`conv2d_transpose` actually produce (both
implementations), and the padding rules against independent ones.

Shapes over whole ranges come from `jax.eval_shape`, which traces the real
functions (validation, padding, the lax or einsum computation) without
compiling; a few cases per relationship also run and compare values.
"""

import itertools

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from _tol import assert_conv_close, assert_sums_close
from jax import lax
from reference import reference_conv2d, reference_conv2d_transpose

import jconv

C_IN, C_OUT = 2, 3


def conv_hw(i, k, impl="lax", **kw):
    """Spatial output size of `conv2d` on an `(1, i, i, C_IN)` input."""
    x = jax.ShapeDtypeStruct((1, i, i, C_IN), jnp.float32)
    w = jax.ShapeDtypeStruct((k, k, C_IN, C_OUT), jnp.float32)
    out = jax.eval_shape(lambda x, w: jconv.conv2d(x, w, impl=impl, **kw), x, w)
    assert out.shape[0] == 1 and out.shape[3] == C_OUT
    assert out.shape == jconv.conv_output_shape(x.shape, w.shape, **kw)
    assert out.shape[1] == out.shape[2]
    return out.shape[1]


def transpose_hw(i, k, impl="lax", **kw):
    """Spatial output size of `conv2d_transpose` on an `(1, i, i, C_IN)` input."""
    x = jax.ShapeDtypeStruct((1, i, i, C_IN), jnp.float32)
    w = jax.ShapeDtypeStruct((k, k, C_OUT, C_IN), jnp.float32)
    out = jax.eval_shape(
        lambda x, w: jconv.conv2d_transpose(x, w, impl=impl, **kw), x, w
    )
    assert out.shape[0] == 1 and out.shape[3] == C_OUT
    assert out.shape == jconv.conv_transpose_output_shape(x.shape, w.shape, **kw)
    assert out.shape[1] == out.shape[2]
    return out.shape[1]


SIZES = range(1, 10)
KERNELS = range(1, 6)
STRIDES = range(1, 4)


def _arrays(i, k, seed=0, transposed=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, i, i, C_IN)).astype(np.float32)
    k_shape = (k, k, C_OUT, C_IN) if transposed else (k, k, C_IN, C_OUT)
    return x, rng.standard_normal(k_shape).astype(np.float32)


def equivalent_direct_convolution(x, kernel, s, p_lo, p_hi):
    """The guide's equivalent of a transposed convolution: `s - 1` zeros
    between input units (the stretched input), `p'` zeros around it, then a
    unit-stride convolution with the same kernel, flipped and with its channel
    axes swapped (it maps C_IN back to C_OUT)."""
    n, h, w, c = x.shape
    stretched = np.zeros((n, (h - 1) * s + 1, (w - 1) * s + 1, c), x.dtype)
    stretched[:, ::s, ::s] = x
    padded = np.pad(stretched, ((0, 0), (p_lo, p_hi), (p_lo, p_hi), (0, 0)))
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    return reference_conv2d(padded, flipped, padding="valid")


def check_transpose_values(i, k, direct, impl, **kw):
    """`conv2d_transpose` of an `i`x`i` input and a `k`x`k` kernel against
    `equivalent_direct_convolution` with `direct` = `(s, p_lo, p_hi)`."""
    x, kernel = _arrays(i, k, transposed=True)
    expected = equivalent_direct_convolution(x, kernel, *direct)
    y = jconv.conv2d_transpose(x, kernel, precision="highest", impl=impl, **kw)
    assert_conv_close(y, expected, reference_conv2d_transpose, x, kernel, **kw)


# --- Convolution arithmetic (relationships 1-6) -----------------------------


def test_relationship_1_no_padding_unit_strides(impl):
    # o = (i - k) + 1
    for i, k in itertools.product(SIZES, KERNELS):
        if k <= i:
            assert conv_hw(i, k, impl, padding="valid") == (i - k) + 1
            assert conv_hw(i, k, impl, padding=0) == (i - k) + 1


def test_relationship_2_zero_padding_unit_strides(impl):
    # o = (i - k) + 2p + 1
    for i, k, p in itertools.product(SIZES, KERNELS, range(4)):
        if k <= i + 2 * p:
            assert conv_hw(i, k, impl, padding=p) == (i - k) + 2 * p + 1


def test_relationship_3_half_padding(impl):
    # k = 2n + 1, s = 1, p = n: o = i; "same" is exactly p = n on both sides.
    for i, n in itertools.product(SIZES, range(3)):
        k = 2 * n + 1
        assert conv_hw(i, k, impl, padding=n) == i
        assert conv_hw(i, k, impl, padding="same") == i
        assert jconv.resolve_padding((i, i), (k, k), (1, 1), (1, 1), "same") == (
            ((n, n),) * 2
        )


def test_relationship_4_full_padding(impl):
    # p = k - 1, s = 1: o = i + (k - 1)
    for i, k in itertools.product(SIZES, KERNELS):
        assert conv_hw(i, k, impl, padding="full") == i + (k - 1)
        assert conv_hw(i, k, impl, padding=k - 1) == i + (k - 1)


def test_relationship_5_no_padding_non_unit_strides(impl):
    # o = floor((i - k) / s) + 1
    for i, k, s in itertools.product(SIZES, KERNELS, STRIDES):
        if k <= i:
            assert conv_hw(i, k, impl, strides=s) == (i - k) // s + 1


def test_relationship_6_zero_padding_non_unit_strides(impl):
    # o = floor((i + 2p - k) / s) + 1
    for i, k, s, p in itertools.product(SIZES, KERNELS, STRIDES, range(3)):
        if k <= i + 2 * p:
            assert conv_hw(i, k, impl, strides=s, padding=p) == (
                (i + 2 * p - k) // s + 1
            )


def test_relationships_1_to_6_values_on_the_guides_figures(impl):
    """The guide's figures 2.1-2.4 and 2.6-2.7 as actual convolutions: shapes
    and values against the float64 reference."""
    figures = [  # (i, k, s, p, o)
        (4, 3, 1, 0, 2),  # 2.1 no padding, unit strides
        (5, 4, 1, 2, 6),  # 2.2 arbitrary padding
        (5, 3, 1, 1, 5),  # 2.3 half padding
        (5, 3, 1, 2, 7),  # 2.4 full padding
        (5, 3, 2, 0, 2),  # 2.5 no padding, strides
        (5, 3, 2, 1, 3),  # 2.6 padding, strides
        (6, 3, 2, 1, 3),  # 2.7 padding, strides, odd
    ]
    for i, k, s, p, o in figures:
        x, kernel = _arrays(i, k)
        expected = reference_conv2d(x, kernel, strides=s, padding=p)
        assert expected.shape == (1, o, o, C_OUT)
        y = jconv.conv2d(
            x, kernel, strides=s, padding=p, precision="highest", impl=impl
        )
        assert_conv_close(
            y, expected, reference_conv2d, x, kernel, strides=s, padding=p
        )


# --- Pooling arithmetic (relationship 7) -------------------------------------


def test_relationship_7_pooling(impl):
    """o = floor((i - k) / s) + 1 for any pooling: average pooling is a
    depthwise convolution with a constant 1/k^2 kernel; checked against Keras
    `AveragePooling2D` (TensorFlow backend), shapes and values."""
    rng = np.random.default_rng(7)
    for i, k, s in [(5, 3, 1), (5, 3, 2), (6, 2, 2), (7, 3, 3), (4, 1, 2)]:
        x = rng.standard_normal((2, i, i, C_IN)).astype(np.float32)
        pool = keras.layers.AveragePooling2D(pool_size=k, strides=s, padding="valid")
        expected = np.asarray(pool(x))
        o = (i - k) // s + 1
        assert expected.shape == (2, o, o, C_IN)
        kernel = np.full((k, k, C_IN, 1), 1.0 / k**2, np.float32)
        y = jconv.depthwise_conv2d(x, kernel, strides=s, precision="highest", impl=impl)
        # k*k products, and 1/k^2 itself rounded: k*k + 1 roundings.
        magnitude = np.asarray(pool(np.abs(x)))
        assert_sums_close(y, expected, magnitude, k * k + 1)


# --- Transposed convolution arithmetic (relationships 8-14) -----------------


def test_relationship_8_no_padding_unit_strides_transposed(impl):
    # k' = k, s' = s, p' = k - 1: o' = i' + (k - 1)
    for i, k in itertools.product(SIZES, KERNELS):
        assert transpose_hw(i, k, impl, padding="valid") == i + (k - 1)
    # "This corresponds to a fully padded convolution with unit strides."
    check_transpose_values(2, 3, (1, 2, 2), impl, padding="valid")


def test_relationship_9_zero_padding_unit_strides_transposed(impl):
    # p' = k - p - 1: o' = i' + (k - 1) - 2p
    for i, k, p in itertools.product(SIZES, KERNELS, range(3)):
        if i + (k - 1) - 2 * p >= 1:
            assert transpose_hw(i, k, impl, padding=p) == i + (k - 1) - 2 * p
    # The guide's figure 4.2: i = 5, k = 4, p = 2 as i' = 6, p' = 1.
    check_transpose_values(6, 4, (1, 1, 1), impl, padding=2)


def test_relationship_10_half_padding_transposed(impl):
    # k = 2n + 1, p = n: p' = p, o' = i'
    for i, n in itertools.product(SIZES, range(3)):
        assert transpose_hw(i, 2 * n + 1, impl, padding=n) == i
        assert transpose_hw(i, 2 * n + 1, impl, padding="same") == i
    check_transpose_values(5, 3, (1, 1, 1), impl, padding="same")
    check_transpose_values(5, 3, (1, 1, 1), impl, padding=1)


def test_relationship_11_full_padding_transposed(impl):
    # p = k - 1: p' = 0, o' = i' - (k - 1)
    for i, k in itertools.product(SIZES, KERNELS):
        if i - (k - 1) >= 1:
            assert transpose_hw(i, k, impl, padding="full") == i - (k - 1)
            assert transpose_hw(i, k, impl, padding=k - 1) == i - (k - 1)
    check_transpose_values(7, 3, (1, 0, 0), impl, padding="full")


def test_relationship_12_no_padding_non_unit_strides_transposed(impl):
    # (i - k) a multiple of s: stretched input, p' = k - 1, o' = s(i' - 1) + k.
    for i, k, s in itertools.product(SIZES, KERNELS, STRIDES):
        if k <= i and (i - k) % s == 0:
            i_prime = conv_hw(i, k, impl, strides=s)
            o_prime = s * (i_prime - 1) + k
            assert o_prime == i  # the transposed convolution recovers the shape
            for padding in ("valid", 0):
                assert (
                    transpose_hw(
                        i_prime, k, impl, strides=s, padding=padding, output_padding=0
                    )
                    == o_prime
                )
            if k >= s:  # Keras' default output padding is 0 here
                assert transpose_hw(i_prime, k, impl, strides=s) == o_prime
    # The guide's figure 4.5: i = 5, k = 3, s = 2 as i' = 2, p' = 2.
    check_transpose_values(2, 3, (2, 2, 2), impl, strides=2)


def test_relationship_13_zero_padding_non_unit_strides_transposed(impl):
    # (i + 2p - k) a multiple of s: p' = k - p - 1, o' = s(i' - 1) + k - 2p.
    for i, k, s, p in itertools.product(SIZES, KERNELS, STRIDES, range(3)):
        if k <= i + 2 * p and (i + 2 * p - k) % s == 0:
            i_prime = conv_hw(i, k, impl, strides=s, padding=p)
            o_prime = s * (i_prime - 1) + k - 2 * p
            assert o_prime == i
            assert transpose_hw(i_prime, k, impl, strides=s, padding=p) == o_prime
    # The guide's figure 4.6: i = 5, k = 3, s = 2, p = 1 as i' = 3, p' = 1.
    check_transpose_values(3, 3, (2, 1, 1), impl, strides=2, padding=1)


def test_relationship_14_zero_padding_non_unit_strides_odd_transposed(impl):
    # a = (i + 2p - k) mod s: o' = s(i' - 1) + a + k - 2p, for every i.
    for i, k, s, p in itertools.product(SIZES, KERNELS, STRIDES, range(3)):
        if k <= i + 2 * p:
            a = (i + 2 * p - k) % s
            i_prime = conv_hw(i, k, impl, strides=s, padding=p)
            o_prime = s * (i_prime - 1) + a + k - 2 * p
            assert o_prime == i
            assert (
                transpose_hw(i_prime, k, impl, strides=s, padding=p, output_padding=a)
                == o_prime
            )
    # The guide's figure 4.7: i = 6, k = 3, s = 2, p = 1 as i' = 3, a = 1:
    # p' = 1, plus a = 1 more at the bottom/right.
    check_transpose_values(
        3, 3, (2, 1, 2), impl, strides=2, padding=1, output_padding=1
    )


# --- Dilated convolution (relationship 15) -----------------------------------


def test_relationship_15_dilated_convolution(impl):
    # o = floor((i + 2p - k - (k - 1)(d - 1)) / s) + 1, strides and dilation
    # together (beyond Keras).
    for i, k, s, p, d in itertools.product(SIZES, KERNELS, STRIDES, range(3), (2, 3)):
        k_hat = k + (k - 1) * (d - 1)
        if k_hat <= i + 2 * p:
            o = (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1
            assert conv_hw(i, k, impl, strides=s, padding=p, dilation_rate=d) == o
    # The guide's figure 5.1: i = 7, k = 3, d = 2 gives 3x3, values included.
    x, kernel = _arrays(7, 3)
    expected = reference_conv2d(x, kernel, dilation_rate=2)
    assert expected.shape == (1, 3, 3, C_OUT)
    y = jconv.conv2d(x, kernel, dilation_rate=2, precision="highest", impl=impl)
    assert_conv_close(y, expected, reference_conv2d, x, kernel, dilation_rate=2)


# --- The padding rules --------------------------------------------------------


def test_same_and_same_lower_match_lax_padtype_to_pads():
    """lax's own SAME / SAME_LOWER rules, independently written."""
    for size, k, s, d in itertools.product(range(1, 9), range(1, 6), STRIDES, (1, 2)):
        span = (k - 1) * d + 1
        for rule, lax_rule in (("same", "SAME"), ("same_lower", "SAME_LOWER")):
            (pads,) = lax.padtype_to_pads((size,), (span,), (s,), lax_rule)
            got = jconv.resolve_padding((size, 4), (k, 1), (s, 1), (d, 1), rule)
            assert got[0] == tuple(pads), (size, k, s, d, rule)


def test_full_padding_is_span_minus_one():
    for k, d in itertools.product(range(1, 6), (1, 2, 3)):
        span = (k - 1) * d + 1
        assert jconv.resolve_padding((3, 3), (k, 1), (2, 1), (d, 1), "FULL") == (
            (span - 1, span - 1),
            (0, 0),
        )


@pytest.mark.parametrize("padding", ["same", "same_lower", "full"])
def test_conv2d_uses_resolve_padding(padding, impl):
    """A padding string and the explicit pads `resolve_padding` gives for it are
    the same call; both agree with the float64 reference's own rule."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 7, 6, C_IN)).astype(np.float32)
    kernel = rng.standard_normal((4, 3, C_IN, C_OUT)).astype(np.float32)
    kw = dict(strides=(2, 1), dilation_rate=(1, 2))
    pads = jconv.resolve_padding((7, 6), (4, 3), (2, 1), (1, 2), padding)
    by_rule = jconv.conv2d(x, kernel, padding=padding, impl=impl, **kw)
    by_pads = jconv.conv2d(x, kernel, padding=pads, impl=impl, **kw)
    np.testing.assert_array_equal(by_rule, by_pads)
    expected = reference_conv2d(x, kernel, padding=padding, **kw)
    assert_conv_close(
        by_rule, expected, reference_conv2d, x, kernel, padding=padding, **kw
    )


def test_resolve_transpose_padding_is_the_forward_rule_on_the_output_size():
    for i, k, s in itertools.product(range(1, 7), range(1, 6), STRIDES):
        for rule in ("valid", "same", "same_lower"):
            out_hw, pads = jconv.resolve_transpose_padding(
                (i, i), (k, k), (s, s), (1, 1), rule, None
            )
            assert pads == jconv.resolve_padding(out_hw, (k, k), (s, s), (1, 1), rule)


def test_output_shape_functions_handle_layouts_and_unbatched_input():
    assert jconv.conv_output_shape(
        (2, 3, 9, 8),
        (3, 3, 1, 6),
        strides=2,
        padding="same",
        groups=3,
        data_format="channels_first",
    ) == (2, 6, 5, 4)
    assert jconv.conv_output_shape((9, 8, 3), (3, 3, 3, 6)) == (7, 6, 6)
    assert jconv.conv_transpose_output_shape(
        (4, 5, 3), (3, 3, 6, 3), strides=2, padding="same"
    ) == (8, 10, 6)
    assert jconv.conv_transpose_output_shape(
        (1, 3, 4, 5), (2, 3, 6, 3), strides=(2, 3), data_format="channels_first"
    ) == (1, 6, 8, 15)


# --- The shape helpers check their arguments like the calls (issue 11, 8) -----


def test_resolve_padding_takes_ints_like_the_calls():
    # Strides and dilation as ints, as conv2d takes them.
    assert jconv.resolve_padding((5, 5), (3, 3), 2, 1, "same") == ((1, 1), (1, 1))
    assert jconv.resolve_padding(5, 3, (2, 1), 1, "SAME") == ((1, 1), (1, 1))
    out_hw, pads = jconv.resolve_transpose_padding(3, 3, 2, 1, "same", 1)
    assert (out_hw, pads) == ((6, 6), ((0, 1), (0, 1)))


@pytest.mark.parametrize(
    "args, exc, pattern",
    [
        (
            ((5, 5), (3, 3), 0, 1, "same"),
            ValueError,
            r"`strides` \(=0\) must be positive",
        ),
        (
            ((5, 5), (3, 3), 1, (1, 0), "same"),
            ValueError,
            r"`dilation_rate` \(=\(1, 0\)\) must be positive",
        ),
        (
            ((5, 5), (0, 3), 1, 1, "same"),
            ValueError,
            r"`kernel_hw` \(=\(0, 3\)\) must be positive",
        ),
        (
            ((5, -1), (3, 3), 1, 1, "valid"),
            ValueError,
            r"`input_hw` \(=\(5, -1\)\) must not be negative",
        ),
        (
            ((5.5, 5), (3, 3), 1, 1, "same"),
            TypeError,
            r"`input_hw` \(=\(5.5, 5\)\) must be an int or a pair of ints",
        ),
        (
            ((5, 5), (3, 3), 1.0, 1, "same"),
            TypeError,
            r"`strides` \(=1.0\) must be an int or a pair of ints",
        ),
        (((5, 5), (3, 3), 1, 1, "half"), ValueError, r"`padding` \(='half'\) must be"),
    ],
)
def test_resolve_padding_refuses_like_the_calls(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jconv.resolve_padding(*args)
    with pytest.raises(exc, match=pattern):
        jconv.resolve_transpose_padding(*args, None)


def test_resolve_transpose_padding_checks_output_padding():
    with pytest.raises(ValueError, match=r"`output_padding` \(=2\) must be smaller"):
        jconv.resolve_transpose_padding((3, 3), (3, 3), 2, 1, "same", 2)
    with pytest.raises(TypeError, match=r"`output_padding` \(=0.5\) must be None"):
        jconv.resolve_transpose_padding((3, 3), (3, 3), 2, 1, "same", 0.5)


@pytest.mark.parametrize(
    "fn", [jconv.conv_output_shape, jconv.conv_transpose_output_shape]
)
def test_output_shape_functions_refuse_non_integer_shapes(fn):
    with pytest.raises(
        TypeError, match=r"`input_shape` \(=\(1, 5.5, 5, 2\)\) must be a sequence of"
    ):
        fn((1, 5.5, 5, 2), (3, 3, 2, 2))
    with pytest.raises(
        TypeError, match=r"`kernel_shape` \(=\(3, 3.0, 2, 2\)\) must be a sequence"
    ):
        fn((1, 5, 5, 2), (3, 3.0, 2, 2))
    with pytest.raises(TypeError, match=r"`input_shape` \(=5\) must be a sequence"):
        fn(5, (3, 3, 2, 2))
    with pytest.raises(
        ValueError, match=r"`input_shape` \(=\(1, -5, 5, 2\)\) must not have negative"
    ):
        fn((1, -5, 5, 2), (3, 3, 2, 2))
    with pytest.raises(ValueError, match=r"`kernel` shape \(0, 3, 2, 2\) has an empty"):
        fn((1, 5, 5, 2), (0, 3, 2, 2))


def test_output_shape_functions_return_python_ints():
    shape = jconv.conv_output_shape(
        (np.int64(1), 5, 5, 2), np.array([3, 3, 2, 2]), strides=np.int32(2)
    )
    assert shape == (1, 2, 2, 2)
    assert all(type(d) is int for d in shape)
