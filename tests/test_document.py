"""The tutorial's worked example, and its errata, checked by hand-worked sums."""

import numpy as np

import jconv
from jconv import document


def _image_kernel():
    image = np.asarray(document.IMAGE, np.float32)[None, :, :, None]
    kernel = np.asarray(document.KERNEL, np.float32)[:, :, None, None]
    return image, kernel


def test_kernel_and_image_agree_with_the_printed_factors():
    kernel = np.asarray(document.KERNEL).ravel()
    image = np.asarray(document.IMAGE)
    windows = [image[r : r + 3, c : c + 3].ravel() for r in (0, 1) for c in (0, 1)]
    mismatches = []
    for w, (factors, _) in enumerate(document.PRINTED_SUMS):
        for p, (printed, true) in enumerate(zip(factors, windows[w])):
            if printed != true:
                mismatches.append((w + 1, p, printed, true))
    # Exactly one printed factor disagrees with the image: sum 4, first row,
    # third column (image[1][3]), printed 10, really 0.
    assert mismatches == [(4, 2, 10, 0)]
    products = [int(np.dot(f, kernel)) for f, _ in document.PRINTED_SUMS]
    assert products == [56, 76, 175, 312]


def test_valid(impl):
    image, kernel = _image_kernel()
    y = jconv.conv2d(image, kernel, padding="valid", impl=impl)
    np.testing.assert_array_equal(y[0, :, :, 0], np.asarray(document.VALID))
    claimed = np.asarray(document.CLAIMED_VALID)
    wrong = np.argwhere(np.asarray(y[0, :, :, 0]) != claimed).tolist()
    assert wrong == [[0, 1]]  # only the second printed total is wrong


def test_same(impl):
    image, kernel = _image_kernel()
    y = jconv.conv2d(image, kernel, padding="same", impl=impl)[0, :, :, 0]
    assert y.shape == (4, 4)  # "same" keeps the input's size, as the document says
    # The inner 2x2 is the "valid" output; corners by hand, zero padding:
    np.testing.assert_array_equal(y[1:3, 1:3], np.asarray(document.VALID))
    # Top-left: window rows (pad, row 0, row 1), cols (pad, col 0, col 1).
    top_left = 5 * 10 + 10 * 15 + 1 * 20 + 2 * 0
    # Bottom-right: window rows (row 2, row 3, pad), cols (col 2, col 3, pad).
    bottom_right = 1 * 10 + (-1) * 20 + 2 * 20 + 5 * 10
    assert float(y[0, 0]) == top_left
    assert float(y[3, 3]) == bottom_right
