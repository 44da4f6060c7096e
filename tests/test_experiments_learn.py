"""Gradient-descent library (jconv.learn) and the experiments' data, checked
against the closed-form least-squares solution and against themselves."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import kernel_data
from jconv import document, learn

DOC_KERNEL = np.asarray(document.KERNEL, np.float32)[:, :, None, None]


def _stack(*problems):
    return jax.tree.map(lambda *a: jnp.stack(a), *problems)


def _problem(model, kernel, x, bias=None, weight=None):
    true = {"kernel": jnp.asarray(kernel)}
    if bias is not None:
        true["bias"] = jnp.asarray(bias)
    x = jnp.asarray(x)
    weight = jnp.ones(x.shape[0]) if weight is None else jnp.asarray(weight)
    return learn.Problem(x, model.apply(true, x), weight, true)


def _train(model, optimizer, problems, steps, chunk=None):
    chunk_fn = learn.make_train_chunk(model, optimizer, chunk or steps)
    state = learn.init_state(model, optimizer, problems.x.shape[0])
    for _ in range(steps // (chunk or steps)):
        state, metrics, _ = chunk_fn(state, problems)
    return state, metrics


def test_loss_fn_is_the_weighted_mean_squared_error():
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 6, 1)).astype(np.float32)
    y = rng.standard_normal((3, 4, 4, 1)).astype(np.float32)
    weight = np.asarray([1.0, 0.0, 2.0], np.float32)
    params = {"kernel": jnp.asarray(rng.standard_normal((3, 3, 1, 1)), jnp.float32)}
    problem = learn.Problem(jnp.asarray(x), jnp.asarray(y), jnp.asarray(weight), {})
    pred = np.asarray(model.apply(params, x), np.float64)
    per_pair = ((pred - y) ** 2).mean(axis=(1, 2, 3))
    expected = (weight * per_pair).sum() / weight.sum()
    np.testing.assert_allclose(learn.loss_fn(model, params, problem), expected, 1e-5)


@pytest.mark.parametrize(
    "name, lr", [("sgd", 0.3), ("momentum", 0.2), ("nesterov", 0.2)]
)
def test_recovers_the_document_kernel(name, lr):
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1))
    x = np.random.default_rng(0).standard_normal((8, 10, 10, 1)).astype(np.float32)
    problems = _stack(_problem(model, DOC_KERNEL, x))
    opt = learn.make_optimizer(name, lr, momentum=0.5)
    _, metrics = _train(model, opt, problems, 150, chunk=50)
    assert float(metrics.kernel_max_abs_error[0]) < 1e-5
    assert float(metrics.loss[0]) < 1e-9


def test_gradient_descent_from_zero_ends_on_the_minimum_norm_solution():
    # The document's image, "valid": 4 equations for 9 unknowns. Of all the
    # kernels that fit, gradient descent from zero finds the least-norm one.
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1))
    x = np.asarray(document.IMAGE, np.float32)[None, :, :, None]
    problems = _stack(_problem(model, DOC_KERNEL, x))
    opt = learn.make_optimizer("momentum", 1e-3, momentum=0.9)
    state, metrics = _train(model, opt, problems, 1000, chunk=100)
    ls = learn.lstsq(learn.patch_matrix(x, (3, 3)), np.ravel(document.VALID))
    assert ls.rank == 4
    learned = np.asarray(state.params["kernel"][0]).ravel()
    np.testing.assert_allclose(learned, ls.solution, atol=2e-5)
    assert float(metrics.kernel_max_abs_error[0]) > 3  # not the true kernel
    np.testing.assert_allclose(ls.null_space.T @ learned, 0, atol=2e-5)


@pytest.mark.parametrize(
    "name", ["adam", pytest.param("lbfgs", marks=pytest.mark.slow)]
)
def test_chunks_compose_exactly(name):
    # Two chunks of 5 steps == one chunk of 10: what makes resume exact.
    model = learn.ConvModel(kernel_shape=(3, 3, 2, 2), use_bias=True, padding="same")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    problems = _stack(_problem(model, k, x, bias=np.ones(2, np.float32)))
    opt = learn.make_optimizer(name, 0.05 if name == "adam" else 1.0)
    one, m_one = _train(model, opt, problems, 10)
    two, m_two = _train(model, opt, problems, 10, chunk=5)
    assert int(one.step) == int(two.step) == 10
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m_one.loss, m_two.loss)


def test_stacked_problems_train_independently_lbfgs():
    # vmap over problems: each one's trajectory is the one it has alone, an
    # L-BFGS line search included; and L-BFGS recovers the kernels.
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1))
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 1)).astype(np.float32)
    sobel = kernel_data.NAMED_KERNELS["sobel_x"][:, :, None, None]
    a, b = _problem(model, DOC_KERNEL, x), _problem(model, sobel, x, weight=[1, 0])
    opt = learn.make_optimizer("lbfgs", 1.0)
    both, metrics = _train(model, opt, _stack(a, b), 30)
    alone_b, _ = _train(model, opt, _stack(b), 30)
    np.testing.assert_allclose(
        both.params["kernel"][1], alone_b.params["kernel"][0], rtol=1e-5, atol=1e-6
    )
    assert float(metrics.kernel_max_abs_error[0]) < 1e-5
    assert float(metrics.kernel_max_abs_error[1]) < 1e-6


def test_impls_learn_the_same():
    kernels = {}
    x = np.random.default_rng(3).standard_normal((2, 7, 7, 3)).astype(np.float32)
    k = np.random.default_rng(4).standard_normal((3, 3, 3, 2)).astype(np.float32)
    for impl in ("lax", "einsum"):
        model = learn.ConvModel(
            kernel_shape=(3, 3, 3, 2), strides=2, padding="same", impl=impl
        )
        state, _ = _train(
            model, learn.make_optimizer("sgd", 0.1), _stack(_problem(model, k, x)), 20
        )
        kernels[impl] = np.asarray(state.params["kernel"])
    np.testing.assert_allclose(kernels["lax"], kernels["einsum"], rtol=1e-5, atol=1e-6)


def test_metrics():
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1), use_bias=True)
    x = np.ones((1, 3, 3, 1), np.float32)
    problems = _stack(_problem(model, DOC_KERNEL, x, bias=np.asarray([2.0])))
    zeros = jax.tree.map(lambda a: a[None], model.zeros())
    m = learn.evaluate(model, zeros, problems)
    # Output is sum(kernel) + bias = 22 + 2 = 24; loss 24^2; gradient
    # d/dk (24 - 0)^2 ... = -2 * 24 per weight and for the bias.
    assert float(m.loss[0]) == 576
    assert float(m.kernel_max_abs_error[0]) == 10
    assert float(m.bias_max_abs_error[0]) == 2
    np.testing.assert_allclose(m.grad_norm[0], 48 * np.sqrt(10), rtol=1e-6)


def test_make_optimizer_and_schedules():
    assert learn.make_schedule(0.1, "cosine", total_steps=10)(10) == pytest.approx(0)
    warm = learn.make_schedule(0.1, "warmup_cosine", total_steps=10, warmup_steps=2)
    assert float(warm(0)) == 0 and float(warm(2)) == pytest.approx(0.1)
    expo = learn.make_schedule(1.0, "exponential", total_steps=10, end_factor=0.5)
    assert float(expo(10)) == pytest.approx(0.5)
    params = {"w": jnp.ones(2)}
    opt = learn.make_optimizer("adam", 0.1)
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    updates, _ = opt.update(params, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="adagrad", learning_rate=0.1), r"optimizer `name` \(='adagrad'\)"),
        (dict(name="sgd", learning_rate=-1.0), r"`learning_rate` \(=-1.0\) must be"),
        (dict(name="sgd", learning_rate=0.1, momentum=1.0), r"`momentum` \(=1.0\)"),
        (dict(name="sgd", learning_rate=0.1, schedule="step"), r"`schedule` \(='st"),
        (
            dict(
                name="sgd",
                learning_rate=0.1,
                schedule="warmup_cosine",
                total_steps=5,
                warmup_steps=5,
            ),
            r"`warmup_steps` \(=5\)",
        ),
        (dict(name="lbfgs", learning_rate=1.0, memory_size=0), r"`memory_size`"),
    ],
)
def test_make_optimizer_errors(kwargs, match):
    name, lr = kwargs.pop("name"), kwargs.pop("learning_rate")
    with pytest.raises(ValueError, match=match):
        learn.make_optimizer(name, lr, **kwargs)


def test_conv_model_refuses_unknown_impl():
    with pytest.raises(ValueError, match=r"`impl` \(='cuda'\) must be one of"):
        learn.ConvModel(kernel_shape=(3, 3, 1, 1), impl="cuda")


@pytest.mark.parametrize("c_in", [1, 2])
def test_patch_matrix_jax_is_patch_matrix_under_jit(c_in):
    x = np.random.default_rng(5).standard_normal((2, 6, 5, c_in)).astype(np.float32)
    p = jax.jit(learn.patch_matrix_jax, static_argnums=1)(x, (3, 2))
    assert p.dtype == jnp.float32
    # Copies of float32 values: exact against the float64 reference.
    np.testing.assert_array_equal(p, learn.patch_matrix(x, (3, 2)))


@pytest.mark.parametrize(
    "shape, kernel_size, match",
    [
        ((6, 6, 1), (3, 3), r"`x` must have rank 4 \(N, H, W, C_in\) for a 2-D"),
        ((1, 6, 6, 1), (0, 3), r"`kernel_size` \(=\(0, 3\)\) must be positive"),
        ((1, 2, 6, 1), (3, 3), r"`kernel_size` \(3, 3\) is larger than the input"),
    ],
)
def test_patch_matrix_jax_errors(shape, kernel_size, match):
    with pytest.raises(ValueError, match=match):
        learn.patch_matrix_jax(jnp.zeros(shape), kernel_size)


def test_train_step_is_one_gradient_step(impl):
    # Small integers, M = 2 * 2 * 2 outputs and a power-of-two rate: every
    # value is exact in float32, so the float64 reference matches exactly.
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, (2, 4, 4, 1)).astype(np.float32)
    y = rng.integers(-5, 6, (2, 2, 2, 1)).astype(np.float32)
    k = rng.integers(-2, 3, (3, 3, 1, 1)).astype(np.float32)
    model = learn.ConvModel(kernel_shape=(3, 3, 1, 1), impl=impl)
    problem = learn.Problem(jnp.asarray(x), jnp.asarray(y), jnp.ones(2), {})
    opt = learn.make_optimizer("sgd", 2.0**-6)
    params = {"kernel": jnp.asarray(k)}
    step = jax.jit(functools.partial(learn.train_step, model, opt))
    new, _, loss = step(params, opt.init(params), problem)
    p = learn.patch_matrix(x, (3, 3))
    residual = p @ k.ravel() - y.ravel()
    grad = 2 * p.T @ residual / residual.size
    assert float(loss) == np.mean(residual**2)
    np.testing.assert_array_equal(new["kernel"].ravel(), k.ravel() - 2.0**-6 * grad)


def test_make_optimizer_adam_epsilon():
    # Adam's first update is -lr * g / (|g| + eps).
    g = {"w": jnp.asarray([1e-7])}
    for kwargs, expected in (({}, -0.1 / 1.1), ({"adam_epsilon": 1e-7}, -0.05)):
        opt = learn.make_optimizer("adam", 0.1, **kwargs)
        updates, _ = opt.update(g, opt.init(g), g)
        np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


# ------------------------------------------------------------ experiment data


def test_named_kernels_by_hand():
    one_channel = dict(channels_in=1, channels_out=1, seed=0)
    k = kernel_data.true_kernel("gaussian", kernel_size=3, **one_channel)
    assert k.shape == (3, 3, 1, 1) and float(k.sum()) == 1.0
    assert float(k[1, 1, 0, 0]) == 0.25
    sobel = kernel_data.NAMED_KERNELS["sobel_x"]
    # A ramp increasing to the left gives a positive response everywhere.
    ramp = -np.arange(5, dtype=np.float64)[None, :].repeat(5, 0)
    response = np.asarray(
        [
            [np.sum(ramp[i : i + 3, j : j + 3] * sobel) for j in range(3)]
            for i in range(3)
        ]
    )
    np.testing.assert_array_equal(response, 8)
    with pytest.raises(ValueError, match=r"kernel 'sobel_x' is 3x3 with one"):
        kernel_data.true_kernel("sobel_x", kernel_size=5, **one_channel)
    with pytest.raises(ValueError, match=r"kernel name \(='nope'\)"):
        kernel_data.true_kernel("nope", kernel_size=3, **one_channel)


def test_random_kernel_and_images_are_seeded():
    kernel_kw = dict(kernel_size=3, channels_in=3, channels_out=4, seed=5)
    a = kernel_data.true_kernel("random", **kernel_kw)
    np.testing.assert_array_equal(a, kernel_data.true_kernel("random", **kernel_kw))
    assert a.shape == (3, 3, 3, 4) and a.dtype == np.float32
    assert 0.1 < a.std() < 0.3  # N(0, 1/27)
    kw = dict(num_images=3, image_size=16, channels=3, seed=1)
    crops = kernel_data.input_images("astronaut", **kw)
    np.testing.assert_array_equal(crops, kernel_data.input_images("astronaut", **kw))
    assert crops.shape == (3, 16, 16, 3) and crops.dtype == np.float32
    assert crops.min() >= 0 and crops.max() <= 1
    # Each crop is a piece of the photo.
    photo = kernel_data.photo("astronaut")
    hits = np.argwhere((photo[:-15, :-15] == crops[0, 0, 0]).all(-1))
    assert any(np.array_equal(photo[i : i + 16, j : j + 16], crops[0]) for i, j in hits)


def test_input_images_errors():
    with pytest.raises(ValueError, match=r"'document_image' is one 4x4 grey image"):
        kernel_data.input_images(
            "document_image", num_images=2, image_size=4, channels=1, seed=0
        )
    with pytest.raises(ValueError, match=r"photo 'camera' is 512x512 with 1"):
        kernel_data.input_images(
            "camera", num_images=1, image_size=16, channels=3, seed=0
        )
