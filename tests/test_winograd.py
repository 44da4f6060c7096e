"""Winograd F(m x m, 3 x 3) (`jconv._winograd`) against the float64 reference.

Error bound: Winograd sums other products than the direct convolution (the
transformed tiles'), so the per-element bound of `_tol` does not hold. Each
test asserts instead, for the whole output,

    max |y - y_ref64| <= FACTOR[tile] * eps * max sum|products|

with eps the computing dtype's (float32 for float32 and narrower inputs) and
`sum|products|` the direct convolution of |x| and |kernel| (its largest
element: the output's scale). Measured, in float32, on these cases (seeds 0-3,
slow grid included): at most 1.2, 24 and 26 for tiles 2, 4, 6 (float64: 0.9,
10, 22); on (4, 28, 28, 64) x (3, 3, 64, 64): 0.9, 14 and 22 (direct lax:
1.9). `FACTOR` leaves a margin of at least 2.7.
"""

import dataclasses
import functools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checks import check_grads_float64
from _specs import conv2d_spec
from reference import reference_conv2d

from jconv._winograd import TILES, conv2d_winograd_core, matrices, supports

FACTOR = {2: 4, 4: 64, 6: 96}

# hw, padding, groups, data_format, batch, c_in, c_out. Outputs 7x9, 9x4 and
# 9x12: mostly not whole tiles; tile 6 on case 1's width 4 is under one tile.
CASES = [
    ((7, 9), "same", 1, "channels_last", 1, 3, 5),
    ((11, 6), "valid", 2, "channels_first", 3, 4, 6),
    ((9, 10), ((2, 0), (1, 3)), 4, "channels_last", 3, 4, 8),  # depthwise, x2
]
# More of the same for `pytest -m slow`.
SLOW_CASES = [
    ((5, 13), ((0, 1), (3, 0)), 1, "channels_first", 1, 2, 3),
    ((3, 4), "same", 3, "channels_first", 3, 3, 3),  # depthwise
    ((16, 17), "same", 2, "channels_last", 2, 8, 4),
]


def _ids(cases):
    return [f"{c[0][0]}x{c[0][1]}-g{c[2]}-{c[3][9:]}-n{c[4]}" for c in cases]


@functools.partial(jax.jit, static_argnames=("spec", "precision", "tile"))
def _winograd(x, kernel, spec, precision="highest", tile=4):
    """Jitted: one compilation per shape, dtype and tile (calling the core
    eagerly compiles each of its hundreds of small operations instead)."""
    return conv2d_winograd_core(x, kernel, spec, precision, tile=tile)


