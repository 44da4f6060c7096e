"""`conv` by the convolution theorem: the channel contraction of an explicit
einsum, taken in the frequency domain.

Written here for 2D (`rfft2`); 1D and 3D take the same steps over one
spatial axis or three (`rfftn` over the spatial axes).

For each spatial axis the (stretched, padded) input of length `Lp` and the
(dilated) kernel of length `Ke` give `Lp - Ke + 1` stride-1 outputs, and a
circular cross-correlation of any length `L >= Lp` computes exactly those
without wrapping around (output `i` reads input `i .. i + Ke - 1 < Lp`). So:

    X = rfft2(x_padded, (Lh, Lw))            (N, Lh, Lw/2+1, C)
    K = rfft2(k_dilated, (Lh, Lw))           (Lh, Lw/2+1, C/G, O)
    Y = einsum("nhwgc,hwcgo->nhwgo", X, conj(K))   one contraction per frequency
    y = irfft2(Y, (Lh, Lw))[:, :Hs, :Ws] then every stride-th pixel

(the conjugate turns the transform's convolution into Keras' cross-
correlation: no kernel flip). Complex inputs or kernels take `fft2`/`ifft2`
over the whole plane instead, and `conj(fft2(conj(k)))`, the spectrum of
the reversed kernel (for a real kernel it is `conj(rfft2(k))`'s full
plane): still no conjugation of the kernel itself, `y = sum x * k`. `L` is
the padded length rounded up to the next size with no prime factor above 7,
where FFTs are fastest. Depthwise (one
input channel a group) is an elementwise product of the spectra; with groups
the contraction has a group axis. Strides subsample the stride-1 result;
dilation is a kernel stretched with zeros; a transposed convolution
(`ConvSpec.lhs_dilation`) runs on the input stretched with zeros, as in
`jconv._einsum`.

Cost: two forward transforms and one inverse, O(L log L) per channel plane,
plus one complex product per frequency and channel pair, independent of the
kernel's size. It pays for large kernels (a 31x31 depthwise kernel is 961
products per pixel directly) and loses to a direct convolution for 3x3 ones.

Accuracy: the FFT's rounding error is not bounded per product like a direct
sum's, but by the norms of the planes: for one output plane, each element is
off by at most about `c * u * log2(Lh * Lw) * sum_c ||x_c||_2 ||k_c||_2`
(u the unit roundoff of the computing dtype; Higham, *Accuracy and Stability
of Numerical Algorithms*, 2nd ed., section 24.1). The tests assert it with
c = 1 and the norms bounded by max|x| and the transform size
(`tests/_tol.py`, `fft_bound`): the largest error over 570 grid cases was
0.016 of that. Measured against float64 (`experiments/algorithm_errors.py`),
about 2e-7 of max|y| in float32, as accurate as lax's direct sums.
Transforms run in float32 for bfloat16/float16 inputs and in float64 for
float64 ones (complex64, complex128 for complex ones), or in
`preferred_element_type` where that is wider, and the result is cast to
`preferred_element_type` (None: the input's dtype); `precision` is passed to
the frequency-domain einsum (the depthwise product has none to take).

Backward passes are plain autodiff of these expressions: JAX transposes
`rfft2`/`irfft2` and the einsum, so the gradients are FFT convolutions too.
An empty output (no image, or an input axis with no pixels) is zeros, with
no transform and no spectrum built.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jconv._spec import ConvSpec, check_allocatable, empty_output, spatial_layout


def fast_length(n: int) -> int:
    """The smallest integer `>= n` with no prime factor above 7."""
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _dilated_kernel(k_hwio, dilation):
    """The kernel stretched by `dilation - 1` zeros between taps."""
    if all(d == 1 for d in dilation):
        return k_hwio
    zero = jnp.zeros((), k_hwio.dtype)
    config = [(0, 0, d - 1) for d in dilation] + [(0, 0, 0), (0, 0, 0)]
    return lax.pad(k_hwio, zero, config)


def transform_shape(x_padded_hw, k_hw_dilated) -> tuple[int, ...]:
    """`(Lh, Lw)` (one per spatial axis): the transform lengths for a padded
    input and a dilated kernel (both at least the kernel, so an empty output
    still has a plane)."""
    return tuple(fast_length(max(p, k)) for p, k in zip(x_padded_hw, k_hw_dilated))


def conv2d_fft_core(
    x, kernel_hwio, spec: ConvSpec, precision, preferred_element_type=None
):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias,
    returned as `preferred_element_type` (None: `x`'s dtype)."""
    dtype = x.dtype if preferred_element_type is None else preferred_element_type
    empty = empty_output(x, kernel_hwio, spec, preferred_element_type)
    if empty is not None:
        return empty  # nothing to transform
    wide = jnp.promote_types(x.dtype, jnp.float32)
    if preferred_element_type is not None:
        wide = jnp.promote_types(wide, preferred_element_type)
    full = jnp.issubdtype(wide, jnp.complexfloating)  # complex: fft2, no rfft2
    *_, c_group, c_out = kernel_hwio.shape
    g, r = spec.groups, spec.rank
    x_nhwc = jnp.moveaxis(x, 1, -1) if spec.channels_first else x
    n, c_in = x_nhwc.shape[0], x_nhwc.shape[-1]
    pad_config = [
        (0, 0, 0),
        *((*pad, s - 1) for pad, s in zip(spec.pads, spec.lhs_dilation)),
        (0, 0, 0),
    ]
    x_padded = lax.pad(x_nhwc.astype(wide), jnp.zeros((), wide), pad_config)
    k = _dilated_kernel(kernel_hwio.astype(wide), spec.dilation_rate)
    lengths = transform_shape(x_padded.shape[1:-1], k.shape[:r])
    complex_bytes = jnp.dtype(wide).itemsize * (1 if full else 2)
    # The spectrum's sizes: the last axis halved by a real transform.
    freq = (*lengths[:-1], lengths[-1] if full else lengths[-1] // 2 + 1)
    cause = lambda: (
        f"`impl`='fft' on an input of shape {x.shape} with a kernel of shape "
        f"({spatial_layout(kernel_hwio.ndim - 2, 'K')}, C_in // groups, C_out) = "
        f"{kernel_hwio.shape}"
    )
    hint = "; impl='lax' builds no such buffer"
    spectra = {
        "its input spectrum": (n, *freq, c_in),
        "its kernel spectrum": (*freq, c_group, c_out),
        "its output spectrum": (n, *freq, c_out),
    }
    for what, shape in spectra.items():
        check_allocatable(what, shape, complex_bytes, cause, hint=hint)
    x_axes, k_axes = tuple(range(1, r + 1)), tuple(range(r))
    if full:
        x_f = jnp.fft.fftn(x_padded, s=lengths, axes=x_axes)
        k_f = jnp.conj(jnp.fft.fftn(jnp.conj(k), s=lengths, axes=k_axes))
    else:
        x_f = jnp.fft.rfftn(x_padded, s=lengths, axes=x_axes)
        k_f = jnp.conj(jnp.fft.rfftn(k, s=lengths, axes=k_axes))
    if g > 1 and c_group == 1:
        # Depthwise: channel c feeds outputs c*M .. c*M + M - 1.
        m = c_out // c_in
        y_f = x_f[..., None] * k_f.reshape(1, *freq, c_in, m)
    else:
        x_f = x_f.reshape(n, *freq, g, c_group)
        k_f = k_f.reshape(*freq, c_group, g, c_out // g)
        sp = "dhw"[-r:]
        y_f = jnp.einsum(f"n{sp}gc,{sp}cgo->n{sp}go", x_f, k_f, precision=precision)
    y_f = y_f.reshape(n, *freq, c_out)
    inverse = jnp.fft.ifftn if full else jnp.fft.irfftn
    y_full = inverse(y_f, s=lengths, axes=x_axes)
    y = y_full[
        (
            slice(None),
            *(slice(0, (o - 1) * s + 1, s) for o, s in zip(spec.out_hw, spec.strides)),
        )
    ]
    y = y.astype(dtype)
    return jnp.moveaxis(y, -1, 1) if spec.channels_first else y
