"""The kernel-learning race's data and its scoring, in NumPy (float64).

Both sides (jconv and Keras) load the same arrays and are scored by the same
functions, so "equal final error" compares like with like.
"""

from __future__ import annotations

import numpy as np


def conv_valid(x_nhw: np.ndarray, k_hw: np.ndarray) -> np.ndarray:
    """Single-channel "valid" cross-correlation, float64, by shift-and-add:
    `y[n, i, j] = sum_{a, b} x[n, i + a, j + b] * k[a, b]`."""
    x = np.asarray(x_nhw, np.float64)
    k = np.asarray(k_hw, np.float64)
    kh, kw = k.shape
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((x.shape[0], ho, wo))
    for a in range(kh):
        for b in range(kw):
            y += k[a, b] * x[:, a : a + ho, b : b + wo]
    return y


def make_race_data(true_kernel, n_images: int, hw: tuple[int, int], seed: int):
    """Random images (float32, `(N, H, W, 1)`) and their exact targets
    (`(N, H-KH+1, W-KW+1, 1)`) under `true_kernel`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_images, *hw), dtype=np.float32)
    t = conv_valid(x, true_kernel).astype(np.float32)
    return {
        "x": x[..., None],
        "t": t[..., None],
        "true_kernel": np.asarray(true_kernel, np.float32),
    }


def score(data, kernel_hw) -> dict:
    """Kernel max-abs error and mean squared residual, in float64."""
    k = np.asarray(kernel_hw, np.float64).reshape(data["true_kernel"].shape)
    residual = conv_valid(data["x"][..., 0], k) - np.asarray(data["t"][..., 0])
    return {
        "kernel_max_abs_error": float(np.abs(k - data["true_kernel"]).max()),
        "final_loss": float(np.mean(residual**2)),
        "kernel": k.tolist(),
    }
