"""`conv2d` by Winograd's minimal filtering F(m x m, 3 x 3), as explicit
contractions.

Restrictions (`supports`): a 3x3 kernel, unit strides, no dilation, no input
stretching (`ConvSpec.lhs_dilation`), zero padding. Any pads (asymmetric, or
negative: a crop), any `groups`, depthwise included.

Algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016). For an output tile of m x m pixels and its (m + 2) x (m + 2) input tile
`d`, with `alpha = m + 2`:

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

where `(.)` is elementwise over the alpha x alpha "tile positions" and a sum
over input channels: one batched GEMM `(P, M, C) x (P, C, O)` with
`P = alpha**2` positions and `M = N * tiles` rows. The input is padded by
`spec.pads` plus zeros at the bottom/right up to a whole number of tiles;
tile `(t, s)` starts at padded pixel `(m t, m s)`, so input-tile entry
`(k, l)` of every tile at once is a strided slice of the padded image
(offset `(k, l)`, stride m): no gather, no tile tensor. The transforms are
sums of `coef * slice` over the small matrices' nonzero entries, applied one
axis at a time (elementwise code XLA fuses; a prototype measured it faster
than small einsums). Between the stages, arrays are split and concatenated
rather than indexed, so that their transposes in the gradients are
concatenates and splits, not sums of zero-padded arrays, which XLA's CPU
backend fused badly (up to 10x slower gradients); tile 2 cuts its columns
by reshaping into blocks of m instead of strided slices, for the same
reason. The output tiles are stacked, reshaped into the image and cropped to
`spec.out_hw`. Groups give the GEMM a group axis (as
`jconv._einsum`'s im2col); depthwise (one input channel a group) is an
elementwise product.

The matrices come from the interpolation points by exact `Fraction`
arithmetic, once per tile (Toom-Cook, the convention of Lavin's `wincnn`):
finite points `p_i` and infinity; `A^T[a, i] = p_i**a`, `G[i, j] = p_i**j / f_i`
with `f_i = prod_{k != i} (p_i - p_k)`, `B^T[i]` the coefficients of
`prod_{k != i} (x - p_k)`; the point at infinity has `A^T = e_{m-1}`,
`G = e_2` and `B^T` the coefficients of `prod_k (x - p_k)`. Points: F(2)
0, 1, -1; F(4) 0, +-1, +-2; F(6) 0, +-1, +-2, +-1/2.

Precision: bfloat16/float16 inputs are transformed and contracted in float32,
the result cast back; float32 stays float32, float64 stays float64, complex
stays complex (the transforms have real coefficients); a wider
`preferred_element_type` widens all of it, and the result is cast to it.
`precision` goes to the GEMM. F(2)'s matrices are dyadic (0, +-1, +-1/2), so
on small-integer data it is exact, bit for bit; F(4)'s `G` divides by 6, 12
and 24, F(6)'s by 9, 45 and 90, and they are not. Error, measured on
(4, 28, 28, 64) x (3, 3, 64, 64), padding "same", worst of 3 seeds:
max |y - y_ref64| / max |y_ref64| (and / max sum|products|, the direct
sum's scale), y_ref64 the float64 reference on the same (rounded) inputs:

    | tile      | f32, uniform [-1, 1] | f32, normal       | bf16 in/out, both |
    |-----------|----------------------|-------------------|-------------------|
    | 2         | 4.0e-7 (9.1e-8)      | 4.7e-7 (1.1e-7)   | 3.5e-3 (7.4e-4)   |
    | 4         | 8.0e-6 (1.6e-6)      | 6.2e-6 (1.6e-6)   | 3.5e-3 (7.4e-4)   |
    | 6         | 1.0e-5 (2.3e-6)      | 1.1e-5 (2.6e-6)   | 3.5e-3 (7.4e-4)   |
    | lax conv  | 9.0e-7 (2.1e-7)      | 9.2e-7 (2.2e-7)   | 3.5e-3 (7.4e-4)   |

In float32 eps (2**-23) times max sum|products|: 0.9, 14 and 22 (lax: 1.9);
`tests/test_winograd.py` asserts 4, 64 and 96. In bfloat16 the output's own
rounding (at most 2**-8 relative) dominates: every tile and lax give the same
bfloat16 values.

Speed: jit, CPU (2 cores, AMD EPYC Zen 4, jax 0.10.2), float32, padding
"same", medians of 9 and 11 interleaved repeats in two runs (another
process sharing the machine at times: the ratios vary by about +-0.15), as a
multiple of `lax.conv_general_dilated`'s time (NHWC/HWIO, JAX's own
derivatives); forward, and forward+backward (the gradient of
`sum(y * cotangent)` w.r.t. input and kernel):

    | input -> C_out, 3x3          | lax ms | F(2)      | F(4)      | F(6)      |
    |------------------------------|--------|-----------|-----------|-----------|
    | (16, 56, 56, 64) -> 64   fwd |     40 | 1.5       | 1.3       | 1.1-1.2   |
    |                    fwd+bwd   |    107 | 1.0-1.1   | 0.7-0.9   | 0.65-0.8  |
    | (16, 28, 28, 128) -> 128 fwd |     21 | 1.6-1.7   | 0.7-0.8   | 0.8-0.9   |
    |                    fwd+bwd   |  54-67 | 0.9-1.2   | 0.7-0.8   | 0.7-0.9   |
    | (16, 14, 14, 256) -> 256 fwd |     22 | 0.6-0.8   | 0.5-0.55  | 0.6-1.1   |
    |                    fwd+bwd   |     52 | 0.8-0.9   | 0.55-0.75 | 0.8-0.85  |
    | depthwise (16, 28, 28, 128)  |  49-63 | 0.2-0.25  | 0.1       | 0.1       |
    |   groups=128       fwd+bwd   |    100 | 0.4       | 0.35      | 0.3-0.35  |

F(4) is the best tile or close to it everywhere; F(6) gains on large images
(fewer, larger tiles), F(2) (2.25x fewer multiplications, 4x the input in
the transformed domain) is memory-bound and only wins where lax is slow
(depthwise, 14x14x256). XLA's own depthwise convolution is slow on CPU,
hence the large gains there.

Backward passes are plain autodiff of these expressions: JAX transposes the
slices, sums and GEMM, so the gradients' GEMMs run in the transformed domain
too. `jit`, `vmap`, `jax.grad` and `jax.jvp` work as on any JAX function.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import jax.numpy as jnp
from jax import lax

from jconv._spec import ConvSpec, check_allocatable, empty_output

TILES = (2, 4, 6)
KERNEL_HW = (3, 3)

_POINTS = {
    2: (0, 1, -1),
    4: (0, 1, -1, 2, -2),
    6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}


def _poly_times_root(coefs, root):
    """Ascending coefficients of `poly(x) * (x - root)`."""
    shifted = [Fraction(0), *coefs]
    return [s - root * c for s, c in zip(shifted, [*coefs, Fraction(0)])]


def _poly_from_roots(roots, length):
    """Ascending coefficients of `prod (x - root)`, zero-padded to `length`."""
    coefs = [Fraction(1)]
    for root in roots:
        coefs = _poly_times_root(coefs, root)
    return coefs + [Fraction(0)] * (length - len(coefs))


@functools.cache
def matrices(tile: int):
    """`(A^T, G, B^T)` of F(tile, 3) as nested tuples of `Fraction`s:
    `(tile, alpha)`, `(alpha, 3)`, `(alpha, alpha)`, `alpha = tile + 2`."""
    points = [Fraction(p) for p in _POINTS[tile]]
    alpha = tile + 2
    a_t = [[p**a for p in points] + [Fraction(a == tile - 1)] for a in range(tile)]
    g = []
    b_t = []
    for i, p in enumerate(points):
        others = points[:i] + points[i + 1 :]
        f = Fraction(1)
        for q in others:
            f *= p - q
        g.append([p**j / f for j in range(3)])
        b_t.append(_poly_from_roots(others, alpha))
    g.append([Fraction(0), Fraction(0), Fraction(1)])
    b_t.append(_poly_from_roots(points, alpha))
    as_tuple = lambda rows: tuple(tuple(row) for row in rows)
    return as_tuple(a_t), as_tuple(g), as_tuple(b_t)


def _combine(coefs, terms):
    """`sum_k coefs[k] * terms[k]` over the nonzero coefficients; +-1 add or
    subtract without a multiply."""
    total = None
    for c, term in zip(coefs, terms):
        if c == 0:
            continue
        if abs(c) != 1:
            term = float(abs(c)) * term
        if total is None:
            total = term if c > 0 else -term
        else:
            total = total + term if c > 0 else total - term
    return total


def _unsupported(kernel_hwio_shape, spec: ConvSpec) -> str | None:
    """Why F(m x m, 3 x 3) cannot compute this convolution, or None."""
    if spec.rank != 2:
        return (
            f"the convolution has {spec.rank} spatial axes (kernel shape "
            f"{tuple(kernel_hwio_shape)}); Winograd F(m x m, 3 x 3) is a 2D "
            f"algorithm"
        )
    if tuple(kernel_hwio_shape[:2]) != KERNEL_HW:
        return (
            f"`kernel` spatial size (={tuple(kernel_hwio_shape[:2])}, kernel shape "
            f"{tuple(kernel_hwio_shape)}) must be {KERNEL_HW}"
        )
    for name, value in (
        ("strides", spec.strides),
        ("dilation_rate", spec.dilation_rate),
        ("lhs_dilation", spec.lhs_dilation),
    ):
        if tuple(value) != (1, 1):
            return f"`{name}` (={tuple(value)}) must be (1, 1)"
    if spec.padding_mode != "zeros":
        return f"`padding_mode` (={spec.padding_mode!r}) must be 'zeros'"
    return None


def supports(kernel_hwio_shape, spec: ConvSpec) -> bool:
    """Whether `conv2d_winograd_core` computes this convolution: a 3x3 kernel,
    unit strides, no dilation of kernel or input, zero pads of any size."""
    return _unsupported(kernel_hwio_shape, spec) is None


def _strided_cut(a, axis: int, tiles: int, tile: int):
    """Entry k = 0 .. tile + 1 of every tile along `axis`: `tile + 2` strided
    slices, pixels `k + tile * t` for t < `tiles`."""
    return [
        lax.slice_in_dim(a, k, k + (tiles - 1) * tile + 1, tile, axis=axis)
        for k in range(tile + 2)
    ]


def _block_cut(a, axis: int, tiles: int, tile: int):
    """`_strided_cut` from blocks: `axis` (at least `(tiles + 1) * tile` long;
    tile 2's padded length is exactly that) reshaped into `(tiles + 1, tile)`
    and split; entries `tile`, `tile + 1` are entries 0, 1 of the next block."""
    blocks = lax.slice_in_dim(a, 0, (tiles + 1) * tile, axis=axis)
    blocks = blocks.reshape(*a.shape[:axis], tiles + 1, tile, *a.shape[axis + 1 :])
    pieces = [p.squeeze(axis + 1) for p in lax.split(blocks, [1] * tile, axis=axis + 1)]
    return [lax.slice_in_dim(p, 0, tiles, axis=axis) for p in pieces] + [
        lax.slice_in_dim(p, 1, tiles + 1, axis=axis) for p in pieces[:2]
    ]


def _input_transform(x_padded_nhwc, b_t, tiles_hw, tile: int):
    """`B^T d B` for every tile at once, rows then columns: `(P, M, C)`,
    `P = alpha**2` tile positions, `M = N * th * tw` tiles."""
    (th, tw), alpha = tiles_hw, tile + 2
    n, c = x_padded_nhwc.shape[0], x_padded_nhwc.shape[-1]
    rows = _strided_cut(x_padded_nhwc, 1, th, tile)
    t_anhwc = jnp.stack([_combine(b_i, rows) for b_i in b_t])
    # The column cut's transpose (in the input gradient) is a sum of padded
    # arrays. XLA (CPU, jax 0.10.2) fuses it into one loop for strided slices
    # with tile >= 4, but for tile 2 writes out one padded array per offset:
    # that gradient ran 3.5-10x slower than with the block cut, which in turn
    # is 1.5-10x slower than strided slices for tile >= 4 (measured on the
    # benchmark shapes of the module doc).
    cut = _block_cut if tile == 2 else _strided_cut
    cols = cut(t_anhwc, 3, tw, tile)
    v_aanhwc = jnp.stack([_combine(b_j, cols) for b_j in b_t], axis=1)
    return v_aanhwc.reshape(alpha * alpha, n * th * tw, c)


def _kernel_transform(k_hwio, g):
    """`G k G^T`: `(P, C_in // groups, C_out)`."""
    alpha = len(g)
    rows = lax.split(k_hwio, [1, 1, 1], axis=0)
    r_a3io = jnp.concatenate([_combine(g_i, rows) for g_i in g], axis=0)
    cols = lax.split(r_a3io, [1, 1, 1], axis=1)
    u_aaio = jnp.concatenate([_combine(g_j, cols) for g_j in g], axis=1)
    return u_aaio.reshape(alpha * alpha, *k_hwio.shape[2:])


def _output_transform(z_pmo, a_t, batch_tiles):
    """`A^T Z A` for every tile, assembled: `(N, th * m, tw * m, O)`.

    Splits and concatenates rather than indexing: their transposes (in the
    gradients) are concatenates and splits, where indexing's would be pads."""
    n, th, tw = batch_tiles
    tile, alpha = len(a_t), len(a_t[0])
    c_out = z_pmo.shape[-1]
    z = lax.split(z_pmo.reshape(alpha, alpha, -1, c_out), [1] * alpha, axis=0)
    s_mamo = jnp.concatenate([_combine(a_a, z) for a_a in a_t], axis=0)
    s = lax.split(s_mamo, [1] * alpha, axis=1)
    y_mmmo = jnp.concatenate([_combine(a_b, s) for a_b in a_t], axis=1)
    y = y_mmmo.reshape(tile, tile, n, th, tw, c_out).transpose(2, 3, 0, 4, 1, 5)
    return y.reshape(n, th * tile, tw * tile, c_out)


def _contract(v_pmc, u_pco, groups: int, precision):
    """Per tile position, the sum over input channels: `(P, M, C_out)`."""
    p, m, c_in = v_pmc.shape
    c_group, c_out = u_pco.shape[1:]
    if groups == 1:
        return jnp.einsum("pmc,pco->pmo", v_pmc, u_pco, precision=precision)
    if c_group == 1:
        # Depthwise: nothing to contract. One product per filter of the
        # channel multiplier: with a multiplier axis on the product, XLA's
        # kernel gradient (a sum over M) ran 10-40x slower.
        multiplier = c_out // c_in
        u_pqc = u_pco.reshape(p, c_in, multiplier).transpose(0, 2, 1)
        filters = lax.split(u_pqc, [1] * multiplier, axis=1)
        z_pmcq = jnp.stack([v_pmc * u_p1c for u_p1c in filters], axis=-1)
        return z_pmcq.reshape(p, m, c_out)
    # Keras/lax grouping: both channel axes split group-major.
    v_pmgc = v_pmc.reshape(p, m, groups, c_group)
    u_pcgo = u_pco.reshape(p, c_group, groups, c_out // groups)
    z_pmgo = jnp.einsum("pmgc,pcgo->pmgo", v_pmgc, u_pcgo, precision=precision)
    return z_pmgo.reshape(p, m, c_out)


def conv2d_winograd_core(
    x,
    kernel_hwio,
    spec: ConvSpec,
    precision,
    tile: int = 4,
    *,
    preferred_element_type=None,
):
    """Batched convolution of `x` (NHWC or NCHW as `spec` says), no bias, by
    Winograd F(tile x tile, 3 x 3).

    Args:
      x: `(N, H, W, C_in)`, or `(N, C_in, H, W)` if `spec.channels_first`.
      kernel_hwio: `(3, 3, C_in // groups, C_out)`.
      spec: the convolution; `supports(kernel_hwio.shape, spec)` must hold.
      precision: passed to the GEMM (`jnp.einsum`).
      tile: output tile size m, one of `TILES`.
      preferred_element_type: None, or a dtype at least as wide as `x`'s to
        transform, contract and return in.

    Returns:
      The cross-correlation (no kernel flip), `(N, H_out, W_out, C_out)` (or
      channels first) with `(H_out, W_out) = spec.out_hw`,
      `H_out = H + pad_top + pad_bottom - 2`; dtype of `x`, or
      `preferred_element_type`. An empty one (`N = 0`, or no pixels on an
      axis) is zeros.

    Raises:
      ValueError: `tile` not in `TILES`, or a convolution `supports` refuses
        (the message names the argument), or buffers no device could hold.

    >>> import jax, jax.numpy as jnp
    >>> from jconv._spec import conv_spec
    >>> x, k = jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1))
    >>> spec = conv_spec(x.shape, k.shape, None, strides=1, padding="valid",
    ...                  dilation_rate=1, groups=1, data_format="channels_last")
    >>> winograd = jax.jit(conv2d_winograd_core, static_argnums=(2, 3, 4))
    >>> winograd(x, k, spec, None, 2)[0, :, :, 0]
    Array([[9., 9.],
           [9., 9.]], dtype=float32)
    """
    if tile not in TILES:
        raise ValueError(f"`tile` (={tile!r}) must be one of {TILES}")
    reason = _unsupported(kernel_hwio.shape, spec)
    if reason is not None:
        raise ValueError(f"Winograd F(m x m, 3 x 3) cannot run this: {reason}")
    empty = empty_output(x, kernel_hwio, spec, preferred_element_type)
    if empty is not None:
        return empty  # no tile
    a_t, g, b_t = matrices(tile)
    x_nhwc = jnp.moveaxis(x, 1, 3) if spec.channels_first else x
    n, c_in = x_nhwc.shape[0], x_nhwc.shape[-1]
    c_out = kernel_hwio.shape[-1]
    ho, wo = spec.out_hw
    th, tw = -(-ho // tile), -(-wo // tile)
    alpha = tile + 2
    compute = jnp.promote_types(x.dtype, jnp.float32)
    if preferred_element_type is not None:
        compute = jnp.promote_types(compute, preferred_element_type)
    widest = max(c_in, c_out)
    check_allocatable(
        "its transformed tiles",
        (alpha * alpha, n * th * tw, widest),
        compute.itemsize,
        lambda: (
            f"Winograd F({tile}x{tile}, 3x3) on an input of shape {x.shape} "
            f"with a kernel of shape {kernel_hwio.shape}"
        ),
    )
    # Extra zeros at the bottom/right make whole tiles. Merged into a negative
    # pad (a crop) they uncrop instead; those rows and columns only reach
    # outputs past `out_hw`, which are cropped away.
    (top, bottom), (left, right) = spec.pads
    pad_config = [
        (0, 0, 0),
        (top, bottom + th * tile - ho, 0),
        (left, right + tw * tile - wo, 0),
        (0, 0, 0),
    ]
    x_padded = lax.pad(x_nhwc.astype(compute), jnp.zeros((), compute), pad_config)
    v_pmc = _input_transform(x_padded, b_t, (th, tw), tile)
    u_pco = _kernel_transform(kernel_hwio.astype(compute), g)
    z_pmo = _contract(v_pmc, u_pco, spec.groups, precision)
    y_nhwc = _output_transform(z_pmo, a_t, (n, th, tw))[:, :ho, :wo]
    y_nhwc = y_nhwc.astype(
        x.dtype if preferred_element_type is None else preferred_element_type
    )
    return jnp.moveaxis(y_nhwc, 3, 1) if spec.channels_first else y_nhwc
