"""Public convolution in 1, 2 or 3 spatial dimensions: argument checks, then
one of the implementations (auto, lax, einsum, fft, onednn).

The keyword arguments of every public convolution function are described
once, in `KEYWORDS`; `public` gives each function those it takes, with
their defaults and a real signature."""

from __future__ import annotations

import dataclasses
import functools
import inspect

import jax
import jax.numpy as jnp

from jconv._einsum import conv2d_einsum_core
from jconv._fft import conv2d_fft_core
from jconv._onednn import check as check_onednn
from jconv._onednn import conv2d_onednn_core
from jconv._padding import pad_spatial
from jconv._plan import conv2d_auto_core, conv2d_lax_core
from jconv._spec import (
    IMPL_CHOICES,
    ConvSpec,
    _check_floating,
    accumulation_dtype,
    canonical_precision,
    choice,
    conv_spec,
    preferred_dtype,
)

IMPLS = dict(
    auto=conv2d_auto_core,
    lax=conv2d_lax_core,
    einsum=conv2d_einsum_core,
    fft=conv2d_fft_core,
    onednn=conv2d_onednn_core,
)

_ARGS_DOC = """
    Keras `Conv2D` semantics: cross-correlation (no kernel flip), kernel in
    Keras' layout whatever the data format. String arguments are read in any
    case (`"SAME"`, `"Channels_Last"`, `"LAX"`), as Keras reads `padding` and
    `data_format`.

    Shapes (channels_last; channels_first swaps C to axis 1):
      x: `(N, H, W, C_in)`, or unbatched `(H, W, C_in)` giving unbatched output.
      kernel: `(KH, KW, C_in // groups, C_out)`.
      bias: `(C_out,)` or None.
      output: `(N, H_out, W_out, C_out)` with, per spatial axis,
        `H_out = (H + pad_top + pad_bottom - ((KH - 1) * dilation + 1)) // stride + 1`;
        "valid" has no pads, "same" gives `H_out = ceil(H / stride)`; with
        an input dilation `i`, `H` is the stretched `(H - 1) * i + 1`.

    Args:
      x: input images, floating or complex dtype.
      kernel: convolution kernel, floating or complex dtype (complex: no
        conjugation, `y = sum x * kernel`, as in `lax` and PyTorch).
      bias: optional per-output-channel bias. The three are promoted to one
        dtype (`jnp.result_type`: a real one beside a complex one becomes
        complex).
      strides: int or `(sh, sw)`, positive.
      padding: `"valid"`, `"same"` (TensorFlow/Keras rule: an odd total pad
        puts the extra row/column at the bottom/right), `"same_lower"` (the
        extra one at the top/left), `"full"` (`(KH - 1) * dilation` on each
        side), `"causal"` (`(KH - 1) * dilation` before, none after, as
        Keras' `Conv1D`), an int, a pair `(pad_h, pad_w)` or `((top,
        bottom), (left, right))`; see `jconv.resolve_padding`.
      padding_mode: how the pads are filled: `"zeros"`, `"reflect"` (mirror,
        edge not repeated; pads at most `size - 1`), `"replicate"` (repeat the
        edge) or `"circular"` (wrap around, as many times as the pad needs,
        as `numpy.pad(mode="wrap")`).
      dilation_rate: int or `(dh, dw)`, positive. Unlike Keras, strides and
        dilation may both exceed 1.
      input_dilation: int or `(ih, iw)`, positive: the input stretched by
        `input_dilation - 1` zeros between pixels before it is padded (lax's
        `lhs_dilation`, Flax's `input_dilation`: a fractional-stride
        convolution); string paddings are resolved on the stretched size.
        Only with `padding_mode="zeros"`.
      groups: number of channel groups; divides `C_in` and `C_out`.
      data_format: `"channels_last"` (NHWC) or `"channels_first"` (NCHW).
      precision: passed to the contraction (`jax.lax.Precision`, a string such
        as `"highest"`, a pair of them, a `jax.lax.DotAlgorithmPreset` or its
        name, or None for the backend default).
      preferred_element_type: None (return the inputs' dtype, summed in it,
        or in float32 for bfloat16 and float16 inputs and rounded once at the
        end, the bias added before the rounding) or a dtype, as in
        `jax.lax.conv_general_dilated`: every implementation sums in it (or
        wider) and returns it, the bias added in it, e.g.
        bfloat16 inputs, float32 accumulation and result. Floating for
        floating inputs, complex for complex ones, not narrower than the
        inputs. Gradients come back in the inputs' dtypes, summed in it
        (float32 at least for bfloat16 and float16).
"""

