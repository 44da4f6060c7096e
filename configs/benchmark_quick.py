"""The benchmark shrunk to every shape and implementation in under two minutes
on a CPU: small batches, few repeats, a short race. Timings are indicative only.

    python -m experiments.benchmark --config=configs/benchmark_quick.py \
        --workdir=runs/benchmark_quick
"""

import ml_collections

from configs import benchmark


def get_config():
    c = benchmark.get_config()
    # Images per convolution, per shape (the full config's are 16 to 256).
    c.batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=8, resnet56=1, resnet28=1, resnet14=2,
             stem=1, depthwise=1)
    )  # fmt: skip
    c.inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=100, mnist=1, resnet56=1, resnet28=1, resnet14=1,
             stem=1, depthwise=1)
    )  # fmt: skip
    c.gpu_batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=64, resnet56=8, resnet28=8, resnet14=8,
             stem=8, depthwise=8)
    )  # fmt: skip
    c.gpu_inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=100, mnist=10, resnet56=4, resnet28=4, resnet14=4,
             stem=4, depthwise=10)
    )  # fmt: skip
    c.warmup = 1  # untimed calls before timing
    c.repeats = 3  # timed calls; median
    c.race.steps = 200  # race steps (the full config runs 1000)
    c.race.repeats = 2
    c.race.keras_repeats = 1
    c.race.impls = ("einsum",)  # the lax impl is slow on 1-channel images on CPU
    c.race.fast_candidates = ("sgd:0.5", "lbfgs")
    return c
