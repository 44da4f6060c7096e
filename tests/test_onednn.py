"""`impl="onednn"` (`jconv._onednn`, `native/onednn_conv.cc`): oneDNN's CPU
convolutions inside XLA, checked as every other implementation is.

- Answers: every public convolution against the float64 loop references
  (`reference.py`) within `_tol`'s bound for float32 sums.
- Derivatives: input, kernel and bias gradients against `impl="lax"` at
  `precision="highest"`, and `check_grads` to second order in float32 (the
  primitive takes float32 only) against numerical derivatives.
- Transforms: jit, a training loop in `lax.scan`, `vmap` over images, kernels,
  both and of a gradient: one oneDNN call per pass, no per-element loop.
- dtypes: bfloat16 and float16 computed in float32 and rounded once; float64
  and complex refused by name. Empty inputs: zeros, zero gradients.
- The unavailable path (a subprocess each: `JCONV_ONEDNN=0`, a missing
  `JCONV_ONEDNN_LIBRARY`), the native handler's refusals of arguments that do
  not match its buffers, and a hypothesis fuzz over geometries.

Gradient bounds: a gradient of `sum(y**2)` sums products of `2 y` with `x`,
the kernel or 1, each `y` a sum of `conv_terms` products. Computed twice in
float32 the two results differ by at most `2 gamma_n` times the same
computation on absolute values (Higham, lemma 3.3, as test_separable.py
composes its two steps), `n` the two sums' lengths added: the magnitude is
the gradient of the same loss at `|x|, |kernel|, |bias|` (every product
non-negative there), taken in float64.
"""

import collections
import functools
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _grid import table
from _tol import (
    assert_conv_close,
    assert_sums_close,
    conv_terms,
    gamma_bound,
    sum_bound,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax
from jax.extend.core import ClosedJaxpr, Jaxpr
from jax.test_util import check_grads
from reference import (
    reference_conv2d,
    reference_conv2d_transpose,
    reference_depthwise_conv2d,
)

import jconv
from jconv import _onednn
from jconv._onednn import FORWARD, INPUT_GRAD, KERNEL_GRAD

ONEDNN = dict(impl="onednn")
HIGHEST = dict(impl="lax", precision="highest")
PRIMITIVE = "jconv_onednn_conv"
CL, CF = "channels_last", "channels_first"

pytestmark = pytest.mark.skipif(
    not _onednn.status().available,
    reason=f"oneDNN unavailable: {_onednn.status().reason}",
)


def _draw(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _small_integers(shape, seed):
    """Every product and partial sum of these is exact in float32."""
    return np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float32)


# --- Answers against the float64 references ----------------------------------


def reference_separable(x, depthwise, pointwise, bias=None, *, data_format=CL, **kw):
    """Float64: the loop depthwise reference, then the loop 1x1 convolution
    (as test_separable.py's)."""
    y = reference_depthwise_conv2d(x, depthwise, data_format=data_format, **kw)
    return reference_conv2d(y, pointwise, bias, data_format=data_format)


# name: (the function, its float64 reference)
FUNCTIONS = {
    "conv2d": (jconv.conv2d, reference_conv2d),
    "conv2d_transpose": (jconv.conv2d_transpose, reference_conv2d_transpose),
    "depthwise_conv2d": (jconv.depthwise_conv2d, reference_depthwise_conv2d),
    "separable_conv2d": (jconv.separable_conv2d, reference_separable),
}
# One call a row: `x`'s shape (in its layout), the kernels' shapes, bias or
# not, the keyword arguments. Together: strides, dilation, explicit
# asymmetric pads, "same"/"same_lower"/"valid"/"full", groups, depthwise with
# a multiplier, both layouts, every padding mode, output_padding, unbatched
# input, a kernel larger than its input.
ANSWERS = table(
    ("fn", "x", "kernels", "bias", "kwargs"),
    ("conv2d", (2, 8, 7, 4), [(3, 3, 2, 6)], True,
     dict(strides=2, padding="same", groups=2)),
    ("conv2d", (2, 4, 8, 9), [(3, 2, 4, 5)], False,
     dict(strides=(1, 2), dilation_rate=(2, 1), padding=((0, 2), (1, 0)),
          data_format=CF)),
    ("conv2d", (1, 7, 7, 4), [(2, 2, 4, 6)], True,
     dict(strides=3, dilation_rate=2, padding="full")),
    ("conv2d", (2, 6, 5, 4), [(1, 1, 1, 8)], False, dict(groups=4)),
    ("conv2d", (1, 2, 3, 4), [(5, 6, 1, 4)], True,
     dict(padding=((2, 3), (3, 2)), groups=2, data_format=CF)),
    ("conv2d", (2, 7, 6, 3), [(3, 3, 3, 4)], True,
     dict(strides=2, padding=1, padding_mode="reflect")),
    ("conv2d", (2, 3, 7, 6), [(3, 2, 3, 4)], False,
     dict(dilation_rate=2, padding="same_lower", padding_mode="replicate",
          data_format=CF)),
    ("conv2d", (2, 6, 7, 4), [(3, 3, 2, 4)], True,
     dict(padding=((1, 2), (0, 1)), padding_mode="circular", groups=2)),
    ("conv2d", (7, 7, 4), [(3, 3, 4, 5)], True, dict(strides=(2, 1), padding="same")),
    ("conv2d", (4, 6, 5), [(2, 3, 4, 3)], False,
     dict(padding="valid", data_format=CF)),
    ("conv2d_transpose", (2, 4, 5, 6), [(3, 3, 4, 6)], True,
     dict(strides=2, padding="same")),
    ("conv2d_transpose", (2, 6, 4, 3), [(3, 2, 4, 6)], False,
     dict(strides=2, output_padding=1, data_format=CF)),
    ("conv2d_transpose", (1, 3, 4, 4), [(3, 3, 3, 4)], True,
     dict(strides=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 2),
          groups=2)),
    ("conv2d_transpose", (2, 4, 4, 4), [(2, 3, 2, 4)], False,
     dict(dilation_rate=(2, 1), padding="full", groups=2)),
    ("conv2d_transpose", (2, 4, 5, 4), [(3, 3, 3, 4)], True,
     dict(strides=2, padding=1, padding_mode="reflect", data_format=CF)),
    ("conv2d_transpose", (4, 5, 6), [(2, 2, 3, 6)], True,
     dict(strides=2, padding="valid")),
    ("depthwise_conv2d", (2, 7, 8, 3), [(3, 3, 3, 2)], True,
     dict(strides=2, padding="same")),
    ("depthwise_conv2d", (2, 3, 7, 6), [(3, 2, 3, 1)], False,
     dict(dilation_rate=2, padding=2, padding_mode="circular", data_format=CF)),
    ("depthwise_conv2d", (1, 2, 2, 2), [(4, 3, 2, 3)], True,
     dict(padding=((2, 1), (1, 1)))),
    ("separable_conv2d", (2, 6, 7, 3), [(3, 3, 3, 2), (1, 1, 6, 4)], True,
     dict(padding="same", padding_mode="reflect")),
    ("separable_conv2d", (2, 3, 7, 6), [(2, 3, 3, 1), (1, 1, 3, 5)], False,
     dict(strides=(2, 1), dilation_rate=(1, 2), padding="same", data_format=CF)),
)  # fmt: skip


