"""`impl="auto"`: the plan it picks, and every mixed plan's derivatives.

Its answers are checked against the float64 reference on the reference grids
(`any_impl` in test_reference.py, test_transpose.py, test_depthwise.py,
test_padding_modes.py); here, the rule's table and the mixed plans, whose
tangents come from one formulation and outputs from another.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _specs import conv2d_spec
from jax.test_util import check_grads
from reference import reference_conv2d

import jconv
from jconv._plan import (
    EINSUM,
    LAX,
    WINOGRAD,
    Plan,
    choose_plan,
    onednn_applies,
    run_plan,
)
from jconv._spec import canonical_precision, transpose_spec

# Padding "same" unless a layer says otherwise.
_spec = functools.partial(conv2d_spec, padding="same")

# name: (input NHWC, kernel HWIO, conv2d arguments)
LAYERS = {
    "resnet 3x3, 98 tiles": ((2, 28, 28, 128), (3, 3, 128, 128), {}),
    "resnet 3x3, 784 tiles": ((16, 28, 28, 128), (3, 3, 128, 128), {}),
    "resnet 3x3, 32 channels": ((16, 56, 56, 32), (3, 3, 32, 32), {}),
    "resnext groups 32, 196 tiles": ((4, 28, 28, 128), (3, 3, 4, 128), dict(groups=32)),
    "depthwise 7x7": ((2, 56, 56, 96), (7, 7, 1, 96), dict(groups=96)),
    "depthwise 3x3": ((8, 56, 56, 64), (3, 3, 1, 64), dict(groups=64)),
    "depthwise 3x3 one image": ((1, 56, 56, 64), (3, 3, 1, 64), dict(groups=64)),
    "RepLKNet 31x31 depthwise": ((2, 28, 28, 256), (31, 31, 1, 256), dict(groups=256)),
    "dense 13x13": ((2, 28, 28, 64), (13, 13, 64, 64), {}),
    "dense 13x13, 1 channel": ((2, 28, 28, 1), (13, 13, 1, 8), {}),
    "depthwise stride 2": ((2, 56, 56, 64), (3, 3, 1, 64), dict(groups=64, strides=2)),
    "document 1 channel": ((1, 4, 4, 1), (3, 3, 1, 1), dict(padding="valid")),
    "race 32 images": ((32, 16, 16, 1), (3, 3, 1, 1), dict(padding="valid")),
    "mnist first layer": ((8, 28, 28, 1), (3, 3, 1, 32), {}),
    "pointwise": ((2, 28, 28, 256), (1, 1, 256, 512), {}),
    "resnext groups 32": ((2, 28, 28, 128), (3, 3, 4, 128), dict(groups=32)),
    "stem 7x7 stride 2": ((2, 64, 64, 3), (7, 7, 3, 64), dict(strides=2)),
}
# The plan the table gives each layer on the CPU in float32.
TABLE = {
    "resnet 3x3, 98 tiles": LAX,
    "resnet 3x3, 784 tiles": WINOGRAD,
    "resnet 3x3, 32 channels": LAX,
    "resnext groups 32, 196 tiles": WINOGRAD,
    "depthwise 7x7": Plan("einsum", "fft", "fft"),
    "depthwise 3x3": Plan("einsum", "einsum", "fft"),
    "depthwise 3x3 one image": EINSUM,
    "RepLKNet 31x31 depthwise": Plan("fft", "fft", "fft"),
    "dense 13x13": Plan("fft", "fft", "lax"),
    "dense 13x13, 1 channel": Plan("fft", "fft", "einsum"),
    "depthwise stride 2": EINSUM,
    "document 1 channel": LAX,
    "race 32 images": EINSUM,
    "mnist first layer": Plan("lax", "lax", "einsum"),
    "pointwise": Plan("lax", "lax", "einsum"),
    "resnext groups 32": Plan("lax", "einsum", "lax"),
    "stem 7x7 stride 2": Plan("lax", "einsum", "lax"),
}


def _choose(name, dtype="float32", backend="cpu", precision=None):
    """`choose_plan` on the layer `name`."""
    x_shape, k_shape, kw = LAYERS[name]
    spec = _spec(x_shape, k_shape, **kw)
    return choose_plan(
        x_shape[0], x_shape[-1], k_shape, spec, dtype, backend, precision
    )


@pytest.mark.parametrize("name", list(LAYERS))
def test_cpu_plan_is_the_table(name):
    assert _choose(name) == TABLE[name]


def test_narrow_floats_keep_lax_input_gradients():
    """bfloat16's strided and grouped input gradients measured faster on lax."""
    for name in ("resnext groups 32", "stem 7x7 stride 2"):
        narrow = TABLE[name]._replace(input_grad="lax")
        assert _choose(name, "bfloat16") == narrow


