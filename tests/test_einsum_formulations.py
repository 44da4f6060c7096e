"""`impl="einsum"` picks one of three formulations (and batch chunking) from
static shapes: each branch is forced here, checked to run, and compared with
the float64 reference and with lax, gradients included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_conv_close, assert_sums_close
from reference import reference_conv2d, reference_conv2d_transpose

import jconv
from jconv import _einsum

# (name, c_in, c_out, groups, kernel, strides, dilation, formulation)
CASES = [
    ("depthwise", 4, 8, 4, (3, 3), 2, 1, "tap_sum"),
    ("one_channel", 1, 4, 1, (3, 3), 1, 2, "transposed"),
    ("dense", 8, 6, 1, (3, 2), (1, 2), 1, "im2col"),
    ("grouped", 8, 6, 2, (3, 3), 1, (2, 1), "im2col"),
]
DATA_FORMATS = ["channels_last", "channels_first"]


def _inputs(n, c_in, c_out, groups, kernel, data_format, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, 9, 8, c_in) if data_format == "channels_last" else (n, c_in, 9, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal((*kernel, c_in // groups, c_out)).astype(np.float32)
    return x, k


def _recording(monkeypatch):
    """Wraps every formulation so the test sees which ones ran."""
    ran = []
    for name, fn in list(_einsum.FORMULATIONS.items()):

        def wrapped(*args, _fn=fn, _name=name):
            ran.append(_name)
            return _fn(*args)

        monkeypatch.setitem(_einsum.FORMULATIONS, name, wrapped)
    return ran


def _conv(impl, groups, strides, dilation, data_format):
    def f(x, k):
        return jconv.conv2d(
            x,
            k,
            strides=strides,
            padding="same",
            dilation_rate=dilation,
            groups=groups,
            data_format=data_format,
            impl=impl,
        )

    return f


def _check(x, k, groups, strides, dilation, data_format):
    f_einsum = _conv("einsum", groups, strides, dilation, data_format)
    f_lax = _conv("lax", groups, strides, dilation, data_format)
    y = f_einsum(x, k)
    kw = dict(
        strides=strides,
        padding="same",
        dilation_rate=dilation,
        groups=groups,
        data_format=data_format,
    )
    want = reference_conv2d(x, k, **kw)
    assert_conv_close(y, want, reference_conv2d, x, k, **kw)
    assert_conv_close(y, f_lax(x, k), reference_conv2d, x, k, **kw)
    ct = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    _, vjp_einsum = jax.vjp(f_einsum, x, k)
    _, vjp_lax = jax.vjp(f_lax, x, k)
    (got_x, got_k), (ref_x, ref_k) = vjp_einsum(ct), vjp_lax(ct)
    # Scalar bounds: an input-gradient element sums at most KH*KW*C_out/groups
    # products kernel*ct, a kernel-gradient element N*H_out*W_out products x*ct.
    kh, kw_, _, c_out = k.shape
    terms_x = kh * kw_ * c_out // groups
    terms_k = ct.size // c_out
    big_ct = np.abs(ct).max()
    assert_sums_close(got_x, ref_x, terms_x * np.abs(k).max() * big_ct, terms_x)
    assert_sums_close(got_k, ref_k, terms_k * np.abs(x).max() * big_ct, terms_k)


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_formulation_runs_and_agrees(case, data_format, monkeypatch):
    _, c_in, c_out, groups, kernel, strides, dilation, formulation = case
    assert _einsum.choose_formulation(c_in, c_out, groups, kernel) == formulation
    ran = _recording(monkeypatch)
    x, k = _inputs(3, c_in, c_out, groups, kernel, data_format)
    _check(x, k, groups, strides, dilation, data_format)
    assert set(ran) == {formulation}


def test_rule_boundaries():
    # P * C_in and C_out at the thresholds are still transposed, one more is not.
    assert (_einsum.SMALL_CONTRACTION, _einsum.SMALL_OUTPUT) == (32, 8)
    assert _einsum.choose_formulation(2, 8, 1, (4, 4)) == "transposed"
    assert _einsum.choose_formulation(3, 8, 1, (3, 4)) == "im2col"
    assert _einsum.choose_formulation(1, 9, 1, (3, 3)) == "im2col"
    # One input channel without groups is a dense conv, not a depthwise one.
    assert _einsum.choose_formulation(1, 1, 1, (7, 7)) == "im2col"
    # Groups with several channels each stay a (grouped) GEMM.
    assert _einsum.choose_formulation(8, 8, 4, (3, 3)) == "im2col"
    assert _einsum.choose_formulation(8, 16, 8, (3, 3)) == "tap_sum"


def test_batch_chunks_fewest_divisor_within_budget():
    budget = _einsum.WINDOW_BUDGET_BYTES
    assert _einsum.batch_chunks(16, budget) == 1
    assert _einsum.batch_chunks(16, budget + 1) == 2
    assert _einsum.batch_chunks(6, 5 * budget) == 6
    assert _einsum.batch_chunks(7, 2 * budget) == 7  # prime: one image a chunk


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@pytest.mark.parametrize("groups", [1, 2])
def test_chunked_im2col_agrees(groups, data_format, monkeypatch):
    # A tiny budget forces 3 chunks of 2 images (each chunk's buffer is
    # 2 * 9 * 8 * 9 * 8 * 4 bytes = 41 KiB).
    monkeypatch.setattr(_einsum, "WINDOW_BUDGET_BYTES", 48 * 2**10)
    n, c_in, c_out = 6, 8, 6
    assert _einsum.batch_chunks(n, n * 9 * 8 * 9 * c_in * 4) == 3
    ran = _recording(monkeypatch)
    x, k = _inputs(n, c_in, c_out, groups, (3, 3), data_format, seed=2)
    # A chunked program is a scan: make sure jit sees it, not a cached trace.
    jax.clear_caches()
    _check(x, k, groups, 1, 1, data_format)
    assert set(ran) == {"im2col"}
    hlo = jax.jit(_conv("einsum", groups, 1, 1, data_format)).lower(x, k).as_text()
    assert "while" in hlo


def test_transposed_conv_uses_transposed_product(monkeypatch):
    # conv2d_transpose reaches the core with lhs_dilation; one channel in.
    ran = _recording(monkeypatch)
    x, k = _inputs(2, 1, 3, 1, (3, 3), "channels_last", seed=3)
    k_t = np.ascontiguousarray(k.transpose(0, 1, 3, 2))  # (KH, KW, C_out, C_in)
    y = jconv.conv2d_transpose(jnp.asarray(x), k_t, strides=2, impl="einsum")
    want = reference_conv2d_transpose(x, k_t, strides=2)
    assert_conv_close(y, want, reference_conv2d_transpose, x, k_t, strides=2)
    assert set(ran) == {"transposed"}
