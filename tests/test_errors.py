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
        {"padding": "circular"},
        ValueError,
        r"`padding` \(='circular'\) must be 'valid', 'same'",
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
        {"impl": "winograd"},
        ValueError,
        r"`impl` \(='winograd'\) must be one of "
        r"\('auto', 'lax', 'einsum', 'fft', 'onednn'\)",
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
        "x uint8",
        (X.astype(np.uint8), K),
        {},
        TypeError,
        r"`x` has dtype uint8; it must be a floating dtype .* or a complex one",
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
        "circular on an empty axis",
        (np.zeros((1, 0, 6, 4), np.float32), K),
        {"padding": 1, "padding_mode": "circular"},
        ValueError,
        r"`padding_mode` \(='circular'\) cannot pad an axis of 0 pixels by 1: an "
        r"empty axis has no pixel to wrap around",
    ),
    (
        "padding string lists the new rules",
        (X, K),
        {"padding": "half"},
        ValueError,
        r"`padding` \(='half'\) must be 'valid', 'same', 'same_lower', 'full'",
    ),
]


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
        "negative output",
        (np.zeros((1, 2, 2, 3), np.float32), np.zeros((4, 4, 5, 3), np.float32)),
        {"padding": "full"},
        ValueError,
        r"the transposed convolution's output \(-1, -1\) would have a negative "
        r"size: input \(2, 2\), `kernel` spatial size \(4, 4\)",
    ),
    (
        "padding unknown",
        (XT, KT),
        {"padding": "circular"},
        ValueError,
        r"`padding` \(='circular'\) must be 'valid', 'same'",
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
    ("impl", (XT, KT), {"impl": "winograd"}, ValueError, r"`impl` \(='winograd'\)"),
    (
        "x int",
        (XT.astype(np.int32), KT),
        {},
        TypeError,
        r"`x` has dtype int32; it must be a floating dtype",
    ),
]


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


# --- Sizes no device could hold (issue 11, item 5) ---------------------------

# Each line once aborted the interpreter (an int64 overflow in XLA, a failed
# allocation) or asked for terabytes; now each must raise a ValueError that
# names `padding` and the shape it would make, before anything compiles. Run in
# a subprocess so that a regression fails this test instead of killing pytest.
_HUGE_SCRIPT = r"""
import jax.numpy as jnp
import jconv

x, k = jnp.ones((1, 2, 2, 1)), jnp.ones((1, 1, 1, 1))
calls = [
    lambda: jconv.conv2d(x, k, padding=2**40),
    lambda: jconv.conv2d(x, k, padding=2**40, impl="einsum"),
    lambda: jconv.conv2d(x, k, padding=10**6),
    lambda: jconv.conv2d(x, k, padding=10**6, impl="einsum"),
    lambda: jconv.conv2d(x, k, padding=((0, 0), (0, 2**40)), impl="einsum"),
    lambda: jconv.conv2d(x, k, padding=10**6, padding_mode="replicate"),
    lambda: jconv.depthwise_conv2d(x, k, padding=10**6, impl="einsum"),
    lambda: jconv.conv2d_transpose(x, k, strides=2**20, padding="same"),
    lambda: jconv.conv2d_transpose(
        x, k, strides=2**20, output_padding=2**20 - 1, impl="einsum"
    ),
    lambda: jconv.conv2d_transpose(x, k, padding=((0, 0), (0, 0)), strides=2**40),
]
for call in calls:
    try:
        call()
        print("ACCEPTED")
    except ValueError as e:
        print("ValueError:", e)
"""


def test_huge_sizes_are_refused_by_name_not_by_an_abort():
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _HUGE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 10, run.stdout
    assert all(line.startswith("ValueError: `padding` (=") for line in lines), lines
    assert re.search(
        r"`padding` \(=1099511627776\) .* makes a padded input of shape "
        r"\(1, 2199023255554, 2199023255554, 1\): 4.83e\+24 elements, .* beyond "
        r"what XLA can represent",
        lines[0],
    )
    assert re.search(
        r"`padding` \(=1000000\) .* makes a padded input of shape "
        r"\(1, 2000002, 2000002, 1\): 4,000,008,000,004 elements, 14.6 TiB at 4 "
        r"bytes each; that is more than the .* of memory that the devices JAX "
        r"sees have together",
        lines[3],
    )
    assert re.search(
        r"`strides` \(1048576, 1048576\), `output_padding` None, .* makes a "
        r"stretched, padded input of shape \(1, 2097152, 2097152, 1\)",
        lines[7],
    )


@pytest.fixture
def small_memory(monkeypatch):
    """Pretends the host and the devices hold `limit` bytes together."""

    def set_limit(limit):
        monkeypatch.setattr(jconv._spec, "_host_memory_bytes", lambda: limit)
        monkeypatch.setattr(jconv._spec, "_device_memory_bytes", lambda: limit)

    return set_limit


