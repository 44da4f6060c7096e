"""Live cross-check against `keras.layers.Conv2D` on the TensorFlow backend.

Two comparisons per case:
- small-integer data, where every product and partial sum is exact in float32:
  jconv must equal Keras bit for bit, whatever order either sums in;
- standard-normal data at `precision="highest"`: summation order differs
  between XLA and TensorFlow/oneDNN, so results agree to a few float32 ulps of
  the largest partial sum (rtol = atol = 1e-5 on unit-scale data, at most
  5*5*2 = 50 products a sum).
"""

import keras
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from _grid import case_id, sample

import jconv

KERAS_CASES = sample(40, seed=3, keras_only=True)
# The grid always holds the cases the issue names explicitly.
KERAS_CASES += [
    dict(
        kernel=(2, 2),
        strides=2,
        dilation_rate=1,
        padding="same",
        groups=1,
        data_format="channels_last",
        hw=(7, 7),
        bias=True,
    ),
    dict(
        kernel=(4, 4),
        strides=2,
        dilation_rate=1,
        padding="same",
        groups=2,
        data_format="channels_last",
        hw=(8, 8),
        bias=False,
    ),
    dict(
        kernel=(3, 3),
        strides=1,
        dilation_rate=2,
        padding="same",
        groups=2,
        data_format="channels_first",
        hw=(8, 7),
        bias=True,
    ),
    dict(
        kernel=(2, 3),
        strides=(1, 2),
        dilation_rate=1,
        padding="valid",
        groups=1,
        data_format="channels_first",
        hw=(7, 8),
        bias=True,
    ),
]


def test_backend_is_tensorflow():
    # Keras on JAX would compare lax with itself.
    assert keras.backend.backend() == "tensorflow"


def keras_bias_lands_on_width(case, out_shape, bias) -> bool:
    """Keras 3's TensorFlow backend turns the layer's bias add into
    `tf.nn.bias_add`, guessing the layout from shapes alone
    (`keras/src/backend/tensorflow/numpy.py`, `add`): with channels_first and an
    output width equal to C_out it adds the bias along the width axis. jconv
    follows the layer's documented meaning (bias per output channel); the float64
    reference agrees with jconv there (test_reference.py)."""
    return (
        bias is not None
        and case["data_format"] == "channels_first"
        and out_shape[-1] == out_shape[1]
    )


def keras_conv2d(x, kernel, bias, case):
    layer = keras.layers.Conv2D(
        filters=kernel.shape[-1],
        kernel_size=case["kernel"],
        use_bias=bias is not None,
        dtype="float32",
        **conv_kwargs(case),
    )
    layer.build(x.shape)
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return np.asarray(layer(x))


@pytest.mark.parametrize("impl", ["lax", "einsum"])
@pytest.mark.parametrize("case", KERAS_CASES, ids=case_id)
def test_matches_keras(case, impl):
    for integer in (True, False):
        x, kernel, bias = make_arrays(case, integer=integer, seed=4)
        expected = keras_conv2d(x, kernel, bias, case)
        if keras_bias_lands_on_width(case, expected.shape, bias):
            # Move Keras' bias from the width axis to the channel axis.
            expected = expected - bias + bias[:, None, None]
        y = np.asarray(
            jconv.conv2d(
                x, kernel, bias, precision="highest", impl=impl, **conv_kwargs(case)
            )
        )
        assert y.shape == expected.shape
        if integer:
            np.testing.assert_array_equal(y, expected)
        else:
            np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_document_example_matches_keras():
    from jconv import document

    image = np.asarray(document.IMAGE, np.float32)[None, :, :, None]
    kernel = np.asarray(document.KERNEL, np.float32)[:, :, None, None]
    for padding in ("valid", "same"):
        case = dict(
            kernel=(3, 3),
            strides=1,
            dilation_rate=1,
            padding=padding,
            groups=1,
            data_format="channels_last",
        )
        expected = keras_conv2d(image, kernel, None, case)
        for impl in ("lax", "einsum"):
            y = jconv.conv2d(image, kernel, padding=padding, impl=impl)
            np.testing.assert_array_equal(y, expected)


def test_keras_channels_first_bias_quirk():
    """The one place Keras (TF backend) and jconv differ, pinned: where the
    output width equals C_out, Keras adds the bias along the width; if Keras
    ever fixes it, the two agree and this test still passes."""
    case = dict(
        kernel=(2, 2),
        strides=1,
        dilation_rate=(2, 1),
        padding="valid",
        groups=1,
        data_format="channels_first",
        hw=(7, 7),
        bias=True,
    )
    x, kernel, bias = make_arrays(case, integer=True, seed=4)
    expected = keras_conv2d(x, kernel, bias, case)
    assert keras_bias_lands_on_width(case, expected.shape, bias)
    y = np.asarray(jconv.conv2d(x, kernel, bias, **conv_kwargs(case)))
    no_bias = np.asarray(jconv.conv2d(x, kernel, **conv_kwargs(case)))
    np.testing.assert_array_equal(y, no_bias + bias[:, None, None])
    keras_fixed = np.array_equal(expected, y)
    keras_quirk = np.array_equal(expected, no_bias + bias)
    assert keras_fixed or keras_quirk
