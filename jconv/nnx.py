"""Flax NNX modules on jconv, for 1, 2 and 3 spatial axes: `Conv1D`,
`Conv2D`, `Conv3D`, `Conv1DTranspose`, `Conv2DTranspose`,
`Conv3DTranspose`, `DepthwiseConv1D`, `DepthwiseConv2D`,
`DepthwiseConv3D`, `SeparableConv1D`, `SeparableConv2D`, `SeparableConv3D`
(Keras 3's convolution layers and their names, plus the 3D depthwise and
separable ones Keras lacks).

Constructor arguments follow `flax.nnx.Conv` (`in_features`, `out_features`,
`kernel_size`, `strides`, then keywords `padding`, `use_bias`, `dtype`,
`param_dtype`, `precision`, `preferred_element_type`, `kernel_init`,
`bias_init`, `rngs`, and for the forward convolutions `input_dilation`) with
Keras' names for the rest (`dilation_rate`, `groups`, `output_padding`,
`depth_multiplier`, `data_format`), plus jconv's `padding_mode` and `impl`
(`"auto"`, `"lax"`, `"einsum"`, `"fft"` or `"onednn"`). Every per-axis
argument (`kernel_size`, `strides`, `dilation_rate`, `input_dilation`,
`output_padding`) is an int or one value per spatial axis. Parameters are
`kernel` and `bias` in Keras' layouts (the separable modules:
`depthwise_kernel`, `pointwise_kernel` and `bias`, initialised by
`depthwise_init` and `pointwise_init`), so weights move between Keras,
`nnx.Conv` and these modules unchanged.

Every argument is checked when the module is built, by the same code that
checks `jconv.conv`'s, and a bad one raises there, named. String arguments
are read in any case.

`padding` defaults to `"SAME"` as in Flax (`jconv.conv2d` and Keras default to
"valid"). Flax's "SAME" is lax's, which is TensorFlow's rule: for even kernels
and strides > 1 too, Flax, Keras and jconv pad alike (the extra row/column at
the bottom/right). Flax's "CIRCULAR"/"REFLECT" strings are not accepted: use
`padding="same"` with `padding_mode="circular"`/`"reflect"`, which for strides
> 1 pads by the "same" rule for that stride where Flax pads
`((k - 1) // 2, k // 2)` whatever the stride. The forward convolutions also
take Keras' `"causal"` (every pad before the input: `Conv1D`'s causal
convolution).

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> layer = Conv2D(3, 8, (3, 3), strides=2, rngs=nnx.Rngs(0), impl="einsum")
  >>> layer.kernel.shape, layer.bias.shape
  ((3, 3, 3, 8), (8,))
  >>> layer(jnp.ones((2, 9, 9, 3))).shape
  (2, 5, 5, 8)
  >>> Conv1D(3, 8, 5, padding="causal", rngs=nnx.Rngs(0))(jnp.ones((2, 16, 3))).shape
  (2, 16, 8)
"""

from __future__ import annotations

import inspect

import jax.numpy as jnp
from flax import nnx

from jconv import _layers
from jconv._keras_io import read_keras
from jconv._keras_io import to_keras as to_keras
from jconv._torch_io import read_torch
from jconv._torch_io import to_torch as to_torch

__all__ = [
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "DepthwiseConv3D",
    "SeparableConv1D",
    "SeparableConv2D",
    "SeparableConv3D",
    "from_keras",
    "from_torch",
    "to_keras",
    "to_torch",
]


# The arguments a module also takes positionally, as `nnx.Conv`'s.
_POSITIONAL = ("in_features", "out_features", "kernel_size", "strides")

# The module of each layer kind (`from_keras`, `from_torch`).
_MODULES = {}


class _ClassSignature:
    """`inspect.signature` of a module class: its constructor's, where
    Flax's metaclass `__call__` would give `(*args, **kwargs)`. An instance
    has none, so `inspect.signature(module)` stays its `__call__`'s."""

    def __get__(self, instance, owner):
        if instance is not None:
            raise AttributeError("__signature__")
        init = inspect.signature(owner.__init__)
        return init.replace(parameters=tuple(init.parameters.values())[1:])


