"""Keras layers (TensorFlow backend, live) to jconv's Flax modules and back,
for every layer Keras has: `Conv1D`/`2D`/`3D`, their transposed kinds,
`DepthwiseConv1D`/`2D` (the separable ones: `test_separable_conv1d_round_trip`
and test_separable.py).

Each case compares outputs twice: small-integer data, where every product and
partial sum is exact in float32, so the two must be equal to the last bit; and
standard-normal data, where summation order differs between XLA and TensorFlow
(and between CPUs): within `2 * gamma_n * sum|products|` per element, n the
products in each sum, the sum of absolute products being the same layer's
output with absolute weights on the absolute input (`_tol.py`).
`channels_first` layers run through XLA on every CPU (`_keras.py`).
"""

import ast
import functools
import inspect
import math

import jax
import keras
import numpy as np
import pytest
from _keras import NO_KERAS_EQUIVALENT, assert_same_layer, call
from _tol import assert_sums_close
from flax import nnx

import jconv
import jconv.linen as jlinen
import jconv.nnx as jnnx
from jconv import _keras_io

# (Keras layer constructor, keyword arguments, input shape). Channels-first
# cases keep the output width different from C_out: there Keras' TF backend
# adds the bias along the width (see test_keras.py).
CASES = [
    (keras.layers.Conv2D, dict(filters=6, kernel_size=3, padding="same"), (7, 7, 4)),
    (
        keras.layers.Conv2D,
        dict(filters=6, kernel_size=(2, 2), strides=2, padding="same", groups=2),
        (7, 8, 4),
    ),
    (
        keras.layers.Conv2D,
        dict(filters=4, kernel_size=(4, 3), strides=(2, 1), padding="same"),
        (9, 8, 2),
    ),
    (
        keras.layers.Conv2D,
        dict(filters=5, kernel_size=3, dilation_rate=2, data_format="channels_first"),
        (3, 9, 8),
    ),
    (keras.layers.Conv2D, dict(filters=4, kernel_size=2, use_bias=False), (6, 6, 3)),
    (
        keras.layers.Conv2DTranspose,
        dict(filters=3, kernel_size=3, strides=2, padding="same"),
        (4, 5, 4),
    ),
    (
        keras.layers.Conv2DTranspose,
        dict(filters=3, kernel_size=(4, 3), strides=2, padding="valid"),
        (4, 4, 2),
    ),
    (
        keras.layers.Conv2DTranspose,
        dict(
            filters=2,
            kernel_size=3,
            strides=(2, 3),
            padding="same",
            output_padding=(0, 2),
        ),
        (3, 4, 3),
    ),
    (
        keras.layers.Conv2DTranspose,
        dict(filters=4, kernel_size=2, dilation_rate=2),
        (5, 5, 3),
    ),
    (
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=3, padding="same", depth_multiplier=2),
        (7, 7, 3),
    ),
    (
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=(2, 3), strides=2, padding="same"),
        (8, 7, 4),
    ),
    (
        keras.layers.DepthwiseConv2D,
        dict(
            kernel_size=3,
            dilation_rate=(2, 1),
            depth_multiplier=3,
            data_format="channels_first",
        ),
        (2, 8, 9),
    ),
    # Every other rank Keras has: one case of each layer in the default run
    # (tests/test_ranks_keras.py cross-checks their answers on a grid), the
    # others with the large grids (`-m slow`).
    (
        keras.layers.Conv1D,
        dict(filters=6, kernel_size=3, padding="causal", dilation_rate=2),
        (9, 4),
    ),
    pytest.param(
        (
            keras.layers.Conv1D,
            dict(filters=4, kernel_size=2, strides=2, padding="same", groups=2),
            (8, 4),
        ),
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (
            keras.layers.Conv1D,
            dict(filters=5, kernel_size=3, strides=2, data_format="channels_first"),
            (3, 9),
        ),
        marks=pytest.mark.slow,
    ),
    (
        keras.layers.Conv3D,
        dict(filters=4, kernel_size=(2, 3, 2), strides=(1, 2, 1), padding="same"),
        (4, 5, 4, 3),
    ),
    pytest.param(
        (
            keras.layers.Conv3D,
            dict(
                filters=3,
                kernel_size=2,
                dilation_rate=(1, 2, 1),
                use_bias=False,
                data_format="channels_first",
            ),
            (2, 4, 5, 4),
        ),
        marks=pytest.mark.slow,
    ),
    (
        keras.layers.Conv1DTranspose,
        dict(filters=3, kernel_size=3, strides=2, padding="same"),
        (5, 4),
    ),
    pytest.param(
        (
            keras.layers.Conv1DTranspose,
            dict(filters=2, kernel_size=4, strides=3, output_padding=1),
            (4, 3),
        ),
        marks=pytest.mark.slow,
    ),
    (
        keras.layers.Conv3DTranspose,
        dict(filters=2, kernel_size=(2, 3, 2), strides=(2, 1, 2), padding="same"),
        (3, 4, 3, 3),
    ),
    pytest.param(
        (
            keras.layers.Conv3DTranspose,
            dict(filters=3, kernel_size=2, strides=2, data_format="channels_first"),
            (2, 2, 3, 2),
        ),
        marks=pytest.mark.slow,
    ),
    (
        keras.layers.DepthwiseConv1D,
        dict(kernel_size=3, padding="same", depth_multiplier=2),
        (7, 3),
    ),
    pytest.param(
        (
            keras.layers.DepthwiseConv1D,
            dict(
                kernel_size=2, strides=2, dilation_rate=1, data_format="channels_first"
            ),
            (3, 9),
        ),
        marks=pytest.mark.slow,
    ),
]


