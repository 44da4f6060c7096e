"""Validation and normalisation of every convolution argument, once, at trace
time.

`conv_spec` (and its variants `transpose_spec`, `depthwise_groups`) turn user
arguments into a hashable `ConvSpec`; the implementations only ever see a
`ConvSpec`, so they share one reading of the arguments. The public shape
helpers (`jconv.resolve_padding`, `jconv.conv_output_shape`, ...) check their
arguments here too.

String arguments (`padding`, `padding_mode`, `data_format`, `impl`, the names
of a `precision`) are read in any case, as Keras reads `padding` and
`data_format`, and normalised to lower case.

Sizes: every array a convolution builds (the padded or stretched input, the
output, the einsum implementation's window buffer) must be one XLA can
represent (element count and bytes below 2**63) and one that fits in the
memory of every device JAX sees, together (for the CPU: physical memory plus
swap). Anything larger cannot be allocated however it is sharded, and XLA
aborts the process on some of these (an int64 overflow, a failed allocation),
so they are refused here, at trace time, by a `ValueError` naming `padding`
and the shape it would make.

Empty arrays: a batch of no images is accepted wherever one image is (its
output is empty, its gradients zeros), as in PyTorch and lax. An input axis
with no pixels gives an output axis of `(size + pad_lo + pad_hi - span) //
stride + 1` pixels where that is not negative (0 for "same", whatever the
stride), as lax gives; a negative size is refused, naming the kernel and the
padding. (lax clamps it to 0; PyTorch refuses every empty spatial axis.) On a
non-empty axis the kernel must fit the padded input, as in PyTorch and Keras.

Accumulation: `accumulation_dtype` is the one rule for the dtype the sums
run in, for every implementation and, through JAX's transposes, every
gradient.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jconv._padding import (
    INT64_MAX,
    PADDING_MODES,
    Pads,
    Pair,
    _is_int,
    resolve_padding,
    resolve_transpose_padding,
    show,
    stretched_pads,
    stretched_size,
)

DATA_FORMATS = ("channels_last", "channels_first")
# The implementations: two direct sums of products (what the tests bound by
# the length of those sums), the FFT one and oneDNN's (`jconv._onednn`, a
# direct sum too, in float32 only); and what `impl` accepts.
DIRECT_IMPLS = ("lax", "einsum")
IMPL_NAMES = (*DIRECT_IMPLS, "fft", "onednn")
IMPL_CHOICES = ("auto", *IMPL_NAMES)


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated convolution of 1, 2 or 3 spatial axes, in the terms the
    implementations use: every per-axis field (`strides`, `dilation_rate`,
    `pads`, `out_hw`, the output's spatial sizes, and `lhs_dilation`) has one
    entry per spatial axis, so `rank` is their length.

    `lhs_dilation` stretches the input by `lhs_dilation - 1` zeros between
    pixels before padding (`input_dilation`, and how a transposed convolution
    runs as a direct one); pads may then be negative, which crops. Left
    empty, it is 1 on every axis. `padding_mode` says how `pads` are filled;
    the implementations only ever see "zeros" (`conv` pads other modes
    itself first).
    """

    strides: tuple[int, ...]
    dilation_rate: tuple[int, ...]
    pads: Pads
    groups: int
    channels_first: bool
    batched: bool
    out_hw: tuple[int, ...]
    lhs_dilation: tuple[int, ...] = ()
    padding_mode: str = "zeros"

    def __post_init__(self):
        if not self.lhs_dilation:
            object.__setattr__(self, "lhs_dilation", (1,) * len(self.strides))

    @property
    def rank(self) -> int:
        """The number of spatial axes."""
        return len(self.strides)

    @property
    def stretched(self) -> bool:
        """Whether the input is stretched (input dilation above 1)."""
        return any(s != 1 for s in self.lhs_dilation)


@dataclasses.dataclass(frozen=True)
class _Input:
    """What the input's shape says, once its rank and format are checked."""

    channels_first: bool
    batched: bool
    shape: tuple[int, ...]  # always batched
    channels: int
    hw: tuple[int, ...]  # the spatial sizes