def _constructor(cls, layer: type[_layers.Layer]):
    """`cls.__init__`, with its signature: `layer`'s module arguments (those
    in `_POSITIONAL` positionally too), then `rngs`."""
    parameters = []
    for p in layer.module_arguments():
        if p.name == "in_features":  # known when an NNX module is built
            p = p.replace(annotation="int")
        if p.name in _POSITIONAL:
            p = p.replace(kind=p.POSITIONAL_OR_KEYWORD)
        parameters.append(p)
    rngs = inspect.Parameter(
        "rngs", inspect.Parameter.KEYWORD_ONLY, annotation="nnx.Rngs"
    )
    signature = inspect.Signature([*parameters, rngs])

    def __init__(self, *args, **kwargs):
        try:
            arguments = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{cls.__name__}(): {error}") from None
        arguments.apply_defaults()
        self._setup(**arguments.arguments)

    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = signature.replace(parameters=[this, *parameters, rngs])
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    return __init__


class _Conv(nnx.Module, _layers.Frontend):
    """Parameters and the call, shared by the modules. A module is a class on
    a layer kind, `class Conv2D(_Conv, layer=_layers.Conv2DLayer)`: its
    constructor takes the kind's arguments (`Layer.module_arguments`), then
    `rngs`. The module holds its layer description, whose fields read as its
    attributes (`strides`, `padding`, ...)."""

    __signature__ = _ClassSignature()

    def __init_subclass__(cls, layer: type[_layers.Layer] | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if layer is not None:  # else a subclass of a module: its constructor
            cls._layer_class = layer
            cls.__init__ = _constructor(cls, layer)
            _MODULES[layer] = cls

    def _setup(self, *, dtype, param_dtype, precision, preferred_element_type,
               bias_init, rngs, **arguments):  # fmt: skip
        """The constructor, on its arguments by name: the description's
        fields, then each kernel's initialiser by the argument name
        `layer.kernels` gives it (`kernel_init=...`)."""
        fields = self._layer_class.argument_names()
        layer = self._layer_class(**{name: arguments.pop(name) for name in fields})
        kernel_inits = arguments
        _layers.check_dtype(dtype, "dtype")
        _layers.check_dtype(param_dtype, "param_dtype")
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(
                f"`rngs` (={rngs!r}) must be an `nnx.Rngs`, e.g. `nnx.Rngs(0)`"
            )
        self._layer = layer
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = _layers.check_precision(precision)
        self.preferred_element_type = _layers.check_preferred_element_type(
            preferred_element_type
        )
        # Flax's order: the kernel's key first (the kernels' in Keras' weight
        # order), then the bias's.
        for name, init in layer.kernels.items():
            key = rngs.params()
            kernel = layer.init_kernel(name, kernel_inits[init], key, param_dtype)
            setattr(self, name, nnx.Param(kernel))
        self.bias: nnx.Param | None
        if layer.use_bias:
            shape = layer.bias_shape
            self.bias = nnx.Param(bias_init(rngs.params(), shape, param_dtype))
        else:
            self.bias = nnx.data(None)

    def __getattr__(self, name):
        # Only names not found otherwise: the description's fields, stored once.
        layer = vars(self).get("_layer")
        if layer is None or name not in layer.arguments():
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            )
        return getattr(layer, name)

    def _weights(self):
        """`(kernels, bias)`: the kernels a tuple in `layer.kernels`' order."""
        kernels = tuple(getattr(self, name)[...] for name in self._layer.kernels)
        return kernels, None if self.bias is None else self.bias[...]

    def __call__(self, x):
        """Applies the layer to `x` (see the class docstring for shapes)."""
        kernels, bias = self._weights()
        return self._layer(
            x,
            kernels,
            bias,
            dtype=self.dtype,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )

    def _export(self, variables):
        if variables is not None:
            raise TypeError(
                "`variables` must be None for an NNX module (it holds its own weights)"
            )
        kernels, bias = self._weights()
        self._layer.check_kernels(kernels)
        return self._layer, self._layer.join(kernels), bias, self.dtype


