"""Flax Linen modules on jconv, for 1, 2 and 3 spatial axes: `Conv1D`,
`Conv2D`, `Conv3D`, `Conv1DTranspose`, `Conv2DTranspose`,
`Conv3DTranspose`, `DepthwiseConv1D`, `DepthwiseConv2D`,
`DepthwiseConv3D`, `SeparableConv1D`, `SeparableConv2D`, `SeparableConv3D`
(as in `jconv.nnx`).

Fields follow `flax.linen.Conv` (`features`, `kernel_size`, `strides`,
`padding`, `use_bias`, `dtype`, `param_dtype`, `precision`,
`preferred_element_type`, `kernel_init`, `bias_init`; the input channels are
read from the first input, as Linen does) with Keras' names for the rest
(`dilation_rate`, `groups`, `output_padding`, `depth_multiplier`,
`data_format`), plus jconv's `padding_mode` and `impl` (`"auto"`, `"lax"`,
`"einsum"`, `"fft"` or `"onednn"`) and, last, `input_dilation` for the
forward convolutions. Every per-axis field is an int or one value per
spatial axis. Parameters are `kernel` and `bias` in Keras' layouts (the
separable modules: `depthwise_kernel`, `pointwise_kernel` and `bias`);
`init` with the same key gives the same kernel as `linen.Conv` (same names,
same initialisers).

Every field is checked when the module is constructed (the input channels,
unknown until then, and the input's rank, at each call), by the same code
that checks `jconv.conv`'s arguments. String fields are read in any case.
`padding` defaults to "SAME" as in Flax; see `jconv.nnx` for how Flax's
padding strings compare with Keras'.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = Conv2D(features=8, kernel_size=(3, 3), strides=2, impl="einsum")
  >>> x = jnp.ones((2, 9, 9, 3))
  >>> variables = layer.init(jax.random.key(0), x)
  >>> variables["params"]["kernel"].shape
  (3, 3, 3, 8)
  >>> jax.jit(layer.apply)(variables, x).shape
  (2, 5, 5, 8)
"""

from __future__ import annotations

import functools
import inspect

import flax.linen as nn
import jax.numpy as jnp

from jconv import _layers
from jconv._conv import _as_array
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


def _field(argument: str) -> str:
    """The Linen field of a layer description's argument: Linen's `features`
    is `out_features` (and `in_features` is read from the input)."""
    return "features" if argument == "out_features" else argument


# The module of each layer kind (`from_keras`, `from_torch`).
_MODULES = {}


class _Conv(nn.Module, _layers.Frontend):
    """The call shared by the modules. A module is a class on a layer kind,
    `class Conv2D(_Conv, layer=_layers.Conv2DLayer)`: its fields are the
    kind's module arguments (`Layer.module_arguments`) but `in_features`,
    `out_features` named `features`. `_describe(in_features)` is the
    module's layer description, which checks the fields; `in_features` is
    None until the input is seen."""

    def __init_subclass__(cls, layer: type[_layers.Layer] | None = None, **kwargs):
        if layer is not None:  # else a subclass of a module: its fields
            cls._layer_class = layer  # a class attribute, not a field
            fields = {}
            for p in layer.module_arguments():
                if p.name != "in_features":
                    fields[_field(p.name)] = p.annotation
                    if p.default is not p.empty:
                        setattr(cls, _field(p.name), p.default)
            cls.__annotations__ = fields | inspect.get_annotations(cls)
            _MODULES[layer] = cls
        super().__init_subclass__(**kwargs)  # Flax makes the dataclass

    def __post_init__(self):
        _layers.check_dtype(self.dtype, "dtype")
        _layers.check_dtype(self.param_dtype, "param_dtype")
        _layers.check_precision(self.precision)
        _layers.check_preferred_element_type(self.preferred_element_type)
        self._describe(None)
        super().__post_init__()

    def _describe(self, in_features) -> _layers.Layer:
        fields = {
            name: getattr(self, _field(name))
            for name in self._layer_class.argument_names()
            if name != "in_features"
        }
        return self._layer_class(
            in_features=in_features, **fields, names=_layers.LINEN_NAMES
        )

    @nn.compact
    def __call__(self, x):
        """Applies the layer to `x` (see the class docstring for shapes)."""
        x = _as_array(x)
        rank = self._layer_class.rank
        layer = self._describe(_layers.input_channels(x.shape, self.data_format, rank))
        # `init_kernel(name, init, key, param_dtype)`: `param` gives the key.
        kernels = tuple(
            self.param(
                name,
                functools.partial(layer.init_kernel, name, getattr(self, init)),
                self.param_dtype,
            )
            for name, init in layer.kernels.items()
        )
        bias = None
        if self.use_bias:
            bias = self.param(
                "bias", self.bias_init, layer.bias_shape, self.param_dtype
            )
        return layer(
            x,
            kernels,
            bias,
            dtype=self.dtype,
            precision=_layers.hashable(self.precision),
            preferred_element_type=_layers.check_preferred_element_type(
                self.preferred_element_type
            ),
        )

    def _export(self, variables):
        if variables is None:
            raise TypeError(
                f"a Linen module ({type(self).__name__}) holds no weights: "
                f"pass `variables` (what `module.init` returned)"
            )
        params = variables.get("params", variables)
        for name in self._layer_class.kernels:
            if name not in params:
                raise ValueError(
                    f"`variables` has no {name!r} (keys: {sorted(params)}): "
                    f"pass what `module.init` returned, or its 'params'"
                )
        kernels = [params[name] for name in self._layer_class.kernels]
        layer = self._describe(None).with_kernel(jnp.shape(kernels[0]))
        layer.check_kernels(kernels)
        return layer, layer.join(kernels), params.get("bias"), self.dtype


