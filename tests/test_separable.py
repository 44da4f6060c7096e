"""`separable_conv2d` and the `SeparableConv2D` modules: the float64
reference (a depthwise then a 1x1 loop convolution, beyond Keras: explicit
pads, padding modes), Keras `SeparableConv2D` live, gradients, lax and einsum
agreeing, the NNX and Linen modules and their Keras import/export.

Tolerance of a separable convolution against the float64 reference: the
depthwise step's sums of `KH * KW` products are within `gamma_{KH*KW}` of
exact, relative to the same step on absolute values; the pointwise step
carries that error through its sums of `C_in * M` products and adds its own,
so the whole is within `gamma_{KH*KW + C_in*M (+1 for the bias)}` of the
reference, relative to the separable convolution of the absolute values
(Higham, lemma 3.3: `(1 + theta_a)(1 + theta_b) = 1 + theta_{a+b}`).
`assert_sums_close` allows twice that, as for every convolution here.
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from _checks import assert_batch_consistent, check_grads_float64
from _grid import case_id, grid_params, pair, sample, table, uncovered
from _keras import (
    NO_KERAS_EQUIVALENT,
    assert_same_layer,
    built,
    call,
    undo_bias_quirk,
)
from _tol import assert_fft_close, assert_sums_close, fft_bound
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_conv2d, reference_depthwise_conv2d

import jconv
import jconv.linen as jlinen
import jconv.nnx as jnnx
from jconv._spec import DIRECT_IMPLS

C_IN, C_OUT = 3, 4

AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (2, 3)],
    "strides": [1, 2, (1, 2)],
    "dilation_rate": [1, 2],
    "padding": ["valid", "same", "same_lower", "full", ((0, 2), (1, 0))],
    "padding_mode": ["zeros", "reflect", "replicate", "circular"],
    "depth_multiplier": [1, 2],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(6, 6), (7, 6)],
    "bias": [False, True],
}


def _fits(case):
    """The dilated kernel fits the unpadded input (explicit pads here add at
    most 2, and every padding mode can pad that much)."""
    d = pair(case["dilation_rate"])
    return all(
        (k - 1) * dd + 1 <= size for k, dd, size in zip(case["kernel"], d, case["hw"])
    )


def _keras_fits(case):
    """Keras' `SeparableConv2D` pads "valid"/"same" with zeros; Keras 3 takes
    strides and dilation both above 1 for this layer (its TensorFlow backend
    runs the dilated convolution at stride 1 and subsamples)."""
    return (
        _fits(case)
        and case["padding"] in ("valid", "same")
        and case["padding_mode"] == "zeros"
    )


DEFAULT_CASES = sample(7, seed=4, axes=AXES, valid=_fits)
SLOW_CASES = sample(200, seed=32, axes=AXES, valid=_fits)
KERAS_CASES = sample(4, seed=29, axes=AXES, valid=_keras_fits)


def kwargs(case):
    keys = ("strides", "padding", "padding_mode", "dilation_rate", "data_format")
    return {k: case[k] for k in keys}


def make_arrays(case, *, integer=False, seed=0, batch=2, c_in=C_IN, c_out=C_OUT):
    """`x`, depthwise kernel, pointwise kernel and bias (None unless
    `case["bias"]`) for `case`, drawn in that order."""
    rng = np.random.default_rng(seed)
    if integer:  # every product and partial sum exact in float32
        draw = lambda s: rng.integers(-3, 4, s).astype(np.float32)
    else:
        draw = lambda s: rng.standard_normal(s).astype(np.float32)
    m = case["depth_multiplier"]
    h, w = case["hw"]
    channels_first = case["data_format"] == "channels_first"
    x = draw((batch, c_in, h, w) if channels_first else (batch, h, w, c_in))
    depthwise = draw((*case["kernel"], c_in, m))
    pointwise = draw((1, 1, c_in * m, c_out))
    bias = draw((c_out,))
    return x, depthwise, pointwise, (bias if case["bias"] else None)


def reference_separable(
    x, depthwise, pointwise, bias=None, *, data_format="channels_last", **kw
):
    """Float64: the loop depthwise reference, then the loop 1x1 convolution."""
    y = reference_depthwise_conv2d(x, depthwise, data_format=data_format, **kw)
    return reference_conv2d(y, pointwise, bias, data_format=data_format)


def assert_separable_close(actual, expected, x, depthwise, pointwise, bias, **kw):
    """Within the module docstring's bound (float32)."""
    absolute = [
        None if a is None else np.abs(a) for a in (x, depthwise, pointwise, bias)
    ]
    magnitude = reference_separable(*absolute, **kw)
    kh, kw_, _, _ = depthwise.shape
    terms = kh * kw_ + pointwise.shape[2] + (bias is not None)
    assert_sums_close(actual, expected, magnitude, terms)


