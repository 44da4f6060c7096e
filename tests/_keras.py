"""Keras layers on the TensorFlow backend, the reference, run alike on every CPU.

Without oneDNN, TensorFlow's CPU kernels lack two of the convolutions the tests
use: a `channels_first` (NCHW) convolution (`UnimplementedError: The Conv2D op
currently only supports the NHWC tensor format on the CPU`) and a transposed
convolution with dilation (`Conv2DBackpropInput`: `Current CPU implementations
do not yet support dilation rates larger than 1`). TensorFlow switches oneDNN on
by default only on CPUs with AVX-512 VNNI/BF16 or AMX, so elsewhere, or with
`TF_ENABLE_ONEDNN_OPTS=0`, such layers fail. Keras works around CPU ops that
TensorFlow lacks by compiling them with XLA (`keras/src/backend/tensorflow/
nn.py`, `conv`, for grouped and 3D channels_first convolutions); `call` does the
same for these two kinds of layer, on every machine whatever its oneDNN state.
The layer, its weights and the graph it builds (the bias add and its quirk
included) stay Keras' own; only the kernel that executes the convolution is
TensorFlow's XLA instead of oneDNN.
"""

import keras
import numpy as np
import tensorflow as tf
from _tol import assert_conv_close


def needs_xla(layer) -> bool:
    """Whether TensorFlow's CPU kernels without oneDNN lack `layer`'s op."""
    dilated = max(layer.dilation_rate) > 1
    transposed = isinstance(
        layer,
        (
            keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose,
        ),
    )
    return layer.data_format == "channels_first" or (transposed and dilated)


def call(layer, x) -> np.ndarray:
    """`layer(x)` as a NumPy array, compiled by XLA where `needs_xla`."""
    if needs_xla(layer):
        return np.asarray(tf.function(layer, jit_compile=True)(x))
    return np.asarray(layer(x))


def built(cls, weights, input_shape, **kwargs):
    """A `cls(**kwargs)` layer in float32, built for `input_shape`, holding
    `weights`."""
    layer = cls(dtype="float32", **kwargs)
    layer.build(input_shape)
    layer.set_weights(list(weights))
    return layer


def layer_output(cls, x, kernel, bias, **kwargs) -> np.ndarray:
    """A `cls(**kwargs)` layer holding `kernel` (and `bias`, if any), applied
    to `x`."""
    weights = [kernel] if bias is None else [kernel, bias]
    layer = built(cls, weights, x.shape, use_bias=bias is not None, **kwargs)
    return call(layer, x)


# What a layer exported by `to_keras` shares with the layer it came from.
EXPORTED_CONFIG = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "dilation_rate",
    "data_format",
    "use_bias",
    "groups",
    "output_padding",
    "depth_multiplier",
)


def assert_same_layer(back, layer, x, expected):
    """`back`, exported by `to_keras` from a module read from `layer`, is a
    layer of `layer`'s class with its configuration (`EXPORTED_CONFIG`, where
    the class has it) and weights, and gives `expected` on `x`, to the last
    bit."""
    assert type(back) is type(layer)
    config, original = back.get_config(), layer.get_config()
    for key in EXPORTED_CONFIG:
        assert config.get(key) == original.get(key), key
    for w_back, w in zip(back.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(w_back, w)
    np.testing.assert_array_equal(call(back, x), expected)


# Module arguments `to_keras` refuses whatever the module: what it says.
NO_KERAS_EQUIVALENT = [
    (dict(padding=1), r"`padding` \(=1\) has no Keras equivalent"),
    (dict(padding="full"), r"`padding` \(='full'\) has no Keras equivalent"),
    (
        dict(padding_mode="reflect"),
        r"`padding_mode` \(='reflect'\) has no Keras equivalent",
    ),
    (
        dict(dtype="bfloat16"),
        r"`dtype` \(='bfloat16'\) differs from the parameters' \(float32\)",
    ),
]


def bias_lands_on_width(data_format, out_shape, bias) -> bool:
    """Keras 3's TensorFlow backend turns a layer's bias add into
    `tf.nn.bias_add`, guessing the layout from shapes alone
    (`keras/src/backend/tensorflow/numpy.py`, `add`): with channels_first and an
    output width equal to C_out it adds the bias along the width axis. jconv
    follows the layer's documented meaning (bias per output channel); the
    float64 reference agrees with jconv there (test_reference.py)."""
    return (
        bias is not None
        and data_format == "channels_first"
        and out_shape[-1] == out_shape[1]
    )


def undo_bias_quirk(expected, bias, data_format):
    """Move Keras' bias from the width axis back to the channel axis where
    `bias_lands_on_width`."""
    if bias_lands_on_width(data_format, expected.shape, bias):
        return expected - bias + bias[:, None, None]
    return expected


def assert_matches_keras(family, keras_layer, case, impl):
    """`family.fn` (a `_family.Family`) with `impl` against `keras_layer(x,
    kernel, bias, case)` on `case`, twice: on small-integer data, where every
    sum is exact in float32, to the last bit; on standard-normal data at
    `precision="highest"` within `assert_conv_close`'s bound for the family's
    reference."""
    kwargs = family.kwargs(case)
    for integer in (True, False):
        x, kernel, bias = family.make_arrays(case, integer=integer, seed=4)
        expected = undo_bias_quirk(
            keras_layer(x, kernel, bias, case), bias, case["data_format"]
        )
        y = family.fn(x, kernel, bias, impl=impl, precision="highest", **kwargs)
        y = np.asarray(y)
        assert y.shape == expected.shape
        if integer:
            np.testing.assert_array_equal(y, expected)
        else:
            assert_conv_close(y, expected, family.reference, x, kernel, bias, **kwargs)
