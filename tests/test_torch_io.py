"""PyTorch layers (CPU, live) to jconv's Flax modules and back.

torch is the reference: its `Conv1d`/`Conv2d`/`Conv3d` and
`ConvTranspose1d`/`2d`/`3d` on channels-first input against the jconv module
on the same input in the module's layout. Each case compares
twice: small-integer data and weights, where every product and partial sum is
exact in float32, so the two must be equal to the last bit; and standard-normal
data, where the summation orders differ (XLA's, oneDNN's): within `2 * gamma_n
* sum|products|` per element, n the products in each sum, the sum of absolute
products being the same torch layer in float64 with absolute weights on the
absolute input (`_tol.py`). The pads torch means are read from torch itself
(`_reversed_padding_repeated_twice`, what its forward pads by), not from
`jconv._torch_io`.
"""

import ast
import contextlib
import copy
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _grid import grid_params, sample, uncovered
from _tol import assert_sums_close
from flax import nnx

import jconv
import jconv.linen as jlinen
import jconv.nnx as jnnx
from jconv import _torch_io
from jconv._torch_io import kernel_from_torch

# The settings both layers' grids vary alike, last in each.
SHARED_AXES = {
    "bias": [False, True],
    "dtype": ["float32", "float64"],
    "data_format": ["channels_last", "channels_first"],
    "impl": ["lax", "einsum"],
}

# Conv2d's settings; every input is (2, C_in, 7, 6) NCHW, where every kernel
# fits and every padding mode can fill every pad.
CONV_AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (2, 3)],
    "strides": [1, 2, (1, 2)],
    "dilation_rate": [1, 2, (2, 1)],
    "padding": [0, 1, (2, 0), "same", "valid"],
    "padding_mode": ["zeros", "reflect", "replicate", "circular"],
    "groups": [1, 2],
    **SHARED_AXES,
}
CONV_HW = (7, 6)

# ConvTranspose2d's (groups: `test_conv_transpose2d_groups`, `BEYOND_STRIDE`);
# every input is (2, C_in, 4, 5) NCHW.
TRANSPOSE_AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (3, 2)],
    "strides": [1, 2, (2, 1)],
    "dilation_rate": [1, 2],
    "padding": [0, 1, (1, 0)],
    "output_padding": [0, 1],
    **SHARED_AXES,
}
TRANSPOSE_HW = (4, 5)


# The other ranks' grids: inputs (2, C_in, 9) and (2, C_in, 5, 6, 5) for the
# convolutions, (2, C_in, 5) and (2, C_in, 3, 4, 3) for the transposed ones.
CONV1D_AXES = {
    "kernel": [(1,), (2,), (3,), (5,)],
    "strides": [1, 2, 3],
    "dilation_rate": [1, 2],
    "padding": [0, 2, (1,), "same", "valid"],
    "padding_mode": ["zeros", "reflect", "replicate", "circular"],
    "groups": [1, 2],
    **SHARED_AXES,
}
CONV3D_AXES = {
    "kernel": [(1, 1, 1), (2, 2, 2), (3, 2, 1)],
    "strides": [1, 2, (1, 2, 1)],
    "dilation_rate": [1, 2, (2, 1, 1)],
    "padding": [0, 1, (1, 0, 2), "same", "valid"],
    "padding_mode": ["zeros", "reflect", "replicate", "circular"],
    "groups": [1, 2],
    **SHARED_AXES,
}
TRANSPOSE1D_AXES = {
    "kernel": [(1,), (2,), (3,), (4,)],
    "strides": [1, 2, 3],
    "dilation_rate": [1, 2],
    "padding": [0, 1, (2,)],
    "output_padding": [0, 1, 2],
    "groups": [1, 2],
    **SHARED_AXES,
}
TRANSPOSE3D_AXES = {
    "kernel": [(1, 1, 1), (2, 2, 2), (3, 2, 2)],
    "strides": [1, 2, (2, 1, 2)],
    "dilation_rate": [1, 2],
    "padding": [0, 1, (1, 0, 1)],
    "output_padding": [0, 1],
    "groups": [1, 2],
    **SHARED_AXES,
}


def _per_axis(value, rank: int) -> tuple:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _conv_valid(case) -> bool:
    rank = len(case["kernel"])
    strides = _per_axis(case["strides"], rank)
    return case["padding"] != "same" or strides == (1,) * rank  # torch's


def _transpose_valid(case) -> bool:
    """torch takes an `output_padding` below the stride or the dilation;
    jconv writes one not below the stride as fewer pads at the end, so needs
    it below `padding + stride` (refused otherwise: `test_from_torch_refuses`)."""
    rank = len(case["kernel"])
    a, s, d, p = (
        _per_axis(case[axis], rank)
        for axis in ("output_padding", "strides", "dilation_rate", "padding")
    )
    return all(ai < max(si, di) and ai < pi + si for ai, si, di, pi in zip(a, s, d, p))


