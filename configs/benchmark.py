"""Convolution benchmark: jconv against raw lax, Keras/TensorFlow and PyTorch.

    python -m experiments.benchmark --config=configs/benchmark.py \
        --workdir=runs/benchmark

Any field can be overridden, e.g. `--config.repeats=20` or
`--config.impls="('jconv_lax', 'torch')"`. Batch sizes fit a 2-core, 24 GiB
machine (about 10 minutes); `gpu_batch` / `gpu_inner_iters` apply instead when
JAX sees a GPU.
"""

import ml_collections

SHAPES = ("doc4x4", "mnist", "resnet56", "resnet28", "resnet14", "stem", "depthwise")


def get_config():
    c = ml_collections.ConfigDict()
    # Which layers (experiments/bench/_cases.py: SHAPES), implementations,
    # modes and dtypes to time; every combination is one row.
    c.shapes = SHAPES
    c.impls = ("jconv_lax", "lax_raw", "jconv_einsum", "torch", "keras_tf")
    c.modes = ("fwd", "fwd+bwd")  # fwd+bwd: gradients for input and kernel
    c.dtypes = ("float32", "bfloat16")
    # Images per convolution on the CPU, per shape.
    c.batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=256, resnet56=16, resnet28=16, resnet14=16,
             stem=16, depthwise=16)
    )  # fmt: skip
    # Convolutions per timed call (inside one jitted loop for JAX, a
    # tf.function loop for Keras, a Python loop for PyTorch), so dispatch does
    # not dominate the small shapes. Times are reported per convolution. Keep
    # 1 for shapes that take over a millisecond: on the CPU, XLA compiles
    # gradient convolutions inside a loop without its fast path
    # (jax-ml/jax#12868), so a loop would time that slow path instead.
    c.inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=2000, mnist=1, resnet56=1, resnet28=1, resnet14=1,
             stem=1, depthwise=1)
    )  # fmt: skip
    # The same two tables on a GPU (used only when JAX sees one).
    c.gpu_batch = ml_collections.ConfigDict(
        dict(doc4x4=1, mnist=256, resnet56=128, resnet28=128, resnet14=128,
             stem=128, depthwise=128)
    )  # fmt: skip
    c.gpu_inner_iters = ml_collections.ConfigDict(
        dict(doc4x4=2000, mnist=50, resnet56=10, resnet28=10, resnet14=10,
             stem=10, depthwise=50)
    )  # fmt: skip
    c.warmup = 2  # untimed calls before timing (compilation, caches)
    c.repeats = 15  # timed calls per row, interleaved across rows; median
    c.seed = 0  # inputs: NumPy generator seeded with (seed, shape name)
    # Largest allowed max|out - ref| / max|ref| against jconv_lax, per output.
    c.tolerance = ml_collections.ConfigDict(
        # float32_gpu: JAX's default precision uses TF32 on recent GPUs.
        dict(float32=1e-4, bfloat16=2e-2, float32_gpu=1e-2)
    )
    c.measure_memory = True  # peak memory per row (see results.md for how)
    # The peers installed are CPU-only builds: on a GPU machine they are
    # recorded as skipped unless this is True (then they time the host CPU).
    c.peers_on_gpu_machine = False
    c.keep_scratch = False  # keep inputs/reference arrays in workdir/_scratch

    # The kernel-learning race: jconv (jitted lax.scan) vs Keras model.fit.
    r = c.race = ml_collections.ConfigDict()
    r.enabled = True
    r.n_images = 32  # random N(0, 1) images, targets made with the document's kernel
    r.image_size = 16  # square images; "valid" targets are (size - 2)^2
    r.seed = 0
    r.optimizer = "sgd"  # the equal-steps race: "sgd", "momentum" or "adam"
    r.learning_rate = 0.1
    r.momentum = 0.9  # used by "momentum" (same update in optax and Keras)
    r.adam_epsilon = 1e-7  # Keras' default, given to optax too
    r.steps = 1000  # full-batch steps, both sides
    r.impls = ("einsum", "lax")  # jconv impls raced; the faster is reported
    r.repeats = 5  # timed jconv runs after a warm-up; median
    r.keras_repeats = 3  # timed model.fit runs after the first; median
    r.precision = "highest"  # no TF32 on GPUs: the target below needs float32
    # Time to a kernel max-abs error of target_error for each candidate
    # ("name:learning_rate"; L-BFGS picks its step by line search).
    r.target_error = 1e-5
    r.max_steps = 5000
    r.fast_candidates = ("sgd:0.1", "sgd:0.5", "momentum:0.3", "adam:0.05", "lbfgs")
    r.fast_impl = "einsum"
    return c
