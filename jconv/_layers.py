"""Layer descriptions: what a convolution layer is, whatever holds its weights.

A description is a frozen dataclass, one class per layer kind and spatial rank
(`Conv1DLayer`, `Conv2DLayer`, `Conv3DLayer`, ...: a kind's class with its
`rank` and function, nothing else), checked when it is made (the core's own
checks, run on a probe shape). It knows its parameters (their names, shapes
and initialisers: one `kernel` for most kinds, `depthwise_kernel` and
`pointwise_kernel` for a separable one; then the `bias`), the function it
calls and its Keras counterpart (if Keras has one). Layers flow
one way: `jconv.nnx` and `jconv.linen` hold parameters and call a description;
`jconv._keras_io` reads and writes Keras layers as descriptions and arrays.
Every argument is read by `jconv._spec`/`jconv._padding`, as for the functions.

A kind is described once: its fields (with the modules' defaults), its
kernels and their initialisers' default. `Layer.module_arguments` derives
from them the arguments of its modules, in `jconv.nnx` and `jconv.linen`
alike, so a new kind is a new description and a module class on it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import jax.numpy as jnp
from flax.nnx.nn import initializers
from flax.nnx.nn.dtypes import promote_dtype

from jconv._conv import _check_impl, conv1d, conv2d, conv3d
from jconv._depthwise import depthwise_conv1d, depthwise_conv2d, depthwise_conv3d
from jconv._padding import PADDING_MODES, resolve_padding
from jconv._separable import separable_conv1d, separable_conv2d, separable_conv3d
from jconv._spec import (
    DATA_FORMATS,
    _input,
    _positive_int,
    _positive_pair,
    canonical_precision,
    choice,
    conv_spec,
    depthwise_groups,
    depthwise_layout,
    kernel_layout,
    transpose_layout,
    transpose_spec,
)
from jconv._transpose import conv1d_transpose, conv2d_transpose, conv3d_transpose

# Flax's defaults (`nnx.Conv`, `linen.Conv`): LeCun normal over the fan-in,
# zero bias.
default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()
# A transposed kernel `(*K, C_out, C_in)` reads its fan-in on the last axis.
default_transpose_kernel_init = initializers.lecun_normal(in_axis=-1, out_axis=-2)

# How messages name the channel counts: NNX takes `in_features` and
# `out_features`; Linen takes `features` and reads the input channels from `x`.
NNX_NAMES = ("`in_features`", "out_features")
LINEN_NAMES = ("the input channels C_in of `x`", "features")

# The modules' own arguments (how they compute and store, not what the layer
# is), with Flax's defaults; the kernels' initialisers come from the kind.
FRONTEND_DEFAULTS = dict(
    dtype=None,
    param_dtype=jnp.float32,
    precision=None,
    preferred_element_type=None,
    bias_init=default_bias_init,
)

# The order modules take their arguments in, each kind those it has: Flax's
# `Conv` order, Keras' arguments beside their neighbours in Keras;
# `input_dilation` last, where a Linen module's positional fields keep the
# places they had before it came. (One string: a list literal would take a
# line a name.)
MODULE_ORDER = (  # noqa: SIM905
    "in_features out_features kernel_size strides depth_multiplier padding "
    "output_padding padding_mode dilation_rate groups use_bias data_format dtype "
    "param_dtype precision preferred_element_type kernel_init depthwise_init "
    "pointwise_init bias_init impl input_dilation"
).split()

# The fields that shape the parameters; the others are the function's keywords.
_SHAPE_FIELDS = (
    "in_features",
    "out_features",
    "depth_multiplier",
    "kernel_size",
    "use_bias",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layer:
    """A checked layer: its channel counts, kernel size, `use_bias`, and its
    function's keyword arguments (`strides`, `padding`, ..., `impl`). The
    defaults are the modules' (Flax's `padding="SAME"`).

    `in_features` is None for a Linen module before its first call. `names`
    says how the module's arguments are named in messages.

    A kind (`ConvLayer`, ...) is abstract; its classes by rank
    (`class Conv1DLayer(ConvLayer, rank=1)`) say their function and take
    their name, `Conv1D`, from their own (the modules' name, and the Keras
    class's where Keras has one).
    """

    rank: ClassVar[int]  # spatial axes: 1, 2 or 3
    name: ClassVar[str]  # the modules' class name, "Conv1D", ...
    fn: ClassVar[Callable]  # the function `__call__` runs
    keras_name: ClassVar[str | None]  # the Keras class; None where there is none
    # The `padding` strings the Keras class takes (Keras' Conv1D also "causal").
    keras_paddings: ClassVar[tuple[str, ...]] = ("valid", "same")
    # Fields that Keras names otherwise or that only this kind has.
    keras_names: ClassVar[dict[str, str]]
    # The parameters before the bias, in Keras' weight order (the order `fn`
    # takes them in after `x`), each with the module argument that
    # initialises it. Modules and Keras layers name them alike.
    kernels: ClassVar[dict[str, str]] = {"kernel": "kernel_init"}
    default_init: ClassVar[Callable] = default_kernel_init  # each kernel's

    in_features: int | None
    kernel_size: Any
    strides: Any = 1
    padding: Any = "SAME"
    padding_mode: str = "zeros"  # Keras pads with zeros
    dilation_rate: Any = 1
    data_format: str = "channels_last"
    use_bias: bool = True
    impl: str = "auto"
    names: tuple[str, str] = dataclasses.field(
        default=NNX_NAMES, repr=False, compare=False
    )

    def __init_subclass__(cls, *, rank=None, keras=True, **kwargs):
        """`rank`: the spatial rank of a kind's class (its name, without
        "Layer", names its modules); `keras`: whether Keras has the layer."""
        super().__init_subclass__(**kwargs)
        if rank is not None:
            cls.rank = rank
            cls.name = cls.__name__.removesuffix("Layer")
            cls.keras_name = cls.name if keras else None

    def __post_init__(self):
        if self.in_features is not None:
            self._set(in_features=_positive_int(self.in_features, "in_features"))
        self._check_channels()
        impl = _check_impl(self.impl)
        _refuse_flax_padding_modes(self.padding)
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"`use_bias` (={self.use_bias!r}) must be a bool")
        kernel_size = self._per_axis(self.kernel_size, "kernel_size")
        strides = self._per_axis(self.strides, "strides")
        dilation_rate = self._per_axis(self.dilation_rate, "dilation_rate")
        sizes = _probe_sizes(kernel_size, strides, dilation_rate, self.padding)
        self._set(
            kernel_size=kernel_size,
            impl=impl,
            data_format=choice(self.data_format, "data_format", DATA_FORMATS),
        )
        modes = tuple(PADDING_MODES)
        self._set(padding_mode=choice(self.padding_mode, "padding_mode", modes))
        # A probe input with the fewest channels the kernel allows.
        c_in = self.in_features or getattr(self, "groups", 1)
        spec_kwargs = {k: v for k, v in self.kwargs().items() if k != "impl"}
        shape = (1, *sizes, c_in)
        if self.data_format == "channels_first":
            shape = (1, c_in, *sizes)
        self._check_spec(shape, self._kernel_shape(c_in), spec_kwargs)
        # Flax keeps module attributes in hashed graph definitions.
        self._set(**{k: hashable(v) for k, v in self.arguments().items()})

    def _set(self, **values) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _per_axis(self, value, name: str) -> tuple[int, ...]:
        """A positive int or one per spatial axis, as a tuple of `rank`."""
        return _positive_pair(value, name, self.rank)

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        """The fields' names: the module's arguments that make this layer."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "names")

    @classmethod
    def module_arguments(cls) -> list[inspect.Parameter]:
        """The arguments of this kind's modules, keyword-only, in
        `MODULE_ORDER`, with their annotations and defaults: the fields, each
        kernel's initialiser, and `FRONTEND_DEFAULTS`. Each frontend says
        which it takes positionally, by which names, and adds its own."""
        fields = [f for f in dataclasses.fields(cls) if f.name != "names"]
        missing, empty = dataclasses.MISSING, inspect.Parameter.empty
        found = [
            (f.name, f.type, empty if f.default is missing else f.default)
            for f in fields
        ]
        found += [(init, "Any", cls.default_init) for init in cls.kernels.values()]
        found += [(name, "Any", v) for name, v in FRONTEND_DEFAULTS.items()]
        arguments = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=annotation,
            )
            for name, annotation, default in found
        ]
        return sorted(arguments, key=lambda p: MODULE_ORDER.index(p.name))

    def arguments(self) -> dict:
        """The fields, by name: the module's arguments that make this layer."""
        return {name: getattr(self, name) for name in self.argument_names()}

    def kwargs(self) -> dict:
        """`fn`'s keyword arguments, besides `precision` and
        `preferred_element_type`."""
        return {k: v for k, v in self.arguments().items() if k not in _SHAPE_FIELDS}

    def with_kernel(self, kernel_shape) -> Layer:
        """This layer with the input channels a kernel of `kernel_shape` (the
        first of `kernels`) has; a kernel of another rank is refused, named."""
        kernel_shape = tuple(kernel_shape)
        name = next(iter(self.kernels))
        if len(kernel_shape) != self.rank + 2:
            raise ValueError(
                f"`{name}` shape {kernel_shape} has rank {len(kernel_shape)}; "
                f"a {self.name}'s has rank {self.rank + 2} "
                f"{self.kernel_layouts[name]}"
            )
        return dataclasses.replace(self, in_features=self.in_features_of(kernel_shape))

    def check_kernels(self, kernels) -> None:
        """Each of `kernels` (in `kernels`' order) has the shape this layer
        gives it: a module's weights replaced, or a Linen module's variables
        from another module, are refused by name before they reach Keras or
        torch."""
        for (name, expected), kernel in zip(
            self.kernel_shapes.items(), kernels, strict=True
        ):
            shape = tuple(jnp.shape(kernel))
            if shape != expected:
                raise ValueError(
                    f"`{name}` shape {shape} is not the {expected} of this "
                    f"{self.name} {self.kernel_layouts[name]}"
                )

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The first kernel's shape (the one `in_features_of` reads)."""
        return self._kernel_shape(self.in_features)

    @property
    def kernel_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each kernel's shape, by name, in `kernels`' order."""
        (name,) = self.kernels  # a kind with more kernels says their shapes
        return {name: self.kernel_shape}

    @property
    def kernel_layouts(self) -> dict[str, str]:
        """Each kernel's axes, by name, as messages write them:
        `"(KW, C_in // groups, C_out)"`, ..."""
        (name,) = self.kernels
        return {name: self._kernel_layout()}

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.out_features,)  # C_out; a depthwise layer has its own

    def init_kernel(self, name: str, init, key, param_dtype):
        """The kernel `name`, drawn by `init(key, shape, param_dtype)`."""
        return init(key, self.kernel_shapes[name], param_dtype)

    def split(self, kernel) -> tuple:
        """The kernels, in `kernels`' order, from `kernel` as `Frontend._export`
        gives it: the array itself, or for a kind with several kernels a tuple
        of them."""
        return (kernel,) if len(self.kernels) == 1 else tuple(kernel)

    def join(self, kernels):
        """`split`'s inverse: `kernel` as `Frontend._export` gives it."""
        return kernels[0] if len(self.kernels) == 1 else tuple(kernels)

    def __call__(self, x, kernels, bias, *, dtype, precision,
                 preferred_element_type=None):  # fmt: skip
        """Promotes to `dtype` (Flax's rule), flattens extra leading batch
        axes, runs `fn`; `kernels` is a tuple in `kernels`' order."""
        x, *kernels, bias = promote_dtype((x, *kernels, bias), dtype=dtype)
        image = self.rank + 1  # an unbatched input's axes
        batch_shape = x.shape[:-image]
        if len(batch_shape) > 1:
            x = x.reshape(-1, *x.shape[-image:])
        y = self.fn(
            x,
            *kernels,
            bias,
            precision=precision,
            preferred_element_type=preferred_element_type,
            **self.kwargs(),
        )
        if len(batch_shape) > 1:
            y = y.reshape(*batch_shape, *y.shape[1:])
        return y

    # Each kind: its channel counts' checks, its (first) kernel's shape (and
    # the input channels a kernel of that shape has) and axes, and the core's
    # check of its shapes.
    def _check_channels(self) -> None:
        raise NotImplementedError

    def _kernel_shape(self, in_features: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _kernel_layout(self) -> str:
        raise NotImplementedError

    def in_features_of(self, kernel_shape) -> int:
        raise NotImplementedError

    def _check_spec(self, x_shape, kernel_shape, spec_kwargs) -> None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvLayer(Layer):
    """`jconv.conv`: kernel `(*K, C_in // groups, out_features)`."""

    out_features: int
    groups: int = 1
    input_dilation: Any = 1  # Keras' layers have none

    keras_names: ClassVar = dict(out_features="filters", groups="groups")

    def _check_channels(self) -> None:
        _check_grouped_channels(self)

    def _kernel_shape(self, in_features):
        return (*self.kernel_size, in_features // self.groups, self.out_features)

    def _kernel_layout(self):
        return kernel_layout(self.rank)

    def in_features_of(self, kernel_shape) -> int:
        return kernel_shape[self.rank] * self.groups

    def _check_spec(self, x_shape, kernel_shape, spec_kwargs) -> None:
        conv_spec(x_shape, kernel_shape, None, rank=self.rank, **spec_kwargs)


class Conv1DLayer(ConvLayer, rank=1):
    fn = staticmethod(conv1d)
    keras_paddings = ("valid", "same", "causal")  # Keras' Conv1D alone


class Conv2DLayer(ConvLayer, rank=2):
    fn = staticmethod(conv2d)


class Conv3DLayer(ConvLayer, rank=3):
    fn = staticmethod(conv3d)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvTransposeLayer(Layer):
    """`jconv.conv_transpose`: kernel `(*K, out_features // groups, C_in)`."""

    out_features: int
    output_padding: Any = None
    groups: int = 1  # Keras' ConvNDTranspose have no groups

    keras_names: ClassVar = dict(
        out_features="filters", output_padding="output_padding"
    )
    # A transposed kernel reads its fan-in on its last axis.
    default_init: ClassVar = default_transpose_kernel_init

    def _check_channels(self) -> None:
        _check_grouped_channels(self)

    def _kernel_shape(self, in_features):
        return (*self.kernel_size, self.out_features // self.groups, in_features)

    def _kernel_layout(self):
        return transpose_layout("C_out // groups")(self.rank)

    def in_features_of(self, kernel_shape) -> int:
        return kernel_shape[self.rank + 1]

    def _check_spec(self, x_shape, kernel_shape, spec_kwargs) -> None:
        transpose_spec(x_shape, kernel_shape, None, rank=self.rank, **spec_kwargs)


class Conv1DTransposeLayer(ConvTransposeLayer, rank=1):
    fn = staticmethod(conv1d_transpose)


class Conv2DTransposeLayer(ConvTransposeLayer, rank=2):
    fn = staticmethod(conv2d_transpose)


class Conv3DTransposeLayer(ConvTransposeLayer, rank=3):
    fn = staticmethod(conv3d_transpose)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepthwiseConvLayer(Layer):
    """`jconv.depthwise_conv`: kernel `(*K, C_in, depth_multiplier)`."""

    depth_multiplier: int = 1
    input_dilation: Any = 1  # Keras' layers have none

    keras_names: ClassVar = dict(depth_multiplier="depth_multiplier")

    def _check_channels(self) -> None:
        multiplier = _positive_int(self.depth_multiplier, "depth_multiplier")
        self._set(depth_multiplier=multiplier)

    def _kernel_shape(self, in_features):
        return (*self.kernel_size, in_features, self.depth_multiplier)

    def _kernel_layout(self):
        return depthwise_layout(self.rank)

    def in_features_of(self, kernel_shape) -> int:
        return kernel_shape[self.rank]

    @property
    def bias_shape(self) -> tuple[int]:
        return (self.in_features * self.depth_multiplier,)

    def init_kernel(self, name, init, key, param_dtype):
        return _init_depthwise(init, key, self.kernel_shape, param_dtype)

    def _check_spec(self, x_shape, kernel_shape, spec_kwargs) -> None:
        _check_depthwise_spec(self, x_shape, kernel_shape, spec_kwargs)


class DepthwiseConv1DLayer(DepthwiseConvLayer, rank=1):
    fn = staticmethod(depthwise_conv1d)


class DepthwiseConv2DLayer(DepthwiseConvLayer, rank=2):
    fn = staticmethod(depthwise_conv2d)


class DepthwiseConv3DLayer(DepthwiseConvLayer, rank=3, keras=False):
    fn = staticmethod(depthwise_conv3d)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeparableConvLayer(Layer):
    """`jconv.separable_conv`: `depthwise_kernel` `(*K, C_in,
    depth_multiplier)`, then `pointwise_kernel` `(1, ..., 1, C_in *
    depth_multiplier, out_features)`, bias `(out_features,)`.

    Initialised as Flax initialises the layers it is made of (not with Keras'
    `glorot_uniform`): the depthwise kernel as `DepthwiseConvLayer`'s
    (fan-in `prod(K)`), the pointwise one as a 1x1 `ConvLayer`'s (fan-in
    `C_in * depth_multiplier`)."""

    out_features: int
    depth_multiplier: int = 1
    input_dilation: Any = 1  # Keras' layers have none

    keras_names: ClassVar = dict(
        out_features="filters", depth_multiplier="depth_multiplier"
    )
    kernels: ClassVar = dict(
        depthwise_kernel="depthwise_init", pointwise_kernel="pointwise_init"
    )

    def _check_channels(self) -> None:
        self._set(out_features=_positive_int(self.out_features, self.names[1]))
        multiplier = _positive_int(self.depth_multiplier, "depth_multiplier")
        self._set(depth_multiplier=multiplier)

    def _kernel_shape(self, in_features):  # the depthwise kernel
        return (*self.kernel_size, in_features, self.depth_multiplier)

    @property
    def kernel_shapes(self):
        channels = self.in_features * self.depth_multiplier
        return dict(
            depthwise_kernel=self.kernel_shape,
            pointwise_kernel=(*(1,) * self.rank, channels, self.out_features),
        )

    @property
    def kernel_layouts(self):
        ones = ", ".join(["1"] * self.rank)
        return dict(
            depthwise_kernel=depthwise_layout(self.rank),
            pointwise_kernel=f"({ones}, C_in * depth_multiplier, C_out)",
        )

    def in_features_of(self, kernel_shape) -> int:
        return kernel_shape[self.rank]

    def init_kernel(self, name, init, key, param_dtype):
        if name == "depthwise_kernel":
            return _init_depthwise(init, key, self.kernel_shape, param_dtype)
        return super().init_kernel(name, init, key, param_dtype)

    def _check_spec(self, x_shape, kernel_shape, spec_kwargs) -> None:
        # The pointwise step (1x1, stride 1, valid) fits any depthwise output.
        _check_depthwise_spec(self, x_shape, kernel_shape, spec_kwargs)


class SeparableConv1DLayer(SeparableConvLayer, rank=1):
    fn = staticmethod(separable_conv1d)


class SeparableConv2DLayer(SeparableConvLayer, rank=2):
    fn = staticmethod(separable_conv2d)


class SeparableConv3DLayer(SeparableConvLayer, rank=3, keras=False):
    fn = staticmethod(separable_conv3d)


# Every layer description, by kind and rank.
LAYERS = (
    Conv1DLayer,
    Conv2DLayer,
    Conv3DLayer,
    Conv1DTransposeLayer,
    Conv2DTransposeLayer,
    Conv3DTransposeLayer,
    DepthwiseConv1DLayer,
    DepthwiseConv2DLayer,
    DepthwiseConv3DLayer,
    SeparableConv1DLayer,
    SeparableConv2DLayer,
    SeparableConv3DLayer,
)


def _init_depthwise(init, key, kernel_shape, param_dtype):
    """A depthwise kernel `(*K, C_in, depth_multiplier)` initialised as the
    grouped kernel `(*K, 1, C_in * depth_multiplier)` it is (fan-in
    `prod(K)`, as for a Flax `Conv` with `feature_group_count=C_in`), then
    reshaped."""
    *spatial, c_in, multiplier = kernel_shape
    grouped = init(key, (*spatial, 1, c_in * multiplier), param_dtype)
    return grouped.reshape(kernel_shape)


def _check_depthwise_spec(layer: Layer, x_shape, kernel_shape, spec_kwargs) -> None:
    data_format = layer.data_format
    groups, grouped_shape = depthwise_groups(
        x_shape, kernel_shape, data_format, layer.rank
    )
    conv_spec(
        x_shape, grouped_shape, None, groups=groups, rank=layer.rank, **spec_kwargs
    )


def _check_grouped_channels(layer: Layer) -> None:
    """`out_features` and `groups` positive; `groups` divides both channel
    counts (the input's once known)."""
    in_name, out_name = layer.names
    layer._set(out_features=_positive_int(layer.out_features, out_name))
    layer._set(groups=_positive_int(layer.groups, "groups"))
    pairs = ((in_name, layer.in_features), (f"`{out_name}`", layer.out_features))
    for label, n in pairs:
        if n is not None and n % layer.groups:
            raise ValueError(
                f"{label} (={n}) must be divisible by `groups` (={layer.groups})"
            )


class Frontend:
    """A Flax module on a `Layer` (`jconv.nnx`, `jconv.linen`). `_export` is
    all `jconv.to_keras` reads from it, so `_keras_io` imports no frontend."""

    def _export(self, variables) -> tuple[Layer, Any, Any, Any]:
        """`(layer, kernel, bias, dtype)`; `variables` as `to_keras` takes
        them (a Linen module's, or None). `kernel` is as `Layer.join` makes
        it: the array, or `(depthwise_kernel, pointwise_kernel)` for a
        separable layer."""
        raise NotImplementedError


def hashable(value):
    """Lists become tuples (Flax keeps module attributes in hashed graph
    definitions; `jit` needs hashable static arguments)."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    return value


def check_precision(precision):
    """A module's `precision`, checked when it is built; lists become tuples."""
    canonical_precision(precision)
    return hashable(precision)


def check_preferred_element_type(value):
    """A module's `preferred_element_type`, checked when it is built: None or
    a floating or complex dtype (returned as a `jnp.dtype`, hashable). Its
    kind and width against the inputs' dtype are checked at each call, by
    `jconv._spec.preferred_dtype`."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        raise TypeError(
            f"`preferred_element_type` (={value!r}) must be None or a dtype, "
            f"e.g. jnp.float32"
        ) from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"`preferred_element_type` (={dtype.name}) must be a floating or "
            f"complex dtype, as in `jax.lax.conv_general_dilated`"
        )
    return dtype


def input_channels(x_shape, data_format, rank: int) -> int:
    """`x`'s channel count for a layer of `rank` spatial axes, its rank
    checked as the functions check it (a module also takes more leading
    batch axes, flattened for the call)."""
    x_shape = tuple(x_shape)
    batched = rank + 2
    if len(x_shape) > batched:
        x_shape = x_shape[-batched:]
    return _input(x_shape, data_format, rank).channels


def _probe_sizes(kernel_size, strides, dilation_rate, padding) -> tuple[int, ...]:
    """An input size on which every size-independent check can run: the
    kernel fits and every padding mode can pad it."""
    ones = (1,) * len(kernel_size)
    pads = resolve_padding(ones, kernel_size, strides, dilation_rate, padding)
    return tuple(
        ((k - 1) * d + 1) * s + max(lo, hi) + 1
        for k, s, d, (lo, hi) in zip(kernel_size, strides, dilation_rate, pads)
    )


def _refuse_flax_padding_modes(padding) -> None:
    """Flax's "CIRCULAR"/"REFLECT" padding strings are a padding mode with
    pads `((k - 1) // 2, k // 2)`; say how to write them here."""
    if not isinstance(padding, str) or padding.lower() not in ("circular", "reflect"):
        return
    mode = padding.lower()
    raise ValueError(
        f"`padding` (={padding!r}) is a Flax padding mode: write "
        f"padding='same', padding_mode='{mode}' (pads by the 'same' rule for "
        f"the stride) or, for Flax's pads ((k - 1) // 2, k // 2) whatever the "
        f"stride, those explicit pads with padding_mode='{mode}'"
    )


def check_dtype(value, name: str) -> None:
    """`dtype` (None: inferred) and `param_dtype` must be floating or complex
    dtypes."""
    if value is None and name == "dtype":
        return
    try:
        if value is None:  # numpy would read None as float64
            raise TypeError
        dtype = jnp.dtype(value)
    except TypeError:
        raise TypeError(f"`{name}` (={value!r}) is not a dtype") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise TypeError(
            f"`{name}` (={value!r}) must be a floating dtype (float32, "
            f"bfloat16, float16, float64) or a complex one (complex64, "
            f"complex128)"
        )
