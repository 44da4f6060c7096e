"""Which formulation computes a convolution, which its derivatives, and
`impl="auto"`'s rule for choosing them.

A plan names three formulations: one for the output, one for the input
gradient and one for the kernel gradient, each `"lax"`, `"einsum"`, `"fft"`
(`jconv._fft`), `"winograd"` (`jconv._winograd`, 3x3 stride-1 layers) or
`"onednn"` (`jconv._onednn`: Intel oneDNN's CPU kernels called from XLA,
differentiated by its own primitive's rules). A
convolution is bilinear, so its tangent is `conv(x_dot, k) + conv(x, k_dot)`
by any formulation; the plan's rule is a `jax.custom_jvp` that computes the
output with the first formulation and each tangent term with its own, and JAX
transposes each term into its gradient. Forward and reverse mode, higher
orders, `vmap` and sharding work as for any JAX function; a symbolic-zero
tangent (an argument nobody differentiates) costs nothing.

- `impl="lax"` is the plan `("lax", "lax", "lax")`: the lax tangents are
  written so that their transposes are canonical convolutions (`jconv._lax`).
- `impl="einsum"` and `impl="fft"` are not plans: one expression each,
  differentiated by JAX as it stands (so is a plan of one formulation other
  than lax: `run_plan` calls the expression).
- `impl="auto"` picks a plan from the call's static shapes, dtype, backend
  and precision by `choose_plan`. The rule below was calibrated on the
  2-core AMD EPYC (Zen 4, AVX-512) CPU this project is tested on, jax 0.10.2,
  float32 and bfloat16, each term of each formulation timed side by side
  (`experiments/bench`, README "Benchmark" and "Fast algorithms"):

  | backend | formulation | when (else lax)                                         |
  |---------|-------------|---------------------------------------------------------|
  | CPU     | depthwise   | output: fft if T > 121 S, else einsum (tap sum)          |
  |         | (groups > 1,| input grad: fft if T > 25 S, else einsum                 |
  |         | 1 channel   | kernel grad: fft if T >= 9 S and T * N * Ho * Wo >= 2**16, |
  |         | a group)    | else einsum                                             |
  | CPU     | all three   | tiny (groups == 1, T * C_in <= 32, C_out <= 8): einsum  |
  |         |             | from 256 output pixels (N * Ho * Wo), else lax          |
  | CPU     | all three   | winograd: 3x3, stride 1, groups > 1 or C_in >= 64, and  |
  |         |             | at least 128 output tiles (N * ceil(Ho/4) * ceil(Wo/4)) |
  | CPU     | output and  | fft: groups == 1, stride 1, T >= 169 (13x13 and up);    |
  |         | input grad  | kernel grad then as the last row                        |
  | CPU, 3D | in. / ker.  | einsum (output lax)                                     |
  | CPU     | input grad  | einsum if groups > 1 or strides > 1, float32 or wider   |
  | CPU     | kernel grad | einsum if 1x1 kernel, C_in == 1 or input-dilated        |
  | GPU/TPU | all three   | lax                                                     |

  The first row that matches decides (the rows below a winograd or fft row
  apply to what it leaves).

  Where oneDNN runs (`onednn_applies`: the extension loaded, the CPU, one
  device in the process, float32 inputs summed in float32), the plan above
  is rewritten for every layer but the tiny ones, by these rows, first match:

  | layer                   | output / input grad / kernel grad                |
  |-------------------------|--------------------------------------------------|
  | depthwise               | onednn (3D: einsum) / onednn (einsum if strided) |
  |                         | / onednn (fft from 121 taps, 11x11, in 1D from   |
  |                         | 17, at the default precision)                    |
  | groups == 1, C_in == 1  | as above / as above / onednn                     |
  | 2D, groups == 1, C_in > | as above (the XLA plan) / as above / as above    |
  | 4, KH*KW > 1, oneDNN    |                                                  |
  | without AVX-512         |                                                  |
  | dense fft row           | fft / fft / onednn                               |
  | winograd row, groups == | winograd / onednn / onednn                       |
  | 1, C_in >= 128          |                                                  |
  | everything else         | onednn / onednn / onednn                         |

  Calibrated on the 2-core Intel Xeon (AVX-512) of `make bench`, each term of
  each formulation timed side by side on the benchmark's shapes
  (`experiments/bench`): oneDNN's direct kernels win every depthwise and
  grouped term, the 1x1 and the stem (2-8x over the XLA formulations there),
  and dense 3x3 layers up to 64 channels; Winograd still wins the output of
  dense 3x3 layers from 128 channels (resnet28: 16 ms against 23 ms), not
  their input gradient; the einsum's strided windows win a strided depthwise
  input gradient, lax the one-channel image layer's output and input gradient,
  the FFT the large depthwise kernel gradient (13x13: 19 ms against oneDNN's
  34). The rule keys on the CPU where the two classes differ: with oneDNN and
  XLA both held to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`, `--xla_cpu_max_isa=AVX2`,
  the project's AVX2 EPYC class) oneDNN still wins the depthwise, strided
  depthwise and stem layers (fwd+bwd 18, 9 and 85 ms against XLA's 64, 34 and
  153) but loses the dense ones (resnet56, resnet28: 116 and 94 ms against
  Winograd's 84 and 51; the 1x1 layer 96-113 against 110-117), so there
  ungrouped layers with a spatial kernel and from 5 input channels keep the
  XLA plan (`Status.avx512`, asked of oneDNN itself). oneDNN's sums are
  float32 direct sums, as lax's: it runs at every precision.

  In the first table, T = KH * KW taps, S = strides[0] * strides[1]
  (input pixels per output pixel: the FFT computes every stride-1 output,
  the direct sums only the strided ones), and "input-dilated" is a strided
  transposed convolution or an `input_dilation`. In 1D and 3D the same rows
  apply with T the product of the kernel's spatial sizes, S that of the
  strides and pixels counted over every spatial axis (Winograd's row is 2D
  only; oneDNN runs 3D by its own handler and 1D as a row of 2D), and the
  rank rows were timed the same way on 1D layers (WaveNet's causal dilated
  one, a 1D ResNet layer, a strided one, depthwise with 9 and 31 taps, a
  64-tap dense one) and 3D ones (VoxNet's, a 3D U-Net layer at 32^3, a
  strided and a depthwise one): oneDNN wins almost every term in 1D (a 1D
  ResNet layer 1.5 / 1.5 / 1.9 ms against lax's 4.9 / 4.0 / 3.5) but its 1D
  depthwise kernel gradient from 17 taps (the FFT's 13 ms against 49; a
  whole step of 31 taps 14.6 ms against all-oneDNN's 163); in 3D oneDNN
  wins every dense term by 3-35x (U-Net kernel gradient 6.2 ms against
  lax's 126) and the tap sum the depthwise output (3.7 against 27.5);
  without oneDNN (bfloat16) lax's 3D gradients are the slow ones (a
  strided input gradient 209 ms against the einsum's 2.3). The fft and
  winograd rows apply only at the default precision (`precision` None or
  "default") and without input dilation; any other precision gets the
  direct sums (lax, einsum). Why: XLA's CPU
  convolutions are fast for channel-rich, ungrouped, unit-stride 3x3
  layers, which Winograd F(4x4, 3x3) still beats by doing 4x fewer
  multiplications (its per-position GEMMs need enough tiles to be worth the
  transforms); grouped and depthwise convolutions and the input gradient of
  a strided one take slow paths there; a kernel gradient with one input
  channel, a 1x1 kernel or a stretched input is a GEMM the einsum's im2col
  does better; and the FFT's cost does not grow with the kernel, so it wins
  every large-kernel term and the depthwise kernel gradient (a reduction
  over every pixel, slow as a direct sum on the CPU) from 3x3 on.

  Accuracy: lax and einsum sum the same products at the requested
  precision, in float32 or wider for bfloat16 and float16 inputs (every
  public function's body, `jconv._conv._run`, hands each formulation
  `preferred_element_type=float32` for them, `jconv._spec.accumulation_dtype`,
  and rounds the result, bias added, once; JAX transposes that cast, so the
  input, kernel and bias gradients sum in float32 too and are rounded once),
  and so share one error bound. The fast algorithms do not: the FFT's
  error is bounded by the planes' norms (measured as accurate as lax on the
  benchmark's shapes, about 2e-7 of max|y| in float32), Winograd F(4x4)'s is
  about 7x lax's in float32 (6e-6 of max|y| against 9e-7); in bfloat16 the
  output's rounding dominates all of them. Hence the default-precision rule
  above: asking for `precision="highest"` keeps `auto` as accurate as lax.

  Complex arrays take the same plans: every formulation is linear (Winograd's
  transforms have real coefficients, the FFT takes full complex transforms),
  and the custom JVP's tangents are the same bilinear map, which JAX
  transposes (no conjugation) for reverse mode. `preferred_element_type`
  reaches every formulation and every tangent: each sums in it and returns
  it, and JAX's transposes return the gradients in the inputs' dtypes.

  An empty output (a batch of no images, or an input axis with no pixels,
  `jconv._spec`) is zeros in every formulation, built without windows, tiles
  or spectra, and so are its tangents; `choose_plan` reads N = 0 as it reads
  any batch (no Winograd: no tiles).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jconv import _lax
from jconv._einsum import SMALL_CONTRACTION, SMALL_OUTPUT, conv2d_einsum_core
from jconv._fft import conv2d_fft_core
from jconv._onednn import conv2d_onednn_core
from jconv._onednn import status as onednn_status
from jconv._spec import ConvSpec
from jconv._winograd import conv2d_winograd_core, supports


class Plan(NamedTuple):
    """The formulation of the output, the input gradient, the kernel gradient."""

    output: str = "lax"
    input_grad: str = "lax"
    kernel_grad: str = "lax"


LAX = Plan()
EINSUM = Plan("einsum", "einsum", "einsum")
WINOGRAD = Plan("winograd", "winograd", "winograd")
ONEDNN = Plan("onednn", "onednn", "onednn")
# Output pixels (N * H_out * W_out) from which a tiny layer runs on einsum;
# below, each call is a few microseconds and lax's is the shorter program.
TINY_EINSUM_PIXELS = 256
# Where the FFT (`jconv._fft`) takes over, in kernel taps (KH * KW) per input
# pixel an output reads (strides[0] * strides[1]): a depthwise output above
# 121 (11x11), its input gradient above 25 (5x5), its kernel gradient from 9
# taps once taps * output pixels reach 2**16; a dense (groups == 1, stride 1)
# output and input gradient from 169 (13x13).
FFT_DEPTHWISE_OUTPUT_TAPS = 121
FFT_DEPTHWISE_INPUT_TAPS = 25
FFT_DEPTHWISE_KERNEL_TAPS = 9
FFT_DEPTHWISE_KERNEL_WORK = 2**16
FFT_DENSE_TAPS = 169
# Winograd F(4x4, 3x3) (`jconv._winograd`) for 3x3 stride-1 layers with groups
# or at least 64 input channels, from 128 output tiles of 4x4 (N * ceil(H_out
# / 4) * ceil(W_out / 4)); with fewer tiles its per-position GEMMs are too
# thin to pay for the transforms.
WINOGRAD_MIN_TILES = 128
WINOGRAD_MIN_CHANNELS = 64
# With oneDNN (`jconv._onednn`): Winograd keeps the output of the ungrouped
# layers it applies to from 128 input channels; the FFT keeps the
# depthwise kernel gradient from 121 taps (11x11).
ONEDNN_WINOGRAD_CHANNELS = 128
# Where oneDNN has only its AVX2 kernels, ungrouped layers with a spatial
# kernel keep the XLA plan above this many input channels (the ResNet layers;
# the image layers up to it, the stem, and 1x1 layers still gain).
ONEDNN_AVX2_IMAGE_CHANNELS = 4
ONEDNN_FFT_DEPTHWISE_KERNEL_TAPS = 121
# In 1D (oneDNN runs it as a row of 2D) its depthwise kernel gradient slows
# down from about 17 taps: 49 ms against the FFT's 13 at 17 taps.
ONEDNN_FFT_DEPTHWISE_KERNEL_TAPS_1D = 17


# The formulations that are one function for the output and both tangents
# (JAX differentiates them as they stand); lax has a tangent of its own per
# direction.
CORES = {
    "einsum": conv2d_einsum_core,
    "fft": conv2d_fft_core,
    "winograd": conv2d_winograd_core,
    "onednn": conv2d_onednn_core,
}
OUTPUT = {"lax": _lax.conv_nhwc, **CORES}
INPUT_TANGENT = {"lax": _lax.input_tangent, **CORES}
KERNEL_TANGENT = {"lax": _lax.kernel_tangent, **CORES}


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _planned(x, kernel, spec: ConvSpec, precision, plan: Plan, preferred):
    return OUTPUT[plan.output](
        x, kernel, spec, precision, preferred_element_type=preferred
    )


def _planned_jvp(spec, precision, plan, preferred, primals, tangents):
    # The tangent is the same bilinear map, in both arguments: JAX transposes
    # it into the gradients (for complex arrays too: the transpose, with no
    # conjugation, is what JAX's reverse mode takes of a holomorphic map).
    x, kernel = primals
    x_dot, kernel_dot = tangents
    y = _planned(x, kernel, spec, precision, plan, preferred)
    extra = dict(preferred_element_type=preferred)
    parts = []
    if type(x_dot) is not SymbolicZero:
        tangent = INPUT_TANGENT[plan.input_grad]
        parts.append(tangent(x_dot, kernel, spec, precision, **extra))
    if type(kernel_dot) is not SymbolicZero:
        tangent = KERNEL_TANGENT[plan.kernel_grad]
        parts.append(tangent(x, kernel_dot, spec, precision, **extra))
    if not parts:
        return y, jnp.zeros_like(y)
    return y, parts[0] if len(parts) == 1 else parts[0] + parts[1]


_planned.defjvp(_planned_jvp, symbolic_zeros=True)


def run_plan(
    x, kernel_hwio, spec: ConvSpec, precision, plan: Plan, preferred_element_type=None
):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias, by
    `plan`, summed in and returned as `preferred_element_type` (None: `x`'s
    dtype). A channels_first input is transposed to NHWC around it."""
    if plan.output in CORES and plan == (plan.output,) * 3:
        return CORES[plan.output](
            x,
            kernel_hwio,
            spec,
            precision,
            preferred_element_type=preferred_element_type,
        )
    nhwc = dataclasses.replace(spec, channels_first=False)
    x_nhwc = jnp.moveaxis(x, 1, -1) if spec.channels_first else x
    y = _planned(x_nhwc, kernel_hwio, nhwc, precision, plan, preferred_element_type)
    return jnp.moveaxis(y, -1, 1) if spec.channels_first else y


