"""Kernel learning beyond 2-D: the patch matrix and the least-squares reference
for 1-D signals and 3-D volumes against a float64 loop written here, gradient
descent recovering 1-D and 3-D kernels, the experiments' signal and volume
data, and the plots drawn for them. (The 1-D and 3-D configs run end to end
in test_experiments_configs.py.)"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import kernel_data, kernel_learning, plots
from jconv import learn

# "Recovered to float32 precision", as the experiments define it: every entry
# within 8 float32 epsilons of the true kernel's largest entry.
FLOAT32_RTOL = 8 * float(np.finfo(np.float32).eps)


def _pads(padding, sizes, kernel, strides, dilation):
    """Explicit `(low, high)` pads per axis, written from Keras' rules
    (independent of jconv's `resolve_padding`)."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    if padding == "valid":
        return [(0, 0)] * len(sizes)
    if padding == "causal":
        return [(span - 1, 0) for span in spans]
    if padding == "same":
        pads = []
        for size, span, s in zip(sizes, spans, strides):
            need = max((-(-size // s) - 1) * s + span - size, 0)
            pads.append((need // 2, need - need // 2))
        return pads
    return [tuple(p) for p in padding]


def reference_conv(x, kernel, bias=None, *, strides, padding, dilation):
    """Cross-correlation of any spatial rank in float64, one output position
    at a time: `x` `(N, *S, C_in)`, `kernel` `(*K, C_in, C_out)`."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    rank = kernel.ndim - 2
    strides, dilation = (strides,) * rank, (dilation,) * rank
    pads = _pads(padding, x.shape[1:-1], kernel.shape[:rank], strides, dilation)
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_shape = [
        (p - (k - 1) * d - 1) // s + 1
        for p, k, d, s in zip(xp.shape[1:-1], kernel.shape, dilation, strides)
    ]
    out = np.zeros((x.shape[0], *out_shape, kernel.shape[-1]))
    for pos in itertools.product(*map(range, out_shape)):
        window = tuple(
            slice(i * s, i * s + (k - 1) * d + 1, d)
            for i, s, k, d in zip(pos, strides, kernel.shape, dilation)
        )
        patch = xp[(slice(None), *window)]  # (N, *K, C_in)
        out[(slice(None), *pos)] = np.tensordot(patch, kernel, axes=rank + 1)
    return out if bias is None else out + np.asarray(bias, np.float64)


CASES = [
    # (x shape (N, *S, C_in), kernel shape (*K, C_in, C_out), strides,
    # padding, dilation, bias)
    ((2, 11, 1), (3, 1, 1), 1, "valid", 1, False),
    ((2, 11, 2), (3, 2, 3), 1, "causal", 1, True),
    ((1, 12, 2), (4, 2, 2), 3, "same", 1, False),
    ((3, 13, 1), (3, 1, 2), 1, "causal", 3, False),
    ((1, 9, 1), (2, 1, 1), 2, [(3, 1)], 1, True),
    ((2, 5, 6, 4, 1), (3, 3, 3, 1, 1), 1, "valid", 1, False),
    ((1, 6, 5, 5, 2), (3, 2, 3, 2, 2), 2, "same", 1, True),
    ((1, 7, 6, 7, 1), (2, 2, 2, 1, 1), 1, "causal", 2, False),
    ((1, 4, 4, 4, 1), (3, 3, 3, 1, 1), 1, [(1, 0), (0, 1), (2, 2)], 1, False),
]


@pytest.mark.parametrize("x_shape, k_shape, strides, padding, dilation, bias", CASES)
def test_patch_matrix_times_kernel_is_the_convolution(
    x_shape, k_shape, strides, padding, dilation, bias
):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    k = rng.standard_normal(k_shape)
    b = rng.standard_normal(k_shape[-1]) if bias else None
    expected = reference_conv(
        x, k, b, strides=strides, padding=padding, dilation=dilation
    )
    rank = len(k_shape) - 2
    p = learn.patch_matrix(
        x,
        k_shape[:rank],
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        bias=bias,
    )
    weights = k.reshape(-1, k_shape[-1])
    if bias:
        weights = np.concatenate([weights, b[None]])
    assert p.shape == (math.prod(expected.shape[:-1]), weights.shape[0])
    # float64 sums of at most 55 products of standard normals: both sides
    # agree to a few float64 ulps of the sum of magnitudes (< 1e-12).
    np.testing.assert_allclose(
        p @ weights, expected.reshape(-1, k_shape[-1]), rtol=1e-12, atol=1e-12
    )


def test_patch_matrix_by_hand():
    # 1-D, "causal": output t reads x[t - 2], x[t - 1], x[t], zeros before 0.
    signal = np.asarray([1.0, 2.0, 3.0, 4.0])[None, :, None]
    causal = learn.patch_matrix(signal, (3,), padding="causal")
    assert causal.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    # Row-major over (kd, kh, kw): the one window of a 2x2x2 volume is the
    # volume itself, flattened.
    volume = np.arange(8.0).reshape(1, 2, 2, 2, 1)
    assert learn.patch_matrix(volume, (2, 2, 2)).tolist() == [list(range(8))]
    # An int kernel size is one per spatial axis of the input.
    assert learn.patch_matrix(volume, 1).shape == (8, 1)
    assert learn.patch_matrix(signal, 2).shape == (3, 2)


@pytest.mark.parametrize(
    "shape, kernel_size, kwargs, match",
    [
        ((1, 6, 6, 1), (3,), {}, r"`x` must have rank 3 \(N, W, C_in\) for a 1-D"),
        ((1, 6, 1), (3, 3, 3), {}, r"`x` must have rank 5 \(N, D, H, W, C_in\)"),
        ((1, 6, 1), (3, 3, 3, 3), {}, r"`kernel_size` \(=\(3, 3, 3, 3\)\) must have"),
        ((1, 6, 1), 3, dict(strides=(1, 2)), r"`strides` \(=\(1, 2\)\) must be an"),
        ((1, 2, 6, 6, 1), (3, 3, 3), {}, r"`kernel_size` \(3, 3, 3\) spans more"),
        ((1, 6, 1), (0,), {}, r"`kernel_size` \(=\(0,\)\) must be positive"),
    ],
)
def test_patch_matrix_errors(shape, kernel_size, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        learn.patch_matrix(np.zeros(shape), kernel_size, **kwargs)


@pytest.mark.parametrize(
    "shape, kernel_size", [((2, 9, 2), (3,)), ((2, 5, 4, 6, 1), (2, 3, 3))]
)
def test_patch_matrix_jax_is_patch_matrix_under_jit(shape, kernel_size):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    p = jax.jit(learn.patch_matrix_jax, static_argnums=1)(x, kernel_size)
    assert p.dtype == jnp.float32
    # Copies of float32 values: exact against the float64 reference.
    np.testing.assert_array_equal(p, learn.patch_matrix(x, kernel_size))


def test_patch_matrix_jax_refuses_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match=r"`kernel_size` \(3, 3, 3\) is larger"):
        learn.patch_matrix_jax(jnp.zeros((1, 2, 6, 6, 1)), (3, 3, 3))


@pytest.mark.parametrize(
    "x_shape, k_shape, padding",
    [
        ((3, 20, 2), (5, 2, 3), "causal"),
        ((2, 6, 6, 6, 1), (3, 3, 3, 1, 2), "valid"),
    ],
)
def test_lstsq_recovers_a_known_kernel(x_shape, k_shape, padding):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    k = rng.standard_normal(k_shape)
    y = reference_conv(x, k, strides=1, padding=padding, dilation=1)
    a = learn.patch_matrix(x, k_shape[:-2], padding=padding)
    result = learn.lstsq(a, y.reshape(-1, k_shape[-1]))
    assert result.rank == a.shape[1] == math.prod(k_shape[:-1])
    assert result.null_space.shape == (a.shape[1], 0)
    # float64 throughout on a well-conditioned matrix (random normal rows,
    # more rows than columns): the solve loses a few digits at most.
    np.testing.assert_allclose(
        result.solution.reshape(k_shape), k, rtol=1e-10, atol=1e-10
    )


def test_lstsq_on_one_short_signal_sees_only_the_row_space():
    # 2 equations for 3 taps: the minimum-norm solution plus the part of the
    # true filter in the null space is the true filter.
    x = np.asarray([1.0, 2.0, 4.0, 7.0])[None, :, None]
    true = np.asarray([0.5, -1.0, 2.0])
    a = learn.patch_matrix(x, (3,))
    result = learn.lstsq(a, a @ true)
    assert result.rank == 2 and result.null_space.shape == (3, 1)
    np.testing.assert_allclose(a @ result.null_space, 0, atol=1e-12)
    null = result.null_space
    np.testing.assert_allclose(
        result.solution + null @ (null.T @ true), true, atol=1e-12
    )


def _stack(problem):
    return jax.tree.map(lambda a: jnp.asarray(a)[None], problem)


@pytest.mark.parametrize(
    "source, name, padding",
    [
        ("random_signal", "first_difference", "causal"),
        ("random_signal", "gaussian", "same"),
        ("random_volume", "laplacian", "valid"),
        ("random_volume", "box", "causal"),
    ],
)
def test_gradient_descent_recovers_1d_and_3d_kernels_to_float32(source, name, padding):
    rank = kernel_data.SOURCE_RANKS[source]
    size = 48 if rank == 1 else 7
    x = kernel_data.input_images(
        source, num_images=4, image_size=size, channels=1, seed=0
    )
    kernel = kernel_data.true_kernel(
        name, kernel_size=3, channels_in=1, channels_out=1, seed=0, rank=rank
    )
    model = learn.ConvModel(kernel_shape=kernel.shape, padding=padding)
    true = {"kernel": jnp.asarray(kernel)}
    problem = learn.Problem(x, model.apply(true, jnp.asarray(x)), np.ones(4), true)
    # The loss's curvature (the eigenvalues of 2 P^T P / M, P the patch
    # matrix of M rows) is about 2 on standard normal inputs; the zeros of
    # "causal" padding on these small volumes lower it to 0.6 at worst (2.9
    # at most). At 0.5 every step shrinks the error by 0.7 or more:
    # 0.7**60 < 1e-9, far below the bound from any start.
    opt = learn.make_optimizer("sgd", 0.5)
    chunk = learn.make_train_chunk(model, opt, 60)
    state, metrics, _ = chunk(learn.init_state(model, opt, 1), _stack(problem))
    # Gradient descent stops where the float32 rounding of the residuals
    # (~eps |y|) balances the gradient: far below a few ulps of the kernel.
    err = float(metrics.kernel_max_abs_error[0])
    assert err <= FLOAT32_RTOL * np.max(np.abs(kernel)), err
    assert state.params["kernel"].shape == (1, *kernel.shape)


def test_loss_of_a_1d_model_is_the_mean_squared_error():
    model = learn.ConvModel(kernel_shape=(3, 1, 2), padding="causal")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 10, 1)).astype(np.float32)
    y = rng.standard_normal((2, 10, 2)).astype(np.float32)
    k = rng.standard_normal((3, 1, 2)).astype(np.float32)
    problem = learn.Problem(jnp.asarray(x), jnp.asarray(y), jnp.ones(2), {})
    pred = learn.patch_matrix(x, (3,), padding="causal") @ k.reshape(3, 2)
    expected = np.mean((pred - y.reshape(-1, 2)) ** 2)
    # float32 sums of 3 products and a mean of 40 squares: rtol 1e-5 is ~100
    # float32 epsilons.
    loss = learn.loss_fn(model, {"kernel": jnp.asarray(k)}, problem)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_conv_model_refuses_a_kernel_shape_of_another_rank():
    with pytest.raises(ValueError, match=r"`kernel_shape` \(=\(3, 1\)\) must have 3"):
        learn.ConvModel(kernel_shape=(3, 1))
    assert learn.ConvModel(kernel_shape=(3, 3, 3, 1, 1)).rank == 3


# ------------------------------------------------------------ experiment data


def _conv1(x, kernel, padding="valid"):
    """One channel in and out, float64: `reference_conv` on bare arrays."""
    k = np.asarray(kernel, np.float64)[..., None, None]
    out = reference_conv(
        np.asarray(x)[None, ..., None], k, strides=1, padding=padding, dilation=1
    )
    return out[0, ..., 0]


def test_named_signal_kernels_by_hand():
    named = functools.partial(
        kernel_data.true_kernel, kernel_size=3, channels_in=1, channels_out=1, seed=0
    )
    ramp = np.arange(6.0) ** 2  # t**2
    # Under "causal" padding the first difference is x[t] - x[t - 1]: 2t - 1
    # (t**2 itself at t = 0, with the zero before the signal).
    diff = _conv1(ramp, named("first_difference", rank=1)[:, 0, 0], "causal")
    assert diff.tolist() == [0, 1, 3, 5, 7, 9]
    # The second difference of t**2 is 2 everywhere.
    second = _conv1(ramp, named("second_difference", rank=1)[:, 0, 0])
    assert second.tolist() == [2, 2, 2, 2]
    average = named("moving_average", rank=1)
    assert average.shape == (3, 1, 1)
    np.testing.assert_allclose(_conv1(np.ones(5), average[:, 0, 0]), 1, rtol=1e-7)
    assert named("gaussian", rank=1)[:, 0, 0].tolist() == [0.25, 0.5, 0.25]
    with pytest.raises(ValueError, match=r"kernel name \(='sobel_x'\) must be one"):
        named("sobel_x", rank=1)


def test_named_volume_kernels_by_hand():
    named = functools.partial(
        kernel_data.true_kernel, kernel_size=3, channels_in=1, channels_out=1, seed=0
    )
    # The 7-point Laplacian of x**2 + y**2 + z**2 is 6 (2 along each axis).
    grid = np.indices((5, 5, 5)).astype(np.float64)
    quadratic = (grid**2).sum(0)
    laplacian = named("laplacian", rank=3)[..., 0, 0]
    np.testing.assert_array_equal(_conv1(quadratic, laplacian), 6)
    assert laplacian.sum() == 0 and laplacian[1, 1, 1] == -6
    for name in ("box", "gaussian"):
        k = named(name, rank=3)
        assert k.shape == (3, 3, 3, 1, 1)
        # Blurs keep a constant: weights summing to 1 (float32 rounding).
        np.testing.assert_allclose(k.sum(), 1, rtol=1e-6)
    gaussian = named("gaussian", rank=3)[..., 0, 0]
    assert gaussian[1, 1, 1] == 0.125 and gaussian[0, 0, 0] == 1 / 64
    with pytest.raises(ValueError, match=r"kernel 'box' is 3x3x3 with one channel"):
        named("box", rank=3, kernel_size=5)
    with pytest.raises(ValueError, match=r"kernel 'gaussian' is 3 taps"):
        named("gaussian", rank=1, kernel_size=5)


def test_signal_and_volume_inputs_and_random_kernels():
    kw = dict(num_images=3, image_size=8, channels=2, seed=4)
    signals = kernel_data.input_images("random_signal", **kw)
    volumes = kernel_data.input_images("random_volume", **kw)
    assert signals.shape == (3, 8, 2) and volumes.shape == (3, 8, 8, 8, 2)
    assert signals.dtype == volumes.dtype == np.float32
    np.testing.assert_array_equal(
        volumes, kernel_data.input_images("random_volume", **kw)
    )
    for rank in (1, 3):
        k = kernel_data.true_kernel(
            "random", kernel_size=3, channels_in=2, channels_out=4, seed=5, rank=rank
        )
        assert k.shape == (*(3,) * rank, 2, 4)
    assert kernel_data.kernel_names(3) == ("laplacian", "box", "gaussian", "random")


# ------------------------------------------------------------------- plots


def test_plots_for_1d_and_3d(tmp_path):
    taps = plots.plot_panels(
        tmp_path / "taps.png",
        {
            "taps": {"true": [1, 2, 1], "learned": [1, 2, 1.1]},
            "error": {"e": [0, 0, 1]},
        },
        styles={"true": "o-"},
        xlabel="tap",
        title="filter",
    )
    slices = plots.plot_volume_slices(
        tmp_path / "slices.png",
        {"true": np.ones((3, 3, 3)), "learned": np.arange(27.0).reshape(3, 3, 3)},
        title="kernel",
    )
    for png in (taps, slices):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_kernel_plot_suits_the_rank(tmp_path):
    # One channel: taps (1-D) or slices (3-D); several: the heatmap of any rank.
    record = lambda k: {
        "name": "k",
        "kernel_max_abs_error": 0.0,
        "true_kernel": k,
        "learned_kernel": k,
        "lstsq_kernel": k,
    }
    for rank, shape in (
        (1, (3,)),
        (3, (3, 3, 3)),
        (1, (3, 2, 2)),
        (3, (2, 2, 2, 1, 3)),
    ):
        path = tmp_path / f"kernel_{rank}_{len(shape)}.png"
        name = kernel_learning._plot_kernel(path, record(np.ones(shape)), rank)
        assert name == path.name and path.read_bytes()[:4] == b"\x89PNG"