def check_reference(case, impl):
    x, dk, pk, bias = make_arrays(case)
    expected = reference_separable(x, dk, pk, bias, **kwargs(case))
    y = jconv.separable_conv2d(
        x, dk, pk, bias, precision="highest", impl=impl, **kwargs(case)
    )
    assert y.dtype == np.float32
    assert_separable_close(y, expected, x, dk, pk, bias, **kwargs(case))


# --- The float64 reference --------------------------------------------------


def test_default_grid_covers_every_value():
    assert uncovered(DEFAULT_CASES, AXES) == {}


@pytest.mark.parametrize("case", grid_params(DEFAULT_CASES, SLOW_CASES))
def test_matches_reference(case, impl):
    check_reference(case, impl)


def test_auto_matches_reference():
    # At precision="highest" auto keeps to the direct sums: the same bound.
    for case in DEFAULT_CASES[:2]:
        check_reference(case, "auto")


def test_fft_matches_reference():
    """The FFT error of the depthwise step (`_tol.fft_bound`, one channel per
    sum, plus its rounding), carried through the pointwise sums (at most
    `max_o sum_c |pointwise[c, o]|` times it), plus the pointwise step's own
    FFT bound on the intermediate image. `plane` bounds both transforms as
    test_fft.py's does (per axis twice the input plus two kernel spans and
    the explicit pads)."""
    (case,) = table(
        AXES,
        # kernel, strides, dilation, padding, mode, M, data_format, hw, bias
        ((3, 3), 1, (1, 2), "same", "reflect", 2, "channels_first", (7, 6), True),
    )
    x, dk, pk, bias = make_arrays(case, seed=5)
    kw = kwargs(case)
    y = jconv.separable_conv2d(x, dk, pk, bias, impl="fft", **kw)
    expected = reference_separable(x, dk, pk, bias, **kw)
    intermediate = reference_depthwise_conv2d(x, dk, **kw)
    spans = [(k - 1) * d + 1 for k, d in zip(case["kernel"], (1, 2))]
    plane = int(np.prod([2 * (s + 2 * sp + 4) for s, sp in zip(case["hw"], spans)]))
    u = np.finfo(np.float32).eps / 2
    step1 = fft_bound(x, dk, plane=plane, channels=1) + 2 * u * np.abs(
        intermediate
    ).max(initial=0.0)
    carried = step1 * np.abs(pk).sum(axis=(0, 1, 2)).max()
    assert_fft_close(
        y,
        expected,
        np.abs(intermediate) + step1,
        pk,
        plane=plane,
        channels=pk.shape[2],
        extra=carried,
    )


def test_unbatched_and_jit():
    (case,) = table(
        AXES,
        # kernel, strides, dilation, padding, mode, M, data_format, hw, bias
        ((2, 3), (2, 1), 1, "same", "reflect", 2, "channels_first", (5, 6), True),
    )
    x, dk, pk, bias = make_arrays(case, integer=True, seed=7)
    f = lambda x: jconv.separable_conv2d(x, dk, pk, bias, **kwargs(case))
    assert_batch_consistent(f, x, vmap=False)