def _folds(row) -> int:
    """How many sums a transposed convolution with a padding mode adds into
    one output pixel (the pads fold back onto the border, at most `1 + top +
    bottom` per axis: test_transpose_groups_modes.folds); 1 otherwise. The
    rows with a mode take an int `padding`."""
    kw = row["kwargs"]
    if row["fn"] != "conv2d_transpose" or kw.get("padding_mode", "zeros") == "zeros":
        return 1
    return (1 + 2 * kw["padding"]) ** 2


def _assert_answer_close(row, y, expected, x, kernels, bias):
    """Within `2 gamma_n sum|products|` of the reference (float32): the
    magnitude is the reference on absolute values, `n` the sums' length."""
    _, reference = FUNCTIONS[row["fn"]]
    absolute = [None if a is None else np.abs(a) for a in (x, *kernels, bias)]
    magnitude = reference(*absolute, **row["kwargs"])
    if row["fn"] == "separable_conv2d":  # test_separable's bound
        depthwise, pointwise = kernels
        terms = depthwise.shape[0] * depthwise.shape[1] + pointwise.shape[2]
        terms += bias is not None
    else:
        terms = _folds(row) * conv_terms(
            kernels[0],
            bias=bias,
            transpose=row["fn"] == "conv2d_transpose",
            depthwise=row["fn"] == "depthwise_conv2d",
        )
    assert_sums_close(y, expected, magnitude, terms)


def _bias_size(row) -> int:
    """The output channels of the row's call."""
    kernel = row["kernels"][-1]
    if row["fn"] == "conv2d_transpose":
        return kernel[2] * row["kwargs"].get("groups", 1)
    if row["fn"] == "depthwise_conv2d":
        return kernel[2] * kernel[3]
    return kernel[3]


@pytest.mark.parametrize(
    "row", ANSWERS, ids=lambda r: f"{r['fn']}-{r['x']}-{r['kernels'][0]}-{r['kwargs']}"
)
def test_matches_reference(row):
    fn, reference = FUNCTIONS[row["fn"]]
    x = _draw(row["x"], 0)
    kernels = [_draw(s, 1 + i) for i, s in enumerate(row["kernels"])]
    bias = _draw((_bias_size(row),), 9) if row["bias"] else None
    expected = reference(x, *kernels, bias, **row["kwargs"])
    y = fn(x, *kernels, bias, **ONEDNN, **row["kwargs"])
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    _assert_answer_close(row, y, expected, x, kernels, bias)


def test_the_answers_grid_fails_on_a_flipped_kernel():
    """The bound above is tight enough to see a wrong convolution: a kernel
    flipped in space (a convolution instead of a cross-correlation)."""
    row = ANSWERS[0]
    x, kernel = _draw(row["x"], 0), _draw(row["kernels"][0], 1)
    flipped = jconv.conv2d(x, kernel[::-1, ::-1], **ONEDNN, **row["kwargs"])
    expected = reference_conv2d(x, kernel, **row["kwargs"])
    with pytest.raises(AssertionError, match="differ by more than"):
        _assert_answer_close(row, flipped, expected, x, [kernel], None)


# --- Gradients ---------------------------------------------------------------

# name: (function, x shape, kernel shape, keyword arguments)
GRADIENT_CASES = {
    "conv2d": (
        jconv.conv2d,
        (2, 4, 7, 6),
        (3, 2, 2, 6),
        dict(
            strides=2,
            dilation_rate=(1, 2),
            padding=((1, 0), (2, 1)),
            groups=2,
            data_format=CF,
        ),
    ),
    "conv2d_transpose": (
        jconv.conv2d_transpose,
        (2, 4, 5, 4),
        (3, 3, 3, 4),
        dict(strides=2, padding="same", output_padding=1, groups=2),
    ),
}


def _loss(fn, impl_kwargs, kwargs):
    def loss(x, kernel, bias):
        return jnp.sum(fn(x, kernel, bias, **impl_kwargs, **kwargs) ** 2)

    return loss


