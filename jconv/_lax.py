"""`conv2d` on XLA's convolution primitive, derivatives in the canonical layout.

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

from jax import lax

from jconv._spec import ConvSpec


def _conv(x, kernel, spec: ConvSpec, precision, dimension_numbers):
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
    )


def conv_nhwc(x, kernel_hwio, spec: ConvSpec, precision):
    """The canonical convolution: NHWC input, HWIO kernel, NHWC output."""
    return _conv(x, kernel_hwio, spec, precision, ("NHWC", "HWIO", "NHWC"))


def input_tangent(x_dot, kernel_hwio, spec: ConvSpec, precision):
    """`conv(x_dot, kernel)` with the kernel handed over as HWOI: its transpose
    (the input gradient) is a canonical convolution."""
    k_hwoi = kernel_hwio.transpose(0, 1, 3, 2)
    return _conv(x_dot, k_hwoi, spec, precision, ("NHWC", "HWOI", "NHWC"))


def kernel_tangent(x, kernel_dot, spec: ConvSpec, precision):
    """`conv(x, kernel_dot)`, written so that its transpose (the kernel
    gradient) is a canonical convolution: input `(C_in // G, H, W, G * N)`,
    "kernel" the output gradient `(H_out, W_out, N, C_out)`, G feature groups.
    The tangent itself groups the batch (`batch_group_count=G`), which JAX's
    transposition turns into feature groups."""
    n, h, w, c = x.shape
    g = spec.groups
    x_cg = x.reshape(n, h, w, g, c // g).transpose(4, 1, 2, 3, 0)
    y_hwnc = lax.conv_general_dilated(
        x_cg.reshape(c // g, h, w, g * n),
        kernel_dot.transpose(2, 0, 1, 3),
        window_strides=spec.strides,
        padding=spec.pads,
        lhs_dilation=spec.lhs_dilation,
        rhs_dilation=spec.dilation_rate,
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
        batch_group_count=g,
        precision=precision,
    )
    return y_hwnc.transpose(2, 0, 1, 3)
