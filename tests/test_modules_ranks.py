"""The modules of every spatial rank: `Conv1D`, `Conv3D`, their transposed,
depthwise and separable kinds (and the 2D modules' `input_dilation`), in
`jconv.nnx` and `jconv.linen`.

A module is its function with parameters: on small-integer data and weights
(every product and partial sum exact in float32) its output equals the
public function's on the module's weights, to the last bit. The functions
themselves are checked against Keras, torch and the float64 reference in
their own files; Flax's `nnx.Conv`/`linen.Conv` of every rank in
test_flax_nnx.py and test_flax_linen.py; Keras and torch layers of every
rank, live, in test_keras_io.py and test_torch_io.py. Here: the modules'
arguments per rank, and the errors a mismatch of ranks gives.
"""

import inspect

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jconv
import jconv.linen as jlinen
import jconv.nnx as jnnx

# The public function of each module.
FUNCTIONS = {
    "Conv1D": jconv.conv1d,
    "Conv2D": jconv.conv2d,
    "Conv3D": jconv.conv3d,
    "Conv1DTranspose": jconv.conv1d_transpose,
    "Conv3DTranspose": jconv.conv3d_transpose,
    "DepthwiseConv1D": jconv.depthwise_conv1d,
    "DepthwiseConv2D": jconv.depthwise_conv2d,
    "DepthwiseConv3D": jconv.depthwise_conv3d,
    "SeparableConv1D": jconv.separable_conv1d,
    "SeparableConv2D": jconv.separable_conv2d,
    "SeparableConv3D": jconv.separable_conv3d,
}

# (module, channels (in, out; depthwise: in), its keyword arguments, the
# input's spatial size): every per-axis argument as an int and as one value
# per axis, "causal" and `input_dilation` on the forward kinds, groups,
# padding modes, both layouts.
ROWS = [
    ("Conv1D", (4, 6),
     dict(kernel_size=3, strides=2, padding="causal", dilation_rate=2, groups=2),
     (11,)),
    ("Conv1D", (4, 3),
     dict(kernel_size=(2,), input_dilation=3, padding=((1, 2),),
          data_format="channels_first"),
     (5,)),
    ("Conv3D", (4, 6),
     dict(kernel_size=(3, 2, 1), strides=(1, 2, 1), padding="same", groups=2,
          padding_mode="reflect"),
     (5, 6, 4)),
    ("Conv3D", (2, 3),
     dict(kernel_size=2, input_dilation=(1, 2, 1), padding="causal",
          data_format="channels_first"),
     (3, 4, 3)),
    ("Conv1DTranspose", (4, 6),
     dict(kernel_size=3, strides=2, padding="same", output_padding=1, groups=2,
          padding_mode="circular"),
     (5,)),
    ("Conv3DTranspose", (4, 2),
     dict(kernel_size=(2, 3, 2), strides=(2, 1, 2), padding="valid",
          dilation_rate=(1, 2, 1), data_format="channels_first"),
     (3, 4, 3)),
    ("DepthwiseConv1D", (4,),
     dict(kernel_size=3, depth_multiplier=2, padding="same",
          padding_mode="reflect"),
     (9,)),
    ("DepthwiseConv1D", (3,),
     dict(kernel_size=3, strides=2, input_dilation=2, padding="causal"),
     (6,)),
    ("DepthwiseConv3D", (3,),
     dict(kernel_size=(2, 3, 3), depth_multiplier=2, padding="same",
          padding_mode="replicate", data_format="channels_first"),
     (4, 5, 5)),
    ("SeparableConv1D", (4, 5),
     dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same"),
     (9,)),
    ("SeparableConv1D", (2, 3),
     dict(kernel_size=2, input_dilation=2, padding="full", use_bias=False),
     (4,)),
    ("SeparableConv3D", (2, 4),
     dict(kernel_size=2, dilation_rate=2, padding="valid",
          data_format="channels_first"),
     (4, 5, 4)),
    # The 2D modules take `input_dilation` too.
    ("Conv2D", (4, 6), dict(kernel_size=3, input_dilation=(2, 1), padding=1,
                            groups=2), (4, 5)),
    ("DepthwiseConv2D", (3,), dict(kernel_size=2, input_dilation=2,
                                   padding="causal"), (3, 4)),
    ("SeparableConv2D", (2, 4), dict(kernel_size=3, input_dilation=2,
                                     padding="same", strides=2), (4, 3)),
]  # fmt: skip


def _row_id(row):
    name, _, kwargs, _ = row
    return name + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "")


def _ints(seed):
    """An initialiser of small integers (drawn by numpy: jax's initialisers
    compile once per shape)."""
    rng = np.random.default_rng(seed)
    return lambda key, shape, dtype: jnp.asarray(rng.integers(-3, 4, shape), dtype)


