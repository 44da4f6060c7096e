"""The fast algorithms against the direct convolutions (XLA's and oneDNN's)
and the peers: Winograd on the ResNet 3x3 layers, the FFT on large depthwise
kernels (13x13, RepLKNet's 31x31, a SLaK-style 51x5 strip), float32, forward
and forward+backward, about 7 minutes on 2 cores (the direct large-kernel
rows take seconds each).

    python -m experiments.benchmark --config=configs/benchmark_kernels.py \
        --workdir=runs/benchmark_kernels
"""

from configs import benchmark


def get_config():
    c = benchmark.get_config()
    c.shapes = (
        "resnet56", "resnet28", "resnet14", "depthwise", "convnext_dw7",
        *benchmark.LARGE_KERNEL_SHAPES,
    )  # fmt: skip
    c.impls = (
        "jconv_auto", "jconv_lax", "jconv_einsum", "jconv_onednn", "jconv_fft",
        "jconv_winograd", "torch", "keras_tf",
    )  # fmt: skip
    c.modes = ("fwd", "fwd+bwd")  # in a scan the plans are the same programs
    c.in_scan_impls = ()
    c.dtypes = ("float32",)  # the targets are float32; bfloat16 computes in it
    c.repeats = 7  # the direct large-kernel rows take seconds each
    c.race.enabled = False  # the race is the full config's
    return c
