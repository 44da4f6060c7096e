"""Tolerances derived from the dtype and the length of the sums.

Two float evaluations of the same convolution may sum in different orders and
blockings (XLA picks kernels by CPU: AVX2 or AVX-512, oneDNN or not, batch
size). Each computed sum of `n` products is within `gamma_n * sum|products|` of
the exact value, `gamma_n = n*u / (1 - n*u)` with `u` the unit roundoff (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5), whatever
the order. Two such evaluations therefore differ by at most twice that, element
by element. Exact equality is asserted only on small-integer data
(`integers=True` in the tests' data makers), where every product and partial
sum is exact in float32 and so the same on every machine.
"""

from __future__ import annotations

import jax
import numpy as np


def sum_bound(magnitude, terms: int, dtype=np.float32) -> np.ndarray:
    """`2 * gamma_terms * magnitude`: the largest difference between two
    evaluations in `dtype` of sums of `terms` products whose absolute values
    add up to `magnitude` (elementwise)."""
    u = np.finfo(dtype).eps / 2
    if terms * u >= 0.5:
        raise ValueError(f"`terms` (={terms}) too long for a bound in {dtype}")
    gamma = terms * u / (1 - terms * u)
    return 2 * gamma * np.asarray(magnitude, np.float64)


def assert_sums_close(actual, expected, magnitude, terms: int, dtype=np.float32):
    """`actual` and `expected` agree within `sum_bound(magnitude, terms)`,
    element by element (plus the dtype's smallest normal, for zeros)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    bound = sum_bound(magnitude, terms, dtype) + np.finfo(dtype).tiny
    err = np.abs(actual - expected)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / bound, -1)), err.shape)
        raise AssertionError(
            f"{bad.sum()} of {err.size} elements differ by more than "
            f"2*gamma_{terms}*sum|products| in {np.dtype(dtype).name}; worst at "
            f"{i}: |{actual[i]} - {expected[i]}| = {err[i]:.3g} > {bound[i]:.3g}"
        )


def conv_terms(kernel, *, bias=None, transpose=False, depthwise=False) -> int:
    """Products per output sum: `KH*KW*C_in/groups` for a convolution (kernel
    `(KH, KW, C_in/groups, C_out)`), at most `KH*KW*C_in` for a transposed one
    (kernel `(KH, KW, C_out, C_in)`), `KH*KW` for a depthwise one; +1 for the
    bias."""
    kh, kw = kernel.shape[:2]
    if depthwise:
        taps = kh * kw
    elif transpose:
        taps = kh * kw * kernel.shape[3]
    else:
        taps = kh * kw * kernel.shape[2]
    return taps + (bias is not None)


def assert_conv_close(
    actual, expected, reference, x, kernel, bias=None, *, dtype=np.float32, **kwargs
):
    """Compare two evaluations of `reference(x, kernel, bias, **kwargs)`, a
    float64 reference convolution, with the bound above: the magnitude is the
    same convolution of the absolute values, the length that of its sums."""
    transpose = "transpose" in reference.__name__
    depthwise = "depthwise" in reference.__name__
    absolute = [np.abs(np.asarray(a, np.float64)) for a in (x, kernel)]
    if bias is not None:
        absolute.append(np.abs(np.asarray(bias, np.float64)))
    magnitude = reference(*absolute, **kwargs)
    terms = conv_terms(kernel, bias=bias, transpose=transpose, depthwise=depthwise)
    assert_sums_close(actual, expected, magnitude, terms, dtype)


def assert_matches_reference(ours, reference, x, kernel, bias, *, float64, **kwargs):
    """`ours(x, kernel, bias, **kwargs)` at `precision="highest"` against the
    float64 `reference`: float32 in, float32 out, the reference's shape, within
    `assert_conv_close`'s bound; with `float64`, again on float64 copies of
    the inputs within the float64 bound. Returns the float32 result."""
    expected = reference(x, kernel, bias, **kwargs)
    y = ours(x, kernel, bias, precision="highest", **kwargs)
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    assert_conv_close(y, expected, reference, x, kernel, bias, **kwargs)
    if float64:
        with jax.enable_x64(True):
            as64 = lambda a: None if a is None else a.astype(np.float64)
            y64 = ours(as64(x), as64(kernel), as64(bias), **kwargs)
            assert y64.dtype == np.float64
            assert_conv_close(
                y64, expected, reference, x, kernel, bias, dtype=np.float64, **kwargs
            )
    return y