def _inits(name):
    kernels = (
        ("depthwise_init", "pointwise_init")
        if name.startswith("Separable")
        else ("kernel_init",)
    )
    inits = {init: _ints(seed) for seed, init in enumerate(kernels)}
    return dict(inits, bias_init=_ints(7))


def _input(channels, kwargs, size, seed=0):
    c_in = channels[0]
    first = kwargs.get("data_format") == "channels_first"
    shape = (2, c_in, *size) if first else (2, *size, c_in)
    return np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float32)


def _function_kwargs(kwargs):
    """The function's keywords among a module's arguments."""
    shape_only = ("kernel_size", "depth_multiplier", "use_bias")
    return {k: v for k, v in kwargs.items() if k not in shape_only}


def _expected(name, x, params, kwargs):
    kernels = (
        (params["depthwise_kernel"], params["pointwise_kernel"])
        if name.startswith("Separable")
        else (params["kernel"],)
    )
    return FUNCTIONS[name](x, *kernels, params.get("bias"), **_function_kwargs(kwargs))


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_nnx_module_is_its_function(row):
    name, channels, kwargs, size = row
    module = getattr(jnnx, name)(*channels, **kwargs, **_inits(name), rngs=nnx.Rngs(0))
    x = _input(channels, kwargs, size)
    names = ("kernel", "depthwise_kernel", "pointwise_kernel", "bias")
    params = {
        key: getattr(module, key)[...]
        for key in names
        if getattr(module, key, None) is not None
    }
    expected = np.asarray(_expected(name, x, params, kwargs))
    np.testing.assert_array_equal(module(x), expected)


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_linen_module_is_its_function(row):
    name, channels, kwargs, size = row
    features = {} if name.startswith("Depthwise") else dict(features=channels[1])
    module = getattr(jlinen, name)(**features, **kwargs, **_inits(name))
    x = _input(channels, kwargs, size)
    variables = module.init(jax.random.key(0), x)
    expected = np.asarray(_expected(name, x, variables["params"], kwargs))
    np.testing.assert_array_equal(module.apply(variables, x), expected)


@pytest.mark.parametrize(
    "name, channels, kernel_size, size",
    [
        ("Conv1D", (4, 6), 3, (7,)),
        ("Conv3DTranspose", (4, 2), (2, 1, 2), (3, 2, 3)),
    ],
)
def test_unbatched_and_more_batch_axes(name, channels, kernel_size, size):
    """As Flax's modules: an unbatched input gives an unbatched output, and
    more leading batch axes are flattened for the call and restored."""
    module = getattr(jnnx, name)(
        *channels, kernel_size, **_inits(name), rngs=nnx.Rngs(0)
    )
    x = _input(channels, {}, size)
    expected = np.asarray(module(x))
    np.testing.assert_array_equal(module(x[0]), expected[0])
    y = module(x.reshape(1, 2, *x.shape[1:]))
    np.testing.assert_array_equal(y, expected.reshape(1, 2, *expected.shape[1:]))


def test_every_module_is_exported():
    kinds = ("Conv{}D", "Conv{}DTranspose", "DepthwiseConv{}D", "SeparableConv{}D")
    names = {kind.format(rank) for kind in kinds for rank in (1, 2, 3)}
    for frontend in (jnnx, jlinen):
        assert names <= set(frontend.__all__)
        for name in names:
            assert getattr(frontend, name).__name__ == name


def test_module_signatures_follow_the_2d_ones():
    """A module of another rank takes the 2D module's arguments; the 2D
    modules keep theirs, `input_dilation` (forward kinds) added last (a Linen
    module's fields are positional too)."""

    def parameters(cls):
        return list(inspect.signature(cls).parameters)

    for kind in ("Conv{}D", "Conv{}DTranspose", "DepthwiseConv{}D", "SeparableConv{}D"):
        two = parameters(getattr(jnnx, kind.format(2)))
        for rank in (1, 3):
            assert parameters(getattr(jnnx, kind.format(rank))) == two
        assert ("input_dilation" in two) == ("Transpose" not in kind)
        assert two[-2:] == (
            ["impl", "rngs"] if "Transpose" in kind else ["input_dilation", "rngs"]
        )
    assert parameters(jnnx.Conv2D) == [
        "in_features", "out_features", "kernel_size", "strides", "padding",
        "padding_mode", "dilation_rate", "groups", "use_bias", "data_format",
        "dtype", "param_dtype", "precision", "preferred_element_type",
        "kernel_init", "bias_init", "impl", "input_dilation", "rngs",
    ]  # fmt: skip
    fields = list(jlinen.Conv2D.__dataclass_fields__)
    assert fields[:4] == ["features", "kernel_size", "strides", "padding"]
    assert fields.index("input_dilation") == fields.index("impl") + 1