def _id(case):
    cls, kwargs, _ = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def _inputs(shape, *, integer, seed=0):
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(-3, 4, (2, *shape)).astype(np.float32)
    return rng.standard_normal((2, *shape)).astype(np.float32)


def _keras_layer(cls, kwargs, shape, *, seed=0):
    """A built layer with small-integer weights (exact products and sums)."""
    layer = cls(**kwargs)
    layer.build((None, *shape))
    rng = np.random.default_rng(seed + 1)
    layer.set_weights(
        [rng.integers(-3, 4, w.shape).astype(np.float32) for w in layer.get_weights()]
    )
    return layer


def _terms(layer) -> int:
    """Products per output sum of a Keras layer of any rank (`_tol.conv_terms`
    for its kernel `(*K, ...)`): `prod(K) * C_in / groups` for a convolution,
    at most `prod(K) * C_in` for a transposed one, `prod(K)` for a depthwise
    one; +1 for the bias."""
    kernel, *bias = layer.get_weights()
    taps = math.prod(kernel.shape[:-2])
    name = type(layer).__name__
    if name.startswith("Depthwise"):
        products = taps
    elif name.endswith("Transpose"):
        products = taps * kernel.shape[-1]
    else:
        products = taps * kernel.shape[-2]
    return products + len(bias)


def _check(y, expected, layer, x, integer=False):
    """`y` equals `expected`, the output of `layer` on `x`: exactly on integer
    data, within the float32 bound for the layer's sums otherwise."""
    y, expected = np.asarray(y), np.asarray(expected)
    assert y.shape == expected.shape
    if integer:
        np.testing.assert_array_equal(y, expected)
        return
    absolute = type(layer).from_config(layer.get_config())
    absolute.build(x.shape)
    absolute.set_weights([np.abs(w) for w in layer.get_weights()])
    assert_sums_close(y, expected, call(absolute, np.abs(x)), _terms(layer))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_from_keras_matches_keras(case, impl):
    cls, kwargs, shape = case
    layer = _keras_layer(cls, kwargs, shape)
    module = jnnx.from_keras(layer, impl=impl, precision="highest")
    assert type(module).__name__ == cls.__name__
    linen_module, variables = jlinen.from_keras(layer, impl=impl, precision="highest")
    assert type(linen_module).__name__ == cls.__name__
    for integer in (True, False):
        x = _inputs(shape, integer=integer)
        expected = call(layer, x)
        _check(module(x), expected, layer, x, integer)
        _check(linen_module.apply(variables, x), expected, layer, x, integer)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_to_keras_matches_module(case):
    """Keras layer -> NNX module -> new Keras layer, and the Linen path: the
    layer built by `to_keras` has the same configuration and weights, and the
    same outputs as the module it came from."""
    cls, kwargs, shape = case
    layer = _keras_layer(cls, kwargs, shape)
    module = jnnx.from_keras(layer)
    linen_module, variables = jlinen.from_keras(layer)
    x = _inputs(shape, integer=True)
    expected = np.asarray(module(x))
    assert type(layer) is cls
    for back in (jnnx.to_keras(module), jlinen.to_keras(linen_module, variables)):
        assert_same_layer(back, layer, x, expected)


