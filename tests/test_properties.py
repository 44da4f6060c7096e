"""Hypothesis: for any valid configuration, lax and einsum agree."""

import numpy as np
from _tol import assert_conv_close
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_conv2d

import jconv

pairs = lambda lo, hi: st.one_of(
    st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi))
)
explicit_pads = st.one_of(
    st.integers(0, 3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kwargs = dict(
        strides=draw(pairs(1, 3)),
        dilation_rate=draw(pairs(1, 3)),
        padding=draw(st.one_of(st.sampled_from(["valid", "same"]), explicit_pads)),
        groups=groups,
        data_format=draw(st.sampled_from(["channels_last", "channels_first"])),
    )
    d = kwargs["dilation_rate"]
    dh, dw = (d, d) if isinstance(d, int) else d
    # Large enough for the dilated kernel without padding.
    h = draw(st.integers((kh - 1) * dh + 1, (kh - 1) * dh + 6))
    w = draw(st.integers((kw - 1) * dw + 1, (kw - 1) * dw + 6))
    batch = draw(st.sampled_from([None, 1, 2]))
    spatial = (
        (c_in, h, w) if kwargs["data_format"] == "channels_first" else (h, w, c_in)
    )
    x_shape = spatial if batch is None else (batch, *spatial)
    seed = draw(st.integers(0, 2**31 - 1))
    use_bias = draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, c_in // groups, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32) if use_bias else None
    return x, kernel, bias, kwargs


@settings(max_examples=40, deadline=None)
@given(configs())
def test_lax_and_einsum_agree(config):
    x, kernel, bias, kwargs = config
    y_lax = jconv.conv2d_lax(x, kernel, bias, precision="highest", **kwargs)
    y_einsum = jconv.conv2d_einsum(x, kernel, bias, precision="highest", **kwargs)
    assert y_lax.shape == y_einsum.shape
    assert_conv_close(y_lax, y_einsum, reference_conv2d, x, kernel, bias, **kwargs)
