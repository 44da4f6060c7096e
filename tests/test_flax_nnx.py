"""`jconv.nnx` against Flax's own `nnx.Conv`/`nnx.ConvTranspose` (which call
`lax.conv_general_dilated` directly): same initial weights from the same seed,
same outputs and gradients with the same weights, and the NNX machinery (jit,
grad, Optimizer, orbax) around them.

Small-integer data makes every product and partial sum exact in float32, so
outputs must be equal to the last bit whatever order either side sums in.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import jconv
import jconv.nnx as jnnx

# (kernel, strides, dilation_rate, padding, groups, hw): Flax's "SAME" with
# even kernels and strides > 1 on odd and even inputs included.
SLOW = pytest.mark.slow
CONV_CASES = [
    pytest.param((3, 3), 1, 1, "SAME", 1, (7, 7), marks=SLOW),
    ((3, 3), 1, 1, "VALID", 2, (7, 8)),
    ((2, 2), 2, 1, "SAME", 1, (7, 7)),
    pytest.param((2, 2), 2, 1, "SAME", 1, (8, 8), marks=SLOW),
    ((4, 4), 2, 1, "SAME", 2, (9, 8)),
    pytest.param((4, 4), 3, 1, "SAME", 1, (8, 7), marks=SLOW),
    pytest.param((2, 3), (1, 2), 1, "SAME", 1, (7, 8), marks=SLOW),
    pytest.param((3, 3), 1, 2, "SAME", 1, (8, 8), marks=SLOW),
    ((2, 2), 1, (2, 1), "SAME", 2, (7, 7)),
    ((3, 3), 2, 2, "SAME", 1, (9, 9)),
    pytest.param((3, 3), 2, 1, 1, 1, (8, 8), marks=SLOW),
    ((3, 2), 1, 1, (2, 0), 2, (7, 7)),
    ((3, 3), (2, 1), 1, ((0, 2), (1, 0)), 1, (8, 7)),
    pytest.param((5, 5), 2, 1, "VALID", 1, (9, 9), marks=SLOW),
    pytest.param((1, 1), 2, 1, "SAME", 2, (7, 8), marks=SLOW),
]


def _ints(rng, shape):
    return rng.integers(-3, 4, shape).astype(np.float32)


def _case_id(value):
    return str(value).replace(" ", "")


def _flax_conv(c_in, c_out, kernel_size, dilation, groups, **kwargs):
    """Flax's `nnx.Conv` under jconv's names, seeded as the jconv layers are."""
    return nnx.Conv(
        c_in,
        c_out,
        kernel_size,
        kernel_dilation=dilation,
        feature_group_count=groups,
        rngs=nnx.Rngs(0),
        **kwargs,
    )


def _seeded(cls, *args, **kwargs):
    """A `cls(*args, **kwargs)` module seeded as `_flax_conv` seeds Flax's:
    the same initial weights wherever the two share a layout."""
    return cls(*args, rngs=nnx.Rngs(0), **kwargs)


def _flax_padding(padding):
    # Flax reads (p_h, p_w) as symmetric pads per axis, as jconv does.
    return padding


@pytest.mark.parametrize(
    "kernel_size, strides, dilation, padding, groups, hw", CONV_CASES, ids=_case_id
)
def test_conv2d_matches_flax_conv(
    kernel_size, strides, dilation, padding, groups, hw, impl
):
    c_in, c_out = 4, 6
    kwargs = dict(strides=strides, padding=padding)
    ours_only = dict(dilation_rate=dilation, groups=groups, impl=impl)
    ours = _seeded(jnnx.Conv2D, c_in, c_out, kernel_size, **ours_only, **kwargs)
    theirs = _flax_conv(c_in, c_out, kernel_size, dilation, groups, **kwargs)
    # Same seed, same initialiser, same key order: same initial weights.
    np.testing.assert_array_equal(ours.kernel[...], theirs.kernel[...])
    np.testing.assert_array_equal(ours.bias[...], theirs.bias[...])

    rng = np.random.default_rng(1)
    kernel = _ints(rng, ours.kernel.shape)
    bias = _ints(rng, (c_out,))
    for module in (ours, theirs):
        module.kernel[...] = kernel
        module.bias[...] = bias
    x = _ints(rng, (2, *hw, c_in))
    expected = np.asarray(theirs(x))
    np.testing.assert_array_equal(ours(x), expected)
    if padding == "SAME" and groups == 2:
        # Unbatched and extra batch axes, as Flax allows.
        np.testing.assert_array_equal(ours(x[0]), expected[0])
        y = ours(x.reshape(1, 2, *x.shape[1:]))
        np.testing.assert_array_equal(y, expected.reshape(1, 2, *expected.shape[1:]))


@pytest.mark.parametrize(
    "size, kernel, stride",
    [(7, 2, 2), (8, 2, 2), (8, 4, 2), (9, 4, 3), (7, 6, 3), (10, 2, 4)],
)
def test_same_padding_is_flax_and_keras_same(size, kernel, stride):
    """Flax's "SAME" is lax's, which is TensorFlow's rule: with even kernels
    and strides > 1 too, the odd pixel goes at the bottom/right in all three."""
    lax_pads = jax.lax.padtype_to_pads(
        (size, size), (kernel, kernel), (stride, stride), "SAME"
    )
    ours = jconv.resolve_padding(
        (size, size), (kernel, kernel), (stride, stride), (1, 1), "same"
    )
    assert tuple(map(tuple, lax_pads)) == ours


@pytest.mark.parametrize("mode", ["circular", "reflect"])
def test_flax_circular_and_reflect_pad_without_the_stride(mode):
    """Flax's "CIRCULAR"/"REFLECT" pad `((k - 1) // 2, k // 2)` whatever the
    stride; jconv's "same" uses the stride: explicit pads give Flax's."""
    rng = np.random.default_rng(2)
    x = _ints(rng, (1, 8, 8, 2))
    theirs = nnx.Conv(2, 3, (3, 4), strides=2, padding=mode.upper(), rngs=nnx.Rngs(0))
    explicit = jnnx.Conv2D(
        2,
        3,
        (3, 4),
        strides=2,
        padding=((1, 1), (1, 2)),
        padding_mode=mode,
        rngs=nnx.Rngs(0),
    )
    same = jnnx.Conv2D(
        2, 3, (3, 4), strides=2, padding="same", padding_mode=mode, rngs=nnx.Rngs(0)
    )
    expected = np.asarray(theirs(x))
    np.testing.assert_allclose(explicit(x), expected, rtol=0, atol=0)
    assert jconv.resolve_padding((8, 8), (3, 4), (2, 2), (1, 1), "same") == (
        (0, 1),
        (1, 1),
    )
    assert same(x).shape == expected.shape
    assert not np.array_equal(same(x), expected)


@pytest.mark.parametrize(
    "kernel_size, strides, dilation, hw",
    [
        ((3, 3), 2, 1, (5, 5)),
        ((2, 3), (1, 3), 1, (4, 4)),
        pytest.param((4, 4), 2, 1, (4, 5), marks=SLOW),
        pytest.param((3, 3), 1, 2, (5, 4), marks=SLOW),
    ],
)
def test_conv2d_transpose_matches_flax_conv_transpose(
    kernel_size, strides, dilation, hw, impl
):
    """Flax's `ConvTranspose(transpose_kernel=True)` takes the same kernel
    layout; its padding pads the stretched input (lax.conv_transpose), where
    jconv's (Keras') is the forward convolution's. "VALID" agrees while the
    kernel spans at least the stride; explicit forward pads `(lo, hi)` are
    Flax's `(span - 1 - lo, span - 1 - hi + output_padding)`."""
    c_in, c_out = 4, 3
    rng = np.random.default_rng(3)
    x = _ints(rng, (2, *hw, c_in))
    kernel = _ints(rng, (*kernel_size, c_out, c_in))
    bias = _ints(rng, (c_out,))
    d = (dilation, dilation)
    span = [(k - 1) * di + 1 for k, di in zip(kernel_size, d)]
    s = (strides, strides) if isinstance(strides, int) else strides
    pads, output_padding = ((1, 0), (0, 1)), tuple(si - 1 for si in s)
    flax_pads = [
        (sp - 1 - lo, sp - 1 - hi + a)
        for sp, (lo, hi), a in zip(span, pads, output_padding)
    ]
    for ours_padding, flax_padding, op in [
        ("valid", "VALID", None),
        (pads, flax_pads, output_padding),
    ]:
        args = (c_in, c_out, kernel_size, strides)
        ours_only = dict(output_padding=op, dilation_rate=dilation, impl=impl)
        ours = _seeded(jnnx.Conv2DTranspose, *args, padding=ours_padding, **ours_only)
        flax_only = dict(kernel_dilation=dilation, transpose_kernel=True)
        theirs = _seeded(nnx.ConvTranspose, *args, padding=flax_padding, **flax_only)
        assert ours.kernel.shape == theirs.kernel.shape == kernel.shape
        for module in (ours, theirs):
            module.kernel[...] = kernel
            module.bias[...] = bias
        expected = np.asarray(theirs(x))
        np.testing.assert_array_equal(ours(x), expected)


