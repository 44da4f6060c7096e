"""PyTorch convolution layers to jconv's layer descriptions and back, weights
included, for 1, 2 and 3 spatial axes.

Two things differ from Keras. The layouts: torch keeps channels first, and
both its weights, `torch.nn.ConvNd`'s `(C_out, C_in // groups, *K)` and
`torch.nn.ConvTransposeNd`'s `(C_in, C_out // groups, *K)`, are jconv's
kernels (`(*K, C_in // groups, C_out)`, transposed `(*K, C_out // groups,
C_in)`) with their axes reversed in two groups: the two channel axes, the
spatial ones kept in order (`kernel_from_torch`, `kernel_to_torch`). And the
padding: torch pads every input alike, by the same amount on both sides (its
"same", stride 1 only, puts an odd extra pixel at the end, as jconv's "same"
does), and a transposed layer crops `padding` from both sides of its output
and then adds `output_padding` at the end; jconv's string rules may pad by
the input's size, its pads may differ between the sides, and its
`output_padding` is below the stride (torch's is below the stride or the
dilation). What the other side cannot express is refused, named. torch is
imported when a function is called, never at import time: it is not a
dependency of jconv.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jconv._arithmetic import resolve_padding, resolve_transpose_padding
from jconv._layers import (
    Conv1DLayer,
    Conv1DTransposeLayer,
    Conv2DLayer,
    Conv2DTransposeLayer,
    Conv3DLayer,
    Conv3DTransposeLayer,
    ConvTransposeLayer,
    DepthwiseConvLayer,
    Frontend,
    Layer,
)
from jconv._spec import _positive_pair

# The description of each torch convolution, by the torch class's name.
_TORCH_CLASSES = {
    "Conv1d": Conv1DLayer,
    "Conv2d": Conv2DLayer,
    "Conv3d": Conv3DLayer,
    "ConvTranspose1d": Conv1DTransposeLayer,
    "ConvTranspose2d": Conv2DTransposeLayer,
    "ConvTranspose3d": Conv3DTransposeLayer,
}

# The parameter dtypes both torch's convolutions and jconv's modules take, by
# their common name (torch's complex32 has no numpy or jax dtype).
_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")


def kernel_from_torch(weight) -> np.ndarray:
    """jconv's kernel from a torch weight: `(O, I, *K)` -> `(*K, I, O)`, which
    takes a `ConvNd` weight to jconv's `(*K, C_in // groups, C_out)` and a
    `ConvTransposeNd` weight `(C_in, C_out // groups, *K)` to `(*K, C_out //
    groups, C_in)`, for any number of spatial axes.

    Example:
      >>> kernel_from_torch(np.zeros((6, 2, 3, 5))).shape
      (3, 5, 2, 6)
      >>> kernel_from_torch(np.zeros((6, 2, 3))).shape
      (3, 2, 6)
      >>> kernel_from_torch(np.zeros((6, 2, 3, 4, 5))).shape
      (3, 4, 5, 2, 6)
    """
    weight = np.asarray(weight)
    return weight.transpose(*range(2, weight.ndim), 1, 0)


def kernel_to_torch(kernel) -> np.ndarray:
    """`kernel_from_torch`'s inverse: `(*K, I, O)` -> `(O, I, *K)`.

    Example:
      >>> kernel_to_torch(np.zeros((3, 5, 2, 6))).shape
      (6, 2, 3, 5)
      >>> kernel_to_torch(np.zeros((3, 4, 5, 2, 6))).shape
      (6, 2, 3, 4, 5)
    """
    kernel = np.asarray(kernel)
    n = kernel.ndim
    return kernel.transpose(n - 1, n - 2, *range(n - 2))


def _array(tensor) -> np.ndarray:
    """A torch tensor's values in its dtype (numpy has no bfloat16: through
    float32, exactly)."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.float().numpy().astype(jnp.bfloat16)
    return tensor.numpy()


