"""The benchmark on one GPU in under 4 minutes, installing nothing: jconv
(auto, lax) against raw lax and PyTorch (cuDNN), every answer checked
against jconv_lax's, time, TFLOP/s and percent of the card's dense peak
(`experiments/bench/_machine.py`) per row, and fwd+bwd inside `lax.scan`
beside top level.

    make bench-gpu

which runs, with the image's own python3 (jax[cuda], torch, ml_collections,
absl-py, tqdm; matplotlib only for the plots):

    python3 -m experiments.benchmark --config=configs/benchmark_gpu.py \
        --workdir=runs/benchmark_gpu --overwrite

The time is mostly compilation: 13 shapes (9 2-D, 2 1-D, 2 3-D) x 2 dtypes
x 3 modes for three JAX implementations (two in the scan). jconv_onednn
(impl="onednn") runs on the CPU only: on a GPU its rows are recorded as
skipped, with the reason. Without a GPU the same rows run on the CPU at the
quick config's batch sizes (PyTorch and jconv_onednn too), in a few minutes
on 2 cores: a check of the path, not a measurement.
"""

from configs import benchmark, benchmark_quick


def get_config():
    c = benchmark.get_config()
    # The 1-image document example and MNIST's first layer are dispatch-bound
    # on a GPU: left out.
    c.shapes = (
        "resnet56", "resnet28", "resnet14", "stem", "depthwise", "convnext_dw7",
        "resnext28", "pointwise28", "depthwise_s2", "wavenet_d8", "resnet1d",
        "voxnet_conv2", "unet3d",
    )  # fmt: skip
    # Keras is a CPU build (tensorflow-cpu): not a GPU peer. PyTorch uses
    # CUDA (cuDNN) where its build has it.
    c.impls = ("jconv_auto", "jconv_lax", "lax_raw", "jconv_onednn", "torch")
    c.peers_on_gpu_machine = True
    # jconv in a scan against top level. Not lax_raw (the full config's
    # choice): on the GPU it would cost compiles only, but on a CPU-only
    # machine its scans would take minutes (jax-ml/jax#12868).
    c.in_scan_impls = ("jconv_auto", "jconv_lax", "jconv_onednn")
    # Without a GPU: the quick config's CPU tables (small, fast). With one,
    # the full config's gpu_batch / gpu_inner_iters apply (batch 128; 10 to
    # 50 convolutions per timed call, so dispatch does not dominate).
    quick = benchmark_quick.get_config()
    c.batch, c.inner_iters = quick.batch, quick.inner_iters
    c.warmup = 2  # untimed calls before timing (autotuning, caches)
    c.repeats = 5  # timed calls per row; median
    c.scan_repeats = 3  # timed 10-step scans per in_scan row; median
    c.race.enabled = False  # a CPU race (1-channel images, Keras on the CPU)
    return c