class Conv2D(_Conv, layer=_layers.Conv2DLayer):
    """2D convolution, `jconv.conv2d` with its parameters: a 2D
    `flax.linen.Conv` with Keras `Conv2D` semantics.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, C_in)`, unbatched `(H, W, C_in)`, or more leading
        batch axes.
      kernel: `(KH, KW, C_in // groups, features)`.
      bias: `(features,)`.
      output: `(N, H_out, W_out, features)`, `H_out` as in `jconv.conv2d`.

    Attributes:
      features: output channels.
      kernel_size: int or `(KH, KW)`.
      strides: int or `(sh, sw)`.
      padding: "SAME" (default, as Flax; any case), "valid", "same_lower",
        "full", "causal" (every pad before the input), an int, `(pad_h,
        pad_w)` or `((top, bottom), (left, right))`.
      padding_mode: "zeros", "reflect", "replicate" or "circular".
      dilation_rate: int or `(dh, dw)` (Flax's `kernel_dilation`).
      groups: channel groups (Flax's `feature_group_count`).
      use_bias: add a bias.
      data_format: "channels_last" (Flax's layout) or "channels_first".
      dtype: computation dtype; None infers it from input and parameters.
      param_dtype: parameter dtype.
      precision: passed to the contraction.
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      kernel_init, bias_init: initialisers (LeCun normal, zeros).
      impl: "auto" (the fastest plan for the call, `jconv.conv2d`), "lax",
        "einsum", "fft" or "onednn".
      input_dilation: int or `(dh, dw)`: the input stretched by
        `input_dilation - 1` zeros between pixels before it is padded (Flax's
        `input_dilation`); the last field.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> conv = Conv2D(features=6, kernel_size=3, padding="valid", groups=2)
      >>> params = conv.init(jax.random.key(0), jnp.ones((1, 7, 7, 4)))["params"]
      >>> params["kernel"].shape
      (3, 3, 2, 6)
    """


class Conv2DTranspose(_Conv, layer=_layers.Conv2DTransposeLayer):
    """Transposed 2D convolution, `jconv.conv2d_transpose` with its parameters
    (Keras `Conv2DTranspose` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KH, KW, features // groups, C_in)` (Keras' layout).
      bias: `(features,)`.
      output: `(N, H_out, W_out, features)`, `H_out` as in
        `jconv.conv2d_transpose`.

    Attributes:
      features, kernel_size, strides, dilation_rate, use_bias, data_format,
      dtype, param_dtype, precision, bias_init, impl: as for `Conv2D`.
      padding: as for `Conv2D` but "causal" (a forward convolution's rule).
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      output_padding: None, int or `(ah, aw)`, each smaller than the stride.
      padding_mode, groups: as for `jconv.conv2d_transpose`: the adjoint of
        the `Conv2D` with that padding mode and those groups.
      kernel_init: the kernel's initialiser (LeCun normal over its last axis,
        the input channels).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> up = Conv2DTranspose(features=3, kernel_size=3, strides=2)
      >>> x = jnp.ones((1, 4, 4, 8))
      >>> variables = up.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, up.apply(variables, x).shape
      ((3, 3, 3, 8), (1, 8, 8, 3))
    """