# The spatial ranks every convolution takes.
RANKS = (1, 2, 3)
# What one value per spatial axis is called in messages, by rank.
_PER_AXIS = {
    1: "a sequence of 1 int",
    2: "a pair of ints",
    3: "a sequence of 3 ints (one per spatial axis)",
}


def _is_ints(value, rank: int = 2) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == rank
        and all(_is_int(v) for v in value)
    )


def _int_pair(value, name: str, minimum: int, rank: int = 2) -> tuple[int, ...]:
    """An int or one int per spatial axis (`rank` of them), each at least
    `minimum` (0 or 1)."""
    if _is_int(value):
        pair = (value,) * rank
    elif _is_ints(value, rank):
        pair = tuple(value)
    else:
        raise TypeError(f"`{name}` (={value!r}) must be an int or {_PER_AXIS[rank]}")
    pair = tuple(int(v) for v in pair)
    if min(pair) < minimum:
        rule = "be positive" if minimum == 1 else "not be negative"
        raise ValueError(f"`{name}` (={show(value)}) must {rule}")
    if max(pair) > INT64_MAX:
        raise ValueError(
            f"`{name}` (={show(value)}) must be at most 2**63 - 1: XLA's sizes "
            f"are 64-bit"
        )
    return pair


def _positive_pair(value, name: str, rank: int = 2) -> tuple[int, ...]:
    return _int_pair(value, name, 1, rank)


def _positive_int(value, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"`{name}` (={value!r}) must be an int")
    if value < 1:
        raise ValueError(f"`{name}` (={value!r}) must be positive")
    return int(value)


def choice(value, name: str, choices: Sequence[str]) -> str:
    """`value` lower-cased, if it names one of `choices` in any case."""
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    raise ValueError(f"`{name}` (={value!r}) must be one of {tuple(choices)}")


_PRECISION_HELP = (
    "must be None, a `jax.lax.Precision` or one of its names ('default', "
    "'high', 'highest', 'bfloat16', 'tensorfloat32', 'float32', ...), a pair "
    "of those (input, kernel), a `jax.lax.DotAlgorithmPreset` or its name, or "
    "a `jax.lax.DotAlgorithm`"
)


def _one_precision(value) -> lax.Precision | None:
    if isinstance(value, lax.Precision):
        return value
    if isinstance(value, str):
        try:
            return lax.Precision(value.lower())
        except ValueError:
            return None
    return None


def canonical_precision(precision):
    """What the contraction takes: None, a `lax.Precision`, a pair of them, a
    `lax.DotAlgorithmPreset` or a `lax.DotAlgorithm` (all hashable, so
    `jit` can hold them static). Names are read in any case."""
    if precision is None or isinstance(
        precision, lax.DotAlgorithm | lax.DotAlgorithmPreset
    ):
        return precision
    one = _one_precision(precision)
    if one is not None:
        return one
    if isinstance(precision, str):
        preset = lax.DotAlgorithmPreset.__members__.get(precision.upper())
        if preset is not None:
            return preset
    elif isinstance(precision, Sequence) and len(precision) == 2:
        pair = tuple(_one_precision(p) for p in precision)
        if None not in pair:
            return pair
    raise ValueError(f"`precision` (={precision!r}) {_PRECISION_HELP}")


def check_shape(shape, name: str) -> tuple[int, ...]:
    """A shape given as a sequence of non-negative ints (the shape helpers'
    `input_shape`, `kernel_shape`), as a tuple of Python ints."""
    try:
        dims = None if isinstance(shape, str) else tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(_is_int(d) for d in dims):
        raise TypeError(f"`{name}` (={shape!r}) must be a sequence of ints")
    if any(d < 0 for d in dims):
        raise ValueError(f"`{name}` (={shape!r}) must not have negative sizes")
    return tuple(int(d) for d in dims)