def test_to_keras_from_fresh_modules():
    """Modules built in Flax (random initial weights) export to Keras layers
    that compute the same thing."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    modules = [
        jnnx.Conv2D(4, 6, (3, 2), strides=2, groups=2, rngs=nnx.Rngs(0)),
        jnnx.Conv2DTranspose(4, 3, 3, strides=2, padding="valid", rngs=nnx.Rngs(0)),
        jnnx.DepthwiseConv2D(
            4, 3, depth_multiplier=2, use_bias=False, rngs=nnx.Rngs(0)
        ),
    ]
    for module in modules:
        layer = jnnx.to_keras(module)
        _check(module(x), call(layer, x), layer, x)
    up = jlinen.Conv2DTranspose(3, (2, 3), 2, padding="same", output_padding=1)
    variables = up.init(jax.random.key(0), x)
    layer = jlinen.to_keras(up, variables)
    _check(up.apply(variables, x), call(layer, x), layer, x)


def test_to_keras_from_fresh_modules_of_every_rank():
    """The same for 1D and 3D modules: the Keras layer of each one's class
    name computes what it does."""
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((2, 9, 4)).astype(np.float32)
    volume = rng.standard_normal((2, 4, 5, 3, 4)).astype(np.float32)
    modules = [
        (jnnx.Conv1D(4, 6, 3, padding="causal", groups=2, rngs=nnx.Rngs(0)), signal),
        (jnnx.Conv1DTranspose(4, 3, 2, strides=2, rngs=nnx.Rngs(0)), signal),
        (jnnx.DepthwiseConv1D(4, 3, depth_multiplier=2, rngs=nnx.Rngs(0)), signal),
        (jnnx.Conv3D(4, 2, (2, 3, 1), strides=(1, 2, 1), rngs=nnx.Rngs(0)), volume),
        (jnnx.Conv3DTranspose(4, 2, 2, padding="valid", rngs=nnx.Rngs(0)), volume),
    ]
    for module, x in modules:
        layer = jnnx.to_keras(module)
        assert type(layer).__name__ == type(module).__name__
        _check(module(x), call(layer, x), layer, x)
    conv = jlinen.Conv3D(3, 2, padding="valid", data_format="channels_first")
    x = volume.transpose(0, 4, 1, 2, 3)
    variables = conv.init(jax.random.key(0), x)
    layer = jlinen.to_keras(conv, variables)
    assert layer.padding == "valid" and layer.data_format == "channels_first"
    _check(conv.apply(variables, x), call(layer, x), layer, x)


def test_separable_conv1d_round_trip():
    """Keras' `SeparableConv1D` -> NNX and Linen modules -> Keras: equal
    outputs on small-integer data (exact), the same configuration and
    weights back."""
    for kwargs, shape in [
        (dict(filters=4, kernel_size=3, padding="same", depth_multiplier=2), (8, 3)),
        (dict(filters=2, kernel_size=2, strides=2, use_bias=False), (9, 3)),
    ]:
        layer = _keras_layer(keras.layers.SeparableConv1D, kwargs, shape)
        module = jnnx.from_keras(layer)
        linen_module, variables = jlinen.from_keras(layer)
        assert type(module) is jnnx.SeparableConv1D
        assert type(linen_module) is jlinen.SeparableConv1D
        assert module.pointwise_kernel.shape == (1, 3 * layer.depth_multiplier,
                                                 layer.filters)  # fmt: skip
        x = _inputs(shape, integer=True)
        expected = call(layer, x)
        np.testing.assert_array_equal(module(x), expected)
        np.testing.assert_array_equal(linen_module.apply(variables, x), expected)
        for back in (jnnx.to_keras(module), jlinen.to_keras(linen_module, variables)):
            assert_same_layer(back, layer, x, expected)


def test_from_keras_refuses():
    unbuilt = keras.layers.Conv2D(4, 3)
    with pytest.raises(ValueError, match=r"`layer` \(Conv2D '.*'\) is not built"):
        jnnx.from_keras(unbuilt)
    relu = keras.layers.Conv2D(4, 3, activation="relu")
    relu.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"has `activation` \(='relu'\); jconv"):
        jnnx.from_keras(relu)
    dense = keras.layers.Dense(4)
    dense.build((None, 5, 2))
    with pytest.raises(
        TypeError,
        match=r"`layer` \(=<Dense.*\) must be a keras.layers convolution: "
        r"Conv1D, Conv2D, Conv3D, Conv1DTranspose, .*, SeparableConv2D",
    ):
        jlinen.from_keras(dense)
    layer = keras.layers.Conv2D(4, 3)
    layer.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"`impl` \(='cuda'\) must be one of"):
        jnnx.from_keras(layer, impl="cuda")


def test_to_keras_refuses():
    rngs = nnx.Rngs(0)
    conv = functools.partial(jnnx.Conv2D, 2, 4, 3, rngs=rngs)
    up = functools.partial(jnnx.Conv2DTranspose, 2, 4, 3, rngs=rngs)
    refused = [(conv(**kwargs), match) for kwargs, match in NO_KERAS_EQUIVALENT] + [
        (
            up(groups=2),
            r"`groups` \(=2\) has no Keras equivalent: Keras' Conv2DTranspose",
        ),
        (
            up(padding_mode="circular"),
            r"`padding_mode` \(='circular'\) has no Keras equivalent",
        ),
        (
            conv(strides=2, dilation_rate=2),
            r"`strides > 1` not supported in conjunction with `dilation_rate > 1`",
        ),
    ]
    # Other ranks: what their Keras layers lack.
    refused += [
        (
            jnnx.Conv1D(2, 4, 3, input_dilation=2, rngs=rngs),
            r"`input_dilation` \(=2\) has no Keras equivalent",
        ),
        (
            jnnx.DepthwiseConv1D(2, 3, padding="causal", rngs=rngs),
            r"`padding` \(='causal'\) has no Keras equivalent: Keras' "
            r"DepthwiseConv1D takes 'valid' or 'same'",
        ),
        (
            jnnx.Conv3D(2, 4, 3, padding="full", rngs=rngs),
            r"`padding` \(='full'\) has no Keras equivalent: Keras' Conv3D takes "
            r"'valid' or 'same'",
        ),
        (
            jnnx.Conv1D(2, 4, 3, padding="same_lower", rngs=rngs),
            r"Keras' Conv1D takes 'valid', 'same' or 'causal'",
        ),
        (
            jnnx.Conv3DTranspose(2, 4, 3, groups=2, rngs=rngs),
            r"`groups` \(=2\) has no Keras equivalent: Keras' Conv3DTranspose",
        ),
    ]
    for module, match in refused:
        with pytest.raises(ValueError, match=match):
            jnnx.to_keras(module)
    for module in (
        jnnx.DepthwiseConv3D(2, 3, rngs=rngs),
        jnnx.SeparableConv3D(2, 4, 3, rngs=rngs),
    ):
        name = type(module).__name__
        with pytest.raises(
            TypeError,
            match=rf"`module` \(={name}\) has no Keras counterpart: Keras' "
            rf"convolution layers are Conv1D, .*, SeparableConv2D",
        ):
            jnnx.to_keras(module)
    linen_conv = jlinen.Conv2D(4, 3)
    with pytest.raises(TypeError, match=r"pass `variables`"):
        jlinen.to_keras(linen_conv)
    with pytest.raises(ValueError, match=r"`variables` has no 'kernel'"):
        jlinen.to_keras(linen_conv, {"params": {}})
    with pytest.raises(TypeError, match=r"`module` \(=Conv\) must be a jconv"):
        jnnx.to_keras(nnx.Conv(2, 4, 3, rngs=rngs))


def test_layers_flow_one_way():
    """`_keras_io` works on layer descriptions and imports no Flax frontend;
    one `to_keras` takes a module of either frontend."""
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(_keras_io))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            imported.add(node.module)
    assert not {"jconv.nnx", "jconv.linen", "flax"} & imported, imported
    assert jnnx.to_keras is jlinen.to_keras is jconv.to_keras
    module = jnnx.Conv2D(2, 4, 3, rngs=nnx.Rngs(0))
    linen_module = jlinen.Conv2D(4, 3)
    variables = linen_module.init(jax.random.key(0), np.ones((1, 5, 5, 2)))
    assert jlinen.to_keras(module).filters == 4
    assert jnnx.to_keras(linen_module, variables).filters == 4
