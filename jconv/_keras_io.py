"""Keras convolution layers to jconv's layer descriptions and back, weights
included.

The layouts are the same on both sides (that is why jconv keeps Keras'), so
this is only a matter of reading one side's configuration and writing the
other's: a Keras layer becomes a `jconv._layers.Layer` and arrays, from which
`jconv.nnx`/`jconv.linen` build their modules (`from_keras`); a module gives
its description and arrays back through `jconv._layers.Frontend`
(`to_keras`). Keras is imported when a function is called, never at import
time: it is not a dependency of jconv.
"""

from __future__ import annotations

import numpy as np

from jconv._layers import LAYERS, Frontend, Layer
from jconv._spec import _positive_pair

# The descriptions of Keras' layers, transposed ones first (a Keras 2
# `Conv2DTranspose` is a `Conv2D`).
_LAYERS = tuple(
    sorted(
        (cls for cls in LAYERS if cls.keras_name is not None),
        key=lambda cls: "Transpose" not in cls.name,
    )
)
_KERAS_NAMES = ", ".join(cls.keras_name for cls in LAYERS if cls.keras_name)


def _layer_class(layer) -> type[Layer]:
    import keras

    for cls in _LAYERS:
        if isinstance(layer, getattr(keras.layers, cls.keras_name)):
            return cls
    raise TypeError(
        f"`layer` (={layer!r}) must be a keras.layers convolution: {_KERAS_NAMES}"
    )


def read_keras(
    layer, impl
) -> tuple[Layer, tuple[np.ndarray, ...], np.ndarray | None, dict]:
    """`(description, kernels, bias, dtypes)` of a built Keras layer, computed
    with `impl`: `kernels` in the description's `kernels` order (Keras names
    its weights alike); `dtypes` holds the module's `param_dtype` and
    `dtype`."""
    import keras

    cls = _layer_class(layer)
    name = f"`layer` ({type(layer).__name__} {layer.name!r})"
    if not layer.built:
        raise ValueError(
            f"{name} is not built, so it has no weights: call it on an input "
            f"or `layer.build(input_shape)` first"
        )
    if getattr(layer, "quantization_mode", None) is not None:
        raise ValueError(
            f"{name} is quantized ({layer.quantization_mode!r}); jconv modules "
            f"hold floating weights"
        )
    if layer.activation is not keras.activations.linear:
        raise ValueError(
            f"{name} has `activation` (={keras.activations.serialize(layer.activation)!r}); "  # noqa: E501
            f"jconv modules are linear: build the layer with activation=None "
            f"and apply the activation after the module"
        )
    kernels = tuple(
        keras.ops.convert_to_numpy(getattr(layer, name)) for name in cls.kernels
    )
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    description = cls(
        in_features=None,
        kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides),
        padding=layer.padding,
        dilation_rate=tuple(layer.dilation_rate),
        data_format=layer.data_format,
        use_bias=layer.use_bias,
        impl=impl,
        **{ours: getattr(layer, theirs) for ours, theirs in cls.keras_names.items()},
    ).with_kernel(kernels[0].shape)
    variable_dtype = np.dtype(layer.variable_dtype)
    compute_dtype = np.dtype(layer.compute_dtype)
    dtypes = dict(
        param_dtype=variable_dtype,
        dtype=None if compute_dtype == variable_dtype else compute_dtype,
    )
    return description, kernels, bias, dtypes