def _gradient_terms(x, kernel, y, *, transpose):
    """The products in one gradient element of `sum(y**2)`, `y`'s sums
    included: `conv_terms` for `y`, then at most the pixels of `y` (kernel
    and bias gradients of a convolution), of `x` (the kernel gradient of a
    transposed one) or a kernel's taps times its channels (input gradients)."""
    kh, kw = kernel.shape[:2]
    pixels = max(y.size // y.shape[-1], x.size // x.shape[-1])
    taps = kh * kw * max(kernel.shape[2:])
    return conv_terms(kernel, bias=True, transpose=transpose) + max(pixels, taps)


def _abs_gradients(grad_fn, *args):
    """`grad_fn` (built with impl="lax") at the absolute values of `args`,
    in float64: the magnitudes of the module docstring."""
    with jax.enable_x64(True):
        return grad_fn(*(np.abs(a).astype(np.float64) for a in args))


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_match_lax(name):
    """Input, kernel and bias gradients of `sum(y**2)`, float32, against lax
    at precision "highest", element by element within the module
    docstring's bound (pixels counted on channels-last copies)."""
    fn, x_shape, k_shape, kwargs = GRADIENT_CASES[name]
    x, kernel = _draw(x_shape, 2), _draw(k_shape, 3)
    transpose = name == "conv2d_transpose"
    c_out = k_shape[2] * kwargs.get("groups", 1) if transpose else k_shape[3]
    bias = _draw((c_out,), 4)
    grads = jax.jit(jax.grad(_loss(fn, ONEDNN, kwargs), (0, 1, 2)))
    lax_grads = jax.jit(jax.grad(_loss(fn, HIGHEST, kwargs), (0, 1, 2)))
    got, expected = grads(x, kernel, bias), lax_grads(x, kernel, bias)
    magnitudes = _abs_gradients(lax_grads, x, kernel, bias)
    y = fn(x, kernel, bias, **HIGHEST, **kwargs)
    if kwargs.get("data_format") == CF:
        x, y = x.transpose(0, 2, 3, 1), y.transpose(0, 2, 3, 1)
    terms = _gradient_terms(x, kernel, y, transpose=transpose)
    for g, e, m in zip(got, expected, magnitudes, strict=True):
        assert g.dtype == np.float32 and g.shape == e.shape
        assert_sums_close(g, e, m, terms)


def test_check_grads_float32():
    """Second order, forward and reverse mode, strided, dilated, grouped,
    against central differences: the convolution is a polynomial of degree 2
    in its arguments (bilinear plus bias), so the differences are exact but for
    float32 rounding, about `u * |f| / eps`: eps 1e-2 and tolerances of 1e-2
    leave a wide margin, and a wrong transpose (the kernel not flipped, a
    pass swapped) is off by O(1)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 7, 6, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, 2, 6)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    kw = dict(strides=(2, 1), dilation_rate=(1, 2), padding="same", groups=2)
    f = jax.jit(lambda x, k, b: jconv.conv2d(x, k, b, **ONEDNN, **kw))
    check_grads(
        f, (x, kernel, bias), order=2, modes=("fwd", "rev"), eps=1e-2, atol=1e-2,
        rtol=1e-2,
    )  # fmt: skip


# --- Transforms --------------------------------------------------------------


def _equations(jaxpr):
    """Every equation of `jaxpr` and of the jaxprs in its equations' params
    (jit, custom_jvp, scan, cond bodies), depth first."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, ClosedJaxpr):
                    yield from _equations(sub.jaxpr)
                elif isinstance(sub, Jaxpr):
                    yield from _equations(sub)


def _passes(fn, *args):
    """The oneDNN passes in `fn`'s jaxpr (a Counter of FORWARD, INPUT_GRAD,
    KERNEL_GRAD) and the names of every primitive in it."""
    eqns = list(_equations(jax.make_jaxpr(fn)(*args).jaxpr))
    passes = collections.Counter(
        e.params["pass_"] for e in eqns if e.primitive.name == PRIMITIVE
    )
    return passes, {e.primitive.name for e in eqns}


def test_jit():
    x, kernel, bias = _draw((2, 8, 7, 4), 6), _draw((3, 3, 2, 6), 7), _draw(6, 8)
    kw = dict(strides=2, padding=((1, 0), (2, 1)), groups=2)
    f = jax.jit(jconv.conv2d, static_argnames=("strides", "padding", "groups", "impl"))
    y = f(x, kernel, bias, **kw, **ONEDNN)
    expected = reference_conv2d(x, kernel, bias, **kw)
    assert_conv_close(y, expected, reference_conv2d, x, kernel, bias, **kw)
    np.testing.assert_array_equal(y, jconv.conv2d(x, kernel, bias, **kw, **ONEDNN))


def test_training_loop_in_scan():
    """Three steps of gradient descent on `sum(y**2) / 2` inside `lax.scan`,
    onednn and lax: the same parameters to the bit. Exact because the data
    are in {-1, 0, 1} and the step 2**-6: the parameters stay multiples of
    2**-18 below 2**6, each `y` (8 products and the bias) a multiple of
    2**-12 below 2**7, each gradient (18 products) a multiple of 2**-12
    below 2**11; every partial sum, bounded by the sum of absolute values,
    fits float32's 24 bits in any order. The losses (sums of 36 rounded
    squares) are within the float32 sum bound."""
    rng = np.random.default_rng(9)
    xs = rng.integers(-1, 2, (3, 2, 4, 4, 2)).astype(np.float32)
    kernel = rng.integers(-1, 2, (2, 2, 2, 2)).astype(np.float32)
    bias = rng.integers(-1, 2, 2).astype(np.float32)
    lr = 2.0**-6

    def train(impl_kwargs):
        def step(params, x):
            def loss(params):
                y = jconv.conv2d(x, *params, **impl_kwargs)
                return jnp.sum(y**2) / 2

            value, grads = jax.value_and_grad(loss)(params)
            params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
            return params, value

        return jax.jit(lambda params: lax.scan(step, params, xs))

    (k1, b1), losses = train(ONEDNN)((kernel, bias))
    (k2, b2), lax_losses = train(HIGHEST)((kernel, bias))
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(k1, kernel)  # it trained
    assert_sums_close(losses, lax_losses, lax_losses, 2 * 3 * 3 * 2)
    passes, names = _passes(train(ONEDNN), (kernel, bias))
    assert "scan" in names and set(passes) == {FORWARD, KERNEL_GRAD}


# A grouped, strided convolution, vmapped: B = 3 over N = 2 images.
VMAP_KW = dict(strides=(2, 1), padding="same", groups=2)
B = 3


def _vmap_arrays():
    return _draw((B, 2, 7, 6, 4), 10), _draw((B, 3, 3, 2, 6), 11)


# name: (in_axes, how to take `x` and `kernel` from `_vmap_arrays`)
VMAPS = {
    "x": ((0, None), lambda x, k: (x, k[0])),
    "kernel": ((None, 0), lambda x, k: (x[0], k)),
    "both": ((0, 0), lambda x, k: (x, k)),
    "both_inner_axes": ((1, 3), lambda x, k: (x.swapaxes(0, 1), jnp.moveaxis(k, 0, 3))),
}


@pytest.mark.parametrize("name", VMAPS)
def test_vmap(name):
    """The vmapped convolution equals lax's, element by element within the
    float32 bound, and runs as one oneDNN call: no per-element loop."""
    in_axes, take = VMAPS[name]
    x, kernel = take(*_vmap_arrays())
    conv = lambda impl_kwargs: jax.vmap(
        lambda x, k: jconv.conv2d(x, k, **impl_kwargs, **VMAP_KW), in_axes
    )
    y, expected = conv(ONEDNN)(x, kernel), conv(HIGHEST)(x, kernel)
    assert y.shape == expected.shape == (B, 2, 4, 6, 6)
    x_abs, k_abs = (np.abs(np.asarray(a, np.float64)) for a in (x, kernel))
    with jax.enable_x64(True):
        magnitude = conv(HIGHEST)(x_abs, k_abs)
    assert_sums_close(y, expected, magnitude, 3 * 3 * 2)
    passes, names = _passes(conv(ONEDNN), x, kernel)
    assert passes == {FORWARD: 1}
    assert not names & {"while", "scan"}


@pytest.mark.parametrize("in_axes", [(0, None), (0, 0)], ids=["per_example", "both"])
def test_vmap_of_gradient(in_axes):
    """Per-example gradients (images mapped, one kernel) and gradients of a
    batch of independent problems: lax's within the module docstring's
    bound, one oneDNN call per pass."""
    x, kernel = _vmap_arrays()
    if in_axes[1] is None:
        kernel = kernel[0]

    def grads(impl_kwargs):
        loss = lambda x, k: jnp.sum(jconv.conv2d(x, k, **impl_kwargs, **VMAP_KW) ** 2)
        return jax.vmap(jax.grad(loss, (0, 1)), in_axes)

    got, expected = grads(ONEDNN)(x, kernel), grads(HIGHEST)(x, kernel)
    magnitudes = _abs_gradients(grads(HIGHEST), x, kernel)
    # y: 18 terms; the input gradient 3*3*3 products, the kernel's 2*4*6 pixels.
    terms = 3 * 3 * 2 + 2 * 4 * 6
    for g, e, m in zip(got, expected, magnitudes, strict=True):
        assert g.shape == e.shape
        assert_sums_close(g, e, m, terms)
    passes, names = _passes(grads(ONEDNN), x, kernel)
    assert passes == {FORWARD: 1, INPUT_GRAD: 1, KERNEL_GRAD: 1}
    assert not names & {"while", "scan"}


# --- dtypes ------------------------------------------------------------------


def _abs_vjp_x(kernel, ct, kw, x_shape):
    """The input gradient's magnitude: the VJP of lax at `|kernel|`, `|ct|`."""
    with jax.enable_x64(True):
        k, c = (np.abs(np.asarray(a, np.float64)) for a in (kernel, ct))
        f = lambda x: jconv.conv2d(x, k, **HIGHEST, **kw)
        return jax.vjp(f, jnp.zeros(x_shape, jnp.float64))[1](c)[0]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "f16"])