# Every spatial rank: (module, kernel_size, strides, dilation_rate,
# input_dilation, padding, groups, spatial size); explicit pads with an input
# dilation (lax refuses a padding string with it).
RANK_CASES = [
    ("Conv1D", (3,), 2, 1, 1, "SAME", 2, (9,)),
    ("Conv1D", (4,), 1, 2, 2, ((2, 1),), 1, (7,)),
    ("Conv3D", (2, 3, 2), (1, 2, 1), 1, 1, "SAME", 2, (4, 7, 5)),
    ("Conv3D", (2, 2, 3), 1, (1, 2, 1), (2, 1, 1), ((1, 0), (0, 2), (1, 1)), 1,
     (3, 5, 4)),
    pytest.param("Conv1D", (5,), 3, 1, 3, 0, 2, (8,), marks=SLOW),
    pytest.param(
        "Conv3D", (3, 1, 2), (2, 1, 1), 2, 1, ((1, 0), (0, 0), (2, 1)), 1, (5, 3, 3),
        marks=SLOW,
    ),
    pytest.param(
        "Conv2D", (3, 2), 2, 1, (1, 3), ((1, 1), (0, 2)), 2, (5, 4), marks=SLOW
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, kernel_size, strides, dilation, input_dilation, padding, groups, size",
    RANK_CASES,
    ids=_case_id,
)
def test_every_rank_matches_flax_conv(
    name, kernel_size, strides, dilation, input_dilation, padding, groups, size, impl
):
    """`Conv1D`/`Conv3D` (and `input_dilation`) against `nnx.Conv` of the same
    rank: the same initial weights from the same seed, equal outputs."""
    c_in, c_out = 4, 6
    kwargs = dict(strides=strides, padding=padding, input_dilation=input_dilation)
    ours_only = dict(dilation_rate=dilation, groups=groups, impl=impl)
    ours = _seeded(getattr(jnnx, name), c_in, c_out, kernel_size, **ours_only, **kwargs)
    theirs = _flax_conv(c_in, c_out, kernel_size, dilation, groups, **kwargs)
    np.testing.assert_array_equal(ours.kernel[...], theirs.kernel[...])
    rng = np.random.default_rng(1)
    kernel = _ints(rng, ours.kernel.shape)
    bias = _ints(rng, (c_out,))
    for module in (ours, theirs):
        module.kernel[...] = kernel
        module.bias[...] = bias
    x = _ints(rng, (2, *size, c_in))
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))