class DepthwiseConv2D(_Conv, layer=_layers.DepthwiseConv2DLayer):
    """Depthwise 2D convolution, `jconv.depthwise_conv2d` with its parameters
    (Keras `DepthwiseConv2D` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KH, KW, C_in, depth_multiplier)`.
      bias: `(C_in * depth_multiplier,)`.
      output: `(N, H_out, W_out, C_in * depth_multiplier)`.

    `kernel_init` is called with the grouped shape `(KH, KW, 1, C_in *
    depth_multiplier)` and the result reshaped, as in `jconv.nnx`.

    Attributes:
      kernel_size, strides, padding, padding_mode, dilation_rate, use_bias,
      data_format, dtype, param_dtype, precision, kernel_init, bias_init,
      impl, input_dilation: as for `Conv2D`.
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      depth_multiplier: filters per input channel.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> dw = DepthwiseConv2D(kernel_size=3, depth_multiplier=2)
      >>> x = jnp.ones((1, 6, 6, 4))
      >>> variables = dw.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, dw.apply(variables, x).shape
      ((3, 3, 4, 2), (1, 6, 6, 8))
    """


class SeparableConv2D(_Conv, layer=_layers.SeparableConv2DLayer):
    """Separable 2D convolution, `jconv.separable_conv2d` with its parameters
    (Keras `SeparableConv2D` semantics): a depthwise convolution, then a 1x1
    convolution to `features` channels, then the bias.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, H, W, C_in)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KH, KW, C_in, depth_multiplier)`.
      pointwise_kernel: `(1, 1, C_in * depth_multiplier, features)`.
      bias: `(features,)`.
      output: `(N, H_out, W_out, features)`, `H_out` as in `jconv.conv2d`.

    Parameters are named as Keras' weights; initialised as in `jconv.nnx`
    (LeCun normal, fan-in `KH * KW` for the depthwise kernel, `C_in *
    depth_multiplier` for the pointwise one; Keras uses `glorot_uniform`).

    Attributes:
      features, kernel_size, strides, padding, padding_mode, dilation_rate,
      use_bias, data_format, dtype, param_dtype, precision, bias_init, impl,
      input_dilation: as for `Conv2D` (the spatial ones for the depthwise
      step).
      preferred_element_type: the result and accumulation dtype, as in
        `jconv.conv2d` (None: the inputs', summed in float32 for bfloat16
        and float16).
      depth_multiplier: depthwise filters per input channel.
      depthwise_init: the depthwise kernel's initialiser, called with the
        grouped shape `(KH, KW, 1, C_in * depth_multiplier)` and reshaped.
      pointwise_init: the pointwise kernel's initialiser.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sep = SeparableConv2D(features=8, kernel_size=3, depth_multiplier=2)
      >>> x = jnp.ones((1, 6, 6, 4))
      >>> params = sep.init(jax.random.key(0), x)["params"]
      >>> params["depthwise_kernel"].shape, params["pointwise_kernel"].shape
      ((3, 3, 4, 2), (1, 1, 8, 8))
      >>> sep.apply({"params": params}, x).shape
      (1, 6, 6, 8)
    """


class Conv1D(_Conv, layer=_layers.Conv1DLayer):
    """1D convolution, `jconv.conv1d` with its parameters: a 1D
    `flax.linen.Conv` with Keras `Conv1D` semantics (`padding="causal"`
    included).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, C_in)`, unbatched `(W, C_in)`, or more leading batch axes.
      kernel: `(KW, C_in // groups, features)`.
      bias: `(features,)`.
      output: `(N, W_out, features)`, `W_out` as in `jconv.conv1d`.

    Attributes:
      as for `Conv2D`, each per-axis field an int or a 1-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> conv = Conv1D(features=6, kernel_size=3, padding="causal")
      >>> x = jnp.ones((2, 10, 4))
      >>> variables = conv.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, conv.apply(variables, x).shape
      ((3, 4, 6), (2, 10, 6))
    """


class Conv3D(_Conv, layer=_layers.Conv3DLayer):
    """3D convolution, `jconv.conv3d` with its parameters: a 3D
    `flax.linen.Conv` with Keras `Conv3D` semantics.

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, C_in)`, unbatched `(D, H, W, C_in)`, or more
        leading batch axes.
      kernel: `(KD, KH, KW, C_in // groups, features)`.
      bias: `(features,)`.
      output: `(N, D_out, H_out, W_out, features)`, each as in `jconv.conv3d`.

    Attributes:
      as for `Conv2D`, each per-axis field an int or a 3-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> conv = Conv3D(features=4, kernel_size=(3, 3, 1), strides=(1, 2, 2))
      >>> x = jnp.ones((1, 4, 6, 6, 2))
      >>> variables = conv.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, conv.apply(variables, x).shape
      ((3, 3, 1, 2, 4), (1, 4, 3, 3, 4))
    """


