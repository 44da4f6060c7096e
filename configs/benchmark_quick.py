"""The benchmark shrunk to every shape (but unet3d) and implementation in
about three minutes on a 2-core CPU (mostly compilation): small batches, few
repeats, a short race. Timings are indicative only.

    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick
"""

from configs import benchmark


def get_config():
    c = benchmark.get_config()
    # Not unet3d: XLA:CPU's 3-D convolutions take about half a second per
    # volume fwd+bwd, minutes of in_scan steps even at batch 1. voxnet_conv2
    # is the quick run's 3-D case (the same code path, a small layer).
    c.shapes = tuple(s for s in benchmark.SHAPES if s != "unet3d")
    # Images per convolution, per shape (the full config's are 4 to 256).
    c.batch = benchmark.per_shape(1, mnist=8, resnet14=2)
    c.inner_iters = benchmark.per_shape(1, doc4x4=100)
    c.gpu_batch = benchmark.per_shape(8, doc4x4=1, mnist=64, dw13=4,
                                      replknet31=4, slak51x5=4)  # fmt: skip
    c.gpu_inner_iters = benchmark.per_shape(4, doc4x4=100, mnist=10, depthwise=10,
                                            depthwise_s2=10)  # fmt: skip
    c.warmup = 1  # untimed calls before timing
    c.repeats = 3  # timed calls; median
    c.race.steps = 200  # race steps (the full config runs 1000)
    c.race.repeats = 2
    c.race.keras_repeats = 1
    # Both, as in the full config: lax is still ~15x slower than einsum on these
    # 1-channel images, but with its canonical-layout derivatives that is tens
    # of milliseconds for the whole race, no longer the slow path it was.
    c.race.impls = ("einsum", "lax")
    c.race.fast_candidates = ("sgd:0.5", "lbfgs")
    return c