def _depthwise_plan(n: int, taps: int, spec: ConvSpec) -> Plan:
    """Depthwise on the CPU, fast algorithms allowed: einsum's tap sum, or the
    FFT where the kernel is large for the stride (the table's rows)."""
    per_output = math.prod(spec.strides)  # input pixels per output
    pixels = n * math.prod(spec.out_hw)
    output = "fft" if taps > FFT_DEPTHWISE_OUTPUT_TAPS * per_output else "einsum"
    input_grad = "fft" if taps > FFT_DEPTHWISE_INPUT_TAPS * per_output else "einsum"
    kernel_fft = (
        taps >= FFT_DEPTHWISE_KERNEL_TAPS * per_output
        and taps * pixels >= FFT_DEPTHWISE_KERNEL_WORK
    )
    return Plan(output, input_grad, "fft" if kernel_fft else "einsum")


def fast_algorithms_allowed(precision) -> bool:
    """Whether `precision` lets `auto` trade a direct sum's error bound for a
    fast algorithm's: only the backend default (None or "default")."""
    return precision is None or precision == lax.Precision.DEFAULT


def onednn_applies(dtype, preferred_element_type, backend: str) -> bool:
    """Whether `auto` may run oneDNN (`jconv._onednn`): loaded, on the CPU
    with one device in the process (a custom call is not partitioned: under a
    multi-device mesh the XLA formulations keep a sharded batch sharded), for
    float32 summed in float32 (bfloat16 and float16 keep the XLA
    formulations: this oneDNN path computes them in float32)."""
    float32 = jnp.dtype(dtype) == jnp.float32 and preferred_element_type in (
        None,
        jnp.float32,
    )
    return (
        float32
        and backend == "cpu"
        and onednn_status().available
        and len(jax.devices("cpu")) == 1
    )