def test_half_precision_computes_in_float32(dtype):
    """Half-precision inputs: products exact in float32, float32 sums, one
    rounding (u = eps / 2) to the input dtype (test_empty_and_half's bound);
    against the float64 reference on the same values, and against lax (both
    roundings of float32 sums within `sum_bound` of each other). The input
    gradient of a given cotangent too, in the input dtype."""
    rng = np.random.default_rng(12)
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 4)), dtype)
    kernel = jnp.asarray(rng.standard_normal((3, 3, 2, 6)), dtype)
    ct = jnp.asarray(rng.standard_normal((2, 4, 6, 6)), dtype)
    kw = dict(strides=(2, 1), padding="same", groups=2)
    u = float(jnp.finfo(dtype).eps) / 2

    def value_and_input_grad(impl_kwargs):
        f = lambda x: jconv.conv2d(x, kernel, **impl_kwargs, **kw)
        y, vjp = jax.vjp(f, x)
        return y, vjp(ct)[0]

    (y, gx), (y_lax, gx_lax) = (
        value_and_input_grad(ONEDNN),
        value_and_input_grad(HIGHEST),
    )
    assert y.dtype == gx.dtype == dtype
    x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
    expected = reference_conv2d(x64, k64, **kw)
    magnitude = reference_conv2d(np.abs(x64), np.abs(k64), **kw)
    wide = gamma_bound(magnitude, 3 * 3 * 2)
    bound = u * (np.abs(expected) + wide) + wide + float(jnp.finfo(dtype).tiny)
    assert np.all(np.abs(np.asarray(y, np.float64) - expected) <= bound)
    for got, other, terms, m in [
        (y, y_lax, 3 * 3 * 2, magnitude),
        (gx, gx_lax, 3 * 3 * 3, _abs_vjp_x(kernel, ct, kw, x.shape)),
    ]:
        a, b = np.asarray(got, np.float64), np.asarray(other, np.float64)
        limit = sum_bound(m, terms) + u / (1 - u) * (np.abs(a) + np.abs(b))
        assert np.all(np.abs(a - b) <= limit + float(jnp.finfo(dtype).tiny))


def test_preferred_float32_with_bfloat16_inputs():
    """bfloat16 in, float32 out: float32 sums of exact products, no rounding
    to bfloat16 (the bound is gamma_n alone, 2**-8 times finer than one)."""
    rng = np.random.default_rng(13)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.bfloat16)
    y = jconv.conv2d(x, kernel, padding="same", preferred_element_type=jnp.float32,
                     **ONEDNN)  # fmt: skip
    assert y.dtype == jnp.float32
    x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
    expected = reference_conv2d(x64, k64, padding="same")
    magnitude = reference_conv2d(np.abs(x64), np.abs(k64), padding="same")
    bound = gamma_bound(magnitude, 27) + np.finfo(np.float32).tiny
    assert np.all(np.abs(np.asarray(y, np.float64) - expected) <= bound)


def test_float64_and_complex_are_refused_by_name():
    x, kernel = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 2, 2), np.float32)
    with pytest.raises(TypeError, match=r"`x` has dtype complex64"):
        jconv.conv2d(x.astype(np.complex64), kernel, **ONEDNN)
    with pytest.raises(TypeError, match=r"`x` has dtype complex64"):
        jconv.conv2d(x, kernel.astype(np.complex64), **ONEDNN)  # promoted
    with jax.enable_x64(True):
        with pytest.raises(TypeError, match=r"`x` has dtype float64.*'lax'"):
            jconv.conv2d(x.astype(np.float64), kernel, **ONEDNN)
        with pytest.raises(
            TypeError, match=r"`preferred_element_type` has dtype float64"
        ):
            jconv.conv2d(x, kernel, preferred_element_type=jnp.float64, **ONEDNN)
        with pytest.raises(TypeError, match=r"`x` has dtype float64"):
            jconv.depthwise_conv2d(x.astype(np.float64), kernel, **ONEDNN)


# --- Empty inputs ------------------------------------------------------------