# What the rows with a fast algorithm (and no depthwise) take instead.
DIRECT = {
    "resnet 3x3, 784 tiles": LAX,
    "resnext groups 32, 196 tiles": Plan("lax", "einsum", "lax"),
    "dense 13x13": LAX,
    "dense 13x13, 1 channel": Plan("lax", "lax", "einsum"),
}


@pytest.mark.parametrize(
    "precision", ["highest", ("default", "highest"), "F32_F32_F32"]
)
@pytest.mark.parametrize("name", list(LAYERS))
def test_explicit_precision_keeps_direct_sums(name, precision):
    """A caller's precision other than the default rules the fast algorithms
    out: depthwise runs the einsum tap sum, the rest the direct plan."""
    x_shape, _, kw = LAYERS[name]
    depthwise = kw.get("groups", 1) == x_shape[-1] > 1
    expected = DIRECT.get(name, EINSUM if depthwise else TABLE[name])
    assert _choose(name, precision=canonical_precision(precision)) == expected


@pytest.mark.parametrize("backend", ["gpu", "tpu"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_accelerators_take_lax(name, backend):
    assert _choose(name, backend=backend) == LAX


def test_strided_transposed_convolution_takes_einsum_kernel_gradient():
    spec = transpose_spec(
        (2, 14, 14, 64),
        (3, 3, 64, 64),
        None,
        strides=2,
        padding="same",
        output_padding=None,
        dilation_rate=1,
        data_format="channels_last",
    ).conv  # the direct convolution the transposed one runs as
    assert choose_plan(2, 64, (3, 3, 64, 64), spec, "float32", "cpu") == Plan(
        "lax", "lax", "einsum"
    )


def _convolutions(fn, *args):
    return len(re.findall(r"\bconvolution\(", jax.jit(fn).lower(*args).as_text("hlo")))


def _onednn_calls(fn, *args):
    text = jax.jit(fn).lower(*args).as_text("hlo")
    return len(re.findall(r'custom_call_target="jconv_onednn_conv"', text))


def test_auto_runs_the_plan_it_picks():
    """On the CPU, depthwise compiles to no XLA convolution at all (oneDNN's
    three calls, or without it the einsum tap sum), a 16-channel 3x3 on 8
    tiles (below Winograd's thresholds) to oneDNN's three where oneDNN has
    AVX-512 kernels, else XLA's three; elsewhere both to XLA's three."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 16)), jnp.float32)
    k_dw = jnp.asarray(rng.standard_normal((3, 3, 16, 1)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 16, 16)), jnp.float32)

    def step(conv, x, k):
        return jax.grad(lambda x, k: jnp.sum(conv(x, k) ** 2), argnums=(0, 1))(x, k)

    def depthwise(x, k):
        return step(lambda x, k: jconv.depthwise_conv2d(x, k, padding="same"), x, k)

    def dense(x, k):
        return step(lambda x, k: jconv.conv2d(x, k, padding="same"), x, k)

    cpu = jax.default_backend() == "cpu"
    onednn = onednn_applies(x.dtype, None, jax.default_backend())
    dense_onednn = onednn and jconv.onednn_status().avx512
    assert _onednn_calls(depthwise, x, k_dw) == 3 * onednn
    assert _onednn_calls(dense, x, k) == 3 * dense_onednn
    assert _convolutions(depthwise, x, k_dw) == (0 if cpu else 3)
    assert _convolutions(dense, x, k) == (0 if dense_onednn else 3)


# Each formulation once in every slot (a Latin square), so every tangent of
# every formulation meets an output of another.
MIXED = [
    Plan("lax", "einsum", "fft"),
    Plan("einsum", "fft", "lax"),
    Plan("fft", "lax", "einsum"),
]
# Winograd computes 3x3 stride-1 layers only: its plans on such a layer, each
# slot once, against the reference gradient (second order: the first, for
# time; WINOGRAD itself: check_grads in test_winograd.py).
MIXED_3X3 = [
    Plan("winograd", "lax", "fft"),
    Plan("einsum", "winograd", "lax"),
    Plan("fft", "einsum", "winograd"),
]


@pytest.mark.parametrize("plan", MIXED, ids="-".join)
def test_mixed_plan_check_grads(plan):
    """Second order, forward and reverse mode, strided, dilated and grouped."""
    spec = _spec(
        (1, 7, 6, 4),
        (3, 2, 2, 6),
        strides=(2, 1),
        dilation_rate=(1, 2),
        groups=2,
    )
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = rng.standard_normal((1, 7, 6, 4))
        k = rng.standard_normal((3, 2, 2, 6))

        # Jitted: eager, every small op of the einsum and FFT formulations
        # would compile on its own.
        f = jax.jit(lambda x, k: run_plan(x, k, spec, "highest", plan))
        check_grads(f, (x, k), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("plan", MIXED_3X3[:1], ids="-".join)
def test_winograd_plan_check_grads(plan):
    """Second order, forward and reverse mode, grouped, uneven pads."""
    spec = _spec((1, 7, 6, 4), (3, 3, 2, 6), groups=2, padding=((0, 2), (1, 0)))
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = rng.standard_normal((1, 7, 6, 4))
        k = rng.standard_normal((3, 3, 2, 6))

        f = jax.jit(lambda x, k: run_plan(x, k, spec, None, plan))
        check_grads(f, (x, k), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("plan", [*MIXED, *MIXED_3X3, WINOGRAD], ids="-".join)
def test_mixed_plan_gradient_equals_reference_vjp(plan):
    """The gradient of `sum(y * w)` is the float64 reference's, in both
    arguments: for the input, the reference's VJP computed by finite sums of
    basis vectors would be slow, so compare with the plain lax derivative and
    the reference output instead (y itself, and the kernel gradient of a
    linear loss, which is a correlation of x with w)."""
    spec = _spec((2, 6, 6, 2), (3, 3, 2, 3))
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        x = rng.standard_normal((2, 6, 6, 2))
        k = rng.standard_normal((3, 3, 2, 3))
        w = rng.standard_normal((2, 6, 6, 3))

        def loss(x, k, plan):
            return jnp.sum(run_plan(x, k, spec, "highest", plan) * w)

        y = jax.jit(run_plan, static_argnums=(2, 3, 4))(x, k, spec, "highest", plan)
        grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
        gx, gk = grad(x, k, plan)
        gx_lax, gk_lax = grad(x, k, LAX)
    np.testing.assert_allclose(
        y, reference_conv2d(x, k, None, padding="same"), atol=1e-12
    )
    # dL/dk[i, j, c, o] = sum over n, h, w of x_padded[n, h + i, w + j, c] * w[..., o]
    x_padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected_gk = np.einsum(
        "nhwijc,nhwo->ijco",
        np.stack(
            [
                np.stack([x_padded[:, i : i + 6, j : j + 6] for j in range(3)], -2)
                for i in range(3)
            ],
            -3,
        ),
        w,
    )
    np.testing.assert_allclose(gk, expected_gk, atol=1e-11)
    np.testing.assert_allclose(gx, gx_lax, atol=1e-11)
    np.testing.assert_allclose(gk_lax, expected_gk, atol=1e-11)


def test_auto_runs_winograd_through_conv2d():
    """The public path at the default precision: a 3x3 layer of 64 channels
    and 128 output tiles compiles to no convolution on the CPU (Winograd), in
    channels_first with a reflect border and a bias, and matches the float64
    reference within Winograd F(4)'s bound (test_winograd.py: 64 eps times
    max sum|products|)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    kw = dict(padding="same", padding_mode="reflect", data_format="channels_first")

    def f(x, k, b):
        return jconv.conv2d(x, k, b, **kw)

    on_cpu = jax.default_backend() == "cpu"
    assert (_convolutions(f, x, k, b) == 0) == on_cpu
    expected = reference_conv2d(x, k, b, **kw)
    magnitude = reference_conv2d(np.abs(x), np.abs(k), np.abs(b), **kw)
    bound = 64 * np.finfo(np.float32).eps * magnitude.max()
    assert np.abs(np.asarray(f(x, k, b), np.float64) - expected).max() <= bound