class Conv1DTranspose(_Conv, layer=_layers.Conv1DTransposeLayer):
    """Transposed 1D convolution, `jconv.conv1d_transpose` with its
    parameters (Keras `Conv1DTranspose` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KW, features // groups, C_in)`.
      bias: `(features,)`.
      output: `(N, W_out, features)`, `W_out` as in `jconv.conv1d_transpose`.

    Attributes:
      as for `Conv2DTranspose`, each per-axis field an int or a 1-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> up = Conv1DTranspose(features=3, kernel_size=4, strides=2)
      >>> x = jnp.ones((1, 5, 8))
      >>> variables = up.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, up.apply(variables, x).shape
      ((4, 3, 8), (1, 10, 3))
    """


class Conv3DTranspose(_Conv, layer=_layers.Conv3DTransposeLayer):
    """Transposed 3D convolution, `jconv.conv3d_transpose` with its
    parameters (Keras `Conv3DTranspose` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KD, KH, KW, features // groups, C_in)`.
      bias: `(features,)`.
      output: `(N, D_out, H_out, W_out, features)`, each as in
        `jconv.conv3d_transpose`.

    Attributes:
      as for `Conv2DTranspose`, each per-axis field an int or a 3-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> up = Conv3DTranspose(features=2, kernel_size=2, strides=(1, 2, 2))
      >>> x = jnp.ones((1, 3, 4, 4, 4))
      >>> variables = up.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, up.apply(variables, x).shape
      ((2, 2, 2, 2, 4), (1, 3, 8, 8, 2))
    """


class DepthwiseConv1D(_Conv, layer=_layers.DepthwiseConv1DLayer):
    """Depthwise 1D convolution, `jconv.depthwise_conv1d` with its
    parameters (Keras `DepthwiseConv1D` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KW, C_in, depth_multiplier)`.
      bias: `(C_in * depth_multiplier,)`.
      output: `(N, W_out, C_in * depth_multiplier)`.

    Attributes:
      as for `DepthwiseConv2D`, each per-axis field an int or a 1-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> dw = DepthwiseConv1D(kernel_size=3, depth_multiplier=2)
      >>> x = jnp.ones((1, 9, 4))
      >>> variables = dw.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, dw.apply(variables, x).shape
      ((3, 4, 2), (1, 9, 8))
    """


class DepthwiseConv3D(_Conv, layer=_layers.DepthwiseConv3DLayer):
    """Depthwise 3D convolution, `jconv.depthwise_conv3d` with its
    parameters (Keras has no such layer).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, C_in)` (or unbatched, or more batch axes).
      kernel: `(KD, KH, KW, C_in, depth_multiplier)`.
      bias: `(C_in * depth_multiplier,)`.
      output: `(N, D_out, H_out, W_out, C_in * depth_multiplier)`.

    Attributes:
      as for `DepthwiseConv2D`, each per-axis field an int or a 3-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> dw = DepthwiseConv3D(kernel_size=3, padding="valid")
      >>> x = jnp.ones((1, 4, 5, 6, 2))
      >>> variables = dw.init(jax.random.key(0), x)
      >>> variables["params"]["kernel"].shape, dw.apply(variables, x).shape
      ((3, 3, 3, 2, 1), (1, 2, 3, 4, 2))
    """


class SeparableConv1D(_Conv, layer=_layers.SeparableConv1DLayer):
    """Separable 1D convolution, `jconv.separable_conv1d` with its
    parameters (Keras `SeparableConv1D` semantics).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, W, C_in)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KW, C_in, depth_multiplier)`.
      pointwise_kernel: `(1, C_in * depth_multiplier, features)`.
      bias: `(features,)`.
      output: `(N, W_out, features)`.

    Attributes:
      as for `SeparableConv2D`, each per-axis field an int or a 1-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sep = SeparableConv1D(features=8, kernel_size=3, depth_multiplier=2)
      >>> x = jnp.ones((1, 9, 4))
      >>> params = sep.init(jax.random.key(0), x)["params"]
      >>> params["depthwise_kernel"].shape, params["pointwise_kernel"].shape
      ((3, 4, 2), (1, 8, 8))
    """


