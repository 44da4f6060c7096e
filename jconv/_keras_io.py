"""Keras convolution layers to jconv's Flax modules and back, weights included.

The layouts are the same on both sides (that is why jconv keeps Keras'), so
this is only a matter of reading one side's configuration and writing the
other's. Keras is imported when a function is called, never at import time:
it is not a dependency of jconv.
"""

from __future__ import annotations

import numpy as np

_KERAS_KINDS = {
    "transpose": "Conv2DTranspose",
    "depthwise": "DepthwiseConv2D",
    "conv": "Conv2D",
}


def _kind(layer) -> str:
    import keras

    for kind, name in _KERAS_KINDS.items():
        if isinstance(layer, getattr(keras.layers, name)):
            return kind
    raise TypeError(
        f"`layer` (={layer!r}) must be a keras.layers.Conv2D, Conv2DTranspose "
        f"or DepthwiseConv2D"
    )


def _read_keras(layer) -> tuple[str, dict, np.ndarray, np.ndarray | None]:
    """`(kind, module keyword arguments, kernel, bias)` of a built layer."""
    import keras

    kind = _kind(layer)
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
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    kwargs = dict(
        kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides),
        padding=layer.padding,
        dilation_rate=tuple(layer.dilation_rate),
        use_bias=layer.use_bias,
        data_format=layer.data_format,
    )
    if kind == "conv":
        kwargs.update(
            in_features=kernel.shape[2] * layer.groups,
            out_features=layer.filters,
            groups=layer.groups,
        )
    elif kind == "transpose":
        output_padding = layer.output_padding
        kwargs.update(
            in_features=kernel.shape[3],
            out_features=layer.filters,
            output_padding=None if output_padding is None else tuple(output_padding),
        )
    else:
        kwargs.update(in_features=kernel.shape[2], depth_multiplier=kernel.shape[3])
    variable_dtype = np.dtype(layer.variable_dtype)
    compute_dtype = np.dtype(layer.compute_dtype)
    kwargs.update(
        param_dtype=variable_dtype,
        dtype=None if compute_dtype == variable_dtype else compute_dtype,
    )
    return kind, kwargs, kernel, bias


def _constant(value):
    """An initialiser that gives `value` (reshaped: a depthwise kernel is
    initialised in its grouped shape)."""
    import jax.numpy as jnp

    return lambda key, shape, dtype: jnp.asarray(value, dtype).reshape(shape)


def nnx_from_keras(layer, *, impl="lax", precision=None):
    """The `jconv.nnx` module equal to a built Keras convolution layer.

    Args:
      layer: a built `keras.layers.Conv2D`, `Conv2DTranspose` or
        `DepthwiseConv2D` with no activation (`activation=None`).
      impl: "lax" or "einsum".
      precision: the module's `precision`.

    Returns:
      A `jconv.nnx.Conv2D`, `Conv2DTranspose` or `DepthwiseConv2D` with the
      layer's configuration, `padding` and `data_format` included, and a copy
      of its weights; `module(x)` equals `layer(x)`.

    Raises:
      TypeError: `layer` is not one of the three layer types.
      ValueError: `layer` is not built, is quantized, or has an activation.

    Example:
      >>> import keras, numpy as np
      >>> layer = keras.layers.Conv2D(4, 3, strides=2, padding="same")
      >>> y_keras = layer(np.ones((1, 7, 7, 2), np.float32))
      >>> module = nnx_from_keras(layer)
      >>> type(module).__name__, module.kernel.shape, module.padding
      ('Conv2D', (3, 3, 2, 4), 'same')
      >>> bool(np.allclose(module(np.ones((1, 7, 7, 2))), y_keras, atol=1e-5))
      True
    """
    from flax import nnx

    from jconv import nnx as jnnx

    kind, kwargs, kernel, bias = _read_keras(layer)
    cls = {
        "conv": jnnx.Conv2D,
        "transpose": jnnx.Conv2DTranspose,
        "depthwise": jnnx.DepthwiseConv2D,
    }[kind]
    if bias is not None:
        kwargs["bias_init"] = _constant(bias)
    return cls(
        **kwargs,
        kernel_init=_constant(kernel),
        impl=impl,
        precision=precision,
        rngs=nnx.Rngs(0),
    )


def linen_from_keras(layer, *, impl="lax", precision=None):
    """The `jconv.linen` module and variables equal to a built Keras layer.

    Args:
      layer, impl, precision: as for `jconv.nnx.from_keras`.

    Returns:
      `(module, variables)` with `variables = {"params": {"kernel": ...,
      "bias": ...}}`: `module.apply(variables, x)` equals `layer(x)`.

    Raises:
      TypeError, ValueError: as `jconv.nnx.from_keras`.

    Example:
      >>> import keras, numpy as np
      >>> layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
      >>> y_keras = layer(np.ones((1, 5, 5, 3), np.float32))
      >>> module, variables = linen_from_keras(layer)
      >>> module.depth_multiplier, variables["params"]["kernel"].shape
      (2, (3, 3, 3, 2))
      >>> y = module.apply(variables, np.ones((1, 5, 5, 3)))
      >>> bool(np.allclose(y, y_keras, atol=1e-5))
      True
    """
    import jax.numpy as jnp

    from jconv import linen as jlinen

    kind, kwargs, kernel, bias = _read_keras(layer)
    cls = {
        "conv": jlinen.Conv2D,
        "transpose": jlinen.Conv2DTranspose,
        "depthwise": jlinen.DepthwiseConv2D,
    }[kind]
    kwargs.pop("in_features")
    if kind != "depthwise":
        kwargs["features"] = kwargs.pop("out_features")
    params = {"kernel": jnp.asarray(kernel)}
    if bias is not None:
        params["bias"] = jnp.asarray(bias)
    return cls(**kwargs, impl=impl, precision=precision), {"params": params}


