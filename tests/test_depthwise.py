"""`depthwise_conv2d`: Keras `DepthwiseConv2D` live, the float64 reference
(beyond Keras: strides with dilation, explicit pads, padding modes),
gradients."""

import functools

import keras
import pytest
from _data import pick, random_arrays
from _family import Family
from _grid import Grid, case_id, pair, table
from _keras import assert_matches_keras, layer_output
from _tol import assert_matches_reference
from reference import reference_depthwise_conv2d

import jconv

C_IN = 3

AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (2, 3)],
    "strides": [1, 2, (1, 2)],
    "dilation_rate": [1, 2],
    "padding": ["valid", "same", "same_lower", "full", ((0, 2), (1, 0))],
    "depth_multiplier": [1, 2],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(6, 6), (7, 6)],
    "bias": [False, True],
}


def _fits(case):
    d = pair(case["dilation_rate"])
    # Unpadded axes need the dilated kernel to fit; explicit pads here add at most 2.
    return all(
        (k - 1) * dd + 1 <= size for k, dd, size in zip(case["kernel"], d, case["hw"])
    )


GRID = Grid(AXES, _fits)


def make_arrays(case, *, integer=False, seed=0, batch=2):
    m = case["depth_multiplier"]
    k_shape = (*case["kernel"], C_IN, m)
    return random_arrays(
        case, C_IN, k_shape, C_IN * m, integer=integer, seed=seed, batch=batch
    )


def kwargs(case):
    return pick(case, ("strides", "padding", "dilation_rate", "data_format"))


FAMILY = Family(jconv.depthwise_conv2d, reference_depthwise_conv2d, make_arrays, kwargs)
DEFAULT_CASES = GRID.sample(14, seed=21)
test_default_grid_covers_every_value, test_matches_reference = GRID.reference_tests(
    FAMILY.check(float64=False), DEFAULT_CASES, GRID.sample(200, seed=22)
)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_reference(padding_mode, impl):
    case = dict(DEFAULT_CASES[0], padding=((2, 1), (0, 2)), bias=True)
    x, kernel, bias = make_arrays(case, seed=3)
    ours = functools.partial(jconv.depthwise_conv2d, impl=impl)
    reference = reference_depthwise_conv2d
    kw = dict(kwargs(case), padding_mode=padding_mode)
    assert_matches_reference(ours, reference, x, kernel, bias, float64=False, **kw)


# --- Keras DepthwiseConv2D, live --------------------------------------------

KERAS_CASES = GRID.sample(10, seed=23, keras_only=True)


def keras_depthwise(x, kernel, bias, case):
    return layer_output(
        keras.layers.DepthwiseConv2D,
        x,
        kernel,
        bias,
        kernel_size=case["kernel"],
        depth_multiplier=case["depth_multiplier"],
        **kwargs(case),
    )


def test_keras_grid_covers_multipliers_formats_and_paddings():
    for key in ("depth_multiplier", "data_format", "strides", "dilation_rate"):
        assert {repr(c[key]) for c in KERAS_CASES} == {repr(v) for v in AXES[key]}
    assert {c["padding"] for c in KERAS_CASES} == {"valid", "same"}


@pytest.mark.parametrize("case", KERAS_CASES, ids=case_id)
def test_matches_keras(case, impl):
    assert_matches_keras(FAMILY, keras_depthwise, case, impl)


# --- Gradients ----------------------------------------------------------------

(GRAD_CASE,) = table(
    AXES,
    # kernel, strides, dilation_rate, padding, depth_multiplier, data_format, hw, bias
    ((2, 3), (2, 1), (1, 2), "same", 2, "channels_first", (5, 6), True),
)


def test_check_grads(impl):
    FAMILY.check_grads(GRAD_CASE, impl, batch=1)


def test_unbatched_and_jit(impl):
    FAMILY.assert_batch_consistent(GRAD_CASE, impl, seed=7, vmap=False)