@pytest.mark.parametrize(
    "name, kernel_size, strides, size",
    [
        ("Conv1DTranspose", (3,), 2, (5,)),
        ("Conv3DTranspose", (2, 3, 2), (2, 1, 3), (3, 4, 2)),
    ],
)
def test_every_rank_transpose_matches_flax(name, kernel_size, strides, size, impl):
    """ "VALID" transposed convolutions of every rank against
    `nnx.ConvTranspose(transpose_kernel=True)` (same kernel layout)."""
    c_in, c_out = 4, 3
    rng = np.random.default_rng(3)
    x = _ints(rng, (2, *size, c_in))
    kernel = _ints(rng, (*kernel_size, c_out, c_in))
    bias = _ints(rng, (c_out,))
    args = (c_in, c_out, kernel_size, strides)
    ours = _seeded(getattr(jnnx, name), *args, padding="valid", impl=impl)
    theirs = _seeded(nnx.ConvTranspose, *args, padding="VALID", transpose_kernel=True)
    for module in (ours, theirs):
        module.kernel[...] = kernel
        module.bias[...] = bias
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))


@pytest.mark.parametrize(
    "name, kernel_size, input_dilation, padding, size",
    [
        ("DepthwiseConv1D", (3,), 2, ((2, 1),), (7,)),
        ("DepthwiseConv3D", (2, 1, 3), 1, "SAME", (4, 3, 5)),
    ],
)
def test_every_rank_depthwise_matches_flax_grouped_conv(
    name, kernel_size, input_dilation, padding, size
):
    """A depthwise kernel `(*K, C, M)` is Flax's grouped kernel `(*K, 1, C *
    M)` with `feature_group_count=C`, in every rank; the same seed
    initialises both."""
    c_in, multiplier = 3, 2
    kwargs = dict(padding=padding, input_dilation=input_dilation)
    ours = _seeded(getattr(jnnx, name), c_in, kernel_size, depth_multiplier=2, **kwargs)
    theirs = _flax_conv(c_in, c_in * multiplier, kernel_size, 1, c_in, **kwargs)
    grouped = theirs.kernel.shape
    np.testing.assert_array_equal(ours.kernel[...].reshape(grouped), theirs.kernel[...])
    rng = np.random.default_rng(4)
    kernel = _ints(rng, ours.kernel.shape)
    ours.kernel[...] = kernel
    theirs.kernel[...] = kernel.reshape(grouped)
    x = _ints(rng, (2, *size, c_in))
    np.testing.assert_array_equal(ours(x), np.asarray(theirs(x)))