def _module_weights(module, variables):
    """`(layer, kernel, bias, dtype)` of an NNX module, or of a Linen module
    with its variables."""
    from jconv import linen as jlinen
    from jconv import nnx as jnnx

    if isinstance(module, jnnx._Conv):
        if variables is not None:
            raise TypeError(
                "`variables` must be None for an NNX module (it holds its own weights)"
            )
        bias = None if module.bias is None else module.bias[...]
        return module._layer, module.kernel[...], bias, module.dtype
    if isinstance(module, jlinen._Conv):
        if variables is None:
            raise TypeError(
                f"a Linen module ({type(module).__name__}) holds no weights: "
                f"pass `variables` (what `module.init` returned)"
            )
        params = variables.get("params", variables)
        if "kernel" not in params:
            raise ValueError(
                f"`variables` has no 'kernel' (keys: {sorted(params)}): pass "
                f"what `module.init` returned, or its 'params'"
            )
        kernel = params["kernel"]
        in_axis = {"conv": 2, "transpose": 3, "depthwise": 2}
        layer = module._layer(None)
        in_features = kernel.shape[in_axis[layer.kind]]
        if layer.kind == "conv":
            in_features *= module.groups
        return module._layer(in_features), kernel, params.get("bias"), module.dtype
    raise TypeError(
        f"`module` (={type(module).__name__}) must be a jconv.nnx or jconv.linen "
        f"Conv2D, Conv2DTranspose or DepthwiseConv2D"
    )


def to_keras(module, variables=None):
    """A built Keras layer equal to a jconv module, weights copied.

    Keras is imported here; build it on the backend you want (the tests use
    TensorFlow).

    Args:
      module: a `jconv.nnx` module, or a `jconv.linen` module.
      variables: for a Linen module, its variables (`{"params": ...}`) or
        params; None for an NNX module.

    Returns:
      A built `keras.layers.Conv2D`, `Conv2DTranspose` or `DepthwiseConv2D`
      with no activation: `layer(x)` equals the module's output.

    Raises:
      ValueError: a setting Keras layers do not have: `padding` other than
        "valid"/"same", a `padding_mode` other than "zeros", a computation
        `dtype` other than the parameters'. Keras itself refuses strides and
        dilation both above 1.
      TypeError: not a jconv module, or `variables` missing or given wrongly.

    Example:
      >>> from flax import nnx
      >>> from jconv.nnx import Conv2D
      >>> module = Conv2D(2, 4, 3, padding="valid", rngs=nnx.Rngs(0))
      >>> layer = to_keras(module)
      >>> type(layer).__name__, layer.filters, tuple(layer.kernel.shape)
      ('Conv2D', 4, (3, 3, 2, 4))
    """
    import keras

    layer, kernel, bias, dtype = _module_weights(module, variables)
    kw = dict(layer.kwargs)
    padding = kw["padding"]
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(
            f"`padding` (={padding!r}) has no Keras equivalent: Keras layers "
            f"take 'valid' or 'same'"
        )
    if kw.get("padding_mode", "zeros") != "zeros":
        raise ValueError(
            f"`padding_mode` (={kw['padding_mode']!r}) has no Keras equivalent: "
            f"Keras layers pad with zeros"
        )
    kernel = np.asarray(kernel)
    if dtype is not None and np.dtype(dtype) != kernel.dtype:
        raise ValueError(
            f"`dtype` (={dtype!r}) differs from the parameters' ({kernel.dtype}); "
            f"a Keras layer computes in its weights' dtype"
        )
    common = dict(
        kernel_size=layer.kernel_size,
        strides=kw["strides"],
        padding=padding.lower(),
        dilation_rate=kw["dilation_rate"],
        data_format=kw["data_format"],
        use_bias=bias is not None,
        dtype=kernel.dtype.name,
    )
    if layer.kind == "conv":
        c_in = kernel.shape[2] * kw["groups"]
        out = keras.layers.Conv2D(layer.out_features, groups=kw["groups"], **common)
    elif layer.kind == "transpose":
        c_in = kernel.shape[3]
        out = keras.layers.Conv2DTranspose(
            layer.out_features, output_padding=kw["output_padding"], **common
        )
    else:
        c_in = kernel.shape[2]
        out = keras.layers.DepthwiseConv2D(
            depth_multiplier=layer.out_features, **common
        )
    if kw["data_format"] == "channels_first":
        out.build((None, c_in, None, None))
    else:
        out.build((None, None, None, c_in))
    out.set_weights([kernel] + ([] if bias is None else [np.asarray(bias)]))
    return out