def test_sizes_above_the_memory_limit_are_refused(small_memory, impl):
    # x (1, 4, 4, 1) padded by 2: (1, 8, 8, 1), 256 bytes in float32; a 1x1
    # kernel keeps the output at 256 bytes too.
    x, k = np.ones((1, 4, 4, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    small_memory(256)
    assert jconv.conv2d(x, k, padding=2, impl=impl).shape == (1, 8, 8, 1)
    small_memory(255)
    with pytest.raises(
        ValueError,
        match=r"`padding` \(=2\) with `strides` \(1, 1\), `dilation_rate` \(1, 1\), "
        r"`x` shape \(1, 4, 4, 1\) and `kernel` shape \(1, 1, 1, 1\) makes a "
        r"padded input of shape \(1, 8, 8, 1\): 64 elements, 256 bytes at 4 "
        r"bytes each; that is more than the 255 bytes of memory",
    ):
        jconv.conv2d(x, k, padding=2, impl=impl)
    # float16 halves the bytes of the arrays it fills; einsum's window buffer
    # holds the float32 that float16 sums in (`_spec.accumulation_dtype`).
    x16, k16 = x.astype(np.float16), k.astype(np.float16)
    if impl == "einsum":
        with pytest.raises(
            ValueError,
            match=r"makes its 'transposed' buffer of shape \(1, 64\): 64 elements, "
            r"256 bytes at 4 bytes each; that is more than the 255 bytes",
        ):
            jconv.conv2d(x16, k16, padding=2, impl=impl)
        small_memory(256)
    assert jconv.conv2d(x16, k16, padding=2, impl=impl).shape == (1, 8, 8, 1)
    small_memory(255)
    with pytest.raises(
        ValueError,
        match=r"`padding` \(='valid'\) .* makes an output of shape \(1, 4, 4, 4\)",
    ):
        jconv.depthwise_conv2d(x, np.ones((1, 1, 1, 4), np.float32), impl=impl)
    with pytest.raises(
        ValueError,
        match=r"`padding` \(='same'\) with `strides` \(3, 3\), `output_padding` "
        r"None, .* makes a stretched, padded input of shape \(1, 12, 12, 1\)",
    ):
        jconv.conv2d_transpose(x, k, strides=3, padding="same", impl=impl)
    # The shape helpers know no dtype: they count 2 bytes (float16, bfloat16).
    assert jconv.conv_output_shape(x.shape, k.shape, padding=2) == (1, 8, 8, 1)
    with pytest.raises(
        ValueError, match=r"`padding` \(=6\) .* 256 elements, 512 bytes at 2 bytes"
    ):
        jconv.conv_output_shape(x.shape, k.shape, padding=6)


def test_einsum_window_buffer_above_the_memory_limit_is_refused(small_memory):
    # 3x3 taps of a 1-channel (1, 5, 7, 1) input, "valid": the output is
    # (1, 3, 5, 1), 60 bytes; the window buffer (9, 15) 540 bytes.
    x, k = np.ones((1, 5, 7, 1), np.float32), np.ones((3, 3, 1, 1), np.float32)
    small_memory(539)
    assert jconv.conv2d(x, k, impl="lax").shape == (1, 3, 5, 1)
    with pytest.raises(
        ValueError,
        match=r"`impl`='einsum' on an input of shape \(1, 5, 7, 1\) .* makes its "
        r"'transposed' buffer of shape \(9, 15\): 135 elements, 540 bytes .* "
        r"impl='lax' builds no such buffer",
    ):
        jconv.conv2d(x, k, impl="einsum")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (
            {"strides": 2**63},
            r"`strides` \(=9223372036854775808\) must be at most 2\*\*63 - 1",
        ),
        (
            {"dilation_rate": (1, 10**30)},
            r"`dilation_rate` \(=\(1, 10{30}\)\) must be at most 2\*\*63 - 1",
        ),
        ({"padding": 2**63}, r"`padding` \(=9223372036854775808\) must be at most"),
        ({"padding": 10**5000}, r"`padding` \(=<int too long to print>\) must be"),
    ],
)
def test_integers_beyond_int64_are_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        jconv.conv2d(X, K, **kwargs)


# --- precision and impl are checked like every other argument (item 7) -------

NAMED_CASES = [
    (
        {"precision": "max"},
        r"`precision` \(='max'\) must be None, a `jax.lax.Precision` or one of its "
        r"names \('default', 'high', 'highest'",
    ),
    ({"precision": 3}, r"`precision` \(=3\) must be None"),
    ({"precision": ("highest",)}, r"`precision` \(=\('highest',\)\) must be None"),
    (
        {"precision": ["highest", "max"]},
        r"`precision` \(=\['highest', 'max'\]\) must be None",
    ),
    (
        {"impl": ["lax"]},
        r"`impl` \(=\['lax'\]\) must be one of "
        r"\('auto', 'lax', 'einsum', 'fft', 'onednn'\)",
    ),
    (
        {"impl": None},
        r"`impl` \(=None\) must be one of \('auto', 'lax', 'einsum', 'fft', 'onednn'\)",
    ),
    ({"data_format": ["channels_last"]}, r"`data_format` \(=\['channels_last'\]\)"),
]