def test_preferred_element_type_reaches_both_steps():
    """bfloat16 holds the integers up to 256 exactly; float32 holds these
    products and sums exactly. The depthwise sums (of 9 products in [0, 256])
    mostly exceed 256, where bfloat16 rounds odd integers: with
    `preferred_element_type=float32` the intermediate image is kept in
    float32 too, so the result is the float32 computation's exactly; without
    it the result is rounded to bfloat16."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 17, (1, 6, 6, 3)).astype(np.float32)
    dk = rng.integers(0, 17, (3, 3, 3, 2)).astype(np.float32)
    pk = rng.integers(-8, 9, (1, 1, 6, 4)).astype(np.float32)
    bias = rng.integers(-8, 9, (4,)).astype(np.float32)
    arrays = (x, dk, pk, bias)
    bf16 = [jnp.asarray(a, jnp.bfloat16) for a in arrays]
    for impl in DIRECT_IMPLS:
        expected = np.asarray(jconv.separable_conv2d(*arrays, impl=impl))
        y = jconv.separable_conv2d(*bf16, preferred_element_type=jnp.float32, impl=impl)
        assert y.dtype == jnp.float32
        np.testing.assert_array_equal(y, expected)
        rounded = jconv.separable_conv2d(*bf16, impl=impl)
        assert rounded.dtype == jnp.bfloat16
        assert not np.array_equal(np.asarray(rounded, np.float32), expected)


# --- Keras SeparableConv2D, live --------------------------------------------


def test_keras_grid_covers_every_value_keras_takes():
    keras_axes = dict(AXES, padding=["valid", "same"], padding_mode=["zeros"])
    assert uncovered(KERAS_CASES, keras_axes) == {}
    # Strides and dilation both above 1, which Keras' other layers refuse.
    assert any(
        max(pair(c["strides"])) > 1 and max(pair(c["dilation_rate"])) > 1
        for c in KERAS_CASES
    )


def keras_separable(x, dk, pk, bias, case):
    weights = [dk, pk] + ([] if bias is None else [bias])
    layer = built(
        keras.layers.SeparableConv2D,
        weights,
        x.shape,
        filters=pk.shape[-1],
        kernel_size=case["kernel"],
        depth_multiplier=case["depth_multiplier"],
        use_bias=bias is not None,
        strides=case["strides"],
        padding=case["padding"],
        dilation_rate=case["dilation_rate"],
        data_format=case["data_format"],
    )
    return call(layer, x)


@pytest.mark.parametrize("case", KERAS_CASES, ids=case_id)
def test_matches_keras(case):
    """Exact on small integers, within the bound on normal data; Keras runs
    once per data kind, both implementations are compared with it."""
    for integer in (True, False):
        x, dk, pk, bias = make_arrays(case, integer=integer, seed=4)
        expected = undo_bias_quirk(
            keras_separable(x, dk, pk, bias, case), bias, case["data_format"]
        )
        for impl in DIRECT_IMPLS:
            y = jconv.separable_conv2d(
                x, dk, pk, bias, precision="highest", impl=impl, **kwargs(case)
            )
            assert y.shape == expected.shape
            if integer:
                np.testing.assert_array_equal(y, expected)
            else:
                assert_separable_close(y, expected, x, dk, pk, bias, **kwargs(case))


# --- Gradients and properties -------------------------------------------------

(GRAD_CASE,) = table(
    AXES,
    # kernel, strides, dilation, padding, mode, M, data_format, hw, bias
    ((2, 3), (2, 1), (1, 2), "same", "zeros", 2, "channels_last", (5, 6), True),
)


def test_check_grads():
    """One implementation: the composition is what is new here (both
    implementations' derivatives are checked for conv2d and depthwise_conv2d
    in test_grads.py and test_depthwise.py); jitted, which compiles less."""

    @jax.jit
    def f(x, dk, pk, bias):
        return jconv.separable_conv2d(
            x, dk, pk, bias, impl="einsum", **kwargs(GRAD_CASE)
        )

    check_grads_float64(f, make_arrays(GRAD_CASE, batch=1, c_in=2, c_out=2))


pairs = lambda lo, hi: st.one_of(
    st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi))
)


@settings(max_examples=6, deadline=None)
@given(
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    strides=pairs(1, 2),
    dilation=pairs(1, 2),
    padding=st.sampled_from(["valid", "same", "full", (1, 0)]),
    c_in=st.integers(1, 3),
    m=st.integers(1, 2),
    c_out=st.integers(1, 3),
    data_format=st.sampled_from(["channels_last", "channels_first"]),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_lax_and_einsum_agree(
    kernel, strides, dilation, padding, c_in, m, c_out, data_format, use_bias, seed
):
    rng = np.random.default_rng(seed)
    h, w = ((k - 1) * d + 3 for k, d in zip(kernel, pair(dilation)))
    shape = (1, c_in, h, w) if data_format == "channels_first" else (1, h, w, c_in)
    x = rng.standard_normal(shape).astype(np.float32)
    dk = rng.standard_normal((*kernel, c_in, m)).astype(np.float32)
    pk = rng.standard_normal((1, 1, c_in * m, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32) if use_bias else None
    kw = dict(
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        data_format=data_format,
    )
    ys = [
        jconv.separable_conv2d(x, dk, pk, bias, precision="highest", impl=impl, **kw)
        for impl in DIRECT_IMPLS
    ]
    assert ys[0].shape == ys[1].shape
    assert_separable_close(ys[0], ys[1], x, dk, pk, bias, **kw)


# --- Errors -------------------------------------------------------------------

X = np.zeros((1, 6, 6, 3), np.float32)
DK = np.zeros((3, 3, 3, 2), np.float32)
PK = np.zeros((1, 1, 6, 4), np.float32)


@pytest.mark.parametrize(
    "args, kw, exc, match",
    [
        ((X, DK, PK[:, :, :5]), {}, ValueError,
         r"`pointwise_kernel` shape \(1, 1, 5, 4\) must be \(1, 1, C_in \* "
         r"depth_multiplier, C_out\) = \(1, 1, 3 \* 2, C_out\) = \(1, 1, 6, C_out\)"),
        ((X, DK, np.zeros((3, 1, 6, 4), np.float32)), {}, ValueError,
         r"`pointwise_kernel` shape \(3, 1, 6, 4\) must be"),
        ((X, DK, PK[0, 0]), {}, ValueError, r"`pointwise_kernel` shape \(6, 4\)"),
        ((X, DK, PK[..., :0]), {}, ValueError, r"with C_out >= 1"),
        ((X, DK[0], PK), {}, ValueError,
         r"`depthwise_kernel` must have rank 4 \(KH, KW, C_in, depth_multiplier\)"),
        ((X, DK[:, :, :2], PK), {}, ValueError,
         r"`depthwise_kernel` shape \(3, 3, 2, 2\) does not match `x` shape "
         r"\(1, 6, 6, 3\): its axis 2 must be C_in \(=3\), got 2"),
        ((X, DK[..., :0], PK[:, :, :0]), {}, ValueError,
         r"`depthwise_kernel` shape \(3, 3, 3, 0\) has an empty axis"),
        ((X, DK, PK, np.zeros(6, np.float32)), {}, ValueError,
         r"`bias` must have shape \(C_out,\) = \(4,\); got shape \(6,\)"),
        ((X, DK, PK.astype(np.int32)), {}, TypeError,
         r"`pointwise_kernel` has dtype int32"),
        ((X, DK.astype(np.int32), PK), {}, TypeError,
         r"`depthwise_kernel` has dtype int32"),
        ((X[0, 0], DK, PK), {}, ValueError, r"`x` must have rank 4"),
        ((X, DK, PK), dict(strides=0), ValueError, r"`strides` \(=0\) must be"),
        ((X, DK, PK), dict(data_format="nhwc"), ValueError, r"`data_format` \(="),
        ((X, DK, PK), dict(impl="cuda"), ValueError, r"`impl` \(='cuda'\) must be"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        jconv.separable_conv2d(*args, **kw)


# --- Modules ------------------------------------------------------------------

(MODULE_CASE,) = table(
    AXES,
    # kernel, strides, dilation, padding, mode, M, data_format, hw, bias
    ((3, 2), 2, 1, "same", "circular", 2, "channels_last", (7, 6), True),
)
MODULE_ARGS = dict(
    strides=2, depth_multiplier=2, padding="same", padding_mode="circular"
)


def _recorder(calls, name):
    def init(key, shape, dtype):
        calls.append((name, shape, jnp.dtype(dtype)))
        return jnp.ones(shape, dtype)

    return init


def test_nnx_init_follows_flax():
    """Same seed, same key order (depthwise, pointwise, bias), same initial
    weights as the Flax convolutions the layer is made of: a grouped
    `nnx.Conv` (fan-in KH*KW) and a 1x1 `nnx.Conv` (fan-in C_in*M)."""
    sep = jnnx.SeparableConv2D(C_IN, C_OUT, (3, 2), **MODULE_ARGS, rngs=nnx.Rngs(0))
    assert sep.depthwise_kernel.shape == (3, 2, C_IN, 2)
    assert sep.pointwise_kernel.shape == (1, 1, 2 * C_IN, C_OUT)
    assert sep.bias.shape == (C_OUT,)
    # What `nnx.grad` and optimisers see.
    params = nnx.state(sep, nnx.Param)
    assert set(params) == {"depthwise_kernel", "pointwise_kernel", "bias"}
    rngs = nnx.Rngs(0)
    grouped = nnx.Conv(
        C_IN, 2 * C_IN, (3, 2), feature_group_count=C_IN, use_bias=False, rngs=rngs
    )
    pointwise = nnx.Conv(2 * C_IN, C_OUT, (1, 1), rngs=rngs)
    np.testing.assert_array_equal(
        sep.depthwise_kernel[...], grouped.kernel[...].reshape(3, 2, C_IN, 2)
    )
    np.testing.assert_array_equal(sep.pointwise_kernel[...], pointwise.kernel[...])
    np.testing.assert_array_equal(sep.bias[...], np.zeros(C_OUT))
    assert sep.padding == "same" and sep.padding_mode == "circular"


def test_initialisers_get_their_shapes():
    """Both frontends call `depthwise_init` with the grouped shape and
    `pointwise_init` with the pointwise kernel's, in `param_dtype`."""
    grouped, point = (3, 2, 1, 2 * C_IN), (1, 1, 2 * C_IN, C_OUT)
    expected = [
        ("depthwise", grouped, jnp.dtype("float16")),
        ("pointwise", point, jnp.dtype("float16")),
    ]
    calls = []
    inits = dict(
        depthwise_init=_recorder(calls, "depthwise"),
        pointwise_init=_recorder(calls, "pointwise"),
        param_dtype=jnp.float16,
    )
    sep = jnnx.SeparableConv2D(
        C_IN, C_OUT, (3, 2), **MODULE_ARGS, **inits, rngs=nnx.Rngs(0)
    )
    assert calls == expected
    assert sep.depthwise_kernel.dtype == jnp.float16
    calls.clear()
    module = jlinen.SeparableConv2D(C_OUT, (3, 2), **MODULE_ARGS, **inits)
    params = module.init(jax.random.key(0), jnp.ones((1, 7, 6, C_IN)))["params"]
    assert calls == expected
    assert {k: v.shape for k, v in params.items()} == {
        "depthwise_kernel": (3, 2, C_IN, 2),
        "pointwise_kernel": point,
        "bias": (C_OUT,),
    }


