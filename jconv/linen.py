"""Flax Linen modules on jconv: `Conv2D`, `Conv2DTranspose`, `DepthwiseConv2D`,
`SeparableConv2D`.

Fields follow `flax.linen.Conv` (`features`, `kernel_size`, `strides`,
`padding`, `use_bias`, `dtype`, `param_dtype`, `precision`,
`preferred_element_type`, `kernel_init`, `bias_init`; the input channels are
read from the first input, as Linen does) with Keras' names for the rest
(`dilation_rate`, `groups`, `output_padding`, `depth_multiplier`,
`data_format`), plus jconv's `padding_mode` and `impl` (`"auto"`, `"lax"`,
`"einsum"` or `"fft"`). Parameters are `kernel` and `bias` in Keras' layouts
(`SeparableConv2D`: `depthwise_kernel`, `pointwise_kernel` and `bias`);
`init` with the same key gives the same kernel as `linen.Conv` (same names,
same initialisers).

Every field is checked when the module is constructed (the input channels,
unknown until then, and the input's rank, at each call), by the same code
that checks `jconv.conv2d`'s arguments. String fields are read in any case.
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
    "Conv2D",
    "Conv2DTranspose",
    "DepthwiseConv2D",
    "SeparableConv2D",
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
        layer = self._describe(_layers.input_channels(x.shape, self.data_format))
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
        layer = self._describe(None).with_kernel(kernels[0].shape)
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
        "full", an int, `(pad_h, pad_w)` or `((top, bottom), (left, right))`.
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
        "einsum" or "fft".

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
      features, kernel_size, strides, padding, dilation_rate, use_bias,
      data_format, dtype, param_dtype, precision, bias_init, impl: as for
      `Conv2D`.
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
      impl: as for `Conv2D`.
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
      use_bias, data_format, dtype, param_dtype, precision, bias_init, impl:
      as for `Conv2D` (the spatial ones for the depthwise step).
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


def from_keras(layer, *, impl="auto", precision=None):
    """The `jconv.linen` module and variables equal to a built Keras layer.

    Args:
      layer, impl, precision: as for `jconv.nnx.from_keras`.

    Returns:
      `(module, variables)` with `variables = {"params": {"kernel": ...,
      "bias": ...}}` (a `SeparableConv2D`'s: `"depthwise_kernel"`,
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
    """The `jconv.linen` module and variables equal to a `torch.nn.Conv2d` or
    `ConvTranspose2d`.

    Args:
      module, data_format, impl, precision: as for `jconv.nnx.from_torch`.

    Returns:
      `(module, variables)` with `variables = {"params": {"kernel": ...,
      "bias": ...}}` in the weights' dtype (float16, bfloat16, float32,
      float64, complex64 or complex128), the padding as for
      `jconv.nnx.from_torch`: `module.apply(variables, x)` equals the torch
      layer's output on `x` in NCHW, in the module's layout.

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
