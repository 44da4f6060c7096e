"""`impl="fft"` (`jconv._fft`): the same answers as the direct sums, within
the FFT's own error bound (`_tol.fft_bound`, derived from the transform
length), on every public convolution and argument the other implementations
are checked on.

The grids are the other test files' grids (conv2d, transposed, depthwise,
padding modes), sampled afresh; `-m slow` runs larger samples.
"""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
import test_depthwise as dw
import test_padding_modes as pm
import test_transpose as tr
from _family import CONV2D
from _grid import AXES, case_id, grid_params, pair, sample, table
from _keras import undo_bias_quirk
from _tol import assert_fft_close, conv_terms, sum_bound
from flax import nnx
from hypothesis import given, settings
from reference import (
    reference_conv2d,
    reference_depthwise_conv2d,
)
from test_keras import keras_conv2d

import jconv
from jconv import linen
from jconv._plan import onednn_applies

FFT = dict(impl="fft")


def plane(case, stretch=(1, 1)) -> int:
    """An upper bound of the transform's pixels (`_tol.fft_bound`): per axis
    twice the stretched input plus two kernel spans and the largest explicit
    pad of the grids (the transform is the padded input rounded up to a
    7-smooth length, never 2x more)."""
    d = pair(case.get("dilation_rate", 1))
    spans = [(k - 1) * dd + 1 for k, dd in zip(case["kernel"], d)]
    return int(
        np.prod(
            [
                2 * (size * s + 2 * span + 4)
                for size, s, span in zip(case["hw"], stretch, spans)
            ]
        )
    )


def fft_bound_args(family, case, kernel) -> dict:
    """`assert_fft_close`'s `plane` and `channels` for `case` of `family`: a
    transposed convolution stretches its input by the strides and sums over
    all its input channels (kernel axis 3), a depthwise one over one, the
    others over kernel axis 2."""
    if family == "transpose":
        return dict(plane=plane(case, pair(case["strides"])), channels=kernel.shape[3])
    channels = 1 if family == "depthwise" else kernel.shape[2]
    return dict(plane=plane(case), channels=channels)


# name: (the family, its default cases, its slow cases)
FAMILIES = {
    "conv2d": (CONV2D, sample(12, seed=51), sample(300, seed=52)),
    "transpose": (tr.FAMILY, tr.GRID.sample(6, seed=53), tr.GRID.sample(200, seed=54)),
    "depthwise": (dw.FAMILY, dw.GRID.sample(6, seed=55), dw.GRID.sample(200, seed=56)),
    "padding_mode": (
        pm.FAMILY,
        pm.GRID.sample(6, seed=57),
        pm.GRID.sample(200, seed=58),
    ),
}


def _params():
    for name, (_, default, slow) in FAMILIES.items():
        for p in grid_params(default, slow):
            yield pytest.param(name, *p.values, id=f"{name}-{p.id}", marks=p.marks)


@pytest.mark.parametrize("family, case", list(_params()))
def test_matches_reference(family, case):
    f = FAMILIES[family][0]
    x, kernel, bias = f.make_arrays(case)
    kw = f.kwargs(case)
    expected = f.reference(x, kernel, bias, **kw)
    bound = fft_bound_args(family, case, kernel)
    y = f.fn(x, kernel, bias, **FFT, **kw)
    assert y.dtype == np.float32
    assert_fft_close(y, expected, x, kernel, **bound)
    if family != "conv2d":
        return  # float64: once, on the conv2d grid (the same code after it)
    with jax.enable_x64(True):
        as64 = lambda a: None if a is None else a.astype(np.float64)
        y64 = f.fn(as64(x), as64(kernel), as64(bias), **FFT, **kw)
        assert y64.dtype == np.float64
        assert_fft_close(y64, expected, x, kernel, dtype=np.float64, **bound)