def test_modules_equal_the_function():
    """With the same small-integer weights both modules compute the function
    exactly (with their `impl`), eagerly and under jit, batched, unbatched and
    with more batch axes."""
    impl = "einsum"
    x, dk, pk, bias = make_arrays(MODULE_CASE, integer=True, seed=2)
    expected = np.asarray(
        jconv.separable_conv2d(x, dk, pk, bias, impl=impl, **kwargs(MODULE_CASE))
    )
    sep = jnnx.SeparableConv2D(
        C_IN, C_OUT, (3, 2), **MODULE_ARGS, impl=impl, rngs=nnx.Rngs(0)
    )
    sep.depthwise_kernel[...], sep.pointwise_kernel[...], sep.bias[...] = dk, pk, bias
    np.testing.assert_array_equal(sep(x), expected)
    np.testing.assert_array_equal(nnx.jit(lambda m, x: m(x))(sep, x), expected)
    np.testing.assert_array_equal(sep(x[0]), expected[0])
    more = sep(x.reshape(1, *x.shape))
    np.testing.assert_array_equal(more, expected.reshape(1, *expected.shape))

    module = jlinen.SeparableConv2D(C_OUT, (3, 2), **MODULE_ARGS, impl=impl)
    variables = {"params": dict(depthwise_kernel=dk, pointwise_kernel=pk, bias=bias)}
    np.testing.assert_array_equal(jax.jit(module.apply)(variables, x), expected)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(out_features=0), ValueError, r"`out_features` \(=0\) must be positive"),
        (dict(depth_multiplier=0), ValueError, r"`depth_multiplier` \(=0\) must"),
        (dict(in_features=2.0), TypeError, r"`in_features` \(=2.0\) must be an int"),
        (dict(padding="circular"), ValueError, r"is a Flax padding mode"),
        (dict(padding_mode="edge"), ValueError, r"`padding_mode` \(='edge'\)"),
        (dict(use_bias=1), TypeError, r"`use_bias` \(=1\) must be a bool"),
    ],
)
def test_nnx_bad_arguments_raise_at_construction(kw, exc, match):
    args = dict(in_features=C_IN, out_features=C_OUT, kernel_size=3)
    with pytest.raises(exc, match=match):
        jnnx.SeparableConv2D(**{**args, **kw}, rngs=nnx.Rngs(0))