class Conv2D(_Conv, layer=_layers.Conv2DLayer):
    """2D convolution, `jconv.conv2d` with its parameters: `flax.nnx.Conv` in
    2D with Keras `Conv2D` semantics and Keras' argument names for dilation and
    groups.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, in_features)`, unbatched `(H, W, in_features)`, or more
        leading batch axes (flattened for the call and restored, as Flax does).
      kernel: `(KH, KW, in_features // groups, out_features)`.
      bias: `(out_features,)`.
      output: `(N, H_out, W_out, out_features)`, `H_out` as in `jconv.conv2d`
        ("same": `ceil(H / stride)`).

    Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: int or `(KH, KW)`.
      strides: int or `(sh, sw)`.
      padding: "same" (default, as Flax; any case), "valid", "same_lower",
        "full", "causal" (every pad before the input), an int, `(pad_h,
        pad_w)` or `((top, bottom), (left, right))`.
      padding_mode: "zeros", "reflect", "replicate" or "circular".
      dilation_rate: int or `(dh, dw)` (Flax's `kernel_dilation`).
      groups: channel groups (Flax's `feature_group_count`).
      use_bias: add a bias.
      data_format: "channels_last" (Flax's layout) or "channels_first".
      dtype: computation dtype; None infers it from the input and parameters.
      param_dtype: parameter dtype.
      precision: passed to the contraction.
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      kernel_init: `init(key, shape, dtype)` for the kernel (LeCun normal).
      bias_init: `init(key, shape, dtype)` for the bias (zeros).
      impl: "auto" (the fastest plan for the call, `jconv.conv2d`), "lax",
        "einsum", "fft" or "onednn".
      input_dilation: int or `(dh, dw)`: the input stretched by
        `input_dilation - 1` zeros between pixels before it is padded (Flax's
        `input_dilation`, lax's `lhs_dilation`; Keras and torch layers have
        none).
      rngs: an `nnx.Rngs`; its `params` stream gives the kernel's key, then the
        bias's, as `nnx.Conv`'s does (same seed, same initial weights).

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> conv = Conv2D(4, 6, 3, padding="valid", groups=2, rngs=nnx.Rngs(0))
      >>> conv.kernel.shape
      (3, 3, 2, 6)
      >>> conv(jnp.ones((7, 7, 4))).shape
      (5, 5, 6)
    """


class Conv2DTranspose(_Conv, layer=_layers.Conv2DTransposeLayer):
    """Transposed 2D convolution, `jconv.conv2d_transpose` with its parameters
    (Keras `Conv2DTranspose` semantics): the adjoint of a `Conv2D` with the same
    kernel, strides, padding, padding mode, dilation and groups.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KH, KW, out_features // groups, in_features)` (Keras' layout;
        also `nnx.ConvTranspose`'s with `transpose_kernel=True`).
      bias: `(out_features,)`.
      output: `(N, H_out, W_out, out_features)`, `H_out` as in
        `jconv.conv2d_transpose` ("same": `H * stride`).

    Args:
      in_features, out_features, kernel_size, strides, dilation_rate,
      use_bias, data_format, dtype, param_dtype, precision, bias_init, impl,
      rngs: as for `Conv2D`.
      padding: as for `Conv2D` but "causal" (a forward convolution's rule).
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      output_padding: None, int or `(ah, aw)`, each smaller than the stride.
      padding_mode: "zeros", "reflect", "replicate" or "circular": the
        transposed padding folds the border back (the exact adjoint of a
        `Conv2D` with that mode), as in `jconv.conv2d_transpose`.
      groups: channel groups, PyTorch's convention (see
        `jconv.conv2d_transpose`); Keras' layer has none.
      kernel_init: the kernel's initialiser (LeCun normal over its last axis,
        the input channels).

    Note: unlike Flax's `nnx.ConvTranspose`, `padding` is the padding of the
    convolution this is the adjoint of (Keras' meaning); for `"valid"` and
    kernels at least as large as the stride the two agree.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> up = Conv2DTranspose(8, 3, (3, 3), strides=2, rngs=nnx.Rngs(0))
      >>> up.kernel.shape
      (3, 3, 3, 8)
      >>> up(jnp.ones((1, 4, 4, 8))).shape
      (1, 8, 8, 3)
    """


