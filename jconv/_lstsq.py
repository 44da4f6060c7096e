"""Closed-form least squares for a convolution's kernel: the patch matrix and
its minimum-norm solution.

A convolution is linear in its kernel: stacking every input window as a row
gives a patch matrix `P` with `conv2d(x, k) == P @ k` (flattened). Learning a
kernel from pairs `(x, y)` by least squares is then `min |P k - y|^2`, solved in
float64 by SVD: the rank of `P` says how many directions of the kernel the
data determine, its null space which ones they cannot.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jconv._padding import resolve_padding
from jconv._spec import _positive_pair


def patch_matrix(
    x_nhwc,
    kernel_hw,
    *,
    strides=1,
    padding="valid",
    dilation_rate=1,
    bias: bool = False,
) -> np.ndarray:
    """The matrix of input windows, one row per output pixel, in float64.

    Rows run over `(n, i, j)` of the output `(N, H_out, W_out)` in row-major
    order; columns over `(kh, kw, c)` of the kernel `(KH, KW, C_in)`, so that::

        conv2d(x, k, b).reshape(-1, C_out) == P @ concat(k.reshape(-1, C_out), b)

    (with `bias=True` the last column of `P` is ones and `b` the last row).

    Args:
      x_nhwc: input images `(N, H, W, C_in)` (channels_last).
      kernel_hw: `(KH, KW)`.
      strides, padding, dilation_rate: as in `conv2d`.
      bias: append a column of ones for a bias term.

    Returns:
      `P`, shape `(N * H_out * W_out, KH * KW * C_in + bias)`, float64.

    Example (the document's image, "valid": four windows, nine weights):
      >>> from jconv import document
      >>> image = np.asarray(document.IMAGE, np.float64)[None, :, :, None]
      >>> p = patch_matrix(image, (3, 3))
      >>> p.shape
      (4, 9)
      >>> (p @ np.ravel(document.KERNEL)).tolist()
      [56.0, 76.0, 175.0, 302.0]
    """
    x_nhwc = np.asarray(x_nhwc, np.float64)
    if x_nhwc.ndim != 4:
        raise ValueError(
            f"`x_nhwc` must have rank 4 (N, H, W, C_in); got shape {x_nhwc.shape}"
        )
    kh, kw = _positive_pair(kernel_hw, "kernel_hw")
    sh, sw = _positive_pair(strides, "strides")
    dh, dw = _positive_pair(dilation_rate, "dilation_rate")
    n, h, w, c = x_nhwc.shape
    (top, bottom), (left, right) = resolve_padding(
        (h, w), (kh, kw), (sh, sw), (dh, dw), padding
    )
    xp = np.pad(x_nhwc, ((0, 0), (top, bottom), (left, right), (0, 0)))
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if xp.shape[1] < span_h or xp.shape[2] < span_w:
        raise ValueError(
            f"`kernel_hw` {(kh, kw)} spans more than the padded input "
            f"{xp.shape[1:3]} (`padding`={padding!r})"
        )
    h_out = (xp.shape[1] - span_h) // sh + 1
    w_out = (xp.shape[2] - span_w) // sw + 1
    # cols[n, i, j, a, b, c] = xp[n, i * sh + a * dh, j * sw + b * dw, c]
    cols = np.empty((n, h_out, w_out, kh, kw, c))
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            cols[:, :, :, a, b, :] = xp[
                :,
                r0 : r0 + (h_out - 1) * sh + 1 : sh,
                c0 : c0 + (w_out - 1) * sw + 1 : sw,
            ]
    p = cols.reshape(n * h_out * w_out, kh * kw * c)
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
