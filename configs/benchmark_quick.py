"""The benchmark shrunk to every shape and implementation in about three
minutes on a 2-core CPU (mostly compilation): small batches, few repeats, a
short race. Timings are indicative only.

    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick
"""

import ml_collections

from configs import benchmark


def get_config():
    c = benchmark.get_config()
    # Images per convolution, per shape (the full config's are 4 to 256).
    c.batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=8, resnet56=1, resnet28=1, resnet14=2,
             stem=1, depthwise=1, convnext_dw7=1, resnext28=1, pointwise28=1,
             depthwise_s2=1, dw13=1, replknet31=1, slak51x5=1)
    )  # fmt: skip
    c.inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=100, mnist=1, resnet56=1, resnet28=1, resnet14=1,
             stem=1, depthwise=1, convnext_dw7=1, resnext28=1, pointwise28=1,
             depthwise_s2=1, dw13=1, replknet31=1, slak51x5=1)
    )  # fmt: skip
    c.gpu_batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=64, resnet56=8, resnet28=8, resnet14=8,
             stem=8, depthwise=8, convnext_dw7=8, resnext28=8, pointwise28=8,
             depthwise_s2=8, dw13=4, replknet31=4, slak51x5=4)
    )  # fmt: skip
    c.gpu_inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=100, mnist=10, resnet56=4, resnet28=4, resnet14=4,
             stem=4, depthwise=10, convnext_dw7=4, resnext28=4, pointwise28=4,
             depthwise_s2=10, dw13=4, replknet31=4, slak51x5=4)
    )  # fmt: skip
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