# One call a row: function, x shape, kernel shape, keyword arguments, the
# output shape.
EMPTY_ROWS = table(
    ("fn", "x", "kernel", "kwargs", "out"),
    ("conv2d", (0, 7, 8, 4), (3, 3, 2, 6), dict(strides=2, padding="same", groups=2),
     (0, 4, 4, 6)),
    ("conv2d", (0, 4, 7, 8), (3, 3, 4, 6), dict(padding_mode="reflect", padding=1,
     data_format=CF), (0, 6, 7, 8)),
    ("conv2d", (2, 0, 5, 4), (3, 3, 4, 6), dict(padding="same"), (2, 0, 5, 6)),
    ("conv2d", (2, 0, 5, 4), (3, 3, 4, 6), dict(strides=2, padding="same"),
     (2, 0, 3, 6)),
    ("conv2d", (2, 0, 5, 4), (3, 3, 4, 6), dict(padding="full"), (2, 2, 7, 6)),
    ("conv2d_transpose", (0, 4, 4, 6), (3, 3, 4, 6), dict(strides=2, padding="same"),
     (0, 8, 8, 4)),
    ("conv2d_transpose", (2, 0, 4, 6), (3, 3, 4, 6), dict(strides=2, padding="same"),
     (2, 0, 8, 4)),
    ("depthwise_conv2d", (0, 6, 5, 4), (3, 3, 4, 2), dict(padding="same"),
     (0, 6, 5, 8)),
)  # fmt: skip


@pytest.mark.parametrize("row", EMPTY_ROWS, ids=lambda r: f"{r['fn']}-{r['x']}")
def test_empty_inputs(row):
    """Zeros of the right shape (an empty output, or the bias alone where
    "full" pads an empty axis into rows), a tangent of that shape, and zero
    gradients of their arguments' shapes."""
    fn, _ = FUNCTIONS[row["fn"]]
    kernel = _draw(row["kernel"], 14)
    c_out = row["out"][1 if row["kwargs"].get("data_format") == CF else 3]
    bias = _draw((c_out,), 15)
    x = jnp.zeros(row["x"], jnp.float32)
    f = lambda x, k, b: fn(x, k, b, **ONEDNN, **row["kwargs"])
    y, y_dot = jax.jvp(f, (x, kernel, bias), (x + 1, kernel, bias))
    assert y.shape == y_dot.shape == row["out"] and y.dtype == np.float32
    shape = (1, -1, 1, 1) if row["kwargs"].get("data_format") == CF else (-1,)
    np.testing.assert_array_equal(y, jnp.broadcast_to(bias.reshape(shape), y.shape))
    grads = jax.grad(lambda *a: jnp.sum(f(*a) ** 2), (0, 1))(x, kernel, bias)
    for g, a in zip(grads, (x, kernel), strict=True):
        assert g.shape == a.shape and g.dtype == np.float32
        assert not np.any(np.asarray(g))


# --- Where oneDNN is unavailable ---------------------------------------------

_UNAVAILABLE_SCRIPT = """
import json
import jax, jax.numpy as jnp, numpy as np
import jconv
from jconv import _onednn
rng = np.random.default_rng(0)
x = rng.integers(-3, 4, (2, 6, 6, 4)).astype(np.float32)
k = rng.integers(-3, 4, (3, 3, 4, 4)).astype(np.float32)
try:
    jconv.conv2d(x, k, impl="onednn")
    refused = None
except ValueError as error:
    refused = str(error)
def value_and_grads(impl):
    f = lambda x, k: jconv.conv2d(x, k, padding="same", impl=impl, precision="highest")
    return f(x, k), jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), (0, 1))(x, k)
(y, g), (y_lax, g_lax) = value_and_grads("auto"), value_and_grads("lax")
same = bool(np.array_equal(y, y_lax)) and all(map(np.array_equal, g, g_lax))
status = _onednn.status()
print(json.dumps(dict(available=status.available, reason=status.reason,
                      refused=refused, same=same)))
"""