CONV_CASES = sample(10, axes=CONV_AXES, valid=_conv_valid)
TRANSPOSE_CASES = sample(8, axes=TRANSPOSE_AXES, valid=_transpose_valid)
# The fewest cases, from the first seed, that take every value.
RANK_CASES = {
    "Conv1d": sample(5, 120, axes=CONV1D_AXES, valid=_conv_valid),
    "Conv3d": sample(5, 222, axes=CONV3D_AXES, valid=_conv_valid),
    "ConvTranspose1d": sample(5, 44, axes=TRANSPOSE1D_AXES, valid=_transpose_valid),
    "ConvTranspose3d": sample(4, 1, axes=TRANSPOSE3D_AXES, valid=_transpose_valid),
}
RANK_AXES = {
    "Conv1d": CONV1D_AXES,
    "Conv3d": CONV3D_AXES,
    "ConvTranspose1d": TRANSPOSE1D_AXES,
    "ConvTranspose3d": TRANSPOSE3D_AXES,
}
# Larger samples, marked slow.
SLOW_RANK_CASES = {
    name: [
        case
        for case in sample(40, 1, axes=axes, valid=(
            _transpose_valid if "Transpose" in name else _conv_valid
        ))
        if case not in RANK_CASES[name]
    ]
    for name, axes in RANK_AXES.items()
}  # fmt: skip


def test_grids_cover_every_value():
    assert uncovered(CONV_CASES, CONV_AXES) == {}
    assert uncovered(TRANSPOSE_CASES, TRANSPOSE_AXES) == {}
    for name, cases in RANK_CASES.items():
        assert uncovered(cases, RANK_AXES[name]) == {}, name


def _tensor(array) -> torch.Tensor:
    array = np.asarray(array)
    if array.dtype == jnp.bfloat16:  # numpy has no bfloat16: exactly through f32
        return torch.tensor(array.astype(np.float32)).to(torch.bfloat16)
    return torch.tensor(array)