def test_linen_bad_fields_and_inputs():
    with pytest.raises(ValueError, match=r"`features` \(=0\) must be positive"):
        jlinen.SeparableConv2D(0, 3)
    module = jlinen.SeparableConv2D(C_OUT, 3)
    with pytest.raises(ValueError, match=r"`x` must have rank 4"):
        module.init(jax.random.key(0), jnp.ones((6, 6)))


# --- Keras import and export --------------------------------------------------

KERAS_IO_CASES = [
    (dict(filters=4, kernel_size=3, padding="same", depth_multiplier=2), (7, 7, 3)),
    (
        dict(
            filters=5,
            kernel_size=(2, 3),
            strides=2,
            dilation_rate=1,
            use_bias=False,
            data_format="channels_first",
        ),
        (2, 8, 9),
    ),
]


def _keras_layer(kwargs, shape):
    """A built layer with small-integer weights (exact products and sums)."""
    layer = keras.layers.SeparableConv2D(**kwargs)
    layer.build((None, *shape))
    rng = np.random.default_rng(1)
    layer.set_weights(
        [rng.integers(-3, 4, w.shape).astype(np.float32) for w in layer.get_weights()]
    )
    return layer


@pytest.mark.parametrize("kwargs, shape", KERAS_IO_CASES)
def test_keras_round_trip(kwargs, shape):
    """Keras -> NNX and Linen modules (equal outputs, exactly on integer data)
    -> Keras (same configuration, the same weights, equal outputs)."""
    layer = _keras_layer(kwargs, shape)
    module = jnnx.from_keras(layer, precision="highest")
    linen_module, variables = jlinen.from_keras(layer, precision="highest")
    assert type(module) is jnnx.SeparableConv2D
    assert type(linen_module) is jlinen.SeparableConv2D
    assert sorted(variables["params"]) == sorted(
        ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if layer.use_bias else [])
    )
    x = np.random.default_rng(0).integers(-3, 4, (2, *shape)).astype(np.float32)
    expected = call(layer, x)
    np.testing.assert_array_equal(module(x), expected)
    np.testing.assert_array_equal(linen_module.apply(variables, x), expected)
    for back in (jnnx.to_keras(module), jlinen.to_keras(linen_module, variables)):
        assert_same_layer(back, layer, x, expected)


