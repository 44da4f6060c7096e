"""Empty batches and empty spatial axes; float16 sums (issue 21, found by
running PyTorch's convolution tests against jconv).

Empty: every public function, implementation and module takes a batch of no
images, forward and backward (the gradients are zeros of their arguments'
shapes, as PyTorch's are), with every padding mode; an input axis with no
pixels gives an empty output where the output-size arithmetic says so
("same": `ceil(0 / stride) = 0`), as `lax.conv_general_dilated` does, and is
refused, named, where it would give a negative size. (PyTorch refuses every
empty spatial axis; lax clamps a negative size to 0.)

Half: float16 and bfloat16 inputs are summed in float32 and rounded once, in
the output and in every gradient, the bias's included. Bound, element by
element, for a sum of `n` products of half-precision numbers (exact in
float32: 11 + 11 significant bits at most): a float32 sum in any order is
within `gamma_n(float32) * sum|products|` of the exact sum, and rounding it
once to the half dtype adds `u_half * |result|`; the float64 reference is
within its own `gamma_n(float64) * sum|products|` (`_tol.gamma_bound`). The
FFT and Winograd have their own float32 bounds (`_tol.fft_bound`,
`test_winograd.FACTOR`) in place of `gamma_n`. The bias gradient's 2,304
terms in [0, 1) summed in float16 one after another are off by up to 5.4 in
1,167, 6x the bound, as jconv's float16 bias gradient was before
(`test_the_bound_catches_a_float16_accumulation`; bfloat16: 920, 187x).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _grid import table
from _specs import conv2d_spec
from _tol import fft_bound, gamma_bound
from flax import nnx as flax_nnx
from jax import lax
from reference import reference_conv2d, reference_conv2d_transpose
from test_winograd import FACTOR

import jconv
from jconv import linen as jlinen
from jconv import nnx as jnnx
from jconv._plan import WINOGRAD, choose_plan
from jconv._winograd import conv2d_winograd_core

# --- Empty batches -------------------------------------------------------------

# name -> (function, its kernels' shapes for 6 input channels, bias length).
FUNCTIONS = {
    "conv2d": (jconv.conv2d, [(3, 3, 2, 6)], 6),  # groups 3 where asked
    "conv2d_lax": (jconv.conv2d_lax, [(3, 3, 6, 4)], 4),
    "conv2d_einsum": (jconv.conv2d_einsum, [(3, 3, 6, 4)], 4),
    "conv2d_transpose": (jconv.conv2d_transpose, [(3, 3, 4, 6)], 4),
    "depthwise_conv2d": (jconv.depthwise_conv2d, [(3, 3, 6, 2)], 12),
    "separable_conv2d": (jconv.separable_conv2d, [(3, 3, 6, 2), (1, 1, 12, 5)], 5),
}
# One row a call: function, impl (None: the function has none), arguments.
# Groups, strides 2, dilation, every padding mode, both layouts, transposed
# with stride 2, on each implementation.
CL, CF = "channels_last", "channels_first"
EMPTY_ROWS = table(
    ("fn", "impl", "kwargs", "data_format"),
    ("conv2d", "auto", dict(groups=3, strides=2, padding="same"), CL),
    ("conv2d", "auto", dict(groups=3, strides=2, padding="same"), CF),
    ("conv2d", "lax", dict(groups=3, strides=2, padding=1, padding_mode="reflect"), CF),
    ("conv2d", "einsum", dict(groups=3, strides=2, padding_mode="replicate"), CL),
    ("conv2d", "einsum", dict(groups=3, padding="same", padding_mode="circular"), CF),
    ("conv2d", "einsum", dict(padding="valid"), CL),
    ("conv2d", "fft", dict(groups=3, dilation_rate=2, padding=2), CL),
    ("conv2d_lax", None, dict(strides=(1, 2), padding="full"), CL),
    ("conv2d_einsum", None, dict(padding="same", padding_mode="reflect"), CF),
    ("conv2d_transpose", "auto", dict(strides=2, padding="same"), CL),
    ("conv2d_transpose", "lax", dict(strides=2, output_padding=1), CF),
    (
        "conv2d_transpose",
        "einsum",
        dict(strides=2, padding=1, padding_mode="reflect"),
        CL,
    ),
    ("conv2d_transpose", "einsum", dict(strides=2, padding="same"), CF),
    ("conv2d_transpose", "fft", dict(strides=2, padding="same"), CF),
    ("depthwise_conv2d", "auto", dict(strides=2, padding="same"), CF),
    ("depthwise_conv2d", "lax", dict(padding=1, padding_mode="circular"), CL),
    ("depthwise_conv2d", "einsum", dict(dilation_rate=2, padding="same"), CL),
    ("depthwise_conv2d", "fft", dict(padding="same", padding_mode="replicate"), CF),
    ("separable_conv2d", "auto", dict(padding="same", padding_mode="reflect"), CL),
    ("separable_conv2d", "einsum", dict(strides=2), CF),
    ("separable_conv2d", "fft", dict(padding="same"), CL),
)


def _images(n, data_format, hw=(7, 8), c=6, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, c, *hw) if data_format == "channels_first" else (n, *hw, c)
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _empty_call(row):
    """The row's call as a function of its arrays, and those arrays (kernels
    and bias drawn non-zero, so a gradient that is not zero shows)."""
    fn, k_shapes, c_bias = FUNCTIONS[row["fn"]]
    kwargs = dict(row["kwargs"], data_format=row["data_format"])
    if row["fn"] != "conv2d":
        kwargs.pop("groups", None)
    elif "groups" not in kwargs:
        k_shapes = [(3, 3, 6, 6)]
    if row["impl"] is not None:
        kwargs["impl"] = row["impl"]
    rng = np.random.default_rng(1)
    weights = [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in k_shapes]
    bias = jnp.asarray(rng.standard_normal(c_bias), jnp.float32)
    return functools.partial(fn, **kwargs), (*weights, bias)


def _assert_zeros_like(grads, arrays):
    for g, a in zip(grads, arrays, strict=True):
        assert (g.shape, g.dtype) == (a.shape, a.dtype)
        assert not np.any(np.asarray(g)), "a gradient over no images is not zero"


@functools.partial(jax.jit, static_argnums=0)
def _value_grads_tangent(f, args):
    """`f(*args)`, the gradient of `sum(f)` w.r.t. every argument and the
    forward-mode tangent along ones, in one compilation (`f` static)."""
    y = f(*args)
    grads = jax.grad(lambda a: jnp.sum(f(*a)))(args)
    _, y_dot = jax.jvp(f, args, tuple(jnp.ones_like(a) for a in args))
    return y, grads, y_dot


@pytest.mark.parametrize(
    "row",
    EMPTY_ROWS,
    ids=lambda r: f"{r['fn']}-{r['impl']}-{r['kwargs']}-{r['data_format'][9:]}",
)
def test_empty_batch_forward_and_backward(row):
    """N = 0: the output has the shape the same call gives one image, with
    N = 0 (`jax.eval_shape`, nothing run), and so has the forward-mode
    tangent; every gradient (input, kernels, bias) is zeros of its argument's
    shape and dtype."""
    f, weights = _empty_call(row)
    x = _images(0, row["data_format"])
    one = jax.eval_shape(f, _images(1, row["data_format"]), *weights)
    y, grads, y_dot = _value_grads_tangent(f, (x, *weights))
    assert y.shape == (0, *one.shape[1:]) and y.dtype == one.dtype
    assert y_dot.shape == y.shape
    _assert_zeros_like(grads, (x, *weights))


@pytest.mark.parametrize("tile", (2, 4, 6))
def test_empty_batch_winograd_core(tile):
    """Winograd directly (`auto` picks it from 128 tiles, never for N = 0):
    grouped, depthwise and channels_first, forward and backward."""
    cases = [
        (1, 6, "channels_last"),
        (2, 4, "channels_first"),
        (6, 12, "channels_last"),
    ]
    for groups, c_out, data_format in cases:
        x = _images(0, data_format)
        kernel = jnp.ones((3, 3, 6 // groups, c_out), jnp.float32)
        spec = conv2d_spec(
            x.shape, kernel.shape, padding="same", groups=groups,
            data_format=data_format,
        )  # fmt: skip
        f = functools.partial(
            conv2d_winograd_core, spec=spec, precision=None, tile=tile
        )
        y, grads, y_dot = _value_grads_tangent(f, (x, kernel))
        c_axis = 1 if data_format == "channels_first" else 3
        assert y.shape[0] == 0 and y.shape[c_axis] == c_out
        assert y.shape == y_dot.shape
        _assert_zeros_like(grads, (x, kernel))


# (torch.nn.functional's function, x NCHW shape, weight shape in torch's
# layout, its keyword arguments): PyTorch on an empty batch, live.
TORCH_ROWS = [
    ("conv2d", (0, 6, 7, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=3)),
    ("conv2d", (0, 6, 7, 8), (4, 6, 3, 3), dict(dilation=2, padding=(2, 1))),
    ("conv_transpose2d", (0, 4, 4, 4), (4, 5, 3, 3), dict(stride=2)),
    (
        "conv_transpose2d",
        (0, 4, 4, 5),
        (4, 3, 3, 3),
        dict(stride=2, padding=1, output_padding=1, groups=2),
    ),
]


@pytest.mark.parametrize("torch_fn, x_shape, w_shape, kwargs", TORCH_ROWS)
def test_empty_batch_matches_torch(torch_fn, x_shape, w_shape, kwargs):
    """The output shape PyTorch gives an empty batch, with every impl."""
    x, w = torch.zeros(x_shape), torch.zeros(w_shape)
    expected = tuple(getattr(torch.nn.functional, torch_fn)(x, w, **kwargs).shape)
    ours = dict(
        strides=kwargs.get("stride", 1),
        padding=kwargs.get("padding", 0),
        dilation_rate=kwargs.get("dilation", 1),
        groups=kwargs.get("groups", 1),
        data_format="channels_first",
    )
    # (O, I/G, KH, KW) and the transposed (I, O/G, KH, KW) are both Keras'
    # layouts transposed (2, 3, 1, 0).
    kernel = w.numpy().transpose(2, 3, 1, 0)
    fn = jconv.conv2d
    if torch_fn == "conv_transpose2d":
        fn = jconv.conv2d_transpose
        ours["output_padding"] = kwargs.get("output_padding")
    for impl in ("auto", "lax", "einsum", "fft"):
        assert fn(x.numpy(), kernel, impl=impl, **ours).shape == expected


@functools.partial(jax.jit, static_argnums=0)
def _value_and_grads(f, params):
    """`f(params)` and the gradient of its sum w.r.t. `params`."""
    return f(params), jax.grad(lambda p: jnp.sum(f(p)))(params)


def _init(key, shape, dtype):
    """Non-zero weights that compile nothing (Flax's random initialisers
    would, on every module)."""
    return np.linspace(0.5, 1.5, np.prod(shape)).reshape(shape).astype(dtype)


# (class name, constructor arguments besides the channels): every module kind,
# strides 2, groups, a padding mode, channels_first.
INITS = dict(kernel_init=_init, bias_init=_init)
SEPARABLE_INITS = dict(depthwise_init=_init, pointwise_init=_init, bias_init=_init)
MODULE_ROWS = [
    ("Conv2D", dict(strides=2, groups=2, padding_mode="reflect", **INITS)),
    ("Conv2DTranspose", dict(strides=2, data_format="channels_first", **INITS)),
    ("DepthwiseConv2D", dict(padding_mode="replicate", **INITS)),
    ("SeparableConv2D", dict(strides=2, impl="einsum", **SEPARABLE_INITS)),
]


@pytest.mark.parametrize("name, kwargs", MODULE_ROWS, ids=[r[0] for r in MODULE_ROWS])
def test_empty_batch_modules(name, kwargs):
    """nnx and linen modules: an empty batch gives an empty output of the
    one-image shape, and zero gradients for every parameter."""
    data_format = kwargs.get("data_format", "channels_last")
    x0, x1 = _images(0, data_format, c=4), _images(1, data_format, c=4)
    depthwise = name == "DepthwiseConv2D"
    channels = (4,) if depthwise else (4, 6)
    module = getattr(jnnx, name)(*channels, 3, **kwargs, rngs=flax_nnx.Rngs(0))
    graph, params = flax_nnx.split(module, flax_nnx.Param)
    call = lambda x, p: flax_nnx.merge(graph, p)(x)
    one = jax.eval_shape(call, x1, params)
    y, grads = _value_and_grads(functools.partial(call, x0), params)
    assert y.shape == (0, *one.shape[1:])
    _assert_zeros_like(jax.tree.leaves(grads), jax.tree.leaves(params))

    features = {} if depthwise else dict(features=6)
    layer = getattr(jlinen, name)(kernel_size=3, **features, **kwargs)
    variables = jax.jit(layer.init)(jax.random.key(0), x0)
    shapes = lambda tree: jax.tree.map(jnp.shape, tree)
    assert shapes(variables) == shapes(
        jax.eval_shape(layer.init, jax.random.key(0), x1)
    )
    y, grads = _value_and_grads(lambda v: layer.apply(v, x0), variables)
    assert y.shape == (0, *jax.eval_shape(layer.apply, variables, x1).shape[1:])
    _assert_zeros_like(jax.tree.leaves(grads), jax.tree.leaves(variables))


def test_empty_batch_of_sizes_no_device_could_hold_as_images():
    """The size checks count bytes: a padded input of 2**41 x 2**41 pixels
    is no bytes for no images (accepted, as lax takes it); an axis past
    int64 is still refused."""
    x, kernel = _images(0, "channels_last", c=3), jnp.ones((3, 3, 3, 4))
    for impl in ("lax", "einsum"):
        f = functools.partial(jconv.conv2d, padding=2**40, impl=impl)
        assert f(x, kernel).shape == (0, 7 + 2**41 - 2, 8 + 2**41 - 2, 4)
        grad = jax.grad(lambda k, f=f: jnp.sum(f(x, k)))(kernel)
        assert not np.any(np.asarray(grad))
    with pytest.raises(ValueError, match=r"what XLA can represent"):
        jconv.conv2d(x, kernel, padding=2**62)


# --- Empty spatial axes --------------------------------------------------------


def _lax_shape(x_shape, kernel, strides, pads):
    return jax.eval_shape(
        functools.partial(
            lax.conv_general_dilated,
            window_strides=strides,
            padding=pads,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ),
        jax.ShapeDtypeStruct(x_shape, jnp.float32),
        kernel,
    ).shape


@pytest.mark.parametrize("impl", ("auto", "lax", "einsum", "fft", "winograd"))
def test_an_empty_axis_gives_an_empty_output_where_the_arithmetic_says(impl):
    """Height 0: "same" gives height 0 at any stride, as lax does; "full"
    gives `span - 1` rows that are the bias alone (windows over zeros).
    Gradients are zeros."""
    x = _images(2, "channels_last", hw=(0, 5), c=4)
    kernel = jnp.ones((3, 3, 4, 6))
    bias = jnp.arange(6.0)
    for strides, padding, pads in [
        (1, "same", ((1, 1), (1, 1))),
        (2, "same", ((0, 1), (1, 1))),
        (1, "full", ((2, 2), (2, 2))),
    ]:
        assert jconv.resolve_padding((0, 5), 3, strides, 1, padding) == pads
        expected = _lax_shape(x.shape, kernel, (strides, strides), pads)
        if impl == "winograd":
            if strides != 1:
                continue
            spec = conv2d_spec(x.shape, kernel.shape, padding=padding)
            f = functools.partial(conv2d_winograd_core, spec=spec, precision=None)
            args, bias_ = (x, kernel), 0.0
        else:
            f = functools.partial(
                jconv.conv2d, strides=strides, padding=padding, impl=impl
            )
            args, bias_ = (x, kernel, bias), bias
        y, grads, _ = _value_grads_tangent(f, args)
        assert y.shape == expected
        assert expected[1] == (2 if padding == "full" else 0)
        np.testing.assert_array_equal(y, jnp.broadcast_to(bias_, y.shape))
        _assert_zeros_like(grads[:2], args[:2])


@pytest.mark.parametrize("impl", ("auto", "lax", "einsum", "fft"))
def test_transposed_empty_axis(impl):
    """The adjoint of the convolution above: height 0 in, "same" and stride
    2: height 0 out (lax's VJP of that convolution agrees); a 2x2 kernel at
    stride 2 "valid" too. Empty batch and empty axis together."""
    x = _images(2, "channels_last", hw=(0, 4), c=6)
    kernel = jnp.ones((3, 3, 4, 6))
    y = jconv.conv2d_transpose(x, kernel, strides=2, padding="same", impl=impl)
    forward = lambda z: lax.conv_general_dilated(
        z, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    z = jnp.zeros((2, 0, 8, 4))
    assert forward(z).shape == x.shape
    assert y.shape == jax.vjp(forward, z)[1](x)[0].shape == (2, 0, 8, 4)
    y = jconv.conv2d_transpose(x[:0], kernel[:2, :2], strides=2, impl=impl)
    assert y.shape == (0, 0, 8, 4)
    grads = jax.grad(
        lambda x, k: jnp.sum(jconv.conv2d_transpose(x, k, strides=2, impl=impl)),
        (0, 1),
    )(x, kernel[:2, :2])
    _assert_zeros_like(grads, (x, kernel[:2, :2]))


# Each with the kernel (3, 3, 4, 6).
NEGATIVE_SIZE_CASES = table(
    ("fn", "x_shape", "kwargs", "pattern"),
    (jconv.conv2d, (2, 0, 5, 4), dict(padding="valid"),
     r"`kernel` spatial size \(3, 3\) with `dilation_rate` \(1, 1\) spans 3 "
     r"pixels, more than the padded input \(input \(0, 5\), `padding`='valid'"
     r".*; on an axis with no pixels the output is empty only where "
     r"`\(size \+ pad_lo \+ pad_hi - span\) // stride \+ 1` is 0 .*, here -2"),
    (jconv.conv2d, (2, 2, 5, 4), dict(padding="valid"),
     r"spans 3 pixels, more than the padded input \(input \(2, 5\)"),
    (jconv.conv2d, (2, 0, 5, 4), dict(padding="same", padding_mode="reflect"),
     r"`padding_mode` \(='reflect'\) cannot pad an axis of 0 pixels by 1"),
    (jconv.conv2d, (2, 0, 5, 4), dict(padding="same", padding_mode="replicate"),
     r"`padding_mode` \(='replicate'\) cannot pad an axis of 0 pixels by 1: "
     r"an empty axis has no edge pixel to repeat"),
    (jconv.conv2d_transpose, (2, 0, 4, 6), dict(padding="full"),
     r"the transposed convolution's output \(-2, 2\) would have a negative "
     r"size: input \(0, 4\)"),
)  # fmt: skip


@pytest.mark.parametrize(
    "case", NEGATIVE_SIZE_CASES, ids=lambda c: f"{c['fn'].__name__}-{c['kwargs']}"
)
def test_an_empty_axis_is_refused_where_the_size_would_be_negative(case):
    for impl in ("lax", "einsum"):
        with pytest.raises(ValueError, match=case["pattern"]):
            case["fn"](
                np.zeros(case["x_shape"]), np.zeros((3, 3, 4, 6)), impl=impl,
                **case["kwargs"],
            )  # fmt: skip


def test_a_mode_with_nothing_to_pad_takes_an_empty_axis():
    """Every mode on height 0 where that axis has no pads (the width has)."""
    x = _images(2, "channels_last", hw=(0, 5), c=4)
    for mode in ("reflect", "replicate", "circular"):
        y = jconv.conv2d(x, jnp.ones((1, 3, 4, 6)), padding=(0, 1), padding_mode=mode)
        assert y.shape == (2, 0, 5, 6)


# --- Half precision: float32 sums, one rounding ---------------------------------

HALF = (jnp.float16, jnp.bfloat16)
# N * H * W = 4 * 24 * 24 = 2,304 terms in each bias-gradient and
# kernel-gradient sum; 3x3, groups 2 (auto then runs Winograd: 144 tiles).
N, HW, C_IN, C_OUT, GROUPS = 4, 24, 4, 4, 2
HALF_IMPLS = ("lax", "einsum", "fft", "auto")


@functools.cache
def _half_case(dtype):
    """Positive half-precision `x`, `kernel`, `bias`, output cotangent, so
    that partial sums grow and a half-precision accumulation stagnates."""
    rng = np.random.default_rng(21)
    draw = lambda shape, scale: jnp.asarray(rng.uniform(0, scale, shape), dtype)
    return (
        draw((N, HW, HW, C_IN), 1.0),
        draw((3, 3, C_IN // GROUPS, C_OUT), 0.25),
        draw((C_OUT,), 1.0),
        draw((N, HW, HW, C_OUT), 1.0),
    )


def _kernel_grad_reference(x, ct):
    """d/dk of `sum(conv2d(x, k, padding="same", groups=GROUPS) * ct)`, float64:
    per tap (a, b), input channel c and output channel o of group g, the sum
    over images and pixels of the padded input's window times `ct`."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cg, og = C_IN // GROUPS, C_OUT // GROUPS
    out = np.zeros((3, 3, cg, C_OUT))
    for a in range(3):
        for b in range(3):
            win = xp[:, a : a + HW, b : b + HW]
            for g in range(GROUPS):
                out[a, b, :, g * og : (g + 1) * og] = np.tensordot(
                    win[..., g * cg : (g + 1) * cg],
                    ct[..., g * og : (g + 1) * og],
                    axes=([0, 1, 2], [0, 1, 2]),
                )
    return out


@functools.cache
def _half_references(dtype):
    """Per result (output, x, kernel, bias gradients): the float64 value on
    the half-precision inputs, `sum|products|`, the number of products."""
    x, kernel, bias, ct = (np.asarray(a, np.float64) for a in _half_case(dtype))
    conv = functools.partial(reference_conv2d, padding="same", groups=GROUPS)
    adjoint = functools.partial(
        reference_conv2d_transpose, padding="same", groups=GROUPS
    )
    a = np.abs
    taps = 9 * C_IN // GROUPS
    return {
        "output": (conv(x, kernel, bias), conv(a(x), a(kernel), a(bias)), taps + 1),
        "x": (adjoint(ct, kernel), adjoint(a(ct), a(kernel)), 9 * C_OUT // GROUPS),
        "kernel": (
            _kernel_grad_reference(x, ct),
            _kernel_grad_reference(a(x), a(ct)),
            N * HW * HW,
        ),
        "bias": (ct.sum((0, 1, 2)), a(ct).sum((0, 1, 2)), N * HW * HW),
    }


def _float32_error(impl, which, dtype, magnitude, terms):
    """The bound on the error of `impl`'s float32 computation of `which`
    (before the rounding to `dtype`). Measured on this case, the float32
    results of the same inputs reach at most 0.08 of it for lax and einsum,
    0.07 for the FFT and 0.24 for Winograd (its input gradient)."""
    if impl in ("lax", "einsum") or which == "bias":
        return gamma_bound(magnitude, terms)  # float32 sum, float64 reference
    x, kernel, _, ct = (np.asarray(a, np.float64) for a in _half_case(dtype))
    if impl == "fft":
        # Each result is an FFT correlation (JAX transposes the transforms):
        # `_tol.fft_bound` over the planes it correlates and the sum beside.
        plane = 2 * (HW + 2 + 3) ** 2  # the transform's pixels, with margin
        pairs = {
            "output": (x, kernel, C_IN // GROUPS),
            "x": (ct, kernel, C_OUT // GROUPS),
            "kernel": (x, ct.transpose(1, 2, 0, 3), N),
        }
        planes, other, channels = pairs[which]
        return fft_bound(planes, other, plane=plane, channels=channels)
    # Winograd: its transforms' error (`test_winograd.FACTOR`, float32, which
    # does not grow with the sums' length), plus a float32 sum of `terms`
    # products (gamma_n of the largest sum|products|, as for a direct sum):
    # the kernel gradient sums over every tile of the batch.
    eps = np.finfo(np.float32).eps
    return (FACTOR[4] * eps + gamma_bound(1.0, terms)) * magnitude.max()


@functools.partial(jax.jit, static_argnums=0)
def _value_and_vjp(f, cotangent, *args):
    """`f(*args)` and its VJP at `cotangent`, one compilation (`f` static)."""
    y, vjp = jax.vjp(f, *args)
    return y, *vjp(cotangent)


def _half_failure(got, which, impl, dtype) -> str | None:
    """Why `got` (`which` result of `impl`) is beyond float32 sums and one
    rounding to `dtype` (`|fl(v) - v| <= u |v|`, u = eps / 2), or None."""
    expected, magnitude, terms = _half_references(dtype)[which]
    assert got.dtype == dtype and got.shape == expected.shape
    u = float(jnp.finfo(dtype).eps) / 2
    wide = _float32_error(impl, which, dtype, magnitude, terms)
    bound = u * (np.abs(expected) + wide) + wide
    bound += float(jnp.finfo(dtype).smallest_subnormal)
    got = np.asarray(got, np.float64)
    err = np.abs(got - expected)
    if np.all(err <= bound):
        return None
    i = np.unravel_index(np.argmax(err / bound), err.shape)
    return (
        f"{which} ({impl}, {jnp.dtype(dtype).name}): {np.sum(err > bound)} of "
        f"{err.size} beyond float32 sums + one rounding; worst at {i}: "
        f"|{got[i]} - {expected[i]}| = {err[i]:.3g} > {bound[i]:.3g} "
        f"({err[i] / bound[i]:.1f}x)"
    )


def _check_half(results: dict, impl, dtype):
    failures = [_half_failure(v, k, impl, dtype) for k, v in results.items()]
    failures = [f for f in failures if f is not None]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "impl, dtype",
    [
        pytest.param(impl, dtype, id=f"{impl}-{jnp.dtype(dtype).name}", marks=marks)
        for dtype in HALF
        for impl in HALF_IMPLS
        # bfloat16 shares every path of float16 but the rounding's unit:
        # lax by default, the rest in the slow run.
        for marks in [
            [pytest.mark.slow] if dtype != jnp.float16 and impl != "lax" else []
        ]
    ],
)
def test_half_precision_sums_in_float32(impl, dtype):
    """Output and the x, kernel and bias gradients (the VJP of a given
    cotangent) against float64 on the same half-precision values: each within
    float32 sums plus one rounding. `auto` runs Winograd here."""
    x, kernel, bias, ct = _half_case(dtype)
    if impl == "auto":
        spec = conv2d_spec(x.shape, kernel.shape, padding="same", groups=GROUPS)
        assert choose_plan(N, C_IN, kernel.shape, spec, dtype, "cpu") == WINOGRAD
        impl_bound = "winograd"
    else:
        impl_bound = impl
    f = functools.partial(jconv.conv2d, padding="same", groups=GROUPS, impl=impl)
    got = dict(
        zip(("output", "x", "kernel", "bias"), _value_and_vjp(f, ct, x, kernel, bias))
    )
    _check_half(got, impl_bound, dtype)


def test_the_bound_catches_a_float16_accumulation():
    """The bias gradient's 2,304 terms summed in float16, one after another
    (what XLA's CPU reduction of a float16 bias gradient did): beyond the
    bound `test_half_precision_sums_in_float32` asserts, so that test sees a
    float16 accumulation."""
    _, _, _, ct = _half_case(jnp.float16)
    sequential = np.cumsum(np.asarray(ct).reshape(-1, C_OUT), 0, dtype=np.float16)
    assert "beyond float32 sums" in _half_failure(
        sequential[-1], "bias", "lax", jnp.float16
    )


def test_half_precision_every_public_function_sums_its_bias_in_float32():
    """The float16 bias gradient of the functions with their own paths to
    `conv2d`'s body: the same 2,304-term sum, within float32 sums plus one
    rounding (`conv2d_lax` and `conv2d_einsum` are `conv2d`'s impls above)."""
    dtype = jnp.float16
    x, _, bias, ct = _half_case(dtype)
    ones = lambda *shape: jnp.ones(shape, dtype)
    calls = {
        jconv.conv2d_transpose: (ones(3, 3, C_OUT, C_IN),),
        jconv.depthwise_conv2d: (ones(3, 3, C_IN, C_OUT // C_IN),),
        jconv.separable_conv2d: (ones(3, 3, C_IN, 1), ones(1, 1, C_IN, C_OUT)),
    }
    for fn, kernels in calls.items():
        f = lambda b, fn=fn, kernels=kernels: fn(x, *kernels, b, padding="same")
        _, g_bias = _value_and_vjp(f, ct, bias)
        _check_half({"bias": g_bias}, fn.__name__, dtype)
