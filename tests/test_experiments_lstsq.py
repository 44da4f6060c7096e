"""The patch matrix against the float64 loop reference, and the SVD least squares
against numpy.linalg (lstsq, matrix_rank, pinv)."""

import numpy as np
import pytest
from reference import reference_conv2d

from jconv import document
from jconv.learn import lstsq, patch_matrix

CASES = [
    # (x shape NHWC, kernel shape HWIO, strides, padding, dilation, bias)
    ((2, 6, 7, 1), (3, 3, 1, 1), 1, "valid", 1, False),
    ((2, 6, 7, 1), (3, 3, 1, 1), 1, "same", 1, False),
    ((1, 8, 8, 3), (3, 3, 3, 4), 2, "same", 1, True),
    ((1, 7, 9, 2), (2, 3, 2, 3), (2, 1), "same", 1, True),
    ((3, 9, 9, 2), (3, 2, 2, 2), 1, "valid", 2, False),
    ((1, 5, 6, 1), (3, 3, 1, 2), 1, ((1, 0), (2, 1)), 1, False),
    ((1, 5, 5, 1), (4, 4, 1, 1), 2, "same", 1, False),
]


@pytest.mark.parametrize("x_shape, k_shape, strides, padding, dilation, bias", CASES)
def test_patch_matrix_times_kernel_is_the_convolution(
    x_shape, k_shape, strides, padding, dilation, bias
):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    k = rng.standard_normal(k_shape)
    b = rng.standard_normal(k_shape[-1]) if bias else None
    expected = reference_conv2d(
        x, k, b, strides=strides, padding=padding, dilation_rate=dilation
    )
    p = patch_matrix(
        x,
        k_shape[:2],
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        bias=bias,
    )
    weights = k.reshape(-1, k_shape[-1])
    if bias:
        weights = np.concatenate([weights, b[None]])
    assert p.shape == (np.prod(expected.shape[:3]), weights.shape[0])
    np.testing.assert_allclose(
        p @ weights, expected.reshape(-1, k_shape[-1]), rtol=1e-12, atol=1e-12
    )


def test_patch_matrix_of_the_document_by_hand():
    image = np.asarray(document.IMAGE, np.float64)[None, :, :, None]
    valid = patch_matrix(image, (3, 3))
    # Row 1 is the top-right window: rows 0-2, columns 1-3 of the image.
    assert valid[1].tolist() == [15, 0, 10, 0, 0, 0, 1, 10, 20]
    same = patch_matrix(image, (3, 3), padding="same")
    assert same.shape == (16, 9)
    # Top-left output: the window hangs over the zero border on two sides.
    assert same[0].tolist() == [0, 0, 0, 0, 10, 15, 0, 20, 0]


def test_patch_matrix_errors():
    with pytest.raises(ValueError, match=r"`x` must have rank 4 \(N, H, W, C_in\)"):
        patch_matrix(np.zeros((4, 4)), (3, 3))
    with pytest.raises(ValueError, match=r"`kernel_size` \(5, 5\) spans more"):
        patch_matrix(np.zeros((1, 4, 4, 1)), (5, 5))
    with pytest.raises(ValueError, match=r"`strides` \(=0\) must be positive"):
        patch_matrix(np.zeros((1, 4, 4, 1)), (3, 3), strides=0)


def _matrices():
    rng = np.random.default_rng(1)
    tall = rng.standard_normal((40, 9))
    wide = rng.standard_normal((4, 9))
    # Rank 3 in a 30x6 matrix: exact duplicates and a sum of columns.
    base = rng.standard_normal((30, 3))
    deficient = np.concatenate(
        [base, base[:, :1], base[:, :2].sum(1, keepdims=True), 2 * base[:, 2:]], axis=1
    )
    image = np.asarray(document.IMAGE, np.float64)[None, :, :, None]
    return {
        "tall": tall,
        "wide": wide,
        "deficient": deficient,
        "document_valid": patch_matrix(image, (3, 3)),
        "document_same": patch_matrix(image, (3, 3), padding="same"),
        "zero": np.zeros((5, 3)),
    }


@pytest.mark.parametrize("name", list(_matrices()))
@pytest.mark.parametrize("rhs_columns", [None, 3])
def test_lstsq_against_numpy(name, rhs_columns):
    a = _matrices()[name]
    rng = np.random.default_rng(2)
    shape = (a.shape[0],) if rhs_columns is None else (a.shape[0], rhs_columns)
    b = rng.standard_normal(shape)
    result = lstsq(a, b)
    expected, _, rank, sv = np.linalg.lstsq(a, b, rcond=None)
    assert result.rank == rank == np.linalg.matrix_rank(a)
    assert result.solution.shape == expected.shape
    np.testing.assert_allclose(result.solution, expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(result.solution, np.linalg.pinv(a) @ b, atol=1e-9)
    np.testing.assert_allclose(result.singular_values, sv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        result.residual, np.sum((a @ expected - b) ** 2), rtol=1e-9, atol=1e-12
    )
    # The null space: the right dimension, orthonormal, annihilated by `a`,
    # and orthogonal to the (minimum-norm) solution.
    n = a.shape[1]
    null = result.null_space
    assert null.shape == (n, n - rank)
    np.testing.assert_allclose(null.T @ null, np.eye(n - rank), atol=1e-12)
    np.testing.assert_allclose(a @ null, 0, atol=1e-9)
    np.testing.assert_allclose(null.T @ result.solution, 0, atol=1e-9)


def test_document_ranks():
    m = _matrices()
    assert lstsq(m["document_valid"], np.zeros(4)).rank == 4
    assert lstsq(m["document_same"], np.zeros(16)).rank == 9
    same = lstsq(m["document_same"], m["document_same"] @ np.ravel(document.KERNEL))
    np.testing.assert_allclose(same.solution, np.ravel(document.KERNEL), atol=1e-12)


def test_lstsq_errors():
    with pytest.raises(ValueError, match=r"`a` must be a matrix; got shape \(3,\)"):
        lstsq(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"`b` must have shape \(3,\) or \(3, k\)"):
        lstsq(np.zeros((3, 2)), np.zeros(4))