def _onednn_plan(
    c_in: int, kernel_hwio_shape, spec: ConvSpec, xla: Plan, fast, avx512: bool
) -> Plan:
    """oneDNN's rows of the table, given the XLA plan `xla` of a layer that
    is not tiny; `avx512`: whether oneDNN runs its AVX-512 kernels."""
    *kernel_hw, c_group, _ = kernel_hwio_shape
    taps = math.prod(kernel_hw)
    strided = any(s != 1 for s in spec.strides)
    if spec.groups > 1 and c_group == 1:  # depthwise
        fft_taps = (
            ONEDNN_FFT_DEPTHWISE_KERNEL_TAPS_1D
            if spec.rank == 1
            else ONEDNN_FFT_DEPTHWISE_KERNEL_TAPS
        )
        kernel_fft = fast and taps >= fft_taps
        return Plan(
            "einsum" if spec.rank == 3 else "onednn",
            "einsum" if strided else "onednn",
            "fft" if kernel_fft else "onednn",
        )
    if spec.groups == 1 and c_in == 1:
        return Plan(xla.output, xla.input_grad, "onednn")
    spatial = taps > 1
    if (
        spec.rank == 2
        and spec.groups == 1
        and spatial
        and c_in > ONEDNN_AVX2_IMAGE_CHANNELS
        and not avx512
    ):
        return xla
    if xla.output == "fft":
        return Plan("fft", "fft", "onednn")
    if xla == WINOGRAD and spec.groups == 1 and c_in >= ONEDNN_WINOGRAD_CHANNELS:
        return Plan("winograd", "onednn", "onednn")
    return ONEDNN