_RAISES_DOC = """
    Raises:
      ValueError: bad shapes or argument values (named in the message), raised
        while tracing, before anything is compiled; also sizes no device could
        hold: a padded input, an output or an einsum window buffer that XLA
        cannot represent (2**63 elements or bytes) or larger than the memory
        of every device JAX sees together (for the CPU: physical memory plus
        swap).
      TypeError: integer or bool arrays, non-integer strides/dilation/groups,
        a `preferred_element_type` that is not a dtype of the inputs' kind.
      ValueError: a `preferred_element_type` narrower than the inputs' dtype.
"""


def _run(
    x,
    kernel_hwio,
    bias,
    spec: ConvSpec,
    precision,
    impl: str,
    preferred_element_type=None,
):
    """The traced body every public convolution shares: batch axis, padding
    mode, the implementation's core, bias.

    The core and the bias sum in `accumulation_dtype` (float32 for bfloat16
    and float16), rounded once to the result's dtype at the end: JAX
    transposes that cast and the bias's, so every gradient (input, kernel,
    bias) sums in it too and is rounded once to its argument's dtype."""
    if not spec.batched:
        x = x[None]
    if spec.padding_mode != "zeros":
        h_axis = 2 if spec.channels_first else 1
        x = pad_spatial(x, spec.pads, spec.padding_mode, h_axis)
        zero = ((0, 0),) * spec.rank
        spec = dataclasses.replace(spec, pads=zero, padding_mode="zeros")
    result = x.dtype if preferred_element_type is None else preferred_element_type
    accumulate = accumulation_dtype(x.dtype, preferred_element_type)
    y = IMPLS[impl](x, kernel_hwio, spec, precision, accumulate)
    if bias is not None:
        shape = [1] * y.ndim
        shape[1 if spec.channels_first else -1] = -1
        y = y + bias.astype(y.dtype).reshape(shape)
    y = y.astype(result)
    return y if spec.batched else y[0]


@functools.partial(
    jax.jit, static_argnames=("spec", "precision", "preferred_element_type", "impl")
)
def _apply(
    x, kernel, bias, *, spec: ConvSpec, precision, preferred_element_type=None, impl
):
    return _run(x, kernel, bias, spec, precision, impl, preferred_element_type)


def _check_impl(impl) -> str:
    """The lower-cased implementation name."""
    return choice(impl, "impl", IMPL_CHOICES)


def _as_array(a):
    # Arrays (NumPy, JAX, tracers) go straight to the jitted body: a
    # `jnp.asarray` round trip costs more than the convolution on small inputs.
    return a if hasattr(a, "dtype") and hasattr(a, "shape") else jnp.asarray(a)


def _as_arrays(x, kernel, bias):
    """Floating arrays of one promoted dtype (bias may be None)."""
    x, kernel = _as_array(x), _as_array(kernel)
    _check_floating(x, "x")
    _check_floating(kernel, "kernel")
    arrays = [x, kernel]
    if bias is not None:
        bias = _as_array(bias)
        _check_floating(bias, "bias")
        arrays.append(bias)
    dtype = jnp.result_type(*arrays)
    x, kernel, *rest = (a if a.dtype == dtype else a.astype(dtype) for a in arrays)
    return x, kernel, (rest[0] if rest else None)


def _convolve(
    apply,
    make_spec,
    x,
    kernel,
    bias,
    *,
    precision,
    preferred_element_type=None,
    impl,
    rank=None,
    **arguments,
):
    """What every public convolution does, in this order: reads `impl` and
    `precision`, makes floating arrays of one dtype, checks the shapes and
    the other `arguments` with `make_spec` (`conv_spec`, `transpose_spec`),
    then runs the jitted `apply` on the spec. `rank`: the spatial rank the
    function requires (`conv2d`: 2), None to read it from the kernel."""
    impl = _check_impl(impl)
    precision = canonical_precision(precision)
    x, kernel, bias = _as_arrays(x, kernel, bias)
    preferred = preferred_dtype(preferred_element_type, x.dtype)
    if impl == "onednn":
        check_onednn(x.dtype, preferred)
    itemsize = x.dtype.itemsize if preferred is None else preferred.itemsize
    bias_shape = None if bias is None else bias.shape
    spec = make_spec(
        x.shape, kernel.shape, bias_shape, itemsize=itemsize, rank=rank, **arguments
    )
    return apply(
        x,
        kernel,
        bias,
        spec=spec,
        precision=precision,
        preferred_element_type=preferred,
        impl=impl,
    )


