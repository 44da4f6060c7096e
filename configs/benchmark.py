"""Convolution benchmark: jconv against raw lax, Keras/TensorFlow and PyTorch.

    python -m experiments.benchmark --config=configs/benchmark.py \
        --workdir=runs/benchmark

Any field can be overridden, e.g. `--config.repeats=20` or
`--config.impls="('jconv_auto', 'torch')"`. Batch sizes fit a 2-core, 24 GiB
machine (about 10 to 15 minutes); `gpu_batch` / `gpu_inner_iters` apply instead
when JAX sees a GPU (`configs/benchmark_gpu.py`, `make bench-gpu`).
"""

import ml_collections

SHAPES = (
    "doc4x4", "mnist", "resnet56", "resnet28", "resnet14", "stem", "depthwise",
    "convnext_dw7", "resnext28", "pointwise28", "depthwise_s2",
    # 1-D and 3-D (tables of their own in results.md): WaveNet's dilated
    # causal layer, a 1-D ResNet layer, VoxNet's second layer, a 3-D U-Net
    # 3x3x3 layer.
    "wavenet_d8", "resnet1d", "voxnet_conv2", "unet3d",
)  # fmt: skip
# Large depthwise kernels, where the FFT wins (configs/benchmark_kernels.py):
# seconds per row for the direct convolutions, so not in the default run.
LARGE_KERNEL_SHAPES = ("dw13", "replknet31", "slak51x5")


def per_shape(default: int, **values: int) -> ml_collections.ConfigDict:
    """A table with an entry for every shape: `default`, or its value here."""
    unknown = set(values) - set(SHAPES + LARGE_KERNEL_SHAPES)
    if unknown:
        raise ValueError(f"unknown shapes {sorted(unknown)}")
    names = SHAPES + LARGE_KERNEL_SHAPES
    return ml_collections.ConfigDict({n: values.get(n, default) for n in names})


def get_config():
    c = ml_collections.ConfigDict()
    # Which layers (experiments/bench/_cases.py: SHAPES), implementations,
    # modes and dtypes to time; every combination is one row.
    c.shapes = SHAPES
    # jconv_onednn: impl="onednn", oneDNN's CPU convolutions inside XLA; its
    # rows are recorded as skipped, with jconv's reason, where it cannot run
    # (no extension, JCONV_ONEDNN=0, JAX on a GPU). Also known: jconv_fft and
    # jconv_winograd (3x3 stride-1 shapes only), the fast algorithms auto may
    # pick, timed on their own in configs/benchmark_kernels.py (or here with
    # --config.impls=...).
    c.impls = (
        "jconv_auto", "jconv_lax", "lax_raw", "jconv_einsum", "jconv_onednn",
        "torch", "keras_tf",
    )  # fmt: skip
    # fwd+bwd: gradients for input and kernel. in_scan: fwd+bwd as a training
    # loop runs it, 10 steps in one jitted lax.scan (JAX only; needs fwd+bwd,
    # whose answers it is checked against and whose time it is reported beside).
    c.modes = ("fwd", "fwd+bwd", "in_scan")
    # The JAX implementations timed in in_scan (the others' rows are recorded
    # as skipped). Not lax_raw: differentiated by JAX it loses XLA:CPU's fast
    # convolutions in a loop body (jax-ml/jax#12868), 8-30x its top-level
    # time, minutes per row here and about three even at batch 1 for all
    # shapes. To see it: --config.in_scan_impls="('jconv_lax', 'lax_raw')".
    c.in_scan_impls = ("jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn")
    c.dtypes = ("float32", "bfloat16")
    # Images (1-D: signals, 3-D: volumes) per convolution on the CPU, per
    # shape: 16, less where a row would take over a second per fwd+bwd
    # (XLA:CPU's grouped convolutions behind jconv_lax, lax_raw and Keras'
    # grouped Conv2D; the stem's einsum; XLA:CPU's 3-D convolutions, at
    # about 10 GFLOP/s a tenth of a second per voxnet_conv2 volume fwd+bwd
    # and half a second per unet3d one), so that the whole benchmark stays
    # within 10 to 15 minutes on 2 cores.
    c.batch = per_shape(
        16, doc4x4=1, mnist=256, stem=8, depthwise=8, convnext_dw7=4,
        resnext28=4, depthwise_s2=4, dw13=2, replknet31=2, slak51x5=2,
        wavenet_d8=8, voxnet_conv2=1, unet3d=1,
    )  # fmt: skip
    # Convolutions per timed call (inside one jitted fori_loop for JAX, a
    # tf.function loop for Keras, a Python loop for PyTorch), so dispatch does
    # not dominate the small shapes. Times are reported per convolution. 1
    # for shapes that take over a millisecond, where dispatch is noise. (A
    # loop no longer costs jconv its fast path, see in_scan; lax_raw's
    # gradients in a loop still lose it, jax-ml/jax#12868.)
    c.inner_iters = per_shape(1, doc4x4=2000)
    # The same two tables on a GPU (used only when JAX sees one). unet3d:
    # 32 volumes (jconv_einsum's 27 windows of 128 would take 14 GiB).
    c.gpu_batch = per_shape(128, doc4x4=1, mnist=256, dw13=32, replknet31=32,
                            slak51x5=32, unet3d=32)  # fmt: skip
    c.gpu_inner_iters = per_shape(10, doc4x4=2000, mnist=50, depthwise=50,
                                  depthwise_s2=50)  # fmt: skip
    c.warmup = 2  # untimed calls before timing (compilation, caches)
    c.repeats = 15  # timed calls per row, interleaved across rows; median
    # Timed scans per in_scan row, after one untimed scan: each runs 10
    # steps, so fewer samples give as steady a median.
    c.scan_repeats = 3
    c.seed = 0  # inputs: NumPy generator seeded with (seed, shape name)
    # Largest allowed max|out - ref| / max|ref| against jconv_lax, per output.
    c.tolerance = ml_collections.ConfigDict(
        # float32_gpu: JAX's default precision uses TF32 on recent GPUs.
        dict(float32=1e-4, bfloat16=2e-2, float32_gpu=1e-2)
    )
    c.measure_memory = True  # peak memory per row (see results.md for how)
    # On a GPU machine the peers are recorded as skipped unless this is True;
    # then PyTorch runs on CUDA where its build has it, else (like
    # Keras/TensorFlow, whose build is tensorflow-cpu) on the host CPU.
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
