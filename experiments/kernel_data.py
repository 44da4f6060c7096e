"""Data for the kernel-learning experiments: inputs (1-D signals, 2-D images,
3-D volumes), true kernels, and the input/output pairs they make.

Everything is a pure function of its arguments and a seed (NumPy's
`default_rng`), so a config and a seed give the same pairs on every run.
"""

from __future__ import annotations

import numpy as np

from jconv import document

# 3x3 single-channel kernels, `(KH, KW)`, applied as cross-correlation (no flip).
NAMED_KERNELS = {
    "document": np.asarray(document.KERNEL, np.float32),
    # Horizontal derivative (right minus left under cross-correlation: a left
    # column of +1 2 1 and a right column of -1 -2 -1).
    "sobel_x": np.asarray([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "sobel_y": np.asarray([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    # The binomial 3x3 blur, the usual integer approximation of a Gaussian
    # with sigma ~ 0.85 (weights 1 2 1 / 4 along each axis).
    "gaussian": np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16,
    "laplacian": np.asarray([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
    "box": np.full((3, 3), 1 / 9, np.float32),
}
_BINOMIAL = np.asarray([1, 2, 1], np.float32) / 4
_DELTA = np.asarray([0, 1, 0], np.float32)
_SECOND_DIFFERENCE = np.asarray([1, -2, 1], np.float32)
# 3-tap single-channel signal filters, `(KW,)`, as cross-correlation: with
# padding "valid" output `t` reads inputs `t .. t + 2`; with "causal" (Keras
# Conv1D's), inputs `t - 2 .. t`, so a filter is a causal FIR filter whose
# last tap weighs the present sample.
NAMED_SIGNAL_KERNELS = {
    "moving_average": np.full(3, 1 / 3, np.float32),
    # The present sample minus the one before (under "causal" padding).
    "first_difference": np.asarray([0, -1, 1], np.float32),
    # The discrete second derivative, the 1-D Laplacian.
    "second_difference": _SECOND_DIFFERENCE.copy(),
    # The binomial blur 1 2 1 / 4 (a Gaussian with sigma ~ 0.7).
    "gaussian": _BINOMIAL.copy(),
}
# 3x3x3 single-channel volume kernels, `(KD, KH, KW)`.
NAMED_VOLUME_KERNELS = {
    # The second difference along each axis, summed: the 7-point stencil, the
    # six face neighbours minus six times the centre.
    "laplacian": sum(
        np.einsum(
            "i,j,k->ijk",
            *(_SECOND_DIFFERENCE if a == axis else _DELTA for a in range(3)),
        )
        for axis in range(3)
    ),
    "box": np.full((3, 3, 3), 1 / 27, np.float32),
    # The binomial blur along each of the three axes (weights sum to 1).
    "gaussian": np.einsum("i,j,k->ijk", _BINOMIAL, _BINOMIAL, _BINOMIAL),
}
# The named kernels of each spatial rank: 3 wide on every axis, one channel.
NAMED_KERNELS_BY_RANK = {
    1: NAMED_SIGNAL_KERNELS,
    2: NAMED_KERNELS,
    3: NAMED_VOLUME_KERNELS,
}
NAMED_KERNEL_SIZE = 3
RANDOM_KERNEL = "random"
# Every kernel name of every rank, the 2-D ones first.
KERNEL_NAMES = (
    *dict.fromkeys([*NAMED_KERNELS, *NAMED_SIGNAL_KERNELS, *NAMED_VOLUME_KERNELS]),
    RANDOM_KERNEL,
)

# Photographs shipped inside scikit-image (no download): name -> channels.
PHOTOS = {"camera": 1, "astronaut": 3, "coffee": 3, "coins": 1, "moon": 1}
# Standard normal 1-D signals `(N, W, C)` and 3-D volumes `(N, D, H, W, C)`.
SIGNAL_SOURCE = "random_signal"
VOLUME_SOURCE = "random_volume"
SOURCES = ("random", "document_image", *PHOTOS, SIGNAL_SOURCE, VOLUME_SOURCE)
# The spatial rank of each source's inputs, and so of the kernels learned.
SOURCE_RANKS = dict.fromkeys(SOURCES, 2) | {SIGNAL_SOURCE: 1, VOLUME_SOURCE: 3}


def kernel_names(rank: int) -> tuple[str, ...]:
    """The kernel names for inputs of spatial rank `rank`.

    Example:
      >>> kernel_names(1)
      ('moving_average', 'first_difference', 'second_difference', 'gaussian', 'random')
    """
    return (*NAMED_KERNELS_BY_RANK[rank], RANDOM_KERNEL)


def kernel_extent(rank: int, size: int = NAMED_KERNEL_SIZE) -> str:
    """A kernel's spatial size in words: `"3 taps"`, `"3x3"`, `"3x3x3"`."""
    return f"{size} taps" if rank == 1 else "x".join([str(size)] * rank)


def true_kernel(
    name: str,
    *,
    kernel_size: int,
    channels_in: int,
    channels_out: int,
    seed: int,
    rank: int = 2,
) -> np.ndarray:
    """A true kernel `(*K, C_in, C_out)` of spatial rank `rank`, float32:
    `(K, C_in, C_out)`, `(K, K, C_in, C_out)` or `(K, K, K, C_in, C_out)`.

    A named kernel (`kernel_names(rank)`) is 3 wide on every axis, one
    channel in and out. `"random"` draws `N(0, 1 / (K**rank * C_in))`
    entries, so outputs keep the inputs' scale.

    Example:
      >>> true_kernel("laplacian", kernel_size=3, channels_in=1, channels_out=1,
      ...             seed=0)[..., 0, 0].tolist()
      [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
      >>> true_kernel("first_difference", kernel_size=3, channels_in=1,
      ...             channels_out=1, seed=0, rank=1)[:, 0, 0].tolist()
      [0.0, -1.0, 1.0]
    """
    if rank not in NAMED_KERNELS_BY_RANK:
        raise ValueError(f"`rank` (={rank!r}) must be 1, 2 or 3")
    if name == RANDOM_KERNEL:
        rng = np.random.default_rng([seed, 1])
        shape = (*(kernel_size,) * rank, channels_in, channels_out)
        scale = 1 / np.sqrt(kernel_size**rank * channels_in)
        return (scale * rng.standard_normal(shape)).astype(np.float32)
    named = NAMED_KERNELS_BY_RANK[rank]
    if name not in named:
        raise ValueError(
            f"kernel name (={name!r}) must be one of {kernel_names(rank)} for "
            f"{rank}-D inputs"
        )
    if (kernel_size, channels_in, channels_out) != (NAMED_KERNEL_SIZE, 1, 1):
        raise ValueError(
            f"kernel {name!r} is {kernel_extent(rank)} with one channel in and "
            f"out; got kernel_size={kernel_size}, channels_in={channels_in}, "
            f"channels_out={channels_out}"
        )
    return named[name][..., None, None].copy()


def true_bias(channels_out: int, *, seed: int) -> np.ndarray:
    """A true bias `(C_out,)` with `N(0, 0.5^2)` entries, float32."""
    rng = np.random.default_rng([seed, 2])
    return (0.5 * rng.standard_normal(channels_out)).astype(np.float32)


def photo(name: str) -> np.ndarray:
    """A photograph from `skimage.data`, `(H, W, C)` float32 in [0, 1]."""
    if name not in PHOTOS:
        raise ValueError(f"photo name (={name!r}) must be one of {tuple(PHOTOS)}")
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., : PHOTOS[name]]  # drop an alpha channel
    return (image / np.float32(np.iinfo(image.dtype).max)).astype(np.float32)


def input_images(
    source: str, *, num_images: int, image_size: int, channels: int, seed: int
) -> np.ndarray:
    """Inputs `(N, *S, C)` of the source's rank (`SOURCE_RANKS`), float32:
    images `(N, S, S, C)`, signals `(N, S, C)`, volumes `(N, S, S, S, C)`.

    Args:
      source: `"random"` (standard normal pixels), `"document_image"` (the
        document's 4x4 image: `num_images` 1, `image_size` 4, `channels` 1),
        a photo name from `PHOTOS` (random `S x S` crops of it, in [0, 1]),
        `"random_signal"` (standard normal 1-D signals) or `"random_volume"`
        (standard normal 3-D volumes).
      num_images: N.
      image_size: S, the size of every spatial axis.
      channels: C (a photo has its own: 1 grey, 3 RGB).
      seed: NumPy seed.

    Example:
      >>> input_images("document_image", num_images=1, image_size=4, channels=1,
      ...              seed=0)[0, :, :, 0].tolist()[0]
      [10.0, 15.0, 0.0, 10.0]
    """
    rng = np.random.default_rng([seed, 0])
    if source in ("random", SIGNAL_SOURCE, VOLUME_SOURCE):
        shape = (num_images, *(image_size,) * SOURCE_RANKS[source], channels)
        return rng.standard_normal(shape).astype(np.float32)
    if source == "document_image":
        if (num_images, image_size, channels) != (1, 4, 1):
            raise ValueError(
                "source 'document_image' is one 4x4 grey image; got "
                f"num_images={num_images}, image_size={image_size}, "
                f"channels={channels}"
            )
        return np.asarray(document.IMAGE, np.float32)[None, :, :, None]
    image = photo(source)
    h, w, c = image.shape
    if channels != c or image_size > min(h, w):
        raise ValueError(
            f"photo {source!r} is {h}x{w} with {c} channels; got "
            f"image_size={image_size}, channels={channels}"
        )
    corners = rng.integers(0, [h - image_size + 1, w - image_size + 1], (num_images, 2))
    return np.stack([image[i : i + image_size, j : j + image_size] for i, j in corners])


def target_noise(shape, *, std: float, seed: int, stream: int = 0) -> np.ndarray:
    """Gaussian noise `N(0, std^2)` for the targets, float32 (zeros if std 0).

    `stream` separates independent draws made from one seed (one per problem).
    """
    rng = np.random.default_rng([seed, 3, stream])
    return (std * rng.standard_normal(shape)).astype(np.float32)
