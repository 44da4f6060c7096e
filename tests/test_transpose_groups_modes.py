"""`conv2d_transpose` with `groups` and `padding_mode`: the float64 scatter-add
reference (groups as blocks, padding modes folded by an index map written from
their definition), the adjoint of `conv2d` with the same groups and mode,
PyTorch live (`conv_transpose2d` with groups; the VJP of `conv2d` on
`F.pad(mode=...)` for the modes it has no transposed convolution for),
gradients, the implementations agreeing, and the refusals."""

import math

import jax
import numpy as np
import pytest
import torch
from _checks import assert_adjoint, check_grads_float64
from _data import pick, random_arrays
from _family import Family
from _grid import Grid, case_id, grid_params, pair, table, uncovered
from _tol import assert_fft_close, assert_sums_close, sum_bound
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import _pads, _transpose_out_size, reference_conv2d_transpose

import jconv

C_IN, C_OUT = 6, 6
MODES = ["zeros", "reflect", "replicate", "circular"]

AXES = {
    "groups": [1, 2, 3],
    "padding_mode": MODES,
    "kernel": [(2, 2), (3, 3), (2, 3)],
    "strides": [1, 2, (1, 2)],
    "dilation_rate": [1, (2, 1)],
    "padding": ["valid", "same", "same_lower", "full", 1, ((0, 2), (1, 0))],
    "output_padding": [None, 1, (0, 1)],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(4, 4), (5, 3)],
    "bias": [False, True],
}


def geometry(case):
    """The transposed output size and the pads of the `conv2d` it is the
    adjoint of, by the reference's own rules (not jconv's)."""
    strides, dilation = pair(case["strides"]), pair(case["dilation_rate"])
    op = case["output_padding"]
    ops = (None, None) if op is None else pair(op)
    padding = case["padding"]
    explicit = None if isinstance(padding, str) else _pads(padding, *[None] * 4)
    out_hw = tuple(
        _transpose_out_size(
            size, k, s, d, padding if explicit is None else explicit[axis], a
        )
        for axis, (size, k, s, d, a) in enumerate(
            zip(case["hw"], case["kernel"], strides, dilation, ops)
        )
    )
    pads = explicit or _pads(padding, out_hw, case["kernel"], strides, dilation)
    return out_hw, pads


def valid(case) -> bool:
    """Accepted by jconv: output padding below the stride, a non-empty output
    that the forward convolution maps back to the input's size (not the
    "same" + even span + zero output padding combination), and pads the mode
    can fill on the output (reflect at most size - 1, circular at most size;
    the refusals are tested below)."""
    strides = pair(case["strides"])
    op = case["output_padding"]
    if op is not None and any(a >= s for a, s in zip(pair(op), strides)):
        return False
    out_hw, pads = geometry(case)
    dilation = pair(case["dilation_rate"])
    for out, size, (lo, hi), k, s, d in zip(
        out_hw, case["hw"], pads, case["kernel"], strides, dilation
    ):
        span = (k - 1) * d + 1
        if out < 1 or out + lo + hi < span or (out + lo + hi - span) // s + 1 != size:
            return False
        limit = {"reflect": out - 1, "circular": out}.get(case["padding_mode"])
        if limit is not None and max(lo, hi) > limit:
            return False
    return True


GRID = Grid(AXES, valid)


