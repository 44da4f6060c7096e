"""Every spatial rank: `jconv.conv`, `conv_transpose`, `depthwise_conv` and
`separable_conv` (and their `1d`/`3d` aliases) on 1-D and 3-D inputs, and on
2-D ones where a rule is new (`padding="causal"`, `input_dilation`), against
the float64 loop references of `reference.py`, themselves checked first on
hand-worked 1-D and 3-D cases; the transposed convolution's adjoint property,
derivatives, `input_dilation` against `lax.conv_general_dilated`, the causal
rule, the refusals, and a hypothesis fuzz over ranks. Keras, live:
test_ranks_keras.py.

Bounds (`_tol.py`): an output of a rank-r convolution sums `prod(K) *
C_in / groups` products (`prod(K)` depthwise; a transposed convolution with a
padding mode adds up to `prod(1 + low + high)` folded sums into one pixel; a
separable one `prod(K) + C_in * M`, as test_separable.py derives), plus one
for the bias. Two evaluations differ by at most `2 gamma_n` times the same
convolution of the absolute values (`assert_sums_close`). `_tol`'s own
`conv_terms` reads a 2-D kernel, so the counts are taken here. The FFT has
its own bound (`_tol.fft_bound`: the transform's pixels counted over all r
axes, the kernel's norm over all its taps). Exact equality only on
small-integer data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _grid import Grid, case_id, table, uncovered
from _tol import assert_fft_close, assert_sums_close, fft_bound, sum_bound
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads
from reference import (
    _pads,
    _transpose_out_size,
    reference_conv,
    reference_conv_transpose,
    reference_depthwise_conv,
    reference_separable_conv,
)

import jconv

CL, CF = "channels_last", "channels_first"
MODES = ["zeros", "reflect", "replicate", "circular"]
IMPLS = ["lax", "einsum", "fft", "onednn", "auto"]
ONEDNN = jconv.onednn_status().available
# What an explicit impl="onednn" says where oneDNN is not loaded.
ONEDNN_REFUSAL = r"impl='onednn' cannot run here"
C_IN, C_OUT = 4, 6  # conv and transposed: groups 1 or 2 divide both
DW_C_IN = 3  # depthwise and separable
SPATIAL = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


@pytest.fixture(params=IMPLS)
def every_impl(request):
    """Every implementation for every rank: the direct sums, the FFT, oneDNN
    (where `jconv.onednn_status()` says it is loaded; elsewhere an explicit
    request is refused with a ValueError) and `"auto"`."""
    return request.param


def per_rank(value, rank: int):
    """A grid value written for three axes, cut to `rank` axes: an int, a
    string or None stays; a sequence keeps its first `rank` entries (so a
    1-D case passes one-entry sequences)."""
    if value is None or isinstance(value, int | str):
        return value
    return tuple(value[:rank])


def per_axis(value, rank: int) -> tuple:
    """`per_rank`, then an int as `rank` ints."""
    value = per_rank(value, rank)
    return (value,) * rank if isinstance(value, int) else tuple(value)


def span(k: int, d: int) -> int:
    return (k - 1) * d + 1


def draw(rng, shape, integer: bool) -> np.ndarray:
    if integer:  # every product and partial sum exact in float32
        return rng.integers(-3, 4, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def layout(spatial, channels, data_format, batch):
    """An array shape: `(N, *S, C)` or `(N, C, *S)`, without N if `batch` is
    None."""
    shape = (channels, *spatial) if data_format == CF else (*spatial, channels)
    return shape if batch is None else (batch, *shape)


def as64(a):
    return None if a is None else np.asarray(a).astype(np.float64)


def absolute(*arrays):
    return [None if a is None else np.abs(np.asarray(a, np.float64)) for a in arrays]


# --- Families: a convolution of any rank, its reference, its grid's data -------


class Family(NamedTuple):
    """One public convolution of any rank: `fn` (e.g. `jconv.conv`), its
    rank aliases, the float64 `reference`, and the case keys that are its
    keyword arguments."""

    name: str
    fn: Callable
    aliases: dict
    reference: Callable
    keys: tuple

    def kwargs(self, case) -> dict:
        return {k: per_rank(case[k], case["rank"]) for k in self.keys if k in case}

    def kernel_shapes(self, case) -> list[tuple]:
        r, k = case["rank"], per_axis(case["kernel"], case["rank"])
        if self.name == "conv":
            return [(*k, C_IN // case["groups"], C_OUT)]
        if self.name == "transpose":
            return [(*k, C_OUT // case["groups"], C_IN)]
        m = case["depth_multiplier"]
        if self.name == "depthwise":
            return [(*k, DW_C_IN, m)]
        return [(*k, DW_C_IN, m), ((1,) * r + (DW_C_IN * m, C_OUT))]

    def channels(self, case) -> tuple[int, int]:
        """Input and output channels."""
        if self.name in ("conv", "transpose"):
            return C_IN, C_OUT
        if self.name == "depthwise":
            return DW_C_IN, DW_C_IN * case["depth_multiplier"]
        return DW_C_IN, C_OUT

    def arrays(self, case, *, integer=False, seed=0, batch="case"):
        """`x`, the kernels and the bias (None unless `case["bias"]`), drawn
        in that order; `batch` None for an unbatched `x`."""
        rng = np.random.default_rng(seed)
        batch = case.get("batch", 2) if batch == "case" else batch
        c_in, c_out = self.channels(case)
        spatial = per_axis(case["size"], case["rank"])
        x = draw(rng, layout(spatial, c_in, case["data_format"], batch), integer)
        kernels = [draw(rng, s, integer) for s in self.kernel_shapes(case)]
        bias = draw(rng, (c_out,), integer)
        return x, kernels, (bias if case.get("bias") else None)

    def geometry(self, case):
        """By the reference's rules (not jconv's): the stretch of the input
        (input dilation, or a transposed convolution's strides), the pads
        of the forward convolution (on the stretched input, or on the
        transposed convolution's output), and how many of its padded pixels
        copy one pixel at most (`folds`: 1 + low + high per axis with a
        padding mode, which a transposed convolution adds back)."""
        r = case["rank"]
        k = per_axis(case["kernel"], r)
        s = per_axis(case["strides"], r)
        d = per_axis(case["dilation_rate"], r)
        padding = per_rank(case["padding"], r)
        size = per_axis(case["size"], r)
        if self.name == "transpose":
            _, pads = transpose_geometry(case)
            stretch = s
        else:
            stretch = per_axis(case.get("input_dilation", 1), r)
            stretched = [(n - 1) * a + 1 for n, a in zip(size, stretch)]
            pads = _pads(padding, stretched, k, s, d)
        folds = 1
        if case.get("padding_mode", "zeros") != "zeros":
            folds = math.prod(1 + lo + hi for lo, hi in pads)
        return stretch, pads, folds

    def terms(self, case, kernels, bias) -> int:
        """Products per output sum (the module docstring)."""
        taps = math.prod(kernels[0].shape[:-2])
        groups = case.get("groups", 1)
        n = {
            "conv": taps * C_IN // groups,
            "transpose": taps * C_IN // groups * self.geometry(case)[2],
            "depthwise": taps,
            "separable": taps + kernels[-1].shape[-2],
        }[self.name]
        return n + (bias is not None)

    def call(self, x, kernels, bias, *, alias=False, **kwargs):
        fn = self.aliases[kernels[0].ndim - 2] if alias else self.fn
        return fn(x, *kernels, bias, **kwargs)

    def reference_of(self, x, kernels, bias, kw):
        return self.reference(x, *kernels, bias, **kw)


def transpose_geometry(case):
    """The transposed output's spatial size and the pads of the forward
    convolution it is the adjoint of, by the reference's rules."""
    r = case["rank"]
    k, s, d = (per_axis(case[key], r) for key in ("kernel", "strides", "dilation_rate"))
    op = per_rank(case["output_padding"], r)
    ops = (None,) * r if op is None else per_axis(op, r)
    padding = per_rank(case["padding"], r)
    explicit = None if isinstance(padding, str) else _pads(padding, None, k, s, d)
    out = tuple(
        _transpose_out_size(n, kk, ss, dd, padding if explicit is None else p, a)
        for n, kk, ss, dd, a, p in zip(
            per_axis(case["size"], r), k, s, d, ops, explicit or [None] * r
        )
    )
    return out, explicit or _pads(padding, out, k, s, d)


CONV_KEYS = (
    "strides",
    "padding",
    "padding_mode",
    "dilation_rate",
    "input_dilation",
    "groups",
    "data_format",
)
TRANSPOSE_KEYS = (
    "strides",
    "padding",
    "output_padding",
    "padding_mode",
    "dilation_rate",
    "groups",
    "data_format",
)
DEPTHWISE_KEYS = (
    "strides",
    "padding",
    "padding_mode",
    "dilation_rate",
    "input_dilation",
    "data_format",
)

CONV = Family(
    "conv",
    jconv.conv,
    {1: jconv.conv1d, 2: jconv.conv2d, 3: jconv.conv3d},
    reference_conv,
    CONV_KEYS,
)
TRANSPOSE = Family(
    "transpose",
    jconv.conv_transpose,
    {
        1: jconv.conv1d_transpose,
        2: jconv.conv2d_transpose,
        3: jconv.conv3d_transpose,
    },
    reference_conv_transpose,
    TRANSPOSE_KEYS,
)
DEPTHWISE = Family(
    "depthwise",
    jconv.depthwise_conv,
    {
        1: jconv.depthwise_conv1d,
        2: jconv.depthwise_conv2d,
        3: jconv.depthwise_conv3d,
    },
    reference_depthwise_conv,
    DEPTHWISE_KEYS,
)
SEPARABLE = Family(
    "separable",
    jconv.separable_conv,
    {
        1: jconv.separable_conv1d,
        2: jconv.separable_conv2d,
        3: jconv.separable_conv3d,
    },
    reference_separable_conv,
    DEPTHWISE_KEYS,
)
FAMILIES = {f.name: f for f in (CONV, TRANSPOSE, DEPTHWISE, SEPARABLE)}


def plane(case, stretch, pads) -> int:
    """An upper bound of the FFT's transform pixels (`_tol.fft_bound`): per
    axis twice the stretched input, its pads and four kernel spans (the
    transform rounds the padded input up to a 7-smooth length, never 2x
    more; a transposed convolution's pads are of its output)."""
    r = case["rank"]
    k = per_axis(case["kernel"], r)
    d = per_axis(case["dilation_rate"], r)
    sizes = per_axis(case["size"], r)
    return math.prod(
        2 * (n * a + 4 * span(kk, dd) + 4 + lo + hi)
        for n, a, kk, dd, (lo, hi) in zip(sizes, stretch, k, d, pads)
    )


def taps_first(kernel):
    """`kernel` `(*K, C_a, C_b)` as `(prod(K), 1, C_a, C_b)`: `fft_bound`
    takes the norm over the first two axes, the taps of any rank here."""
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, 1, *kernel.shape[-2:])


def assert_close(
    family, case, y, x, kernels, bias, *, impl, dtype=np.float32, references=None
):
    """`y`, `family` with `impl` on `case`'s arrays, against the float64
    reference: the FFT within its bound, every other implementation within
    `2 gamma_n sum|products|` (the module docstring). `references`: the
    reference and its magnitude, if already computed (`references_of`)."""
    kw = family.kwargs(case)
    expected, magnitude = references or references_of(family, x, kernels, bias, kw)
    assert y.shape == expected.shape, (y.shape, expected.shape)
    if impl != "fft":
        terms = family.terms(case, kernels, bias)
        assert_sums_close(y, expected, magnitude, terms, dtype)
        return
    stretch, pads, folds = family.geometry(case)
    area = plane(case, stretch, pads)
    if family.name == "separable":
        assert_separable_fft_close(y, expected, x, kernels, kw, area, dtype)
        return
    groups = case.get("groups", 1)
    channels = {"conv": C_IN // groups, "transpose": C_IN // groups * folds}
    extra = sum_bound(magnitude, folds + 1, dtype) if family.name == "transpose" else 0
    assert_fft_close(
        y,
        expected,
        x,
        taps_first(kernels[0]),
        plane=area,
        channels=channels.get(family.name, 1),
        dtype=dtype,
        extra=extra,
    )


def references_of(family, x, kernels, bias, kw):
    """The float64 reference, and the same on absolute values (the
    magnitude of the bounds)."""
    expected = family.reference_of(x, kernels, bias, kw)
    abs_x, *abs_kernels, abs_bias = absolute(x, *kernels, bias)
    return expected, family.reference_of(abs_x, abs_kernels, abs_bias, kw)


def assert_separable_fft_close(y, expected, x, kernels, kw, area, dtype):
    """test_separable.py's FFT bound at any rank: the depthwise step's FFT
    bound and rounding, carried through the pointwise sums, plus the
    pointwise step's own FFT bound on the intermediate image."""
    depthwise, pointwise = kernels
    intermediate = reference_depthwise_conv(x, depthwise, **kw)
    u = np.finfo(dtype).eps / 2
    step1 = fft_bound(x, taps_first(depthwise), plane=area, channels=1, dtype=dtype)
    step1 += 2 * u * np.abs(intermediate).max(initial=0.0)
    pk = taps_first(pointwise)
    carried = step1 * np.abs(pk).sum(axis=(0, 1, 2)).max()
    assert_fft_close(
        y,
        expected,
        np.abs(intermediate) + step1,
        pk,
        plane=area,
        channels=pk.shape[2],
        dtype=dtype,
        extra=carried,
    )


def check_family(family, case, impl, *, float64=True):
    """`family` with `impl` at precision "highest" on `case`'s data against
    the reference, in float32 and (with `float64`, but oneDNN: float32 only)
    float64, and the rank's alias to the bit like the generic function; an
    explicit "onednn" where it is not loaded is refused."""
    x, kernels, bias = family.arrays(case)
    kw = family.kwargs(case)
    run = functools.partial(family.call, impl=impl, precision="highest", **kw)
    if impl == "onednn" and not ONEDNN:
        with pytest.raises(ValueError, match=ONEDNN_REFUSAL):
            run(x, kernels, bias)
        return
    y = run(x, kernels, bias)
    assert y.dtype == np.float32
    references = references_of(family, x, kernels, bias, kw)
    close = functools.partial(
        assert_close, family, case, x=x, kernels=kernels, bias=bias, impl=impl
    )
    close(y, references=references)
    np.testing.assert_array_equal(run(x, kernels, bias, alias=True), y)
    if float64 and impl != "onednn":
        with jax.enable_x64(True):
            y64 = run(as64(x), [as64(k) for k in kernels], as64(bias))
            assert y64.dtype == np.float64
            close(y64, dtype=np.float64, references=references)


# --- The reference itself, on hand-worked cases --------------------------------


def row(values):
    """A 1-D single-channel batch of one: `(1, W, 1)`."""
    return np.asarray(values, np.float64)[None, :, None]


def taps(values):
    """A 1-D single-channel kernel `(K, 1, 1)`."""
    return np.asarray(values, np.float64)[:, None, None]


def flat(y):
    return np.asarray(y)[0, :, 0].tolist()


def test_reference_moving_sum_1d():
    """A 3-tap kernel of ones is a moving sum; each padding rule worked out."""
    x, ones = row([1, 2, 3, 4, 5]), taps([1, 1, 1])
    expect = {
        "valid": [6, 9, 12],
        "same": [3, 6, 9, 12, 9],
        "full": [1, 3, 6, 9, 12, 9, 5],
        "causal": [1, 3, 6, 9, 12],  # y[t] = x[t-2] + x[t-1] + x[t]
        ((0, 2),): [6, 9, 12, 9, 5],
    }
    for padding, want in expect.items():
        assert flat(reference_conv(x, ones, padding=padding)) == want, padding
    assert flat(reference_conv(x, ones, padding="same", strides=2)) == [3, 9, 9]


def test_reference_causal_filter_1d():
    """Dilated causal taps `(1, 10)` read `x[t - 2]` and `x[t]`: `y[t] =
    x[t-2] + 10 x[t]`, nothing after `t`; with stride 2, every other output,
    ceil(5 / 2) of them."""
    x, k = row([1, 2, 3, 4, 5]), taps([1, 10])
    y = reference_conv(x, k, padding="causal", dilation_rate=2)
    assert flat(y) == [10, 20, 31, 42, 53]
    y = reference_conv(x, k, padding="causal", dilation_rate=2, strides=2)
    assert flat(y) == [10, 31, 53]


def test_reference_input_dilation_1d():
    """[1, 2, 3] stretched by 2 is [1, 0, 2, 0, 3]; a 2-tap sum of it, and
    "same" resolved on the stretched length (5, not 3)."""
    x, k = row([1, 2, 3]), taps([1, 1])
    assert flat(reference_conv(x, taps([1]), input_dilation=2)) == [1, 0, 2, 0, 3]
    assert flat(reference_conv(x, k, input_dilation=2)) == [1, 2, 2, 3]
    same = reference_conv(x, k, input_dilation=2, padding="same")
    assert flat(same) == [1, 2, 2, 3, 3]


def test_reference_padding_modes_1d():
    """A one-tap kernel reads the padded row back: reflect, replicate,
    circular, and circular wider than the row (wrapping more than once, as
    `numpy.pad(mode="wrap")`)."""
    x, one = row([1, 2, 3]), taps([1])
    read = lambda mode, pads: flat(
        reference_conv(x, one, padding=(pads,), padding_mode=mode)
    )
    assert read("reflect", (2, 2)) == [3, 2, 1, 2, 3, 2, 1]
    assert read("replicate", (2, 2)) == [1, 1, 1, 2, 3, 3, 3]
    assert read("circular", (2, 2)) == [2, 3, 1, 2, 3, 1, 2]
    assert read("circular", (4, 5)) == [3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2]


def test_reference_groups_and_depthwise_1d():
    """Two channels, two groups of one: each output channel sees its own
    input channel; depthwise with multiplier 2 orders outputs `c * M + m`."""
    x = np.array([[[1, 10], [2, 20], [3, 30]]], np.float64)  # (1, 3, 2)
    k = np.array([[[1, 2]], [[1, -1]]], np.float64)  # (2, 1, 2): (K, C_in/G, C_out)
    y = reference_conv(x, k, groups=2)
    # Out channel 0: x0[t] + x0[t+1]; out channel 1: 2 * x1[t] - x1[t+1].
    np.testing.assert_array_equal(y[0], [[3, 20 - 20], [5, 40 - 30]])
    dk = np.array([[[1, 2], [3, 4]]], np.float64)  # (1, 2, 2): (K, C_in, M)
    y = reference_depthwise_conv(x, dk)
    np.testing.assert_array_equal(y[0, 0], [1, 2, 30, 40])


def test_reference_transpose_1d():
    """Scatter-add from the definition: input pixel i adds `k[a] x[i]` to
    output `i * s + a * d - low`; output_padding adds a column; a padding
    mode adds the border back onto the pixel it copies."""
    x, k = row([1, 2, 3]), taps([1, 10])
    y = reference_conv_transpose(x, k, strides=2)
    assert flat(y) == [1, 10, 2, 20, 3, 30]
    y = reference_conv_transpose(x, k, strides=2, output_padding=1)
    assert flat(y) == [1, 10, 2, 20, 3, 30, 0]
    y5 = row([10, 20, 30, 40, 50])
    fold = lambda mode, pads: flat(
        reference_conv_transpose(y5, taps([1]), padding=(pads,), padding_mode=mode)
    )
    assert fold("zeros", (1, 1)) == [20, 30, 40]
    assert fold("reflect", (1, 1)) == [20, 30 + 10 + 50, 40]
    assert fold("replicate", (1, 1)) == [10 + 20, 30, 40 + 50]
    assert fold("circular", (1, 1)) == [20 + 50, 30, 40 + 10]
    # Output length 1 under pads (2, 2): every padded pixel wraps onto it.
    assert fold("circular", (2, 2)) == [150]


def test_reference_3d():
    """A 2x2x2 kernel of ones sums each 2x2x2 block; a one-hot tap at (1, 0,
    1) shifts the volume; a causal (2, 1, 1) kernel adds the previous
    slice (the first slice reads a zero pad); and `channels_first` and an
    unbatched input give the same numbers."""
    v = np.arange(27, dtype=np.float64).reshape(3, 3, 3)
    x = v[None, ..., None]
    y = reference_conv(x, np.ones((2, 2, 2, 1, 1)))[0, ..., 0]
    assert y.shape == (2, 2, 2)
    assert y[0, 0, 0] == sum([0, 1, 3, 4, 9, 10, 12, 13])
    assert y[1, 1, 1] == sum([13, 14, 16, 17, 22, 23, 25, 26])
    hot = np.zeros((2, 2, 2, 1, 1))
    hot[1, 0, 1] = 1
    np.testing.assert_array_equal(reference_conv(x, hot)[0, ..., 0], v[1:, :2, 1:])
    causal = reference_conv(x, np.ones((2, 1, 1, 1, 1)), padding="causal")[0, ..., 0]
    np.testing.assert_array_equal(causal, v + np.concatenate([0 * v[:1], v[:-1]]))
    k = np.random.default_rng(0).standard_normal((2, 3, 2, 1, 4))
    y = reference_conv(x, k, padding="same")
    y_cf = reference_conv(np.moveaxis(x, -1, 1)[0], k, padding="same", data_format=CF)
    np.testing.assert_array_equal(np.moveaxis(y[0], -1, 0), y_cf)


REFERENCE_ADJOINT_CASES = table(
    ("rank", "kernel", "strides", "dilation_rate", "padding", "padding_mode",
     "groups", "size"),
    (1, (3,), 2, 1, ((2, 1),), "zeros", 2, (7,)),
    (1, (2,), 1, 2, ((3, 4),), "reflect", 1, (6,)),
    (1, (3,), 1, 1, ((5, 7),), "circular", 2, (3,)),  # wider than the input
    (3, (2, 3, 2), (1, 2, 1), 1, ((1, 1), (2, 0), (0, 1)), "replicate", 2, (3, 4, 3)),
    (3, (2, 2, 2), 1, (2, 1, 1), ((2, 3), (4, 4), (1, 2)), "circular", 1, (2, 3, 2)),
)  # fmt: skip


@pytest.mark.parametrize("case", REFERENCE_ADJOINT_CASES, ids=case_id)
def test_reference_transpose_is_the_adjoint_of_reference_conv(case):
    """The two loops, written independently (a gather over output pixels
    with `numpy.pad`; a scatter over input pixels with `_source`), are each
    other's adjoint: `<conv(x), y> == <x, conv_transpose(y)>` in float64,
    wide circular pads included."""
    r, g = case["rank"], case["groups"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *case["size"], 4))
    kernel = rng.standard_normal((*case["kernel"], 4 // g, 2))
    kw = {k: case[k] for k in ("strides", "dilation_rate", "padding", "groups")}
    kw["padding_mode"] = case["padding_mode"]
    conv_x = reference_conv(x, kernel, **kw)
    y = rng.standard_normal(conv_x.shape)
    # The transposed kernel of the adjoint: (*K, C_in // G, C_out) as is;
    # output padding restores the pixels a stride leaves unread.
    s, d = per_axis(case["strides"], r), per_axis(case["dilation_rate"], r)
    ops = tuple(
        (n + lo + hi - span(k, dd)) % ss
        for n, (lo, hi), k, ss, dd in zip(
            case["size"], case["padding"], case["kernel"], s, d
        )
    )
    back = reference_conv_transpose(y, kernel, output_padding=ops, **kw)
    assert back.shape == x.shape
    magnitude = np.vdot(reference_conv(np.abs(x), np.abs(kernel), **kw), np.abs(y))
    products = math.prod(case["kernel"]) * 4 // g
    folds = math.prod(1 + lo + hi for lo, hi in case["padding"])
    n = products * folds + max(x.size, y.size)
    assert_sums_close(np.vdot(conv_x, y), np.vdot(x, back), magnitude, n, np.float64)


# --- jconv against the reference, every family, rank and implementation ---------


def _stretched(case):
    r = case["rank"]
    sizes = per_axis(case["size"], r)
    stretch = per_axis(case.get("input_dilation", 1), r)
    return [(n - 1) * a + 1 for n, a in zip(sizes, stretch)]


def forward_valid(case) -> bool:
    """Accepted by jconv: no padding mode with input dilation, the dilated
    kernel within the padded stretched input, reflect pads at most size - 1
    (circular and replicate: any width)."""
    return _forward_valid(*(case.get(k, v) for k, v in FORWARD_GEOMETRY.items()))


# The keys `forward_valid` reads, and their defaults: the others (groups,
# layout, bias, batch) never make a case invalid, so the answer is cached
# on these alone (the grids have tens of thousands of cases).
FORWARD_GEOMETRY = dict(
    rank=None,
    kernel=None,
    strides=None,
    dilation_rate=None,
    input_dilation=1,
    padding=None,
    padding_mode="zeros",
    size=None,
)


@functools.cache
def _forward_valid(rank, kernel, strides, dilation_rate, input_dilation, padding,
                   padding_mode, size) -> bool:  # fmt: skip
    a = per_axis(input_dilation, rank)
    if padding_mode != "zeros" and max(a) > 1:
        return False
    k, s, d = (per_axis(v, rank) for v in (kernel, strides, dilation_rate))
    stretched = [(n - 1) * aa + 1 for n, aa in zip(per_axis(size, rank), a)]
    pads = _pads(per_rank(padding, rank), stretched, k, s, d)
    for n, (lo, hi), kk, dd in zip(stretched, pads, k, d):
        if n + lo + hi < span(kk, dd):
            return False
        if padding_mode == "reflect" and max(lo, hi) > n - 1:
            return False
    return True


def transpose_valid(case) -> bool:
    """Accepted by jconv: output padding below the stride, a non-empty output
    that the forward convolution maps back to the input's size, reflect pads
    at most size - 1 of the output (circular: any width)."""
    keys = ("rank", "kernel", "strides", "dilation_rate", "padding")
    keys += ("output_padding", "padding_mode", "size")
    return _transpose_valid(tuple((k, case[k]) for k in keys))


@functools.cache
def _transpose_valid(items) -> bool:
    case = dict(items)
    r = case["rank"]
    k, s, d = (per_axis(case[key], r) for key in ("kernel", "strides", "dilation_rate"))
    op = case["output_padding"]
    if op is not None and any(a >= ss for a, ss in zip(per_axis(op, r), s)):
        return False
    out, pads = transpose_geometry(case)
    for o, n, (lo, hi), kk, ss, dd in zip(
        out, per_axis(case["size"], r), pads, k, s, d
    ):
        if o < 1 or o + lo + hi < span(kk, dd):
            return False
        if (o + lo + hi - span(kk, dd)) // ss + 1 != n:
            return False
        if case["padding_mode"] == "reflect" and max(lo, hi) > o - 1:
            return False
    return True


# Values written for three axes, cut to each case's rank (`per_rank`): a
# 1-D case passes `(2,)` where a 3-D one passes `(2, 1, 3)`. `batch` None is
# an unbatched input.
CONV_AXES = {
    "rank": [1, 3],
    "kernel": [(1, 1, 1), (2, 2, 2), (3, 3, 3), (3, 1, 2)],
    "strides": [1, 2, (2, 1, 3)],
    "dilation_rate": [1, 2, (2, 1, 1)],
    "input_dilation": [1, 2, (1, 2, 1)],
    "padding": [
        "valid",
        "same",
        "same_lower",
        "full",
        "causal",
        1,
        (2, 0, 1),
        ((0, 2), (1, 0), (2, 1)),
    ],
    "groups": [1, 2],
    "data_format": [CL, CF],
    "size": [(7, 5, 4), (8, 4, 5)],
    "bias": [False, True],
    "batch": [2, None],
}
# The padding modes, on a grid of their own (no input dilation: refused with
# them); the last pads are wider than every input, which circular and
# replicate fill (reflect cannot).
MODE_AXES = {
    "rank": [1, 3],
    "padding_mode": ["reflect", "replicate", "circular"],
    "padding": [
        "same",
        "same_lower",
        "full",
        "causal",
        2,
        ((0, 3), (2, 1), (1, 2)),
        ((9, 8), (6, 5), (5, 6)),
    ],
    "kernel": [(2, 2, 2), (3, 3, 3), (3, 1, 2)],
    "strides": [1, 2, (1, 2, 1)],
    "dilation_rate": [1, (2, 1, 1)],
    "groups": [1, 2],
    "data_format": [CL, CF],
    "size": [(6, 5, 4), (7, 4, 5)],
    "bias": [False, True],
    "batch": [2, None],
}
TRANSPOSE_AXES = {
    "rank": [1, 3],
    "kernel": [(1, 1, 1), (2, 2, 2), (3, 3, 3), (3, 1, 2)],
    "strides": [1, 2, (2, 1, 3)],
    "dilation_rate": [1, (1, 2, 1)],
    "padding": ["valid", "same", "same_lower", "full", 1, ((0, 2), (1, 0), (2, 1))],
    "output_padding": [None, 1, (1, 0, 2)],
    "padding_mode": MODES,
    "groups": [1, 2],
    "data_format": [CL, CF],
    "size": [(4, 3, 3), (5, 4, 3)],
    "bias": [False, True],
    "batch": [2, None],
}
DEPTHWISE_AXES = {
    "rank": [1, 3],
    "kernel": [(1, 1, 1), (2, 2, 2), (3, 1, 2)],
    "strides": [1, 2, (1, 2, 1)],
    "dilation_rate": [1, 2],
    "input_dilation": [1, (2, 1, 2)],
    "padding": ["valid", "same", "full", "causal", ((0, 2), (1, 0), (2, 1))],
    "padding_mode": MODES,
    "depth_multiplier": [1, 2],
    "data_format": [CL, CF],
    "size": [(6, 4, 5), (7, 5, 4)],
    "bias": [False, True],
    "batch": [2, None],
}
# name: (the family, its grid)
GRIDS = {
    "conv": (CONV, Grid(CONV_AXES, forward_valid)),
    "conv_modes": (CONV, Grid(MODE_AXES, forward_valid)),
    "transpose": (TRANSPOSE, Grid(TRANSPOSE_AXES, transpose_valid)),
    "depthwise": (DEPTHWISE, Grid(DEPTHWISE_AXES, forward_valid)),
    "separable": (SEPARABLE, Grid(DEPTHWISE_AXES, forward_valid)),
}


def per_rank_sample(grid, n, seed):
    """`n` cases of each rank (1, then 3), sampled from `grid` restricted to
    that rank."""
    return [
        case
        for rank in (1, 3)
        for case in Grid(dict(grid.axes, rank=[rank]), grid.valid).sample(
            n, seed + rank
        )
    ]


# name: (default sample, slow sample). Each default sample has len(IMPLS)
# cases of each rank, the i-th of a rank run with IMPLS[i]: every family,
# rank and implementation meet; together the cases take every value of every
# axis (`test_default_grids_cover_every_value`). The slow sample runs every
# case with every implementation.
SAMPLES = {
    name: (
        per_rank_sample(GRIDS[name][1], len(IMPLS), seed),
        GRIDS[name][1].sample(slow, seed=99),
    )
    for name, seed, slow in [
        ("conv", 4, 150),
        ("conv_modes", 2, 100),
        ("transpose", 0, 100),
        ("depthwise", 2, 60),
        ("separable", 4, 60),
    ]
}


def _family_params():
    for name, (default, slow) in SAMPLES.items():
        for i, case in enumerate(default):
            impl = IMPLS[i % len(IMPLS)]
            yield pytest.param(name, case, impl, id=f"{name}-{impl}-{case_id(case)}")
        for case in slow:
            for impl in IMPLS:
                yield pytest.param(
                    name,
                    case,
                    impl,
                    id=f"large_grid-{name}-{impl}-{case_id(case)}",
                    marks=pytest.mark.slow,
                )


@pytest.mark.parametrize("family, case, impl", list(_family_params()))
def test_matches_reference(family, case, impl):
    """In float32 (and float64 for lax and fft), the rank's alias to the bit
    like the generic function, the reference's shape and values."""
    check_family(GRIDS[family][0], case, impl, float64=impl in ("lax", "fft"))


@pytest.mark.parametrize("family", list(SAMPLES))
def test_default_grids_cover_every_value(family):
    assert uncovered(SAMPLES[family][0], GRIDS[family][1].axes) == {}


def test_shape_helpers_agree_with_the_reference():
    """`conv_output_shape` and `conv_transpose_output_shape` give the
    reference's shapes on every default case (rank from the kernel shape)."""
    for name, (default, _) in SAMPLES.items():
        family = GRIDS[name][0]
        shape_of = {
            "conv": jconv.conv_output_shape,
            "transpose": jconv.conv_transpose_output_shape,
        }.get(family.name)
        if shape_of is None:
            continue
        for case in default:
            x, kernels, _ = family.arrays(case)
            kw = family.kwargs(case)
            expected = family.reference_of(x, kernels, None, kw).shape
            kw.pop("padding_mode", None)
            assert shape_of(x.shape, kernels[0].shape, **kw) == expected, case


AUTO_CASES = [
    # family, case: large kernels, where auto's plans may take the FFT.
    (CONV, dict(rank=1, kernel=(31,), strides=1, dilation_rate=1, padding="same",
                groups=1, data_format=CL, size=(64,), bias=True)),
    (DEPTHWISE, dict(rank=1, kernel=(25,), strides=1, dilation_rate=1,
                     padding="causal", depth_multiplier=1, data_format=CF,
                     size=(48,), bias=False)),
    (DEPTHWISE, dict(rank=3, kernel=(7, 7, 7), strides=1, dilation_rate=1,
                     padding="same", depth_multiplier=1, data_format=CL,
                     size=(9, 9, 9), bias=True)),
]  # fmt: skip


@pytest.mark.parametrize(
    "family, case",
    AUTO_CASES,
    ids=[f"{f.name}-{case_id(c)}" for f, c in AUTO_CASES],
)
def test_auto_at_the_default_precision(family, case):
    """`impl="auto"` at the default precision, which may plan the FFT for
    large kernels: within the FFT's bound plus the direct sums' (whichever
    plan ran) of the reference."""
    x, kernels, bias = family.arrays(case, batch=1)
    kw = family.kwargs(case)
    y = family.call(x, kernels, bias, **kw)
    expected, magnitude = references_of(family, x, kernels, bias, kw)
    stretch, pads, _ = family.geometry(case)
    channels = kernels[0].shape[-2] if family is CONV else 1
    assert_fft_close(
        y,
        expected,
        x,
        taps_first(kernels[0]),
        plane=plane(case, stretch, pads),
        channels=channels,
        extra=sum_bound(magnitude, family.terms(case, kernels, bias)),
    )


# --- The adjoint of the forward convolution, 1-D and 3-D -----------------------

ADJOINT_AXES = (
    "rank", "kernel", "strides", "dilation_rate", "padding", "output_padding",
    "padding_mode", "groups", "data_format", "size", "bias",
)  # fmt: skip
ADJOINT_CASES = table(
    ADJOINT_AXES,
    (1, (3,), 2, 1, "same", 1, "zeros", 1, CL, (5,), False),
    (1, (4,), 1, 2, ((3, 2),), None, "reflect", 2, CF, (6,), False),
    # Output 5 wide, circular pads 7 and 5: wraps more than once.
    (1, (3,), 2, 1, ((7, 5),), None, "circular", 2, CL, (8,), False),
    (1, (2,), 1, 1, "full", None, "replicate", 1, CL, (4,), False),
    (3, (2, 3, 2), (2, 1, 2), 1, "same", (1, 0, 1), "zeros", 2, CL, (3, 3, 2), False),
    (3, (3, 2, 2), 1, (1, 2, 1), ((2, 1), (1, 1), (0, 1)), None, "reflect", 1, CF,
     (4, 4, 3), False),
    # Output (2, 3, 2), circular pads (3, 2), (1, 1), (3, 3): wider than it.
    (3, (3, 3, 2), (1, 1, 2), 1, ((3, 2), (1, 1), (3, 3)), None, "circular", 1, CL,
     (5, 3, 4), False),
    (3, (2, 2, 2), 1, 1, 1, None, "replicate", 2, CF, (3, 3, 3), False),
)  # fmt: skip


def test_adjoint_cases_are_valid_and_wide():
    assert all(transpose_valid(c) for c in ADJOINT_CASES)
    wide = [
        c
        for c in ADJOINT_CASES
        if c["padding_mode"] == "circular"
        and any(max(p) > o for o, p in zip(*transpose_geometry(c)))
    ]
    assert {c["rank"] for c in wide} == {1, 3}


def _adjoint_params():
    """Each case with one direct implementation by default (alternating),
    the other under `slow`; the replicate cases (the fold every other test
    file checks in 2-D) only under `slow`."""
    impls = ("lax", "einsum")
    for i, case in enumerate(ADJOINT_CASES):
        for j, impl in enumerate(impls[i % 2 :] + impls[: i % 2]):
            slow = j or case["padding_mode"] == "replicate"
            marks = pytest.mark.slow if slow else ()
            yield pytest.param(case, impl, id=f"{impl}-{case_id(case)}", marks=marks)


@pytest.mark.parametrize("case, impl", list(_adjoint_params()))
def test_transpose_is_the_adjoint_of_conv(case, impl):
    """In float64: `conv_transpose(y)` is the VJP of `x -> conv(x)` (same
    kernel, strides, pads, groups and padding mode) at `y`, matches the
    scatter-add reference, and `<conv(x), y> == <x, conv_transpose(y)>`."""
    y, (kernel,), _ = TRANSPOSE.arrays(case, seed=5)
    kw = TRANSPOSE.kwargs(case)
    conv_kw = {k: v for k, v in kw.items() if k != "output_padding"}
    shape_kw = {k: v for k, v in kw.items() if k != "padding_mode"}
    x_shape = jconv.conv_transpose_output_shape(y.shape, kernel.shape, **shape_kw)
    with jax.enable_x64(True):
        y, kernel = y.astype(np.float64), kernel.astype(np.float64)
        x = np.random.default_rng(6).standard_normal(x_shape)
        conv = lambda x: jconv.conv(x, kernel, impl=impl, **conv_kw)
        conv_x, vjp = jax.vjp(conv, x)
        assert conv_x.shape == y.shape
        got = jconv.conv_transpose(y, kernel, impl=impl, **kw)
        assert got.dtype == np.float64
        assert_close(
            TRANSPOSE, case, got, y, [kernel], None, impl=impl, dtype=np.float64
        )
        terms = TRANSPOSE.terms(case, [kernel], None)
        magnitude = reference_conv_transpose(np.abs(y), np.abs(kernel), **kw)
        assert_sums_close(got, vjp(y)[0], magnitude, terms, np.float64)
        magnitude = np.vdot(
            reference_conv(np.abs(x), np.abs(kernel), **conv_kw), np.abs(y)
        )
        n = TRANSPOSE.terms(case, [kernel], None) + max(x.size, y.size)
        assert_sums_close(
            jnp.vdot(conv_x, y), jnp.vdot(x, got), magnitude, n, np.float64
        )


# --- Derivatives ------------------------------------------------------------------

GRAD_CASES = {
    "conv": table(
        ("rank", "kernel", "strides", "dilation_rate", "input_dilation", "padding",
         "padding_mode", "groups", "data_format", "size", "bias"),
        (1, (3,), 2, 1, 2, "same", "zeros", 2, CL, (4,), True),
        (1, (2,), 1, 2, 1, "causal", "circular", 1, CF, (3,), True),
        (3, (2, 1, 2), (1, 2, 1), 1, (1, 2, 1), ((1, 0), (0, 1), (1, 1)), "zeros", 1,
         CF, (2, 3, 2), True),
        (3, (2, 2, 1), 1, 1, 1, "same", "reflect", 2, CL, (2, 3, 2), False),
    ),
    "transpose": table(
        ("rank", "kernel", "strides", "dilation_rate", "padding", "output_padding",
         "padding_mode", "groups", "data_format", "size", "bias"),
        (1, (3,), 2, 1, "same", 1, "replicate", 2, CL, (3,), True),
        (3, (2, 2, 1), (2, 1, 1), 1, ((1, 0), (0, 0), (0, 0)), None, "circular", 1,
         CF, (2, 2, 2), True),
    ),
    "depthwise": table(
        ("rank", "kernel", "strides", "dilation_rate", "input_dilation", "padding",
         "padding_mode", "depth_multiplier", "data_format", "size", "bias"),
        (1, (3,), 1, 2, 1, "causal", "zeros", 2, CF, (4,), True),
        (3, (2, 1, 2), 1, 1, (2, 1, 1), "same", "zeros", 1, CL, (2, 2, 3), True),
    ),
    "separable": table(
        ("rank", "kernel", "strides", "dilation_rate", "input_dilation", "padding",
         "padding_mode", "depth_multiplier", "data_format", "size", "bias"),
        (1, (2,), 2, 1, 1, "same", "reflect", 1, CL, (4,), True),
        (3, (2, 2, 1), 1, 1, 1, "valid", "zeros", 2, CF, (2, 3, 2), True),
    ),
}  # fmt: skip
# By default (each check compiles a few dozen programs): per rank, lax and
# einsum on a convolution with input dilation (1-D einsum: a circular
# causal one); every other family, case and implementation under `slow`
# (the transposed convolution's first derivative is its adjoint, below).
DEFAULT_GRADS = {
    ("conv", 0, "lax"),
    ("conv", 1, "einsum"),
    ("conv", 2, "lax"),
    ("conv", 2, "einsum"),
}
GRAD_PARAMS = [
    pytest.param(
        name,
        c,
        impl,
        id=f"{impl}-{name}-{c['rank']}d-{i}",
        marks=() if (name, i, impl) in DEFAULT_GRADS else pytest.mark.slow,
    )
    for name, cases in GRAD_CASES.items()
    for i, c in enumerate(cases)
    for impl in ("lax", "einsum")
]


@pytest.mark.parametrize("family, case, impl", GRAD_PARAMS)
def test_check_grads(family, case, impl):
    """`check_grads` to second order, forward and reverse mode, in float64,
    in the input, every kernel and the bias."""
    f = FAMILIES[family]
    x, kernels, bias = f.arrays(case, batch=1)
    kw = dict(f.kwargs(case), impl=impl)
    n = len(kernels)
    fn = jax.jit(lambda x, *rest: f.call(x, list(rest[:n]), rest[n], **kw))
    with jax.enable_x64(True):
        args = tuple(as64(a) for a in (x, *kernels, bias))
        check_grads(fn, args, order=2, modes=("fwd", "rev"))


# --- input_dilation against lax.conv_general_dilated --------------------------------

INPUT_DILATION_CASES = table(
    ("rank", "kernel", "strides", "dilation_rate", "input_dilation", "padding",
     "groups", "size"),
    (1, (3,), 1, 1, 2, "valid", 1, (5,)),
    (1, (2,), 2, 1, 3, "same", 2, (6,)),
    (1, (3,), 1, 2, 2, ((2, 1),), 1, (4,)),
    (2, (3, 2), (1, 2), 1, (2, 3), "same", 2, (4, 5)),
    (2, (2, 2), 1, (2, 1), (3, 1), "full", 1, (3, 4)),
    (3, (2, 2, 2), 1, 1, (2, 1, 2), "valid", 1, (3, 4, 3)),
    (3, (3, 1, 2), (2, 1, 1), 1, 2, "same", 2, (3, 3, 2)),
    (3, (2, 2, 1), 1, (1, 2, 1), (1, 2, 3), ((1, 0), (0, 2), (1, 1)), 1, (2, 3, 3)),
)  # fmt: skip


def lax_padding(case):
    """`case`'s padding for `lax.conv_general_dilated`, which takes no
    padding string with `lhs_dilation`: "same"/"valid" resolved by lax's own
    `padtype_to_pads` on the stretched input, the others by the reference's
    rules on it."""
    r = case["rank"]
    k, s, d = (per_axis(case[key], r) for key in ("kernel", "strides", "dilation_rate"))
    if case["padding"] in ("same", "valid"):
        window = [span(kk, dd) for kk, dd in zip(k, d)]
        rule = case["padding"].upper()
        return lax.padtype_to_pads(_stretched(case), window, s, rule)
    return _pads(case["padding"], _stretched(case), k, s, d)


@pytest.mark.parametrize("case", INPUT_DILATION_CASES, ids=case_id)
def test_input_dilation_matches_lax(case, every_impl):
    """`input_dilation` is lax's `lhs_dilation`: in float64 (oneDNN, float32
    only: in float32) against `lax.conv_general_dilated`, itself against the
    reference, in the shape `conv_output_shape` gives."""
    case = dict(case, padding_mode="zeros", data_format=CL, bias=False)
    x, (kernel,), _ = CONV.arrays(case)
    kw = CONV.kwargs(case)
    r = case["rank"]
    spec = SPATIAL[r]
    with jax.enable_x64(True):
        expected = lax.conv_general_dilated(
            as64(x),
            as64(kernel),
            window_strides=per_axis(case["strides"], r),
            padding=lax_padding(case),
            lhs_dilation=per_axis(case["input_dilation"], r),
            rhs_dilation=per_axis(case["dilation_rate"], r),
            dimension_numbers=(spec, spec[1:-1] + "IO", spec),
            feature_group_count=case["groups"],
            precision="highest",
        )
    shape_kw = {k: v for k, v in kw.items() if k != "padding_mode"}
    assert jconv.conv_output_shape(x.shape, kernel.shape, **shape_kw) == expected.shape
    assert_close(
        CONV,
        case,
        np.asarray(expected),
        x,
        [kernel],
        None,
        impl="lax",
        dtype=np.float64,
    )
    terms = CONV.terms(case, [kernel], None)
    magnitude = reference_conv(np.abs(x), np.abs(kernel), **kw)
    if every_impl == "onednn":
        if not ONEDNN:
            with pytest.raises(ValueError, match=ONEDNN_REFUSAL):
                jconv.conv(x, kernel, impl="onednn", **kw)
            return
        y = jconv.conv(x, kernel, impl="onednn", **kw)
        assert_sums_close(y, expected, magnitude, terms)
        return
    with jax.enable_x64(True):
        y = jconv.conv(
            as64(x), as64(kernel), impl=every_impl, precision="highest", **kw
        )
    assert y.dtype == np.float64
    if every_impl != "fft":
        assert_sums_close(y, expected, magnitude, terms, np.float64)
        return
    stretch, pads, _ = CONV.geometry(case)
    assert_fft_close(
        y,
        expected,
        x,
        taps_first(kernel),
        plane=plane(case, stretch, pads),
        channels=kernel.shape[-2],
        dtype=np.float64,
        extra=sum_bound(magnitude, terms, np.float64),  # lax's own error
    )


def test_input_dilation_output_shape_formula():
    """Per axis `(stretched + lo + hi - span) // s + 1`, `stretched = (size -
    1) * a + 1`, and `0` for an empty axis; unbatched and channels_first
    alike."""
    for rank, size, k, s, d, a, padding, want in [
        (1, (5,), (3,), 1, 1, 2, "valid", (7,)),
        (1, (5,), (3,), 2, 1, 3, "same", (7,)),
        (1, (4,), (2,), 1, 2, 2, "causal", (7,)),
        (2, (4, 3), (2, 3), (1, 2), 1, (2, 3), 1, (8, 4)),
        (3, (2, 3, 4), (2, 2, 2), 1, (1, 2, 1), (1, 2, 3), "full", (3, 7, 11)),
        (3, (5, 5, 5), (3, 3, 3), 1, 1, 2, "valid", (7, 7, 7)),
    ]:
        shape = jconv.conv_output_shape(
            (2, *size, 4),
            (*k, 4, 5),
            strides=s,
            dilation_rate=d,
            input_dilation=a,
            padding=padding,
        )
        assert shape == (2, *want, 5), (rank, shape, want)
        cf = jconv.conv_output_shape(
            (4, *size),
            (*k, 4, 5),
            strides=s,
            dilation_rate=d,
            input_dilation=a,
            padding=padding,
            data_format=CF,
        )
        assert cf == (5, *want)
    empty = jconv.conv_output_shape((1, 0, 4), (1, 4, 5), input_dilation=3)
    assert empty == (1, 0, 5)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_resolve_padding_every_rank(rank):
    """Every rule and form of pads against the reference's `_pads`; the rank
    from the first argument that is a sequence (ints alone: 2-D, as before)."""
    sizes, k = (7, 5, 4)[:rank], (3, 2, 4)[:rank]
    s, d = (2, 1, 3)[:rank], (1, 2, 1)[:rank]
    for padding in [
        "valid",
        "same",
        "same_lower",
        "full",
        "causal",
        2,
        (1, 0, 2)[:rank],
        ((0, 1), (2, 0), (1, 1))[:rank],
    ]:
        got = jconv.resolve_padding(sizes, k, s, d, padding)
        assert got == _pads(padding, sizes, k, s, d), padding
    assert jconv.resolve_padding(7, 3, 2, 1, "causal") == ((2, 0), (2, 0))
    mixed = jconv.resolve_padding(7, (3,) * rank, 1, 2, "full")
    assert mixed == ((4, 4),) * rank


@pytest.mark.parametrize(
    "rank, impl",
    [
        pytest.param(2, "lax", marks=pytest.mark.slow),
        pytest.param(2, "einsum", marks=pytest.mark.slow),
        pytest.param(1, "lax", marks=pytest.mark.slow),
        pytest.param(3, "einsum", marks=pytest.mark.slow),
    ],
)
def test_input_dilation_gradients(rank, impl):
    """`check_grads` through an input-dilated convolution (the gradient of
    the input is a strided one), in float64; by default, in 1-D and 3-D,
    `test_check_grads`' first and third convolutions."""
    (case,) = [c for c in INPUT_DILATION_CASES if c["rank"] == rank][1:2]
    case = dict(case, padding_mode="zeros", data_format=CL, bias=True)
    x, (kernel,), bias = CONV.arrays(case, batch=1)
    kw = dict(CONV.kwargs(case), impl=impl)
    with jax.enable_x64(True):
        check_grads(
            lambda x, k, b: jconv.conv(x, k, b, **kw),
            (as64(x), as64(kernel), as64(bias)),
            order=2,
            modes=("fwd", "rev"),
        )


# --- padding="causal" ---------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_causal_is_explicit_front_pads(rank, every_impl):
    """ "causal" pads `dilation * (k - 1)` before every spatial axis and none
    after: exactly the explicit pads on small integers (the FFT, inexact:
    within its bound of the reference)."""
    k = (3, 2, 2)[:rank]
    d = (2, 1, 3)[:rank]
    case = dict(
        rank=rank,
        kernel=k,
        strides=(2, 1, 1)[:rank],
        dilation_rate=d,
        input_dilation=1,
        padding="causal",
        padding_mode="zeros",
        groups=2,
        data_format=CL,
        size=(7, 3, 4)[:rank],
        bias=True,
    )
    x, (kernel,), bias = CONV.arrays(case, integer=True, seed=2)
    kw = dict(CONV.kwargs(case), impl=every_impl, precision="highest")
    if every_impl == "onednn" and not ONEDNN:
        with pytest.raises(ValueError, match=ONEDNN_REFUSAL):
            jconv.conv(x, kernel, bias, **kw)
        return
    y = jconv.conv(x, kernel, bias, **kw)
    pads = tuple((dd * (kk - 1), 0) for kk, dd in zip(k, d))
    explicit = jconv.conv(x, kernel, bias, **dict(kw, padding=pads))
    assert (
        jconv.resolve_padding(
            per_axis(case["size"], rank),
            k,
            per_axis(case["strides"], rank),
            d,
            "causal",
        )
        == pads
    )
    if every_impl == "fft":
        assert_close(CONV, case, y, x, [kernel], bias, impl="fft")
        assert_close(
            CONV, dict(case, padding=pads), explicit, x, [kernel], bias, impl="fft"
        )
    else:
        np.testing.assert_array_equal(y, explicit)
        np.testing.assert_array_equal(
            y, reference_conv(x, kernel, bias, **CONV.kwargs(case))
        )


@pytest.mark.parametrize("length", [1, 5, 8, 9])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_causal_output_length(length, stride):
    """ceil(L / stride) outputs whatever the kernel and dilation, and output
    t reads no input after t * stride."""
    kernel = np.ones((3, 1, 1), np.float32)
    x = np.zeros((1, length, 1), np.float32)
    for d in (1, 2):
        shape = jconv.conv_output_shape(
            x.shape, kernel.shape, strides=stride, dilation_rate=d, padding="causal"
        )
        assert shape == (1, -(-length // stride), 1)
        y = jconv.conv1d(x, kernel, strides=stride, dilation_rate=d, padding="causal")
        assert y.shape == shape
    # A unit impulse at t0 reaches output t (inputs t * stride - 2 ... t *
    # stride) only where t * stride >= t0: nothing reads the future.
    t0 = length // 2
    x[0, t0, 0] = 1
    y = np.asarray(jconv.conv1d(x, kernel, strides=stride, padding="causal"))[0, :, 0]
    reads = [t * stride - 2 <= t0 <= t * stride for t in range(y.size)]
    np.testing.assert_array_equal(y, np.asarray(reads, np.float32))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_causal_refused_by_transpose(rank):
    x = np.zeros((1, *(4,) * rank, 2), np.float32)
    kernel = np.zeros((*(2,) * rank, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"`padding` \(='causal'\) is a forward"):
        jconv.conv_transpose(x, kernel, padding="causal")
    with pytest.raises(ValueError, match=r"`padding` \(='causal'\)"):
        jconv.conv_transpose_output_shape(x.shape, kernel.shape, padding="causal")


def test_causal_depthwise_and_separable_1d():
    """The rule is every forward convolution's: depthwise and separable too,
    exactly on small integers."""
    case = dict(
        rank=1,
        kernel=(3,),
        strides=1,
        dilation_rate=2,
        input_dilation=1,
        padding="causal",
        padding_mode="zeros",
        depth_multiplier=2,
        data_format=CF,
        size=(9,),
        bias=True,
    )
    for f in (DEPTHWISE, SEPARABLE):
        x, kernels, bias = f.arrays(case, integer=True, seed=4)
        kw = f.kwargs(case)
        y = f.call(x, kernels, bias, precision="highest", **kw)
        assert y.shape[-1] == 9
        np.testing.assert_array_equal(y, f.reference_of(x, kernels, bias, kw))


# --- Refusals -----------------------------------------------------------------------


def zeros(*shape):
    return np.zeros(shape, np.float32)


X1, K1 = zeros(2, 8, 4), zeros(3, 4, 6)
X3, K3 = zeros(1, 5, 5, 5, 4), zeros(2, 2, 2, 4, 6)
REFUSALS = [
    (
        "conv1d rank-4 kernel",
        lambda: jconv.conv1d(X1, zeros(3, 3, 4, 6)),
        ValueError,
        r"`kernel` must have rank 3 \(KW, C_in // groups, C_out\); got shape "
        r"\(3, 3, 4, 6\)",
    ),
    (
        "conv3d rank-4 kernel",
        lambda: jconv.conv3d(X3, zeros(3, 3, 4, 6)),
        ValueError,
        r"`kernel` must have rank 5 \(KD, KH, KW, C_in // groups, C_out\)",
    ),
    (
        "conv rank-6 kernel",
        lambda: jconv.conv(zeros(1, 4, 4, 4, 4, 4), zeros(2, 2, 2, 2, 4, 6)),
        ValueError,
        r"`kernel` must have rank 3, 4 or 5 .*got shape \(2, 2, 2, 2, 4, 6\)",
    ),
    (
        "depthwise_conv1d rank-4 kernel",
        lambda: jconv.depthwise_conv1d(X1, zeros(3, 3, 4, 1)),
        ValueError,
        r"`kernel` must have rank 3 \(KW, C_in, depth_multiplier\)",
    ),
    (
        "conv1d_transpose rank-5 kernel",
        lambda: jconv.conv1d_transpose(X1, zeros(2, 2, 2, 6, 4)),
        ValueError,
        r"`kernel` must have rank 3",
    ),
    (
        "strides of 2 in 1-D",
        lambda: jconv.conv1d(X1, K1, strides=(1, 2)),
        TypeError,
        r"`strides` \(=\(1, 2\)\) must be an int or a sequence of 1 int",
    ),
    (
        "strides of 2 in 3-D",
        lambda: jconv.conv3d(X3, K3, strides=(1, 2)),
        TypeError,
        r"`strides` \(=\(1, 2\)\) must be an int or a sequence of 3 ints",
    ),
    (
        "dilation of 2 in 3-D transposed",
        lambda: jconv.conv3d_transpose(X3, zeros(2, 2, 2, 6, 4), dilation_rate=(1, 2)),
        TypeError,
        r"`dilation_rate` \(=\(1, 2\)\)",
    ),
    (
        "two pairs in 1-D",
        lambda: jconv.conv1d(X1, K1, padding=((1, 1), (1, 1))),
        ValueError,
        r"`padding` \(=\(\(1, 1\), \(1, 1\)\)\) must be 'valid', 'same', "
        r"'same_lower', 'full', 'causal', an int, one int per spatial axis",
    ),
    (
        "two pairs in 3-D",
        lambda: jconv.conv3d(X3, K3, padding=((1, 1), (1, 1))),
        ValueError,
        r"`padding` \(=\(\(1, 1\), \(1, 1\)\)\) must be",
    ),
    (
        "four ints in 3-D depthwise",
        lambda: jconv.depthwise_conv3d(X3, zeros(2, 2, 2, 4, 1), padding=(1, 1, 1, 1)),
        ValueError,
        r"`padding` \(=\(1, 1, 1, 1\)\) must be",
    ),
    (
        "input_dilation 0",
        lambda: jconv.conv1d(X1, K1, input_dilation=0),
        ValueError,
        r"`input_dilation` \(=0\) must be positive",
    ),
    (
        "input_dilation 0 on one axis",
        lambda: jconv.conv3d(X3, K3, input_dilation=(1, 0, 1)),
        ValueError,
        r"`input_dilation` \(=\(1, 0, 1\)\) must be positive",
    ),
    (
        "input_dilation of 2 in 3-D",
        lambda: jconv.conv3d(X3, K3, input_dilation=(1, 2)),
        TypeError,
        r"`input_dilation` \(=\(1, 2\)\)",
    ),
    (
        "reflect with input_dilation 2",
        lambda: jconv.conv1d(
            X1, K1, padding="same", padding_mode="reflect", input_dilation=2
        ),
        ValueError,
        r"`padding_mode` \(='reflect'\).*`input_dilation` \(=",
    ),
    (
        "circular with input_dilation 2, depthwise 3-D",
        lambda: jconv.depthwise_conv3d(
            X3, zeros(2, 2, 2, 4, 1), padding=1, padding_mode="circular",
            input_dilation=(1, 2, 1),
        ),
        ValueError,
        r"`padding_mode` \(='circular'\).*`input_dilation`",
    ),
    (
        "causal transposed",
        lambda: jconv.conv1d_transpose(X1, zeros(3, 6, 4), padding="causal"),
        ValueError,
        r"`padding` \(='causal'\) is a forward convolution's rule",
    ),
    (
        "conv2d keeps its message",
        lambda: jconv.conv2d(zeros(1, 5, 5, 4), K1),
        ValueError,
        r"`kernel` must have rank 4 \(KH, KW, C_in // groups, C_out\); got shape "
        r"\(3, 4, 6\)",
    ),
    (
        "separable_conv1d 2-D depthwise kernel",
        lambda: jconv.separable_conv1d(X1, zeros(3, 3, 4, 1), zeros(1, 4, 6)),
        ValueError,
        r"`depthwise_kernel` must have rank 3 \(KW, C_in, depth_multiplier\)",
    ),
    (
        "conv1d rank-5 x",
        lambda: jconv.conv1d(zeros(1, 2, 8, 8, 4), K1),
        ValueError,
        r"`x` must have rank 3 \(N, W, C_in\) or rank 2 without the batch axis",
    ),
    (
        "conv3d rank-3 x, channels_first",
        lambda: jconv.conv3d(zeros(4, 8, 8), K3, data_format=CF),
        ValueError,
        r"`x` must have rank 5 \(N, C_in, D, H, W\) or rank 4 without the batch",
    ),
    # The channel axis a message names is the kernel's own: C_in // groups
    # is axis r of a forward kernel (*K, C_in // groups, C_out), C_in axis r
    # + 1 of a transposed one (*K, C_out // groups, C_in).
    (
        "conv1d channels",
        lambda: jconv.conv1d(X1, zeros(3, 3, 6)),
        ValueError,
        r"kernel axis 1 must be C_in // groups \(=4 // 1 = 4\), got 3",
    ),
    (
        "conv3d channels",
        lambda: jconv.conv3d(X3, zeros(2, 2, 2, 3, 6)),
        ValueError,
        r"kernel axis 3 must be C_in // groups \(=4 // 1 = 4\), got 3",
    ),
    (
        "depthwise_conv1d channels",
        lambda: jconv.depthwise_conv1d(X1, zeros(3, 3, 1)),
        ValueError,
        r"kernel axis 1 must be C_in \(=4\), got 3",
    ),
    (
        "conv1d_transpose channels",
        lambda: jconv.conv1d_transpose(X1, zeros(3, 6, 3)),
        ValueError,
        r"kernel axis 2 must be C_in \(=4\), got 3",
    ),
    (
        "conv3d_transpose channels",
        lambda: jconv.conv3d_transpose(X3, zeros(2, 2, 2, 6, 3)),
        ValueError,
        r"kernel axis 4 must be C_in \(=4\), got 3",
    ),
    (
        "reflect wider than a 1-D input",
        lambda: jconv.conv1d(X1, K1, padding=((8, 0),), padding_mode="reflect"),
        ValueError,
        r"`padding_mode` \(='reflect'\) cannot pad an axis of 8 pixels by 8",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, exc, pattern", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_circular_wider_than_the_input_is_accepted():
    """Circular pads of any width now (numpy's "wrap"): forward, in 1-D and
    3-D, exactly the reference on small integers."""
    rng = np.random.default_rng(8)
    for x_shape, k_shape, padding in [
        ((1, 3, 2), (2, 2, 3), ((7, 4),)),
        ((1, 2, 3, 2, 2), (2, 1, 2, 2, 3), ((3, 5), (4, 0), (2, 3))),
    ]:
        x = rng.integers(-3, 4, x_shape).astype(np.float32)
        k = rng.integers(-3, 4, k_shape).astype(np.float32)
        for impl in ("lax", "einsum"):
            y = jconv.conv(x, k, padding=padding, padding_mode="circular", impl=impl)
            expected = reference_conv(x, k, padding=padding, padding_mode="circular")
            np.testing.assert_array_equal(y, expected)


# --- Hypothesis: any rank, any valid configuration --------------------------------


@st.composite
def configs(draw_):
    """A rank, shapes, strides, dilation, input dilation, pads (a rule, an
    int, ints or pairs per axis), groups that divide both channel counts, a
    padding mode where it is allowed, a layout and a batch (or none)."""
    rank = draw_(st.integers(1, 3))
    groups = draw_(st.integers(1, 3))
    c_in = groups * draw_(st.integers(1, 2))
    c_out = groups * draw_(st.integers(1, 2))
    ints = lambda lo, hi: st.one_of(
        st.integers(lo, hi), st.tuples(*[st.integers(lo, hi)] * rank)
    )
    k = draw_(st.tuples(*[st.integers(1, 3)] * rank))
    strides, dilation = draw_(ints(1, 3)), draw_(ints(1, 2))
    input_dilation = draw_(st.one_of(st.just(1), ints(1, 2)))
    padding = draw_(
        st.one_of(
            st.sampled_from(["valid", "same", "same_lower", "full", "causal"]),
            st.integers(0, 2),
            st.tuples(*[st.integers(0, 2)] * rank),
            st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2))] * rank),
        )
    )
    d = per_axis(dilation, rank)
    # At least the dilated kernel, so any padding fits; 3-D kept small for the
    # loop reference.
    extra = 4 if rank < 3 else 2
    size = tuple(
        draw_(st.integers(span(kk, dd), span(kk, dd) + extra)) for kk, dd in zip(k, d)
    )
    stretched = [(n - 1) * a + 1 for n, a in zip(size, per_axis(input_dilation, rank))]
    pads = _pads(padding, stretched, k, per_axis(strides, rank), d)
    modes = ["zeros"]
    if per_axis(input_dilation, rank) == (1,) * rank:
        modes += ["replicate", "circular"]
        if all(max(p) <= n - 1 for p, n in zip(pads, size)):
            modes.append("reflect")
    data_format = draw_(st.sampled_from([CL, CF]))
    batch = draw_(st.sampled_from([None, 1, 2]))
    rng = np.random.default_rng(draw_(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal(layout(size, c_in, data_format, batch)).astype(np.float32)
    kernel = rng.standard_normal((*k, c_in // groups, c_out)).astype(np.float32)
    bias = (
        rng.standard_normal(c_out).astype(np.float32) if draw_(st.booleans()) else None
    )
    kwargs = dict(
        strides=strides,
        dilation_rate=dilation,
        input_dilation=input_dilation,
        padding=padding,
        padding_mode=draw_(st.sampled_from(modes)),
        groups=groups,
        data_format=data_format,
    )
    return x, kernel, bias, kwargs, pads


def check_config(config):
    """lax, einsum and fft against the reference: the direct sums within
    `2 gamma_n sum|products|`, the FFT within its bound."""
    x, kernel, bias, kwargs, pads = config
    expected = reference_conv(x, kernel, bias, **kwargs)
    magnitude = reference_conv(*absolute(x, kernel, bias), **kwargs)
    rank = kernel.ndim - 2
    terms = math.prod(kernel.shape[:-2]) * kernel.shape[-2] + (bias is not None)
    for impl in ("lax", "einsum"):
        y = jconv.conv(x, kernel, bias, impl=impl, precision="highest", **kwargs)
        assert_sums_close(y, expected, magnitude, terms)
    y = jconv.conv(x, kernel, bias, impl="fft", **kwargs)
    sizes = x.shape[-rank:] if kwargs["data_format"] == CF else x.shape[-rank - 1 : -1]
    case = dict(
        rank=rank,
        kernel=kernel.shape[:-2],
        dilation_rate=kwargs["dilation_rate"],
        size=sizes,
    )
    area = plane(case, per_axis(kwargs["input_dilation"], rank), pads)
    assert_fft_close(
        y, expected, x, taps_first(kernel), plane=area, channels=kernel.shape[-2]
    )


@settings(max_examples=8, deadline=None)
@given(configs())
def test_any_rank_agrees(config):
    check_config(config)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(configs())
def test_any_rank_agrees_large_sample(config):
    check_config(config)