def _arrays(case, *, integer=False, seed=0):
    hw, _, groups, data_format, batch, c_in, c_out = case
    rng = np.random.default_rng(seed)
    channels_first = data_format == "channels_first"
    x_shape = (batch, c_in, *hw) if channels_first else (batch, *hw, c_in)
    k_shape = (3, 3, c_in // groups, c_out)
    if integer:
        draw = lambda s: rng.integers(-3, 4, s).astype(np.float32)
    else:
        draw = lambda s: rng.standard_normal(s).astype(np.float32)
    return draw(x_shape), draw(k_shape)


def _kwargs(case):
    _, padding, groups, data_format, *_ = case
    return dict(padding=padding, groups=groups, data_format=data_format)


def _spec(x, kernel, **kwargs):
    return conv2d_spec(x.shape, kernel.shape, itemsize=x.dtype.itemsize, **kwargs)


def _scale(x, kernel, **kwargs):
    """max over the output of sum|products|."""
    x, kernel = (np.abs(np.asarray(a, np.float64)) for a in (x, kernel))
    return reference_conv2d(x, kernel, **kwargs).max()


def _assert_within(y, expected, scale, tile, dtype):
    err = np.abs(np.asarray(y, np.float64) - expected).max()
    bound = FACTOR[tile] * np.finfo(dtype).eps * scale
    assert err <= bound, f"tile {tile}: max error {err:.3g} > {bound:.3g}"


def _check_case(case, tile, dtype):
    x, kernel = _arrays(case)
    kwargs = _kwargs(case)
    expected = reference_conv2d(x, kernel, **kwargs)
    scale = _scale(x, kernel, **kwargs)
    with jax.enable_x64(dtype == np.float64):
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        y = _winograd(x, kernel, _spec(x, kernel, **kwargs), tile=tile)
        assert y.dtype == dtype and y.shape == expected.shape
        _assert_within(y, expected, scale, tile, dtype)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_matches_reference_float32(case, tile):
    _check_case(case, tile, np.float32)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", CASES[1:], ids=_ids(CASES[1:]))
def test_matches_reference_float64(case, tile):
    _check_case(case, tile, np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", CASES + SLOW_CASES, ids=_ids(CASES + SLOW_CASES))
def test_matches_reference_grid(case, tile, dtype):
    _check_case(case, tile, dtype)


@pytest.mark.parametrize("tile", TILES)
def test_negative_pads_crop(tile):
    """Pads may be negative (a transposed convolution's spec): they crop."""
    x, kernel = _arrays(CASES[0])
    h, w = x.shape[1:3]
    spec = dataclasses.replace(
        _spec(x, kernel), pads=((-1, 2), (1, -2)), out_hw=(h - 1, w - 3)
    )
    y = _winograd(x, kernel, spec, tile=tile)
    cropped = x[:, 1:, :-2]
    expected = reference_conv2d(cropped, kernel, padding=((0, 2), (1, 0)))
    assert y.shape == expected.shape
    _assert_within(y, expected, _scale(cropped, kernel), tile, np.float32)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_tile_2_exact_on_small_integers(case):
    """F(2x2)'s matrices are dyadic (0, +-1, +-1/2): on integers in [-3, 3]
    every transformed value, product and sum is exact in float32."""
    x, kernel = _arrays(case, integer=True)
    kwargs = _kwargs(case)
    y = _winograd(x, kernel, _spec(x, kernel, **kwargs), tile=2)
    np.testing.assert_array_equal(y, reference_conv2d(x, kernel, **kwargs))


def _dyadic(value: Fraction) -> bool:
    return value.denominator & (value.denominator - 1) == 0


def test_larger_tiles_not_exact_by_construction():
    """F(4x4) and F(6x6) divide by 3 (and 5): their kernel transforms have
    coefficients no binary float holds, so small-integer data gives no exact
    result there; only the error bound is asserted for them."""
    for tile in TILES:
        coefficients = [c for m in matrices(tile) for row in m for c in row]
        assert all(map(_dyadic, coefficients)) == (tile == 2)


@pytest.mark.parametrize("tile", TILES)
def test_matrices_compute_1d_correlation_exactly(tile):
    """A^T [(G g) * (B^T d)] = sum_j g_j d_{i+j}, in exact arithmetic."""
    a_t, g_mat, b_t = matrices(tile)
    rng = np.random.default_rng(tile)
    g = [Fraction(int(v)) for v in rng.integers(-9, 10, 3)]
    d = [Fraction(int(v)) for v in rng.integers(-9, 10, tile + 2)]
    u = [sum(r * v for r, v in zip(row, g)) for row in g_mat]
    v = [sum(r * e for r, e in zip(row, d)) for row in b_t]
    y = [sum(a * p * q for a, p, q in zip(row, u, v)) for row in a_t]
    assert y == [sum(g[j] * d[i + j] for j in range(3)) for i in range(tile)]


def _check_grads(tile):
    case = ((4, 5), ((1, 0), (1, 2)), 1, "channels_last", 1, 2, 2)
    x, kernel = _arrays(case)
    spec = _spec(x, kernel, **_kwargs(case))
    f = jax.jit(lambda x, k: conv2d_winograd_core(x, k, spec, None, tile=tile))
    check_grads_float64(f, (x, kernel))


def test_check_grads():
    _check_grads(4)


@pytest.mark.slow
@pytest.mark.parametrize("tile", [2, 6])
def test_check_grads_other_tiles(tile):
    _check_grads(tile)


def _check_transforms(tile):
    """jit and vmap (over a stacked batch, and over the kernel) agree with
    the plain call within the float32 bound: the same sums, perhaps fused
    differently (a fused multiply-add rounds once)."""
    case = CASES[2]
    x, kernel = _arrays(case)
    spec = _spec(x, kernel, **_kwargs(case))
    call = lambda x, k: conv2d_winograd_core(x, k, spec, None, tile=tile)
    y = call(x, kernel)
    atol = FACTOR[tile] * np.finfo(np.float32).eps * _scale(x, kernel, **_kwargs(case))
    np.testing.assert_allclose(jax.jit(call)(x, kernel), y, rtol=0, atol=atol)
    ys = jax.jit(jax.vmap(call, in_axes=(0, None)))(np.stack([x, -x]), kernel)
    np.testing.assert_allclose(ys[0], y, rtol=0, atol=atol)
    np.testing.assert_allclose(ys[1], -y, rtol=0, atol=2 * atol)
    ys = jax.jit(jax.vmap(call, in_axes=(None, 0)))(x, np.stack([kernel, -kernel]))
    np.testing.assert_allclose(ys[1], -y, rtol=0, atol=2 * atol)


def test_jit_and_vmap_agree_with_plain_call():
    _check_transforms(2)


@pytest.mark.slow
@pytest.mark.parametrize("tile", [4, 6])
def test_jit_and_vmap_agree_with_plain_call_larger_tiles(tile):
    _check_transforms(tile)


@pytest.mark.parametrize(
    ("kernel_hw", "kwargs", "tile", "match"),
    [
        ((3, 3), dict(strides=2), 4, r"`strides` \(=\(2, 2\)\) must be \(1, 1\)"),
        ((3, 3), dict(dilation_rate=2), 4, r"`dilation_rate` \(=\(2, 2\)\)"),
        ((5, 5), {}, 4, r"`kernel` spatial size \(=\(5, 5\)"),
        ((3, 3), {}, 3, r"`tile` \(=3\) must be one of \(2, 4, 6\)"),
    ],
)
def test_unsupported_raises(kernel_hw, kwargs, tile, match):
    x = np.ones((1, 8, 8, 2), np.float32)
    kernel = np.ones((*kernel_hw, 2, 2), np.float32)
    spec = conv2d_spec(x.shape, kernel.shape, **kwargs)
    assert supports(kernel.shape, spec) == (tile == 3)
    with pytest.raises(ValueError, match=match):
        conv2d_winograd_core(x, kernel, spec, None, tile=tile)


def test_supports_groups_and_pads():
    x = np.ones((1, 8, 8, 4), np.float32)
    for groups in (1, 2, 4):
        kernel = np.ones((3, 3, 4 // groups, 4), np.float32)
        spec = _spec(x, kernel, groups=groups, padding=((0, 3), (2, 1)))
        assert supports(kernel.shape, spec)
    spec = dataclasses.replace(spec, lhs_dilation=(2, 1))
    assert not supports(kernel.shape, spec)


@pytest.mark.parametrize(
    ("tile", "dtype"),
    [(2, jnp.bfloat16), (4, jnp.bfloat16), (6, jnp.bfloat16), (4, jnp.float16)],
)
def test_narrow_dtypes(tile, dtype):
    """Computed in float32 and rounded once to `dtype`: within half an ulp of
    the largest output (`eps / 2 * max|y_ref|`) plus twice the float32 bound.
    Measured on (4, 28, 28, 64) x (3, 3, 64, 64) in bfloat16: max error
    0.9 * 2**-8 * max|y_ref|, for every tile and for lax alike."""
    case = CASES[1]
    x, kernel = (jnp.asarray(a, dtype) for a in _arrays(case))
    kwargs = _kwargs(case)
    y = _winograd(x, kernel, _spec(x, kernel, **kwargs), tile=tile)
    assert y.dtype == dtype
    x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
    expected = reference_conv2d(x64, k64, **kwargs)
    err = np.abs(np.asarray(y, np.float64) - expected).max()
    bound = float(jnp.finfo(dtype).eps) / 2 * np.abs(expected).max()
    bound += 2 * FACTOR[tile] * np.finfo(np.float32).eps * _scale(x64, k64, **kwargs)
    assert err <= bound, f"max error {err:.3g} > {bound:.3g}"
