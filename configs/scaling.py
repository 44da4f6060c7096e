"""Throughput of the kernel-learning step on 1, 2, 4 and 8 devices.

    python -m experiments.scaling --config=configs/scaling.py --workdir=runs/scaling

Each device count runs in its own subprocess. On a CPU (platform "cpu") the
devices are simulated with XLA_FLAGS=--xla_force_host_platform_device_count=N:
they share the machine's cores, so the numbers show the cost of splitting a
step (partitioning, gradient all-reduce), not a speed-up from more hardware.
See README, "Scaling out".
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    # Device counts measured, increasing; each in its own subprocess.
    c.device_counts = (1, 2, 4, 8)
    # "weak": `batch` pairs per device (the global batch grows with the
    # devices); "strong": `batch` pairs in all, split over the devices.
    c.mode = "weak"
    # Pairs per device ("weak") or in all ("strong": divisible by every count).
    c.batch = 32
    # Height = width of the random input images, pixels.
    c.image_size = 32
    # Input channels C_in of the layer being learned.
    c.channels = 4
    # Output channels C_out.
    c.channels_out = 4
    # Kernel height = width ("same" padding, stride 1).
    c.kernel_size = 3
    # jconv.conv2d implementation: "lax" or "einsum".
    c.impl = "lax"
    # Matmul precision: "highest" keeps float32 on GPUs and TPUs, as the
    # kernel-learning experiments do; None, "default", "high".
    c.precision = "highest"
    # SGD steps per timed call (one jitted lax.scan, as in the experiments).
    c.steps = 10
    # Untimed calls first; the first one compiles.
    c.warmup = 1
    # Timed calls; the median is reported.
    c.repeats = 5
    # Seed of the random images and the random true layer.
    c.seed = 0
    # "cpu": simulated host devices; "native": the first N of the machine's
    # own devices (GPUs, TPU cores), which must number at least max(counts).
    c.platform = "cpu"
    # Seconds allowed to each device count's subprocess.
    c.timeout = 600
    return c
