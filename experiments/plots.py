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


def plot_panels(
    path,
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    styles: Mapping[str, str] | None = None,
    xlabel: str = "",
    title: str = "",
) -> pathlib.Path:
    """1-D arrays as lines on linear axes, one panel above another: panel
    `name` draws each `panels[name][label]` against its index (a signal over
    its samples, a filter over its taps).

    `styles` maps a series label to a matplotlib format string (`"o-"`);
    a panel with several series has a legend.
    """
    if not runner.is_main_process():
        return pathlib.Path(path)
    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n + 0.6), dpi=100, squeeze=False)
    styles = styles or {}
    for ax, (name, series) in zip(axes[:, 0], panels.items()):
        longest = 0
        for label, ys in series.items():
            ys = np.asarray(ys, np.float64)
            fmt = styles.get(label, ".-" if len(ys) < 40 else "-")
            ax.plot(np.arange(len(ys)), ys, fmt, label=label)
            longest = max(longest, len(ys))
        if longest <= 16:  # a filter's taps: whole numbers only
            ax.set_xticks(range(longest))
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(xlabel)
    return _save(fig, path, suptitle=title)


def plot_volume_slices(
    path,
    volumes: Mapping[str, Any],
    *,
    annotate: bool = True,
    fmt: str = "{:.3g}",
    title: str = "",
) -> pathlib.Path:
    """3D arrays `(D, H, W)` as heatmaps of their depth slices: one row per
    volume (each on its own colour scale), one column per slice `d`, each
    cell annotated with its value while a slice has at most 25 cells."""
    if not runner.is_main_process():
        return pathlib.Path(path)
    plt = pyplot()
    vols = {k: np.asarray(v, np.float64) for k, v in volumes.items()}
    depth = max(v.shape[0] for v in vols.values())
    rows, cols = np.max([v.shape[1:] for v in vols.values()], axis=0)
    w, h = max(2.4, 0.45 * cols + 0.9), max(2.2, 0.45 * rows + 0.7)
    fig, axes = plt.subplots(
        len(vols), depth, figsize=(w * depth, h * len(vols)), dpi=100, squeeze=False
    )
    for row, (name, v) in zip(axes, vols.items()):
        vmin, vmax = v.min(), v.max()
        if vmin == vmax:  # a constant (a box kernel): mid-scale, not noise
            vmin, vmax = vmin - 1, vmax + 1
        mid = (vmin + vmax) / 2
        for d, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if d >= v.shape[0]:
                ax.axis("off")
                continue
            im = ax.imshow(v[d], cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_title(f"{name}, d={d}", fontsize=9)
            if annotate and v[d].size <= 25:
                for (i, j), value in np.ndenumerate(v[d]):
                    color = "black" if value > mid else "white"
                    ax.text(j, i, fmt.format(value), ha="center", va="center",
                            fontsize=7, color=color)  # fmt: skip
        # No shared exponent above the bar: it would cover the next title.
        fig.colorbar(im, ax=row[-1], fraction=0.046, pad=0.04, format="%.2g")
    return _save(fig, path, suptitle=title)
