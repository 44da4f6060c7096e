"""`conv2d_transpose`: the float64 scatter-add reference, the adjoint of
`conv2d` (its VJP), Keras `Conv2DTranspose` live, gradients."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from _checks import assert_adjoint
from _data import pick, random_arrays
from _family import Family
from _grid import Grid, case_id, grid_params, pair, table, uncovered
from _keras import assert_matches_keras, layer_output
from _tol import assert_conv_close, conv_terms
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_conv2d_transpose

import jconv

C_IN, C_OUT = 3, 2

AXES = {
    "kernel": [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3)],
    "strides": [1, 2, 3, (1, 2)],
    "dilation_rate": [1, 2, (2, 1)],
    "padding": ["valid", "same", "same_lower", "full", 1, ((0, 2), (1, 0))],
    "output_padding": [None, 0, 1, (0, 1)],
    "data_format": ["channels_last", "channels_first"],
    "hw": [(4, 4), (5, 5), (5, 4)],
    "bias": [False, True],
}


def valid(case) -> bool:
    """Accepted by jconv: output padding below the stride, a non-empty output,
    and not the "same" + even kernel span + zero output padding combination
    that no convolution is the adjoint of (test_errors pins the refusal)."""
    strides, dilation = pair(case["strides"]), pair(case["dilation_rate"])
    spans = [(k - 1) * d + 1 for k, d in zip(case["kernel"], dilation)]
    op = case["output_padding"]
    if op is not None:
        if any(a >= s for a, s in zip(pair(op), strides)):
            return False
        if case["padding"] in ("same", "same_lower") and any(
            span % 2 == 0 and a == 0 for span, a in zip(spans, pair(op))
        ):
            return False
    if case["padding"] == "full":
        ops = (0, 0) if op is None else pair(op)
        return all(
            (size - 1) * s + 2 - span + a >= 1
            for size, s, span, a in zip(case["hw"], strides, spans, ops)
        )
    return True


GRID = Grid(AXES, valid)


def make_arrays(case, *, integer=False, seed=0, batch=2):
    k_shape = (*case["kernel"], C_OUT, C_IN)
    return random_arrays(
        case, C_IN, k_shape, C_OUT, integer=integer, seed=seed, batch=batch
    )


def kwargs(case):
    keys = ("strides", "padding", "output_padding", "dilation_rate", "data_format")
    return pick(case, keys)


def conv_kwargs(case):
    """The `conv2d` that `conv2d_transpose(**kwargs(case))` is the adjoint of."""
    return pick(case, ("strides", "padding", "dilation_rate", "data_format"))


FAMILY = Family(jconv.conv2d_transpose, reference_conv2d_transpose, make_arrays, kwargs)
DEFAULT_CASES = GRID.sample(16, seed=20)


def check_reference(case, impl):
    """float32 and float64 against the float64 loop, in the shape
    `conv_transpose_output_shape` gives."""
    y, x, kernel = FAMILY.assert_matches_reference(case, impl, float64=True)
    kw = kwargs(case)
    assert y.shape == jconv.conv_transpose_output_shape(x.shape, kernel.shape, **kw)


test_default_grid_covers_every_value, test_matches_reference = GRID.reference_tests(
    check_reference, DEFAULT_CASES, GRID.sample(300, seed=12)
)


# --- The adjoint of conv2d -------------------------------------------------

ADJOINT_CASES = GRID.sample(10, seed=41)
SLOW_ADJOINT_CASES = GRID.sample(200, seed=16)


@pytest.mark.parametrize("case", grid_params(ADJOINT_CASES, SLOW_ADJOINT_CASES))
def test_is_the_adjoint_of_conv2d(case, impl):
    """`conv2d_transpose(y)` is the VJP of `x -> conv2d(x)` at `y`, and
    `<conv2d(x), y> == <x, conv2d_transpose(y)>`, in float64."""
    y, kernel, _ = make_arrays(case, seed=5)
    kw = kwargs(case)
    x_shape = jconv.conv_transpose_output_shape(y.shape, kernel.shape, **kw)
    close = lambda got, expected: assert_conv_close(
        got, expected, reference_conv2d_transpose, y, kernel, dtype=np.float64, **kw
    )
    # Both inner products sum y.size products of sums of conv_terms products.
    n_terms = conv_terms(kernel) + y.size
    assert_adjoint(y, kernel, x_shape, impl, kw, conv_kwargs(case), close, n_terms)


def test_adjoint_grid_covers_every_rule():
    keys = ("padding", "output_padding", "strides", "data_format")
    assert uncovered(ADJOINT_CASES, {k: AXES[k] for k in keys}) == {}


def test_readme_example(impl):
    """The README's adjoint example, verbatim in substance."""
    rng = np.random.default_rng(0)
    x = jnp.ones((1, 8, 8, 3))
    kernel = jnp.asarray(rng.standard_normal((3, 3, 3, 16)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((1, 4, 4, 16)), jnp.float32)
    _, vjp = jax.vjp(lambda x: jconv.conv2d(x, kernel, strides=2, padding="same"), x)
    z = jconv.conv2d_transpose(y, kernel, strides=2, padding="same", impl=impl)
    assert z.shape == (1, 8, 8, 3)
    assert_conv_close(
        z,
        vjp(y)[0],
        reference_conv2d_transpose,
        y,
        kernel,
        strides=2,
        padding="same",
    )


# --- Keras Conv2DTranspose, live --------------------------------------------

KERAS_CASES = GRID.sample(12, seed=15, keras_only=True)
# Named cases: strides 1-3, both paddings, output_padding, odd and even sizes.
KERAS_CASES += table(
    AXES,
    # kernel, strides, dilation_rate, padding, output_padding, data_format, hw, bias
    ((3, 3), 2, 1, "same", 1, "channels_last", (5, 5), True),
    ((4, 4), 2, 1, "same", None, "channels_last", (4, 4), False),
    ((2, 2), 3, 1, "valid", None, "channels_first", (5, 4), True),
    ((4, 4), 3, 1, "same", 2, "channels_last", (4, 5), True),
    ((3, 3), 1, 2, "same", None, "channels_first", (5, 5), True),
)


def keras_conv2d_transpose(x, kernel, bias, case):
    return layer_output(
        keras.layers.Conv2DTranspose,
        x,
        kernel,
        bias,
        filters=kernel.shape[2],
        kernel_size=case["kernel"],
        **kwargs(case),
    )


@pytest.mark.parametrize("case", KERAS_CASES, ids=case_id)
def test_matches_keras(case, impl):
    assert_matches_keras(FAMILY, keras_conv2d_transpose, case, impl)


def test_keras_grid_covers_strides_paddings_and_output_padding():
    seen = {
        (c["strides"], c["padding"], repr(c["output_padding"])) for c in KERAS_CASES
    }
    assert {s for s, _, _ in seen} >= {1, 2, 3}
    assert {p for _, p, _ in seen} == {"valid", "same"}
    assert {a for _, _, a in seen} >= {"None", "0", "1", "2"}
    sizes = {h % 2 for c in KERAS_CASES for h in c["hw"]}
    assert sizes == {0, 1}
    for key in ("data_format", "bias", "dilation_rate"):
        assert {repr(c[key]) for c in KERAS_CASES} == {repr(v) for v in AXES[key]}


# --- Gradients, transforms, both implementations agree ----------------------

# Strided with output padding, and explicit pads with dilation.
GRAD_CASES = table(
    AXES,
    # kernel, strides, dilation_rate, padding, output_padding, data_format, hw, bias
    ((3, 2), 2, 1, "same", 1, "channels_last", (3, 3), True),
    ((2, 3), (1, 2), (2, 1), ((0, 2), (1, 0)), None, "channels_first", (3, 4), True),
)


@pytest.mark.parametrize(
    "case,impl",
    [(GRAD_CASES[0], "lax"), (GRAD_CASES[1], "einsum")],
    ids=["lax", "einsum"],
)
def test_check_grads(case, impl):
    FAMILY.check_grads(case, impl, batch=1)


def test_jit_vmap_and_unbatched(impl):
    FAMILY.assert_batch_consistent(GRAD_CASES[0], impl, seed=8)


@st.composite
def configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = draw(
        st.tuples(
            st.tuples(st.integers(0, 3), st.integers(0, 3)),
            st.tuples(st.integers(0, 3), st.integers(0, 3)),
        )
    )
    op = draw(st.tuples(st.integers(0, sh - 1), st.integers(0, sw - 1)))
    h, w = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    spans = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    # Explicit pads: the output is (size - 1) * s + span - lo - hi + a.
    for size, s, span, (lo, hi), a in zip((h, w), (sh, sw), spans, pads, op):
        if (size - 1) * s + span - lo - hi + a < 1:
            pads = ((0, 0), (0, 0))
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    shape = (1, 2, h, w) if data_format == "channels_first" else (1, h, w, 2)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, 3, 2)).astype(np.float32)
    return (
        x,
        kernel,
        dict(
            strides=(sh, sw),
            padding=pads,
            output_padding=op,
            dilation_rate=(dh, dw),
            data_format=data_format,
        ),
    )


@settings(max_examples=10, deadline=None)
@given(configs())
def test_lax_and_einsum_agree(config):
    x, kernel, kw = config
    y_lax = jconv.conv2d_transpose(x, kernel, precision="highest", impl="lax", **kw)
    y_ein = jconv.conv2d_transpose(x, kernel, precision="highest", impl="einsum", **kw)
    assert_conv_close(y_lax, y_ein, reference_conv2d_transpose, x, kernel, **kw)