@pytest.mark.parametrize(
    "multiplier, kernel_size, strides, dilation, padding",
    [
        (2, (2, 2), 2, 1, "SAME"),
        (2, (3, 3), (2, 1), 1, ((1, 0), (2, 1))),
        pytest.param(1, (3, 3), 1, 1, "SAME", marks=SLOW),
        pytest.param(3, (3, 2), 1, 2, "VALID", marks=SLOW),
    ],
)
def test_depthwise_matches_flax_grouped_conv(
    multiplier, kernel_size, strides, dilation, padding, impl
):
    """A depthwise kernel `(KH, KW, C, M)` is Flax's grouped kernel `(KH, KW,
    1, C * M)` with `feature_group_count=C`; the same seed initialises both."""
    c_in = 4
    kwargs = dict(strides=strides, padding=padding)
    ours_only = dict(depth_multiplier=multiplier, dilation_rate=dilation, impl=impl)
    ours = _seeded(jnnx.DepthwiseConv2D, c_in, kernel_size, **ours_only, **kwargs)
    theirs = _flax_conv(c_in, c_in * multiplier, kernel_size, dilation, c_in, **kwargs)
    grouped = theirs.kernel.shape
    assert ours.kernel.shape == (*kernel_size, c_in, multiplier)
    np.testing.assert_array_equal(ours.kernel[...].reshape(grouped), theirs.kernel[...])
    rng = np.random.default_rng(4)
    kernel = _ints(rng, ours.kernel.shape)
    ours.kernel[...] = kernel
    theirs.kernel[...] = kernel.reshape(grouped)
    bias = _ints(rng, (c_in * multiplier,))
    ours.bias[...] = bias
    theirs.bias[...] = bias
    x = _ints(rng, (2, 7, 8, c_in))
    np.testing.assert_array_equal(ours(x), theirs(x))


def test_channels_first():
    rng = np.random.default_rng(5)
    x = _ints(rng, (2, 7, 8, 4))
    last = jnnx.Conv2D(4, 6, (3, 2), strides=2, rngs=nnx.Rngs(0))
    first = jnnx.Conv2D(
        4, 6, (3, 2), strides=2, data_format="channels_first", rngs=nnx.Rngs(0)
    )
    np.testing.assert_array_equal(
        first(x.transpose(0, 3, 1, 2)), np.asarray(last(x)).transpose(0, 3, 1, 2)
    )


@pytest.mark.parametrize(
    "dtype, param_dtype, x_dtype",
    [
        (None, jnp.float32, jnp.bfloat16),
        (jnp.bfloat16, jnp.float32, jnp.float32),
        (None, jnp.bfloat16, jnp.bfloat16),
        (None, jnp.float32, jnp.int32),
    ],
)
def test_dtypes_follow_flax(dtype, param_dtype, x_dtype):
    kwargs = dict(dtype=dtype, param_dtype=param_dtype)
    ours = jnnx.Conv2D(3, 4, (3, 3), rngs=nnx.Rngs(0), **kwargs)
    theirs = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), **kwargs)
    assert ours.kernel.dtype == theirs.kernel.dtype == param_dtype
    x = jnp.asarray(_ints(np.random.default_rng(6), (1, 6, 6, 3)), x_dtype)
    y, expected = ours(x), theirs(x)
    assert y.dtype == expected.dtype
    # Small-integer data: exact in float32; in bfloat16 (8 significant bits)
    # inputs, kernel and output each round by at most 2^-8 relative on either
    # side, and a bfloat16 accumulation of the 27 products may round at each
    # step: 2e-2 covers 2 * (3 + 2) roundings of 2^-8 with room for the sums.
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np.asarray(expected, np.float32), rtol=2e-2
    )


