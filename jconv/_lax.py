"""`conv` on XLA's convolution primitive, derivatives in the canonical layout.

Written here for 2D (NHWC); 1D and 3D are the same with one spatial axis
("NWC", "WIO") or three ("NDHWC", "DHWIO") in the dimension numbers.

XLA's CPU backend runs a convolution on its fast path (YNNPACK, Eigen) only
when its operands are laid out NHWC input, HWIO kernel, NHWC output. Its
`ConvCanonicalization` pass transposes other convolutions into that layout,
but only in the entry computation: inside a `lax.scan` or `while` body a
convolution keeps its dimension labels and, if they are not canonical, runs
on a naive loop (jax-ml/jax#12868). JAX's own derivatives of an NHWC
convolution are not canonical (`b01f_01oi->b01f` for the input gradient,
`f01b_i01o->01bf` for the kernel gradient), so a training step inside a scan
ran 15-65x slower than the same step at top level.

Here every convolution whose derivative JAX will write is itself written so
that JAX's transposition rules come out canonical:

- the forward convolution is canonical (channels_first inputs are transposed
  to NHWC around it, explicitly);
- its tangent in the input direction is the same convolution with the kernel
  handed over as `(KH, KW, C_out, C_in // groups)` ("HWOI"): JAX transposes
  that into a convolution whose kernel is HWIO, the flipped kernel with its
  channel axes swapped;
- its tangent in the kernel direction runs on the input as `(C_in, H, W, N)`
  and the kernel tangent as `(C_in, KH, KW, C_out)`, giving `(H, W, N,
  C_out)`: JAX transposes that into the canonical kernel-gradient
  convolution with `C_in` as the batch and `N` as the feature axis. With
  `groups` G the input is `(C_in // G, H, W, G * N)` and the tangent groups
  its batch (`batch_group_count=G`), which JAX transposes into an ordinary
  grouped convolution (its own rule would give `batch_group_count`, which XLA
  turns into a 3D convolution).

`jconv._plan` makes these tangents the rule of a `jax.custom_jvp`, so forward
mode, reverse mode (JAX transposes the tangent), higher orders, `vmap` and
sharding work as for any JAX function. Every convolution is still
`lax.conv_general_dilated`; only the dimension numbers differ, and the
answers are the same bits.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
from jax import lax

from jconv._spec import ConvSpec

# The spatial axes' letters in lax's dimension numbers, by rank.
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _operands(x, kernel, preferred):
    """`x` and `kernel`, cast to a wider complex `preferred`: on the CPU and
    GPU, JAX lowers a complex convolution to three real ones of sums of the
    real and imaginary parts (Gauss' trick), and rounds those sums in the
    inputs' dtype, whatever `preferred_element_type` says."""
    if preferred is None or not jnp.issubdtype(preferred, jnp.complexfloating):
        return x, kernel
    return x.astype(preferred), kernel.astype(preferred)


def _swappable(spec: ConvSpec, sizes, kernel_hw) -> bool:
    """Whether XLA may compile a convolution of these spatial `sizes` (the
    operand's, before any stretching) with a base dilation (`lhs_dilation`)
    by swapping its operands, which aborts the process (below).

    XLA's algebraic simplifier swaps a convolution's operands where the
    kernel's window is larger than the input; with a base dilation the
    swapped convolution fails its shape check ("Window dimensions do not
    match RHS shape", a CHECK: the process aborts). Seen with jax 0.10.2's
    XLA on the input gradient of `conv2d` of (1, 4, 5, 2) by (2, 3, 2, 2),
    strides 2, pads ((1, 1), (3, 0)), dilation (1, 2) (`tests/test_lax.py`),
    and on the transposed convolution with the same arguments. A superset of
    XLA's rule: the dilated window's volume is at least the input's."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel_hw, spec.dilation_rate)]
    return math.prod(spans) >= math.prod(sizes)


def _stretched(x, spec: ConvSpec, kernel_hw):
    """`x` (spatial axes 1..rank) stretched by `lhs_dilation - 1` zeros between
    its elements by `lax.pad`, where `_swappable`: the convolution then has
    no base dilation. The same operand, so the same answers."""
    hw = x.shape[1 : 1 + spec.rank]
    if not spec.stretched or not _swappable(spec, hw, kernel_hw):
        return x, spec.lhs_dilation
    zero = jnp.zeros((), x.dtype)
    widths = [(0, 0, 0)] * x.ndim
    for axis, s in enumerate(spec.lhs_dilation, start=1):
        widths[axis] = (0, 0, s - 1)
    return lax.pad(x, zero, widths), (1,) * spec.rank


def _conv(x, kernel, spec: ConvSpec, precision, dimension_numbers, preferred):
    x, kernel = _operands(x, kernel, preferred)
    kernel_hw = kernel.shape[: spec.rank]  # HWIO and HWOI
    x, lhs_dilation = _stretched(x, spec, kernel_hw)
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=spec.dilation_rate,
        dimension_numbers=dimension_numbers,
        feature_group_count=spec.groups,
        precision=precision,
        preferred_element_type=preferred,
    )


def conv_nhwc(
    x, kernel_hwio, spec: ConvSpec, precision, *, preferred_element_type=None
):
    """The canonical convolution: NHWC input, HWIO kernel, NHWC output (NWC,
    WIO; NDHWC, DHWIO)."""
    sp = _SPATIAL[spec.rank]
    dimension_numbers = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    return _conv(
        x, kernel_hwio, spec, precision, dimension_numbers, preferred_element_type
    )


def input_tangent(
    x_dot, kernel_hwio, spec: ConvSpec, precision, *, preferred_element_type=None
):
    """`conv(x_dot, kernel)` with the kernel handed over as HWOI: its transpose
    (the input gradient) is a canonical convolution.

    JAX transposes a strided convolution into one with a base dilation (the
    strides) over the cotangent, which XLA may fail to compile
    (`_swappable`); there, the strided convolution is written as the
    stride-1 one sampled at the strides, whose transpose stretches the
    cotangent with `lax.pad` instead (slower: only where XLA would abort)."""
    k_hwoi = jnp.swapaxes(kernel_hwio, -1, -2)
    sp = _SPATIAL[spec.rank]
    dimension_numbers = (f"N{sp}C", f"{sp}OI", f"N{sp}C")
    kernel_hw = kernel_hwio.shape[: spec.rank]
    if all(s == 1 for s in spec.strides) or not _swappable(
        spec, spec.out_hw, kernel_hw
    ):
        return _conv(
            x_dot, k_hwoi, spec, precision, dimension_numbers, preferred_element_type
        )
    unit = dataclasses.replace(spec, strides=(1,) * spec.rank)
    y = _conv(x_dot, k_hwoi, unit, precision, dimension_numbers, preferred_element_type)
    return y[(slice(None), *(slice(None, None, s) for s in spec.strides))]


def kernel_tangent(
    x, kernel_dot, spec: ConvSpec, precision, *, preferred_element_type=None
):
    """`conv(x, kernel_dot)`, written so that its transpose (the kernel
    gradient) is a canonical convolution: input `(C_in // G, H, W, G * N)`,
    "kernel" the output gradient `(H_out, W_out, N, C_out)`, G feature groups.
    The tangent itself groups the batch (`batch_group_count=G`), which JAX's
    transposition turns into feature groups."""
    x, kernel_dot = _operands(x, kernel_dot, preferred_element_type)
    n, *hw, c = x.shape
    r, g = spec.rank, spec.groups
    spatial = tuple(range(1, r + 1))
    x_cg = x.reshape(n, *hw, g, c // g).transpose(r + 2, *spatial, r + 1, 0)
    sp = _SPATIAL[r]
    x_cg, lhs_dilation = _stretched(
        x_cg.reshape(c // g, *hw, g * n), spec, kernel_dot.shape[:r]
    )
    y_hwnc = lax.conv_general_dilated(
        x_cg,
        kernel_dot.transpose(r, *range(r), r + 1),
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=spec.dilation_rate,
        dimension_numbers=(f"C{sp}N", f"I{sp}O", f"{sp}NC"),
        batch_group_count=g,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return y_hwnc.transpose(r, *range(r), r + 1)