@functools.cache
def _host_memory_bytes() -> int | None:
    """Physical memory plus swap (None if the OS does not say): no single
    allocation on this host can be larger."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("SwapTotal:"):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total


@functools.cache
def _device_memory_bytes() -> int | None:
    """The memory of every device JAX runs on, together: the most any array
    can use, however it is sharded (None if a device does not say). Asked
    only for arrays larger than the host's memory, so ordinary calls never
    start a backend from here."""
    try:
        devices = jax.local_devices()
        if all(d.platform == "cpu" for d in devices):
            per_process = _host_memory_bytes()
        else:
            limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
            per_process = None if None in limits else sum(limits)
        return None if per_process is None else per_process * jax.process_count()
    except Exception:  # a backend without memory statistics
        return None


def _approx(n: int) -> str:
    if n < 10**15:
        return f"{n:,}"
    digits = str(n)
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _bytes_text(n: int) -> str:
    if n >= 1000 * 2**60:
        return f"{_approx(n)} bytes"
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:,} bytes"


def check_allocatable(what: str, shape, itemsize: int, cause, hint="") -> None:
    """Refuses an array of `shape` that XLA cannot represent or that no device
    JAX sees could hold (see the module doc); `cause()` names the arguments
    (a function: the message is built only when it is needed)."""
    elements = math.prod(shape)
    nbytes = elements * itemsize
    if max(nbytes, *shape) <= INT64_MAX:
        host = _host_memory_bytes()
        if host is not None and nbytes <= host:
            return
        known = [m for m in (host, _device_memory_bytes()) if m is not None]
        if not known or nbytes <= max(known):
            return
        reason = (
            f"more than the {_bytes_text(max(known))} of memory that the devices "
            f"JAX sees have together (for the CPU: physical memory plus swap), so "
            f"it cannot be allocated however it is sharded"
        )
    else:
        reason = "beyond what XLA can represent (its sizes are 64-bit)"
    raise ValueError(
        f"{cause()} makes {what} of shape {tuple(shape)}: {_approx(elements)} "
        f"elements, {_bytes_text(nbytes)} at {itemsize} bytes each; that is "
        f"{reason}{hint}"
    )


def _is_inexact(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(
        dtype, jnp.complexfloating
    )


def _check_floating(array, name: str) -> None:
    """Floating or complex: integer and bool arrays are refused by name."""
    if not _is_inexact(array.dtype):
        raise TypeError(
            f"`{name}` has dtype {array.dtype}; it must be a floating dtype "
            f"(float32, bfloat16, float16, float64) or a complex one (complex64, "
            f"complex128): cast it, e.g. `{name}.astype(jnp.float32)`"
        )


def preferred_dtype(preferred_element_type, dtype):
    """`preferred_element_type` as a canonical dtype (None stays None), checked
    against `dtype`, the inputs' promoted dtype, as `lax.conv_general_dilated`
    checks it: a dtype (`TypeError` otherwise) of the same kind (floating for
    floating inputs, complex for complex ones: `TypeError`) and not narrower
    (`ValueError`). It is the result's dtype and the one sums accumulate in."""
    if preferred_element_type is None:
        return None
    try:
        named = jnp.dtype(preferred_element_type)
    except TypeError:
        raise TypeError(
            f"`preferred_element_type` (={preferred_element_type!r}) must be None "
            f"or a dtype, e.g. jnp.float32"
        ) from None
    preferred = jax.dtypes.canonicalize_dtype(named)
    value, dtype = named.name, jnp.dtype(dtype)
    complex_inputs = jnp.issubdtype(dtype, jnp.complexfloating)
    kind = jnp.complexfloating if complex_inputs else jnp.floating
    if not jnp.issubdtype(preferred, kind):
        what = "complex" if kind is jnp.complexfloating else "floating"
        raise TypeError(
            f"`preferred_element_type` (={value}) must be a {what} dtype for "
            f"{dtype} inputs, as in `jax.lax.conv_general_dilated`"
        )
    if preferred.itemsize < jnp.dtype(dtype).itemsize:
        raise ValueError(
            f"`preferred_element_type` (={value}) must not be narrower than the "
            f"inputs' dtype {dtype} (as in `jax.lax.conv_general_dilated`): it is "
            f"the dtype the sums accumulate in; cast the result instead"
        )
    return preferred


