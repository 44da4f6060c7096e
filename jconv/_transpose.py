"""Transposed convolution in 1, 2 or 3 spatial dimensions: the adjoint of
`conv`, run as a direct convolution of the zero-stretched input by any
implementation (lax, einsum, fft, onednn), then, for a padding mode other
than zeros, the adjoint of the padding."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jconv._conv import _convolve, _run, public
from jconv._padding import fold_spatial
from jconv._spec import TransposeSpec, accumulation_dtype, transpose_spec


def _direct_kernel(kernel, groups: int):
    """The HWIO kernel `(KH, KW, C_in // G, C_out)` of the direct convolution
    equal to the transposed one with kernel `(KH, KW, C_out // G, C_in)`:
    flipped in space, channel axes swapped within each group (input channel
    `g * C_in/G + i` and output channel `g * C_out/G + o` meet at `[..., o,
    g * C_in/G + i]` in the transposed kernel, at `[..., i, g * C_out/G + o]`
    in the direct one)."""
    *kernel_hw, o_group, c_in = kernel.shape
    r = len(kernel_hw)
    k_hwogi = jnp.flip(kernel, axis=tuple(range(r))).reshape(
        *kernel_hw, o_group, groups, c_in // groups
    )
    k_hwigo = k_hwogi.transpose(*range(r), r + 2, r + 1, r)
    return k_hwigo.reshape(*kernel_hw, c_in // groups, groups * o_group)


@functools.partial(
    jax.jit, static_argnames=("spec", "precision", "preferred_element_type", "impl")
)
def _apply_transpose(
    x,
    kernel,
    bias,
    *,
    spec: TransposeSpec,
    precision,
    preferred_element_type=None,
    impl,
):
    k_hwio = _direct_kernel(kernel, spec.groups)
    if spec.padding_mode == "zeros":
        return _run(x, k_hwio, bias, spec.conv, precision, impl, preferred_element_type)
    # The adjoint of conv2d's `C(P x)`, P the padding: `P^T (C^T y)`, with the
    # bias added once the border is folded back, all in the accumulation
    # dtype and rounded once, as `_run` does.
    accumulate = accumulation_dtype(x.dtype, preferred_element_type)
    y = _run(x, k_hwio, None, spec.conv, precision, impl, accumulate)
    h_axis = int(spec.batched) + int(spec.channels_first)
    y = fold_spatial(y, spec.fold_pads, spec.padding_mode, h_axis)
    if bias is not None:
        shape = [1] * y.ndim
        shape[h_axis - 1 if spec.channels_first else -1] = -1
        y = y + bias.reshape(shape).astype(y.dtype)
    result = x.dtype if preferred_element_type is None else preferred_element_type
    return y.astype(result)


@public(omit=("input_dilation",))
def conv2d_transpose(x, kernel, bias=None, **keywords):
    """Transposed 2D convolution with Keras `Conv2DTranspose` semantics.

    For the same kernel, strides, padding, padding mode, dilation and groups
    it is exactly the adjoint of `conv2d`: `conv2d_transpose(y, kernel, ...)`
    equals the VJP of `x -> conv2d(x, kernel, ...)` at `y`, for an `x` of the
    transposed convolution's output size (`padding` is resolved on that size,
    as TensorFlow does). Each input pixel scatters `x[i, j] @ kernel[a, b].T`
    to output pixel `(i * sh + a * dh - top, j * sw + b * dw - left)`; with
    `padding_mode` "zeros" what lands outside the output is dropped, with
    another mode it lands on the border of `conv2d`'s padded input and is
    added onto the pixel that border pixel copies (reflect: row -1 onto row
    1, replicate: onto row 0, circular: onto row H_out - 1).

    Groups (PyTorch's `conv_transpose2d(groups=G)` convention, whose weight
    `(C_in, C_out // G, KH, KW)` is `kernel.transpose(3, 2, 0, 1)`): input
    channel `c` belongs to group `c // (C_in // G)`, and group `g` produces
    output channels `g * (C_out // G)` to `(g + 1) * (C_out // G) - 1`.

    Shapes (channels_last; channels_first swaps C to axis 1):
      x: `(N, H, W, C_in)`, or unbatched `(H, W, C_in)`.
      kernel: `(KH, KW, C_out // groups, C_in)` (Keras' transposed layout: the
        kernel of the `conv2d` from `C_out` to `C_in` channels, `groups`
        groups, it is the adjoint of).
      bias: `(C_out,)` or None.
      output: `(N, H_out, W_out, C_out)` with, per spatial axis,
        `span = (KH - 1) * dilation + 1` and `a = output_padding`:
        "valid": `H * stride + max(span - stride, 0)`, or
        `(H - 1) * stride + span + a`;
        "same"/"same_lower": `H * stride`, or
        `(H - 1) * stride + span % 2 + a`;
        "full": `H * stride - (stride + span - 2)`, or
        `(H - 1) * stride - span + 2 + a`;
        explicit `(top, bottom)`: `(H - 1) * stride + span - top - bottom + a`.

    Args:
      x: input images, floating dtype.
      kernel: kernel `(KH, KW, C_out // groups, C_in)`, floating dtype.
      bias: optional per-output-channel bias.
      strides: int or `(sh, sw)`, positive: the upsampling factor.
      padding: `"valid"`, `"same"`, `"same_lower"`, `"full"` or explicit pads
        as for `conv2d`: the padding of the convolution this is the adjoint of.
      output_padding: None, int or `(ah, aw)`, each in `[0, stride)`: extra
        rows/columns at the bottom/right, choosing among the output sizes
        that a strided convolution maps to the same input size.
      padding_mode: how the convolution this is the adjoint of fills its pads:
        `"zeros"`, `"reflect"`, `"replicate"` or `"circular"`, as for
        `conv2d`, with its limits (reflect pads at most `H_out - 1`, circular
        at most `H_out`) on the output size.
      dilation_rate: int or `(dh, dw)`, positive; unlike Keras, may exceed 1
        together with strides.
      groups: number of channel groups, positive; divides `C_in` (and
        `C_out = groups * kernel.shape[2]`).
      data_format: `"channels_last"` (NHWC) or `"channels_first"` (NCHW).
      precision: passed to the contraction.
      preferred_element_type: None, or the dtype to accumulate in and return,
        as for `conv2d`.
      impl: `"auto"` (default, as for `conv2d`), `"lax"`
        (`lax.conv_general_dilated` with input dilation) or `"einsum"` (the
        input stretched with zeros by `lax.pad`, then the same window
        contraction as `conv2d`, with the kernel flipped and its channel axes
        swapped), `"fft"` (that stretched input, convolved in the frequency
        domain). Same answers, same gradients, up to rounding.

    Returns:
      The upsampled images, dtype promoted from `x`, `kernel` and `bias`.

    Raises:
      ValueError: bad shapes or values, named in the message: `output_padding`
        not smaller than `strides`, `groups` not dividing `C_in`, an unknown
        `padding_mode` or pads it cannot fill on the output, an output size
        that would be negative, a kernel wider than the padded output of the
        convolution it is the adjoint of, a "same" even-kernel
        `output_padding=0` that no convolution is the adjoint of, or a
        stretched input or output no device could hold (as for `conv2d`).
      TypeError: non-floating arrays, non-integer strides/dilation/groups/
        output_padding.

    Example (the adjoint of a strided "same" convolution):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 4, 4, 3))
      >>> k = jnp.ones((3, 3, 3, 2))  # conv2d: 3 -> 2 channels
      >>> y = conv2d_transpose(jnp.ones((1, 2, 2, 2)), k, strides=2, padding="same")
      >>> y.shape
      (1, 4, 4, 3)
      >>> from jconv import conv2d
      >>> _, vjp = jax.vjp(lambda x: conv2d(x, k, strides=2, padding="same"), x)
      >>> bool(jnp.array_equal(vjp(jnp.ones((1, 2, 2, 2)))[0], y))
      True

    With groups and a mirrored border (conv2d: 4 -> 6 channels, 2 groups):
      >>> k = jnp.ones((3, 3, 2, 6))
      >>> f = lambda x: conv2d(x, k, padding=1, padding_mode="reflect", groups=2)
      >>> _, vjp = jax.vjp(f, jnp.ones((1, 5, 5, 4)))
      >>> y = jnp.arange(150.0).reshape(1, 5, 5, 6)
      >>> z = conv2d_transpose(y, k, padding=1, padding_mode="reflect", groups=2)
      >>> z.shape, bool(jnp.array_equal(vjp(y)[0], z))
      ((1, 5, 5, 4), True)
    """
    return _convolve(
        _apply_transpose, transpose_spec, x, kernel, bias, rank=2, **keywords
    )


_RANK_DOC = """
    The spatial rank (1, 2 or 3) is the kernel's number of axes less two;
    every argument of `conv2d_transpose` generalizes per axis (`strides`,
    `dilation_rate`, `output_padding`: an int or one value per axis;
    `padding`: a rule other than "causal", an int, one int per axis or one
    `(low, high)` pair per axis), and it is exactly the adjoint of `conv` with
    the same arguments, padding modes included.

    Shapes (channels_last; channels_first puts C at axis 1), `S` the input's
    spatial sizes, `K` the kernel's:
      x: `(N, *S, C_in)`, or unbatched `(*S, C_in)`.
      kernel: `(*K, C_out // groups, C_in)` (Keras' `Conv1DTranspose`/
        `Conv2DTranspose`/`Conv3DTranspose` layout).
      bias: `(C_out,)` or None.
      output: `(N, *S_out, C_out)`, each axis as `conv2d_transpose`'s.

    Args:
      x, kernel, bias, strides, padding, output_padding, padding_mode,
        dilation_rate, groups, data_format, precision,
        preferred_element_type, impl: as for `conv2d_transpose`, per axis.

    Returns:
      The upsampled arrays, dtype promoted from `x`, `kernel` and `bias`.

    Raises:
      ValueError, TypeError: as `conv2d_transpose`, and for a kernel whose
        rank is not 3, 4 or 5 (or not the function's).
"""


@public(omit=("input_dilation",))
def conv_transpose(x, kernel, bias=None, **keywords):
    """Transposed convolution in 1, 2 or 3 spatial dimensions.
    {rank_doc}
    Example (the adjoint of a strided 1D convolution):
      >>> import jax, jax.numpy as jnp
      >>> from jconv import conv
      >>> k = jnp.ones((3, 2, 4))  # conv: 2 -> 4 channels
      >>> y = jnp.ones((1, 5, 4))
      >>> z = conv_transpose(y, k, strides=2, padding="same")
      >>> z.shape
      (1, 10, 2)
      >>> f = lambda x: conv(x, k, strides=2, padding="same")
      >>> _, vjp = jax.vjp(f, jnp.ones((1, 10, 2)))
      >>> bool(jnp.array_equal(vjp(y)[0], z))
      True
    """
    return _convolve(_apply_transpose, transpose_spec, x, kernel, bias, **keywords)


conv_transpose.__doc__ = conv_transpose.__doc__.format(rank_doc=_RANK_DOC)


def _ranked(rank: int, example: str):
    """`conv_transpose` for kernels of one spatial rank."""

    def convolution(x, kernel, bias=None, **keywords):
        return _convolve(
            _apply_transpose, transpose_spec, x, kernel, bias, rank=rank, **keywords
        )

    name = f"conv{rank}d_transpose"
    convolution.__name__ = convolution.__qualname__ = name
    axes = {1: "(KW, C_out // groups, C_in)", 3: "(KD, KH, KW, C_out // groups, C_in)"}
    convolution.__doc__ = f"""Transposed {rank}D convolution: `conv_transpose`
    for a kernel of shape `{axes[rank]}` (Keras `Conv{rank}DTranspose`),
    refusing any other rank.
    {_RANK_DOC}
    Example:
{example}"""
    return public(omit=("input_dilation",))(convolution)


conv1d_transpose = _ranked(
    1,
    """\
      >>> import jax.numpy as jnp
      >>> y = jnp.ones((2, 50, 8))
      >>> conv1d_transpose(y, jnp.ones((4, 3, 8)), strides=2, padding="same").shape
      (2, 100, 3)
    """,
)
conv3d_transpose = _ranked(
    3,
    """\
      >>> import jax.numpy as jnp
      >>> y = jnp.ones((1, 4, 4, 4, 16))
      >>> conv3d_transpose(y, jnp.ones((2, 2, 2, 8, 16)), strides=2).shape
      (1, 8, 8, 8, 8)
    """,
)
