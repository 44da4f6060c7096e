"""Live cross-check against `keras.layers.Conv2D` on the TensorFlow backend.

Two comparisons per case:
- small-integer data, where every product and partial sum is exact in float32:
  jconv must equal Keras bit for bit, whatever order either sums in;
- standard-normal data at `precision="highest"`: summation order differs
  between XLA and TensorFlow (and between CPUs), so the two agree within
  `2 * gamma_n * sum|products|` per element, n the products in each sum
  (`_tol.py`).
`channels_first` layers run through XLA on every CPU (`_keras.py`).
"""

import keras
import numpy as np
import pytest
from _data import conv_kwargs, make_arrays
from _family import CONV2D
from _grid import AXES, case_id, keras_accepts, sample, table, uncovered
from _keras import assert_matches_keras, bias_lands_on_width, layer_output

import jconv

KERAS_CASES = sample(22, seed=3, keras_only=True)
# The grid always holds the cases the issue names explicitly.
KERAS_CASES += table(
    AXES,
    # kernel, strides, dilation_rate, padding, groups, data_format, hw, bias
    ((2, 2), 2, 1, "same", 1, "channels_last", (7, 7), True),
    ((4, 4), 2, 1, "same", 2, "channels_last", (8, 8), False),
    ((3, 3), 1, 2, "same", 2, "channels_first", (8, 7), True),
    ((2, 3), (1, 2), 1, "valid", 1, "channels_first", (7, 8), True),
)


def test_grid_covers_every_value_keras_takes():
    # Keras takes "valid" and "same" only: every other value of every axis.
    keras_axes = dict(AXES, padding=["valid", "same"])
    assert all(keras_accepts(c) for c in KERAS_CASES)
    assert uncovered(KERAS_CASES, keras_axes) == {}


def test_backend_is_tensorflow():
    # Keras on JAX would compare lax with itself. The one backend check: every
    # Keras reference goes through `_keras.py`.
    assert keras.backend.backend() == "tensorflow"


def keras_conv2d(x, kernel, bias, case):
    return layer_output(
        keras.layers.Conv2D,
        x,
        kernel,
        bias,
        filters=kernel.shape[-1],
        kernel_size=case["kernel"],
        **conv_kwargs(case),
    )


@pytest.mark.parametrize("case", KERAS_CASES, ids=case_id)
def test_matches_keras(case, impl):
    assert_matches_keras(CONV2D, keras_conv2d, case, impl)


def test_document_example_matches_keras(impl):
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
        y = jconv.conv2d(image, kernel, padding=padding, impl=impl)
        np.testing.assert_array_equal(y, expected)


def test_keras_channels_first_bias_quirk():
    """The one place Keras (TF backend) and jconv differ, pinned: where the
    output width equals C_out, Keras adds the bias along the width; if Keras
    ever fixes it, the two agree and this test still passes."""
    (case,) = table(
        AXES,
        # kernel, strides, dilation_rate, padding, groups, data_format, hw, bias
        ((2, 2), 1, (2, 1), "valid", 1, "channels_first", (7, 7), True),
    )
    x, kernel, bias = make_arrays(case, integer=True, seed=4)
    expected = keras_conv2d(x, kernel, bias, case)
    assert bias_lands_on_width(case["data_format"], expected.shape, bias)
    y = np.asarray(jconv.conv2d(x, kernel, bias, **conv_kwargs(case)))
    no_bias = np.asarray(jconv.conv2d(x, kernel, **conv_kwargs(case)))
    np.testing.assert_array_equal(y, no_bias + bias[:, None, None])
    keras_fixed = np.array_equal(expected, y)
    keras_quirk = np.array_equal(expected, no_bias + bias)
    assert keras_fixed or keras_quirk
