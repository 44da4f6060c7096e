"""`jconv.linen` against Flax's own `linen.Conv` (which calls
`lax.conv_general_dilated` directly): same initial parameters from the same
key, same outputs and gradients with the same parameters, under `jax.jit`,
with optax and orbax.

Small-integer data makes every product and partial sum exact in float32, so
outputs must be equal to the last bit.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import jconv
import jconv.linen as jlinen

SLOW = pytest.mark.slow

# (kernel, strides, dilation_rate, padding, groups, hw)
CASES = [
    ((3, 3), 1, 1, "SAME", 1, (7, 7)),
    ((2, 2), 2, 1, "SAME", 2, (7, 8)),
    ((4, 4), 3, 1, "SAME", 1, (8, 8)),
    ((3, 2), (1, 2), (2, 1), "VALID", 2, (8, 7)),
    ((3, 3), 2, 1, ((0, 2), (1, 0)), 1, (7, 7)),
    pytest.param((2, 3), 1, 2, (1, 2), 1, (7, 7), marks=SLOW),
    pytest.param((5, 5), 2, 1, "SAME", 2, (9, 8), marks=SLOW),
]


def _ints(rng, shape):
    return rng.integers(-3, 4, shape).astype(np.float32)


def _id(value):
    return str(value).replace(" ", "")


@pytest.mark.parametrize(
    "kernel_size, strides, dilation, padding, groups, hw", CASES, ids=_id
)
def test_conv2d_matches_flax_linen_conv(
    kernel_size, strides, dilation, padding, groups, hw, impl
):
    rng = np.random.default_rng(0)
    x = _ints(rng, (2, *hw, 4))
    ours = jlinen.Conv2D(
        6,
        kernel_size,
        strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        impl=impl,
    )
    theirs = nn.Conv(
        6,
        kernel_size,
        strides,
        padding=padding,
        kernel_dilation=dilation,
        feature_group_count=groups,
    )
    key = jax.random.key(1)
    variables = ours.init(key, x)
    # Same names, same initialisers: the same key gives the same parameters.
    jax.tree.map(np.testing.assert_array_equal, variables, theirs.init(key, x))

    params = {
        "kernel": _ints(rng, (*kernel_size, 4 // groups, 6)),
        "bias": _ints(rng, (6,)),
    }
    expected = np.asarray(theirs.apply({"params": params}, x))
    y = jax.jit(ours.apply)({"params": params}, x)
    np.testing.assert_array_equal(y, expected)


# Every spatial rank: (module, kernel_size, strides, dilation_rate,
# input_dilation, padding, groups, spatial size); explicit pads with an input
# dilation (lax refuses a padding string with it).
RANK_CASES = [
    ("Conv1D", (3,), 2, 2, 1, "SAME", 2, (9,)),
    ("Conv3D", (2, 3, 1), (1, 2, 1), 1, (2, 1, 1), (1, 2, 0), 1, (3, 5, 4)),
    pytest.param("Conv1D", (2,), 1, 1, 3, ((1, 2),), 1, (5,), marks=SLOW),
    pytest.param("Conv3D", (2, 2, 2), 2, 1, 1, "VALID", 2, (4, 5, 4), marks=SLOW),
]


@pytest.mark.parametrize(
    "name, kernel_size, strides, dilation, input_dilation, padding, groups, size",
    RANK_CASES,
    ids=_id,
)
def test_every_rank_matches_flax_linen_conv(
    name, kernel_size, strides, dilation, input_dilation, padding, groups, size, impl
):
    """`Conv1D`/`Conv3D` (and `input_dilation`) against `linen.Conv` of the
    same rank: the same key gives the same parameters, equal outputs."""
    rng = np.random.default_rng(0)
    x = _ints(rng, (2, *size, 4))
    kwargs = dict(padding=padding, input_dilation=input_dilation)
    ours = getattr(jlinen, name)(
        6, kernel_size, strides, dilation_rate=dilation, groups=groups, impl=impl,
        **kwargs,
    )  # fmt: skip
    theirs = nn.Conv(
        6, kernel_size, strides, kernel_dilation=dilation, feature_group_count=groups,
        **kwargs,
    )  # fmt: skip
    key = jax.random.key(1)
    variables = ours.init(key, x)
    jax.tree.map(np.testing.assert_array_equal, variables, theirs.init(key, x))
    params = {
        "kernel": _ints(rng, (*kernel_size, 4 // groups, 6)),
        "bias": _ints(rng, (6,)),
    }
    expected = np.asarray(theirs.apply({"params": params}, x))
    y = jax.jit(ours.apply)({"params": params}, x)
    np.testing.assert_array_equal(y, expected)


def test_transpose_and_depthwise_match_the_functions():
    """The Linen modules are the functions with parameters (the functions are
    checked against Keras and against their adjoint elsewhere)."""
    rng = np.random.default_rng(2)
    x = _ints(rng, (2, 5, 6, 4))
    up = jlinen.Conv2DTranspose(3, (3, 2), 2, padding="same", output_padding=1)
    params = up.init(jax.random.key(0), x)["params"]
    assert params["kernel"].shape == (3, 2, 3, 4)
    expected = jconv.conv2d_transpose(
        x, params["kernel"], params["bias"], strides=2, padding="same", output_padding=1
    )
    np.testing.assert_array_equal(up.apply({"params": params}, x), expected)

    dw = jlinen.DepthwiseConv2D((3, 3), depth_multiplier=2, padding="valid")
    params = dw.init(jax.random.key(0), x)["params"]
    assert params["kernel"].shape == (3, 3, 4, 2)
    assert params["bias"].shape == (8,)
    expected = jconv.depthwise_conv2d(x, params["kernel"], params["bias"])
    np.testing.assert_array_equal(dw.apply({"params": params}, x), expected)

    # Groups and a padding mode: the adjoint of the grouped, reflecting Conv2D.
    up = jlinen.Conv2DTranspose(6, 3, 2, groups=2, padding_mode="reflect")
    params = up.init(jax.random.key(0), x)["params"]
    assert params["kernel"].shape == (3, 3, 3, 4)
    expected = jconv.conv2d_transpose(
        x, params["kernel"], params["bias"], strides=2, padding="same",
        groups=2, padding_mode="reflect",
    )  # fmt: skip
    np.testing.assert_array_equal(up.apply({"params": params}, x), expected)
    with pytest.raises(ValueError, match=r"`features` \(=5\) must be divisible"):
        jlinen.Conv2DTranspose(5, 3, groups=2).init(jax.random.key(0), x)


class _Net(nn.Module):
    conv: type
    kwargs: tuple = ()

    @nn.compact
    def __call__(self, x):
        kw = dict(self.kwargs)
        # Named: Linen derives parameter keys from module names.
        h = jax.nn.relu(self.conv(8, (3, 3), 2, name="conv1", **kw)(x))
        h = jax.nn.relu(self.conv(8, (2, 2), name="conv2", **kw)(h))
        return nn.Dense(1)(h.mean(axis=(1, 2)))[:, 0]


def _data(seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 8, 8, 3)).astype(np.float32)
    return x, x[:, ::2, ::2, 0].sum(axis=(1, 2)) / 4


def test_jit_grad_and_optax_match_flax(impl):
    x, y = _data()
    ours = _Net(jlinen.Conv2D, (("impl", impl), ("precision", "highest")))
    theirs = _Net(nn.Conv, (("precision", "highest"),))
    params = ours.init(jax.random.key(0), x)["params"]
    jax.tree.map(
        np.testing.assert_array_equal,
        params,
        theirs.init(jax.random.key(0), x)["params"],
    )
    opt = optax.adam(1e-2)

    def run(model):
        def loss(p):
            return jnp.mean((model.apply({"params": p}, x) - y) ** 2)

        @jax.jit
        def step(p, state):
            value, g = jax.value_and_grad(loss)(p)
            updates, state = opt.update(g, state, p)
            return optax.apply_updates(p, updates), state, value

        p, state, losses = params, opt.init(params), []
        for _ in range(15):
            p, state, value = step(p, state)
            losses.append(float(value))
        return losses

    ours_losses, theirs_losses = run(ours), run(theirs)
    # Same network, summation order apart: float32 gradients agree to about
    # gamma_n of their sums of absolute products (n <= 2048, ~1.2e-4), and 15
    # Adam steps (lr * m / sqrt(v)) carry that into the loss: rtol 1e-3.
    np.testing.assert_allclose(ours_losses, theirs_losses, rtol=1e-3)
    assert ours_losses[-1] < 0.5 * ours_losses[0]


def test_orbax_save_restore(tmp_path):
    model = _Net(jlinen.Conv2D, (("impl", "einsum"),))
    x, _ = _data()
    variables = model.init(jax.random.key(0), x)
    expected = np.asarray(model.apply(variables, x))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", variables)
    checkpointer.wait_until_finished()
    abstract = jax.eval_shape(model.init, jax.random.key(1), x)
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    np.testing.assert_array_equal(model.apply(restored, x), expected)


@pytest.mark.parametrize(
    "cls, kwargs, exc, match",
    [
        (
            jlinen.Conv2D,
            dict(features=0),
            ValueError,
            r"`features` \(=0\) must be positive",
        ),
        (jlinen.Conv2D, dict(strides=(1, 0)), ValueError, r"`strides` \(=\(1, 0\)\)"),
        (jlinen.Conv2D, dict(padding="half"), ValueError, r"`padding` \(='half'\)"),
        (
            jlinen.Conv2D,
            dict(groups=4),
            ValueError,
            r"`features` \(=6\) must be divisible by `groups` \(=4\)",
        ),
        (jlinen.Conv2D, dict(impl="numpy"), ValueError, r"`impl` \(='numpy'\)"),
        (jlinen.Conv2D, dict(dtype=jnp.int8), TypeError, r"`dtype` .* floating"),
        (
            jlinen.Conv2DTranspose,
            dict(strides=2, output_padding=(1, 2)),
            ValueError,
            r"`output_padding` \(=\(1, 2\)\) must be smaller than `strides`",
        ),
        (
            jlinen.DepthwiseConv2D,
            dict(depth_multiplier=-1),
            ValueError,
            r"`depth_multiplier` \(=-1\) must be positive",
        ),
    ],
)
def test_bad_fields_raise_at_construction(cls, kwargs, exc, match):
    base = dict(kernel_size=3)
    if cls is not jlinen.DepthwiseConv2D:
        base["features"] = 6
    with pytest.raises(exc, match=match):
        cls(**{**base, **kwargs})


def test_input_channels_are_checked_at_the_first_call():
    conv = jlinen.Conv2D(6, 3, groups=2)
    with pytest.raises(
        ValueError, match=r"input channels C_in of `x` \(=3\) must be divisible"
    ):
        conv.init(jax.random.key(0), jnp.ones((1, 5, 5, 3)))


# --- The input's rank, precision, strings in any case (issue 11) -------------


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (jlinen.Conv2D, dict(features=6)),
        (jlinen.Conv2DTranspose, dict(features=6)),
        (jlinen.DepthwiseConv2D, dict()),
    ],
)
def test_wrong_rank_gives_the_functions_message(cls, kwargs):
    conv = cls(kernel_size=3, **kwargs)
    x = jnp.ones((1, 6, 6, 4))
    variables = conv.init(jax.random.key(0), x)
    rank = r"`x` must have rank 4 \(N, H, W, C_in\) or rank 3 without the batch axis"
    with pytest.raises(ValueError, match=rank + r" .* got shape \(6, 4\)"):
        conv.apply(variables, jnp.ones((6, 4)))
    with pytest.raises(ValueError, match=rank + r" .* got shape \(4,\)"):
        conv.init(jax.random.key(0), jnp.ones((4,)))
    first = cls(kernel_size=3, data_format="channels_first", **kwargs)
    with pytest.raises(ValueError, match=r"`x` must have rank 4 \(N, C_in, H, W\)"):
        first.init(jax.random.key(0), jnp.ones((6, 6)))


def test_bad_precision_and_impl_raise_at_construction():
    with pytest.raises(
        ValueError, match=r"`precision` \(='max'\) must be None, a `jax.lax.Precision`"
    ):
        jlinen.Conv2D(features=6, kernel_size=3, precision="max")
    with pytest.raises(ValueError, match=r"`impl` \(=\['lax'\]\) must be one of"):
        jlinen.DepthwiseConv2D(kernel_size=3, impl=["lax"])


def test_linen_string_fields_are_read_in_any_case():
    x = jnp.asarray(np.random.default_rng(0).integers(-3, 4, (2, 4, 6, 6)), "float32")
    lower = jlinen.Conv2D(
        6, 3, data_format="channels_first", padding_mode="circular", impl="einsum"
    )
    upper = jlinen.Conv2D(
        6, 3, data_format="CHANNELS_FIRST", padding_mode="CIRCULAR", impl="Einsum"
    )
    variables = lower.init(jax.random.key(0), x)
    assert variables["params"]["kernel"].shape == (3, 3, 4, 6)
    # Same init key, the same program twice in one process: equal on any CPU.
    np.testing.assert_array_equal(
        lower.apply(variables, x), upper.apply(upper.init(jax.random.key(0), x), x)
    )
