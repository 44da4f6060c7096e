"""The worked example of the source tutorial ("Convolución 2D — Keras y Python").

The tutorial's figure is missing; its four partial sums are all that is left.
Each sum is nine products `image_value * kernel_value` in row-major window order,
so the kernel is read off the second factors (identical in all four sums) and the
4x4 image off the first factors of the four overlapping 3x3 windows.

The sums disagree with themselves in two places (see `ERRATA`); the image below
is the one reading that makes all but one printed factor and three of the four
printed totals agree.
"""

from __future__ import annotations

# Windows: top-left = sum 1, top-right = sum 2, bottom-left = sum 3,
# bottom-right = sum 4.
IMAGE = (
    (10, 15, 0, 10),
    (20, 0, 0, 0),
    (0, 1, 10, 20),
    (0, 10, 20, 10),
)

KERNEL = (
    (1, -1, 1),
    (2, 5, 10),
    (1, 1, 2),
)

# The four "Resultados parciales" exactly as printed: (window factors, claimed).
PRINTED_SUMS = (
    ((10, 15, 0, 20, 0, 0, 0, 1, 10), 56),
    ((15, 0, 10, 0, 0, 0, 1, 10, 20), 175),
    ((20, 0, 0, 0, 1, 10, 0, 10, 20), 175),
    ((0, 0, 10, 1, 10, 20, 10, 20, 10), 302),
)

# What the document claims for the "valid" output (stride 1), row-major 2x2.
CLAIMED_VALID = ((56, 175), (175, 302))

# The correct "valid" output of IMAGE with KERNEL.
VALID = ((56, 76), (175, 302))

ERRATA = (
    "Sum 2 (top-right window): its nine printed products add up to "
    "15 + 0 + 10 + 0 + 0 + 0 + 1 + 10 + 40 = 76, not 175; 175 repeats the "
    "total of sum 3. Its factors agree with the other windows, so 76 is the "
    "true output at row 0, column 1.",
    "Sum 4 (bottom-right window): it prints the window's first row as "
    "(0, 0, 10), but that row is image row 1, columns 1-3, which sum 2 prints "
    "as (0, 0, 0). With the factors as printed the products add up to 312, "
    "not 302; with image[1][3] = 0 they add up to 302, the printed total. "
    "The stray '10' is a copy error (image[0][3] = 10 sits right above it); "
    "302 is correct.",
)


def worked_example(impls=("lax", "einsum")) -> dict:
    """Runs the example under "valid" and "same" padding with each implementation.

    Returns:
      `{(impl, padding): 4x4 or 2x2 float32 NumPy array}`.

    Example:
      >>> worked_example(impls=("lax",))["lax", "valid"].tolist()
      [[56.0, 76.0], [175.0, 302.0]]
    """
    import jax.numpy as jnp
    import numpy as np

    from jconv._conv import conv2d

    image = jnp.asarray(IMAGE, jnp.float32)[..., None]
    kernel = jnp.asarray(KERNEL, jnp.float32)[..., None, None]
    return {
        (impl, padding): np.asarray(conv2d(image, kernel, padding=padding, impl=impl))[
            ..., 0
        ]
        for impl in impls
        for padding in ("valid", "same")
    }


def report(impls=("lax", "einsum")) -> str:
    """The example as text: inputs, outputs of each implementation, the
    document's claims beside them, and the errata."""
    import numpy as np

    def block(title, rows):
        text = np.array2string(np.asarray(rows), separator=" ", precision=0)
        return f"{title}\n{text}\n"

    results = worked_example(impls)
    lines = [
        "The document's worked example (stride 1, cross-correlation, no flip)\n",
        block("input image (4x4):", IMAGE),
        block("kernel (3x3):", KERNEL),
    ]
    for padding in ("valid", "same"):
        for impl in impls:
            lines.append(
                block(f'{padding!r} output, impl="{impl}":', results[impl, padding])
            )
        if padding == "valid":
            lines.append(block("what the document claims for 'valid':", CLAIMED_VALID))
        else:
            lines.append(
                "what the document claims for 'same': an output of the input's "
                "size, 4x4 (no values are printed)\n"
            )
    lines.append("Errata:")
    lines += [f"  {i}. {text}" for i, text in enumerate(ERRATA, 1)]
    return "\n".join(lines)