class DepthwiseConv2D(_Conv, layer=_layers.DepthwiseConv2DLayer):
    """Depthwise 2D convolution, `jconv.depthwise_conv2d` with its parameters
    (Keras `DepthwiseConv2D` semantics): input channel `c` is convolved with
    its own `depth_multiplier` filters, giving output channels
    `c * depth_multiplier + m`.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KH, KW, in_features, depth_multiplier)`.
      bias: `(in_features * depth_multiplier,)`.
      output: `(N, H_out, W_out, in_features * depth_multiplier)`.

    It is `Conv2D(in_features, in_features * depth_multiplier,
    groups=in_features)` with the kernel reshaped to `(KH, KW, 1, in_features
    * depth_multiplier)`, and `kernel_init` is called with that grouped shape
    (fan-in `KH * KW`), so an `nnx.Conv` with `feature_group_count=in_features`
    and the same seed starts from the same weights.

    Args:
      in_features, kernel_size, strides, padding, padding_mode, dilation_rate,
      use_bias, data_format, dtype, param_dtype, precision, kernel_init,
      bias_init, impl, input_dilation, rngs: as for `Conv2D`.
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      depth_multiplier: filters per input channel.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> dw = DepthwiseConv2D(4, (3, 3), depth_multiplier=2, rngs=nnx.Rngs(0))
      >>> dw.kernel.shape, dw.bias.shape
      ((3, 3, 4, 2), (8,))
      >>> dw(jnp.ones((1, 6, 6, 4))).shape
      (1, 6, 6, 8)
    """


class SeparableConv2D(_Conv, layer=_layers.SeparableConv2DLayer):
    """Separable 2D convolution, `jconv.separable_conv2d` with its parameters
    (Keras `SeparableConv2D` semantics): a depthwise convolution (strides,
    padding, padding mode and dilation apply to it), then a 1x1 convolution
    mixing its `in_features * depth_multiplier` channels into `out_features`,
    then the bias.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, in_features)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KH, KW, in_features, depth_multiplier)`.
      pointwise_kernel: `(1, 1, in_features * depth_multiplier, out_features)`.
      bias: `(out_features,)`.
      output: `(N, H_out, W_out, out_features)`, `H_out` as in `jconv.conv2d`.

    Parameters are named as Keras' weights (`depthwise_kernel`,
    `pointwise_kernel`, `bias`, drawn from `rngs` in that order). Keras
    initialises both kernels `glorot_uniform`; here, as in Flax, LeCun normal
    over each kernel's fan-in: the depthwise kernel as `DepthwiseConv2D`'s
    (fan-in `KH * KW`), the pointwise one as a 1x1 `Conv2D`'s (fan-in
    `in_features * depth_multiplier`).

    Args:
      in_features, out_features, kernel_size, strides, padding, padding_mode,
      dilation_rate, use_bias, data_format, dtype, param_dtype, precision,
      bias_init, impl, input_dilation, rngs: as for `Conv2D` (the spatial
      ones for the depthwise step).
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      depth_multiplier: depthwise filters per input channel.
      depthwise_init: `init(key, shape, dtype)` for the depthwise kernel,
        called with the grouped shape `(KH, KW, 1, in_features *
        depth_multiplier)` and reshaped, as in `DepthwiseConv2D`.
      pointwise_init: `init(key, shape, dtype)` for the pointwise kernel.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> sep = SeparableConv2D(4, 8, 3, depth_multiplier=2, rngs=nnx.Rngs(0))
      >>> sep.depthwise_kernel.shape, sep.pointwise_kernel.shape, sep.bias.shape
      ((3, 3, 4, 2), (1, 1, 8, 8), (8,))
      >>> sep(jnp.ones((1, 6, 6, 4))).shape
      (1, 6, 6, 8)
    """


class Conv1D(_Conv, layer=_layers.Conv1DLayer):
    """1D convolution, `jconv.conv1d` with its parameters: `flax.nnx.Conv` in
    1D with Keras `Conv1D` semantics (`padding="causal"` included).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, in_features)`, unbatched `(W, in_features)`, or more
        leading batch axes.
      kernel: `(KW, in_features // groups, out_features)`.
      bias: `(out_features,)`.
      output: `(N, W_out, out_features)`, `W_out` as in `jconv.conv1d`
        ("same": `ceil(W / stride)`; "causal": as "valid" on the input
        padded by `(KW - 1) * dilation` at its start).

    Args:
      as for `Conv2D`, each per-axis argument an int or a 1-tuple
      (`kernel_size`, `strides`, `dilation_rate`, `input_dilation`; pads
      `((left, right),)`).

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> conv = Conv1D(4, 6, 3, dilation_rate=2, padding="causal", rngs=nnx.Rngs(0))
      >>> conv.kernel.shape
      (3, 4, 6)
      >>> conv(jnp.ones((2, 10, 4))).shape
      (2, 10, 6)
    """