def to_keras(module, variables=None):
    """A built Keras layer equal to a jconv module, weights copied.

    Keras is imported here; build it on the backend you want (the tests use
    TensorFlow).

    Args:
      module: a `jconv.nnx` module, or a `jconv.linen` module.
      variables: for a Linen module, its variables (`{"params": ...}`) or
        params; None for an NNX module.

    Returns:
      A built Keras layer of the module's class name (`keras.layers.Conv1D`,
      `Conv2D`, `Conv3D`, `Conv1DTranspose`, ..., `SeparableConv2D`) with no
      activation: `layer(x)` equals the module's output.

    Raises:
      ValueError: a setting Keras layers do not have: `padding` other than
        "valid"/"same" (and "causal" for a `Conv1D`), a `padding_mode` other
        than "zeros", `input_dilation` above 1, `groups` on a transposed
        layer, a computation `dtype` other than the parameters'; a kernel
        whose shape is not the module's (a Linen module given another's
        variables). Keras itself refuses strides and dilation both above 1.
      TypeError: not a jconv module, a module Keras has no layer for
        (`DepthwiseConv3D`, `SeparableConv3D`), or `variables` missing or
        given wrongly.

    Example:
      >>> from flax import nnx
      >>> from jconv.nnx import Conv2D
      >>> module = Conv2D(2, 4, 3, padding="valid", rngs=nnx.Rngs(0))
      >>> layer = to_keras(module)
      >>> type(layer).__name__, layer.filters, tuple(layer.kernel.shape)
      ('Conv2D', 4, (3, 3, 2, 4))
    """
    if not isinstance(module, Frontend):
        raise TypeError(
            f"`module` (={type(module).__name__}) must be a jconv.nnx or jconv.linen "
            f"convolution module with a Keras counterpart: {_KERAS_NAMES}"
        )
    return _keras_layer(*module._export(variables))


def _keras_layer(layer: Layer, kernel, bias, dtype):
    """The built Keras layer that `layer` with these weights is (`kernel` as
    `Frontend._export` gives it)."""
    import keras

    if layer.keras_name is None:
        raise TypeError(
            f"`module` (={layer.name}) has no Keras counterpart: Keras' "
            f"convolution layers are {_KERAS_NAMES}"
        )
    padding, allowed = layer.padding, layer.keras_paddings
    if not isinstance(padding, str) or padding.lower() not in allowed:
        takes = " or ".join(", ".join(map(repr, allowed)).rsplit(", ", 1))
        raise ValueError(
            f"`padding` (={padding!r}) has no Keras equivalent: Keras' "
            f"{layer.keras_name} takes {takes}"
        )
    input_dilation = getattr(layer, "input_dilation", 1)
    if max(_positive_pair(input_dilation, "input_dilation", layer.rank)) > 1:
        raise ValueError(
            f"`input_dilation` (={input_dilation!r}) has no Keras equivalent: "
            f"Keras layers do not stretch their input"
        )
    if layer.padding_mode != "zeros":
        raise ValueError(
            f"`padding_mode` (={layer.padding_mode!r}) has no Keras equivalent: "
            f"Keras layers pad with zeros"
        )
    groups = getattr(layer, "groups", 1)
    if groups != 1 and "groups" not in layer.keras_names:
        raise ValueError(
            f"`groups` (={groups}) has no Keras equivalent: Keras' "
            f"{layer.keras_name} has no groups (keras-team/keras#19871)"
        )
    kernels = [np.asarray(k) for k in layer.split(kernel)]
    kernel = kernels[0]
    if dtype is not None and np.dtype(dtype) != kernel.dtype:
        raise ValueError(
            f"`dtype` (={dtype!r}) differs from the parameters' ({kernel.dtype}); "
            f"a Keras layer computes in its weights' dtype"
        )
    out = getattr(keras.layers, layer.keras_name)(
        kernel_size=layer.kernel_size,
        strides=layer.strides,
        padding=padding.lower(),
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
        use_bias=bias is not None,
        dtype=kernel.dtype.name,
        **{theirs: getattr(layer, ours) for ours, theirs in layer.keras_names.items()},
    )
    c_in = layer.in_features_of(kernel.shape)
    spatial = (None,) * layer.rank
    if layer.data_format == "channels_first":
        out.build((None, c_in, *spatial))
    else:
        out.build((None, *spatial, c_in))
    out.set_weights(kernels + ([] if bias is None else [np.asarray(bias)]))
    return out