def accumulation_dtype(dtype, preferred_element_type):
    """The `preferred_element_type` an implementation is given for inputs of
    `dtype`: the caller's, but float32 where the result's dtype
    (`preferred_element_type`, None: `dtype`) is a narrower floating one
    (bfloat16, float16), which the caller then rounds once, at the end, as
    PyTorch accumulates them. A half-precision sum of a few thousand terms (a
    bias gradient over the pixels of a batch) is otherwise off by about 1% in
    float16 and by tens of percent in bfloat16."""
    result = jnp.dtype(
        dtype if preferred_element_type is None else preferred_element_type
    )
    if jnp.issubdtype(result, jnp.floating) and result.itemsize < 4:
        return jnp.dtype(jnp.float32)
    return preferred_element_type


def empty_output(x, kernel_hwio, spec: ConvSpec, preferred_element_type):
    """The output of a formulation's core for a batched `x`, when it is empty
    (no image, or an input axis with no pixels): zeros of its shape and dtype,
    and no gradient to take (the core builds no window, tile or spectrum).
    None when the output has elements."""
    shape = _layout(x.shape[0], spec.out_hw, kernel_hwio.shape[-1], spec.channels_first)
    if 0 not in shape:
        return None
    dtype = x.dtype if preferred_element_type is None else preferred_element_type
    return jnp.zeros(shape, dtype)


# The spatial axes' names by rank, in layouts and messages.
SPATIAL_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


def spatial_layout(rank: int, prefix: str = "") -> str:
    """`"KH, KW"` (prefix "K"), `"D, H, W"`, ...: the spatial axes by rank."""
    return ", ".join(prefix + name for name in SPATIAL_NAMES[rank])


def _input(x_shape, data_format, rank: int = 2) -> _Input:
    channels_first = choice(data_format, "data_format", DATA_FORMATS) == (
        "channels_first"
    )
    spatial = spatial_layout(rank)
    layout = f"(N, C_in, {spatial})" if channels_first else f"(N, {spatial}, C_in)"
    batched = len(x_shape) == rank + 2
    if len(x_shape) == rank + 1:
        x_shape = (1, *x_shape)
    elif len(x_shape) != rank + 2:
        raise ValueError(
            f"`x` must have rank {rank + 2} {layout} or rank {rank + 1} without "
            f"the batch axis (data_format={data_format!r}); got shape "
            f"{tuple(x_shape)}"
        )
    x_shape = tuple(x_shape)
    return _Input(
        channels_first=channels_first,
        batched=batched,
        shape=x_shape,
        channels=x_shape[1] if channels_first else x_shape[-1],
        hw=x_shape[2:] if channels_first else x_shape[1:-1],
    )


def kernel_rank(kernel_shape, rank: int | None, layout, name="kernel") -> int:
    """The spatial rank of the kernel `name` of `kernel_shape`: `rank` where
    the caller fixes it (`conv2d`: 2), else its number of axes less the two
    channel axes, one of `RANKS`; `layout(rank)` names its axes."""
    n = len(kernel_shape)
    if rank is None:
        if n - 2 in RANKS:
            return n - 2
        raise ValueError(
            f"`{name}` must have rank 3, 4 or 5 (1, 2 or 3 spatial axes: "
            f"{layout(1)}, {layout(2)} or {layout(3)}); got shape "
            f"{tuple(kernel_shape)}"
        )
    if n != rank + 2:
        raise ValueError(
            f"`{name}` must have rank {rank + 2} {layout(rank)}; got shape "
            f"{tuple(kernel_shape)}"
        )
    return rank