@pytest.mark.parametrize(
    "env, reason",
    [
        (dict(JCONV_ONEDNN="0"), r"disabled by JCONV_ONEDNN=0 in the environment"),
        (
            dict(JCONV_ONEDNN_LIBRARY="/nonexistent/lib.so"),
            r"JCONV_ONEDNN_LIBRARY='/nonexistent/lib.so' is not a file",
        ),
    ],
    ids=["disabled", "missing_library"],
)
def test_unavailable(env, reason):
    """`status()` says why, an explicit impl="onednn" raises a ValueError
    with that reason, and impl="auto" gives lax's answer and gradients (to
    the bit: small integers)."""
    run = subprocess.run(
        [sys.executable, "-c", _UNAVAILABLE_SCRIPT],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["available"] is False
    assert re.fullmatch(reason, result["reason"])
    assert result["refused"] is not None
    assert re.fullmatch(r"impl='onednn' cannot run here: " + reason, result["refused"])
    assert result["same"]


# --- The native handler's own checks -----------------------------------------

PARAMS = dict(
    strides=(1, 1),
    dilation=(1, 1),
    pads=((0, 0), (0, 0)),
    groups=1,
    image_hw=(),
    kernel_hw=(),
    any_weights=(True, True, True),
)


@pytest.mark.parametrize("any_weights", [True, False])
def test_primitive_passes_match_lax(any_weights):
    """The three passes, called directly on a grouped, strided, dilated,
    padded geometry, with the kernel in oneDNN's layout or in the caller's:
    lax's convolution and its VJP (within the float32 bound; input
    gradient: 3*2*3 products, kernel gradient: 2*4*4 pixels)."""
    x, kernel = _draw((2, 7, 6, 4), 16), _draw((3, 2, 2, 6), 17)
    geometry = dict(strides=(2, 1), dilation=(1, 2), pads=((1, 0), (0, 2)), groups=2)
    params = dict(PARAMS, any_weights=(any_weights,) * 3, **geometry)

    def conv(x, k):
        return lax.conv_general_dilated(
            x, k, geometry["strides"], geometry["pads"],
            rhs_dilation=geometry["dilation"], feature_group_count=2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest",
        )  # fmt: skip

    y = _onednn.call(FORWARD, x, kernel, **params)
    dy = _draw(y.shape, 18)
    dx = _onednn.call(INPUT_GRAD, dy, kernel, **dict(params, image_hw=(7, 6)))
    dk = _onednn.call(KERNEL_GRAD, x, dy, **dict(params, kernel_hw=(3, 2)))
    expected_y, vjp = jax.vjp(conv, x, kernel)
    expected_dx, expected_dk = vjp(dy)
    with jax.enable_x64(True):
        abs64 = [np.abs(a).astype(np.float64) for a in (x, kernel, dy)]
        magnitude_y, vjp_abs = jax.vjp(conv, *abs64[:2])
        magnitude_dx, magnitude_dk = vjp_abs(abs64[2])
    assert_sums_close(y, expected_y, magnitude_y, 3 * 2 * 2)
    assert_sums_close(dx, expected_dx, magnitude_dx, 3 * 2 * 3)
    assert_sums_close(dk, expected_dk, magnitude_dk, 2 * 4 * 4)


# One call a row: the pass, the operands' shapes, the parameters it changes,
# the exception and the message: arguments the buffers contradict, which the
# handler (or the Python shape rule) refuses without a crash.
BAD_CALLS = table(
    ("pass_", "a", "b", "params", "error", "match"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 2, 6), dict(groups=3), jax.errors.JaxRuntimeError,
     r"INVALID_ARGUMENT: jconv oneDNN convolution: groups must divide the input "
     r"and output channels"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 2, 5), dict(groups=2), jax.errors.JaxRuntimeError,
     r"jconv oneDNN convolution: groups must divide"),
    (INPUT_GRAD, (1, 3, 3, 6), (3, 3, 2, 6), dict(groups=2, image_hw=(9, 9)),
     jax.errors.JaxRuntimeError,
     r"jconv oneDNN convolution: the output size does not follow from the input"),
    (KERNEL_GRAD, (1, 5, 5, 4), (1, 3, 3, 6), dict(kernel_hw=(2, 2)),
     jax.errors.JaxRuntimeError, r"jconv oneDNN convolution: the output size"),
    (KERNEL_GRAD, (1, 5, 5, 4), (2, 3, 3, 6), dict(kernel_hw=(3, 3)),
     jax.errors.JaxRuntimeError,
     r"jconv oneDNN convolution: image and output batch sizes differ"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 4, 6), dict(pads=((-1, 0), (0, 0))),
     jax.errors.JaxRuntimeError,
     r"jconv oneDNN convolution: pads must not be negative"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 4, 6), dict(dilation=(0, 1)),
     jax.errors.JaxRuntimeError,
     r"jconv oneDNN convolution: every size, stride, dilation and group count "
     r"must be positive"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 4, 6), dict(strides=(2**40, 1)),
     jax.errors.JaxRuntimeError,
     r"oneDNN: could not create a primitive descriptor"),
    (FORWARD, (1, 5, 5, 4), (3, 3, 4, 6), dict(strides=(0, 1)), ZeroDivisionError,
     r"division"),
)  # fmt: skip


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_the_handler_refuses_arguments_its_buffers_contradict(jit):
    """Each bad call raises (the handler's "jconv oneDNN convolution:" error
    through XLA, or Python's while inferring the shape), and the process and
    the primitive cache go on: a good call afterwards gives lax's answer."""
    for row in BAD_CALLS:
        a, b = np.ones(row["a"], np.float32), np.ones(row["b"], np.float32)
        params = dict(PARAMS, **row["params"])
        call = functools.partial(_onednn.call, row["pass_"], **params)
        with pytest.raises(row["error"], match=row["match"]):
            jax.block_until_ready(jax.jit(call)(a, b) if jit else call(a, b))
    x, kernel = _small_integers((1, 5, 5, 4), 19), _small_integers((3, 3, 4, 6), 20)
    y = _onednn.call(FORWARD, x, kernel, **PARAMS)
    np.testing.assert_array_equal(y, jconv.conv2d(x, kernel, impl="lax"))


# --- Any valid geometry ------------------------------------------------------


