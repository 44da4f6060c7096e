"""Complex inputs, kernels and biases (complex64, complex128) in every
convolution and implementation, with lax's and PyTorch's meaning: no
conjugation of the kernel, `y = sum x * k`.

References: the float64 loops of `reference.py` (complex128 for complex
arrays) within `_tol.assert_complex_conv_close`'s bound (the FFT within
`_tol.assert_fft_close`'s, on the moduli of the errors), and PyTorch's
`conv2d`/`conv_transpose2d` on complex tensors, exactly, on small-integer data
(every product and partial sum of the real and imaginary parts is exact).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_depthwise as dw
import test_transpose as tr
import torch
from _data import conv_kwargs, make_arrays
from _family import CONV2D
from _grid import AXES, table
from _specs import conv2d_spec
from _tol import assert_complex_conv_close, assert_fft_close
from jax.test_util import check_grads
from reference import (
    reference_conv2d,
)
from test_fft import fft_bound_args
from test_winograd import FACTOR

import jconv
from jconv._plan import WINOGRAD, Plan, choose_plan, run_plan

# kernel, strides, dilation_rate, padding, groups, data_format, hw, bias
CONV_CASES = table(
    AXES,
    ((3, 3), 1, 1, "same", 1, "channels_last", (7, 7), True),
    ((2, 3), (1, 2), 2, ((0, 2), (1, 0)), 2, "channels_first", (8, 7), False),
    ((4, 4), 2, 1, 1, 1, "channels_last", (8, 8), True),
)
TRANSPOSE_CASES = [
    dict(
        kernel=(3, 3),
        strides=2,
        dilation_rate=1,
        padding="same",
        output_padding=None,
        data_format="channels_last",
        hw=(4, 5),
        bias=True,
    ),
    dict(
        kernel=(2, 3),
        strides=(1, 2),
        dilation_rate=(2, 1),
        padding="valid",
        output_padding=None,
        data_format="channels_first",
        hw=(5, 4),
        bias=False,
    ),
]
DEPTHWISE_CASES = [
    dict(
        kernel=(3, 3),
        strides=(1, 2),
        dilation_rate=2,
        padding="same",
        depth_multiplier=2,
        data_format="channels_last",
        hw=(7, 8),
        bias=True,
    ),
]
# name: (the family, its cases)
FAMILIES = {
    "conv2d": (CONV2D, CONV_CASES),
    "transpose": (tr.FAMILY, TRANSPOSE_CASES),
    "depthwise": (dw.FAMILY, DEPTHWISE_CASES),
}
# Default: each family's first case; `-m slow` the rest.
PARAMS = [
    pytest.param(name, case, id=f"{name}-{i}", marks=[pytest.mark.slow] if i else [])
    for name, (_, cases) in FAMILIES.items()
    for i, case in enumerate(cases)
]


def complex_arrays(make, case, *, integer=False, batch=2):
    """`make`'s arrays as the real parts, another draw as the imaginary ones,
    complex64."""
    real = make(case, integer=integer, seed=0, batch=batch)
    imag = make(case, integer=integer, seed=1, batch=batch)
    return tuple(
        None if r is None else (r + 1j * i).astype(np.complex64)
        for r, i in zip(real, imag)
    )


@pytest.mark.parametrize("family, case", PARAMS)
def test_matches_reference(family, case, impl):
    """complex64 within the float32 bound, complex128 within the float64 one."""
    f, _ = FAMILIES[family]
    x, kernel, bias = complex_arrays(f.make_arrays, case)
    kw = f.kwargs(case)
    expected = f.reference(x, kernel, bias, **kw)
    y = f.fn(x, kernel, bias, impl=impl, precision="highest", **kw)
    assert y.dtype == np.complex64
    assert_complex_conv_close(y, expected, f.reference, x, kernel, bias, **kw)
    with jax.enable_x64(True):
        as128 = lambda a: None if a is None else a.astype(np.complex128)
        y128 = f.fn(as128(x), as128(kernel), as128(bias), impl=impl, **kw)
        assert y128.dtype == np.complex128
        assert_complex_conv_close(
            y128, expected, f.reference, x, kernel, bias, dtype=np.float64, **kw
        )


@pytest.mark.parametrize("family, case", PARAMS)
def test_fft_matches_reference(family, case):
    """The FFT takes `fft2`/`ifft2` for complex planes: the FFT bound (its
    rounding and the bias add's, 2u|y|) on the moduli of the errors."""
    f, _ = FAMILIES[family]
    x, kernel, bias = complex_arrays(f.make_arrays, case)
    kw = f.kwargs(case)
    expected = f.reference(x, kernel, bias, **kw)
    y = f.fn(x, kernel, bias, impl="fft", **kw)
    assert y.dtype == np.complex64
    assert_fft_close(y, expected, x, kernel, **fft_bound_args(family, case, kernel))


def _torch(a):
    return torch.from_numpy(np.asarray(a))


@pytest.mark.parametrize("impl_name", ["lax", "einsum"])
def test_conv2d_equals_torch_exactly(impl_name):
    """`torch.nn.functional.conv2d` on complex tensors conjugates nothing
    either; NCHW, kernel OIHW."""
    case = CONV_CASES[1]
    x, kernel, _ = complex_arrays(make_arrays, case, integer=True)
    kw = conv_kwargs(case)
    pads = kw["padding"]  # explicit ((top, bottom), (left, right)): pad first
    x_padded = np.pad(x, ((0, 0), (0, 0), *pads))
    expected = torch.nn.functional.conv2d(
        _torch(x_padded),
        _torch(kernel.transpose(3, 2, 0, 1)),
        stride=kw["strides"],
        dilation=kw["dilation_rate"],
        groups=kw["groups"],
    ).numpy()
    y = jconv.conv2d(x, kernel, impl=impl_name, **kw)
    np.testing.assert_array_equal(np.asarray(y), expected)


@pytest.mark.parametrize("impl_name", ["lax", "einsum"])
def test_conv2d_transpose_equals_torch_exactly(impl_name):
    """`conv_transpose2d`: weight `(C_in, C_out, KH, KW)` = ours transposed."""
    x, kernel, bias = complex_arrays(
        tr.make_arrays,
        dict(TRANSPOSE_CASES[0], data_format="channels_first"),
        integer=True,
    )
    expected = torch.nn.functional.conv_transpose2d(
        _torch(x),
        _torch(kernel.transpose(3, 2, 0, 1)),
        _torch(bias),
        stride=2,
        output_padding=1,
    ).numpy()
    y = jconv.conv2d_transpose(
        x,
        kernel,
        bias,
        strides=2,
        output_padding=1,
        data_format="channels_first",
        impl=impl_name,
    )
    np.testing.assert_array_equal(np.asarray(y), expected)


def test_real_and_complex_arguments_promote():
    """A real argument beside a complex one is promoted (`jnp.result_type`):
    the same answer as the complex cast, exactly on small integers."""
    x, kernel, bias = complex_arrays(make_arrays, CONV_CASES[0], integer=True)
    real_x = x.real.copy()
    y = jconv.conv2d(real_x, kernel, bias.real, padding="same")
    assert y.dtype == np.complex64
    expected = jconv.conv2d(
        real_x.astype(np.complex64), kernel, bias.real + 0j, padding="same"
    )
    np.testing.assert_array_equal(np.asarray(y), np.asarray(expected))
    y_real_kernel = jconv.conv2d(x, kernel.real.copy(), padding="same", impl="fft")
    assert y_real_kernel.dtype == np.complex64


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(Plan("winograd", "winograd", "fft"), marks=pytest.mark.slow),
        pytest.param(WINOGRAD, marks=pytest.mark.slow),
        pytest.param(Plan("fft", "lax", "winograd"), marks=pytest.mark.slow),
    ],
    ids=lambda plan: "-".join(plan),
)
def test_auto_plans_run_complex(plan):
    """`auto` keeps its Winograd and FFT plans for complex arrays (they are
    linear with real transform coefficients, or complex FFTs): the output,
    and the gradient of a real loss against the lax plan's, within Winograd
    F(4x4)'s bound (`test_winograd.FACTOR`, eps * max sum|products|; the
    complex sums' magnitude `2 sqrt(2) sum |x||k|`, `_tol`). Slow (a Winograd
    gradient compiles for seconds): by default `auto`'s Winograd output is
    checked by the next test, the FFT's gradients by `test_check_grads`."""
    x, kernel, _ = complex_arrays(make_arrays, CONV_CASES[0])
    spec = conv2d_spec(x.shape, kernel.shape, padding="same")
    run = jax.jit(lambda x, k, plan: run_plan(x, k, spec, None, plan), static_argnums=2)
    y = run(x, kernel, plan)
    expected = reference_conv2d(x, kernel, padding="same")
    scale = 2 * np.sqrt(2) * reference_conv2d(np.abs(x), np.abs(kernel), padding="same")
    eps = np.finfo(np.float32).eps
    assert np.max(np.abs(y - expected)) <= FACTOR[4] * eps * scale.max()

    def loss(x, k, plan):
        return jnp.sum(jnp.abs(run_plan(x, k, spec, "highest", plan)) ** 2)

    grads = jax.jit(jax.grad(loss, (0, 1)), static_argnums=2)
    # Each gradient element sums at most 9 * C_out (input) or N * H * W
    # (kernel) products 2 * y * (k or x): its scale is that many times
    # 2 * max|y| * max(|x|, |k|).
    factor = (
        2 * np.sqrt(2) * 2 * scale.max() * max(np.abs(x).max(), np.abs(kernel).max())
    )
    for g, g_lax, n in zip(
        grads(x, kernel, plan), grads(x, kernel, Plan()), (9 * 6, 2 * 7 * 7)
    ):
        assert g.dtype == np.complex64
        assert np.max(np.abs(g - g_lax)) <= 2 * FACTOR[4] * eps * n * factor


