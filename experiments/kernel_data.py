"""Data for the kernel-learning experiments: input images, true kernels, and the
input/output pairs they make.

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
RANDOM_KERNEL = "random"
KERNEL_NAMES = (*NAMED_KERNELS, RANDOM_KERNEL)

# Photographs shipped inside scikit-image (no download): name -> channels.
PHOTOS = {"camera": 1, "astronaut": 3, "coffee": 3, "coins": 1, "moon": 1}
SOURCES = ("random", "document_image", *PHOTOS)


def true_kernel(
    name: str, *, kernel_size: int, channels_in: int, channels_out: int, seed: int
) -> np.ndarray:
    """A true kernel `(KH, KW, C_in, C_out)`, float32.

    A named kernel is 3x3, one channel in and out. `"random"` draws
    `N(0, 1 / (KH * KW * C_in))` entries, so outputs keep the inputs' scale.

    Example:
      >>> true_kernel("laplacian", kernel_size=3, channels_in=1, channels_out=1,
      ...             seed=0)[..., 0, 0].tolist()
      [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    """
    if name == RANDOM_KERNEL:
        rng = np.random.default_rng([seed, 1])
        shape = (kernel_size, kernel_size, channels_in, channels_out)
        scale = 1 / np.sqrt(kernel_size * kernel_size * channels_in)
        return (scale * rng.standard_normal(shape)).astype(np.float32)
    if name not in NAMED_KERNELS:
        raise ValueError(f"kernel name (={name!r}) must be one of {KERNEL_NAMES}")
    if (kernel_size, channels_in, channels_out) != (3, 1, 1):
        raise ValueError(
            f"kernel {name!r} is 3x3 with one channel in and out; got "
            f"kernel_size={kernel_size}, channels_in={channels_in}, "
            f"channels_out={channels_out}"
        )
    return NAMED_KERNELS[name][:, :, None, None].copy()


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
    """Input images `(N, S, S, C)`, float32.

    Args:
      source: `"random"` (standard normal pixels), `"document_image"` (the
        document's 4x4 image: `num_images` 1, `image_size` 4, `channels` 1),
        or a photo name from `PHOTOS` (random `S x S` crops of it, in [0, 1]).
      num_images: N.
      image_size: S.
      channels: C (a photo has its own: 1 grey, 3 RGB).
      seed: NumPy seed.

    Example:
      >>> input_images("document_image", num_images=1, image_size=4, channels=1,
      ...              seed=0)[0, :, :, 0].tolist()[0]
      [10.0, 15.0, 0.0, 10.0]
    """
    rng = np.random.default_rng([seed, 0])
    if source == "random":
        shape = (num_images, image_size, image_size, channels)
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