def _copy(parameter, array) -> None:
    """Copies `array` into a torch parameter of its dtype."""
    import torch

    array = np.asarray(array)
    if array.dtype == jnp.bfloat16:  # exact: bfloat16 values are float32 values
        array = array.astype(np.float32)
    with torch.no_grad():
        parameter.copy_(torch.tensor(array))  # a copy: jax's arrays are read-only


def _torch_same(kernel_size, dilation) -> tuple[tuple[int, int], ...]:
    """The pads torch's `padding="same"` means: `dilation * (kernel - 1)` in
    all, the odd one at the end (`torch.nn.ConvNd` and `F.convNd`)."""
    totals = (d * (k - 1) for k, d in zip(kernel_size, dilation))
    return tuple((t // 2, t - t // 2) for t in totals)


def _layer_class(module) -> type[Layer]:
    import torch

    # Exactly these classes: a subclass may compute otherwise, a lazy module
    # has no weights yet, a parametrized one computes them.
    name = type(module).__name__
    if name in _TORCH_CLASSES and type(module) is getattr(torch.nn, name):
        return _TORCH_CLASSES[name]
    raise TypeError(
        f"`module` (={name}) must be a torch.nn.Conv1d, Conv2d, Conv3d, "
        f"ConvTranspose1d, ConvTranspose2d or ConvTranspose3d (not a subclass; "
        f"call a lazy module on an input first, remove parametrizations)"
    )


def _output_padding_limit(strides, dilation) -> tuple[int, ...]:
    """What torch's `output_padding` must be below, per axis."""
    return tuple(max(s, d) for s, d in zip(strides, dilation))


def _transpose_padding(module) -> dict:
    """A `ConvTransposeNd`'s `padding` `p` and `output_padding` `a` as
    jconv's pads and output_padding, per axis.

    torch's output is `(H - 1) * s + span - 2 * p + a` long and its content
    is set by the `p` it crops at the top/left alone; jconv's with pads `(p,
    hi)` and output_padding `a'` is `(H - 1) * s + span - p - hi + a'` long,
    with `0 <= a' < s` and `hi >= 0`. So an `a` below the stride is kept, pads
    `(p, p)`; one at or above it (torch takes it below the dilation) comes
    off the bottom/right pad as far as `p` goes, `hi = max(p - a, 0)`, and
    the rest `a' = max(a - p, 0)` stays. That needs `a - p < s`: torch's
    output ends `a - p` rows/columns past the full (uncropped) transposed
    convolution, jconv's at most `s - 1` past it.
    """
    p, a, s = module.padding, module.output_padding, module.stride
    limit = _output_padding_limit(s, module.dilation)
    if any(ai >= mi for ai, mi in zip(a, limit)):
        raise ValueError(
            f"`output_padding` (={a}) is not below max(stride, dilation) "
            f"(={limit}): torch's {type(module).__name__} refuses it when "
            f"called, so there is no output to match"
        )
    if any(ai - pi >= si for pi, ai, si in zip(p, a, s)):
        raise ValueError(
            f"`output_padding` (={a}) with `padding` (={p}) extends the output by "
            f"{tuple(max(ai - pi, 0) for pi, ai in zip(p, a))} past the full "
            f"transposed convolution; jconv's extends it by at most `stride` - 1 "
            f"(={tuple(si - 1 for si in s)}): its output_padding is below the "
            f"stride and its pads are not negative"
        )
    pads = tuple(
        (pi, pi) if ai < si else (pi, max(pi - ai, 0)) for pi, ai, si in zip(p, a, s)
    )
    extra = tuple(ai if ai < si else max(ai - pi, 0) for pi, ai, si in zip(p, a, s))
    return dict(padding=pads, output_padding=extra)


def read_torch(
    module, *, data_format, impl
) -> tuple[Layer, tuple[np.ndarray], np.ndarray | None, dict]:
    """`(description, kernels, bias, dtypes)` of a torch convolution, as
    `jconv._keras_io.read_keras` gives them: the description with
    `data_format` (the module's input layout) and `impl`, `kernels` a 1-tuple
    in jconv's layout, `dtypes` the module's `param_dtype` (the weight's) and
    `dtype` (None: torch computes in its weights' dtype)."""
    import torch

    cls = _layer_class(module)
    name = f"`module` ({type(module).__name__})"
    if module.weight.dtype not in tuple(getattr(torch, d) for d in _DTYPES):
        raise TypeError(
            f"{name} has weights of dtype {module.weight.dtype}; jconv modules "
            f"hold {', '.join(_DTYPES[:-1])} or {_DTYPES[-1]} ones"
        )
    for channels in ("in_channels", "out_channels"):
        if getattr(module, channels) == 0:
            raise ValueError(
                f"{name} has `{channels}` (=0); jconv's modules take at least "
                f"one input and one output channel"
            )
    arguments = dict(
        in_features=None,
        kernel_size=tuple(module.kernel_size),
        strides=tuple(module.stride),
        dilation_rate=tuple(module.dilation),
        data_format=data_format,
        use_bias=module.bias is not None,
        impl=impl,
        out_features=module.out_channels,
    )
    if not issubclass(cls, ConvTransposeLayer):
        padding = module.padding
        if padding == "same":
            padding = _torch_same(module.kernel_size, module.dilation)
        elif padding != "valid":
            padding = tuple((p, p) for p in padding)
        arguments.update(
            padding=padding, padding_mode=module.padding_mode, groups=module.groups
        )
    else:
        if module.padding_mode != "zeros":
            raise ValueError(
                f"{name} has `padding_mode` (={module.padding_mode!r}), which "
                f"torch's {type(module).__name__} does not compute (its forward takes "
                f"'zeros' only)"
            )
        arguments["groups"] = module.groups
        arguments.update(_transpose_padding(module))
    kernel = kernel_from_torch(_array(module.weight))
    bias = None if module.bias is None else _array(module.bias)
    description = cls(**arguments).with_kernel(kernel.shape)
    dtypes = dict(param_dtype=kernel.dtype, dtype=None)
    return description, (kernel,), bias, dtypes


def to_torch(module, variables=None):
    """A torch convolution (`torch.nn.Conv1d`, `Conv2d`, `Conv3d`,
    `ConvTranspose1d`, `ConvTranspose2d` or `ConvTranspose3d`, by the
    module's kind and rank) equal to a jconv module, weights copied in their
    dtype.

    torch takes channels-first input (NCW, NCHW, NCDHW) whatever the
    module's `data_format`: its output on `x` in that layout is the module's
    on the same `x` in the module's layout, channels first. Its padding is
    the module's written as torch's: "valid" as 0, "full" as `(k - 1) *
    dilation`, "same" at stride 1 as the symmetric pads it means, or as
    torch's "same" where the odd one is at the end; a transposed module's as
    `padding` and `output_padding`. A depthwise module becomes a `ConvNd`
    with `groups=C_in` and `C_in * depth_multiplier` outputs (output channel
    `c * depth_multiplier + m`, as in jconv).

    torch is imported here.

    Args:
      module: a `jconv.nnx` module, or a `jconv.linen` module.
      variables: for a Linen module, its variables (`{"params": ...}`) or
        params; None for an NNX module.

    Returns:
      A `torch.nn.Conv1d`, `Conv2d` or `Conv3d` (from `ConvND` and
      `DepthwiseConvND`) or `torch.nn.ConvTranspose1d`, `ConvTranspose2d` or
      `ConvTranspose3d`, in the parameters' dtype (float16, bfloat16,
      float32, float64, complex64 or complex128; torch, like jconv, does not
      conjugate a complex kernel).

    Raises:
      ValueError: what torch's layers cannot express: pads that depend on
        the input's size ("same" with strides > 1, on a kernel larger than
        1), pads that differ between the two sides (beyond torch's "same"
        at stride 1; "same_lower", "causal"), a transposed layer whose pads
        and `output_padding` torch cannot write as its `padding` (cropped
        from both sides) and `output_padding` (0 up to below the stride or
        the dilation, added at the end): one that crops more at the
        bottom/right than at the top/left (e.g. "same" at stride 2 on a 3x3
        kernel), or more at the top/left than torch's output_padding makes
        up at the end; `input_dilation` above 1; a `padding_mode` other than
        "zeros" on a transposed layer; a computation `dtype` other than the
        parameters'; a kernel whose shape is not the module's (a Linen
        module given another's variables).
      TypeError: not a jconv module, a separable one (torch has no such
        layer), or `variables` missing or given wrongly.

    Example:
      >>> from flax import nnx
      >>> from jconv.nnx import Conv2D, Conv3DTranspose
      >>> module = Conv2D(2, 4, 3, padding="same", rngs=nnx.Rngs(0))
      >>> conv = to_torch(module)
      >>> type(conv).__name__, tuple(conv.weight.shape), conv.padding
      ('Conv2d', (4, 2, 3, 3), (1, 1))
      >>> up = Conv3DTranspose(4, 2, 2, strides=2, padding="valid", rngs=nnx.Rngs(0))
      >>> type(to_torch(up)).__name__, tuple(to_torch(up).weight.shape)
      ('ConvTranspose3d', (4, 2, 2, 2, 2))
    """
    exported = module._export(variables) if isinstance(module, Frontend) else None
    if exported is None or len(exported[0].kernels) > 1:
        raise TypeError(
            f"`module` (={type(module).__name__}) must be a jconv.nnx or jconv.linen "
            f"ConvND, ConvNDTranspose or DepthwiseConvND (N = 1, 2, 3; torch has "
            f"no separable convolution layer: write a SeparableConv2D as a "
            f"depthwise torch.nn.Conv2d followed by a 1x1 one)"
        )
    return _torch_module(*exported)


def _torch_name(layer: Layer) -> str:
    """The torch class of `layer`'s kind and rank: "Conv1d", ...,
    "ConvTranspose3d"."""
    transposed = isinstance(layer, ConvTransposeLayer)
    return f"{'ConvTranspose' if transposed else 'Conv'}{layer.rank}d"


def _torch_module(layer: Layer, kernel, bias, dtype):
    """The torch layer that `layer` (not separable) with these weights is."""
    import torch

    kernel = np.asarray(kernel)
    if dtype is not None and np.dtype(dtype) != kernel.dtype:
        raise ValueError(
            f"`dtype` (={dtype!r}) differs from the parameters' ({kernel.dtype}); "
            f"a torch layer computes in its weights' dtype"
        )
    if kernel.dtype.name not in _DTYPES:
        raise ValueError(
            f"`param_dtype` (={kernel.dtype.name}) has no torch convolution: "
            f"torch's take {', '.join(_DTYPES)}"
        )
    strides = _positive_pair(layer.strides, "strides", layer.rank)
    dilation = _positive_pair(layer.dilation_rate, "dilation_rate", layer.rank)
    name = _torch_name(layer)
    if isinstance(layer, ConvTransposeLayer):
        if layer.padding_mode != "zeros":
            raise ValueError(
                f"`padding_mode` (={layer.padding_mode!r}) has no torch equivalent "
                f"on a transposed layer: torch's {name} pads with zeros"
            )
        groups = layer.groups
        channels = (kernel.shape[-1], kernel.shape[-2] * groups)
        padding, output_padding = _torch_transpose_padding(layer, strides, dilation)
        settings = dict(padding=padding, output_padding=output_padding)
    else:
        input_dilation = layer.input_dilation
        if max(_positive_pair(input_dilation, "input_dilation", layer.rank)) > 1:
            raise ValueError(
                f"`input_dilation` (={input_dilation!r}) has no torch equivalent: "
                f"torch's {name} does not stretch its input"
            )
        if isinstance(layer, DepthwiseConvLayer):
            # (*K, C_in, M) is the grouped kernel (*K, 1, C_in * M): output
            # channel c * M + m of group c, as torch orders them.
            *spatial, c_in, multiplier = kernel.shape
            kernel = kernel.reshape(*spatial, 1, c_in * multiplier)
            groups = c_in
        else:
            groups = layer.groups
        channels = (kernel.shape[-2] * groups, kernel.shape[-1])
        settings = dict(
            padding=_torch_conv_padding(layer, strides, dilation),
            padding_mode=layer.padding_mode,
        )
    out = getattr(torch.nn, name)(
        *channels,
        layer.kernel_size,
        stride=strides,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
        dtype=getattr(torch, kernel.dtype.name),
        **settings,
    )
    _copy(out.weight, kernel_to_torch(kernel))
    if bias is not None:
        _copy(out.bias, bias)
    return out


def _sizes(strides) -> range:
    """Input sizes that take every remainder modulo the strides: a rule that
    pads them all alike pads every size alike."""
    return range(1, max(strides) + 1)


def _torch_conv_padding(layer: Layer, strides, dilation):
    """A direct layer's padding as `torch.nn.ConvNd` takes it: one pad per
    axis, or "same"."""
    name = _torch_name(layer)
    found = {
        resolve_padding(
            (n,) * layer.rank, layer.kernel_size, strides, dilation, layer.padding
        )
        for n in _sizes(strides)
    }
    if len(found) > 1:
        raise ValueError(
            f"`padding` (={layer.padding!r}) with `strides` (={layer.strides!r}) "
            f"pads by the input's size ({' or '.join(map(str, sorted(found)))}); "
            f"torch's {name} pads every input alike: use explicit pads"
        )
    pads = found.pop()
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    if max(strides) == 1 and pads == _torch_same(layer.kernel_size, dilation):
        return "same"
    raise ValueError(
        f"`padding` (={layer.padding!r}) pads {pads}, not alike on both sides: "
        f"torch's {name} pads both sides alike, or by its 'same' (stride 1 "
        f"only) with the odd pad at the bottom/right"
    )


def _torch_transpose_padding(layer: Layer, strides, dilation):
    """A transposed layer's padding as `torch.nn.ConvTransposeNd` takes it:
    `(padding, output_padding)`. torch's output pixel `i * s + j * d - p` of
    `(H - 1) * s + span - 2 * p + a` is jconv's with `top = p`, whatever
    jconv crops at the bottom giving `a`."""
    name = _torch_name(layer)
    found = set()
    for n in _sizes(strides):
        out_sizes, pads = resolve_transpose_padding(
            (n,) * layer.rank,
            layer.kernel_size,
            strides,
            dilation,
            layer.padding,
            layer.output_padding,
        )
        spans = ((k - 1) * d + 1 for k, d in zip(layer.kernel_size, dilation))
        padding = tuple(top for top, _ in pads)
        output_padding = tuple(
            out - ((n - 1) * s + span - 2 * top)
            for out, s, span, top in zip(out_sizes, strides, spans, padding)
        )
        found.add((padding, output_padding, pads))
    if len(found) > 1:  # jconv's transposed rules pad every size alike
        raise ValueError(
            f"`padding` (={layer.padding!r}) pads the transposed output by its "
            f"size; torch's {name} pads every output alike"
        )
    padding, output_padding, pads = found.pop()
    limit = _output_padding_limit(strides, dilation)
    if any(not 0 <= a < m for a, m in zip(output_padding, limit)):
        raise ValueError(
            f"`padding` (={layer.padding!r}) with `output_padding` "
            f"(={layer.output_padding!r}) crops {pads} from the transposed "
            f"output; torch's {name} would crop `padding` (={padding}) "
            f"from both sides and add `output_padding` (={output_padding}) at "
            f"the end, and takes 0 <= output_padding < max(stride, dilation) "
            f"(={limit})"
        )
    return padding, output_padding