def test_auto_picks_winograd_for_complex():
    """`impl="auto"` on a layer its table gives Winograd: within Winograd's
    bound of the reference."""
    rng = np.random.default_rng(7)
    shape_x, shape_k = (2, 32, 32, 64), (3, 3, 64, 2)  # 128 tiles of 4x4
    draw = lambda s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(
        np.complex64
    )
    x, kernel = draw(shape_x), draw(shape_k)
    spec = conv2d_spec(shape_x, shape_k, padding="same")
    assert choose_plan(2, 64, shape_k, spec, np.complex64, "cpu") == WINOGRAD
    y = jconv.conv2d(x, kernel, padding="same")
    expected = reference_conv2d(x, kernel, padding="same")
    scale = 2 * np.sqrt(2) * reference_conv2d(np.abs(x), np.abs(kernel), padding="same")
    eps = np.finfo(np.float32).eps
    assert np.max(np.abs(y - expected)) <= FACTOR[4] * eps * scale.max()


@pytest.mark.parametrize(
    "order", [1, pytest.param(2, marks=pytest.mark.slow)], ids="order{}".format
)
@pytest.mark.parametrize("impl_name", ["lax", "einsum", "fft"])
def test_check_grads(impl_name, order):
    """A real loss of a complex convolution (strided, dilated, grouped),
    forward and reverse mode, complex128: JAX's reverse mode takes the
    transpose of a holomorphic linear map, with no conjugation, and
    `jconv._plan`'s custom JVP (lax) must agree. Second order (about 4x the
    time; lax's complex convolutions are three real ones each) under `slow`."""
    case = CONV_CASES[1]
    make = lambda case, **kw: make_arrays(case, c_in=2, c_out=2, **kw)
    x, kernel, _ = complex_arrays(make, dict(case, hw=(5, 5)), batch=1)
    with jax.enable_x64(True):
        args = tuple(a.astype(np.complex128) for a in (x, kernel))

        def loss(x, k):
            y = jconv.conv2d(x, k, impl=impl_name, **conv_kwargs(case))
            return jnp.sum(jnp.abs(y) ** 2)

        check_grads(loss, args, order=order, modes=("fwd", "rev"))