def _check_bias(bias_shape, c_out: int) -> None:
    if bias_shape is not None and tuple(bias_shape) != (c_out,):
        raise ValueError(
            f"`bias` must have shape (C_out,) = ({c_out},); "
            f"got shape {tuple(bias_shape)}"
        )


def _output_hw(
    in_hw, kernel_hw, strides, dilation_rate, pads, padding, what="input"
) -> Pair:
    """Per axis `(size + lo + hi - span) // stride + 1`. The kernel must fit
    the padded `what` (the input; for the back-check of a transposed
    convolution, its output), except on an axis with no pixels, where that
    size must only not be negative (see the module doc)."""
    out_hw = []
    for size, k, s, d, (lo, hi) in zip(in_hw, kernel_hw, strides, dilation_rate, pads):
        span = (k - 1) * d + 1
        out = (size + lo + hi - span) // s + 1
        if size + lo + hi < span and (size > 0 or out < 0):
            empty = (
                f"; on an axis with no pixels the output is empty only where "
                f"`(size + pad_lo + pad_hi - span) // stride + 1` is 0 (e.g. "
                f"padding='same'), here {out}"
                if size == 0
                else ""
            )
            raise ValueError(
                f"`kernel` spatial size {tuple(kernel_hw)} with `dilation_rate` "
                f"{dilation_rate} spans {span} pixels, more than the padded {what} "
                f"({what} {tuple(in_hw)}, `padding`={padding!r} -> pads {pads})"
                f"{empty}"
            )
        out_hw.append(out)
    return tuple(out_hw)


# How far each mode can pad an axis of length `size` (a pad of 0 needs
# nothing), and why.
_MODE_LIMITS = {
    "reflect": (
        lambda size: size - 1,
        "at most size - 1 (reflect repeats no edge pixel)",
    ),
    "circular": (
        lambda size: INT64_MAX if size else 0,
        "an empty axis has no pixel to wrap around",
    ),
    "replicate": (
        lambda size: INT64_MAX if size else 0,
        "an empty axis has no edge pixel to repeat",
    ),
}


def _check_padding_mode(padding_mode, pads: Pads, in_hw: Pair, padding) -> str:
    """The lower-cased mode, if it can fill `pads`."""
    mode = choice(padding_mode, "padding_mode", tuple(PADDING_MODES))
    if mode not in _MODE_LIMITS:
        return mode
    limit, why = _MODE_LIMITS[mode]
    for size, pair in zip(in_hw, pads):
        if max(pair) > max(limit(size), 0):
            raise ValueError(
                f"`padding_mode` (={padding_mode!r}) cannot pad an axis of "
                f"{size} pixels by {max(pair)}: {why}; `padding`="
                f"{padding!r} gives pads {pads} for input {tuple(in_hw)}"
            )
    return mode


def _check_sizes(spec: ConvSpec, x: _Input, c_out: int, itemsize: int, cause):
    """The (padded, stretched) input and the output must be allocatable."""
    padded_hw = tuple(
        stretched_size(size, s) + lo + hi
        for size, s, (lo, hi) in zip(x.hw, spec.lhs_dilation, spec.pads)
    )
    n = x.shape[0]
    if padded_hw != tuple(x.hw):
        what = "a stretched, padded input" if spec.stretched else "a padded input"
        shape = _layout(n, padded_hw, x.channels, spec.channels_first)
        check_allocatable(what, shape, itemsize, cause)
    shape = _layout(n, spec.out_hw, c_out, spec.channels_first)
    check_allocatable("an output", shape, itemsize, cause)


def _layout(n: int, hw, c: int, channels_first: bool) -> tuple[int, ...]:
    return (n, c, *hw) if channels_first else (n, *hw, c)