def _numpy(tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.float().numpy().astype(jnp.bfloat16)
    return tensor.numpy()


def _torch_call(layer, x_nchw) -> np.ndarray:
    with torch.no_grad():
        return _numpy(layer(_tensor(x_nchw)))


def _jconv_call(module, x_nchw, data_format, variables=None) -> np.ndarray:
    """The module's output on `x_nchw` (channels first, any rank; given in
    the module's layout), channels first."""
    channels_last = data_format == "channels_last"
    x = np.moveaxis(x_nchw, 1, -1) if channels_last else x_nchw
    y = module(x) if variables is None else module.apply(variables, x)
    y = np.asarray(y)
    return np.moveaxis(y, -1, 1) if channels_last else y


def _integers(rng, shape, complex_=False) -> np.ndarray:
    """Small integers (Gaussian integers if `complex_`): every product and
    partial sum is exact in float32."""
    values = rng.integers(-3, 4, (2, *shape))
    return values[0] + 1j * values[1] if complex_ else values[0]


def _draw(shape, *, integer, dtype="float32", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if integer:
        return _integers(rng, shape, np.dtype(dtype).kind == "c").astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _integer_weights(layer, seed=1):
    """`layer` with small-integer weights (exact products and sums)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in layer.parameters():
            values = _integers(rng, tuple(p.shape), p.is_complex())
            p.copy_(torch.tensor(values).to(p.dtype))
    return layer


def _check(y, layer, x_nchw, *, integer, dtype=np.float32):
    """`y` equals the torch layer's output on `x_nchw`: exactly on integer
    data, within the bound for the layer's sums in `dtype` otherwise."""
    expected = _torch_call(layer, x_nchw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    if integer:
        np.testing.assert_array_equal(y, expected)
        return
    absolute = copy.deepcopy(layer).double()
    with torch.no_grad():
        for p in absolute.parameters():
            p.abs_()
    magnitude = _torch_call(absolute, np.abs(x_nchw).astype(np.float64))
    assert_sums_close(y, expected, magnitude, _terms(layer), dtype)


def _terms(layer) -> int:
    """Products per output sum of a torch layer of any rank (`_tol.conv_terms`
    for its weight `(O, I, *K)`): `prod(K) * C_in / groups` for a
    convolution, at most `prod(K) * C_in` for a transposed one; +1 for the
    bias."""
    weight = layer.weight
    taps = math.prod(weight.shape[2:])
    transposed = "Transpose" in type(layer).__name__
    products = taps * (weight.shape[0] if transposed else weight.shape[1])
    return products + (layer.bias is not None)


def _x64(dtype):
    wide = dtype in ("float64", "complex128")
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


def _torch_dtype(name):
    return getattr(torch, name)


# A case's settings under torch's names (a case lacks those left at torch's
# defaults).
_TORCH_NAMES = {
    "strides": "stride",
    "padding": "padding",
    "output_padding": "output_padding",
    "dilation_rate": "dilation",
    "groups": "groups",
    "bias": "bias",
    "padding_mode": "padding_mode",
}


def _torch_layer(cls, case, c_in, c_out):
    """The torch convolution (`cls`, any rank) of a grid case."""
    kwargs = {name: case[axis] for axis, name in _TORCH_NAMES.items() if axis in case}
    dtype = _torch_dtype(case["dtype"])
    return cls(c_in, c_out, case["kernel"], dtype=dtype, **kwargs)


def _check_round_trip(layer, module, x_nchw, variables=None):
    """`to_torch` gives back the layer: its class, settings, weights (dtype
    included), the pads its forward applies, and its output."""
    back = jconv.to_torch(module, variables)
    assert type(back) is type(layer)
    for name in ("stride", "dilation", "groups", "padding_mode", "output_padding"):
        assert getattr(back, name) == getattr(layer, name), name
    if "Transpose" not in type(layer).__name__:
        pads = tuple(layer._reversed_padding_repeated_twice)
        assert tuple(back._reversed_padding_repeated_twice) == pads
    else:
        assert back.padding == layer.padding
    for w_back, w in zip(back.parameters(), layer.parameters(), strict=True):
        assert w_back.dtype == w.dtype
        np.testing.assert_array_equal(_numpy(w_back), _numpy(w))
    np.testing.assert_array_equal(_torch_call(back, x_nchw), _torch_call(layer, x_nchw))


# Each torch layer's grid: its cases, input size, `(C_in, C_out)` and the NNX
# module it becomes.
GRIDS = {
    "Conv2d": (CONV_CASES, CONV_HW, (4, 6), jnnx.Conv2D),
    "ConvTranspose2d": (TRANSPOSE_CASES, TRANSPOSE_HW, (4, 3), jnnx.Conv2DTranspose),
    "Conv1d": (RANK_CASES["Conv1d"], (9,), (4, 6), jnnx.Conv1D),
    "Conv3d": (RANK_CASES["Conv3d"], (5, 6, 5), (4, 6), jnnx.Conv3D),
    "ConvTranspose1d": (
        RANK_CASES["ConvTranspose1d"], (5,), (4, 6), jnnx.Conv1DTranspose,
    ),
    "ConvTranspose3d": (
        RANK_CASES["ConvTranspose3d"], (3, 4, 3), (4, 2), jnnx.Conv3DTranspose,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "case",
    grid_params(
        [dict(layer=name, **c) for name, (cases, *_) in GRIDS.items() for c in cases],
        [dict(layer=name, **c) for name, cs in SLOW_RANK_CASES.items() for c in cs],
    ),
)
def test_matches_torch(case):
    """torch -> NNX module -> torch: both outputs torch's, the weights back;
    the kernel is torch's weight with its axes reversed in pairs."""
    _, hw, (c_in, c_out), module_class = GRIDS[case["layer"]]
    cls = getattr(torch.nn, case["layer"])
    layer = _integer_weights(_torch_layer(cls, case, c_in, c_out))
    with _x64(case["dtype"]):
        module = jnnx.from_torch(
            layer, data_format=case["data_format"], impl=case["impl"]
        )
        assert type(module) is module_class
        assert module.kernel.dtype == case["dtype"]
        weight_oi = tuple(layer.weight.shape[:2])
        assert module.kernel.shape == (*case["kernel"], *weight_oi[::-1])
        for integer in (True, False):
            x = _draw((2, c_in, *hw), integer=integer, dtype=case["dtype"])
            y = _jconv_call(module, x, case["data_format"])
            _check(y, layer, x, integer=integer, dtype=np.dtype(case["dtype"]))
        _check_round_trip(layer, module, x)


def test_same_is_torchs_split():
    """torch's "same" (stride 1) pads `d * (k - 1)` with the odd pad at the
    bottom/right; the module pads by those explicit pads."""
    layer = torch.nn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 3))
    module = jnnx.from_torch(layer)
    left, right, top, bottom = layer._reversed_padding_repeated_twice
    assert module.padding == ((top, bottom), (left, right)) == ((1, 2), (3, 3))
    assert jnnx.to_torch(module).padding == "same"


# ConvTranspose2d settings whose `output_padding` `a` is not below the stride
# `s` on some axis (torch takes it below the dilation), with the pads and
# output_padding of jconv's module, worked by hand: torch's output is
# `(H - 1) * s + span - 2 * p + a` long, its content set by the `p` it crops
# at the top/left alone, so such an `a` comes off the bottom/right pad `p` as
# far as `p` goes and the rest, `a - p`, stays output_padding (an `a` below
# the stride stays as it is). Inputs (2, C_in, 3, 4), float64.
BEYOND_STRIDE = {
    # below the stride on axis 0; on axis 1 the pad 2 goes, a - p = 1 stays
    "grouped": (
        dict(kernel=(4, 5), strides=(3, 2), padding=(1, 2), output_padding=(2, 3),
             dilation_rate=4, groups=2, c_in=2, c_out=4, impl="lax"),
        ((1, 1), (2, 0)), (2, 1),
    ),
    # a = p = 1 on axis 0 (stride 1); on axis 1 p = 1 goes, a - p = 1 stays
    "per_axis": (
        dict(kernel=(2, 3), strides=(1, 2), padding=(1, 1), output_padding=(1, 2),
             dilation_rate=(2, 3), groups=1, c_in=2, c_out=3, impl="lax"),
        ((1, 0), (1, 0)), (0, 1),
    ),
    # a = p = 4: all of the bottom/right pad goes
    "groups_3": (
        dict(kernel=2, strides=2, padding=4, output_padding=4, dilation_rate=5,
             groups=3, c_in=3, c_out=6, impl="einsum"),
        ((4, 0), (4, 0)), (0, 0),
    ),
    # below the stride on axis 0, kept; on axis 1 a = 1 of p = 3 goes
    "mixed": (
        dict(kernel=(3, 3), strides=(3, 1), padding=(0, 3), output_padding=(2, 1),
             dilation_rate=(1, 2), groups=1, c_in=2, c_out=2, impl="lax"),
        ((0, 0), (3, 2)), (2, 0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", BEYOND_STRIDE)
def test_output_padding_beyond_stride(name):
    """An `output_padding` at or above the stride becomes fewer pads at the
    bottom/right: the output and the gradients (input, weight, bias) equal
    torch's, exactly on small-integer data; and `to_torch` gives the layer
    back."""
    case, pads, output_padding = BEYOND_STRIDE[name]
    case = dict(case, dtype="float64", bias=True)
    layer = _integer_weights(
        _torch_layer(torch.nn.ConvTranspose2d, case, case["c_in"], case["c_out"])
    )
    x = _draw((2, case["c_in"], 3, 4), integer=True, dtype="float64")
    x_torch = torch.tensor(x, requires_grad=True)
    y_torch = layer(x_torch)
    cotangent = _draw(tuple(y_torch.shape), integer=True, dtype="float64", seed=2)
    (y_torch * torch.tensor(cotangent)).sum().backward()
    with jax.enable_x64(True):
        module, variables = jlinen.from_torch(
            layer, data_format="channels_first", impl=case["impl"]
        )
        assert (module.padding, module.output_padding) == (pads, output_padding)

        @jax.jit  # one compilation, not one per operation
        def output_and_grads(x, variables, cotangent):
            y, vjp = jax.vjp(lambda x, v: module.apply(v, x), x, variables)
            return y, *vjp(cotangent)

        y, grad_x, grad_variables = output_and_grads(x, variables, cotangent)
        _check_round_trip(layer, module, x, variables)
    grads = grad_variables["params"]
    np.testing.assert_array_equal(np.asarray(y), _numpy(y_torch))
    np.testing.assert_array_equal(np.asarray(grad_x), _numpy(x_torch.grad))
    np.testing.assert_array_equal(
        _torch_io.kernel_to_torch(grads["kernel"]), _numpy(layer.weight.grad)
    )
    np.testing.assert_array_equal(np.asarray(grads["bias"]), _numpy(layer.bias.grad))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_functions_match_torch():
    """The kernel layouts: `jconv.conv2d` with `kernel_from_torch(weight)` and
    the explicit pads torch applies equals `F.conv2d` (grouped, strided,
    dilated, torch's asymmetric "same"); `jconv.conv2d_transpose` with groups
    equals `F.conv_transpose2d`."""
    F = torch.nn.functional
    x = _draw((1, 4, 7, 6), integer=True)
    for kwargs in (
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
        dict(kernel_size=4, padding="same", dilation=(1, 2)),
    ):
        layer = _integer_weights(torch.nn.Conv2d(4, 6, groups=2, **kwargs))
        left, right, top, bottom = layer._reversed_padding_repeated_twice
        y = jconv.conv2d(
            x,
            kernel_from_torch(_numpy(layer.weight)),
            _numpy(layer.bias),
            strides=layer.stride,
            padding=((top, bottom), (left, right)),
            dilation_rate=layer.dilation,
            groups=2,
            data_format="channels_first",
        )
        with torch.no_grad():
            expected = layer(_tensor(x))
        if isinstance(layer.padding, tuple):  # torch's module is F.conv2d
            expected = F.conv2d(
                _tensor(x), layer.weight, layer.bias, layer.stride, layer.padding,
                layer.dilation, groups=2,
            ).detach()  # fmt: skip
        np.testing.assert_array_equal(np.asarray(y), _numpy(expected))
    weight = _draw((4, 3, 3, 2), integer=True, seed=2)  # (C_in, C_out // G, KH, KW)
    y = jconv.conv2d_transpose(
        x,
        kernel_from_torch(weight),
        strides=2,
        padding=((1, 1), (0, 0)),
        output_padding=1,
        groups=2,
        data_format="channels_first",
    )
    expected = F.conv_transpose2d(
        _tensor(x), _tensor(weight), stride=2, padding=(1, 0), output_padding=1,
        groups=2,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(y), _numpy(expected))


_LINEN = {
    torch.nn.Conv1d: jlinen.Conv1D,
    torch.nn.Conv2d: jlinen.Conv2D,
    torch.nn.ConvTranspose2d: jlinen.Conv2DTranspose,
    torch.nn.ConvTranspose3d: jlinen.Conv3DTranspose,
}


def test_linen_pair():
    """torch -> Linen module and variables -> torch, both kinds, three
    ranks."""
    x = _draw((2, 4, *TRANSPOSE_HW), integer=True)
    layers = [
        torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="circular", groups=2),
        torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, bias=False),
        torch.nn.Conv1d(4, 6, 2, padding="same", padding_mode="reflect", groups=2),
        torch.nn.ConvTranspose3d(4, 2, (2, 1, 3), stride=(2, 1, 1), padding=(0, 0, 1)),
    ]
    signal, volume = x[..., 0], np.stack([x, x[:, :, ::-1]], axis=2)
    for layer, x_layer in zip(layers, (x, x, signal, volume), strict=True):
        layer = _integer_weights(layer)
        module, variables = jlinen.from_torch(layer, impl="einsum")
        assert type(module) is _LINEN[type(layer)]
        y = _jconv_call(module, x_layer, "channels_last", variables)
        _check(y, layer, x_layer, integer=True)
        _check_round_trip(layer, module, x_layer, variables)
        assert jlinen.to_torch(module, variables["params"]).padding == layer.padding


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_dtype_kept(dtype):
    """The parameters keep torch's dtype both ways, NNX and Linen; the
    outputs are torch's (integer data: every sum below 256 is exact in
    float16 and bfloat16)."""
    layer = _integer_weights(torch.nn.Conv2d(2, 3, 3, dtype=_torch_dtype(dtype)))
    x = _draw((1, 2, 5, 5), integer=True).astype(jnp.dtype(dtype))
    with _x64(dtype):
        module = jnnx.from_torch(layer)
        assert module.param_dtype == module.kernel.dtype == module.bias.dtype == dtype
        linen_module, variables = jlinen.from_torch(layer)
        assert linen_module.param_dtype == dtype
        assert variables["params"]["kernel"].dtype == dtype
        _check(_jconv_call(module, x, "channels_last"), layer, x, integer=True)
        _check_round_trip(layer, module, x)
        _check_round_trip(layer, linen_module, x, variables)


def test_complex_weights():
    """Complex weights cross both ways in their dtype: the module's output
    equals torch's on complex data, exactly on Gaussian integers. Neither
    conjugates the kernel: `F.conv2d` with the weight `to_torch` writes from
    a complex jconv module equals the module's output."""
    layers = [
        torch.nn.Conv2d(
            4, 6, 3, padding=1, padding_mode="reflect", groups=2, dtype=torch.complex64
        ),
        torch.nn.ConvTranspose2d(
            4, 3, (2, 3), stride=2, padding=1, output_padding=1, dtype=torch.complex128
        ),
    ]
    for layer, impl in zip(layers, ("lax", "einsum"), strict=True):
        dtype = str(layer.weight.dtype).removeprefix("torch.")
        x = _draw((2, 4, 5, 6), integer=True, dtype=dtype)
        layer = _integer_weights(layer)
        with _x64(dtype):
            module = jnnx.from_torch(layer, impl=impl)
            assert module.kernel.dtype == module.bias.dtype == dtype
            _check(_jconv_call(module, x, "channels_last"), layer, x, integer=True)
            _check_round_trip(layer, module, x)
            linen_module, variables = jlinen.from_torch(layer)
            assert variables["params"]["kernel"].dtype == dtype
            _check_round_trip(layer, linen_module, x, variables)
    rng = np.random.default_rng(3)

    def gaussian_integers(key, shape, dtype):
        return jnp.asarray(_integers(rng, shape, complex_=True), dtype)

    native = jnnx.Conv2D(
        4,
        6,
        (3, 2),
        strides=(1, 2),
        padding=1,
        param_dtype="complex64",
        kernel_init=gaussian_integers,
        bias_init=gaussian_integers,
        rngs=nnx.Rngs(0),
    )
    conv = jnnx.to_torch(native)
    assert conv.weight.dtype == torch.complex64
    x = _draw((2, 4, 5, 6), integer=True, dtype="complex64")
    expected = torch.nn.functional.conv2d(
        _tensor(x), conv.weight, conv.bias, stride=(1, 2), padding=1
    )
    y = _jconv_call(native, x, "channels_last")
    np.testing.assert_array_equal(y, _numpy(expected))


def _normal(key, shape, dtype):
    """Standard-normal weights drawn by numpy (jax's initialisers compile
    once per shape, about a second each here)."""
    rng = np.random.default_rng(len(shape))
    return jnp.asarray(rng.standard_normal(shape), dtype)


def _fresh():
    """A module's initialisers: random kernel and bias."""
    return dict(kernel_init=_normal, bias_init=_normal, rngs=nnx.Rngs(0))


def _fresh_modules():
    return [
        # symmetric explicit pads, groups
        jnnx.Conv2D(4, 6, (3, 2), strides=2, padding=1, groups=2, **_fresh()),
        # even kernel "same" at stride 1: torch's "same"
        jnnx.Conv2D(4, 3, 4, padding="same", padding_mode="reflect", **_fresh()),
        # "full": (k - 1) * d
        jnnx.Conv2D(4, 3, 3, padding="full", dilation_rate=(1, 2), **_fresh()),
        # "same" at stride 2 with a 1x1 kernel pads nothing on any size
        jnnx.Conv2D(4, 2, 1, strides=2, padding="same", use_bias=False, **_fresh()),
        jnnx.DepthwiseConv2D(
            4, 3, depth_multiplier=2, padding_mode="replicate", **_fresh()
        ),
        jnnx.DepthwiseConv2D(
            4, (2, 3), 2, padding="valid", data_format="channels_first", **_fresh()
        ),
        # "same", span - stride even: p = 1, output_padding 0
        jnnx.Conv2DTranspose(4, 3, 4, strides=2, padding="same", **_fresh()),
        # "valid", span < stride: output_padding 1
        jnnx.Conv2DTranspose(4, 3, 1, strides=2, padding="valid", **_fresh()),
        jnnx.Conv2DTranspose(4, 2, 3, strides=(2, 1), padding="full", **_fresh()),
    ]


def test_to_torch_from_fresh_modules():
    """Modules built in Flax (random initial weights) export to torch layers
    that compute the same thing; a depthwise kernel's channel `c * M + m` is
    torch's grouped output channel."""
    x = _draw((2, 4, 7, 6), integer=False)
    for module in _fresh_modules():
        layer = jnnx.to_torch(module)
        y = _jconv_call(module, x, module.data_format)
        _check(y, layer, x, integer=False)
    depthwise = _fresh_modules()[4]
    layer = jnnx.to_torch(depthwise)
    assert (layer.groups, layer.out_channels, layer.padding) == (4, 8, (1, 1))
    kernel = np.asarray(depthwise.kernel[...])  # (KH, KW, C_in, M)
    # weight (C_in * M, 1, KH, KW): channel c * M + m is kernel[:, :, c, m]
    np.testing.assert_array_equal(
        _numpy(layer.weight)[2 * 2 + 1, 0], kernel[:, :, 2, 1]
    )


def test_to_torch_from_fresh_modules_of_every_rank():
    """1D and 3D modules built in Flax export to the torch layer of their
    kind and rank, which computes what they do; a depthwise module to a
    grouped `Conv1d`/`Conv3d`."""
    signal = _draw((2, 4, 9), integer=False)
    volume = _draw((2, 4, 4, 5, 4), integer=False)
    modules = [
        (jnnx.Conv1D(4, 6, 3, strides=2, padding=1, groups=2, **_fresh()),
         signal, "Conv1d"),
        (jnnx.Conv1D(4, 3, 4, padding="same", padding_mode="circular", **_fresh()),
         signal, "Conv1d"),
        (jnnx.DepthwiseConv1D(4, 3, 2, depth_multiplier=2, padding="valid",
                              **_fresh()), signal, "Conv1d"),
        (jnnx.Conv1DTranspose(4, 3, 3, strides=2, padding="valid",
                              output_padding=1, **_fresh()), signal,
         "ConvTranspose1d"),
        (jnnx.Conv3D(4, 2, (3, 2, 1), padding="full", data_format="channels_first",
                     **_fresh()), volume, "Conv3d"),
        (jnnx.DepthwiseConv3D(4, 3, padding_mode="reflect", **_fresh()), volume,
         "Conv3d"),
        (jnnx.Conv3DTranspose(4, 2, 2, strides=(2, 1, 2), padding="valid",
                              groups=2, **_fresh()), volume, "ConvTranspose3d"),
    ]  # fmt: skip
    for module, x, name in modules:
        layer = jnnx.to_torch(module)
        assert type(layer).__name__ == name
        _check(_jconv_call(module, x, module.data_format), layer, x, integer=False)
    depthwise = jnnx.to_torch(modules[5][0])
    assert (depthwise.groups, depthwise.out_channels, depthwise.padding) == (
        4, 4, (1, 1, 1),
    )  # fmt: skip


def test_to_torch_from_linen():
    up = jlinen.Conv2DTranspose(
        3, (2, 3), 2, padding="valid", output_padding=1, kernel_init=_normal
    )
    x = _draw((2, 4, 4, 5), integer=False)
    variables = up.init(jax.random.key(0), x.transpose(0, 2, 3, 1))
    layer = jlinen.to_torch(up, variables)
    assert (layer.padding, layer.output_padding) == ((0, 0), (1, 1))
    _check(_jconv_call(up, x, "channels_last", variables), layer, x, integer=False)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_from_torch_refuses():
    class MyConv(torch.nn.Conv2d):
        pass

    cases = [
        (torch.nn.LazyConv1d(4, 3), TypeError, r"`module` \(=LazyConv1d\) must be"),
        (torch.nn.LazyConv2d(4, 3), TypeError, r"`module` \(=LazyConv2d\) must be"),
        (
            torch.nn.ConvTranspose3d(2, 4, 3, output_padding=(0, 1, 0), dilation=2),
            ValueError,
            r"`output_padding` \(=\(0, 1, 0\)\) with `padding` \(=\(0, 0, 0\)\) "
            r"extends the output by \(0, 1, 0\) past",
        ),
        (
            torch.nn.ConvTranspose1d(2, 4, 3, stride=2, padding=5, output_padding=2),
            ValueError,
            r"`output_padding` \(=\(2,\)\) is not below max\(stride, dilation\) "
            r"\(=\(2,\)\): torch's ConvTranspose1d refuses it",
        ),
        (
            MyConv(2, 4, 3),
            TypeError,
            r"`module` \(=MyConv\) must be a torch.nn.Conv1d, Conv2d, Conv3d, "
            r"ConvTranspose1d, ConvTranspose2d or ConvTranspose3d \(not a subclass",
        ),
        (torch.nn.Linear(2, 3), TypeError, r"`module` \(=Linear\) must be"),
        (
            torch.nn.Conv2d(2, 4, 3, dtype=torch.complex32),
            TypeError,
            r"\(Conv2d\) has weights of dtype torch.complex32; jconv modules "
            r"hold .*complex64 or complex128",
        ),
        # torch's forward refuses it (its constructor does not)
        (
            torch.nn.ConvTranspose2d(
                2, 4, 3, stride=(1, 2), padding=5, output_padding=2
            ),
            ValueError,
            r"`output_padding` \(=\(2, 2\)\) is not below max\(stride, dilation\) "
            r"\(=\(1, 2\)\): torch's ConvTranspose2d refuses it",
        ),
        # a - p = 1 rows past the full transposed output; stride 1 allows 0
        (
            torch.nn.ConvTranspose2d(2, 4, 3, padding=1, output_padding=2, dilation=3),
            ValueError,
            r"`output_padding` \(=\(2, 2\)\) with `padding` \(=\(1, 1\)\) "
            r"extends the output by \(1, 1\) past the full transposed "
            r"convolution; jconv's extends it by at most `stride` - 1 "
            r"\(=\(0, 0\)\)",
        ),
        (
            torch.nn.ConvTranspose2d(
                2, 4, 2, stride=(2, 1), output_padding=(1, 2), dilation=(1, 3)
            ),
            ValueError,
            r"`output_padding` \(=\(1, 2\)\) with `padding` \(=\(0, 0\)\) "
            r"extends the output by \(1, 2\) past .* at most `stride` - 1 "
            r"\(=\(1, 0\)\)",
        ),
    ]
    for cls, c_in, c_out in [
        (torch.nn.Conv2d, 0, 33),
        (torch.nn.Conv2d, 3, 0),
        (torch.nn.ConvTranspose2d, 0, 3),
        (torch.nn.ConvTranspose2d, 3, 0),
        (torch.nn.Conv1d, 0, 3),
        (torch.nn.ConvTranspose3d, 3, 0),
    ]:
        name = "in_channels" if c_in == 0 else "out_channels"
        match = rf"`module` \({cls.__name__}\) has `{name}` \(=0\); jconv's"
        cases.append((cls(c_in, c_out, 3), ValueError, match))
    for cls in (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d):
        reflecting = cls(2, 4, 3)
        reflecting.padding_mode = "reflect"  # torch's own check is at init
        name = cls.__name__
        cases.append(
            (
                reflecting,
                ValueError,
                rf"\({name}\) has `padding_mode` \(='reflect'\), which "
                rf"torch's {name} does not compute",
            )
        )
    for layer, exc, match in cases:
        with pytest.raises(exc, match=match):
            jnnx.from_torch(layer)
        with pytest.raises(exc, match=match):
            jlinen.from_torch(layer)
    conv = torch.nn.Conv2d(2, 4, 3)
    with pytest.raises(ValueError, match=r"`impl` \(='cuda'\) must be one of"):
        jnnx.from_torch(conv, impl="cuda")
    with pytest.raises(ValueError, match=r"`data_format` \(='NCHW'\) must be one"):
        jnnx.from_torch(conv, data_format="NCHW")


def test_to_torch_refuses():
    rngs = nnx.Rngs(0)
    cases = [
        (
            jnnx.SeparableConv2D(
                2, 4, 3, depthwise_init=_normal, pointwise_init=_normal, rngs=rngs
            ),
            TypeError,
            r"`module` \(=SeparableConv2D\) must be a jconv.nnx or jconv.linen "
            r"ConvND, ConvNDTranspose or DepthwiseConvND \(N = 1, 2, 3; torch has "
            r"no separable",
        ),
        (
            jnnx.SeparableConv1D(
                2, 4, 3, depthwise_init=_normal, pointwise_init=_normal, rngs=rngs
            ),
            TypeError,
            r"`module` \(=SeparableConv1D\) must be a jconv.nnx or jconv.linen",
        ),
        # Other ranks: what torch's layers cannot express, named with them.
        (
            jnnx.Conv1D(2, 4, 3, padding="causal", dilation_rate=2, **_fresh()),
            ValueError,
            r"`padding` \(='causal'\) pads \(\(4, 0\),\), not alike on both sides: "
            r"torch's Conv1d",
        ),
        (
            jnnx.Conv3D(2, 4, 3, input_dilation=(1, 2, 1), **_fresh()),
            ValueError,
            r"`input_dilation` \(=\(1, 2, 1\)\) has no torch equivalent: torch's "
            r"Conv3d does not stretch its input",
        ),
        (
            jnnx.DepthwiseConv1D(2, 3, input_dilation=2, **_fresh()),
            ValueError,
            r"`input_dilation` \(=2\) has no torch equivalent: torch's Conv1d",
        ),
        (
            jnnx.Conv3D(2, 4, 3, strides=(1, 2, 1), padding="same", **_fresh()),
            ValueError,
            r"`strides` \(=\(1, 2, 1\)\) pads by the input's size .* torch's "
            r"Conv3d pads every input alike",
        ),
        (
            jnnx.Conv1DTranspose(2, 4, 3, strides=2, padding="same", **_fresh()),
            ValueError,
            r"crops \(\(0, 1\),\) from the transposed output; torch's "
            r"ConvTranspose1d would crop",
        ),
        (
            jnnx.Conv3DTranspose(2, 4, 3, padding_mode="circular", **_fresh()),
            ValueError,
            r"`padding_mode` \(='circular'\) has no torch equivalent on a "
            r"transposed layer: torch's ConvTranspose3d pads with zeros",
        ),
        (
            jnnx.Conv2D(2, 4, 3, strides=2, padding="same", **_fresh()),
            ValueError,
            r"`padding` \(='same'\) with `strides` \(=2\) pads by the input's size",
        ),
        (
            jnnx.Conv2D(2, 4, 4, strides=(1, 2), padding="same", **_fresh()),
            ValueError,
            r"`strides` \(=\(1, 2\)\) pads by the input's size",
        ),
        (
            jnnx.Conv2D(2, 4, 2, padding="same_lower", **_fresh()),
            ValueError,
            r"`padding` \(='same_lower'\) pads \(\(1, 0\), \(1, 0\)\), not alike",
        ),
        (
            jnnx.Conv2D(2, 4, 3, padding=((1, 1), (0, 2)), **_fresh()),
            ValueError,
            r"pads \(\(1, 1\), \(0, 2\)\), not alike on both sides",
        ),
        (
            jnnx.Conv2D(2, 4, 3, strides=2, padding=((1, 2), (1, 2)), **_fresh()),
            ValueError,
            r"not alike on both sides: torch's Conv2d",
        ),
        (
            jnnx.Conv2DTranspose(2, 4, 3, strides=2, padding="same", **_fresh()),
            ValueError,
            r"`padding` \(='same'\) with `output_padding` \(=None\) crops "
            r"\(\(0, 1\), \(0, 1\)\) from the transposed output; torch's "
            r"ConvTranspose2d would crop `padding` \(=\(0, 0\)\) from both "
            r"sides and add `output_padding` \(=\(-1, -1\)\) at the end, and "
            r"takes 0 <= output_padding < max\(stride, dilation\) \(=\(2, 2\)\)",
        ),
        (
            jnnx.Conv2DTranspose(2, 4, 3, padding=((3, 0), (0, 0)), **_fresh()),
            ValueError,
            r"crops \(\(3, 0\), \(0, 0\)\) .* `padding` \(=\(3, 0\)\) .* "
            r"`output_padding` \(=\(3, 0\)\) at the end, .* \(=\(1, 1\)\)",
        ),
        (
            jnnx.Conv2D(2, 4, 3, dtype="bfloat16", **_fresh()),
            ValueError,
            r"`dtype` \(='bfloat16'\) differs from the parameters' \(float32\)",
        ),
        (jlinen.Conv2D(4, 3), TypeError, r"pass `variables`"),
        (
            nnx.Conv(2, 4, 3, kernel_init=_normal, rngs=rngs),
            TypeError,
            r"`module` \(=Conv\) must be a jconv",
        ),
    ]
    for module, exc, match in cases:
        with pytest.raises(exc, match=match):
            jconv.to_torch(module)


def test_layers_flow_one_way():
    """`_torch_io` imports no Flax frontend and no torch at import time; one
    `to_torch` takes a module of either frontend."""
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(_torch_io))):
        if isinstance(node, ast.Import) and node.col_offset == 0:
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            imported.add(node.module)
    assert not {"jconv.nnx", "jconv.linen", "flax", "torch"} & imported, imported
    assert jnnx.to_torch is jlinen.to_torch is jconv.to_torch
    assert jconv.from_torch is jnnx.from_torch


def test_conv_transpose2d_groups():
    """PyTorch's grouping convention is `conv2d_transpose`'s: the weights move
    as they are and the outputs are equal to the last bit."""
    layer = _integer_weights(
        torch.nn.ConvTranspose2d(
            4, 6, 3, stride=2, padding=1, output_padding=1, groups=2
        )
    )
    module = jnnx.from_torch(layer, impl="lax")
    assert module.kernel.shape == (3, 3, 3, 4) and module.groups == 2
    x = _draw((2, 4, *TRANSPOSE_HW), integer=True)
    _check(_jconv_call(module, x, "channels_last"), layer, x, integer=True)
    _check_round_trip(layer, module, x)