class _Net(nnx.Module):
    """Two convolutions and a linear read-out, either jconv's or Flax's."""

    def __init__(self, conv, *, rngs, **kw):
        self.conv1 = conv(3, 8, (3, 3), strides=2, rngs=rngs, **kw)
        self.conv2 = conv(8, 8, (2, 2), rngs=rngs, **kw)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x))))
        return self.out(h.mean(axis=(1, 2)))[:, 0]


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def _data(seed=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 8, 8, 3)).astype(np.float32)
    return x, x[:, ::2, ::2, 0].sum(axis=(1, 2)) / 4


def test_jit_grad_and_optimizer_match_flax(impl):
    """`nnx.jit` + `nnx.grad` + `nnx.Optimizer(optax.adam)`: the jconv network
    follows the same training trajectory as the same network on `nnx.Conv`."""
    x, y = _data()
    ours = _Net(jnnx.Conv2D, rngs=nnx.Rngs(0), impl=impl, precision="highest")
    theirs = _Net(nnx.Conv, rngs=nnx.Rngs(0), precision="highest")

    grads = [nnx.jit(nnx.grad(_loss))(m, x, y) for m in (ours, theirs)]
    # The two networks differ only in summation order: float32 sums of at most
    # 16 * 4 * 4 * 8 = 2048 products per gradient element, each within
    # gamma_2048 ~ 1.2e-4 of its sum of absolute products (`_tol.py`), and the
    # gradients here are of the order of those sums: rtol 1e-4 + atol 1e-5.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads
    )

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, g = nnx.value_and_grad(_loss)(model, x, y)
        optimizer.update(model, g)
        return loss

    losses = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
        losses[name] = [float(step(model, optimizer, x, y)) for _ in range(15)]
    # 15 Adam steps from gradients that agree to ~1e-4 (above); Adam's step is
    # lr * m / sqrt(v), so each step can differ by ~1e-4 of lr relative: 1e-3
    # on the loss covers 15 such steps.
    np.testing.assert_allclose(losses["ours"], losses["theirs"], rtol=1e-3)
    assert losses["ours"][-1] < 0.5 * losses["ours"][0]


def test_orbax_save_restore(tmp_path):
    model = _Net(jnnx.Conv2D, rngs=nnx.Rngs(0), impl="einsum")
    x, _ = _data()
    expected = np.asarray(model(x))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(model))
    checkpointer.wait_until_finished()

    fresh = _Net(jnnx.Conv2D, rngs=nnx.Rngs(1), impl="einsum")
    assert not np.allclose(fresh(x), expected)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: fresh))
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    nnx.update(fresh, restored)
    np.testing.assert_array_equal(fresh(x), expected)
    np.testing.assert_array_equal(nnx.merge(graphdef, restored)(x), expected)