class SeparableConv3D(_Conv, layer=_layers.SeparableConv3DLayer):
    """Separable 3D convolution, `jconv.separable_conv3d` with its
    parameters (neither Keras nor torch has such a layer).

    Shapes (channels_last; channels_first swaps C to axis 1):
      input: `(N, D, H, W, C_in)` (or unbatched, or more batch axes).
      depthwise_kernel: `(KD, KH, KW, C_in, depth_multiplier)`.
      pointwise_kernel: `(1, 1, 1, C_in * depth_multiplier, features)`.
      bias: `(features,)`.
      output: `(N, D_out, H_out, W_out, features)`.

    Attributes:
      as for `SeparableConv2D`, each per-axis field an int or a 3-tuple.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sep = SeparableConv3D(features=4, kernel_size=3)
      >>> x = jnp.ones((1, 4, 4, 4, 2))
      >>> params = sep.init(jax.random.key(0), x)["params"]
      >>> params["depthwise_kernel"].shape, params["pointwise_kernel"].shape
      ((3, 3, 3, 2, 1), (1, 1, 1, 2, 4))
    """


def from_keras(layer, *, impl="auto", precision=None):
    """The `jconv.linen` module and variables equal to a built Keras layer.

    Args:
      layer, impl, precision: as for `jconv.nnx.from_keras`.

    Returns:
      `(module, variables)` with `variables = {"params": {"kernel": ...,
      "bias": ...}}` (a separable module's: `"depthwise_kernel"`,
      `"pointwise_kernel"`, `"bias"`): `module.apply(variables, x)` equals
      `layer(x)`.

    Raises:
      TypeError, ValueError: as `jconv.nnx.from_keras`.

    Example:
      >>> import keras, numpy as np
      >>> layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
      >>> y_keras = layer(np.ones((1, 5, 5, 3), np.float32))
      >>> module, variables = from_keras(layer)
      >>> module.depth_multiplier, variables["params"]["kernel"].shape
      (2, (3, 3, 3, 2))
      >>> y = module.apply(variables, np.ones((1, 5, 5, 3)))
      >>> bool(np.allclose(y, y_keras, atol=1e-5))
      True
    """
    description, kernels, bias, dtypes = read_keras(layer, impl)
    return _build(description, kernels, bias, dtypes, impl, precision)


def from_torch(module, *, data_format="channels_last", impl="auto", precision=None):
    """The `jconv.linen` module and variables equal to a torch convolution:
    `torch.nn.Conv1d`, `Conv2d`, `Conv3d`, `ConvTranspose1d`,
    `ConvTranspose2d` or `ConvTranspose3d`.

    Args:
      module, data_format, impl, precision: as for `jconv.nnx.from_torch`.

    Returns:
      `(module, variables)` with `variables = {"params": {"kernel": ...,
      "bias": ...}}` in the weights' dtype (float16, bfloat16, float32,
      float64, complex64 or complex128), the padding as for
      `jconv.nnx.from_torch`: `module.apply(variables, x)` equals the torch
      layer's output on `x` in NCHW (NCW, NCDHW), in the module's layout.

    Raises:
      TypeError, ValueError: as `jconv.nnx.from_torch` (zero channels, an
        `output_padding` not below `padding + stride` or not below
        max(stride, dilation), a transposed `padding_mode` other than
        "zeros", complex32 weights, an unknown `data_format` or `impl`).

    Example:
      >>> import numpy as np, torch
      >>> up = torch.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
      >>> module, variables = from_torch(up, data_format="channels_first")
      >>> module.padding, variables["params"]["kernel"].shape
      (((1, 1), (1, 1)), (4, 4, 2, 3))
      >>> x = np.ones((1, 3, 5, 5), np.float32)
      >>> y_torch = up(torch.from_numpy(x)).detach().numpy()
      >>> y = module.apply(variables, x)
      >>> y.shape, bool(np.allclose(y, y_torch, atol=1e-5))
      ((1, 2, 10, 10), True)
    """
    description, kernels, bias, dtypes = read_torch(
        module, data_format=data_format, impl=impl
    )
    return _build(description, kernels, bias, dtypes, impl, precision)


def _build(description, kernels, bias, dtypes, impl, precision):
    """`(module, variables)` of a layer description with these weights."""
    kwargs = {
        _field(name): value
        for name, value in description.arguments().items()
        if name != "in_features"  # Linen reads it from the input
    }
    kwargs["impl"] = impl  # a Linen field keeps what it was given
    params = {
        name: jnp.asarray(k)
        for name, k in zip(description.kernels, kernels, strict=True)
    }
    if bias is not None:
        params["bias"] = jnp.asarray(bias)
    module = _MODULES[type(description)]
    return module(**kwargs, **dtypes, precision=precision), {"params": params}