def make_arrays(case, *, integer=False, seed=0, batch=2):
    k_shape = (*case["kernel"], C_OUT // case["groups"], C_IN)
    return random_arrays(
        case, C_IN, k_shape, C_OUT, integer=integer, seed=seed, batch=batch
    )


def kwargs(case):
    keys = ("strides", "padding", "output_padding", "dilation_rate", "data_format")
    return pick(case, (*keys, "groups", "padding_mode"))


FAMILY = Family(jconv.conv2d_transpose, reference_conv2d_transpose, make_arrays, kwargs)


def conv_kwargs(case):
    """The `conv2d` that `conv2d_transpose(**kwargs(case))` is the adjoint of."""
    keys = ("strides", "padding", "dilation_rate", "data_format", "groups")
    return pick(case, (*keys, "padding_mode"))


def folds(case) -> int:
    """At most how many of the forward convolution's padded pixels are copies
    of one pixel (itself included): the number of sums the fold adds into one
    output pixel. Per axis at most 1 + top + bottom (replicate's edge)."""
    if case["padding_mode"] == "zeros":
        return 1
    _, pads = geometry(case)
    return int(np.prod([1 + lo + hi for lo, hi in pads]))


def terms(case, kernel, bias=None) -> int:
    """Products per output sum: `KH*KW*C_in/groups` per padded pixel, times
    `folds`, plus the bias."""
    kh, kw, _, c_in = kernel.shape
    return kh * kw * (c_in // case["groups"]) * folds(case) + (bias is not None)


def assert_close(actual, expected, case, x, kernel, bias=None, dtype=np.float32):
    """Two evaluations of the transposed convolution within `2 * gamma_n *
    sum|products|` (`_tol.sum_bound`), `n = terms(case)`; the magnitude is the
    reference on absolute values."""
    absolute = [None if a is None else np.abs(a) for a in (x, kernel, bias)]
    magnitude = reference_conv2d_transpose(*absolute, **kwargs(case))
    assert_sums_close(actual, expected, magnitude, terms(case, kernel, bias), dtype)


def plane(case) -> int:
    """An upper bound of the FFT's transform pixels (`_tol.fft_bound`): the
    stretched input padded to the forward convolution's padded input and by
    a span either side is at most `H * stride + 4 * span + 4` a side (pads
    at most `max(span - 1, 2)` in this grid); the transform rounds it up to
    a 7-smooth length, less than twice that."""
    d = pair(case["dilation_rate"])
    return int(
        np.prod(
            [
                2 * (size * s + 4 * ((k - 1) * dd + 1) + 4)
                for size, s, k, dd in zip(
                    case["hw"], pair(case["strides"]), case["kernel"], d
                )
            ]
        )
    )


def check_reference(case, impl):
    """float32 and float64 against the float64 scatter-add loop."""
    x, kernel, bias = make_arrays(case)
    expected = reference_conv2d_transpose(x, kernel, bias, **kwargs(case))
    y = jconv.conv2d_transpose(
        x, kernel, bias, precision="highest", impl=impl, **kwargs(case)
    )
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    assert y.shape == jconv.conv_transpose_output_shape(
        x.shape, kernel.shape, **pick(case, kwargs(case).keys() - {"padding_mode"})
    )
    assert_close(y, expected, case, x, kernel, bias)
    with jax.enable_x64(True):
        as64 = lambda a: None if a is None else a.astype(np.float64)
        y64 = jconv.conv2d_transpose(
            as64(x), as64(kernel), as64(bias), impl=impl, **kwargs(case)
        )
        assert y64.dtype == np.float64
        assert_close(y64, expected, case, x, kernel, bias, dtype=np.float64)


DEFAULT_CASES = GRID.sample(8, seed=9)
test_default_grid_covers_every_value, test_matches_reference = GRID.reference_tests(
    check_reference, DEFAULT_CASES, GRID.sample(300, seed=4)
)
FFT_CASES = GRID.sample(4, seed=5)
SLOW_FFT_CASES = GRID.sample(150, seed=6)


def test_fft_grid_covers_groups_and_modes():
    keys = ("groups", "padding_mode")
    assert uncovered(FFT_CASES, {k: AXES[k] for k in keys}) == {}


@pytest.mark.parametrize("case", grid_params(FFT_CASES, SLOW_FFT_CASES))
def test_fft_matches_reference(case):
    """`impl="fft"` within the FFT's bound (`_tol.fft_bound`) of the
    reference: the direct convolution's bound, summed over the `folds`
    planes added into one pixel, plus the fold's own sums."""
    x, kernel, bias = make_arrays(case)
    expected = reference_conv2d_transpose(x, kernel, bias, **kwargs(case))
    y = jconv.conv2d_transpose(x, kernel, bias, impl="fft", **kwargs(case))
    absolute = [None if a is None else np.abs(a) for a in (x, kernel, bias)]
    magnitude = reference_conv2d_transpose(*absolute, **kwargs(case))
    assert_fft_close(
        y,
        expected,
        x,
        kernel,
        plane=plane(case),
        channels=C_IN // case["groups"] * folds(case),
        extra=sum_bound(magnitude, folds(case) + 1),
    )


def test_auto_matches_reference():
    """`impl="auto"` runs the same spec (at "highest", the direct sums)."""
    case = next(c for c in DEFAULT_CASES if c["padding_mode"] != "zeros")
    x, kernel, bias = make_arrays(case)
    expected = reference_conv2d_transpose(x, kernel, bias, **kwargs(case))
    y = jconv.conv2d_transpose(x, kernel, bias, precision="highest", **kwargs(case))
    assert_close(y, expected, case, x, kernel, bias)


# --- The adjoint of conv2d -------------------------------------------------

ADJOINT_CASES = GRID.sample(7, seed=90)
SLOW_ADJOINT_CASES = GRID.sample(150, seed=8)


def test_adjoint_grid_covers_groups_modes_and_rules():
    keys = ("groups", "padding_mode", "padding", "strides")
    assert uncovered(ADJOINT_CASES, {k: AXES[k] for k in keys}) == {}


@pytest.mark.parametrize("case", grid_params(ADJOINT_CASES, SLOW_ADJOINT_CASES))
def test_is_the_adjoint_of_conv2d(case, impl):
    """`conv2d_transpose(y)` is the VJP of `x -> conv2d(x, groups=G,
    padding_mode=m)` at `y`, and `<conv2d(x), y> == <x, conv2d_transpose(y)>`,
    in float64."""
    y, kernel, _ = make_arrays(case, seed=5)
    kw = kwargs(case)
    x_shape = jax.eval_shape(lambda y: jconv.conv2d_transpose(y, kernel, **kw), y).shape
    close = lambda got, expected: assert_close(
        got, expected, case, y, kernel, dtype=np.float64
    )
    # Both inner products sum max(x.size, y.size) products of sums of `terms`
    # products (the folded sums are the longer ones).
    n_terms = terms(case, kernel) + max(math.prod(x_shape), y.size)
    assert_adjoint(y, kernel, x_shape, impl, kw, conv_kwargs(case), close, n_terms)


def test_hand_worked_fold():
    """A 1x1 kernel of ones, pads (1, 1) on the width: the adjoint of padding
    a 3-pixel row to 5. Input columns 0..4 land on padded columns -1..3; the
    fold adds border columns -1 and 3 onto the columns they copy (reflect:
    both copy 1; replicate: 0 and 2; circular: 2 and 0)."""
    row = np.array([10.0, 20.0, 30.0, 40.0, 50.0], np.float32)
    y = row[None, :, None]  # (1, 5, 1): H=1, W=5, one channel
    one = np.ones((1, 1, 1, 1), np.float32)
    expected = {
        "zeros": [20, 30, 40],
        "reflect": [20, 30 + 10 + 50, 40],  # column -1 and 3 both copy 1
        "replicate": [10 + 20, 30, 40 + 50],
        "circular": [20 + 50, 30, 40 + 10],
    }
    for mode, want in expected.items():
        got = jconv.conv2d_transpose(
            y, one, padding=((0, 0), (1, 1)), padding_mode=mode
        )
        np.testing.assert_array_equal(got[0, :, 0], want)


# --- PyTorch, live -----------------------------------------------------------

# Explicit symmetric pads (PyTorch's `padding`), groups, strides, dilation,
# output padding (PyTorch allows it below the stride or the dilation).
TORCH_CASES = table(
    AXES,
    # groups, mode, kernel, strides, dilation, padding, output_padding,
    # data_format, hw, bias
    (2, "zeros", (3, 3), 2, 1, 1, 1, "channels_first", (4, 4), True),
    (
        3,
        "zeros",
        (2, 3),
        (1, 2),
        (2, 1),
        (1, 0),
        (0, 1),
        "channels_last",
        (5, 3),
        False,
    ),
    (1, "zeros", (3, 3), 1, 1, 0, None, "channels_first", (5, 3), True),
    (6, "zeros", (3, 2), 3, 1, 2, 2, "channels_last", (4, 4), True),
)


def to_torch(a, data_format):
    a = np.asarray(a, np.float64)
    if data_format == "channels_last":
        a = a.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(a))


def from_torch(t, data_format):
    a = t.detach().numpy()
    return a.transpose(0, 2, 3, 1) if data_format == "channels_last" else a


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_matches_torch_conv_transpose2d(case, impl):
    """Exact on small integers: PyTorch's weight `(C_in, C_out // G, KH, KW)`
    is our kernel `.transpose(3, 2, 0, 1)`."""
    x, kernel, bias = make_arrays(case, integer=True, seed=9)
    expected = torch.nn.functional.conv_transpose2d(
        to_torch(x, case["data_format"]),
        torch.from_numpy(kernel.transpose(3, 2, 0, 1).astype(np.float64)),
        None if bias is None else torch.from_numpy(bias.astype(np.float64)),
        stride=pair(case["strides"]),
        padding=pair(case["padding"]),
        output_padding=pair(case["output_padding"] or 0),
        groups=case["groups"],
        dilation=pair(case["dilation_rate"]),
    )
    y = jconv.conv2d_transpose(x, kernel, bias, impl=impl, **kwargs(case))
    np.testing.assert_array_equal(y, from_torch(expected, case["data_format"]))


TORCH_MODE_CASES = GRID.sample(4, seed=10) + [
    dict(c, padding_mode=m) for c, m in zip(TORCH_CASES[:3], MODES[1:])
]


def test_torch_mode_cases_cover_every_mode_and_group():
    keys = ("padding_mode", "groups")
    assert uncovered(TORCH_MODE_CASES, {k: AXES[k] for k in keys}) == {}


@pytest.mark.parametrize("case", TORCH_MODE_CASES, ids=case_id)
def test_matches_the_vjp_of_torch_conv2d_on_padded_input(case):
    """PyTorch has no padding modes in `conv_transpose2d`; the adjoint of its
    `conv2d(F.pad(x, mode=m))`, by torch autograd in float64, is ours. Exact
    on small integers (pads computed by the reference's rule)."""
    assert valid(case)
    y, kernel, bias = make_arrays(case, integer=True, seed=11)
    out_hw, ((top, bottom), (left, right)) = geometry(case)
    n, c_out = y.shape[0], C_OUT
    x = torch.zeros((n, c_out, *out_hw), dtype=torch.float64, requires_grad=True)
    mode = case["padding_mode"]
    widths = (left, right, top, bottom)
    padded = (
        torch.nn.functional.pad(x, widths, mode=mode)
        if mode != "zeros"
        else torch.nn.functional.pad(x, widths)
    )
    forward = torch.nn.functional.conv2d(
        padded,
        torch.from_numpy(kernel.transpose(3, 2, 0, 1).astype(np.float64)),
        stride=pair(case["strides"]),
        dilation=pair(case["dilation_rate"]),
        groups=case["groups"],
    )
    y_torch = to_torch(y, case["data_format"])
    assert forward.shape == y_torch.shape
    (grad,) = torch.autograd.grad(forward, x, grad_outputs=y_torch)
    expected = from_torch(grad, case["data_format"])
    if bias is not None:
        shape = (1, -1, 1, 1) if case["data_format"] == "channels_first" else (-1,)
        expected = expected + bias.reshape(shape)
    got = jconv.conv2d_transpose(y, kernel, bias, **kwargs(case))
    np.testing.assert_array_equal(got, expected)


# --- Gradients, transforms, implementations agree -----------------------------

GRAD_CASES = table(
    AXES,
    (2, "reflect", (3, 2), 2, 1, "same", 1, "channels_last", (3, 3), True),
    (2, "circular", (2, 3), (1, 2), (2, 1), ((0, 2), (1, 0)), None,
     "channels_first", (3, 2), True),
)  # fmt: skip


@pytest.mark.parametrize(
    "case,impl",
    [(GRAD_CASES[0], "lax"), (GRAD_CASES[1], "einsum")],
    ids=["lax", "einsum"],
)
def test_check_grads(case, impl):
    assert valid(case)
    arrays = random_arrays(case, 2, (*case["kernel"], 1, 2), 2, seed=12, batch=1)
    f = lambda x, k, b: jconv.conv2d_transpose(x, k, b, impl=impl, **kwargs(case))
    check_grads_float64(f, arrays)


def test_jit_vmap_and_unbatched(impl):
    FAMILY.assert_batch_consistent(GRAD_CASES[0], impl, seed=13)


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(
        st.one_of(
            st.sampled_from(["valid", "same", "same_lower", "full"]),
            st.tuples(
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
                st.tuples(st.integers(0, 2), st.integers(0, 2)),
            ),
        )
    )
    case = dict(
        groups=groups,
        padding_mode=draw(st.sampled_from(MODES)),
        kernel=(kh, kw),
        strides=strides,
        dilation_rate=draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
        padding=padding,
        output_padding=draw(
            st.tuples(st.integers(0, strides[0] - 1), st.integers(0, strides[1] - 1))
        ),
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])),
        hw=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
    )
    assume(valid(case))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    h, w = case["hw"]
    spatial = (c_in, h, w) if case["data_format"] == "channels_first" else (h, w, c_in)
    batched = draw(st.booleans())
    x = rng.standard_normal((1, *spatial) if batched else spatial)
    kernel = rng.standard_normal((kh, kw, c_out // groups, c_in))
    return case, x, kernel


@settings(max_examples=6, deadline=None)
@given(configs())
def test_lax_einsum_and_fft_agree(config):
    """Any valid configuration, float64: lax and einsum within the direct
    sums' bound, fft within its own of lax."""
    case, x, kernel = config
    kw = kwargs(case)
    c_in = kernel.shape[3]
    with jax.enable_x64(True):
        y_lax, y_einsum, y_fft = (
            jconv.conv2d_transpose(x, kernel, impl=impl, **kw)
            for impl in ("lax", "einsum", "fft")
        )
    assert_close(y_lax, y_einsum, case, x, kernel, dtype=np.float64)
    magnitude = reference_conv2d_transpose(np.abs(x), np.abs(kernel), **kw)
    assert_fft_close(
        y_fft,
        y_lax,
        x,
        kernel,
        plane=plane(case),
        channels=c_in // case["groups"] * folds(case),
        dtype=np.float64,
        # lax's own error, and the rounding of the fft's fold sums.
        extra=sum_bound(magnitude, terms(case, kernel), np.float64)
        + sum_bound(magnitude, folds(case) + 1, np.float64),
    )


# --- Refusals ------------------------------------------------------------------

XG = np.zeros((1, 4, 4, 6), np.float32)
KG = np.zeros((3, 3, 2, 6), np.float32)  # conv2d: C_out -> 6 channels

ERROR_CASES = [
    (
        "groups not dividing C_in",
        (XG, KG),
        {"groups": 4},
        ValueError,
        r"`groups` \(=4\) must divide the input channels C_in \(=6\) of `x` "
        r"\(shape \(1, 4, 4, 6\)\)",
    ),
    ("groups zero", (XG, KG), {"groups": 0}, ValueError, r"`groups` \(=0\) must be"),
    ("groups float", (XG, KG), {"groups": 2.0}, TypeError, r"`groups` \(=2.0\)"),
    (
        "kernel axis 3 with groups",
        (XG, np.zeros((3, 3, 2, 3), np.float32)),
        {"groups": 3},
        ValueError,
        r"kernel axis 3 must be C_in \(=6\), got 3",
    ),
    (
        "kernel rank with groups",
        (XG, np.zeros((3, 3, 6), np.float32)),
        {"groups": 3},
        ValueError,
        r"`kernel` must have rank 4 \(KH, KW, C_out // groups, C_in\)",
    ),
    (
        "bias is C_out = groups * kernel axis 2",
        (XG, KG, np.zeros((2,), np.float32)),
        {"groups": 3},
        ValueError,
        r"`bias` must have shape \(C_out,\) = \(6,\)",
    ),
    (
        "padding_mode unknown",
        (XG, KG),
        {"padding_mode": "mirror"},
        ValueError,
        r"`padding_mode` \(='mirror'\) must be one of \('zeros', 'reflect'",
    ),
    (
        "reflect wider than the output",
        # A 2x2 input, 5x5 kernel, pads 2: output (2 - 1) + 5 - 4 = 2 a side,
        # which reflect pads by at most 1.
        (np.zeros((1, 2, 2, 6), np.float32), np.zeros((5, 5, 2, 6), np.float32)),
        {"padding": 2, "padding_mode": "reflect"},
        ValueError,
        r"`padding_mode` \(='reflect'\) cannot pad an axis of 2 pixels by 2: at "
        r"most size - 1 .* the transposed convolution's output \(the input of "
        r"the `conv2d` it is the adjoint of\)",
    ),
]


@pytest.mark.parametrize(
    "args,kwargs,exc,pattern",
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_bad_input(args, kwargs, exc, pattern, impl):
    with pytest.raises(exc, match=pattern):
        jconv.conv2d_transpose(*args, impl=impl, **kwargs)


def test_mode_limits_are_inclusive():
    """reflect pads at most size - 1 of the output, circular and replicate
    any width: a 1x1 input and 3x3 kernel give a 1x1 output with pads 1 a
    side, or 2 above and none below; every pad of a 1-pixel output copies
    that pixel, so the adjoint adds all 9 products onto it."""
    x = np.ones((1, 1, 1, 1), np.float32)
    k = np.ones((3, 3, 1, 1), np.float32)
    y = jconv.conv2d_transpose(x, k, padding=1, padding_mode="circular")
    np.testing.assert_array_equal(y, np.full((1, 1, 1, 1), 9.0))
    y = jconv.conv2d_transpose(x, k, padding=((2, 0), (1, 1)), padding_mode="replicate")
    np.testing.assert_array_equal(y, np.full((1, 1, 1, 1), 9.0))
    with pytest.raises(ValueError, match=r"cannot pad an axis of 1 pixels by 1"):
        jconv.conv2d_transpose(x, k, padding=1, padding_mode="reflect")
    y = jconv.conv2d_transpose(x, k, padding=((2, 0), (1, 1)), padding_mode="circular")
    np.testing.assert_array_equal(y, np.full((1, 1, 1, 1), 9.0))


def test_output_shape_takes_groups():
    assert jconv.conv_transpose_output_shape(
        (2, 6, 4, 4), (3, 3, 2, 6), strides=2, groups=3, data_format="channels_first"
    ) == (2, 6, 9, 9)
    with pytest.raises(ValueError, match=r"`groups` \(=4\) must divide"):
        jconv.conv_transpose_output_shape(XG.shape, KG.shape, groups=4)


def test_grid_geometry_agrees_with_jconv():
    """The grid's geometry is the reference's own rule; it agrees with
    jconv's on every default case (a disagreement would show here first)."""
    for case in DEFAULT_CASES:
        out_hw, pads = geometry(case)
        got = jconv.resolve_transpose_padding(
            case["hw"],
            case["kernel"],
            case["strides"],
            case["dilation_rate"],
            case["padding"],
            case["output_padding"],
        )
        assert got == (out_hw, tuple(tuple(p) for p in pads))
