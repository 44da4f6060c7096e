"""The fast algorithms' errors against float64, as the README states them.

    python -m experiments.algorithm_errors

For each layer and dtype: max |y - y64| / max |y64|, where y64 is the direct
convolution (`impl="lax"`, `precision="highest"`) in float64 of the same
inputs rounded to the dtype, for `impl="fft"`, Winograd F(2), F(4), F(6)
(3x3 layers) and `impl="lax"` itself. Inputs: standard normal, seed 0.
Prints a markdown table; about seven minutes on 2 CPU cores (the direct
float64 references of the large kernels).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import jconv
from jconv._spec import conv_spec
from jconv._winograd import TILES, conv2d_winograd_core


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    x_shape: tuple[int, int, int, int]
    kernel_shape: tuple[int, int, int, int]  # HWIO; depthwise: (KH, KW, C, 1)
    depthwise: bool = False


LAYERS = (
    Layer("13x13 depthwise", (2, 56, 56, 128), (13, 13, 128, 1), True),
    Layer("31x31 depthwise", (2, 28, 28, 256), (31, 31, 256, 1), True),
    Layer("51x5 depthwise", (2, 56, 56, 128), (51, 5, 128, 1), True),
    Layer("13x13 dense", (2, 28, 28, 64), (13, 13, 64, 64)),
    Layer("3x3 dense", (4, 28, 28, 64), (3, 3, 64, 64)),
)
DTYPES = ("float32", "bfloat16")


def _convolve(layer: Layer, x, kernel, impl: str, **kw):
    if layer.depthwise:
        return jconv.depthwise_conv2d(x, kernel, padding="same", impl=impl, **kw)
    return jconv.conv2d(x, kernel, padding="same", impl=impl, **kw)


def _winograd(x, kernel, tile: int):
    spec = conv_spec(
        x.shape, kernel.shape, None, itemsize=x.dtype.itemsize, strides=1,
        padding="same", dilation_rate=1, groups=1, data_format="channels_last",
    )  # fmt: skip
    run = jax.jit(lambda x, k: conv2d_winograd_core(x, k, spec, None, tile=tile))
    return run(x, kernel)


def errors(layer: Layer, dtype: str, seed: int = 0) -> dict[str, float]:
    """Relative errors of every applicable algorithm on `layer` in `dtype`."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(layer.x_shape), dtype)
    kernel = jnp.asarray(rng.standard_normal(layer.kernel_shape), dtype)
    with jax.enable_x64(True):
        x64, k64 = (np.asarray(a, np.float64) for a in (x, kernel))
        y64 = np.asarray(_convolve(layer, x64, k64, "lax", precision="highest"))
    scale = np.abs(y64).max()

    def err(y):
        return float(np.abs(np.asarray(y, np.float64) - y64).max() / scale)

    out = {"fft": err(_convolve(layer, x, kernel, "fft"))}
    if layer.kernel_shape[:2] == (3, 3) and not layer.depthwise:
        for tile in TILES:
            out[f"F({tile})"] = err(_winograd(x, kernel, tile))
    out["lax"] = err(_convolve(layer, x, kernel, "lax", precision="highest"))
    return out


def main() -> None:
    print("| layer | input | dtype | fft | Winograd F(2) / F(4) / F(6) | lax |")
    print("|---|---|---|---|---|---|")
    for layer in LAYERS:
        for dtype in DTYPES:
            e = errors(layer, dtype)
            wino = " / ".join(f"{e[f'F({t})']:.2g}" for t in TILES if f"F({t})" in e)
            print(
                f"| {layer.name} | {layer.x_shape} | {dtype} | {e['fft']:.2g} | "
                f"{wino or '—'} | {e['lax']:.2g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