@pytest.mark.parametrize("mode", ["zeros", *pm.MODES])
def test_large_kernel_depthwise(mode):
    """The algorithm's reason to exist: a 31x31 depthwise kernel (RepLKNet) on
    a 36x36 image, every padding mode, against the float64 loop reference."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 36, 36, 2)).astype(np.float32)
    kernel = rng.standard_normal((31, 31, 2, 1)).astype(np.float32)
    kw = dict(padding="same", padding_mode=mode)
    y = jconv.depthwise_conv2d(x, kernel, **FFT, **kw)
    expected = reference_depthwise_conv2d(x, kernel, **kw)
    case = dict(hw=(36, 36), kernel=(31, 31))
    assert_fft_close(y, expected, x, kernel, plane=plane(case), channels=1)


# --- Keras, live -------------------------------------------------------------

KERAS_CASES = table(
    AXES,
    # kernel, strides, dilation_rate, padding, groups, data_format, hw, bias
    ((3, 3), 2, 1, "same", 2, "channels_last", (8, 7), True),
    ((4, 4), 1, 2, "valid", 1, "channels_first", (8, 8), True),
    ((2, 3), (1, 2), 1, "same", 1, "channels_last", (7, 8), False),
)


@pytest.mark.parametrize(
    "family, keras_fn, case",
    [("conv2d", keras_conv2d, c) for c in KERAS_CASES]
    + [("transpose", tr.keras_conv2d_transpose, c) for c in tr.KERAS_CASES[-2:]]
    + [("depthwise", dw.keras_depthwise, c) for c in dw.KERAS_CASES[:2]],
    ids=lambda v: case_id(v) if isinstance(v, dict) else str(getattr(v, "__name__", v)),
)
def test_matches_keras(family, keras_fn, case):
    """Keras' float32 answer is itself off by up to 2 * gamma_n * sum|products|
    (`_tol.sum_bound`); the FFT's bound comes on top."""
    f = FAMILIES[family][0]
    x, kernel, bias = f.make_arrays(case, seed=4)
    kw = f.kwargs(case)
    expected = undo_bias_quirk(
        keras_fn(x, kernel, bias, case), bias, case["data_format"]
    )
    y = f.fn(x, kernel, bias, **FFT, **kw)
    absolute = [np.abs(a) for a in (x, kernel)] + [
        None if bias is None else np.abs(bias)
    ]
    terms = conv_terms(
        kernel,
        bias=bias,
        transpose=family == "transpose",
        depthwise=family == "depthwise",
    )
    keras_error = sum_bound(f.reference(*absolute, **kw), terms)
    bound = fft_bound_args(family, case, kernel)
    assert_fft_close(y, expected, x, kernel, **bound, extra=keras_error)


# --- Derivatives, transforms -------------------------------------------------


@pytest.mark.parametrize("family", ["conv2d", "transpose", "depthwise"])
def test_check_grads(family):
    """Forward and reverse mode to second order, float64."""
    f, cases, _ = FAMILIES[family]
    case = next(c for c in cases if c.get("bias") and pair(c["strides"]) != (1, 1))
    f.check_grads(case, "fft", batch=1)