def padding_geometry(input_hw, kernel_hw, strides, dilation_rate):
    """The public padding helpers' sizes, checked as one int per spatial
    axis: sizes non-negative, kernel, strides and dilation positive. The
    rank is the length of the first of them that is a sequence (2 where all
    are ints, as for a 2D convolution; at most 3)."""
    values = (input_hw, kernel_hw, strides, dilation_rate)
    rank = next(
        (
            len(v)
            for v in values
            if isinstance(v, Sequence) and not isinstance(v, str) and len(v) in RANKS
        ),
        2,
    )
    return (
        _int_pair(input_hw, "input_hw", 0, rank),
        _positive_pair(kernel_hw, "kernel_hw", rank),
        _positive_pair(strides, "strides", rank),
        _positive_pair(dilation_rate, "dilation_rate", rank),
    )


def kernel_layout(rank: int) -> str:
    return f"({spatial_layout(rank, 'K')}, C_in // groups, C_out)"


def transpose_layout(per_group: str):
    return lambda rank: f"({spatial_layout(rank, 'K')}, {per_group}, C_in)"


def depthwise_layout(rank: int) -> str:
    return f"({spatial_layout(rank, 'K')}, C_in, depth_multiplier)"


def conv_spec(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    strides,
    padding,
    dilation_rate,
    groups,
    data_format,
    padding_mode="zeros",
    input_dilation=1,
    itemsize: int = 2,
    rank: int | None = None,
) -> ConvSpec:
    """Checks shapes and arguments; raises `ValueError`/`TypeError` naming them.

    `rank`: the number of spatial axes the caller requires (`conv2d`: 2), or
    None to read it from the kernel (`conv`). `itemsize` is the bytes per
    element the size check counts (the shape helpers know no dtype and count
    2, the narrowest floating dtype's).
    """
    rank = kernel_rank(kernel_shape, rank, kernel_layout)
    x = _input(x_shape, data_format, rank)
    groups = _positive_int(groups, "groups")
    strides = _positive_pair(strides, "strides", rank)
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate", rank)
    input_dilation = _positive_pair(input_dilation, "input_dilation", rank)

    *kernel_hw, k_in, c_out = kernel_shape
    kernel_hw = tuple(kernel_hw)
    if x.channels % groups:
        raise ValueError(
            f"input channels C_in (={x.channels}) of `x` (shape {x.shape}) must "
            f"be divisible by `groups` (={groups})"
        )
    if c_out % groups:
        raise ValueError(
            f"output channels C_out (={c_out}) of `kernel` (shape "
            f"{tuple(kernel_shape)}) must be divisible by `groups` (={groups})"
        )
    if k_in * groups != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis {rank} must be C_in // groups "
            f"(={x.channels} // {groups} = {x.channels // groups}), got {k_in}"
        )
    if min(*kernel_hw, c_out) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    _check_bias(bias_shape, c_out)

    # Input dilation stretches the input first; padding, string rules
    # included, applies to the stretched input (as in lax).
    stretched = tuple(stretched_size(n, s) for n, s in zip(x.hw, input_dilation))
    pads = resolve_padding(stretched, kernel_hw, strides, dilation_rate, padding)
    padding_mode = _check_padding_mode(padding_mode, pads, x.hw, padding)
    if padding_mode != "zeros" and any(s > 1 for s in input_dilation):
        raise ValueError(
            f"`padding_mode` (={padding_mode!r}) fills pads from the input's "
            f"pixels, and `input_dilation` (={input_dilation}) pads a stretched "
            f"input, half zeros: the two together have no one meaning; use "
            f"padding_mode='zeros', or pad the input first (`jnp.pad`)"
        )
    spec = ConvSpec(
        strides=strides,
        dilation_rate=dilation_rate,
        pads=pads,
        groups=groups,
        channels_first=x.channels_first,
        batched=x.batched,
        out_hw=_output_hw(stretched, kernel_hw, strides, dilation_rate, pads, padding),
        lhs_dilation=input_dilation,
        padding_mode=padding_mode,
    )

    def cause():
        stretch = f", `input_dilation` {input_dilation}" if spec.stretched else ""
        return (
            f"`padding` (={show(padding)}) with `strides` {strides}, "
            f"`dilation_rate` {dilation_rate}{stretch}, `x` shape {x.shape} and "
            f"`kernel` shape {tuple(kernel_shape)}"
        )

    _check_sizes(spec, x, c_out, itemsize, cause)
    return spec


