"""`padding_mode` on `conv2d`: against `numpy.pad` (reflect/edge/wrap) followed
by a valid convolution, a hand-worked case, limits, gradients."""

import functools

import numpy as np
import pytest
from _checks import check_grads_float64
from _data import make_arrays, pick
from _family import Family
from _grid import Grid, pair
from _tol import assert_conv_close, assert_matches_reference
from reference import reference_conv2d

import jconv

MODES = ["reflect", "replicate", "circular"]
NUMPY_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}

AXES = {
    "padding_mode": MODES,
    "padding": ["same", "same_lower", "full", 2, ((0, 3), (2, 1))],
    "kernel": [(2, 2), (3, 3), (4, 3)],
    "strides": [1, 2, (1, 2)],
    "dilation_rate": [1, (2, 1)],
    "groups": [1, 2],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(5, 5), (6, 5)],
}


def _mode_allows(case) -> bool:
    """ "full" pads `span - 1` a side: reflect allows at most size - 1,
    circular at most size (test_errors checks the refusals)."""
    if case["padding"] != "full" or case["padding_mode"] == "replicate":
        return True
    slack = 1 if case["padding_mode"] == "reflect" else 0
    d = pair(case["dilation_rate"])
    return all(
        (k - 1) * dd <= size - slack
        for k, dd, size in zip(case["kernel"], d, case["hw"])
    )


GRID = Grid(AXES, _mode_allows)


def kwargs(case):
    keys = ("padding_mode", "padding", "strides", "dilation_rate", "groups")
    return pick(case, (*keys, "data_format"))


# `make_arrays` gives no bias: the grid has no "bias" axis.
FAMILY = Family(jconv.conv2d, reference_conv2d, make_arrays, kwargs)
DEFAULT_CASES = GRID.sample(12, seed=32)
test_default_grid_covers_every_value, test_matches_reference = GRID.reference_tests(
    FAMILY.check(float64=False), DEFAULT_CASES, GRID.sample(300, seed=33)
)


@pytest.mark.parametrize("mode", ["zeros", *MODES])
def test_equals_numpy_pad_then_valid_convolution(mode, impl):
    """The issue's definition, spelled out: `numpy.pad` by the explicit pads,
    then an unpadded convolution."""
    pads = ((2, 1), (0, 3))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 5, 6, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), *pads, (0, 0)), mode=NUMPY_MODES[mode])
    expected = reference_conv2d(padded, kernel, padding="valid")
    y = jconv.conv2d(
        x, kernel, padding=pads, padding_mode=mode, precision="highest", impl=impl
    )
    assert_conv_close(y, expected, reference_conv2d, padded, kernel)


def test_hand_worked_corners(impl):
    """A 1-pixel border around [[1, 2], [3, 4]] read back by a kernel that picks
    the top-left tap: the padded image itself, worked out by hand."""
    image = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)[None, :, :, None]
    pick = np.zeros((3, 3, 1, 1), np.float32)
    pick[0, 0] = 1.0
    full = lambda mode: np.asarray(
        jconv.conv2d(
            image, pick, padding=((1, 2), (1, 2)), padding_mode=mode, impl=impl
        )
    )[0, :, :, 0]
    # Output (i, j) reads padded pixel (i, j); a 2x2 image padded by 1 on
    # top/left and 2 on bottom/right is 5x5, read by a 3x3 kernel: 3x3 out.
    np.testing.assert_array_equal(full("zeros"), [[0, 0, 0], [0, 1, 2], [0, 3, 4]])
    np.testing.assert_array_equal(full("replicate"), [[1, 1, 2], [1, 1, 2], [3, 3, 4]])
    np.testing.assert_array_equal(full("circular"), [[4, 3, 4], [2, 1, 2], [4, 3, 4]])
    # Reflect pads at most size - 1 = 1 here.
    refl = jconv.conv2d(
        image,
        np.ones((1, 1, 1, 1), np.float32),
        padding=1,
        padding_mode="reflect",
        impl=impl,
    )[0, :, :, 0]
    np.testing.assert_array_equal(
        refl, [[4, 3, 4, 3], [2, 1, 2, 1], [4, 3, 4, 3], [2, 1, 2, 1]]
    )


def test_widest_allowed_pads(impl):
    """reflect: size - 1; circular: size; replicate: any width."""
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 1)).astype(np.float32)
    kernel = np.ones((2, 2, 1, 1), np.float32)
    for mode, pads in [
        ("reflect", ((2, 2), (3, 3))),
        ("circular", ((3, 3), (4, 4))),
        ("replicate", ((7, 7), (9, 9))),
    ]:
        assert_matches_reference(
            functools.partial(jconv.conv2d, impl=impl),
            reference_conv2d,
            x,
            kernel,
            None,
            float64=False,
            padding=pads,
            padding_mode=mode,
        )


def test_zeros_is_the_default():
    case = DEFAULT_CASES[0]
    x, kernel, _ = make_arrays(case)  # no bias
    kw = dict(kwargs(case), padding="same")
    del kw["padding_mode"]
    np.testing.assert_array_equal(
        jconv.conv2d(x, kernel, padding_mode="zeros", **kw),
        jconv.conv2d(x, kernel, **kw),
    )


@pytest.mark.parametrize(
    "mode,impl", [("reflect", "lax"), ("circular", "einsum")], ids=["lax", "einsum"]
)
def test_check_grads(mode, impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 3, 2))
    kernel = rng.standard_normal((3, 2, 2, 2))
    kw = dict(strides=(2, 1), padding="same", padding_mode=mode, impl=impl)
    check_grads_float64(lambda x, k: jconv.conv2d(x, k, **kw), (x, kernel))
