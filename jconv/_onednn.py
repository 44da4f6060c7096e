"""`impl="onednn"`: Intel oneDNN's CPU convolutions, called from inside XLA.

The native half is `native/onednn_conv.cc`, an XLA FFI handler that runs one
pass of a float32 channels-last convolution (forward, input gradient, kernel
gradient) as a cached oneDNN primitive; `pip install` builds it where it can
(setup.py) against oneDNN 3.2 from the `onednn-cpu-gomp` wheel. This module
loads it and makes the three passes one JAX primitive, `onednn_conv`, with
the rules JAX needs:

- it is bilinear in its two operands, so its JVP is the sum of two calls of
  itself (`ad.defbilinear`), and each pass transposes into another pass:
  forward -> input gradient and kernel gradient; input gradient -> forward
  and kernel gradient; kernel gradient -> input gradient and forward. Every
  order of forward and reverse mode is therefore oneDNN primitives;
- `vmap` folds the mapped axis into the batch where only images are mapped,
  and into the groups (B * groups, channels side by side) where a kernel is,
  or where a kernel gradient (a sum over the batch) is taken: one call, no
  per-element loop;
- it lowers to one `custom_call` on the CPU only.

Where the extension cannot be built or loaded (not x86-64 Linux, no
compiler, the library missing, or `JCONV_ONEDNN=0` in the environment;
`JCONV_ONEDNN_LIBRARY` names another build of the extension to load),
`status()` says why, an explicit `impl="onednn"` raises a `ValueError` with
that reason, and `impl="auto"` uses the XLA formulations.

float32 only: bfloat16 and float16 inputs are computed in float32 (exact
products, float32 sums: what `jconv._conv._run` asks of every formulation
for them) and rounded by the caller; float64 and complex arrays are refused
by name.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import importlib.metadata
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jconv._spec import ConvSpec, empty_output

TARGET = "jconv_onednn_conv"
# The handler of 3D convolutions (5-D buffers).
TARGET_3D = "jconv_onednn_conv3d"
FORWARD, INPUT_GRAD, KERNEL_GRAD = 0, 1, 2
# The dtypes `impl="onednn"` takes (computed in float32).
DTYPES = ("float32", "bfloat16", "float16")
# oneDNN's kernels index with 32-bit ints: larger strides fail to plan.
INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Status:
    """Whether oneDNN runs here: `available`, and `reason` when it is not;
    `version` of the oneDNN library loaded; `avx512`: whether it runs its
    AVX-512 kernels (the CPU has them and `ONEDNN_MAX_CPU_ISA` allows them)."""

    available: bool
    reason: str = ""
    version: str = ""
    # Whether oneDNN runs its AVX-512 kernels (else AVX2 or older).
    avx512: bool = False


def _preload_onednn() -> None:
    """Loads libdnnl.so.3 from the `onednn-cpu-gomp` distribution by path,
    so that the extension's dependency resolves even where its rpath does
    not point at the library (an unusual install prefix)."""
    try:
        files = importlib.metadata.files("onednn-cpu-gomp") or []
    except importlib.metadata.PackageNotFoundError:
        return
    for file in files:
        if file.name == "libdnnl.so.3":
            ctypes.CDLL(str(file.locate()), mode=ctypes.RTLD_GLOBAL)
            return


@functools.cache
def status() -> Status:
    """Whether `impl="onednn"` can run in this process, and if not why
    (`jconv.onednn_status()`): loads jconv's oneDNN extension once and
    registers its handler with XLA.

    Example:
      >>> import jconv
      >>> s = jconv.onednn_status()
      >>> s.available or bool(s.reason)
      True
    """
    if os.environ.get("JCONV_ONEDNN", "1") == "0":
        return Status(False, "disabled by JCONV_ONEDNN=0 in the environment")
    override = os.environ.get("JCONV_ONEDNN_LIBRARY")
    if override:  # another build of the extension, e.g. with a sanitizer
        found = [Path(override)] if Path(override).is_file() else []
    else:
        found = sorted(Path(__file__).parent.glob("_onednn_ffi*.so"))
    if override and not found:
        return Status(False, f"JCONV_ONEDNN_LIBRARY={override!r} is not a file")
    if not found:
        return Status(
            False,
            "jconv was installed without its oneDNN extension (it is built by "
            "`pip install` on x86-64 Linux with a C++ compiler; see the "
            "install's output)",
        )
    try:
        _preload_onednn()
        library = ctypes.CDLL(str(found[0]))
        handler = library.JconvOnednnConv
        handler_3d = library.JconvOnednnConv3d
        library.JconvOnednnVersion.restype = ctypes.c_char_p
        version = library.JconvOnednnVersion().decode()
        avx512 = bool(library.JconvOnednnAvx512())
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(handler), platform="cpu")
        capsule_3d = jax.ffi.pycapsule(handler_3d)
        jax.ffi.register_ffi_target(TARGET_3D, capsule_3d, platform="cpu")
    except (OSError, AttributeError) as error:
        return Status(False, f"jconv's oneDNN extension did not load: {error}")
    return Status(True, version=version, avx512=avx512)


# The public name (`jconv.onednn_status`).
onednn_status = status


def check(x_dtype, preferred_element_type) -> None:
    """Refuses, while tracing, what `impl="onednn"` cannot run: no extension,
    a backend other than the CPU, a dtype other than float32, bfloat16 and
    float16, or a wider `preferred_element_type`."""
    loaded = status()
    if not loaded.available:
        raise ValueError(f"impl='onednn' cannot run here: {loaded.reason}")
    if jax.default_backend() != "cpu":
        raise ValueError(
            f"impl='onednn' runs on the CPU; the default backend is "
            f"{jax.default_backend()!r}: use impl='auto' or 'lax'"
        )
    for name, dtype in (
        ("x", x_dtype),
        ("preferred_element_type", preferred_element_type),
    ):
        if dtype is not None and jnp.dtype(dtype).name not in DTYPES:
            raise TypeError(
                f"impl='onednn' computes in float32; `{name}` has dtype "
                f"{jnp.dtype(dtype).name}: use impl='auto' or 'lax' for float64 "
                f"and complex arrays"
            )


def _size(size, k, stride, low, high, dilation) -> int:
    span = (k - 1) * dilation + 1
    return max(size + low + high - span, -1) // stride + 1


def _shape(pass_, a, b, *, strides, dilation, pads, groups, image_hw, kernel_hw, **_):
    """The output shape of `pass_` on operand shapes `a` and `b`."""
    if pass_ == FORWARD:
        n, *hw, _ = a
        *k_hw, _, c_out = b
        size = [_size(*args) for args in zip(hw, k_hw, strides, *zip(*pads), dilation)]
        return (n, *size, c_out)
    if pass_ == INPUT_GRAD:
        return (a[0], *image_hw, b[-2] * groups)
    return (*kernel_hw, a[-1] // groups, b[-1])


onednn_conv_p = Primitive("jconv_onednn_conv")


def _abstract(a, b, *, pass_, **params):
    return ShapedArray(_shape(pass_, a.shape, b.shape, **params), jnp.float32)


onednn_conv_p.def_abstract_eval(_abstract)


@onednn_conv_p.def_impl
def _eager(a, b, **params):
    # Outside `jit` (e.g. `jax.jvp` of an unjitted call): compile the one call.
    return jax.jit(functools.partial(onednn_conv_p.bind, **params))(a, b)


def call(pass_, a, b, **params):
    """One pass on float32 channels-last operands; an empty result is zeros
    (oneDNN takes no empty tensor)."""
    shape = _shape(pass_, a.shape, b.shape, **params)
    if 0 in shape or 0 in a.shape or 0 in b.shape:
        return jnp.zeros(shape, jnp.float32)
    return onednn_conv_p.bind(a, b, pass_=pass_, **params)


def _lowering(ctx, a, b, *, pass_, strides, dilation, pads, groups, any_weights, **_):
    loaded = status()  # registers the handler with XLA, once
    if not loaded.available:
        raise ValueError(f"impl='onednn' cannot run here: {loaded.reason}")
    rule = jax.ffi.ffi_lowering(TARGET_3D if len(strides) == 3 else TARGET)
    return rule(
        ctx,
        a,
        b,
        **{"pass": np.int64(pass_)},
        strides=np.asarray(strides, np.int64),
        dilation=np.asarray(dilation, np.int64),
        pads=np.asarray([p for pair in pads for p in pair], np.int64),
        groups=np.int64(groups),
        any_weights=np.int64(any_weights[pass_]),
    )


mlir.register_lowering(onednn_conv_p, _lowering, platform="cpu")


# Transposes. With C_k the convolution by kernel k: forward(x, k) = C_k x,
# input_grad(dy, k) = C_k^T dy, kernel_grad(x, dy) = the k with
# <k', kernel_grad(x, dy)> = <C_k' x, dy> for every k'.
def _transpose_lhs(ct, a, b, *, pass_, **params):
    if pass_ == FORWARD:  # a = x
        return call(INPUT_GRAD, ct, b, **dict(params, image_hw=a.aval.shape[1:-1]))
    if pass_ == INPUT_GRAD:  # a = dy: C_k ct
        return call(FORWARD, ct, b, **params)
    # KERNEL_GRAD, a = x: the x-gradient of <ct, kernel_grad(x, dy)> is C_ct^T dy
    return call(INPUT_GRAD, b, ct, **dict(params, image_hw=a.aval.shape[1:-1]))


def _transpose_rhs(ct, a, b, *, pass_, **params):
    if pass_ == FORWARD:  # b = kernel
        params = dict(params, kernel_hw=b.aval.shape[:-2])
        return call(KERNEL_GRAD, a, ct, **params)
    if pass_ == INPUT_GRAD:  # b = kernel: <ct, C_k^T dy> = <C_k ct, dy>
        params = dict(params, kernel_hw=b.aval.shape[:-2])
        return call(KERNEL_GRAD, ct, a, **params)
    # KERNEL_GRAD, b = dy: <ct, kg(x, dy)> = <C_ct x, dy>
    return call(FORWARD, a, ct, **params)


ad.defbilinear(onednn_conv_p, _transpose_lhs, _transpose_rhs)


def _fold_groups(t, axis_size):
    """(B, ..., C) -> (..., B * C): the mapped axis beside the channels."""
    t = jnp.moveaxis(t, 0, -2)
    return t.reshape(*t.shape[:-2], axis_size * t.shape[-1])


def _batch(args, dims, *, pass_, groups, **params):
    a, b = args
    da, db = dims
    size = a.shape[da] if da is not None else b.shape[db]
    images_only = pass_ != KERNEL_GRAD and db is None
    if images_only:
        # Fold the mapped axis into the batch: (B, N, ...) -> (B * N, ...).
        a = jnp.moveaxis(a, da, 0)
        folded = a.reshape(size * a.shape[1], *a.shape[2:])
        out = call(pass_, folded, b, groups=groups, **params)
        return out.reshape(size, a.shape[1], *out.shape[1:]), 0
    # Side by side as groups: B * groups groups, channels (B, C) -> B * C.
    a = batching.bdim_at_front(a, da, size)
    b = batching.bdim_at_front(b, db, size)
    out = call(
        pass_,
        _fold_groups(a, size),
        _fold_groups(b, size),
        groups=size * groups,
        **params,
    )
    out = out.reshape(*out.shape[:-1], size, out.shape[-1] // size)
    return jnp.moveaxis(out, -2, 0), 0


batching.primitive_batchers[onednn_conv_p] = _batch


# Input channels up to which the input gradient reads the kernel as it lies
# (HWIO) instead of in the layout oneDNN would choose: an image-input layer
# (RGB, grey), whose blocked layout pads the 3 or 1 channels to 8 or 16 (the
# 7x7 stride-2 ResNet stem: 22 ms against 44 ms, `make bench` machine).
PLAIN_INPUT_GRAD_CHANNELS = 4


def weight_layouts(c_in: int) -> tuple[bool, bool, bool]:
    """Per pass (forward, input gradient, kernel gradient), whether oneDNN
    chooses the kernel's layout (reordered on each call) rather than reading
    HWIO as it is: everywhere but the input gradient of image-input layers."""
    return (True, c_in > PLAIN_INPUT_GRAD_CHANNELS, True)


# The spatial ranks `impl="onednn"` runs: 2D and 3D by their handlers, 1D
# as a 2D convolution over a single row (as PyTorch runs its 1D convolutions
# on oneDNN).
RANKS = (1, 2, 3)


def _as_2d(x, kernel_hwio, spec: ConvSpec):
    """A 1D convolution as the 2D one over one row: `(N, W, C)` as `(N, 1, W,
    C)`, the kernel `(1, KW, I, O)`, unit stride, dilation, no pads along the
    row axis. Reshapes only: the answers and gradients are the same sums."""
    one = dict(
        strides=(1, *spec.strides),
        dilation_rate=(1, *spec.dilation_rate),
        pads=((0, 0), *spec.pads),
        out_hw=(1, *spec.out_hw),
        lhs_dilation=(1, *spec.lhs_dilation),
    )
    axis = 2 if spec.channels_first else 1
    return (
        jnp.expand_dims(x, axis),
        kernel_hwio[None],
        dataclasses.replace(spec, **one),
        axis,
    )


def conv2d_onednn_core(
    x, kernel_hwio, spec: ConvSpec, precision, preferred_element_type=None
):
    """`impl="onednn"`: the batched convolution of `x` (NHWC or NCHW as `spec`
    says; 1D as one row of 2D) by oneDNN, summed in float32 and returned as
    `preferred_element_type` (None: `x`'s dtype). `precision` changes
    nothing: oneDNN's float32 sums are float32's, as lax's on the CPU.

    A stretched input (`lhs_dilation`, the transposed convolution) is
    stretched with zeros and negative pads are cropped by `lax.pad` first;
    oneDNN convolves the rest."""
    if spec.rank == 1:
        x, kernel_hwio, spec, axis = _as_2d(x, kernel_hwio, spec)
        y = conv2d_onednn_core(x, kernel_hwio, spec, precision, preferred_element_type)
        return jnp.squeeze(y, axis)
    del precision
    values = (*x.shape, *kernel_hwio.shape, *spec.strides, *spec.dilation_rate)
    if max(values + sum(spec.pads, ())) > INT32_MAX:
        raise ValueError(
            f"impl='onednn' takes sizes, strides, dilation and pads up to 2**31 - 1; "
            f"got x {x.shape}, kernel {kernel_hwio.shape}, strides {spec.strides}, "
            f"dilation_rate {spec.dilation_rate}, pads {spec.pads}"
        )
    empty = empty_output(x, kernel_hwio, spec, preferred_element_type)
    if empty is not None:
        return empty
    result = x.dtype if preferred_element_type is None else preferred_element_type
    if spec.channels_first:
        x = jnp.moveaxis(x, 1, -1)
    x = x.astype(jnp.float32)
    kernel_hwio = kernel_hwio.astype(jnp.float32)
    crop = [(min(lo, 0), min(hi, 0)) for lo, hi in spec.pads]
    stretch = [d - 1 for d in spec.lhs_dilation]
    if any(d for d in stretch) or any(lo or hi for lo, hi in crop):
        config = [(0, 0, 0), *[(*c, d) for c, d in zip(crop, stretch)], (0, 0, 0)]
        x = lax.pad(x, jnp.zeros((), x.dtype), config)
    pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in spec.pads)
    y = call(
        FORWARD,
        x,
        kernel_hwio,
        strides=spec.strides,
        dilation=spec.dilation_rate,
        pads=pads,
        groups=spec.groups,
        image_hw=(),
        kernel_hw=(),
        any_weights=weight_layouts(x.shape[-1]),
    )
    if spec.channels_first:
        y = jnp.moveaxis(y, -1, 1)
    return y.astype(result)