@pytest.mark.parametrize("fn", ["conv2d", "conv2d_transpose", "depthwise_conv2d"])
@pytest.mark.parametrize("kwargs, pattern", NAMED_CASES)
def test_precision_and_impl_are_named(fn, kwargs, pattern):
    kernel = {"conv2d": K, "conv2d_transpose": KT, "depthwise_conv2d": KD}[fn]
    x = XT if fn == "conv2d_transpose" else X
    with pytest.raises(ValueError, match=pattern):
        getattr(jconv, fn)(x, kernel, **kwargs)


@pytest.mark.parametrize(
    "precision",
    [
        "HIGHEST",
        "float32",
        jax.lax.Precision.HIGHEST,
        ("highest", "Highest"),
        ["highest", jax.lax.Precision.HIGHEST],
        "f32_f32_f32",
        jax.lax.DotAlgorithmPreset.F32_F32_F32,
    ],
)
def test_every_form_of_precision_is_accepted(precision, impl):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (1, 5, 5, 4)).astype(np.float32)
    kernel = rng.integers(-3, 4, (3, 3, 4, 2)).astype(np.float32)
    expected = jconv.conv2d(x, kernel, precision="highest", impl=impl)
    got = jconv.conv2d(x, kernel, precision=precision, impl=impl)
    np.testing.assert_array_equal(got, expected)  # small integers: exact


# --- One rule for case: every string argument, any case (item 10) ------------


def test_string_arguments_are_read_in_any_case(impl):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (2, 4, 6, 6)).astype(np.float32)
    kernel = rng.integers(-3, 4, (3, 3, 4, 8)).astype(np.float32)
    lower = dict(padding="same", padding_mode="reflect", data_format="channels_first")
    upper = dict(padding="SAME", padding_mode="REFLECT", data_format="CHANNELS_FIRST")
    np.testing.assert_array_equal(
        jconv.conv2d(x, kernel, impl=impl.upper(), **upper),
        jconv.conv2d(x, kernel, impl=impl, **lower),
    )
    kd = kernel[:, :, :, :2]
    np.testing.assert_array_equal(
        jconv.depthwise_conv2d(x, kd, impl=impl.title(), **upper),
        jconv.depthwise_conv2d(x, kd, impl=impl, **lower),
    )
    kt = kernel.transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(
        jconv.conv2d_transpose(x, kt, padding="Full", data_format="Channels_First"),
        jconv.conv2d_transpose(x, kt, padding="full", data_format="channels_first"),
    )
    assert jconv.conv_output_shape(
        x.shape, kernel.shape, padding="Same_Lower", data_format="CHANNELS_FIRST"
    ) == (2, 8, 6, 6)


def test_unknown_strings_are_still_refused_in_any_case():
    with pytest.raises(ValueError, match=r"`padding_mode` \(='MIRROR'\) must be one"):
        jconv.conv2d(X, K, padding_mode="MIRROR")
    with pytest.raises(ValueError, match=r"`data_format` \(='NHWC'\) must be one of"):
        jconv.conv2d(X, K, data_format="NHWC")


def test_transpose_of_an_empty_axis_is_refused_only_where_undefined(impl):
    """An input axis with no pixels: "same" gives an output axis with none
    (the adjoint of a "same" convolution of an empty axis); "valid" with a
    kernel wider than the stride would need a convolution whose kernel is
    wider than its non-empty input, and "full" a negative size: both refused,
    named. An empty batch is accepted whatever the padding."""
    x = np.zeros((1, 0, 4, 3), np.float32)
    y = jconv.conv2d_transpose(x, KT, padding="same", impl=impl)
    assert y.shape == (1, 0, 4, 5)
    with pytest.raises(
        ValueError,
        match=r"`kernel` spatial size \(3, 3\) with `dilation_rate` \(1, 1\) spans 3 "
        r"pixels, more than the padded transposed output \(transposed output "
        r"\(2, 6\), `padding`='valid'",
    ):
        jconv.conv2d_transpose(x, KT, padding="valid", impl=impl)
    with pytest.raises(
        ValueError,
        match=r"the transposed convolution's output \(-2, 2\) would have a "
        r"negative size: input \(0, 4\)",
    ):
        jconv.conv2d_transpose(x, KT, padding="full", impl=impl)
    for padding in ("valid", "same", "full", 1):
        y = jconv.conv2d_transpose(
            np.zeros((0, 4, 4, 3), np.float32), KT, padding=padding, impl=impl
        )
        assert y.shape[0] == 0 and y.shape[3] == 5