class Conv3D(_Conv, layer=_layers.Conv3DLayer):
    """3D convolution, `jconv.conv3d` with its parameters: `flax.nnx.Conv` in
    3D with Keras `Conv3D` semantics.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, in_features)`, unbatched `(D, H, W, in_features)`,
        or more leading batch axes.
      kernel: `(KD, KH, KW, in_features // groups, out_features)`.
      bias: `(out_features,)`.
      output: `(N, D_out, H_out, W_out, out_features)`, each as in
        `jconv.conv3d`.

    Args:
      as for `Conv2D`, each per-axis argument an int or a 3-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> conv = Conv3D(2, 4, (3, 3, 1), strides=(1, 2, 2), rngs=nnx.Rngs(0))
      >>> conv.kernel.shape
      (3, 3, 1, 2, 4)
      >>> conv(jnp.ones((1, 4, 6, 6, 2))).shape
      (1, 4, 3, 3, 4)
    """


class Conv1DTranspose(_Conv, layer=_layers.Conv1DTransposeLayer):
    """Transposed 1D convolution, `jconv.conv1d_transpose` with its parameters
    (Keras `Conv1DTranspose` semantics; groups and the padding modes as in
    `Conv2DTranspose`).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KW, out_features // groups, in_features)`.
      bias: `(out_features,)`.
      output: `(N, W_out, out_features)`, `W_out` as in
        `jconv.conv1d_transpose` ("same": `W * stride`).

    Args:
      as for `Conv2DTranspose`, each per-axis argument an int or a 1-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> up = Conv1DTranspose(8, 3, 4, strides=2, rngs=nnx.Rngs(0))
      >>> up.kernel.shape
      (4, 3, 8)
      >>> up(jnp.ones((1, 5, 8))).shape
      (1, 10, 3)
    """


class Conv3DTranspose(_Conv, layer=_layers.Conv3DTransposeLayer):
    """Transposed 3D convolution, `jconv.conv3d_transpose` with its parameters
    (Keras `Conv3DTranspose` semantics; groups and the padding modes as in
    `Conv2DTranspose`).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KD, KH, KW, out_features // groups, in_features)`.
      bias: `(out_features,)`.
      output: `(N, D_out, H_out, W_out, out_features)`, each as in
        `jconv.conv3d_transpose`.

    Args:
      as for `Conv2DTranspose`, each per-axis argument an int or a 3-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> up = Conv3DTranspose(4, 2, 2, strides=(1, 2, 2), rngs=nnx.Rngs(0))
      >>> up.kernel.shape
      (2, 2, 2, 2, 4)
      >>> up(jnp.ones((1, 3, 4, 4, 4))).shape
      (1, 3, 8, 8, 2)
    """


class DepthwiseConv1D(_Conv, layer=_layers.DepthwiseConv1DLayer):
    """Depthwise 1D convolution, `jconv.depthwise_conv1d` with its parameters
    (Keras `DepthwiseConv1D` semantics): `DepthwiseConv2D` on one spatial
    axis.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KW, in_features, depth_multiplier)`.
      bias: `(in_features * depth_multiplier,)`.
      output: `(N, W_out, in_features * depth_multiplier)`.

    Args:
      as for `DepthwiseConv2D`, each per-axis argument an int or a 1-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> dw = DepthwiseConv1D(4, 3, depth_multiplier=2, rngs=nnx.Rngs(0))
      >>> dw.kernel.shape, dw.bias.shape
      ((3, 4, 2), (8,))
      >>> dw(jnp.ones((1, 9, 4))).shape
      (1, 9, 8)
    """


