"""The documentation's figures, drawn from what jconv computes.

Every number and every size in these pictures comes from a call to jconv
made while the figure is drawn: the tutorial's sums are `jconv.conv2d`'s
output, the padding rules' pads are `jconv.resolve_padding`'s and their
output lengths the shapes `jconv.conv1d` returns, the padded signals of the
padding modes are a 1-tap identity convolution's output. A change to the
library changes the pictures; nothing is copied into them by hand.

As a Sphinx extension it writes the SVG files into `docs/_generated/` when
the build starts (`make docs`); the pages include them from there.
`write_figures(directory)` does the same outside Sphinx (the tests call it).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

import jconv
from jconv import document

# Colours: input cells, pads, the highlighted window, outputs, an error.
INPUT = "#dbe9f6"
PAD = "#eeeeee"
WINDOW = "#f28e2b"
OUTPUT = "#d5efd0"
ERROR = "#c0392b"

PADDING_RULES = ("valid", "same", "same_lower", "full", "causal")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# -- what the figures show, computed by jconv --------------------------------


def tutorial_data() -> dict:
    """The tutorial's image and kernel, `conv2d`'s "valid" and "same" outputs
    (`impl="lax"`), the document's claimed "valid" sums and the factors its
    four sums print."""
    outputs = document.worked_example(impls=("lax",))
    return dict(
        image=np.asarray(document.IMAGE),
        kernel=np.asarray(document.KERNEL),
        valid=outputs["lax", "valid"],
        same=outputs["lax", "same"],
        claimed=np.asarray(document.CLAIMED_VALID),
        factors=[factors for factors, _ in document.PRINTED_SUMS],
        same_pads=jconv.resolve_padding((4, 4), (3, 3), 1, 1, "same"),
    )


def padding_rule_data(size: int, kernel: int, stride: int) -> list[dict]:
    """For each padding rule: its `(low, high)` pads on a 1D input of `size`
    and the output length `conv1d` gives."""
    rows = []
    for rule in PADDING_RULES:
        ((low, high),) = jconv.resolve_padding((size,), (kernel,), stride, 1, rule)
        y = jconv.conv1d(
            jnp.ones((1, size, 1)),
            jnp.ones((kernel, 1, 1)),
            strides=stride,
            padding=rule,
        )
        rows.append(dict(rule=rule, low=low, high=high, out=y.shape[1]))
    return rows


def padding_mode_data(signal=(1, 2, 3, 4, 5), pad: int = 3) -> dict:
    """`signal` padded by `pad` on both sides under each padding mode: the
    output of `conv1d` with a 1-tap kernel of 1 (the identity) and explicit
    pads, which is the padded input itself."""
    x = jnp.asarray(signal, jnp.float32)[None, :, None]
    identity = jnp.ones((1, 1, 1))
    return {
        mode: np.asarray(jconv.conv1d(x, identity, padding=pad, padding_mode=mode))[
            0, :, 0
        ]
        for mode in PADDING_MODES
    }


# -- drawing -------------------------------------------------------------------


def _cell(ax, x, y, text, color, edge="#555555", width=1.0, bold=False, hatch=None):
    import matplotlib.patches as patches

    ax.add_patch(
        patches.Rectangle(
            (x, y),
            width,
            1,
            facecolor=color,
            edgecolor=edge,
            linewidth=0.8,
            hatch=hatch,
        )
    )
    if text != "":
        ax.text(
            x + width / 2,
            y + 0.5,
            text,
            ha="center",
            va="center",
            fontsize=9,
            fontweight="bold" if bold else "normal",
        )


def _number(value) -> str:
    return f"{round(float(value))}"


def _grid(ax, values, x0, y0, color, pads=((0, 0), (0, 0)), window=None):
    """A matrix drawn row 0 at the top, with zero pads around it (grey) and an
    optional `(row, col, size)` window outlined in the padded coordinates."""
    import matplotlib.patches as patches

    (top, bottom), (left, right) = pads
    rows, cols = values.shape
    for i in range(-top, rows + bottom):
        for j in range(-left, cols + right):
            inside = 0 <= i < rows and 0 <= j < cols
            _cell(
                ax,
                x0 + j + left,
                y0 - (i + top),
                _number(values[i, j]) if inside else "0",
                color if inside else PAD,
            )
    if window is not None:
        i, j, k = window
        ax.add_patch(
            patches.Rectangle(
                (x0 + j, y0 - i - k + 1),
                k,
                k,
                fill=False,
                edgecolor=WINDOW,
                linewidth=2.5,
            )
        )


def _figure(width, height):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    # No date and a fixed id salt: the same figure gives the same file.
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return path


def tutorial_windows(path: Path) -> Path:
    """The four 3x3 windows of the 4x4 image, each with the sum `conv2d`
    gives; under a window, in red, where the document prints another total or
    a factor that is not the image's. Then the kernel and the "valid"
    output."""
    data = tutorial_data()
    image, kernel, valid, claimed, factors = (
        data["image"],
        data["kernel"],
        data["valid"],
        data["claimed"],
        data["factors"],
    )
    fig, ax = _figure(11, 3.4)
    step = 5.0
    for n, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        x0 = n * step
        _grid(ax, image, x0, 0, INPUT, window=(i, j, 3))
        ax.text(
            x0 + 2,
            1.3,
            f"window ({i}, {j})\nsum = {_number(valid[i, j])}",
            ha="center",
            va="bottom",
            fontsize=10,
        )
        notes = []
        if claimed[i, j] != valid[i, j]:
            notes.append(f"printed sum: {claimed[i, j]}")
        printed = np.asarray(factors[n]).reshape(3, 3)
        for a, b in zip(*np.nonzero(printed != image[i : i + 3, j : j + 3])):
            notes.append(
                f"printed factor {printed[a, b]}\nfor image[{i + a}][{j + b}]"
                f" = {image[i + a, j + b]}"
            )
        if notes:
            ax.text(
                x0 + 2,
                -3.3,
                "\n".join(notes),
                ha="center",
                va="top",
                fontsize=9,
                color=ERROR,
            )
    x0 = 4 * step + 0.5
    _grid(ax, kernel, x0, 0, "#fbe3c8")
    ax.text(x0 + 1.5, 1.3, "kernel", ha="center", va="bottom", fontsize=10)
    x1 = x0 + 4.5
    _grid(ax, valid, x1, 0, OUTPUT)
    ax.text(x1 + 1, 1.3, '"valid"\noutput', ha="center", va="bottom", fontsize=10)
    ax.set_xlim(-0.2, x1 + 2.2)
    ax.set_ylim(-4.6, 3.0)
    return _save(fig, path)


def tutorial_same(path: Path) -> Path:
    """The image with the zero pads `"same"` adds, the first window, and the
    4x4 output of `conv2d(..., padding="same")`."""
    data = tutorial_data()
    pads = data["same_pads"]
    fig, ax = _figure(7.5, 3.6)
    _grid(ax, data["image"], 0, 0, INPUT, pads=pads, window=(0, 0, 3))
    ax.text(
        3,
        1.6,
        f'"same": pads {pads[0]} rows, {pads[1]} columns',
        ha="center",
        fontsize=10,
    )
    ax.annotate(
        "", xy=(7.6, -2.5), xytext=(6.4, -2.5), arrowprops=dict(arrowstyle="->", lw=1.5)
    )
    _grid(ax, data["same"], 8, -1, OUTPUT, window=(0, 0, 1))
    ax.text(10, 1.6, "output (4x4)", ha="center", fontsize=10)
    ax.set_xlim(-0.2, 12.2)
    ax.set_ylim(-5.2, 2.2)
    return _save(fig, path)


def padding_rules(path: Path, cases=((5, 4, 1), (6, 3, 2))) -> Path:
    """Per padding rule and per `(size, kernel, stride)` case: the 1D input
    with its pads, the first and last windows, and the output's cells under
    the first cell of their windows."""
    import matplotlib.patches as patches

    fig, ax = _figure(13, 7.5)
    y = 0.0
    col_x = (0.0, 16.5)
    for col, (size, kernel, stride) in zip(col_x, cases):
        ax.text(
            col,
            1.4,
            f"input {size}, kernel {kernel}, stride {stride}",
            fontsize=11,
            fontweight="bold",
        )
    rows = [padding_rule_data(*case) for case in cases]  # per case, per rule
    for r, rule in enumerate(PADDING_RULES):
        y = -r * 3.2
        for col, (size, kernel, stride), case_rows in zip(col_x, cases, rows):
            row = case_rows[r]
            low, high, out = row["low"], row["high"], row["out"]
            x0 = col + 3.2
            ax.text(col, y + 0.5, f'"{rule}"', va="center", fontsize=10)
            for p in range(low + size + high):
                inside = low <= p < low + size
                _cell(
                    ax,
                    x0 + p * 0.8,
                    y,
                    str(p - low) if inside else "",
                    INPUT if inside else PAD,
                    width=0.8,
                    hatch=None if inside else "//",
                )
            for j in sorted({0, out - 1}):
                start = x0 + j * stride * 0.8
                ax.add_patch(
                    patches.Rectangle(
                        (start, y),
                        kernel * 0.8,
                        1,
                        fill=False,
                        edgecolor=WINDOW,
                        linewidth=2.0 if j == 0 else 1.2,
                        linestyle="-" if j == 0 else "--",
                    )
                )
            for j in range(out):
                _cell(ax, x0 + j * stride * 0.8, y - 1.3, "", OUTPUT, width=0.8)
            ax.text(
                x0 + (low + size + high) * 0.8 + 0.3,
                y + 0.5,
                f"pads ({low}, {high})",
                va="center",
                fontsize=9,
            )
            ax.text(
                x0 + (low + size + high) * 0.8 + 0.3,
                y - 0.8,
                f"output {out}",
                va="center",
                fontsize=9,
            )
    ax.set_xlim(-0.2, 31.5)
    ax.set_ylim(y - 1.8, 2.2)
    return _save(fig, path)


def padding_modes(path: Path) -> Path:
    """A 5-sample signal padded by 3 on both sides under each padding mode."""
    data = padding_mode_data()
    pad = 3
    fig, ax = _figure(9, 3.8)
    for r, mode in enumerate(PADDING_MODES):
        y = -r * 1.4
        ax.text(0, y + 0.5, f'"{mode}"', va="center", fontsize=10)
        values = data[mode]
        for p, value in enumerate(values):
            inside = pad <= p < len(values) - pad
            _cell(ax, 2.2 + p, y, _number(value), INPUT if inside else PAD)
    ax.set_xlim(-0.2, 2.4 + len(data["zeros"]))
    ax.set_ylim(-len(PADDING_MODES) * 1.4 + 1.0, 1.2)
    return _save(fig, path)


FIGURES = {
    "tutorial-windows.svg": tutorial_windows,
    "tutorial-same.svg": tutorial_same,
    "padding-rules.svg": padding_rules,
    "padding-modes.svg": padding_modes,
}


def write_figures(directory) -> list[Path]:
    """Draws every figure into `directory` (created if missing)."""
    import matplotlib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # No random ids (a fixed salt), text as paths (no font needed to view it),
    # hatching lighter than the cells' edges.
    style = {"svg.hashsalt": "jconv", "svg.fonttype": "path", "hatch.color": "#b0b0b0"}
    with matplotlib.rc_context(style):
        return [draw(directory / name) for name, draw in FIGURES.items()]


def _on_builder_inited(app) -> None:
    write_figures(Path(app.srcdir) / "_generated")


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
