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
size, and its pads may differ between the sides. What torch cannot express
is refused, named. torch is imported when a function is called, never at
import time: it is not a dependency of jconv.
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

# The parameter dtypes a torch convolution computes in, by their common name.
_DTYPES = ("float16", "bfloat16", "float32", "float64")


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


def _transpose_padding(module) -> dict:
    """A `ConvTranspose2d`'s `padding` and `output_padding` as jconv's: pads
    `((p, p), (q, q))` and `output_padding` as given where it is below the
    stride. torch also takes it below the dilation: then it is written as
    that many fewer pads at the bottom/right."""
    pads, extra = [], []
    for p, a, s in zip(module.padding, module.output_padding, module.stride):
        if a < s:
            pads.append((p, p))
            extra.append(a)
        elif a <= p:
            pads.append((p, p - a))
            extra.append(0)
        else:
            raise ValueError(
                f"`output_padding` (={module.output_padding}) is not smaller than "
                f"`stride` (={module.stride}) and exceeds `padding` "
                f"(={module.padding}): jconv's transposed convolution takes an "
                f"output_padding below the stride (torch: below the stride or "
                f"the dilation), and fewer pads at the end cannot make up for it"
            )
    return dict(padding=tuple(pads), output_padding=tuple(extra))


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
            f"hold float16, bfloat16, float32 or float64 ones"
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
                f"{name} has `padding_mode` (={module.padding_mode!r}); a "
                f"transposed layer pads with zeros"
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
      `torch.nn.ConvTranspose2d`, in the parameters' dtype.

    Raises:
      ValueError: what torch's layers cannot express: pads that depend on
        the input's size ("same" with strides > 1, on a kernel larger than
        1), pads that differ between the two sides (beyond torch's "same"
        at stride 1; "same_lower"; a transposed layer that crops more at the
        end than at the start), a `padding_mode` other than "zeros" on a
        transposed layer, a computation `dtype` other than the parameters',
        or parameters in a dtype torch convolutions do not take.
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
    if not isinstance(module, Frontend):
        raise TypeError(
            f"`module` (={type(module).__name__}) must be a jconv.nnx or jconv.linen "
            f"Conv2D, Conv2DTranspose or DepthwiseConv2D"
        )
    return _torch_module(*module._export(variables))


def _torch_module(layer: Layer, kernel, bias, dtype):
    """The torch layer that `layer` with these weights is."""
    import torch

    if len(layer.kernels) > 1:
        raise TypeError(
            f"`module` ({layer.keras_name}) has no torch equivalent: torch has "
            f"no separable convolution layer (write it as a depthwise "
            f"torch.nn.Conv2d followed by a 1x1 one)"
        )
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
    common = dict(
        kernel_size=layer.kernel_size,
        stride=strides,
        dilation=dilation,
        bias=bias is not None,
        dtype=getattr(torch, kernel.dtype.name),
    )
    if isinstance(layer, Conv2DTransposeLayer):
        padding_mode = getattr(layer, "padding_mode", "zeros")
        if padding_mode != "zeros":
            raise ValueError(
                f"`padding_mode` (={padding_mode!r}) has no torch equivalent on "
                f"a transposed layer: torch's ConvTranspose2d pads with zeros"
            )
        groups = getattr(layer, "groups", 1)
        padding, output_padding = _torch_transpose_padding(layer, strides, dilation)
        out = torch.nn.ConvTranspose2d(
            kernel.shape[3],
            kernel.shape[2] * groups,
            padding=padding,
            output_padding=output_padding,
            groups=groups,
            **common,
        )
    else:
        if isinstance(layer, DepthwiseConv2DLayer):
            # (KH, KW, C_in, M) is the grouped kernel (KH, KW, 1, C_in * M):
            # output channel c * M + m of group c, as torch orders them.
            kh, kw, c_in, multiplier = kernel.shape
            kernel = kernel.reshape(kh, kw, 1, c_in * multiplier)
            groups = c_in
        else:
            groups = layer.groups
        out = torch.nn.Conv2d(
            kernel.shape[2] * groups,
            kernel.shape[3],
            padding=_torch_conv_padding(layer, strides, dilation),
            padding_mode=layer.padding_mode,
            groups=groups,
            **common,
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
    if any(
        a < 0 or a >= max(s, d) for a, s, d in zip(output_padding, strides, dilation)
    ):
        raise ValueError(
            f"`padding` (={layer.padding!r}) with `output_padding` "
            f"(={layer.output_padding!r}) crops {pads} from the transposed "
            f"output: torch's ConvTranspose2d crops `padding` from both sides, "
            f"then adds an `output_padding` below the stride or the dilation "
            f"at the end, here {output_padding}"
        )
    return padding, output_padding
