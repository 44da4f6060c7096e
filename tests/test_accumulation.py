"""`preferred_element_type`: the dtype every implementation sums in and
returns, as in `jax.lax.conv_general_dilated` (bfloat16 inputs, float32
result and accumulation).

Accuracy bound: bfloat16 inputs are exact in float32 and so are their
products (8 + 8 significant bits), so a float32-accumulated direct sum of
`n` products is within `gamma_n * sum|products|` (float32) of the exact sum
of the same bfloat16-rounded inputs, which the float64 reference computes
(within its own float64 `gamma_n`): `_tol.gamma_bound`. A bfloat16 result
is at least its own rounding away from it, which no accumulation can undo.
The FFT and Winograd have their own bounds (`_tol.fft_bound`,
`test_winograd.FACTOR`), in float32 here.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _specs import conv2d_spec
from _tol import assert_complex_conv_close, assert_fft_close, gamma_bound
from reference import reference_conv2d, reference_conv2d_transpose
from test_winograd import FACTOR

import jconv
from jconv._plan import WINOGRAD, run_plan

F32 = dict(preferred_element_type=jnp.float32)
# name: (input shape, kernel shape); padding "same".
SHAPES = {
    "3x3-64to64": ((2, 16, 16, 64), (3, 3, 64, 64)),
    "7x7-16to16": ((1, 24, 24, 16), (7, 7, 16, 16)),
}


@functools.cache
def _case(name):
    """bfloat16 `x`, `kernel`; the float64 reference on those very values and
    the same convolution of their absolute values (`sum|products|`)."""
    x_shape, k_shape = SHAPES[name]
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.bfloat16)
    kernel = jnp.asarray(rng.standard_normal(k_shape) / 8, jnp.bfloat16)
    x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
    expected = reference_conv2d(x64, k64, padding="same")
    magnitude = reference_conv2d(np.abs(x64), np.abs(k64), padding="same")
    return x, kernel, expected, magnitude


def _winograd(x, kernel, **kwargs):
    spec = conv2d_spec(x.shape, kernel.shape, padding="same")
    preferred = kwargs.get("preferred_element_type")
    preferred = None if preferred is None else np.dtype(preferred)
    return jax.jit(lambda x, k: run_plan(x, k, spec, None, WINOGRAD, preferred))(
        x, kernel
    )


IMPLS = {
    "lax": functools.partial(jconv.conv2d, impl="lax", padding="same"),
    "einsum": functools.partial(jconv.conv2d, impl="einsum", padding="same"),
    "fft": functools.partial(jconv.conv2d, impl="fft", padding="same"),
    "winograd": _winograd,
}
PARAMS = [
    pytest.param(shape, impl, id=f"{shape}-{impl}", marks=marks)
    for shape in SHAPES
    for impl in IMPLS
    if not (impl == "winograd" and "3x3" not in shape)
    for marks in [[pytest.mark.slow] if shape != "3x3-64to64" and impl != "lax" else []]
]


@pytest.mark.parametrize("shape, impl", PARAMS)
def test_float32_accumulation_of_bfloat16(shape, impl):
    x, kernel, expected, magnitude = _case(shape)
    y32 = IMPLS[impl](x, kernel, **F32)
    y16 = IMPLS[impl](x, kernel)
    assert (y32.dtype, y16.dtype) == (jnp.float32, jnp.bfloat16)
    err32 = np.abs(np.asarray(y32, np.float64) - expected)
    err16 = np.abs(np.asarray(y16, np.float64) - expected)
    scale = np.max(np.abs(expected))
    print(
        f"\n{shape} {impl}: max |y - y_ref64| / max |y_ref64|: float32 "
        f"accumulation {err32.max() / scale:.2e}, bfloat16 result "
        f"{err16.max() / scale:.2e}"
    )
    terms = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    if impl in ("lax", "einsum"):
        assert np.all(err32 <= gamma_bound(magnitude, terms) + 1e-30)
    elif impl == "fft":
        plane = (x.shape[1] + kernel.shape[0]) * (x.shape[2] + kernel.shape[1]) * 2
        assert_fft_close(y32, expected, x, kernel, plane=plane, channels=x.shape[3])
    else:
        assert err32.max() <= FACTOR[4] * np.finfo(np.float32).eps * magnitude.max()
    # Rounding the exact sums to bfloat16 (to nearest) is the least error a
    # bfloat16 result can have, element by element.
    rounded = np.asarray(jnp.asarray(expected, jnp.bfloat16), np.float64)
    assert np.all(err16 >= np.abs(rounded - expected))
    assert err32.max() < err16.max()


def _integer_case(batch=2, hw=(10, 9), c_in=8, c_out=8, kernel_hw=(3, 3)):
    """Small non-negative integers: the output sums 72 products of 1 .. 4 by
    0 .. 3, the gradients 72 (input) and 2 * 8 * 7 = 112 (kernel) products,
    mostly beyond 256, so exact in float32 but not in bfloat16: a float32
    accumulation must give the exact sums."""
    rng = np.random.default_rng(3)
    draw = lambda s, low: rng.integers(low, low + 4, s).astype(np.float32)
    x, kernel = draw((batch, *hw, c_in), 1), draw((*kernel_hw, c_in, c_out), 0)
    bias = draw((c_out,), 0)
    return (jnp.asarray(a, jnp.bfloat16) for a in (x, kernel, bias))


@pytest.mark.parametrize("impl_name", ["auto", "lax", "einsum"])
def test_exact_sums_and_gradients_on_small_integers(impl_name):
    """Output (bias added in float32) exactly the float64 reference; input and
    kernel gradients of `sum(y * w)` back in bfloat16, each the rounding of
    the exact gradient: summed in float32, rounded once."""
    x, kernel, bias = _integer_case()
    x64, k64, b64 = (np.asarray(a, np.float64) for a in (x, kernel, bias))
    y = jconv.conv2d(x, kernel, bias, impl=impl_name, **F32)
    assert y.dtype == jnp.float32
    expected_y = reference_conv2d(x64, k64, b64)
    assert np.median(expected_y) > 256
    np.testing.assert_array_equal(np.asarray(y), expected_y)

    w = jnp.asarray(np.arange(y.size).reshape(y.shape) % 7 + 1, jnp.float32)
    loss = lambda x, k: jnp.sum(jconv.conv2d(x, k, impl=impl_name, **F32) * w)
    g_x, g_k = jax.grad(loss, (0, 1))(x, kernel)
    assert (g_x.dtype, g_k.dtype) == (jnp.bfloat16, jnp.bfloat16)
    w64 = np.asarray(w, np.float64)
    # d/dx sum(conv(x, k) * w) is the adjoint, the transposed convolution of
    # w; d/dk[a, b] is sum over pixels of x's window (a, b) times w.
    expected_x = reference_conv2d_transpose(w64, k64)
    ho, wo = w.shape[1:3]
    expected_k = np.stack(
        [
            np.stack(
                [
                    np.tensordot(
                        x64[:, a : a + ho, b : b + wo], w64, axes=([0, 1, 2], [0, 1, 2])
                    )
                    for b in range(kernel.shape[1])
                ]
            )
            for a in range(kernel.shape[0])
        ]
    )
    for g, expected in ((g_x, expected_x), (g_k, expected_k)):
        assert np.median(expected) > 256  # not exact in bfloat16 sums
        rounded = np.asarray(jnp.asarray(expected, jnp.bfloat16), np.float64)
        np.testing.assert_array_equal(np.asarray(g, np.float64), rounded)


@pytest.mark.parametrize(
    "fn",
    [jconv.conv2d_transpose, jconv.depthwise_conv2d, jconv.conv2d_lax],
    ids=lambda fn: fn.__name__,
)
def test_every_public_function_takes_it(fn):
    """Exact on small integers: the float32 result of the bfloat16 inputs is
    the float32 computation on them."""
    x, kernel, bias = _integer_case(c_in=3, c_out=3)
    if fn is jconv.depthwise_conv2d:
        kernel = kernel[..., :1]  # depth_multiplier 1
    y = fn(x, kernel, bias, **F32)
    assert y.dtype == jnp.float32
    as32 = lambda a: a.astype(jnp.float32)
    np.testing.assert_array_equal(y, fn(as32(x), as32(kernel), as32(bias)))


@pytest.mark.parametrize("impl_name", ["lax", "einsum", "fft"])
def test_complex_accumulates_in_complex128(impl_name):
    """complex64 inputs, complex128 result within the float64 bound (the
    inputs are exact in complex128)."""
    rng = np.random.default_rng(5)
    draw = lambda s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(
        np.complex64
    )
    x, kernel = draw((1, 6, 6, 3)), draw((3, 3, 3, 2))
    expected = reference_conv2d(x, kernel)
    with jax.enable_x64(True):
        y = jconv.conv2d(
            x,
            kernel,
            impl=impl_name,
            precision="highest",
            preferred_element_type=jnp.complex128,
        )
    assert y.dtype == np.complex128
    if impl_name == "fft":
        plane = 2 * 9 * 9
        assert_fft_close(
            y, expected, x, kernel, plane=plane, channels=3, dtype=np.float64
        )
    else:
        assert_complex_conv_close(
            y, expected, reference_conv2d, x, kernel, dtype=np.float64
        )


@pytest.mark.parametrize(
    "preferred, x_dtype, exc, pattern",
    [
        (
            "floatish",
            np.float32,
            TypeError,
            r"`preferred_element_type` \(='floatish'\) must be None or a dtype",
        ),
        (
            3,
            np.float32,
            TypeError,
            r"`preferred_element_type` \(=3\) must be None or a dtype",
        ),
        (
            jnp.int32,
            np.float32,
            TypeError,
            r"\(=int32\) must be a floating dtype for float32 inputs",
        ),
        (
            jnp.complex64,
            np.float32,
            TypeError,
            r"\(=complex64\) must be a floating dtype",
        ),
        (
            jnp.float32,
            np.complex64,
            TypeError,
            r"\(=float32\) must be a complex dtype for complex64",
        ),
        (
            jnp.bfloat16,
            np.float32,
            ValueError,
            r"\(=bfloat16\) must not be narrower than the inputs' dtype float32",
        ),
    ],
)
def test_bad_preferred_element_type_is_refused_by_name(
    preferred, x_dtype, exc, pattern
):
    x, kernel = np.ones((1, 4, 4, 2), x_dtype), np.ones((3, 3, 2, 2), x_dtype)
    for fn in (jconv.conv2d, jconv.conv2d_transpose, jconv.depthwise_conv2d):
        k = kernel[..., :1] if fn is jconv.depthwise_conv2d else kernel
        with pytest.raises(exc, match=pattern):
            fn(x, k, preferred_element_type=preferred)


def test_modules_take_preferred_element_type():
    """The Flax modules pass `preferred_element_type` to their function: a
    bfloat16 layer returns float32, equal to the function on its weights; a
    bad value is refused, named, when the module is built."""
    from flax import nnx

    from jconv import linen as jlinen
    from jconv import nnx as jnnx

    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4), jnp.bfloat16)
    rng = np.random.default_rng(0)  # initialisers that compile nothing

    def init(key, shape, dtype):
        return jnp.asarray(rng.standard_normal(shape), dtype)

    common = dict(
        param_dtype=jnp.bfloat16,
        preferred_element_type=jnp.float32,
        impl="lax",
        bias_init=init,
    )

    conv = jnnx.Conv2D(4, 5, 3, kernel_init=init, rngs=nnx.Rngs(0), **common)
    y = conv(x)
    want = jconv.conv2d(
        x, conv.kernel[...], conv.bias[...], padding="same", impl="lax", **F32
    )
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, want)

    module = jlinen.Conv2D(features=5, kernel_size=3, kernel_init=init, **common)
    variables = module.init(jax.random.key(1), x)
    y = module.apply(variables, x)
    params = variables["params"]
    want = jconv.conv2d(
        x, params["kernel"], params["bias"], padding="same", impl="lax", **F32
    )
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, want)

    sep = jnnx.SeparableConv2D(
        4,
        5,
        3,
        depth_multiplier=2,
        depthwise_init=init,
        pointwise_init=init,
        rngs=nnx.Rngs(2),
        **common,
    )
    y = sep(x)
    want = jconv.separable_conv2d(
        x,
        sep.depthwise_kernel[...],
        sep.pointwise_kernel[...],
        sep.bias[...],
        padding="same",
        impl="lax",
        **F32,
    )
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, want)

    bad = dict(preferred_element_type="not a dtype")
    with pytest.raises(TypeError, match="preferred_element_type"):
        jnnx.Conv2D(4, 5, 3, rngs=nnx.Rngs(0), **bad)
    with pytest.raises(TypeError, match="preferred_element_type"):
        jnnx.SeparableConv2D(4, 5, 3, rngs=nnx.Rngs(0), **bad)
    with pytest.raises(TypeError, match="preferred_element_type"):
        jlinen.Conv2D(features=5, kernel_size=3, **bad)  # built, not called