def _output_padding_pair(output_padding, strides) -> tuple[int, ...] | None:
    rank = len(strides)
    if output_padding is None:
        return None
    if _is_int(output_padding):
        pair = (output_padding,) * rank
    elif _is_ints(output_padding, rank):
        pair = tuple(int(v) for v in output_padding)
    else:
        raise TypeError(
            f"`output_padding` (={output_padding!r}) must be None, an int or "
            f"{_PER_AXIS[rank]}"
        )
    if any(a < 0 for a in pair):
        raise ValueError(f"`output_padding` (={output_padding!r}) must not be negative")
    if any(a >= s for a, s in zip(pair, strides)):
        raise ValueError(
            f"`output_padding` (={output_padding!r}) must be smaller than "
            f"`strides` (={strides}) on each axis"
        )
    return pair


@dataclasses.dataclass(frozen=True)
class TransposeSpec:
    """A validated transposed convolution, as the implementations run it.

    `conv` is the equivalent direct convolution: stride 1 over the input
    stretched by `strides - 1` zeros, whose kernel is the transposed one
    flipped in space with its channel axes swapped within each group. With
    `padding_mode` "zeros" its output is the answer. With another mode it is
    the adjoint of the forward convolution's unpadded ("valid") part: its
    output covers the forward convolution's padded input, `out_hw` grown by
    `fold_pads`, and the adjoint of the padding (`jconv._padding.fold_spatial`)
    folds that border back onto the pixels it was copied from.
    """

    conv: ConvSpec
    out_hw: tuple[int, ...]
    c_out: int
    padding_mode: str = "zeros"
    fold_pads: Pads = ()

    @property
    def groups(self) -> int:
        return self.conv.groups

    @property
    def channels_first(self) -> bool:
        return self.conv.channels_first

    @property
    def batched(self) -> bool:
        return self.conv.batched


def _transpose_padding_mode(padding_mode, pads: Pads, out_hw, padding) -> str:
    """`_check_padding_mode` on the transposed convolution's output, the input
    of the `conv2d` it is the adjoint of, whose pads the mode fills."""
    choice(padding_mode, "padding_mode", tuple(PADDING_MODES))
    try:
        return _check_padding_mode(padding_mode, pads, out_hw, padding)
    except ValueError as error:
        raise ValueError(
            f"{error}, the transposed convolution's output (the input of the "
            f"`conv2d` it is the adjoint of)"
        ) from None