def test_to_keras_from_a_fresh_module():
    """Random initial weights: Keras computes what the module does, within
    the bound."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, C_IN)).astype(np.float32)
    sep = jnnx.SeparableConv2D(
        C_IN, C_OUT, (3, 2), strides=2, depth_multiplier=2, rngs=nnx.Rngs(0)
    )
    layer = jnnx.to_keras(sep)
    weights = [np.asarray(w) for w in layer.get_weights()]
    assert [w.shape for w in weights] == [(3, 2, C_IN, 2), (1, 1, 6, C_OUT), (C_OUT,)]
    kw = dict(strides=2, padding="same")
    assert_separable_close(
        sep(x), call(layer, x), x, *weights, **kw, data_format="channels_last"
    )


def test_keras_io_refuses():
    relu = keras.layers.SeparableConv2D(4, 3, activation="relu")
    relu.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"has `activation` \(='relu'\); jconv"):
        jnnx.from_keras(relu)
    unbuilt = keras.layers.SeparableConv2D(4, 3)
    with pytest.raises(
        ValueError, match=r"`layer` \(SeparableConv2D '.*'\) is not built"
    ):
        jlinen.from_keras(unbuilt)
    rngs = nnx.Rngs(0)
    for kwargs, match in NO_KERAS_EQUIVALENT:
        with pytest.raises(ValueError, match=match):
            jnnx.to_keras(jnnx.SeparableConv2D(2, 4, 3, **kwargs, rngs=rngs))
    module = jlinen.SeparableConv2D(4, 3)
    variables = module.init(jax.random.key(0), jnp.ones((1, 5, 5, 2)))
    params = dict(variables["params"])
    del params["pointwise_kernel"]
    with pytest.raises(ValueError, match=r"`variables` has no 'pointwise_kernel'"):
        jlinen.to_keras(module, {"params": params})