class DepthwiseConv3D(_Conv, layer=_layers.DepthwiseConv3DLayer):
    """Depthwise 3D convolution, `jconv.depthwise_conv3d` with its parameters:
    `DepthwiseConv2D` on three spatial axes. Keras has no such layer
    (`to_keras` refuses it); `to_torch` gives a grouped `torch.nn.Conv3d`.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, in_features)` (or unbatched, or more batch axes).
      kernel: `(KD, KH, KW, in_features, depth_multiplier)`.
      bias: `(in_features * depth_multiplier,)`.
      output: `(N, D_out, H_out, W_out, in_features * depth_multiplier)`.

    Args:
      as for `DepthwiseConv2D`, each per-axis argument an int or a 3-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> dw = DepthwiseConv3D(2, 3, padding="valid", rngs=nnx.Rngs(0))
      >>> dw.kernel.shape
      (3, 3, 3, 2, 1)
      >>> dw(jnp.ones((1, 4, 5, 6, 2))).shape
      (1, 2, 3, 4, 2)
    """


class SeparableConv1D(_Conv, layer=_layers.SeparableConv1DLayer):
    """Separable 1D convolution, `jconv.separable_conv1d` with its parameters
    (Keras `SeparableConv1D` semantics): `SeparableConv2D` on one spatial
    axis.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, in_features)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KW, in_features, depth_multiplier)`.
      pointwise_kernel: `(1, in_features * depth_multiplier, out_features)`.
      bias: `(out_features,)`.
      output: `(N, W_out, out_features)`.

    Args:
      as for `SeparableConv2D`, each per-axis argument an int or a 1-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> sep = SeparableConv1D(4, 8, 3, depth_multiplier=2, rngs=nnx.Rngs(0))
      >>> sep.depthwise_kernel.shape, sep.pointwise_kernel.shape
      ((3, 4, 2), (1, 8, 8))
      >>> sep(jnp.ones((1, 9, 4))).shape
      (1, 9, 8)
    """


class SeparableConv3D(_Conv, layer=_layers.SeparableConv3DLayer):
    """Separable 3D convolution, `jconv.separable_conv3d` with its
    parameters: `SeparableConv2D` on three spatial axes. Keras has no such
    layer (`to_keras` refuses it), nor torch (`to_torch` refuses it).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, in_features)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KD, KH, KW, in_features, depth_multiplier)`.
      pointwise_kernel: `(1, 1, 1, in_features * depth_multiplier,
        out_features)`.
      bias: `(out_features,)`.
      output: `(N, D_out, H_out, W_out, out_features)`.

    Args:
      as for `SeparableConv2D`, each per-axis argument an int or a 3-tuple.

    Raises:
      ValueError, TypeError: a bad argument, named, when the module is built.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> sep = SeparableConv3D(2, 4, 3, rngs=nnx.Rngs(0))
      >>> sep.depthwise_kernel.shape, sep.pointwise_kernel.shape
      ((3, 3, 3, 2, 1), (1, 1, 1, 2, 4))
      >>> sep(jnp.ones((1, 4, 4, 4, 2))).shape
      (1, 4, 4, 4, 4)
    """


def from_keras(layer, *, impl="auto", precision=None):
    """The `jconv.nnx` module equal to a built Keras convolution layer.

    Args:
      layer: a built `keras.layers.Conv1D`, `Conv2D`, `Conv3D`,
        `Conv1DTranspose`, `Conv2DTranspose`, `Conv3DTranspose`,
        `DepthwiseConv1D`, `DepthwiseConv2D`, `SeparableConv1D` or
        `SeparableConv2D` with no activation (`activation=None`).
      impl: "auto" (the fastest plan for the call, `jconv.conv`), "lax",
        "einsum", "fft" or "onednn".
      precision: the module's `precision`.

    Returns:
      The `jconv.nnx` module of the layer's class name (`Conv1D`, ...) with
      the layer's configuration, `padding` (Conv1D's "causal" included) and
      `data_format` included, and a copy of its weights; `module(x)` equals
      `layer(x)`.

    Raises:
      TypeError: `layer` is not one of these layer types.
      ValueError: `layer` is not built, is quantized, or has an activation.

    Example:
      >>> import keras, numpy as np
      >>> layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
      >>> y_keras = layer(np.ones((1, 7, 7, 2), np.float32))
      >>> module = from_keras(layer)
      >>> type(module).__name__, module.kernel.shape, module.padding
      ('Conv2D', (3, 3, 2, 4), 'same')
      >>> bool(np.allclose(module(np.ones((1, 7, 7, 2))), y_keras, atol=1e-5))
      True
    """
    description, kernels, bias, dtypes = read_keras(layer, impl)
    return _build(description, kernels, bias, dtypes, precision)


