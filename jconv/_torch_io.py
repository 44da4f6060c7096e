"""PyTorch convolution layers to jconv's layer descriptions and back, weights
included.

Two things differ from Keras. The layouts: torch keeps channels first, and
both its weights, `torch.nn.Conv2d`'s `(C_out, C_in // groups, KH, KW)` and
`torch.nn.ConvTranspose2d`'s `(C_in, C_out // groups, KH, KW)`, are jconv's
kernels (HWIO `(KH, KW, C_in // groups, C_out)`, transposed `(KH, KW, C_out //
groups, C_in)`) with their axes reversed in pairs (`kernel_from_torch`,
`kernel_to_torch`). And the padding: torch pads every input alike, by the
same amount on both sides (its "same", stride 1 only, puts an odd extra
row/column at the bottom/right, as jconv's "same" does), and a transposed
layer crops `padding` from both sides of its output and then adds
`output_padding` at the end; jconv's string rules may pad by the input's
size, its pads may differ between the sides, and its `output_padding` is
below the stride (torch's is below the stride or the dilation). What the
other side cannot express is refused, named. torch is imported when a
function is called, never at import time: it is not a dependency of jconv.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jconv._arithmetic import resolve_padding, resolve_transpose_padding
from jconv._layers import (
    Conv2DLayer,
    Conv2DTransposeLayer,
    DepthwiseConv2DLayer,
    Frontend,
    Layer,
)
from jconv._spec import _positive_pair

# The parameter dtypes both torch's convolutions and jconv's modules take, by
# their common name (torch's complex32 has no numpy or jax dtype).
_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")


def kernel_from_torch(weight) -> np.ndarray:
    """jconv's kernel from a torch weight: `(O, I, KH, KW)` -> `(KH, KW, I, O)`,
    which takes a `Conv2d` weight to HWIO and a `ConvTranspose2d` weight
    `(C_in, C_out // groups, KH, KW)` to `(KH, KW, C_out // groups, C_in)`.

    Example:
      >>> kernel_from_torch(np.zeros((6, 2, 3, 5))).shape
      (3, 5, 2, 6)
    """
    return np.asarray(weight).transpose(2, 3, 1, 0)


def kernel_to_torch(kernel) -> np.ndarray:
    """`kernel_from_torch`'s inverse: `(KH, KW, I, O)` -> `(O, I, KH, KW)`.

    Example:
      >>> kernel_to_torch(np.zeros((3, 5, 2, 6))).shape
      (6, 2, 3, 5)
    """
    return np.asarray(kernel).transpose(3, 2, 0, 1)


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
    all, the odd one at the bottom/right (`torch.nn.Conv2d` and
    `F.conv2d`)."""
    totals = (d * (k - 1) for k, d in zip(kernel_size, dilation))
    return tuple((t // 2, t - t // 2) for t in totals)


def _layer_class(module) -> type[Layer]:
    import torch

    # Exactly these classes: a subclass may compute otherwise, a lazy module
    # has no weights yet, a parametrized one computes them.
    if type(module) is torch.nn.Conv2d:
        return Conv2DLayer
    if type(module) is torch.nn.ConvTranspose2d:
        return Conv2DTransposeLayer
    raise TypeError(
        f"`module` (={type(module).__name__}) must be a torch.nn.Conv2d or "
        f"torch.nn.ConvTranspose2d (not a subclass; call a lazy module on an "
        f"input first, remove parametrizations)"
    )


def _output_padding_limit(strides, dilation) -> tuple[int, int]:
    """What torch's `output_padding` must be below, per axis."""
    return tuple(max(s, d) for s, d in zip(strides, dilation))


def _transpose_padding(module) -> dict:
    """A `ConvTranspose2d`'s `padding` `p` and `output_padding` `a` as
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
            f"(={limit}): torch's ConvTranspose2d refuses it when called, so "
            f"there is no output to match"
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
    if cls is Conv2DLayer:
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
                f"torch's ConvTranspose2d does not compute (its forward takes "
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
    """A `torch.nn.Conv2d` or `ConvTranspose2d` equal to a jconv module,
    weights copied in their dtype.

    torch takes NCHW input whatever the module's `data_format`: its output
    on `x` in NCHW is the module's on the same `x` in the module's layout,
    in NCHW. Its padding is the module's written as torch's: "valid" as 0,
    "full" as `(k - 1) * dilation`, "same" at stride 1 as the symmetric pads
    it means, or as torch's "same" where the odd one is at the bottom/right;
    a transposed module's as `padding` and `output_padding`.
    `DepthwiseConv2D` becomes a `Conv2d` with `groups=C_in` and `C_in *
    depth_multiplier` outputs (output channel `c * depth_multiplier + m`, as
    in jconv).

    torch is imported here.

    Args:
      module: a `jconv.nnx` module, or a `jconv.linen` module.
      variables: for a Linen module, its variables (`{"params": ...}`) or
        params; None for an NNX module.

    Returns:
      A `torch.nn.Conv2d` (from `Conv2D` and `DepthwiseConv2D`) or
      `torch.nn.ConvTranspose2d`, in the parameters' dtype (float16,
      bfloat16, float32, float64, complex64 or complex128; torch, like jconv,
      does not conjugate a complex kernel).

    Raises:
      ValueError: what torch's layers cannot express: pads that depend on
        the input's size ("same" with strides > 1, on a kernel larger than
        1), pads that differ between the two sides (beyond torch's "same"
        at stride 1; "same_lower"), a transposed layer whose pads and
        `output_padding` torch cannot write as its `padding` (cropped from
        both sides) and `output_padding` (0 up to below the stride or the
        dilation, added at the end): one that crops more at the bottom/right
        than at the top/left (e.g. "same" at stride 2 on a 3x3 kernel), or
        more at the top/left than torch's output_padding makes up at the
        end; a `padding_mode` other than "zeros" on a transposed layer; a
        computation `dtype` other than the parameters'.
      TypeError: not a jconv module, a `SeparableConv2D` (torch has no such
        layer), or `variables` missing or given wrongly.

    Example:
      >>> from flax import nnx
      >>> from jconv.nnx import Conv2D
      >>> module = Conv2D(2, 4, 3, padding="same", rngs=nnx.Rngs(0))
      >>> conv = to_torch(module)
      >>> type(conv).__name__, tuple(conv.weight.shape), conv.padding
      ('Conv2d', (4, 2, 3, 3), (1, 1))
    """
    exported = module._export(variables) if isinstance(module, Frontend) else None
    if exported is None or len(exported[0].kernels) > 1:
        raise TypeError(
            f"`module` (={type(module).__name__}) must be a jconv.nnx or jconv.linen "
            f"Conv2D, Conv2DTranspose or DepthwiseConv2D (torch has no separable "
            f"convolution layer: write a SeparableConv2D as a depthwise "
            f"torch.nn.Conv2d followed by a 1x1 one)"
        )
    return _torch_module(*exported)


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
    strides = _positive_pair(layer.strides, "strides")
    dilation = _positive_pair(layer.dilation_rate, "dilation_rate")
    if isinstance(layer, Conv2DTransposeLayer):
        if layer.padding_mode != "zeros":
            raise ValueError(
                f"`padding_mode` (={layer.padding_mode!r}) has no torch equivalent "
                f"on a transposed layer: torch's ConvTranspose2d pads with zeros"
            )
        cls, groups = torch.nn.ConvTranspose2d, layer.groups
        channels = (kernel.shape[3], kernel.shape[2] * groups)
        padding, output_padding = _torch_transpose_padding(layer, strides, dilation)
        settings = dict(padding=padding, output_padding=output_padding)
    else:
        if isinstance(layer, DepthwiseConv2DLayer):
            # (KH, KW, C_in, M) is the grouped kernel (KH, KW, 1, C_in * M):
            # output channel c * M + m of group c, as torch orders them.
            kh, kw, c_in, multiplier = kernel.shape
            kernel = kernel.reshape(kh, kw, 1, c_in * multiplier)
            groups = c_in
        else:
            groups = layer.groups
        cls, channels = torch.nn.Conv2d, (kernel.shape[2] * groups, kernel.shape[3])
        settings = dict(
            padding=_torch_conv_padding(layer, strides, dilation),
            padding_mode=layer.padding_mode,
        )
    out = cls(
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
    """A direct layer's padding as `torch.nn.Conv2d` takes it: `(ph, pw)` or
    "same"."""
    found = {
        resolve_padding((n, n), layer.kernel_size, strides, dilation, layer.padding)
        for n in _sizes(strides)
    }
    if len(found) > 1:
        raise ValueError(
            f"`padding` (={layer.padding!r}) with `strides` (={layer.strides!r}) "
            f"pads by the input's size ({' or '.join(map(str, sorted(found)))}); "
            f"torch's Conv2d pads every input alike: use explicit pads"
        )
    ((top, bottom), (left, right)) = pads = found.pop()
    if top == bottom and left == right:
        return (top, left)
    if strides == (1, 1) and pads == _torch_same(layer.kernel_size, dilation):
        return "same"
    raise ValueError(
        f"`padding` (={layer.padding!r}) pads {pads}, not alike on both sides: "
        f"torch's Conv2d pads both sides alike, or by its 'same' (stride 1 "
        f"only) with the odd pad at the bottom/right"
    )


def _torch_transpose_padding(layer: Layer, strides, dilation):
    """A transposed layer's padding as `torch.nn.ConvTranspose2d` takes it:
    `(padding, output_padding)`. torch's output pixel `i * s + j * d - p` of
    `(H - 1) * s + span - 2 * p + a` is jconv's with `top = p`, whatever
    jconv crops at the bottom giving `a`."""
    found = set()
    for n in _sizes(strides):
        out_hw, pads = resolve_transpose_padding(
            (n, n),
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
            for out, s, span, top in zip(out_hw, strides, spans, padding)
        )
        found.add((padding, output_padding, pads))
    if len(found) > 1:  # jconv's transposed rules pad every size alike
        raise ValueError(
            f"`padding` (={layer.padding!r}) pads the transposed output by its "
            f"size; torch's ConvTranspose2d pads every output alike"
        )
    padding, output_padding, pads = found.pop()
    limit = _output_padding_limit(strides, dilation)
    if any(not 0 <= a < m for a, m in zip(output_padding, limit)):
        raise ValueError(
            f"`padding` (={layer.padding!r}) with `output_padding` "
            f"(={layer.output_padding!r}) crops {pads} from the transposed "
            f"output; torch's ConvTranspose2d would crop `padding` (={padding}) "
            f"from both sides and add `output_padding` (={output_padding}) at "
            f"the end, and takes 0 <= output_padding < max(stride, dilation) "
            f"(={limit})"
        )
    return padding, output_padding