# The keyword arguments of the public convolutions, with their defaults, in
# the order their signatures list them. Each function takes all of them but
# those its `public` decorator omits, so no two can give one argument
# different defaults, and a new argument is added here once.
KEYWORDS = dict(
    strides=1,
    padding="valid",
    output_padding=None,  # transposed convolutions only
    padding_mode="zeros",
    dilation_rate=1,
    input_dilation=1,  # forward convolutions only
    groups=1,
    data_format="channels_last",
    precision=None,
    preferred_element_type=None,
    impl="auto",
)


def public(*, omit=()):
    """Decorator of a public convolution `fn(arrays..., **keywords)`: it is
    called with every one of `KEYWORDS` but `omit`, as given or by default,
    and its signature (for `inspect`, `help` and the API reference) lists
    them, keyword-only, after `fn`'s arrays. `fn` may name the keywords it
    reads (`*, data_format, **keywords`). An unknown keyword raises
    Python's `TypeError`."""
    defaults = {name: v for name, v in KEYWORDS.items() if name not in omit}
    keywords = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=v)
        for name, v in defaults.items()
    ]

    def decorate(fn):
        arrays = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        known = defaults.keys() | {p.name for p in arrays}

        @functools.wraps(fn)
        def convolution(*args, **kwargs):
            if not kwargs.keys() <= known:
                name = next(name for name in kwargs if name not in known)
                raise TypeError(
                    f"{fn.__qualname__}() got an unexpected keyword argument {name!r}"
                )
            return fn(*args, **(defaults | kwargs))

        convolution.__signature__ = inspect.Signature(arrays + keywords)
        return convolution

    return decorate


@public(omit=("output_padding",))
def conv2d(x, kernel, bias=None, **keywords):
    """2D convolution, by the fastest plan (`impl="auto"`) or one implementation.
    {args}
      impl: `"auto"` (default: for the call's static shapes, dtype, backend
        and precision, the formulation of the output and of each gradient
        that `jconv._plan` measured fastest; at the default precision it may
        use the FFT or Winograd F(4x4, 3x3), whose errors the README states,
        at any other it is as accurate as `"lax"`),
        `"lax"` (`jax.lax.conv_general_dilated`, derivatives in XLA's fast CPU
        layout so they stay fast inside `lax.scan`), `"einsum"` (explicit
        strided windows contracted by `jnp.einsum`, differentiated by JAX) or
        `"fft"` (the channel contraction taken in the frequency domain,
        `jconv._fft`: fast for large kernels). Same answers, same gradients,
        up to rounding: lax and einsum sum the same products in different
        orders; fft's error is bounded by the norms of the planes instead.

    Returns:
      The convolved images, dtype promoted from `x`, `kernel` and `bias`, or
      `preferred_element_type`.
    {raises}
    Example (the document's worked example, see `jconv.document`):
      >>> import jax.numpy as jnp
      >>> from jconv import document
      >>> image = jnp.asarray(document.IMAGE, jnp.float32)[..., None]
      >>> kernel = jnp.asarray(document.KERNEL, jnp.float32)[..., None, None]
      >>> conv2d(image, kernel)[..., 0]
      Array([[ 56.,  76.],
             [175., 302.]], dtype=float32)
      >>> conv2d(image, kernel, padding="same", impl="einsum").shape
      (4, 4, 1)
      >>> # Mirrored border: the window at (0, 0) reads image rows (1, 0, 1).
      >>> conv2d(image, kernel, padding="same", padding_mode="reflect")[0, 0, 0]
      Array(230., dtype=float32)
      >>> # bfloat16 in, summed in and returned as float32.
      >>> bf16 = image.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
      >>> conv2d(*bf16, preferred_element_type=jnp.float32).dtype
      dtype('float32')
      >>> conv2d(image * 1j, kernel)[..., 0]  # complex: no conjugation
      Array([[0. +56.j, 0. +76.j],
             [0.+175.j, 0.+302.j]], dtype=complex64)
    """
    return _convolve(_apply, conv_spec, x, kernel, bias, rank=2, **keywords)


conv2d.__doc__ = conv2d.__doc__.format(args=_ARGS_DOC, raises=_RAISES_DOC)


_RANK_DOC = """
    The spatial rank (1, 2 or 3) is the kernel's number of axes less two, and
    every argument of `conv2d` generalizes per axis: `strides`,
    `dilation_rate`, `input_dilation` an int or one value per spatial axis,
    `padding` a rule, an int, one int per axis or one `(low, high)` pair per
    axis.

    Shapes (channels_last; channels_first puts C at axis 1), `S` the input's
    spatial sizes (`(W,)`, `(H, W)`, `(D, H, W)`), `K` the kernel's:
      x: `(N, *S, C_in)`, or unbatched `(*S, C_in)` giving unbatched output.
      kernel: `(*K, C_in // groups, C_out)` (Keras' `Conv1D`/`Conv2D`/
        `Conv3D` layout).
      bias: `(C_out,)` or None.
      output: `(N, *S_out, C_out)`, each axis as `conv2d`'s `H_out`.

    Args:
      x, kernel, bias, strides, padding, padding_mode, dilation_rate,
        input_dilation, groups, data_format, precision,
        preferred_element_type, impl: as for `conv2d`, per spatial axis.
        `impl="auto"` picks among lax, einsum, FFT and oneDNN for every rank
        (Winograd F(4x4, 3x3) is a 2D algorithm).

    Returns:
      The convolved arrays, dtype promoted from `x`, `kernel` and `bias`, or
      `preferred_element_type`.
{raises}"""