# (module, keyword arguments, exception, message): refused when built, named.
BAD = [
    ("Conv1D", dict(kernel_size=(3, 3)), TypeError,
     r"`kernel_size` \(=\(3, 3\)\) must be an int or a sequence of 1 int"),
    ("Conv3D", dict(strides=(1, 2)), TypeError,
     r"`strides` \(=\(1, 2\)\) must be an int or a sequence of 3 ints"),
    ("Conv3D", dict(input_dilation=(1, 0, 1)), ValueError,
     r"`input_dilation` \(=\(1, 0, 1\)\) must be positive"),
    ("Conv1DTranspose", dict(padding="causal"), ValueError,
     r"`padding` \(='causal'\) is a forward convolution's rule"),
    ("Conv3DTranspose", dict(strides=2, output_padding=(1, 1)), TypeError,
     r"`output_padding` \(=\(1, 1\)\) must be None, an int or a sequence of 3"),
    ("DepthwiseConv1D", dict(padding_mode="reflect", input_dilation=2), ValueError,
     r"`padding_mode` \(='reflect'\) .* `input_dilation` \(=\(2,\)\)"),
    ("SeparableConv3D", dict(padding=((1, 1), (0, 0))), ValueError, r"`padding`"),
    ("Conv1D", dict(groups=4), ValueError,
     r"`out_features` \(=6\) must be divisible by `groups` \(=4\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, kwargs, exc, match", BAD, ids=[f"{b[0]}-{next(iter(b[1]))}" for b in BAD]
)
def test_bad_arguments_raise_at_construction(name, kwargs, exc, match):
    channels = (4,) if name.startswith("Depthwise") else (4, 6)
    kwargs = dict(dict(kernel_size=3), **kwargs)
    with pytest.raises(exc, match=match):
        getattr(jnnx, name)(*channels, **kwargs, rngs=nnx.Rngs(0))
    features = {} if name.startswith("Depthwise") else dict(features=6)
    with pytest.raises(exc, match=match.replace("out_features", "features")):
        getattr(jlinen, name)(**features, **kwargs)


def test_input_of_another_rank_is_refused_by_name():
    """Fewer axes than the module's rank: the function's message, with the
    layout the module takes (more axes are leading batch axes, as in Flax)."""
    conv = jnnx.Conv1D(4, 6, 3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"`x` must have rank 3 \(N, W, C_in\) or rank 2 without"
    ):
        conv(jnp.ones((4,)))
    up = jlinen.Conv3DTranspose(2, 3, data_format="channels_first")
    with pytest.raises(
        ValueError,
        match=r"`x` must have rank 5 \(N, C_in, D, H, W\) or rank 4 without .* "
        r"got shape \(4, 5, 5\)",
    ):
        up.init(jax.random.key(0), jnp.ones((4, 5, 5)))


def test_weights_of_another_rank_are_refused_by_name():
    """A 1D layer's weights in a 2D module: the call, `to_keras` and
    `to_torch` name the kernel and the shape they expected, and a Linen
    module's variables another rank's module made are refused by Flax."""
    conv1d = torch.nn.Conv1d(2, 4, 3)
    one = jnnx.from_torch(conv1d)
    assert type(one) is jnnx.Conv1D and one.kernel.shape == (3, 2, 4)
    two = jnnx.Conv2D(2, 4, 3, rngs=nnx.Rngs(0))
    nnx.update(two, nnx.state(one))
    with pytest.raises(
        ValueError, match=r"`kernel` must have rank 4 \(KH, KW, C_in // groups"
    ):
        two(jnp.ones((1, 5, 5, 2)))
    for export in (jconv.to_keras, jconv.to_torch):
        with pytest.raises(
            ValueError,
            match=r"`kernel` shape \(3, 2, 4\) is not the \(3, 3, 2, 4\) of this "
            r"Conv2D \(KH, KW, C_in // groups, C_out\)",
        ):
            export(two)

    linen_one, variables = jlinen.from_torch(conv1d)
    assert type(linen_one) is jlinen.Conv1D
    linen_two = jlinen.Conv2D(4, 3)
    for export in (jconv.to_keras, jconv.to_torch):
        with pytest.raises(
            ValueError,
            match=r"`kernel` shape \(3, 2, 4\) has rank 3; a Conv2D's has rank 4 "
            r"\(KH, KW, C_in // groups, C_out\)",
        ):
            export(linen_two, variables)
    with pytest.raises(flax.errors.ScopeParamShapeError, match="kernel"):
        linen_two.apply(variables, jnp.ones((1, 5, 5, 2)))
    # A separable module's second kernel is checked too.
    sep = jlinen.SeparableConv1D(4, 3)
    params = dict(sep.init(jax.random.key(0), jnp.ones((1, 5, 2)))["params"])
    params["pointwise_kernel"] = jnp.ones((1, 1, 2, 4))
    with pytest.raises(
        ValueError,
        match=r"`pointwise_kernel` shape \(1, 1, 2, 4\) is not the \(1, 2, 4\) "
        r"of this SeparableConv1D \(1, C_in \* depth_multiplier, C_out\)",
    ):
        jconv.to_keras(sep, params)