# (module class, exception): [(keyword arguments, message)]
BAD_ARGUMENTS = {
    (jnnx.Conv2D, ValueError): [
        (dict(in_features=0), r"`in_features` \(=0\) must be positive"),
        (dict(kernel_size=(3, 0)), r"`kernel_size` \(=\(3, 0\)\) must be positive"),
        (dict(strides=0), r"`strides` \(=0\) must be positive"),
        (dict(padding="middle"), r"`padding` \(='middle'\) must be 'valid', 'same'"),
        (dict(padding=-1), r"`padding` \(=-1\) must not be negative"),
        (
            dict(padding="CIRCULAR"),
            r"`padding` \(='CIRCULAR'\) .*padding_mode='circular'",
        ),
        (dict(padding_mode="mirror"), r"`padding_mode` \(='mirror'\) must be one of"),
        (dict(groups=3), r"`in_features` \(=4\) must be divisible by `groups` \(=3\)"),
        (dict(groups=4), r"`out_features` \(=6\) must be divisible by `groups` \(=4\)"),
        (dict(groups=0), r"`groups` \(=0\) must be positive"),
        (dict(data_format="NHWC"), r"`data_format` \(='NHWC'\) must be one of"),
        (
            dict(impl="cuda"),
            r"`impl` \(='cuda'\) must be one of "
            r"\('auto', 'lax', 'einsum', 'fft', 'onednn'\)",
        ),
    ],
    (jnnx.Conv2D, TypeError): [
        (dict(out_features=8.0), r"`out_features` \(=8.0\) must be an int"),
        (dict(kernel_size="3"), r"`kernel_size` \(='3'\) must be an int or a pair"),
        (dict(dilation_rate=(1, 2, 3)), r"`dilation_rate` \(=\(1, 2, 3\)\)"),
        (dict(use_bias="yes"), r"`use_bias` \(='yes'\) must be a bool"),
        (dict(dtype=jnp.int32), r"`dtype` \(=.*int32.*\) must be a floating dtype"),
        (dict(param_dtype="fp32"), r"`param_dtype` \(='fp32'\) is not a dtype"),
        (dict(param_dtype=None), r"`param_dtype` \(=None\) is not a dtype"),
        (dict(rngs=0), r"`rngs` \(=0\) must be an `nnx.Rngs`"),
    ],
    (jnnx.Conv2DTranspose, ValueError): [
        (
            dict(strides=2, output_padding=2),
            r"`output_padding` \(=2\) must be smaller than `strides`",
        ),
        (
            dict(kernel_size=2, strides=2, output_padding=0),
            r"`output_padding` \(=\(0, 0\)\) with `padding`='SAME'",
        ),
        (dict(out_features=-2), r"`out_features` \(=-2\) must be positive"),
    ],
    (jnnx.DepthwiseConv2D, ValueError): [
        (dict(depth_multiplier=0), r"`depth_multiplier` \(=0\) must be positive"),
        (dict(padding=((1, 2), (3,))), r"`padding` \(=\(\(1, 2\), \(3,\)\)\)"),
    ],
}
BAD = [
    (cls, kwargs, exc, match)
    for (cls, exc), rows in BAD_ARGUMENTS.items()
    for kwargs, match in rows
]

_DEFAULTS = {
    jnnx.Conv2D: dict(in_features=4, out_features=6, kernel_size=3),
    jnnx.Conv2DTranspose: dict(in_features=4, out_features=6, kernel_size=3),
    jnnx.DepthwiseConv2D: dict(in_features=4, kernel_size=3),
}


@pytest.mark.parametrize(
    "cls, kwargs, exc, match", BAD, ids=[f"{b[0].__name__}-{b[3][:30]}" for b in BAD]
)
def test_bad_arguments_raise_at_construction(cls, kwargs, exc, match):
    kwargs = {**_DEFAULTS[cls], "rngs": nnx.Rngs(0), **kwargs}
    with pytest.raises(exc, match=match):
        cls(**kwargs)


def test_input_mismatch_raises_at_call():
    conv = jnnx.Conv2D(4, 6, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`kernel` shape \(3, 3, 4, 6\) does not"):
        conv(jnp.ones((1, 5, 5, 3)))


# --- precision checked at build time; strings in any case (issue 11) ---------


@pytest.mark.parametrize(
    "cls", [jnnx.Conv2D, jnnx.Conv2DTranspose, jnnx.DepthwiseConv2D]
)
def test_bad_precision_raises_at_construction(cls):
    kwargs = {**_DEFAULTS[cls], "rngs": nnx.Rngs(0)}
    with pytest.raises(
        ValueError, match=r"`precision` \(='max'\) must be None, a `jax.lax.Precision`"
    ):
        cls(**kwargs, precision="max")
    with pytest.raises(ValueError, match=r"`impl` \(=\['lax'\]\) must be one of"):
        cls(**kwargs, impl=["lax"])


def test_module_string_arguments_are_read_in_any_case():
    x = jnp.asarray(np.random.default_rng(0).integers(-3, 4, (2, 4, 6, 6)), "float32")
    lower = dict(data_format="channels_first", padding_mode="reflect", impl="einsum")
    upper = dict(data_format="CHANNELS_FIRST", padding_mode="Reflect", impl="EINSUM")
    for cls, args in ((jnnx.Conv2D, (4, 6, 3)), (jnnx.DepthwiseConv2D, (4, 3))):
        a = cls(*args, **lower, precision="highest", rngs=nnx.Rngs(0))
        b = cls(*args, **upper, precision="HIGHEST", rngs=nnx.Rngs(0))
        # The same program twice in one process: equal on any CPU.
        np.testing.assert_array_equal(a(x), b(x))
        assert (b.data_format, b.padding_mode, b.impl) == tuple(lower.values())
    up = jnnx.Conv2DTranspose(4, 6, 3, data_format="Channels_First", rngs=nnx.Rngs(0))
    assert up(x).shape == (2, 6, 6, 6)