def choose_plan(
    n: int,
    c_in: int,
    kernel_hwio_shape,
    spec: ConvSpec,
    dtype,
    backend: str,
    precision=None,
    onednn: bool = False,
) -> Plan:
    """`impl="auto"`'s plan for `n` images of `c_in` channels at `precision`:
    the table in the module doc; `onednn`: whether oneDNN may run
    (`onednn_applies`)."""
    plan = _xla_plan(n, c_in, kernel_hwio_shape, spec, dtype, backend, precision)
    *kernel_hw, _, c_out = kernel_hwio_shape
    tiny = spec.groups == 1 and math.prod(kernel_hw) * c_in <= SMALL_CONTRACTION
    if not onednn or (tiny and c_out <= SMALL_OUTPUT):
        return plan
    fast = fast_algorithms_allowed(precision)
    avx512 = onednn_status().avx512
    return _onednn_plan(c_in, kernel_hwio_shape, spec, plan, fast, avx512)


def _xla_plan(
    n: int, c_in: int, kernel_hwio_shape, spec: ConvSpec, dtype, backend: str, precision
) -> Plan:
    """The plan among the XLA formulations (lax, einsum, fft, winograd)."""
    if backend != "cpu":
        return LAX
    *kernel_hw, c_group, c_out = kernel_hwio_shape
    taps = math.prod(kernel_hw)
    fast = fast_algorithms_allowed(precision) and not spec.stretched
    if spec.groups > 1 and c_group == 1:
        return _depthwise_plan(n, taps, spec) if fast else EINSUM
    tiny = spec.groups == 1 and taps * c_in <= SMALL_CONTRACTION
    if tiny and c_out <= SMALL_OUTPUT:
        pixels = n * math.prod(spec.out_hw)
        return EINSUM if pixels >= TINY_EINSUM_PIXELS else LAX
    if fast and supports(kernel_hwio_shape, spec):
        tiles = n * -(-spec.out_hw[0] // 4) * -(-spec.out_hw[1] // 4)
        wide = spec.groups > 1 or c_in >= WINOGRAD_MIN_CHANNELS
        if tiles >= WINOGRAD_MIN_TILES and wide:
            return WINOGRAD
    strided = any(s != 1 for s in spec.strides)
    large = spec.groups == 1 and not strided and taps >= FFT_DENSE_TAPS
    if fast and large:
        return Plan("fft", "fft", "einsum" if c_in == 1 else "lax")
    if spec.rank == 3:
        # XLA's 3D CPU convolutions are slow to differentiate: a strided
        # input gradient 217 ms against the einsum's 2.5 (bfloat16), the
        # kernel gradient 3-8x on small volumes, par on large ones.
        return Plan("lax", "einsum", "einsum")
    narrow = jnp.dtype(dtype).itemsize < 4  # bfloat16, float16
    input_grad = "einsum" if (spec.groups > 1 or strided) and not narrow else "lax"
    pointwise = taps == 1
    kernel_grad = "einsum" if spec.stretched or pointwise or c_in == 1 else "lax"
    return Plan("lax", input_grad, kernel_grad)


def conv2d_auto_core(
    x, kernel_hwio, spec: ConvSpec, precision, preferred_element_type=None
):
    """`impl="auto"`: the plan `choose_plan` picks for this call."""
    c_in = x.shape[1] if spec.channels_first else x.shape[-1]
    backend = jax.default_backend()
    onednn = onednn_applies(x.dtype, preferred_element_type, backend)
    plan = choose_plan(
        x.shape[0], c_in, kernel_hwio.shape, spec, x.dtype, backend, precision, onednn
    )
    return run_plan(x, kernel_hwio, spec, precision, plan, preferred_element_type)


def conv2d_lax_core(
    x, kernel_hwio, spec: ConvSpec, precision, preferred_element_type=None
):
    """`impl="lax"`: every formulation lax, derivatives in canonical layouts."""
    return run_plan(x, kernel_hwio, spec, precision, LAX, preferred_element_type)