@public(omit=("output_padding",))
def conv(x, kernel, bias=None, **keywords):
    """Convolution in 1, 2 or 3 spatial dimensions, read from the kernel.
    {rank_doc}
    Example (a causal moving sum over a sequence, then a 3D volume):
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(1.0, 6.0)[:, None]  # 5 steps, 1 channel
      >>> conv(x, jnp.ones((3, 1, 1)), padding="causal")[:, 0]
      Array([ 1.,  3.,  6.,  9., 12.], dtype=float32)
      >>> volume = jnp.ones((2, 8, 8, 8, 4))
      >>> conv(volume, jnp.ones((3, 3, 3, 4, 16)), strides=2, padding="same").shape
      (2, 4, 4, 4, 16)
    """
    return _convolve(_apply, conv_spec, x, kernel, bias, **keywords)


conv.__doc__ = conv.__doc__.format(rank_doc=_RANK_DOC.format(raises=_RAISES_DOC))


def _ranked(rank: int, example: str):
    """`conv` for kernels of one spatial rank, as `conv{rank}d`."""

    def convolution(x, kernel, bias=None, **keywords):
        return _convolve(_apply, conv_spec, x, kernel, bias, rank=rank, **keywords)

    convolution.__name__ = convolution.__qualname__ = f"conv{rank}d"
    axes = {1: "(KW, C_in // groups, C_out)", 3: "(KD, KH, KW, C_in // groups, C_out)"}
    convolution.__doc__ = f"""{rank}D convolution: `conv` for a kernel of shape
    `{axes[rank]}` (Keras `Conv{rank}D`), refusing any other rank.
    {_RANK_DOC.format(raises=_RAISES_DOC)}
    Example:
{example}"""
    return public(omit=("output_padding",))(convolution)


conv1d = _ranked(
    1,
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((4, 100, 2))  # 4 sequences, 100 steps, 2 channels
      >>> conv1d(x, jnp.ones((3, 2, 8)), dilation_rate=4, padding="causal").shape
      (4, 100, 8)
    """,
)
conv3d = _ranked(
    3,
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 3, 16, 32, 32))  # channels_first: (N, C, D, H, W)
      >>> k = jnp.ones((3, 3, 3, 3, 8))
      >>> conv3d(x, k, padding="same", data_format="channels_first").shape
      (1, 8, 16, 32, 32)
    """,
)


def _with_impl(impl: str, summary: str, example: str):
    """`conv2d` with `impl` fixed, as a function of its own, `conv2d_{impl}`:
    `conv2d`'s signature but `impl`, documented by `summary`, `conv2d`'s
    arguments and `example`."""

    def alias(x, kernel, bias=None, **keywords):
        return conv2d(x, kernel, bias, impl=impl, **keywords)

    alias.__name__ = alias.__qualname__ = f"conv2d_{impl}"
    alias.__doc__ = f"""{summary}
    {_ARGS_DOC}
    Returns:
      The convolved images.
    {_RAISES_DOC}
    Example:
{example}"""
    return public(omit=("output_padding", "impl"))(alias)


conv2d_lax = _with_impl(
    "lax",
    """2D convolution on `jax.lax.conv_general_dilated`: `conv2d(..., impl="lax")`.""",
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((2, 5, 5, 4))
      >>> k = jnp.ones((3, 3, 2, 6))
      >>> conv2d_lax(x, k, strides=2, padding="same", groups=2).shape
      (2, 3, 3, 6)
    """,
)
conv2d_einsum = _with_impl(
    "einsum",
    """2D convolution as strided windows contracted with `jnp.einsum`.

    Same arguments and answers as `conv2d(..., impl="lax")`, built without any
    convolution primitive: the independent formulation the lax path is checked
    against.""",
    """\
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 3, 7, 7))
      >>> k = jnp.ones((3, 3, 3, 8))
      >>> conv2d_einsum(x, k, dilation_rate=2, data_format="channels_first").shape
      (1, 8, 3, 3)
    """,
)
