"""Closed-form least squares for a convolution's kernel: the patch matrix and
its minimum-norm solution.

A convolution of any spatial rank is linear in its kernel: stacking every
input window as a row gives a patch matrix `P` with `conv(x, k) == P @ k`
(flattened). Learning a
kernel from pairs `(x, y)` by least squares is then `min |P k - y|^2`, solved in
float64 by SVD: the rank of `P` says how many directions of the kernel the
data determine, its null space which ones they cannot.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jconv._padding import resolve_padding
from jconv._spec import RANKS, _positive_pair, spatial_layout


def _kernel_size(kernel_size, x_ndim: int) -> tuple[int, ...]:
    """`kernel_size` checked: one positive int per spatial axis, the rank read
    from its length (an int: one per spatial axis of the input)."""
    if isinstance(kernel_size, Sequence):
        rank = len(kernel_size)
        if rank not in RANKS:
            raise ValueError(
                f"`kernel_size` (={kernel_size!r}) must have 1, 2 or 3 entries, "
                "one per spatial axis"
            )
    else:
        rank = x_ndim - 2
        if rank not in RANKS:
            raise ValueError(
                f"`x` must have rank 3, 4 or 5 (N, *S, C_in) for an int "
                f"`kernel_size`; got rank {x_ndim}"
            )
    return _positive_pair(kernel_size, "kernel_size", rank)


def check_patch_input(x_shape, kernel_size) -> tuple[int, ...]:
    """The checks `patch_matrix` and `patch_matrix_jax` share: `x` of rank
    `2 + r` for an `r`-D `kernel_size`; returns the kernel size as `r` ints."""
    ks = _kernel_size(kernel_size, len(x_shape))
    rank = len(ks)
    if len(x_shape) != rank + 2:
        raise ValueError(
            f"`x` must have rank {rank + 2} (N, {spatial_layout(rank)}, C_in) "
            f"for a {rank}-D `kernel_size`; got shape {tuple(x_shape)}"
        )
    return ks


def patch_matrix(
    x,
    kernel_size,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    bias: bool = False,
) -> np.ndarray:
    """The matrix of input windows, one row per output position, in float64.

    For a convolution of any spatial rank `r` (read from `kernel_size`): rows
    run over `(n, *i)` of the output `(N, *S_out)` in row-major order, columns
    over `(*k, c)` of the kernel `(*K, C_in)`, so that::

        conv(x, k, b).reshape(-1, C_out) == P @ concat(k.reshape(-1, C_out), b)

    (with `bias=True` the last column of `P` is ones and `b` the last row).
    Per axis, `S_out = (S + lo + hi - (K - 1) * dilation - 1) // stride + 1`
    with the pads `(lo, hi)` of `padding`.

    Args:
      x: inputs `(N, *S, C_in)` (channels_last): `(N, W, C_in)` for 1-D,
        `(N, H, W, C_in)` for 2-D, `(N, D, H, W, C_in)` for 3-D.
      kernel_size: `(*K)`, one int per spatial axis (an int: the same on
        every axis of `x`).
      strides, padding, dilation_rate: as in `jconv.conv` (`padding` any of
        its forms, "causal" included).
      bias: append a column of ones for a bias term.

    Returns:
      `P`, shape `(N * prod(S_out), prod(K) * C_in + bias)`, float64.

    Raises:
      ValueError: `x` not of rank `r + 2`, `kernel_size` or a per-axis
        argument not positive, or a kernel wider than the padded input; named.

    Example (the document's image, "valid": four windows, nine weights):
      >>> from jconv import document
      >>> image = np.asarray(document.IMAGE, np.float64)[None, :, :, None]
      >>> p = patch_matrix(image, (3, 3))
      >>> p.shape
      (4, 9)
      >>> (p @ np.ravel(document.KERNEL)).tolist()
      [56.0, 76.0, 175.0, 302.0]

    Example (a 1-D signal, "causal": output `t` reads inputs `t - 1` and `t`):
      >>> signal = np.asarray([1.0, 2.0, 4.0])[None, :, None]
      >>> patch_matrix(signal, (2,), padding="causal").tolist()
      [[0.0, 1.0], [1.0, 2.0], [2.0, 4.0]]
    """
    x = np.asarray(x, np.float64)
    ks = check_patch_input(x.shape, kernel_size)
    rank = len(ks)
    strides = _positive_pair(strides, "strides", rank)
    dilation = _positive_pair(dilation_rate, "dilation_rate", rank)
    n, *sizes, c = x.shape
    pads = resolve_padding(tuple(sizes), ks, strides, dilation, padding)
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    spans = tuple((k - 1) * d + 1 for k, d in zip(ks, dilation))
    if any(p < s for p, s in zip(xp.shape[1:-1], spans)):
        raise ValueError(
            f"`kernel_size` {ks} spans more than the padded input "
            f"{xp.shape[1:-1]} (`padding`={padding!r})"
        )
    out = tuple((p - sp) // s + 1 for p, sp, s in zip(xp.shape[1:-1], spans, strides))
    # cols[n, *i, *k, c] = xp[n, *(i * stride + k * dilation), c]
    cols = np.empty((n, *out, *ks, c))
    every = (slice(None),) * (1 + rank)
    for offsets in np.ndindex(*ks):
        window = tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(offsets, dilation, out, strides)
        )
        cols[(*every, *offsets)] = xp[(slice(None), *window)]
    p = cols.reshape(n * math.prod(out), math.prod(ks) * c)
    if bias:
        p = np.concatenate([p, np.ones((p.shape[0], 1))], axis=1)
    return p


@dataclasses.dataclass(frozen=True)
class LstsqResult:
    """The minimum-norm least-squares solution of `a @ s ~= b`, and why.

    Attributes:
      solution: `(n, k)` (or `(n,)` for a vector `b`): of all minimisers of
        `|a s - b|^2`, the one of least norm (the only one when `rank == n`).
        Gradient descent started from zero converges to this one too: its
        iterates never leave the row space of `a`.
      rank: numerical rank of `a`.
      singular_values: of `a`, descending.
      null_space: `(n, n - rank)` orthonormal basis of the directions that
        leave `a @ s` unchanged: what the data cannot determine.
      residual: `|a s - b|^2` at the solution (summed over columns of `b`).
    """

    solution: np.ndarray
    rank: int
    singular_values: np.ndarray
    null_space: np.ndarray
    residual: float


def lstsq(a, b, *, rtol: float | None = None) -> LstsqResult:
    """Minimum-norm least squares by SVD in float64, with rank and null space.

    Args:
      a: `(m, n)` matrix (a `patch_matrix`).
      b: `(m,)` or `(m, k)` right-hand side(s).
      rtol: singular values below `rtol * s_max` count as zero; default
        `max(m, n) * eps(float64)`, NumPy's `matrix_rank`/`lstsq` rule.

    Returns:
      An `LstsqResult`.

    Example (four equations, nine unknowns: rank 4, five undetermined):
      >>> from jconv import document
      >>> image = np.asarray(document.IMAGE, np.float64)[None, :, :, None]
      >>> result = lstsq(patch_matrix(image, (3, 3)), np.ravel(document.VALID))
      >>> result.rank, result.null_space.shape
      (4, (9, 5))
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2:
        raise ValueError(f"`a` must be a matrix; got shape {a.shape}")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"`b` must have shape ({a.shape[0]},) or ({a.shape[0]}, k); "
            f"got shape {b.shape}"
        )
    m, n = a.shape
    # Full V only when needed for the null space of a wide matrix (m < n), so
    # that a tall one never builds an m x m U.
    u, s, vt = np.linalg.svd(a, full_matrices=m < n)
    if rtol is None:
        rtol = max(m, n) * np.finfo(np.float64).eps
    rank = int(np.sum(s > rtol * s[0])) if s.size and s[0] > 0 else 0
    b2 = b.reshape(m, -1)
    coef = (u[:, :rank].T @ b2) / s[:rank, None]
    solution = vt[:rank].T @ coef
    residual = float(np.sum((a @ solution - b2) ** 2))
    return LstsqResult(
        solution=solution.reshape((n, *b.shape[1:])),
        rank=rank,
        singular_values=s,
        null_space=vt[rank:].T,
        residual=residual,
    )
