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


def gamma_bound(magnitude, terms: int, dtype=np.float32) -> np.ndarray:
    """`gamma_terms * magnitude` in `dtype` plus the same in float64: how far
    one evaluation in `dtype` of sums of `terms` products can be from a
    float64 evaluation of the same sums (elementwise)."""
    return (sum_bound(magnitude, terms, dtype) + sum_bound(magnitude, terms)) / 2


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
    bias. Any spatial rank: the kernel's axes but the last two are taps."""
    taps = int(np.prod(kernel.shape[:-2]))
    if depthwise:
        pass
    elif transpose:
        taps *= kernel.shape[-1]
    else:
        taps *= kernel.shape[-2]
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


# Complex convolutions: each of the real and imaginary parts of a sum of `n`
# complex products is a sum of real products. Computed with four real
# products (`(ac - bd) + i(ad + bc)`: einsum, the tap sum), a part sums `2n`
# of them, whose absolute values add up to at most `sum |x| |k|`
# (`|a||c| + |b||d| <= |x||k|`, Cauchy-Schwarz). XLA's CPU and GPU
# convolutions use Gauss' three products instead (jax `_complex_mul`: real
# part `c(a + b) - b(c + d)`): a part is then two sums of `n` products of
# rounded sums, `n + 2` roundings deep, with absolute values adding up to at
# most `2 sqrt(2) sum |x| |k|` (`|a| + |b| <= sqrt(2) |x|`). The bound below
# takes the larger of both: `2n + 2` terms of magnitude `2 sqrt(2) sum |x||k|`.
COMPLEX_MAGNITUDE = 2 * np.sqrt(2)


def assert_complex_conv_close(
    actual, expected, reference, x, kernel, bias=None, *, dtype=np.float32, **kwargs
):
    """`assert_conv_close` for complex arrays: the real and the imaginary
    parts each within the bound above (`dtype` the real dtype of the parts)."""
    transpose = "transpose" in reference.__name__
    depthwise = "depthwise" in reference.__name__
    absolute = [np.abs(np.asarray(a)).astype(np.float64) for a in (x, kernel)]
    if bias is not None:
        absolute.append(np.abs(np.asarray(bias)).astype(np.float64))
    magnitude = COMPLEX_MAGNITUDE * reference(*absolute, **kwargs)
    terms = conv_terms(kernel, bias=bias, transpose=transpose, depthwise=depthwise)
    actual, expected = np.asarray(actual), np.asarray(expected)
    for part in (np.real, np.imag):
        assert_sums_close(part(actual), part(expected), magnitude, 2 * terms, dtype)


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


# The FFT's error (`jconv._fft`): a transform of length L in floating point is
# within c * u * log2(L) of the exact one in the 2-norm (Higham, *Accuracy and
# Stability of Numerical Algorithms*, 2nd ed., section 24.1), so one output
# plane of a convolution through two forward transforms, a product and an
# inverse transform is within about FFT_C * u * log2(L) * sum_c ||x_c||_2 *
# ||k_c||_2 of the exact plane, in the 2-norm and so element by element. With
# ||x_c||_2 <= max|x| * sqrt(L) (the padded plane has at most L pixels) and the
# sum over at most `channels` input channels, one scalar bound per case. The
# constant: over 570 cases of the fft test grids (default and slow samples),
# the largest error was 0.016 of the bound at FFT_C = 1 in float32 and 0.013 in
# float64 (median 0.003); FFT_C = 1 keeps a 60x margin, and a wrong answer (a
# flipped kernel, a shifted window) is off by O(max|y|), far beyond it.
FFT_C = 1.0


def fft_bound(x, kernel, *, plane: int, channels: int, dtype=np.float32) -> float:
    """The scalar bound above for an FFT convolution of `x` by `kernel` (its
    first two axes spatial) whose transform has at most `plane` pixels and
    whose output sums over at most `channels` input channels."""
    u = np.finfo(dtype).eps / 2
    x_max = float(np.max(np.abs(np.asarray(x)).astype(np.float64), initial=0.0))
    k = np.abs(np.asarray(kernel)).astype(np.float64)  # complex: the moduli
    k_norm = float(np.max(np.sqrt(np.sum(k * k, axis=(0, 1))), initial=0.0))
    return (
        FFT_C * u * np.log2(max(plane, 2)) * np.sqrt(plane) * x_max * channels * k_norm
    )


def assert_fft_close(
    actual, expected, x, kernel, *, plane, channels, dtype=np.float32, extra=0.0
):
    """`actual` (an FFT convolution) within `fft_bound` of `expected`, plus
    the final rounding to `dtype` and a bias add (2u|y|) and `extra` (the
    error of `expected` itself where it is not exact: elementwise or scalar).
    Complex arrays: the bound holds for the moduli of the errors."""
    wide = lambda a: a.astype(np.result_type(a.dtype, np.float64))
    actual, expected = wide(np.asarray(actual)), wide(np.asarray(expected))
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    u = np.finfo(dtype).eps / 2
    bound = fft_bound(x, kernel, plane=plane, channels=channels, dtype=dtype)
    err = np.abs(actual - expected)
    limit = bound + 2 * u * np.abs(expected) + extra + np.finfo(dtype).tiny
    worst = np.unravel_index(np.argmax(err - limit), err.shape) if err.size else ()
    assert np.all(err <= limit), (
        f"{np.sum(err > limit)} of {err.size} elements beyond the FFT bound "
        f"{bound:.3g} (+2u|y|) in {np.dtype(dtype).name}; worst at {worst}: "
        f"|{actual[worst]} - {expected[worst]}| = {err[worst]:.3g}"
    )