def transpose_spec(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    *,
    strides,
    padding,
    output_padding,
    dilation_rate,
    data_format,
    groups=1,
    padding_mode="zeros",
    itemsize: int = 2,
    rank: int | None = None,
) -> TransposeSpec:
    """Checks a transposed convolution's arguments; returns how it runs (see
    `TransposeSpec`). `itemsize` and `rank` as for `conv_spec`."""
    groups = _positive_int(groups, "groups")
    per_group = "C_out" if groups == 1 else "C_out // groups"
    rank = kernel_rank(kernel_shape, rank, transpose_layout(per_group))
    x = _input(x_shape, data_format, rank)
    strides = _positive_pair(strides, "strides", rank)
    dilation_rate = _positive_pair(dilation_rate, "dilation_rate", rank)
    output_padding = _output_padding_pair(output_padding, strides)
    *kernel_hw, k_out, k_in = kernel_shape
    kernel_hw = tuple(kernel_hw)
    if k_in != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis {rank + 1} must be C_in (={x.channels}), "
            f"got {k_in}"
        )
    if x.channels % groups:
        raise ValueError(
            f"`groups` (={groups}) must divide the input channels C_in "
            f"(={x.channels}) of `x` (shape {x.shape})"
        )
    if min(*kernel_hw, k_out) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    # Kernel axis -2 is C_out // groups, so groups divides C_out by construction.
    c_out = k_out * groups
    _check_bias(bias_shape, c_out)

    out_hw, forward_pads = resolve_transpose_padding(
        x.hw, kernel_hw, strides, dilation_rate, padding, output_padding
    )
    if min(out_hw) < 0:
        raise ValueError(
            f"the transposed convolution's output {out_hw} would have a negative "
            f"size: input {x.hw}, `kernel` spatial size {kernel_hw}, `strides` "
            f"{strides}, `dilation_rate` {dilation_rate}, `padding`={padding!r}, "
            f"`output_padding`={output_padding}"
        )
    # The adjoint property holds by construction only if the convolution it is
    # the adjoint of maps the output size back to the input size.
    back = _output_hw(
        out_hw,
        kernel_hw,
        strides,
        dilation_rate,
        forward_pads,
        padding,
        what="transposed output",
    )
    if back != x.hw:
        raise ValueError(
            f"`output_padding` (={output_padding}) with `padding`={padding!r} "
            f"gives an output of {out_hw}, but a convolution of that size with "
            f"these `strides` {strides}, `padding` and `dilation_rate` has "
            f"{back} pixels, not the input's {x.hw}, so no convolution has "
            f"this transposed convolution as its adjoint (Keras on TensorFlow "
            f"refuses it too): use output_padding=None, an odd kernel, a "
            f"non-zero output_padding or explicit padding"
        )
    mode = _transpose_padding_mode(padding_mode, forward_pads, out_hw, padding)
    zero_pads = ((0, 0),) * rank
    if mode == "zeros" or forward_pads == zero_pads:
        # Zeros in the border contribute nothing: the direct convolution
        # crops (negative pads) what falls on the border.
        mode, fold_pads, conv_hw, conv_pads = "zeros", zero_pads, out_hw, forward_pads
    else:
        fold_pads, conv_pads = forward_pads, zero_pads
        conv_hw = tuple(n + lo + hi for n, (lo, hi) in zip(out_hw, forward_pads))
    conv = ConvSpec(
        strides=(1,) * rank,
        dilation_rate=dilation_rate,
        pads=stretched_pads(
            x.hw, conv_hw, kernel_hw, strides, dilation_rate, conv_pads
        ),
        groups=groups,
        channels_first=x.channels_first,
        batched=x.batched,
        out_hw=conv_hw,
        lhs_dilation=strides,
    )

    def cause():
        return (
            f"`padding` (={show(padding)}) with `strides` {strides}, "
            f"`output_padding` {output_padding}, `dilation_rate` {dilation_rate}, "
            f"`x` shape {x.shape} and `kernel` shape {tuple(kernel_shape)}"
        )

    # The direct convolution's output is the largest array: with a padding
    # mode it holds the border too.
    _check_sizes(conv, x, c_out, itemsize, cause)
    return TransposeSpec(
        conv=conv,
        out_hw=out_hw,
        c_out=c_out,
        padding_mode=mode,
        fold_pads=fold_pads,
    )


def depthwise_groups(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    data_format,
    rank: int | None = None,
) -> tuple[int, tuple[int, ...]]:
    """Checks a depthwise kernel `(*K, C_in, depth_multiplier)` against `x`;
    returns the `groups` and kernel shape of the equal grouped convolution.
    `rank` as for `conv_spec`."""
    rank = kernel_rank(kernel_shape, rank, depthwise_layout)
    x = _input(x_shape, data_format, rank)
    *kernel_hw, k_in, multiplier = kernel_shape
    if min(kernel_shape) < 1:
        raise ValueError(f"`kernel` shape {tuple(kernel_shape)} has an empty axis")
    if k_in != x.channels:
        raise ValueError(
            f"`kernel` shape {tuple(kernel_shape)} does not match `x` shape "
            f"{x.shape}: kernel axis {rank} must be C_in (={x.channels}), got {k_in}"
        )
    return x.channels, (*kernel_hw, 1, x.channels * multiplier)