def test_jit_vmap_and_unbatched():
    """vmap over kernels and an unbatched image give each call's answer."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 4)).astype(np.float32)
    kernels = rng.standard_normal((3, 5, 4, 2, 6)).astype(np.float32)
    kw = dict(strides=(1, 2), padding="same", groups=2)
    f = jax.jit(lambda x, k: jconv.conv2d(x, k, **FFT, **kw))
    stacked = jax.vmap(f, in_axes=(None, 0))(x, kernels)
    case = dict(hw=(9, 8), kernel=(5, 4))
    for k, y in zip(kernels, stacked):
        expected = reference_conv2d(x, k, **kw)
        assert_fft_close(y, expected, x, k, plane=plane(case), channels=2)
        assert_fft_close(f(x[0], k), expected[0], x, k, plane=plane(case), channels=2)


def test_bfloat16_computes_in_float32():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 12, 12, 3)), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal((7, 7, 3, 4)), jnp.bfloat16)
    y = jconv.conv2d(x, kernel, padding="same", **FFT)
    assert y.dtype == jnp.bfloat16
    x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
    expected = reference_conv2d(x64, k64, padding="same")
    # The float32 FFT's bound, then one rounding to bfloat16 (u = 2**-8).
    case = dict(hw=(12, 12), kernel=(7, 7))
    rounding = 2**-8 * np.abs(expected)
    assert_fft_close(
        y, expected, x64, k64, plane=plane(case), channels=3, extra=rounding
    )


@settings(max_examples=12, deadline=None)
@given(
    data=st.data(),
    kernel=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    groups=st.sampled_from([1, 2, 4]),
    padding=st.sampled_from(["valid", "same", "full", 2]),
)
def test_fft_equals_lax(data, kernel, strides, dilation, groups, padding):
    """Any geometry, float64: fft and lax within the FFT bound plus lax's own
    summation bound."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    hw = tuple(data.draw(st.integers(max(1, s - 2), s + 9)) for s in spans)
    if padding == "valid" and any(s > h for s, h in zip(spans, hw)):
        hw = tuple(max(s, h) for s, h in zip(spans, hw))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((2, *hw, 4))
    k = rng.standard_normal((*kernel, 4 // groups, 4))
    kw = dict(strides=strides, dilation_rate=dilation, groups=groups, padding=padding)
    with jax.enable_x64(True):
        y_fft = jconv.conv2d(x, k, **FFT, **kw)
        y_lax = jconv.conv2d(x, k, impl="lax", **kw)
        magnitude = jconv.conv2d(np.abs(x), np.abs(k), impl="lax", **kw)
    lax_error = sum_bound(magnitude, kernel[0] * kernel[1] * 4 // groups, np.float64)
    case = dict(hw=hw, kernel=kernel, dilation_rate=dilation)
    assert_fft_close(
        y_fft,
        y_lax,
        x,
        k,
        plane=plane(case),
        channels=4 // groups,
        dtype=np.float64,
        extra=lax_error,
    )


# --- The rest of jconv takes impl="fft" ---------------------------------------


def test_flax_modules_run_fft():
    x = jnp.asarray(
        np.random.default_rng(6).standard_normal((1, 10, 10, 4)), jnp.float32
    )
    layer = jconv.nnx.Conv2D(4, 6, (9, 9), padding="same", rngs=nnx.Rngs(0), **FFT)
    expected = jconv.conv2d(
        x, layer.kernel[...], layer.bias[...], padding="same", **FFT
    )
    np.testing.assert_array_equal(layer(x), expected)
    module = linen.DepthwiseConv2D(kernel_size=(9, 9), padding="same", **FFT)
    params = module.init(jax.random.key(0), x)["params"]
    expected = jconv.depthwise_conv2d(
        x, params["kernel"], params["bias"], padding="same", **FFT
    )
    np.testing.assert_array_equal(module.apply({"params": params}, x), expected)


def test_from_keras_runs_fft():
    layer = keras.layers.Conv2D(3, (5, 5), padding="same", dtype="float32")
    x = np.random.default_rng(8).standard_normal((1, 9, 9, 2)).astype(np.float32)
    expected = np.asarray(layer(x))
    module = jconv.nnx.from_keras(layer, **FFT)
    assert module.impl == "fft"
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    magnitude = reference_conv2d(
        np.abs(x), np.abs(kernel), np.abs(bias), padding="same"
    )
    keras_error = sum_bound(magnitude, 5 * 5 * 2 + 1)
    case = dict(hw=(9, 9), kernel=(5, 5))
    assert_fft_close(
        module(x), expected, x, kernel, plane=plane(case), channels=2, extra=keras_error
    )


def test_auto_runs_fft_on_large_depthwise_kernels():
    """`auto`'s table sends a 13x13 depthwise layer's kernel gradient to the
    FFT on the CPU (and its output too where oneDNN does not run), and a
    caller's explicit precision back to the direct sum."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 20, 20, 3)).astype(np.float32)
    kernel = rng.standard_normal((13, 13, 3, 1)).astype(np.float32)
    f = functools.partial(jconv.depthwise_conv2d, padding="same")

    def kernel_grad(precision):
        loss = lambda k: jnp.sum(f(x, k, precision=precision) ** 2)
        return jax.jit(jax.grad(loss)).lower(kernel).as_text()

    on_cpu = jax.default_backend() == "cpu"
    onednn = onednn_applies(x.dtype, None, jax.default_backend())
    assert ("fft" in jax.jit(f).lower(x, kernel).as_text()) == (on_cpu and not onednn)
    assert ("fft" in kernel_grad(None)) == on_cpu
    assert "fft" not in kernel_grad("highest")
    case = dict(hw=(20, 20), kernel=(13, 13))
    expected = reference_depthwise_conv2d(x, kernel, padding="same")
    assert_fft_close(f(x, kernel), expected, x, kernel, plane=plane(case), channels=1)


def test_a_spectrum_no_device_could_hold_is_refused(monkeypatch):
    """The FFT's complex spectra are buffers of their own, checked at trace
    time like the einsum's windows: (1, 8, 8, 1) padded, 256 bytes, passes
    the direct checks at 256 bytes, but its spectrum (1, 8, 5, 1) complex64
    is 320."""
    for name in ("_host_memory_bytes", "_device_memory_bytes"):
        monkeypatch.setattr(jconv._spec, name, lambda: 256)
    x, k = np.ones((1, 4, 4, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    assert jconv.conv2d(x, k, padding=2, impl="lax").shape == (1, 8, 8, 1)
    with pytest.raises(
        ValueError,
        match=r"`impl`='fft' on an input of shape \(1, 4, 4, 1\) with a kernel of "
        r"shape \(KH, KW, C_in // groups, C_out\) = \(1, 1, 1, 1\) makes its input "
        r"spectrum of shape \(1, 8, 5, 1\): 40 elements, 320 bytes at 8 bytes "
        r"each; .* impl='lax' builds no such buffer",
    ):
        jconv.conv2d(x, k, padding=2, **FFT)


def test_the_readme_error_script_runs():
    """`python -m experiments.algorithm_errors` (the README's accuracy table),
    on one small layer: every algorithm it reports, each far below 1e-4."""
    from experiments import algorithm_errors

    layer = algorithm_errors.Layer("3x3", (1, 8, 8, 4), (3, 3, 4, 4))
    errors = algorithm_errors.errors(layer, "float32")
    assert set(errors) == {"fft", "F(2)", "F(4)", "F(6)", "lax"}
    assert all(0 <= e < 1e-4 for e in errors.values()), errors