def from_torch(module, *, data_format="channels_last", impl="auto", precision=None):
    """The `jconv.nnx` module equal to a torch convolution: `torch.nn.Conv1d`,
    `Conv2d`, `Conv3d`, `ConvTranspose1d`, `ConvTranspose2d` or
    `ConvTranspose3d`.

    Args:
      module: a `torch.nn.Conv1d`, `Conv2d` or `Conv3d` (any `padding`,
        `padding_mode`, `groups`) or `torch.nn.ConvTranspose1d`,
        `ConvTranspose2d` or `ConvTranspose3d`.
      data_format: the returned module's input layout: "channels_last"
        (NWC, NHWC or NDHWC, as every jconv module) or "channels_first"
        (NCW, NCHW or NCDHW, torch's).
      impl: "auto" (the fastest plan for the call, `jconv.conv`), "lax",
        "einsum", "fft" or "onednn".
      precision: the module's `precision`.

    Returns:
      A `jconv.nnx.Conv1D`, `Conv2D` or `Conv3D`, or `Conv1DTranspose`,
      `Conv2DTranspose` or `Conv3DTranspose`, with a copy of the weights in
      their dtype (`param_dtype`: float16, bfloat16, float32, float64,
      complex64 or complex128; neither torch nor jconv conjugates a complex
      kernel) and the layer's configuration, its padding as explicit pads:
      torch's "same" as the pads it means; a transposed layer's `padding` `p`
      as pads `(p, p)` and its `output_padding` `a` as given where it is
      below the stride, else as `max(p - a, 0)` pads at the bottom/right and
      output_padding `max(a - p, 0)` (torch takes an `a` below the dilation
      too; the output depends only on the top/left pad and its size).
      `module(x)` equals the torch layer's output on `x` in NCHW (NCW,
      NCDHW), in the module's layout.

    Raises:
      TypeError: `module` is not exactly one of the six classes, or its
        weights are in a dtype jconv's modules do not hold (torch's
        complex32).
      ValueError: what jconv's modules do not take, or torch does not
        compute: zero `in_channels` or `out_channels`; a transposed layer
        whose `output_padding` is not below `padding + stride` (its output
        would end past the full transposed convolution by more than the
        `stride - 1` rows/columns jconv's output_padding adds, and jconv's
        pads are not negative), or not below max(stride, dilation) (torch
        refuses it when called), or whose `padding_mode` is not "zeros"
        (torch's transposed convolutions compute only that); an unknown
        `data_format` or `impl`.

    Example:
      >>> import numpy as np, torch
      >>> conv = torch.nn.Conv2d(2, 4, 3, padding="same", padding_mode="reflect")
      >>> module = from_torch(conv)
      >>> type(module).__name__, module.kernel.shape, module.padding
      ('Conv2D', (3, 3, 2, 4), ((1, 1), (1, 1)))
      >>> x = np.ones((1, 2, 5, 5), np.float32)
      >>> y_torch = conv(torch.from_numpy(x)).detach().numpy()
      >>> y = module(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
      >>> bool(np.allclose(y, y_torch, atol=1e-5))
      True
    """
    description, kernels, bias, dtypes = read_torch(
        module, data_format=data_format, impl=impl
    )
    return _build(description, kernels, bias, dtypes, precision)


def _build(description, kernels, bias, dtypes, precision):
    """The module a layer description with these weights is."""
    inits = description.kernels.values()
    return _MODULES[type(description)](
        **description.arguments(),
        **dtypes,
        precision=precision,
        **{init: _constant(k) for init, k in zip(inits, kernels, strict=True)},
        bias_init=_constant(bias),
        rngs=nnx.Rngs(0),
    )


def _constant(value):
    """An initialiser that gives `value` (reshaped: a depthwise kernel is
    initialised in its grouped shape)."""
    return lambda key, shape, dtype: jnp.asarray(value, dtype).reshape(shape)
