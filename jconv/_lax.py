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

import itertools
import math

import jax.numpy as jnp
from jax import lax

from jconv._einsum import conv2d_einsum_core
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


def _swapped_badly(sizes, window, base_dilation) -> bool:
    """Whether XLA may swap the operands of a convolution with this base
    dilation, operand `sizes` and `window` sizes (spatial, undilated) into
    one that fails its shape check.

    XLA's operand swap (`SwapConvolutionOperandsIfBeneficial`) leaves out of
    its comparison an axis it takes for a "group" axis (base dilation equal
    to the window size, among other conditions), copies that axis' window
    into the swapped convolution unchanged, and swaps where the remaining
    window is larger than the remaining operand; the copied axis then does
    not match the swapped kernel, a CHECK fails and the process aborts. A
    superset of that: some axis with a base dilation above 1 equal to its
    window size, and, leaving out any set of such axes, a window larger in
    volume than the operand."""
    axes = range(len(sizes))
    group = [i for i in axes if base_dilation[i] > 1 and window[i] == base_dilation[i]]
    for left_out in itertools.chain.from_iterable(
        itertools.combinations(group, n) for n in range(1, len(group) + 1)
    ):
        rest = [i for i in axes if i not in left_out]
        if math.prod(window[i] for i in rest) > math.prod(sizes[i] for i in rest):
            return True
    return False


def aborts_xla(spec: ConvSpec, x_hw, kernel_hw) -> bool:
    """Whether XLA may abort the process compiling this convolution or one of
    its derivatives (`_swapped_badly`; jax 0.10.2, and `jax.grad` of
    `lax.conv_general_dilated` itself does). The convolutions with a base
    dilation: the forward one where the input is stretched (a transposed
    convolution, `input_dilation`; operand the input, window the kernel),
    the input gradient of a strided one (operand the output gradient,
    window the kernel, base dilation the strides), and the kernel gradient
    where the input is stretched (operand the input, window the output
    gradient). Stretching the input with `lax.pad` first does not help: XLA
    folds the pad back into the base dilation. Where this holds, the terms
    are computed by the einsum formulation, which has no convolution to
    compile (`tests/test_lax.py`: the geometries random sweeps of small
    strided convolutions found aborting). Those are small convolutions: on
    the axes compared, the window is larger than its operand."""
    out_hw, lhs, strides = spec.out_hw, spec.lhs_dilation, spec.strides
    return (
        _swapped_badly(x_hw, kernel_hw, lhs)
        or _swapped_badly(out_hw, kernel_hw, strides)
        or _swapped_badly(x_hw, out_hw, lhs)
    )


def _einsum_instead(x, kernel, spec: ConvSpec) -> bool:
    r = spec.rank  # x channels last, as everywhere here
    return aborts_xla(spec, x.shape[1 : 1 + r], kernel.shape[:r])


def _conv(x, kernel, spec: ConvSpec, precision, dimension_numbers, preferred):
    x, kernel = _operands(x, kernel, preferred)
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=spec.lhs_dilation,
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
    if _einsum_instead(x, kernel_hwio, spec):
        return conv2d_einsum_core(
            x, kernel_hwio, spec, precision, preferred_element_type
        )
    sp = _SPATIAL[spec.rank]
    dimension_numbers = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    return _conv(
        x, kernel_hwio, spec, precision, dimension_numbers, preferred_element_type
    )


def input_tangent(
    x_dot, kernel_hwio, spec: ConvSpec, precision, *, preferred_element_type=None
):
    """`conv(x_dot, kernel)` with the kernel handed over as HWOI: its transpose
    (the input gradient) is a canonical convolution."""
    if _einsum_instead(x_dot, kernel_hwio, spec):
        return conv2d_einsum_core(
            x_dot, kernel_hwio, spec, precision, preferred_element_type
        )
    k_hwoi = jnp.swapaxes(kernel_hwio, -1, -2)
    sp = _SPATIAL[spec.rank]
    dimension_numbers = (f"N{sp}C", f"{sp}OI", f"N{sp}C")
    return _conv(
        x_dot, k_hwoi, spec, precision, dimension_numbers, preferred_element_type
    )


def kernel_tangent(
    x, kernel_dot, spec: ConvSpec, precision, *, preferred_element_type=None
):
    """`conv(x, kernel_dot)`, written so that its transpose (the kernel
    gradient) is a canonical convolution: input `(C_in // G, H, W, G * N)`,
    "kernel" the output gradient `(H_out, W_out, N, C_out)`, G feature groups.
    The tangent itself groups the batch (`batch_group_count=G`), which JAX's
    transposition turns into feature groups."""
    if _einsum_instead(x, kernel_dot, spec):
        return conv2d_einsum_core(
            x, kernel_dot, spec, precision, preferred_element_type
        )
    x, kernel_dot = _operands(x, kernel_dot, preferred_element_type)
    n, *hw, c = x.shape
    r, g = spec.rank, spec.groups
    spatial = tuple(range(1, r + 1))
    x_cg = x.reshape(n, *hw, g, c // g).transpose(r + 2, *spatial, r + 1, 0)
    sp = _SPATIAL[r]
    y_hwnc = lax.conv_general_dilated(
        x_cg.reshape(c // g, *hw, g * n),
        kernel_dot.transpose(r, *range(r), r + 1),
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=spec.lhs_dilation,
        rhs_dilation=spec.dilation_rate,
        dimension_numbers=(f"C{sp}N", f"I{sp}O", f"{sp}NC"),
        batch_group_count=g,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return y_hwnc.transpose(r, *range(r), r + 1)