@st.composite
def _axis(draw):
    """One spatial axis: input size, pads, stride, kernel size, dilation, such
    that jconv takes it: the dilated kernel fits the padded input (a kernel
    larger than the input where the pads make room), or, on an axis of 0
    pixels, may exceed it by up to the stride (an output of 0 pixels)."""
    size = draw(st.integers(0, 6))
    lo, hi, stride = (
        draw(st.integers(0, 3)),
        draw(st.integers(0, 3)),
        draw(st.integers(1, 3)),
    )
    padded = size + lo + hi
    if size == 0 and draw(st.booleans()):
        k = padded + draw(st.integers(1, stride))  # span in (padded, padded + stride]
        return size, (lo, hi), stride, k, 1
    if padded == 0:
        lo = padded = 1
    k = draw(st.integers(1, min(5, padded)))
    d_max = 3 if k == 1 else min(3, (padded - 1) // (k - 1))
    return size, (lo, hi), stride, k, draw(st.integers(1, d_max))


def _divisors(n):
    return [g for g in range(1, n + 1) if n % g == 0]


@st.composite
def geometries(draw):
    """Random valid convolutions: 1..2 images, 1..6 channels in and out,
    every group count dividing both, the axes of `_axis`."""
    (h, ph, sh, kh, dh), (w, pw, sw, kw, dw) = draw(_axis()), draw(_axis())
    c_in, c_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    common = [g for g in _divisors(c_in) if c_out % g == 0]
    groups = draw(st.sampled_from(common))
    kwargs = (
        ("strides", (sh, sw)),
        ("padding", (ph, pw)),
        ("dilation_rate", (dh, dw)),
        ("groups", groups),
    )
    n = draw(st.integers(1, 2))
    return (
        (n, h, w, c_in),
        (kh, kw, c_in // groups, c_out),
        kwargs,
        draw(st.integers(0, 2**16)),
    )


@functools.partial(jax.jit, static_argnums=(3, 4))
def _value_and_vjp(x, kernel, ct, impl_kwargs, kwargs):
    f = lambda x, k: jconv.conv2d(x, k, **dict(impl_kwargs), **dict(kwargs))
    y, vjp = jax.vjp(f, x, kernel)
    return y, *vjp(ct)


def _check_geometry(geometry):
    """Forward, input and kernel gradient of onednn (float32) against lax at
    "highest" in float64, each within the float32 bound of its own sums
    (`assert_sums_close`: a float64 evaluation is a second evaluation, far
    closer to the exact sums): `KH*KW*C_in/G` products for the output,
    `KH*KW*C_out/G` for the input gradient, the output's `N*H_out*W_out`
    pixels for the kernel gradient; magnitudes from lax on absolute values.

    lax in float64, not float32: XLA's float32 CPU convolution is wrong with
    a negative pad (`lax.conv_general_dilated` of ones (1, 4, 4, 1) by
    `arange(1, 10)` as (3, 3, 1, 1), padding ((0, 0), (-1, 1)), gives 36
    where float64 and NumPy give 27), and JAX's input gradient of a
    convolution with a pad above the kernel's span is one
    (`test_input_gradient_where_a_pad_exceeds_the_kernel`)."""
    x_shape, k_shape, kwargs, seed = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    out = jax.eval_shape(
        lambda x, k: jconv.conv2d(x, k, **dict(kwargs)), x, kernel
    ).shape
    ct = rng.standard_normal(out).astype(np.float32)
    got = _value_and_vjp(x, kernel, ct, tuple(ONEDNN.items()), kwargs)
    highest = tuple(HIGHEST.items())
    with jax.enable_x64(True):
        wide = [a.astype(np.float64) for a in (x, kernel, ct)]
        expected = _value_and_vjp(*wide, highest, kwargs)
        magnitudes = _value_and_vjp(*map(np.abs, wide), highest, kwargs)
    kh, kw, c_group, c_out = k_shape
    groups = dict(kwargs)["groups"]
    terms = (kh * kw * c_group, kh * kw * (c_out // groups), out[0] * out[1] * out[2])
    for g, e, m, t in zip(got, expected, magnitudes, terms, strict=True):
        assert g.shape == e.shape and g.dtype == np.float32
        assert_sums_close(g, e, m, t)


def test_input_gradient_where_a_pad_exceeds_the_kernel():
    """The fuzz's find (a bug of lax's, not oneDNN's): a left pad of 3 over a
    3-wide kernel, so that the first output column reads padding only. The
    input gradient is the transposed convolution of the cotangent with the
    same pads: the float64 scatter-add reference, within the float32 bound.
    (`impl="lax"` in float32 is off by O(1) here.)"""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 2, 2, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    pads = ((2, 2), (3, 1))
    y, vjp = jax.vjp(lambda x: jconv.conv2d(x, kernel, padding=pads, **ONEDNN), x)
    assert y.shape == (2, 4, 4, 4)
    ct = rng.standard_normal(y.shape).astype(np.float32)
    (dx,) = vjp(ct)
    # The transposed kernel (KH, KW, C_out // groups, C_in) of a 4 -> 3
    # transposed convolution is this (KH, KW, 3, 4) kernel as it stands.
    expected = reference_conv2d_transpose(ct, kernel, padding=pads)
    assert expected.shape == x.shape
    assert_conv_close(
        dx, expected, reference_conv2d_transpose, ct, kernel, padding=pads
    )


@settings(max_examples=25, deadline=None)
@given(geometries())
def test_any_geometry_matches_lax(geometry):
    _check_geometry(geometry)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(geometries())
def test_any_geometry_matches_lax_large_sample(geometry):
    _check_geometry(geometry)


# --- impl="auto" -------------------------------------------------------------


def test_auto_runs_onednn_on_a_float32_cpu_layer():
    """A float32 grouped 3x3 convolution, 16 to 16 channels in 4 groups, on 8
    images of 16x16 on the CPU: `auto` runs oneDNN for it and its gradient
    wherever oneDNN is loaded (on AVX2 and AVX-512 CPUs alike); for float64
    and bfloat16, which oneDNN does not take here, it does not."""
    if jax.default_backend() != "cpu":
        pytest.skip("oneDNN runs on the CPU")
    x, kernel = (
        np.ones((8, 16, 16, 16), np.float32),
        np.ones((3, 3, 4, 16), np.float32),
    )
    f = lambda x, k: jconv.conv2d(x, k, padding="same", groups=4, impl="auto")
    grad = jax.grad(lambda x, k: jnp.sum(f(x, k)), (0, 1))
    loaded = jconv.onednn_status().available
    assert (PRIMITIVE in _passes(f, x, kernel)[1]) == loaded
    assert (PRIMITIVE in _passes(grad, x, kernel)[1]) == loaded
    bf16 = [a.astype(jnp.bfloat16) for a in (x, kernel)]
    assert PRIMITIVE not in _passes(f, *bf16)[1]
    assert PRIMITIVE not in _passes(grad, *bf16)[1]
    with jax.enable_x64(True):
        wide = [a.astype(np.float64) for a in (x, kernel)]
        assert PRIMITIVE not in _passes(f, *wide)[1]
        assert PRIMITIVE not in _passes(grad, *wide)[1]


# --- 1D and 3D ----------------------------------------------------------------


def test_primitive_passes_match_lax_in_3d():
    """The 3D handler's three passes, called directly on a grouped, strided,
    dilated, padded volume: lax's convolution and its VJP within the float32
    bound (forward 2*3*2*3 products, input gradient 2*3*2*3, kernel gradient
    the output's 2*3*3*3 pixels)."""
    x, kernel = _draw((2, 5, 7, 6, 6), 30), _draw((2, 3, 2, 3, 6), 31)
    geometry = dict(
        strides=(1, 2, 1),
        dilation=(2, 1, 2),
        pads=((1, 0), (1, 1), (0, 2)),
        groups=2,
    )
    params = dict(PARAMS, **geometry)

    def conv(x, k):
        return lax.conv_general_dilated(
            x, k, geometry["strides"], geometry["pads"],
            rhs_dilation=geometry["dilation"], feature_group_count=2,
            dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), precision="highest",
        )  # fmt: skip

    y = _onednn.call(FORWARD, x, kernel, **params)
    dy = _draw(y.shape, 32)
    dx = _onednn.call(INPUT_GRAD, dy, kernel, **dict(params, image_hw=(5, 7, 6)))
    dk = _onednn.call(KERNEL_GRAD, x, dy, **dict(params, kernel_hw=(2, 3, 2)))
    expected_y, vjp = jax.vjp(conv, x, kernel)
    expected_dx, expected_dk = vjp(dy)
    with jax.enable_x64(True):
        abs64 = [np.abs(a).astype(np.float64) for a in (x, kernel, dy)]
        magnitude_y, vjp_abs = jax.vjp(conv, *abs64[:2])
        magnitude_dx, magnitude_dk = vjp_abs(abs64[2])
    assert_sums_close(y, expected_y, magnitude_y, 2 * 3 * 2 * 3)
    assert_sums_close(dx, expected_dx, magnitude_dx, 2 * 3 * 2 * 3)
    assert_sums_close(dk, expected_dk, magnitude_dk, np.prod(y.shape[:4]))


# The 3D handler's refusals, as `BAD_CALLS`' for 2D.
PARAMS_3D = dict(PARAMS, strides=(1,) * 3, dilation=(1,) * 3, pads=((0, 0),) * 3)
BAD_CALLS_3D = table(
    ("pass_", "a", "b", "params", "error", "match"),
    (FORWARD, (1, 4, 5, 5, 4), (2, 3, 3, 2, 6), dict(groups=3),
     jax.errors.JaxRuntimeError, r"groups must divide the input and output"),
    (INPUT_GRAD, (1, 3, 3, 3, 6), (2, 3, 3, 6, 6), dict(image_hw=(9, 5, 5)),
     jax.errors.JaxRuntimeError, r"the output size does not follow"),
    (FORWARD, (1, 4, 5, 5, 4), (3, 3, 3, 4, 6), dict(pads=((-1, 0), (0, 0), (0, 0))),
     jax.errors.JaxRuntimeError, r"pads must not be negative"),
    (FORWARD, (1, 4, 5, 5, 4), (3, 3, 3, 4, 6), dict(dilation=(0, 1, 1)),
     jax.errors.JaxRuntimeError, r"must be positive"),
    (KERNEL_GRAD, (1, 4, 5, 5, 4), (2, 2, 3, 3, 6), dict(kernel_hw=(3, 3, 3)),
     jax.errors.JaxRuntimeError, r"image and output batch sizes differ"),
)  # fmt: skip


def test_the_3d_handler_refuses_arguments_its_buffers_contradict():
    for row in BAD_CALLS_3D:
        a, b = np.ones(row["a"], np.float32), np.ones(row["b"], np.float32)
        params = dict(PARAMS_3D, **row["params"])
        call = functools.partial(_onednn.call, row["pass_"], **params)
        with pytest.raises(row["error"], match=row["match"]):
            jax.block_until_ready(jax.jit(call)(a, b))
    x = _small_integers((1, 4, 5, 5, 4), 33)
    kernel = _small_integers((3, 3, 3, 4, 6), 34)
    y = _onednn.call(FORWARD, x, kernel, **PARAMS_3D)
    np.testing.assert_array_equal(y, jconv.conv3d(x, kernel, impl="lax"))


@st.composite
def geometries_nd(draw, rank):
    """`geometries` with `rank` spatial axes."""
    axes = [draw(_axis()) for _ in range(rank)]
    sizes, pads, strides, kernel, dilation = map(tuple, zip(*axes))
    c_in, c_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    groups = draw(st.sampled_from([g for g in _divisors(c_in) if c_out % g == 0]))
    kwargs = (
        ("strides", strides),
        ("padding", pads),
        ("dilation_rate", dilation),
        ("groups", groups),
    )
    return (
        (draw(st.integers(1, 2)), *sizes, c_in),
        (*kernel, c_in // groups, c_out),
        (kwargs),
    )


def _check_geometry_nd(geometry, seed):
    """`_check_geometry`'s comparison for `jconv.conv` of any rank."""
    x_shape, k_shape, kwargs = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal(k_shape).astype(np.float32)
    f = lambda impl: lambda x, k: jconv.conv(x, k, **impl, **dict(kwargs))
    out = jax.eval_shape(f(ONEDNN), x, kernel).shape
    ct = rng.standard_normal(out).astype(np.float32)
    y, vjp = jax.vjp(f(ONEDNN), x, kernel)
    got = (y, *vjp(ct))
    with jax.enable_x64(True):
        wide = [a.astype(np.float64) for a in (x, kernel, ct)]
        e, vjp = jax.vjp(f(HIGHEST), *wide[:2])
        expected = (e, *vjp(wide[2]))
        m, vjp = jax.vjp(f(HIGHEST), *map(np.abs, wide[:2]))
        magnitudes = (m, *vjp(np.abs(wide[2])))
    *kernel_hw, c_group, c_out = k_shape
    taps, groups = int(np.prod(kernel_hw)), dict(kwargs)["groups"]
    terms = (taps * c_group, taps * (c_out // groups), int(np.prod(out[:-1])))
    for g, e, m, t in zip(got, expected, magnitudes, terms, strict=True):
        assert g.shape == e.shape and g.dtype == np.float32
        assert_sums_close(g, e, m, max(t, 1))


@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_any_geometry_matches_lax_in_1d_and_3d(rank, data):
    """1D runs as one row of the 2D handler, 3D on its own: forward, input
    and kernel gradients against float64 lax within the float32 bound."""
    _check_geometry_nd(data.draw(geometries_nd(rank)), data.draw(st.integers(0, 99)))


@pytest.mark.slow
@pytest.mark.parametrize("rank", [1, 3])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_geometry_matches_lax_in_1d_and_3d_large_sample(rank, data):
    _check_geometry_nd(data.draw(geometries_nd(rank)), data.draw(st.integers(0, 99)))


@pytest.mark.parametrize("rank", [1, 3])
def test_auto_runs_onednn_in_1d_and_3d(rank):
    """A float32 grouped layer of each rank: `auto` runs oneDNN for its
    output and gradients wherever oneDNN is loaded; `vmap` folds into one
    call per pass."""
    if jax.default_backend() != "cpu":
        pytest.skip("oneDNN runs on the CPU")
    spatial = (64,) if rank == 1 else (6, 8, 8)
    x = _small_integers((4, *spatial, 16), 35)
    kernel = _small_integers((*(3,) * rank, 4, 16), 36)
    f = lambda x, k: jconv.conv(x, k, padding="same", groups=4, impl="auto")
    grad = jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), (0, 1))
    loaded = jconv.onednn_status().available
    assert (PRIMITIVE in _passes(f, x, kernel)[1]) == loaded
    assert (PRIMITIVE in _passes(grad, x, kernel)[1]) == loaded
    if loaded:
        g = lambda x, k: jconv.conv(x, k, padding="same", groups=4, impl="onednn")
        np.testing.assert_array_equal(g(x, kernel), f(x, kernel))
        ks = np.stack([kernel, kernel[::-1]])
        xs = np.stack([x, x[:, ::-1]])
        batched = jax.vmap(g)(xs, ks)
        for i in range(2):
            np.testing.assert_array_equal(batched[i], g(xs[i], ks[i]))
