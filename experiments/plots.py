"""Plots of a run, written into its workdir as PNG files (Agg backend).

Shared by the experiments (the benchmark draws its own charts with
`pyplot` and `write_figure`). Only the main process of a multi-process run
draws; every file is listed in the workdir's run marker before it is written,
so that `--overwrite` deletes it (`runner.own`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments import runner


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figure(fig, path, *, suptitle: str = "") -> pathlib.Path:
    """Lays out `fig`, writes it to `path` as a PNG and closes it."""
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    pyplot().close(fig)
    return path


def _save(fig, path, *, suptitle: str = "") -> pathlib.Path:
    """`write_figure`, with `path` listed in its workdir's marker first."""
    runner.own(path)
    return write_figure(fig, path, suptitle=suptitle)


def plot_curves(
    path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = True,
    logx: bool = False,
    title: str = "",
    styles: Mapping[str, str] | None = None,
) -> pathlib.Path:
    """Line plot of each `series[name]` against `x`, log y-axis by default.

    Non-positive values are dropped from a log axis (a loss of exactly 0).
    `styles` maps a series name to a matplotlib format string (`"o--"`).
    """
    if not runner.is_main_process():
        return pathlib.Path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.asarray(x, np.float64)
    styles = styles or {}
    for name, ys in series.items():
        ys = np.asarray(ys, np.float64)
        keep = (
            np.isfinite(ys) & ((ys > 0) if logy else True) & ((x > 0) if logx else True)
        )
        fmt = styles.get(name, ".-" if len(x) < 40 else "-")
        ax.plot(x[keep], ys[keep], fmt, label=name)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def plot_heatmaps(
    path,
    arrays: Mapping[str, Any],
    *,
    annotate: bool = True,
    fmt: str = "{:.3g}",
    title: str = "",
    share_scale: bool = True,
) -> pathlib.Path:
    """2D arrays side by side as heatmaps, each cell annotated with its value."""
    if not runner.is_main_process():
        return pathlib.Path(path)
    plt = pyplot()
    mats = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    n = len(mats)
    rows, cols = np.max([m.shape for m in mats.values()], axis=0)
    # Panels side by side; wide matrices (a multichannel kernel) one above another.
    w, h = max(3.2, 0.4 * cols + 1.2), max(3.0, 0.4 * rows + 0.8)
    stacked = cols > 2 * rows
    grid = (n, 1) if stacked else (1, n)
    size = (w, h * n) if stacked else (w * n, h)
    fig, axes = plt.subplots(*grid, figsize=size, dpi=100, squeeze=False)
    lo = min(m.min() for m in mats.values())
    hi = max(m.max() for m in mats.values())
    for ax, (name, m) in zip(axes.ravel(), mats.items()):
        vmin, vmax = (lo, hi) if share_scale else (m.min(), m.max())
        im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        if annotate and m.size <= 200:
            mid = (vmin + vmax) / 2
            for (i, j), v in np.ndenumerate(m):
                color = "black" if v > mid else "white"
                ax.text(j, i, fmt.format(v), ha="center", va="center",
                        fontsize=7, color=color)  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path, suptitle=title)


def plot_images(path, images: Mapping[str, Any], *, title: str = "") -> pathlib.Path:
    """Images side by side: 2D arrays in grey, `(H, W, 3)` arrays as RGB.

    Each image is scaled to its own range (a filter's output can be negative).
    """
    if not runner.is_main_process():
        return pathlib.Path(path)
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), dpi=100, squeeze=False)
    for ax, (name, img) in zip(axes[0], images.items()):
        img = np.asarray(img, np.float64)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim == 3:
            span = img.max() - img.min()
            ax.imshow((img - img.min()) / (span if span > 0 else 1.0))
        else:
            ax.imshow(img, cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    return _save(fig, path, suptitle=title)
